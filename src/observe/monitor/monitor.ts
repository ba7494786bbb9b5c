/**
 * The monitor: samples a pipeline's metrics every `intervalMs`, keeps a bounded history, raises
 * and resolves alerts with hysteresis (alerts.ts), fits trends (trend.ts), scores health
 * (health.ts) and writes reports. docs/METRICS.md describes every figure.
 *
 * Each sample is computed from the difference of two snapshots (counters over the interval, on
 * the pipeline's monotonic clock), so a figure is what happened in that interval: never an
 * average of averages, never a since-start figure standing in for "now".
 *
 * Memory is flat however long it runs: the history, the recent alerts and the trend window are
 * fixed-size rings; the active alerts are at most one per rule.
 */
import { EventEmitter } from 'node:events';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  type Alert,
  type AlertRule,
  AlertTracker,
  DEFAULT_THRESHOLDS,
  LOADED_FRACTION,
  type ResolvedAlert,
  type Severity,
  type Thresholds,
  builtinRules,
} from './alerts.js';
import { type Health, healthScore } from './health.js';
import type { MetricsSource, PipelineMetrics, PipelineSettings } from '../metrics.js';
import { Ring } from '../../common/ring.js';
import { trendOf } from './trend.js';
import type { MonitorSample, MonitorTrends } from './sample.js';
import { describe, intSetting } from '../../common/check.js';

export type { Alert, AlertRule, ResolvedAlert, RuleContext, Severity, Thresholds } from './alerts.js';
export type { Grade, Health, HealthComponent } from './health.js';
export type { Trend } from './trend.js';
export type { MonitorSample, MonitorTrends } from './sample.js';

export interface MonitorOptions {
  /** [1000] sampling interval, ms. */
  intervalMs?: number;
  /** Overrides of the default thresholds. */
  thresholds?: Partial<Thresholds>;
  /** [300] samples kept. */
  historySize?: number;
  /** [10] samples in the trend fit and the health window (<= historySize). */
  trendWindow?: number;
  /** [3] consecutive breaching samples before an alert fires. */
  fireAfter?: number;
  /** [3] consecutive clear samples before it resolves. */
  resolveAfter?: number;
  /** [50] resolved alerts kept. */
  recentAlerts?: number;
  /** Custom rules, judged after the built-in ones. */
  rules?: readonly AlertRule[];
  /** [Date.now] wall clock for sample times and alert `since`. */
  clock?: () => number;
}

export interface MonitorReport {
  schema: 'dtesn-monitor-report/1';
  /** ISO 8601, when the report was made. */
  timestamp: string;
  configuration: {
    pipeline: PipelineSettings;
    monitor: { intervalMs: number; historySize: number; trendWindow: number; fireAfter: number; resolveAfter: number; recentAlerts: number; rules: string[] };
  };
  metrics: PipelineMetrics;
  /** Oldest first, at most historySize. */
  history: MonitorSample[];
  alerts: { active: Alert[]; recent: ResolvedAlert[] };
  thresholds: Thresholds;
  trends: MonitorTrends;
  health: Health;
}

export interface MonitorEvents {
  sample: [MonitorSample];
  alert: [Alert];
  resolved: [ResolvedAlert];
  /** A trend rule (throughput-degrading, latency-degrading) fired; also emitted as 'alert'. */
  degrading: [Alert];
  /** Sampling failed (the source or a custom rule threw); without a listener it becomes a warning. */
  error: [Error];
}

/** Cumulative figures of one snapshot, for differences. */
interface Totals {
  timestamp: number;
  uptimeSeconds: number;
  processed: number;
  failed: number;
  demand: number;
  active: number | null;
  busy: number;
  cpu: number;
  microBatches: number;
  submits: number;
}

function totalsOf(m: PipelineMetrics): Totals {
  return {
    timestamp: m.timestamp,
    uptimeSeconds: m.uptimeSeconds,
    processed: m.processed,
    failed: m.failed,
    demand: m.accepted + m.shed,
    active: m.throughput.activeSeconds,
    busy: m.parallelization.busyWorkerSeconds,
    cpu: m.resources.cpuUserSeconds + m.resources.cpuSystemSeconds,
    microBatches: m.batching.batches,
    submits: m.latency?.submit.count ?? 0,
  };
}

const OPTION_KEYS = new Set(['intervalMs', 'thresholds', 'historySize', 'trendWindow', 'fireAfter', 'resolveAfter', 'recentAlerts', 'rules', 'clock']);
const THRESHOLD_KEYS = new Set([...Object.keys(DEFAULT_THRESHOLDS), 'latencyP99MaxMs']);
const MIB = 1024 * 1024;
const TRENDS_NONE: MonitorTrends = {
  throughput: trendOf([], [], 0),
  latencyP99: trendOf([], [], 0),
};

