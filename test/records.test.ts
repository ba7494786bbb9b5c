/**
 * The native record reader (`parseRecords`, used by `vectorizeFile`) against the obvious
 * JavaScript way: decode the file with TextDecoder, `split('\n')`, strip one '\r', and for JSONL
 * `JSON.parse` each non-blank line. Generated files mix valid lines, every kind of malformed line,
 * CRLF, blank lines, ill-formed UTF-8, lone surrogate escapes and duplicate keys, and are fed whole
 * and in chunks of many sizes (carrying the unconsumed tail, as the caller does).
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { vectorize, vectorizeBytes } from '../src/index.js';
import type { Records } from '../src/records.js';

type Parsed = Records;
type ParseRecords = (chunk: unknown, format: unknown, field: unknown, isLast: unknown) => Parsed;

const require = createRequire(import.meta.url);
const { parseRecords } = require('../index.cjs') as { parseRecords: ParseRecords };

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
