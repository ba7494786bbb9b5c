/**
 * The native record reader (`parseRecords`, used by `vectorizeFile`) against the obvious
 * JavaScript way: decode the file with TextDecoder, `split('\n')`, strip one '\r', and for JSONL
 * `JSON.parse` each non-blank line. Generated files mix valid lines, every kind of malformed line,
 * CRLF, blank lines, ill-formed UTF-8, lone surrogate escapes and duplicate keys, and are fed whole
 * and in chunks of many sizes (carrying the unconsumed tail, as the caller does). `fillRows` (native
 * and its JavaScript fallback) must give the same rows cut into batches, in arenas of any size.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { vectorize, vectorizeBytes } from '../src/index.js';
import { type Filled, type Records, type RowFiller, fillRowsJs } from '../src/io/records.js';

type Parsed = Records;
type ParseRecords = (chunk: unknown, format: unknown, field: unknown, isLast: unknown) => Parsed;

const require = createRequire(import.meta.url);
const { parseRecords, fillRows } = require('../index.cjs') as { parseRecords: ParseRecords; fillRows: RowFiller };

const enc = new TextEncoder();
// Rows are not documents: a leading U+FEFF is content (as in vectorizeBytes).
const dec = new TextDecoder('utf-8', { ignoreBOM: true });
/** The largest chunk one call takes (the core's MAX_INPUT). */
const MAX_INPUT = Math.floor(0xffffffff / 3);

type Kind = 'invalid JSON' | 'not an object' | 'missing' | 'not a string';
interface Expected {
  rows: string[];
  lines: number[];
  errors: Array<{ line: number; kind: Kind; what?: string }>;
  blank: number;
  lineCount: number;
}

function splitLines(text: string): string[] {
  const parts = text.split('\n');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    default:
      return 'an object';
  }
}

/** The obvious JavaScript way. */
function reference(file: Uint8Array, format: 'lines' | 'jsonl', field: string): Expected {
  const lines = splitLines(new TextDecoder('utf-8', { ignoreBOM: true }).decode(file));
  const out: Expected = { rows: [], lines: [], errors: [], blank: 0, lineCount: lines.length };
  lines.forEach((line, i) => {
    if (format === 'lines') {
      out.rows.push(line);
      out.lines.push(i);
      return;
    }
    if (/^[ \t\r]*$/.test(line)) {
      out.blank++;
      return;
    }
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      out.errors.push({ line: i, kind: 'invalid JSON' });
      return;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      out.errors.push({ line: i, kind: 'not an object', what: kindOf(v) });
    } else if (!Object.hasOwn(v, field)) {
      out.errors.push({ line: i, kind: 'missing' });
    } else {
      const value = (v as Record<string, unknown>)[field];
      if (typeof value === 'string') {
        out.rows.push(value);
        out.lines.push(i);
      } else {
        out.errors.push({ line: i, kind: 'not a string', what: kindOf(value) });
      }
    }
  });
  return out;
}

function classify(message: string, field: string): { kind: Kind; what?: string } {
  if (message.startsWith('invalid JSON: ') || message.startsWith('arrays and objects nested deeper')) {
    return { kind: 'invalid JSON' };
  }
  let m = /^line is (.*), not an object$/.exec(message);
  if (m) return { kind: 'not an object', what: m[1] };
  if (message === `field '${field}' is missing`) return { kind: 'missing' };
  m = new RegExp(`^field '${field}' is (.*), not a string$`).exec(message);
  if (m) return { kind: 'not a string', what: m[1] };
  throw new Error(`unexpected message: ${message}`);
}

interface Merged {
  rows: Uint8Array[];
  lines: number[];
  errors: Array<{ line: number; message: string }>;
  blank: number;
  lineCount: number;
}

