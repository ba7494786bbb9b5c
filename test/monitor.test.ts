/**
 * The monitor (src/observe/monitor/monitor.ts, alerts.ts, trend.ts, health.ts) on a scripted stand-in pipeline
 * (test/fixtures/fake-pipeline.ts) with a fake clock: every alert rule fires and resolves with
 * hysteresis, idle pipelines raise nothing, trend slopes and the health formula on known inputs,
 * the report's shape and its atomic export, and flat memory over a long simulated run. One test
 * runs it on a real pipeline.
 */
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Alert, AlertRule, ResolvedAlert } from '../src/observe/monitor/alerts.js';
import { DEFAULT_THRESHOLDS } from '../src/observe/monitor/alerts.js';
import { HEALTH_WEIGHTS, type HealthInputs, healthScore } from '../src/observe/monitor/health.js';
import { type Monitor, type MonitorOptions, createMonitor } from '../src/observe/monitor/monitor.js';
import { createPipeline } from '../src/pipeline/pipeline.js';
import { leastSquaresSlope, trendOf } from '../src/observe/monitor/trend.js';
import { FakePipeline, type StepFigures } from './fixtures/fake-pipeline.js';

const monitors: Monitor[] = [];
afterEach(() => {
  for (const m of monitors.splice(0)) m.stop();
  vi.useRealTimers();
});

interface Harness {
  p: FakePipeline;
  m: Monitor;
  alerts: Alert[];
  resolved: ResolvedAlert[];
  degrading: Alert[];
  /** Advances the fake pipeline by `seconds` with these figures and takes a sample. */
  step(f?: StepFigures, seconds?: number): void;
  wall: () => number;
}

function harness(options: MonitorOptions = {}, setup?: (p: FakePipeline) => void): Harness {
  const p = new FakePipeline();
  setup?.(p);
  let wall = 1_700_000_000_000;
  const m = createMonitor(p, { intervalMs: 60_000, clock: () => wall, ...options });
  monitors.push(m);
  const h: Harness = {
    p, m, alerts: [], resolved: [], degrading: [],
    step(f = {}, seconds = 1) {
      p.step(seconds, f);
      wall += seconds * 1000;
      m.sample();
    },
    wall: () => wall,
  };
  m.on('alert', (a) => h.alerts.push(a));
  m.on('resolved', (a) => h.resolved.push(a));
  m.on('degrading', (a) => h.degrading.push(a));
  return h;
}

/** A healthy loaded second: busy, fast, pool used, CPU moderate. */
const busy: StepFigures = { rate: 5000, active: 1, util: 0.9, cpu: 50 };

