/**
 * A distribution of recorded values (latencies in ms, batch sizes in rows): HDR histograms from
 * Node's `perf_hooks.createHistogram` (2 significant figures: percentiles within 1%), plus exact
 * count, sum and max, plus fixed cumulative buckets for Prometheus. Batch sizes up to 1,024 rows
 * are counted exactly in an array instead (exact percentiles, a few ns per record). O(1) per
 * record: one HDR update (~40 ns, a binding call) and a scan of ~16 bucket bounds. Fixed memory
 * (~26 KB per HDR histogram, four of them, and 8 KB per window for exact counts). The collector
 * (metrics.ts) feeds it from its event log, in bulk, off the pipeline's hot path.
 *
 * Percentiles are reported twice: since start, and over the recent past (the current 10 s window
 * and the one before it, so 10 to 20 s), which is what an alert should look at. Records go into
 * the current window only; when a window ends it is folded into the since-start histogram, so a
 * record costs one HDR update, and the merging is paid by the reader.
 *
 * The Prometheus buckets are counted at record time (never derived from the HDR histogram), so
 * the exported `_bucket` series are exact for their bounds.
 */
import { type RecordableHistogram, createHistogram } from 'node:perf_hooks';

/** Length of one recent-percentile window, ms. */
export const WINDOW_MS = 10_000;
/** Largest value the HDR histograms hold, in recorded units (1 hour in µs); larger values are clamped. */
const HIGHEST = 3_600_000_000;
/** Batch sizes up to this many rows are counted exactly (the default maxBatchSize is 1000). */
export const EXACT_ROWS = 1024;

/** Bucket upper bounds for latencies, ms (Prometheus exports them in seconds: 0.1 ms .. 10 s). */
export const LATENCY_BUCKETS_MS: readonly number[] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
/** Bucket upper bounds for batch sizes, rows. */
export const SIZE_BUCKETS_ROWS: readonly number[] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000, 1000000];

/** Percentiles of a set of values; null fields when it is empty. */
export interface Percentiles {
  count: number;
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

export interface DistributionSnapshot extends Percentiles {
  /** Exact sum of every value recorded. */
  sum: number;
  /** The last 10 to 20 seconds: `seconds` is the span covered. */
  recent: Percentiles & { seconds: number };
  /** Cumulative counts (values <= `le[i]`), since start; `count` is the +Inf bucket. */
  buckets: { le: readonly number[]; cumulative: number[] };
}

function hdr(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: HIGHEST, figures: 2 });
}

/** One window's (or the folded past's) values: the HDR histogram, and exact small-integer counts. */
class Part {
  readonly hdr = hdr();
  /** counts[v] for integer values 0..exactMax (null when the distribution has no exact range). */
  readonly small: Float64Array | null;

  constructor(exactMax: number) {
    this.small = exactMax >= 0 ? new Float64Array(exactMax + 1) : null;
  }

  add(other: Part): void {
    this.hdr.add(other.hdr);
    const a = this.small;
    const b = other.small;
    if (a !== null && b !== null) for (let i = 0; i < a.length; i++) a[i] += b[i];
  }

  reset(): void {
    this.hdr.reset();
    this.small?.fill(0);
  }
}

export class Distribution {
  readonly #scale: number;
  readonly #le: readonly number[];
  /** Non-cumulative counts per bucket; the last slot is above every bound. */
  readonly #counts: Float64Array;
  /** Integers 0..#exactMax are counted exactly (-1: none). */
  readonly #exactMax: number;
  /** The Prometheus bucket of each exactly counted integer. */
  readonly #bucketOf: Uint8Array | null;
  #count = 0;
  #sum = 0;
  #max = 0;
  /** Exact maxima of the previous and current windows (the HDR max is a bucket's bound). */
  #prevMax = 0;
  #curMax = 0;
  /** Folded windows; the previous window; the current window; scratch for reading. */
  readonly #total: Part;
  #prev: Part;
  #cur: Part;
  readonly #scratch: Part;
  #windowStart: number;
  readonly #start: number;

  /**
   * `scale`: HDR units per value unit (1000 for ms recorded as µs, 1 for rows); `le`: the
   * Prometheus bucket bounds in value units; `start`: the time (ms) the first window starts;
   * `exactMax`: integer values up to it are counted exactly in an array instead of the HDR
   * histogram (batch sizes: a few ns per record, exact percentiles), -1 for none.
   */
  constructor(scale: number, le: readonly number[], start: number, exactMax = -1) {
    this.#scale = scale;
    this.#le = le;
    this.#counts = new Float64Array(le.length + 1);
    this.#exactMax = exactMax;
    this.#bucketOf = exactMax >= 0 ? new Uint8Array(exactMax + 1) : null;
    for (let v = 0; v <= exactMax; v++) this.#bucketOf![v] = this.#bucketIndex(v);
    this.#total = new Part(exactMax);
    this.#prev = new Part(exactMax);
    this.#cur = new Part(exactMax);
    this.#scratch = new Part(exactMax);
    this.#windowStart = start;
    this.#start = start;
  }

