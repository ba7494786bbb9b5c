/**
 * The pipeline (src/pipeline/pipeline.ts) against the core (src/index.ts): results equal the core's exactly
 * whatever path ran (inline, split over the worker pool, coalesced by submit), errors equal the
 * core's (class and message, row numbers global), and the machinery around it — handler routing,
 * processBatch isolation and crash recovery, abort, admission, close, metrics, config checks.
 *
 * Nothing here depends on timing: the pool path is forced with the internal ROUTE hook (and the
 * cost model's own first pool try is checked once), and batch composition is controlled by
 * submitting in one turn (a free slot takes every request of the turn) and by gated handlers.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { AbortError, PipelineClosedError, QueueFullError, WorkerCrashError } from '../src/common/errors.js';
import { vectorize, vectorizeBytes } from '../src/index.js';
import { type Pipeline, type PipelineConfig, ROUTE, WORKER_FILE, createPipeline } from '../src/pipeline/pipeline.js';
import { WORKER_ENTRY } from '../src/pipeline/pool/pool.js';
import type { Dtype, MaskDtype, VectorBatch, VectorizeOptions } from '../src/vectorize/types.js';
import {
  type Packed,
  expectSameBatch,
  expectSameError,
  gate,
  kept,
  makeByteRows,
  makeTexts,
  pack,
  plain,
  rejection,
  thrown, pipelines } from './fixtures/util.js';

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url);

/** Pipelines made by `make` are closed after each test, whatever happened. */
const make = pipelines();

function route(p: Pipeline, to: 'auto' | 'pool' | 'inline'): void {
  (p as unknown as Record<symbol, string>)[ROUTE] = to;
}

type Opts = VectorizeOptions<Dtype, MaskDtype>;

/** Accepted work all settled: every accepted row/item is processed or failed, nothing waits. */
function expectSettledCounts(p: Pipeline): void {
  const m = p.metrics();
  expect(m.accepted).toBe(m.processed + m.failed + m.aborted);
  expect(m.pending).toBe(0);
  expect(m.queueDepth).toBe(0);
}

// ---------------------------------------------------------------------------------------------

describe('config', () => {
  const cases: Array<[unknown, ErrorConstructor, string]> = [
    [null, TypeError, 'config must be an object, got null'],
    [42, TypeError, 'config must be an object, got number'],
    [{ foo: 1 }, TypeError, "unknown config option 'foo'"],
    [{ maxWorkers: 0 }, RangeError, 'config.maxWorkers must be an integer in [1, 64], got 0'],
    [{ maxWorkers: 65 }, RangeError, 'config.maxWorkers must be an integer in [1, 64], got 65'],
    [{ maxWorkers: 1.5 }, RangeError, 'config.maxWorkers must be an integer in [1, 64], got 1.5'],
    [{ maxWorkers: Number.NaN }, RangeError, 'config.maxWorkers must be an integer in [1, 64], got NaN'],
    [{ maxWorkers: '2' }, TypeError, 'config.maxWorkers must be a number, got string'],
    [{ maxBatchSize: 0 }, RangeError, 'config.maxBatchSize must be an integer in [1, 16777216], got 0'],
    [{ batchTimeoutMs: -1 }, RangeError, 'config.batchTimeoutMs must be a finite number >= 0, got -1'],
    [{ batchTimeoutMs: Infinity }, RangeError, 'config.batchTimeoutMs must be a finite number >= 0, got Infinity'],
    [{ batchTimeoutMs: 2 ** 31 }, RangeError, "config.batchTimeoutMs must be <= 2147483647 (setTimeout's limit), got 2147483648"],
    [{ targetLatencyMs: 0 }, RangeError, 'config.targetLatencyMs must be a finite number > 0, got 0'],
    [{ targetLatencyMs: null }, TypeError, 'config.targetLatencyMs must be a number, got null'],
    [{ maxQueue: 0 }, RangeError, 'config.maxQueue must be an integer in [1, 2147483647], got 0'],
    [{ fixedBatchSize: 0 }, RangeError, 'config.fixedBatchSize must be an integer in [1, 1000], got 0'],
    [{ maxBatchSize: 64, fixedBatchSize: 65 }, RangeError, 'config.fixedBatchSize must be an integer in [1, 64], got 65'],
    [{ fixedBatchSize: '8' }, TypeError, 'config.fixedBatchSize must be a number, got string'],
    [{ workerHeapMb: 8 }, RangeError, 'config.workerHeapMb must be an integer in [16, 1048576], got 8'],
    [{ handler: 5 }, TypeError, 'config.handler must be a function, got number'],
    [{ enableVectorization: 'yes' }, TypeError, 'config.enableVectorization must be a boolean, got string'],
    [{ enableProfiling: 1 }, TypeError, 'config.enableProfiling must be a boolean, got number'],
    [{ vectorize: { foo: 1 } }, TypeError, "unknown option 'foo'"],
    [{ vectorize: { maxLength: 0 } }, RangeError, 'options.maxLength must be an integer >= 1, got 0'],
    [{ vectorize: { encoding: 'canine', dtype: 'int16' } }, RangeError, "encoding 'canine' special token 57344 does not fit dtype 'int16' (max 32767)"],
    [{ vectorize: { out: { ids: new Int32Array(4) } } }, TypeError, 'config.vectorize.out is not supported: pass out buffers per call'],
  ];
  it.each(cases.map(([c, E, m]) => ({ c, E, m, name: m })))('$name', ({ c, E, m }) => {
    const e = thrown(() => createPipeline(c as PipelineConfig));
    expect(e.constructor).toBe(E);
    expect(e.message).toBe(m);
  });

  it('config.vectorize are defaults under every call option', async () => {
    const p = make({ maxWorkers: 1, vectorize: { encoding: 'byt5', maxLength: 8, paddingSide: 'left' } });
    const texts = ['hello world', 'é😀', ''];
    expect(plain(await p.vectorize(texts))).toEqual(plain(vectorize(texts, { encoding: 'byt5', maxLength: 8, paddingSide: 'left' })));
    expect(plain(await p.vectorize(texts, { maxLength: 4 }))).toEqual(plain(vectorize(texts, { encoding: 'byt5', maxLength: 4, paddingSide: 'left' })));
    expect(plain((await p.submit(texts, { paddingSide: 'right' })) as VectorBatch<Dtype>)).toEqual(
      plain(vectorize(texts, { encoding: 'byt5', maxLength: 8, paddingSide: 'right' })),
    );
    const { bytes, offsets } = pack(texts, { lead: 3 });
    expect(plain(await p.vectorizeBytes(bytes, offsets))).toEqual(
      plain(vectorizeBytes(bytes, offsets, { encoding: 'byt5', maxLength: 8, paddingSide: 'left' })),
    );
  });

  it('config.vectorize: options that are not a plain object are refused as by the core; undefined keys take the pipeline defaults; the config is copied', async () => {
    const defaults: { maxLength: number; encoding: 'byt5' } = { maxLength: 8, encoding: 'byt5' };
    const p = make({ maxWorkers: 1, vectorize: defaults });
    const texts = ['hello world, this is long'];
    const want = vectorize(texts, { maxLength: 8, encoding: 'byt5' });
    for (const o of [[], new Date(0), new Map(), Object.create({ maxLength: 3 })]) {
      const e = thrown(() => vectorize(texts, o as never));
      expectSameError(await rejection(p.vectorize(texts, o as never)), e);
      expectSameError(await rejection(p.submit(texts, o as never)), e);
      const { bytes, offsets } = pack(texts);
      expectSameError(await rejection(p.vectorizeBytes(bytes, offsets, o as never)), e);
    }
    expectSameBatch(await p.vectorize(texts, { maxLength: undefined }), want);
    expectSameBatch((await p.submit(texts, { maxLength: undefined, encoding: undefined })) as VectorBatch<Dtype>, want);
    // Changing the object passed as config changes nothing, with or without call options.
    defaults.maxLength = 4;
    expectSameBatch(await p.vectorize(texts), want);
    expectSameBatch(await p.vectorize(texts, {}), want);
    expectSameBatch((await p.submit(texts, {})) as VectorBatch<Dtype>, want);
  });

  it('argument errors of vectorize / vectorizeBytes equal the core (inline path)', async () => {
    const p = make({ maxWorkers: 1 });
    const bad: Array<[unknown, unknown]> = [
      ['not an array', undefined],
      [['a', 3], undefined],
      [['a'], { foo: 1 }],
      [['a'], null],
      [['a'], { encoding: 'canine', maxLength: 1 }],
      [['a\uD800b'], { invalid: 'error' }],
      [['ab', '€'], { dtype: 'uint8' }],
      [['a'], { padId: 300, dtype: 'uint8' }],
    ];
    for (const [texts, o] of bad) {
      const want = thrown(() => vectorize(texts as string[], o as Opts));
      expectSameError(await rejection(p.vectorize(texts as string[], o as Opts)), want);
    }
    const { bytes, offsets } = pack(['ab', '€'], { lead: 1 });
    const badBytes: Array<[unknown, unknown, unknown]> = [
      [[1, 2], offsets, undefined],
      [bytes, [0, 1], undefined],
      [bytes, new Uint32Array(0), undefined],
      [bytes, new Uint32Array([2, 1]), undefined],
      [bytes, new Uint32Array([0, 99]), undefined],
      [bytes, offsets, { dtype: 'uint8' }],
      [new Uint8Array([0x61, 0xff]), new Uint32Array([0, 1, 2]), { invalid: 'error' }],
    ];
    for (const [b, o, opt] of badBytes) {
      const want = thrown(() => vectorizeBytes(b as Uint8Array, o as Uint32Array, opt as Opts));
      expectSameError(await rejection(p.vectorizeBytes(b as Uint8Array, o as Uint32Array, opt as Opts)), want);
    }
    expectSettledCounts(p);
  });
});

// ---------------------------------------------------------------------------------------------

const VOCAB = ['a', 'b', 'h', 'e', 'l', 'o', ' ', 'é', '中', '😀', 'x', 'y', 'z', '0', '9'];

