/**
 * The adaptive batch-size controller: picks the target batch size (rows) that the micro-batcher
 * closes batches at, in [1, maxBatchSize], from what finished batches report. Pure and
 * clock-free: `observe()` one record per finished batch, read `target`. src/batcher.ts feeds it.
 *
 * ## What the anchors do, and what their users ran into
 *
 * - Clipper (Crankshaw et al., NSDI '17): AIMD on the batch size against a latency SLO: +constant
 *   while the batch's processing latency is under the SLO, -10% when over. Sound signal (it is the
 *   part batch size controls), but additive growth crawls to large sizes and nothing stops it
 *   growing when batches never fill.
 * - Triton's dynamic batcher: fixed `preferred_batch_size` + `max_queue_delay_microseconds`. Users
 *   hand-tune both (the Model Analyzer exists for that); with the delay at its default 0 batches
 *   stayed at size 1 under load until a pending batch was allowed to keep growing while every
 *   instance was busy (triton-inference-server/server#3624, fixed by #3789). Our batcher does that.
 * - TF Serving's batch scheduler: `max_batch_size`, `batch_timeout_micros`, `num_batch_threads`,
 *   `max_enqueued_batches` (queue-full rejects). All static; "batching has nearly zero effect"
 *   reports (tensorflow/serving#1312, #1529) come down to mis-tuned timeouts/threads and to
 *   `allowed_batch_sizes` padding small batches up. We never pad a batch to a size.
 * - Ray Serve `@serve.batch(max_batch_size, batch_wait_timeout_s)`: static, and until
 *   ray-project/ray#36510 the wait was timed from when the previous batch finished, so a request
 *   after an idle spell ran alone. Our timer starts at the oldest waiting row's arrival.
 * - Netflix concurrency-limits: the limit moves with a *gradient* (long-term RTT / short-term RTT,
 *   clamped to [0.5, 1]) and a smoothing factor; it refuses to grow while "app limited"
 *   (`inflight < limit / 2`, AIMDLimit's `inflight * 2 >= limit`) so an idle service does not
 *   random-walk its limit up; the windowed variants decide on a percentile over a sample window.
 *   Users report limits whipsawing when single samples (GC pauses, Netflix/concurrency-limits#156)
 *   drive decisions.
 * - The original DTESN DynamicBatchManager ignored its own size, so its batches never grew.
 *
 * ## The algorithm
 *
 * Inputs per finished batch: rows, close reason ('full' | 'timeout' | 'flush'), run time, the
 * end-to-end latency of each of its requests (queue wait + run, plus any downstream work the
 * caller includes), the rows still waiting when it was dispatched, and the target it was formed
 * under. Let L = targetLatencyMs (the p99 SLO) and B = L * RUN_SHARE, the run-time budget: with
 * every slot busy a full batch waits about one run for a slot while the next one forms, so
 * end-to-end ~ 2 x run; run <= L/2 leaves the other half of the SLO for waiting.
 *
 * Signals over a window of recent batches formed under the *current* target (the window is
 * cleared on every change, and batches formed under an older target are ignored — that is the
 * cooldown: a decision's effect is observed before the next decision):
 *   e2e  = p99 of per-request latency (last WINDOW_REQUESTS requests),
 *   run  = p90 of batch run time (last WINDOW_BATCHES batches; p90 so one GC pause does not move it),
 *   full = share of batches closed 'full' because of the target: rows they could have taken were
 *          left waiting. A batch that takes every waiting row and just meets the target does not
 *          count (one client awaiting each call fills a target of 1, eight clients a target of
 *          8; growing on that made every later batch wait out batchTimeoutMs for rows that were
 *          not coming),
 *   backlog = share of batches that left at least a target's worth of rows waiting.
 *
 * Decisions, first match wins (needs >= SHRINK_AFTER batches; growth needs >= GROW_AFTER):
 *   0. run > B, backlog, and the event  -> grow if batches are mostly full and ELU >= 0.9, else
 *      loop busy (ELU >= 0.7)              hold. Run time is measured on the event loop, so when it is
 *                                          busy it includes the loop's lag, whatever the batch
 *                                          size (16-row batches of a 2 ms handler read 30-50 ms at
 *                                          ELU 0.73-0.88); shrinking then only adds per-batch
 *                                          overhead to a loop that is already the bottleneck, and
 *                                          collapses (measured: cold start at 90k rows/s offered
 *                                          went 1 -> 102 -> 10 -> 2 -> 1 and served ~10 rows/s).
 *                                          Bigger batches amortize the per-batch cost; the queue
 *                                          bound (maxQueue) sheds the excess.
 *   1. run > B                          -> shrink by clamp(B / run, 0.5, 0.9): batches themselves
 *                                          are too slow (Clipper's signal, gradient-sized step).
 *   2. e2e > L, no backlog              -> shrink by clamp(L / e2e, 0.5, 0.9): rows wait too long
 *                                          for batch-mates; smaller batches close sooner.
 *   3. e2e > L, backlog, batches full,  -> grow by the run headroom (0.8 B / run): the excess is
 *      run <= 0.8 B                        queueing behind cheap batches, and only bigger batches
 *                                          raise throughput. Shrinking here (what a pure "latency
 *                                          high -> back off" rule does) cuts throughput, deepens
 *                                          the queue and collapses; admission is maxQueue's job.
 *   4. e2e > L otherwise                -> hold (slots, not batch size, are the bottleneck).
 *   5. batches not mostly full          -> hold: never grow a target that is not binding (no
 *                                          random walk at low load, where batches close on timeout).
 *   6. e2e <= 0.8 L and run <= 0.8 B    -> grow by min(0.8 L / e2e, 0.8 B / run), unless the event
 *      (and ELU < ELU_SATURATED)           loop is saturated (bigger batches mean longer
 *                                          synchronous turns for everyone on the loop).
 *   7. otherwise (within the 0.8..1.0 band) -> hold. The band is the hysteresis that keeps a
 *                                          steady load from oscillating.
 * Shrinks scale the rows batches actually carried (min(target, largest recent batch)), so a
 * target far above what timeouts let batches reach comes down in one step. Growth is at least +1
 * and at most x2 per decision ("slow start") until the first shrink, which sets a threshold
 * (TCP's ssthresh) above which growth is at most x1.1; a large headroom (>= x2) clears it again.
 * Multiplicative growth reaches maxBatchSize in log2 steps; the growth factors are the measured
 * headroom so an approach near the limit slows to +1 instead of overshooting.
 */

