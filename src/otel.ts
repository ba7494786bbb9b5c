/**
 * OpenTelemetry export: the figures of the Prometheus export as observable instruments on a
 * `Meter` the user passes (from `@opentelemetry/api`; this module imports its types only, so the
 * user's SDK and its global state are the ones in use). One batch callback takes one snapshot
 * per collection.
 *
 * OpenTelemetry has no asynchronous histogram, so the distributions are reported as gauges of
 * their recent percentiles (last 10-20 s) with a `quantile` attribute ('0.5', '0.9', '0.99', '1'
 * for the max); the exact cumulative buckets are in the Prometheus export.
 */
import type { Attributes, BatchObservableResult, Meter, Observable } from '@opentelemetry/api';
import type { DistributionSnapshot, MetricsSource, PipelineMetrics } from './metrics.js';
import { describe } from './options.js';
import type { HealthSource } from './prometheus.js';

export interface OtelOptions {
  /** Adds dtesn.health.score and dtesn.alerts.active{severity}. */
  monitor?: HealthSource;
}

type Observe = (r: BatchObservableResult, m: PipelineMetrics) => void;

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
  const quantiles = (name: string, description: string, unit: string, scale: number, read: (m: PipelineMetrics) => DistributionSnapshot | null) =>
    add(meter.createObservableGauge(name, { description, unit }), (r, m, o) => {
      const d = read(m)?.recent;
      if (!d || d.count === 0) return;
      const at: Array<[string, number | null]> = [['0.5', d.p50], ['0.9', d.p90], ['0.99', d.p99], ['1', d.max]];
      for (const [q, v] of at) if (v !== null) r.observe(o, v * scale, { quantile: q } satisfies Attributes);
    });

  counter('dtesn.items.processed', 'Rows (or processBatch items) processed successfully.', '{item}', (m) => m.processed);
  counter('dtesn.items.failed', 'Rows (or processBatch items) that failed.', '{item}', (m) => m.failed);
  counter('dtesn.items.accepted', 'Rows (or processBatch items) accepted.', '{item}', (m) => m.accepted);
  counter('dtesn.items.shed', 'Rows refused with QueueFullError.', '{item}', (m) => m.shed);
  counter('dtesn.input.size', 'Input vectorized: UTF-8 bytes, or UTF-16 code units x 2 for strings.', 'By', (m) => m.bytesIn);
  labelled(meter.createObservableCounter('dtesn.batches', { description: 'Batches vectorized, by route.', unit: '{batch}' }), 'route', (m) => ({
    inline: m.batches.inline, pool: m.batches.pool,
  }));
  labelled(meter.createObservableCounter('dtesn.batch.closes', { description: 'Micro-batches, by why they closed.', unit: '{batch}' }), 'reason', (m) => ({
    ready: m.batching.readyBatches, full: m.batching.fullBatches, timeout: m.batching.timeoutBatches, flush: m.batching.flushBatches,
  }));
  counter('dtesn.worker.busy_time', 'Run time of completed pool tasks summed over the workers (piscina).', 's', (m) => m.parallelization.busyWorkerSeconds);
  add(meter.createObservableUpDownCounter('dtesn.queue.depth', { description: 'Rows waiting.', unit: '{row}' }), (r, m, o) => r.observe(o, m.queueDepth));
  gauge('dtesn.batch.target_size', 'The most rows a free slot takes into a micro-batch.', '{row}', (m) => m.batching.target);
  gauge('dtesn.workers', 'Worker pool size.', '{worker}', (m) => m.parallelization.workers);
  gauge('dtesn.workers.busy', 'Pool tasks running now.', '{worker}', (m) => m.parallelization.busyWorkers);
  gauge('dtesn.worker.utilization', "piscina's pool utilization since the pool started.", '1', (m) => m.parallelization.poolUtilization);
  gauge('dtesn.batch.efficiency', 'Rows per micro-batch / its target, last 64 micro-batches.', '1', (m) => m.batching.efficiency);
  quantiles('dtesn.batch.duration', 'Run time of each batch, recent percentiles.', 's', 1e-3, (m) => m.latency?.batch ?? null);
  quantiles('dtesn.queue.wait', "Queue wait of each micro-batch's oldest request, recent percentiles.", 's', 1e-3, (m) => m.latency?.queueWait ?? null);
  quantiles('dtesn.submit.duration', 'submit() end to end, recent percentiles.', 's', 1e-3, (m) => m.latency?.submit ?? null);
  quantiles('dtesn.batch.size', 'Rows per batch, recent percentiles.', '{row}', 1, (m) => m.batching.size);
  if (monitor !== undefined) {
    gauge('dtesn.health.score', 'Health score 0-100 from the monitor.', '1', () => monitor.health().score);
    labelled(meter.createObservableGauge('dtesn.alerts.active', { description: 'Alerts firing now, by severity.', unit: '{alert}' }), 'severity', () => ({
      ...monitor.activeBySeverity(),
    }));
  }

  const callback = (r: BatchObservableResult) => {
    const m = pipeline.metrics();
    for (const f of feeds) f(r, m);
  };
  meter.addBatchObservableCallback(callback, observables);
  return () => meter.removeBatchObservableCallback(callback, observables);
}
