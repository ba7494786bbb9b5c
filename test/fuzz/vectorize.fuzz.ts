/**
 * Fuzz of the public `vectorize` / `vectorizeBytes` (fast-check): the native binding (on a random
 * SIMD path per case) against the pure-TypeScript fallback, on random and hostile input: strings
 * of every plane with lone surrogates, malformed UTF-8, random and invalid offsets, random and
 * invalid options, `out` buffers of the wrong type or size, shared, overlapping or detached
 * (`structuredClone(x, { transfer: [x.buffer] })`), Proxy arrays, getters that throw and getters
 * that detach, shrink or change the other arguments while the call reads them. And the binding
 * itself, called directly with junk arguments. Any case is a defect when
 *
 * - the two backends disagree (result bytes, or error class and message);
 * - an error is not a TypeError or RangeError whose message names the argument (`texts`,
 *   `bytes`, `offsets`, `options...`, a row), except the very error a hostile getter threw;
 * - an error leaves anything written into `out`;
 * - the process dies, or a case hangs (a watchdog thread reports it after WATCHDOG_MS).
 *
 * Every input is built from a plain-data recipe (what the arbitraries generate), once per
 * backend, so that a getter's side effects hit each backend's own copy. On failure fast-check
 * prints the seed and the shrunk recipe; a hang prints the recipe of the case that hung.
 *
 * Run: node --import tsx test/fuzz/vectorize.fuzz.ts (npm run fuzz), with
 *   FUZZ_SECONDS  run rounds until this many seconds have passed (default: one round)
 *   FUZZ_RUNS     cases per property in a round (default 2000)
 *   FUZZ_SEED     the first round's seed (default random; each round adds 1)
 *   FUZZ_SHRINK=0 report the first failing case as it was, unshrunk
 * test/fuzz.test.ts runs a bounded round in `npm test`.
 */
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { type Backend, jsBackend, loadNative, nativeBackendOf, packOptions, vectorizeBytesOn, vectorizeOn } from '../../src/vectorize/backends.js';
import { DTYPES, ENCODINGS, MASK_ARRAY_NAME, MASK_DTYPES, normalizeOptions } from '../../src/vectorize/options.js';
import type { Dtype, MaskDtype, VectorBatch } from '../../src/vectorize/types.js';

type Batch = VectorBatch<Dtype, MaskDtype>;

const loaded = loadNative();
if (!loaded.ok) throw new Error(`the fuzz needs the native binding: ${loaded.reason}`);
const binding = loaded.binding;
const native = nativeBackendOf(binding);
const SIMD_PATHS = binding.availableSimd();
const BEST = SIMD_PATHS[0]!;

/** What hostile getters and proxies throw: the only error allowed to be neither TypeError nor RangeError. */
class Hostile extends Error {}

// ---------------------------------------------------------------------------------------------
// Recipes: plain data (JSON-able) describing one call.

/** What a getter does when it runs, to the arguments of the call it is part of. */
type Action = 'none' | 'throw' | 'detach-bytes' | 'detach-offsets' | 'detach-ids' | 'detach-mask' | 'shrink-bytes' | 'grow-bytes' | 'fill-offsets' | 'clear-texts' | 'push-texts' | 'swap-row';
const ACTIONS: readonly Action[] = ['throw', 'detach-bytes', 'detach-offsets', 'detach-ids', 'detach-mask', 'shrink-bytes', 'grow-bytes', 'fill-offsets', 'clear-texts', 'push-texts', 'swap-row'];

interface TextsRecipe {
  rows: string[];
  /** A non-string put at `at` (a number, null, ...), by name. */
  junkRow: string | null;
  container: 'array' | 'proxy' | 'proxy-throws' | 'getter' | 'getter-unstable' | 'sparse' | 'proxy-length' | 'not-array';
  at: number;
  action: Action;
  /** For proxy-length: the length the proxy claims. */
  claimed: number;
  notArray: string;
}

type View = 'Uint8Array' | 'Buffer' | 'shared' | 'resizable' | 'detached' | 'subarray' | 'Int8Array' | 'Uint8ClampedArray' | 'Array' | 'DataView' | 'ArrayBuffer' | 'string' | 'null';
type OffsetsView = 'Uint32Array' | 'shared' | 'detached' | 'subarray' | 'on-bytes' | 'Int32Array' | 'Array' | 'Float64Array' | 'null';

interface BytesRecipe {
  rows: number[][];
  lead: number;
  tail: number;
  view: View;
  offsetsView: OffsetsView;
  /** Changes to valid offsets: none, raw values, a decrease or an overrun at `at`, no offsets at all. */
  offsets: { kind: 'valid' } | { kind: 'raw'; values: number[] } | { kind: 'decrease' | 'exceed' | 'max'; at: number } | { kind: 'empty' };
}

type OutType = 'right' | 'Int32Array' | 'Int16Array' | 'Uint16Array' | 'Uint8Array' | 'Float32Array' | 'BigInt64Array' | 'Buffer' | 'Uint8ClampedArray' | 'Float64Array' | 'Array' | 'DataView' | 'number';
interface BufRecipe {
  type: OutType;
  /** Elements, relative to what the batch needs ('exact' +- delta) or absolute. */
  size: { exact: number } | { abs: number };
  backing: 'own' | 'shared' | 'detached' | 'resizable' | 'alias-bytes' | 'alias-offsets' | 'alias-ids' | 'offset';
  /** Where an aliasing or offset view starts, as a share of the other buffer (0..1). */
  at: number;
}

interface OptionsRecipe {
  shape: 'undefined' | 'plain' | 'null-proto' | 'proxy' | 'not-object';
  notObject: string;
  values: Record<string, unknown>;
  /** A key whose value is read through a getter doing `action` first. */
  getterKey: string | null;
  action: Action;
  unknownKey: string | null;
  out: { ids?: BufRecipe; attentionMask?: BufRecipe; unknown?: boolean } | 'none' | 'null' | 'array' | 'proxy-throws';
}