/** Feeds `file` in chunks of the given sizes (cycled), carrying the unconsumed tail. */
function parseChunked(file: Uint8Array, format: 'lines' | 'jsonl', field: string | null, sizes: number[]): Merged {
  const out: Merged = { rows: [], lines: [], errors: [], blank: 0, lineCount: 0 };
  let carry = new Uint8Array(0);
  let pos = 0;
  for (let k = 0; ; k++) {
    const next = Math.min(file.length, pos + sizes[k % sizes.length]);
    const chunk = new Uint8Array(carry.length + next - pos);
    chunk.set(carry);
    chunk.set(file.subarray(pos, next), carry.length);
    pos = next;
    const isLast = pos === file.length;
    const r = parseRecords(chunk, format, field, isLast);
    expect(r.offsets.length).toBe(r.lines.length + 1);
    expect(r.offsets[0]).toBe(0);
    expect(r.offsets[r.offsets.length - 1]).toBe(r.bytes.length);
    expect(r.lines.length + r.errors.length + r.blank).toBe(r.lineCount);
    for (let i = 0; i < r.lines.length; i++) {
      out.rows.push(r.bytes.slice(r.offsets[i], r.offsets[i + 1]));
      out.lines.push(out.lineCount + r.lines[i]);
    }
    for (const e of r.errors) out.errors.push({ line: out.lineCount + e.line, message: e.message });
    out.blank += r.blank;
    out.lineCount += r.lineCount;
    if (isLast) {
      expect(r.consumed).toBe(chunk.length);
      return out;
    }
    carry = chunk.slice(r.consumed);
  }
}

function compare(got: Merged, want: Expected, format: 'lines' | 'jsonl', field: string) {
  expect(got.lineCount).toBe(want.lineCount);
  expect(got.blank).toBe(want.blank);
  expect(got.lines).toEqual(want.lines);
  // Lines pass bytes through (vectorizeBytes decodes them as TextDecoder does); JSONL rows are the
  // well-formed UTF-8 of the parsed string, lone surrogates as U+FFFD.
  const rows = format === 'lines' ? got.rows.map((r) => dec.decode(r)) : got.rows.map((r) => Buffer.from(r).toString('hex'));
  const wantRows = format === 'lines' ? want.rows : want.rows.map((s) => Buffer.from(enc.encode(s)).toString('hex')); // TextEncoder: lone surrogate -> U+FFFD
  expect(rows).toEqual(wantRows);
  expect(got.errors.map((e) => ({ line: e.line, ...classify(e.message, field) }))).toEqual(want.errors);
}

class Rng {
  constructor(private s: number) {}
  next(): number {
    // mulberry32
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)];
  }
}

const PIECES = [
  'hello', 'world', ' ', 'wörld', 'naïve café', '中文', '😀', '"', '\\', '/', '\n', '\r', '\t', '\b', '\f',
  '\u0000', '\u001f', '\u007f', '\u2028', '\ud800', '\udc00', '\ud83d', '\ude00', '\ud83d\ude00', '\ufeff', '\ufffd',
];

function randomText(rng: Rng): string {
  let s = '';
  const n = rng.below(12);
  for (let i = 0; i < n; i++) s += rng.pick(PIECES);
  return s;
}

/** JSON.stringify, sometimes with every non-ASCII character escaped (as Python writes it). */
function jsonString(rng: Rng, s: string): string {
  const j = JSON.stringify(s);
  if (rng.below(3) !== 0) return j;
  return j.replace(/[\u0080-\uffff]/g, (c) => {
    const hex = c.charCodeAt(0).toString(16).padStart(4, '0');
    return `\\u${rng.below(2) ? hex.toUpperCase() : hex}`;
  });
}

function randomValue(rng: Rng, depth = 0): string {
  switch (rng.below(depth > 2 ? 5 : 7)) {
    case 0:
      return jsonString(rng, randomText(rng));
    case 1:
      return String(rng.below(2) ? rng.below(1000) : -rng.next() * 1e5);
    case 2:
      return rng.pick(['true', 'false', 'null']);
    case 3:
      return '1.5e-3';
    case 4:
      return '""';
    case 5:
      return `[${Array.from({ length: rng.below(4) }, () => randomValue(rng, depth + 1)).join(', ')}]`;
    default:
      return `{${Array.from({ length: rng.below(3) }, () => `${jsonString(rng, randomText(rng))}: ${randomValue(rng, depth + 1)}`).join(',')}}`;
  }
}

