/**
 * A distribution of recorded values (latencies in ms, batch sizes in rows): log-linear (HDR)
 * histograms kept in JavaScript (LogLinear below: 128 sub-buckets per power of two, percentiles
 * within 1%), plus exact count, sum and max, plus fixed cumulative buckets for Prometheus. Batch
 * sizes up to 1,024 rows are counted exactly in an array instead (exact percentiles). O(1) per
 * record: a count-leading-zeros and an array increment (Node's perf_hooks histogram cost a binding
 * call, ~40 ns, per record: with one record per submitted request that was most of what profiling
 * cost), and a scan of ~16 bucket bounds. Fixed memory (~27 KB per histogram, and 8 KB per window
 * for exact counts). The collector (metrics.ts) feeds it from its event log, in bulk.
 *
 * Percentiles are reported twice: since start, and over the recent past (the current 10 s window
 * and the one before it, so 10 to 20 s), which is what an alert should look at. Records go into
 * the current window only; when a window ends it is folded into the since-start histogram, so a
 * record costs one HDR update, and the merging is paid by the reader.
 *
 * The Prometheus buckets are counted at record time (never derived from the HDR histogram), so
 * the exported `_bucket` series are exact for their bounds.
 */

/** Length of one recent-percentile window, ms. */
export const WINDOW_MS = 10_000;
/** Largest value the histograms hold, in recorded units (1 hour in µs); larger values are clamped. */
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

/**
 * Counts of integers 1..2^32-1 in log-linear buckets, as HdrHistogram lays them out with 256
 * sub-buckets: values below 256 exactly, above that 128 buckets per power of two (a bucket is at
 * most 1/128 of its values wide). `percentile` returns a bucket's highest equivalent value, as
 * HdrHistogram does.
 */
export class LogLinear {
  static readonly SLOTS = 256 + 24 * 128;
  readonly #counts = new Float64Array(LogLinear.SLOTS);
  count = 0;
  #sum = 0;

  static indexOf(v: number): number {
    if (v < 256) return v;
    const shift = 24 - Math.clz32(v); // (31 - clz) - 7: keep the top 8 bits
    return 256 + (shift - 1) * 128 + ((v >>> shift) - 128);
  }

  /** The highest value that lands in slot `i`. */
  static highestOf(i: number): number {
    if (i < 256) return i;
    const shift = ((i - 256) >> 7) + 1;
    const sub = ((i - 256) & 127) + 128;
    return (sub + 1) * 2 ** shift - 1;
  }

  /** Records integer `v` (1 <= v < 2^32). */
  record(v: number): void {
    this.#counts[LogLinear.indexOf(v)]++;
    this.count++;
    this.#sum += v;
  }

  get mean(): number {
    return this.count > 0 ? this.#sum / this.count : Number.NaN;
  }

  /** The value at percentile `p` (0-100]. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    const c = this.#counts;
    let acc = 0;
    for (let i = 0; i < c.length; i++) if ((acc += c[i]) >= rank) return LogLinear.highestOf(i);
    return LogLinear.highestOf(c.length - 1);
  }

  add(other: LogLinear): void {
    if (other.count === 0) return;
    const a = this.#counts;
    const b = other.#counts;
    for (let i = 0; i < a.length; i++) a[i] += b[i];
    this.count += other.count;
    this.#sum += other.#sum;
  }

  reset(): void {
    if (this.count === 0) return;
    this.#counts.fill(0);
    this.count = 0;
    this.#sum = 0;
  }
}

/** One window's (or the folded past's) values: the HDR histogram, and exact small-integer counts. */
class Part {
  readonly hdr = new LogLinear();
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
