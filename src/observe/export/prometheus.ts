/**
 * Prometheus export through prom-client: collectors that read the pipeline's snapshot when the
 * registry is scraped (nothing is pushed or recorded on the hot path for it).
 *
 * One snapshot serves a whole scrape: the first collector to run takes it, and the others, which
 * prom-client runs in the same synchronous pass, reuse it. Counters are set from the pipeline's own counters; histograms are
 * exposed from the cumulative buckets the pipeline counts at record time (src/observe/histogram.ts: exact
 * for their bounds, never re-derived from the HDR percentiles), converted from ms to seconds.
 *
 * `dtesn_health_score` and `dtesn_alerts_active{severity}` come from a monitor: pass it as
 * `registerMetrics(pipeline, registry, { monitor })`; without one they are not registered. With
 * `enableProfiling: false` the histograms and the efficiency gauge are not registered either.
 */
import { type Aggregator, Counter, Gauge, Histogram, type Registry, register as defaultRegistry } from 'prom-client';
import { LATENCY_BUCKETS_MS, SIZE_BUCKETS_ROWS } from '../histogram.js';
import type { DistributionSnapshot, MetricsSource, PipelineMetrics } from '../metrics.js';
import type { Health, Severity } from '../monitor/monitor.js';
import { describe } from '../../common/check.js';

/** What registerMetrics needs from a monitor (a `Monitor` has both). */
export interface HealthSource {
  health(): Health;
  activeBySeverity(): Record<Severity, number>;
}

export interface PrometheusOptions {
  /** Adds dtesn_health_score and dtesn_alerts_active{severity}. */
  monitor?: HealthSource;
}

type Read<T> = (m: PipelineMetrics) => T;

/** A histogram whose series come from a DistributionSnapshot instead of observe(). */
class SnapshotHistogram extends Histogram<string> {
  readonly #read: () => DistributionSnapshot | null;
  /** Exported unit per recorded unit (0.001: ms to seconds). */
  readonly #scale: number;
  readonly #metricName: string;
  readonly #help: string;

  constructor(name: string, help: string, le: readonly number[], scale: number, read: () => DistributionSnapshot | null) {
    super({ name, help, buckets: le.map((b) => b * scale), registers: [] });
    this.#help = help;
    this.#read = read;
    this.#scale = scale;
    this.#metricName = name;
  }