describe('alert rules: each fires after N breaching samples and resolves after M clear ones', () => {
  type Case = {
    rule: string;
    severity: 'info' | 'warning' | 'critical';
    threshold: number;
    breach: (h: Harness) => StepFigures;
    clear: (h: Harness) => StepFigures;
    value: number;
  };
  const cases: Case[] = [
    { rule: 'processing-rate', severity: 'warning', threshold: 100, breach: () => ({ ...busy, rate: 40 }), clear: () => busy, value: 40 },
    {
      rule: 'memory', severity: 'critical', threshold: 2048,
      breach: (h) => ((h.p.rssMb = 3000), busy), clear: (h) => ((h.p.rssMb = 500), busy), value: 3000,
    },
    { rule: 'cpu', severity: 'warning', threshold: 85, breach: () => ({ ...busy, cpu: 97 }), clear: () => busy, value: 97 },
    { rule: 'worker-utilization', severity: 'info', threshold: 0.3, breach: () => ({ ...busy, util: 0.1 }), clear: () => busy, value: 0.1 },
    {
      rule: 'batch-efficiency', severity: 'warning', threshold: 0.7,
      breach: (h) => ((h.p.efficiency = 0.4), { ...busy, microBatches: 10 }),
      clear: (h) => ((h.p.efficiency = 0.95), { ...busy, microBatches: 10 }), value: 0.4,
    },
    {
      rule: 'latency-p99', severity: 'warning', threshold: 50,
      breach: (h) => ((h.p.p99 = 80), { ...busy, submits: 100 }),
      clear: (h) => ((h.p.p99 = 20), { ...busy, submits: 100 }), value: 80,
    },
    {
      rule: 'queue-depth', severity: 'warning', threshold: 0.8,
      breach: (h) => ((h.p.queueDepth = 900), busy), clear: (h) => ((h.p.queueDepth = 10), busy), value: 0.9,
    },
  ];

  for (const c of cases) {
    it(`${c.rule} (${c.severity})`, () => {
      const h = harness({ fireAfter: 3, resolveAfter: 2 });
      for (let i = 0; i < 3; i++) h.step(c.clear(h));
      expect(h.alerts).toEqual([]);
      const start = h.wall() + 1000; // the first breaching sample's time
      h.step(c.breach(h));
      h.step(c.breach(h));
      expect(h.alerts, 'not before 3 breaching samples').toEqual([]);
      h.step(c.breach(h));
      expect(h.alerts).toHaveLength(1);
      const a = h.alerts[0]!;
      expect(a).toMatchObject({ rule: c.rule, severity: c.severity, threshold: c.threshold, since: start });
      expect(a.value).toBeCloseTo(c.value, 9);
      expect(a.message).toContain(String(c.threshold));
      expect(h.m.alerts().active.map((x) => x.rule)).toEqual([c.rule]);
      expect(h.m.activeBySeverity()[c.severity]).toBe(1);
      // Still breaching: no second event.
      h.step(c.breach(h));
      expect(h.alerts).toHaveLength(1);
      h.step(c.clear(h));
      expect(h.resolved, 'not after 1 clear sample').toEqual([]);
      h.step(c.clear(h));
      expect(h.resolved).toHaveLength(1);
      expect(h.resolved[0]).toMatchObject({ rule: c.rule, severity: c.severity, since: start, resolvedAt: h.wall() });
      expect(h.m.alerts()).toEqual({ active: [], recent: [h.resolved[0]] });
      expect(h.alerts).toHaveLength(1);
    });
  }

  it('a value hovering at its threshold does not flap', () => {
    const h = harness({ fireAfter: 3, resolveAfter: 3 });
    for (let i = 0; i < 50; i++) h.step({ ...busy, cpu: i % 3 === 2 ? 50 : 90 }); // two breaching, one clear, ...
    expect(h.alerts).toEqual([]);
    for (let i = 0; i < 3; i++) h.step({ ...busy, cpu: 90 });
    expect(h.alerts.map((a) => a.rule)).toEqual(['cpu']);
    for (let i = 0; i < 50; i++) h.step({ ...busy, cpu: i % 3 === 2 ? 90 : 50 }); // two clear, one breaching, ...
    expect(h.resolved).toEqual([]);
    expect(h.alerts).toHaveLength(1);
    expect(h.m.alerts().active[0]!.rule).toBe('cpu');
    expect(h.m.alerts().active[0]!.worst).toBeCloseTo(90, 6);
  });

  it('an idle pipeline raises nothing, however long (rate 0, pool idle)', () => {
    const h = harness({ fireAfter: 1 });
    for (let i = 0; i < 200; i++) h.step({ rate: 0, active: 0, util: 0, cpu: 1 });
    expect(h.alerts).toEqual([]);
    // Full throughput and utilization marks; memory and CPU headroom as measured (100 MiB, 1%).
    expect(h.m.health().score).toBe(Math.round((30 + 25 + 25 * (1 - 100 / 2048) + 20 * (1 - 1 / 85)) * 10) / 10);
  });

  it('a light load (low rate because demand is low, work present a fraction of the time) raises no rate alert', () => {
    const h = harness({ fireAfter: 1 });
    for (let i = 0; i < 100; i++) h.step({ rate: 20, active: 0.05, util: 0.05, cpu: 3 });
    expect(h.alerts).toEqual([]);
  });

  it('without profiling: "loaded" is work queued or running at the sample; latency and efficiency rules have no data', () => {
    const h = harness({ fireAfter: 1 }, (p) => (p.profiling = false));
    h.p.p99 = 500;
    h.p.efficiency = 0.1;
    h.step({ rate: 10, microBatches: 5, submits: 5 }); // idle at the sample: nothing
    expect(h.alerts).toEqual([]);
    expect(h.m.history()[0]).toMatchObject({ activeFraction: null, loaded: false, latencyP99Ms: null, batchEfficiency: null });
    h.p.queueDepth = 5;
    h.step({ rate: 10, microBatches: 5, submits: 5 });
    expect(h.alerts.map((a) => a.rule).sort()).toEqual(['processing-rate', 'worker-utilization']);
  });

  it('thresholds are configurable, and unknown or bad ones are refused', () => {
    const h = harness({ fireAfter: 1, thresholds: { cpuUtilizationMax: 40, latencyP99MaxMs: 500 } });
    expect(h.m.thresholds).toEqual({ ...DEFAULT_THRESHOLDS, cpuUtilizationMax: 40, latencyP99MaxMs: 500 });
    h.step({ ...busy, cpu: 45 });
    expect(h.alerts.map((a) => a.rule)).toEqual(['cpu']);
    const p = new FakePipeline();
    expect(() => createMonitor(p, { thresholds: { cpuMax: 1 } as never })).toThrow(new TypeError("unknown threshold 'cpuMax'"));
    expect(() => createMonitor(p, { thresholds: { cpuUtilizationMax: Number.NaN } })).toThrow(
      new TypeError('options.thresholds.cpuUtilizationMax must be a finite number, got NaN'),
    );
  });

  it('latencyP99MaxMs defaults to the pipeline targetLatencyMs', () => {
    const h = harness({}, (p) => (p.targetLatencyMs = 7));
    expect(h.m.thresholds.latencyP99MaxMs).toBe(7);
  });

  it('custom rules fire and resolve like the built-in ones', () => {
    const rule: AlertRule = {
      name: 'too-many-failures', severity: 'critical', direction: 'above', threshold: 5,
      description: 'failures per second', value: ({ sample }) => sample.failedRate,
    };
    const h = harness({ fireAfter: 2, resolveAfter: 1, rules: [rule] });
    h.p.failed += 10;
    h.step(busy);
    h.p.failed += 10;
    h.step(busy);
    expect(h.alerts).toHaveLength(1);
    expect(h.alerts[0]).toMatchObject({ rule: 'too-many-failures', severity: 'critical', value: 10, threshold: 5, message: 'failures per second 10 is above the threshold 5' });
    h.step(busy);
    expect(h.resolved.map((a) => a.rule)).toEqual(['too-many-failures']);
    expect(() => createMonitor(new FakePipeline(), { rules: [{ ...rule, name: 'cpu' }] })).toThrow(new TypeError("alert rule 'cpu' is defined twice"));
  });

  it('a custom rule that throws is reported and counts as clear', () => {
    const boom: AlertRule = { name: 'boom', severity: 'info', direction: 'above', threshold: 0, value: () => { throw new Error('bad rule'); } };
    const h = harness({ fireAfter: 1, rules: [boom] });
    const errors: Error[] = [];
    h.m.on('error', (e) => errors.push(e));
    h.step(busy);
    expect(errors.map((e) => e.message)).toEqual(["alert rule 'boom' threw: bad rule"]);
    expect(h.alerts).toEqual([]);
  });
});

