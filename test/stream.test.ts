/**
 * pipeline.stream() and pipeline.vectorizeFile() (src/io/stream.ts) against the core and against the
 * obvious JavaScript reading of the same input: batch sizes, equality, line numbers, malformed
 * lines, errors, backpressure and bounded memory; with the native backend and with
 * `enableVectorization: false` (the JavaScript fallback everywhere). vectorizeFile reads files and
 * byte streams (any chunking, e.g. stdin); `bytesRead` is checked against the line offsets.
 *
 * Memory is measured after a forced full GC (live heap + ArrayBuffers), so the bounds test what is
 * retained, not when the collector happened to run.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, createReadStream, existsSync, mkdtempSync, openSync, readdirSync, readlinkSync, realpathSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PipelineClosedError } from '../src/common/errors.js';
import { vectorize } from '../src/index.js';
import { type Pipeline, type PipelineConfig, ROUTE, createPipeline } from '../src/pipeline/pipeline.js';
import { type FileBatch, type FileOptions, REUSE_MAX_BYTES, RecordError } from '../src/io/stream.js';
import type { Dtype, MaskDtype, VectorBatch, VectorizeOptions } from '../src/vectorize/types.js';
import { expectSameBatch, expectSameError, liveMemory, makeTexts, rejection, thrown, pipelines } from './fixtures/util.js';

const MB = 1 << 20;

const make = pipelines();

type Opts = VectorizeOptions<Dtype, MaskDtype>;

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Runs `f` for the native backend and for the JavaScript fallback. */
const BACKENDS = [
  { name: 'native', config: {} },
  { name: 'js fallback', config: { enableVectorization: false } },
] as const;

// ---------------------------------------------------------------------------------------------

describe.each(BACKENDS)('stream() ($name)', ({ name, config }) => {
  const texts = makeTexts(21, 150_000, { loneSurrogates: 0.05, maxPieces: 12 });

  it('metrics name the backend', () => {
    expect(make({ maxWorkers: 1, ...config }).metrics().backend).toBe(name === 'native' ? 'native' : 'js');
  });

  it('batches of batchSize, the last one partial, each equal to vectorize(its rows)', async () => {
    const p = make({ maxWorkers: 1, ...config });
    expect(texts.length).toBeGreaterThan(2500);
    const rows = texts.slice(0, 2500);
    const o: Opts = { encoding: 'byt5', maxLength: 30, paddingSide: 'left', dtype: 'uint16' };
    function* sync() {
      yield* rows;
    }
    async function* lazy() {
      for (const t of rows) yield t;
    }
    for (const source of [rows, sync(), lazy()]) {
      const batches = await collect(p.stream(source, { ...o, batchSize: 1000 }));
      expect(batches.map((b) => b.rows)).toEqual([1000, 1000, 500]);
      batches.forEach((b, k) => expectSameBatch(b, vectorize(rows.slice(k * 1000, (k + 1) * 1000), o)));
    }
    // Default batchSize 1000, default options; batch sizes that divide the input leave no partial batch.
    expect((await collect(p.stream(rows))).map((b) => b.rows)).toEqual([1000, 1000, 500]);
    const exact = await collect(p.stream(rows, { batchSize: 500 }));
    expect(exact.map((b) => b.rows)).toEqual([500, 500, 500, 500, 500]);
    exact.forEach((b, k) => expectSameBatch(b, vectorize(rows.slice(k * 500, (k + 1) * 500))));
    expect(await collect(p.stream([]))).toEqual([]);
    const m = p.metrics();
    expect(m.accepted).toBe(m.processed + m.failed);
  });

  it('the pipeline defaults apply under the stream options', async () => {
    const p = make({ maxWorkers: 1, ...config, vectorize: { encoding: 'canine', maxLength: 12 } });
    const rows = texts.slice(0, 30);
    const batches = await collect(p.stream(rows, { batchSize: 16, truncationSide: 'left' }));
    expectSameBatch(batches[0]!, vectorize(rows.slice(0, 16), { encoding: 'canine', maxLength: 12, truncationSide: 'left' }));
    expectSameBatch(batches[1]!, vectorize(rows.slice(16), { encoding: 'canine', maxLength: 12, truncationSide: 'left' }));
  });

  it('a non-string item: TypeError naming its index, after every row before it was delivered', async () => {
    const p = make({ maxWorkers: 1, ...config });
    for (const [bad, type] of [
      [42, 'number'],
      [null, 'null'],
      [undefined, 'undefined'],
    ] as const) {
      const source = [...texts.slice(0, 25), bad, 'after'] as unknown as string[];
      const got: VectorBatch<Dtype>[] = [];
      const e = await rejection(
        (async () => {
          for await (const b of p.stream(source, { batchSize: 10 })) got.push(b);
        })(),
      );
      expectSameError(e, new TypeError(`stream item 25 must be a string, got ${type}`));
      expect(got.map((b) => b.rows)).toEqual([10, 10, 5]);
      expectSameBatch(got[2]!, vectorize(texts.slice(20, 25)));
    }
  });

  it("a batch the core refuses (invalid: 'error') ends the stream with the core's error for that batch", async () => {
    const p = make({ maxWorkers: 1, ...config });
    const rows = ['a', 'b', 'c', 'd', 'e\uD800', 'f'];
    const got: VectorBatch<Dtype>[] = [];
    const e = await rejection(
      (async () => {
        for await (const b of p.stream(rows, { batchSize: 3, invalid: 'error' })) got.push(b);
      })(),
    );
    expect(got).toHaveLength(1);
    expectSameError(e, thrown(() => vectorize(rows.slice(3), { invalid: 'error' })));
    expect(e.message).toBe("row 1 contains a lone surrogate at code unit 1 (options.invalid is 'error')");
  });

  it('bad arguments are refused when stream() is called, naming the option', () => {
    const p = make({ maxWorkers: 1, ...config });
    expectSameError(thrown(() => p.stream(42 as never)), new TypeError('source must be an iterable or async iterable of strings, got number'));
    expectSameError(thrown(() => p.stream(null as never)), new TypeError('source must be an iterable or async iterable of strings, got null'));
    expectSameError(thrown(() => p.stream([], { batchSize: 0 })), new RangeError('options.batchSize must be an integer in [1, 16777216], got 0'));
    expectSameError(thrown(() => p.stream([], { batchSize: 2.5 })), new RangeError('options.batchSize must be an integer in [1, 16777216], got 2.5'));
    expectSameError(thrown(() => p.stream([], { foo: 1 } as never)), new TypeError("unknown option 'foo'"));
    expectSameError(thrown(() => p.stream([], { encoding: 'ascii' } as never)), thrown(() => vectorize([], { encoding: 'ascii' } as never)));
    expectSameError(thrown(() => p.stream([], null as never)), new TypeError('options must be an object, got null'));
    expectSameError(
      thrown(() => p.stream([], { out: { ids: new Int32Array(1) } })),
      new TypeError('options.out is not supported for streams: pass reuseBuffers: true to write every batch into one reused output'),
    );
  });

  it('backpressure: the source is pulled one batch at a time, only when the consumer asks', async () => {
    const p = make({ maxWorkers: 1, ...config });
    let pulled = 0;
    let finished = false;
    async function* source() {
      try {
        for (let i = 0; i < 2500; i++) {
          pulled++;
          yield `t${i}`;
        }
      } finally {
        finished = true;
      }
    }
    const it = p.stream(source(), { batchSize: 1000 })[Symbol.asyncIterator]();
    expect(pulled).toBe(0);
    expect((await it.next()).value.rows).toBe(1000);
    expect(pulled).toBe(1000);
    await new Promise((r) => setTimeout(r, 20));
    expect(pulled, 'nothing pulled while the consumer holds').toBe(1000);
    expect((await it.next()).value.rows).toBe(1000);
    expect(pulled).toBe(2000);
    expect((await it.next()).value.rows).toBe(500);
    expect(pulled).toBe(2500);
    expect((await it.next()).done).toBe(true);
    expect(finished).toBe(true);

    // Breaking out of the loop finalizes the source.
    pulled = 0;
    finished = false;
    for await (const b of p.stream(source(), { batchSize: 100 })) {
      expect(b.rows).toBe(100);
      if (pulled === 300) break;
    }
    expect(pulled).toBe(300);
    expect(finished).toBe(true);
  });

  it('a synchronous source (read without a promise per item): pulled one batch at a time, closed on break and on a bad item, not after it threw', async () => {
    const p = make({ maxWorkers: 1, ...config });
    let pulled = 0;
    let closed = 0;
    function* source(n: number, bad = -1): Generator<unknown> {
      try {
        for (let i = 0; i < n; i++) {
          pulled++;
          yield i === bad ? 7 : `t${i}`;
        }
      } finally {
        closed++;
      }
    }
    const it = p.stream(source(2500) as Iterable<string>, { batchSize: 1000 })[Symbol.asyncIterator]();
    expect(pulled).toBe(0);
    const first = (await it.next()).value as VectorBatch<Dtype>;
    expectSameBatch(first, vectorize(Array.from({ length: 1000 }, (_, i) => `t${i}`)));
    expect(pulled).toBe(1000);
    expect((await it.next()).value.rows).toBe(1000);
    expect((await it.next()).value.rows).toBe(500);
    expect((await it.next()).done).toBe(true);
    expect([pulled, closed]).toEqual([2500, 1]);

    pulled = 0;
    closed = 0;
    for await (const b of p.stream(source(2500) as Iterable<string>, { batchSize: 100 })) {
      expect(b.rows).toBe(100);
      if (pulled === 300) break;
    }
    expect([pulled, closed]).toEqual([300, 1]);

    closed = 0;
    const got: number[] = [];
    const e = await rejection(
      (async () => {
        for await (const b of p.stream(source(50, 25) as Iterable<string>, { batchSize: 10 })) got.push(b.rows);
      })(),
    );
    expectSameError(e, new TypeError('stream item 25 must be a string, got number'));
    expect([got, closed]).toEqual([[10, 10, 5], 1]);

    // A source whose next() throws is not closed again (as for..of does).
    let returns = 0;
    let i = 0;
    const throwing: Iterable<string> = {
      [Symbol.iterator]: () => ({
        next: () => {
          if (i === 25) throw new RangeError('from the source');
          return { value: `t${i++}`, done: false };
        },
        return: () => {
          returns++;
          return { value: undefined, done: true };
        },
      }),
    };
    got.length = 0;
    const e2 = await rejection(
      (async () => {
        for await (const b of p.stream(throwing, { batchSize: 10 })) got.push(b.rows);
      })(),
    );
    expectSameError(e2, new RangeError('from the source'));
    expect([got, returns]).toEqual([[10, 10], 0]);
    // ...while one the consumer leaves early is.
    i = 0;
    for await (const b of p.stream(throwing, { batchSize: 10 })) if (b.rows === 10) break;
    expect(returns).toBe(1);
  });

  it('batches after close() are refused with PipelineClosedError', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const it = p.stream(texts.slice(0, 30), { batchSize: 10 })[Symbol.asyncIterator]();
    expect((await it.next()).value.rows).toBe(10);
    await p.close();
    expect(await rejection(it.next())).toBeInstanceOf(PipelineClosedError);
  });

  it('options.signal: a pending next() rejects at once with the reason while the source stalls; the source is closed; then done', async () => {
    const p = make({ maxWorkers: 1, ...config });
    let returned = 0;
    let i = 0;
    // Three items, then a next() that never settles (a client that went quiet).
    const source: AsyncIterable<string> = {
      [Symbol.asyncIterator]: () => ({
        next: () => (i < 3 ? Promise.resolve({ value: `t${i++}`, done: false }) : new Promise<IteratorResult<string>>(() => {})),
        return: () => {
          returned++;
          return Promise.resolve({ value: undefined, done: true });
        },
      }),
    };
    const c = new AbortController();
    const it = p.stream(source, { batchSize: 2, signal: c.signal })[Symbol.asyncIterator]();
    expectSameBatch((await it.next()).value!, vectorize(['t0', 't1']));
    const pending = it.next(); // takes t2, then waits on the source
    await new Promise((r) => setTimeout(r, 10));
    expect(i).toBe(3);
    const reason = new Error('client gone');
    c.abort(reason);
    expect(await rejection(pending)).toBe(reason);
    expect(returned).toBe(1);
    expect(await it.next()).toEqual({ value: undefined, done: true });

    // An async generator stalled inside its body: return() would wait for it, the caller does not.
    let resumed = false;
    async function* stalled() {
      yield 'a';
      await new Promise(() => {});
      resumed = true;
      yield 'b';
    }
    const c2 = new AbortController();
    const it2 = p.stream(stalled(), { batchSize: 5, signal: c2.signal })[Symbol.asyncIterator]();
    const pending2 = it2.next();
    setTimeout(() => c2.abort(), 10);
    const e = await rejection(pending2);
    expect(e).toBe(c2.signal.reason);
    expect(e.name).toBe('AbortError');
    expect(resumed).toBe(false);
  });

  it('options.signal: aborted while the consumer holds a batch, the next call rejects and the source is closed; pre-aborted, the source is never touched', async () => {
    const p = make({ maxWorkers: 1, ...config });
    let closed = 0;
    function* source() {
      try {
        for (let i = 0; i < 10; i++) yield `t${i}`;
      } finally {
        closed++;
      }
    }
    const c = new AbortController();
    const it = p.stream(source(), { batchSize: 3, signal: c.signal })[Symbol.asyncIterator]();
    expectSameBatch((await it.next()).value!, vectorize(['t0', 't1', 't2']));
    c.abort(new RangeError('stop'));
    expect((await rejection(it.next())).message).toBe('stop');
    expect(closed).toBe(1);
    expect((await it.next()).done).toBe(true);

    let touched = 0;
    const untouched: Iterable<string> = {
      [Symbol.iterator]: () => {
        touched++;
        return ['x'][Symbol.iterator]();
      },
    };
    const reason = new Error('already');
    expect(await rejection(p.stream(untouched, { signal: AbortSignal.abort(reason) })[Symbol.asyncIterator]().next())).toBe(reason);
    expect(touched).toBe(0);
    // Without an abort the signal changes nothing.
    const all = await collect(p.stream(texts.slice(0, 25), { batchSize: 10, signal: new AbortController().signal }));
    expect(all.map((b) => b.rows)).toEqual([10, 10, 5]);
    expectSameBatch(all[2]!, vectorize(texts.slice(20, 25)));
    expectSameError(thrown(() => p.stream([], { signal: 5 as never })), new TypeError('options.signal must be an AbortSignal, got number'));
    expectSameError(thrown(() => p.stream([], { signal: {} as never })), new TypeError('options.signal must be an AbortSignal, got Object'));
  });
});