function intOpt(o: Record<string, unknown>, key: string, dflt: number, lo: number): number {
  return intSetting(o, 'options', key, dflt, lo, Infinity);
}

export class Monitor extends EventEmitter<MonitorEvents> {
  readonly #source: MetricsSource;
  readonly #clock: () => number;
  readonly #intervalMs: number;
  readonly #historySize: number;
  readonly #trendWindow: number;
  readonly #fireAfter: number;
  readonly #resolveAfter: number;
  readonly #recentSize: number;
  readonly #thresholds: Thresholds;
  readonly #trackers: AlertTracker[];
  readonly #history: Ring<MonitorSample>;
  readonly #recent: Ring<ResolvedAlert>;
  /** Totals of the last trendWindow samples and the one before them (the health window). */
  readonly #totals: Ring<Totals>;
  readonly #settings: PipelineSettings;
  #trends: MonitorTrends = TRENDS_NONE;
  #health: Health | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;

  constructor(source: MetricsSource, options: MonitorOptions = {}) {
    super();
    if (typeof source !== 'object' || source === null || typeof source.metrics !== 'function') {
      throw new TypeError(`pipeline must be a pipeline (an object with metrics()), got ${describe(source)}`);
    }
    if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
    const o = options as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!OPTION_KEYS.has(k)) throw new TypeError(`unknown monitor option '${k}'`);
    const interval = o.intervalMs ?? 1000;
    if (typeof interval !== 'number') throw new TypeError(`options.intervalMs must be a number, got ${describe(interval)}`);
    // Node turns a timer delay above 2^31 - 1 ms into 1 ms.
    if (!(interval >= 1 && interval <= 2 ** 31 - 1)) throw new RangeError(`options.intervalMs must be a number in [1, 2147483647], got ${interval}`);
    this.#intervalMs = interval;
    this.#historySize = intOpt(o, 'historySize', 300, 2);
    this.#trendWindow = intOpt(o, 'trendWindow', Math.min(10, this.#historySize), 2);
    if (this.#trendWindow > this.#historySize) {
      throw new RangeError(`options.trendWindow must be <= historySize (${this.#historySize}), got ${this.#trendWindow}`);
    }
    this.#fireAfter = intOpt(o, 'fireAfter', 3, 1);
    this.#resolveAfter = intOpt(o, 'resolveAfter', 3, 1);
    this.#recentSize = intOpt(o, 'recentAlerts', 50, 1);
    if (o.clock !== undefined && typeof o.clock !== 'function') throw new TypeError(`options.clock must be a function, got ${describe(o.clock)}`);
    this.#clock = options.clock ?? Date.now;
    this.#source = source;