  get count(): number {
    return this.#count;
  }

  #bucketIndex(value: number): number {
    const le = this.#le;
    let i = 0;
    while (i < le.length && value > le[i]) i++;
    return i;
  }

  /** Records `value` (>= 0; NaN and negatives are ignored) at time `t` (ms). */
  record(value: number, t: number): void {
    if (!(value >= 0)) return;
    if (t - this.#windowStart >= WINDOW_MS) this.#rotate(t);
    if (value <= this.#exactMax && (value | 0) === value) {
      this.#cur.small![value]++;
      this.#counts[this.#bucketOf![value]]++;
      this.#count++;
      this.#sum += value;
      if (value > this.#curMax) {
        this.#curMax = value;
        if (value > this.#max) this.#max = value;
      }
      return;
    }
    let v = Math.round(value * this.#scale);
    if (v < 1) v = 1;
    else if (v > HIGHEST) v = HIGHEST;
    this.#cur.hdr.record(v);
    this.#counts[this.#bucketIndex(value)]++;
    this.#count++;
    this.#sum += value;
    if (value > this.#curMax) {
      this.#curMax = value;
      if (value > this.#max) this.#max = value;
    }
  }

  #rotate(t: number): void {
    const windows = Math.floor((t - this.#windowStart) / WINDOW_MS);
    this.#total.add(this.#prev);
    this.#prev.reset();
    const old = this.#prev;
    this.#prev = this.#cur;
    this.#cur = old;
    this.#prevMax = this.#curMax;
    this.#curMax = 0;
    if (windows >= 2) {
      // Whole windows passed with no record: the one just closed is not the previous one.
      this.#total.add(this.#prev);
      this.#prev.reset();
      this.#prevMax = 0;
    }
    this.#windowStart += windows * WINDOW_MS;
  }

  /** Percentiles of `p`; `sum` and `max` exact when known (null: computed from p, max from HDR). */
  #percentiles(p: Part, max: number, sum: number | null): Percentiles {
    const h = p.hdr;
    const small = p.small;
    let smallCount = 0;
    let smallSum = 0;
    if (small !== null) {
      for (let v = 0; v < small.length; v++) {
        smallCount += small[v];
        smallSum += v * small[v];
      }
    }
    const count = smallCount + h.count;
    if (count === 0) return { count: 0, mean: null, p50: null, p90: null, p99: null, max: null };
    const s = this.#scale;
    const mean = sum !== null ? sum / count : (smallSum + (h.count > 0 ? (h.mean / s) * h.count : 0)) / count;
    // Every exactly counted value is below every value in the HDR histogram, so ranks split.
    const at = (q: number): number => {
      const rank = Math.max(1, Math.ceil((q / 100) * count));
      if (rank <= smallCount && small !== null) {
        let acc = 0;
        for (let v = 0; v < small.length; v++) if ((acc += small[v]) >= rank) return v;
      }
      return Math.min(h.percentile(((rank - smallCount) / h.count) * 100) / s, max);
    };
    return { count, mean, p50: at(50), p90: at(90), p99: at(99), max };
  }

  /** The distribution at time `now` (ms). */
  snapshot(now: number): DistributionSnapshot {
    if (now - this.#windowStart >= WINDOW_MS) this.#rotate(now);
    const s = this.#scratch;
    s.reset();
    s.add(this.#total);
    s.add(this.#prev);
    s.add(this.#cur);
    const all = this.#percentiles(s, this.#max, this.#sum);
    s.reset();
    s.add(this.#prev);
    s.add(this.#cur);
    const recent = this.#percentiles(s, Math.max(this.#prevMax, this.#curMax), null);
    const cumulative: number[] = [];
    let acc = 0;
    for (let i = 0; i < this.#le.length; i++) cumulative.push((acc += this.#counts[i]));
    return {
      ...all,
      sum: this.#sum,
      recent: { ...recent, seconds: Math.min(WINDOW_MS + now - this.#windowStart, now - this.#start) / 1000 },
      buckets: { le: this.#le, cumulative },
    };
  }
}