it('stream(): 2 million lazily generated rows in bounded memory, never pulled ahead', { timeout: 60_000 }, async () => {
  const p = make({ maxWorkers: 1 });
  const N = 2_000_000;
  const B = 1000;
  let pulled = 0;
  async function* source() {
    for (let i = 0; i < N; i++) {
      pulled++;
      yield `row ${i} ${'abcdefghijklmnopqrstuvwxyz'.slice(i % 26)}`;
    }
  }
  const base = await liveMemory();
  const rss0 = process.memoryUsage().rss;
  let rssPeak = 0;
  let peak = 0;
  let batches = 0;
  let rows = 0;
  let tokens = 0;
  for await (const b of p.stream(source(), { batchSize: B, maxLength: 64 })) {
    batches++;
    rows += b.rows;
    expect(pulled).toBe(rows);
    for (let r = 0; r < b.rows; r++) tokens += b.lengths[r]!;
    if (batches % 200 === 0) {
      peak = Math.max(peak, (await liveMemory()) - base);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss - rss0);
    }
    if (batches === 1000) expectSameBatch(b, vectorize(Array.from({ length: B }, (_, r) => `row ${999_000 + r} ${'abcdefghijklmnopqrstuvwxyz'.slice((999_000 + r) % 26)}`), { maxLength: 64 }));
  }
  expect({ batches, rows }).toEqual({ batches: N / B, rows: N });
  let want = 0;
  for (let i = 0; i < N; i++) want += `row ${i} `.length + 26 - (i % 26);
  expect(tokens).toBe(want);
  // All rows kept would be > 80 MB of strings; all batches > 200 MB of ids. The loop holds one batch
  // (measured: < 1 MB live, ~40 MB rss, most of it allocator slack).
  expect(peak, `live memory growth ${(peak / MB).toFixed(1)} MB`).toBeLessThan(24 * MB);
  expect(rssPeak, `rss growth ${(rssPeak / MB).toFixed(1)} MB`).toBeLessThan(160 * MB);
});

// ---------------------------------------------------------------------------------------------

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dtesn-stream-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const enc = new TextEncoder();
let uniq = 0; // distinct file names across the backends
// Decoding the file as a whole: a byte-order mark at its start is not text (TextDecoder's default).
const dec = new TextDecoder('utf-8');

/**
 * The obvious reading of a lines file: decode, split on \n, one trailing \r stripped, no row after
 * a final \n.
 */
function parseLines(bytes: Uint8Array): Array<{ line: number; text: string }> {
  const parts = dec.decode(bytes).split('\n');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts.map((t, i) => ({ line: i + 1, text: t.endsWith('\r') ? t.slice(0, -1) : t }));
}

interface JsonlExpect {
  rows: Array<{ line: number; text: string }>;
  errors: Array<{ line: number; kind: string }>;
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'a boolean';
  if (typeof v === 'string') return 'a string';
  return typeof v;
}

