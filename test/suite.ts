/**
 * The behaviour every backend must share (docs/SEMANTICS.md), written once and run against each
 * backend: `backendSuite('js', jsBackend)`, later `backendSuite('native', nativeBackend)`.
 * Expected values come from hand-written golden vectors, from TextEncoder/TextDecoder, and from
 * `reference` below: a deliberately simple implementation (Array.from, codePointAt, TextEncoder)
 * that property tests compare against.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Dtype, MaskDtype, VectorBatch } from '../src/vectorize/types.js';

export interface Backend {
  vectorize(texts: unknown, options?: unknown): VectorBatch<Dtype, MaskDtype>;
  vectorizeBytes(bytes: unknown, offsets: unknown, options?: unknown): VectorBatch<Dtype, MaskDtype>;
}

// ---------------------------------------------------------------------------------------------
// Reference implementation.

type Encoding = 'codepoint' | 'utf8' | 'utf16' | 'byt5' | 'canine';
interface RefOptions {
  encoding: Encoding;
  vocab?: string[];
  maxLength: number;
  padding: 'longest' | 'max-length';
  padToMultipleOf?: number;
  paddingSide: 'left' | 'right';
  truncationSide: 'left' | 'right';
  padId: number | bigint;
  addSpecialTokens: boolean;
  dtype: Dtype;
  maskDtype: MaskDtype;
  invalid: 'replace' | 'error';
}
const REF_DEFAULTS: RefOptions = {
  encoding: 'codepoint',
  maxLength: 512,
  padding: 'longest',
  paddingSide: 'right',
  truncationSide: 'right',
  padId: 0,
  addSpecialTokens: true,
  dtype: 'int32',
  maskDtype: 'uint8',
  invalid: 'replace',
};
const MAX_OF: Record<Dtype, number> = { int32: 2147483647, int16: 32767, uint16: 65535, uint8: 255, float32: 16777216, int64: Number.MAX_SAFE_INTEGER };
const CLASS_OF: Record<Dtype, string> = {
  int32: 'Int32Array',
  int16: 'Int16Array',
  uint16: 'Uint16Array',
  uint8: 'Uint8Array',
  float32: 'Float32Array',
  int64: 'BigInt64Array',
};
const MASK_CLASS_OF: Record<MaskDtype, string> = { uint8: 'Uint8Array', int32: 'Int32Array', int64: 'BigInt64Array' };

/** An element as a number, or as a bigint when no number holds it (int64 pads beyond 2^53). */
export function num(x: number | bigint): number | bigint {
  return typeof x === 'bigint' && x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
}

/** The elements of any ids or mask array, as `num` gives them. */
export function nums(a: ArrayLike<number | bigint>): Array<number | bigint> {
  return Array.from(a, num);
}

export interface PlainBatch {
  ids: Array<number | bigint>;
  idsClass: string;
  maskClass: string;
  rows: number;
  width: number;
  lengths: number[];
  sourceLengths: number[];
  attentionMask: number[];
}
type RefOutcome = PlainBatch | { error: string };

const isLone = (ch: string): boolean => ch.length === 1 && ch >= '\ud800' && ch <= '\udfff';

/** Content tokens of a string row, and the code unit of its first lone surrogate (-1 if none). */
function refContent(row: string, o: RefOptions): { tokens: number[]; lone: number } {
  let lone = -1;
  let unit = 0;
  for (const ch of Array.from(row)) {
    if (isLone(ch) && lone < 0) lone = unit;
    unit += ch.length;
  }
  const scalars = Array.from(row).map((ch) => (isLone(ch) ? '\ufffd' : ch));
  const utf8 = Array.from(new TextEncoder().encode(row));
  let tokens: number[];
  switch (o.encoding) {
    case 'codepoint':
      tokens = o.vocab
        ? scalars.map((ch) => (o.vocab!.indexOf(ch) >= 0 ? o.vocab!.indexOf(ch) + 2 : 1))
        : scalars.map((ch) => ch.codePointAt(0)!);
      break;
    case 'canine':
      tokens = scalars.map((ch) => ch.codePointAt(0)!);
      break;
    case 'utf8':
      tokens = utf8;
      break;
    case 'byt5':
      tokens = utf8.map((b) => b + 3);
      break;
    case 'utf16':
      tokens = Array.from({ length: row.length }, (_, i) => row.charCodeAt(i));
      lone = -1;
      break;
  }
  return { tokens, lone };
}

function refSpecials(o: RefOptions): { pre: number[]; post: number[] } {
  if (!o.addSpecialTokens) return { pre: [], post: [] };
  if (o.encoding === 'byt5') return { pre: [], post: [1] };
  if (o.encoding === 'canine') return { pre: [0xe000], post: [0xe001] };
  return { pre: [], post: [] };
}

/** vectorize() of valid options, written the obvious way. */
export function reference(rows: string[], options: Partial<RefOptions> = {}): RefOutcome {
  const o: RefOptions = { ...REF_DEFAULTS, ...options };
  const { pre, post } = refSpecials(o);
  const S = pre.length + post.length;
  const max = MAX_OF[o.dtype];
  if (o.encoding === 'canine' && S === 2 && 0xe000 > max) {
    return { error: `RangeError: encoding 'canine' special token 57344 does not fit dtype '${o.dtype}' (max ${max})` };
  }
  const contents = rows.map((r) => refContent(r, o));
  if (o.invalid === 'error') {
    const bad = contents.findIndex((c) => c.lone >= 0);
    if (bad >= 0) {
      return {
        error: `TypeError: row ${bad} contains a lone surrogate at code unit ${contents[bad]!.lone} (options.invalid is 'error')`,
      };
    }
  }
  const cap = o.maxLength - S;
  const kept = contents.map(({ tokens }) =>
    o.truncationSide === 'right' ? tokens.slice(0, cap) : tokens.slice(Math.max(0, tokens.length - cap)),
  );
  for (let r = 0; r < kept.length; r++) {
    const big = kept[r]!.find((id) => id > max);
    if (big !== undefined) return { error: `RangeError: row ${r}: id ${big} does not fit dtype '${o.dtype}' (max ${max})` };
  }
  const full = kept.map((k) => [...pre, ...k, ...post]);
  let width = o.padding === 'longest' ? Math.max(0, ...full.map((f) => f.length)) : o.maxLength;
  const m = o.padToMultipleOf ?? 1;
  width = Math.ceil(width / m) * m;
  const ids: Array<number | bigint> = [];
  const attentionMask: number[] = [];
  for (const f of full) {
    const pad: Array<number | bigint> = new Array<number | bigint>(width - f.length).fill(num(o.padId));
    const ones: number[] = new Array<number>(f.length).fill(1);
    const zeros: number[] = new Array<number>(width - f.length).fill(0);
    ids.push(...(o.paddingSide === 'right' ? [...f, ...pad] : [...pad, ...f]));
    attentionMask.push(...(o.paddingSide === 'right' ? [...ones, ...zeros] : [...zeros, ...ones]));
  }
  return {
    ids,
    idsClass: CLASS_OF[o.dtype],
    maskClass: MASK_CLASS_OF[o.maskDtype],
    rows: rows.length,
    width,
    lengths: full.map((f) => f.length),
    sourceLengths: contents.map((c) => c.tokens.length + S),
    attentionMask,
  };
}

/** Offset of the first ill-formed subpart of `row`, or -1: the longest prefix that decodes strictly. */
function refFirstInvalidByte(row: Uint8Array): number {
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const ok = (b: Uint8Array): boolean => {
    try {
      strict.decode(b);
      return true;
    } catch {
      return false;
    }
  };
  if (ok(row)) return -1;
  let p = row.length;
  while (!ok(row.subarray(0, p))) p--;
  return p;
}

const decodeRow = (row: Uint8Array): string => new TextDecoder('utf-8', { ignoreBOM: true }).decode(row);

/** vectorizeBytes() of valid options: each row decoded by TextDecoder, then `reference`. */
export function referenceBytes(rows: Uint8Array[], options: Partial<RefOptions> = {}): RefOutcome {
  const o: RefOptions = { ...REF_DEFAULTS, ...options };
  const S = refSpecials(o).pre.length + refSpecials(o).post.length;
  if (o.encoding === 'canine' && S === 2 && 0xe000 > MAX_OF[o.dtype]) return reference([], o);
  if (o.invalid === 'error') {
    const at = rows.map(refFirstInvalidByte);
    const bad = at.findIndex((b) => b >= 0);
    if (bad >= 0) {
      return { error: `TypeError: row ${bad} is not valid UTF-8 at byte ${at[bad]!} (options.invalid is 'error')` };
    }
  }
  return reference(rows.map(decodeRow), { ...o, invalid: 'replace' });
}

// ---------------------------------------------------------------------------------------------
// Helpers.

export function plain(b: VectorBatch<Dtype, MaskDtype>): PlainBatch {
  expect(b.lengths).toBeInstanceOf(Int32Array);
  expect(b.sourceLengths).toBeInstanceOf(Int32Array);
  expect(b.ids.length).toBe(b.rows * b.width);
  expect(b.attentionMask.length).toBe(b.rows * b.width);
  return {
    ids: nums(b.ids),
    idsClass: b.ids.constructor.name,
    maskClass: b.attentionMask.constructor.name,
    rows: b.rows,
    width: b.width,
    lengths: Array.from(b.lengths),
    sourceLengths: Array.from(b.sourceLengths),
    attentionMask: nums(b.attentionMask) as number[],
  };
}

/** What a call gives: its batch as plain arrays, or its error's class and message. */
export type Settled = { ok: true; batch: ReturnType<typeof plain> } | { ok: false; name: string; message: string };

export function settled(f: () => VectorBatch<Dtype, MaskDtype>): Settled {
  try {
    return { ok: true, batch: plain(f()) };
  } catch (e) {
    const err = e as Error;
    return { ok: false, name: err.constructor.name, message: err.message };
  }
}

function outcome(f: () => VectorBatch<Dtype, MaskDtype>): RefOutcome {
  try {
    return plain(f());
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError) return { error: `${e.name}: ${e.message}` };
    throw e;
  }
}

/** Rows packed as vectorizeBytes takes them. */
export function pack(rows: Uint8Array[], start = 0): { bytes: Uint8Array; offsets: Uint32Array } {
  const total = rows.reduce((n, r) => n + r.length, start);
  const bytes = new Uint8Array(total).fill(0xff); // junk before offsets[0]
  const offsets = new Uint32Array(rows.length + 1);
  let at = start;
  offsets[0] = at;
  rows.forEach((r, i) => {
    bytes.set(r, at);
    at += r.length;
    offsets[i + 1] = at;
  });
  return { bytes, offsets };
}
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const packStrings = (rows: string[]): { bytes: Uint8Array; offsets: Uint32Array } => pack(rows.map(enc));

const ENCODINGS: Encoding[] = ['codepoint', 'utf8', 'utf16', 'byt5', 'canine'];
const DTYPES: Dtype[] = ['int32', 'int16', 'uint16', 'uint8', 'float32', 'int64'];
const MASK_DTYPES: MaskDtype[] = ['uint8', 'int32', 'int64'];
/** Pads only int64 holds, as bigints and as numbers (safe ones). */
const INT64_PADS: Array<number | bigint> = [-(2n ** 63n), 2n ** 63n - 1n, -1n, 2n ** 40n, -(2 ** 53 - 1), 2 ** 53 - 1, 5n];

