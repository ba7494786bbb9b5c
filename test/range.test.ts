/**
 * `vectorizeFile(path, { range: [start, end] })` (src/io/stream.ts): Hadoop's split rule, checked on
 * every cut. For small files with CRLF line ends, a BOM, blank lines, no trailing newline,
 * multi-byte characters and malformed JSONL lines, the ranges [0, c) and [c, size) for every byte
 * offset c (and [0, a), [a, b), [b, size) for every pair on one file) together give exactly what one
 * pass over the file gives: the same rows in order, the same line numbers (absolute: counted
 * before the range), the same skipped lines, and bytesRead adding up to the file's size. Both
 * backends (native reader and the JavaScript fallback), with the default 1 MiB reads and with
 * 16-byte reads (lines across reads, a range's first line found reads later).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { RecordError, linesBefore, type FileBatch, type FileOptions } from '../src/io/stream.js';
import { countNewlines, countNewlinesJs } from '../src/io/records.js';
import { pipelines, rejection, thrown } from './fixtures/util.js';

const make = pipelines();
const dir = mkdtempSync(join(tmpdir(), 'dtesn-range-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BACKENDS = [
  { name: 'native', config: {} },
  { name: 'js fallback', config: { enableVectorization: false } },
] as const;

/** What a pass gives, batch boundaries aside: each row's line and kept ids, each skipped line, the bytes. */
interface Pass {
  rows: Array<{ line: number; ids: number[] }>;
  skipped: Array<{ line: number; message: string }>;
  bytes: number;
  lines: number;
}

async function pass(it: AsyncIterable<FileBatch>): Promise<Pass> {
  const out: Pass = { rows: [], skipped: [], bytes: 0, lines: 0 };
  let last = 0;
  for await (const b of it) {
    for (let i = 0; i < b.rows; i++) {
      out.rows.push({ line: b.lines[i]!, ids: Array.from(b.ids.subarray(i * b.width, i * b.width + b.lengths[i]!) as ArrayLike<number | bigint>, Number) });
    }
    out.skipped.push(...b.skipped);
    last = b.bytesRead;
    out.lines = b.linesRead;
  }
  out.bytes = last;
  return out;
}

function concat(parts: Pass[]): Pass {
  return {
    rows: parts.flatMap((p) => p.rows),
    skipped: parts.flatMap((p) => p.skipped),
    bytes: parts.reduce((a, p) => a + p.bytes, 0),
    lines: parts.reduce((a, p) => a + p.lines, 0),
  };
}

const FILES: Array<{ name: string; format: 'lines' | 'jsonl'; text: string }> = [
  { name: 'lines: CRLF, blank lines, multi-byte, no trailing newline', format: 'lines', text: 'alpha\r\nbeta\n\nγάμμα 😀\r\n\r\ndelta' },
  { name: 'lines: a BOM, a trailing newline', format: 'lines', text: '\uFEFFfirst\nsecond\r\nthird\n' },
  { name: 'lines: one line, no newline', format: 'lines', text: 'only one line here' },
  { name: 'lines: newlines only', format: 'lines', text: '\n\n\r\n\n' },
  {
    name: 'jsonl: a BOM, CRLF, blank and malformed lines, no trailing newline',
    format: 'jsonl',
    text: '\uFEFF{"text":"a"}\r\n{bad\n\n{"text":"héllo wörld"}\n   \n[1]\n{"text":"x\\ny"}\r\n{"id":1}\n{"text":"last"}',
  },
];

