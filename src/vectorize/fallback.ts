/**
 * The pure-TypeScript backend: byte-identical to the native core (docs/SEMANTICS.md), used where no
 * binary loads. Each call makes two passes over the input: a measuring pass (row types, validity,
 * per-row lengths, range checks of kept ids) that may throw, then a writing pass that cannot, so a
 * throw never leaves anything in the caller's `out` buffers. Besides the result it allocates one
 * Int32Array of per-row flags; no per-row objects, encoders or token arrays.
 *
 * int64 ids are written as the low 32-bit words of the BigInt64Array, through an Int32Array view
 * with a stride of 2 (`Words`): a BigInt per token would cost an allocation each, and ids are
 * never negative, so their high words are the zeros of a fresh buffer (or cleared per row).
 */
import { BYT5_EOS, CANINE_CLS, CANINE_SEP, DTYPE_RANGE, IDS_ARRAY, LOW_WORD, MASK_ARRAY, MAX_ELEMENTS, MAX_OUTPUT_BYTES, elementsOf, outputBytes, specialCount, wordsOf, type NormalizedOptions } from './options.js';
import { typeOf } from '../common/check.js';
import type { Dtype, IdsArray, MaskArray, MaskDtype, VectorBatch } from './types.js';

/** Where the writers put ids: the ids themselves, or the Int32Array words of int64 ids. */
type Words = Exclude<IdsArray, BigInt64Array>;

/** How a row's content becomes tokens (plain constants, not an enum: erasable syntax only). */
type Kind = 0 | 1 | 2;
const Kind = {
  /** Unicode scalar values (codepoint, canine), optionally through a vocab. */
  CodePoint: 0,
  /** UTF-8 bytes, plus 3 for byt5. */
  Utf8: 1,
  /** UTF-16 code units. */
  Utf16: 2,
} as const;

const REPLACEMENT = 0xfffd;

// Side results of the per-row measuring functions, set once per call (not in their loops).
/** Code unit of the first lone surrogate / byte offset of the first ill-formed subpart, or -1. */
let gFirstBad = -1;
/**
 * -1 when the row must take the slow path; otherwise it takes the fast path (one token per code unit
 * / per byte, see `measure*`) and this bounds its largest id (without vocab) from above.
 */
let gClean = 0;
/** Code point decoded by `decodeMultiByte` (0xFFFD when ill-formed). */
let gCp = 0;
/** Whether `decodeMultiByte` met an ill-formed subpart. */
let gBad = false;

function kindOf(n: NormalizedOptions): Kind {
  const e = n.encoding;
  if (e === 'utf8' || e === 'byt5') return Kind.Utf8;
  if (e === 'utf16') return Kind.Utf16;
  return Kind.CodePoint;
}

// ---------------------------------------------------------------------------------------------
// Vocab lookup: a dense table for the BMP plus a Map for astral code points, cached per vocab.

interface VocabTable {
  /** id of each BMP code point (1 when unknown). */
  bmp: Int32Array;
  astral: Map<number, number>;
  /** Largest id the vocab can produce. */
  maxId: number;
}
const vocabTables = new WeakMap<Uint32Array, VocabTable>();

function vocabTable(vocab: Uint32Array): VocabTable {
  let t = vocabTables.get(vocab);
  if (t === undefined) {
    const bmp = new Int32Array(0x10000).fill(1);
    const astral = new Map<number, number>();
    for (let i = 0; i < vocab.length; i++) {
      const cp = vocab[i]!;
      if (cp < 0x10000) bmp[cp] = i + 2;
      else astral.set(cp, i + 2);
    }
    t = { bmp, astral, maxId: vocab.length + 1 };
    vocabTables.set(vocab, t);
  }
  return t;
}

function lookup(t: VocabTable, cp: number): number {
  return cp < 0x10000 ? t.bmp[cp]! : (t.astral.get(cp) ?? 1);
}

