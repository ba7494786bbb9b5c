/** The micro-batcher: routing, closing rules, slots, aborts, shedding, close(), and the adaptive loop. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { rng } from './fixtures/util.js';
import type { BatchSizeController } from '../src/adaptive.js';
import { type BatchInfo, type BatcherOptions, MicroBatcher } from '../src/batcher.js';
import { AbortError, PipelineClosedError, QueueFullError, WorkerCrashError, abortReason } from '../src/errors.js';

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

function fixed(target: number): BatchSizeController {
  return { target, observe() {} };
}

/** Lets pending promise callbacks run without moving the fake clock. */
const flush = async (): Promise<void> => {
  await vi.advanceTimersByTimeAsync(0);
};

interface Call {
  key: string;
  reqs: Req[];
  signal: AbortSignal;
  d: Deferred<Res[]>;
  at: number;
}

/** A batcher whose `run` parks each batch until the test answers it; target fixed unless given a controller. */
function harness(over: Partial<BatcherOptions<Req, Res>> & { target?: number } = {}) {
  const calls: Call[] = [];
  const infos: BatchInfo[] = [];
  const { target, ...rest } = over;
  const batcher = new MicroBatcher<Req, Res>({
    maxBatchSize: 64,
    batchTimeoutMs: 10,
    targetLatencyMs: 50,
    maxQueue: 1000,
    maxInFlight: 4,
    rowsOf: (r) => r.rows,
    run: (key, reqs, signal) => {
      const d = deferred<Res[]>();
      calls.push({ key, reqs, signal, d, at: Date.now() });
      return d.promise;
    },
    now: () => Date.now(),
    controller: fixed(target ?? 4),
    onBatch: (info) => infos.push(info),
    ...rest,
  });
  let nextId = 0;
  const submit = (key: string, rows = 1, signal?: AbortSignal) => {
    const req: Req = { id: nextId++, key, rows };
    return { req, out: watch(batcher.submit(key, req, signal)) };
  };
  const answer = (c: Call) => c.d.resolve(c.reqs.map((r) => `${c.key}:${r.id}`));
  const ids = (c: Call) => c.reqs.map((r) => r.id);
  return { batcher, calls, infos, submit, answer, ids };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('MicroBatcher options', () => {
  it('rejects bad options with a RangeError naming the option', () => {
    const base: BatcherOptions<Req, Res> = {
      maxBatchSize: 8,
      batchTimeoutMs: 5,
      targetLatencyMs: 50,
      maxQueue: 100,
      maxInFlight: 2,
      rowsOf: () => 1,
      run: async () => [],
    };
    expect(() => new MicroBatcher({ ...base, maxBatchSize: 0 })).toThrow(/maxBatchSize must be an integer >= 1, got 0/);
    expect(() => new MicroBatcher({ ...base, maxBatchSize: Infinity })).toThrow(/maxBatchSize/);
    expect(() => new MicroBatcher({ ...base, batchTimeoutMs: -1 })).toThrow(/batchTimeoutMs/);
    expect(() => new MicroBatcher({ ...base, batchTimeoutMs: Infinity })).toThrow(/batchTimeoutMs/);
    expect(() => new MicroBatcher({ ...base, targetLatencyMs: 0 })).toThrow(/targetLatencyMs must be a finite number > 0, got 0/);
    expect(() => new MicroBatcher({ ...base, maxQueue: 1.5 })).toThrow(/maxQueue/);
    expect(() => new MicroBatcher({ ...base, maxInFlight: 0 })).toThrow(/maxInFlight/);
    expect(new MicroBatcher({ ...base, maxQueue: Infinity }).queuedRows).toBe(0);
  });

  it('clamps a controller target to [1, maxBatchSize]', () => {
    const base = { batchTimeoutMs: 5, targetLatencyMs: 50, maxQueue: 10, maxInFlight: 1, rowsOf: () => 1, run: async () => [] };
    expect(new MicroBatcher({ ...base, maxBatchSize: 8, controller: fixed(100) }).target).toBe(8);
    expect(new MicroBatcher({ ...base, maxBatchSize: 8, controller: fixed(0) }).target).toBe(1);
    expect(new MicroBatcher({ ...base, maxBatchSize: 8 }).target).toBe(1); // the adaptive default starts at 1
    expect(new MicroBatcher({ ...base, maxBatchSize: 8, initialBatchSize: 4 }).target).toBe(4);
  });
});

describe('routing and ordering', () => {
  it('gives each request its own result, batches in arrival order', async () => {
    const h = harness({ target: 3 });
    const subs = Array.from({ length: 7 }, () => h.submit('a'));
    expect(h.calls.map(h.ids)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    await vi.advanceTimersByTimeAsync(10);
    expect(h.calls.map(h.ids)).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    // Answer out of order: results still land on their own requests.
    h.answer(h.calls[2]);
    h.answer(h.calls[0]);
    h.answer(h.calls[1]);
    await flush();
    expect(subs.map((s) => s.out.value)).toEqual(['a:0', 'a:1', 'a:2', 'a:3', 'a:4', 'a:5', 'a:6']);
    expect(h.infos.map((i) => i.reason)).toEqual(['timeout', 'full', 'full']);
  });

  it('never puts requests with different keys in one batch', async () => {
    const h = harness({ target: 4, maxInFlight: 100 });
    const keys = ['x', 'y', 'z'];
    const subs = Array.from({ length: 30 }, (_, i) => h.submit(keys[(i * 7) % 3], 1 + (i % 2)));
    await vi.advanceTimersByTimeAsync(10);
    expect(h.calls.length).toBeGreaterThan(3);
    for (const c of h.calls) {
      expect(c.reqs.every((r) => r.key === c.key)).toBe(true);
      expect(c.reqs.reduce((n, r) => n + r.rows, 0)).toBeLessThanOrEqual(4);
      // FIFO within a key.
      expect(h.ids(c)).toEqual([...h.ids(c)].sort((p, q) => p - q));
    }
    for (const c of h.calls) h.answer(c);
    await flush();
    for (const s of subs) expect(s.out.value).toBe(`${s.req.key}:${s.req.id}`);
  });

  it('puts a request larger than the target in a batch of its own, never split', async () => {
    const h = harness({ target: 4 });
    h.submit('a', 2);
    const big = h.submit('a', 10);
    h.submit('a', 1);
    expect(h.calls.map(h.ids)).toEqual([[0], [1]]); // the 2-row batch cannot take the 10-row request: full
    expect(h.calls[1].reqs).toEqual([big.req]);
    await vi.advanceTimersByTimeAsync(10);
    expect(h.calls.map(h.ids)).toEqual([[0], [1], [2]]);
    for (const c of h.calls) h.answer(c);
    await flush();
    expect(h.infos.map((i) => [i.rows, i.reason])).toEqual([
      [2, 'full'],
      [10, 'full'],
      [1, 'timeout'],
    ]);
    expect(big.out.value).toBe('a:1');
  });

  it('serves the ready key whose oldest row arrived first when slots are scarce', async () => {
    const h = harness({ target: 2, maxInFlight: 1 });
    h.submit('busy', 2); // takes the only slot
    h.submit('b');
    await vi.advanceTimersByTimeAsync(1);
    h.submit('a');
    await vi.advanceTimersByTimeAsync(20); // both due, no slot
    h.submit('a');
    h.submit('b');
    expect(h.calls).toHaveLength(1);
    h.answer(h.calls[0]);
    await flush();
    expect(h.calls[1].key).toBe('b');
    h.answer(h.calls[1]);
    await flush();
    expect(h.calls[2].key).toBe('a');
  });

  it('calls run with one request per result and rejects the batch when run returns a wrong count', async () => {
    const h = harness({ target: 2 });
    const a = h.submit('k');
    const b = h.submit('k');
    h.calls[0].d.resolve(['only one']);
    await flush();
    expect(a.out.reason).toBeInstanceOf(TypeError);
    expect(String(a.out.reason)).toMatch(/one result per request: got 1 results for 2 requests/);
    expect(b.out.reason).toBe(a.out.reason);
    expect(h.infos[0].ok).toBe(false);
  });
});

describe('closing batches', () => {
  it('closes on size at once, without waiting for a timer', () => {
    const h = harness({ target: 4 });
    for (let i = 0; i < 3; i++) h.submit('a');
    expect(h.calls).toHaveLength(0);
    h.submit('a');
    expect(h.calls.map(h.ids)).toEqual([[0, 1, 2, 3]]);
    expect(h.calls[0].at).toBe(0);
  });

  it('closes on timeout measured from the oldest row’s arrival', async () => {
    const h = harness({ target: 100, batchTimeoutMs: 10 });
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
    const h = harness({ target: 2, maxInFlight: 1, batchTimeoutMs: 10 });
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

  it('lets a closed batch waiting for a slot keep absorbing rows up to the target', async () => {
    const h = harness({ target: 4, maxInFlight: 1, batchTimeoutMs: 5 });
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
      ['full', 8], // closed by its timer at t = 6, grew to the target while waiting
      ['timeout', 5],
    ]);
  });

  it('dispatches a timed-out batch that did not fill as soon as a slot frees, as a timeout', async () => {
    const h = harness({ target: 4, maxInFlight: 1, batchTimeoutMs: 5 });
    for (let i = 0; i < 4; i++) h.submit('a');
    h.submit('a');
    await vi.advanceTimersByTimeAsync(7);
    h.submit('a');
    expect(h.calls).toHaveLength(1);
    h.answer(h.calls[0]);
    await flush();
    expect(h.calls.map(h.ids)[1]).toEqual([4, 5]);
    h.answer(h.calls[1]);
    await flush();
    expect(h.infos[1]).toMatchObject({ reason: 'timeout', rows: 2, waitMs: 7 });
  });

  it('with batchTimeoutMs 0 still coalesces what is submitted in the same tick', async () => {
    const h = harness({ target: 100, batchTimeoutMs: 0 });
    for (let i = 0; i < 5; i++) h.submit('a');
    expect(h.calls).toHaveLength(0);
    await flush();
    expect(h.calls.map(h.ids)).toEqual([[0, 1, 2, 3, 4]]);
  });
});

describe('slots', () => {
  it('runs at most maxInFlight batches at once and starts the next as one finishes', async () => {
    const h = harness({ target: 1, maxInFlight: 2 });
    const subs = Array.from({ length: 6 }, () => h.submit('a'));
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
    const h = harness({ target: 4 });
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
    h.submit('k', 1); // 1 + 2 + 1 = 4: full without the aborted rows
    expect(h.calls.map(h.ids)).toEqual([[1, 2, 3]]);
    h.answer(h.calls[0]);
    await flush();
    expect(b.out.value).toBe('k:1');
  });

  it('uses Node’s AbortError reason when aborted without one, and AbortError for reason-less signals', async () => {
    const h = harness({ target: 4 });
    const ac = new AbortController();
    const a = h.submit('k', 1, ac.signal);
    ac.abort();
    await flush();
    expect((a.out.reason as Error).name).toBe('AbortError');
    const bare = abortReason({ reason: undefined } as AbortSignal);
    expect(bare).toBeInstanceOf(AbortError);
    expect(bare).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  });

  it('restarts the timer for the next oldest row when the oldest aborts', async () => {
    const h = harness({ target: 100, batchTimeoutMs: 10 });
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

  it('after dispatch, rejects only the aborted request and discards its result', async () => {
    const h = harness({ target: 2 });
    const ac = new AbortController();
    const a = h.submit('k', 1, ac.signal);
    const b = h.submit('k');
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
    expect(h.batcher.stats()).toMatchObject({ accepted: 2, resolved: 1, rejected: 1 });
  });

  it('aborts the batch signal only when every request has aborted; the slot stays taken until run settles', async () => {
    const h = harness({ target: 2, maxInFlight: 1 });
    const ac1 = new AbortController();
    const ac2 = new AbortController();
    h.submit('k', 1, ac1.signal);
    h.submit('k', 1, ac2.signal);
    h.submit('k');
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
    expect(h.batcher.stats()).toMatchObject({ accepted: 3, rejected: 2, resolved: 0 });
  });
});

describe('load shedding', () => {
  it('rejects at once with QueueFullError naming the limit and depth once waiting rows would pass maxQueue', async () => {
    const h = harness({ target: 100, maxQueue: 5 });
    h.submit('a', 3);
    h.submit('b', 2);
    const refused = h.submit('a', 1);
    await flush();
    expect(refused.out.reason).toBeInstanceOf(QueueFullError);
    expect(refused.out.reason).toMatchObject({ code: 'ERR_DTESN_QUEUE_FULL', name: 'QueueFullError', limit: 5, depth: 5, rows: 1 });
    expect(String((refused.out.reason as Error).message)).toMatch(/5 rows waiting \+ 1 requested would exceed maxQueue 5/);
    expect(h.batcher.stats()).toMatchObject({ accepted: 2, shed: 1, queuedRows: 5 });
    // Dispatched rows no longer count as waiting.
    await vi.advanceTimersByTimeAsync(10);
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
    const h = harness({ target: 2 });
    const a = [h.submit('a'), h.submit('a')];
    const b = [h.submit('b'), h.submit('b')];
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
      target: 1,
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
        target: 1,
        onBatch: () => {
          throw new Error('metrics down');
        },
      });
      const s = h.submit('a');
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
    const h = harness({ target: 3, maxInFlight: 1, batchTimeoutMs: 1000 });
    const subs = [h.submit('a'), h.submit('a'), h.submit('a'), h.submit('a'), h.submit('b', 2)];
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
    const h = harness({ target: 10 });
    await expect(h.batcher.close()).resolves.toBeUndefined();
    const h2 = harness({ target: 10, maxInFlight: 1 });
    h2.submit('a', 10);
    const ac = new AbortController();
    h2.submit('a', 1, ac.signal);
    const closed = watch(h2.batcher.close());
    ac.abort();
    await flush();
    expect(closed.state).toBe('pending'); // the running batch
    h2.answer(h2.calls[0]);
    await flush();
    expect(closed.state).toBe('resolved');
  });
});

describe('stats()', () => {
  it('counts batches by close reason, rows, requests, and recent latency', async () => {
    const h = harness({ target: 2, batchTimeoutMs: 10 });
    h.submit('a');
    h.submit('a');
    h.submit('a');
    await vi.advanceTimersByTimeAsync(10);
    await vi.advanceTimersByTimeAsync(4);
    for (const c of h.calls) h.answer(c);
    await flush();
    expect(h.batcher.stats()).toEqual({
      batches: 2,
      rows: 3,
      requests: 3,
      fullBatches: 1,
      timeoutBatches: 1,
      flushBatches: 0,
      failedBatches: 0,
      accepted: 3,
      resolved: 3,
      rejected: 0,
      shed: 0,
      target: 2,
      queuedRows: 0,
      queuedRequests: 0,
      inFlight: 0,
      p50LatencyMs: 14,
      p99LatencyMs: 14,
    });
  });
});


describe('randomized stress', () => {
  it.each([1, 2, 3])('settles every accepted request exactly once (seed %i)', async (seed) => {
    const rand = rng(seed);
    const maxInFlight = 3;
    let running = 0;
    let maxRunning = 0;
    const infos: BatchInfo[] = [];
    const batcher = new MicroBatcher<Req, Res>({
      maxBatchSize: 32,
      batchTimeoutMs: 3,
      targetLatencyMs: 20,
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
        const req: Req = { id: id++, key: `k${Math.floor(rand() * 4)}`, rows: r < 0.03 ? 40 : 1 + Math.floor(rand() * 4) };
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
    expect(s.accepted).toBe(s.resolved + s.rejected);
    expect(s.resolved).toBe(resolved.length);
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
    for (const info of infos) expect(info.rows <= info.target || info.requests === 1).toBe(true);
    expect(infos.reduce((n, i) => n + i.requests, 0)).toBe(s.requests);
  });
});

describe('the adaptive target in a running batcher', () => {
  /** Closed-loop clients: each submits a 1-row request, awaits it, and submits the next. */
  async function closedLoop(batcher: MicroBatcher<Req, Res>, clients: number, ms: number, sample?: () => void) {
    let stop = false;
    let id = 0;
    const loops = Array.from({ length: clients }, async () => {
      while (!stop) {
        const req: Req = { id: id++, key: 'k', rows: 1 };
        await batcher.submit('k', req);
      }
    });
    for (let t = 0; t < ms; t += 10) {
      await vi.advanceTimersByTimeAsync(10);
      sample?.();
    }
    stop = true;
    const closing = batcher.close();
    await vi.runAllTimersAsync();
    await closing;
    await Promise.all(loops);
  }

  function timedBatcher(runMs: (rows: number) => number, over: Partial<BatcherOptions<Req, Res>>) {
    const infos: BatchInfo[] = [];
    const batcher = new MicroBatcher<Req, Res>({
      maxBatchSize: 512,
      batchTimeoutMs: 5,
      targetLatencyMs: 50,
      maxQueue: 100_000,
      maxInFlight: 2,
      rowsOf: (r) => r.rows,
      now: () => Date.now(),
      onBatch: (info) => infos.push(info),
      run: (key, reqs) =>
        new Promise((resolve) => setTimeout(() => resolve(reqs.map((r) => `${key}:${r.id}`)), runMs(reqs.length))),
      ...over,
    });
    return { batcher, infos };
  }

  it('climbs to maxBatchSize under load when the handler is cheap (2 ms + 5 us/row, 50 ms target)', async () => {
    const { batcher, infos } = timedBatcher((rows) => Math.ceil(2 + 0.005 * rows), {});
    const targets: number[] = [];
    await closedLoop(batcher, 3000, 600, () => targets.push(batcher.target));
    expect(targets[0]).toBeLessThan(512);
    expect(batcher.target).toBe(512);
    for (let i = 1; i < targets.length; i++) expect(targets[i]).toBeGreaterThanOrEqual(targets[i - 1]);
    const lastFull = infos.slice(-20, -5);
    expect(lastFull.every((i) => i.rows === 512 && i.reason === 'full')).toBe(true);
    expect(batcher.stats().p99LatencyMs).toBeLessThanOrEqual(50);
  });

  it('backs off when batches take longer than the latency target allows (2 ms + 1 ms/row)', async () => {
    const { batcher, infos } = timedBatcher((rows) => 2 + rows, { initialBatchSize: 256 });
    const targets: number[] = [];
    await closedLoop(batcher, 300, 3000, () => targets.push(batcher.target));
    expect(targets[0]).toBe(256);
    // Reacts within the first few batches (long before the 258 ms batches of 256 rows finish)...
    expect(targets[29]).toBeLessThanOrEqual(32);
    // ...and settles where a batch's run fits its share (SLO/2) of the latency target.
    expect(batcher.target).toBeLessThanOrEqual(23);
    expect(batcher.target).toBeGreaterThanOrEqual(12);
    const late = infos.slice(-20, -5);
    expect(late.every((i) => i.runMs <= 25)).toBe(true);
  });

  it('does not grow at low load, where batches close on their timer', async () => {
    const { batcher, infos } = timedBatcher(() => 1, { initialBatchSize: 8 });
    let id = 0;
    for (let t = 0; t < 2000; t += 20) {
      void batcher.submit('k', { id: id++, key: 'k', rows: 1 });
      await vi.advanceTimersByTimeAsync(20);
      expect(batcher.target).toBe(8);
    }
    await batcher.close();
    expect(infos.length).toBe(100);
    expect(infos.every((i) => i.reason === 'timeout' && i.rows === 1 && i.waitMs === 5)).toBe(true);
  });

  it('one client awaiting each call stays at target 1: a lone request filling the target is not demand', async () => {
    const { batcher, infos } = timedBatcher(() => 1, {}); // initialBatchSize 1 (the default)
    for (let i = 0; i < 200; i++) {
      const p = batcher.submit('k', { id: i, key: 'k', rows: 1 });
      await vi.advanceTimersByTimeAsync(1);
      expect(await p).toBe(`k:${i}`);
      await vi.advanceTimersByTimeAsync(2);
    }
    expect(batcher.target).toBe(1);
    expect(infos.every((x) => x.rows === 1 && x.waitMs === 0)).toBe(true);
    // Eight clients at once on two slots do: rows wait behind full batches, and the target grows.
    for (let i = 0; i < 100; i++) {
      const ps = Array.from({ length: 8 }, (_, k) => batcher.submit('k', { id: 8 * i + k, key: 'k', rows: 1 }));
      await vi.advanceTimersByTimeAsync(5);
      await Promise.all(ps);
    }
    expect(batcher.target).toBeGreaterThan(1);
    await batcher.close();
  });

  it('holds a saturated closed loop in a narrow band where the target binds (1 ms + 0.2 ms/row)', async () => {
    const { batcher, infos } = timedBatcher((rows) => Math.ceil(1 + 0.2 * rows), { maxBatchSize: 1024 });
    const targets: number[] = [];
    await closedLoop(batcher, 2000, 3000, () => targets.push(batcher.target));
    const steady = targets.slice(100);
    const lo = Math.min(...steady);
    const hi = Math.max(...steady);
    expect(lo).toBeGreaterThanOrEqual(60);
    expect(hi).toBeLessThanOrEqual(125); // run(125) = 26 ms > the 25 ms budget
    expect(hi / lo).toBeLessThanOrEqual(1.1);
    const late = infos.slice(-40, -5);
    expect(late.every((i) => i.reason === 'full' && i.rows === i.target)).toBe(true);
  });

  it('holds a steady open-loop load in a narrow band', async () => {
    // 10 rows/ms; run = 1 ms + 0.1 ms/row; the 10 ms timer caps batches near 100 rows.
    const { batcher, infos } = timedBatcher((rows) => Math.ceil(1 + 0.1 * rows), { maxBatchSize: 1024, batchTimeoutMs: 10 });
    let id = 0;
    const pending: Promise<Res>[] = [];
    const targets: number[] = [];
    for (let t = 0; t < 3000; t++) {
      for (let i = 0; i < 10; i++) pending.push(batcher.submit('k', { id: id++, key: 'k', rows: 1 }));
      await vi.advanceTimersByTimeAsync(1);
      if (t >= 1000) targets.push(batcher.target);
    }
    const closing = batcher.close();
    await vi.runAllTimersAsync();
    await closing;
    await Promise.all(pending);
    const lo = Math.min(...targets);
    const hi = Math.max(...targets);
    expect(hi / lo).toBeLessThanOrEqual(1.1);
    expect(lo).toBeGreaterThanOrEqual(32);
    const recent = infos.slice(-200, -5);
    expect(Math.max(...recent.map((i) => i.waitMs + i.runMs))).toBeLessThanOrEqual(50);
  });
});