/** One JSONL line (as bytes, possibly with raw ill-formed UTF-8). */
function randomLine(rng: Rng, field: string): Uint8Array {
  const key = () => (rng.below(8) === 0 ? jsonString(rng, field) : JSON.stringify(field));
  const members: string[] = [];
  for (let i = rng.below(3); i > 0; i--) members.push(`${jsonString(rng, randomText(rng))}:${randomValue(rng)}`);
  const kind = rng.below(20);
  let line: string;
  if (kind < 9) {
    members.splice(rng.below(members.length + 1), 0, `${key()}:${jsonString(rng, randomText(rng))}`);
    line = `{${members.join(',')}}`;
  } else if (kind === 9) {
    // Duplicate keys: the last one wins.
    line = `{${key()}:${randomValue(rng)},${members.join(',')}${members.length ? ',' : ''}${key()}:${randomValue(rng)}}`;
  } else if (kind === 10) {
    line = `{${members.join(',')}}`;
  } else if (kind === 11) {
    line = `{${key()}:${randomValue(rng)}}`;
  } else if (kind === 12) {
    line = randomValue(rng);
  } else if (kind === 13) {
    line = rng.pick([' ', '\t', '  \t ', '', '\r']);
  } else if (kind === 14) {
    line = rng.pick(['{"a":"\\uZZZZ"}', '{"a":"\\x"}', '{"a":01}', '{"a":1,}', '{a:1}', "{'a':1}", '{"a":1}x', 'NaN', '{"a":"\\u12"}', '[1,]', '{"a":[1 2]}']);
  } else {
    members.push(`${key()}:${jsonString(rng, randomText(rng))}`);
    line = `${' '.repeat(rng.below(2))}{ ${members.join(' , ')} }${'\t'.repeat(rng.below(2))}`;
    // Truncate some of them anywhere.
    if (kind === 19) line = line.slice(0, rng.below(line.length));
  }
  let bytes = enc.encode(line);
  if (rng.below(15) === 0 && bytes.length > 0) {
    // Raw ill-formed UTF-8 somewhere (inside a string or not).
    const at = rng.below(bytes.length);
    const bad = rng.pick([[0xff], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0x80]]);
    const b = new Uint8Array(bytes.length + bad.length);
    b.set(bytes.subarray(0, at));
    b.set(bad, at);
    b.set(bytes.subarray(at), at + bad.length);
    bytes = b;
  }
  return bytes;
}

function randomFile(rng: Rng, lines: number, field: string, format: 'lines' | 'jsonl'): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < lines; i++) {
    parts.push(format === 'jsonl' ? randomLine(rng, field) : enc.encode(randomText(rng).replace(/[\n]/g, '')));
    if (format === 'lines' && rng.below(10) === 0) parts.push(new Uint8Array([0xf0, 0x9f]));
    if (i < lines - 1 || rng.below(2)) parts.push(enc.encode(rng.below(5) === 0 ? '\r\n' : '\n'));
  }
  return Buffer.concat(parts);
}

