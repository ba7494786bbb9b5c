/**
 * The metrics collector's parts on known series with explicit times (src/observe/rate.ts,
 * src/observe/histogram.ts, src/observe/metrics.ts, src/observe/resources.ts), then `pipeline.metrics()` on a real
 * pipeline: every section filled, the counters agreeing with each other, and nothing collected
 * with `enableProfiling: false`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { pipelines } from './fixtures/util.js';
import { Distribution, EXACT_ROWS, LogLinear, LATENCY_BUCKETS_MS, SIZE_BUCKETS_ROWS, WINDOW_MS } from '../src/observe/histogram.js';
import { EFFICIENCY_WINDOW, MetricsCollector } from '../src/observe/metrics.js';
import { type Pipeline, type PipelineConfig, ROUTE, createPipeline } from '../src/pipeline/pipeline.js';
import { RateMeter } from '../src/observe/rate.js';
import { DELAY_RESOLUTION_MS, type DelayHistogram, ProcessResources } from '../src/observe/resources.js';

/** Records `perSecond` items/s as one item every 1000/perSecond ms over [from, to) seconds. */
function feed(m: RateMeter, perSecond: number, from: number, to: number): void {
  const step = 1000 / perSecond;
  for (let t = from * 1000; t < to * 1000 - 1e-9; t += step) m.add(1, t);
}

describe('RateMeter', () => {
  it('a steady 100 items/s reads 100 over 1 s, 10 s and 60 s at any phase', () => {
    for (const now of [65_000, 65_050, 69_999, 70_000]) {
      const m = new RateMeter(0);
      feed(m, 100, 0, now / 1000);
      expect(m.rate(1, now)).toBeCloseTo(100, 0);
      expect(m.rate(10, now)).toBeCloseTo(100, 0);
      expect(m.rate(60, now)).toBeCloseTo(100, 0);
    }
  });

  it('a step from 50/s to 200/s: short windows see the new rate, the 60 s window the mix', () => {
    const m = new RateMeter(0);
    feed(m, 50, 0, 30);
    feed(m, 200, 30, 60);
    expect(m.rate(1, 60_000)).toBeCloseTo(200, 0);
    expect(m.rate(10, 60_000)).toBeCloseTo(200, 0);
    expect(m.rate(60, 60_000)).toBeCloseTo((50 * 30 + 200 * 30) / 60, 0);
    // 5 s into the new rate, the 10 s window holds 5 s of each.
    const m2 = new RateMeter(0);
    feed(m2, 50, 0, 30);
    feed(m2, 200, 30, 35);
    expect(m2.rate(10, 35_000)).toBeCloseTo((50 * 5 + 200 * 5) / 10, 0);
  });

  it('divides by the time since start while that is shorter than the window', () => {
    const m = new RateMeter(1000);
    for (let i = 0; i < 10; i++) m.add(1, 1000 + i * 50); // 10 items in the first 0.5 s
    expect(m.rate(1, 1500)).toBeCloseTo(20, 6);
    expect(m.rate(60, 1500)).toBeCloseTo(20, 6);
    expect(m.rate(1, 1000)).toBe(0);
  });

  it('an idle spell: the 1 s rate drops to 0, the 60 s rate decays, the peak stays', () => {
    const m = new RateMeter(0);
    feed(m, 100, 0, 60);
    expect(m.rate(1, 61_000)).toBe(0);
    expect(m.rate(10, 65_000)).toBeCloseTo(50, 0);
    expect(m.rate(60, 90_000)).toBeCloseTo(50, 0);
    expect(m.rate(60, 125_000)).toBe(0);
    expect(m.peak(125_000)).toBeCloseTo(100, 0);
    // After hours idle, the meter counts afresh.
    m.add(7, 4 * 3_600_000);
    expect(m.rate(1, 4 * 3_600_000 + 500)).toBeCloseTo(7, 6);
  });

  it('the peak 1 s rate: a burst over a steady background, bounded by the true sliding peak', () => {
    const m = new RateMeter(0);
    feed(m, 100, 0, 5.2);
    for (let i = 0; i < 1000; i++) m.add(1, 5200 + i * 0.3); // 1000 items in 0.3 s at 5.2 s
    feed(m, 100, 5.2, 10);
    // Any 1 s window holds at most 1000 + 100 items and the one around the burst holds exactly that.
    expect(m.peak(10_000)).toBe(1100);
    expect(m.rate(1, 10_000)).toBeCloseTo(100, 0);
    // Before the head's windows are complete, the peak still counts what it has seen.
    const m2 = new RateMeter(0);
    for (let i = 0; i < 300; i++) m2.add(1, 100 + i);
    expect(m2.peak(450)).toBe(300);
  });

  it('records older than the ring are dropped, the rest still count', () => {
    const m = new RateMeter(0);
    m.add(5, 100_000);
    m.add(3, 10); // 100 s in the past: outside the 61 s ring
    m.add(2, 99_950); // 50 ms in the past: counted
    expect(m.rate(1, 100_000)).toBeCloseTo(7, 6);
  });
});

