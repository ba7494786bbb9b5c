/**
 * The Prometheus export (src/observe/export/prometheus.ts): the exposition of a real pipeline checked by
 * Prometheus's own `promtool check metrics` (Debian package `prometheus`; CI installs it, and
 * without CI the test is skipped where promtool is missing), its values against metrics(), one
 * snapshot per scrape, what is registered with and without profiling or a monitor, unregistering.
 */
import { spawnSync } from 'node:child_process';
import { AggregatorRegistry, Registry, register as defaultRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { type Monitor, createMonitor } from '../src/observe/monitor/monitor.js';
import { type Pipeline, type PipelineConfig, createPipeline } from '../src/pipeline/pipeline.js';
import { registerMetrics } from '../src/observe/export/prometheus.js';
import { FakePipeline } from './fixtures/fake-pipeline.js';

const hasPromtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;

const opened: Pipeline[] = [];
const monitors: Monitor[] = [];
function make(config: PipelineConfig = {}): Pipeline {
  const p = createPipeline(config);
  opened.push(p);
  return p;
}
afterEach(async () => {
  for (const m of monitors.splice(0)) m.stop();
  await Promise.all(opened.splice(0).map((p) => p.close()));
});

/** Samples of the exposition: name{labels} -> value. */
function parse(text: string): { types: Map<string, string>; values: Map<string, number> } {
  const types = new Map<string, string>();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    else if (line && !line.startsWith('#')) {
      const i = line.lastIndexOf(' ');
      values.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
  }
  return { types, values };
}

async function loaded(config: PipelineConfig = {}): Promise<Pipeline> {
  const p = make({ maxWorkers: 2, ...config });
  await Promise.all(Array.from({ length: 300 }, (_, i) => p.submit(`row ${i}`)));
  await p.vectorize(['a', 'bb', 'ccc']);
  await p.processBatch([1, 2], { task: new URL('./fixtures/double.mjs', import.meta.url) });
  await p.submit('bad \uD800', { invalid: 'error' }).catch(() => {});
  return p;
}

const REQUIRED: Array<[string, string]> = [
  ['dtesn_items_processed_total', 'counter'],
  ['dtesn_items_failed_total', 'counter'],
  ['dtesn_batch_duration_seconds', 'histogram'],
  ['dtesn_queue_wait_seconds', 'histogram'],
  ['dtesn_batch_size', 'histogram'],
  ['dtesn_queue_depth', 'gauge'],
  ['dtesn_worker_utilization_ratio', 'gauge'],
  ['dtesn_health_score', 'gauge'],
  ['dtesn_alerts_active', 'gauge'],
];

describe('registerMetrics', () => {
  it('exposes the pipeline, with the names and types the issue fixes, values from metrics()', async () => {
    const p = await loaded();
    const monitor = createMonitor(p, { intervalMs: 60_000 });
    monitors.push(monitor);
    const registry = new Registry();
    registerMetrics(p, registry, { monitor });
    const text = await registry.metrics();
    const m = p.metrics();
    const { types, values } = parse(text);
    for (const [name, type] of REQUIRED) expect(types.get(name), name).toBe(type);
    expect(values.get('dtesn_items_processed_total')).toBe(m.processed);
    expect(values.get('dtesn_items_failed_total')).toBe(1);
    expect(values.get('dtesn_items_accepted_total')).toBe(m.accepted);
    expect(values.get('dtesn_input_bytes_total')).toBe(m.bytesIn);
    expect(values.get('dtesn_batches_total{route="inline"}')).toBe(m.batches.inline);
    expect(values.get('dtesn_batch_closes_total{reason="full"}')).toBe(m.batching.fullBatches);
    expect(values.get('dtesn_batch_closes_total{reason="ready"}')).toBe(m.batching.readyBatches);
    expect(m.batching.readyBatches).toBeGreaterThan(0);
    expect(values.get('dtesn_queue_depth')).toBe(0);
    expect(values.get('dtesn_workers')).toBe(2);
    expect(values.get('dtesn_health_score')).toBe(monitor.health().score);
    for (const sev of ['info', 'warning', 'critical']) expect(values.get(`dtesn_alerts_active{severity="${sev}"}`)).toBe(0);

    // Histograms: cumulative buckets in seconds, +Inf = _count, _sum in seconds.
    const lat = m.latency!;
    for (const [name, d, scale] of [
      ['dtesn_batch_duration_seconds', lat.batch, 1e-3],
      ['dtesn_queue_wait_seconds', lat.queueWait, 1e-3],
      ['dtesn_submit_duration_seconds', lat.submit, 1e-3],
      ['dtesn_batch_size', m.batching.size!, 1],
    ] as const) {
      expect(values.get(`${name}_count`), name).toBe(d.count);
      expect(values.get(`${name}_bucket{le="+Inf"}`), name).toBe(d.count);
      expect(values.get(`${name}_sum`)!).toBeCloseTo(d.sum * scale, 9);
      let prev = 0;
      d.buckets.le.forEach((le, i) => {
        const v = values.get(`${name}_bucket{le="${Number((le * scale).toPrecision(12))}"}`);
        expect(v, `${name} le=${le}`).toBe(d.buckets.cumulative[i]);
        expect(v!).toBeGreaterThanOrEqual(prev);
        prev = v!;
      });
    }
    expect(text).toContain('dtesn_batch_duration_seconds_bucket{le="0.0001"}');
    expect(values.get('dtesn_submit_duration_seconds_count')).toBe(300);
  });

  it('the exposition passes promtool check metrics', async () => {
    if (!hasPromtool) throw new Error('promtool not found: `npm run test:tools` installs it (Debian package prometheus)');
    const p = await loaded();
    const monitor = createMonitor(p, { intervalMs: 60_000, fireAfter: 1, thresholds: { memoryUsageMaxMb: 1 } });
    monitors.push(monitor);
    monitor.sample(); // an active critical alert: the labelled gauge has a non-zero series
    const registry = new Registry();
    registerMetrics(p, registry, { monitor });
    const text = await registry.metrics();
    expect(parse(text).values.get('dtesn_alerts_active{severity="critical"}')).toBe(1);
    const check = (exposition: string) => {
      const r = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
      expect(`${r.stdout}${r.stderr}`.trim(), 'promtool output').toBe('');
      expect(r.status).toBe(0);
    };
    check(text);
    // A fresh pipeline: empty histograms, NaN efficiency.
    const fresh = new Registry();
    registerMetrics(make({ maxWorkers: 1 }), fresh, { monitor });
    const freshText = await fresh.metrics();
    expect(freshText).toContain('dtesn_batch_duration_seconds_count 0');
    check(freshText);
  });

  it('node:cluster: an AggregatorRegistry sums amounts, averages ratios, takes the worst health score and the first setting', async () => {
    const a = await loaded();
    const b = make({ maxWorkers: 1 });
    const ma = createMonitor(a, { intervalMs: 60_000 });
    const mb = createMonitor(b, { intervalMs: 60_000, fireAfter: 1, thresholds: { memoryUsageMaxMb: 1 } });
    monitors.push(ma, mb);
    mb.sample(); // a critical alert: a lower health score
    const ra = new Registry();
    const rb = new Registry();
    registerMetrics(a, ra, { monitor: ma });
    registerMetrics(b, rb, { monitor: mb });
    const [ja, jb] = [await ra.getMetricsAsJSON(), await rb.getMetricsAsJSON()];
    const text = await AggregatorRegistry.aggregate([ja, jb]).metrics();
    const { values } = parse(text);
    // What each process exported (the same scrape the aggregation used).
    const valueOf = (j: typeof ja, name: string) => j.find((m) => m.name === name)!.values[0]!.value;
    const both = (name: string) => [valueOf(ja, name), valueOf(jb, name)] as const;
    const [pa, pb] = both('dtesn_items_processed_total');
    expect(values.get('dtesn_items_processed_total')).toBe(pa + pb);
    const [wa, wb] = both('dtesn_workers');
    expect(values.get('dtesn_workers')).toBe(wa + wb);
    expect(values.get('dtesn_batch_target_size')).toBe(both('dtesn_batch_target_size')[0]);
    const [ha, hb] = both('dtesn_health_score');
    expect(hb).toBeLessThan(ha);
    expect(values.get('dtesn_health_score')).toBe(hb);
    const [ua, ub] = both('dtesn_worker_utilization_ratio');
    expect(values.get('dtesn_worker_utilization_ratio')).toBeCloseTo((ua + ub) / 2, 12);
  });

  it('takes one snapshot per scrape', async () => {
    const p = new FakePipeline();
    const registry = new Registry();
    registerMetrics(p, registry);
    const before = p.calls;
    await registry.metrics();
    expect(p.calls - before).toBe(1);
    p.step(1, { rate: 10 });
    const { values } = parse(await registry.metrics());
    expect(p.calls - before).toBe(2);
    expect(values.get('dtesn_items_processed_total')).toBe(10);
    await registry.getMetricsAsJSON();
    expect(p.calls - before).toBe(3);
  });

  it('without profiling: no histograms and no efficiency; without a monitor: no health or alerts', async () => {
    const p = await loaded({ enableProfiling: false });
    const registry = new Registry();
    registerMetrics(p, registry);
    const { types, values } = parse(await registry.metrics());
    expect([...types.values()]).not.toContain('histogram');
    expect(types.has('dtesn_batch_efficiency_ratio')).toBe(false);
    expect(types.has('dtesn_health_score')).toBe(false);
    expect(types.has('dtesn_alerts_active')).toBe(false);
    expect(values.get('dtesn_items_processed_total')).toBe(p.metrics().processed);
  });

  it('registering twice on one registry throws and keeps the first; unregister removes everything', async () => {
    const p = new FakePipeline();
    const registry = new Registry();
    const unregister = registerMetrics(p, registry);
    const names = registry.getMetricsAsArray().length;
    expect(() => registerMetrics(new FakePipeline(), registry)).toThrow(/already been registered/);
    expect(registry.getMetricsAsArray()).toHaveLength(names);
    unregister();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
    expect(await registry.metrics()).toBe('\n');
  });

  it("uses prom-client's default registry when none is given", async () => {
    const p = new FakePipeline();
    const unregister = registerMetrics(p);
    try {
      expect(await defaultRegistry.getSingleMetricAsString('dtesn_queue_depth')).toContain('dtesn_queue_depth 0');
    } finally {
      unregister();
    }
    expect(defaultRegistry.getSingleMetric('dtesn_queue_depth')).toBeUndefined();
  });

  it('refuses what is not a pipeline, registry or monitor', () => {
    expect(() => registerMetrics({} as never)).toThrow(new TypeError('pipeline must be a pipeline (an object with metrics()), got Object'));
    expect(() => registerMetrics(new FakePipeline(), {} as never)).toThrow(new TypeError('registry must be a prom-client Registry, got Object'));
    expect(() => registerMetrics(new FakePipeline(), new Registry(), { monitor: {} as never })).toThrow(new TypeError('options.monitor must be a Monitor (createMonitor)'));
  });
});
