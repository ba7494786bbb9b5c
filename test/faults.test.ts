/**
 * Pipeline faults (issue 16, probe 4): items that cannot be posted to a worker, close() racing
 * with streams, files and crash isolation, and thousands of submits aborted at random times —
 * every promise settles and metrics() reconciles: accepted = processed + failed + aborted +
 * pending at every snapshot, each count equal to what the callers saw. (A worker out of memory
 * and the other crash cases are in test/pipeline.test.ts, describe 'processBatch'.)
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PipelineClosedError, QueueFullError, WorkerCrashError } from '../src/common/errors.js';
import { vectorize } from '../src/index.js';
import { type Pipeline, ROUTE } from '../src/pipeline/pipeline.js';
import type { Dtype, VectorBatch } from '../src/vectorize/types.js';
import { expectSameBatch, makeTexts, pipelines, rng } from './fixtures/util.js';

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url);
const make = pipelines();
const route = (p: Pipeline, to: 'pool' | 'inline' | 'auto') => {
  (p as unknown as Record<symbol, string>)[ROUTE] = to;
};

function reconciles(p: Pipeline): void {
  const m = p.metrics();
  expect(m.accepted, JSON.stringify({ accepted: m.accepted, processed: m.processed, failed: m.failed, aborted: m.aborted, pending: m.pending })).toBe(
    m.processed + m.failed + m.aborted + m.pending,
  );
  expect(m.throughput).toMatchObject({ accepted: m.accepted, processed: m.processed, failed: m.failed, aborted: m.aborted, pending: m.pending });
}

/** Open file descriptors of this process whose path contains `part`. */
function openFiles(part: string): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((l) => l.includes(part));
}

describe('items that cannot be posted to a worker', () => {
  it('an item whose getter throws while it is cloned fails alone, named; no worker death is counted', async () => {
    const p = make({ maxWorkers: 1 });
    const evil = {
      get x(): number {
        throw new Error('getter boom');
      },
    };
    // 8 items on 1 worker: pieces of 2; the evil item shares its piece with item 3.
    const out = await p.processBatch<unknown, number>([1, 2, evil, 4, 5, 6, 7, 8], { task: fixture('double.mjs') });
    expect(out.map((r) => (r.ok ? r.value : `${r.error.name}: ${r.error.message}`))).toEqual([
      2, 4, 'TypeError: items[2] cannot be sent to a worker: getter boom', 8, 10, 12, 14, 16,
    ]);
    expect(p.metrics().pool).toMatchObject({ retried: 0, crashed: 0 });
    expect(p.metrics()).toMatchObject({ accepted: 8, processed: 7, failed: 1, aborted: 0, pending: 0 });
  });
});

describe('close() racing with the work', () => {
  it('a stream and a file being read get PipelineClosedError at their next batch, and the file is closed', async () => {
    const p = make({ maxWorkers: 1 });
    const texts = makeTexts(5, 20_000);
    const stream = p.stream(texts, { batchSize: 50 })[Symbol.asyncIterator]();
    const file = p.vectorizeFile('samples/udhr.jsonl', { format: 'jsonl', field: 'text', batchSize: 10 })[Symbol.asyncIterator]();
    const first = await stream.next();
    expectSameBatch(first.value as VectorBatch<Dtype>, vectorize(texts.slice(0, 50)));
    expect((await file.next()).value.rows).toBe(10);
    expect(openFiles('udhr.jsonl')).toHaveLength(1);
    const closing = p.close();
    await expect(stream.next()).rejects.toBeInstanceOf(PipelineClosedError);
    await expect(file.next()).rejects.toBeInstanceOf(PipelineClosedError);
    await closing;
    await new Promise((r) => setTimeout(r, 20));
    expect(openFiles('udhr.jsonl')).toEqual([]);
    reconciles(p);
    expect(p.metrics().pending).toBe(0);
  });

  it('close() waits for a processBatch that is isolating a crash; its results are complete', async () => {
    const p = make({ maxWorkers: 2 });
    const items = Array.from({ length: 40 }, (_, i) => i);
    const running = p.processBatch<number, number>(items, { task: fixture('crash13.mjs') });
    const closed = p.close();
    const out = await running;
    await closed;
    expect(out.filter((r) => !r.ok && r.error instanceof WorkerCrashError).length).toBe(1);
    expect(out.filter((r) => r.ok).length).toBe(40 - 1 - items.filter((x) => x !== 13 && x % 7 === 0).length);
    reconciles(p);
    expect(p.metrics().pending).toBe(0);
  });
});