describe('trends', () => {
  it('least-squares slope of a known series', () => {
    const xs = [0, 1, 2, 3, 4, 5];
    expect(leastSquaresSlope(xs, xs.map((x) => 2.5 * x + 3))).toBeCloseTo(2.5, 12);
    expect(leastSquaresSlope(xs, [1, 3, 2, 4, 3, 5])).toBeCloseTo(11 / 17.5, 12); // sxy 11, sxx 17.5
    expect(leastSquaresSlope([1], [1])).toBeNull();
    expect(leastSquaresSlope([2, 2, 2], [1, 2, 3])).toBeNull();
    const t = trendOf([0, 1, 2, 3, 4], [100, 90, 80, 70, 60], 5);
    expect(t).toEqual({ samples: 5, slopePerSecond: -10, changePerWindow: -40, level: 80, relativeChange: -0.5 });
    expect(trendOf([0, 1], [1, 2], 5).samples).toBe(0);
  });

  it('throughput falling faster than 15% of its level per window, while loaded: degrading', () => {
    const h = harness({ trendWindow: 5, fireAfter: 2, resolveAfter: 2 });
    // Loaded and steady: no trend alert.
    for (let i = 0; i < 10; i++) h.step({ ...busy, rate: 5000 });
    expect(h.m.trends().throughput.relativeChange).toBeCloseTo(0, 9);
    // Loaded and falling 4% of the start per sample: over 5 samples, about -17% of the level.
    for (let i = 1; i <= 6; i++) h.step({ ...busy, rate: 5000 * (1 - 0.04 * i) });
    const t = h.m.trends().throughput;
    expect(t.samples).toBe(5);
    expect(t.slopePerSecond).toBeCloseTo(-200, 6);
    expect(t.changePerWindow).toBeCloseTo(-800, 6);
    expect(h.degrading.map((a) => a.rule)).toEqual(['throughput-degrading']);
    expect(h.alerts.map((a) => a.rule)).toContain('throughput-degrading');
    expect(h.degrading[0]!.value).toBeLessThan(-0.15);
  });

  it('throughput falling because the load stopped is not degradation', () => {
    const h = harness({ trendWindow: 5, fireAfter: 1 });
    for (let i = 0; i < 6; i++) h.step({ ...busy, rate: 5000 });
    for (let i = 1; i <= 6; i++) h.step({ rate: 5000 - 800 * i, active: 0.5, util: 0.5, cpu: 20 }); // demand falling, not loaded
    expect(h.m.trends().throughput.relativeChange).toBeLessThan(-0.15);
    expect(h.degrading).toEqual([]);
  });

  it('p99 latency rising faster than 15% of its level per window: degrading', () => {
    const h = harness({ trendWindow: 4, fireAfter: 1, thresholds: { latencyP99MaxMs: 1e6 } });
    for (let i = 0; i < 4; i++) {
      h.p.p99 = 10;
      h.step({ ...busy, submits: 50 });
    }
    expect(h.degrading).toEqual([]);
    for (let i = 1; i <= 4; i++) {
      h.p.p99 = 10 + 2 * i;
      h.step({ ...busy, submits: 50 });
    }
    const t = h.m.trends().latencyP99;
    expect(t.slopePerSecond).toBeCloseTo(2, 9);
    expect(t.relativeChange).toBeCloseTo(6 / 15, 9);
    expect(h.degrading.map((a) => a.rule)).toEqual(['latency-degrading']);
  });
});

