/**
 * The adaptive micro-batcher: coalesces many small concurrent requests (each one or a few rows)
 * into batches per key, runs at most `maxInFlight` batches at once, and hands each request its own
 * result. The batch size target comes from a `BatchSizeController` (src/adaptive.ts by default).
 *
 * Lifecycle of a request: submit() -> waiting in its key's FIFO -> dispatched in a batch -> settled
 * (exactly once: resolved with its result, or rejected with the batch's error, its abort reason,
 * QueueFullError / PipelineClosedError at submit). Nothing is accepted that is not settled later,
 * provided `run` settles.
 *
 * When a batch closes (per key; keys never share a batch):
 *  - full: the key's waiting rows reach the target (a request is never split; one larger than the
 *    target forms a batch alone; a batch also counts as full when the next request does not fit);
 *  - timeout: its oldest row has waited `batchTimeoutMs`. The timer is armed when that row arrives
 *    (or, for a row that becomes the oldest after an earlier batch left, for what remains of its
 *    `batchTimeoutMs` since arrival), never when a batch is formed or a previous one finished
 *    (ray-project/ray#36510 is that bug). `batchTimeoutMs: 0` closes at the next macrotask, so
 *    requests submitted in the same tick still share a batch;
 *  - flush: close() was called.
 *
 * A batch is cut from the queue only when a slot is free. A closed batch that waits for a slot
 * therefore keeps absorbing rows up to the target: under load batches grow without waiting for a
 * timer (Triton's dynamic batcher had to learn this: triton-inference-server/server#3624, #3789).
 * Rows beyond the target start the next batch, whose own oldest row starts its own timer. When
 * several keys are ready for one free slot, the one whose oldest row arrived first goes.
 *
 * A slot stays taken until `run` settles, even when every request of the batch has aborted (the
 * batch's signal aborts; the work may still be running and must not be doubled up).
 */
import {
  type BatchSizeController,
  type CloseReason,
  AdaptiveBatchSize,
  LatencyWindow,
} from './adaptive.js';
import { AbortError, PipelineClosedError, abortReason, queueFull } from './errors.js';

export type { CloseReason } from './adaptive.js';

/** What `onBatch` reports about each finished batch (times in ms). */
export interface BatchInfo {
  key: string;
  rows: number;
  requests: number;
  reason: CloseReason;
  /** Queue wait of the batch's oldest row: its arrival to dispatch. */
  waitMs: number;
  /** Dispatch to `run` settling. */
  runMs: number;
  /** The target the batch was formed under. */
  target: number;
  /** False when `run` rejected (or returned a wrong number of results). */
  ok: boolean;
}

export interface BatcherOptions<Req, Res> {
  /** Upper bound of the adaptive target, in rows. */
  maxBatchSize: number;
  /** Longest the oldest waiting row of a key waits for batch-mates; the timer starts at its arrival. */
  batchTimeoutMs: number;
  /** The p99 end-to-end latency (queue wait + run) the default controller holds. */
  targetLatencyMs: number;
  /** Rows waiting (not yet dispatched) beyond which submit() rejects at once with QueueFullError. */
  maxQueue: number;
  /** Batches running at once (the pool size). */
  maxInFlight: number;
  /** Rows a request contributes (an integer >= 0). */
  rowsOf(req: Req): number;
  /**
   * Runs one batch: resolves with one result per request, in order, or rejects (then every
   * request of the batch still waiting for it rejects with that error). `signal` aborts when
   * every request of the batch has aborted.
   */
  run(key: string, reqs: Req[], signal: AbortSignal): Promise<Res[]>;
  /** Monotonic clock in ms [performance.now]. */
  now?: () => number;
  /** Timer functions [setTimeout / clearTimeout]. */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  /**
   * The batch-size controller [new AdaptiveBatchSize({ maxBatchSize, targetLatencyMs,
   * initialBatchSize, elu })]. Pass `{ target: n, observe() {} }` for a fixed size.
   */
  controller?: BatchSizeController;
  /** Starting target for the default controller [1]. */
  initialBatchSize?: number;
  /** Event-loop utilization for the default controller (see `eventLoopUtilizationSampler`). */
  elu?: () => number;
  /** Metrics hook, called once per batch after `run` settles. Errors it throws become warnings. */
  onBatch?(info: BatchInfo): void;
}