describe('Distribution', () => {
  it('percentiles of 1..1000 ms within 1%, exact count, sum, mean and max', () => {
    const d = new Distribution(1000, LATENCY_BUCKETS_MS, 0);
    for (let v = 1; v <= 1000; v++) d.record(v, v);
    const s = d.snapshot(1000);
    expect(s.count).toBe(1000);
    expect(s.sum).toBe(500_500);
    expect(s.mean).toBe(500.5);
    expect(s.max).toBe(1000);
    for (const [q, want] of [['p50', 500], ['p90', 900], ['p99', 990]] as const) {
      expect(Math.abs(s[q]! - want) / want, q).toBeLessThanOrEqual(0.01);
    }
    expect(s.recent.count).toBe(1000);
    expect(s.recent.p99! / 990).toBeCloseTo(1, 1);
  });

  it('sub-millisecond values keep their precision (recorded in µs)', () => {
    const d = new Distribution(1000, LATENCY_BUCKETS_MS, 0);
    for (let i = 0; i < 100; i++) d.record(0.25, 1);
    const s = d.snapshot(2);
    expect(s.p50! / 0.25).toBeCloseTo(1, 2);
    expect(s.max).toBe(0.25);
  });

  it('cumulative Prometheus buckets are exact for their bounds', () => {
    const d = new Distribution(1000, LATENCY_BUCKETS_MS, 0);
    for (let v = 1; v <= 1000; v++) d.record(v, 0);
    d.record(20_000, 0); // above every bound: only in +Inf (the count)
    const { le, cumulative } = d.snapshot(0).buckets;
    expect(le).toEqual(LATENCY_BUCKETS_MS);
    const want = le.map((b) => Math.min(1000, Math.floor(b)));
    expect(cumulative).toEqual(want);
    expect(d.snapshot(0).count).toBe(1001);
  });

  it('recent percentiles cover the last 10-20 s; since-start keeps everything', () => {
    const d = new Distribution(1000, LATENCY_BUCKETS_MS, 0);
    for (let i = 0; i < 100; i++) d.record(100, i * 10); // 100 ms values in the first second
    for (let i = 0; i < 100; i++) d.record(1, 25_000 + i); // 1 ms values at 25 s
    const s = d.snapshot(26_000);
    expect(s.count).toBe(200);
    expect(s.max).toBe(100);
    expect(s.recent.count).toBe(100);
    expect(s.recent.max).toBe(1);
    expect(s.recent.seconds).toBeGreaterThanOrEqual(WINDOW_MS / 1000);
    expect(s.recent.seconds).toBeLessThanOrEqual((2 * WINDOW_MS) / 1000);
    // Long after, nothing is recent, and the since-start figures stand.
    const later = d.snapshot(100_000);
    expect(later.recent).toMatchObject({ count: 0, p99: null, max: null, mean: null });
    expect(later).toMatchObject({ count: 200, max: 100 });
    expect(later.p99).toBeCloseTo(100, -1);
  });

  it('batch sizes: small integers counted exactly, larger ones by the HDR histogram, ranks split between them', () => {
    const d = new Distribution(1, SIZE_BUCKETS_ROWS, 0, EXACT_ROWS);
    for (let v = 1; v <= 2000; v++) d.record(v, v);
    const s = d.snapshot(2000);
    expect(s).toMatchObject({ count: 2000, sum: 2001000, mean: 1000.5, max: 2000, p50: 1000 });
    expect(Math.abs(s.p90! - 1800) / 1800).toBeLessThanOrEqual(0.01);
    expect(Math.abs(s.p99! - 1980) / 1980).toBeLessThanOrEqual(0.01);
    expect(s.recent.mean! / 1000.5).toBeCloseTo(1, 2);
    expect(s.buckets.cumulative).toEqual(SIZE_BUCKETS_ROWS.map((b) => Math.min(2000, b)));
    const e = new Distribution(1, SIZE_BUCKETS_ROWS, 0, EXACT_ROWS);
    for (const v of [3, 3, 3, 7, 500, 0]) e.record(v, 1);
    expect(e.snapshot(2)).toMatchObject({ count: 6, p50: 3, p90: 500, p99: 500, max: 500, sum: 516 });
    // Exact windows rotate like the HDR ones.
    e.record(9, 30_000);
    expect(e.snapshot(30_001).recent).toMatchObject({ count: 1, p50: 9, max: 9, mean: 9 });
    expect(e.snapshot(30_001)).toMatchObject({ count: 7, p50: 3, max: 500 });
  });

  it('an empty distribution reads null, not NaN or 0', () => {
    const s = new Distribution(1, SIZE_BUCKETS_ROWS, 0).snapshot(5);
    expect(s).toMatchObject({ count: 0, sum: 0, mean: null, p50: null, p90: null, p99: null, max: null });
    expect(s.buckets.cumulative.every((c) => c === 0)).toBe(true);
  });

  it('NaN and negative values are ignored; huge ones are clamped in the HDR part only', () => {
    const d = new Distribution(1, SIZE_BUCKETS_ROWS, 0);
    d.record(Number.NaN, 0);
    d.record(-1, 0);
    d.record(1e12, 0);
    const s = d.snapshot(0);
    expect(s.count).toBe(1);
    expect(s.max).toBe(1e12);
  });
});

