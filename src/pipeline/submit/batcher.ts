/**
 * The micro-batcher: coalesces many small concurrent requests (each one or a few rows) into
 * batches per key, runs at most `maxInFlight` batches at once, and hands each request its own
 * result.
 *
 * Work-conserving, as Triton's dynamic batcher and the obvious greedy loop are: whenever a slot is
 * free, the next batch takes every waiting row of its key, up to `maxBatchSize`. The batch is cut
 * at the end of the current event-loop turn (`defer`, setImmediate), so the requests submitted in
 * one turn (one timers phase, one poll phase of socket reads) share it. Nothing is learnt and
 * nothing waits for company: the first batch after creation, or after an idle spell, is as large
 * as what waits, and while every slot is busy rows queue and the next free slot takes them all, so
 * batches grow with the load by themselves (a target that has to grow first is what held batches
 * at one row under load in the previous design, and what Triton's users hit before
 * triton-inference-server/server#3789). A request is never split; one larger than the cap goes
 * alone.
 *
 * With `fixedBatchSize` (static batching, as Ray Serve's `@serve.batch` and TF Serving): a batch
 * closes at that many rows, or when its oldest row has waited `batchTimeoutMs` (timed from that
 * row's arrival, never from when a previous batch finished: ray-project/ray#36510), and then waits
 * for a free slot.
 *
 * Lifecycle of a request: submit() -> waiting in its key's FIFO -> dispatched in a batch -> settled
 * (exactly once: resolved with its result, or rejected with the batch's error, its abort reason,
 * QueueFullError / PipelineClosedError at submit). Nothing is accepted that is not settled later,
 * provided `run` settles. A slot stays taken until `run` settles, even when every request of the
 * batch has aborted (the batch's signal aborts; the work may still be running). When several keys
 * wait for one free slot, the one whose oldest row arrived first goes.
 */
import { AbortError, PipelineClosedError, abortReason, queueFull } from '../../common/errors.js';
import { LatencyWindow } from '../../common/ring.js';
import type { BatcherStats } from '../../observe/metrics.js';

/**
 * Why a batch was cut: `ready`, a slot was free and it took every waiting row; `full`, it reached
 * its cap (rows were left waiting, or fixedBatchSize was reached); `timeout`, with fixedBatchSize
 * its oldest row waited batchTimeoutMs; `flush`, close() was called.
 */
export type CloseReason = 'ready' | 'full' | 'timeout' | 'flush';

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
  /** The rows the batch could have taken: min(cap, rows waiting when it was cut). */
  target: number;
  /** False when `run` rejected (or returned a wrong number of results). */
  ok: boolean;
  /** Rows of the requests that resolved (not aborted, not failed alone). */
  resolvedRows: number;
  /** When `run` settled (the batcher's clock). */
  end: number;
}

/**
 * A result that fails its own request: `run` may resolve some requests' places with one (say a
 * bad row), and those requests reject with `reason` while their batch-mates resolve.
 */
export class RequestFailure {
  constructor(readonly reason: unknown) {}
}

export interface BatcherOptions<Req, Res, Ctx = undefined> {
  /** The most rows a batch takes (a single larger request still goes, alone). */
  maxBatchSize: number;
  /**
   * Static batching: batches of exactly this many rows (1..maxBatchSize), or fewer when their
   * oldest row has waited batchTimeoutMs. Unset: work-conserving (see the module comment).
   */
  fixedBatchSize?: number;
  /** With fixedBatchSize: the longest the oldest waiting row waits for its batch to fill. */
  batchTimeoutMs: number;
  /** Rows waiting (not yet dispatched) beyond which submit() rejects at once with QueueFullError. */
  maxQueue: number;
  /** Batches running at once (the pool size). */
  maxInFlight: number;
  /** Rows a request contributes (an integer >= 0). */
  rowsOf(req: Req): number;
  /**
   * Runs one batch: resolves with one result per request, in order, or rejects (then every
   * request of the batch still waiting for it rejects with that error). `signal` aborts when
   * every request of the batch has aborted. `ctx` is what the first request of the key's queue
   * was submitted with (requests of one key share it). `start`: when the batch was cut (the
   * batcher's clock).
   */
  run(key: string, reqs: Req[], signal: AbortSignal, ctx: Ctx, start: number): Promise<Res[]>;
  /** Monotonic clock in ms [performance.now]. */
  now?: () => number;
  /** Timer functions [setTimeout / clearTimeout] (fixedBatchSize's batchTimeoutMs). */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  /** Runs `fn` at the end of this event-loop turn [setImmediate]: when batches are cut. */
  defer?: (fn: () => void) => void;
  /**
   * Metrics hook, called once per batch after `run` settles, with the end-to-end latency of each
   * of its requests that resolved (`latencies[0..count)`, valid during the call). Errors it
   * throws become warnings.
   */
  onBatch?(info: BatchInfo, latencies: Float64Array, count: number): void;
}