export interface BatcherStats {
  /** Batches finished (ok or failed), and the rows / requests they carried. */
  batches: number;
  rows: number;
  requests: number;
  fullBatches: number;
  timeoutBatches: number;
  flushBatches: number;
  /** Batches whose `run` rejected. */
  failedBatches: number;
  /** Requests accepted by submit(); always resolved + rejected + pending. */
  accepted: number;
  resolved: number;
  rejected: number;
  /** Requests refused with QueueFullError (not accepted). */
  shed: number;
  target: number;
  queuedRows: number;
  queuedRequests: number;
  inFlight: number;
  /** End-to-end latency of the last 1024 resolved requests (NaN before any). */
  p50LatencyMs: number;
  p99LatencyMs: number;
}

/** waiting: in its key's queue; running: in a dispatched batch; settled: resolved or rejected. */
type State = 'waiting' | 'running' | 'settled';

interface Entry<Req, Res> {
  readonly req: Req;
  readonly rows: number;
  readonly arrival: number;
  state: State;
  readonly resolve: (value: Res) => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  batch: Batch<Req, Res> | undefined;
}

interface KeyQueue<Req, Res> {
  readonly key: string;
  readonly entries: Entry<Req, Res>[];
  rows: number;
  timer: unknown;
  /** The entry the armed timer is for. */
  timerFor: Entry<Req, Res> | undefined;
  /** The entry whose timer has fired: while it is the head, the key is due. */
  due: Entry<Req, Res> | undefined;
}

interface Batch<Req, Res> {
  readonly key: string;
  readonly entries: Entry<Req, Res>[];
  readonly rows: number;
  readonly reason: CloseReason;
  /** The target it was formed under. */
  readonly target: number;
  readonly start: number;
  /** Queue wait of its oldest row. */
  readonly waitMs: number;
  /** Rows still waiting right after it was cut. */
  readonly queuedRows: number;
  /** Closed full because of the target (see #dispatch). */
  readonly binding: boolean;
  readonly controller: AbortController;
  /** Requests not yet aborted. */
  live: number;
}

const STATS_WINDOW = 1024;

/** Runs a caller hook; what it throws becomes a process warning, never a lost settle or a crash. */
function guard(what: string, hook: () => void): void {
  try {
    hook();
  } catch (err) {
    process.emitWarning(`${what} threw: ${err instanceof Error ? err.message : String(err)}`, {
      code: 'DTESN_BATCH_HOOK_THREW',
      type: 'DtesnWarning',
    });
  }
}

function checkOption(name: string, value: number, min: number, integer: boolean): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || (integer && !Number.isInteger(value) && value !== Infinity)) {
    throw new RangeError(`${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${String(value)}`);
  }
}