describe('LogLinear', () => {
  it('buckets every integer with HdrHistogram’s layout: exact below 256, then 128 buckets per power of two (error < 1/128)', () => {
    let prev = -1;
    const bad: string[] = [];
    const values = [...Array.from({ length: 70_000 }, (_, i) => i), 3_600_000_000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1].sort((x, y) => x - y);
    for (const v of values) {
      const i = LogLinear.indexOf(v);
      const hi = LogLinear.highestOf(i);
      if (i < prev || i >= LogLinear.SLOTS || hi < v || LogLinear.indexOf(hi) !== i || (v >= 256 ? (hi - v) / v >= 1 / 128 : hi !== v)) bad.push(`${v}: slot ${i}, highest ${hi}`);
      prev = i;
    }
    expect(bad).toEqual([]);
  });

  it('percentiles, count, mean, add and reset', () => {
    const a = new LogLinear();
    for (let v = 1; v <= 1000; v++) a.record(v);
    expect(a.count).toBe(1000);
    expect(a.mean).toBe(500.5);
    expect(a.percentile(50)).toBe(LogLinear.highestOf(LogLinear.indexOf(500)));
    expect(Math.abs(a.percentile(99) - 990) / 990).toBeLessThan(0.01);
    expect(a.percentile(100)).toBe(LogLinear.highestOf(LogLinear.indexOf(1000)));
    const b = new LogLinear();
    b.record(5_000_000);
    a.add(b);
    expect(a.count).toBe(1001);
    expect(a.percentile(100)).toBeGreaterThanOrEqual(5_000_000);
    a.reset();
    expect([a.count, a.percentile(50)]).toEqual([0, 0]);
  });
});

