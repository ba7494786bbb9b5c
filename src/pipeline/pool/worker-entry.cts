/**
 * The file piscina loads in each worker: a CommonJS module that starts loading the ES module
 * worker (worker.ts) with `import()` and hands every task to it.
 *
 * Why not give piscina worker.js itself: piscina loads a worker file with `require()` first, and
 * on Node 20 and 22 `require()` of an ES module aborts the whole process (a C++ assertion in
 * ModuleWrap, "FATAL ERROR: v8::Module::IsGraphAsync ...") when the worker is terminated while
 * that module graph is being instantiated -- which happens whenever a pipeline is closed while its
 * workers are still starting. `import()` has no such window: a termination only rejects it. See
 * test/pipeline.test.ts (describe 'close').
 */
import { workerData } from 'node:worker_threads';
import type { Task } from './worker.js';

type WorkerModule = typeof import('./worker.js');

const loading: Promise<WorkerModule> = import('./worker.js');
// Loaded (addon included): count this worker ready in the pool's shared counter (`readyCount` in
// pool.ts). A load error surfaces on the first task instead (the rejection below).
loading.then(
  () => {
    const ready = (workerData as { dtesnReady?: unknown } | null)?.dtesnReady;
    if (ready instanceof Int32Array) Atomics.add(ready, 0, 1);
  },
  () => {},
);

async function run(task: Task): ReturnType<WorkerModule['default']> {
  const worker = await loading;
  return worker.default(task);
}

export = run;
