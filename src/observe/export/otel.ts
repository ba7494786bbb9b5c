/**
 * OpenTelemetry export: the figures of the Prometheus export as observable instruments on a
 * `Meter` the user passes (from `@opentelemetry/api`; this module imports its types only, so the
 * user's SDK and its global state are the ones in use). One batch callback takes one snapshot
 * per collection.
 *
 * Names follow OpenTelemetry's semantic conventions (singular namespaces, units in UCUM, no
 * `_total`); docs/METRICS.md maps each to its Prometheus name. The distributions (batch
 * duration and size, queue wait, submit latency) are real Histogram instruments, fed every value
 * the pipeline's metrics collector records (it hands them over in batches, see
 * MetricsCollector.observe); they exist for pipelines with profiling on.
 */
import type { BatchObservableResult, Meter, Observable } from '@opentelemetry/api';
import { LATENCY_BUCKETS_MS, SIZE_BUCKETS_ROWS } from '../histogram.js';
import type { MetricsObserver, MetricsSource, PipelineMetrics } from '../metrics.js';
import { describe } from '../../common/check.js';
import type { HealthSource } from './prometheus.js';

export interface OtelOptions {
  /** Adds dtesn.health.score and dtesn.alerts.active{severity}. */
  monitor?: HealthSource;
}

type Observe = (r: BatchObservableResult, m: PipelineMetrics) => void;

/** The pipeline's hook for its recorded values (pipeline.ts OBSERVE; a registered symbol, so this module needs no import of it). */
const OBSERVE = Symbol.for('dtesn.pipeline.observe');

/**
 * Creates the observable instruments on `meter` and the callback that feeds them. Returns a
 * function that removes the callback (the instruments then report nothing).
 */