// ---------------------------------------------------------------------------------------------
// Measuring strings. Clean means: no surrogate at all (CodePoint), all ASCII (Utf8). A regex test
// decides that first: it is native and, on V8's one-byte strings, near free (about 10x faster than
// a charCodeAt loop); the loops run only for rows it flags.

const SURROGATE = /[\ud800-\udfff]/;
const NON_ASCII = /[^\x00-\x7f]/;

function measureCodePoints(s: string): number {
  if (!SURROGATE.test(s)) {
    gFirstBad = -1;
    gClean = 0xffff;
    return s.length;
  }
  const n = s.length;
  let count = n;
  let firstLone = -1;
  for (let j = 0; j < n; j++) {
    const c = s.charCodeAt(j);
    if ((c & 0xf800) === 0xd800) {
      if (c <= 0xdbff && j + 1 < n && (s.charCodeAt(j + 1) & 0xfc00) === 0xdc00) {
        j++;
        count--;
      } else if (firstLone < 0) {
        firstLone = j;
      }
    }
  }
  gFirstBad = firstLone;
  gClean = -1; // has surrogates
  return count;
}

function measureUtf8(s: string): number {
  if (!NON_ASCII.test(s)) {
    gFirstBad = -1;
    gClean = 0x7f;
    return s.length;
  }
  const n = s.length;
  let count = n;
  let firstLone = -1;
  for (let j = 0; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c < 0x80) continue;
    if (c < 0x800) {
      count += 1;
    } else if ((c & 0xf800) !== 0xd800) {
      count += 2;
    } else if (c <= 0xdbff && j + 1 < n && (s.charCodeAt(j + 1) & 0xfc00) === 0xdc00) {
      j++;
      count += 2; // 2 code units -> 4 bytes
    } else {
      if (firstLone < 0) firstLone = j;
      count += 2; // EF BF BD
    }
  }
  gFirstBad = firstLone;
  gClean = -1; // not ASCII
  return count;
}

// ---------------------------------------------------------------------------------------------
// WHATWG UTF-8 decoding (maximal-subpart replacement), one code point at a time.

/**
 * Decodes the sequence starting at `i` (whose lead byte is >= 0x80) within `end`; sets gCp and gBad
 * and returns the index after it. An ill-formed subpart ends before the first byte that cannot
 * continue it; that byte is then decoded afresh, as the WHATWG decoder does.
 */
function decodeMultiByte(b: Uint8Array, i: number, end: number): number {
  const b0 = b[i]!;
  let need: number;
  let lo = 0x80;
  let hi = 0xbf;
  let cp: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    need = 1;
    cp = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    cp = b0 & 0x0f;
    if (b0 === 0xe0) lo = 0xa0;
    else if (b0 === 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 === 0xf0) lo = 0x90;
    else if (b0 === 0xf4) hi = 0x8f;
  } else {
    gCp = REPLACEMENT;
    gBad = true;
    return i + 1;
  }
  let j = i + 1;
  for (; need > 0; need--) {
    if (j >= end) break;
    const c = b[j]!;
    if (c < lo || c > hi) break;
    cp = (cp << 6) | (c & 0x3f);
    lo = 0x80;
    hi = 0xbf;
    j++;
  }
  if (need > 0) {
    gCp = REPLACEMENT;
    gBad = true;
  } else {
    gCp = cp;
    gBad = false;
  }
  return j;
}

// Measuring byte rows. Clean means: all ASCII (CodePoint, Utf16), well-formed (Utf8).

function measureBytes(b: Uint8Array, a: number, end: number, kind: Kind): number {
  let count = 0;
  let firstBad = -1;
  let ascii = true;
  let i = a;
  while (i < end) {
    if (b[i]! < 0x80) {
      i++;
      count++;
      continue;
    }
    ascii = false;
    const next = decodeMultiByte(b, i, end);
    if (gBad) {
      if (firstBad < 0) firstBad = i - a;
      count += kind === Kind.Utf8 ? 3 : 1;
    } else if (kind === Kind.Utf8) {
      count += next - i;
    } else {
      count += kind === Kind.Utf16 && gCp >= 0x10000 ? 2 : 1;
    }
    i = next;
  }
  gFirstBad = firstBad;
  gClean = (kind === Kind.Utf8 ? firstBad < 0 : ascii) ? 0x7f : -1;
  return count;
}

