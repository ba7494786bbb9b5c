/**
 * The two implementations of the vectorization contract (docs/SEMANTICS.md) behind one interface:
 * the native Rust core through N-API, and the pure-TypeScript fallback. `src/index.ts` picks one
 * per process; tests and benchmarks use both side by side.
 */
import { createRequire } from 'node:module';
import { vectorizeBytesJs, vectorizeStringsJs } from './fallback.js';
import { ID_BYTES, IDS_ARRAY, MASK_ARRAY, MASK_BYTES, type NormalizedOptions, checkBytesInput, checkTexts, elementsOf, normalizeOptions } from './options.js';
import { typeOf } from '../common/check.js';
import type { Dtype, IdsArray, MaskArray, MaskDtype, VectorBatch } from './types.js';
import {
  BOOL_FALSE,
  BOOL_TRUE,
  DTYPE_CODE,
  ENCODING_CODE,
  FIELD_ADD_SPECIAL_TOKENS,
  FIELD_DTYPE,
  FIELD_ENCODING,
  FIELD_INVALID,
  FIELD_MASK_DTYPE,
  FIELD_MAX_LENGTH,
  FIELD_OUT_WIDTH,
  FIELD_PAD_ID_HIGH,
  FIELD_PAD_ID_LOW,
  FIELD_PAD_TO_MULTIPLE_OF,
  FIELD_PADDING,
  FIELD_PADDING_SIDE,
  FIELD_SLAB_OFFSET,
  FIELD_TRUNCATION_SIDE,
  FIELD_WIDTH,
  INVALID_ERROR,
  INVALID_REPLACE,
  MASK_CODE,
  PACKED_LEN,
  PADDING_LONGEST,
  PADDING_MAX_LENGTH,
  SIDE_LEFT,
  SIDE_RIGHT,
  SLAB_MAX_BYTES,
  SMALL_BATCH_BYTES,
} from './abi.generated.js';

/** What a backend does once the facade has checked the arguments and normalized the options. */
export interface Backend {
  readonly kind: 'native' | 'js';
  vectorizeStrings(texts: readonly unknown[], n: NormalizedOptions): VectorBatch<Dtype, MaskDtype>;
  vectorizeBytes(bytes: Uint8Array, offsets: Uint32Array, n: NormalizedOptions): VectorBatch<Dtype, MaskDtype>;
  /** SIMD path in use ('none' for js). */
  simd(): string;
}

/**
 * What the binding returns: the ArrayBuffer holding, each part at a multiple of 8 bytes, the ids
 * (unless the caller passed `out.ids`), the attention mask (unless `out.attentionMask`), the
 * lengths and the source lengths. It is a fresh one, or this thread's slab (see `slab`) with the
 * parts from the offset the binding writes into `PACKED[FIELD_SLAB_OFFSET]`; the batch's width is in
 * `PACKED[FIELD_OUT_WIDTH]`. See `emit` in native/lib.rs and `batchOf` here.
 */
export type NativeResult = ArrayBuffer;

/** The arguments every vectorizing entry of the binding ends with (see `read_options` in native/lib.rs). */
type OptionArgs = [options: Int32Array, vocab: Uint32Array | null, outIds: unknown, outMask: unknown, slab: ArrayBuffer | null];

/** The N-API binding's exports (see the generated index.d.ts at the package root). */
export interface NativeBinding {
  /** Rows concatenated into `chunks`, `lengths[0..rows)` their lengths in UTF-16 units (see
   *  `joinRows`); `staged`: the first chunks went to `stageTexts`. */
  vectorizeJoined(chunks: string[], lengths: Uint32Array, rows: number, ...rest: [...OptionArgs, staged?: boolean]): NativeResult;
  /** Appends `chunks` to the thread's staged arena (emptied first when `first`; see `joinRows`). */
  stageTexts(chunks: string[], first: boolean): void;
  vectorizeBytes(bytes: unknown, offsets: unknown, ...rest: OptionArgs): NativeResult;
  /** The width vectorizeBytes would give (every check included, nothing written). */
  measureBytes(bytes: unknown, offsets: unknown, options: Int32Array, vocab: Uint32Array | null): number;
  simdPath(): string;
  availableSimd(): string[];
  selectSimd(name: string): string;
  simdRequestUnavailable(): string | null;
}