export interface Case {
  texts: TextsRecipe;
  bytes: BytesRecipe;
  options: OptionsRecipe;
  simd: number;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries.

const SPECIAL_UNITS = ['\0', '\t', '\n', ' ', 'é', 'ß', 'Ω', '中', '😀', '🇫🇷', 'e\u0301', '\uFEFF', '\uFFFD', '\u{10FFFF}', '\u{E0001}', '\uD800', '\uDBFF', '\uDC00', '\uDFFF', '\u0080', '\u07FF', '\u0800', '\uFFFF'];
const unit = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 5, arbitrary: fc.constantFrom(...SPECIAL_UNITS) },
  // Any code unit: lone surrogates included.
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) },
  // Any code point of any plane (D800-DFFF as lone surrogates).
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 0x10ffff }).map((c) => (c >= 0xd800 && c <= 0xdfff ? String.fromCharCode(c) : String.fromCodePoint(c))) },
);
const shortText = fc.string({ unit, maxLength: 24 });
// Long ASCII runs around a few odd units: the SIMD loops' block boundaries.
const longText = fc
  .tuple(fc.string({ maxLength: 260 }), fc.string({ unit, maxLength: 3 }), fc.string({ maxLength: 260 }))
  .map(([a, b, c]) => a + b + c);
const text = fc.oneof({ weight: 5, arbitrary: shortText }, { weight: 1, arbitrary: longText });

const JUNK_ROWS = ['number', 'null', 'undefined', 'object', 'symbol', 'bigint', 'String'];
const NOT_ARRAYS = ['string', 'null', 'undefined', 'number', 'array-like', 'Set', 'typed'];

const textsRecipe: fc.Arbitrary<TextsRecipe> = fc.record({
  rows: fc.array(text, { maxLength: 10 }),
  junkRow: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(...JUNK_ROWS) }),
  container: fc.oneof(
    { weight: 12, arbitrary: fc.constant('array' as const) },
    { weight: 1, arbitrary: fc.constantFrom('proxy', 'proxy-throws', 'getter', 'getter-unstable', 'sparse', 'proxy-length', 'not-array' as const) },
  ),
  at: fc.nat({ max: 12 }),
  action: fc.constantFrom(...ACTIONS),
  claimed: fc.constantFrom(0, 1, 11, 2 ** 20 + 1, 2 ** 31 - 1, 2 ** 32 - 1),
  notArray: fc.constantFrom(...NOT_ARRAYS),
});

const MALFORMED = [[0xc0, 0x80], [0xc1, 0xbf], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xff], [0xfe], [0x80], [0xbf], [0xc2], [0xe0, 0x80, 0x80], [0xe0, 0x9f, 0xbf], [0xf0, 0x8f, 0xbf, 0xbf], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xef, 0xbb, 0xbf], [0x61], [0x00]];
const enc = new TextEncoder();
const byteRow = fc.oneof(
  { weight: 4, arbitrary: text.map((s) => Array.from(enc.encode(s))) },
  { weight: 2, arbitrary: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }) },
  { weight: 2, arbitrary: fc.array(fc.constantFrom(...MALFORMED), { maxLength: 14 }).map((a) => a.flat()) },
  // ASCII runs with a malformed or multi-byte piece inside (SIMD block boundaries).
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.nat({ max: 200 }), fc.constantFrom(...MALFORMED, [0xc3, 0xa9], [0xe4, 0xb8, 0xad], [0xf0, 0x9f, 0x98, 0x80]), fc.nat({ max: 200 }))
      .map(([a, m, b]) => [...Array<number>(a).fill(0x61), ...m, ...Array<number>(b).fill(0x62)]),
  },
);

const bytesRecipe: fc.Arbitrary<BytesRecipe> = fc.record({
  rows: fc.array(byteRow, { maxLength: 10 }),
  lead: fc.nat({ max: 9 }),
  tail: fc.nat({ max: 9 }),
  view: fc.oneof(
    { weight: 10, arbitrary: fc.constant('Uint8Array' as const) },
    { weight: 1, arbitrary: fc.constantFrom('Buffer', 'shared', 'resizable', 'detached', 'subarray', 'Int8Array', 'Uint8ClampedArray', 'Array', 'DataView', 'ArrayBuffer', 'string', 'null' as const) },
  ),
  offsetsView: fc.oneof(
    { weight: 10, arbitrary: fc.constant('Uint32Array' as const) },
    { weight: 1, arbitrary: fc.constantFrom('shared', 'detached', 'subarray', 'on-bytes', 'Int32Array', 'Array', 'Float64Array', 'null' as const) },
  ),
  offsets: fc.oneof(
    { weight: 8, arbitrary: fc.constant({ kind: 'valid' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('raw' as const), values: fc.array(fc.oneof(fc.nat({ max: 40 }), fc.constantFrom(0xffffffff, 0x80000000, 0x7fffffff)), { maxLength: 8 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('decrease' as const, 'exceed' as const, 'max' as const), at: fc.nat({ max: 10 }) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'empty' as const }) },
  ),
});

const junk = fc.oneof(
  fc.constantFrom(null, true, false, '', 'x', '5', 0, -0, -1, 0.5, 1.5, Number.NaN, Infinity, -Infinity, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 31) - 1),
  fc.constantFrom([] as unknown[], {}, [1], ['a']),
  fc.anything({ maxDepth: 1, withBigInt: true }),
);
const VALID = {
  encoding: fc.constantFrom(...ENCODINGS),
  // Widths stay small: a case allocates at most a few MB (never the gigabyte outputs
  // maxLength 2^31-1 with padding 'max-length' and one row would ask for: 4 GiB is refused).
  maxLength: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 700 })),
  padding: fc.constantFrom('longest', 'max-length'),
  padToMultipleOf: fc.integer({ min: 1, max: 9 }),
  paddingSide: fc.constantFrom('left', 'right'),
  truncationSide: fc.constantFrom('left', 'right'),
  padId: fc.oneof(
    fc.integer({ min: -3, max: 300 }),
    fc.constantFrom(-32768, 32767, 65535, 2 ** 24, -(2 ** 24), 2 ** 31 - 1, -(2 ** 31), -0, 2 ** 40, Number.MAX_SAFE_INTEGER),
    // bigint padIds: only int64 takes them.
    fc.constantFrom(0n, 7n, -1n, 2n ** 40n, 2n ** 63n - 1n, -(2n ** 63n)),
  ),
  addSpecialTokens: fc.boolean(),
  dtype: fc.constantFrom(...DTYPES),
  maskDtype: fc.constantFrom(...MASK_DTYPES),
  invalid: fc.constantFrom('replace', 'error'),
  vocab: fc.oneof(fc.constant(['a', 'b', 'é', '中', '😀', ' ', '\uFFFD']), fc.uniqueArray(fc.oneof(unit, fc.constantFrom('a', 'e', 'o', ' ')), { maxLength: 12 })),
};
const INVALID = {
  encoding: fc.oneof(fc.constantFrom('UTF8', 'bogus', '', ' codepoint'), junk),
  maxLength: fc.oneof(fc.constantFrom(0, -1, 1.5, 2 ** 31, 2 ** 31 - 1), junk),
  padToMultipleOf: fc.oneof(fc.constantFrom(0, 2 ** 31 - 1, 2 ** 31, 1.5), junk),
  padId: fc.oneof(fc.constantFrom(-32769, 32768, 65536, 2 ** 24 + 1, -(2 ** 24) - 1, 2 ** 31, 2 ** 53, 0.5, 2n ** 63n, -(2n ** 63n) - 1n), junk),
  vocab: fc.oneof(fc.array(unit, { maxLength: 12 }), fc.array(fc.oneof(unit, junk), { maxLength: 5 }), junk),
};
const maybe = <T>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<unknown> = junk) =>
  fc.oneof({ weight: 9, arbitrary: valid as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: invalid });