/** Option sets run on the pool for bytes input (every one valid for the generated rows). */
const BYTE_SETS: Array<[string, Opts]> = [
  ['defaults (codepoint, longest, maxLength 512)', {}],
  ['max-length 64', { maxLength: 64, padding: 'max-length' }],
  ['left/left, padToMultipleOf 16', { maxLength: 50, truncationSide: 'left', paddingSide: 'left', padToMultipleOf: 16 }],
  ['byt5, padId 7', { encoding: 'byt5', maxLength: 40, padId: 7 }],
  ['byt5 without specials, uint16', { encoding: 'byt5', addSpecialTokens: false, dtype: 'uint16', maxLength: 24 }],
  ['canine, left padding', { encoding: 'canine', maxLength: 33, paddingSide: 'left' }],
  ['utf8 as uint8', { encoding: 'utf8', dtype: 'uint8', maxLength: 100, truncationSide: 'left' }],
  ['utf16 as uint16', { encoding: 'utf16', dtype: 'uint16', maxLength: 30, truncationSide: 'left', paddingSide: 'left' }],
  ['vocab as int16', { vocab: VOCAB, dtype: 'int16', maxLength: 48, padId: -1 }],
  ['float32, max-length 20 rounded to 24', { dtype: 'float32', padding: 'max-length', maxLength: 20, padToMultipleOf: 8 }],
  ['int16 codepoint, longest, padToMultipleOf 7', { dtype: 'int16', maxLength: 90, padToMultipleOf: 7, encoding: 'utf8' }],
  ['int64 ids and mask, padId -1, left padding', { dtype: 'int64', maskDtype: 'int64', padId: -1, paddingSide: 'left', maxLength: 60 }],
  ['int64 ids, int32 mask, bigint pad, max-length', { dtype: 'int64', maskDtype: 'int32', padId: 2n ** 40n, padding: 'max-length', maxLength: 32, encoding: 'byt5' }],
  ['uint8 ids, int64 mask', { encoding: 'utf8', dtype: 'uint8', maskDtype: 'int64', maxLength: 50 }],
];

/** Option sets run on the pool for string input (only 'replace' and not 'utf16' are poolable). */
const STRING_SETS: Array<[string, Opts]> = [
  ['defaults', {}],
  ['max-length 64, left padding', { maxLength: 64, padding: 'max-length', paddingSide: 'left' }],
  ['left truncation, padToMultipleOf 16', { maxLength: 50, truncationSide: 'left', padToMultipleOf: 16 }],
  ['byt5', { encoding: 'byt5', maxLength: 40 }],
  ['canine', { encoding: 'canine', maxLength: 33, truncationSide: 'left' }],
  ['utf8 as uint8', { encoding: 'utf8', dtype: 'uint8', maxLength: 100 }],
  ['vocab as int16', { vocab: VOCAB, dtype: 'int16', maxLength: 48 }],
  ['float32 max-length', { dtype: 'float32', padding: 'max-length', maxLength: 20, padId: 3 }],
  ['byt5 int64 ids and mask', { encoding: 'byt5', dtype: 'int64', maskDtype: 'int64', maxLength: 40 }],
  ['int64 with padId -(2^63), left padding', { dtype: 'int64', padId: -(2n ** 63n), maxLength: 30, paddingSide: 'left' }],
];

describe('vectorize / vectorizeBytes split over the pool equal the core', () => {
  let p: Pipeline;
  let plainIn: Packed;
  let sharedIn: Packed;
  let texts: string[];

  beforeAll(() => {
    p = createPipeline({ maxWorkers: 3 });
    route(p, 'pool');
    // ~600 KB: 3 shards of >= 128 KiB on 3 workers; ill-formed bytes in ~2% of the rows.
    const rows = makeByteRows(1, 600_000);
    plainIn = pack(rows, { lead: 37 });
    sharedIn = pack(rows, { lead: 11, shared: true });
    // ~330k code units (~660 KB as UTF-16), lone surrogates in ~3% of the rows.
    texts = makeTexts(2, 330_000, { loneSurrogates: 0.03 });
  });
  afterAll(() => p.close());

  /** Runs `f` and checks that it went to the pool, split into at least `shards` worker tasks. */
  async function onPool<T>(f: () => Promise<T>, shards = 3): Promise<T> {
    const before = p.metrics();
    const r = await f();
    const after = p.metrics();
    expect(after.batches.pool - before.batches.pool, 'pool batches').toBe(1);
    expect(after.batches.inline - before.batches.inline, 'inline batches').toBe(0);
    expect(after.pool!.completed - before.pool!.completed, 'worker tasks').toBeGreaterThanOrEqual(shards);
    return r;
  }

  for (const [name, o] of BYTE_SETS) {
    it(`vectorizeBytes: ${name}`, async () => {
      for (const input of [plainIn, sharedIn]) {
        const want = vectorizeBytes(input.bytes, input.offsets, o);
        expect(want.rows).toBeGreaterThan(5000);
        const got = await onPool(() => p.vectorizeBytes(input.bytes, input.offsets, o));
        expectSameBatch(got, want);
      }
    });
  }

  for (const [name, o] of STRING_SETS) {
    it(`vectorize: ${name}`, async () => {
      const want = vectorize(texts, o);
      const got = await onPool(() => p.vectorize(texts, o));
      expectSameBatch(got, want);
    });
  }

  it("strings with 'utf16' or invalid: 'error' never go to the pool, and still equal the core", async () => {
    for (const o of [{ encoding: 'utf16', maxLength: 70 }, { encoding: 'utf16', invalid: 'error', dtype: 'uint16' }] as Opts[]) {
      const before = p.metrics().batches;
      expectSameBatch(await p.vectorize(texts, o), vectorize(texts, o));
      expect(p.metrics().batches).toEqual({ inline: before.inline + 1, pool: before.pool });
    }
    const before = p.metrics().batches;
    const want = thrown(() => vectorize(texts, { invalid: 'error' }));
    expect(want.message).toMatch(/^row \d+ contains a lone surrogate at code unit \d+/);
    expectSameError(await rejection(p.vectorize(texts, { invalid: 'error' })), want);
    expect(p.metrics().batches.pool).toBe(before.pool);
  });

  it('a batch below 256 KiB runs inline even when the pool is forced', async () => {
    const small = texts.slice(0, 50);
    const before = p.metrics().batches;
    expectSameBatch(await p.vectorize(small), vectorize(small));
    expect(p.metrics().batches).toEqual({ inline: before.inline + 1, pool: before.pool });
  });

  it('int64 ids and masks in shared out buffers are written by the workers, equal to the core', async () => {
    const o: Opts = { maxLength: 40, dtype: 'int64', maskDtype: 'int64', encoding: 'byt5', padId: -(2n ** 62n) };
    const want = vectorizeBytes(plainIn.bytes, plainIn.offsets, o);
    const n = want.rows * want.width;
    const ids = new BigInt64Array(new SharedArrayBuffer((n + 10) * 8)).fill(9999n);
    const attentionMask = new BigInt64Array(new SharedArrayBuffer((n + 10) * 8)).fill(7n);
    const got = await onPool(() => p.vectorizeBytes(sharedIn.bytes, sharedIn.offsets, { ...o, out: { ids, attentionMask } }));
    expectSameBatch(got, want);
    expect(got.ids.buffer).toBe(ids.buffer);
    expect(got.attentionMask.buffer).toBe(attentionMask.buffer);
    expect(Array.from(ids.subarray(n))).toEqual(new Array(10).fill(9999n));
    expect(Array.from(attentionMask.subarray(n))).toEqual(new Array(10).fill(7n));
    // A plain (not shared) int64 out runs inline, with the same result.
    const own = { ids: new BigInt64Array(n), attentionMask: new BigInt64Array(n) };
    expectSameBatch(await p.vectorizeBytes(plainIn.bytes, plainIn.offsets, { ...o, out: own }), want);
  });

  it('out buffers in shared memory are written by the workers (views of them), equal to the core', async () => {
    for (const padding of ['longest', 'max-length'] as const) {
      const o: Opts = { maxLength: 40, dtype: 'uint16', encoding: 'byt5', padding };
      const want = vectorizeBytes(plainIn.bytes, plainIn.offsets, o);
      const n = want.rows * want.width;
      const ids = new Uint16Array(new SharedArrayBuffer((n + 10) * 2)).fill(9999);
      const attentionMask = new Uint8Array(new SharedArrayBuffer(n + 10)).fill(7);
      const got = await onPool(() => p.vectorizeBytes(sharedIn.bytes, sharedIn.offsets, { ...o, out: { ids, attentionMask } }));
      expectSameBatch(got, want);
      expect(got.ids.buffer).toBe(ids.buffer);
      expect(got.attentionMask.buffer).toBe(attentionMask.buffer);
      expect(Array.from(ids.subarray(n))).toEqual(new Array(10).fill(9999));
      expect(Array.from(attentionMask.subarray(n))).toEqual(new Array(10).fill(7));
      // ids only (the mask is then allocated).
      const want2 = vectorize(texts, o);
      const ids2 = new Uint16Array(new SharedArrayBuffer(want2.rows * want2.width * 2));
      const got2 = await onPool(() => p.vectorize(texts, { ...o, out: { ids: ids2 } }));
      expectSameBatch(got2, want2);
      expect(got2.ids.buffer).toBe(ids2.buffer);
    }
  });

  it('inputs copied into reused shared memory: calls of growing and shrinking sizes, bytes and strings in turn, equal the core', async () => {
    // Each plain-input pool call copies its rows into the pipeline's staging buffers, kept for the
    // next call: a smaller input must not see the larger one's tail, a larger one gets new buffers.
    const o: Opts = { maxLength: 64 };
    const sizes = [700_000, 300_000, 900_000, 280_000];
    for (const [i, size] of sizes.entries()) {
      const rows = makeByteRows(10 + i, size);
      const input = pack(rows, { lead: i * 3 });
      expectSameBatch(await onPool(() => p.vectorizeBytes(input.bytes, input.offsets, o), 2), vectorizeBytes(input.bytes, input.offsets, o));
      const t = makeTexts(20 + i, size / 2);
      expectSameBatch(await onPool(() => p.vectorize(t, o), 2), vectorize(t, o));
    }
  });

  it('an aborted pool call does not hand its staging buffers to the next call (a worker may still read them)', async () => {
    const staging = (p as unknown as { staging: { idle: { bytes: SharedArrayBuffer } | null } }).staging;
    // A completed call leaves its pair for the next one ...
    await p.vectorizeBytes(plainIn.bytes, plainIn.offsets, { maxLength: 64 });
    const kept = staging.idle;
    expect(kept).not.toBeNull();
    // ... which takes it; aborted while its tasks run, it does not give it back.
    const ac = new AbortController();
    const call = p.vectorizeBytes(plainIn.bytes, plainIn.offsets, { maxLength: 64 }, { signal: ac.signal });
    expect(staging.idle).toBeNull();
    ac.abort();
    await expect(call).rejects.toThrow();
    expect(staging.idle).toBeNull();
    // The next call allocates new buffers and still equals the core.
    expectSameBatch(await p.vectorizeBytes(plainIn.bytes, plainIn.offsets, { maxLength: 64 }), vectorizeBytes(plainIn.bytes, plainIn.offsets, { maxLength: 64 }));
    expect(staging.idle).not.toBeNull();
    expect(staging.idle).not.toBe(kept);
  });

  it('out buffers too small: the core error', async () => {
    const o: Opts = { maxLength: 40, padding: 'max-length' };
    const rows = sharedIn.offsets.length - 1;
    const ids = new Int32Array(new SharedArrayBuffer(4 * (rows * 40 - 1)));
    const want = thrown(() => vectorizeBytes(sharedIn.bytes, sharedIn.offsets, { ...o, out: { ids } }));
    expect(want.message).toBe(`options.out.ids has ${rows * 40 - 1} elements, the batch needs ${rows} x 40 = ${rows * 40}`);
    expectSameError(await rejection(p.vectorizeBytes(sharedIn.bytes, sharedIn.offsets, { ...o, out: { ids } })), want);
  });
});

