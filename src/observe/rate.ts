/**
 * Items per second over sliding windows (1 s, 10 s, 60 s) and the peak 1 s rate, from counts
 * recorded with their time. O(1) per record (amortized: a jump in time zeroes at most a minute of
 * buckets, once), fixed memory whatever the run length.
 *
 * Counts go into 100 ms buckets in a ring covering 61 s. The rate over the last W seconds at time
 * `now` is (items in (now - W, now]) / min(W, time since start); the oldest bucket, which the
 * window covers only in part, counts in proportion to the part covered (uniform within 100 ms).
 * The peak 1 s rate is the largest count of 10 consecutive buckets seen: windows aligned to
 * 100 ms, so it never exceeds the true sliding peak and is within 10% of it.
 */

/** Bucket width in ms. */
export const RATE_BUCKET_MS = 100;
/** Buckets kept: 60 s of history plus the current one. */
const RING = 610;
const PER_SECOND = 1000 / RATE_BUCKET_MS;

export class RateMeter {
  readonly #start: number;
  readonly #buf = new Float64Array(RING);
  /** Absolute index of the newest bucket written (-1 before any). */
  #head = -1;
  #peak = 0;

  /** `start`: the time (ms, same clock as the records) the meter starts counting from. */
  constructor(start: number) {
    this.#start = start;
  }

  /** Adds `n` items at time `t` (ms). Records older than the ring are dropped. */
  add(n: number, t: number): void {
    const b = Math.floor((t - this.#start) / RATE_BUCKET_MS);
    if (b > this.#head) this.#advance(b);
    else if (b <= this.#head - RING || b < 0) return;
    this.#buf[b % RING] += n;
  }

  /** Moves the head to bucket `b`, folding each 1 s window it completes into the peak. */
  #advance(b: number): void {
    const from = this.#head;
    // Windows ending at from .. from+9 can hold counts; later ones are all zero.
    for (let end = from; end >= 0 && end < Math.min(b, from + PER_SECOND); end++) this.#foldPeak(end);
    const clearTo = Math.min(b, from + RING);
    for (let i = from + 1; i <= clearTo; i++) this.#buf[i % RING] = 0;
    this.#head = b;
  }

  #foldPeak(end: number): void {
    const s = this.#sum(end - PER_SECOND + 1, end);
    if (s > this.#peak) this.#peak = s;
  }

  /** Count in bucket `i` (absolute index); 0 outside what the ring holds. */
  #at(i: number): number {
    return i < 0 || i > this.#head || i <= this.#head - RING ? 0 : this.#buf[i % RING];
  }

  #sum(from: number, to: number): number {
    let s = 0;
    for (let i = Math.max(0, from); i <= to; i++) s += this.#at(i);
    return s;
  }

  /** Items per second over the last `seconds` (<= 60) at time `now`; 0 before any time passed. */
  rate(seconds: number, now: number): number {
    const elapsed = now - this.#start;
    if (!(elapsed > 0)) return 0;
    const windowMs = Math.min(seconds * 1000, elapsed);
    const cur = Math.floor(elapsed / RATE_BUCKET_MS);
    const lo = (elapsed - windowMs) / RATE_BUCKET_MS; // window start, in buckets
    const first = Math.floor(lo);
    let count = this.#sum(first + 1, cur);
    // The oldest bucket: only the part after the window start (uniform within the bucket).
    if (first >= 0 && first <= cur) count += this.#at(first) * (1 - (lo - first));
    return count / (windowMs / 1000);
  }

  /** Largest number of items in any 1 s window (aligned to 100 ms) up to `now`. */
  peak(now: number): number {
    let p = this.#peak;
    const cur = Math.floor((now - this.#start) / RATE_BUCKET_MS);
    // Windows ending after the head: complete ones are folded on the next record; count them now.
    for (let end = this.#head; end >= 0 && end <= Math.min(cur, this.#head + PER_SECOND - 1); end++) {
      const s = this.#sum(end - PER_SECOND + 1, end);
      if (s > p) p = s;
    }
    return p;
  }
}
