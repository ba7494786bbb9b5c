/**
 * Resources of this process only, never the host's (docs/ORIGINAL.md): memory from `process.memoryUsage()`,
 * CPU from `process.cpuUsage()` deltas normalized by the cores Node may use, event-loop
 * utilization (`performance.eventLoopUtilization`) and, with profiling, event-loop delay
 * (`monitorEventLoopDelay`, the only part with a timer of its own).
 *
 * Nothing is sampled in the background: figures are read when a snapshot is taken. Rates (CPU,
 * event loop) are computed over the window since the previous refresh, and a refresh happens only
 * when that window is at least `minWindowMs` long, so many readers (a monitor, a Prometheus
 * scrape, the user) see the same stable figure instead of each other's tiny windows.
 */
import { availableParallelism } from 'node:os';
import { type EventLoopUtilization, monitorEventLoopDelay, performance } from 'node:perf_hooks';

/** The part of Node's IntervalHistogram the delay figures need (injectable for tests). */
export interface DelayHistogram {
  readonly count: number;
  readonly mean: number;
  readonly max: number;
  percentile(p: number): number;
  reset(): void;
  disable(): boolean;
}

/** Where the figures come from; every field defaults to this process's own. */
export interface ResourceSources {
  memoryUsage(): NodeJS.MemoryUsage;
  /** Cumulative CPU time of the process (all threads), µs. */
  cpuUsage(): NodeJS.CpuUsage;
  /** Cumulative event-loop idle/active time, ms. */
  eventLoopUtilization(): EventLoopUtilization;
  /** Cores the process may use (the CPU figure is normalized by them). */
  cores: number;
  /** Starts an event-loop delay histogram; called only with profiling. Values in ns. */
  eventLoopDelay(): DelayHistogram;
}

export interface EventLoopDelay {
  /** ms beyond the sampling resolution, over the last window. */
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export interface ResourceMetrics {
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  /** Cumulative CPU time of the process, all threads (workers included). */
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  /** Share of all `cores` the process used over the last window, 0..1 (null before the first window). */
  cpuUtilization: number | null;
  cores: number;
  /** Share of the last window the event loop was busy, 0..1. */
  eventLoopUtilization: number | null;
  /** Event-loop delay over the last window; null without profiling or before a sample. */
  eventLoopDelay: EventLoopDelay | null;
  /** Length of the last window, seconds (null before one). */
  windowSeconds: number | null;
}

/** monitorEventLoopDelay sampling interval, ms. */
export const DELAY_RESOLUTION_MS = 20;

const defaultSources: ResourceSources = {
  memoryUsage: () => process.memoryUsage(),
  cpuUsage: () => process.cpuUsage(),
  eventLoopUtilization: () => performance.eventLoopUtilization(),
  cores: Math.max(1, availableParallelism()),
  eventLoopDelay: () => {
    const h = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
    h.enable();
    return h;
  },
};

export interface ProcessResourcesOptions {
  /** Monotonic clock, ms. */
  now: () => number;
  /** Start the event-loop delay histogram (profiling on). */
  eventLoopDelay: boolean;
  /** [1000] shortest window between refreshes of the CPU and event-loop figures, ms. */
  minWindowMs?: number;
  sources?: Partial<ResourceSources>;
}

export class ProcessResources {
  readonly #now: () => number;
  readonly #src: ResourceSources;
  readonly #minWindowMs: number;
  readonly #delay: DelayHistogram | null;
  #lastAt: number;
  #lastCpu: NodeJS.CpuUsage;
  #lastElu: EventLoopUtilization;
  #cpuUtilization: number | null = null;
  #elu: number | null = null;
  #delayFigures: EventLoopDelay | null = null;
  #windowSeconds: number | null = null;

  constructor(options: ProcessResourcesOptions) {
    this.#now = options.now;
    this.#src = { ...defaultSources, ...options.sources };
    this.#minWindowMs = options.minWindowMs ?? 1000;
    this.#delay = options.eventLoopDelay ? this.#src.eventLoopDelay() : null;
    this.#lastAt = this.#now();
    this.#lastCpu = this.#src.cpuUsage();
    this.#lastElu = this.#src.eventLoopUtilization();
  }

  #refresh(now: number, cpu: NodeJS.CpuUsage): void {
    const ms = now - this.#lastAt;
    if (!(ms >= this.#minWindowMs)) return;
    const cpuMs = (cpu.user - this.#lastCpu.user + cpu.system - this.#lastCpu.system) / 1000;
    this.#cpuUtilization = Math.max(0, cpuMs / (ms * this.#src.cores));
    const elu = this.#src.eventLoopUtilization();
    const dActive = elu.active - this.#lastElu.active;
    const dIdle = elu.idle - this.#lastElu.idle;
    this.#elu = dActive + dIdle > 0 ? dActive / (dActive + dIdle) : 0;
    const h = this.#delay;
    if (h !== null && h.count > 0) {
      const ms = (ns: number) => Math.max(0, ns / 1e6 - DELAY_RESOLUTION_MS);
      this.#delayFigures = { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean) };
      h.reset();
    }
    this.#windowSeconds = ms / 1000;
    this.#lastAt = now;
    this.#lastCpu = cpu;
    this.#lastElu = elu;
  }

  snapshot(): ResourceMetrics {
    const now = this.#now();
    const cpu = this.#src.cpuUsage();
    this.#refresh(now, cpu);
    const m = this.#src.memoryUsage();
    return {
      rssBytes: m.rss,
      heapUsedBytes: m.heapUsed,
      heapTotalBytes: m.heapTotal,
      externalBytes: m.external,
      arrayBuffersBytes: m.arrayBuffers,
      cpuUserSeconds: cpu.user / 1e6,
      cpuSystemSeconds: cpu.system / 1e6,
      cpuUtilization: this.#cpuUtilization,
      cores: this.#src.cores,
      eventLoopUtilization: this.#elu,
      eventLoopDelay: this.#delayFigures,
      windowSeconds: this.#windowSeconds,
    };
  }

  /** Stops the event-loop delay timer. Idempotent. */
  close(): void {
    this.#delay?.disable();
  }
}
