/**
 * Open-loop load in one process: requests are issued at a constant rate on their schedule,
 * whatever the completions, and each latency counts from the moment its request was due (so a
 * sender stalled by a blocked event loop cannot hide queueing: coordinated omission).
 */

export interface OpenLoopResult {
  rate: number;
  seconds: number;
  sent: number;
  ok: number;
  /** Refused (QueueFullError) or failed. */
  failed: number;
  /** Not settled when the drain deadline passed. */
  unfinished: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Completions per second over the schedule. */
  achieved: number;
}

export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * Calls `send(i)` for i = 0.. at `rate` per second for `seconds`, then waits up to `drainMs` for
 * the promises to settle. Failed and unfinished requests count as infinite latency in p99.
 */
export async function openLoop(
  send: (i: number) => Promise<unknown>,
  rate: number,
  seconds: number,
  drainMs = 5000,
): Promise<OpenLoopResult> {
  const n = Math.max(1, Math.round(rate * seconds));
  const lat = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
  let settled = 0;
  let ok = 0;
  let failed = 0;
  let allDone!: () => void;
  const done = new Promise<void>((r) => (allDone = r));
  const start = performance.now();
  const periodMs = 1000 / rate;
  let i = 0;
  await new Promise<void>((sent) => {
    const tick = () => {
      const now = performance.now() - start;
      while (i < n && i * periodMs <= now) {
        const k = i++;
        const due = k * periodMs;
        let p: Promise<unknown>;
        try {
          p = send(k);
        } catch (e) {
          p = Promise.reject(e);
        }
        p.then(
          () => {
            lat[k] = performance.now() - start - due;
            ok++;
            if (++settled === n) allDone();
          },
          () => {
            failed++;
            if (++settled === n) allDone();
          },
        );
      }
      if (i < n) {
        const wait = i * periodMs - (performance.now() - start);
        if (wait >= 1) setTimeout(tick, wait - 0.5);
        else setImmediate(tick);
      } else sent();
    };
    tick();
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, drainMs)))]);
  clearTimeout(timer);
  const elapsed = (performance.now() - start) / 1000;
  const sorted = lat.slice().sort();
  return {
    rate,
    seconds,
    sent: n,
    ok,
    failed,
    unfinished: n - settled,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted[n - 1]!,
    achieved: ok / Math.max(seconds, elapsed),
  };
}

/** Blocks this thread for `ms` (a CPU-bound model stage on the event loop). */
export function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}
