/**
 * The public one-call API: `vectorize`, `vectorizeBytes` and `getBackend`, on the backend this
 * process chose (choose.ts).
 */
import { createRequire } from 'node:module';
import { vectorizeBytesOn, vectorizeOn } from './backends.js';
import { processBackend } from './choose.js';
import type { BackendInfo, Dtype, MaskDtype, VectorBatch, VectorizeOptions } from './types.js';

const { backend } = processBackend();
const version: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/**
 * Vectorizes `texts` in one call. Throws TypeError/RangeError naming the option or row for bad
 * input, before anything is written into `options.out`.
 */
export function vectorize<D extends Dtype = 'int32', M extends MaskDtype = 'uint8'>(
  texts: readonly string[],
  options?: VectorizeOptions<D, M>,
): VectorBatch<D, M> {
  return vectorizeOn(backend, texts, options) as VectorBatch<D, M>;
}

/**
 * Vectorizes UTF-8 rows: row i is `bytes[offsets[i] .. offsets[i+1])`, so `offsets.length` is
 * rows + 1. Equals `vectorize` of the decoded rows (malformed bytes become U+FFFD as TextDecoder
 * does, or throw with `invalid: 'error'`).
 */
export function vectorizeBytes<D extends Dtype = 'int32', M extends MaskDtype = 'uint8'>(
  bytes: Uint8Array,
  offsets: Uint32Array,
  options?: VectorizeOptions<D, M>,
): VectorBatch<D, M> {
  return vectorizeBytesOn(backend, bytes, offsets, options) as VectorBatch<D, M>;
}

/** Which implementation runs: `{ kind: 'native', simd: 'avx512', ... }` or `{ kind: 'js', simd: 'none', ... }`. */
export function getBackend(): BackendInfo {
  return { kind: backend.kind, simd: backend.simd(), version };
}


