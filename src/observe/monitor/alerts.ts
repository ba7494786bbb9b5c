/**
 * Alert rules and their hysteresis. A rule turns a monitor sample into a value (or null when it
 * does not apply: idle, no data) and compares it with a threshold. An alert fires after
 * `fireAfter` consecutive breaching samples and resolves after `resolveAfter` consecutive clear
 * ones, so a value hovering at its threshold does not flap. A null value counts as clear.
 *
 * The built-in rules are the original design's (docs/ORIGINAL.md), with its defaults, fixed:
 *
 * | rule                 | severity | breaching when                                                        | threshold key, default |
 * |----------------------|----------|-----------------------------------------------------------------------|------------------------|
 * | processing-rate      | warning  | items/s over the interval < min, only while loaded (see below)        | processingRateMin 100  |
 * | memory               | critical | process RSS (MiB) > max; never the host's memory                      | memoryUsageMaxMb 2048  |
 * | cpu                  | warning  | process CPU, % of all cores, over the interval > max                  | cpuUtilizationMax 85   |
 * | worker-utilization   | info     | pool utilization over the interval < min, only while loaded           | workerUtilizationMin 0.3 |
 * | batch-efficiency     | warning  | rows / target over the last 64 micro-batches < min, when any ran      | batchEfficiencyMin 0.7 |
 * | latency-p99          | warning  | submit end-to-end p99 (last 10-20 s) > max, when requests completed   | latencyP99MaxMs = targetLatencyMs |
 * | queue-depth          | warning  | waiting rows / maxQueue > max                                         | queueDepthMaxRatio 0.8 |
 * | throughput-degrading | warning  | fitted change of the rate across the trend window < -ratio x its level, while loaded | degradationRatio 0.15 |
 * | latency-degrading    | warning  | fitted change of the p99 across the trend window > +ratio x its level | degradationRatio 0.15 |
 *
 * "Loaded": work (a call, request or batch) was in progress for at least 90% of the interval. The
 * original fired "low processing rate" on an idle pipeline, and a light load (a request now and
 * then) has a low rate because demand is low, not because the pipeline is slow.
 */
import type { PipelineMetrics } from '../metrics.js';
import type { MonitorSample, MonitorTrends } from './sample.js';

export type Severity = 'info' | 'warning' | 'critical';

export interface Thresholds {
  /** items/s */
  processingRateMin: number;
  /** MiB of process RSS */
  memoryUsageMaxMb: number;
  /** percent of all cores */
  cpuUtilizationMax: number;
  /** 0..1 */
  workerUtilizationMin: number;
  /** 0..1 */
  batchEfficiencyMin: number;
  /** ms; defaults to the pipeline's targetLatencyMs */
  latencyP99MaxMs: number;
  /** 0..1 of maxQueue */
  queueDepthMaxRatio: number;
  /** relative change per trend window (0.15: 15%) */
  degradationRatio: number;
}

export const DEFAULT_THRESHOLDS: Omit<Thresholds, 'latencyP99MaxMs'> = {
  processingRateMin: 100,
  memoryUsageMaxMb: 2048,
  cpuUtilizationMax: 85,
  workerUtilizationMin: 0.3,
  batchEfficiencyMin: 0.7,
  queueDepthMaxRatio: 0.8,
  degradationRatio: 0.15,
};

/** Share of an interval with work in progress from which the pipeline counts as loaded. */
export const LOADED_FRACTION = 0.9;

/** What a rule sees at each sample. */
export interface RuleContext {
  sample: MonitorSample;
  metrics: PipelineMetrics;
  trends: MonitorTrends;
}

export interface AlertRule {
  /** Unique among the monitor's rules. */
  name: string;
  severity: Severity;
  /** 'above': breaching when value > threshold; 'below': when value < threshold. */
  direction: 'above' | 'below';
  threshold: number;
  /** The value judged at this sample, or null when the rule does not apply (counts as clear). */
  value(ctx: RuleContext): number | null;
  /** What the value is, for messages ("processing rate (items/s)"). */
  description?: string;
}

export interface Alert {
  rule: string;
  severity: Severity;
  /** The value at the latest breaching sample. */
  value: number;
  /** The most extreme breaching value since it fired. */
  worst: number;
  threshold: number;
  /** Wall-clock time (ms since the epoch) of the first breaching sample of the streak that fired it. */
  since: number;
  message: string;
}