describe('parseRecords', () => {
  it('splits lines: CRLF, empty lines, no trailing newline, empty input', () => {
    const r = parseRecords(enc.encode('a\r\n\nb\r\r\nc'), 'lines', null, true);
    expect(dec.decode(r.bytes)).toBe('ab\rc');
    expect([...r.offsets]).toEqual([0, 1, 1, 3, 4]);
    expect([...r.lines]).toEqual([0, 1, 2, 3]);
    expect([r.consumed, r.lineCount, r.blank, r.errors.length]).toEqual([9, 4, 0, 0]);
    const empty = parseRecords(new Uint8Array(0), 'lines', null, true);
    expect([empty.lineCount, empty.bytes.length, [...empty.offsets]]).toEqual([0, 0, [0]]);
    expect(parseRecords(enc.encode('x\n'), 'lines', undefined, true).lineCount).toBe(1);
    // Only complete lines are consumed until the last chunk.
    const part = parseRecords(enc.encode('a\nbc'), 'lines', null, false);
    expect([part.consumed, part.lineCount]).toEqual([2, 1]);
    expect(parseRecords(enc.encode('abc'), 'jsonl', 'text', false).consumed).toBe(0);
  });

  it('extracts JSONL fields with clear errors', () => {
    const file = [
      '{"text":"caf\\u00e9 \\ud83d\\ude00"}',
      '',
      '  \t',
      '{"id":1}',
      '{"text":5}',
      '[1,2]',
      '{"text":"abc',
      '{"text":"\\ud800","text":"dup \\udc00"}',
    ].join('\r\n');
    const r = parseRecords(enc.encode(file), 'jsonl', 'text', true);
    const rows = [...r.lines].map((_, i) => dec.decode(r.bytes.subarray(r.offsets[i], r.offsets[i + 1])));
    expect(rows).toEqual(['café 😀', 'dup \ufffd']);
    expect([...r.lines]).toEqual([0, 7]);
    expect(r.blank).toBe(2);
    expect(r.errors).toEqual([
      { line: 3, message: "field 'text' is missing" },
      { line: 4, message: "field 'text' is a number, not a string" },
      { line: 5, message: 'line is an array, not an object' },
      { line: 6, message: 'invalid JSON: EOF while parsing at column 12' },
    ]);
  });

  it('matches split + JSON.parse on generated JSONL, whole and in chunks', () => {
    const rng = new Rng(12345);
    for (const field of ['text', 'é', '']) {
      const file = randomFile(rng, 1500, field, 'jsonl');
      const want = reference(file, 'jsonl', field);
      // Every outcome occurs.
      expect(want.rows.length).toBeGreaterThan(300);
      for (const k of ['invalid JSON', 'not an object', 'missing', 'not a string'] as const) {
        expect(want.errors.some((e) => e.kind === k)).toBe(true);
      }
      expect(want.blank).toBeGreaterThan(10);
      for (const sizes of [[file.length], [1 << 16], [4096], [1, 7, 64, 333, 1000], [rng.below(200) + 1]]) {
        compare(parseChunked(file, 'jsonl', field, sizes), want, 'jsonl', field);
      }
    }
  });

  it('matches split on generated lines, whole and in chunks', () => {
    const rng = new Rng(777);
    const file = randomFile(rng, 2000, '', 'lines');
    const want = reference(file, 'lines', '');
    for (const sizes of [[file.length], [4096], [1, 2, 3, 50, 999]]) {
      compare(parseChunked(file, 'lines', null, sizes), want, 'lines', '');
    }
  });

  it('gives vectorizeBytes rows equal to vectorize on the parsed strings (all encodings but utf16)', () => {
    const rng = new Rng(99);
    const file = randomFile(rng, 400, 'text', 'jsonl');
    const want = reference(file, 'jsonl', 'text');
    const r = parseRecords(file, 'jsonl', 'text', true);
    for (const encoding of ['codepoint', 'utf8', 'byt5', 'canine'] as const) {
      const a = vectorizeBytes(r.bytes, r.offsets, { encoding, maxLength: 64 });
      const b = vectorize(want.rows, { encoding, maxLength: 64 });
      expect(a.ids).toEqual(b.ids);
      expect(a.lengths).toEqual(b.lengths);
    }
  });

  it('returns fresh arrays that later calls do not overwrite', () => {
    const chunk = enc.encode('{"t":"first"}\n{"t":"second"}\n');
    const a = parseRecords(chunk, 'jsonl', 't', true);
    const before = dec.decode(a.bytes);
    const b = parseRecords(enc.encode('{"t":"XXXXXXXXXXXX"}\n'), 'jsonl', 't', true);
    expect(dec.decode(a.bytes)).toBe(before);
    expect([...a.offsets]).toEqual([0, 5, 11]);
    expect(a.bytes.buffer).not.toBe(b.bytes.buffer);
    expect(a.bytes.buffer).not.toBe(chunk.buffer);
    const l = parseRecords(chunk, 'lines', null, true);
    expect(l.bytes.buffer).not.toBe(chunk.buffer);
    chunk.fill(0);
    expect(dec.decode(l.bytes)).toBe('{"t":"first"}{"t":"second"}');
    // Buffers and views at an offset are Uint8Arrays too.
    const view = Buffer.from('xx{"t":"v"}\n').subarray(2);
    expect(dec.decode(parseRecords(view, 'jsonl', 't', true).bytes)).toBe('v');
  });

  it('throws TypeError naming the bad argument, and keeps working', () => {
    const ok = new Uint8Array([97]);
    const cases: Array<[unknown[], string]> = [
      [[undefined, 'lines', null, true], 'chunk must be a Uint8Array, got undefined'],
      [['abc', 'lines', null, true], 'chunk must be a Uint8Array, got string'],
      [[[97], 'lines', null, true], 'chunk must be a Uint8Array, got object'],
      [[new Uint16Array(1), 'lines', null, true], 'chunk must be a Uint8Array, got Uint16Array'],
      [[ok, 'csv', null, true], "format must be one of 'lines', 'jsonl', got 'csv'"],
      [[ok, undefined, null, true], "format must be one of 'lines', 'jsonl', got undefined"],
      [[ok, 1, null, true], "format must be one of 'lines', 'jsonl', got number"],
      [[ok, 'jsonl', null, true], "field must be a string for format 'jsonl', got null"],
      [[ok, 'jsonl', undefined, true], "field must be a string for format 'jsonl', got undefined"],
      [[ok, 'jsonl', 5, true], "field must be a string for format 'jsonl', got number"],
      [[ok, 'lines', 'text', true], "field must be null for format 'lines', got string"],
      [[ok, 'lines', null, 'yes'], 'isLast must be a boolean, got string'],
      [[ok, 'lines', null, undefined], 'isLast must be a boolean, got undefined'],
      [[ok, 'jsonl', 'text', 1], 'isLast must be a boolean, got number'],
    ];
    for (const [args, message] of cases) {
      let thrown: unknown;
      try {
        parseRecords(...(args as [unknown, unknown, unknown, unknown]));
      } catch (e) {
        thrown = e;
      }
      expect(thrown, message).toBeInstanceOf(TypeError);
      expect((thrown as Error).message).toBe(message);
    }
    expect(dec.decode(parseRecords(ok, 'lines', null, true).bytes)).toBe('a');
  });

  it('throws RangeError for a chunk larger than one call takes', () => {
    // Zero-filled and never touched: the length is checked first.
    const big = new Uint8Array(MAX_INPUT + 1);
    expect(() => parseRecords(big, 'lines', null, true)).toThrow(RangeError);
    expect(() => parseRecords(big, 'lines', null, true)).toThrow(`chunk has ${MAX_INPUT + 1} bytes; parseRecords takes at most ${MAX_INPUT} per call`);
  });
});