/**
 * The public `vectorize` on a given backend: the argument checks in the documented order, then
 * the backend (src/index.ts calls it with the backend it chose; tests and the fuzz with each).
 */
export function vectorizeOn(b: Backend, texts: unknown, options: unknown): VectorBatch<Dtype, MaskDtype> {
  checkTexts(texts);
  return b.vectorizeStrings(texts, normalizeOptions(options));
}

/** The public `vectorizeBytes` on a given backend (see vectorizeOn). */
export function vectorizeBytesOn(b: Backend, bytes: unknown, offsets: unknown, options: unknown): VectorBatch<Dtype, MaskDtype> {
  checkBytesInput(bytes, offsets);
  return b.vectorizeBytes(bytes, offsets as Uint32Array, normalizeOptions(options));
}

export const jsBackend: Backend = {
  kind: 'js',
  vectorizeStrings: vectorizeStringsJs,
  vectorizeBytes: vectorizeBytesJs,
  simd: () => 'none',
};

/**
 * The slab: one ArrayBuffer that the outputs of small batches (up to SLAB_MAX_BYTES, 8 KiB, from
 * native/abi.json) are carved from one after another, as Node carves small Buffers from its
 * Buffer pool. Allocating an ArrayBuffer per call, and V8 freeing it later on another thread, was
 * half the cost of a 10-row batch (malloc lock contention with V8's sweeper thread). Like pooled
 * Buffers, such a batch's arrays are views (`byteOffset` > 0) into a buffer shared with other
 * small batches: read them through the views, or `slice()` them for a buffer of their own
 * (docs/SEMANTICS.md, "Result"). A slab is zero-filled when made and each byte handed out once.
 */
const SLAB_BYTES = 64 << 10;
const slab = { buffer: new ArrayBuffer(SLAB_BYTES), offset: 0 };

/**
 * Packs checked options into one reused Int32Array for the binding (see `read_options` in
 * native/lib.rs; the fields' indices and codes are generated from native/abi.json): reading a dozen properties through N-API costs more than vectorizing a small
 * batch. After the options come two fields the binding writes back: the batch's width, and where
 * in the slab its outputs went (-1: in a fresh buffer; on the way in, the slab's free offset).
 * Reuse is safe: the binding reads and writes it synchronously, and JavaScript runs one call at a
 * time per thread (a nested call made by a getter finishes before the outer call reads it back).
 */
const PACKED = new Int32Array(PACKED_LEN);
const TWO_32 = 2 ** 32;

export function packOptions(n: NormalizedOptions): Int32Array {
  PACKED[FIELD_ENCODING] = ENCODING_CODE[n.encoding];
  PACKED[FIELD_MAX_LENGTH] = n.maxLength;
  PACKED[FIELD_PADDING] = n.padding === 'longest' ? PADDING_LONGEST : PADDING_MAX_LENGTH;
  PACKED[FIELD_PAD_TO_MULTIPLE_OF] = n.padToMultipleOf;
  PACKED[FIELD_PADDING_SIDE] = n.paddingSide === 'right' ? SIDE_RIGHT : SIDE_LEFT;
  PACKED[FIELD_TRUNCATION_SIDE] = n.truncationSide === 'right' ? SIDE_RIGHT : SIDE_LEFT;
  // padId as two 32-bit words, low and high (a bigint only for int64).
  const pad = n.padId;
  if (typeof pad === 'number') {
    const hi = Math.floor(pad / TWO_32);
    PACKED[FIELD_PAD_ID_LOW] = pad - hi * TWO_32; // 0 .. 2^32 - 1, stored as its int32 bits
    PACKED[FIELD_PAD_ID_HIGH] = hi;
  } else {
    PACKED[FIELD_PAD_ID_LOW] = Number(BigInt.asIntN(32, pad));
    PACKED[FIELD_PAD_ID_HIGH] = Number(BigInt.asIntN(32, pad >> 32n));
  }
  PACKED[FIELD_ADD_SPECIAL_TOKENS] = n.addSpecialTokens ? BOOL_TRUE : BOOL_FALSE;
  PACKED[FIELD_DTYPE] = DTYPE_CODE[n.dtype];
  PACKED[FIELD_INVALID] = n.invalid === 'replace' ? INVALID_REPLACE : INVALID_ERROR;
  PACKED[FIELD_WIDTH] = n.width ?? -1;
  PACKED[FIELD_MASK_DTYPE] = MASK_CODE[n.maskDtype];
  // Less room left than the largest output the binding puts there, or the caller has transferred
  // it (posting a small batch's `ids.buffer` to a worker detaches the slab): start a new slab.
  if (slab.offset > SLAB_BYTES - SLAB_MAX_BYTES || slab.buffer.byteLength === 0) {
    slab.buffer = new ArrayBuffer(SLAB_BYTES);
    slab.offset = 0;
  }
  PACKED[FIELD_SLAB_OFFSET] = slab.offset;
  return PACKED;
}