const WAITING = 0;
const RUNNING = 1;
const SETTLED = 2;

class Entry<Req, Res> {
  state = WAITING;
  batch: Batch<Req, Res> | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
  constructor(
    readonly req: Req,
    readonly rows: number,
    readonly arrival: number,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (value: Res) => void,
    readonly reject: (reason: unknown) => void,
  ) {}
}

interface KeyQueue<Req, Res, Ctx> {
  readonly key: string;
  readonly ctx: Ctx;
  /** Waiting entries are entries[head..]; aborted ones stay in place as SETTLED and are skipped. */
  entries: Array<Entry<Req, Res>>;
  head: number;
  /** Rows and requests still waiting. */
  rows: number;
  count: number;
  /** fixedBatchSize only: the timer armed for `timerFor`, and the entry whose timer has fired. */
  timer: unknown;
  timerFor: Entry<Req, Res> | undefined;
  due: Entry<Req, Res> | undefined;
}

interface Batch<Req, Res> {
  readonly key: string;
  readonly entries: Array<Entry<Req, Res>>;
  readonly rows: number;
  readonly reason: CloseReason;
  readonly target: number;
  readonly start: number;
  readonly waitMs: number;
  /** Aborts when every request of the batch has; null when no other signal can say so (below). */
  readonly controller: AbortController | null;
  /** Requests not yet aborted. */
  live: number;
}

/**
 * One executor for every request's promise: it hands the resolving functions out through
 * `captured` (read right after `new Promise` returns), so a request allocates no closure for it.
 */
const captured: { resolve: (value: unknown) => void; reject: (reason: unknown) => void } = { resolve: () => {}, reject: () => {} };
function capture(resolve: (value: never) => void, reject: (reason: unknown) => void): void {
  captured.resolve = resolve as (value: unknown) => void;
  captured.reject = reject;
}

/** The signal of batches that nothing can abort: their requests came without signals. */
const NEVER = new AbortController().signal;