/** The obvious reading of a JSONL file: JSON.parse every non-blank line; the field must be a string. */
function parseJsonl(bytes: Uint8Array, field = 'text'): JsonlExpect {
  const out: JsonlExpect = { rows: [], errors: [] };
  parseLines(bytes).forEach(({ line, text }) => {
    if (/^[ \t\r]*$/.test(text)) return; // JSON's white space only: '\u00a0' or '\u2028' alone is not blank
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      out.errors.push({ line, kind: 'invalid JSON: ' });
      return;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) out.errors.push({ line, kind: `line is ${kindOf(v)}, not an object` });
    else if (!Object.prototype.hasOwnProperty.call(v, field)) out.errors.push({ line, kind: `field '${field}' is missing` });
    else {
      const s = (v as Record<string, unknown>)[field];
      if (typeof s !== 'string') out.errors.push({ line, kind: `field '${field}' is ${kindOf(s)}, not a string` });
      else out.rows.push({ line, text: s });
    }
  });
  return out;
}

function write(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/** Descriptors of this process open on `path` (read from /proc/self/fd: 0 where there is none). */
function descriptorsOn(path: string): number {
  if (!existsSync('/proc/self/fd')) return 0;
  const real = realpathSync(path);
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === real;
    } catch {
      return false; // closed meanwhile (the directory's own descriptor)
    }
  }).length;
}

/** Batches equal vectorize of the expected rows, with their line numbers; returns the batches' rows. */
/**
 * The batches vectorizeFile cuts from rows and skipped lines in file order: a batch ends right
 * after the line that gives it batchSize rows or batchSize skipped lines; what remains is the last.
 */
function cut(rows: Array<{ line: number; text: string }>, skipped: number[], batchSize: number): Array<{ rows: Array<{ line: number; text: string }>; skipped: number[] }> {
  const events = [...rows.map((r) => ({ line: r.line, row: r })), ...skipped.map((line) => ({ line, row: null }))].sort((a, b) => a.line - b.line);
  const out: Array<{ rows: Array<{ line: number; text: string }>; skipped: number[] }> = [];
  let cur: (typeof out)[number] = { rows: [], skipped: [] };
  for (const e of events) {
    if (e.row) cur.rows.push(e.row);
    else cur.skipped.push(e.line);
    if (cur.rows.length === batchSize || cur.skipped.length === batchSize) {
      out.push(cur);
      cur = { rows: [], skipped: [] };
    }
  }
  if (cur.rows.length > 0 || cur.skipped.length > 0) out.push(cur);
  return out;
}

/**
 * Batches equal vectorize of the expected rows, cut as `cut` says (with the lines of the skipped
 * lines, when the file has any), with their line numbers and skipped lines.
 */
function expectRows(batches: Array<FileBatch<Dtype, MaskDtype>>, want: Array<{ line: number; text: string }>, batchSize: number, o: Opts, skipped: number[] = []): void {
  const cuts = cut(want, skipped, batchSize);
  expect(batches.map((b) => b.rows), 'rows per batch').toEqual(cuts.map((c) => c.rows.length));
  batches.forEach((b, k) => {
    const c = cuts[k]!;
    expect(b.skipped.map((x) => x.line), `batch ${k}: skipped lines`).toEqual(c.skipped);
    if (b.rows === 0) return;
    expectSameBatch(b, vectorize(c.rows.map((r) => r.text), o));
    expect(Array.from(b.lines)).toEqual(c.rows.map((r) => r.line));
    expect(b.firstLine).toBe(c.rows[0]!.line);
  });
}

/** Lines with CRLF and LF, blank lines, a lone \r inside a line, unicode and emoji, malformed UTF-8. */
function linesFile(lastNewline: boolean): Uint8Array {
  const lines = makeTexts(31, 40_000, { maxPieces: 15, long: 0.01 }).map((t) => t.replace(/\n/g, ' '));
  lines.splice(3, 0, '', '', 'a\rb', '   ', '😀🇫🇷 é 中文 \u{10FFFF}', 'trailing cr\r');
  const parts: Uint8Array[] = [];
  lines.forEach((l, i) => {
    parts.push(enc.encode(l));
    if (i === 40) parts.push(new Uint8Array([0xff, 0xe2, 0x82, 0x61]));
    if (i < lines.length - 1 || lastNewline) parts.push(enc.encode(i % 3 === 0 ? '\r\n' : '\n'));
  });
  return Buffer.concat(parts);
}

/** JSONL: valid records with escapes, extra fields, blank lines, CRLF, and every kind of malformed line. */
function jsonlFile(lastNewline: boolean, field = 'text'): Uint8Array {
  const texts = makeTexts(32, 15_000, { maxPieces: 12, loneSurrogates: 0.05 });
  const bad = ['oops', '[1, 2]', '42', 'null', '"just a string"', `{"${field}": 5}`, '{"other": "x"}', `{"${field}": "unterminated`, `{"${field}": true}`, `{"${field}": null}`];
  const lines: string[] = [];
  texts.forEach((t, i) => {
    if (i % 17 === 5) lines.push(bad[(i / 17) | 0] ?? 'oops again');
    if (i % 23 === 0) lines.push(i % 2 ? '' : '  \t ');
    const rec = i % 4 === 0 ? { id: i, [field]: t, nested: { [field]: 'not this' } } : { [field]: t };
    // JSON.stringify escapes lone surrogates; \u escapes of pairs are spelled out on some lines.
    let json = JSON.stringify(rec);
    if (i % 5 === 0) json = json.replace(/[\u{10000}-\u{10FFFF}]/gu, (c) => `\\u${c.charCodeAt(0).toString(16)}\\u${c.charCodeAt(1).toString(16)}`);
    lines.push(json);
  });
  lines.push(`{"${field}": "last 😀"}`);
  return enc.encode(lines.map((l, i) => l + (i < lines.length - 1 || lastNewline ? (i % 2 ? '\r\n' : '\n') : '')).join(''));
}