/** Coalesces concurrent requests into batches per key; see the module comment. */
export class MicroBatcher<Req, Res> {
  readonly #opts: BatcherOptions<Req, Res>;
  readonly #controller: BatchSizeController;
  readonly #now: () => number;
  readonly #setTimer: (fn: () => void, ms: number) => unknown;
  readonly #clearTimer: (handle: unknown) => void;
  readonly #queues = new Map<string, KeyQueue<Req, Res>>();
  readonly #latency = new LatencyWindow(STATS_WINDOW);
  #queuedRows = 0;
  #queuedRequests = 0;
  #inFlight = 0;
  #pumping = false;
  #pumpAgain = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  readonly #stats = {
    batches: 0,
    rows: 0,
    requests: 0,
    fullBatches: 0,
    timeoutBatches: 0,
    flushBatches: 0,
    failedBatches: 0,
    accepted: 0,
    resolved: 0,
    rejected: 0,
    shed: 0,
  };

  constructor(options: BatcherOptions<Req, Res>) {
    checkOption('maxBatchSize', options.maxBatchSize, 1, true);
    if (options.maxBatchSize === Infinity) throw new RangeError('maxBatchSize must be finite');
    checkOption('batchTimeoutMs', options.batchTimeoutMs, 0, false);
    if (!Number.isFinite(options.batchTimeoutMs)) throw new RangeError('batchTimeoutMs must be finite');
    if (options.batchTimeoutMs > 2 ** 31 - 1) throw new RangeError(`batchTimeoutMs must be <= 2147483647 (setTimeout's limit), got ${options.batchTimeoutMs}`);
    if (typeof options.targetLatencyMs !== 'number' || !(options.targetLatencyMs > 0) || !Number.isFinite(options.targetLatencyMs)) {
      throw new RangeError(`targetLatencyMs must be a finite number > 0, got ${String(options.targetLatencyMs)}`);
    }
    checkOption('maxQueue', options.maxQueue, 0, true);
    checkOption('maxInFlight', options.maxInFlight, 1, true);
    if (typeof options.rowsOf !== 'function') throw new TypeError('rowsOf must be a function');
    if (typeof options.run !== 'function') throw new TypeError('run must be a function');
    this.#opts = options;
    this.#controller =
      options.controller ??
      new AdaptiveBatchSize({
        maxBatchSize: options.maxBatchSize,
        targetLatencyMs: options.targetLatencyMs,
        initialBatchSize: options.initialBatchSize,
        elu: options.elu,
      });
    this.#now = options.now ?? (() => performance.now());
    this.#setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.#clearTimer = options.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
  }

  /** Rows waiting for dispatch, across keys. */
  get queuedRows(): number {
    return this.#queuedRows;
  }

  /** Batches running now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The controller's target, clamped to [1, maxBatchSize]. */
  get target(): number {
    const t = Math.floor(this.#controller.target);
    return t >= 1 ? Math.min(t, this.#opts.maxBatchSize) : 1;
  }

  stats(): BatcherStats {
    return {
      ...this.#stats,
      target: this.target,
      queuedRows: this.#queuedRows,
      queuedRequests: this.#queuedRequests,
      inFlight: this.#inFlight,
      p50LatencyMs: this.#latency.percentile(0.5),
      p99LatencyMs: this.#latency.percentile(0.99),
    };
  }

  /**
   * Queues `req` under `key` (requests with different keys never share a batch) and resolves with
   * its result. Rejects at once with PipelineClosedError after close(), with QueueFullError when
   * its rows would push the waiting rows past `maxQueue`, with `signal.reason` when the signal is
   * already aborted, or with what `rowsOf` throws; later with the batch's error or the abort reason.
   */
  submit(key: string, req: Req, signal?: AbortSignal): Promise<Res> {
    if (this.#closing) return Promise.reject(new PipelineClosedError());
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    let rows: number;
    try {
      rows = this.#opts.rowsOf(req);
    } catch (err) {
      return Promise.reject(err);
    }
    if (typeof rows !== 'number' || !Number.isInteger(rows) || rows < 0) {
      return Promise.reject(new RangeError(`rowsOf must return an integer >= 0, got ${String(rows)}`));
    }
    if (this.#queuedRows + rows > this.#opts.maxQueue) {
      this.#stats.shed++;
      return Promise.reject(queueFull(this.#opts.maxQueue, this.#queuedRows, rows));
    }

    let resolve!: (value: Res) => void;
    let reject!: (reason: unknown) => void;
    const promise = new Promise<Res>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const entry: Entry<Req, Res> = {
      req,
      rows,
      arrival: this.#now(),
      state: 'waiting',
      resolve,
      reject,
      signal,
      onAbort: undefined,
      batch: undefined,
    };
    let q = this.#queues.get(key);
    if (q === undefined) {
      q = { key, entries: [], rows: 0, timer: undefined, timerFor: undefined, due: undefined };
      this.#queues.set(key, q);
    }
    q.entries.push(entry);
    q.rows += rows;
    this.#queuedRows += rows;
    this.#queuedRequests++;
    this.#stats.accepted++;
    if (signal !== undefined) {
      const keyQueue = q;
      entry.onAbort = () => this.#abort(keyQueue, entry);
      signal.addEventListener('abort', entry.onAbort, { once: true });
    }
    this.#armTimer(q);
    this.#pump();
    return promise;
  }

  /**
   * Refuses new work (PipelineClosedError), dispatches everything waiting without waiting for
   * timers (as slots free), and resolves when every accepted request has settled and no batch is
   * running. Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#closing = true;
    this.#closed = new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
    for (const q of this.#queues.values()) this.#disarmTimer(q);
    this.#pump();
    this.#checkDrained();
    return this.#closed;
  }

  #armTimer(q: KeyQueue<Req, Res>): void {
    const head = q.entries[0];
    if (head === undefined || q.timerFor === head || this.#closing) return;
    this.#disarmTimer(q);
    const delay = Math.max(0, head.arrival + this.#opts.batchTimeoutMs - this.#now());
    q.timerFor = head;
    q.timer = this.#setTimer(() => {
      q.timer = undefined;
      q.timerFor = undefined;
      q.due = head;
      this.#pump();
    }, delay);
  }

  #disarmTimer(q: KeyQueue<Req, Res>): void {
    if (q.timer !== undefined) this.#clearTimer(q.timer);
    q.timer = undefined;
    q.timerFor = undefined;
  }

  #ready(q: KeyQueue<Req, Res>, target: number): boolean {
    return q.rows >= target || this.#closing || (q.due !== undefined && q.due === q.entries[0]);
  }

  /** Dispatches ready batches while slots are free; reentrancy-safe (run/onBatch may submit). */
  #pump(): void {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#pumpAgain = false;
        while (this.#inFlight < this.#opts.maxInFlight) {
          const target = this.target;
          let pick: KeyQueue<Req, Res> | undefined;
          for (const q of this.#queues.values()) {
            if (this.#ready(q, target) && (pick === undefined || q.entries[0].arrival < pick.entries[0].arrival)) {
              pick = q;
            }
          }
          if (pick === undefined) break;
          this.#dispatch(pick, target);
        }
      } while (this.#pumpAgain);
    } finally {
      this.#pumping = false;
    }
  }

  #dispatch(q: KeyQueue<Req, Res>, target: number): void {
    const entries = q.entries;
    let rows = entries[0].rows;
    let count = 1;
    while (count < entries.length && rows + entries[count].rows <= target) rows += entries[count++].rows;
    const due = q.due !== undefined && q.due === entries[0];
    const reason: CloseReason = rows >= target || count < entries.length ? 'full' : due ? 'timeout' : 'flush';
    // Whether the target limited the batch: rows it could have taken were left waiting. A batch
    // that takes every waiting row and just meets the target says nothing about demand beyond it:
    // one client awaiting each call fills a target of 1, eight clients fill a target of 8, and
    // growing on that would only make every later batch wait out batchTimeoutMs for rows that
    // are not coming.
    const binding = count < entries.length; // (then the reason is 'full')
    const taken = entries.splice(0, count);
    q.rows -= rows;
    this.#queuedRows -= rows;
    this.#queuedRequests -= count;
    if (entries.length === 0) {
      this.#disarmTimer(q);
      this.#queues.delete(q.key);
    } else {
      this.#armTimer(q);
    }

    const start = this.#now();
    const batch: Batch<Req, Res> = {
      key: q.key,
      entries: taken,
      rows,
      reason,
      target,
      start,
      waitMs: start - taken[0].arrival,
      queuedRows: this.#queuedRows,
      binding,
      controller: new AbortController(),
      live: count,
    };
    for (const e of taken) {
      e.state = 'running';
      e.batch = batch;
    }
    this.#inFlight++;

    let pending: Promise<Res[]>;
    try {
      pending = Promise.resolve(
        this.#opts.run(
          q.key,
          taken.map((e) => e.req),
          batch.controller.signal,
        ),
      );
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (results) => {
        if (Array.isArray(results) && results.length === count) return this.#finish(batch, results, undefined);
        const got = Array.isArray(results) ? `${results.length} results` : typeof results;
        const error = new TypeError(`run() must resolve to one result per request: got ${got} for ${count} requests`);
        this.#finish(batch, undefined, error);
      },
      (err: unknown) => this.#finish(batch, undefined, err),
    );
  }

  /** Settles what is left of a batch with its results (or error), records it, frees its slot. */
  #finish(batch: Batch<Req, Res>, results: Res[] | undefined, error: unknown): void {
    const end = this.#now();
    const ok = results !== undefined;
    this.#inFlight--;
    const latencies: number[] = [];
    batch.entries.forEach((e, i) => {
      if (e.state !== 'running') return;
      this.#settle(e);
      if (ok) {
        const ms = end - e.arrival;
        latencies.push(ms);
        this.#latency.push(ms);
        this.#stats.resolved++;
        e.resolve(results[i]);
      } else {
        this.#stats.rejected++;
        e.reject(error);
      }
    });

    const s = this.#stats;
    s.batches++;
    s.rows += batch.rows;
    s.requests += batch.entries.length;
    if (batch.reason === 'full') s.fullBatches++;
    else if (batch.reason === 'timeout') s.timeoutBatches++;
    else s.flushBatches++;
    if (!ok) s.failedBatches++;

    const { key, rows, reason, waitMs, queuedRows, target, binding } = batch;
    const runMs = end - batch.start;
    // Failed batches are not observed: a fast failure would read as latency headroom.
    if (ok) {
      const observation = { rows, reason, binding, runMs, waitMs, latenciesMs: latencies, queuedRows, target };
      guard('controller.observe', () => this.#controller.observe(observation));
    }
    const onBatch = this.#opts.onBatch;
    if (onBatch !== undefined) {
      guard('onBatch', () => onBatch({ key, rows, requests: batch.entries.length, reason, waitMs, runMs, target, ok }));
    }
    this.#pump();
    this.#checkDrained();
  }

  /** Marks an entry settled and detaches its abort listener (the caller resolves/rejects it). */
  #settle(e: Entry<Req, Res>): void {
    e.state = 'settled';
    if (e.onAbort !== undefined) {
      e.signal?.removeEventListener('abort', e.onAbort);
      e.onAbort = undefined;
    }
  }

  #abort(q: KeyQueue<Req, Res>, e: Entry<Req, Res>): void {
    const signal = e.signal as AbortSignal;
    if (e.state === 'waiting') {
      const i = q.entries.indexOf(e);
      if (i >= 0) q.entries.splice(i, 1);
      q.rows -= e.rows;
      this.#queuedRows -= e.rows;
      this.#queuedRequests--;
      if (q.entries.length === 0) {
        this.#disarmTimer(q);
        this.#queues.delete(q.key);
      } else if (i === 0) {
        this.#armTimer(q);
      }
      this.#settle(e);
      this.#stats.rejected++;
      e.reject(abortReason(signal));
      this.#checkDrained();
    } else if (e.state === 'running') {
      const batch = e.batch as Batch<Req, Res>;
      this.#settle(e);
      this.#stats.rejected++;
      e.reject(abortReason(signal));
      if (--batch.live === 0) batch.controller.abort(new AbortError('every request of the batch was aborted'));
    }
  }

  #checkDrained(): void {
    if (this.#drained !== undefined && this.#queuedRequests === 0 && this.#inFlight === 0) {
      const drained = this.#drained;
      this.#drained = undefined;
      drained();
    }
  }
}
