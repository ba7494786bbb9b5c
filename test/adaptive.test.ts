/** The adaptive batch-size controller, driven with synthetic batch observations. */
import { describe, expect, it } from 'vitest';
import { rng } from './fixtures/util.js';
import {
  AdaptiveBatchSize,
  type BatchObservation,
  GROW_AFTER,
  LatencyWindow,
  eventLoopUtilizationSampler,
  SHRINK_AFTER,
} from '../src/adaptive.js';

/** Feeds `n` observations, each built from the controller's current target; returns the targets seen. */
function feed(c: AdaptiveBatchSize, n: number, make: (target: number, i: number) => BatchObservation): number[] {
  const seen: number[] = [];
  for (let i = 0; i < n; i++) {
    c.observe(make(c.target, i));
    seen.push(c.target);
  }
  return seen;
}


/** A saturated pool: full batches of `target` rows, a backlog behind them, e2e ~ wait one run + run. */
function saturated(runOf: (rows: number) => number) {
  return (target: number): BatchObservation => {
    const run = runOf(target);
    return {
      rows: target,
      reason: 'full',
      runMs: run,
      waitMs: run,
      latenciesMs: [2 * run, 1.5 * run],
      queuedRows: 10 * target,
      target,
    };
  };
}

describe('LatencyWindow', () => {
  it('gives nearest-rank percentiles of the last `capacity` samples', () => {
    const w = new LatencyWindow(4);
    expect(w.percentile(0.5)).toBeNaN();
    for (const v of [10, 1, 7, 3]) w.push(v);
    expect(w.percentile(0.5)).toBe(3);
    expect(w.percentile(0.99)).toBe(10);
    expect(w.percentile(0.25)).toBe(1);
    w.push(2); // overwrites 10
    expect(w.size).toBe(4);
    expect(w.percentile(0.99)).toBe(7);
    w.clear();
    expect(w.size).toBe(0);
    expect(w.percentile(0.99)).toBeNaN();
  });

  it('rejects a capacity below 1', () => {
    expect(() => new LatencyWindow(0)).toThrow(RangeError);
  });
});

