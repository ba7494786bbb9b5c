/**
 * What the pipeline measures about itself: the typed snapshot `pipeline.metrics()` returns, and
 * the collector that records into it while profiling is on.
 *
 * Costs: every record is O(1) per batch or per request, never per row. On the hot path a record
 * appends four numbers to an event log; the log is applied to the rate meter and the histograms
 * 256 events at a time and before every read (~60-100 ns per event, an HDR update included). The
 * pipeline passes the timestamps it already takes for its cost model, so most records add no
 * clock read. With `enableProfiling: false` there is no collector at all: no histograms, no
 * timers, no clock reads for it; the snapshot then carries the counters (always kept) and null
 * where a figure needs the collector. bench/profiling.bench.ts measures the difference.
 *
 * Memory is fixed: rate buckets, HDR histograms, the event log and the efficiency window are
 * preallocated.
 */
import { type DistributionSnapshot, Distribution, EXACT_ROWS, LATENCY_BUCKETS_MS, SIZE_BUCKETS_ROWS } from './histogram.js';
import { RateMeter } from './rate.js';
import type { ResourceMetrics } from './resources.js';

export type { DistributionSnapshot, Percentiles } from './histogram.js';
export type { EventLoopDelay, ResourceMetrics } from './resources.js';

// The parts of the snapshot that the pipeline's batcher, cost model and pool fill in: defined
// here, below the pipeline, so that what observes it imports nothing from it.

export interface BatcherStats {
  /** Batches finished (ok or failed), and the rows / requests they carried. */
  batches: number;
  rows: number;
  requests: number;
  readyBatches: number;
  fullBatches: number;
  timeoutBatches: number;
  flushBatches: number;
  /** Batches whose `run` rejected. */
  failedBatches: number;
  /** Requests accepted by submit(); always resolved + rejected + aborted + pending. */
  accepted: number;
  resolved: number;
  rejected: number;
  /** Accepted requests rejected because their signal aborted (not counted as rejected). */
  aborted: number;
  /** Requests refused with QueueFullError (not accepted). */
  shed: number;
  /** The same counts in rows: acceptedRows = resolvedRows + rejectedRows + abortedRows + rows pending. */
  acceptedRows: number;
  resolvedRows: number;
  rejectedRows: number;
  abortedRows: number;
  shedRows: number;
  /** The most rows a free slot takes now: fixedBatchSize, or maxBatchSize. */
  target: number;
  queuedRows: number;
  queuedRequests: number;
  inFlight: number;
  /** End-to-end latency of the last 1024 resolved requests (NaN before any). */
  p50LatencyMs: number;
  p99LatencyMs: number;
}

export interface CostSnapshot {
  inlineNsPerByte: { strings: number | null; bytes: number | null };
  prepNsPerByte: { strings: number | null; bytes: number | null };
  workerNsPerByte: number | null;
  dispatchMs: number | null;
  decisions: { inline: number; pool: number };
}

export interface PoolStats {
  threads: number;
  /** Workers that have loaded the worker module and the native addon (replacements count too). */
  ready: number;
  /** Tasks running now. */
  busy: number;
  /** piscina's own figure: share of the pool's capacity used since it started (0..1). */
  utilization: number;
  completed: number;
  /** Tasks run again on a fresh worker after a worker died under their items (isolate.ts). */
  retried: number;
  /** Workers that died under a task (pool workers and fresh ones). */
  crashed: number;
}

/** Micro-batches the batch efficiency is averaged over. */
export const EFFICIENCY_WINDOW = 64;

export interface ThroughputMetrics {
  /**
   * Rows (or processBatch items) accepted, processed, failed, aborted (their call's signal
   * aborted after it was accepted), pending (accepted, not settled yet); refused with
   * QueueFullError. accepted = processed + failed + aborted + pending, always.
   */
  accepted: number;
  processed: number;
  failed: number;
  aborted: number;
  pending: number;
  shed: number;
  /** UTF-8 bytes (byte input) or UTF-16 code units x 2 (strings) vectorized. */
  bytesIn: number;
  /** processed / uptime: the true mean since the pipeline was created (monotonic clock). */
  meanRate: number;
  /** Items processed per second over the last 1 s / 10 s / 60 s (null without profiling). */
  rate1s: number | null;
  rate10s: number | null;
  rate60s: number | null;
  /** The largest count processed in any 1 s window (aligned to 100 ms) since start. */
  peakRate1s: number | null;
  /** Calls, requests and batches in progress now (null without profiling). */
  inFlight: number | null;
  /** Total time with at least one of them in progress, seconds (null without profiling). */
  activeSeconds: number | null;
}

