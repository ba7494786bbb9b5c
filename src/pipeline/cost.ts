/**
 * Decides, per batch, whether to vectorize on the calling thread or on the worker pool, from costs
 * measured at run time.
 *
 * Posting strings to a worker costs about as much as vectorizing them, so
 * the pool is fed shared memory (a UTF-8 arena + offsets in a SharedArrayBuffer) and writes into a
 * shared output. Even so, string input must first be encoded on the calling thread, which costs
 * about as much as the native kernel itself; byte input needs at most a copy. So the answer
 * depends on the input kind, the row sizes and the machine, and is learnt rather than assumed:
 *
 *   inline  ~ inlineNsPerByte[kind] * bytes
 *   pool    ~ dispatchMs + prepNsPerByte[kind] * bytes + workerNsPerByte * bytes / shards
 *
 * Each estimate is an exponentially weighted mean of observed calls (alpha 0.2). The pool is tried
 * when it has no estimate yet, and re-explored every 32nd eligible decision, so a model that once
 * lost (e.g. while the machine was busy) can win again.
 */
import type { CostSnapshot } from '../observe/metrics.js';

export type InputKind = 'strings' | 'bytes';

const ALPHA = 0.2;
const EXPLORE_EVERY = 32;
const MIN_OBSERVED_BYTES = 64 << 10;

class Ewma {
  value: number | null = null;
  add(x: number): void {
    if (!Number.isFinite(x) || x < 0) return;
    this.value = this.value === null ? x : this.value + ALPHA * (x - this.value);
  }
}

export class CostModel {
  private readonly inline = { strings: new Ewma(), bytes: new Ewma() };
  private readonly prep = { strings: new Ewma(), bytes: new Ewma() };
  private readonly worker = new Ewma();
  private readonly dispatch = new Ewma();
  private eligible = 0;
  readonly decisions = { inline: 0, pool: 0 };

  /** `true` to use the pool for a batch of `bytes` input bytes split into `shards`. */
  choosePool(kind: InputKind, bytes: number, shards: number): boolean {
    this.eligible++;
    const inl = this.inline[kind].value;
    const prep = this.prep[kind].value;
    const work = this.worker.value;
    const disp = this.dispatch.value;
    let pool: boolean;
    if (inl === null) pool = false;
    else if (prep === null || work === null || disp === null || this.eligible % EXPLORE_EVERY === 0) pool = true;
    else {
      const inlineMs = (inl * bytes) / 1e6;
      const poolMs = disp + (prep * bytes) / 1e6 + (work * bytes) / shards / 1e6;
      pool = poolMs < inlineMs * 0.9;
    }
    this.decisions[pool ? 'pool' : 'inline']++;
    return pool;
  }

  /** Only calls large enough to be pool candidates teach the model (small ones are all overhead). */
  observeInline(kind: InputKind, bytes: number, ms: number): void {
    if (bytes >= MIN_OBSERVED_BYTES) this.inline[kind].add((ms * 1e6) / bytes);
  }

  /**
   * One pool run: `prepMs` on the calling thread (encoding or copying into shared memory),
   * `workerMs` summed over the shards' kernels, `totalMs` from dispatch to the last result.
   */
  observePool(kind: InputKind, bytes: number, shards: number, prepMs: number, workerMs: number, totalMs: number): void {
    if (bytes <= 0) return;
    this.prep[kind].add((prepMs * 1e6) / bytes);
    this.worker.add((workerMs * 1e6) / bytes);
    this.dispatch.add(Math.max(0, totalMs - prepMs - workerMs / shards));
  }

  snapshot(): CostSnapshot {
    return {
      inlineNsPerByte: { strings: this.inline.strings.value, bytes: this.inline.bytes.value },
      prepNsPerByte: { strings: this.prep.strings.value, bytes: this.prep.bytes.value },
      workerNsPerByte: this.worker.value,
      dispatchMs: this.dispatch.value,
      decisions: { ...this.decisions },
    };
  }
}