describe('health', () => {
  const base: HealthInputs = {
    processed: 1000, demand: 1000, activeSeconds: 10, busyWorkerSeconds: 16, workers: 2,
    rssMb: 0, memoryUsageMaxMb: 2048, cpuPercent: 0, cpuUtilizationMax: 85,
  };
  const table: Array<[string, Partial<HealthInputs>, number, string]> = [
    ['all at their best', {}, 100, 'A'],
    ['idle: no demand, no activity', { processed: 0, demand: 0, activeSeconds: 0, busyWorkerSeconds: 0 }, 100, 'A'],
    ['half the demand processed', { processed: 500 }, 85, 'B'],
    ['nothing processed under demand', { processed: 0 }, 70, 'C'],
    ['pool at 40% while active (optimum 80%)', { busyWorkerSeconds: 8 }, 87.5, 'B'],
    ['pool at 5% while active', { busyWorkerSeconds: 1 }, 76.6, 'C'], // 75 + 25 x 0.05 / 0.8, to 0.1
    ['pool idle while active (every batch inline): not judged', { busyWorkerSeconds: 0 }, 100, 'A'],
    ['half the memory budget', { rssMb: 1024 }, 87.5, 'B'],
    ['over the memory budget', { rssMb: 4096 }, 75, 'C'],
    ['CPU at half its limit', { cpuPercent: 42.5 }, 90, 'A'],
    ['CPU at its limit', { cpuPercent: 85 }, 80, 'B'],
    ['CPU not measured yet', { cpuPercent: null }, 100, 'A'],
    ['everything bad', { processed: 100, busyWorkerSeconds: 0.1, rssMb: 2048, cpuPercent: 100 }, 3.2, 'F'], // 3 + 25 x 0.005 / 0.8
    ['mixed', { processed: 800, busyWorkerSeconds: 12, rssMb: 512, cpuPercent: 34 }, 30 * 0.8 + 25 * (0.6 / 0.8) + 25 * 0.75 + 20 * 0.6, 'C'],
  ];
  for (const [name, over, score, grade] of table) {
    it(`${name}: ${score} (${grade})`, () => {
      const h = healthScore({ ...base, ...over });
      expect(h.score).toBeCloseTo(score, 9);
      expect(h.grade).toBe(grade);
      const c = h.components;
      expect(c.throughput.weight + c.utilization.weight + c.memory.weight + c.cpu.weight).toBe(100);
      expect(c.throughput.points + c.utilization.points + c.memory.points + c.cpu.points).toBeCloseTo(h.score, 1);
      // Not judged (score 1) exactly when there is nothing to judge: no activity, or an idle pool.
      expect(c.utilization.input === null).toBe(({ ...base, ...over }).activeSeconds === 0 || ({ ...base, ...over }).busyWorkerSeconds === 0);
    });
  }

  it('the weights are the original ones', () => {
    expect(HEALTH_WEIGHTS).toEqual({ throughput: 30, utilization: 25, memory: 25, cpu: 20 });
  });

  it('work kept inline (the pool idle while loaded) leaves utilization unjudged; a little pool work is judged', () => {
    const h = harness({ trendWindow: 4 });
    for (let i = 0; i < 4; i++) h.step({ rate: 5000, active: 1, util: 0, cpu: 0 });
    expect(h.m.health().components.utilization).toEqual({ weight: 25, score: 1, points: 25, input: null });
    for (let i = 0; i < 4; i++) h.step({ rate: 5000, active: 1, util: 0.2, cpu: 0 });
    const u = h.m.health().components.utilization;
    expect(u.input).toBeCloseTo(0.2, 9);
    expect(u.points).toBeCloseTo(25 * (0.2 / 0.8), 9);
  });

  it('the monitor scores over its trend window, from the pipeline figures', () => {
    const h = harness({ trendWindow: 4 });
    h.p.rssMb = 1024;
    for (let i = 0; i < 4; i++) h.step({ rate: 600, demand: 1000, active: 1, util: 0.4, cpu: 17 });
    const health = h.m.health();
    expect(health.components.throughput.input).toBeCloseTo(0.6, 9);
    expect(health.components.utilization.input).toBeCloseTo(0.4, 9);
    expect(health.components.memory.input).toBe(1024);
    expect(health.components.cpu.input).toBeCloseTo(17, 9);
    expect(health.score).toBeCloseTo(30 * 0.6 + 25 * 0.5 + 25 * 0.5 + 20 * 0.8, 9);
    expect(h.m.history().at(-1)!.health).toBe(health.score);
  });
});

