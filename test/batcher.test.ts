/** The micro-batcher: work-conserving batches, static batching, slots, aborts, shedding, close(). */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { rng } from './fixtures/util.js';
import { type BatchInfo, type BatcherOptions, MicroBatcher } from '../src/pipeline/submit/batcher.js';
import { AbortError, PipelineClosedError, QueueFullError, WorkerCrashError, abortReason } from '../src/common/errors.js';
import { LatencyWindow } from '../src/common/ring.js';

interface Req {
  id: number;
  key: string;
  rows: number;
}
type Res = string;

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

interface Outcome<T> {
  state: 'pending' | 'resolved' | 'rejected';
  value?: T;
  reason?: unknown;
}

function watch<T>(p: Promise<T>): Outcome<T> {
  const o: Outcome<T> = { state: 'pending' };
  p.then(
    (value) => {
      o.state = 'resolved';
      o.value = value;
    },
    (reason: unknown) => {
      o.state = 'rejected';
      o.reason = reason;
    },
  );
  return o;
}

/** Runs what the batcher deferred to the end of the turn, and pending callbacks, without moving the clock. */
const flush = async (): Promise<void> => {
  await vi.advanceTimersByTimeAsync(0);
};

interface Call {
  key: string;
  reqs: Req[];
  signal: AbortSignal;
  ctx: unknown;
  d: Deferred<Res[]>;
  at: number;
}

