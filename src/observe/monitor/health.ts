/**
 * The health score, 0-100, with the original design's weights (docs/ORIGINAL.md: 30 throughput,
 * 25 utilization, 25 memory headroom, 20 CPU headroom) and its inputs fixed: process memory instead of the host's, worker
 * utilization as measured instead of a ratio of unrelated fields, and the processing rate relative
 * to the demand instead of to an absolute 1,000 items/s (which scored every small deployment as
 * sick and every idle one as dead). docs/METRICS.md has the table.
 *
 *   throughput  = demand > 0 ? min(1, processed / demand) : 1
 *                 processed and demand (= accepted + shed) counted over the trend window
 *   utilization = active > 0 && busyWorkerSeconds > 0 ? min(1, (busyWorkerSeconds / (active x workers)) / 0.8) : 1
 *                 the pool's utilization while work was in progress, full marks at 80% as the
 *                 original; an idle pipeline is not penalized, nor is an idle pool while the
 *                 cost model runs every batch inline (cheaper there: the pool is not needed)
 *   memory      = clamp(1 - rssMb / memoryUsageMaxMb, 0, 1)
 *   cpu         = clamp(1 - cpuPercent / cpuUtilizationMax, 0, 1)   (1 when not yet measured)
 *   score       = 30 throughput + 25 utilization + 25 memory + 20 cpu, rounded to 0.1
 *   grade       = A >= 90, B >= 80, C >= 70, D >= 60, else F
 */

export const HEALTH_WEIGHTS = { throughput: 30, utilization: 25, memory: 25, cpu: 20 } as const;
/** Utilization that earns full marks (the original's optimum). */
export const OPTIMAL_UTILIZATION = 0.8;

export interface HealthInputs {
  /** Items processed, and items asked for (accepted + shed), over the window. */
  processed: number;
  demand: number;
  /** Seconds with work in progress, and pool busy worker-seconds, over the window. */
  activeSeconds: number;
  busyWorkerSeconds: number;
  workers: number;
  rssMb: number;
  memoryUsageMaxMb: number;
  /** Process CPU, percent of all cores, over the window; null when not measured yet. */
  cpuPercent: number | null;
  cpuUtilizationMax: number;
}

export interface HealthComponent {
  weight: number;
  /** 0..1 */
  score: number;
  /** weight x score */
  points: number;
  /** What the score was computed from (a ratio, MB or percent); null when there was nothing to judge. */
  input: number | null;
}

export type Grade = 'A' | 'B' | 'C' | 'D' | 'F';

export interface Health {
  score: number;
  grade: Grade;
  components: { throughput: HealthComponent; utilization: HealthComponent; memory: HealthComponent; cpu: HealthComponent };
}

const clamp01 = (x: number) => (x < 0 ? 0 : x > 1 ? 1 : x);

function component(weight: number, score: number, input: number | null): HealthComponent {
  const s = clamp01(score);
  return { weight, score: s, points: weight * s, input };
}

export function gradeOf(score: number): Grade {
  return score >= 90 ? 'A' : score >= 80 ? 'B' : score >= 70 ? 'C' : score >= 60 ? 'D' : 'F';
}

export function healthScore(i: HealthInputs): Health {
  const ratio = i.demand > 0 ? i.processed / i.demand : null;
  const util =
    i.activeSeconds > 0 && i.workers > 0 && i.busyWorkerSeconds > 0 ? Math.min(1, i.busyWorkerSeconds / (i.activeSeconds * i.workers)) : null;
  const components = {
    throughput: component(HEALTH_WEIGHTS.throughput, ratio === null ? 1 : ratio, ratio),
    utilization: component(HEALTH_WEIGHTS.utilization, util === null ? 1 : util / OPTIMAL_UTILIZATION, util),
    memory: component(HEALTH_WEIGHTS.memory, 1 - i.rssMb / i.memoryUsageMaxMb, i.rssMb),
    cpu: component(HEALTH_WEIGHTS.cpu, i.cpuPercent === null ? 1 : 1 - i.cpuPercent / i.cpuUtilizationMax, i.cpuPercent),
  };
  const total = components.throughput.points + components.utilization.points + components.memory.points + components.cpu.points;
  const score = Math.round(total * 10) / 10;
  return { score, grade: gradeOf(score), components };
}
