/**
 * AbortSignal handling shared by the pipeline's methods: checking `signal` arguments, and waiting
 * on a promise that an abort cuts short (streams and files wait on their sources).
 */
import { abortReason } from './errors.js';
import { describe } from './check.js';

/**
 * `signal` as given (undefined: none). An AbortSignal, or an object like one (a boolean `aborted`,
 * `addEventListener` and `removeEventListener`); anything else is a TypeError naming `what`.
 */
export function checkSignal(signal: unknown, what: string): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (
    signal !== null && typeof signal === 'object' &&
    typeof (signal as { aborted?: unknown }).aborted === 'boolean' &&
    typeof (signal as { addEventListener?: unknown }).addEventListener === 'function' &&
    typeof (signal as { removeEventListener?: unknown }).removeEventListener === 'function'
  ) {
    return signal as AbortSignal;
  }
  throw new TypeError(`${what} must be an AbortSignal, got ${describe(signal)}`);
}

/**
 * Waits on one promise at a time, cut short when `signal` aborts: `wait(p)` settles as `p` does,
 * or rejects with the abort reason as soon as the signal aborts (then `p`'s own outcome is
 * dropped). One 'abort' listener for the watch's whole life, not one per wait: a stream waits on
 * its source once per item. `dispose()` removes it.
 */
export class AbortWatch {
  private reject: ((reason: unknown) => void) | null = null;
  private readonly onAbort = (): void => {
    const reject = this.reject;
    this.reject = null;
    reject?.(abortReason(this.signal));
  };

  constructor(readonly signal: AbortSignal) {
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Throws the abort reason if the signal has aborted. */
  check(): void {
    if (this.signal.aborted) throw abortReason(this.signal);
  }

  wait<T>(p: Promise<T>): Promise<T> {
    if (this.signal.aborted) {
      p.catch(() => {}); // its outcome no longer matters
      return Promise.reject(abortReason(this.signal));
    }
    return new Promise<T>((resolve, reject) => {
      this.reject = reject;
      const done = () => {
        if (this.reject === reject) this.reject = null;
      };
      p.then(
        (v) => {
          done();
          resolve(v);
        },
        (e: unknown) => {
          done();
          reject(e);
        },
      );
    });
  }

  dispose(): void {
    this.reject = null;
    this.signal.removeEventListener('abort', this.onAbort);
  }
}