/** A batcher whose `run` parks each batch until the test answers it. */
function harness(over: Partial<BatcherOptions<Req, Res, unknown>> = {}) {
  const calls: Call[] = [];
  const infos: BatchInfo[] = [];
  const latencies: number[][] = [];
  const batcher = new MicroBatcher<Req, Res, unknown>({
    maxBatchSize: 64,
    batchTimeoutMs: 10,
    maxQueue: 1000,
    maxInFlight: 4,
    rowsOf: (r) => r.rows,
    run: (key, reqs, signal, ctx) => {
      const d = deferred<Res[]>();
      calls.push({ key, reqs, signal, ctx, d, at: Date.now() });
      return d.promise;
    },
    now: () => Date.now(),
    onBatch: (info, lat, n) => {
      infos.push(info);
      latencies.push(Array.from(lat.subarray(0, n)));
    },
    ...over,
  });
  let nextId = 0;
  const submit = (key: string, rows = 1, signal?: AbortSignal, ctx?: unknown) => {
    const req: Req = { id: nextId++, key, rows };
    return { req, out: watch(batcher.submit(key, req, signal, ctx)) };
  };
  const answer = (c: Call) => c.d.resolve(c.reqs.map((r) => `${c.key}:${r.id}`));
  const ids = (c: Call) => c.reqs.map((r) => r.id);
  return { batcher, calls, infos, latencies, submit, answer, ids };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

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

describe('MicroBatcher options', () => {
  it('rejects bad options with a RangeError naming the option', () => {
    const base: BatcherOptions<Req, Res> = {
      maxBatchSize: 8,
      batchTimeoutMs: 5,
      maxQueue: 100,
      maxInFlight: 2,
      rowsOf: () => 1,
      run: async () => [],
    };
    expect(() => new MicroBatcher({ ...base, maxBatchSize: 0 })).toThrow(/maxBatchSize must be an integer >= 1, got 0/);
    expect(() => new MicroBatcher({ ...base, maxBatchSize: Infinity })).toThrow(/maxBatchSize/);
    expect(() => new MicroBatcher({ ...base, batchTimeoutMs: -1 })).toThrow(/batchTimeoutMs/);
    expect(() => new MicroBatcher({ ...base, batchTimeoutMs: Infinity })).toThrow(/batchTimeoutMs/);
    expect(() => new MicroBatcher({ ...base, batchTimeoutMs: 2 ** 31 })).toThrow(/batchTimeoutMs must be <= 2147483647/);
    expect(() => new MicroBatcher({ ...base, maxQueue: 1.5 })).toThrow(/maxQueue/);
    expect(() => new MicroBatcher({ ...base, maxInFlight: 0 })).toThrow(/maxInFlight/);
    expect(() => new MicroBatcher({ ...base, fixedBatchSize: 9 })).toThrow(/fixedBatchSize must be an integer from 1 to maxBatchSize \(8\), got 9/);
    expect(() => new MicroBatcher({ ...base, fixedBatchSize: 0 })).toThrow(RangeError);
    expect(new MicroBatcher({ ...base, maxQueue: Infinity }).queuedRows).toBe(0);
  });

  it('target is the most rows a free slot takes: maxBatchSize, or fixedBatchSize', () => {
    const base = { batchTimeoutMs: 5, maxQueue: 10, maxInFlight: 1, rowsOf: () => 1, run: async () => [] };
    expect(new MicroBatcher({ ...base, maxBatchSize: 8 }).target).toBe(8);
    expect(new MicroBatcher({ ...base, maxBatchSize: 8, fixedBatchSize: 3 }).target).toBe(3);
  });
});

describe('work-conserving batches', () => {
  it('the first batch after creation is as large as what waits: every row submitted in the turn', async () => {
    const h = harness({ maxBatchSize: 1000 });
    for (let i = 0; i < 700; i++) h.submit('a');
    expect(h.calls).toHaveLength(0); // cut at the end of the turn
    await flush();
    expect(h.calls.map((c) => c.reqs.length)).toEqual([700]);
    expect(Date.now()).toBe(0); // no timer was waited for
    h.answer(h.calls[0]);
    await flush();
    expect(h.infos[0]).toMatchObject({ rows: 700, requests: 700, reason: 'ready', target: 700, waitMs: 0 });
  });

  it('with N <= maxBatchSize rows waiting when a slot frees, the next batch holds all N', async () => {
    for (const n of [1, 2, 37, 64]) {
      const h = harness({ maxBatchSize: 64, maxInFlight: 1 });
      h.submit('a');
      await flush();
      expect(h.calls).toHaveLength(1); // the only slot
      for (let i = 0; i < n; i++) h.submit('a');
      await vi.advanceTimersByTimeAsync(100); // waiting, whatever the time: nothing but a slot frees them
      expect(h.calls).toHaveLength(1);
      h.answer(h.calls[0]);
      await flush();
      expect(h.calls).toHaveLength(2);
      expect(h.calls[1].reqs).toHaveLength(n);
      expect(h.ids(h.calls[1])).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    }
  });

  it('more than maxBatchSize waiting: full batches in arrival order, each as large as the cap allows', async () => {
    const h = harness({ maxBatchSize: 10, maxInFlight: 1 });
    const subs = Array.from({ length: 25 }, (_, i) => h.submit('a', 1 + (i % 3))); // 49 rows
    await flush();
    for (let k = 0; h.calls.length > k; k++) {
      h.answer(h.calls[k]);
      await flush();
    }
    const rows = h.calls.map((c) => c.reqs.reduce((n, r) => n + r.rows, 0));
    expect(rows.reduce((a, b) => a + b, 0)).toBe(49);
    // Each batch takes requests while they fit: the next one would pass 10.
    let at = 0;
    for (const c of h.calls) {
      expect(h.ids(c)[0]).toBe(at);
      at += c.reqs.length;
      const next = subs[at];
      if (next) expect(c.reqs.reduce((n, r) => n + r.rows, 0) + next.req.rows).toBeGreaterThan(10);
    }
    expect(h.infos.map((i) => i.reason)).toEqual([...Array(h.calls.length - 1).fill('full'), 'ready']);
    expect(subs.every((s) => s.out.value === `a:${s.req.id}`)).toBe(true);
  });

  it('a burst after a long idle spell is taken whole', async () => {
    const h = harness({ maxBatchSize: 1000, maxInFlight: 2 });
    h.submit('a');
    await flush();
    h.answer(h.calls[0]);
    await flush();
    await vi.advanceTimersByTimeAsync(60_000);
    for (let i = 0; i < 900; i++) h.submit('a');
    await flush();
    expect(h.calls.map((c) => c.reqs.length)).toEqual([1, 900]);
    expect(h.calls[1].at).toBe(60_000);
  });

  it('a handler that blocks the thread does not hold batches small: each batch takes what arrived while it ran', async () => {
    // A run that blocks the event loop for 5 ms (a CPU-bound model stage) while a request arrives
    // every 0.1 ms: the arrivals pile up during the run and the next batch takes them all.
    let clock = 0;
    const sizes: number[] = [];
    const batcher = new MicroBatcher<number, number>({
      maxBatchSize: 1000,
      batchTimeoutMs: 2,
      maxQueue: 1e6,
      maxInFlight: 2,
      rowsOf: () => 1,
      now: () => clock,
      run: async (_key, reqs) => {
        sizes.push(reqs.length);
        clock += 5; // blocked: the loop runs nothing else meanwhile
        return reqs;
      },
    });
    const results: Promise<number>[] = [];
    let id = 0;
    for (let step = 0; step < 200; step++) {
      // Everything due by now arrives in this turn (a timer firing late after a blocked loop).
      const dueBy = clock + 0.1;
      while (id * 0.1 < dueBy) results.push(batcher.submit('k', id++));
      await flush();
    }
    await batcher.close();
    expect(await Promise.all(results)).toEqual(Array.from({ length: id }, (_, i) => i));
    // From the second batch on, every batch holds the ~50 rows that arrived during the previous run.
    expect(sizes[0]).toBe(1);
    expect(Math.min(...sizes.slice(1, -1))).toBeGreaterThanOrEqual(49);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(52);
  });

  it('a free slot while others run takes what waits at once: batches never wait for company', async () => {
    const h = harness({ maxBatchSize: 64, maxInFlight: 2 });
    h.submit('a');
    await flush();
    h.submit('a');
    h.submit('a');
    await flush();
    expect(h.calls.map(h.ids)).toEqual([[0], [1, 2]]);
    h.submit('a'); // both slots busy: waits
    await vi.advanceTimersByTimeAsync(50);
    expect(h.calls).toHaveLength(2);
    h.answer(h.calls[1]);
    await flush();
    expect(h.calls.map(h.ids)[2]).toEqual([3]);
    h.answer(h.calls[2]);
    h.answer(h.calls[0]);
    await flush();
    expect(h.infos.map((i) => [i.reason, i.waitMs])).toEqual([
      ['ready', 0],
      ['ready', 50],
      ['ready', 0],
    ]);
  });

  it('keeps key queues while empty, and with more than 64 keys drops only empty ones: nothing waiting is lost', async () => {
    const h = harness({ maxBatchSize: 8, maxInFlight: 1 });
    h.submit('busy');
    await flush();
    const subs = Array.from({ length: 200 }, (_, i) => h.submit(`k${i % 100}`)); // 100 keys, waiting
    for (let k = 0; k < h.calls.length; k++) {
      h.answer(h.calls[k]);
      await flush();
    }
    expect(subs.every((s) => s.out.value === `${s.req.key}:${s.req.id}`)).toBe(true);
    expect(h.calls.slice(1).map((c) => c.reqs.length)).toEqual(Array(100).fill(2));
    expect(h.batcher.stats()).toMatchObject({ queuedRows: 0, resolved: 201 });
  });

  it('gives each request its own result when batches are answered out of order', async () => {
    const h = harness({ maxBatchSize: 3, maxInFlight: 4 });
    const subs = Array.from({ length: 7 }, () => h.submit('a'));
    await flush();
    expect(h.calls.map(h.ids)).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    h.answer(h.calls[2]);
    h.answer(h.calls[0]);
    h.answer(h.calls[1]);
    await flush();
    expect(subs.map((s) => s.out.value)).toEqual(['a:0', 'a:1', 'a:2', 'a:3', 'a:4', 'a:5', 'a:6']);
    expect(h.infos.map((i) => i.reason)).toEqual(['ready', 'full', 'full']);
  });

  it('never puts requests with different keys in one batch; each key’s context goes to run', async () => {
    const h = harness({ maxBatchSize: 4, maxInFlight: 100 });
    const keys = ['x', 'y', 'z'];
    const subs = Array.from({ length: 30 }, (_, i) => h.submit(keys[(i * 7) % 3], 1 + (i % 2), undefined, `ctx-${keys[(i * 7) % 3]}`));
    await flush();
    expect(h.calls.length).toBeGreaterThan(3);
    for (const c of h.calls) {
      expect(c.reqs.every((r) => r.key === c.key)).toBe(true);
      expect(c.ctx).toBe(`ctx-${c.key}`);
      expect(c.reqs.reduce((n, r) => n + r.rows, 0)).toBeLessThanOrEqual(4);
      expect(h.ids(c)).toEqual([...h.ids(c)].sort((p, q) => p - q)); // FIFO within a key
    }
    for (const c of h.calls) h.answer(c);
    await flush();
    for (const s of subs) expect(s.out.value).toBe(`${s.req.key}:${s.req.id}`);
  });

  it('puts a request larger than the cap in a batch of its own, never split', async () => {
    const h = harness({ maxBatchSize: 4, maxInFlight: 4 });
    h.submit('a', 2);
    const big = h.submit('a', 10);
    h.submit('a', 1);
    await flush();
    expect(h.calls.map(h.ids)).toEqual([[0], [1], [2]]); // 2 + 10 would pass the cap; 10 goes alone
    expect(h.calls[1].reqs).toEqual([big.req]);
    for (const c of h.calls) h.answer(c);
    await flush();
    expect(h.infos.map((i) => [i.rows, i.reason])).toEqual([
      [2, 'full'],
      [10, 'full'],
      [1, 'ready'],
    ]);
    expect(big.out.value).toBe('a:1');
  });

  it('serves the key whose oldest row arrived first when slots are scarce', async () => {
    const h = harness({ maxBatchSize: 8, maxInFlight: 1 });
    h.submit('busy');
    await flush(); // takes the only slot
    h.submit('b');
    await vi.advanceTimersByTimeAsync(1);
    h.submit('a');
    h.submit('a');
    h.submit('b');
    h.answer(h.calls[0]);
    await flush();
    expect(h.calls[1].key).toBe('b');
    expect(h.calls[1].reqs).toHaveLength(2);
    h.answer(h.calls[1]);
    await flush();
    expect(h.calls[2].key).toBe('a');
  });

  it('calls run with one request per result and rejects the batch when run returns a wrong count', async () => {
    const h = harness();
    const a = h.submit('k');
    const b = h.submit('k');
    await flush();
    h.calls[0].d.resolve(['only one']);
    await flush();
    expect(a.out.reason).toBeInstanceOf(TypeError);
    expect(String(a.out.reason)).toMatch(/one result per request: got 1 results for 2 requests/);
    expect(b.out.reason).toBe(a.out.reason);
    expect(h.infos[0].ok).toBe(false);
  });

  it('reports each resolved request’s end-to-end latency to onBatch', async () => {
    const h = harness({ maxInFlight: 1 });
    h.submit('a');
    await flush();
    await vi.advanceTimersByTimeAsync(3);
    h.submit('a');
    await vi.advanceTimersByTimeAsync(4);
    h.submit('a');
    await vi.advanceTimersByTimeAsync(2);
    h.answer(h.calls[0]); // t = 9
    await flush();
    await vi.advanceTimersByTimeAsync(5);
    h.answer(h.calls[1]); // t = 14
    await flush();
    expect(h.latencies).toEqual([[9], [11, 7]]);
    expect(h.infos[1]).toMatchObject({ waitMs: 6, runMs: 5, rows: 2 });
  });
});

describe('fixedBatchSize (static batching)', () => {
  it('closes on size without waiting for a timer', async () => {
    const h = harness({ fixedBatchSize: 4 });
    for (let i = 0; i < 3; i++) h.submit('a');
    await flush();
    expect(h.calls).toHaveLength(0);
    h.submit('a');
    await flush();
    expect(h.calls.map(h.ids)).toEqual([[0, 1, 2, 3]]);
    expect(h.calls[0].at).toBe(0);
  });

  it('closes on timeout measured from the oldest row’s arrival', async () => {
    const h = harness({ fixedBatchSize: 64, batchTimeoutMs: 10 });
    h.submit('a'); // t = 0
    await vi.advanceTimersByTimeAsync(6);
    h.submit('a'); // t = 6: does not restart the clock
    await vi.advanceTimersByTimeAsync(3);
    expect(h.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.calls.map(h.ids)).toEqual([[0, 1]]);
    expect(h.calls[0].at).toBe(10);
    h.answer(h.calls[0]);
    await flush();
    expect(h.infos[0]).toMatchObject({ reason: 'timeout', waitMs: 10, rows: 2, requests: 2 });
  });

  it('times a row left behind by a full batch from its own arrival, not from when it became oldest', async () => {
    const h = harness({ fixedBatchSize: 2, maxInFlight: 1, batchTimeoutMs: 10 });
    h.submit('a');
    h.submit('a'); // t = 0: full, takes the slot
    await vi.advanceTimersByTimeAsync(3);
    h.submit('a'); // t = 3
    await vi.advanceTimersByTimeAsync(2);
    h.submit('a'); // t = 5: full again, waits for the slot
    await vi.advanceTimersByTimeAsync(1);
    const late = h.submit('a'); // t = 6: the next batch's oldest row
    await vi.advanceTimersByTimeAsync(2);
    h.answer(h.calls[0]); // t = 8
    await flush();
    expect(h.calls.map(h.ids)).toEqual([
      [0, 1],
      [2, 3],
    ]);
    h.answer(h.calls[1]);
    await vi.advanceTimersByTimeAsync(7); // t = 15
    expect(h.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1); // t = 16 = 6 + 10
    expect(h.calls.map(h.ids)[2]).toEqual([late.req.id]);
    expect(h.calls[2].at).toBe(16);
  });

  it('a batch closed by its timer while no slot is free fills up to the size before it goes', async () => {
    const h = harness({ fixedBatchSize: 4, maxInFlight: 1, batchTimeoutMs: 5 });
    for (let i = 0; i < 4; i++) h.submit('a'); // t = 0: full, takes the slot
    await vi.advanceTimersByTimeAsync(1);
    h.submit('a'); // t = 1: id 4
    await vi.advanceTimersByTimeAsync(5); // t = 6: its timer fired, no slot
    h.submit('a');
    h.submit('a'); // t = 6: ids 5, 6
    await vi.advanceTimersByTimeAsync(2);
    h.submit('a');
    h.submit('a'); // t = 8: ids 7, 8
    await vi.advanceTimersByTimeAsync(1);
    h.answer(h.calls[0]); // t = 9
    await flush();
    expect(h.calls.map(h.ids)[1]).toEqual([4, 5, 6, 7]);
    h.answer(h.calls[1]);
    await vi.advanceTimersByTimeAsync(3); // t = 12 < 8 + 5
    expect(h.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1); // t = 13
    expect(h.calls.map(h.ids)[2]).toEqual([8]);
    h.answer(h.calls[2]);
    await flush();
    expect(h.infos.map((i) => [i.reason, i.waitMs])).toEqual([
      ['full', 0],
      ['full', 8],
      ['timeout', 5],
    ]);
  });

  it('with batchTimeoutMs 0 still coalesces what is submitted in the same turn', async () => {
    const h = harness({ fixedBatchSize: 64, batchTimeoutMs: 0 });
    for (let i = 0; i < 5; i++) h.submit('a');
    expect(h.calls).toHaveLength(0);
    await flush();
    expect(h.calls.map(h.ids)).toEqual([[0, 1, 2, 3, 4]]);
  });

  it('restarts the timer for the next oldest row when the oldest aborts', async () => {
    const h = harness({ fixedBatchSize: 64, batchTimeoutMs: 10 });
    const ac = new AbortController();
    h.submit('k', 1, ac.signal); // t = 0
    await vi.advanceTimersByTimeAsync(5);
    h.submit('k'); // t = 5
    await vi.advanceTimersByTimeAsync(1);
    ac.abort(); // t = 6
    await vi.advanceTimersByTimeAsync(8); // t = 14
    expect(h.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1); // t = 15 = 5 + 10
    expect(h.calls.map(h.ids)).toEqual([[1]]);
  });
});

describe('slots', () => {
  it('runs at most maxInFlight batches at once and starts the next as one finishes', async () => {
    const h = harness({ maxBatchSize: 1, maxInFlight: 2 });
    const subs = Array.from({ length: 6 }, () => h.submit('a'));
    await flush();
    expect(h.calls).toHaveLength(2);
    expect(h.batcher.inFlight).toBe(2);
    expect(h.batcher.queuedRows).toBe(4);
    for (let done = 0; done < 6; done++) {
      expect(h.batcher.inFlight).toBeLessThanOrEqual(2);
      h.answer(h.calls[done]);
      await flush();
      expect(h.calls).toHaveLength(Math.min(6, done + 3));
    }
    expect(subs.every((s) => s.out.state === 'resolved')).toBe(true);
    expect(h.batcher.inFlight).toBe(0);
  });
});

describe('abort', () => {
  it('rejects an already-aborted signal at once without accepting the request', async () => {
    const h = harness();
    const reason = new Error('gone');
    const s = h.submit('a', 1, AbortSignal.abort(reason));
    await flush();
    expect(s.out.reason).toBe(reason);
    expect(h.batcher.queuedRows).toBe(0);
    expect(h.batcher.stats().accepted).toBe(0);
  });

  it('frees a waiting request’s place and rows, then batches the others without it', async () => {
    const h = harness({ maxBatchSize: 4, maxInFlight: 1 });
    h.submit('busy');
    await flush();
    const ac = new AbortController();
    const a = h.submit('k', 2, ac.signal);
    const b = h.submit('k');
    expect(h.batcher.queuedRows).toBe(3);
    const reason = new Error('client went away');
    ac.abort(reason);
    await flush();
    expect(a.out.reason).toBe(reason);
    expect(h.batcher.queuedRows).toBe(1);
    expect(h.batcher.stats().queuedRequests).toBe(1);
    h.submit('k', 2);
    h.submit('k', 1); // 1 + 2 + 1 = 4: fits without the aborted rows
    h.answer(h.calls[0]);
    await flush();
    expect(h.calls.map(h.ids)[1]).toEqual([2, 3, 4]);
    h.answer(h.calls[1]);
    await flush();
    expect(b.out.value).toBe('k:2');
    expect(h.batcher.stats()).toMatchObject({ accepted: 5, resolved: 4, rejected: 0, aborted: 1, acceptedRows: 7, resolvedRows: 5, rejectedRows: 0, abortedRows: 2 });
  });

  it('uses Node’s AbortError reason when aborted without one, and AbortError for reason-less signals', async () => {
    const h = harness({ maxInFlight: 1 });
    h.submit('busy');
    await flush();
    const ac = new AbortController();
    const a = h.submit('k', 1, ac.signal);
    ac.abort();
    await flush();
    expect((a.out.reason as Error).name).toBe('AbortError');
    const bare = abortReason({ reason: undefined } as AbortSignal);
    expect(bare).toBeInstanceOf(AbortError);
    expect(bare).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  });

  it('after dispatch, rejects only the aborted request and discards its result', async () => {
    const h = harness();
    const ac = new AbortController();
    const a = h.submit('k', 1, ac.signal);
    const b = h.submit('k');
    await flush();
    const call = h.calls[0];
    const reason = new Error('cancelled');
    ac.abort(reason);
    await flush();
    expect(a.out.state).toBe('rejected');
    expect(a.out.reason).toBe(reason);
    expect(b.out.state).toBe('pending');
    expect(call.signal.aborted).toBe(false); // a batch-mate still wants its result
    h.answer(call);
    await flush();
    expect(b.out.value).toBe('k:1');
    expect(a.out.reason).toBe(reason);
    expect(h.batcher.stats()).toMatchObject({ accepted: 2, resolved: 1, rejected: 0, aborted: 1 });
  });

  it('aborts the batch signal only when every request has aborted; the slot stays taken until run settles', async () => {
    const h = harness({ maxBatchSize: 2, maxInFlight: 1 });
    const ac1 = new AbortController();
    const ac2 = new AbortController();
    h.submit('k', 1, ac1.signal);
    h.submit('k', 1, ac2.signal);
    h.submit('k');
    await flush();
    const call = h.calls[0];
    ac1.abort();
    expect(call.signal.aborted).toBe(false);
    ac2.abort();
    expect(call.signal.aborted).toBe(true);
    expect(call.signal.reason).toMatchObject({ name: 'AbortError' });
    await vi.advanceTimersByTimeAsync(50);
    expect(h.batcher.inFlight).toBe(1);
    expect(h.calls).toHaveLength(1);
    call.d.reject(call.signal.reason); // a cooperative backend gives up
    await flush();
    expect(h.batcher.inFlight).toBe(1); // the third request's batch now runs
    expect(h.calls).toHaveLength(2);
    expect(h.batcher.stats()).toMatchObject({ accepted: 3, rejected: 0, aborted: 2, resolved: 0 });
  });

  it('aborting many waiting requests in a long queue is cheap and keeps FIFO order', async () => {
    const h = harness({ maxBatchSize: 100_000, maxQueue: 100_000, maxInFlight: 1 });
    h.submit('busy');
    await flush();
    const acs = Array.from({ length: 20_000 }, () => new AbortController());
    const subs = acs.map((ac) => h.submit('k', 1, ac.signal));
    for (let i = 0; i < acs.length; i += 2) acs[i].abort();
    h.answer(h.calls[0]);
    await flush();
    expect(h.ids(h.calls[1])).toEqual(subs.filter((_, i) => i % 2 === 1).map((s) => s.req.id));
    expect(h.batcher.queuedRows).toBe(0);
  });
});

describe('load shedding', () => {
  it('rejects at once with QueueFullError naming the limit and depth once waiting rows would pass maxQueue', async () => {
    const h = harness({ maxQueue: 5, maxInFlight: 1 });
    h.submit('busy');
    await flush();
    h.submit('a', 3);
    h.submit('b', 2);
    const refused = h.submit('a', 1);
    await flush();
    expect(refused.out.reason).toBeInstanceOf(QueueFullError);
    expect(refused.out.reason).toMatchObject({ code: 'ERR_DTESN_QUEUE_FULL', name: 'QueueFullError', limit: 5, depth: 5, rows: 1 });
    expect(String((refused.out.reason as Error).message)).toMatch(/5 rows waiting \+ 1 requested would exceed maxQueue 5/);
    expect(h.batcher.stats()).toMatchObject({ accepted: 3, shed: 1, shedRows: 1, queuedRows: 5 });
    // Dispatched rows no longer count as waiting.
    h.answer(h.calls[0]);
    await flush();
    expect(h.batcher.queuedRows).toBe(2); // 'a' runs, 'b' waits for the slot
    h.answer(h.calls[1]);
    await flush();
    expect(h.batcher.queuedRows).toBe(0);
    expect(h.submit('a', 5).out.state).toBe('pending');
  });

  it('rejects what rowsOf throws or a row count that is not an integer >= 0, accepting nothing', async () => {
    const h = harness({
      rowsOf: (r) => {
        if (r.rows < 0) throw new Error('bad request');
        return r.rows;
      },
    });
    const thrown = h.submit('a', -1);
    const fractional = h.submit('a', 1.5);
    await flush();
    expect(String(thrown.out.reason)).toMatch(/bad request/);
    expect(fractional.out.reason).toBeInstanceOf(RangeError);
    expect(h.batcher.stats().accepted).toBe(0);
  });
});

describe('failures', () => {
  it('rejects a failed batch’s requests with its error, and only that batch’s', async () => {
    const h = harness();
    const a = [h.submit('a'), h.submit('a')];
    const b = [h.submit('b'), h.submit('b')];
    await flush();
    const crash = new WorkerCrashError('worker 3 exited', { exitCode: 134 });
    h.calls[0].d.reject(crash);
    h.answer(h.calls[1]);
    await flush();
    expect(a.map((s) => s.out.reason)).toEqual([crash, crash]);
    expect(crash).toMatchObject({ code: 'ERR_DTESN_WORKER_CRASH', name: 'WorkerCrashError', exitCode: 134 });
    expect(b.map((s) => s.out.value)).toEqual(['b:2', 'b:3']);
    expect(h.batcher.stats()).toMatchObject({ batches: 2, failedBatches: 1, resolved: 2, rejected: 2 });
    expect(h.infos.map((i) => i.ok)).toEqual([false, true]);
  });

  it('treats run throwing synchronously like a rejection', async () => {
    const h = harness({
      run: () => {
        throw new Error('sync');
      },
    });
    const s = h.submit('a');
    await flush();
    expect(String(s.out.reason)).toMatch(/sync/);
    expect(h.batcher.inFlight).toBe(0);
  });

  it('turns a throwing onBatch into a warning, never a lost result', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const h = harness({
        onBatch: () => {
          throw new Error('metrics down');
        },
      });
      const s = h.submit('a');
      await flush();
      h.answer(h.calls[0]);
      await flush();
      expect(s.out.value).toBe('a:0');
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/onBatch threw: metrics down/), expect.anything());
    } finally {
      warn.mockRestore();
    }
  });
});