/**
 * Drives a `fillRows` the way `vectorizeFile` does: reads of the given sizes (cycled) with the
 * tail carried, batches of `batch` rows in an arena that starts at `arena` (bytes, rows) and grows
 * when the filler says it is full. Checks every batch but the last is full.
 */
function fillChunked(
  fill: RowFiller,
  file: Uint8Array,
  format: 'lines' | 'jsonl',
  field: string | null,
  sizes: number[],
  batch: number,
  arena: [number, number],
  stopAtError = false,
): Merged & { batches: number[]; stoppedAt: number | null } {
  const out = { rows: [] as Uint8Array[], lines: [] as number[], errors: [] as Array<{ line: number; message: string }>, blank: 0, lineCount: 0, batches: [] as number[], stoppedAt: null as number | null };
  let bytes = new Uint8Array(arena[0]);
  let offsets = new Uint32Array(arena[1] + 1);
  let lines = new Uint32Array(arena[1]);
  let rows = 0;
  const flush = () => {
    for (let i = 0; i < rows; i++) {
      out.rows.push(bytes.slice(offsets[i], offsets[i + 1]));
      out.lines.push(lines[i]! - 1);
    }
    out.batches.push(rows);
    rows = 0;
  };
  let buf = new Uint8Array(0);
  let read = 0;
  let base = 0;
  for (let k = 0; ; k++) {
    const next = Math.min(file.length, read + sizes[k % sizes.length]!);
    buf = Buffer.concat([buf, file.subarray(read, next)]);
    read = next;
    const isLast = read === file.length;
    let pos = 0;
    for (;;) {
      const r: Filled = fill(buf.subarray(pos), isLast, format, field, out.lineCount + 1, batch - rows, stopAtError, Number.MAX_SAFE_INTEGER, bytes, offsets, lines, rows);
      expect(r.rows).toBeGreaterThanOrEqual(rows);
      expect(r.consumed).toBeLessThanOrEqual(buf.length - pos);
      rows = r.rows;
      for (const e of r.errors) out.errors.push({ line: out.lineCount + e.line, message: e.message });
      out.blank += r.blank;
      out.lineCount += r.lineCount;
      pos += r.consumed;
      if (r.stop === 'input') break;
      if (r.stop === 'error') {
        expect(stopAtError).toBe(true);
        out.stoppedAt = base + pos;
        if (rows > 0) flush();
        return out;
      }
      if (r.stop === 'rows' && rows === batch) flush();
      else if (r.stop === 'rows') {
        expect(rows).toBe(lines.length);
        const cap = Math.min(batch, 2 * lines.length);
        const o = new Uint32Array(cap + 1);
        o.set(offsets.subarray(0, rows + 1));
        const l = new Uint32Array(cap);
        l.set(lines.subarray(0, rows));
        [offsets, lines] = [o, l];
      } else {
        const used = offsets[rows]!;
        expect(used + r.need).toBeGreaterThan(bytes.length);
        const b = new Uint8Array(Math.max(2 * bytes.length, used + r.need));
        b.set(bytes.subarray(0, used));
        bytes = b;
      }
    }
    if (isLast) {
      expect(pos).toBe(buf.length);
      if (rows > 0) flush();
      out.batches.slice(0, -1).forEach((n) => expect(n).toBe(batch));
      return out;
    }
    buf = buf.slice(pos);
    base += pos;
  }
}