describe.each(BACKENDS)('vectorizeFile() ($name)', ({ config }) => {
  const o: Opts = { encoding: 'canine', maxLength: 24, truncationSide: 'left' };

  it('lines: every row, its line number, for any chunk size (lines split across chunks)', async () => {
    const p = make({ maxWorkers: 1, ...config });
    for (const lastNewline of [false, true]) {
      const bytes = linesFile(lastNewline);
      const path = write(`lines-${lastNewline}.txt`, bytes);
      const want = parseLines(bytes);
      expect(want.length).toBeGreaterThan(1000);
      for (const chunkBytes of [16, 64, 1000, 1 << 20]) {
        const batches = await collect(p.vectorizeFile(path, { format: 'lines', batchSize: 97, chunkBytes, ...o }));
        expectRows(batches, want, 97, o);
        for (const b of batches) expect(b.skipped).toEqual([]);
      }
      // Defaults: batchSize 1000, 1 MiB chunks, default vectorize options.
      expectRows(await collect(p.vectorizeFile(path, { format: 'lines' })), want, 1000, {});
    }
  });

  it('jsonl, onError skip: rows, line numbers, and each malformed line reported once, with the batch it precedes', async () => {
    const p = make({ maxWorkers: 1, ...config });
    for (const [lastNewline, field] of [
      [false, undefined],
      [true, 'body'],
    ] as const) {
      const bytes = jsonlFile(lastNewline, field);
      const path = write(`records-${lastNewline}.jsonl`, bytes);
      const want = parseJsonl(bytes, field);
      expect(want.errors.length).toBeGreaterThanOrEqual(10);
      for (const chunkBytes of [16, 64, 1000, 1 << 20]) {
        const batches = await collect(p.vectorizeFile(path, { format: 'jsonl', batchSize: 50, chunkBytes, ...(field ? { field } : {}), ...o }));
        expectRows(batches, want.rows, 50, o, want.errors.map((e) => e.line));
        const skipped = batches.flatMap((b) => b.skipped);
        expect(skipped.map((s) => s.line)).toEqual(want.errors.map((e) => e.line));
        skipped.forEach((s, i) => {
          const kind = want.errors[i]!.kind;
          if (kind === 'invalid JSON: ') expect(s.message.startsWith(kind), s.message).toBe(true);
          else expect(s.message).toBe(kind);
        });
        // A skipped line is reported with the first batch that comes after it.
        let prev = 0;
        batches.forEach((b, k) => {
          const last = b.rows > 0 ? b.lines[b.rows - 1]! : Number.POSITIVE_INFINITY;
          for (const s of b.skipped) {
            expect(s.line, `chunkBytes ${chunkBytes}, batch ${k}`).toBeGreaterThan(prev);
            if (k < batches.length - 1) expect(s.line, `chunkBytes ${chunkBytes}, batch ${k}`).toBeLessThan(last);
          }
          prev = last;
        });
      }
    }
  });

  it('jsonl: batchSize skipped lines close a batch, full of rows or not: a file of mostly malformed lines is read a batch at a time', async () => {
    const p = make({ maxWorkers: 1, ...config });
    // A wrong field: every line is skipped.
    const lines = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ body: `text ${i}` }));
    const content = enc.encode(lines.join('\n') + '\n');
    const it = p.vectorizeFile(chunksOf(content, [4096]), { format: 'jsonl', batchSize: 100 })[Symbol.asyncIterator]();
    const first = (await it.next()).value as FileBatch;
    expect([first.rows, first.skipped.length, first.skipped[99]!.line]).toEqual([0, 100, 100]);
    expect(first.bytesRead).toBe(lineEnds(content)[100]);
    let n = 1;
    while (!(await it.next()).done) n++;
    expect(n).toBe(10);
    // One row in eleven lines: each batch closes at its fifth skipped line, however the input is cut.
    const mixed = Array.from({ length: 400 }, (_, i) => (i % 11 === 0 ? JSON.stringify({ text: `row ${i}` }) : `{"text": ${i}}`));
    const bytes = enc.encode(mixed.join('\n'));
    const want = parseJsonl(bytes);
    for (const sizes of [[1], [7, 3], [bytes.length]]) {
      const batches = await collect(p.vectorizeFile(chunksOf(bytes, sizes), { format: 'jsonl', batchSize: 5 }));
      expectRows(batches, want.rows, 5, {}, want.errors.map((e) => e.line));
      expect(Math.max(...batches.map((b) => b.skipped.length))).toBe(5);
      expectBytesRead(batches, bytes);
    }
  });

  it("jsonl: a line of white space that is not JSON's (U+00A0, U+2028, U+FEFF, \\v, \\f) is malformed, not blank", async () => {
    const p = make({ maxWorkers: 1, ...config });
    const path = write(`ws-${++uniq}.jsonl`, '{"text":"a"}\n \t\r\n\u000b\n\f\n\u00a0\n\ufeff\n\u2028\n{"text":"b"}\n');
    const batches = await collect(p.vectorizeFile(path, { format: 'jsonl' }));
    expect(batches).toHaveLength(1);
    expect(Array.from(batches[0]!.lines)).toEqual([1, 8]);
    expect(batches[0]!.skipped.map((x) => x.line)).toEqual([3, 4, 5, 6, 7]);
    expectSameBatch(batches[0]!, vectorize(['a', 'b']));
  });

  it('jsonl, onError throw: the rows before the bad line are yielded, then RecordError with its line', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const bytes = jsonlFile(true);
    const path = write('throw.jsonl', bytes);
    const want = parseJsonl(bytes);
    const first = want.errors[0]!.line;
    const before = want.rows.filter((r) => r.line < first);
    expect(before.length).toBeGreaterThan(3);
    for (const chunkBytes of [16, 1 << 20]) {
      const got: Array<FileBatch<Dtype, MaskDtype>> = [];
      const e = await rejection(
        (async () => {
          for await (const b of p.vectorizeFile(path, { format: 'jsonl', onError: 'throw', batchSize: 2, chunkBytes, ...o })) got.push(b);
        })(),
      );
      expect(e).toBeInstanceOf(RecordError);
      expect(e).toBeInstanceOf(SyntaxError);
      expect(e).toMatchObject({ name: 'RecordError', code: 'ERR_DTESN_RECORD', path, line: first });
      expect(e.message.startsWith(`${path}:${first}: `)).toBe(true);
      expectRows(got, before, 2, o);
    }
  });

  it('a file with nothing but malformed and blank lines: one empty batch carrying them', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const path = write('bad-only.jsonl', '\n{"a": 1}\n  \n[]\n');
    const batches = await collect(p.vectorizeFile(path, { format: 'jsonl' }));
    expect(batches).toHaveLength(1);
    expect(batches[0]).toMatchObject({ rows: 0, firstLine: 0 });
    expect(batches[0]!.skipped).toEqual([
      { line: 2, message: "field 'text' is missing" },
      { line: 4, message: 'line is an array, not an object' },
    ]);
    expect(await collect(p.vectorizeFile(write('empty.txt', ''), { format: 'lines' }))).toEqual([]);
  });

  it('a byte-order mark at the start of the file is skipped; one inside a row is text', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const bom = '\uFEFF';
    const lines = write('bom.txt', `${bom}first\r\n${bom}second\nthird`);
    const jsonl = write('bom.jsonl', `${bom}{"text": "first"}\n{"text": "${bom}second"}\n`);
    for (const chunkBytes of [16, 1 << 20]) {
      const a = await collect(p.vectorizeFile(lines, { format: 'lines', chunkBytes, ...o }));
      expectRows(a, [{ line: 1, text: 'first' }, { line: 2, text: `${bom}second` }, { line: 3, text: 'third' }], 1000, o);
      const b = await collect(p.vectorizeFile(jsonl, { format: 'jsonl', chunkBytes, ...o }));
      expectRows(b, [{ line: 1, text: 'first' }, { line: 2, text: `${bom}second` }], 1000, o);
      expect(b[0]!.skipped).toEqual([]);
    }
    expect(parseLines(enc.encode(`${bom}first\r\n${bom}second\nthird`)).map((r) => r.text)).toEqual(['first', `${bom}second`, 'third']);
    expect(await collect(p.vectorizeFile(write('bom-only.txt', bom), { format: 'lines' }))).toEqual([]);
    expectRows(await collect(p.vectorizeFile(write('short.txt', 'a\n'), { format: 'lines' })), [{ line: 1, text: 'a' }], 1000, {});
  });

  it('a row the options refuse (invalid UTF-8 with invalid: error, an id past the dtype) is named by its file and line', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const path = write(`refused-${++uniq}.txt`, Buffer.concat([enc.encode('ok\nok\nok\nx'), new Uint8Array([0xff]), enc.encode('\nok \u0101\n')]));
    const batches: FileBatch[] = [];
    const e = await rejection((async () => {
      for await (const b of p.vectorizeFile(path, { format: 'lines', batchSize: 2, invalid: 'error' })) batches.push(b);
    })());
    expect(batches.map((b) => b.rows)).toEqual([2]);
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toBe(`${path}:4: the line is not valid UTF-8 at byte 1 (options.invalid is 'error')`);
    expect(e).toMatchObject({ path, line: 4 });
    expect((e.cause as Error).message).toBe("row 1 is not valid UTF-8 at byte 1 (options.invalid is 'error')");
    const e2 = await rejection(collect(p.vectorizeFile(path, { format: 'lines', batchSize: 2, dtype: 'uint8' })));
    expect(e2).toBeInstanceOf(RangeError);
    // invalid: 'replace' (the default): line 4's bad byte is U+FFFD, the first id past uint8.
    expect(e2.message).toBe(`${path}:4: id 65533 does not fit dtype 'uint8' (max 255)`);
  });

  it('a missing file rejects with ENOENT on the first read', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const it = p.vectorizeFile(join(dir, 'does-not-exist.txt'), { format: 'lines' });
    const e = await rejection(collect(it));
    expect(e).toMatchObject({ code: 'ENOENT' });
  });

  it('a pipe named by a path (a FIFO): leaving the loop while a read waits for data returns at once; the pipe is closed when the writer ends', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const fifo = join(dir, `fifo-${++uniq}`);
    execFileSync('mkfifo', [fifo]);
    const it = p.vectorizeFile(fifo, { format: 'lines', batchSize: 10 })[Symbol.asyncIterator]();
    const first = it.next(); // opening the FIFO to read waits for a writer
    const w = await open(fifo, 'w');
    await w.write(Array.from({ length: 30 }, (_, i) => `row ${i}\n`).join(''));
    const b = (await first).value as FileBatch;
    expect([b.rows, b.firstLine]).toEqual([10, 1]);
    expectSameBatch(b, vectorize(Array.from({ length: 10 }, (_, i) => `row ${i}`)));
    // The next chunk's read is waiting on the quiet pipe: return() must not wait for it.
    expect(await it.return!()).toEqual({ value: undefined, done: true });
    await w.close(); // the read ends (end of input), then the reader's handle closes
    for (let k = 0; k < 100 && descriptorsOn(fifo) > 0; k++) await new Promise((r) => setTimeout(r, 5));
    expect(descriptorsOn(fifo)).toBe(0);
  });

  it('options.signal: a file aborted between batches: the next call rejects, the file is closed; a live signal changes nothing', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const path = write('abort.txt', Array.from({ length: 50 }, (_, i) => `line ${i}`).join('\n'));
    const openOn = () => descriptorsOn(path);
    const c = new AbortController();
    const it = p.vectorizeFile(path, { format: 'lines', batchSize: 10, chunkBytes: 64, signal: c.signal })[Symbol.asyncIterator]();
    const first = (await it.next()).value as FileBatch;
    expect([first.rows, first.firstLine]).toEqual([10, 1]);
    if (existsSync('/proc/self/fd')) expect(openOn()).toBe(1);
    c.abort(new Error('stop'));
    expect((await rejection(it.next())).message).toBe('stop');
    expect((await it.next()).done).toBe(true);
    for (let k = 0; k < 50 && openOn() > 0; k++) await new Promise((r) => setTimeout(r, 2));
    expect(openOn(), 'the file is closed once its read in flight has finished').toBe(0);
    const all = await collect(p.vectorizeFile(path, { format: 'lines', batchSize: 10, signal: new AbortController().signal }));
    expect(all.map((b) => b.rows)).toEqual([10, 10, 10, 10, 10]);
    expectSameError(thrown(() => p.vectorizeFile(path, { format: 'lines', signal: 'now' as never })), new TypeError('options.signal must be an AbortSignal, got string'));
  });

  it('bad options are refused when vectorizeFile() is called, naming the option', () => {
    const p = make({ maxWorkers: 1, ...config });
    const path = join(dir, 'x.txt');
    const cases: Array<[unknown, unknown, ErrorConstructor, string | RegExp]> = [
      ['', { format: 'lines' }, TypeError, 'path must be a non-empty string, got string'],
      [42, { format: 'lines' }, TypeError, 'source must be a file path, a readable stream or an async iterable of Uint8Array, got number'],
      [{}, { format: 'lines' }, TypeError, 'source must be a file path, a readable stream or an async iterable of Uint8Array, got Object'],
      [path, undefined, TypeError, "options.format is required: 'lines' or 'jsonl'"],
      [path, {}, TypeError, 'options.format must be one of \'lines\', \'jsonl\', got undefined'],
      [path, { format: 'csv' }, TypeError, "options.format must be one of 'lines', 'jsonl', got 'csv'"],
      [path, { format: 'lines', field: 'text' }, TypeError, "options.field is only valid with format 'jsonl'"],
      [path, { format: 'jsonl', field: '' }, TypeError, /^options\.field must be a non-empty string/],
      [path, { format: 'jsonl', onError: 'ignore' }, TypeError, /^options\.onError must be one of 'skip', 'throw'/],
      [path, { format: 'lines', batchSize: 0 }, RangeError, 'options.batchSize must be an integer in [1, 16777216], got 0'],
      [path, { format: 'lines', chunkBytes: 8 }, RangeError, 'options.chunkBytes must be an integer in [16, 1073741824], got 8'],
      [path, { format: 'lines', chunkBytes: 64.5 }, RangeError, 'options.chunkBytes must be an integer in [16, 1073741824], got 64.5'],
      [path, { format: 'lines', maxLength: 0 }, RangeError, 'options.maxLength must be an integer >= 1, got 0'],
      [path, { format: 'lines', foo: 1 }, TypeError, "unknown option 'foo'"],
      [path, { format: 'lines', out: { ids: new Int32Array(1) } }, TypeError, 'options.out is not supported for streams: pass reuseBuffers: true to write every batch into one reused output'],
    ];
    for (const [p1, opts, E, m] of cases) {
      const e = thrown(() => p.vectorizeFile(p1 as string, opts as FileOptions));
      expect(e.constructor, String(m)).toBe(E);
      if (typeof m === 'string') expect(e.message).toBe(m);
      else expect(e.message).toMatch(m);
    }
  });
});