// Most cases have valid options (so that the kernels run on them); the rest any mix of valid and
// invalid values, any key.
const validOptions = fc
  .record(VALID, { requiredKeys: [] })
  .map((o) => {
    const c: Record<string, unknown> = { ...o };
    if (c.vocab !== undefined && c.encoding !== undefined && c.encoding !== 'codepoint') delete c.vocab;
    return c;
  });
const wildOptions = fc.record(
  {
    encoding: maybe(VALID.encoding, INVALID.encoding),
    maxLength: maybe(VALID.maxLength, INVALID.maxLength),
    padding: maybe(VALID.padding),
    padToMultipleOf: maybe(VALID.padToMultipleOf, INVALID.padToMultipleOf),
    paddingSide: maybe(VALID.paddingSide),
    truncationSide: maybe(VALID.truncationSide),
    padId: maybe(VALID.padId, INVALID.padId),
    addSpecialTokens: maybe(VALID.addSpecialTokens),
    dtype: maybe(VALID.dtype),
    maskDtype: maybe(VALID.maskDtype),
    invalid: maybe(VALID.invalid),
    vocab: maybe(VALID.vocab, INVALID.vocab),
  },
  { requiredKeys: [] },
);
const optionValues = fc.oneof({ weight: 3, arbitrary: validOptions }, { weight: 1, arbitrary: wildOptions }) as fc.Arbitrary<Record<string, unknown>>;

const bufRecipe: fc.Arbitrary<BufRecipe> = fc.record({
  type: fc.oneof(
    { weight: 8, arbitrary: fc.constant('right' as const) },
    { weight: 1, arbitrary: fc.constantFrom('Int32Array', 'Int16Array', 'Uint16Array', 'Uint8Array', 'Float32Array', 'BigInt64Array', 'Buffer', 'Uint8ClampedArray', 'Float64Array', 'Array', 'DataView', 'number' as const) },
  ),
  size: fc.oneof(
    { weight: 4, arbitrary: fc.record({ exact: fc.constantFrom(0, 0, 0, -1, 1, 7, 100) }) },
    { weight: 1, arbitrary: fc.record({ abs: fc.constantFrom(0, 1, 3, 64, 4096) }) },
  ),
  backing: fc.oneof(
    { weight: 6, arbitrary: fc.constant('own' as const) },
    { weight: 1, arbitrary: fc.constantFrom('shared', 'detached', 'resizable', 'alias-bytes', 'alias-offsets', 'alias-ids', 'offset' as const) },
  ),
  at: fc.double({ min: 0, max: 1, noNaN: true }),
});

const optionsRecipe: fc.Arbitrary<OptionsRecipe> = fc.record({
  shape: fc.oneof(
    { weight: 2, arbitrary: fc.constant('undefined' as const) },
    { weight: 14, arbitrary: fc.constant('plain' as const) },
    { weight: 1, arbitrary: fc.constantFrom('null-proto', 'proxy', 'not-object' as const) },
  ),
  notObject: fc.constantFrom('null', 'number', 'string', 'array', 'Date', 'Map', 'class'),
  values: optionValues,
  getterKey: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('maxLength', 'encoding', 'dtype', 'out', 'vocab', 'padId') }),
  action: fc.constantFrom(...ACTIONS),
  unknownKey: fc.oneof({ weight: 20, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('maxlength', 'foo', 'constructor', 'toString', '') }),
  out: fc.oneof(
    { weight: 6, arbitrary: fc.constant('none' as const) },
    { weight: 4, arbitrary: fc.record({ ids: bufRecipe, attentionMask: bufRecipe, unknown: fc.oneof({ weight: 15, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }) }, { requiredKeys: [] }) },
    { weight: 1, arbitrary: fc.constantFrom('null', 'array', 'proxy-throws' as const) },
  ),
});

export const caseArb: fc.Arbitrary<Case> = fc.record({ texts: textsRecipe, bytes: bytesRecipe, options: optionsRecipe, simd: fc.nat({ max: SIMD_PATHS.length - 1 }) });

// ---------------------------------------------------------------------------------------------
// Building the arguments from a recipe.

