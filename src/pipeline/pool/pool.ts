/**
 * The worker pool: piscina with persistent workers that load the native addon once, tasks whose
 * data lives in SharedArrayBuffers, and fresh workers for crash isolation. A worker returns every
 * task's outcome as a value (see worker.ts), so a rejected piscina promise always means the worker
 * itself failed (exit, uncaught error, resourceLimits) or the task was aborted; a death is a
 * WorkerCrashError, and the caller decides what to run again (isolate.ts) with `runFresh`: one
 * task on a worker of its own, started for it and stopped after it, so that nothing an earlier
 * task left in a worker (state, a filled heap) decides its fate.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import { WorkerCrashError, abortReason, isDataCloneError } from '../../common/errors.js';
import type { ItemResult, Task, VectorizeResult } from './worker.js';
import type { PoolStats } from '../../observe/metrics.js';

/** What a task yields: its value, or the error it threw inside the worker. */
export type TaskOutcome<T> = { ok: true; value: T } | { ok: false; error: unknown };


// The compiled worker entry (worker-entry.cts: a CommonJS file that imports worker.js) sits in
// dist/ beside this module's compiled form; from src/ (tests) the same relative path reaches it,
// since both folders are one level below the package root.
export const WORKER_ENTRY = fileURLToPath(new URL('../../../dist/pipeline/pool/worker-entry.cjs', import.meta.url));
/** The file a fresh worker runs (fresh-entry.cts): one task through the pool's worker entry. */
const FRESH_ENTRY = fileURLToPath(new URL('../../../dist/pipeline/pool/fresh-entry.cjs', import.meta.url));

export class WorkerPool {
  readonly size: number;
  private piscina: Piscina | null = null;
  private readonly entry: string;
  private readonly resourceLimits: { maxOldGenerationSizeMb?: number } | undefined;
  /** When the workers were started (performance.now()), or null before. */
  startedAt: number | null = null;
  private busy = 0;
  private retried = 0;
  private crashed = 0;
  /** Fresh workers running now, and the tasks waiting for one (at most `size` run at once). */
  private fresh = 0;
  private readonly freshWaiting: Array<() => void> = [];
  /**
   * [0]: workers that have loaded worker.js and the native addon; each adds 1 (worker-entry.cts,
   * through `workerData`). Shared memory, so it is read without an event-loop turn: a caller that
   * keeps the thread busy with inline batches still sees the pool become ready.
   */
  private readonly readyCount = new Int32Array(new SharedArrayBuffer(4));

  /**
   * The workers start on first need (`start()`, or the first `run()`), not here: starting one
   * (an isolate, Node's bootstrap, the addon) takes CPU time that, on a machine with few cores,
   * the calling thread would lose while it serves its first requests; a pipeline that never
   * needs the pool (small requests, files read inline) never pays it. `entry`: the worker file
   * (tests give one that wraps WORKER_ENTRY to inject faults).
   */
  constructor(size: number, resourceLimits?: { maxOldGenerationSizeMb?: number }, entry = WORKER_ENTRY) {
    this.size = size;
    this.entry = entry;
    this.resourceLimits = resourceLimits;
  }

  /** Starts the workers (once); they stay until close(). */
  start(): Piscina {
    if (this.piscina === null) {
      this.startedAt = performance.now();
      // Loaded here, not at import: piscina is most of what importing the package would cost.
      const { Piscina: PiscinaClass } = createRequire(import.meta.url)('piscina') as typeof import('piscina');
      this.piscina = new PiscinaClass({
        filename: this.entry,
        minThreads: this.size,
        maxThreads: this.size,
        idleTimeout: Number.POSITIVE_INFINITY,
        // Workers wait on their message port between tasks, so an idle pool does not hold the
        // process open.
        atomics: 'disabled',
        workerData: { dtesnReady: this.readyCount },
        ...(this.resourceLimits ? { resourceLimits: this.resourceLimits } : {}),
      });
      // A worker that dies with no task (e.g. between tasks) is replaced by piscina; nothing to fail.
      this.piscina.on('error', () => {});
    }
    return this.piscina;
  }