// ---------------------------------------------------------------------------------------------
// Range checks: the first kept id of a row above `max`, or -1. Only for kinds whose ids can exceed
// a narrow dtype (UTF-8 bytes + 3 are at most 0xF4 + 3 = 247 and fit every dtype).

function firstTooLargeInString(s: string, kind: Kind, skip: number, kept: number, max: number, vt: VocabTable | null): number {
  const end = skip + kept;
  if (kind === Kind.Utf16) {
    for (let j = skip; j < end; j++) {
      const c = s.charCodeAt(j);
      if (c > max) return c;
    }
    return -1;
  }
  const n = s.length;
  let t = 0;
  for (let j = 0; j < n && t < end; j++, t++) {
    let cp = s.charCodeAt(j);
    if ((cp & 0xf800) === 0xd800) {
      if (cp <= 0xdbff && j + 1 < n && (s.charCodeAt(j + 1) & 0xfc00) === 0xdc00) {
        cp = ((cp - 0xd800) << 10) + (s.charCodeAt(++j) - 0xdc00) + 0x10000;
      } else {
        cp = REPLACEMENT;
      }
    }
    if (t < skip) continue;
    const id = vt === null ? cp : lookup(vt, cp);
    if (id > max) return id;
  }
  return -1;
}

function firstTooLargeInBytes(b: Uint8Array, a: number, stop: number, kind: Kind, skip: number, kept: number, max: number, vt: VocabTable | null): number {
  const end = skip + kept;
  let t = 0;
  let i = a;
  while (i < stop && t < end) {
    let cp = b[i]!;
    if (cp < 0x80) {
      i++;
    } else {
      i = decodeMultiByte(b, i, stop);
      cp = gCp;
    }
    if (kind === Kind.Utf16 && cp >= 0x10000) {
      const hiUnit = 0xd800 + ((cp - 0x10000) >> 10);
      const loUnit = 0xdc00 + (cp & 0x3ff);
      if (t >= skip && t < end && hiUnit > max) return hiUnit;
      t++;
      if (t >= skip && t < end && loUnit > max) return loUnit;
      t++;
      continue;
    }
    if (t >= skip) {
      const id = vt === null ? cp : lookup(vt, cp);
      if (id > max) return id;
    }
    t++;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Writing content tokens t in [skip, skip + kept) of a row at ids[k..]; the slow paths, for rows
// that are not clean.

// `ids` are written at k, k + st, k + 2 st, ... (st = 2 for the words of int64 ids).

function writeCodePointsSlow(s: string, ids: Words, k: number, st: number, skip: number, kept: number, vt: VocabTable | null): void {
  const n = s.length;
  const end = skip + kept;
  let t = 0;
  for (let j = 0; j < n && t < end; j++, t++) {
    let cp = s.charCodeAt(j);
    if ((cp & 0xf800) === 0xd800) {
      if (cp <= 0xdbff && j + 1 < n && (s.charCodeAt(j + 1) & 0xfc00) === 0xdc00) {
        cp = ((cp - 0xd800) << 10) + (s.charCodeAt(++j) - 0xdc00) + 0x10000;
      } else {
        cp = REPLACEMENT;
      }
    }
    if (t >= skip) {
      ids[k] = vt === null ? cp : lookup(vt, cp);
      k += st;
    }
  }
}

/** Writes the UTF-8 bytes of code point `cp` (> 0x7F) whose byte indices fall in [skip, end). */
function emitUtf8(cp: number, ids: Words, k: number, st: number, t: number, skip: number, end: number, add: number): number {
  let packed: number; // bytes, first in the low 8 bits
  let m: number;
  if (cp < 0x800) {
    packed = (0xc0 | (cp >> 6)) | ((0x80 | (cp & 0x3f)) << 8);
    m = 2;
  } else if (cp < 0x10000) {
    packed = (0xe0 | (cp >> 12)) | ((0x80 | ((cp >> 6) & 0x3f)) << 8) | ((0x80 | (cp & 0x3f)) << 16);
    m = 3;
  } else {
    packed =
      (0xf0 | (cp >> 18)) |
      ((0x80 | ((cp >> 12) & 0x3f)) << 8) |
      ((0x80 | ((cp >> 6) & 0x3f)) << 16) |
      ((0x80 | (cp & 0x3f)) << 24);
    m = 4;
  }
  for (let q = 0; q < m; q++, t++) {
    if (t >= skip && t < end) {
      ids[k] = ((packed >>> (8 * q)) & 0xff) + add;
      k += st;
    }
  }
  return k;
}

function writeUtf8Slow(s: string, ids: Words, k: number, st: number, skip: number, kept: number, add: number): void {
  const n = s.length;
  const end = skip + kept;
  let t = 0;
  for (let j = 0; j < n && t < end; j++) {
    let cp = s.charCodeAt(j);
    if (cp < 0x80) {
      if (t >= skip) {
        ids[k] = cp + add;
        k += st;
      }
      t++;
      continue;
    }
    if ((cp & 0xf800) === 0xd800) {
      if (cp <= 0xdbff && j + 1 < n && (s.charCodeAt(j + 1) & 0xfc00) === 0xdc00) {
        cp = ((cp - 0xd800) << 10) + (s.charCodeAt(++j) - 0xdc00) + 0x10000;
      } else {
        cp = REPLACEMENT;
      }
    }
    k = emitUtf8(cp, ids, k, st, t, skip, end, add);
    t += cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
}

function writeBytesSlow(b: Uint8Array, a: number, stop: number, kind: Kind, ids: Words, k: number, st: number, skip: number, kept: number, add: number, vt: VocabTable | null): void {
  const end = skip + kept;
  let t = 0;
  let i = a;
  while (i < stop && t < end) {
    let cp = b[i]!;
    if (cp < 0x80) {
      i++;
      if (t >= skip) {
        ids[k] = kind === Kind.CodePoint && vt !== null ? lookup(vt, cp) : cp + add;
        k += st;
      }
      t++;
      continue;
    }
    i = decodeMultiByte(b, i, stop);
    cp = gCp;
    if (kind === Kind.Utf8) {
      k = emitUtf8(cp, ids, k, st, t, skip, end, add);
      t += cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    } else if (kind === Kind.Utf16 && cp >= 0x10000) {
      if (t >= skip && t < end) {
        ids[k] = 0xd800 + ((cp - 0x10000) >> 10);
        k += st;
      }
      t++;
      if (t >= skip && t < end) {
        ids[k] = 0xdc00 + (cp & 0x3ff);
        k += st;
      }
      t++;
    } else {
      if (t >= skip) {
        ids[k] = vt === null ? cp : lookup(vt, cp);
        k += st;
      }
      t++;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Shared: widths, size and out checks, output allocation.

interface Layout {
  ids: IdsArray;
  mask: MaskArray;
  /** Where the writers put the ids (`ids`, or the words of int64 ids: the low ones, from `low`, with stride 2). */
  words: Words;
  stride: number;
  low: number;
  /** int64 ids whose padId has a non-zero high word: each row's token span is cleared first. */
  clearTokens: boolean;
  /** ids need padId written (reused buffer, or padId != 0). */
  fillPad: boolean;
  /** mask needs its zeros written (reused buffer). */
  fillMaskZeros: boolean;
}

function rangesOverlap(a: ArrayBufferView, aBytes: number, b: ArrayBufferView, bBytes: number): boolean {
  if (aBytes === 0 || bBytes === 0 || a.buffer !== b.buffer) return false;
  const a0 = a.byteOffset;
  const b0 = b.byteOffset;
  return a0 < b0 + bBytes && b0 < a0 + aBytes;
}

/**
 * Steps 5 and 6, then the output arrays. `bytes`/`offsets` are the input of vectorizeBytes: the
 * written part of each out buffer must not overlap them (outputs first, ids before attentionMask,
 * bytes before offsets, as the native binding checks; the offsets check is not in SEMANTICS.md).
 */
function layout(
  n: NormalizedOptions,
  rows: number,
  width: number,
  bytes: Uint8Array | null,
  offsets: Uint32Array | null,
): Layout {
  const total = rows * width;
  if (total > MAX_ELEMENTS) {
    throw new RangeError(`rows x width = ${rows} x ${width} exceeds ${MAX_ELEMENTS} elements`);
  }
  if (width > MAX_ELEMENTS) throw new RangeError(`rows x width = ${rows} x ${width}: the width exceeds ${MAX_ELEMENTS}`);
  const need = outputBytes(n, rows, width);
  if (need > MAX_OUTPUT_BYTES) {
    throw new RangeError(`rows x width = ${rows} x ${width} needs ${need} bytes of new arrays, more than ${MAX_OUTPUT_BYTES} (4 GiB): pass options.out buffers, or fewer rows`);
  }
  const outIds = n.outIds;
  const outMask = n.outMask;
  const idsLength = outIds === null ? 0 : elementsOf(outIds);
  const maskLength = outMask === null ? 0 : elementsOf(outMask);
  if (outIds !== null && idsLength < total) {
    throw new RangeError(`options.out.ids has ${idsLength} elements, the batch needs ${rows} x ${width} = ${total}`);
  }
  if (outMask !== null && maskLength < total) {
    throw new RangeError(
      `options.out.attentionMask has ${maskLength} elements, the batch needs ${rows} x ${width} = ${total}`,
    );
  }
  const idsBytes = outIds === null ? 0 : total * outIds.BYTES_PER_ELEMENT;
  const maskBytes = outMask === null ? 0 : total * outMask.BYTES_PER_ELEMENT;
  if (outIds !== null && outMask !== null && rangesOverlap(outIds, idsBytes, outMask, maskBytes)) {
    throw new RangeError('options.out.ids and options.out.attentionMask overlap');
  }
  if (bytes !== null && offsets !== null) {
    const outs: Array<[string, ArrayBufferView | null, number]> = [
      ['ids', outIds, idsBytes],
      ['attentionMask', outMask, maskBytes],
    ];
    for (const [which, out, outBytes] of outs) {
      if (out === null) continue;
      if (rangesOverlap(out, outBytes, bytes, bytes.byteLength)) {
        throw new RangeError(`options.out.${which} overlaps the input bytes`);
      }
      if (rangesOverlap(out, outBytes, offsets, offsets.byteLength)) {
        throw new RangeError(`options.out.${which} overlaps the input offsets`);
      }
    }
  }
  let ids: IdsArray;
  if (outIds === null) ids = new IDS_ARRAY[n.dtype](total);
  else ids = idsLength === total ? outIds : (outIds.subarray(0, total) as IdsArray);
  let mask: MaskArray;
  if (outMask === null) mask = new MASK_ARRAY[n.maskDtype](total);
  else mask = maskLength === total ? outMask : (outMask.subarray(0, total) as MaskArray);
  const wide = n.dtype === 'int64';
  const pad = n.padId;
  return {
    ids,
    mask,
    words: wide ? wordsOf(ids as BigInt64Array) : (ids as Words),
    stride: wide ? 2 : 1,
    low: wide ? LOW_WORD : 0,
    clearTokens: wide && (pad < 0 || pad >= 2 ** 32),
    fillPad: outIds !== null || pad !== 0,
    fillMaskZeros: outMask !== null,
  };
}

/**
 * Turns content lengths (in `sourceLengths`) into kept lengths with specials (`lengths`) and
 * returns the width. Leaves `sourceLengths` as content lengths (the writers need them).
 */
function widthOf(n: NormalizedOptions, sourceLengths: Int32Array, lengths: Int32Array, s: number): number {
  const cap = n.maxLength - s;
  let longest = 0;
  for (let i = 0; i < sourceLengths.length; i++) {
    const len = Math.min(sourceLengths[i]!, cap) + s;
    lengths[i] = len;
    if (len > longest) longest = len;
  }
  if (n.width != null) {
    if (n.width < longest) throw new RangeError(`options.width = ${n.width} is below the longest kept row (${longest} tokens)`);
    return n.width;
  }
  let width = n.padding === 'longest' ? longest : n.maxLength;
  const m = n.padToMultipleOf;
  if (m > 1 && width % m !== 0) width += m - (width % m);
  return width;
}

/** Whether a row of this kind can produce an id above the dtype's max (and so needs checking). */
function needsRangeCheck(kind: Kind, max: number, vt: VocabTable | null): boolean {
  if (kind === Kind.Utf8) return false;
  if (kind === Kind.Utf16) return max < 0xffff;
  if (vt !== null) return vt.maxId > max;
  return max < 0x10ffff;
}

/**
 * Writes padding everywhere it is needed (fresh arrays are already zero), before the rows' tokens
 * and mask ones are written over it: one memset-like fill beats a fill of each row's padding
 * (about 3x for 100k rows of width 128).
 */
function prefill(L: Layout, padId: number | bigint, total: number): void {
  if (total === 0) return; // an out buffer may be detached when nothing is written to it
  if (L.fillPad) {
    if (L.ids instanceof BigInt64Array) L.ids.fill(BigInt(padId), 0, total);
    else L.ids.fill(padId as number, 0, total);
  }
  if (L.fillMaskZeros) fillMask(L.mask, 0, 0, total);
}

/** `mask.fill(v, from, to)` for every mask type (a BigInt64Array takes a bigint). */
function fillMask(mask: MaskArray, v: 0 | 1, from: number, to: number): void {
  if (mask instanceof BigInt64Array) mask.fill(v === 1 ? 1n : 0n, from, to);
  else mask.fill(v, from, to);
}

/**
 * Starts the row whose `len` tokens begin at element `start`: its mask ones, its int64 ids' high
 * words cleared when padId's are not zero, CLS for canine. Returns where its content goes in
 * `L.words`.
 */
function startRow(L: Layout, start: number, len: number, canine: boolean): number {
  if (len > 0) {
    fillMask(L.mask, 1, start, start + len);
    if (L.clearTokens) (L.ids as BigInt64Array).fill(0n, start, start + len);
  }
  let k = start * L.stride + L.low;
  if (canine) {
    L.words[k] = CANINE_CLS;
    k += L.stride;
  }
  return k;
}

function finishSourceLengths(sourceLengths: Int32Array, s: number): void {
  if (s === 0) return;
  for (let i = 0; i < sourceLengths.length; i++) sourceLengths[i] = Math.min(sourceLengths[i]! + s, 2147483647);
}

// ---------------------------------------------------------------------------------------------
// Entry points.

/** Steps 3-6 and the batch for string rows; `n` from normalizeOptions, `texts` an array. */
export function vectorizeStringsJs(texts: readonly unknown[], n: NormalizedOptions): VectorBatch<Dtype, MaskDtype> {
  const rows = texts.length;
  // Each row read once, as the native binding does: a getter or proxy is not asked again.
  const strs = new Array<string>(rows);
  for (let i = 0; i < rows; i++) {
    const t = texts[i];
    if (typeof t !== 'string') throw new TypeError(`texts[${i}] must be a string, got ${typeOf(t)}`);
    strs[i] = t;
  }
  const kind = kindOf(n);
  const S = specialCount(n.encoding, n.addSpecialTokens);
  const cap = n.maxLength - S;
  const vt = kind === Kind.CodePoint && n.vocab !== null ? vocabTable(n.vocab) : null;
  const sourceLengths = new Int32Array(rows);
  const clean = new Int32Array(rows);

  // Step 4: validity, then ranges.
  const strict = n.invalid === 'error';
  for (let i = 0; i < rows; i++) {
    const s = strs[i]!;
    let len: number;
    if (kind === Kind.CodePoint) len = measureCodePoints(s);
    else if (kind === Kind.Utf8) len = measureUtf8(s);
    else {
      len = s.length;
      gClean = 0xffff;
      gFirstBad = -1;
    }
    if (strict && gFirstBad >= 0) {
      throw new TypeError(`row ${i} contains a lone surrogate at code unit ${gFirstBad} (options.invalid is 'error')`);
    }
    sourceLengths[i] = len;
    clean[i] = gClean;
  }
  const max = DTYPE_RANGE[n.dtype][1];
  const leftTrunc = n.truncationSide === 'left';
  if (needsRangeCheck(kind, max, vt)) {
    // Clean rows have one id per code unit: a regex for any unit above max rules most rows out.
    const above = new RegExp(`[^\\x00-\\u${Math.min(max, 0xffff).toString(16).padStart(4, '0')}]`);
    for (let i = 0; i < rows; i++) {
      if (vt === null && clean[i]! >= 0 && (clean[i]! <= max || !above.test(strs[i]!))) continue;
      const len = sourceLengths[i]!;
      const kept = Math.min(len, cap);
      const bad = firstTooLargeInString(strs[i]!, kind, leftTrunc ? len - kept : 0, kept, max, vt);
      if (bad >= 0) throw new RangeError(`row ${i}: id ${bad} does not fit dtype '${n.dtype}' (max ${max})`);
    }
  }

  // Steps 5 and 6.
  const lengths = new Int32Array(rows);
  const width = widthOf(n, sourceLengths, lengths, S);
  const L = layout(n, rows, width, null, null);
  const ids = L.words;
  const st = L.stride;
  const mask = L.mask;
  prefill(L, n.padId, rows * width);

  // Nothing below throws.
  const padLeft = n.paddingSide === 'left';
  const canine = S === 2;
  const eos = n.encoding === 'byt5' && S === 1;
  const add = n.encoding === 'byt5' ? 3 : 0;
  for (let i = 0; i < rows; i++) {
    const s = strs[i]!;
    const len = lengths[i]!;
    const kept = len - S;
    const skip = leftTrunc ? sourceLengths[i]! - kept : 0;
    const base = i * width;
    const start = padLeft ? base + width - len : base;
    let k = startRow(L, start, len, canine);
    if (clean[i]! >= 0) {
      // One token per code unit from `skip`.
      if (vt !== null) {
        const bmp = vt.bmp;
        for (let j = 0, q = k; j < kept; j++, q += st) ids[q] = bmp[s.charCodeAt(skip + j)]!;
      } else if (add === 0) {
        for (let j = 0, q = k; j < kept; j++, q += st) ids[q] = s.charCodeAt(skip + j);
      } else {
        for (let j = 0, q = k; j < kept; j++, q += st) ids[q] = s.charCodeAt(skip + j) + add;
      }
    } else if (kind === Kind.CodePoint) {
      writeCodePointsSlow(s, ids, k, st, skip, kept, vt);
    } else {
      writeUtf8Slow(s, ids, k, st, skip, kept, add);
    }
    k += kept * st;
    if (canine) ids[k] = CANINE_SEP;
    else if (eos) ids[k] = BYT5_EOS;
  }
  finishSourceLengths(sourceLengths, S);
  return { ids: L.ids, rows, width, lengths, sourceLengths, attentionMask: mask };
}

/** Steps 3-6 and the batch for UTF-8 rows `bytes[offsets[i] .. offsets[i+1])`; `n` from normalizeOptions. */
export function vectorizeBytesJs(bytes: Uint8Array, offsets: Uint32Array, n: NormalizedOptions): VectorBatch<Dtype, MaskDtype> {
  // Step 3: offsets. Counted from byteLength (see elementsOf): a detached input has none.
  const count = offsets.byteLength / 4;
  if (count < 1) throw new RangeError('offsets must have at least 1 element');
  const nb = bytes.byteLength;
  for (let i = 0; i < count; i++) {
    const o = offsets[i]!;
    if (i > 0 && o < offsets[i - 1]!) {
      throw new RangeError(`offsets must be non-decreasing: offsets[${i}] = ${o} < offsets[${i - 1}] = ${offsets[i - 1]!}`);
    }
    if (o > nb) throw new RangeError(`offsets[${i}] = ${o} exceeds bytes.length = ${nb}`);
  }
  const rows = count - 1;
  const kind = kindOf(n);
  const S = specialCount(n.encoding, n.addSpecialTokens);
  const cap = n.maxLength - S;
  const vt = kind === Kind.CodePoint && n.vocab !== null ? vocabTable(n.vocab) : null;
  const sourceLengths = new Int32Array(rows);
  const clean = new Int32Array(rows);

  // Step 4: validity, then ranges.
  const strict = n.invalid === 'error';
  for (let i = 0; i < rows; i++) {
    const len = measureBytes(bytes, offsets[i]!, offsets[i + 1]!, kind);
    if (strict && gFirstBad >= 0) {
      throw new TypeError(`row ${i} is not valid UTF-8 at byte ${gFirstBad} (options.invalid is 'error')`);
    }
    sourceLengths[i] = Math.min(len, 2147483647); // saturated as the native core does (a byte row can hold 3 tokens a byte)
    clean[i] = gClean;
  }
  const max = DTYPE_RANGE[n.dtype][1];
  const leftTrunc = n.truncationSide === 'left';
  if (needsRangeCheck(kind, max, vt)) {
    for (let i = 0; i < rows; i++) {
      if (vt === null && clean[i]! >= 0) continue; // ASCII only
      const len = sourceLengths[i]!;
      const kept = Math.min(len, cap);
      const skip = leftTrunc ? len - kept : 0;
      const bad = firstTooLargeInBytes(bytes, offsets[i]!, offsets[i + 1]!, kind, skip, kept, max, vt);
      if (bad >= 0) throw new RangeError(`row ${i}: id ${bad} does not fit dtype '${n.dtype}' (max ${max})`);
    }
  }

  // Steps 5 and 6.
  const lengths = new Int32Array(rows);
  const width = widthOf(n, sourceLengths, lengths, S);
  const L = layout(n, rows, width, bytes, offsets);
  const ids = L.words;
  const st = L.stride;
  const total = rows * width;
  const mask = L.mask;
  prefill(L, n.padId, total);

  // Nothing below throws.
  const padLeft = n.paddingSide === 'left';
  const canine = S === 2;
  const eos = n.encoding === 'byt5' && S === 1;
  const add = n.encoding === 'byt5' ? 3 : 0;
  for (let i = 0; i < rows; i++) {
    const a = offsets[i]!;
    const len = lengths[i]!;
    const kept = len - S;
    const skip = leftTrunc ? sourceLengths[i]! - kept : 0;
    const base = i * width;
    const start = padLeft ? base + width - len : base;
    let k = startRow(L, start, len, canine);
    if (clean[i]! >= 0) {
      // One token per byte from `skip` (well-formed UTF-8 for Utf8, ASCII otherwise).
      const from = a + skip;
      if (vt !== null) {
        const bmp = vt.bmp;
        for (let j = 0, q = k; j < kept; j++, q += st) ids[q] = bmp[bytes[from + j]!]!;
      } else if (add === 0) {
        // A loop beats ids.set(bytes.subarray(..)) here, and allocates no view per row.
        for (let j = 0, q = k; j < kept; j++, q += st) ids[q] = bytes[from + j]!;
      } else {
        for (let j = 0, q = k; j < kept; j++, q += st) ids[q] = bytes[from + j]! + add;
      }
    } else {
      writeBytesSlow(bytes, a, offsets[i + 1]!, kind, ids, k, st, skip, kept, add, vt);
    }
    k += kept * st;
    if (canine) ids[k] = CANINE_SEP;
    else if (eos) ids[k] = BYT5_EOS;
  }
  finishSourceLengths(sourceLengths, S);
  return { ids: L.ids, rows, width, lengths, sourceLengths, attentionMask: mask };
}