/** `bytes` as a stream of chunks of the given sizes (cycled), each a copy. */
async function* chunksOf(bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  for (let at = 0, k = 0; at < bytes.length; k++) {
    const n = sizes[k % sizes.length]!;
    yield bytes.slice(at, at + n);
    at += n;
  }
}

/** ends[L] = the input offset just after line L (1-based): after its '\n', or the end of the input. */
function lineEnds(bytes: Uint8Array): number[] {
  const ends = [0];
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x0a) ends.push(i + 1);
  if (ends[ends.length - 1] !== bytes.length) ends.push(bytes.length);
  return ends;
}

/** bytesRead is the end of each batch's last row's line, and the input's size for the last batch. */
function expectBytesRead(batches: Array<FileBatch<Dtype, MaskDtype>>, bytes: Uint8Array): void {
  const ends = lineEnds(bytes);
  batches.forEach((b, k) => {
    if (k === batches.length - 1) expect(b.bytesRead, 'last batch').toBe(bytes.length);
    else {
      // A full batch ends with the line that filled it: its last row, or its last skipped line.
      const last = Math.max(b.rows > 0 ? b.lines[b.rows - 1]! : 0, ...b.skipped.map((x) => x.line));
      expect(b.bytesRead, `batch ${k}`).toBe(ends[last]);
    }
  });
}

/** Everything a consumer sees of a batch, to compare two runs. */
function seen(b: FileBatch<Dtype, MaskDtype>): object {
  return { ...b, ids: Array.from(b.ids as ArrayLike<number>), attentionMask: Array.from(b.attentionMask as ArrayLike<number>), lengths: Array.from(b.lengths), sourceLengths: Array.from(b.sourceLengths), lines: Array.from(b.lines) };
}