interface Built {
  texts: unknown;
  bytes: unknown;
  offsets: unknown;
  options: unknown;
  /** The out buffers passed (to check that an error wrote nothing into them), with their contents before. */
  outs: Array<{ view: ArrayBufferView; before: Uint8Array }>;
  /** A getter wrote into an input (fill-offsets), which an out buffer may alias: out is not compared then. */
  wrote?: boolean;
}

const SENTINEL = 0x5a;

function junkValue(name: string): unknown {
  switch (name) {
    case 'number': return 42;
    case 'null': return null;
    case 'undefined': return undefined;
    case 'object': return { toString: () => 'x' };
    case 'symbol': return Symbol('row');
    case 'bigint': return 7n;
    case 'String': return new String('boxed');
    default: throw new Error(name);
  }
}

function notArrayValue(name: string, rows: string[]): unknown {
  switch (name) {
    case 'string': return rows.join('');
    case 'null': return null;
    case 'undefined': return undefined;
    case 'number': return rows.length;
    case 'array-like': return { ...rows, length: rows.length };
    case 'Set': return new Set(rows);
    default: return new Uint8Array(rows.length);
  }
}

// ES2024 ArrayBuffer features (resizable buffers; Node 20 has them, the ES2023 lib types do not).
interface Resizable extends ArrayBuffer {
  readonly resizable: boolean;
  readonly maxByteLength: number;
  resize(n: number): void;
}
const resizableBuffer = (n: number, max: number): ArrayBuffer =>
  new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(n, { maxByteLength: max });
const isResizable = (b: ArrayBufferLike): b is Resizable => (b as Partial<Resizable>).resizable === true;

/** Whether `b` has been detached (Node 20 has no `ArrayBuffer.prototype.detached`). */
function isDetached(b: ArrayBufferLike): boolean {
  if (!(b instanceof ArrayBuffer)) return false;
  try {
    new Uint8Array(b, 0, 0);
    return false;
  } catch {
    return true;
  }
}

function detach(v: unknown): void {
  if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer && !isDetached(v.buffer)) {
    structuredClone(v.buffer, { transfer: [v.buffer] });
  }
}

function resizableOf(v: unknown): Resizable | null {
  if (!ArrayBuffer.isView(v)) return null;
  const b = v.buffer;
  return isResizable(b) && !isDetached(b) ? b : null;
}

/**
 * What a getter does before it returns (the call's own arguments, as built for this backend). An
 * error the action itself meets (pushing onto a proxy claiming 2^32-1 rows) is the getter's
 * error too: it must reach the caller unchanged, like `throw`.
 */
function act(action: Action, a: Built): void {
  try {
    doAct(action, a);
  } catch (e) {
    if (e instanceof Hostile) throw e;
    throw new Hostile(`a getter's action threw: ${(e as Error).message}`);
  }
}

function doAct(action: Action, a: Built): void {
  switch (action) {
    case 'none': return;
    case 'throw': throw new Hostile('a getter threw');
    case 'detach-bytes': return detach(a.bytes);
    case 'detach-offsets': return detach(a.offsets);
    case 'detach-ids': return detach(a.outs[0]?.view);
    case 'detach-mask': return detach(a.outs[1]?.view ?? a.outs[0]?.view);
    case 'shrink-bytes': {
      const b = resizableOf(a.bytes);
      if (b) b.resize(Math.floor(b.byteLength / 2));
      return;
    }
    case 'grow-bytes': {
      const b = resizableOf(a.bytes);
      if (b) b.resize(b.maxByteLength);
      return;
    }
    case 'fill-offsets':
      if (a.offsets instanceof Uint32Array && !isDetached(a.offsets.buffer)) {
        a.offsets.fill(0xffffffff, Math.floor(a.offsets.length / 2));
        a.wrote = true;
      }
      return;
    case 'clear-texts':
      if (Array.isArray(a.texts)) a.texts.length = 0;
      return;
    case 'push-texts':
      if (Array.isArray(a.texts)) a.texts.push('pushed', 5);
      return;
    case 'swap-row':
      if (Array.isArray(a.texts) && a.texts.length > 0) a.texts[a.texts.length - 1] = 'x'.repeat(900);
      return;
  }
}

const ELEMENT: Record<string, number> = { Int32Array: 4, Int16Array: 2, Uint16Array: 2, Uint8Array: 1, Float32Array: 4, BigInt64Array: 8, Buffer: 1, Uint8ClampedArray: 1, Float64Array: 8 };
const CTOR: Record<string, new (b: ArrayBufferLike, o: number, n: number) => ArrayBufferView> = {
  Int32Array, Int16Array, Uint16Array, Uint8Array, Float32Array, BigInt64Array, Uint8ClampedArray, Float64Array,
  Buffer: Uint8Array,
};
const DTYPE_CLASS: Record<Dtype, string> = { int32: 'Int32Array', int16: 'Int16Array', uint16: 'Uint16Array', uint8: 'Uint8Array', float32: 'Float32Array', int64: 'BigInt64Array' };