describe('errors from the pool equal the core errors, row numbers global', () => {
  let p: Pipeline;
  // ASCII rows (~600 KB), then a few bad rows planted in the last shard and in the first.
  const ascii: string[] = [];
  for (let size = 0; size < 600_000; ) {
    const s = `row ${ascii.length} ${'x'.repeat(ascii.length % 150)}`;
    ascii.push(s);
    size += s.length;
  }
  const late = ascii.length - 3;

  beforeAll(() => {
    p = createPipeline({ maxWorkers: 3 });
    route(p, 'pool');
  });
  afterAll(() => p.close());

  async function expectCoreError(run: () => Promise<unknown>, core: () => unknown, pattern: RegExp): Promise<void> {
    const want = thrown(core);
    expect(want.message).toMatch(pattern);
    const before = p.metrics();
    expectSameError(await rejection(run()), want);
    const after = p.metrics();
    expect(after.pool!.completed - before.pool!.completed, 'worker tasks ran').toBeGreaterThanOrEqual(1);
    expect(after.batches.pool).toBe(before.batches.pool);
    expect(after.failed - before.failed).toBe(ascii.length);
  }

  it('an id that does not fit the dtype, in the last shard (strings and bytes, longest and max-length)', async () => {
    const rows = ascii.slice();
    rows[late] = 'abc €';
    const packed = pack(rows, { lead: 5 });
    for (const o of [{ dtype: 'uint8' }, { dtype: 'uint8', padding: 'max-length', maxLength: 200 }] as Opts[]) {
      const msg = new RegExp(`^row ${late}: id 8364 does not fit dtype 'uint8' \\(max 255\\)$`);
      await expectCoreError(() => p.vectorize(rows, o), () => vectorize(rows, o), msg);
      await expectCoreError(() => p.vectorizeBytes(packed.bytes, packed.offsets, o), () => vectorizeBytes(packed.bytes, packed.offsets, o), msg);
    }
    expectSettledCounts(p);
  });

  it('ill-formed UTF-8 with invalid: error in the last shard wins over a range error in the first', async () => {
    const rows: Array<string | Uint8Array> = ascii.slice();
    rows[2] = 'row 2 €';
    rows[late] = new Uint8Array([0x61, 0x62, 0xe2, 0x82, 0x63]);
    const packed = pack(rows, { lead: 1 });
    const shared = pack(rows, { shared: true });
    const o: Opts = { invalid: 'error', dtype: 'uint8' };
    const msg = new RegExp(`^row ${late} is not valid UTF-8 at byte 2 \\(options.invalid is 'error'\\)$`);
    await expectCoreError(() => p.vectorizeBytes(packed.bytes, packed.offsets, o), () => vectorizeBytes(packed.bytes, packed.offsets, o), msg);
    await expectCoreError(() => p.vectorizeBytes(shared.bytes, shared.offsets, { ...o, padding: 'max-length', maxLength: 300 }), () =>
      vectorizeBytes(shared.bytes, shared.offsets, { ...o, padding: 'max-length', maxLength: 300 }), msg);
    // Without the ill-formed row, the range error of row 2 (first shard) is the one.
    rows[late] = 'fine';
    const ok = pack(rows);
    await expectCoreError(() => p.vectorizeBytes(ok.bytes, ok.offsets, o), () => vectorizeBytes(ok.bytes, ok.offsets, o), /^row 2: id 8364 does not fit/);
  });

  it('the pool keeps working after errors', async () => {
    const { bytes, offsets } = pack(ascii);
    expectSameBatch(await p.vectorizeBytes(bytes, offsets, { dtype: 'uint8' }), vectorizeBytes(bytes, offsets, { dtype: 'uint8' }));
    expect(p.metrics().pool!.crashed).toBe(0);
  });

  it('an error leaves shared out buffers untouched (max-length skips the measuring pass)', async () => {
    const rows = ascii.slice();
    rows[late] = 'abc €';
    const { bytes, offsets } = pack(rows, { shared: true });
    const o: Opts = { dtype: 'uint8', padding: 'max-length', maxLength: 160 };
    const n = rows.length * 160;
    const ids = new Uint8Array(new SharedArrayBuffer(n)).fill(77);
    const attentionMask = new Uint8Array(new SharedArrayBuffer(n)).fill(77);
    const want = thrown(() => vectorizeBytes(bytes, offsets, { ...o, out: { ids: new Uint8Array(n), attentionMask: new Uint8Array(n) } }));
    const before = p.metrics().pool!.completed;
    expectSameError(await rejection(p.vectorizeBytes(bytes, offsets, { ...o, out: { ids, attentionMask } })), want);
    expect(p.metrics().pool!.completed - before, 'it ran on the pool').toBeGreaterThanOrEqual(1);
    expect(ids.every((x) => x === 77), 'out.ids untouched').toBe(true);
    expect(attentionMask.every((x) => x === 77), 'out.attentionMask untouched').toBe(true);
  });

  it('out buffers overlapping each other or the input: the core error, nothing written', async () => {
    const { bytes, offsets } = pack(ascii, { shared: true });
    const o: Opts = { maxLength: 32, padding: 'max-length', dtype: 'uint8' };
    const n = ascii.length * 32;
    // ids and attentionMask in one buffer, the mask starting in the middle of the ids.
    const sab = new SharedArrayBuffer(n * 2);
    const ids = new Uint8Array(sab, 0, n).fill(77);
    const attentionMask = new Uint8Array(sab, n / 2, n);
    const want = thrown(() => vectorizeBytes(bytes, offsets, { ...o, out: { ids, attentionMask } }));
    expect(want.message).toBe('options.out.ids and options.out.attentionMask overlap');
    new Uint8Array(sab).fill(77);
    expectSameError(await rejection(p.vectorizeBytes(bytes, offsets, { ...o, out: { ids, attentionMask } })), want);
    expect(new Uint8Array(sab).every((x) => x === 77), 'nothing written').toBe(true);

    // out.ids over the input bytes: the ids end 10 bytes into the rows.
    const big = new SharedArrayBuffer(n + bytes.length);
    const input = new Uint8Array(big, n - 10, bytes.length);
    input.set(bytes);
    const copy = input.slice();
    const over = new Uint8Array(big, 0, n);
    const want2 = thrown(() => vectorizeBytes(input, offsets, { ...o, out: { ids: over } }));
    expect(want2.message).toBe('options.out.ids overlaps the input bytes');
    new Uint8Array(big, 0, n - 10).fill(77);
    expectSameError(await rejection(p.vectorizeBytes(input, offsets, { ...o, out: { ids: over } })), want2);
    expect(new Uint8Array(big, 0, n - 10).every((x) => x === 77), 'nothing written').toBe(true);
    expect(Buffer.compare(input, copy)).toBe(0);
  });
});

describe('enableVectorization: false — the JavaScript fallback inline and on the workers equals the core', () => {
  let p: Pipeline;
  const rows = makeByteRows(12, 400_000);
  const texts = makeTexts(13, 200_000, { loneSurrogates: 0.03 });

  beforeAll(() => {
    p = createPipeline({ maxWorkers: 2, enableVectorization: false });
  });
  afterAll(() => p.close());

  it('bytes and strings, pool and inline, values and errors', async () => {
    expect(p.metrics().backend).toBe('js');
    const input = pack(rows, { lead: 3 });
    for (const to of ['pool', 'inline'] as const) {
      route(p, to);
      // int64 ids and masks too: the fallback writes them into the workers' shared output.
      const wide = BYTE_SETS.filter(([, o]) => o.dtype === 'int64').slice(0, 2);
      expect(wide.length).toBe(2);
      for (const [, o] of [BYTE_SETS[0]!, BYTE_SETS[2]!, BYTE_SETS[5]!, BYTE_SETS[8]!, ...wide]) {
        expectSameBatch(await p.vectorizeBytes(input.bytes, input.offsets, o), vectorizeBytes(input.bytes, input.offsets, o));
      }
      const wideStrings = STRING_SETS.find(([, o]) => o.maskDtype === 'int64')!;
      for (const [, o] of [STRING_SETS[1]!, STRING_SETS[3]!, wideStrings]) expectSameBatch(await p.vectorize(texts, o), vectorize(texts, o));
      for (const o of [{ invalid: 'error' }, { dtype: 'uint8' }] as Opts[]) {
        expectSameError(await rejection(p.vectorizeBytes(input.bytes, input.offsets, o)), thrown(() => vectorizeBytes(input.bytes, input.offsets, o)));
      }
    }
    expect(p.metrics().batches.pool).toBe(9);
    expectSettledCounts(p);
  });
});