describe('report', () => {
  it('has every part, as JSON', () => {
    const h = harness({ historySize: 5, trendWindow: 3, fireAfter: 1 });
    for (let i = 0; i < 8; i++) h.step({ ...busy, cpu: 95 });
    const r = h.m.report();
    expect(Object.keys(r)).toEqual(['schema', 'timestamp', 'configuration', 'metrics', 'history', 'alerts', 'thresholds', 'trends', 'health']);
    expect(r.schema).toBe('dtesn-monitor-report/1');
    expect(r.timestamp).toBe(new Date(h.wall()).toISOString());
    expect(r.configuration.monitor).toEqual({
      intervalMs: 60_000, historySize: 5, trendWindow: 3, fireAfter: 1, resolveAfter: 3, recentAlerts: 50,
      rules: ['processing-rate', 'memory', 'cpu', 'worker-utilization', 'batch-efficiency', 'latency-p99', 'queue-depth', 'throughput-degrading', 'latency-degrading'],
    });
    expect(r.configuration.pipeline).toEqual(h.p.metrics().config);
    expect(r.history).toHaveLength(5);
    expect(r.history.map((s) => s.time)).toEqual([4, 5, 6, 7, 8].map((k) => 1_700_000_000_000 + k * 1000));
    for (const s of r.history) {
      for (const k of ['time', 'uptimeSeconds', 'intervalSeconds', 'rate', 'failedRate', 'demandRate', 'workerUtilization', 'cpuPercent', 'rssMb', 'queueDepth', 'queueRatio', 'health'] as const) {
        expect(typeof s[k], k).toBe('number');
      }
      expect(typeof s.loaded).toBe('boolean');
    }
    expect(r.alerts.active.map((a) => a.rule)).toEqual(['cpu']);
    expect(r.alerts.recent).toEqual([]);
    expect(r.thresholds).toEqual({ ...DEFAULT_THRESHOLDS, latencyP99MaxMs: 50 });
    expect(r.trends.throughput.samples).toBe(3);
    expect(r.health.score).toBeGreaterThan(0);
    expect(r.metrics.processed).toBe(h.p.processed);
    // Plain JSON: nothing lost or changed by a round trip.
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  describe('exportReport', () => {
    let dir = '';
    afterEach(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('writes atomically: the whole report or the old file, and no temporary file left', async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'dtesn-report-'));
      const file = path.join(dir, 'report.json');
      await writeFile(file, 'old');
      const h = harness();
      h.step(busy);
      await h.m.exportReport(file);
      const r = JSON.parse(await readFile(file, 'utf8'));
      expect(r.schema).toBe('dtesn-monitor-report/1');
      expect(r.history).toHaveLength(1);
      expect(await readdir(dir)).toEqual(['report.json']);
      // Concurrent exports: each rename is atomic, the file is one complete report.
      await Promise.all(Array.from({ length: 10 }, () => h.m.exportReport(file)));
      expect(JSON.parse(await readFile(file, 'utf8')).schema).toBe('dtesn-monitor-report/1');
      expect(await readdir(dir)).toEqual(['report.json']);
    });

    it('rejects with a clear error where it cannot write, and leaves nothing behind', async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'dtesn-report-'));
      const h = harness();
      const missing = path.join(dir, 'no', 'such', 'dir', 'r.json');
      const e1 = await h.m.exportReport(missing).then(() => null, (e: unknown) => e as Error & { cause: NodeJS.ErrnoException });
      expect(e1?.message).toMatch(new RegExp(`^cannot write the monitor report to ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`));
      expect(e1?.cause.code).toBe('ENOENT');
      await mkdir(path.join(dir, 'taken'));
      const e2 = await h.m.exportReport(path.join(dir, 'taken')).then(() => null, (e: unknown) => e as Error & { cause: NodeJS.ErrnoException });
      expect(e2?.message).toContain(`cannot write the monitor report to ${path.join(dir, 'taken')}`);
      expect(['EISDIR', 'EEXIST', 'ENOTEMPTY', 'EPERM']).toContain(e2?.cause.code);
      expect(await readdir(dir)).toEqual(['taken']);
      await expect(h.m.exportReport('')).rejects.toThrow(new TypeError('path must be a non-empty string, got string'));
    });
  });
});