describe.each(BACKENDS)('vectorizeFile() from a stream ($name)', ({ config }) => {
  const o: Opts = { encoding: 'canine', maxLength: 24, truncationSide: 'left' };
  const bom = enc.encode('\uFEFF');

  it('gives what the file gives, bytesRead included, however the stream is cut (characters, CRLF, lines, the BOM split)', async () => {
    const p = make({ maxWorkers: 1, ...config });
    for (const [format, content] of [
      ['lines', linesFile(false)],
      ['jsonl', jsonlFile(true)],
      ['jsonl', Buffer.concat([bom, jsonlFile(false)])],
      ['lines', Buffer.concat([bom, linesFile(true)])],
    ] as const) {
      const path = write(`stream-${format}.txt`, content);
      const opts: FileOptions<Dtype, MaskDtype> = { format, batchSize: 61, ...o };
      const want = await collect(p.vectorizeFile(path, opts));
      expectBytesRead(want, content);
      if (format === 'lines') expectRows(want, parseLines(content), 61, o);
      else expectRows(want, parseJsonl(content).rows, 61, o, parseJsonl(content).errors.map((e) => e.line));
      const sources: Array<[string, () => AsyncIterable<Uint8Array> | NodeJS.ReadableStream]> = [
        ['1-byte chunks', () => chunksOf(content, [1])],
        ['2, 3, 5, 7', () => chunksOf(content, [2, 3, 5, 7])],
        ['4 KiB', () => chunksOf(content, [4096])],
        ['fs stream, highWaterMark 17', () => createReadStream(path, { highWaterMark: 17 })],
        ['fs stream', () => createReadStream(path)],
      ];
      for (const [how, source] of sources) {
        const got = await collect(p.vectorizeFile(source(), opts));
        expect(got.map(seen), `${format}, ${how}`).toEqual(want.map(seen));
      }
    }
  });

  it('bytesRead at the edges: a full last batch before blank lines, an empty batch carrying the last skipped lines, a BOM', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const run = (text: string, batchSize: number) => collect(p.vectorizeFile(chunksOf(enc.encode(text), [3]), { format: 'jsonl', batchSize }));
    const blankAfter = await run('{"text":"a"}\n\n \n', 1);
    expect(blankAfter.map((b) => [b.rows, b.bytesRead])).toEqual([[1, 13]]);
    const badAfter = await run('{"text":"a"}\n[1]\n\n', 1);
    expect(badAfter.map((b) => [b.rows, b.bytesRead, b.skipped.map((x) => x.line)])).toEqual([
      [1, 13, []],
      [0, 17, [2]], // full with one skipped line: the blank line after it makes no batch
    ]);
    const badLast = await run('{"text":"a"}\n[1]\n\n', 2);
    expect(badLast.map((b) => [b.rows, b.bytesRead, b.skipped.map((x) => x.line)])).toEqual([[1, 18, [2]]]);
    const partial = await run('\uFEFF{"text":"a"}\r\n\n', 2);
    expect(partial.map((b) => [b.rows, b.bytesRead])).toEqual([[1, 18]]);
  });

  it('equals the core on many option sets, skipped lines and their numbers included', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const content = jsonlFile(true, 'body');
    const want = parseJsonl(content, 'body');
    const sets: Opts[] = [
      {},
      { encoding: 'utf8', maxLength: 7, padding: 'max-length' },
      { encoding: 'byt5', maxLength: 40, padToMultipleOf: 8, paddingSide: 'left' },
      { encoding: 'canine', maxLength: 3, truncationSide: 'left', addSpecialTokens: false },
      { encoding: 'codepoint', vocab: ['a', 'b', 'é', '😀'], maxLength: 30, dtype: 'uint16', padId: 9 },
      { encoding: 'utf8', dtype: 'uint8', maxLength: 64, padding: 'max-length' },
      { encoding: 'codepoint', dtype: 'float32', maxLength: 50 },
      { encoding: 'byt5', dtype: 'int64', maskDtype: 'int64', maxLength: 40, padId: -1 },
      { dtype: 'int64', maskDtype: 'int32', maxLength: 30, padId: 2n ** 60n, paddingSide: 'left' },
    ];
    for (const v of sets) {
      for (const batchSize of [1, 33, 1000]) {
        const batches = await collect(p.vectorizeFile(chunksOf(content, [1000, 3]), { format: 'jsonl', field: 'body', batchSize, ...v }));
        expectRows(batches, want.rows, batchSize, v, want.errors.map((e) => e.line));
        expect(batches.flatMap((b) => b.skipped.map((s) => s.line))).toEqual(want.errors.map((e) => e.line));
        expectBytesRead(batches, content);
      }
    }
  });

  it("onError 'throw': the rows before the bad line, the last batch ending where that line starts, then RecordError naming the stream", async () => {
    const p = make({ maxWorkers: 1, ...config });
    const content = jsonlFile(true);
    const path = write('stream-throw.jsonl', content);
    const want = parseJsonl(content);
    const first = want.errors[0]!.line;
    for (const [source, name] of [
      [() => chunksOf(content, [5]), '<stream>'],
      [() => createReadStream(path, { highWaterMark: 100 }), path],
      [() => path, path],
    ] as const) {
      const got: Array<FileBatch<Dtype, MaskDtype>> = [];
      const e = await rejection(
        (async () => {
          for await (const b of p.vectorizeFile(source(), { format: 'jsonl', onError: 'throw', batchSize: 2, ...o })) got.push(b);
        })(),
      );
      expect(e).toMatchObject({ name: 'RecordError', path: name, line: first });
      expect(e.message.startsWith(`${name}:${first}: `)).toBe(true);
      expectRows(got, want.rows.filter((r) => r.line < first), 2, o);
      const ends = lineEnds(content);
      expect(got[got.length - 1]!.bytesRead).toBe(ends[first - 1]);
      got.slice(0, -1).forEach((b) => expect(b.bytesRead).toBe(ends[b.lines[b.rows - 1]!]));
    }
  });

  it('a chunk that is not bytes is a TypeError naming it (a stream with an encoding set gives strings)', async () => {
    const p = make({ maxWorkers: 1, ...config });
    async function* mixed() {
      yield enc.encode('a\nb\n');
      yield 'c\n' as unknown as Uint8Array;
    }
    const got: FileBatch[] = [];
    const e = await rejection(
      (async () => {
        for await (const b of p.vectorizeFile(mixed(), { format: 'lines', batchSize: 1 })) got.push(b);
      })(),
    );
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toBe('stream chunk 1 must be a Uint8Array, got a string (a stream with an encoding set?)');
    expect(got.map((b) => b.rows)).toEqual([1, 1]);
    const s = createReadStream(write('enc.txt', 'x\n'), { encoding: 'utf8' });
    expect((await rejection(collect(p.vectorizeFile(s, { format: 'lines' })))).message).toBe('stream chunk 0 must be a Uint8Array, got a string (a stream with an encoding set?)');
    expect(s.destroyed, 'the stream is closed (its file too)').toBe(true);
    let closed = false;
    async function* numbers() {
      try {
        yield 42 as unknown as Uint8Array;
        yield new Uint8Array(1);
      } finally {
        closed = true;
      }
    }
    expect((await rejection(collect(p.vectorizeFile(numbers(), { format: 'lines' })))).message).toBe('stream chunk 0 must be a Uint8Array, got number');
    expect(closed, 'the source is returned').toBe(true);
  });

  it('backpressure: chunks are pulled only as the consumer asks; breaking out ends the stream', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const line = enc.encode('0123456789abcdef\n'); // 17 bytes
    let pulled = 0;
    let finished = false;
    async function* source() {
      try {
        for (let i = 0; i < 1000; i++) {
          pulled++;
          yield Buffer.concat(Array.from({ length: 10 }, () => line)); // 10 rows per chunk
        }
      } finally {
        finished = true;
      }
    }
    const it = p.vectorizeFile(source(), { format: 'lines', batchSize: 25 })[Symbol.asyncIterator]();
    expect(pulled).toBe(0);
    const first = (await it.next()).value as FileBatch;
    expect(first.rows).toBe(25);
    expect(first.bytesRead).toBe(25 * 17);
    expect(pulled).toBe(3);
    await new Promise((r) => setTimeout(r, 20));
    expect(pulled, 'nothing pulled while the consumer holds').toBe(3);
    expect(((await it.next()).value as FileBatch).firstLine).toBe(26);
    expect(pulled).toBe(5);
    await it.return!();
    expect(finished).toBe(true);
  });

  it('a Node.js stream is read a few chunks ahead at most, and destroyed when the consumer breaks out', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const line = enc.encode('0123456789abcdef\n');
    let pushed = 0;
    const stream = new Readable({
      highWaterMark: 1,
      read() {
        pushed++;
        this.push(Buffer.concat(Array.from({ length: 10 }, () => line))); // 10 rows per chunk
      },
    });
    let batches = 0;
    for await (const b of p.vectorizeFile(stream, { format: 'lines', batchSize: 25 })) {
      expect(b.firstLine).toBe(batches * 25 + 1);
      batches++;
      // Rows delivered so far need ceil(25 * batches / 10) chunks: the reader's one chunk ahead
      // and the stream's own buffering add a few, never more as the stream goes on.
      expect(pushed).toBeLessThanOrEqual(Math.ceil((25 * batches) / 10) + 4);
      await new Promise((r) => setTimeout(r, 5));
      if (batches === 4) break;
    }
    expect(stream.destroyed).toBe(true);
    const settled = pushed;
    await new Promise((r) => setTimeout(r, 20));
    expect(pushed).toBe(settled);
  });

  it('leaving the loop while a quiet stream has a read pending returns at once (the stream destroyed)', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const s = new PassThrough();
    s.write(Array.from({ length: 30 }, (_, i) => `row ${i}\n`).join('')); // then nothing, never ended
    let batches = 0;
    for await (const b of p.vectorizeFile(s, { format: 'lines', batchSize: 10 })) {
      expect(b.firstLine).toBe(1);
      batches++;
      break; // a read of the next chunk is pending on the quiet stream
    }
    expect(batches).toBe(1);
    expect(s.destroyed).toBe(true);
  });

  it('options.signal: a read waiting for data is cut short (the stream destroyed, without an error), then done', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const s = new PassThrough();
    let errors = 0;
    s.on('error', () => errors++);
    s.write('a\nb\n'); // two rows, then nothing: the reader waits for the rest
    const c = new AbortController();
    const it = p.vectorizeFile(s, { format: 'lines', batchSize: 10, signal: c.signal })[Symbol.asyncIterator]();
    const pending = it.next();
    await new Promise((r) => setTimeout(r, 20));
    const reason = new Error('client gone');
    c.abort(reason);
    expect(await rejection(pending)).toBe(reason);
    expect(s.destroyed).toBe(true);
    expect(await it.next()).toEqual({ value: undefined, done: true });
    await new Promise((r) => setImmediate(r));
    expect(errors).toBe(0);
    // Pre-aborted: the stream is not touched.
    const s2 = new PassThrough();
    s2.end('x\n');
    const e = await rejection(p.vectorizeFile(s2, { format: 'lines', signal: AbortSignal.abort() })[Symbol.asyncIterator]().next());
    expect(e.name).toBe('AbortError');
    expect(s2.destroyed).toBe(false);
    expect(s2.read()?.toString()).toBe('x\n');
  });

});

it('vectorizeFile(): batches large enough for the pool read the shared row buffer in place, equal to the core', async () => {
  const p = make({ maxWorkers: 2 });
  (p as unknown as Record<symbol, string>)[ROUTE] = 'pool';
  const lines = makeTexts(41, 700_000, { maxPieces: 60, long: 0.01 }).map((t) => t.replace(/\n/g, ' '));
  const path = write('pool.txt', lines.join('\n'));
  const batches = await collect(p.vectorizeFile(path, { format: 'lines', batchSize: 4000, chunkBytes: 100_000 }));
  const want = parseLines(enc.encode(lines.join('\n')));
  expectRows(batches, want, 4000, {});
  expect(p.metrics().batches.pool).toBeGreaterThan(0);
});