describe.each([
  { name: 'native', fill: (...a: Parameters<RowFiller>) => fillRows(...a) },
  { name: 'js fallback', fill: fillRowsJs },
])('fillRows ($name)', ({ fill }) => {
  it('gives the rows, lines and errors of split + JSON.parse, cut into exact batches, for any reads and arena', () => {
    const rng = new Rng(4242);
    for (const format of ['jsonl', 'lines'] as const) {
      const field = format === 'jsonl' ? 'text' : null;
      const file = randomFile(rng, 1200, 'text', format);
      const want = reference(file, format, 'text');
      for (const [sizes, batch, arena] of [
        [[file.length], 1000, [1 << 20, 1000]],
        [[1, 7, 64, 333], 1, [0, 1]],
        [[4096], 7, [16, 2]],
        [[rng.below(500) + 1], 100, [100, 3]],
      ] as Array<[number[], number, [number, number]]>) {
        compare(fillChunked(fill, file, format, field, sizes, batch, arena), want, format, 'text');
      }
    }
  });

  it('with stopAtError, stops before the first bad line: its start is what was consumed', () => {
    const text = '{"text":"a"}\n\n{"text":"b"}\r\n  \n{"text":[]}\n{"text":"c"}\n';
    const file = enc.encode(text);
    for (const sizes of [[1], [5], [file.length]]) {
      const got = fillChunked(fill, file, 'jsonl', 'text', sizes, 2, [4, 1], true);
      expect(got.rows.map((r) => dec.decode(r))).toEqual(['a', 'b']);
      expect(got.errors).toEqual([{ line: 4, message: "field 'text' is an array, not a string" }]);
      expect(got.lineCount).toBe(4);
      expect(got.stoppedAt).toBe(enc.encode(text.slice(0, text.indexOf('{"text":[]}'))).length);
    }
  });

  it('writes after the rows already in the arena, numbering lines from firstLine', () => {
    const bytes = new Uint8Array(8);
    const offsets = new Uint32Array([0, 2, 0, 0]);
    const lines = new Uint32Array([7, 0, 0]);
    bytes.set([0x41, 0x42]);
    const r = fill(enc.encode('{"t":"cd"}\n\n{"t":"e"}\n{"t":"f"}\n'), false, 'jsonl', 't', 10, 5, false, 100, bytes, offsets, lines, 1);
    expect({ ...r, errors: r.errors }).toEqual({ consumed: 22, lineCount: 3, blank: 1, rows: 3, stop: 'rows', need: 0, errors: [] });
    expect(dec.decode(bytes.subarray(0, offsets[3]))).toBe('ABcde');
    expect([...offsets]).toEqual([0, 2, 4, 5]);
    expect([...lines]).toEqual([7, 10, 12]);
  });

  it('with maxErrors, stops right after that many bad lines (consumed); blank lines do not count', () => {
    const text = '{"t":"a"}\nbad\n\n[1]\n{"t":"b"}\nworse\n{"t":"c"}\n';
    const input = enc.encode(text);
    const [bytes, offsets, lines] = [new Uint8Array(16), new Uint32Array(9), new Uint32Array(8)];
    const r = fill(input, true, 'jsonl', 't', 1, 100, false, 2, bytes, offsets, lines, 0);
    expect(r).toEqual({
      consumed: enc.encode('{"t":"a"}\nbad\n\n[1]\n').length, lineCount: 4, blank: 1, rows: 1, stop: 'errors', need: 0,
      errors: [{ line: 1, message: 'invalid JSON: ' + r.errors[0]!.message.slice('invalid JSON: '.length) }, { line: 3, message: 'line is an array, not an object' }],
    });
    expect(r.errors[0]!.message.startsWith('invalid JSON: ')).toBe(true);
    // Fewer bad lines than the limit: to the end of the input.
    const rest = fill(input.subarray(r.consumed), true, 'jsonl', 't', 5, 100, false, 2, bytes, offsets, lines, r.rows);
    expect({ ...rest, errors: rest.errors.map((e) => e.line) }).toEqual({ consumed: input.length - r.consumed, lineCount: 3, blank: 0, rows: 3, stop: 'input', need: 0, errors: [1] });
    expect([...lines.subarray(0, 3)]).toEqual([1, 5, 7]);
    expect(dec.decode(bytes.subarray(0, offsets[3]))).toBe('abc');
  });
});