function buildBytes(r: BytesRecipe): { bytes: unknown; offsets: unknown; rawBytes: Uint8Array | null; rawOffsets: Uint32Array | null } {
  let size = r.lead;
  for (const row of r.rows) size += row.length;
  const total = size + r.tail;
  let u8: Uint8Array;
  let buf: ArrayBufferLike;
  switch (r.view) {
    case 'shared': buf = new SharedArrayBuffer(total); u8 = new Uint8Array(buf); break;
    case 'resizable': buf = resizableBuffer(total, total * 2 + 16); u8 = new Uint8Array(buf); break;
    case 'subarray': buf = new ArrayBuffer(total + 16); u8 = new Uint8Array(buf, 7, total); break;
    case 'Buffer': u8 = Buffer.alloc(total); buf = u8.buffer; break;
    default: buf = new ArrayBuffer(Math.ceil(total / 4) * 4 + 8); u8 = new Uint8Array(buf, 0, total);
  }
  u8.fill(0xfe);
  let at = r.lead;
  const offs: number[] = [at];
  for (const row of r.rows) {
    u8.set(row, at);
    at += row.length;
    offs.push(at);
  }
  const o = r.offsets;
  let values = offs;
  if (o.kind === 'raw') values = o.values;
  else if (o.kind === 'empty') values = [];
  else if (o.kind !== 'valid' && values.length > 0) {
    const i = o.at % values.length;
    values = [...values];
    if (o.kind === 'decrease') values[i] = Math.max(0, values[i]! - 1 - (i > 0 ? values[i]! - values[i - 1]! : 0));
    else if (o.kind === 'exceed') values[i] = total + 1 + (i % 3);
    else values[i] = 0xffffffff;
  }
  let offsets: unknown;
  let rawOffsets: Uint32Array | null = null;
  switch (r.offsetsView) {
    case 'shared': rawOffsets = new Uint32Array(new SharedArrayBuffer(values.length * 4)); rawOffsets.set(values); break;
    case 'subarray': rawOffsets = new Uint32Array(values.length + 3).subarray(2, 2 + values.length); rawOffsets.set(values); break;
    case 'on-bytes': {
      // The offsets share the bytes' buffer (after the bytes, aligned), when it is a plain one.
      if (buf instanceof ArrayBuffer && !isResizable(buf) && r.view !== 'subarray' && r.view !== 'Buffer') {
        const start = Math.ceil(total / 4) * 4;
        const grown = new ArrayBuffer(start + values.length * 4 + 4);
        new Uint8Array(grown).set(u8);
        u8 = new Uint8Array(grown, 0, total);
        buf = grown;
        rawOffsets = new Uint32Array(grown, start, values.length);
      } else rawOffsets = new Uint32Array(values.length);
      rawOffsets.set(values);
      break;
    }
    default: rawOffsets = new Uint32Array(values);
  }
  switch (r.offsetsView) {
    case 'detached': offsets = rawOffsets; detach(rawOffsets); break;
    case 'Int32Array': offsets = new Int32Array(values); rawOffsets = null; break;
    case 'Array': offsets = values; rawOffsets = null; break;
    case 'Float64Array': offsets = new Float64Array(values); rawOffsets = null; break;
    case 'null': offsets = null; rawOffsets = null; break;
    default: offsets = rawOffsets;
  }
  let bytes: unknown = u8;
  let rawBytes: Uint8Array | null = u8;
  switch (r.view) {
    case 'detached': detach(u8); break;
    case 'Int8Array': bytes = new Int8Array(u8.buffer, u8.byteOffset, u8.length); rawBytes = null; break;
    case 'Uint8ClampedArray': bytes = new Uint8ClampedArray(u8.buffer, u8.byteOffset, u8.length); rawBytes = null; break;
    case 'Array': bytes = Array.from(u8); rawBytes = null; break;
    case 'DataView': bytes = new DataView(u8.buffer, u8.byteOffset, u8.length); rawBytes = null; break;
    case 'ArrayBuffer': bytes = u8.buffer; rawBytes = null; break;
    case 'string': bytes = Buffer.from(u8).toString('latin1'); rawBytes = null; break;
    case 'null': bytes = null; rawBytes = null; break;
    default:
  }
  return { bytes, offsets, rawBytes, rawOffsets };
}

function buildOut(r: BufRecipe, dtype: Dtype, maskDtype: MaskDtype, needed: number, inputs: { bytes: Uint8Array | null; offsets: Uint32Array | null; ids: ArrayBufferView | null }, mask: boolean): unknown {
  const type = r.type === 'right' ? (mask ? MASK_ARRAY_NAME[maskDtype] : DTYPE_CLASS[dtype]) : r.type;
  const n = 'exact' in r.size ? Math.max(0, needed + r.size.exact) : r.size.abs;
  if (type === 'Array') return new Array<number>(n).fill(0);
  if (type === 'number') return n;
  const el = ELEMENT[type] ?? 1;
  const ctor = type === 'DataView' ? null : CTOR[type]!;
  const make = (b: ArrayBufferLike, o: number, len: number): ArrayBufferView => {
    if (ctor === null) return new DataView(b, o, len);
    if (type === 'Buffer') return Buffer.from(b as ArrayBuffer, o, len);
    return new ctor(b, o, len);
  };
  const alignUp = (x: number) => Math.ceil(x / el) * el;
  const aliasOf = r.backing === 'alias-bytes' ? inputs.bytes : r.backing === 'alias-offsets' ? inputs.offsets : r.backing === 'alias-ids' ? inputs.ids : null;
  if (aliasOf && aliasOf.buffer instanceof ArrayBuffer && !isResizable(aliasOf.buffer) && !isDetached(aliasOf.buffer)) {
    // A view on the other argument's buffer, starting inside it (so it may overlap it).
    const b = aliasOf.buffer;
    const start = alignUp(Math.floor(r.at * b.byteLength));
    const room = Math.floor((b.byteLength - Math.min(start, b.byteLength)) / el);
    if (start <= b.byteLength) return make(b, start, Math.min(n, room));
  }
  switch (r.backing) {
    case 'shared': return make(new SharedArrayBuffer(n * el), 0, n);
    case 'resizable': return make(resizableBuffer(n * el, n * el * 2 + 8), 0, n);
    case 'offset': return make(new ArrayBuffer((n + 3) * el), 2 * el, n);
    case 'detached': {
      const v = make(new ArrayBuffer(n * el), 0, n);
      detach(v);
      return v;
    }
    default: return make(new ArrayBuffer(n * el), 0, n);
  }
}

function notObjectValue(name: string): unknown {
  switch (name) {
    case 'null': return null;
    case 'number': return 3;
    case 'string': return 'options';
    case 'array': return [];
    case 'Date': return new Date(0);
    case 'Map': return new Map();
    default: return new (class Options {})();
  }
}