it('close() while a stream or file batch runs on the pool: that batch is delivered whole, the next one is refused', async () => {
  const lines = makeTexts(44, 600_000, { maxPieces: 60, long: 0.01 }).map((t) => t.replace(/\n/g, ' '));
  const half = Math.ceil(lines.length / 2);
  const path = write('close.txt', lines.join('\n'));
  for (const kind of ['stream', 'file'] as const) {
    const p = make({ maxWorkers: 2 });
    (p as unknown as Record<symbol, string>)[ROUTE] = 'pool';
    const batches: AsyncIterable<VectorBatch<Dtype>> =
      kind === 'stream' ? p.stream(lines, { batchSize: half }) : p.vectorizeFile(path, { format: 'lines', batchSize: half });
    const it = batches[Symbol.asyncIterator]();
    const first = it.next();
    while (p.metrics().pool!.busy === 0) await new Promise((r) => setImmediate(r)); // its shards are on the pool
    const closing = p.close();
    expectSameBatch((await first).value!, vectorize(lines.slice(0, half)));
    expect(await rejection(it.next()), kind).toBeInstanceOf(PipelineClosedError);
    await closing;
    expect(p.metrics().batches.pool, kind).toBe(1);
  }
});

it('vectorizeFile(): a 64 MB file in bounded memory', { timeout: 60_000 }, async () => {
  const p = make({ maxWorkers: 1 });
  const path = join(dir, 'big.txt');
  // 1M lines of 63 bytes + '\n' = 64 MiB, written in 1 MiB pieces; line i is a function of i.
  const N = 1 << 20;
  const lineOf = (i: number) => `${String(i).padStart(8, '0')} ${'é😀'.repeat(i % 7)}${'x'.repeat(54 - (i % 7) * 6)}`;
  const fd = openSync(path, 'w');
  try {
    let buf = '';
    for (let i = 0; i < N; i++) {
      buf += lineOf(i) + '\n';
      if (buf.length >= MB) {
        writeSync(fd, buf);
        buf = '';
      }
    }
    writeSync(fd, buf);
  } finally {
    closeSync(fd);
  }
  expect(enc.encode(lineOf(6) + '\n').length).toBe(64);
  const base = await liveMemory();
  const rss0 = process.memoryUsage().rss;
  let rssPeak = 0;
  let peak = 0;
  let rows = 0;
  let batches = 0;
  let lastLine = 0;
  for await (const b of p.vectorizeFile(path, { format: 'lines', batchSize: 2048, encoding: 'utf8', maxLength: 64 })) {
    expect(b.firstLine).toBe(lastLine + 1);
    lastLine = b.lines[b.rows - 1]!;
    let short = 0;
    for (let r = 0; r < b.rows; r++) if (b.lengths[r] !== 63) short++;
    expect(short).toBe(0);
    rows += b.rows;
    batches++;
    if (batches % 64 === 0) {
      peak = Math.max(peak, (await liveMemory()) - base);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss - rss0);
    }
    if (batches === 300) {
      const texts = Array.from({ length: b.rows }, (_, r) => lineOf(b.firstLine - 1 + r));
      expectSameBatch(b, vectorize(texts, { encoding: 'utf8', maxLength: 64 }));
    }
  }
  expect({ rows, batches, lastLine }).toEqual({ rows: N, batches: N / 2048, lastLine: N });
  // Keeping the file's rows would be 64 MB, its batches 320 MB; the reader holds a chunk and a batch
  // (measured: ~3 MB live, ~45 MB rss).
  expect(peak, `live memory growth ${(peak / MB).toFixed(1)} MB`).toBeLessThan(24 * MB);
  expect(rssPeak, `rss growth ${(rssPeak / MB).toFixed(1)} MB`).toBeLessThan(160 * MB);
  rmSync(path);
});

it('vectorizeFile(): a JSONL stream through the pool (batches past the pool minimum) equals the core, skipped lines included', async () => {
  const p = make({ maxWorkers: 2 });
  (p as unknown as Record<symbol, string>)[ROUTE] = 'pool';
  const texts = makeTexts(43, 900_000, { maxPieces: 60, long: 0.01 });
  const lines = texts.map((t, i) => (i % 500 === 7 ? `{"text": ${i}}` : JSON.stringify({ id: i, text: t })));
  const content = enc.encode(lines.join('\r\n') + '\n');
  const want = parseJsonl(content);
  expect(want.errors.length).toBeGreaterThan(5);
  const batches = await collect(p.vectorizeFile(chunksOf(content, [65536, 1]), { format: 'jsonl', batchSize: 3000 }));
  expectRows(batches, want.rows, 3000, {}, want.errors.map((e) => e.line));
  expect(batches.flatMap((b) => b.skipped.map((s) => s.line))).toEqual(want.errors.map((e) => e.line));
  expectBytesRead(batches, content);
  expect(p.metrics().batches.pool).toBeGreaterThan(0);
});

it('vectorizeFile(): a 64 MB byte stream (generated as it is pulled) in bounded memory', { timeout: 60_000 }, async () => {
  const p = make({ maxWorkers: 1 });
  const N = 1 << 20;
  const lineOf = (i: number) => `{"text":"${String(i).padStart(8, '0')} ${'é'.repeat(i % 5)}${'x'.repeat(43 - (i % 5) * 2)}"}`;
  let pulled = 0;
  async function* source() {
    for (let i = 0; i < N; i += 4096) {
      let s = '';
      for (let k = i; k < i + 4096; k++) s += lineOf(k) + '\n';
      pulled += 4096;
      yield enc.encode(s);
    }
  }
  expect(enc.encode(lineOf(3) + '\n').length).toBe(64);
  const base = await liveMemory();
  const rss0 = process.memoryUsage().rss;
  let peak = 0;
  let rssPeak = 0;
  let rows = 0;
  let batches = 0;
  for await (const b of p.vectorizeFile(source(), { format: 'jsonl', batchSize: 2048, encoding: 'utf8', maxLength: 64 })) {
    rows += b.rows;
    batches++;
    expect(b.bytesRead).toBe(rows * 64);
    expect(pulled - rows, 'read ahead').toBeLessThanOrEqual(2 * 4096);
    if (batches % 64 === 0) {
      peak = Math.max(peak, (await liveMemory()) - base);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss - rss0);
    }
    if (batches === 300) {
      const texts = Array.from({ length: b.rows }, (_, r) => JSON.parse(lineOf(b.firstLine - 1 + r)).text as string);
      expectSameBatch(b, vectorize(texts, { encoding: 'utf8', maxLength: 64 }));
    }
  }
  expect({ rows, batches }).toEqual({ rows: N, batches: N / 2048 });
  // The stream is 64 MB, its batches 160 MB: the reader holds a read buffer, a pulled chunk and a batch.
  expect(peak, `live memory growth ${(peak / MB).toFixed(1)} MB`).toBeLessThan(24 * MB);
  expect(rssPeak, `rss growth ${(rssPeak / MB).toFixed(1)} MB`).toBeLessThan(160 * MB);
});

// ---------------------------------------------------------------------------------------------

/** A batch's own copy (its arrays sliced out of whatever memory they view). */
function copyBatch<B extends VectorBatch<Dtype, MaskDtype>>(b: B): B {
  return { ...b, ids: b.ids.slice(), attentionMask: b.attentionMask.slice(), lengths: b.lengths.slice(), sourceLengths: b.sourceLengths.slice() };
}

/** Every batch, copied while it is current, and the ArrayBuffers its ids and mask viewed. */
async function collectReused<B extends VectorBatch<Dtype, MaskDtype>>(it: AsyncIterable<B>): Promise<{ batches: B[]; buffers: Set<ArrayBufferLike> }> {
  const batches: B[] = [];
  const buffers = new Set<ArrayBufferLike>();
  for await (const b of it) {
    buffers.add(b.ids.buffer).add(b.attentionMask.buffer);
    expect(b.ids.length, 'ids: a view of rows x width elements').toBe(b.rows * b.width);
    expect(b.attentionMask.length).toBe(b.rows * b.width);
    batches.push(copyBatch(b));
  }
  return { batches, buffers };
}

