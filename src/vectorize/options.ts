/**
 * Argument checks and option normalization shared by every backend (docs/SEMANTICS.md, "Errors",
 * steps 1 and 2). The native binding receives the `NormalizedOptions` object built here, so its
 * field names and meanings are part of the contract with `native/`.
 */
import type { Dtype, Encoding, IdsArray, IdsArrayOf, InvalidMode, MaskArray, MaskArrayOf, MaskDtype, Padding, Side } from './types.js';
import { MAX_OUTPUT_BYTES } from './abi.generated.js';
import { checkInt, describe, isPlainObject, showValue, typeOf, typedArrayKind } from '../common/check.js';

export interface NormalizedOptions {
  encoding: Encoding;
  /** Validated code points (Unicode scalar values); vocab[i] -> id i + 2. Null when no vocab. */
  vocab: Uint32Array | null;
  maxLength: number;
  padding: Padding;
  /** 1 when unset. */
  padToMultipleOf: number;
  paddingSide: Side;
  truncationSide: Side;
  /** A number when it is a safe integer (also when given as a bigint), else a bigint (int64 only). */
  padId: number | bigint;
  addSpecialTokens: boolean;
  dtype: Dtype;
  maskDtype: MaskDtype;
  invalid: InvalidMode;
  outIds: IdsArray | null;
  outMask: MaskArray | null;
  /**
   * Internal, never set by normalizeOptions: a fixed width for the shards of one pipeline batch
   * (each worker writes its rows with the width of the whole batch). Must hold every kept row.
   */
  width?: number | null;
}

/** The largest element count of a batch (rows x width). */
export const MAX_ELEMENTS = 2147483647;

/**
 * The most bytes of new arrays one call allocates (ids and attentionMask unless `out` holds
 * them, lengths and sourceLengths): 4 GiB, what a Node.js Buffer and a typed array can hold on
 * every supported Node version, so that both backends refuse the same calls, before allocating.
 */
export { MAX_OUTPUT_BYTES };

/** The bytes of new arrays a batch of rows x width allocates (see MAX_OUTPUT_BYTES). */
export function outputBytes(n: Pick<NormalizedOptions, 'dtype' | 'maskDtype' | 'outIds' | 'outMask'>, rows: number, width: number): number {
  const cells = rows * width;
  return (n.outIds === null ? cells * ID_BYTES[n.dtype] : 0) + (n.outMask === null ? cells * MASK_BYTES[n.maskDtype] : 0) + rows * 8;
}

/**
 * Inclusive [lo, hi] of the ids (and padId) each dtype can hold; for int64, of a padId given as a
 * number (a bigint padId may be any int64: INT64_RANGE).
 */
export const DTYPE_RANGE: { readonly [D in Dtype]: readonly [number, number] } = {
  int32: [-2147483648, 2147483647],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  uint8: [0, 255],
  float32: [-16777216, 16777216],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** Inclusive range of a bigint padId (dtype 'int64'). */
export const INT64_RANGE: readonly [bigint, bigint] = [-(2n ** 63n), 2n ** 63n - 1n];

/** The typed-array constructor holding ids of each dtype (a length, or a view of a buffer). */
export const IDS_ARRAY: {
  readonly [D in Dtype]: {
    new (length: number): IdsArrayOf[D];
    new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): IdsArrayOf[D];
  };
} = {
  int32: Int32Array,
  int16: Int16Array,
  uint16: Uint16Array,
  uint8: Uint8Array,
  float32: Float32Array,
  int64: BigInt64Array,
};

/**
 * The element count of a typed array, from its byteLength. Not `.length`: for a view whose buffer
 * was detached (transferred) V8 on Node 20 has been seen to report the old `length` in optimized
 * code while `byteLength` is 0 (the fuzz found it: a call then threw from `subarray`).
 */
export function elementsOf(v: IdsArray | MaskArray): number {
  return v.byteLength / v.BYTES_PER_ELEMENT;
}

/** Index of an int64 element's low 32-bit word within its pair of words (0 on little-endian hosts). */
export const LOW_WORD: 0 | 1 = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;

/** The 32-bit words of `a`, two per element (the low one of element k at 2k + LOW_WORD). */
export function wordsOf(a: BigInt64Array): Int32Array {
  // An empty view may sit on a detached buffer (a view of that cannot even be made); its length
  // from byteLength (see elementsOf).
  const n = a.byteLength;
  return n === 0 ? new Int32Array(0) : new Int32Array(a.buffer, a.byteOffset, n / 4);
}