/** The arguments of one call, built afresh for one backend; `needed` sizes 'exact' out buffers. */
export function build(c: Case, needed: number, dtypeHint: Dtype, maskHint: MaskDtype = 'uint8'): Built {
  const a: Built = { texts: undefined, bytes: undefined, offsets: undefined, options: undefined, outs: [] };
  // Texts.
  const t = c.texts;
  const rows: unknown[] = [...t.rows];
  if (t.junkRow !== null) rows.splice(t.at % (rows.length + 1), 0, junkValue(t.junkRow));
  const i = rows.length > 0 ? t.at % rows.length : 0;
  switch (t.container) {
    case 'array': a.texts = rows; break;
    case 'proxy': a.texts = new Proxy(rows, {}); break;
    case 'proxy-throws':
      a.texts = new Proxy(rows, {
        get(target, key, recv) {
          if (key === String(i)) act(t.action === 'none' ? 'throw' : t.action, a);
          return Reflect.get(target, key, recv);
        },
      });
      break;
    case 'getter':
    case 'getter-unstable': {
      if (rows.length > 0) {
        const value = rows[i];
        let reads = 0;
        Object.defineProperty(rows, i, {
          get() {
            act(t.action, a);
            reads++;
            return t.container === 'getter' ? value : `read ${reads}`;
          },
          enumerable: true,
          configurable: true,
        });
      }
      a.texts = rows;
      break;
    }
    case 'sparse':
      if (rows.length > 0) delete rows[i];
      a.texts = rows;
      break;
    case 'proxy-length':
      a.texts = new Proxy(rows, { get: (target, key, recv) => (key === 'length' ? t.claimed : Reflect.get(target, key, recv)) });
      break;
    case 'not-array': a.texts = notArrayValue(t.notArray, t.rows); break;
  }
  // Bytes.
  const b = buildBytes(c.bytes);
  a.bytes = b.bytes;
  a.offsets = b.offsets;
  // Options.
  const o = c.options;
  if (o.shape === 'undefined') return a;
  if (o.shape === 'not-object') {
    a.options = notObjectValue(o.notObject);
    return a;
  }
  const values: Record<string, unknown> = o.shape === 'null-proto' ? Object.create(null) : {};
  for (const [k, v] of Object.entries(o.values)) values[k] = v;
  if (o.unknownKey !== null) Object.defineProperty(values, o.unknownKey, { value: 1, enumerable: true, configurable: true, writable: true });
  const dtype = (DTYPES as readonly unknown[]).includes(values.dtype) ? (values.dtype as Dtype) : dtypeHint;
  const maskDtype = (MASK_DTYPES as readonly unknown[]).includes(values.maskDtype) ? (values.maskDtype as MaskDtype) : maskHint;
  if (o.out !== 'none') {
    if (o.out === 'null') values.out = null;
    else if (o.out === 'array') values.out = [];
    else if (o.out === 'proxy-throws') {
      values.out = new Proxy({}, { ownKeys: () => { throw new Hostile('ownKeys threw'); } });
    } else {
      const out: Record<string, unknown> = {};
      let ids: ArrayBufferView | null = null;
      if (o.out.ids) {
        const v = buildOut(o.out.ids, dtype, maskDtype, needed, { bytes: b.rawBytes, offsets: b.rawOffsets, ids: null }, false);
        out.ids = v;
        if (ArrayBuffer.isView(v)) ids = v;
      }
      if (o.out.attentionMask) out.attentionMask = buildOut(o.out.attentionMask, dtype, maskDtype, needed, { bytes: b.rawBytes, offsets: b.rawOffsets, ids }, true);
      if (o.out.unknown) out.extra = 1;
      for (const v of [out.ids, out.attentionMask]) {
        if (ArrayBuffer.isView(v) && !isDetached(v.buffer)) {
          new Uint8Array(v.buffer, v.byteOffset, v.byteLength).fill(SENTINEL);
          a.outs.push({ view: v, before: new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice() });
        }
      }
      values.out = out;
    }
  }
  if (o.getterKey !== null) {
    const key = o.getterKey;
    const value = values[key];
    Object.defineProperty(values, key, {
      get() {
        act(o.action, a);
        return value;
      },
      enumerable: true,
      configurable: true,
    });
  }
  a.options = o.shape === 'proxy' ? new Proxy(values, {}) : values;
  return a;
}

// ---------------------------------------------------------------------------------------------
// Running a call, and what counts as its outcome.

/** An argument an error message may name first (docs/SEMANTICS.md, Errors). */
const NAMES_ARGUMENT = /^(texts|bytes|offsets|options|unknown option '|row \d+|encoding '|rows x width)/;

type Outcome =
  | { ok: true; batch: object }
  | { ok: false; hostile: true; message: string }
  | { ok: false; hostile?: undefined; name: string; message: string };