/** Latency distributions in ms (null without profiling). */
export interface LatencyMetrics {
  /**
   * Run time of each batch: a `vectorize` / `vectorizeBytes` call (stream and file batches
   * included), a micro-batch of `submit` requests from dispatch to results (the handler
   * included), a `processBatch` call.
   */
  batch: DistributionSnapshot;
  /** Queue wait of each micro-batch's oldest request (its arrival to dispatch): the batch's longest wait. */
  queueWait: DistributionSnapshot;
  /**
   * `submit` end to end, per request its micro-batch answered: arrival in the queue to the batch's
   * results, the handler included (the batcher's own figure; the latency-p99 alert holds it to targetLatencyMs).
   */
  submit: DistributionSnapshot;
}

export interface BatchingMetrics {
  /** Rows waiting: queued in the micro-batcher, or admitted and waiting for the pool. */
  queueDepth: number;
  queuedRequests: number;
  /** Micro-batches running now. */
  inFlightBatches: number;
  /** The most rows a free slot takes: fixedBatchSize, or maxBatchSize. */
  target: number;
  /**
   * Micro-batches finished, and why each was cut: `ready`, a slot was free and it took every row
   * waiting; `full`, it reached the cap with rows left waiting (or fixedBatchSize); `timeout`,
   * fixedBatchSize's batchTimeoutMs; `flush`, close().
   */
  batches: number;
  readyBatches: number;
  fullBatches: number;
  timeoutBatches: number;
  flushBatches: number;
  /** Rows per batch over every batch the `latency.batch` distribution counts (null without profiling). */
  size: DistributionSnapshot | null;
  /**
   * Rows per micro-batch / the rows it could have taken (its target: min(cap, rows waiting when it
   * was cut); with fixedBatchSize, the size), over the last 64 micro-batches:
   * sum(min(rows, target)) / sum(target). Work-conserving batches score 1 unless requests too large
   * to fit were left for the next one; static batches score what their timeouts cut short. Null
   * before any (or without profiling).
   */
  efficiency: number | null;
}

export interface ParallelizationMetrics {
  /** Pool size, and threads alive now. */
  workers: number;
  threads: number;
  /** Pool tasks running now (capped at `workers`). */
  busyWorkers: number;
  /** piscina's own figure: run time of completed tasks / (time since the pool started x workers). */
  poolUtilization: number;
  /** The same run time, seconds (piscina's utilization x its duration x workers); a counter. */
  busyWorkerSeconds: number;
  /**
   * Over every batch vectorized on the pool: speedup / workers, where speedup = kernel time
   * summed over the workers / wall time of the batch. Null before any pool batch (or without profiling).
   */
  parallelEfficiency: number | null;
  inlineBatches: number;
  poolBatches: number;
  completedTasks: number;
  retriedTasks: number;
  crashedTasks: number;
}

/** The configuration the pipeline runs with (defaults filled in). */
export interface PipelineSettings {
  maxWorkers: number;
  maxBatchSize: number;
  batchTimeoutMs: number;
  targetLatencyMs: number;
  maxQueue: number;
  enableVectorization: boolean;
  enableProfiling: boolean;
  workerHeapMb: number | null;
  /** The pinned micro-batch size, or null when the size adapts. */
  fixedBatchSize: number | null;
}

/**
 * `pipeline.metrics()`: a typed snapshot. The top-level counters (`accepted` .. `backend`) are the
 * figures of the first pipeline release, kept as they were; the sections hold everything.
 */
export interface PipelineMetrics {
  /** Rows (or items) accepted, processed, failed. accepted = processed + failed + aborted + pending. */
  accepted: number;
  processed: number;
  failed: number;
  /** Rows (or items) accepted, then rejected because their call's signal aborted (not in failed). */
  aborted: number;
  /** Rows (or items) accepted and not settled yet: waiting or running. */
  pending: number;
  /** Rows refused with QueueFullError. */
  shed: number;
  /** UTF-8 (bytes input) or UTF-16 code units (strings) vectorized. */
  bytesIn: number;
  batches: { inline: number; pool: number };
  queueDepth: number;
  batcher: BatcherStats;
  pool: PoolStats | null;
  cost: CostSnapshot;
  backend: 'native' | 'js';

  /** Whether the collector runs (`enableProfiling`). */
  profiling: boolean;
  /** When the snapshot was taken: the pipeline's monotonic clock (performance.now), ms. */
  timestamp: number;
  /** Since the pipeline was created. */
  uptimeSeconds: number;
  config: PipelineSettings;
  throughput: ThroughputMetrics;
  latency: LatencyMetrics | null;
  batching: BatchingMetrics;
  parallelization: ParallelizationMetrics;
  resources: ResourceMetrics;
}

