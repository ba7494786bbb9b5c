/**
 * Trends: the least-squares slope of a series over its last N samples, and the change it implies
 * across that window relative to the series' level. The original design's rule (docs/ORIGINAL.md)
 * calls a series degrading when it falls by more than 15% of its value per window; judged on the
 * fitted slope rather than on two endpoints, one noisy sample cannot trip it.
 */

export interface Trend {
  /** Points in the fit (0 when there are fewer than the window needs). */
  samples: number;
  /** Least-squares slope, units per second (null without a full window). */
  slopePerSecond: number | null;
  /** The slope times the window's span: the fitted change across the window. */
  changePerWindow: number | null;
  /** The series' level over the window: its mean (= the fit's value at the window's mean time). */
  level: number | null;
  /** changePerWindow / level (null when the level is not positive). */
  relativeChange: number | null;
}

const NO_TREND: Trend = { samples: 0, slopePerSecond: null, changePerWindow: null, level: null, relativeChange: null };

/** Least-squares slope of y over x; null for fewer than 2 points or no spread in x. */
export function leastSquaresSlope(xs: readonly number[], ys: readonly number[]): number | null {
  const n = xs.length;
  if (n < 2 || ys.length !== n) return null;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += xs[i];
    my += ys[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i] - mx;
    sxy += dx * (ys[i] - my);
    sxx += dx * dx;
  }
  return sxx > 0 ? sxy / sxx : null;
}

/**
 * The trend of the last `window` points (x in seconds, y the value); no trend (samples 0) until
 * there are `window` points.
 */
export function trendOf(xs: readonly number[], ys: readonly number[], window: number): Trend {
  if (xs.length < window || window < 2) return NO_TREND;
  const x = xs.slice(xs.length - window);
  const y = ys.slice(ys.length - window);
  const slope = leastSquaresSlope(x, y);
  if (slope === null) return NO_TREND;
  let level = 0;
  for (const v of y) level += v;
  level /= y.length;
  const change = slope * (x[x.length - 1] - x[0]);
  return { samples: window, slopePerSecond: slope, changePerWindow: change, level, relativeChange: level > 0 ? change / level : null };
}