/** The bytes of a view (a view of a detached buffer, which a getter may have made, has none). */
const hex = (v: ArrayBufferView): string => (isDetached(v.buffer) ? '(detached)' : Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex'));

function snapshot(b: Batch, built: Built): object {
  const ids = b.ids as ArrayBufferView & ArrayLike<number>;
  const outIds = built.outs.find((x) => x.view.buffer === ids.buffer);
  return {
    idsClass: ids.constructor.name,
    rows: b.rows,
    width: b.width,
    ids: hex(ids),
    mask: hex(b.attentionMask),
    lengths: Array.from(b.lengths),
    sourceLengths: Array.from(b.sourceLengths),
    // With out buffers the batch's arrays are views of their first elements.
    idsInOut: outIds ? ids.byteOffset === outIds.view.byteOffset : null,
  };
}

function run(f: () => Batch, built: Built): Outcome {
  try {
    return { ok: true, batch: snapshot(f(), built) };
  } catch (e) {
    if (e instanceof Hostile) return { ok: false, hostile: true, message: e.message };
    const err = e as Error;
    lastStack = typeof err?.stack === 'string' ? err.stack.split('\n').slice(1, 5).join('\n') : '';
    return { ok: false, name: err?.constructor?.name ?? typeof e, message: String(err?.message ?? e) };
  }
}

/** The stack of the last error a call threw (shown with a bad error). */
let lastStack = '';

/** Problems with one backend's outcome on its own (bad error, out written on error). */
function contractProblems(o: Outcome, built: Built, who: string, stack: string): string[] {
  const problems: string[] = [];
  if (!o.ok && !o.hostile) {
    if (o.name !== 'TypeError' && o.name !== 'RangeError') problems.push(`${who}: ${o.name} is neither TypeError nor RangeError: ${o.message}\n${stack}`);
    else if (!NAMES_ARGUMENT.test(o.message)) problems.push(`${who}: the message does not name the argument: ${o.name}: ${o.message}\n${stack}`);
  }
  if (!o.ok && !built.wrote) {
    for (const { view, before } of built.outs) {
      if (isDetached(view.buffer) || view.byteLength !== before.length) continue;
      if (!Buffer.from(view.buffer, view.byteOffset, view.byteLength).equals(before)) problems.push(`${who}: the error left bytes written into out`);
    }
  }
  return problems;
}

type Entry = 'strings' | 'bytes';

/** Outcomes seen, by kind (FUZZ_STATS=1 prints them): what the cases actually reached. */
const tally = new Map<string, number>();
function tallyOf(entry: Entry, o: Outcome): void {
  const key = o.ok ? `${entry}: ok` : o.hostile ? `${entry}: hostile` : `${entry}: ${o.name}: ${o.message.replace(/\d+/g, 'N').replace(/'[^']*'/g, "'.'").slice(0, 70)}`;
  tally.set(key, (tally.get(key) ?? 0) + 1);
}

function callOn(b: Backend, entry: Entry, a: Built): () => Batch {
  return entry === 'strings' ? () => vectorizeOn(b, a.texts, a.options) : () => vectorizeBytesOn(b, a.bytes, a.offsets, a.options);
}

/** The rows x width the call would produce without out buffers (sizes the 'exact' ones), or 0. */
function neededOf(c: Case, entry: Entry): { needed: number; dtype: Dtype; maskDtype: MaskDtype } {
  const plain: Case = { ...c, options: { ...c.options, out: 'none', getterKey: null } };
  const a = build(plain, 0, 'int32');
  try {
    const r = callOn(jsBackend, entry, a)();
    return {
      needed: r.rows * r.width,
      dtype: DTYPES.find((d) => DTYPE_CLASS[d] === r.ids.constructor.name) ?? 'int32',
      maskDtype: MASK_DTYPES.find((m) => MASK_ARRAY_NAME[m] === r.attentionMask.constructor.name) ?? 'uint8',
    };
  } catch {
    return { needed: 0, dtype: 'int32', maskDtype: 'uint8' };
  }
}

/** One case through both backends: the list of problems (empty when it behaved). */
export function check(c: Case, entry: Entry): string[] {
  const { needed, dtype, maskDtype } = neededOf(c, entry);
  const forJs = build(c, needed, dtype, maskDtype);
  const js = run(callOn(jsBackend, entry, forJs), forJs);
  const jsStack = lastStack;
  const forNative = build(c, needed, dtype, maskDtype);
  binding.selectSimd(SIMD_PATHS[c.simd]!);
  let nat: Outcome;
  try {
    nat = run(callOn(native, entry, forNative), forNative);
  } finally {
    binding.selectSimd(BEST);
  }
  tallyOf(entry, js);
  const problems = [...contractProblems(js, forJs, 'js', jsStack), ...contractProblems(nat, forNative, `native/${SIMD_PATHS[c.simd]}`, lastStack)];
  // The module keeps working after any call (nothing it keeps between calls was broken).
  for (const [who, be] of [['js', jsBackend], ['native', native]] as const) {
    try {
      const after = vectorizeOn(be, ['still ok'], {});
      if (after.width !== 8 || after.ids[0] !== 115) problems.push(`${who}: a plain call after this case gave a wrong batch`);
    } catch (e) {
      problems.push(`${who}: a plain call after this case threw: ${(e as Error).message}`);
    }
  }
  const a = JSON.stringify(js);
  const b = JSON.stringify(nat);
  if (a !== b) problems.push(`native/${SIMD_PATHS[c.simd]} and js differ:\n  js:     ${a.slice(0, 600)}\n  native: ${b.slice(0, 600)}`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The binding called directly with junk: it must throw or return, never crash or hang.

const junkArg = fc.oneof(
  junk,
  fc.uint8Array({ maxLength: 64 }),
  fc.uint32Array({ maxLength: 16 }),
  fc.int32Array({ maxLength: 16 }),
  fc.constantFrom(new ArrayBuffer(16), new SharedArrayBuffer(8), new Float64Array(2), new DataView(new ArrayBuffer(4))),
);
const packedArb = fc.oneof(
  fc.int32Array({ minLength: 13, maxLength: 13 }),
  // Valid options with one field changed (the width field, 10, included).
  fc.tuple(validOptions.filter((v) => v.vocab === undefined), fc.nat({ max: 15 }), fc.integer()).map(([v, k, x]) => {
    let p: Int32Array;
    try {
      p = packOptions(normalizeOptions(v)).slice();
    } catch {
      p = packOptions(normalizeOptions({})).slice();
    }
    p[k] = x;
    return p;
  }),
);
const direct = fc.record({
  fn: fc.constantFrom('vectorizeBytes', 'vectorizeJoined', 'measureBytes'),
  a: junkArg,
  b: junkArg,
  c: junkArg,
  packed: fc.oneof({ weight: 4, arbitrary: packedArb }, { weight: 1, arbitrary: junkArg }),
  vocab: fc.oneof(fc.constant(null), fc.uint32Array({ maxLength: 8 }), junkArg),
  outIds: fc.oneof(fc.constant(null), junkArg),
  outMask: fc.oneof(fc.constant(null), junkArg),
  slab: fc.oneof(fc.constant(null), fc.constantFrom(new ArrayBuffer(64 << 10), new ArrayBuffer(8)), junkArg),
  valid: fc.boolean(),
});

type Direct = typeof direct extends fc.Arbitrary<infer T> ? T : never;

export function checkDirect(d: Direct): string[] {
  const bind = binding as unknown as Record<string, (...args: unknown[]) => unknown>;
  // Half the cases pass real rows, so that the kernels run with the junk options.
  const rows = pack(['hello', 'wörld', '😀 ok']);
  const a = d.valid ? (d.fn === 'vectorizeJoined' ? ['hellowörld😀 ok'] : rows.bytes) : d.a;
  const b = d.valid ? (d.fn === 'vectorizeJoined' ? new Uint32Array([5, 5, 5]) : rows.offsets) : d.b;
  const c = d.valid && d.fn === 'vectorizeJoined' ? 3 : d.c;
  try {
    if (d.fn === 'measureBytes') bind.measureBytes!(a, b, d.packed, d.vocab);
    else if (d.fn === 'vectorizeBytes') bind.vectorizeBytes!(a, b, d.packed, d.vocab, d.outIds, d.outMask, d.slab);
    else bind.vectorizeJoined!(a, b, c, d.packed, d.vocab, d.outIds, d.outMask, d.slab);
  } catch (e) {
    if (!(e instanceof Error)) return [`the binding threw a non-Error: ${String(e)}`];
  }
  return [];
}

function pack(rows: string[]): { bytes: Uint8Array; offsets: Uint32Array } {
  const parts = rows.map((r) => enc.encode(r));
  const offsets = new Uint32Array(parts.length + 1);
  const bytes = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  parts.forEach((p, i) => {
    bytes.set(p, at);
    at += p.length;
    offsets[i + 1] = at;
  });
  return { bytes, offsets };
}

// ---------------------------------------------------------------------------------------------
// The watchdog: a thread that reports a case running longer than WATCHDOG_MS (the main thread is
// stuck in it and cannot), then ends the process.

const WATCHDOG_MS = Number(process.env.FUZZ_WATCHDOG_MS ?? 20_000);
const CASE_BYTES = 1 << 16;
const shared = new SharedArrayBuffer(8 + CASE_BYTES);
const beat = new Int32Array(shared, 0, 2);
const caseText = new Uint8Array(shared, 8, CASE_BYTES);

function startWatchdog(): Worker {
  const w = new Worker(
    `
    const { workerData } = require('node:worker_threads');
    const beat = new Int32Array(workerData, 0, 2);
    const text = new Uint8Array(workerData, 8);
    let last = -1, since = Date.now();
    setInterval(() => {
      const now = Atomics.load(beat, 0);
      if (now !== last) { last = now; since = Date.now(); return; }
      if (Date.now() - since > ${WATCHDOG_MS}) {
        const n = Atomics.load(beat, 1);
        process._rawDebug('FUZZ HANG: a case ran for more than ${WATCHDOG_MS} ms:\\n' + Buffer.from(text.subarray(0, n)).toString());
        process.kill(process.pid, 'SIGKILL');
      }
    }, 250).unref();
    `,
    { eval: true, workerData: shared },
  );
  w.unref();
  return w;
}

function heartbeat(what: unknown): void {
  const json = Buffer.from(
    JSON.stringify(what, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : typeof v === 'number' && !Number.isFinite(v) ? String(v) : Object.is(v, -0) ? '-0' : v === undefined ? '(undefined)' : v)),
  );
  const n = Math.min(json.length, CASE_BYTES);
  caseText.set(json.subarray(0, n));
  Atomics.store(beat, 1, n);
  Atomics.add(beat, 0, 1);
}

// ---------------------------------------------------------------------------------------------
// Rounds.

export interface FuzzResult {
  cases: number;
  seed: number;
  failure: string | null;
}

function property<T>(arb: fc.Arbitrary<T>, f: (x: T) => string[], label: string): fc.IPropertyWithHooks<[T]> {
  return fc.property(arb, (x) => {
    heartbeat({ property: label, case: x });
    const problems = f(x);
    if (problems.length > 0) throw new Error(problems.join('\n'));
  });
}

export function fuzzRound(seed: number, runs: number): FuzzResult {
  const props: Array<[string, fc.IPropertyWithHooks<[never]>, number]> = [
    ['vectorize (strings)', property(caseArb, (c) => check(c, 'strings'), 'strings') as fc.IPropertyWithHooks<[never]>, runs],
    ['vectorizeBytes', property(caseArb, (c) => check(c, 'bytes'), 'bytes') as fc.IPropertyWithHooks<[never]>, runs],
    ['the binding on junk arguments', property(direct, checkDirect, 'direct') as fc.IPropertyWithHooks<[never]>, Math.ceil(runs / 2)],
  ];
  let cases = 0;
  for (const [name, prop, numRuns] of props) {
    const r = fc.check(prop, { seed, numRuns, endOnFailure: process.env.FUZZ_SHRINK === '0' });
    cases += r.numRuns;
    if (r.failed) {
      const why = r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance);
      return { cases, seed, failure: `${name}: ${fc.defaultReportMessage(r) ?? 'failed'}\n${why}` };
    }
  }
  return { cases, seed, failure: null };
}

function main(): void {
  const seconds = Number(process.env.FUZZ_SECONDS ?? 0);
  const runs = Number(process.env.FUZZ_RUNS ?? 2000);
  let seed = process.env.FUZZ_SEED === undefined ? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0 : Number(process.env.FUZZ_SEED);
  startWatchdog();
  const until = performance.now() + seconds * 1000;
  let total = 0;
  let rounds = 0;
  const t0 = performance.now();
  do {
    const r = fuzzRound(seed, runs);
    total += r.cases;
    rounds++;
    console.log(`round ${rounds}: seed ${seed}, ${r.cases} cases, ${total} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (r.failure !== null) {
      console.error(`FUZZ FAILURE (replay: FUZZ_SEED=${seed} FUZZ_RUNS=${runs})\n${r.failure}`);
      process.exitCode = 1;
      return;
    }
    seed = (seed + 1) | 0;
  } while (performance.now() < until);
  console.log(`FUZZ OK: ${total} cases, ${rounds} rounds, SIMD paths ${SIMD_PATHS.join(', ')}`);
  if (process.env.FUZZ_STATS === '1') {
    for (const [k, n] of [...tally].sort((a, b) => b[1] - a[1])) console.log(`${String(n).padStart(7)}  ${k}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