/** Why a batch was closed: its rows reached the target, its oldest row timed out, or close(). */
export type CloseReason = 'full' | 'timeout' | 'flush';

/** What the controller learns from one finished batch. Times in ms. */
export interface BatchObservation {
  /** Rows the batch carried. */
  rows: number;
  reason: CloseReason;
  /**
   * With reason 'full': whether the target limited the batch (rows it could have taken were left
   * waiting). Absent counts as true.
   */
  binding?: boolean;
  /** Run time: dispatch to results (include downstream work here if it is on the critical path). */
  runMs: number;
  /** Queue wait of the batch's oldest row (arrival to dispatch). */
  waitMs: number;
  /**
   * End-to-end latency of each request that completed (queue wait + run [+ downstream]). When
   * absent, `waitMs + runMs` (the oldest request's) stands in as one sample.
   */
  latenciesMs?: readonly number[];
  /** Rows still waiting, across keys, right after this batch was dispatched. */
  queuedRows?: number;
  /** The target in force when the batch was formed; observations of an older target are ignored. */
  target?: number;
}

/** Anything that sets the batcher's target; `AdaptiveBatchSize`, or a fixed size for tests. */
export interface BatchSizeController {
  /** Current target batch size in rows (the batcher clamps it to [1, maxBatchSize]). */
  readonly target: number;
  observe(observation: BatchObservation): void;
}

export interface AdaptiveBatchSizeOptions {
  /** Upper bound of the target, in rows. */
  maxBatchSize: number;
  /** The p99 end-to-end latency (ms) to hold. */
  targetLatencyMs: number;
  /** [1] starting target. 1 means no batching delay until load shows batching pays. */
  initialBatchSize?: number;
  /** Event-loop utilization in [0, 1] over the recent past (see `eventLoopUtilizationSampler`). */
  elu?: () => number;
}

/** The last change the controller made, for metrics and debugging. */
export interface BatchSizeDecision {
  kind: 'grow' | 'shrink';
  from: number;
  to: number;
  /** Which rule fired: 'saturated-backlog' | 'run-over-budget' | 'wait-over-slo' | 'backlog' | 'headroom'. */
  rule: string;
  e2eP99Ms: number;
  runP90Ms: number;
}

