/**
 * The file a fresh worker runs (WorkerPool.runFresh in pool.ts): the one task in `workerData`,
 * through the same entry the pool's workers load, its outcome posted back once. A rejection is
 * left uncaught, so that it reaches the parent as the worker's error, as piscina reports it.
 */
import { parentPort, workerData } from 'node:worker_threads';

const { entry, task } = workerData as { entry: string; task: unknown };
const run = require(entry) as (task: unknown) => Promise<unknown>;
run(task).then((outcome) => parentPort!.postMessage(outcome));