/** Malformed UTF-8 rows, with what TextDecoder makes of them (checked in the suite too). */
const MALFORMED: Array<[string, number[], string]> = [
  ['stray continuation', [0x80], '\ufffd'],
  ['two stray continuations', [0x41, 0x80, 0xbf, 0x42], 'A\ufffd\ufffdB'],
  ['truncated 2-byte at end', [0x41, 0xc3], 'A\ufffd'],
  ['truncated 3-byte at end', [0xe2, 0x82], '\ufffd'],
  ['truncated 4-byte at end', [0xf0, 0x9f, 0x98], '\ufffd'],
  ['truncated 4-byte then ASCII', [0xf0, 0x9f, 0x98, 0x41], '\ufffdA'],
  ['truncated 3-byte then lead', [0xe2, 0x82, 0xe2, 0x82, 0xac], '\ufffd\u20ac'],
  ['overlong 2-byte NUL', [0xc0, 0x80], '\ufffd\ufffd'],
  ['overlong 3-byte', [0xe0, 0x80, 0x80], '\ufffd\ufffd\ufffd'],
  ['overlong 4-byte', [0xf0, 0x80, 0x80, 0x80], '\ufffd\ufffd\ufffd\ufffd'],
  ['UTF-8-encoded surrogate ED A0 80', [0xed, 0xa0, 0x80], '\ufffd\ufffd\ufffd'],
  ['encoded surrogate pair', [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80], '\ufffd'.repeat(6)],
  ['above U+10FFFF F4 90 80 80', [0xf4, 0x90, 0x80, 0x80], '\ufffd\ufffd\ufffd\ufffd'],
  ['F5 lead', [0xf5, 0x80], '\ufffd\ufffd'],
  ['FF and FE', [0xff, 0x61, 0xfe], '\ufffda\ufffd'],
  ['lead then lead', [0xc3, 0xc3, 0xa9], '\ufffd\u00e9'],
  ['BOM is kept', [0xef, 0xbb, 0xbf, 0x41], '\ufeffA'],
  ['max scalar F4 8F BF BF', [0xf4, 0x8f, 0xbf, 0xbf], '\u{10ffff}'],
  ['valid mix', [0x61, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80], 'aé€😀'],
];

/** Strings that stress surrogate handling. */
const TRICKY_STRINGS = ['', 'a', 'é', '€', '😀', '\ud800', '\udc00', 'a\ud83d', '\ude00b', '\ud83d\ude00\ud83d', '\uffff', '\u{10ffff}'];

const stringArb = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
      { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) },
      { weight: 2, arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => String.fromCodePoint(c)) },
      { weight: 1, arbitrary: fc.constantFrom(...TRICKY_STRINGS) },
    ),
    { maxLength: 14 },
  )
  .map((parts) => parts.join(''));

const optionsArb: fc.Arbitrary<Partial<RefOptions>> = fc
  .record({
    encoding: fc.constantFrom(...ENCODINGS),
    useVocab: fc.boolean(),
    vocabChars: fc.uniqueArray(fc.constantFrom('a', 'b', 'é', '😀', '\ufffd', '€', 'z', ' ', '\uffff'), { maxLength: 6 }),
    maxLength: fc.integer({ min: 1, max: 12 }),
    padding: fc.constantFrom('longest' as const, 'max-length' as const),
    padToMultipleOf: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
    paddingSide: fc.constantFrom('left' as const, 'right' as const),
    truncationSide: fc.constantFrom('left' as const, 'right' as const),
    padId: fc.integer({ min: 0, max: 255 }),
    bigPad: fc.option(fc.constantFrom(...INT64_PADS), { nil: undefined }),
    addSpecialTokens: fc.boolean(),
    dtype: fc.constantFrom(...DTYPES),
    maskDtype: fc.constantFrom(...MASK_DTYPES),
    invalid: fc.constantFrom('replace' as const, 'error' as const),
  })
  .map(({ useVocab, vocabChars, bigPad, ...o }) => {
    const S = !o.addSpecialTokens ? 0 : o.encoding === 'byt5' ? 1 : o.encoding === 'canine' ? 2 : 0;
    const r: Partial<RefOptions> = { ...o, maxLength: Math.max(o.maxLength, S) };
    if (o.dtype === 'int64' && bigPad !== undefined) r.padId = bigPad;
    if (o.padToMultipleOf === undefined) delete r.padToMultipleOf;
    if (useVocab && o.encoding === 'codepoint') r.vocab = vocabChars;
    return r;
  });

const bytesRowArb = fc.oneof(
  stringArb.map(enc),
  fc.uint8Array({ maxLength: 12 }),
  fc
    .array(fc.constantFrom(...MALFORMED.map(([, b]) => b), [0x61], [0xe2, 0x82, 0xac], [0xf0, 0x9f, 0x98, 0x80]), { maxLength: 4 })
    .map((parts) => Uint8Array.from(parts.flat())),
);

/** A typed array of `dtype` (or a maskDtype) of `n` elements, all `fill`. */
function newArray(dtype: Dtype, n: number, fill: number): VectorBatch<Dtype, MaskDtype>['ids'] {
  const ctor = { int32: Int32Array, int16: Int16Array, uint16: Uint16Array, uint8: Uint8Array, float32: Float32Array, int64: BigInt64Array }[dtype];
  const a = new ctor(n);
  if (a instanceof BigInt64Array) a.fill(BigInt(fill));
  else a.fill(fill);
  return a;
}