/** Bytes per id of each dtype. */
export const ID_BYTES: { readonly [D in Dtype]: number } = { int32: 4, int16: 2, uint16: 2, uint8: 1, float32: 4, int64: 8 };

/** The typed-array constructor holding the attention mask of each maskDtype. */
export const MASK_ARRAY: {
  readonly [M in MaskDtype]: {
    new (length: number): MaskArrayOf[M];
    new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): MaskArrayOf[M];
  };
} = { uint8: Uint8Array, int32: Int32Array, int64: BigInt64Array };

/** Bytes per mask element of each maskDtype. */
export const MASK_BYTES: { readonly [M in MaskDtype]: number } = { uint8: 1, int32: 4, int64: 8 };

/** Constructor names of MASK_ARRAY. */
export const MASK_ARRAY_NAME: { readonly [M in MaskDtype]: string } = { uint8: 'Uint8Array', int32: 'Int32Array', int64: 'BigInt64Array' };

/** The widest a batch can be with these options: maxLength rounded up to padToMultipleOf. */
export function maxWidthOf(n: Pick<NormalizedOptions, 'maxLength' | 'padToMultipleOf'>): number {
  return Math.ceil(n.maxLength / n.padToMultipleOf) * n.padToMultipleOf;
}

/** Constructor names of IDS_ARRAY, as used in messages and in typed-array tag checks. */
export const IDS_ARRAY_NAME: { readonly [D in Dtype]: string } = {
  int32: 'Int32Array',
  int16: 'Int16Array',
  uint16: 'Uint16Array',
  uint8: 'Uint8Array',
  float32: 'Float32Array',
  int64: 'BigInt64Array',
};

export const ENCODINGS: readonly Encoding[] = ['codepoint', 'utf8', 'utf16', 'byt5', 'canine'];
export const PADDINGS: readonly Padding[] = ['longest', 'max-length'];
export const SIDES: readonly Side[] = ['left', 'right'];
export const DTYPES: readonly Dtype[] = ['int32', 'int16', 'uint16', 'uint8', 'float32', 'int64'];
export const MASK_DTYPES: readonly MaskDtype[] = ['uint8', 'int32', 'int64'];
export const INVALID_MODES: readonly InvalidMode[] = ['replace', 'error'];

/** Special-token ids. */
export const BYT5_EOS = 1;
export const CANINE_CLS = 0xe000;
export const CANINE_SEP = 0xe001;

/** Number of special tokens a row of `encoding` gets (S in SEMANTICS.md). */
export function specialCount(encoding: Encoding, addSpecialTokens: boolean): number {
  if (!addSpecialTokens) return 0;
  if (encoding === 'byt5') return 1;
  if (encoding === 'canine') return 2;
  return 0;
}

const OPTION_KEYS: ReadonlySet<string> = new Set([
  'encoding',
  'vocab',
  'maxLength',
  'padding',
  'padToMultipleOf',
  'paddingSide',
  'truncationSide',
  'padId',
  'addSpecialTokens',
  'dtype',
  'maskDtype',
  'invalid',
  'out',
]);
const OUT_KEYS: ReadonlySet<string> = new Set(['ids', 'attentionMask']);

/** Step 1 for strings: `texts` must be an array (rows are checked by the backends, step 3). */
export function checkTexts(texts: unknown): asserts texts is readonly unknown[] {
  if (!Array.isArray(texts)) {
    throw new TypeError(`texts must be an array of strings, got ${typeOf(texts)}`);
  }
}

/** Step 1 for bytes. The offsets' contents (step 3) are checked by the backends. */
export function checkBytesInput(bytes: unknown, offsets: unknown): asserts bytes is Uint8Array {
  if (typedArrayKind(bytes) !== 'Uint8Array') {
    throw new TypeError(`bytes must be a Uint8Array, got ${describe(bytes)}`);
  }
  if (typedArrayKind(offsets) !== 'Uint32Array') {
    throw new TypeError(`offsets must be a Uint32Array, got ${describe(offsets)}`);
  }
}

function enumOption<T extends string>(o: Record<string, unknown>, key: string, allowed: readonly T[], dflt: T): T {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  const list = allowed.map((a) => `'${a}'`).join(', ');
  throw new TypeError(`options.${key} must be one of ${list}, got ${showValue(v)}`);
}

function intOption(o: Record<string, unknown>, key: string, dflt: number): number {
  const v = o[key];
  return v === undefined ? dflt : checkInt(v, `options.${key}`, 1, MAX_ELEMENTS, '>= 1');
}