describe('10,000 submits with signals aborted at random times', () => {
  it('every promise settles; metrics reconcile at every snapshot and match what the callers saw', { timeout: 60_000 }, async () => {
    const p = make({ maxWorkers: 2, maxQueue: 3000 });
    route(p, 'pool'); // large submits (and the vectorize calls) go to the workers
    const rand = rng(16);
    const texts = makeTexts(16, 400_000, { maxPieces: 6, long: 0 });
    const big = makeTexts(17, 300_000, { maxPieces: 40 });
    type Seen = { rows: number; signal: AbortSignal | null; pre: boolean; p: Promise<unknown>; want: () => VectorBatch<Dtype> | null };
    const seen: Seen[] = [];
    const snapshots: Array<() => void> = [];
    const timers: Array<ReturnType<typeof setTimeout>> = [];
    for (let i = 0; i < 10_000; i++) {
      const r = rand();
      let signal: AbortSignal | null = null;
      let pre = false;
      if (r < 0.05) {
        signal = AbortSignal.abort(new Error(`pre ${i}`));
        pre = true;
      } else if (r < 0.45) {
        const ac = new AbortController();
        signal = ac.signal;
        timers.push(setTimeout(() => ac.abort(new Error(`abort ${i}`)), Math.floor(rand() * 30)));
        if (rand() < 0.2) queueMicrotask(() => ac.abort(new Error(`abort ${i}`)));
      }
      const opts = signal ? { signal } : undefined;
      if (i % 2500 === 1234) {
        // Now and then a batch for the pool: vectorize, or a processBatch.
        const call = i % 5000 === 1234 ? p.vectorize(big, { maxLength: 64 }, opts) : p.processBatch(Array.from({ length: 30 }, (_, k) => k), { task: fixture('double.mjs'), ...(signal ? { signal } : {}) });
        const rows = i % 5000 === 1234 ? big.length : 30;
        call.catch(() => {}); // settled and checked below; rejections before then are expected
        seen.push({ rows, signal, pre, p: call, want: () => (i % 5000 === 1234 ? vectorize(big, { maxLength: 64 }) : null) });
      } else {
        const t = texts[i % texts.length]!;
        const rows = i % 97 === 0 ? texts.slice(0, 200) : [t];
        const call = p.submit(rows, undefined, opts);
        call.catch(() => {});
        seen.push({ rows: rows.length, signal, pre, p: call, want: () => vectorize(rows) });
      }
      if (i % 500 === 0) {
        await new Promise((res) => setImmediate(res));
        const m = p.metrics();
        snapshots.push(() => expect(m.accepted).toBe(m.processed + m.failed + m.aborted + m.pending));
      }
    }
    const settled = await Promise.allSettled(seen.map((s) => s.p));
    for (const t of timers) clearTimeout(t);
    for (const check of snapshots) check();
    let processed = 0;
    let aborted = 0;
    let shed = 0;
    let failed = 0;
    let preRefused = 0;
    settled.forEach((st, i) => {
      const s = seen[i]!;
      if (st.status === 'fulfilled') {
        processed += s.rows;
        const want = s.want();
        if (want !== null) expectSameBatch(st.value as VectorBatch<Dtype>, want);
        else expect(st.value).toEqual(Array.from({ length: 30 }, (_, k) => ({ ok: true, value: 2 * k })));
      } else if (st.reason instanceof QueueFullError) shed += s.rows;
      else if (s.signal !== null && st.reason === s.signal.reason) {
        if (s.pre) preRefused += s.rows;
        else aborted += s.rows;
      } else {
        failed += s.rows;
      }
    });
    const m = p.metrics();
    expect(failed).toBe(0);
    expect(aborted).toBeGreaterThan(1000);
    expect(preRefused).toBeGreaterThan(0);
    expect({ processed: m.processed, aborted: m.aborted, failed: m.failed, shed: m.shed, pending: m.pending }).toEqual({ processed, aborted, failed, shed, pending: 0 });
    // A call aborted before it was accepted counts nowhere.
    expect(m.accepted).toBe(processed + aborted);
    reconciles(p);
    expect(m.queueDepth).toBe(0);
  });
});