export interface ResolvedAlert extends Alert {
  /** Wall-clock time of the sample that resolved it. */
  resolvedAt: number;
}

/** The built-in rules with these thresholds. */
export function builtinRules(t: Thresholds): AlertRule[] {
  return [
    {
      name: 'processing-rate', severity: 'warning', direction: 'below', threshold: t.processingRateMin,
      description: 'processing rate while loaded (items/s)',
      value: ({ sample }) => (sample.loaded ? sample.rate : null),
    },
    {
      name: 'memory', severity: 'critical', direction: 'above', threshold: t.memoryUsageMaxMb,
      description: 'process RSS (MiB)',
      value: ({ sample }) => sample.rssMb,
    },
    {
      name: 'cpu', severity: 'warning', direction: 'above', threshold: t.cpuUtilizationMax,
      description: 'process CPU (% of all cores)',
      value: ({ sample }) => sample.cpuPercent,
    },
    {
      name: 'worker-utilization', severity: 'info', direction: 'below', threshold: t.workerUtilizationMin,
      description: 'pool utilization while loaded',
      value: ({ sample }) => (sample.loaded ? sample.workerUtilization : null),
    },
    {
      name: 'batch-efficiency', severity: 'warning', direction: 'below', threshold: t.batchEfficiencyMin,
      description: 'batch efficiency (rows / target)',
      value: ({ sample }) => sample.batchEfficiency,
    },
    {
      name: 'latency-p99', severity: 'warning', direction: 'above', threshold: t.latencyP99MaxMs,
      description: 'submit p99 latency (ms)',
      value: ({ sample }) => sample.latencyP99Ms,
    },
    {
      name: 'queue-depth', severity: 'warning', direction: 'above', threshold: t.queueDepthMaxRatio,
      description: 'queue depth / maxQueue',
      value: ({ sample }) => sample.queueRatio,
    },
    {
      name: 'throughput-degrading', severity: 'warning', direction: 'below', threshold: -t.degradationRatio,
      description: 'throughput change per trend window (fraction of its level)',
      value: ({ sample, trends }) => (sample.loaded ? trends.throughput.relativeChange : null),
    },
    {
      name: 'latency-degrading', severity: 'warning', direction: 'above', threshold: t.degradationRatio,
      description: 'p99 latency change per trend window (fraction of its level)',
      value: ({ trends }) => trends.latencyP99.relativeChange,
    },
  ];
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(4).replace(/\.?0+$/, '');
}

/** One rule's hysteresis: counts consecutive breaching and clear samples. */
export class AlertTracker {
  readonly rule: AlertRule;
  readonly #fireAfter: number;
  readonly #resolveAfter: number;
  #breaches = 0;
  #clears = 0;
  #streakStart = 0;
  #active: Alert | null = null;

  constructor(rule: AlertRule, fireAfter: number, resolveAfter: number) {
    this.rule = rule;
    this.#fireAfter = fireAfter;
    this.#resolveAfter = resolveAfter;
  }

  get active(): Alert | null {
    return this.#active;
  }

  /** Feeds one sample's value (null: not applicable) taken at wall-clock `time`. */
  observe(value: number | null, time: number): { fired?: Alert; resolved?: ResolvedAlert } {
    const r = this.rule;
    const breaching = value !== null && Number.isFinite(value) && (r.direction === 'above' ? value > r.threshold : value < r.threshold);
    if (breaching) {
      this.#clears = 0;
      if (this.#breaches++ === 0) this.#streakStart = time;
      const a = this.#active;
      if (a !== null) {
        a.value = value;
        if (r.direction === 'above' ? value > a.worst : value < a.worst) a.worst = value;
        return {};
      }
      if (this.#breaches < this.#fireAfter) return {};
      const message = `${r.description ?? r.name} ${fmt(value)} is ${r.direction} the threshold ${fmt(r.threshold)}`;
      this.#active = { rule: r.name, severity: r.severity, value, worst: value, threshold: r.threshold, since: this.#streakStart, message };
      return { fired: { ...this.#active } };
    }
    this.#breaches = 0;
    const a = this.#active;
    if (a === null || ++this.#clears < this.#resolveAfter) return {};
    this.#active = null;
    this.#clears = 0;
    return { resolved: { ...a, resolvedAt: time } };
  }
}
