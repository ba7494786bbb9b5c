/**
 * The two implementations of the vectorization contract (docs/SEMANTICS.md) behind one interface:
 * the native Rust core through N-API, and the pure-TypeScript fallback. `src/index.ts` picks one
 * per process; tests and benchmarks use both side by side.
 */
import { createRequire } from 'node:module';
import { vectorizeBytesJs, vectorizeStringsJs } from './fallback.js';
import type { NormalizedOptions } from './options.js';
import type { Dtype, Encoding, IdsArray, VectorBatch } from './types.js';

/** What a backend does once the facade has checked the arguments and normalized the options. */
export interface Backend {
  readonly kind: 'native' | 'js';
  vectorizeStrings(texts: readonly unknown[], n: NormalizedOptions): VectorBatch<Dtype>;
  vectorizeBytes(bytes: Uint8Array, offsets: Uint32Array, n: NormalizedOptions): VectorBatch<Dtype>;
  /** SIMD path in use ('none' for js). */
  simd(): string;
}

/** What the binding returns: `[ids, rows, width, lengths, sourceLengths, attentionMask]`. */
export type NativeResult = [IdsArray, number, number, Int32Array, Int32Array, Uint8Array];

/** The N-API binding's exports (see the generated index.d.ts at the package root). */
export interface NativeBinding {
  vectorizeStrings(texts: unknown, options: Int32Array, vocab: Uint32Array | null, outIds: unknown, outMask: unknown): NativeResult;
  vectorizeBytes(
    bytes: unknown,
    offsets: unknown,
    options: Int32Array,
    vocab: Uint32Array | null,
    outIds: unknown,
    outMask: unknown,
  ): NativeResult;
  /** The width vectorizeBytes would give (every check included, nothing written). */
  measureBytes(bytes: unknown, offsets: unknown, options: Int32Array, vocab: Uint32Array | null): number;
  simdPath(): string;
  availableSimd(): string[];
  selectSimd(name: string): string;
  simdRequestUnavailable(): string | null;
}

export const jsBackend: Backend = {
  kind: 'js',
  vectorizeStrings: vectorizeStringsJs,
  vectorizeBytes: vectorizeBytesJs,
  simd: () => 'none',
};

const ENCODING_CODE: Record<Encoding, number> = { codepoint: 0, utf8: 1, utf16: 2, byt5: 3, canine: 4 };
const DTYPE_CODE: Record<Dtype, number> = { int32: 0, int16: 1, uint16: 2, uint8: 3, float32: 4 };

/**
 * Packs checked options into one reused Int32Array for the binding (see `read_options` in
 * native/lib.rs): reading a dozen properties through N-API costs more than vectorizing a small
 * batch. Reuse is safe: the binding reads it synchronously, and JavaScript runs one call at a time
 * per thread.
 */
const PACKED = new Int32Array(11);

export function packOptions(n: NormalizedOptions): Int32Array {
  PACKED[0] = ENCODING_CODE[n.encoding];
  PACKED[1] = n.maxLength;
  PACKED[2] = n.padding === 'longest' ? 0 : 1;
  PACKED[3] = n.padToMultipleOf;
  PACKED[4] = n.paddingSide === 'right' ? 0 : 1;
  PACKED[5] = n.truncationSide === 'right' ? 0 : 1;
  PACKED[6] = n.padId;
  PACKED[7] = n.addSpecialTokens ? 1 : 0;
  PACKED[8] = DTYPE_CODE[n.dtype];
  PACKED[9] = n.invalid === 'replace' ? 0 : 1;
  PACKED[10] = n.width ?? -1;
  return PACKED;
}

/**
 * The binding hands back the caller's own `out` arrays; views of their first rows x width
 * elements are made here, because N-API cannot create a typed array on a SharedArrayBuffer.
 */
function batchOf(r: NativeResult): VectorBatch<Dtype> {
  const n = r[1] * r[2];
  const ids = r[0].length === n ? r[0] : r[0].subarray(0, n);
  const mask = r[5].length === n ? r[5] : r[5].subarray(0, n);
  return { ids, rows: r[1], width: r[2], lengths: r[3], sourceLengths: r[4], attentionMask: mask } as VectorBatch<Dtype>;
}

export function nativeBackendOf(binding: NativeBinding): Backend {
  return {
    kind: 'native',
    vectorizeStrings: (texts, n) => batchOf(binding.vectorizeStrings(texts, packOptions(n), n.vocab, n.outIds, n.outMask)),
    vectorizeBytes: (bytes, offsets, n) =>
      batchOf(binding.vectorizeBytes(bytes, offsets, packOptions(n), n.vocab, n.outIds, n.outMask)),
    simd: () => binding.simdPath(),
  };
}

export type NativeLoad = { ok: true; binding: NativeBinding } | { ok: false; reason: string };

/** Loads the platform binary through the napi-rs generated loader (index.cjs at the package root). */
export function loadNative(): NativeLoad {
  try {
    const require = createRequire(import.meta.url);
    return { ok: true, binding: require('../index.cjs') as NativeBinding };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return { ok: false, reason: msg ?? 'unknown error' };
  }
}