    const first = source.metrics();
    this.#settings = first.config;
    const given = o.thresholds ?? {};
    if (typeof given !== 'object' || given === null) throw new TypeError(`options.thresholds must be an object, got ${describe(given)}`);
    for (const [k, v] of Object.entries(given)) {
      if (!THRESHOLD_KEYS.has(k)) throw new TypeError(`unknown threshold '${k}'`);
      if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) {
        throw new TypeError(`options.thresholds.${k} must be a finite number, got ${typeof v === 'number' ? String(v) : describe(v)}`);
      }
    }
    this.#thresholds = { ...DEFAULT_THRESHOLDS, latencyP99MaxMs: first.config.targetLatencyMs };
    for (const [k, v] of Object.entries(given)) if (v !== undefined) (this.#thresholds as unknown as Record<string, number>)[k] = v as number;

    if (o.rules !== undefined && !Array.isArray(o.rules)) throw new TypeError(`options.rules must be an array of AlertRule objects, got ${describe(o.rules)}`);
    const rules = [...builtinRules(this.#thresholds), ...(options.rules ?? [])];
    const names = new Set<string>();
    for (const r of rules) {
      if (typeof r !== 'object' || r === null || typeof r.name !== 'string' || typeof r.value !== 'function') {
        throw new TypeError('options.rules must be AlertRule objects ({ name, severity, direction, threshold, value(ctx) })');
      }
      if (names.has(r.name)) throw new TypeError(`alert rule '${r.name}' is defined twice`);
      if (!['info', 'warning', 'critical'].includes(r.severity)) throw new TypeError(`alert rule '${r.name}': severity must be one of 'info', 'warning', 'critical'`);
      if (r.direction !== 'above' && r.direction !== 'below') throw new TypeError(`alert rule '${r.name}': direction must be 'above' or 'below'`);
      if (typeof r.threshold !== 'number' || Number.isNaN(r.threshold)) throw new TypeError(`alert rule '${r.name}': threshold must be a number`);
      names.add(r.name);
    }
    this.#trackers = rules.map((r) => new AlertTracker(r, this.#fireAfter, this.#resolveAfter));
    this.#history = new Ring(this.#historySize);
    this.#recent = new Ring(this.#recentSize);
    this.#totals = new Ring(this.#trendWindow + 1);
    this.#totals.push(totalsOf(first));

    this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
    this.#timer.unref();
  }

  /** The thresholds in force (defaults filled in). */
  get thresholds(): Thresholds {
    return { ...this.#thresholds };
  }

  /** Whether sampling runs (false after stop()). */
  get running(): boolean {
    return this.#timer !== null;
  }

  /** Ends sampling. Idempotent; the history and alerts stay readable. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #tick(): void {
    try {
      this.sample();
    } catch (e) {
      this.#fail(e);
    }
  }

  #fail(e: unknown): void {
    const err = e instanceof Error ? e : new Error(String(e));
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else process.emitWarning(`dtesn monitor: sampling failed: ${err.message}`, { code: 'DTESN_MONITOR_SAMPLE_FAILED', type: 'DtesnWarning' });
  }

  /**
   * Takes one sample now (the timer calls this every intervalMs): judges every rule, updates the
   * trends and the health. Returns the sample, or null when no time passed since the previous one.
   */
  sample(): MonitorSample | null {
    const m = this.#source.metrics();
    const time = this.#clock();
    const prev = this.#totals.last() as Totals;
    const cur = totalsOf(m);
    const dt = (cur.timestamp - prev.timestamp) / 1000;
    if (!(dt > 0)) return null;
    const workers = Math.max(1, m.parallelization.workers);
    const activeFraction = cur.active !== null && prev.active !== null ? clamp01((cur.active - prev.active) / dt) : null;
    const loaded =
      activeFraction !== null
        ? activeFraction >= LOADED_FRACTION
        : m.queueDepth > 0 || m.batching.inFlightBatches > 0 || m.parallelization.busyWorkers > 0;
    const s: MonitorSample = {
      time,
      uptimeSeconds: m.uptimeSeconds,
      intervalSeconds: dt,
      rate: Math.max(0, cur.processed - prev.processed) / dt,
      failedRate: Math.max(0, cur.failed - prev.failed) / dt,
      demandRate: Math.max(0, cur.demand - prev.demand) / dt,
      activeFraction,
      loaded,
      workerUtilization: clamp01((cur.busy - prev.busy) / (dt * workers)),
      cpuPercent: (Math.max(0, cur.cpu - prev.cpu) / (dt * Math.max(1, m.resources.cores))) * 100,
      rssMb: m.resources.rssBytes / MIB,
      latencyP99Ms: cur.submits > prev.submits ? (m.latency?.submit.recent.p99 ?? null) : null,
      queueDepth: m.queueDepth,
      queueRatio: m.queueDepth / m.config.maxQueue,
      batchEfficiency: cur.microBatches > prev.microBatches ? m.batching.efficiency : null,
      health: 0,
    };
    this.#history.push(s);
    this.#totals.push(cur);
    this.#trends = this.#fitTrends();
    const health = this.#computeHealth(s, Math.max(1, m.resources.cores));
    s.health = health.score;
    this.#health = health;

    const ctx = { sample: s, metrics: m, trends: this.#trends };
    for (const t of this.#trackers) {
      let v: number | null;
      try {
        v = t.rule.value(ctx);
      } catch (e) {
        this.#fail(new Error(`alert rule '${t.rule.name}' threw: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
        v = null;
      }
      const { fired, resolved } = t.observe(v, time);
      if (fired) {
        this.emit('alert', fired);
        if (t.rule.name === 'throughput-degrading' || t.rule.name === 'latency-degrading') this.emit('degrading', fired);
      }
      if (resolved) {
        this.#recent.push(resolved);
        this.emit('resolved', resolved);
      }
    }
    this.emit('sample', s);
    return s;
  }

  #fitTrends(): MonitorTrends {
    const n = this.#trendWindow;
    const last = this.#history.tail(n);
    const xs = last.map((s) => s.uptimeSeconds);
    const latency = last.filter((s) => s.latencyP99Ms !== null);
    return {
      throughput: trendOf(xs, last.map((s) => s.rate), n),
      latencyP99: trendOf(latency.map((s) => s.uptimeSeconds), latency.map((s) => s.latencyP99Ms as number), n),
    };
  }

  /** Health over the trend window: the oldest totals kept against the newest. */
  #computeHealth(s: MonitorSample, cores: number): Health {
    const from = this.#totals.at(0) as Totals;
    const to = this.#totals.last() as Totals;
    const dt = (to.timestamp - from.timestamp) / 1000;
    // Without profiling there is no activity counter: a loaded sample stands for the window.
    const active = to.active !== null && from.active !== null ? to.active - from.active : s.loaded ? dt : 0;
    return healthScore({
      processed: to.processed - from.processed,
      demand: to.demand - from.demand,
      activeSeconds: active,
      busyWorkerSeconds: to.busy - from.busy,
      workers: this.#settings.maxWorkers,
      rssMb: s.rssMb,
      memoryUsageMaxMb: this.#thresholds.memoryUsageMaxMb,
      cpuPercent: dt > 0 ? ((to.cpu - from.cpu) / (dt * cores)) * 100 : null,
      cpuUtilizationMax: this.#thresholds.cpuUtilizationMax,
    });
  }

  /** The health score after the latest sample (takes one first when there is none). */
  health(): Health {
    if (this.#health === null) this.sample();
    if (this.#health === null) {
      // No time has passed since the monitor started: judge the since-start figures.
      const m = this.#source.metrics();
      return healthScore({
        processed: 0, demand: 0, activeSeconds: 0, busyWorkerSeconds: 0, workers: this.#settings.maxWorkers,
        rssMb: m.resources.rssBytes / MIB, memoryUsageMaxMb: this.#thresholds.memoryUsageMaxMb,
        cpuPercent: null, cpuUtilizationMax: this.#thresholds.cpuUtilizationMax,
      });
    }
    return this.#health;
  }

  /** Samples kept, oldest first. */
  history(): MonitorSample[] {
    return this.#history.toArray();
  }

  /** Active alerts (one per rule at most), and the recently resolved ones (oldest first). */
  alerts(): { active: Alert[]; recent: ResolvedAlert[] } {
    const active: Alert[] = [];
    for (const t of this.#trackers) if (t.active) active.push({ ...t.active });
    return { active, recent: this.#recent.toArray() };
  }

  /** Active alerts per severity. */
  activeBySeverity(): Record<Severity, number> {
    const out: Record<Severity, number> = { info: 0, warning: 0, critical: 0 };
    for (const t of this.#trackers) if (t.active) out[t.active.severity]++;
    return out;
  }

  trends(): MonitorTrends {
    return this.#trends;
  }

  /** Everything as one JSON-ready object. */
  report(): MonitorReport {
    return {
      schema: 'dtesn-monitor-report/1',
      timestamp: new Date(this.#clock()).toISOString(),
      configuration: {
        pipeline: { ...this.#settings },
        monitor: {
          intervalMs: this.#intervalMs,
          historySize: this.#historySize,
          trendWindow: this.#trendWindow,
          fireAfter: this.#fireAfter,
          resolveAfter: this.#resolveAfter,
          recentAlerts: this.#recentSize,
          rules: this.#trackers.map((t) => t.rule.name),
        },
      },
      metrics: this.#source.metrics(),
      history: this.history(),
      alerts: this.alerts(),
      thresholds: this.thresholds,
      trends: this.#trends,
      health: this.health(),
    };
  }

  /**
   * Writes `report()` as JSON to `file` atomically: a temporary file in the same directory,
   * flushed, then renamed over `file`, so a reader sees the old report or the new one, never a
   * part. Rejects with an Error naming the file (the system error as its `cause`) when it cannot
   * write; the temporary file is removed.
   */
  async exportReport(file: string): Promise<void> {
    if (typeof file !== 'string' || file.length === 0) throw new TypeError(`path must be a non-empty string, got ${describe(file)}`);
    const target = path.resolve(file);
    const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
    const json = `${JSON.stringify(this.report(), null, 2)}\n`;
    try {
      const fh = await open(tmp, 'wx');
      try {
        await fh.writeFile(json, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, target);
    } catch (cause) {
      await rm(tmp, { force: true }).catch(() => {});
      const why = cause instanceof Error ? cause.message : String(cause);
      throw new Error(`cannot write the monitor report to ${target}: ${why}`, { cause });
    }
  }
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/**
 * Starts monitoring `pipeline` (anything with `metrics()`): a sample every `intervalMs` on an
 * unref'd timer (it never keeps the process alive) until `monitor.stop()`.
 */
export function createMonitor(pipeline: MetricsSource, options: MonitorOptions = {}): Monitor {
  return new Monitor(pipeline, options);
}