/** Anything with a metrics snapshot: a pipeline, or a stand-in in tests. */
export interface MetricsSource {
  metrics(): PipelineMetrics;
}

/** Events of the collector's log (see MetricsCollector). */
const LOG_ENTRIES = 256;
const SLOTS = 4;
/** Event kinds: [kind, a, b, t]. */
const PROCESSED = 0; // a = items
const BATCH = 1; // a = rows, b = run ms (rows counted elsewhere)
const DIRECT = 2; // a direct call's batch: processed, run time, size
const WAIT = 3; // a = queue wait ms

/** What `MetricsCollector.observe` hands out: each value as it is recorded (ms, rows). */
export interface MetricsObserver {
  /** A batch ran: its rows and run time. */
  batch?(rows: number, ms: number): void;
  /** A micro-batch's oldest request waited this long for dispatch. */
  queueWait?(ms: number): void;
  /** A submitted request's end-to-end latency. */
  submit?(ms: number): void;
}

/**
 * Records what the pipeline does while profiling is on. Every method takes the time (ms, the
 * pipeline's monotonic clock) from the caller, who has it already.
 *
 * Hot-path records (per batch, per request) only append four numbers to a small event log; the
 * log is applied to the rate meter and the distributions 256 events at a time and before every
 * read, in a loop whose data stays in cache (updated in place after each batch, those structures
 * are cold: the kernel has just swept the cache). Activity and the efficiency window are updated
 * in place (a few fields).
 */
export class MetricsCollector {
  readonly start: number;
  readonly #batch: Distribution;
  readonly #queueWait: Distribution;
  readonly #submit: Distribution;
  readonly #size: Distribution;
  readonly #rate: RateMeter;
  readonly #log = new Float64Array(LOG_ENTRIES * SLOTS);
  #logAt = 0;
  #inFlight = 0;
  #activeSince = 0;
  #activeMs = 0;
  readonly #effRows = new Float64Array(EFFICIENCY_WINDOW);
  readonly #effTarget = new Float64Array(EFFICIENCY_WINDOW);
  #effNext = 0;
  #effRowsSum = 0;
  #effTargetSum = 0;
  #poolKernelMs = 0;
  #poolWallMs = 0;
  /** The latest time recorded: stands in for the clock where a record needs no precision. */
  #lastT: number;
  readonly #observers: MetricsObserver[] = [];

  /** `start`: when the pipeline started (ms, its monotonic clock). */
  constructor(start: number) {
    this.start = start;
    this.#lastT = start;
    this.#rate = new RateMeter(start);
    this.#batch = new Distribution(1000, LATENCY_BUCKETS_MS, start);
    this.#queueWait = new Distribution(1000, LATENCY_BUCKETS_MS, start);
    this.#submit = new Distribution(1000, LATENCY_BUCKETS_MS, start);
    this.#size = new Distribution(1, SIZE_BUCKETS_ROWS, start, EXACT_ROWS);
  }

  #push(kind: number, a: number, b: number, t: number): void {
    const log = this.#log;
    let i = this.#logAt;
    log[i] = kind;
    log[i + 1] = a;
    log[i + 2] = b;
    log[i + 3] = t;
    if (t > this.#lastT) this.#lastT = t;
    i += SLOTS;
    this.#logAt = i;
    if (i === log.length) this.#fold();
  }