describe('lifecycle and bounds', () => {
  it('samples every intervalMs until stop()', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const p = new FakePipeline();
    const m = createMonitor(p, { intervalMs: 1000 });
    monitors.push(m);
    const samples: unknown[] = [];
    m.on('sample', (s) => samples.push(s));
    for (let i = 0; i < 5; i++) {
      p.step(1, busy);
      vi.advanceTimersByTime(1000);
    }
    expect(samples).toHaveLength(5);
    expect(m.running).toBe(true);
    m.stop();
    m.stop();
    expect(m.running).toBe(false);
    p.step(10, busy);
    vi.advanceTimersByTime(10_000);
    expect(samples).toHaveLength(5);
    expect(m.history()).toHaveLength(5);
  });

  it('a failing source is reported through "error" (or a warning), and sampling goes on', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const p = new FakePipeline();
    const m = createMonitor(p, { intervalMs: 100 });
    monitors.push(m);
    const errors: Error[] = [];
    m.on('error', (e) => errors.push(e));
    const real = p.metrics.bind(p);
    p.metrics = () => {
      throw new Error('source down');
    };
    vi.advanceTimersByTime(200);
    expect(errors.map((e) => e.message)).toEqual(['source down', 'source down']);
    p.metrics = real;
    p.step(1, busy);
    vi.advanceTimersByTime(100);
    expect(m.history()).toHaveLength(1);
  });

  it('two samples at the same instant make one', () => {
    const h = harness();
    h.step(busy);
    expect(h.m.sample()).toBeNull();
    expect(h.m.history()).toHaveLength(1);
  });

  it('refuses bad options', () => {
    const p = new FakePipeline();
    const cases: Array<[unknown, ErrorConstructor, string]> = [
      [{ intervalMs: 0 }, RangeError, 'options.intervalMs must be a number in [1, 2147483647], got 0'],
      [{ intervalMs: 2 ** 31 }, RangeError, 'options.intervalMs must be a number in [1, 2147483647], got 2147483648'],
      [{ intervalMs: '5' }, TypeError, 'options.intervalMs must be a number, got string'],
      [{ historySize: 1 }, RangeError, 'options.historySize must be an integer >= 2, got 1'],
      [{ historySize: 5, trendWindow: 6 }, RangeError, 'options.trendWindow must be <= historySize (5), got 6'],
      [{ fireAfter: 0 }, RangeError, 'options.fireAfter must be an integer >= 1, got 0'],
      [{ every: 5 }, TypeError, "unknown monitor option 'every'"],
      [{ clock: 5 }, TypeError, 'options.clock must be a function, got number'],
      [{ rules: {} }, TypeError, 'options.rules must be an array of AlertRule objects, got Object'],
      [{ thresholds: 3 }, TypeError, 'options.thresholds must be an object, got number'],
    ];
    for (const [o, E, msg] of cases) expect(() => createMonitor(p, o as MonitorOptions)).toThrow(new E(msg));
    expect(() => createMonitor({} as never)).toThrow(new TypeError('pipeline must be a pipeline (an object with metrics()), got Object'));
  });

  it('memory stays flat over a long simulated run (100,000 samples, alerts coming and going)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const h = harness({ historySize: 50, recentAlerts: 20, fireAfter: 1, resolveAfter: 1, trendWindow: 10 });
    let alerts = 0;
    h.m.on('alert', () => alerts++);
    const run = (n: number) => {
      for (let i = 0; i < n; i++) {
        h.p.step(1, { ...busy, cpu: i % 20 < 10 ? 95 : 40, microBatches: 3, submits: 10 });
        h.m.sample();
      }
    };
    run(10_000);
    gc();
    const before = process.memoryUsage().heapUsed;
    run(100_000);
    expect(alerts).toBeGreaterThan(5000);
    expect(h.m.history()).toHaveLength(50);
    expect(h.m.alerts().recent).toHaveLength(20);
    expect(h.alerts.length).toBe(alerts); // the harness keeps its own list: that one grows, the monitor's do not
    h.alerts.length = 0;
    h.resolved.length = 0;
    gc();
    // Unbounded lists would hold 100k samples (~200 B each, ~20 MB) and 5k+ alerts.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(4 * 2 ** 20);
  });
});

describe('on a real pipeline', () => {
  it('samples, scores, reports and stops', async () => {
    const p = createPipeline({ maxWorkers: 2 });
    try {
      const m = createMonitor(p, { intervalMs: 50 });
      monitors.push(m);
      const samples: unknown[] = [];
      m.on('sample', (s) => samples.push(s));
      for (let round = 0; round < 5; round++) {
        await Promise.all(Array.from({ length: 300 }, (_, i) => p.submit(`row ${round} ${i}`)));
        await new Promise((r) => setTimeout(r, 60));
      }
      expect(samples.length).toBeGreaterThan(2);
      const r = m.report();
      expect(r.history.length).toBe(samples.length);
      expect(r.metrics.processed).toBe(1500);
      expect(r.health.score).toBeGreaterThan(0);
      expect(r.health.score).toBeLessThanOrEqual(100);
      expect(r.history.some((s) => s.rate > 0)).toBe(true);
      expect(r.history.every((s) => s.rssMb > 10 && s.rssMb < 2048)).toBe(true);
      expect(JSON.parse(JSON.stringify(r)).schema).toBe('dtesn-monitor-report/1');
      m.stop();
    } finally {
      await p.close();
    }
  });
});