const STATS_WINDOW = 1024;
/** Key queues kept while empty, at most (see submit). */
const MAX_IDLE_KEYS = 64;

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
export class MicroBatcher<Req, Res, Ctx = undefined> {
  readonly #opts: BatcherOptions<Req, Res, Ctx>;
  readonly #cap: number;
  readonly #fixed: boolean;
  readonly #now: () => number;
  readonly #setTimer: (fn: () => void, ms: number) => unknown;
  readonly #clearTimer: (handle: unknown) => void;
  readonly #defer: (fn: () => void) => void;
  readonly #queues = new Map<string, KeyQueue<Req, Res, Ctx>>();
  readonly #latency = new LatencyWindow(STATS_WINDOW);
  #latencies = new Float64Array(64);
  #queuedRows = 0;
  #queuedRequests = 0;
  #inFlight = 0;
  #scheduled = false;
  #pumping = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  readonly #pumpNow = () => {
    this.#scheduled = false;
    this.#pump();
  };
  readonly #stats = {
    batches: 0,
    rows: 0,
    requests: 0,
    readyBatches: 0,
    fullBatches: 0,
    timeoutBatches: 0,
    flushBatches: 0,
    failedBatches: 0,
    accepted: 0,
    resolved: 0,
    rejected: 0,
    aborted: 0,
    shed: 0,
    acceptedRows: 0,
    resolvedRows: 0,
    rejectedRows: 0,
    abortedRows: 0,
    shedRows: 0,
  };

  constructor(options: BatcherOptions<Req, Res, Ctx>) {
    checkOption('maxBatchSize', options.maxBatchSize, 1, true);
    if (options.maxBatchSize === Infinity) throw new RangeError('maxBatchSize must be finite');
    if (options.fixedBatchSize !== undefined) {
      const f = options.fixedBatchSize;
      if (typeof f !== 'number' || !Number.isInteger(f) || f < 1 || f > options.maxBatchSize) {
        throw new RangeError(`fixedBatchSize must be an integer from 1 to maxBatchSize (${options.maxBatchSize}), got ${String(f)}`);
      }
    }
    checkOption('batchTimeoutMs', options.batchTimeoutMs, 0, false);
    if (!Number.isFinite(options.batchTimeoutMs)) throw new RangeError('batchTimeoutMs must be finite');
    if (options.batchTimeoutMs > 2 ** 31 - 1) throw new RangeError(`batchTimeoutMs must be <= 2147483647 (setTimeout's limit), got ${options.batchTimeoutMs}`);
    checkOption('maxQueue', options.maxQueue, 0, true);
    checkOption('maxInFlight', options.maxInFlight, 1, true);
    if (typeof options.rowsOf !== 'function') throw new TypeError('rowsOf must be a function');
    if (typeof options.run !== 'function') throw new TypeError('run must be a function');
    this.#opts = options;
    this.#fixed = options.fixedBatchSize !== undefined;
    this.#cap = options.fixedBatchSize ?? options.maxBatchSize;
    this.#now = options.now ?? (() => performance.now());
    this.#setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.#clearTimer = options.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.#defer = options.defer ?? ((fn) => void setImmediate(fn));
  }

  /** Rows waiting for dispatch, across keys. */
  get queuedRows(): number {
    return this.#queuedRows;
  }

  /** Batches running now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The most rows a free slot takes: fixedBatchSize, or maxBatchSize. */
  get target(): number {
    return this.#cap;
  }

  stats(): BatcherStats {
    return {
      ...this.#stats,
      target: this.#cap,
      queuedRows: this.#queuedRows,
      queuedRequests: this.#queuedRequests,
      inFlight: this.#inFlight,
      p50LatencyMs: this.#latency.percentile(0.5),
      p99LatencyMs: this.#latency.percentile(0.99),
    };
  }

  /**
   * Queues `req` under `key` (requests with different keys never share a batch) and resolves with
   * its result. `ctx` goes with the key's queue to `run` (the first request's, while the queue
   * lives). Rejects at once with PipelineClosedError after close(), with QueueFullError when its
   * rows would push the waiting rows past `maxQueue`, with `signal.reason` when the signal is
   * already aborted, or with what `rowsOf` throws; later with the batch's error or the abort reason.
   */
  submit(key: string, req: Req, signal?: AbortSignal, ctx?: Ctx): Promise<Res> {
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
      this.#stats.shedRows += rows;
      return Promise.reject(queueFull(this.#opts.maxQueue, this.#queuedRows, rows));
    }
    const arrival = this.#now();
    const promise = new Promise<Res>(capture);
    const entry = new Entry<Req, Res>(req, rows, arrival, signal, captured.resolve as (value: Res) => void, captured.reject);
    let q = this.#queues.get(key);
    if (q === undefined) {
      // A key's queue stays when it empties (the next request of the key would make it again);
      // empty ones are dropped once there are many keys.
      if (this.#queues.size >= MAX_IDLE_KEYS) for (const [k, v] of this.#queues) if (v.count === 0) this.#queues.delete(k);
      q = { key, ctx: ctx as Ctx, entries: [], head: 0, rows: 0, count: 0, timer: undefined, timerFor: undefined, due: undefined };
      this.#queues.set(key, q);
    }
    q.entries.push(entry);
    q.rows += rows;
    q.count++;
    this.#queuedRows += rows;
    this.#queuedRequests++;
    this.#stats.accepted++;
    this.#stats.acceptedRows += rows;
    if (signal !== undefined) {
      const keyQueue = q;
      entry.onAbort = () => this.#abort(keyQueue, entry);
      signal.addEventListener('abort', entry.onAbort, { once: true });
    }
    if (this.#fixed) {
      this.#armTimer(q);
      if (q.rows >= this.#cap) this.#schedule();
    } else if (this.#inFlight < this.#opts.maxInFlight) {
      this.#schedule();
    }
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
    this.#schedule();
    this.#checkDrained();
    return this.#closed;
  }

  #schedule(): void {
    if (this.#scheduled || this.#queuedRequests === 0) return;
    this.#scheduled = true;
    this.#defer(this.#pumpNow);
  }

  /** The first waiting entry of `q` (aborted ones before it are dropped), or undefined. */
  #head(q: KeyQueue<Req, Res, Ctx>): Entry<Req, Res> | undefined {
    const entries = q.entries;
    while (q.head < entries.length && entries[q.head]!.state !== WAITING) q.head++;
    return entries[q.head];
  }

  #armTimer(q: KeyQueue<Req, Res, Ctx>): void {
    const head = this.#head(q);
    if (head === undefined || q.timerFor === head || this.#closing) return;
    this.#disarmTimer(q);
    const delay = Math.max(0, head.arrival + this.#opts.batchTimeoutMs - this.#now());
    q.timerFor = head;
    q.timer = this.#setTimer(() => {
      q.timer = undefined;
      q.timerFor = undefined;
      q.due = head;
      this.#pump(); // a timer callback is a turn of its own: nothing to gather by deferring
    }, delay);
  }

  #disarmTimer(q: KeyQueue<Req, Res, Ctx>): void {
    if (q.timer !== undefined) this.#clearTimer(q.timer);
    q.timer = undefined;
    q.timerFor = undefined;
  }

  #ready(q: KeyQueue<Req, Res, Ctx>, head: Entry<Req, Res>): boolean {
    return !this.#fixed || this.#closing || q.rows >= this.#cap || q.due === head;
  }

  /** Cuts ready batches while slots are free; reentrancy-safe (run/onBatch may submit). */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#inFlight < this.#opts.maxInFlight) {
        let pick: KeyQueue<Req, Res, Ctx> | undefined;
        let pickHead: Entry<Req, Res> | undefined;
        for (const q of this.#queues.values()) {
          const head = this.#head(q);
          if (head !== undefined && this.#ready(q, head) && (pickHead === undefined || head.arrival < pickHead.arrival)) {
            pick = q;
            pickHead = head;
          }
        }
        if (pick === undefined) break;
        this.#dispatch(pick, pickHead!);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #dispatch(q: KeyQueue<Req, Res, Ctx>, head: Entry<Req, Res>): void {
    const cap = this.#cap;
    const entries = q.entries;
    const waitingRows = q.rows;
    const taken: Array<Entry<Req, Res>> = [];
    let rows = 0;
    let i = q.head;
    for (; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.state !== WAITING) continue;
      if (taken.length > 0 && rows + e.rows > cap) break;
      taken.push(e);
      rows += e.rows;
    }
    const count = taken.length;
    const left = q.count - count;
    const due = q.due === head;
    const reason: CloseReason = this.#fixed
      ? rows >= cap || left > 0 ? 'full' : due ? 'timeout' : 'flush'
      : left > 0 ? 'full' : this.#closing ? 'flush' : 'ready';
    // Compact now and then: the array keeps what was dispatched until the head passes half of it.
    if (i === entries.length) {
      q.entries = [];
      q.head = 0;
    } else {
      q.head = i;
      if (i > 1024 && i * 2 > entries.length) {
        q.entries = entries.slice(i);
        q.head = 0;
      }
    }
    q.rows -= rows;
    q.count = left;
    this.#queuedRows -= rows;
    this.#queuedRequests -= count;
    if (left === 0) {
      this.#disarmTimer(q); // the queue stays for the key's next request (see submit)
    } else if (this.#fixed) {
      this.#armTimer(q);
    }

    // The batch's signal: a lone request's own signal says exactly when every request of the
    // batch has aborted, and a batch without signals never aborts; only a batch of several
    // requests with signals needs a controller of its own (one per small batch cost more than
    // the rest of a small request's batching).
    let controller: AbortController | null = null;
    let signal = NEVER;
    if (count === 1) signal = head.signal ?? NEVER;
    else {
      for (let k = 0; k < count; k++) {
        if (taken[k]!.signal !== undefined) {
          controller = new AbortController();
          signal = controller.signal;
          break;
        }
      }
    }
    const start = this.#now();
    const batch: Batch<Req, Res> = {
      key: q.key,
      entries: taken,
      rows,
      reason,
      target: Math.min(cap, Math.max(rows, waitingRows)),
      start,
      waitMs: start - head.arrival,
      controller,
      live: count,
    };
    const reqs = new Array<Req>(count);
    for (let k = 0; k < count; k++) {
      const e = taken[k]!;
      e.state = RUNNING;
      e.batch = batch;
      reqs[k] = e.req;
    }
    this.#inFlight++;

    let pending: Promise<Res[]>;
    try {
      pending = Promise.resolve(this.#opts.run(q.key, reqs, signal, q.ctx, start));
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
    const s = this.#stats;
    const entries = batch.entries;
    if (this.#latencies.length < entries.length) this.#latencies = new Float64Array(entries.length * 2);
    const latencies = this.#latencies;
    let n = 0;
    let resolvedRows = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.state !== RUNNING) continue;
      this.#settle(e);
      const r = ok ? results[i]! : undefined;
      if (r instanceof RequestFailure) {
        s.rejected++;
        s.rejectedRows += e.rows;
        e.reject(r.reason);
      } else if (ok) {
        const ms = end - e.arrival;
        latencies[n++] = ms;
        this.#latency.push(ms);
        s.resolved++;
        s.resolvedRows += e.rows;
        resolvedRows += e.rows;
        e.resolve(r as Res);
      } else {
        s.rejected++;
        s.rejectedRows += e.rows;
        e.reject(error);
      }
    }

    s.batches++;
    s.rows += batch.rows;
    s.requests += entries.length;
    if (batch.reason === 'ready') s.readyBatches++;
    else if (batch.reason === 'full') s.fullBatches++;
    else if (batch.reason === 'timeout') s.timeoutBatches++;
    else s.flushBatches++;
    if (!ok) s.failedBatches++;

    const onBatch = this.#opts.onBatch;
    if (onBatch !== undefined) {
      const { key, rows, reason, waitMs, target } = batch;
      const info: BatchInfo = { key, rows, requests: entries.length, reason, waitMs, runMs: end - batch.start, target, ok, resolvedRows, end };
      try {
        onBatch(info, latencies, n);
      } catch (err) {
        guard('onBatch', () => {
          throw err;
        });
      }
    }
    this.#schedule();
    this.#checkDrained();
  }

  /** Marks an entry settled and detaches its abort listener (the caller resolves/rejects it). */
  #settle(e: Entry<Req, Res>): void {
    e.state = SETTLED;
    if (e.onAbort !== undefined) {
      e.signal?.removeEventListener('abort', e.onAbort);
      e.onAbort = undefined;
    }
  }

  #abort(q: KeyQueue<Req, Res, Ctx>, e: Entry<Req, Res>): void {
    const signal = e.signal as AbortSignal;
    if (e.state === WAITING) {
      const wasHead = this.#head(q) === e;
      this.#settle(e); // stays in q.entries, skipped from now on
      q.rows -= e.rows;
      q.count--;
      this.#queuedRows -= e.rows;
      this.#queuedRequests--;
      if (q.count === 0) {
        this.#disarmTimer(q);
        q.entries = [];
        q.head = 0;
      } else if (wasHead && this.#fixed) {
        this.#armTimer(q);
      }
      this.#stats.aborted++;
      this.#stats.abortedRows += e.rows;
      e.reject(abortReason(signal));
      this.#checkDrained();
    } else if (e.state === RUNNING) {
      const batch = e.batch as Batch<Req, Res>;
      this.#settle(e);
      this.#stats.aborted++;
      this.#stats.abortedRows += e.rows;
      e.reject(abortReason(signal));
      if (--batch.live === 0) batch.controller?.abort(new AbortError('every request of the batch was aborted'));
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