describe.each(BACKENDS)('reuseBuffers ($name)', ({ config }) => {
  const texts = makeTexts(41, 120_000, { loneSurrogates: 0.05, maxPieces: 12 });
  const optionSets: Opts[] = [
    { encoding: 'canine', maxLength: 24, truncationSide: 'left' },
    { encoding: 'byt5', maxLength: 40, padToMultipleOf: 16, paddingSide: 'left', dtype: 'int16' },
    { maxLength: 33, padding: 'max-length', dtype: 'float32', padId: -1 },
    { encoding: 'byt5', maxLength: 40, dtype: 'int64', maskDtype: 'int64', padId: -(2n ** 40n), paddingSide: 'left' },
    { maxLength: 30, dtype: 'int64', maskDtype: 'int32' },
  ];

  it('stream(): every batch is written into one shared memory, and equals vectorize(its rows) while it is current', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const rows = texts.slice(0, 2300);
    for (const o of optionSets) {
      async function* lazy() {
        for (const t of rows) yield t;
      }
      for (const source of [rows, lazy()]) {
        const { batches, buffers } = await collectReused(p.stream(source, { ...o, batchSize: 500, reuseBuffers: true }));
        expect(batches.map((b) => b.rows)).toEqual([500, 500, 500, 500, 300]);
        batches.forEach((b, k) => expectSameBatch(b, vectorize(rows.slice(k * 500, (k + 1) * 500), o)));
        expect(buffers.size, 'one buffer for the ids and one for the mask').toBe(2);
        for (const buf of buffers) expect(buf).toBeInstanceOf(SharedArrayBuffer);
      }
      // Without it, every batch has arrays of its own.
      const fresh = await collectReused(p.stream(rows, { ...o, batchSize: 500 }));
      expect(fresh.buffers.size).toBeGreaterThan(2);
    }
  });

  it('vectorizeFile(): same, for lines and JSONL (skipped lines and line numbers as without it), whatever the chunk size', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const bytes = jsonlFile(true);
    const path = write(`reuse-${uniq++}.jsonl`, bytes);
    const want = parseJsonl(bytes);
    const lpath = write(`reuse-${uniq++}.txt`, linesFile(true));
    const lwant = parseLines(linesFile(true));
    for (const o of optionSets) {
      for (const chunkBytes of [64, 1 << 20]) {
        const j = await collectReused(p.vectorizeFile(path, { format: 'jsonl', batchSize: 70, chunkBytes, reuseBuffers: true, ...o }));
        expectRows(j.batches, want.rows, 70, o, want.errors.map((e) => e.line));
        expect(j.buffers.size).toBe(2);
        const l = await collectReused(p.vectorizeFile(lpath, { format: 'lines', batchSize: 333, chunkBytes, reuseBuffers: true, ...o }));
        expectRows(l.batches, lwant, 333, o);
        expect(l.buffers.size).toBe(2);
      }
    }
  });

  it("the memory is sized from the options with the pipeline's defaults applied (rows wider than the default maxLength)", async () => {
    const p = make({ maxWorkers: 1, ...config, vectorize: { maxLength: 2000, dtype: 'uint16' } });
    const long = Array.from({ length: 40 }, (_, i) => 'x'.repeat(1500 + i) + String(i));
    const { batches, buffers } = await collectReused(p.stream(long, { batchSize: 16, reuseBuffers: true }));
    expect(batches.map((b) => b.width)).toEqual([1517, 1533, 1541]);
    batches.forEach((b, k) => expectSameBatch(b, vectorize(long.slice(k * 16, (k + 1) * 16), { maxLength: 2000, dtype: 'uint16' })));
    expect(buffers.size).toBe(2);
    const path = write(`reuse-${uniq++}.txt`, long.join('\n'));
    const f = await collectReused(p.vectorizeFile(path, { format: 'lines', batchSize: 16, reuseBuffers: true }));
    f.batches.forEach((b, k) => expectSameBatch(b, vectorize(long.slice(k * 16, (k + 1) * 16), { maxLength: 2000, dtype: 'uint16' })));
    expect(f.buffers.size).toBe(2);
  });

  it('over REUSE_MAX_BYTES (batchSize x maxLength ids and mask) the option has no effect: every batch has fresh arrays, the last small one too', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const rows = texts.slice(0, 250);
    const batchSize = 100;
    // Just over the bound with int32 ids: batchSize x maxLength x 5 bytes > REUSE_MAX_BYTES.
    const o: Opts = { maxLength: Math.floor(REUSE_MAX_BYTES / (5 * batchSize)) + 1 };
    const { batches, buffers } = await collectReused(p.stream(rows, { ...o, batchSize, reuseBuffers: true }));
    expect(batches.map((b) => b.rows)).toEqual([100, 100, 50]);
    batches.forEach((b, k) => expectSameBatch(b, vectorize(rows.slice(k * batchSize, (k + 1) * batchSize), o)));
    expect(buffers.size).toBeGreaterThanOrEqual(3);
    for (const buf of buffers) expect(buf).not.toBeInstanceOf(SharedArrayBuffer);
    // One under it: the shared memory, batchSize x maxLength elements, made once.
    const under: Opts = { maxLength: Math.floor(REUSE_MAX_BYTES / (5 * batchSize)) };
    const u = await collectReused(p.stream(rows, { ...under, batchSize, reuseBuffers: true }));
    expect(u.buffers.size).toBe(2);
    for (const buf of u.buffers) expect(buf).toBeInstanceOf(SharedArrayBuffer);
    expect([...u.buffers].map((b) => b.byteLength).sort((a, b) => a - b)).toEqual([batchSize * under.maxLength!, 4 * batchSize * under.maxLength!]);
    u.batches.forEach((b, k) => expectSameBatch(b, vectorize(rows.slice(k * batchSize, (k + 1) * batchSize), under)));
  });

  it('reuseBuffers must be a boolean', () => {
    const p = make({ maxWorkers: 1, ...config });
    const path = write(`reuse-${uniq++}.txt`, 'a\n');
    expect(thrown(() => p.stream(['a'], { reuseBuffers: 1 as unknown as boolean }))).toEqual(new TypeError('options.reuseBuffers must be a boolean, got number'));
    expect(thrown(() => p.vectorizeFile(path, { format: 'lines', reuseBuffers: 'yes' as unknown as boolean }))).toEqual(
      new TypeError('options.reuseBuffers must be a boolean, got string'),
    );
  });
});

it('reuseBuffers: a batch large enough for the pool is written there into the same shared memory', async () => {
  const p = make({ maxWorkers: 2 });
  (p as unknown as Record<symbol, string>)[ROUTE] = 'pool';
  const rows = makeTexts(43, 1_200_000, { maxPieces: 30 }).filter((t) => t.length > 0);
  const batchSize = Math.ceil(rows.length / 3);
  const o: Opts = { maxLength: 300 };
  const { batches, buffers } = await collectReused(p.stream(rows, { ...o, batchSize, reuseBuffers: true }));
  expect(batches.length).toBe(3);
  batches.forEach((b, k) => expectSameBatch(b, vectorize(rows.slice(k * batchSize, (k + 1) * batchSize), o)));
  expect(buffers.size).toBe(2);
  expect(p.metrics().batches.pool).toBe(3);
});

it('a file read ahead: sizes around multiples of chunkBytes give every line once, and the file is closed at the end and on break', async () => {
  const p = make({ maxWorkers: 1 });
  for (const size of [64 * 4, 64 * 4 - 1, 64 * 4 + 1, 64, 63, 1]) {
    // Lines of 8 bytes ('line NN\n'), the last one cut to fit `size`.
    let text = '';
    for (let i = 0; text.length < size; i++) text += `line ${String(i % 100).padStart(2, '0')}\n`;
    text = text.slice(0, size);
    const path = write(`ahead-${uniq++}.txt`, text);
    const want = parseLines(enc.encode(text));
    for (const chunkBytes of [16, 64]) {
      const batches = await collect(p.vectorizeFile(path, { format: 'lines', batchSize: 3, chunkBytes }));
      expectRows(batches, want, 3, {});
      expect(batches.at(-1)!.bytesRead).toBe(size);
      expect(descriptorsOn(path)).toBe(0);
      for await (const b of p.vectorizeFile(path, { format: 'lines', batchSize: 1, chunkBytes })) {
        expect(b.firstLine).toBe(1);
        break;
      }
      expect(descriptorsOn(path)).toBe(0);
    }
  }
});

it('a file that grows while it is read ahead: the reads past the old end are dropped and redone, every line once', async () => {
  const p = make({ maxWorkers: 1 });
  // 84 bytes: ten lines of 8 and a last line cut short ('tail'), not a multiple of chunkBytes, so
  // the read at 80 comes back short while the reads after it (at 96, 112) found nothing.
  let text = '';
  for (let i = 0; i < 10; i++) text += `line ${String(i).padStart(2, '0')}\n`;
  text += 'tail';
  const path = write(`grow-${uniq++}.txt`, text);
  const got: string[] = [];
  const it = p.vectorizeFile(path, { format: 'lines', batchSize: 1, chunkBytes: 16, encoding: 'utf16' })[Symbol.asyncIterator]();
  for (;;) {
    const r = await it.next();
    if (r.done) break;
    const b = r.value as FileBatch;
    got.push(String.fromCharCode(...(b.ids.subarray(0, b.lengths[0]!) as Uint16Array)));
    if (b.firstLine === 7) {
      await new Promise((res) => setTimeout(res, 100)); // the reads in flight have finished
      writeFileSync(path, 'MORE\nline 99\n', { flag: 'a' });
    }
  }
  expect(got).toEqual([...Array.from({ length: 10 }, (_, i) => `line ${String(i).padStart(2, '0')}`), 'tailMORE', 'line 99']);
  expect(descriptorsOn(path)).toBe(0);
});