describe('AdaptiveBatchSize', () => {
  it('checks its options', () => {
    expect(() => new AdaptiveBatchSize({ maxBatchSize: 0, targetLatencyMs: 50 })).toThrow(/maxBatchSize must be an integer >= 1, got 0/);
    expect(() => new AdaptiveBatchSize({ maxBatchSize: 1.5, targetLatencyMs: 50 })).toThrow(RangeError);
    expect(() => new AdaptiveBatchSize({ maxBatchSize: 8, targetLatencyMs: 0 })).toThrow(/targetLatencyMs/);
    expect(() => new AdaptiveBatchSize({ maxBatchSize: 8, targetLatencyMs: Number.NaN })).toThrow(/targetLatencyMs/);
    expect(() => new AdaptiveBatchSize({ maxBatchSize: 8, targetLatencyMs: 50, initialBatchSize: 0 })).toThrow(/initialBatchSize/);
  });

  it('starts at initialBatchSize (default 1), clamped to maxBatchSize', () => {
    expect(new AdaptiveBatchSize({ maxBatchSize: 64, targetLatencyMs: 50 }).target).toBe(1);
    expect(new AdaptiveBatchSize({ maxBatchSize: 64, targetLatencyMs: 50, initialBatchSize: 16 }).target).toBe(16);
    expect(new AdaptiveBatchSize({ maxBatchSize: 64, targetLatencyMs: 50, initialBatchSize: 100 }).target).toBe(64);
  });

  it('climbs to maxBatchSize when a cheap handler (2 ms + 5 us/row) is saturated, never stepping back', () => {
    const c = new AdaptiveBatchSize({ maxBatchSize: 1024, targetLatencyMs: 50 });
    const seen = feed(c, 200, saturated((rows) => 2 + 0.005 * rows));
    expect(c.target).toBe(1024);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]);
    // Slow start: from 1 to 1024 in ten doublings of GROW_AFTER batches each.
    expect(seen.indexOf(1024) + 1).toBe(10 * GROW_AFTER);
    expect(c.lastDecision).toMatchObject({ kind: 'grow', from: 512, to: 1024 });
  });

  it('grows on latency headroom without a backlog, as long as batches fill', () => {
    const c = new AdaptiveBatchSize({ maxBatchSize: 256, targetLatencyMs: 50, initialBatchSize: 4 });
    feed(c, 100, (target) => ({ rows: target, reason: 'full', runMs: 3, waitMs: 2, latenciesMs: [5], queuedRows: 0, target }));
    expect(c.target).toBe(256);
    expect(c.lastDecision?.rule).toBe('headroom');
  });

  it('grows through a backlog of cheap full batches even though latency is over the SLO', () => {
    // Shrinking here would cut throughput and deepen the queue; bigger batches drain it.
    const c = new AdaptiveBatchSize({ maxBatchSize: 512, targetLatencyMs: 50, initialBatchSize: 8 });
    feed(c, GROW_AFTER, (target) => ({
      rows: target,
      reason: 'full',
      runMs: 2,
      waitMs: 400,
      latenciesMs: [402],
      queuedRows: 5000,
      target,
    }));
    expect(c.target).toBe(16);
    expect(c.lastDecision?.rule).toBe('backlog');
  });

  it('backs off multiplicatively when batches run over the budget, settling where run <= SLO/2', () => {
    // run = 2 ms + 1 ms/row against a 50 ms SLO: run(512) = 514 ms.
    const c = new AdaptiveBatchSize({ maxBatchSize: 512, targetLatencyMs: 50, initialBatchSize: 512 });
    feed(c, SHRINK_AFTER, saturated((rows) => 2 + rows));
    expect(c.target).toBe(256); // the step is bounded to halving
    expect(c.lastDecision).toMatchObject({ kind: 'shrink', rule: 'run-over-budget' });
    const seen = feed(c, 500, saturated((rows) => 2 + rows));
    // 256 -> 128 -> 64 -> 32 -> floor(32 * 25/34) = 23 (run 25 ms = the budget), then holds.
    expect(c.target).toBe(23);
    expect(new Set(seen.slice(50))).toEqual(new Set([23]));
  });

  it('shrinks when rows wait too long for batch-mates (no backlog), from the rows batches carried', () => {
    const c = new AdaptiveBatchSize({ maxBatchSize: 1024, targetLatencyMs: 50, initialBatchSize: 1000 });
    // Timeouts close batches at 100 rows after 95 ms: the 1000 target is not what binds.
    feed(c, SHRINK_AFTER, (target) => ({
      rows: 100,
      reason: 'timeout',
      runMs: 5,
      waitMs: 95,
      latenciesMs: [100, 60],
      queuedRows: 0,
      target,
    }));
    expect(c.target).toBe(50); // floor(100 * clamp(50/100, 0.5, 0.9))
    expect(c.lastDecision?.rule).toBe('wait-over-slo');
  });

  it('never grows when batches close on timeout at low load, however good the latency', () => {
    for (const reason of ['timeout', 'flush'] as const) {
      const c = new AdaptiveBatchSize({ maxBatchSize: 512, targetLatencyMs: 50, initialBatchSize: 16 });
      const seen = feed(c, 1000, (target) => ({ rows: 3, reason, runMs: 1, waitMs: 5, latenciesMs: [6, 6, 5], queuedRows: 0, target }));
      expect(new Set(seen)).toEqual(new Set([16]));
    }
  });

  it('grows only when at least half of the recent batches closed full', () => {
    const c = new AdaptiveBatchSize({ maxBatchSize: 512, targetLatencyMs: 50, initialBatchSize: 16 });
    feed(c, 200, (target, i) => ({
      rows: i % 3 === 0 ? target : 4,
      reason: i % 3 === 0 ? 'full' : 'timeout',
      runMs: 1,
      waitMs: 5,
      latenciesMs: [6],
      target,
    }));
    expect(c.target).toBe(16);
  });

  it('waits GROW_AFTER batches formed under the current target before growing', () => {
    const c = new AdaptiveBatchSize({ maxBatchSize: 512, targetLatencyMs: 50, initialBatchSize: 8 });
    const good = (target: number): BatchObservation => ({ rows: target, reason: 'full', runMs: 2, waitMs: 1, latenciesMs: [3], target });
    feed(c, GROW_AFTER - 1, good);
    expect(c.target).toBe(8);
    feed(c, 1, good);
    expect(c.target).toBe(16);
  });

  it('ignores batches formed under an older target (the cooldown: effects are observed before the next decision)', () => {
    const c = new AdaptiveBatchSize({ maxBatchSize: 512, targetLatencyMs: 50, initialBatchSize: 64 });
    feed(c, SHRINK_AFTER, saturated((rows) => 2 + rows));
    expect(c.target).toBe(32);
    // Still-running batches of the old target report dreadful latency: no further shrink.
    for (let i = 0; i < 100; i++) c.observe({ ...saturated((rows) => 2 + rows)(64), target: 64 });
    expect(c.target).toBe(32);
    // Two batches under the new target are not enough evidence yet.
    feed(c, SHRINK_AFTER - 1, saturated((rows) => 2 + rows));
    expect(c.target).toBe(32);
    feed(c, 1, saturated((rows) => 2 + rows));
    expect(c.target).toBe(23);
  });

  it('grows at most x1.1 per decision above a shrink threshold, until the headroom is large again', () => {
    const c = new AdaptiveBatchSize({ maxBatchSize: 1024, targetLatencyMs: 50, initialBatchSize: 100 });
    feed(c, SHRINK_AFTER, (target) => ({ rows: target, reason: 'full', runMs: 50, waitMs: 1, latenciesMs: [51], target }));
    expect(c.target).toBe(50);
    // Headroom 1.5 (run 13.3 ms vs 20 ms): congestion avoidance, not doubling.
    feed(c, GROW_AFTER, (target) => ({ rows: target, reason: 'full', runMs: 20 / 1.5, waitMs: 1, latenciesMs: [15], target }));
    expect(c.target).toBe(55);
    // Headroom >= 2: the threshold is cleared, slow start again.
    feed(c, GROW_AFTER, (target) => ({ rows: target, reason: 'full', runMs: 5, waitMs: 1, latenciesMs: [6], target }));
    expect(c.target).toBe(110);
  });

  it('does not grow while the event loop is saturated', () => {
    let elu = 0.95;
    const c = new AdaptiveBatchSize({ maxBatchSize: 512, targetLatencyMs: 50, initialBatchSize: 8, elu: () => elu });
    const good = (target: number): BatchObservation => ({ rows: target, reason: 'full', runMs: 2, waitMs: 1, latenciesMs: [3], target });
    feed(c, 50, good);
    expect(c.target).toBe(8);
    elu = 0.3;
    feed(c, 1, good);
    expect(c.target).toBe(16);
  });

  it('grows instead of shrinking when run time is over budget only because the saturated loop lags', () => {
    // Cold start under overload: every run reads 40 ms (the loop's lag, whatever the size), a
    // backlog behind full batches. Without the ELU signal this is rule 1 (shrink, pinned at 1).
    let elu = 0.97;
    const c = new AdaptiveBatchSize({ maxBatchSize: 1000, targetLatencyMs: 50, elu: () => elu });
    const seen = feed(c, 120, saturated(() => 40));
    expect(seen.every((t, i) => i === 0 || t >= seen[i - 1]!)).toBe(true);
    expect(c.target).toBe(1000); // 1, 2, 4 ... 512, 1000: x2 every GROW_AFTER batches
    expect(c.lastDecision).toMatchObject({ kind: 'grow', rule: 'saturated-backlog' });
    // Busy but not saturated (ELU 0.7-0.9): the lag may still be the loop's -> hold.
    elu = 0.8;
    feed(c, 50, saturated(() => 40));
    expect(c.target).toBe(1000);
    // The same runs with the loop not busy: the batches themselves are too slow -> shrink.
    elu = 0.5;
    feed(c, SHRINK_AFTER, saturated(() => 40));
    expect(c.target).toBe(625); // 1000 * 25/40
    expect(c.lastDecision).toMatchObject({ kind: 'shrink', rule: 'run-over-budget' });
  });

  it('does not grow on a saturated loop without a backlog (holds, then shrinks once the loop frees)', () => {
    let elu = 0.97;
    const c = new AdaptiveBatchSize({ maxBatchSize: 1000, targetLatencyMs: 50, initialBatchSize: 64, elu: () => elu });
    const noBacklog = (target: number): BatchObservation => ({ rows: target, reason: 'full', runMs: 40, waitMs: 1, latenciesMs: [41], queuedRows: 0, target });
    feed(c, SHRINK_AFTER, noBacklog);
    expect(c.target).toBe(40); // no backlog: rule 1 applies, 64 * 25/40
    elu = 0.2;
    feed(c, SHRINK_AFTER, noBacklog);
    expect(c.target).toBe(25);
  });

  it('uses waitMs + runMs as the latency sample when per-request latencies are absent', () => {
    const c = new AdaptiveBatchSize({ maxBatchSize: 512, targetLatencyMs: 50, initialBatchSize: 40 });
    feed(c, SHRINK_AFTER, (target) => ({ rows: target, reason: 'full', runMs: 10, waitMs: 90, target }));
    expect(c.target).toBe(20); // e2e 100 ms, no backlog: floor(40 * 0.5)
  });

  it('stays within a narrow band under steady, noisy load', () => {
    // run = 1 ms + 0.2 ms/row with +-10% noise, saturated: growth stops once p90 run passes 0.8 x 25 ms (~90 rows).
    const c = new AdaptiveBatchSize({ maxBatchSize: 1024, targetLatencyMs: 50 });
    const rand = rng(42);
    const noisy = saturated((rows) => (1 + 0.2 * rows) * (0.9 + 0.2 * rand()));
    feed(c, 1000, noisy);
    const steady = feed(c, 5000, noisy);
    const lo = Math.min(...steady);
    const hi = Math.max(...steady);
    expect(lo).toBeGreaterThanOrEqual(75);
    expect(hi).toBeLessThanOrEqual(115);
    expect((hi - lo) / lo).toBeLessThanOrEqual(0.1);
    let changes = 0;
    for (let i = 1; i < steady.length; i++) if (steady[i] !== steady[i - 1]) changes++;
    expect(changes).toBeLessThanOrEqual(20);
  });
});

describe('eventLoopUtilizationSampler', () => {
  it('reads the loop over at least its window: a busy spell reads near 1, an idle one near 0, quick repeats the last value', async () => {
    const elu = eventLoopUtilizationSampler(40);
    expect(elu()).toBe(0); // no window has passed yet
    const spinUntil = performance.now() + 60;
    while (performance.now() < spinUntil);
    const busy = elu();
    expect(busy).toBeGreaterThan(0.9);
    expect(elu()).toBe(busy); // within the window: the same reading, not an empty interval
    await new Promise((r) => setTimeout(r, 80));
    expect(elu()).toBeLessThan(0.5);
  });
});