function expectThrow(f: () => unknown, cls: typeof TypeError | typeof RangeError, message: string): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${cls.name}: ${message}`).toBeInstanceOf(cls);
  expect((caught as Error).constructor).toBe(cls);
  expect((caught as Error).message).toBe(message);
}

// ---------------------------------------------------------------------------------------------

export function backendSuite(name: string, backend: Backend): void {
  const { vectorize, vectorizeBytes } = backend;
  const ids = (texts: unknown, options?: unknown): Array<number | bigint> => nums(vectorize(texts, options).ids);
  const idsOf = (texts: string[], options?: unknown): Array<Array<number | bigint>> => {
    const b = vectorize(texts, options);
    return Array.from({ length: b.rows }, (_, r) => nums(b.ids.subarray(r * b.width, (r + 1) * b.width)));
  };

  describe(`${name}: golden vectors`, () => {
    it('ByT5 hello', () => {
      const b = vectorize(['hello'], { encoding: 'byt5' });
      expect(plain(b)).toEqual({
        ids: [107, 104, 111, 111, 114, 1],
        idsClass: 'Int32Array',
        maskClass: 'Uint8Array',
        rows: 1,
        width: 6,
        lengths: [6],
        sourceLengths: [6],
        attentionMask: [1, 1, 1, 1, 1, 1],
      });
    });
    it('CANINE hi', () => {
      expect(ids(['hi'], { encoding: 'canine' })).toEqual([57344, 104, 105, 57345]);
    });
    it('vocab [a, b] on abc', () => {
      expect(ids(['abc'], { vocab: ['a', 'b'] })).toEqual([2, 3, 1]);
    });
    it('defaults: codepoint, longest, right padding with 0, int32', () => {
      expect(plain(vectorize(['ab', 'abcd', '']))).toEqual({
        ids: [97, 98, 0, 0, 97, 98, 99, 100, 0, 0, 0, 0],
        idsClass: 'Int32Array',
        maskClass: 'Uint8Array',
        rows: 3,
        width: 4,
        lengths: [2, 4, 0],
        sourceLengths: [2, 4, 0],
        attentionMask: [1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
      });
    });
    it('options undefined and {} mean the defaults', () => {
      expect(plain(vectorize(['xy'], undefined))).toEqual(plain(vectorize(['xy'], {})));
      expect(plain(vectorize(['xy'], { encoding: undefined, maxLength: undefined }))).toEqual(plain(vectorize(['xy'])));
    });
    it('default maxLength is 512', () => {
      const b = vectorize(['x'.repeat(600)]);
      expect(b.width).toBe(512);
      expect(Array.from(b.sourceLengths)).toEqual([600]);
      expect(Array.from(b.lengths)).toEqual([512]);
    });
    it('addSpecialTokens: false drops EOS, CLS and SEP', () => {
      expect(ids(['hi'], { encoding: 'byt5', addSpecialTokens: false })).toEqual([107, 108]);
      expect(ids(['hi'], { encoding: 'canine', addSpecialTokens: false })).toEqual([104, 105]);
    });
    it('vocab ids with astral, BMP, and U+FFFD standing for lone surrogates', () => {
      const vocab = ['😀', 'é', '\ufffd', 'a'];
      expect(ids(['aé😀x\udc00\ud800\ud800\udc00'], { vocab })).toEqual([5, 3, 2, 1, 4, 4, 1]);
      expect(ids(['\udc00a'], { vocab: [] })).toEqual([1, 1]);
    });
  });

  describe(`${name}: truncation and padding`, () => {
    const texts = ['abcdef', 'ab'];
    const cases: Array<[string, string, number[][]]> = [
      ['right', 'right', [[97, 98, 99, 100], [97, 98, 9, 9]]],
      ['right', 'left', [[97, 98, 99, 100], [9, 9, 97, 98]]],
      ['left', 'right', [[99, 100, 101, 102], [97, 98, 9, 9]]],
      ['left', 'left', [[99, 100, 101, 102], [9, 9, 97, 98]]],
    ];
    for (const [truncationSide, paddingSide, want] of cases) {
      it(`codepoint: truncation ${truncationSide}, padding ${paddingSide}`, () => {
        const b = vectorize(texts, { maxLength: 4, truncationSide, paddingSide, padId: 9 });
        expect(idsOf(texts, { maxLength: 4, truncationSide, paddingSide, padId: 9 })).toEqual(want);
        expect(nums(b.attentionMask)).toEqual(
          paddingSide === 'right' ? [1, 1, 1, 1, 1, 1, 0, 0] : [1, 1, 1, 1, 0, 0, 1, 1],
        );
        expect(Array.from(b.lengths)).toEqual([4, 2]);
        expect(Array.from(b.sourceLengths)).toEqual([6, 2]);
      });
    }
    const byt5: Array<[string, string, number[][]]> = [
      ['right', 'right', [[100, 101, 102, 1], [100, 101, 1, 7]]],
      ['right', 'left', [[100, 101, 102, 1], [7, 100, 101, 1]]],
      ['left', 'right', [[103, 104, 105, 1], [100, 101, 1, 7]]],
      ['left', 'left', [[103, 104, 105, 1], [7, 100, 101, 1]]],
    ];
    for (const [truncationSide, paddingSide, want] of byt5) {
      it(`byt5 keeps EOS: truncation ${truncationSide}, padding ${paddingSide}`, () => {
        const o = { encoding: 'byt5', maxLength: 4, truncationSide, paddingSide, padId: 7 };
        expect(idsOf(texts, o)).toEqual(want);
        const b = vectorize(texts, o);
        expect(Array.from(b.lengths)).toEqual([4, 3]);
        expect(Array.from(b.sourceLengths)).toEqual([7, 3]);
      });
    }
    const canine: Array<[string, string, number[][]]> = [
      ['right', 'right', [[0xe000, 97, 98, 99, 0xe001], [0xe000, 97, 98, 0xe001, 0]]],
      ['right', 'left', [[0xe000, 97, 98, 99, 0xe001], [0, 0xe000, 97, 98, 0xe001]]],
      ['left', 'right', [[0xe000, 100, 101, 102, 0xe001], [0xe000, 97, 98, 0xe001, 0]]],
      ['left', 'left', [[0xe000, 100, 101, 102, 0xe001], [0, 0xe000, 97, 98, 0xe001]]],
    ];
    for (const [truncationSide, paddingSide, want] of canine) {
      it(`canine keeps CLS and SEP: truncation ${truncationSide}, padding ${paddingSide}`, () => {
        const o = { encoding: 'canine', maxLength: 5, truncationSide, paddingSide };
        expect(idsOf(texts, o)).toEqual(want);
        expect(Array.from(vectorize(texts, o).sourceLengths)).toEqual([8, 4]);
      });
    }
    it('maxLength equal to S leaves only the specials', () => {
      expect(idsOf(['abc', ''], { encoding: 'canine', maxLength: 2 })).toEqual([[0xe000, 0xe001], [0xe000, 0xe001]]);
      expect(idsOf(['abc'], { encoding: 'byt5', maxLength: 1 })).toEqual([[1]]);
    });
    it('utf8 and byt5 cut inside a character', () => {
      expect(ids(['aé'], { encoding: 'utf8', maxLength: 2 })).toEqual([97, 0xc3]);
      expect(ids(['aé'], { encoding: 'utf8', maxLength: 2, truncationSide: 'left' })).toEqual([0xc3, 0xa9]);
      expect(ids(['aé'], { encoding: 'utf8', maxLength: 1, truncationSide: 'left' })).toEqual([0xa9]);
      expect(ids(['😀b'], { encoding: 'byt5', maxLength: 3, truncationSide: 'left' })).toEqual([131, 101, 1]);
      expect(ids(['😀b'], { encoding: 'byt5', maxLength: 3 })).toEqual([243, 162, 1]);
    });
    it('utf16 cuts inside a surrogate pair; codepoint does not', () => {
      expect(ids(['😀😀'], { encoding: 'utf16', maxLength: 3 })).toEqual([0xd83d, 0xde00, 0xd83d]);
      expect(ids(['😀😀'], { encoding: 'utf16', maxLength: 1, truncationSide: 'left' })).toEqual([0xde00]);
      expect(ids(['😀a😀'], { maxLength: 2 })).toEqual([0x1f600, 97]);
      expect(ids(['😀a😀'], { maxLength: 2, truncationSide: 'left' })).toEqual([97, 0x1f600]);
    });
    it("padding 'max-length' uses maxLength as the width", () => {
      const b = vectorize(['ab'], { padding: 'max-length', maxLength: 5, padId: 3 });
      expect(plain(b)).toMatchObject({ width: 5, ids: [97, 98, 3, 3, 3], attentionMask: [1, 1, 0, 0, 0], lengths: [2] });
    });
    it('padToMultipleOf rounds the width up', () => {
      expect(vectorize(['abc'], { padToMultipleOf: 4 }).width).toBe(4);
      expect(vectorize(['abcd'], { padToMultipleOf: 4 }).width).toBe(4);
      expect(vectorize(['abcde'], { padToMultipleOf: 4 }).width).toBe(8);
      expect(vectorize(['a'], { padding: 'max-length', maxLength: 5, padToMultipleOf: 4 }).width).toBe(8);
      expect(vectorize(['abcdefghij'], { maxLength: 6, padToMultipleOf: 4 }).width).toBe(8);
      expect(vectorize([''], { padToMultipleOf: 3 }).width).toBe(0);
      expect(ids(['ab'], { padToMultipleOf: 3, paddingSide: 'left', padId: 5 })).toEqual([5, 97, 98]);
    });
    it('zero rows', () => {
      for (const padding of ['longest', 'max-length'] as const) {
        const b = vectorize([], { padding, maxLength: 5 });
        expect(plain(b)).toEqual({
          ids: [],
          idsClass: 'Int32Array',
          maskClass: 'Uint8Array',
          rows: 0,
          width: padding === 'longest' ? 0 : 5,
          lengths: [],
          sourceLengths: [],
          attentionMask: [],
        });
        const bb = vectorizeBytes(new Uint8Array(0), new Uint32Array([0]), { padding, maxLength: 5 });
        expect(plain(bb)).toEqual(plain(b));
      }
      expect(vectorize([], { padding: 'max-length', maxLength: 5, padToMultipleOf: 4 }).width).toBe(8);
    });
    it('empty rows', () => {
      expect(plain(vectorize(['', ''], { encoding: 'byt5' }))).toMatchObject({ width: 1, ids: [1, 1], lengths: [1, 1] });
      expect(plain(vectorize(['', ''], { encoding: 'utf8' }))).toMatchObject({ width: 0, ids: [], lengths: [0, 0] });
      expect(plain(vectorize([''], { encoding: 'canine', paddingSide: 'left', padding: 'max-length', maxLength: 3 })))
        .toMatchObject({ ids: [0, 0xe000, 0xe001], attentionMask: [0, 1, 1] });
    });
  });

  describe(`${name}: dtypes`, () => {
    const ctors = { int32: Int32Array, int16: Int16Array, uint16: Uint16Array, uint8: Uint8Array, float32: Float32Array, int64: BigInt64Array };
    for (const dtype of DTYPES) {
      it(`${dtype} gives ${ctors[dtype].name}`, () => {
        const b = vectorize(['ab', 'c'], { dtype });
        expect(b.ids).toBeInstanceOf(ctors[dtype]);
        expect(b.ids.constructor).toBe(ctors[dtype]);
        expect(nums(b.ids)).toEqual([97, 98, 99, 0]);
        const bb = vectorizeBytes(enc('abc'), new Uint32Array([0, 2, 3]), { dtype });
        expect(bb.ids.constructor).toBe(ctors[dtype]);
        expect(plain(bb)).toEqual(plain(b));
      });
    }
    it('padId at the ends of each range', () => {
      expect(ids([''], { padding: 'max-length', maxLength: 1, padId: -2147483648 })).toEqual([-2147483648]);
      expect(ids([''], { padding: 'max-length', maxLength: 1, padId: 2147483647 })).toEqual([2147483647]);
      expect(ids([''], { padding: 'max-length', maxLength: 1, padId: -32768, dtype: 'int16' })).toEqual([-32768]);
      expect(ids([''], { padding: 'max-length', maxLength: 1, padId: 65535, dtype: 'uint16' })).toEqual([65535]);
      expect(ids([''], { padding: 'max-length', maxLength: 1, padId: 255, dtype: 'uint8' })).toEqual([255]);
      expect(ids([''], { padding: 'max-length', maxLength: 1, padId: -16777216, dtype: 'float32' })).toEqual([-16777216]);
      expect(ids([''], { padding: 'max-length', maxLength: 1, padId: 16777216, dtype: 'float32' })).toEqual([16777216]);
      // int64: any int64 as a bigint, any safe integer as a number.
      const one = (padId: number | bigint) => vectorize([''], { padding: 'max-length', maxLength: 1, padId, dtype: 'int64' }).ids[0];
      expect(one(-(2n ** 63n))).toBe(-(2n ** 63n));
      expect(one(2n ** 63n - 1n)).toBe(2n ** 63n - 1n);
      expect(one(Number.MAX_SAFE_INTEGER)).toBe(BigInt(Number.MAX_SAFE_INTEGER));
      expect(one(Number.MIN_SAFE_INTEGER)).toBe(BigInt(Number.MIN_SAFE_INTEGER));
      expect(one(-1)).toBe(-1n);
      expect(one(-0)).toBe(0n);
    });
    for (const maskDtype of MASK_DTYPES) {
      it(`maskDtype ${maskDtype} gives ${MASK_CLASS_OF[maskDtype]}, for strings and bytes`, () => {
        for (const paddingSide of ['left', 'right']) {
          const o = { maskDtype, paddingSide, dtype: 'int64' };
          const b = vectorize(['ab', 'c', ''], o);
          expect(b.attentionMask.constructor.name).toBe(MASK_CLASS_OF[maskDtype]);
          expect(nums(b.attentionMask)).toEqual(paddingSide === 'right' ? [1, 1, 1, 0, 0, 0] : [1, 1, 0, 1, 0, 0]);
          const bb = vectorizeBytes(enc('abc'), new Uint32Array([0, 2, 3, 3]), o);
          expect(plain(bb)).toEqual(plain(b));
          expect(plain(b)).toEqual(reference(['ab', 'c', ''], o as Partial<RefOptions>));
        }
      });
    }
    it('int64 ids with a pad whose high word is not zero, into reused buffers holding other pads', () => {
      // The token columns must have zero high words whatever the buffer held and the pad is.
      const out = { ids: new BigInt64Array(40).fill(-(2n ** 62n)), attentionMask: new BigInt64Array(40).fill(7n) };
      const rows = ['hello', '', 'wörld 😀', 'x\ud800y'];
      for (const padId of [-1n, 2n ** 40n, -(2n ** 63n), 0, 3, -7]) {
        for (const encoding of ENCODINGS) {
          for (const paddingSide of ['left', 'right'] as const) {
            const o = { dtype: 'int64', maskDtype: 'int64', padId, encoding, paddingSide, maxLength: 9 } as const;
            const want = reference(rows, o);
            expect(plain(vectorize(rows, { ...o, out }))).toEqual(want);
            expect(plain(vectorize(rows, o))).toEqual(want);
            const { bytes, offsets } = packStrings(rows);
            expect(plain(vectorizeBytes(bytes, offsets, { ...o, out }))).toEqual(referenceBytes(rows.map(enc), o));
          }
        }
      }
    });
    it('padId -0 writes +0 (byte-identical float32)', () => {
      const b = vectorize(['a'], { padding: 'max-length', maxLength: 2, padId: -0, dtype: 'float32' });
      expect(Object.is(b.ids[1], 0)).toBe(true);
    });
    it('ids at the top of a narrow dtype fit', () => {
      expect(ids(['\u7fff'], { dtype: 'int16' })).toEqual([32767]);
      expect(ids(['\uffff'], { dtype: 'uint16', encoding: 'utf16' })).toEqual([65535]);
      expect(ids(['ÿ'], { dtype: 'uint8' })).toEqual([255]);
      expect(ids(['\u{10ffff}'], { dtype: 'float32' })).toEqual([0x10ffff]);
      expect(ids(['😀'], { dtype: 'uint8', encoding: 'byt5' })).toEqual([243, 162, 155, 131, 1]);
      expect(ids(['ab'], { dtype: 'uint16', encoding: 'canine' })).toEqual([57344, 97, 98, 57345]);
      // Only kept ids are checked.
      expect(ids(['Āa'], { dtype: 'uint8', maxLength: 1, truncationSide: 'left' })).toEqual([97]);
      expect(ids(['a😀'], { dtype: 'uint16', maxLength: 1 })).toEqual([97]);
    });
  });

  describe(`${name}: astral characters and lone surrogates`, () => {
    const table: Array<[string, Record<Encoding, number[]>]> = [
      ['😀', { codepoint: [0x1f600], utf8: [240, 159, 152, 128], utf16: [0xd83d, 0xde00], byt5: [243, 162, 155, 131, 1], canine: [57344, 0x1f600, 57345] }],
      ['\ud800', { codepoint: [0xfffd], utf8: [239, 191, 189], utf16: [0xd800], byt5: [242, 194, 192, 1], canine: [57344, 0xfffd, 57345] }],
      ['\udc00a\ud83d', { codepoint: [0xfffd, 97, 0xfffd], utf8: [239, 191, 189, 97, 239, 191, 189], utf16: [0xdc00, 97, 0xd83d], byt5: [242, 194, 192, 100, 242, 194, 192, 1], canine: [57344, 0xfffd, 97, 0xfffd, 57345] }],
      ['\ude00\ud83d', { codepoint: [0xfffd, 0xfffd], utf8: [239, 191, 189, 239, 191, 189], utf16: [0xde00, 0xd83d], byt5: [242, 194, 192, 242, 194, 192, 1], canine: [57344, 0xfffd, 0xfffd, 57345] }],
      ['é€', { codepoint: [0xe9, 0x20ac], utf8: [0xc3, 0xa9, 0xe2, 0x82, 0xac], utf16: [0xe9, 0x20ac], byt5: [0xc6, 0xac, 0xe5, 0x85, 0xaf, 1], canine: [57344, 0xe9, 0x20ac, 57345] }],
    ];
    for (const [text, byEncoding] of table) {
      for (const encoding of ENCODINGS) {
        it(`${JSON.stringify(text)} as ${encoding}`, () => {
          const want = byEncoding[encoding];
          const b = vectorize([text], { encoding });
          expect(nums(b.ids)).toEqual(want);
          expect(Array.from(b.sourceLengths)).toEqual([want.length]);
          // From bytes: the same as the TextEncoder-replaced string, except utf16 keeps code units
          // of the decoded string.
          const bytes = enc(text);
          const fromBytes = vectorizeBytes(bytes, new Uint32Array([0, bytes.length]), { encoding });
          expect(plain(fromBytes)).toEqual(plain(vectorize([new TextDecoder().decode(bytes)], { encoding })));
        });
      }
    }
    it("invalid: 'error' names the first lone surrogate of the lowest row", () => {
      expectThrow(() => vectorize(['ok', 'a😀\udc00\ud800', '\ud800'], { invalid: 'error' }), TypeError,
        "row 1 contains a lone surrogate at code unit 3 (options.invalid is 'error')");
      for (const encoding of ['codepoint', 'utf8', 'byt5', 'canine']) {
        expectThrow(() => vectorize(['abc\ud83d'], { invalid: 'error', encoding }), TypeError,
          "row 0 contains a lone surrogate at code unit 3 (options.invalid is 'error')");
      }
    });
    it("invalid: 'error' checks the whole row, not only the kept part", () => {
      expectThrow(() => vectorize(['abc\ud800'], { invalid: 'error', maxLength: 1 }), TypeError,
        "row 0 contains a lone surrogate at code unit 3 (options.invalid is 'error')");
    });
    it("invalid: 'error' never fires for utf16 strings", () => {
      expect(ids(['\ud800x'], { invalid: 'error', encoding: 'utf16' })).toEqual([0xd800, 120]);
    });
    it("invalid: 'error' accepts well-formed pairs", () => {
      expect(ids(['😀'], { invalid: 'error' })).toEqual([0x1f600]);
    });
  });

  describe(`${name}: malformed UTF-8`, () => {
    for (const [label, bytes, decoded] of MALFORMED) {
      it(label, () => {
        const row = Uint8Array.from(bytes);
        expect(decodeRow(row)).toBe(decoded);
        for (const encoding of ENCODINGS) {
          const { bytes: b, offsets } = pack([row], 3);
          const got = plain(vectorizeBytes(b, offsets, { encoding }));
          expect(got).toEqual(plain(vectorize([decoded], { encoding })));
        }
        const units = nums(vectorizeBytes(row, new Uint32Array([0, row.length]), { encoding: 'utf16' }).ids);
        expect(String.fromCharCode(...(units as number[]))).toBe(decoded);
      });
    }
    it('rows are decoded independently: a sequence cut by an offset is two errors', () => {
      const bytes = Uint8Array.from([0x61, 0xe2, 0x82, 0xac, 0x62]);
      const b = vectorizeBytes(bytes, new Uint32Array([0, 2, 5]), { encoding: 'utf16' });
      expect(nums(b.ids)).toEqual([97, 0xfffd, 0, 0xfffd, 0xfffd, 98]);
      expect(b.width).toBe(3);
    });
    it("invalid: 'error' names the row and the first byte of the first ill-formed subpart", () => {
      const rows = [enc('fine'), Uint8Array.from([0x41, 0x42, 0xe2, 0x82, 0x41, 0x80]), Uint8Array.from([0x80])];
      const { bytes, offsets } = pack(rows, 2);
      for (const encoding of ENCODINGS) {
        expectThrow(() => vectorizeBytes(bytes, offsets, { invalid: 'error', encoding }), TypeError,
          "row 1 is not valid UTF-8 at byte 2 (options.invalid is 'error')");
      }
      const cases: Array<[number[], number]> = [
        [[0x80], 0],
        [[0x61, 0xc3], 1],
        [[0x61, 0xed, 0xa0, 0x80], 1],
        [[0xf4, 0x90, 0x80, 0x80], 0],
        [[0xe0, 0x9f, 0x80], 0],
        [[0xef, 0xbb, 0xbf, 0xc0], 3],
        [[0x61, 0xf0, 0x9f, 0x98, 0x80, 0xf0, 0x9f, 0x98], 5],
      ];
      for (const [row, at] of cases) {
        expectThrow(() => vectorizeBytes(Uint8Array.from(row), new Uint32Array([0, row.length]), { invalid: 'error' }),
          TypeError, `row 0 is not valid UTF-8 at byte ${at} (options.invalid is 'error')`);
        expect(refFirstInvalidByte(Uint8Array.from(row))).toBe(at);
      }
    });
    it("invalid: 'error' accepts valid UTF-8 including a BOM and U+FFFD itself", () => {
      const row = Uint8Array.from([0xef, 0xbb, 0xbf, 0xef, 0xbf, 0xbd]);
      expect(nums(vectorizeBytes(row, new Uint32Array([0, 6]), { invalid: 'error' }).ids)).toEqual([0xfeff, 0xfffd]);
    });
  });

  describe(`${name}: bytes input`, () => {
    it('vectorizeBytes(TextEncoder rows) equals vectorize(rows) for every encoding', () => {
      const rows = ['hello', '', 'aé€😀', '\u{10ffff}x', 'x'.repeat(40)];
      const { bytes, offsets } = packStrings(rows);
      for (const encoding of ENCODINGS) {
        for (const truncationSide of ['left', 'right']) {
          const o = { encoding, maxLength: 7, truncationSide, paddingSide: truncationSide };
          expect(plain(vectorizeBytes(bytes, offsets, o))).toEqual(plain(vectorize(rows, o)));
        }
      }
    });
    it('accepts a Buffer, a SharedArrayBuffer view, and offsets not starting at 0', () => {
      const want = plain(vectorize(['ab', 'cde']));
      expect(plain(vectorizeBytes(Buffer.from('ab' + 'cde'), new Uint32Array([0, 2, 5])))).toEqual(want);
      const shared = new Uint8Array(new SharedArrayBuffer(16), 3, 10);
      shared.set(enc('zzabcde'));
      expect(plain(vectorizeBytes(shared, new Uint32Array([2, 4, 7])))).toEqual(want);
      const offsetsView = new Uint32Array(new SharedArrayBuffer(16), 4, 3);
      offsetsView.set([2, 4, 7]);
      expect(plain(vectorizeBytes(shared, offsetsView))).toEqual(want);
    });
    it('a single offset is zero rows; equal offsets are empty rows', () => {
      expect(vectorizeBytes(enc('abc'), new Uint32Array([3])).rows).toBe(0);
      expect(plain(vectorizeBytes(enc('abc'), new Uint32Array([1, 1, 3])))).toEqual(plain(vectorize(['', 'bc'])));
    });
  });

  describe(`${name}: out buffers`, () => {
    it('an empty batch needs nothing of its out buffers: detached ones are fine', () => {
      const ids = new Int32Array(4);
      const mask = new Uint8Array(4);
      structuredClone(ids.buffer, { transfer: [ids.buffer] });
      structuredClone(mask.buffer, { transfer: [mask.buffer] });
      expect(vectorize([], { out: { ids, attentionMask: mask } })).toMatchObject({ rows: 0, width: 0 });
      expect(vectorize(['', ''], { out: { ids, attentionMask: mask } })).toMatchObject({ rows: 2, width: 0 });
    });
    it('writes into exactly-sized out buffers', () => {
      const out = { ids: new Int32Array(6).fill(-5), attentionMask: new Uint8Array(6).fill(9) };
      const b = vectorize(['abc', 'a'], { out });
      expect(b.ids.buffer).toBe(out.ids.buffer);
      expect(b.attentionMask.buffer).toBe(out.attentionMask.buffer);
      expect(nums(out.ids)).toEqual([97, 98, 99, 97, 0, 0]);
      expect(nums(out.attentionMask)).toEqual([1, 1, 1, 1, 0, 0]);
    });
    it('returns subarray views of longer out buffers and leaves the rest alone', () => {
      const out = { ids: new Uint16Array(10).fill(7777), attentionMask: new Uint8Array(10).fill(9) };
      const b = vectorize(['ab', ''], { dtype: 'uint16', out, paddingSide: 'left' });
      expect(b.ids).toBeInstanceOf(Uint16Array);
      expect(b.ids.length).toBe(4);
      expect(b.ids.buffer).toBe(out.ids.buffer);
      expect(b.ids.byteOffset).toBe(0);
      expect(b.attentionMask.length).toBe(4);
      expect(b.attentionMask.buffer).toBe(out.attentionMask.buffer);
      expect(nums(out.ids)).toEqual([97, 98, 0, 0, 7777, 7777, 7777, 7777, 7777, 7777]);
      expect(nums(out.attentionMask)).toEqual([1, 1, 0, 0, 9, 9, 9, 9, 9, 9]);
    });
    it('reused buffers give the same batch as fresh ones (stale content is overwritten)', () => {
      const out = { ids: new Int32Array(64), attentionMask: new Uint8Array(64) };
      const rowsA = ['a long row of text', 'x', '😀\ud800é'];
      const rowsB = ['bc', '', 'é😀'];
      for (const paddingSide of ['left', 'right']) {
        for (const padId of [0, 3]) {
          for (const encoding of ENCODINGS) {
            const o = { paddingSide, padId, encoding };
            vectorize(rowsA, { ...o, out, padding: 'max-length', maxLength: 20 });
            expect(plain(vectorize(rowsB, { ...o, out }))).toEqual(plain(vectorize(rowsB, o)));
            const { bytes, offsets } = packStrings(rowsA);
            vectorizeBytes(bytes, offsets, { ...o, out, padding: 'max-length', maxLength: 20 });
            const p = packStrings(rowsB);
            expect(plain(vectorizeBytes(p.bytes, p.offsets, { ...o, out }))).toEqual(plain(vectorize(rowsB, o)));
          }
        }
      }
    });
    it('only one of ids / attentionMask may be given; a Buffer serves for uint8 ids', () => {
      const mask = new Uint8Array(4);
      const b = vectorize(['ab', 'c'], { out: { attentionMask: mask } });
      expect(b.attentionMask.buffer).toBe(mask.buffer);
      expect(b.ids).toBeInstanceOf(Int32Array);
      const buf = Buffer.alloc(4);
      const c = vectorize(['ab', 'c'], { dtype: 'uint8', out: { ids: buf } });
      expect(Array.from(buf)).toEqual([97, 98, 99, 0]);
      expect(c.ids.buffer).toBe(buf.buffer);
    });
    it('views of one buffer that do not overlap are fine, for bytes input too', () => {
      const ab = new ArrayBuffer(64);
      const bytes = new Uint8Array(ab, 0, 8);
      bytes.set(enc('abcdefgh'));
      const out = { ids: new Uint8Array(ab, 8, 8), attentionMask: new Uint8Array(ab, 16, 8) };
      const b = vectorizeBytes(bytes, new Uint32Array([0, 4, 8]), { dtype: 'uint8', out });
      expect(plain(b)).toEqual(plain(vectorize(['abcd', 'efgh'], { dtype: 'uint8' })));
      // Adjacent and empty views touch but do not overlap.
      const out2 = { ids: new Uint8Array(ab, 8, 0), attentionMask: new Uint8Array(ab, 8, 0) };
      expect(vectorizeBytes(bytes, new Uint32Array([0]), { dtype: 'uint8', out: out2 }).rows).toBe(0);
    });
  });

  describe(`${name}: errors`, () => {
    it('each row is read once: a getter that would answer differently the second time is not asked again', () => {
      let reads = 0;
      const texts = [''];
      Object.defineProperty(texts, 0, { get: () => (++reads === 1 ? 'ab' : 'zzzz\uD800') });
      expect(plain(vectorize(texts))).toEqual(plain(vectorize(['ab'])));
      expect(reads).toBe(1);
    });
    const E = TypeError;
    const R = RangeError;
    const s = (options: unknown, texts: unknown = ['a']) => () => vectorize(texts, options);
    type Row = [string, () => unknown, typeof TypeError | typeof RangeError, string];
    const bytes2 = enc('ab');
    const off2 = new Uint32Array([0, 1, 2]);
    const table: Row[] = [
      // 1
      ['texts string', () => vectorize('abc'), E, 'texts must be an array of strings, got string'],
      ['texts null', () => vectorize(null), E, 'texts must be an array of strings, got null'],
      ['texts undefined', () => vectorize(undefined), E, 'texts must be an array of strings, got undefined'],
      ['texts object', () => vectorize({ length: 0 }), E, 'texts must be an array of strings, got object'],
      ['texts typed array', () => vectorize(new Uint8Array(1)), E, 'texts must be an array of strings, got object'],
      ['texts before options', () => vectorize(5, { bogus: 1 }), E, 'texts must be an array of strings, got number'],
      ['bytes string', () => vectorizeBytes('ab', off2), E, 'bytes must be a Uint8Array, got string'],
      ['bytes array', () => vectorizeBytes([97], off2), E, 'bytes must be a Uint8Array, got Array'],
      ['bytes null', () => vectorizeBytes(null, off2), E, 'bytes must be a Uint8Array, got null'],
      ['bytes Uint8ClampedArray', () => vectorizeBytes(new Uint8ClampedArray(2), off2), E, 'bytes must be a Uint8Array, got Uint8ClampedArray'],
      ['bytes Int8Array', () => vectorizeBytes(new Int8Array(2), off2), E, 'bytes must be a Uint8Array, got Int8Array'],
      ['bytes ArrayBuffer', () => vectorizeBytes(new ArrayBuffer(2), off2), E, 'bytes must be a Uint8Array, got ArrayBuffer'],
      ['bytes before offsets', () => vectorizeBytes(1, 2), E, 'bytes must be a Uint8Array, got number'],
      ['offsets Int32Array', () => vectorizeBytes(bytes2, new Int32Array(2)), E, 'offsets must be a Uint32Array, got Int32Array'],
      ['offsets array', () => vectorizeBytes(bytes2, [0, 2]), E, 'offsets must be a Uint32Array, got Array'],
      ['offsets undefined', () => vectorizeBytes(bytes2, undefined), E, 'offsets must be a Uint32Array, got undefined'],
      ['offsets before options', () => vectorizeBytes(bytes2, [0], 5), E, 'offsets must be a Uint32Array, got Array'],
      // 2
      ['options null', s(null), E, 'options must be an object, got null'],
      ['options number', s(5), E, 'options must be an object, got number'],
      ['options string', s('utf8'), E, 'options must be an object, got string'],
      ['options array', s([]), E, 'options must be an object, got Array'],
      ['options Map', s(new Map()), E, 'options must be an object, got Map'],
      ['options before rows', s(null, [1]), E, 'options must be an object, got null'],
      ['bytes options', () => vectorizeBytes(bytes2, off2, 'x'), E, 'options must be an object, got string'],
      ['unknown key', s({ maxlength: 3 }), E, "unknown option 'maxlength'"],
      ['unknown key before enum', s({ encoding: 'x', zz: 1 }), E, "unknown option 'zz'"],
      ['encoding', s({ encoding: 'latin1' }), E, "options.encoding must be one of 'codepoint', 'utf8', 'utf16', 'byt5', 'canine', got 'latin1'"],
      ['encoding number', s({ encoding: 8 }), E, "options.encoding must be one of 'codepoint', 'utf8', 'utf16', 'byt5', 'canine', got 8"],
      ['encoding null', s({ encoding: null }), E, "options.encoding must be one of 'codepoint', 'utf8', 'utf16', 'byt5', 'canine', got null"],
      ['padding', s({ padding: 'max' }), E, "options.padding must be one of 'longest', 'max-length', got 'max'"],
      ['paddingSide', s({ paddingSide: 'top' }), E, "options.paddingSide must be one of 'left', 'right', got 'top'"],
      ['truncationSide', s({ truncationSide: true }), E, "options.truncationSide must be one of 'left', 'right', got true"],
      ['dtype', s({ dtype: 'int8' }), E, "options.dtype must be one of 'int32', 'int16', 'uint16', 'uint8', 'float32', 'int64', got 'int8'"],
      ['dtype bigint64', s({ dtype: 'bigint64' }), E, "options.dtype must be one of 'int32', 'int16', 'uint16', 'uint8', 'float32', 'int64', got 'bigint64'"],
      ['maskDtype', s({ maskDtype: 'bool' }), E, "options.maskDtype must be one of 'uint8', 'int32', 'int64', got 'bool'"],
      ['maskDtype float32', s({ maskDtype: 'float32' }), E, "options.maskDtype must be one of 'uint8', 'int32', 'int64', got 'float32'"],
      ['maskDtype null', s({ maskDtype: null }), E, "options.maskDtype must be one of 'uint8', 'int32', 'int64', got null"],
      ['dtype before maskDtype', s({ maskDtype: 'x', dtype: 'y' }), E, "options.dtype must be one of 'int32', 'int16', 'uint16', 'uint8', 'float32', 'int64', got 'y'"],
      ['maskDtype before invalid', s({ maskDtype: 'x', invalid: 'y' }), E, "options.maskDtype must be one of 'uint8', 'int32', 'int64', got 'x'"],
      ['invalid', s({ invalid: 'ignore' }), E, "options.invalid must be one of 'replace', 'error', got 'ignore'"],
      ['enum before integer', s({ maxLength: 0, dtype: 'x' }), E, "options.dtype must be one of 'int32', 'int16', 'uint16', 'uint8', 'float32', 'int64', got 'x'"],
      ['maxLength 0', s({ maxLength: 0 }), R, 'options.maxLength must be an integer >= 1, got 0'],
      ['maxLength -3', s({ maxLength: -3 }), R, 'options.maxLength must be an integer >= 1, got -3'],
      ['maxLength 1.5', s({ maxLength: 1.5 }), R, 'options.maxLength must be an integer >= 1, got 1.5'],
      ['maxLength NaN', s({ maxLength: NaN }), R, 'options.maxLength must be an integer >= 1, got NaN'],
      ['maxLength Infinity', s({ maxLength: Infinity }), R, 'options.maxLength must be an integer >= 1, got Infinity'],
      ['maxLength 2^31', s({ maxLength: 2147483648 }), R, 'options.maxLength must be an integer >= 1, got 2147483648'],
      ['maxLength string', s({ maxLength: '5' }), E, 'options.maxLength must be a number, got string'],
      ['maxLength null', s({ maxLength: null }), E, 'options.maxLength must be a number, got null'],
      ['padToMultipleOf 0', s({ padToMultipleOf: 0 }), R, 'options.padToMultipleOf must be an integer >= 1, got 0'],
      ['padToMultipleOf bigint', s({ padToMultipleOf: 8n }), E, 'options.padToMultipleOf must be a number, got bigint'],
      ['maxLength before padToMultipleOf', s({ padToMultipleOf: 0, maxLength: 0 }), R, 'options.maxLength must be an integer >= 1, got 0'],
      ['addSpecialTokens', s({ addSpecialTokens: 'yes' }), E, 'options.addSpecialTokens must be a boolean, got string'],
      ['addSpecialTokens number', s({ addSpecialTokens: 1 }), E, 'options.addSpecialTokens must be a boolean, got number'],
      ['integer before addSpecialTokens', s({ addSpecialTokens: 1, maxLength: 0 }), R, 'options.maxLength must be an integer >= 1, got 0'],
      ['vocab string', s({ vocab: 'ab' }), E, 'options.vocab must be an array of single-character strings, got string'],
      ['vocab Set', s({ vocab: new Set(['a']) }), E, 'options.vocab must be an array of single-character strings, got Set'],
      ['vocab null', s({ vocab: null }), E, 'options.vocab must be an array of single-character strings, got null'],
      ['vocab two chars', s({ vocab: ['a', 'bc'] }), E, "options.vocab[1] must be a single code point, got 'bc'"],
      ['vocab empty string', s({ vocab: [''] }), E, "options.vocab[0] must be a single code point, got ''"],
      ['vocab lone surrogate', s({ vocab: ['a', '\ud800'] }), E, "options.vocab[1] must be a single code point, got '\ud800'"],
      ['vocab char + combining', s({ vocab: ['e\u0301'] }), E, "options.vocab[0] must be a single code point, got 'e\u0301'"],
      ['vocab number', s({ vocab: ['a', 5] }), E, 'options.vocab[1] must be a single code point, got number'],
      ['vocab hole', s({ vocab: [, 'a'] }), E, 'options.vocab[0] must be a single code point, got undefined'],
      ['vocab repeat', s({ vocab: ['a', 'b', '😀', 'a'] }), R, "options.vocab[3] repeats 'a' (first at index 0)"],
      ['vocab repeat astral', s({ vocab: ['😀', 'b', '😀'] }), R, "options.vocab[2] repeats '😀' (first at index 0)"],
      ['vocab element checked before later repeat', s({ vocab: ['a', 'a', 'bc'] }), R, "options.vocab[1] repeats 'a' (first at index 0)"],
      ['vocab with utf8', s({ vocab: ['a'], encoding: 'utf8' }), E, "options.vocab is only valid with encoding 'codepoint', got 'utf8'"],
      ['vocab with canine', s({ vocab: [], encoding: 'canine' }), E, "options.vocab is only valid with encoding 'codepoint', got 'canine'"],
      ['vocab elements before encoding', s({ vocab: ['ab'], encoding: 'utf8' }), E, "options.vocab[0] must be a single code point, got 'ab'"],
      ['addSpecialTokens before vocab', s({ vocab: 1, addSpecialTokens: 1 }), E, 'options.addSpecialTokens must be a boolean, got number'],
      ['maxLength < S canine', s({ encoding: 'canine', maxLength: 1 }), R, "options.maxLength must be >= 2 to hold the special tokens of encoding 'canine'"],
      ['vocab before maxLength < S', s({ encoding: 'canine', maxLength: 1, vocab: [] }), E, "options.vocab is only valid with encoding 'codepoint', got 'canine'"],
      ['padId uint8 256', s({ dtype: 'uint8', padId: 256 }), R, "options.padId must be an integer in [0, 255] for dtype 'uint8', got 256"],
      ['padId uint16 -1', s({ dtype: 'uint16', padId: -1 }), R, "options.padId must be an integer in [0, 65535] for dtype 'uint16', got -1"],
      ['padId int16', s({ dtype: 'int16', padId: 40000 }), R, "options.padId must be an integer in [-32768, 32767] for dtype 'int16', got 40000"],
      ['padId int32 fraction', s({ padId: 0.5 }), R, "options.padId must be an integer in [-2147483648, 2147483647] for dtype 'int32', got 0.5"],
      ['padId int32 2^31', s({ padId: 2147483648 }), R, "options.padId must be an integer in [-2147483648, 2147483647] for dtype 'int32', got 2147483648"],
      ['padId float32', s({ dtype: 'float32', padId: 16777217 }), R, "options.padId must be an integer in [-16777216, 16777216] for dtype 'float32', got 16777217"],
      ['padId NaN', s({ padId: NaN }), R, "options.padId must be an integer in [-2147483648, 2147483647] for dtype 'int32', got NaN"],
      ['padId string', s({ padId: '0' }), E, 'options.padId must be a number, got string'],
      ['padId bigint for int32', s({ padId: 0n }), E, "options.padId must be a number for dtype 'int32' (a bigint only for 'int64'), got bigint"],
      ['padId bigint for float32', s({ padId: 5n, dtype: 'float32' }), E, "options.padId must be a number for dtype 'float32' (a bigint only for 'int64'), got bigint"],
      ['padId string for int64', s({ padId: '0', dtype: 'int64' }), E, "options.padId must be a number or a bigint for dtype 'int64', got string"],
      ['padId null for int64', s({ padId: null, dtype: 'int64' }), E, "options.padId must be a number or a bigint for dtype 'int64', got null"],
      ['padId above int64', s({ padId: 2n ** 63n, dtype: 'int64' }), R, "options.padId must be an integer in [-9223372036854775808, 9223372036854775807] for dtype 'int64', got 9223372036854775808"],
      ['padId below int64', s({ padId: -(2n ** 63n) - 1n, dtype: 'int64' }), R, "options.padId must be an integer in [-9223372036854775808, 9223372036854775807] for dtype 'int64', got -9223372036854775809"],
      ['padId unsafe number for int64', s({ padId: 2 ** 53, dtype: 'int64' }), R, "options.padId must be a safe integer, or a bigint, for dtype 'int64', got 9007199254740992"],
      ['padId 2^63 number for int64', s({ padId: 2 ** 63, dtype: 'int64' }), R, "options.padId must be a safe integer, or a bigint, for dtype 'int64', got 9223372036854776000"],
      ['padId fraction for int64', s({ padId: 1.5, dtype: 'int64' }), R, "options.padId must be a safe integer, or a bigint, for dtype 'int64', got 1.5"],
      ['padId NaN for int64', s({ padId: NaN, dtype: 'int64' }), R, "options.padId must be a safe integer, or a bigint, for dtype 'int64', got NaN"],
      ['maxLength < S before padId', s({ encoding: 'canine', maxLength: 1, padId: -1, dtype: 'uint8' }), R, "options.maxLength must be >= 2 to hold the special tokens of encoding 'canine'"],
      ['canine int16', s({ encoding: 'canine', dtype: 'int16' }), R, "encoding 'canine' special token 57344 does not fit dtype 'int16' (max 32767)"],
      ['canine uint8', s({ encoding: 'canine', dtype: 'uint8' }), R, "encoding 'canine' special token 57344 does not fit dtype 'uint8' (max 255)"],
      ['canine specials with zero rows', s({ encoding: 'canine', dtype: 'uint8' }, []), R, "encoding 'canine' special token 57344 does not fit dtype 'uint8' (max 255)"],
      ['padId before canine specials', s({ encoding: 'canine', dtype: 'uint8', padId: 300 }), R, "options.padId must be an integer in [0, 255] for dtype 'uint8', got 300"],
      ['canine specials before out', s({ encoding: 'canine', dtype: 'int16', out: 1 }), R, "encoding 'canine' special token 57344 does not fit dtype 'int16' (max 32767)"],
      ['out number', s({ out: 1 }), E, 'options.out must be an object, got number'],
      ['out null', s({ out: null }), E, 'options.out must be an object, got null'],
      ['out typed array', s({ out: new Int32Array(4) }), E, 'options.out must be an object, got Int32Array'],
      ['out unknown key', s({ out: { mask: new Uint8Array(1) } }), E, "unknown option 'out.mask'"],
      ['out.ids class', s({ out: { ids: new Float32Array(4) } }), E, "options.out.ids must be a Int32Array for dtype 'int32', got Float32Array"],
      ['out.ids for uint8', s({ dtype: 'uint8', out: { ids: new Int8Array(4) } }), E, "options.out.ids must be a Uint8Array for dtype 'uint8', got Int8Array"],
      ['out.ids array', s({ dtype: 'float32', out: { ids: [0] } }), E, "options.out.ids must be a Float32Array for dtype 'float32', got Array"],
      ['out.ids null', s({ out: { ids: null } }), E, "options.out.ids must be a Int32Array for dtype 'int32', got null"],
      ['out.attentionMask', s({ out: { attentionMask: new Int8Array(4) } }), E, "options.out.attentionMask must be a Uint8Array for maskDtype 'uint8', got Int8Array"],
      ['out.attentionMask clamped', s({ out: { attentionMask: new Uint8ClampedArray(4) } }), E, "options.out.attentionMask must be a Uint8Array for maskDtype 'uint8', got Uint8ClampedArray"],
      ['out.attentionMask uint8 for int64', s({ maskDtype: 'int64', out: { attentionMask: new Uint8Array(4) } }), E, "options.out.attentionMask must be a BigInt64Array for maskDtype 'int64', got Uint8Array"],
      ['out.attentionMask BigUint64Array', s({ maskDtype: 'int64', out: { attentionMask: new BigUint64Array(4) } }), E, "options.out.attentionMask must be a BigInt64Array for maskDtype 'int64', got BigUint64Array"],
      ['out.attentionMask for int32', s({ maskDtype: 'int32', out: { attentionMask: new Uint32Array(4) } }), E, "options.out.attentionMask must be a Int32Array for maskDtype 'int32', got Uint32Array"],
      ['out.attentionMask int64 for uint8', s({ out: { attentionMask: new BigInt64Array(4) } }), E, "options.out.attentionMask must be a Uint8Array for maskDtype 'uint8', got BigInt64Array"],
      ['out.ids Int32Array for int64', s({ dtype: 'int64', out: { ids: new Int32Array(8) } }), E, "options.out.ids must be a BigInt64Array for dtype 'int64', got Int32Array"],
      ['out.ids BigUint64Array for int64', s({ dtype: 'int64', out: { ids: new BigUint64Array(8) } }), E, "options.out.ids must be a BigInt64Array for dtype 'int64', got BigUint64Array"],
      ['out.ids BigInt64Array for int32', s({ out: { ids: new BigInt64Array(8) } }), E, "options.out.ids must be a Int32Array for dtype 'int32', got BigInt64Array"],
      ['out.ids before out.attentionMask', s({ out: { attentionMask: 1, ids: 1 } }), E, "options.out.ids must be a Int32Array for dtype 'int32', got number"],
      ['options before rows', s({ out: 1 }, [1]), E, 'options.out must be an object, got number'],
      // 3
      ['row number', s({}, ['a', 1]), E, 'texts[1] must be a string, got number'],
      ['row null', s({}, [null]), E, 'texts[0] must be a string, got null'],
      ['row hole', s({}, ['a', , 'b']), E, 'texts[1] must be a string, got undefined'],
      ['row String object', s({}, [new String('a')]), E, 'texts[0] must be a string, got object'],
      ['row types before validity', s({ invalid: 'error' }, ['\ud800', 5]), E, 'texts[1] must be a string, got number'],
      ['row types before ranges', s({ dtype: 'uint8' }, ['Ā', 5]), E, 'texts[1] must be a string, got number'],
      ['offsets empty', () => vectorizeBytes(bytes2, new Uint32Array(0)), R, 'offsets must have at least 1 element'],
      ['offsets decreasing', () => vectorizeBytes(bytes2, new Uint32Array([0, 2, 1])), R, 'offsets must be non-decreasing: offsets[2] = 1 < offsets[1] = 2'],
      ['offsets too large', () => vectorizeBytes(bytes2, new Uint32Array([0, 3])), R, 'offsets[1] = 3 exceeds bytes.length = 2'],
      ['offsets first too large', () => vectorizeBytes(bytes2, new Uint32Array([5, 1])), R, 'offsets[0] = 5 exceeds bytes.length = 2'],
      ['offsets before validity', () => vectorizeBytes(Uint8Array.from([0x80, 0x80]), new Uint32Array([0, 1, 3]), { invalid: 'error' }), R, 'offsets[2] = 3 exceeds bytes.length = 2'],
      // 4
      ['validity before ranges', s({ invalid: 'error', dtype: 'uint8' }, ['Ā', 'a\udfff']), E, "row 1 contains a lone surrogate at code unit 1 (options.invalid is 'error')"],
      ['range codepoint uint16', s({ dtype: 'uint16' }, ['a', 'b😀', '😀']), R, "row 1: id 128512 does not fit dtype 'uint16' (max 65535)"],
      ['range codepoint int16', s({ dtype: 'int16' }, ['\u8000']), R, "row 0: id 32768 does not fit dtype 'int16' (max 32767)"],
      ['range first kept token of the row', s({ dtype: 'uint8' }, ['aāĀ']), R, "row 0: id 257 does not fit dtype 'uint8' (max 255)"],
      ['range left truncation', s({ dtype: 'uint8', maxLength: 2, truncationSide: 'left' }, ['āaĀb']), R, "row 0: id 256 does not fit dtype 'uint8' (max 255)"],
      ['range lone surrogate replaced', s({ dtype: 'uint8' }, ['\ud800']), R, "row 0: id 65533 does not fit dtype 'uint8' (max 255)"],
      ['range utf16 int16', s({ dtype: 'int16', encoding: 'utf16' }, ['ab', '😀']), R, "row 1: id 55357 does not fit dtype 'int16' (max 32767)"],
      ['range utf16 uint8', s({ dtype: 'uint8', encoding: 'utf16' }, ['é€']), R, "row 0: id 8364 does not fit dtype 'uint8' (max 255)"],
      ['range canine content', s({ dtype: 'uint8', encoding: 'canine', addSpecialTokens: false }, ['aĀ']), R, "row 0: id 256 does not fit dtype 'uint8' (max 255)"],
      ['range vocab', s({ dtype: 'uint8', vocab: Array.from({ length: 300 }, (_, i) => String.fromCodePoint(0x4e00 + i)) }, ['\u4e00', '\u4e00\u4f00']), R, "row 1: id 258 does not fit dtype 'uint8' (max 255)"],
      ['range bytes', () => vectorizeBytes(enc('a😀'), new Uint32Array([0, 1, 5]), { dtype: 'uint16' }), R, "row 1: id 128512 does not fit dtype 'uint16' (max 65535)"],
      ['range bytes utf16', () => vectorizeBytes(enc('a😀'), new Uint32Array([0, 1, 5]), { dtype: 'int16', encoding: 'utf16', truncationSide: 'left', maxLength: 1 }), R, "row 1: id 56832 does not fit dtype 'int16' (max 32767)"],
      ['range bytes replacement', () => vectorizeBytes(Uint8Array.from([0x61, 0x80]), new Uint32Array([0, 2]), { dtype: 'uint8' }), R, "row 0: id 65533 does not fit dtype 'uint8' (max 255)"],
      ['bytes validity before ranges', () => vectorizeBytes(Uint8Array.from([0xc4, 0x80, 0x80]), new Uint32Array([0, 2, 3]), { dtype: 'uint8', invalid: 'error' }), E, "row 1 is not valid UTF-8 at byte 0 (options.invalid is 'error')"],
      // 5
      ['size', s({ padding: 'max-length', maxLength: 2147483647 }, ['a', 'b']), R, 'rows x width = 2 x 2147483647 exceeds 2147483647 elements'],
      ['size after rounding', s({ padding: 'max-length', maxLength: 2147483647, padToMultipleOf: 2 }, ['a']), R, 'rows x width = 1 x 2147483648 exceeds 2147483647 elements'],
      ['size bytes', () => vectorizeBytes(bytes2, off2, { padding: 'max-length', maxLength: 1073741824 }), R, 'rows x width = 2 x 1073741824 exceeds 2147483647 elements'],
      ['ranges before size', s({ padding: 'max-length', maxLength: 2147483647, dtype: 'uint8' }, ['a', 'Ā']), R, "row 1: id 256 does not fit dtype 'uint8' (max 255)"],
      ['size before out', s({ padding: 'max-length', maxLength: 2147483647, out: { ids: new Int32Array(1) } }, ['a', 'b']), R, 'rows x width = 2 x 2147483647 exceeds 2147483647 elements'],
      // No rows, yet a width past 2^31-1 (found by the fuzz: the native binding threw "internal: width exceeds").
      ['width without rows', s({ padding: 'max-length', maxLength: 2147483647, padToMultipleOf: 2 }, []), R, 'rows x width = 0 x 2147483648: the width exceeds 2147483647'],
      ['width without rows, bytes', () => vectorizeBytes(bytes2, new Uint32Array([1]), { padding: 'max-length', maxLength: 2147483647, padToMultipleOf: 3 }), R, 'rows x width = 0 x 2147483649: the width exceeds 2147483647'],
      // Past 4 GiB of new arrays (found by the fuzz: the native binding threw a plain Error from
      // Node's Buffer limit, the fallback V8's "Invalid typed array length").
      ['size in bytes', s({ padding: 'max-length', maxLength: 2147483647 }, ['a']), R, 'rows x width = 1 x 2147483647 needs 10737418243 bytes of new arrays, more than 4294967296 (4 GiB): pass options.out buffers, or fewer rows'],
      ['size in bytes, padToMultipleOf', s({ padToMultipleOf: 2147483647, dtype: 'uint8' }, ['a']), R, 'rows x width = 1 x 2147483647 needs 4294967302 bytes of new arrays, more than 4294967296 (4 GiB): pass options.out buffers, or fewer rows'],
      ['size in bytes, bytes', () => vectorizeBytes(bytes2, off2, { padding: 'max-length', maxLength: 1000000000, dtype: 'int16' }), R, 'rows x width = 2 x 1000000000 needs 6000000016 bytes of new arrays, more than 4294967296 (4 GiB): pass options.out buffers, or fewer rows'],
      ['size in bytes before out', s({ padding: 'max-length', maxLength: 2147483647, out: { attentionMask: new Uint8Array(1) } }, ['a']), R, 'rows x width = 1 x 2147483647 needs 8589934596 bytes of new arrays, more than 4294967296 (4 GiB): pass options.out buffers, or fewer rows'],
      ['out buffers count as allocated', s({ padding: 'max-length', maxLength: 2147483647, dtype: 'uint8', out: { ids: new Uint8Array(1) } }, ['a']), R, 'options.out.ids has 1 elements, the batch needs 1 x 2147483647 = 2147483647'],
      // 6
      ['out.ids too short', s({ out: { ids: new Int32Array(3) } }, ['ab', 'c']), R, 'options.out.ids has 3 elements, the batch needs 2 x 2 = 4'],
      ['out.attentionMask too short', s({ out: { attentionMask: new Uint8Array(0) } }, ['ab', 'c']), R, 'options.out.attentionMask has 0 elements, the batch needs 2 x 2 = 4'],
      ['out.ids size before mask size', s({ out: { ids: new Int32Array(1), attentionMask: new Uint8Array(1) } }, ['ab', 'c']), R, 'options.out.ids has 1 elements, the batch needs 2 x 2 = 4'],
      ['out int64 ids too short', s({ dtype: 'int64', out: { ids: new BigInt64Array(3) } }, ['ab', 'c']), R, 'options.out.ids has 3 elements, the batch needs 2 x 2 = 4'],
      ['out int64 mask too short', s({ maskDtype: 'int64', out: { attentionMask: new BigInt64Array(3) } }, ['ab', 'c']), R, 'options.out.attentionMask has 3 elements, the batch needs 2 x 2 = 4'],
    ];
    for (const [label, f, cls, message] of table) {
      it(label, () => expectThrow(f, cls, message));
    }

    it('out.ids and out.attentionMask overlap', () => {
      const ab = new ArrayBuffer(16);
      expectThrow(() => vectorize(['ab', 'c'], { dtype: 'uint8', out: { ids: new Uint8Array(ab, 0, 4), attentionMask: new Uint8Array(ab, 3, 4) } }),
        RangeError, 'options.out.ids and options.out.attentionMask overlap');
      expectThrow(() => vectorize(['ab', 'c'], { out: { ids: new Int32Array(ab, 0, 4), attentionMask: new Uint8Array(ab, 12, 4) } }),
        RangeError, 'options.out.ids and options.out.attentionMask overlap');
      const shared = new SharedArrayBuffer(16);
      expectThrow(() => vectorize(['ab', 'c'], { dtype: 'uint8', out: { ids: new Uint8Array(shared), attentionMask: new Uint8Array(shared) } }),
        RangeError, 'options.out.ids and options.out.attentionMask overlap');
      // Wide elements: the written bytes count (4 int64 ids: 32 bytes; 4 int64 mask elements: 32 bytes).
      const wide = new ArrayBuffer(64);
      const o = { dtype: 'int64', maskDtype: 'int64' } as const;
      expectThrow(() => vectorize(['ab', 'c'], { ...o, out: { ids: new BigInt64Array(wide, 0, 4), attentionMask: new BigInt64Array(wide, 24, 4) } }),
        RangeError, 'options.out.ids and options.out.attentionMask overlap');
      expect(nums(vectorize(['ab', 'c'], { ...o, out: { ids: new BigInt64Array(wide, 0, 4), attentionMask: new BigInt64Array(wide, 32, 4) } }).attentionMask))
        .toEqual([1, 1, 1, 0]);
      expectThrow(() => vectorize(['ab', 'c'], { maskDtype: 'int32', out: { ids: new Int32Array(wide, 0, 4), attentionMask: new Int32Array(wide, 12, 4) } }),
        RangeError, 'options.out.ids and options.out.attentionMask overlap');
      expectThrow(() => vectorizeBytes(new Uint8Array(wide, 40, 3), new Uint32Array([0, 2, 3]), { ...o, out: { ids: new BigInt64Array(wide, 16, 4) } }),
        RangeError, 'options.out.ids overlaps the input bytes');
    });
    it('out overlapping the input bytes', () => {
      const ab = new ArrayBuffer(32);
      const bytes = new Uint8Array(ab, 8, 8);
      bytes.set(enc('abcdefgh'));
      const offsets = new Uint32Array([0, 4, 8]);
      expectThrow(() => vectorizeBytes(bytes, offsets, { out: { ids: new Int32Array(ab, 0, 8) } }), RangeError,
        'options.out.ids overlaps the input bytes');
      expectThrow(() => vectorizeBytes(bytes, offsets, { out: { attentionMask: new Uint8Array(ab, 15, 8) } }), RangeError,
        'options.out.attentionMask overlaps the input bytes');
      expectThrow(() => vectorizeBytes(bytes, offsets, { out: { ids: new Int32Array(ab, 0, 8), attentionMask: new Uint8Array(ab, 0, 8) } }),
        RangeError, 'options.out.ids and options.out.attentionMask overlap');
      expectThrow(() => vectorizeBytes(bytes, offsets, { out: { ids: new Int32Array(ab, 16, 4), attentionMask: new Uint8Array(ab, 12, 8) } }),
        RangeError, 'options.out.ids has 4 elements, the batch needs 2 x 4 = 8');
      expectThrow(() => vectorizeBytes(bytes, offsets, { dtype: 'uint8', out: { ids: bytes } }), RangeError,
        'options.out.ids overlaps the input bytes');
      expectThrow(() => vectorizeBytes(bytes, offsets, { dtype: 'uint8', out: { ids: new Uint8Array(ab, 16, 8), attentionMask: bytes } }),
        RangeError, 'options.out.attentionMask overlaps the input bytes');
    });
    // Not in SEMANTICS.md (yet): both backends refuse out buffers over the offsets, in this order.
    it('out overlapping the input offsets', () => {
      const ab = new ArrayBuffer(64);
      const bytes = new Uint8Array(new ArrayBuffer(16), 0, 5);
      bytes.set(enc('abcde'));
      const offsets = new Uint32Array(ab, 0, 3);
      offsets.set([0, 3, 5]);
      expectThrow(() => vectorizeBytes(bytes, offsets, { out: { ids: new Int32Array(ab, 8, 6) } }), RangeError,
        'options.out.ids overlaps the input offsets');
      expectThrow(() => vectorizeBytes(bytes, offsets, { out: { attentionMask: new Uint8Array(ab, 11, 6) } }), RangeError,
        'options.out.attentionMask overlaps the input offsets');
      expectThrow(() => vectorizeBytes(bytes, offsets, { out: { ids: new Int32Array(ab, 0, 6), attentionMask: new Uint8Array(bytes.buffer) } }),
        RangeError, 'options.out.ids overlaps the input offsets');
      // Only the written part of an out buffer counts: views just past the offsets are fine.
      const b = vectorizeBytes(bytes, offsets, { out: { ids: new Int32Array(ab, 12, 7), attentionMask: new Uint8Array(ab, 40, 6) } });
      expect(nums(b.ids)).toEqual([97, 98, 99, 100, 101, 0]);
      expect(nums(b.attentionMask)).toEqual([1, 1, 1, 1, 1, 0]);
    });

    it('nothing is written into out before a throw', () => {
      const SENT = 77;
      type Out = { ids: Int32Array | Uint16Array | Uint8Array; attentionMask: Uint8Array };
      const int32 = (): Out => ({ ids: new Int32Array(64).fill(SENT), attentionMask: new Uint8Array(64).fill(SENT) });
      const late: Array<[string, Out, (out: Out) => unknown]> = [
        ['row type', int32(), (out) => vectorize(['a', 'b', 3], { out })],
        ['offsets', int32(), (out) => vectorizeBytes(bytes2, new Uint32Array([0, 2, 1]), { out })],
        ['lone surrogate in the last row', int32(), (out) => vectorize(['ab', 'cd', 'e\ud800'], { out, invalid: 'error' })],
        ['malformed bytes in the last row', int32(),
          (out) => vectorizeBytes(Uint8Array.from([0x61, 0x62, 0x80]), new Uint32Array([0, 1, 2, 3]), { out, invalid: 'error' })],
        ['range in the last row', { ids: new Uint16Array(64).fill(SENT), attentionMask: new Uint8Array(64).fill(SENT) },
          (out) => vectorize(['ab', 'cd', 'e😀'], { out, dtype: 'uint16' })],
        ['size', int32(), (out) => vectorize(['ab', 'cd'], { out, padding: 'max-length', maxLength: 2147483647 })],
        ['out.ids too short', int32(), (out) => vectorize(['ab', 'cd'], { out: { ids: out.ids.subarray(0, 3), attentionMask: out.attentionMask } })],
        ['out.attentionMask too short', int32(),
          (out) => vectorize(['ab', 'cd'], { out: { ids: out.ids, attentionMask: out.attentionMask.subarray(0, 3) } })],
        ['ids and mask overlap', { ids: new Uint8Array(64).fill(SENT), attentionMask: new Uint8Array(64).fill(SENT) },
          (out) => vectorize(['ab', 'cd'], { dtype: 'uint8', out: { ids: out.ids, attentionMask: (out.ids as Uint8Array).subarray(2) } })],
        ['mask overlaps input', int32(),
          (out) => vectorizeBytes(out.attentionMask.subarray(0, 4), new Uint32Array([0, 2, 4]), { out: { ids: out.ids, attentionMask: out.attentionMask.subarray(2) } })],
      ];
      for (const [label, out, f] of late) {
        expect(() => f(out), label).toThrow();
        expect(out.ids.every((v) => v === SENT), label).toBe(true);
        expect(out.attentionMask.every((v) => v === SENT), label).toBe(true);
      }
      // int64 ids and masks: the bad options of the int64 dtypes, and late errors, leave them alone.
      const wide = () => ({ ids: new BigInt64Array(64).fill(77n), attentionMask: new BigInt64Array(64).fill(77n) });
      const o = { dtype: 'int64', maskDtype: 'int64' } as const;
      const wideLate: Array<[string, ReturnType<typeof wide>, (out: ReturnType<typeof wide>) => unknown]> = [
        ['int64 pad out of range', wide(), (out) => vectorize(['ab'], { ...o, out, padId: 2n ** 63n })],
        ['unsafe number pad', wide(), (out) => vectorize(['ab'], { ...o, out, padId: 2 ** 60 })],
        ['mask of the wrong class', wide(), (out) => vectorize(['ab'], { ...o, out: { ids: out.ids, attentionMask: new Uint8Array(64) } })],
        ['ids of the wrong class', wide(), (out) => vectorize(['ab'], { ...o, out: { ids: new Int32Array(64), attentionMask: out.attentionMask } })],
        ['lone surrogate in the last row', wide(), (out) => vectorize(['ab', 'cd', 'e\ud800'], { ...o, out, invalid: 'error' })],
        ['malformed bytes in the last row', wide(),
          (out) => vectorizeBytes(Uint8Array.from([0x61, 0x62, 0x80]), new Uint32Array([0, 1, 2, 3]), { ...o, out, invalid: 'error' })],
        ['int64 mask too short', wide(), (out) => vectorize(['ab', 'cd'], { ...o, out: { ids: out.ids, attentionMask: out.attentionMask.subarray(0, 3) } })],
        ['int64 ids and mask overlap', wide(), (out) => vectorize(['ab', 'cd'], { ...o, out: { ids: out.ids, attentionMask: out.ids.subarray(3) } })],
      ];
      for (const [label, out, f] of wideLate) {
        expect(() => f(out), label).toThrow();
        expect(out.ids.every((v) => v === 77n), label).toBe(true);
        expect(out.attentionMask.every((v) => v === 77n), label).toBe(true);
      }
    });

    it('keeps working after an error', () => {
      const want = plain(vectorize(['hello', '😀\ud800'], { encoding: 'byt5' }));
      const { bytes, offsets } = packStrings(['hello', '😀\ud800']);
      for (const [label, f] of table) {
        expect(f, label).toThrow();
        expect(plain(vectorize(['hello', '😀\ud800'], { encoding: 'byt5' })), label).toEqual(want);
        expect(plain(vectorizeBytes(bytes, offsets, { encoding: 'byt5' })), label).toEqual(want);
      }
    });
  });

  describe(`${name}: vocab`, () => {
    it('sees a vocab array mutated between calls', () => {
      const vocab = ['a', 'b'];
      expect(ids(['ab'], { vocab })).toEqual([2, 3]);
      expect(ids(['ab'], { vocab })).toEqual([2, 3]);
      vocab[0] = 'b';
      vocab[1] = 'a';
      expect(ids(['ab'], { vocab })).toEqual([3, 2]);
      vocab.push('c');
      expect(ids(['abc'], { vocab })).toEqual([3, 2, 4]);
      vocab[2] = 'a';
      expectThrow(() => vectorize(['a'], { vocab }), RangeError, "options.vocab[2] repeats 'a' (first at index 1)");
      vocab.length = 1;
      expect(ids(['ab'], { vocab })).toEqual([1, 2]);
    });
    it('equal vocabs in different arrays give equal ids', () => {
      expect(ids(['xay'], { vocab: ['y', 'a'] })).toEqual(ids(['xay'], { vocab: ['y', 'a'].slice() }));
    });
    it('vocab works from bytes, malformed bytes look up U+FFFD', () => {
      const vocab = ['\ufffd', 'é', '😀'];
      const bytes = Uint8Array.from([0xc3, 0xa9, 0x80, 0xf0, 0x9f, 0x98, 0x80, 0x61]);
      expect(nums(vectorizeBytes(bytes, new Uint32Array([0, 8]), { vocab }).ids)).toEqual([3, 2, 4, 1]);
    });
  });

  describe(`${name}: properties against the reference`, () => {
    // Both outcomes must be common, or the comparison degenerates into checking only one of them.
    const tally = { batches: 0, errors: 0 };
    const count = (o: RefOutcome): RefOutcome => {
      if ('error' in o) tally.errors++;
      else tally.batches++;
      return o;
    };
    it('vectorize equals the reference for random strings and options', () => {
      tally.batches = tally.errors = 0;
      fc.assert(
        fc.property(fc.array(stringArb, { maxLength: 6 }), optionsArb, (rows, o) => {
          expect(outcome(() => vectorize(rows, o))).toEqual(count(reference(rows, o)));
        }),
        { numRuns: 1500 },
      );
      expect(tally.batches).toBeGreaterThan(600);
      expect(tally.errors).toBeGreaterThan(100);
    });
    it('vectorizeBytes equals the TextDecoder-based reference for random bytes and options', () => {
      tally.batches = tally.errors = 0;
      fc.assert(
        fc.property(fc.array(bytesRowArb, { maxLength: 6 }), optionsArb, fc.integer({ min: 0, max: 3 }), (rows, o, start) => {
          const { bytes, offsets } = pack(rows, start);
          expect(outcome(() => vectorizeBytes(bytes, offsets, o))).toEqual(count(referenceBytes(rows, o)));
        }),
        { numRuns: 1500 },
      );
      expect(tally.batches).toBeGreaterThan(600);
      expect(tally.errors).toBeGreaterThan(100);
    });
    it('vectorizeBytes(malformed) equals vectorize(decoded rows)', () => {
      fc.assert(
        fc.property(fc.array(bytesRowArb, { maxLength: 5 }), optionsArb, (rows, o) => {
          const opts = { ...o, invalid: 'replace' };
          const { bytes, offsets } = pack(rows);
          expect(outcome(() => vectorizeBytes(bytes, offsets, opts))).toEqual(outcome(() => vectorize(rows.map(decodeRow), opts)));
        }),
        { numRuns: 500 },
      );
    });
    it('vectorizeBytes(TextEncoder rows) equals vectorize(rows) for well-formed strings', () => {
      const wellFormed = stringArb.map((s) => Array.from(s).map((c) => (isLone(c) ? '\ufffd' : c)).join(''));
      fc.assert(
        fc.property(fc.array(wellFormed, { maxLength: 5 }), optionsArb, (rows, o) => {
          const { bytes, offsets } = packStrings(rows);
          expect(outcome(() => vectorizeBytes(bytes, offsets, o))).toEqual(outcome(() => vectorize(rows, o)));
        }),
        { numRuns: 500 },
      );
    });
    it('out buffers change nothing but where the batch lives', () => {
      fc.assert(
        fc.property(fc.array(stringArb, { maxLength: 5 }), optionsArb, fc.integer({ min: 0, max: 8 }), (rows, o, extra) => {
          const want = outcome(() => vectorize(rows, o));
          if ('error' in want) return;
          const n = want.rows * want.width + extra;
          const ids = newArray(o.dtype ?? 'int32', n, 123);
          const attentionMask = newArray(o.maskDtype ?? 'uint8', n, 7);
          const out = { ids, attentionMask };
          expect(outcome(() => vectorize(rows, { ...o, out }))).toEqual(want);
          expect(nums(out.ids.subarray(n - extra))).toEqual(new Array<number>(extra).fill(123));
          expect(nums(out.attentionMask.subarray(n - extra))).toEqual(new Array<number>(extra).fill(7));
        }),
        { numRuns: 500 },
      );
    });
    it('the reference agrees with the hand-written golden vectors', () => {
      expect(reference(['hello'], { encoding: 'byt5' })).toMatchObject({ ids: [107, 104, 111, 111, 114, 1] });
      expect(reference(['hi'], { encoding: 'canine' })).toMatchObject({ ids: [57344, 104, 105, 57345] });
      expect(reference(['abc'], { vocab: ['a', 'b'] })).toMatchObject({ ids: [2, 3, 1] });
    });
  });
}