describe('fillRows (native) arguments', () => {
  const args = (): unknown[] => [new Uint8Array([97]), true, 'lines', null, 1, 10, false, 100, new Uint8Array(4), new Uint32Array(3), new Uint32Array(2), 0];
  const call = (a: unknown[]) => (fillRows as unknown as (...x: unknown[]) => Filled)(...a);
  it('throws TypeError or RangeError naming the bad argument, and keeps working', () => {
    const shared = new Uint8Array(16);
    const cases: Array<[number, unknown, ErrorConstructor, string]> = [
      [0, 'abc', TypeError, 'input must be a Uint8Array, got string'],
      [1, 1, TypeError, 'isLast must be a boolean, got number'],
      [2, 'csv', TypeError, "format must be one of 'lines', 'jsonl', got 'csv'"],
      [3, 'text', TypeError, "field must be null for format 'lines', got string"],
      [4, -1, RangeError, 'firstLine must be a non-negative integer, got -1'],
      [5, 1.5, RangeError, 'maxRows must be a non-negative integer, got 1.5'],
      [5, '1', TypeError, 'maxRows must be a number, got string'],
      [6, null, TypeError, 'stopAtError must be a boolean, got null'],
      [7, -2, RangeError, 'maxErrors must be a non-negative integer, got -2'],
      [7, Infinity, RangeError, 'maxErrors must be a non-negative integer, got Infinity'],
      [8, new Int8Array(4), TypeError, 'bytes must be a Uint8Array, got Int8Array'],
      [9, new Int32Array(3), TypeError, 'offsets must be a Uint32Array, got Int32Array'],
      [10, [0, 0], TypeError, 'lines must be a Uint32Array, got object'],
      [11, 3, RangeError, "rows (3) exceeds the arena's capacity (2 rows)"],
      [8, shared.subarray(0, 8), TypeError, 'input and bytes must not share memory'],
    ];
    for (const [i, v, E, message] of cases) {
      const a = args();
      a[i] = v;
      if (message.startsWith('input and bytes')) a[0] = shared.subarray(4, 5);
      let thrown: unknown;
      try {
        call(a);
      } catch (e) {
        thrown = e;
      }
      expect(thrown, message).toBeInstanceOf(E);
      expect((thrown as Error).message).toBe(message);
    }
    const a = args();
    expect(call(a)).toMatchObject({ consumed: 1, lineCount: 1, rows: 1, stop: 'input' });
    expect((a[8] as Uint8Array)[0]).toBe(97);
  });
});