/** Share of the latency SLO one batch's run may take (the rest is queue wait); see above. */
export const RUN_SHARE = 0.5;
/** Grow only below this fraction of the SLO / run budget; hold between it and 1 (hysteresis). */
export const HEADROOM = 0.8;
/** Batches formed under the current target before it may shrink, and before it may grow. */
export const SHRINK_AFTER = 3;
export const GROW_AFTER = 8;
/** Window sizes: requests for the latency p99, batches for run time and close reasons. */
export const WINDOW_REQUESTS = 256;
export const WINDOW_BATCHES = 32;
/** Bounds of one decision's step. */
export const MIN_SHRINK = 0.5;
export const MAX_SHRINK = 0.9;
export const SLOW_START_GROWTH = 2;
export const AVOIDANCE_GROWTH = 1.1;
/** Event-loop utilization at or above which the controller does not grow on headroom (rule 6), and grows through a backlog whose runs are over budget (rule 0). */
export const ELU_SATURATED = 0.9;
/** Event-loop utilization at or above which runs over budget with a backlog do not shrink the target (rule 0). */
export const ELU_BUSY = 0.7;

/** A fixed-size ring of the most recent samples, with nearest-rank percentiles. */
export class LatencyWindow {
  readonly #buf: Float64Array;
  #next = 0;
  #size = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be an integer >= 1, got ${capacity}`);
    }
    this.#buf = new Float64Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  push(value: number): void {
    this.#buf[this.#next] = value;
    this.#next = (this.#next + 1) % this.#buf.length;
    if (this.#size < this.#buf.length) this.#size++;
  }

  clear(): void {
    this.#next = 0;
    this.#size = 0;
  }

  /** Nearest-rank percentile, q in (0, 1]; NaN when empty. */
  percentile(q: number): number {
    if (this.#size === 0) return Number.NaN;
    const sorted = this.#buf.slice(0, this.#size).sort();
    return sorted[Math.min(this.#size, Math.max(1, Math.ceil(q * this.#size))) - 1];
  }
}

interface BatchRecord {
  rows: number;
  full: boolean;
  backlog: boolean;
  runMs: number;
}

function checkPositive(name: string, value: number, integer: boolean): void {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${name} must be ${integer ? 'an integer >= 1' : 'a finite number > 0'}, got ${String(value)}`);
  }
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

/** The adaptive target batch size; see the module comment for the algorithm. */
export class AdaptiveBatchSize implements BatchSizeController {
  readonly #max: number;
  readonly #slo: number;
  readonly #elu: (() => number) | undefined;
  #target: number;
  /** Above this, growth is at most AVOIDANCE_GROWTH per decision (set by shrinks). */
  #ssthresh: number;
  readonly #latencies = new LatencyWindow(WINDOW_REQUESTS);
  readonly #batches: BatchRecord[] = [];
  /** Batches observed under the current target. */
  #sinceChange = 0;
  #last: BatchSizeDecision | undefined;

  constructor(options: AdaptiveBatchSizeOptions) {
    checkPositive('maxBatchSize', options.maxBatchSize, true);
    checkPositive('targetLatencyMs', options.targetLatencyMs, false);
    const initial = options.initialBatchSize ?? 1;
    checkPositive('initialBatchSize', initial, true);
    this.#max = options.maxBatchSize;
    this.#slo = options.targetLatencyMs;
    this.#elu = options.elu;
    this.#target = Math.min(initial, this.#max);
    this.#ssthresh = this.#max;
  }

  get target(): number {
    return this.#target;
  }

  /** The last change made, or undefined before the first. */
  get lastDecision(): BatchSizeDecision | undefined {
    return this.#last;
  }

  observe(o: BatchObservation): void {
    if (o.target !== undefined && o.target !== this.#target) return;
    if (!(o.runMs >= 0) || !(o.waitMs >= 0) || !(o.rows >= 0)) return;
    if (o.latenciesMs !== undefined && o.latenciesMs.length > 0) {
      for (const ms of o.latenciesMs) if (ms >= 0) this.#latencies.push(ms);
    } else {
      this.#latencies.push(o.waitMs + o.runMs);
    }
    if (this.#batches.length === WINDOW_BATCHES) this.#batches.shift();
    this.#batches.push({
      rows: o.rows,
      full: o.reason === 'full' && o.binding !== false,
      backlog: (o.queuedRows ?? 0) >= this.#target,
      runMs: o.runMs,
    });
    this.#sinceChange++;
    this.#decide();
  }

  #decide(): void {
    const n = this.#sinceChange;
    if (n < SHRINK_AFTER) return;
    const slo = this.#slo;
    const budget = slo * RUN_SHARE;
    const runs = new LatencyWindow(this.#batches.length);
    let full = 0;
    let backlog = 0;
    for (const b of this.#batches) {
      runs.push(b.runMs);
      if (b.full) full++;
      if (b.backlog) backlog++;
    }
    const run = runs.percentile(0.9);
    const e2e = this.#latencies.percentile(0.99);
    const mostlyFull = full * 2 >= this.#batches.length;
    const mostlyBacklog = backlog * 2 >= this.#batches.length;
    const signals = { e2e, run };

    if (run > budget) {
      const elu = mostlyBacklog ? this.#eluNow() : 0;
      if (elu >= ELU_BUSY) {
        if (elu >= ELU_SATURATED && mostlyFull && n >= GROW_AFTER) this.#grow(SLOW_START_GROWTH, 'saturated-backlog', signals);
        return;
      }
      return this.#shrink(budget / run, 'run-over-budget', signals);
    }
    if (e2e > slo) {
      if (!mostlyBacklog) return this.#shrink(slo / e2e, 'wait-over-slo', signals);
      if (mostlyFull && n >= GROW_AFTER && run <= HEADROOM * budget) {
        this.#grow(run > 0 ? (HEADROOM * budget) / run : SLOW_START_GROWTH, 'backlog', signals);
      }
      return;
    }
    if (n < GROW_AFTER || !mostlyFull) return;
    if (e2e > HEADROOM * slo || run > HEADROOM * budget) return;
    if (this.#saturated()) return;
    const headroom = Math.min(
      e2e > 0 ? (HEADROOM * slo) / e2e : Number.POSITIVE_INFINITY,
      run > 0 ? (HEADROOM * budget) / run : Number.POSITIVE_INFINITY,
    );
    this.#grow(headroom, 'headroom', signals);
  }

  #eluNow(): number {
    return this.#elu === undefined ? 0 : this.#elu();
  }

  #saturated(): boolean {
    return this.#eluNow() >= ELU_SATURATED;
  }

  #shrink(factor: number, rule: string, s: { e2e: number; run: number }): void {
    let carried = 0;
    for (const b of this.#batches) carried = Math.max(carried, b.rows);
    const base = Math.min(this.#target, Math.max(1, carried));
    const next = Math.max(1, Math.floor(base * clamp(factor, MIN_SHRINK, MAX_SHRINK)));
    if (next === this.#target) return;
    this.#ssthresh = next;
    this.#change('shrink', next, rule, s);
  }

  #grow(headroom: number, rule: string, s: { e2e: number; run: number }): void {
    if (this.#target >= this.#max) return;
    if (headroom >= SLOW_START_GROWTH) this.#ssthresh = this.#max;
    const slowStart = this.#target < this.#ssthresh;
    const factor = clamp(headroom, 1, slowStart ? SLOW_START_GROWTH : AVOIDANCE_GROWTH);
    let next = Math.max(this.#target + 1, Math.floor(this.#target * factor));
    if (slowStart) next = Math.min(next, this.#ssthresh);
    next = Math.min(next, this.#max);
    this.#change('grow', next, rule, s);
  }

  #change(kind: 'grow' | 'shrink', to: number, rule: string, s: { e2e: number; run: number }): void {
    this.#last = { kind, from: this.#target, to, rule, e2eP99Ms: s.e2e, runP90Ms: s.run };
    this.#target = to;
    this.#sinceChange = 0;
    this.#batches.length = 0;
    this.#latencies.clear();
  }
}

/**
 * A sampler for `AdaptiveBatchSizeOptions.elu`: the event-loop utilization of this thread over
 * the last `windowMs` or more (Node's `performance.eventLoopUtilization` delta). Calls closer
 * together than the window return the previous value, so decisions made in quick succession do
 * not read a near-empty interval (an instant inside one busy turn reads as 100% busy).
 */
export function eventLoopUtilizationSampler(windowMs = 50): () => number {
  let last = performance.eventLoopUtilization();
  let value = 0;
  return () => {
    const now = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(now, last);
    if (delta.idle + delta.active >= windowMs) {
      value = delta.utilization;
      last = now;
    }
    return value;
  };
}