describe('close()', () => {
  it('refuses new work, flushes everything accepted without waiting for timers, and resolves when all settled', async () => {
    const h = harness({ fixedBatchSize: 3, maxInFlight: 1, batchTimeoutMs: 1000 });
    const subs = [h.submit('a'), h.submit('a'), h.submit('a'), h.submit('a'), h.submit('b', 2)];
    await flush();
    expect(h.calls).toHaveLength(1);
    const closed = watch(h.batcher.close());
    expect(h.batcher.close()).toBe(h.batcher.close());
    const late = h.submit('a');
    await flush();
    expect(late.out.reason).toBeInstanceOf(PipelineClosedError);
    expect(late.out.reason).toMatchObject({ code: 'ERR_DTESN_CLOSED' });
    for (let i = 0; i < 3; i++) {
      expect(closed.state).toBe('pending');
      h.answer(h.calls[i]);
      await flush();
    }
    expect(h.calls.map((c) => c.key)).toEqual(['a', 'a', 'b']);
    expect(closed.state).toBe('resolved');
    expect(Date.now()).toBe(0); // no timer was needed
    expect(subs.map((s) => s.out.value)).toEqual(['a:0', 'a:1', 'a:2', 'a:3', 'b:4']);
    expect(h.infos.map((i) => i.reason)).toEqual(['full', 'flush', 'flush']);
    expect(h.batcher.stats()).toMatchObject({ accepted: 5, resolved: 5, rejected: 0, queuedRows: 0, inFlight: 0 });
  });

  it('resolves at once when idle, and once the last waiting request aborts', async () => {
    const h = harness();
    await expect(h.batcher.close()).resolves.toBeUndefined();
    const h2 = harness({ maxBatchSize: 10, maxInFlight: 1 });
    h2.submit('a', 10);
    await flush();
    const ac = new AbortController();
    h2.submit('a', 1, ac.signal);
    const closed = watch(h2.batcher.close());
    ac.abort();
    await flush();
    expect(closed.state).toBe('pending'); // the running batch
    h2.answer(h2.calls[0]);
    await flush();
    expect(closed.state).toBe('resolved');
    expect(h2.calls).toHaveLength(1);
  });
});