  /**
   * Whether every worker has loaded the addon. Before that a task waits for a worker's start-up
   * (tens of milliseconds), so the pipeline keeps batches inline (and the cost model does not
   * learn that wait as the pool's dispatch cost).
   */
  get warm(): boolean {
    return Atomics.load(this.readyCount, 0) >= this.size;
  }

  /** Runs a task on a pool worker; the worker's death rejects with WorkerCrashError. */
  async run<T extends number | VectorizeResult | ItemResult[]>(task: Task, signal?: AbortSignal): Promise<TaskOutcome<T>> {
    if (signal?.aborted) throw abortReason(signal);
    const piscina = this.start();
    this.busy++;
    try {
      return (await piscina.run(task, signal ? { signal } : {})) as TaskOutcome<T>;
    } catch (cause) {
      if (signal?.aborted) throw abortReason(signal);
      // The task could not be posted (an argument structured clone refuses, or a getter of one
      // throws while it is cloned): no worker died. Cloning it again costs only on this path.
      if (isDataCloneError(cause) || !clones(task)) throw cause;
      throw this.death(cause);
    } finally {
      this.busy--;
    }
  }

  /**
   * Runs a task on a worker started for it alone (the pool's entry, its resource limits), stopped
   * when the task has answered; at most `size` such workers at once. Its death rejects with
   * WorkerCrashError, as in `run`.
   */
  async runFresh<T extends number | VectorizeResult | ItemResult[]>(task: Task, signal?: AbortSignal): Promise<TaskOutcome<T>> {
    while (this.fresh >= this.size) await new Promise<void>((resolve) => this.freshWaiting.push(resolve));
    this.fresh++;
    this.retried++;
    try {
      if (signal?.aborted) throw abortReason(signal);
      return await new Promise<TaskOutcome<T>>((resolve, reject) => {
        const worker = new Worker(FRESH_ENTRY, {
          workerData: { entry: this.entry, task },
          ...(this.resourceLimits ? { resourceLimits: this.resourceLimits } : {}),
        });
        let error: unknown = null;
        let answered = false;
        const onAbort = () => {
          answered = true;
          void worker.terminate();
          reject(abortReason(signal!));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        worker.once('message', (outcome: TaskOutcome<T>) => {
          answered = true;
          signal?.removeEventListener('abort', onAbort);
          // The task module may hold the thread open (a timer, a socket): it has answered, so it stops.
          void worker.terminate();
          resolve(outcome);
        });
        worker.on('error', (e) => {
          error ??= e;
        });
        worker.once('exit', (code) => {
          if (answered) return;
          signal?.removeEventListener('abort', onAbort);
          // piscina's wording, so that `exitCode` is read the same way for both.
          reject(this.death(error ?? new Error(`worker exited with code: ${code}`)));
        });
      });
    } finally {
      this.fresh--;
      this.freshWaiting.shift()?.();
    }
  }

  /** A worker died under a task: counted, and the error that says so. */
  private death(cause: unknown): WorkerCrashError {
    this.crashed++;
    const detail = cause instanceof Error ? cause.message : String(cause);
    const code = /exited with code: (-?\d+)/.exec(detail);
    return new WorkerCrashError(`the worker running this task died (${detail})`, {
      cause,
      ...(code ? { exitCode: Number(code[1]) } : {}),
    });
  }

  stats(): PoolStats {
    const p = this.piscina;
    return {
      threads: p?.threads.length ?? 0,
      ready: Atomics.load(this.readyCount, 0),
      busy: this.busy,
      utilization: p?.utilization ?? 0,
      completed: p?.completed ?? 0,
      retried: this.retried,
      crashed: this.crashed,
    };
  }

  /** Waits for running tasks, then stops the workers. */
  async close(): Promise<void> {
    await this.piscina?.close();
  }
}

/** Whether structured clone (what posting a task does) accepts `v`. */
function clones(v: unknown): boolean {
  try {
    structuredClone(v);
    return true;
  } catch {
    return false;
  }
}