  /** Applies the logged events, in order. */
  #fold(): void {
    const log = this.#log;
    const n = this.#logAt;
    this.#logAt = 0;
    const observers = this.#observers;
    if (observers.length > 0) {
      for (let i = 0; i < n; i += SLOTS) {
        const kind = log[i];
        if (kind === DIRECT || kind === BATCH) for (const o of observers) o.batch?.(log[i + 1]!, log[i + 2]!);
        else if (kind === WAIT) for (const o of observers) o.queueWait?.(log[i + 1]!);
      }
    }
    for (let i = 0; i < n; i += SLOTS) {
      const kind = log[i];
      const a = log[i + 1];
      const b = log[i + 2];
      const t = log[i + 3];
      switch (kind) {
        case PROCESSED:
          this.#rate.add(a, t);
          break;
        case DIRECT:
          this.#rate.add(a, t);
          this.#batch.record(b, t);
          this.#size.record(a, t);
          break;
        case BATCH:
          this.#batch.record(b, t);
          this.#size.record(a, t);
          break;
        case WAIT:
          this.#queueWait.record(a, t);
          break;
      }
    }
  }

  /** A call, request or batch started at `t`; pair with `end`. Nested work counts once. */
  begin(t: number): void {
    if (this.#inFlight++ === 0) this.#activeSince = t;
  }

  end(t: number): void {
    if (this.#inFlight === 0) return;
    if (--this.#inFlight === 0) this.#activeMs += Math.max(0, t - this.#activeSince);
  }

  /** `n` items processed at `t`. */
  processed(n: number, t: number): void {
    if (n > 0) this.#push(PROCESSED, n, 0, t);
  }

  /**
   * A batch ran synchronously from `t0` to `t1`: activity, and for `rows` > 0 (a direct call, not
   * rows of submitted requests) the processed count, run time and size.
   */
  ranInline(rows: number, t0: number, t1: number): void {
    if (this.#inFlight === 0) this.#activeMs += Math.max(0, t1 - t0);
    if (rows > 0) this.#push(DIRECT, rows, t1 - t0, t1);
  }

  /** A direct call's batch of `rows` processed, run for `ms`, ending at `t` (pool, processBatch). */
  ranDirect(rows: number, ms: number, t: number): void {
    this.#push(DIRECT, rows, ms, t);
  }

  /** One batch of `rows` ran for `ms`, ending at `t` (its rows are counted elsewhere). */
  batchRun(rows: number, ms: number, t: number): void {
    this.#push(BATCH, rows, ms, t);
  }

  /** One micro-batch finished at `t`: its rows, the rows it could have taken, its queue wait and run time. */
  microBatch(rows: number, target: number, waitMs: number, runMs: number, t: number): void {
    this.#push(BATCH, rows, runMs, t);
    this.#push(WAIT, waitMs, 0, t);
    if (target > 0) {
      const i = this.#effNext;
      const kept = Math.min(rows, target);
      this.#effRowsSum += kept - this.#effRows[i];
      this.#effTargetSum += target - this.#effTarget[i];
      this.#effRows[i] = kept;
      this.#effTarget[i] = target;
      this.#effNext = (i + 1) % EFFICIENCY_WINDOW;
    }
  }

  /**
   * The end-to-end latencies of the requests of a micro-batch that finished at `t` (the batcher's
   * own figures: arrival in the queue to the batch's results, the handler included).
   */
  requests(latenciesMs: ArrayLike<number>, count: number, t: number): void {
    if (t > this.#lastT) this.#lastT = t;
    for (let i = 0; i < count; i++) this.#submit.record(latenciesMs[i]!, t);
    for (const o of this.#observers) if (o.submit) for (let i = 0; i < count; i++) o.submit(latenciesMs[i]!);
  }

  /**
   * Hands every recorded value to `observer` as well (the OpenTelemetry export records them into
   * its Histogram instruments), in batches: when the event log is applied (every 256 events and
   * before every read), and with each micro-batch's request latencies. Returns the unsubscribe.
   */
  observe(observer: MetricsObserver): () => void {
    this.#observers.push(observer);
    return () => {
      const i = this.#observers.indexOf(observer);
      if (i >= 0) this.#observers.splice(i, 1);
    };
  }

  /** A batch vectorized on the pool: kernel time summed over its shards, and its wall time. */
  poolBatch(kernelMs: number, wallMs: number): void {
    if (kernelMs >= 0 && wallMs > 0) {
      this.#poolKernelMs += kernelMs;
      this.#poolWallMs += wallMs;
    }
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  activeSeconds(now: number): number {
    return (this.#activeMs + (this.#inFlight > 0 ? Math.max(0, now - this.#activeSince) : 0)) / 1000;
  }

  /** See BatchingMetrics.efficiency. */
  efficiency(): number | null {
    return this.#effTargetSum > 0 ? this.#effRowsSum / this.#effTargetSum : null;
  }

  /** See ParallelizationMetrics.parallelEfficiency. */
  parallelEfficiency(workers: number): number | null {
    return this.#poolWallMs > 0 ? this.#poolKernelMs / this.#poolWallMs / workers : null;
  }

  rates(now: number): { rate1s: number; rate10s: number; rate60s: number; peakRate1s: number } {
    this.#fold();
    return {
      rate1s: this.#rate.rate(1, now),
      rate10s: this.#rate.rate(10, now),
      rate60s: this.#rate.rate(60, now),
      peakRate1s: this.#rate.peak(now),
    };
  }

  latency(now: number): LatencyMetrics {
    this.#fold();
    return { batch: this.#batch.snapshot(now), queueWait: this.#queueWait.snapshot(now), submit: this.#submit.snapshot(now) };
  }

  /** Rows per batch. */
  sizes(now: number): DistributionSnapshot {
    this.#fold();
    return this.#size.snapshot(now);
  }
}