const align8 = (x: number) => Math.ceil(x / 8) * 8;

/**
 * The batch over the binding's ArrayBuffer (layout: see NativeResult) and the caller's `out`
 * arrays, whose views of the first rows x width elements are made here (N-API cannot create a
 * typed array on a SharedArrayBuffer). The lengths of a large batch are copied out, so that
 * holding on to them does not keep its ids alive.
 */
function batchOf(buffer: NativeResult, rows: number, n: NormalizedOptions): VectorBatch<Dtype, MaskDtype> {
  const width = PACKED[FIELD_OUT_WIDTH]!;
  const base = PACKED[FIELD_SLAB_OFFSET]!;
  const cells = rows * width;
  let at = base < 0 ? 0 : base;
  let ids: IdsArray;
  if (n.outIds) ids = elementsOf(n.outIds) === cells ? n.outIds : n.outIds.subarray(0, cells);
  else {
    ids = new IDS_ARRAY[n.dtype](buffer, at, cells);
    at += cells * ID_BYTES[n.dtype];
  }
  let attentionMask: MaskArray;
  if (n.outMask) attentionMask = elementsOf(n.outMask) === cells ? n.outMask : n.outMask.subarray(0, cells);
  else {
    at = align8(at);
    attentionMask = new MASK_ARRAY[n.maskDtype](buffer, at, cells);
    at += cells * MASK_BYTES[n.maskDtype];
  }
  at = align8(at);
  let lengths = new Int32Array(buffer, at, rows);
  at = align8(at + 4 * rows);
  let sourceLengths = new Int32Array(buffer, at, rows);
  at = align8(at + 4 * rows);
  if (base >= 0) slab.offset = at;
  else if (buffer.byteLength > SMALL_BATCH_BYTES) {
    lengths = lengths.slice();
    sourceLengths = sourceLengths.slice();
  }
  return { ids, rows, width, lengths, sourceLengths, attentionMask } as VectorBatch<Dtype, MaskDtype>;
}

/**
 * Rows are handed to the binding concatenated: JavaScript joins them (a string `+=` makes a rope
 * in a few nanoseconds per row) and the binding copies each chunk with one N-API call, where
 * reading row by row costs two N-API calls per row -- most of a batch's time (a 1,000-row batch of
 * workload (a): ~250 of ~300 us). Chunks stay near JOIN_CHUNK units, so no string gets near V8's
 * length limit and ropes stay shallow; and small, because the binding's read flattens each rope
 * into a fresh string: at 64 K units a two-byte chunk (128 KB) went to V8's large-object space, a
 * mapping and its page faults per chunk (workload (b), 10% of characters non-ASCII: 20 -> 8.8 ms
 * for encoding 'utf16' with 4 K units). Rows of JOIN_LONG_ROW units or more are chunks of their own:
 * the per-row crossing is nothing next to their length, and a rope costs a flattening copy (on
 * workload (c), ~2,000-character rows, joining them all was 20-40% slower than row by row).
 */
const JOIN_CHUNK = 1 << 12;
const JOIN_LONG_ROW = 512;

/** Reused between calls; a call made while they are in use (a getter on `texts` calling back
 *  into vectorize) gets its own. */
let joinLengths = new Uint32Array(1024);
const joinChunks: string[] = [];
let joinBusy = false;