describe('MetricsCollector', () => {
  it('active time counts nested and overlapping work once', () => {
    const c = new MetricsCollector(0);
    c.begin(100);
    c.begin(150); // nested
    c.end(200);
    c.end(300); // active 100..300
    c.begin(1000);
    expect(c.activeSeconds(1500)).toBeCloseTo(0.7, 9); // 0.2 + 0.5 still running
    expect(c.inFlight).toBe(1);
    c.end(2000);
    c.end(2500); // unmatched end: ignored
    expect(c.activeSeconds(9999)).toBeCloseTo(1.2, 9);
  });

  it('batch efficiency over the last 64 micro-batches, each capped at its target', () => {
    const c = new MetricsCollector(0);
    expect(c.efficiency()).toBeNull();
    for (let i = 0; i < EFFICIENCY_WINDOW; i++) c.microBatch(5, 10, 1, 1, i);
    expect(c.efficiency()).toBe(0.5);
    for (let i = 0; i < EFFICIENCY_WINDOW / 2; i++) c.microBatch(40, 10, 1, 1, 100 + i); // larger than target: 1
    expect(c.efficiency()).toBe(0.75);
    for (let i = 0; i < EFFICIENCY_WINDOW; i++) c.microBatch(10, 10, 1, 1, 200 + i);
    expect(c.efficiency()).toBe(1);
  });

  it('micro-batches feed the batch, size and queue-wait distributions; parallel efficiency from pool batches', () => {
    const c = new MetricsCollector(0);
    c.microBatch(8, 8, 2, 3, 10);
    c.batchRun(100, 5, 20);
    c.ranInline(10, 20, 21);
    c.ranInline(0, 21, 22); // rows of submitted requests: activity only
    c.ranDirect(7, 4, 23);
    c.requests(Float64Array.of(0.5, 99), 1, 24); // the first 1 of 2
    c.processed(1, 24);
    const lat = c.latency(30);
    expect(lat.batch.count).toBe(4);
    expect(lat.batch.sum).toBe(3 + 5 + 1 + 4);
    expect(lat.queueWait).toMatchObject({ count: 1, sum: 2 });
    expect(lat.submit).toMatchObject({ count: 1, sum: 0.5 });
    expect(c.sizes(30)).toMatchObject({ count: 4, sum: 8 + 100 + 10 + 7, max: 100 });
    expect(c.activeSeconds(30)).toBeCloseTo(0.002, 12);
    // Processed: the direct batches and the request, not the micro-batch or the plain batch run.
    expect(c.rates(1000).rate1s).toBeCloseTo(10 + 7 + 1, 9);
    expect(c.parallelEfficiency(2)).toBeNull();
    c.poolBatch(30, 20); // 30 ms of kernel over 20 ms wall: speedup 1.5 on 2 workers
    c.poolBatch(10, 10);
    expect(c.parallelEfficiency(2)).toBeCloseTo(40 / 30 / 2, 12);
  });

  it('processed items feed the rate windows', () => {
    const c = new MetricsCollector(0);
    for (let t = 0; t < 10_000; t += 10) c.processed(3, t); // 300/s
    c.processed(0, 5000);
    expect(c.rates(10_000)).toMatchObject({ rate1s: expect.closeTo(300, 0), rate10s: expect.closeTo(300, 0), rate60s: expect.closeTo(300, 0) });
    expect(c.rates(10_000).peakRate1s).toBe(300);
  });
});

