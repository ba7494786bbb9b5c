/**
 * The worker pool: piscina with persistent workers that load the native addon once, tasks whose
 * data lives in SharedArrayBuffers, and crash handling. A worker returns every task's outcome as a
 * value (see worker.ts), so a rejected piscina promise always means the worker itself failed
 * (exit, uncaught error, resourceLimits) or the task was aborted; such a task is retried once on a
 * fresh worker, and a second failure becomes a WorkerCrashError.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Piscina } from 'piscina';
import { WorkerCrashError, abortReason, isDataCloneError } from './errors.js';
import type { ItemResult, Task, VectorizeResult } from './worker.js';

/** What a task yields: its value, or the error it threw inside the worker. */
export type TaskOutcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

export interface PoolStats {
  threads: number;
  /** Workers that have loaded the worker module and the native addon (replacements count too). */
  ready: number;
  /** Tasks running now. */
  busy: number;
  /** piscina's own figure: share of the pool's capacity used since it started (0..1). */
  utilization: number;
  completed: number;
  /** Tasks retried after a worker died. */
  retried: number;
  /** Tasks whose worker died twice. */
  crashed: number;
}

// The compiled worker entry (worker-entry.cts: a CommonJS file that imports worker.js) sits in
// dist/ beside this module's compiled form; from src/ (tests) the same relative path reaches it,
// since both folders are one level below the package root.
export const WORKER_ENTRY = fileURLToPath(new URL('../dist/worker-entry.cjs', import.meta.url));

export class WorkerPool {
  readonly size: number;
  private piscina: Piscina | null = null;
  private readonly resourceLimits: { maxOldGenerationSizeMb?: number } | undefined;
  /** When the workers were started (performance.now()), or null before. */
  startedAt: number | null = null;
  private busy = 0;
  private retried = 0;
  private crashed = 0;
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
   * needs the pool (small requests, files read inline) never pays it.
   */
  constructor(size: number, resourceLimits?: { maxOldGenerationSizeMb?: number }) {
    this.size = size;
    this.resourceLimits = resourceLimits;
  }

  /** Starts the workers (once); they stay until close(). */
  start(): Piscina {
    if (this.piscina === null) {
      this.startedAt = performance.now();
      // Loaded here, not at import: piscina is most of what importing the package would cost.
      const { Piscina: PiscinaClass } = createRequire(import.meta.url)('piscina') as typeof import('piscina');
      this.piscina = new PiscinaClass({
        filename: WORKER_ENTRY,
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

  /** Runs a task; a worker death is retried once, then reported as WorkerCrashError. */
  async run<T extends number | VectorizeResult | ItemResult[]>(task: Task, signal?: AbortSignal): Promise<TaskOutcome<T>> {
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw abortReason(signal);
      const piscina = this.start();
      this.busy++;
      try {
        return (await piscina.run(task, signal ? { signal } : {})) as TaskOutcome<T>;
      } catch (cause) {
        if (signal?.aborted) throw abortReason(signal);
        // The task could not be posted (an argument structured clone refuses): no worker died.
        if (isDataCloneError(cause)) throw cause;
        if (attempt === 0) {
          this.retried++;
          continue;
        }
        this.crashed++;
        const detail = cause instanceof Error ? cause.message : String(cause);
        const code = /exited with code: (-?\d+)/.exec(detail);
        throw new WorkerCrashError(`the worker running this task died twice (${detail})`, {
          cause,
          ...(code ? { exitCode: Number(code[1]) } : {}),
        });
      } finally {
        this.busy--;
      }
    }
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