interface VocabCacheEntry {
  strings: string[];
  codePoints: Uint32Array;
}
const vocabCache = new WeakMap<object, VocabCacheEntry>();

/** The single code point of `s` when `s` is exactly one Unicode scalar value, else -1. */
function singleScalar(s: string): number {
  if (s.length === 1) {
    const c = s.charCodeAt(0);
    return c >= 0xd800 && c <= 0xdfff ? -1 : c;
  }
  if (s.length === 2) {
    const hi = s.charCodeAt(0);
    const lo = s.charCodeAt(1);
    if (hi >= 0xd800 && hi <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) {
      return ((hi - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
    }
  }
  return -1;
}

function normalizeVocab(v: unknown): Uint32Array {
  if (!Array.isArray(v)) {
    throw new TypeError(`options.vocab must be an array of single-character strings, got ${describe(v)}`);
  }
  const arr = v as readonly unknown[];
  const n = arr.length;
  const hit = vocabCache.get(arr);
  if (hit !== undefined && hit.strings.length === n) {
    const s = hit.strings;
    let same = true;
    for (let i = 0; i < n; i++) {
      if (arr[i] !== s[i]) {
        same = false;
        break;
      }
    }
    if (same) return hit.codePoints;
  }
  const codePoints = new Uint32Array(n);
  const strings: string[] = new Array<string>(n);
  const firstAt = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const e = arr[i];
    if (typeof e !== 'string') {
      throw new TypeError(`options.vocab[${i}] must be a single code point, got ${describe(e)}`);
    }
    const cp = singleScalar(e);
    if (cp < 0) throw new TypeError(`options.vocab[${i}] must be a single code point, got '${e}'`);
    const j = firstAt.get(cp);
    if (j !== undefined) throw new RangeError(`options.vocab[${i}] repeats '${e}' (first at index ${j})`);
    firstAt.set(cp, i);
    codePoints[i] = cp;
    strings[i] = e;
  }
  vocabCache.set(arr, { strings, codePoints });
  return codePoints;
}

/**
 * Step 2 of SEMANTICS.md "Errors": validates `options` in the documented order and fills defaults.
 * `undefined` values count as absent. Costs O(V) element compares for a vocab seen before.
 */
export function normalizeOptions(options: unknown): NormalizedOptions {
  if (options === undefined) options = {};
  if (!isPlainObject(options)) throw new TypeError(`options must be an object, got ${describe(options)}`);
  const o = options;
  for (const k of Object.keys(o)) {
    if (!OPTION_KEYS.has(k)) throw new TypeError(`unknown option '${k}'`);
  }
  const encoding = enumOption(o, 'encoding', ENCODINGS, 'codepoint');
  const padding = enumOption(o, 'padding', PADDINGS, 'longest');
  const paddingSide = enumOption(o, 'paddingSide', SIDES, 'right');
  const truncationSide = enumOption(o, 'truncationSide', SIDES, 'right');
  const dtype = enumOption(o, 'dtype', DTYPES, 'int32');
  const maskDtype = enumOption(o, 'maskDtype', MASK_DTYPES, 'uint8');
  const invalid = enumOption(o, 'invalid', INVALID_MODES, 'replace');

  const maxLength = intOption(o, 'maxLength', 512);
  const padToMultipleOf = intOption(o, 'padToMultipleOf', 1);

  let addSpecialTokens = true;
  const ast = o.addSpecialTokens;
  if (ast !== undefined) {
    if (typeof ast !== 'boolean') {
      throw new TypeError(`options.addSpecialTokens must be a boolean, got ${describe(ast)}`);
    }
    addSpecialTokens = ast;
  }

  let vocab: Uint32Array | null = null;
  if (o.vocab !== undefined) {
    vocab = normalizeVocab(o.vocab);
    if (encoding !== 'codepoint') {
      throw new TypeError(`options.vocab is only valid with encoding 'codepoint', got '${encoding}'`);
    }
  }

  const s = specialCount(encoding, addSpecialTokens);
  if (maxLength < s) {
    throw new RangeError(`options.maxLength must be >= ${s} to hold the special tokens of encoding '${encoding}'`);
  }

  const [, hi] = DTYPE_RANGE[dtype];
  const padId = o.padId === undefined ? 0 : padIdOf(o.padId, dtype);
  if (s === 2 && CANINE_CLS > hi) {
    throw new RangeError(`encoding 'canine' special token ${CANINE_CLS} does not fit dtype '${dtype}' (max ${hi})`);
  }

  let outIds: IdsArray | null = null;
  let outMask: MaskArray | null = null;
  const out = o.out;
  if (out !== undefined) {
    if (!isPlainObject(out)) throw new TypeError(`options.out must be an object, got ${describe(out)}`);
    for (const k of Object.keys(out)) {
      if (!OUT_KEYS.has(k)) throw new TypeError(`unknown option 'out.${k}'`);
    }
    const ids = out.ids;
    if (ids !== undefined) {
      const want = IDS_ARRAY_NAME[dtype];
      if (typedArrayKind(ids) !== want) {
        throw new TypeError(`options.out.ids must be a ${want} for dtype '${dtype}', got ${describe(ids)}`);
      }
      outIds = ids as IdsArray;
    }
    const mask = out.attentionMask;
    if (mask !== undefined) {
      const want = MASK_ARRAY_NAME[maskDtype];
      if (typedArrayKind(mask) !== want) {
        throw new TypeError(`options.out.attentionMask must be a ${want} for maskDtype '${maskDtype}', got ${describe(mask)}`);
      }
      outMask = mask as MaskArray;
    }
  }

  return {
    encoding,
    vocab,
    maxLength,
    padding,
    padToMultipleOf,
    paddingSide,
    truncationSide,
    padId,
    addSpecialTokens,
    dtype,
    maskDtype,
    invalid,
    outIds,
    outMask,
  };
}

/**
 * A checked padId: a number must be an integer in the dtype's range (int64: a safe integer); a
 * bigint is only for int64 and may be any int64. A bigint that a number holds exactly becomes
 * that number, so that equal pads give equal options however they were written.
 */
function padIdOf(p: unknown, dtype: Dtype): number | bigint {
  const [lo, hi] = DTYPE_RANGE[dtype];
  if (typeof p === 'number') {
    if (Number.isInteger(p) && p >= lo && p <= hi) return p === 0 ? 0 : p; // -0 would write different float32 bytes
    if (dtype === 'int64') {
      throw new RangeError(`options.padId must be a safe integer, or a bigint, for dtype 'int64', got ${String(p)}`);
    }
    throw new RangeError(`options.padId must be an integer in [${lo}, ${hi}] for dtype '${dtype}', got ${String(p)}`);
  }
  if (dtype !== 'int64') {
    if (typeof p === 'bigint') throw new TypeError(`options.padId must be a number for dtype '${dtype}' (a bigint only for 'int64'), got bigint`);
    throw new TypeError(`options.padId must be a number, got ${describe(p)}`);
  }
  if (typeof p !== 'bigint') throw new TypeError(`options.padId must be a number or a bigint for dtype 'int64', got ${describe(p)}`);
  const [blo, bhi] = INT64_RANGE;
  if (p < blo || p > bhi) throw new RangeError(`options.padId must be an integer in [${blo}, ${bhi}] for dtype 'int64', got ${p}`);
  return p >= BigInt(lo) && p <= BigInt(hi) ? Number(p) : p;
}

/**
 * The last options object a caller passed, as its keys and primitive values, and what it was
 * turned into: a server's requests mostly carry equal options, each in an object of its own
 * (parsed from JSON), and normalizing and fingerprinting them again is most of what a small
 * request costs beyond the work. A hit needs the same keys in the same order with the same
 * values; options holding an object (vocab, out) are never remembered.
 */
export class OptionsMemo<T> {
  #keys: string[] = [];
  #values: unknown[] = [];
  #value: T | undefined = undefined;

  /** What `options` was turned into last time, or undefined. */
  get(options: unknown): T | undefined {
    if (this.#value === undefined || !isPlainObject(options)) return undefined;
    const keys = this.#keys;
    const values = this.#values;
    let i = 0;
    for (const k in options) {
      if (i === keys.length || keys[i] !== k || values[i] !== options[k]) return undefined;
      i++;
    }
    return i === keys.length ? this.#value : undefined;
  }

  /** Remembers `value` for `options` (a plain object that normalized without error). */
  set(options: Record<string, unknown>, value: T): void {
    const keys: string[] = [];
    const values: unknown[] = [];
    for (const k in options) {
      const v = options[k];
      if (typeof v === 'object' && v !== null) return;
      if (typeof v === 'function') return;
      keys.push(k);
      values.push(v);
    }
    this.#keys = keys;
    this.#values = values;
    this.#value = value;
  }
}