/** Resolves once every worker of `p` has loaded the addon (the pool is then used by the cost model). */
/** Starts the workers (they start on first need: a task) and waits until every one has loaded the addon. */
async function warm(p: Pipeline): Promise<void> {
  expect(await p.processBatch([1], { task: fixture('double.mjs') })).toEqual([{ ok: true, value: 2 }]);
  const t0 = Date.now();
  while (p.metrics().pool!.ready < p.metrics().parallelization.workers) {
    if (Date.now() - t0 > 20_000) throw new Error('the workers did not start within 20 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

it('workers start on first need, and until they have loaded the addon pool-sized batches run inline, without asking the cost model', async () => {
  const { bytes, offsets } = pack(makeByteRows(5, 400_000));
  const want = vectorizeBytes(bytes, offsets, { maxLength: 64 });
  const p = make({ maxWorkers: 2 });
  // Small calls and submits never need the pool: no thread is started for them.
  expectSameBatch(await p.vectorize(['a', 'bc']), vectorize(['a', 'bc']));
  expectSameBatch((await p.submit('a')) as VectorBatch<Dtype>, vectorize(['a']));
  await new Promise((r) => setTimeout(r, 50));
  expect(p.metrics().pool).toMatchObject({ threads: 0, ready: 0 });
  // The first batch that could use them starts them, and runs inline meanwhile.
  expectSameBatch(await p.vectorizeBytes(bytes, offsets, { maxLength: 64 }), want);
  expect(p.metrics().pool!.threads).toBe(2);
  expect(p.metrics().batches).toEqual({ inline: 3, pool: 0 });
  expect(p.metrics().cost.decisions).toEqual({ inline: 0, pool: 0 });
  await warm(p);
  expect(p.metrics().pool!.ready).toBe(2);
  expectSettledCounts(p);
});

it('the workers count themselves ready in shared memory: a caller that never yields to the event loop still gets the pool', async () => {
  const p = make({ maxWorkers: 2 });
  const { bytes, offsets } = pack(makeByteRows(6, 400_000));
  const o: Opts = { maxLength: 64 };
  const want = vectorizeBytes(bytes, offsets, o);
  // Calls back to back: an inline call's await resumes as a microtask, so no timer or message
  // event runs between them. Readiness must still show, and the cost model then try the pool.
  const t0 = Date.now();
  while (p.metrics().batches.pool === 0) {
    if (Date.now() - t0 > 20_000) throw new Error('the pool was never used: readiness not visible without an event-loop turn');
    expectSameBatch(await p.vectorizeBytes(bytes, offsets, o), want);
  }
  expect(p.metrics().pool!.ready).toBe(2);
  expect(p.metrics().batches.inline).toBeGreaterThanOrEqual(1); // the estimate the pool try needs
  expectSettledCounts(p);
});

it('the cost model tries the pool once it has an inline estimate (no hook), and both runs equal the core', async () => {
  const p = make({ maxWorkers: 2 });
  await warm(p);
  const { bytes, offsets } = pack(makeByteRows(4, 400_000));
  const o: Opts = { encoding: 'byt5', maxLength: 64 };
  const want = vectorizeBytes(bytes, offsets, o);
  expectSameBatch(await p.vectorizeBytes(bytes, offsets, o), want);
  expect(p.metrics().batches).toEqual({ inline: 1, pool: 0 });
  expectSameBatch(await p.vectorizeBytes(bytes, offsets, o), want);
  expect(p.metrics().batches).toEqual({ inline: 1, pool: 1 });
  expect(p.metrics().cost.decisions).toEqual({ inline: 1, pool: 1 });
  expectSettledCounts(p);
});

// ---------------------------------------------------------------------------------------------

const SLO = { targetLatencyMs: 1e6, maxBatchSize: 64 };

const SUBMIT_SETS: Opts[] = [
  {},
  { encoding: 'byt5', maxLength: 12, paddingSide: 'left', dtype: 'uint16' },
  { encoding: 'canine', padding: 'max-length', maxLength: 16, padToMultipleOf: 8, truncationSide: 'left' },
  // int64 ids and wide masks: each request's rows cut out of the batch's (narrower widths).
  { encoding: 'byt5', maxLength: 20, dtype: 'int64', maskDtype: 'int64', padId: -1 },
  { maxLength: 24, paddingSide: 'left', dtype: 'int64', maskDtype: 'int32', padId: 2n ** 50n },
];

/** Request i: its option set and its texts (an array submit for every 7th). */
function request(i: number, pool: string[]): { set: number; texts: string[]; array: boolean } {
  const array = i % 7 === 0;
  const n = array ? 1 + (i % 4) : 1;
  const texts = Array.from({ length: n }, (_, k) => pool[(i * 5 + k) % pool.length]!);
  return { set: i % SUBMIT_SETS.length, texts, array };
}

describe('submit', () => {
  const pool = makeTexts(5, 6000, { loneSurrogates: 0.05, long: 0.02, maxPieces: 10 });

  it('hundreds of concurrent submits with mixed options: each gets exactly vectorize(its rows, its options)', async () => {
    const p = make({ maxWorkers: 2, ...SLO });
    const before = p.metrics().batcher;
    const reqs = Array.from({ length: 600 }, (_, i) => request(i, pool));
    const results = await Promise.all(reqs.map((r) => p.submit(r.array ? r.texts : r.texts[0]!, SUBMIT_SETS[r.set])));
    reqs.forEach((r, i) => {
      expect(plain(results[i] as VectorBatch<Dtype>), `request ${i}`).toEqual(plain(vectorize(r.texts, SUBMIT_SETS[r.set])));
    });
    const after = p.metrics().batcher;
    expect(after.requests - before.requests).toBe(600);
    expect(after.batches - before.batches, 'requests shared batches').toBeLessThan(300);
    expectSettledCounts(p);
  });

  it('a handler gets whole batches of one option set; every request gets its own rows’ results, in order', async () => {
    const seen: Array<{ rows: number; idsClass: string }> = [];
    const p = make({
      maxWorkers: 2,
      ...SLO,
      handler: async (batch) => {
        const k = seen.length;
        seen.push({ rows: batch.rows, idsClass: batch.ids.constructor.name });
        await new Promise((r) => setImmediate(r));
        return Array.from({ length: batch.rows }, (_, r) => ({ batch: k, row: r, tokens: kept(batch, r), idsClass: batch.ids.constructor.name }));
      },
    });
    const first = seen.length;
    const reqs = Array.from({ length: 450 }, (_, i) => request(i, pool));
    const results = (await Promise.all(reqs.map((r) => p.submit(r.array ? r.texts : r.texts[0]!, SUBMIT_SETS[r.set])))) as Array<
      Array<{ batch: number; row: number; tokens: number[]; idsClass: string }>
    >;
    const setsOf = new Map<number, Set<number>>();
    const requestsOf = new Map<number, number>();
    const rowsOf = new Map<number, number>();
    reqs.forEach((r, i) => {
      const res = results[i]!;
      expect(res).toHaveLength(r.texts.length);
      const want = vectorize(r.texts, SUBMIT_SETS[r.set]);
      res.forEach((x, j) => {
        expect(x.tokens, `request ${i} row ${j}`).toEqual(kept(want, j));
        expect(x.idsClass).toBe(want.ids.constructor.name);
        expect(x.batch, 'a request is never split').toBe(res[0]!.batch);
        expect(x.row, 'its rows are contiguous, in order').toBe(res[0]!.row + j);
      });
      const b = res[0]!.batch;
      setsOf.set(b, (setsOf.get(b) ?? new Set()).add(r.set));
      requestsOf.set(b, (requestsOf.get(b) ?? 0) + 1);
      rowsOf.set(b, (rowsOf.get(b) ?? 0) + r.texts.length);
    });
    for (const [b, sets] of setsOf) {
      expect(sets.size, `batch ${b} mixes option sets`).toBe(1);
      expect(rowsOf.get(b), `batch ${b} rows all delivered`).toBe(seen[b]!.rows);
    }
    expect(Math.max(...requestsOf.values()), 'some batch carried several requests').toBeGreaterThan(1);
    expect([...setsOf.keys()].every((b) => b >= first)).toBe(true);
    expectSettledCounts(p);
  });

  it('a handler resolving to the wrong number of results rejects its batch’s requests with a TypeError', async () => {
    let extra = 1;
    const p = make({ maxWorkers: 1, ...SLO, handler: async (batch) => (extra === 2 ? ({ n: 1 } as never) : new Array(batch.rows + extra).fill(0)) });
    const e = await rejection(p.submit(['a', 'b', 'c']));
    expect(e.constructor).toBe(TypeError);
    expect(e.message).toBe('handler must resolve to an array of 3 results (one per row), got 4 results');
    extra = 2;
    const e2 = await rejection(p.submit('a'));
    expect(e2.constructor).toBe(TypeError);
    expect(e2.message).toBe('handler must resolve to an array of 1 results (one per row), got Object');
    extra = 0;
    expect(await p.submit(['a', 'b'])).toEqual([0, 0]);
    expectSettledCounts(p);
    expect(p.metrics().failed).toBe(4);
  });

  it('a handler that throws rejects every request of its batch with that error, and only them', async () => {
    const boom = new Error('downstream failed');
    const p = make({
      maxWorkers: 1,
      ...SLO,
      handler: async (batch) => {
        if (kept(batch, 0)[0] === 'B'.codePointAt(0)) throw boom;
        return Array.from({ length: batch.rows }, (_, r) => kept(batch, r).length);
      },
    });
    const before = p.metrics().batcher.batches;
    // Submitted in one tick, fewer rows than the target: one batch when the timeout fires.
    const bad = ['Bad', 'x', 'yy', 'zzz'].map((t) => p.submit(t));
    const badErrors = await Promise.all(bad.map((x) => rejection(x)));
    for (const e of badErrors) expect(e).toBe(boom);
    expect(p.metrics().batcher.batches - before).toBe(1);
    const good = await Promise.all(['ok', 'fine!', ''].map((t) => p.submit(t)));
    expect(good).toEqual([[2], [5], [0]]);
    expectSettledCounts(p);
  });

  it("one bad request (invalid: 'error', lone surrogate) fails only itself; its batch-mates succeed", async () => {
    const p = make({ maxWorkers: 1, ...SLO });
    const o: Opts = { invalid: 'error', encoding: 'canine', maxLength: 10 };
    const before = p.metrics().batcher;
    const inputs: Array<string | string[]> = ['one', 'two', ['three', 'four'], 'bad \uD800 row', 'five', ['ok', 'x\uDC00y'], 'six'];
    const settled = await Promise.allSettled(inputs.map((x) => p.submit(x, o)));
    const after = p.metrics().batcher;
    expect(after.batches - before.batches, 'one batch').toBe(1);
    expect(after.requests - before.requests).toBe(inputs.length);
    settled.forEach((s, i) => {
      const texts = typeof inputs[i] === 'string' ? [inputs[i] as string] : (inputs[i] as string[]);
      if (i === 3 || i === 5) {
        expect(s.status).toBe('rejected');
        expectSameError((s as PromiseRejectedResult).reason, thrown(() => vectorize(texts, o)));
      } else {
        expect(s.status).toBe('fulfilled');
        expect(plain((s as PromiseFulfilledResult<VectorBatch<Dtype>>).value)).toEqual(plain(vectorize(texts, o)));
      }
    });
    expect((settled[3] as PromiseRejectedResult).reason.message).toBe("row 0 contains a lone surrogate at code unit 4 (options.invalid is 'error')");
    expect((settled[5] as PromiseRejectedResult).reason.message).toBe("row 1 contains a lone surrogate at code unit 1 (options.invalid is 'error')");
    expectSettledCounts(p);
    expect(p.metrics().failed).toBe(3);
  });

  it('a coalesced batch large enough for the pool: each request still gets exactly its own result', async () => {
    const p = make({ maxWorkers: 2, ...SLO });
    route(p, 'pool');
    // 60 rows of ~10k code units: each batch below is well over 256 KiB.
    const long = Array.from({ length: 60 }, (_, i) => makeTexts(100 + i, 10_000, { loneSurrogates: 0.2 }).join(''));
    const parts = [long.slice(0, 20), long.slice(20, 45), long.slice(45, 60)];
    const before = p.metrics().batches.pool;
    const results = await Promise.all(parts.map((t, i) => p.submit(t, i === 1 ? { paddingSide: 'left' } : { maxLength: 600 })));
    expect(p.metrics().batches.pool - before).toBe(2);
    parts.forEach((t, i) => expectSameBatch(results[i] as VectorBatch<Dtype>, vectorize(t, i === 1 ? { paddingSide: 'left' } : { maxLength: 600 })));
    expectSettledCounts(p);
  });

  it("a request is its rows when submit() was called: the caller's array may change after it returns", async () => {
    const p = make({ maxWorkers: 1, fixedBatchSize: 8, batchTimeoutMs: 5 });
    const xs = ['hello', 'world'];
    const a = p.submit(xs); // waits for batch-mates
    xs.length = 0;
    const zs = ['a'];
    const b = p.submit(zs);
    for (let i = 0; i < 20; i++) zs.push('x');
    const ys = ['c', 'd'];
    const c = p.submit(ys);
    (ys as unknown[])[1] = null;
    expectSameBatch((await a) as VectorBatch<Dtype>, vectorize(['hello', 'world']));
    expectSameBatch((await b) as VectorBatch<Dtype>, vectorize(['a']));
    expectSameBatch((await c) as VectorBatch<Dtype>, vectorize(['c', 'd']));
    expectSettledCounts(p);
    expect(p.metrics()).toMatchObject({ accepted: 5, processed: 5, failed: 0, bytesIn: 2 * 'helloworldacd'.length });
  });

  it('argument errors reject the call', async () => {
    const p = make({ maxWorkers: 1 });
    expectSameError(await rejection(p.submit(['a', 3 as never])), new TypeError('texts[1] must be a string, got number'));
    expectSameError(await rejection(p.submit(5 as never)), new TypeError('texts must be an array of strings, got number'));
    expectSameError(await rejection(p.submit('a', { foo: 1 } as never)), new TypeError("unknown option 'foo'"));
    // The core's order: options before rows.
    for (const [texts, o] of [
      [['a', 5], { foo: 1 }],
      [['a', null], { maxLength: 0 }],
      [[undefined, 'a'], { encoding: 'nope' }],
    ] as const) {
      expectSameError(await rejection(p.submit(texts as never, o as never)), thrown(() => vectorize(texts as never, o as never)));
    }
    expectSameError(
      await rejection(p.submit('a', { out: { ids: new Int32Array(4) } })),
      new TypeError('options.out is not supported by submit(): results are per request'),
    );
    expectSettledCounts(p);
  });
});

// ---------------------------------------------------------------------------------------------

describe('processBatch', () => {
  it('one result per item, in order, for ES modules and CommonJS, by path, URL or file: URL', async () => {
    const p = make({ maxWorkers: 2 });
    const items = Array.from({ length: 101 }, (_, i) => i);
    const want = items.map((x) => ({ ok: true, value: x * 2 }));
    expect(await p.processBatch(items, { task: 'test/fixtures/double.mjs' })).toEqual(want);
    expect(await p.processBatch(items, { task: fixture('double.mjs') })).toEqual(want);
    expect(await p.processBatch(items, { task: fixture('double.cjs').href })).toEqual(want);
    expect(await p.processBatch([], { task: fixture('double.mjs') })).toEqual([]);
    expect(await p.processBatch([21], { task: fixture('double.mjs') })).toEqual([{ ok: true, value: 42 }]);
    expectSettledCounts(p);
    expect(p.metrics().processed).toBe(304);
  });

  it('a task path with #, % or ? in it is a path, not a URL', async () => {
    const p = make({ maxWorkers: 1 });
    const base = mkdtempSync(join(tmpdir(), 'dtesn-task-'));
    try {
      for (const name of ['v1#2', '50%25', 'what?']) {
        mkdirSync(join(base, name));
        copyFileSync(fileURLToPath(fixture('double.mjs')), join(base, name, 'double.mjs'));
        expect(await p.processBatch([1, 2], { task: join(base, name, 'double.mjs') }), name).toEqual([{ ok: true, value: 2 }, { ok: true, value: 4 }]);
      }
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('an error thrown while importing the task module fails every item with its name and message; no worker dies', async () => {
    const p = make({ maxWorkers: 1 });
    const dom = await p.processBatch([1, 2], { task: `${fixture('import-throws.mjs').href}?dom` });
    // Node 22+ clones a DOMException as one; Node 20 as a plain object (then wrapped, name kept in the message).
    expect(dom.map((r) => (r.ok ? r.value : `${r.error.name}: ${r.error.message}`))).toEqual(Array(2).fill(expect.stringMatching(/^(Error: )?InvalidCharacterError: Invalid character$/)));
    const obj = await p.processBatch([1, 2], { task: `${fixture('import-throws.mjs').href}?object` });
    expect(obj.map((r) => (r.ok ? r.value : `${r.error.name}: ${r.error.message}`))).toEqual(Array(2).fill('Error: [object Object]'));
    expect(p.metrics().parallelization).toMatchObject({ retriedTasks: 0, crashedTasks: 0 });
    expectSettledCounts(p);
  });

  it('an item that cannot be sent to a worker fails alone with a TypeError naming it; its neighbours run; no worker death is counted', async () => {
    const p = make({ maxWorkers: 1 });
    const items: unknown[] = [1, 2, 3, 4, 5, 6, 7, 8, () => 9, Symbol('x')];
    const out = await p.processBatch(items, { task: fixture('double.mjs') });
    expect(out.slice(0, 8)).toEqual([2, 4, 6, 8, 10, 12, 14, 16].map((value) => ({ ok: true, value })));
    // The rest of the message is V8's (it quotes the value).
    expect(out.slice(8).map((r) => (r.ok ? r.value : `${r.error.name}: ${r.error.message}`))).toEqual([
      expect.stringMatching(/^TypeError: items\[8\] cannot be sent to a worker: .*could not be cloned/),
      expect.stringMatching(/^TypeError: items\[9\] cannot be sent to a worker: .*Symbol\(x\).*could not be cloned/),
    ]);
    expect(p.metrics().parallelization).toMatchObject({ retriedTasks: 0, crashedTasks: 0 });
    expect(p.metrics()).toMatchObject({ accepted: 10, processed: 8, failed: 2 });
  });

  it('a throwing item fails alone; its neighbours keep their results', async () => {
    const p = make({ maxWorkers: 2 });
    const items = Array.from({ length: 40 }, (_, i) => i + 1);
    const out = await p.processBatch<number, number>(items, { task: fixture('throws.mjs') });
    expect(out).toHaveLength(40);
    out.forEach((r, i) => {
      const x = items[i]!;
      if (x % 3 === 0) {
        expect(r.ok).toBe(false);
        expectSameError((r as { error: Error }).error, new RangeError(`item ${x} is a multiple of 3`));
      } else if (x % 5 === 0) {
        expect(r.ok).toBe(false);
        expectSameError((r as { error: Error }).error, new Error(`item ${x} is a multiple of 5`));
      } else {
        expect(r).toEqual({ ok: true, value: x + 1 });
      }
    });
    const failed = items.filter((x) => x % 3 === 0 || x % 5 === 0).length;
    expect(p.metrics()).toMatchObject({ accepted: 40, processed: 40 - failed, failed });
  });

  it('a result or error that cannot cross threads fails its own item, with a message saying why', async () => {
    const p = make({ maxWorkers: 1 });
    const items = ['a', 'return-fn', 'throw-fn', 'throw-obj', 'b'];
    const out = await p.processBatch<string, string>(items, { task: fixture('uncloneable.mjs') });
    expect(out[0]).toEqual({ ok: true, value: 'ok:a' });
    expect(out[4]).toEqual({ ok: true, value: 'ok:b' });
    for (const r of out.slice(1, 4)) {
      expect(r.ok).toBe(false);
      expect((r as { error: Error }).error).toBeInstanceOf(Error);
    }
    expect((out[1] as { error: Error }).error.message).toMatch(/^DataCloneError: .*could not be cloned/);
    expect((out[2] as { error: Error }).error.message).toBe('function thrower() {}');
    expect(p.metrics()).toMatchObject({ accepted: 5, processed: 2, failed: 3 });
  });

  it('a module without a function export fails every item with a TypeError', async () => {
    const p = make({ maxWorkers: 1 });
    const task = 'data:text/javascript,export default 42';
    const out = await p.processBatch([1, 2], { task });
    expect(out.map((r) => r.ok)).toEqual([false, false]);
    for (const r of out) expectSameError((r as { error: Error }).error, new TypeError(`task module ${task} must export a function (default export), got number`));
  });

  it('an item that kills its worker fails alone with WorkerCrashError; its neighbours get their values (the issue: 20 and 200 items)', async () => {
    const p = make({ maxWorkers: 2 });
    for (const n of [20, 200]) {
      const before = p.metrics();
      const items = Array.from({ length: n }, (_, i) => i);
      const out = await p.processBatch<number, number>(items, { task: fixture('crash13.mjs') });
      expect(out).toHaveLength(n);
      out.forEach((r, x) => {
        if (x === 13) {
          expect(r.ok).toBe(false);
          const e = (r as { error: Error }).error as WorkerCrashError;
          expect(e).toBeInstanceOf(WorkerCrashError);
          expect(e).toMatchObject({ code: 'ERR_DTESN_WORKER_CRASH', exitCode: 3 });
          expect(e.message).toBe('items[13] killed its worker, also on a fresh worker of its own (worker exited with code: 3)');
        } else if (x % 7 === 0) {
          expectSameError((r as { error: Error }).error, new RangeError(`item ${x} is a multiple of 7`));
        } else {
          expect(r, `item ${x}`).toEqual({ ok: true, value: x * 10 });
        }
      });
      const m = p.metrics();
      const failed = 1 + items.filter((x) => x !== 13 && x % 7 === 0).length;
      expect(m.failed - before.failed, 'one crash failure, and the throwing items').toBe(failed);
      expect(m.processed - before.processed).toBe(n - failed);
      // The piece holding 13 died at it (its worker records the item running): run again as
      // [before 13], [13], [after 13] on fresh workers; 13 dies there too. Two deaths, three re-runs.
      expect(m.pool!.crashed - before.pool!.crashed).toBe(2);
      expect(m.pool!.retried - before.pool!.retried).toBe(3);
    }
    expectSettledCounts(p);
    // The pool recovers: tasks and pool vectorization both work on the replaced workers.
    route(p, 'pool');
    expect(await p.processBatch([1, 2, 3], { task: fixture('double.mjs') })).toEqual([2, 4, 6].map((value) => ({ ok: true, value })));
    const { bytes, offsets } = pack(makeByteRows(7, 300_000));
    expectSameBatch(await p.vectorizeBytes(bytes, offsets), vectorizeBytes(bytes, offsets));
    expect(p.metrics().pool!.threads).toBe(2);
  });

  it('a task that kills its worker on every item stops after maxRetries re-runs (default 64); every item fails with WorkerCrashError', async () => {
    const p = make({ maxWorkers: 2 });
    const items = Array.from({ length: 200 }, (_, i) => i);
    const out = await p.processBatch(items, { task: fixture('crash-always.mjs') });
    expect(out.every((r) => !r.ok && r.error instanceof WorkerCrashError && (r.error as WorkerCrashError).exitCode === 5)).toBe(true);
    const messages = new Set(out.map((r) => (r as { error: Error }).error.message.replace(/items\[[\d.]+\]/, 'items[...]')));
    expect([...messages].sort()).toEqual([
      'items[...] killed its worker, also on a fresh worker of its own (worker exited with code: 5)',
      "the worker running items[...] died; not run again: the call's 64 re-runs after worker deaths are spent (worker exited with code: 5)",
    ]);
    // Every re-run of a piece that died at its first item takes 2 (that item, the rest): exactly the bound.
    expect(p.metrics().pool!.retried).toBe(64);
    expect(p.metrics()).toMatchObject({ accepted: 200, processed: 0, failed: 200 });

    const small = await p.processBatch(items.slice(0, 20), { task: fixture('crash-always.mjs'), maxRetries: 8 });
    expect(small.every((r) => !r.ok && r.error instanceof WorkerCrashError)).toBe(true);
    expect(p.metrics().pool!.retried).toBe(64 + 8);
    // 0: no re-run; a piece whose worker dies fails whole (16 items on 2 workers: pieces of 2).
    const values = [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18];
    const none = await p.processBatch(values, { task: fixture('crash13.mjs'), maxRetries: 0 });
    expect(none.map((r) => r.ok)).toEqual(values.map((_, i) => i !== 10 && i !== 11));
    for (const r of none.slice(10, 12)) {
      expect((r as { error: Error }).error.message).toBe(
        "the worker running items[10..11] died; not run again: the call's 0 re-runs after worker deaths are spent (worker exited with code: 3)",
      );
    }
    expect(p.metrics().pool!.retried).toBe(64 + 8);
    expectSettledCounts(p);
  });

  it('a task module that kills its worker while loading: each piece is run once more, then its items fail saying so', async () => {
    const p = make({ maxWorkers: 1 });
    const out = await p.processBatch([1, 2, 3, 4, 5, 6, 7, 8], { task: fixture('crash-on-import.mjs') });
    expect(out.map((r) => (r.ok ? r.value : r.error.message))).toEqual([
      ...Array(2).fill('the worker died before the first of items[0..1] started (loading the task module?), also on a fresh worker of its own (worker exited with code: 9)'),
      ...Array(2).fill('the worker died before the first of items[2..3] started (loading the task module?), also on a fresh worker of its own (worker exited with code: 9)'),
      ...Array(2).fill('the worker died before the first of items[4..5] started (loading the task module?), also on a fresh worker of its own (worker exited with code: 9)'),
      ...Array(2).fill('the worker died before the first of items[6..7] started (loading the task module?), also on a fresh worker of its own (worker exited with code: 9)'),
    ]);
    expect(p.metrics().pool).toMatchObject({ retried: 4, crashed: 8 });
    expect(await p.processBatch([5], { task: fixture('double.mjs') })).toEqual([{ ok: true, value: 10 }]);
  });

  it('a task that exhausts the worker heap (workerHeapMb): only its item fails; the pool recovers', { timeout: 30_000 }, async () => {
    const p = make({ maxWorkers: 2, workerHeapMb: 32 });
    const items = ['a', 'b', 'c', 'd', 'OOM', 'e', 'f', 'g', 'h'];
    const out = await p.processBatch<string, string>(items, { task: fixture('oom.mjs') });
    out.forEach((r, i) => {
      if (i !== 4) expect(r).toEqual({ ok: true, value: `ok:${items[i]}` });
    });
    const e = (out[4] as { error: Error }).error;
    expect(e).toBeInstanceOf(WorkerCrashError);
    expect(e.message).toMatch(/^items\[4\] killed its worker, also on a fresh worker of its own \(.*out of memory/);
    expect(p.metrics()).toMatchObject({ accepted: 9, processed: 8, failed: 1 });
    expect(await p.processBatch([5], { task: fixture('double.mjs') })).toEqual([{ ok: true, value: 10 }]);
  });

  it('an abort while crashed items are re-run on fresh workers rejects at once; the pool recovers', async () => {
    const p = make({ maxWorkers: 1 });
    const c = new AbortController();
    const reason = new Error('stop');
    // 8 items in 4 pieces of 2: [CRASH, WAIT] dies at CRASH, then WAIT waits on a fresh worker.
    const running = p.processBatch(['CRASH', 'WAIT', 'a', 'b', 'c', 'd', 'e', 'f'], { task: fixture('crash-or-wait.mjs'), signal: c.signal });
    await expect.poll(() => p.metrics().pool!.retried).toBe(2);
    c.abort(reason);
    expect(await rejection(running)).toBe(reason);
    expect(await p.processBatch(['x'], { task: fixture('crash-or-wait.mjs') })).toEqual([{ ok: true, value: 'ok:x' }]);
    expectSettledCounts(p);
  });

  it('maxRetries is checked', async () => {
    const p = make({ maxWorkers: 1 });
    expectSameError(await rejection(p.processBatch([1], { task: fixture('double.mjs'), maxRetries: -1 })), new RangeError('opts.maxRetries must be an integer in [0, 2147483647], got -1'));
    expectSameError(await rejection(p.processBatch([1], { task: fixture('double.mjs'), maxRetries: '3' as never })), new TypeError('opts.maxRetries must be a number, got string'));
  });

  it('abort: pre-aborted rejects with the reason; aborting while running rejects at once and the pool recovers', async () => {
    const p = make({ maxWorkers: 2 });
    const reason = new Error('stop');
    expect(await rejection(p.processBatch([1], { task: fixture('double.mjs'), signal: AbortSignal.abort(reason) }))).toBe(reason);
    const c = new AbortController();
    const running = p.processBatch(['a', 'WAIT', 'b'], { task: fixture('gate.mjs'), signal: c.signal });
    // The pieces are handed to the pool synchronously (busy counts them); abort while they run or wait.
    expect(p.metrics().pool!.busy).toBeGreaterThan(0);
    c.abort(reason);
    expect(await rejection(running)).toBe(reason);
    expect(await p.processBatch([1, 2], { task: fixture('double.mjs') })).toEqual([2, 4].map((value) => ({ ok: true, value })));
    expectSettledCounts(p);
  });

  it('argument errors', async () => {
    const p = make({ maxWorkers: 1 });
    expectSameError(await rejection(p.processBatch('x' as never, { task: fixture('double.mjs') })), new TypeError('items must be an array, got string'));
    expectSameError(await rejection(p.processBatch([1], null as never)), new TypeError('opts must be an object, got null'));
    expectSameError(await rejection(p.processBatch([1], { task: '' })), new TypeError('opts.task must be a module path or URL, got string'));
  });
});

// ---------------------------------------------------------------------------------------------

describe('a worker that dies under a pool batch', () => {
  /** A pipeline whose workers die on rows holding 'KILLME' (anywhere) or 'FLAKY' (pool workers only). */
  function faulty(): Pipeline {
    const p = make({ maxWorkers: 2, [WORKER_FILE]: fileURLToPath(fixture('fault-worker.cjs')) } as PipelineConfig);
    route(p, 'pool');
    return p;
  }
  const rowsWith = (marker: string, at: number): Uint8Array[] => {
    const rows = makeByteRows(3, 600_000);
    rows[at] = new TextEncoder().encode(`a row with ${marker} in it`);
    return rows;
  };

  it('a death that does not follow the rows (FLAKY): the shard runs again in halves on fresh workers; the batch equals the core', async () => {
    const p = faulty();
    const { bytes, offsets } = pack(rowsWith('FLAKY', 1234), { lead: 3 });
    for (const o of [{}, { padding: 'max-length', maxLength: 64 }, { encoding: 'byt5', maxLength: 300, padToMultipleOf: 8 }] as Opts[]) {
      const before = p.metrics();
      expectSameBatch(await p.vectorizeBytes(bytes, offsets, o), vectorizeBytes(bytes, offsets, o));
      const m = p.metrics();
      // 'longest' measures first: its shard dies there too, and again when it writes.
      const passes = o.padding === 'max-length' ? 1 : 2;
      expect(m.pool!.crashed - before.pool!.crashed).toBe(passes);
      expect(m.pool!.retried - before.pool!.retried).toBe(2 * passes);
      expect(m.batches.pool - before.batches.pool).toBe(1);
    }
    // A submitted micro-batch on the pool survives it too.
    const texts = rowsWith('FLAKY', 99).map((r) => new TextDecoder().decode(r));
    const before = p.metrics().pool!.crashed;
    expectSameBatch((await p.submit(texts, { maxLength: 48 })) as VectorBatch<Dtype>, vectorize(texts, { maxLength: 48 }));
    expect(p.metrics().pool!.crashed - before).toBe(2);
    expectSettledCounts(p);
    expect(p.metrics().failed).toBe(0);
  });

  it('a row that kills its worker everywhere (KILLME): the call rejects with WorkerCrashError naming the row; the pool recovers', async () => {
    const p = faulty();
    const rows = rowsWith('KILLME', 777);
    const { bytes, offsets } = pack(rows);
    const e = await rejection(p.vectorizeBytes(bytes, offsets));
    expect(e).toBeInstanceOf(WorkerCrashError);
    expect(e).toMatchObject({ exitCode: 7, message: 'row 777 killed its worker, also on a fresh worker of its own (worker exited with code: 7)' });
    expect(p.metrics()).toMatchObject({ accepted: rows.length, processed: 0, failed: rows.length });
    // Strings go the same way (encoded into shared memory first).
    const texts = rows.map((r) => new TextDecoder().decode(r));
    const s = await rejection(p.vectorize(texts, { maxLength: 32, padding: 'max-length' }));
    expect(s.message).toBe('row 777 killed its worker, also on a fresh worker of its own (worker exited with code: 7)');
    // Halving a shard to one row takes 2 re-runs per level, well inside the bound.
    expect(p.metrics().pool!.retried).toBeLessThanOrEqual(2 * 64);
    rows[777] = new TextEncoder().encode('fine now');
    const clean = pack(rows);
    expectSameBatch(await p.vectorizeBytes(clean.bytes, clean.offsets), vectorizeBytes(clean.bytes, clean.offsets));
    expect(p.metrics().pool!.threads).toBe(2);
    expectSettledCounts(p);
  });
});

// ---------------------------------------------------------------------------------------------

describe('abort', () => {
  it('pre-aborted signals reject every entry point with the signal’s reason', async () => {
    const p = make({ maxWorkers: 1 });
    const reason = new RangeError('mine');
    const signal = AbortSignal.abort(reason);
    const { bytes, offsets } = pack(['a']);
    expect(await rejection(p.vectorize(['a'], {}, { signal }))).toBe(reason);
    expect(await rejection(p.vectorizeBytes(bytes, offsets, {}, { signal }))).toBe(reason);
    expect(await rejection(p.submit('a', {}, { signal }))).toBe(reason);
    expect(await rejection(p.processBatch([1], { task: fixture('double.mjs'), signal }))).toBe(reason);
    // abort() without a reason: the platform's AbortError, passed through.
    const c = new AbortController();
    c.abort();
    const e = await rejection(p.vectorize(['a'], {}, { signal: c.signal }));
    expect(e).toBe(c.signal.reason);
    expect(e.name).toBe('AbortError');
    // A signal with no reason at all: our AbortError (code ABORT_ERR).
    const bare = { aborted: true, reason: undefined, addEventListener() {}, removeEventListener() {} } as unknown as AbortSignal;
    const e2 = await rejection(p.vectorize(['a'], {}, { signal: bare }));
    expect(e2).toBeInstanceOf(AbortError);
    expect(e2).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', message: 'the operation was aborted' });
    expect(p.metrics().accepted).toBe(p.metrics().processed + p.metrics().failed);
  });

  it('a signal that is not one is a TypeError naming it, at every entry point; nothing is counted', async () => {
    const p = make({ maxWorkers: 1 });
    const { bytes, offsets } = pack(['a']);
    const want = (got: string) => new TypeError(`opts.signal must be an AbortSignal, got ${got}`);
    expectSameError(await rejection(p.vectorize(['a'], {}, { signal: 1 as never })), want('number'));
    expectSameError(await rejection(p.vectorizeBytes(bytes, offsets, {}, { signal: 'x' as never })), want('string'));
    expectSameError(await rejection(p.submit('a', {}, { signal: null as never })), want('null'));
    expectSameError(await rejection(p.processBatch([1], { task: fixture('double.mjs'), signal: { aborted: false } as never })), want('Object'));
    expect(p.metrics()).toMatchObject({ accepted: 0, processed: 0, failed: 0 });
    // A live signal changes nothing.
    const signal = new AbortController().signal;
    expectSameBatch(await p.vectorize(['a'], {}, { signal }), vectorize(['a']));
  });

  it('aborting a waiting submit frees its place in the queue; aborting a running one aborts the handler’s signal', async () => {
    const g = gate();
    const signals: AbortSignal[] = [];
    const p = make({
      maxWorkers: 1,
      maxQueue: 2,
      handler: async (batch, signal) => {
        signals.push(signal);
        await g.wait;
        return new Array(batch.rows).fill('done');
      },
    });
    const ca = new AbortController();
    const a = p.submit('a', {}, { signal: ca.signal }); // dispatched at the end of the turn, blocked in the handler
    await new Promise((r) => setImmediate(r));
    const cb = new AbortController();
    const b = p.submit('b', {}, { signal: cb.signal }); // waiting
    const c = p.submit('c'); // waiting: the queue (2) is full
    await new Promise((r) => setImmediate(r));
    expect(signals).toHaveLength(1);
    expect(p.metrics().queueDepth).toBe(2);
    const full = await rejection(p.submit('d'));
    expect(full).toBeInstanceOf(QueueFullError);
    cb.abort(new Error('b gone'));
    expect((await rejection(b)).message).toBe('b gone');
    expect(p.metrics().queueDepth).toBe(1);
    const d = p.submit('d'); // the freed place
    ca.abort(new Error('a gone'));
    expect((await rejection(a)).message).toBe('a gone');
    expect(signals[0]!.aborted, 'its batch had no other request').toBe(true);
    g.open();
    expect(await Promise.all([c, d])).toEqual([['done'], ['done']]);
    expectSettledCounts(p);
    expect(p.metrics()).toMatchObject({ accepted: 4, processed: 2, failed: 0, aborted: 2, pending: 0, shed: 1 });
  });

  it('aborting a vectorize running on the pool rejects with the reason; the pool recovers', async () => {
    const p = make({ maxWorkers: 2 });
    route(p, 'pool');
    const { bytes, offsets } = pack(makeByteRows(8, 2_000_000, 0));
    const c = new AbortController();
    const run = p.vectorizeBytes(bytes, offsets, {}, { signal: c.signal });
    expect(p.metrics().pool!.busy, 'shards handed to the pool').toBeGreaterThan(0);
    c.abort(new Error('enough'));
    expect((await rejection(run)).message).toBe('enough');
    expectSameBatch(await p.vectorizeBytes(bytes, offsets, { maxLength: 8 }), vectorizeBytes(bytes, offsets, { maxLength: 8 }));
    expectSettledCounts(p);
    expect(p.metrics()).toMatchObject({ aborted: offsets.length - 1, failed: 0, processed: offsets.length - 1, pending: 0 });
  });
});

// ---------------------------------------------------------------------------------------------

describe('admission (maxQueue)', () => {
  it('QueueFullError at once with its code and figures; accepted = processed + failed after all settles', async () => {
    const g = gate();
    const p = make({
      maxWorkers: 1,
      maxQueue: 3,
      handler: async (batch) => {
        await g.wait;
        return Array.from({ length: batch.rows }, (_, i) => i);
      },
    });
    route(p, 'pool');
    const first = p.submit('a'); // running (not waiting) after this turn
    await new Promise((r) => setImmediate(r));
    const waiting = [p.submit('b'), p.submit(['c', 'd'])]; // 3 rows waiting
    const e = await rejection(p.submit('e')); // settles while the handler still blocks
    expect(e).toBeInstanceOf(QueueFullError);
    expect(e).toMatchObject({ name: 'QueueFullError', code: 'ERR_DTESN_QUEUE_FULL', limit: 3, depth: 3, rows: 1 });
    expect(e.message).toBe('queue full: 3 rows waiting + 1 requested would exceed maxQueue 3; retry later or raise maxQueue');
    // processBatch and pool-bound vectorize are admitted against the same queue; inline vectorize is not queued.
    expect(await rejection(p.processBatch([1, 2], { task: fixture('double.mjs') }))).toBeInstanceOf(QueueFullError);
    const { bytes, offsets } = pack(makeByteRows(9, 300_000));
    expect(await rejection(p.vectorizeBytes(bytes, offsets))).toBeInstanceOf(QueueFullError);
    expect(plain(await p.vectorize(['inline']))).toEqual(plain(vectorize(['inline'])));
    expect(p.metrics().shed).toBe(1 + 2 + (offsets.length - 1));
    g.open();
    expect(await first).toEqual([0]);
    expect(await Promise.all(waiting)).toEqual([[0], [1, 2]]); // one batch: the free slot took both
    expectSettledCounts(p);
    expect(p.metrics()).toMatchObject({ accepted: 5, processed: 5, failed: 0 });
    // A refusal carries no stack frames (it is the overload path, and they would only point inside).
    expect(e.stack).toBe(`QueueFullError: ${e.message}`);
  });

  it('a refusal is counted, never queued: 10,000 refused submits leave the queue and the results untouched', async () => {
    const g = gate();
    const p = make({ maxWorkers: 1, maxQueue: 2, handler: async (batch) => (await g.wait, batch.rows > 0 ? new Array(batch.rows).fill('ok') : []) });
    const running = p.submit('a');
    await new Promise((r) => setImmediate(r)); // 'a' runs
    const waiting = p.submit(['b', 'c']);
    const refused = await Promise.allSettled(Array.from({ length: 10_000 }, (_, i) => p.submit(`x${i}`)));
    expect(refused.every((r) => r.status === 'rejected' && r.reason instanceof QueueFullError)).toBe(true);
    expect(p.metrics()).toMatchObject({ shed: 10_000, queueDepth: 2 });
    g.open();
    expect(await running).toEqual(['ok']);
    expect(await waiting).toEqual(['ok', 'ok']);
    expectSettledCounts(p);
    expect(p.metrics()).toMatchObject({ accepted: 3, processed: 3, failed: 0, shed: 10_000 });
  });
});

describe('work-conserving batches', () => {
  it('a fresh pipeline’s first batch holds every request of the turn; the requests that came due while a blocking handler ran go in one batch', async () => {
    const sizes: number[] = [];
    let late!: Promise<unknown[]>;
    const p = make({
      maxWorkers: 2,
      handler: async (batch) => {
        sizes.push(batch.rows);
        if (sizes.length === 1) {
          // While this batch blocks the loop, more requests come due: a timer that fires late, all at once.
          late = new Promise((resolve) => setTimeout(() => resolve(Promise.all(Array.from({ length: 50 }, (_, i) => p.submit(`b${i}`)))), 1));
        }
        const end = performance.now() + 20; // a CPU-bound model stage: blocks the event loop
        while (performance.now() < end);
        return Array.from({ length: batch.rows }, (_, i) => i);
      },
    });
    const first = Array.from({ length: 300 }, (_, i) => p.submit(`a${i}`));
    expect((await Promise.all(first)).map((r) => (r as number[]).length)).toEqual(Array(300).fill(1));
    expect((await late).length).toBe(50);
    expect(sizes).toEqual([300, 50]);
    expect(p.metrics().batching).toMatchObject({ batches: 2, readyBatches: 2, fullBatches: 0, target: 1000 });
  });
});

describe('fixedBatchSize', () => {
  it('pins the micro-batch size: batches of exactly that many rows under load, the rest on timeout; results exact', async () => {
    const sizes: number[] = [];
    const g = gate();
    const p = make({
      maxWorkers: 1,
      fixedBatchSize: 7,
      batchTimeoutMs: 5,
      handler: async (batch) => {
        sizes.push(batch.rows);
        await g.wait;
        return Array.from({ length: batch.rows }, (_, i) => i);
      },
    });
    const first = p.submit('first'); // alone: waits its 5 ms, then holds the only slot at the gate
    await new Promise((r) => setTimeout(r, 20));
    const rest = Array.from({ length: 30 }, (_, i) => p.submit(`r${i}`));
    g.open();
    expect(await first).toEqual([0]);
    const results = await Promise.all(rest);
    expect(results.every((r) => Array.isArray(r) && r.length === 1)).toBe(true);
    // 30 waiting rows behind the busy slot: cut at 7 each (4 full batches), 2 left for the timer.
    expect(sizes).toEqual([1, 7, 7, 7, 7, 2]);
    const m = p.metrics();
    expect(m.config.fixedBatchSize).toBe(7);
    expect(m.batching.target).toBe(7);
  });
});

// ---------------------------------------------------------------------------------------------

describe('close', () => {
  it('drains everything in flight, nothing lost; later calls reject PipelineClosedError; twice is harmless', async () => {
    const p = make({ maxWorkers: 2, batchTimeoutMs: 50, ...SLO });
    route(p, 'pool');
    const texts = makeTexts(10, 3000, { maxPieces: 8, long: 0 });
    const subs = texts.map((t, i) => p.submit(t, SUBMIT_SETS[i % 3]));
    const { bytes, offsets } = pack(makeByteRows(11, 300_000));
    const big = p.vectorizeBytes(bytes, offsets, { maxLength: 20 });
    const proc = p.processBatch([1, 2, 3], { task: fixture('double.mjs') });
    const closed = p.close();
    expect(p.close()).toBe(closed);
    // Refused from the moment close() is called.
    expect(await rejection(p.submit('late'))).toBeInstanceOf(PipelineClosedError);
    await closed;
    const results = await Promise.all(subs);
    results.forEach((r, i) => expect(plain(r as VectorBatch<Dtype>)).toEqual(plain(vectorize([texts[i]!], SUBMIT_SETS[i % 3]))));
    expectSameBatch(await big, vectorizeBytes(bytes, offsets, { maxLength: 20 }));
    expect(await proc).toEqual([2, 4, 6].map((value) => ({ ok: true, value })));
    expectSettledCounts(p);
    expect(p.metrics().processed).toBe(texts.length + offsets.length - 1 + 3);

    const e = await rejection(p.vectorize(['a']));
    expect(e).toBeInstanceOf(PipelineClosedError);
    expect(e).toMatchObject({ code: 'ERR_DTESN_CLOSED', name: 'PipelineClosedError', message: 'the pipeline is closed and accepts no new work' });
    expect(await rejection(p.vectorizeBytes(bytes, offsets))).toBeInstanceOf(PipelineClosedError);
    expect(await rejection(p.submit('a'))).toBeInstanceOf(PipelineClosedError);
    expect(await rejection(p.processBatch([1], { task: fixture('double.mjs') }))).toBeInstanceOf(PipelineClosedError);
    expect(thrown(() => p.stream(['a']))).toBeInstanceOf(PipelineClosedError);
    expect(thrown(() => p.vectorizeFile('/nonexistent', { format: 'lines' }))).toBeInstanceOf(PipelineClosedError);
    await p.close();
    await p[Symbol.asyncDispose]();
  });

  it('the pool loads its worker through a CommonJS entry, never require() of an ES module', () => {
    // piscina loads a worker file with require() first; on Node 20/22, terminating a worker while
    // require() instantiates an ES module graph aborts the process (see src/pipeline/pool/worker-entry.cts). With
    // require(esm) switched off, the entry must still load and give the task function.
    const r = spawnSync(process.execPath, ['--no-experimental-require-module', '-e', `
      const run = require(${JSON.stringify(WORKER_ENTRY)});
      process.stdout.write(typeof run);`], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('function');
    expect(r.status).toBe(0);
  });

  it('closing pipelines while their workers start never brings the process down', () => {
    // Delays spread over the workers' start-up; before the CommonJS entry this aborted the process
    // with "FATAL ERROR: v8::Module::IsGraphAsync ..." in about one run in three of 120 rounds.
    const r = spawnSync(process.execPath, [fileURLToPath(fixture('close-early.mjs')), '60'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok 60\n');
    expect(r.status).toBe(0);
  });

  it('await using closes the pipeline at the end of the block', async () => {
    let q: Pipeline;
    {
      await using p = createPipeline({ maxWorkers: 1 });
      q = p;
      expect(plain(await p.vectorize(['a']))).toEqual(plain(vectorize(['a'])));
    }
    expect(await rejection(q.vectorize(['a']))).toBeInstanceOf(PipelineClosedError);
    await q.close();
  });
});

it('metrics add up over a mix of successes, failures, refusals and aborts', async () => {
  const p = make({ maxWorkers: 2, maxQueue: 1000 });
  const work: Array<Promise<unknown>> = [];
  for (let i = 0; i < 50; i++) work.push(p.submit(i % 10 === 0 ? 'x\uD800' : `ok ${i}`, { invalid: i % 10 === 0 ? 'error' : 'replace' }));
  work.push(p.vectorize(['a', 'b\uDC00'], { invalid: 'error' }));
  work.push(p.vectorize(['a', 'b']));
  work.push(p.processBatch([1, 2, 3, 4, 5, 6], { task: fixture('throws.mjs') }));
  await Promise.allSettled(work);
  const m = p.metrics();
  expect(m).toMatchObject({ accepted: 50 + 2 + 2 + 6, failed: 5 + 2 + 3, queueDepth: 0, shed: 0, backend: 'native' });
  expect(m.accepted).toBe(m.processed + m.failed);
  expect(m.batcher.accepted).toBe(m.batcher.resolved + m.batcher.rejected + m.batcher.aborted);
  await Promise.allSettled([p.submit('gone', {}, { signal: AbortSignal.abort() }), p.vectorize(['gone'], {}, { signal: AbortSignal.abort() })]);
  expectSettledCounts(p);
});
