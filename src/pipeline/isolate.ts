/**
 * Crash isolation: when a worker dies under a task that holds many items (a piece of a
 * `processBatch` call, a shard of a pool-vectorized batch), the items are run again on fresh
 * workers (WorkerPool.runFresh) in smaller pieces, in their order, down to one, so that only the
 * item that kills its worker fails, with WorkerCrashError, and every other item gets its result.
 *
 * Where to cut: a `processBatch` worker records which item it is running (ProcessTask.progress),
 * so a piece whose worker died at item k is run again as [before k], [k] and [after k]: one item
 * that kills its worker costs 3 re-runs, whatever the piece's size. Without that record (the
 * native kernel runs a whole shard in one call) a piece is halved. An item that dies alone on a
 * fresh worker has failed; a piece that dies before its first item started (its task module
 * killed the worker while loading) is run once more, then all its items fail: that is not any
 * item's fault.
 *
 * Every re-run spends one of the call's retries (`RetryBudget`, MAX_RETRIES by default): a task
 * that kills its worker on every item stops after that many re-runs instead of starting a worker
 * per item, and the items still unresolved then fail with WorkerCrashError saying so.
 */
import { WorkerCrashError } from '../common/errors.js';
import type { TaskOutcome, WorkerPool } from './pool/pool.js';
import type { ItemResult, Task, VectorizeResult } from './pool/worker.js';

/** Re-runs on fresh workers one call may start after worker deaths, by default. */
export const MAX_RETRIES = 64;

/** The re-runs left to one call, shared by all its pieces. */
export class RetryBudget {
  private left: number;

  constructor(readonly limit: number) {
    this.left = limit;
  }

  take(n: number): boolean {
    if (this.left < n) return false;
    this.left -= n;
    return true;
  }
}

/** Items [from, to) of a call and what became of them: their task's outcome, or a crash. */
export type Segment<V> = { from: number; to: number; outcome: TaskOutcome<V>; crash?: undefined } | { from: number; to: number; crash: WorkerCrashError };

type Value = number | VectorizeResult | ItemResult[];

export interface RangeTasks {
  pool: WorkerPool;
  /** The task over items [from, to); `progress` is given when the task reports it (`process` tasks). */
  task(from: number, to: number, progress: Int32Array | undefined): Task;
  /** Whether tasks record the item they are running (ProcessTask.progress). */
  progress: boolean;
  budget: RetryBudget;
  signal: AbortSignal | undefined;
  /** Items [from, to) as an error message names them: 'items[3]', 'rows 10..19'. */
  name(from: number, to: number): string;
}

/**
 * Runs items [from, to) as one task on a pool worker; if the worker dies, isolates the item that
 * kills it. The segments cover [from, to) in order. Other errors (an abort, a task that cannot be
 * posted) reject.
 */
export async function runRange<V extends Value>(r: RangeTasks, from: number, to: number): Promise<Array<Segment<V>>> {
  const progress = r.progress ? newProgress() : undefined;
  try {
    return [{ from, to, outcome: await r.pool.run<V>(r.task(from, to, progress), r.signal) }];
  } catch (e) {
    if (!(e instanceof WorkerCrashError)) throw e;
    return isolate<V>(r, from, to, e, progress ? Atomics.load(progress, 0) : null, false);
  }
}

/** Items [from, to) killed their worker (`done`: the item running then, if recorded); `fresh`: a worker of their own. */
async function isolate<V extends Value>(
  r: RangeTasks,
  from: number,
  to: number,
  crash: WorkerCrashError,
  done: number | null,
  fresh: boolean,
): Promise<Array<Segment<V>>> {
  const n = to - from;
  const before = done === -1;
  let pieces: Array<[number, number]>;
  if (before || n === 1) {
    if (fresh) {
      const what = before ? `the worker died before the first of ${r.name(from, to)} started (loading the task module?)` : `${r.name(from, to)} killed its worker`;
      return [{ from, to, crash: crashError(`${what}, also on a fresh worker of its own`, crash) }];
    }
    pieces = [[from, to]];
  } else if (done !== null && done < n) {
    const k = from + done;
    pieces = ([[from, k], [k, k + 1], [k + 1, to]] as Array<[number, number]>).filter(([a, b]) => a < b);
  } else {
    const mid = from + (n >> 1);
    pieces = [[from, mid], [mid, to]];
  }
  if (!r.budget.take(pieces.length)) {
    const msg = `the worker running ${r.name(from, to)} died; not run again: the call's ${r.budget.limit} re-runs after worker deaths are spent`;
    return [{ from, to, crash: crashError(msg, crash) }];
  }
  const parts = await Promise.all(
    pieces.map(async ([a, b]): Promise<Array<Segment<V>>> => {
      const progress = r.progress ? newProgress() : undefined;
      try {
        return [{ from: a, to: b, outcome: await r.pool.runFresh<V>(r.task(a, b, progress), r.signal) }];
      } catch (e) {
        if (!(e instanceof WorkerCrashError)) throw e;
        return isolate<V>(r, a, b, e, progress ? Atomics.load(progress, 0) : null, true);
      }
    }),
  );
  return parts.flat();
}

function newProgress(): Int32Array {
  const p = new Int32Array(new SharedArrayBuffer(4));
  p[0] = -1;
  return p;
}

/** The error of a final crash: what happened, then the worker's own reason (and exit code). */
function crashError(what: string, last: WorkerCrashError): WorkerCrashError {
  const cause: unknown = last.cause;
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new WorkerCrashError(`${what} (${detail})`, { cause, ...(last.exitCode === undefined ? {} : { exitCode: last.exitCode }) });
}
