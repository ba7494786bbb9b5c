/** A fixed-size ring of the most recent items: pushing past the capacity drops the oldest. */
export class Ring<T> {
  readonly capacity: number;
  readonly #buf: Array<T | undefined>;
  #next = 0;
  #size = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be an integer >= 1, got ${capacity}`);
    this.capacity = capacity;
    this.#buf = new Array<T | undefined>(capacity).fill(undefined);
  }

  get size(): number {
    return this.#size;
  }

  push(item: T): void {
    this.#buf[this.#next] = item;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }

  /** The i-th item from the oldest (0) to the newest (size - 1); undefined outside. */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.#size) return undefined;
    return this.#buf[(this.#next - this.#size + i + this.capacity) % this.capacity];
  }

  /** The newest item. */
  last(): T | undefined {
    return this.at(this.#size - 1);
  }

  /** The newest `n` items (all when fewer), oldest first. */
  tail(n: number): T[] {
    const k = Math.min(n, this.#size);
    const out: T[] = [];
    for (let i = this.#size - k; i < this.#size; i++) out.push(this.at(i) as T);
    return out;
  }

  toArray(): T[] {
    return this.tail(this.#size);
  }
}

/** A fixed-size ring of the most recent samples, with nearest-rank percentiles. */
export class LatencyWindow {
  readonly #buf: Float64Array;
  #next = 0;
  #size = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be an integer >= 1, got ${capacity}`);
    }
    this.#buf = new Float64Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  push(value: number): void {
    this.#buf[this.#next] = value;
    this.#next = (this.#next + 1) % this.#buf.length;
    if (this.#size < this.#buf.length) this.#size++;
  }

  clear(): void {
    this.#next = 0;
    this.#size = 0;
  }

  /** Nearest-rank percentile, q in (0, 1]; NaN when empty. */
  percentile(q: number): number {
    if (this.#size === 0) return Number.NaN;
    const sorted = this.#buf.slice(0, this.#size).sort();
    return sorted[Math.min(this.#size, Math.max(1, Math.ceil(q * this.#size))) - 1];
  }
}