/**
 * Joined chunks are handed to the binding (`stage`) whenever they hold STAGE_UNITS: a batch's
 * chunks all alive until the call would outgrow V8's young generation (16 MB semi-spaces) on
 * large batches, and every scavenge would then copy and promote them (the UDHR corpus x6,
 * 11.8 M units: 30 -> 14 ms when Node was given 64 MB semi-spaces). Staged, each dies young.
 */
const STAGE_UNITS = 1 << 20;

/** Concatenates `texts` into `chunks` and their lengths into `lengths`; checks that every row is
 *  a string (docs/SEMANTICS.md step 3, message as the binding's). Each element is read once.
 *  `stage`, when given, takes the chunks made so far each time they hold STAGE_UNITS units, and
 *  empties `chunks`; returns whether it was called. */
function joinRows(
  texts: readonly unknown[],
  rows: number,
  chunks: string[],
  lengths: Uint32Array,
  stage?: (chunks: string[], first: boolean) => void,
): boolean {
  let s = '';
  let pending = 0;
  let staged = false;
  const push = (c: string) => {
    chunks.push(c);
    pending += c.length;
    if (stage !== undefined && pending >= STAGE_UNITS) {
      stage(chunks, !staged);
      staged = true;
      chunks.length = 0;
      pending = 0;
    }
  };
  for (let i = 0; i < rows; i++) {
    const t = texts[i];
    if (typeof t !== 'string') throw new TypeError(`texts[${i}] must be a string, got ${typeOf(t)}`);
    lengths[i] = t.length;
    if (t.length >= JOIN_LONG_ROW) {
      // A long row is its own chunk: one N-API call copies it as it is (ropes would be flattened
      // into a fresh string first, a copy and an allocation more).
      if (s.length > 0) push(s);
      push(t);
      s = '';
    } else if (s.length + t.length > JOIN_CHUNK) {
      push(s);
      s = t;
    } else s += t;
  }
  if (s.length > 0) chunks.push(s);
  return staged;
}

export function nativeBackendOf(binding: NativeBinding): Backend {
  const stageTexts = (chunks: string[], first: boolean) => binding.stageTexts(chunks, first);
  const joined = (texts: readonly unknown[], rows: number, n: NormalizedOptions): NativeResult => {
    // The reused scratch, unless it is in use (re-entered) or the batch would make it huge.
    const own = joinBusy || rows > 1 << 20;
    if (!own && joinLengths.length < rows) joinLengths = new Uint32Array(Math.max(rows, 2 * joinLengths.length));
    const chunks = own ? [] : joinChunks;
    const lengths = own ? new Uint32Array(rows) : joinLengths;
    if (!own) joinBusy = true;
    try {
      // Only the outermost call stages: a call made meanwhile (`own`) must not touch its arena.
      const staged = joinRows(texts, rows, chunks, lengths, own ? undefined : stageTexts);
      return binding.vectorizeJoined(chunks, lengths, rows, packOptions(n), n.vocab, n.outIds, n.outMask, slab.buffer, staged);
    } finally {
      if (!own) {
        joinChunks.length = 0; // do not keep the batch's text alive
        joinBusy = false;
      }
    }
  };
  return {
    kind: 'native',
    vectorizeStrings: (texts, n) => {
      // The row count is read once (a getter on an element may change the array meanwhile).
      const rows = texts.length;
      return batchOf(joined(texts, rows, n), rows, n);
    },
    vectorizeBytes: (bytes, offsets, n) =>
      batchOf(binding.vectorizeBytes(bytes, offsets, packOptions(n), n.vocab, n.outIds, n.outMask, slab.buffer), offsets.byteLength / 4 - 1, n),
    simd: () => binding.simdPath(),
  };
}

export type NativeLoad = { ok: true; binding: NativeBinding } | { ok: false; reason: string };

/** Loads the platform binary through the napi-rs generated loader (index.cjs at the package root). */
export function loadNative(): NativeLoad {
  try {
    const require = createRequire(import.meta.url);
    return { ok: true, binding: require('../../index.cjs') as NativeBinding };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return { ok: false, reason: msg ?? 'unknown error' };
  }
}