describe('stats()', () => {
  it('counts batches by reason, rows, requests, and recent latency', async () => {
    const h = harness({ maxBatchSize: 2, maxInFlight: 1 });
    h.submit('a');
    h.submit('a');
    h.submit('a');
    await flush();
    await vi.advanceTimersByTimeAsync(10);
    h.answer(h.calls[0]); // t = 10
    await flush();
    await vi.advanceTimersByTimeAsync(4);
    h.answer(h.calls[1]); // t = 14
    await flush();
    expect(h.batcher.stats()).toEqual({
      batches: 2,
      rows: 3,
      requests: 3,
      readyBatches: 1,
      fullBatches: 1,
      timeoutBatches: 0,
      flushBatches: 0,
      failedBatches: 0,
      accepted: 3,
      resolved: 3,
      rejected: 0,
      aborted: 0,
      shed: 0,
      acceptedRows: 3,
      resolvedRows: 3,
      rejectedRows: 0,
      abortedRows: 0,
      shedRows: 0,
      target: 2,
      queuedRows: 0,
      queuedRequests: 0,
      inFlight: 0,
      p50LatencyMs: 10,
      p99LatencyMs: 14,
    });
  });
});

describe('randomized stress', () => {
  it.each([
    [1, undefined],
    [2, undefined],
    [3, 6],
  ])('settles every accepted request exactly once (seed %i, fixedBatchSize %s)', async (seed, fixedBatchSize) => {
    const rand = rng(seed);
    const maxInFlight = 3;
    let running = 0;
    let maxRunning = 0;
    const infos: BatchInfo[] = [];
    const batcher = new MicroBatcher<Req, Res>({
      maxBatchSize: 32,
      fixedBatchSize,
      batchTimeoutMs: 3,
      maxQueue: 80,
      maxInFlight,
      rowsOf: (r) => r.rows,
      now: () => Date.now(),
      onBatch: (info) => infos.push(info),
      run: (key, reqs, signal) => {
        expect(reqs.every((r) => r.key === key)).toBe(true);
        running++;
        maxRunning = Math.max(maxRunning, running);
        const roll = rand();
        return new Promise<Res[]>((resolve, reject) => {
          const done = () => {
            running--;
            if (roll < 0.1) reject(new Error(`boom ${key}`));
            else if (roll < 0.12) resolve([]);
            else resolve(reqs.map((r) => `${key}:${r.id}`));
          };
          const t = setTimeout(done, Math.floor(rand() * 6));
          signal.addEventListener('abort', () => {
            clearTimeout(t);
            running--;
            reject(signal.reason);
          });
        });
      },
    });

    const outcomes: { req: Req; out: Outcome<Res>; reasons: unknown[] }[] = [];
    let id = 0;
    for (let ms = 0; ms < 400; ms++) {
      const n = Math.floor(rand() * 9);
      for (let i = 0; i < n; i++) {
        const r = rand();
        const req: Req = { id: id++, key: `k${Math.floor(rand() * 4)}`, rows: r < 0.03 ? 40 : Math.floor(rand() * 5) };
        const reasons: unknown[] = [];
        let signal: AbortSignal | undefined;
        if (r > 0.97) {
          const reason = new Error('pre');
          reasons.push(reason);
          signal = AbortSignal.abort(reason);
        } else if (r > 0.75) {
          const ac = new AbortController();
          const reason = new Error(`abort ${req.id}`);
          reasons.push(reason);
          setTimeout(() => ac.abort(reason), Math.floor(rand() * 12));
          signal = ac.signal;
        }
        outcomes.push({ req, out: watch(batcher.submit(req.key, req, signal)), reasons });
      }
      await vi.advanceTimersByTimeAsync(1);
    }
    const closing = batcher.close();
    await vi.runAllTimersAsync();
    await closing;

    const s = batcher.stats();
    const resolved = outcomes.filter((o) => o.out.state === 'resolved');
    const rejected = outcomes.filter((o) => o.out.state === 'rejected');
    expect(outcomes.filter((o) => o.out.state === 'pending')).toEqual([]);
    expect(s.accepted).toBe(s.resolved + s.rejected + s.aborted);
    expect(s.acceptedRows).toBe(s.resolvedRows + s.rejectedRows + s.abortedRows);
    // Aborts counted apart: each accepted request rejected with its own signal's reason (not 'pre', never accepted).
    const abortedOnes = outcomes.filter((o) => o.out.state === 'rejected' && o.reasons.includes(o.out.reason) && (o.out.reason as Error).message !== 'pre');
    expect(s.aborted).toBe(abortedOnes.length);
    expect(s.abortedRows).toBe(abortedOnes.reduce((n, o) => n + o.req.rows, 0));
    expect(s.resolved).toBe(resolved.length);
    expect(s.resolvedRows).toBe(resolved.reduce((n, o) => n + o.req.rows, 0));
    const refused = rejected.filter((o) => o.out.reason instanceof QueueFullError || (o.out.reason as Error).message === 'pre');
    expect(s.accepted).toBe(outcomes.length - refused.length);
    expect(refused.filter((o) => o.out.reason instanceof QueueFullError).length).toBe(s.shed);
    expect(s.shed).toBeGreaterThan(0);
    expect(s.failedBatches).toBeGreaterThan(0);
    for (const o of resolved) expect(o.out.value).toBe(`${o.req.key}:${o.req.id}`);
    for (const o of rejected) {
      const r = o.out.reason;
      const ok =
        r instanceof QueueFullError ||
        o.reasons.includes(r) ||
        (r instanceof Error && (r.message === `boom ${o.req.key}` || r instanceof TypeError));
      expect(ok, `unexpected rejection of ${o.req.id}: ${String(r)}`).toBe(true);
    }
    expect(rejected.some((o) => o.reasons.includes(o.out.reason))).toBe(true);
    expect(maxRunning).toBeLessThanOrEqual(maxInFlight);
    expect(s).toMatchObject({ queuedRows: 0, queuedRequests: 0, inFlight: 0 });
    const cap = fixedBatchSize ?? 32;
    for (const info of infos) expect(info.rows <= cap || info.requests === 1).toBe(true);
    expect(infos.reduce((n, i) => n + i.requests, 0)).toBe(s.requests);
  });
});
