/**
 * Named errors of the batching pipeline. Callers match on `err.code` (stable across releases) or
 * `instanceof`; messages are for people and may change. Modelled on piscina's `errors.ts`: one
 * class per condition a caller handles differently.
 *
 * | class                | code                     | when                                                     |
 * |----------------------|--------------------------|----------------------------------------------------------|
 * | QueueFullError       | ERR_DTESN_QUEUE_FULL     | submit() would push waiting rows past `maxQueue` (shed)   |
 * | WorkerCrashError     | ERR_DTESN_WORKER_CRASH   | an item or row killed its worker, also alone (isolate.ts) |
 * | PipelineClosedError  | ERR_DTESN_CLOSED         | submit() after close()                                   |
 * | AbortError           | ABORT_ERR                | a request's signal aborted without a reason of its own   |
 *
 * `AbortError` uses Node's own code (`ABORT_ERR`, as on the errors of `fs`, `timers/promises`,
 * `events.once`) so one `err.name === 'AbortError'` / `err.code === 'ABORT_ERR'` check covers both
 * ours and the platform's.
 */

/** Rejection for a request shed at submit time because the waiting queue is full. */
export class QueueFullError extends Error {
  readonly code = 'ERR_DTESN_QUEUE_FULL' as const;
  /** The `maxQueue` limit, in rows. */
  readonly limit: number;
  /** Rows waiting (not yet dispatched) when the request came. */
  readonly depth: number;
  /** Rows the refused request would have added. */
  readonly rows: number;

  constructor(limit: number, depth: number, rows: number) {
    super(
      `queue full: ${depth} rows waiting + ${rows} requested would exceed maxQueue ${limit}; ` +
        'retry later or raise maxQueue',
    );
    this.limit = limit;
    this.depth = depth;
    this.rows = rows;
  }

  override get name(): string {
    return 'QueueFullError';
  }
}

/**
 * A QueueFullError without a stack trace. Shedding is the overload path: it must cost far less
 * than accepting (capturing a stack took ~10 us of the ~20 us a shed request cost here), and the
 * stack of a refusal would only point into the pipeline; the message and fields say what happened.
 */
export function queueFull(limit: number, depth: number, rows: number): QueueFullError {
  const saved = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new QueueFullError(limit, depth, rows);
  } finally {
    Error.stackTraceLimit = saved;
  }
}

/**
 * The outcome of an item (processBatch) or the rejection of a batch whose row killed its worker
 * (exit, uncaught error, OOM kill), also when run alone on a fresh worker; or of the items still
 * unresolved when a call's re-runs are spent (src/pipeline/isolate.ts).
 */
export class WorkerCrashError extends Error {
  readonly code = 'ERR_DTESN_WORKER_CRASH' as const;
  /** The worker's exit code, when it exited. */
  readonly exitCode: number | undefined;

  constructor(message = 'the worker running this batch crashed', options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = options?.exitCode;
  }

  override get name(): string {
    return 'WorkerCrashError';
  }
}

/** Rejection for work submitted after `close()`. */
export class PipelineClosedError extends Error {
  readonly code = 'ERR_DTESN_CLOSED' as const;

  constructor(message = 'the pipeline is closed and accepts no new work') {
    super(message);
  }

  override get name(): string {
    return 'PipelineClosedError';
  }
}

/**
 * The reason used when an AbortSignal aborted without one (`signal.reason === undefined`, e.g. a
 * hand-rolled signal-like object); a signal's own reason is always passed through unchanged.
 */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR' as const;

  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
  }

  override get name(): string {
    return 'AbortError';
  }
}

/** What a request rejects with when `signal` aborts: its reason, or an AbortError without one. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason === undefined ? new AbortError() : signal.reason;
}

/** The error of posting a value that structured clone refuses (a DOMException named DataCloneError). */
export function isDataCloneError(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'DataCloneError';
}
