/**
 * What the monitor records each interval, in a module of its own so that the alert rules
 * (alerts.ts) and the monitor (monitor.ts) both read it without importing each other.
 */
import type { Trend } from './trend.js';

/** One sample: what happened over the interval since the previous one. */
export interface MonitorSample {
  /** Wall-clock time, ms since the epoch. */
  time: number;
  uptimeSeconds: number;
  intervalSeconds: number;
  /** Items processed / failed per second over the interval. */
  rate: number;
  failedRate: number;
  /** Items asked for (accepted + shed) per second. */
  demandRate: number;
  /** Share of the interval with work in progress (null without profiling). */
  activeFraction: number | null;
  /** Work in progress for >= 90% of the interval (without profiling: work queued or running now). */
  loaded: boolean;
  /** Pool busy worker-seconds / (interval x workers). */
  workerUtilization: number;
  /** Process CPU over the interval, percent of all cores. */
  cpuPercent: number;
  rssMb: number;
  /** submit end-to-end p99 over the last 10-20 s; null when no request completed in the interval. */
  latencyP99Ms: number | null;
  queueDepth: number;
  queueRatio: number;
  /** Batch efficiency; null when no micro-batch finished in the interval. */
  batchEfficiency: number | null;
  /** Health score after this sample. */
  health: number;
}

export interface MonitorTrends {
  throughput: Trend;
  latencyP99: Trend;
}