  #values(): Array<{ labels: Record<string, string | number>; value: number; metricName: string }> {
    const d = this.#read();
    const name = this.#metricName;
    if (d === null) return [];
    const out: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = d.buckets.le.map((le, i) => ({ labels: { le: round(le * this.#scale) }, value: d.buckets.cumulative[i], metricName: `${name}_bucket` }));
    out.push({ labels: { le: '+Inf' }, value: d.count, metricName: `${name}_bucket` });
    out.push({ labels: {}, value: d.sum * this.#scale, metricName: `${name}_sum` });
    out.push({ labels: {}, value: d.count, metricName: `${name}_count` });
    return out;
  }

  #object(): MetricObject {
    // prom-client's own histograms report type 'histogram' (its typings say MetricType).
    return {
      name: this.#metricName,
      help: this.#help,
      type: 'histogram' as unknown as MetricObject['type'],
      aggregator: 'sum',
      collect: () => {},
      values: this.#values(),
    };
  }

  override async get(): Promise<MetricObject> {
    return this.#object();
  }

  /** What the registry calls for the text exposition (prom-client's Histogram has it too). */
  async getForPromString(): Promise<MetricObject> {
    return this.#object();
  }
}

type MetricObject = Awaited<ReturnType<Histogram<string>['get']>>;

/** Bounds like 0.0001 print as written, not as 0.00010000000000000002. */
function round(x: number): number {
  return Number(x.toPrecision(12));
}

/**
 * Registers the pipeline's collectors on `registry` (prom-client's default registry when
 * omitted), read on every scrape. Returns a function that removes them again. Throws when a
 * metric of the same name is already registered there (one pipeline per registry).
 */
export function registerMetrics(pipeline: MetricsSource, registry: Registry = defaultRegistry, options: PrometheusOptions = {}): () => void {
  if (typeof pipeline !== 'object' || pipeline === null || typeof pipeline.metrics !== 'function') {
    throw new TypeError(`pipeline must be a pipeline (an object with metrics()), got ${describe(pipeline)}`);
  }
  if (typeof registry !== 'object' || registry === null || typeof registry.registerMetric !== 'function') {
    throw new TypeError(`registry must be a prom-client Registry, got ${describe(registry)}`);
  }
  const monitor = options.monitor;
  if (monitor !== undefined && (typeof monitor.health !== 'function' || typeof monitor.activeBySeverity !== 'function')) {
    throw new TypeError('options.monitor must be a Monitor (createMonitor)');
  }

  let cached: PipelineMetrics | null = null;
  const snap = (): PipelineMetrics => {
    if (cached === null) {
      cached = pipeline.metrics();
      // prom-client calls every collector synchronously at the start of a scrape, so the
      // snapshot lives exactly as long as that one scrape's collection.
      queueMicrotask(() => {
        cached = null;
      });
    }
    return cached;
  };
  const profiling = pipeline.metrics().profiling;
  const metrics: Array<{ name: string; metric: Counter<string> | Gauge<string> | Histogram<string> }> = [];

  const counter = (name: string, help: string, read: Read<number>) => {
    metrics.push({
      name,
      metric: new Counter({
        name, help, registers: [],
        collect() {
          this.reset();
          this.inc(read(snap()));
        },
      }),
    });
  };
  const labelledCounter = (name: string, help: string, label: string, read: Read<Record<string, number>>) => {
    metrics.push({
      name,
      metric: new Counter({
        name, help, labelNames: [label], registers: [],
        collect() {
          this.reset();
          for (const [k, v] of Object.entries(read(snap()))) this.inc({ [label]: k }, v);
        },
      }),
    });
  };
  /**
   * `aggregator`: how prom-client's AggregatorRegistry (node:cluster) combines the workers'
   * values: sums for amounts, averages for ratios, the minimum for the health score (a cluster is
   * as healthy as its worst process), the first for settings every process shares.
   */
  const gauge = (name: string, help: string, read: () => number | null, aggregator: Aggregator = 'sum') => {
    metrics.push({
      name,
      metric: new Gauge({
        name, help, registers: [], aggregator,
        collect() {
          this.set(read() ?? Number.NaN);
        },
      }),
    });
  };
  const histogram = (name: string, help: string, read: Read<DistributionSnapshot | null>, scale: number, le: readonly number[]) => {
    metrics.push({ name, metric: new SnapshotHistogram(name, help, le, scale, () => read(snap())) });
  };

  counter('dtesn_items_processed_total', 'Rows (or processBatch items) processed successfully.', (m) => m.processed);
  counter('dtesn_items_failed_total', 'Rows (or processBatch items) that failed.', (m) => m.failed);
  counter('dtesn_items_accepted_total', 'Rows (or processBatch items) accepted.', (m) => m.accepted);
  counter('dtesn_items_aborted_total', 'Rows (or processBatch items) accepted, then rejected because their call was aborted.', (m) => m.aborted);
  counter('dtesn_items_shed_total', 'Rows refused with QueueFullError (more than maxQueue waiting).', (m) => m.shed);
  counter('dtesn_input_bytes_total', 'Input vectorized: UTF-8 bytes, or UTF-16 code units x 2 for strings.', (m) => m.bytesIn);
  labelledCounter('dtesn_batches_total', 'Batches vectorized, by where they ran (inline on the calling thread, or on the pool).', 'route', (m) => ({ inline: m.batches.inline, pool: m.batches.pool }));
  labelledCounter('dtesn_batch_closes_total', 'Micro-batches of submit() requests, by why they closed.', 'reason', (m) => ({
    ready: m.batching.readyBatches, full: m.batching.fullBatches, timeout: m.batching.timeoutBatches, flush: m.batching.flushBatches,
  }));
  counter('dtesn_worker_busy_seconds_total', 'Run time of completed pool tasks summed over the workers (piscina).', (m) => m.parallelization.busyWorkerSeconds);
  gauge('dtesn_queue_depth', 'Rows waiting: queued in the micro-batcher or admitted and waiting for the pool.', () => snap().queueDepth);
  gauge('dtesn_batch_target_size', 'The most rows a free slot takes into a micro-batch (fixedBatchSize, or maxBatchSize).', () => snap().batching.target, 'first');
  gauge('dtesn_workers', 'Worker pool size.', () => snap().parallelization.workers);
  gauge('dtesn_workers_busy', 'Pool tasks running now.', () => snap().parallelization.busyWorkers);
  gauge('dtesn_worker_utilization_ratio', "piscina's pool utilization since the pool started (0-1).", () => snap().parallelization.poolUtilization, 'average');
  if (profiling) {
    gauge('dtesn_batch_efficiency_ratio', 'Rows per micro-batch / its target, over the last 64 micro-batches (0-1).', () => snap().batching.efficiency, 'average');
    histogram('dtesn_batch_duration_seconds', 'Run time of each batch (vectorize call, micro-batch with its handler, processBatch call).', (m) => m.latency?.batch ?? null, 1e-3, LATENCY_BUCKETS_MS);
    histogram('dtesn_queue_wait_seconds', "Queue wait of each micro-batch's oldest request.", (m) => m.latency?.queueWait ?? null, 1e-3, LATENCY_BUCKETS_MS);
    histogram('dtesn_submit_duration_seconds', 'submit() end to end: arrival in the queue to the micro-batch results, per request.', (m) => m.latency?.submit ?? null, 1e-3, LATENCY_BUCKETS_MS);
    histogram('dtesn_batch_size', 'Rows per batch.', (m) => m.batching.size, 1, SIZE_BUCKETS_ROWS);
  }
  if (monitor !== undefined) {
    gauge('dtesn_health_score', 'Health score 0-100 from the monitor (docs/METRICS.md has the formula).', () => monitor.health().score, 'min');
    metrics.push({
      name: 'dtesn_alerts_active',
      metric: new Gauge({
        name: 'dtesn_alerts_active', help: 'Alerts firing now, by severity.', labelNames: ['severity'], registers: [],
        collect() {
          for (const [severity, n] of Object.entries(monitor.activeBySeverity())) this.set({ severity }, n);
        },
      }),
    });
  }

  const registered: string[] = [];
  try {
    for (const { name, metric } of metrics) {
      registry.registerMetric(metric);
      registered.push(name);
    }
  } catch (e) {
    for (const name of registered) registry.removeSingleMetric(name);
    throw e;
  }
  return () => {
    for (const name of registered) registry.removeSingleMetric(name);
  };
}