describe('ProcessResources', () => {
  function fakeSources(state: { cpuUs: number; active: number; idle: number; delay: DelayHistogram }) {
    return {
      memoryUsage: () => ({ rss: 123 * 2 ** 20, heapUsed: 10, heapTotal: 20, external: 30, arrayBuffers: 40 }),
      cpuUsage: () => ({ user: state.cpuUs, system: 0 }),
      eventLoopUtilization: () => ({ active: state.active, idle: state.idle, utilization: 0 }),
      cores: 4,
      eventLoopDelay: () => state.delay,
    };
  }

  it('CPU from cpuUsage deltas over cores, refreshed at most once per window; memory of the process', () => {
    let now = 0;
    let disabled = 0;
    const delay: DelayHistogram = {
      count: 5, mean: (DELAY_RESOLUTION_MS + 2) * 1e6, max: (DELAY_RESOLUTION_MS + 9) * 1e6,
      percentile: (p) => (DELAY_RESOLUTION_MS + (p >= 99 ? 8 : 1)) * 1e6,
      reset: () => {},
      disable: () => (++disabled, true),
    };
    const state = { cpuUs: 0, active: 0, idle: 0, delay };
    const r = new ProcessResources({ now: () => now, eventLoopDelay: true, sources: fakeSources(state) });
    let s = r.snapshot();
    expect(s).toMatchObject({ rssBytes: 123 * 2 ** 20, heapUsedBytes: 10, heapTotalBytes: 20, externalBytes: 30, arrayBuffersBytes: 40, cores: 4 });
    expect(s.cpuUtilization).toBeNull();
    expect(s.eventLoopDelay).toBeNull();
    now = 2000;
    state.cpuUs = 4_000_000; // 4 s of CPU in 2 s on 4 cores: 50%
    state.active = 500;
    state.idle = 1500;
    s = r.snapshot();
    expect(s.cpuUtilization).toBeCloseTo(0.5, 12);
    expect(s.eventLoopUtilization).toBeCloseTo(0.25, 12);
    expect(s.windowSeconds).toBe(2);
    expect(s.cpuUserSeconds).toBe(4);
    expect(s.eventLoopDelay).toEqual({ p50: 1, p99: 8, max: 9, mean: 2 });
    // 0.5 s later: too short a window, the same figures.
    now = 2500;
    state.cpuUs = 6_000_000;
    expect(r.snapshot().cpuUtilization).toBeCloseTo(0.5, 12);
    now = 3000; // a 1 s window: 2 s of CPU on 4 cores
    expect(r.snapshot().cpuUtilization).toBeCloseTo(0.5, 12);
    r.close();
    expect(disabled).toBe(1);
  });

  it('without profiling there is no event-loop delay histogram', () => {
    let started = 0;
    const state = { cpuUs: 0, active: 0, idle: 0, delay: {} as DelayHistogram };
    const sources = { ...fakeSources(state), eventLoopDelay: () => (started++, state.delay) };
    const r = new ProcessResources({ now: () => 5000, eventLoopDelay: false, sources });
    expect(r.snapshot().eventLoopDelay).toBeNull();
    r.close();
    expect(started).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

const make = pipelines();

describe('pipeline.metrics()', () => {
  it('fills every section, and the sections agree with the counters', async () => {
    const p = make({ maxWorkers: 2, targetLatencyMs: 1e6 });
    await Promise.all(Array.from({ length: 200 }, (_, i) => p.submit(`row ${i}`)));
    await p.vectorize(['a', 'bb', 'ccc']);
    await p.processBatch([1, 2, 3], { task: new URL('./fixtures/double.mjs', import.meta.url) });
    const m = p.metrics();
    expect(m.profiling).toBe(true);
    expect(m.config).toEqual({
      maxWorkers: 2, maxBatchSize: 1000, batchTimeoutMs: 2, targetLatencyMs: 1e6, maxQueue: 100_000,
      enableVectorization: true, enableProfiling: true, workerHeapMb: null, fixedBatchSize: null,
    });
    const t = m.throughput;
    expect(t).toMatchObject({ accepted: m.accepted, processed: m.processed, failed: m.failed, shed: m.shed, bytesIn: m.bytesIn });
    expect(m.processed).toBe(206);
    expect(t.meanRate).toBeCloseTo(m.processed / m.uptimeSeconds, 6);
    expect(t.rate60s).toBeGreaterThan(0);
    expect(t.peakRate1s).toBeGreaterThan(0);
    expect(t.peakRate1s).toBeLessThanOrEqual(206);
    expect(t.inFlight).toBe(0);
    expect(t.activeSeconds).toBeGreaterThan(0);
    expect(t.activeSeconds).toBeLessThanOrEqual(m.uptimeSeconds);

    const lat = m.latency!;
    expect(lat.submit.count).toBe(200);
    expect(lat.batch.count).toBe(m.batcher.batches + 2); // micro-batches + the vectorize call + the processBatch call
    expect(lat.queueWait.count).toBe(m.batcher.batches);
    for (const d of [lat.batch, lat.queueWait, lat.submit]) {
      expect(d.p50!).toBeLessThanOrEqual(d.p99!);
      expect(d.p99!).toBeLessThanOrEqual(d.max!);
      expect(d.buckets.cumulative.at(-1)).toBeLessThanOrEqual(d.count);
    }
    const b = m.batching;
    expect(b).toMatchObject({ queueDepth: 0, target: m.batcher.target, batches: m.batcher.batches, fullBatches: m.batcher.fullBatches, timeoutBatches: m.batcher.timeoutBatches });
    expect(b.size!.count).toBe(lat.batch.count);
    expect(b.size!.sum).toBe(200 + 3 + 3);
    expect(b.efficiency).toBeGreaterThan(0);
    expect(b.efficiency).toBeLessThanOrEqual(1);

    const par = m.parallelization;
    expect(par).toMatchObject({ workers: 2, threads: 2, busyWorkers: 0, inlineBatches: m.batches.inline, poolBatches: m.batches.pool });
    expect(par.completedTasks).toBeGreaterThanOrEqual(1);
    expect(par.busyWorkerSeconds).toBeGreaterThanOrEqual(0);
    expect(par.poolUtilization).toBe(m.pool!.utilization);

    const r = m.resources;
    expect(r.rssBytes).toBeGreaterThan(r.heapUsedBytes);
    expect(r.cores).toBeGreaterThanOrEqual(1);
    expect(r.cpuUserSeconds).toBeGreaterThan(0);
    expect(JSON.parse(JSON.stringify(m.throughput))).toEqual(m.throughput);
  });

  it('the pool path: busy worker-seconds and parallel efficiency', async () => {
    const p = make({ maxWorkers: 2 });
    (p as unknown as Record<symbol, string>)[ROUTE] = 'pool';
    const texts = Array.from({ length: 4000 }, (_, i) => `a longer row of text number ${i} `.repeat(4));
    for (let i = 0; i < 3; i++) await p.vectorize(texts);
    const m = p.metrics();
    expect(m.batches.pool).toBe(3);
    expect(m.parallelization.parallelEfficiency).toBeGreaterThan(0);
    expect(m.parallelization.busyWorkerSeconds).toBeGreaterThan(0);
    expect(m.latency!.batch.count).toBe(3);
    expect(m.batching.size!.max).toBe(4000);
  });

  it('enableProfiling: false: counters only, no histograms, rate windows or event-loop delay', async () => {
    const p = make({ maxWorkers: 1, enableProfiling: false });
    await Promise.all(Array.from({ length: 50 }, (_, i) => p.submit(`row ${i}`)));
    await p.vectorize(['x']);
    const m = p.metrics();
    expect(m.profiling).toBe(false);
    expect(m.config.enableProfiling).toBe(false);
    expect(m.processed).toBe(51);
    expect(m.latency).toBeNull();
    expect(m.throughput).toMatchObject({ rate1s: null, rate10s: null, rate60s: null, peakRate1s: null, inFlight: null, activeSeconds: null });
    expect(m.throughput.meanRate).toBeGreaterThan(0);
    expect(m.batching.size).toBeNull();
    expect(m.batching.efficiency).toBeNull();
    expect(m.parallelization.parallelEfficiency).toBeNull();
    expect(m.resources.eventLoopDelay).toBeNull();
    expect(m.batcher.batches).toBeGreaterThan(0);
  });
});