describe.each(BACKENDS)('vectorizeFile with a range ($name)', ({ config }) => {
  it.each(FILES)('every cut of $name: [0, c) + [c, size) equals one pass', async ({ name, format, text }) => {
    const p = make({ maxWorkers: 1, ...config });
    const path = join(dir, `${name.replace(/\W+/g, '-')}.${format === 'jsonl' ? 'jsonl' : 'txt'}`);
    const bytes = Buffer.from(text, 'utf8');
    writeFileSync(path, bytes);
    for (const chunkBytes of [1 << 20, 16]) {
      const o: FileOptions = { format, maxLength: 64, batchSize: 2, chunkBytes };
      const whole = await pass(p.vectorizeFile(path, o));
      expect(whole.bytes).toBe(bytes.length);
      expect(whole.lines).toBe(text.split('\n').length - (text.endsWith('\n') ? 1 : 0));
      // The range [0, size) is the file.
      expect(await pass(p.vectorizeFile(path, { ...o, range: [0, bytes.length] }))).toEqual(whole);
      for (let c = 0; c <= bytes.length; c++) {
        const a = await pass(p.vectorizeFile(path, { ...o, range: [0, c] }));
        const b = await pass(p.vectorizeFile(path, { ...o, range: [c, bytes.length] }));
        expect(concat([a, b]), `${name}, cut at ${c}, reads of ${chunkBytes}`).toEqual(whole);
      }
    }
  });

  it('every pair of cuts of the JSONL file: three ranges equal one pass; empty ranges give nothing', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const { format, text } = FILES[4]!;
    const path = join(dir, 'pairs.jsonl');
    const bytes = Buffer.from(text, 'utf8');
    writeFileSync(path, bytes);
    const o: FileOptions = { format, maxLength: 64, chunkBytes: 16 };
    const whole = await pass(p.vectorizeFile(path, o));
    expect(whole.rows.map((r) => r.line)).toEqual([1, 4, 7, 9]);
    expect(whole.skipped.map((s) => s.line)).toEqual([2, 6, 8]);
    const seen = new Map<string, Pass>(); // [0, a) and [b, size) recur: read each range once
    const read = async (range: [number, number]) => {
      const key = range.join();
      if (!seen.has(key)) seen.set(key, await pass(p.vectorizeFile(path, { ...o, range })));
      return seen.get(key)!;
    };
    for (let a = 0; a <= bytes.length; a++) {
      expect(await read([a, a])).toEqual({ rows: [], skipped: [], bytes: 0, lines: 0 });
      for (let b = a; b <= bytes.length; b++) {
        const parts = [await read([0, a]), await read([a, b]), await read([b, bytes.length])];
        expect(concat(parts), `cuts at ${a}, ${b}`).toEqual(whole);
      }
    }
  });

  it('a range starting exactly at a line reads it; one starting a byte later skips it; the line crossing the end is read whole', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const path = join(dir, 'exact.txt');
    writeFileSync(path, 'aaaa\nbbbb\ncccc\n'); // lines start at 0, 5, 10
    const lines = async (range: [number, number]) => (await pass(p.vectorizeFile(path, { format: 'lines', range }))).rows.map((r) => String.fromCodePoint(...r.ids));
    expect(await lines([5, 10])).toEqual(['bbbb']);
    expect(await lines([6, 10])).toEqual([]);
    expect(await lines([4, 6])).toEqual(['bbbb']); // byte 4 is the '\n' before line 2
    expect(await lines([0, 1])).toEqual(['aaaa']);
    expect(await lines([1, 11])).toEqual(['bbbb', 'cccc']);
    expect(await lines([15, 15])).toEqual([]);
  });

  it('line numbers: counted before the range by default, relative with startLine; errors name the absolute line and its byte offset', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const path = join(dir, 'numbers.jsonl');
    const good = '{"text":"ok"}\n'; // 14 bytes
    writeFileSync(path, good.repeat(10) + '{"text": nope}\n' + good.repeat(5));
    const r = await pass(p.vectorizeFile(path, { format: 'jsonl', range: [14 * 8 + 3, 14 * 16] }));
    expect(r.rows.map((x) => x.line)).toEqual([10, 12, 13, 14, 15, 16]);
    expect(r.skipped).toEqual([{ line: 11, message: expect.stringMatching(/^invalid JSON/) }]);
    const rel = await pass(p.vectorizeFile(path, { format: 'jsonl', range: [14 * 8 + 3, 14 * 16], startLine: 1 }));
    expect(rel.rows.map((x) => x.line)).toEqual([1, 3, 4, 5, 6, 7]);
    expect(rel.skipped.map((s) => s.line)).toEqual([2]);
    const e = await rejection(pass(p.vectorizeFile(path, { format: 'jsonl', range: [14 * 9, 14 * 12], onError: 'throw' })));
    expect(e).toBeInstanceOf(RecordError);
    expect((e as RecordError).line).toBe(11);
    expect((e as RecordError).offset).toBe(140);
    expect((e as Error).message).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:11: invalid JSON`));
    // Without a range the offset is known too.
    const e2 = await rejection(pass(p.vectorizeFile(path, { format: 'jsonl', onError: 'throw' })));
    expect([(e2 as RecordError).line, (e2 as RecordError).offset]).toEqual([11, 140]);
  });

  it('the newline count before a range crosses read blocks (a 9 MB prefix): numbers equal the whole pass', async () => {
    const p = make({ maxWorkers: 1, ...config });
    const path = join(dir, 'long.txt');
    const lines: string[] = [];
    for (let i = 0; i < 300_000; i++) lines.push(`line ${i} ${'x'.repeat(i % 50)}`);
    const text = lines.join('\n') + '\n';
    writeFileSync(path, text);
    const size = Buffer.byteLength(text);
    const cut = size - 5000;
    const tail = await pass(p.vectorizeFile(path, { format: 'lines', range: [cut, size] }));
    const firstLine = Buffer.from(text).subarray(0, cut - 1).filter((b) => b === 10).length + 2;
    expect(tail.rows[0]!.line).toBe(firstLine);
    expect(await linesBefore(path, cut)).toBe(firstLine - 1);
    expect(await linesBefore(path, 0)).toBe(0);
    expect(tail.lines).toBe(300_000 - firstLine + 1);
    expect(tail.rows.at(-1)!.line).toBe(300_000);
    expect(String.fromCodePoint(...tail.rows.at(-1)!.ids)).toBe(lines.at(-1));
  });
});

describe('vectorizeFile range: bad input', () => {
  it('is refused when vectorizeFile() is called: not two integers, start > end, a stream source', () => {
    const p = make({ maxWorkers: 1 });
    const path = join(dir, 'bad.txt');
    writeFileSync(path, 'abc\n');
    const call = (o: Record<string, unknown>, source: unknown = path) => thrown(() => p.vectorizeFile(source as string, { format: 'lines', ...o } as FileOptions));
    expect(call({ range: 5 })).toEqual(new TypeError('options.range must be [start, end] (byte offsets), got number'));
    expect(call({ range: [1, 2, 3] })).toBeInstanceOf(TypeError);
    expect(call({ range: [3, 2] })).toEqual(new RangeError('options.range must be two integers 0 <= start <= end, got [3, 2]'));
    expect(call({ range: [-1, 2] })).toEqual(new RangeError('options.range must be two integers 0 <= start <= end, got [-1, 2]'));
    expect(call({ range: [0, 1.5] })).toEqual(new RangeError('options.range must be two integers 0 <= start <= end, got [0, 1.5]'));
    expect(call({ range: [0, 2] }, new PassThrough())).toEqual(new TypeError('options.range needs a file path, not a stream'));
    expect(call({ startLine: 0 })).toEqual(new RangeError('options.startLine must be an integer in [1, 9007199254740991], got 0'));
  });

  it('a range past the end of the file rejects on the first read, naming the range, the file and its size', async () => {
    const p = make({ maxWorkers: 1 });
    const path = join(dir, 'short.txt');
    writeFileSync(path, 'abc\n');
    expect(await rejection(pass(p.vectorizeFile(path, { format: 'lines', range: [0, 5] })))).toEqual(
      new RangeError(`options.range [0, 5] is outside ${path} (4 bytes)`),
    );
    expect(await rejection(pass(p.vectorizeFile(path, { format: 'lines', range: [9, 9] })))).toEqual(
      new RangeError(`options.range [9, 9] is outside ${path} (4 bytes)`),
    );
    expect((await pass(p.vectorizeFile(path, { format: 'lines', range: [4, 4] }))).rows).toEqual([]);
    const gone = await rejection(pass(p.vectorizeFile(join(dir, 'missing.txt'), { format: 'lines', range: [0, 0] })));
    expect((gone as NodeJS.ErrnoException).code).toBe('ENOENT');
  });
});

it('countNewlines: native and JavaScript agree on every alignment', () => {
  const data = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i % 7 === 0 || i % 97 === 0 ? 10 : 97 + (i % 26))));
  for (let s = 0; s < 64; s++) {
    const v = data.subarray(s, data.length - (s % 13));
    const want = v.filter((b) => b === 10).length;
    expect(countNewlines(v)).toBe(want);
    expect(countNewlinesJs(v)).toBe(want);
  }
  expect(countNewlines(new Uint8Array(0))).toBe(0);
});