export function registerOtelMetrics(pipeline: MetricsSource, meter: Meter, options: OtelOptions = {}): () => void {
  if (typeof pipeline !== 'object' || pipeline === null || typeof pipeline.metrics !== 'function') {
    throw new TypeError(`pipeline must be a pipeline (an object with metrics()), got ${describe(pipeline)}`);
  }
  if (typeof meter !== 'object' || meter === null || typeof meter.addBatchObservableCallback !== 'function') {
    throw new TypeError(`meter must be an OpenTelemetry Meter, got ${describe(meter)}`);
  }
  const monitor = options.monitor;
  if (monitor !== undefined && (typeof monitor.health !== 'function' || typeof monitor.activeBySeverity !== 'function')) {
    throw new TypeError('options.monitor must be a Monitor (createMonitor)');
  }
  const observables: Observable[] = [];
  const feeds: Observe[] = [];
  const add = (o: Observable, feed: (r: BatchObservableResult, m: PipelineMetrics, o: Observable) => void) => {
    observables.push(o);
    feeds.push((r, m) => feed(r, m, o));
  };
  const counter = (name: string, description: string, unit: string, read: (m: PipelineMetrics) => number) =>
    add(meter.createObservableCounter(name, { description, unit }), (r, m, o) => r.observe(o, read(m)));
  const gauge = (name: string, description: string, unit: string, read: (m: PipelineMetrics) => number | null) =>
    add(meter.createObservableGauge(name, { description, unit }), (r, m, o) => {
      const v = read(m);
      if (v !== null) r.observe(o, v);
    });
  const labelled = (o: Observable, key: string, read: (m: PipelineMetrics) => Record<string, number>) =>
    add(o, (r, m, obs) => {
      for (const [k, v] of Object.entries(read(m))) r.observe(obs, v, { [key]: k });
    });
  counter('dtesn.item.processed', 'Rows (or processBatch items) processed successfully.', '{item}', (m) => m.processed);
  counter('dtesn.item.failed', 'Rows (or processBatch items) that failed.', '{item}', (m) => m.failed);
  counter('dtesn.item.accepted', 'Rows (or processBatch items) accepted.', '{item}', (m) => m.accepted);
  counter('dtesn.item.aborted', 'Rows (or processBatch items) accepted, then rejected because their call was aborted.', '{item}', (m) => m.aborted);
  counter('dtesn.item.shed', 'Rows refused with QueueFullError.', '{item}', (m) => m.shed);
  counter('dtesn.input.size', 'Input vectorized: UTF-8 bytes, or UTF-16 code units x 2 for strings.', 'By', (m) => m.bytesIn);
  labelled(meter.createObservableCounter('dtesn.batch.count', { description: 'Batches vectorized, by route.', unit: '{batch}' }), 'dtesn.route', (m) => ({
    inline: m.batches.inline, pool: m.batches.pool,
  }));
  labelled(meter.createObservableCounter('dtesn.batch.close', { description: 'Micro-batches, by why they were cut.', unit: '{batch}' }), 'dtesn.reason', (m) => ({
    ready: m.batching.readyBatches, full: m.batching.fullBatches, timeout: m.batching.timeoutBatches, flush: m.batching.flushBatches,
  }));
  counter('dtesn.worker.busy_time', 'Run time of completed pool tasks summed over the workers (piscina).', 's', (m) => m.parallelization.busyWorkerSeconds);
  add(meter.createObservableUpDownCounter('dtesn.queue.depth', { description: 'Rows waiting.', unit: '{row}' }), (r, m, o) => r.observe(o, m.queueDepth));
  gauge('dtesn.batch.target_size', 'The most rows a free slot takes into a micro-batch.', '{row}', (m) => m.batching.target);
  gauge('dtesn.worker.count', 'Worker pool size.', '{worker}', (m) => m.parallelization.workers);
  gauge('dtesn.worker.busy', 'Pool tasks running now.', '{worker}', (m) => m.parallelization.busyWorkers);
  gauge('dtesn.worker.utilization', "piscina's pool utilization since the pool started.", '1', (m) => m.parallelization.poolUtilization);
  gauge('dtesn.batch.efficiency', 'Rows per micro-batch / its target, last 64 micro-batches.', '1', (m) => m.batching.efficiency);
  if (monitor !== undefined) {
    gauge('dtesn.health.score', 'Health score 0-100 from the monitor.', '1', () => monitor.health().score);
    labelled(meter.createObservableGauge('dtesn.alert.active', { description: 'Alerts firing now, by severity.', unit: '{alert}' }), 'dtesn.severity', () => ({
      ...monitor.activeBySeverity(),
    }));
  }
  // Histograms: fed by the pipeline's collector (a pipeline of this package with profiling on).
  const source = pipeline as MetricsSource & { [OBSERVE]?: (o: MetricsObserver) => (() => void) | null };
  let unobserve: (() => void) | null = null;
  if (typeof source[OBSERVE] === 'function') {
    const seconds = LATENCY_BUCKETS_MS.map((ms) => ms / 1000);
    const hist = (name: string, description: string, unit: string, bounds: readonly number[]) =>
      meter.createHistogram(name, { description, unit, advice: { explicitBucketBoundaries: [...bounds] } });
    const duration = hist('dtesn.batch.duration', 'Run time of each batch (vectorize call, micro-batch with its handler, processBatch call).', 's', seconds);
    const size = hist('dtesn.batch.size', 'Rows per batch.', '{row}', SIZE_BUCKETS_ROWS);
    const wait = hist('dtesn.queue.wait', "Queue wait of each micro-batch's oldest request.", 's', seconds);
    const submit = hist('dtesn.submit.duration', 'submit() end to end, per request: arrival in the queue to its micro-batch results.', 's', seconds);
    unobserve = source[OBSERVE]({
      batch: (rows, ms) => {
        duration.record(ms / 1000);
        size.record(rows);
      },
      queueWait: (ms) => wait.record(ms / 1000),
      submit: (ms) => submit.record(ms / 1000),
    });
  }

  const callback = (r: BatchObservableResult) => {
    const m = pipeline.metrics();
    for (const f of feeds) f(r, m);
  };
  meter.addBatchObservableCallback(callback, observables);
  return () => {
    meter.removeBatchObservableCallback(callback, observables);
    unobserve?.();
  };
}
