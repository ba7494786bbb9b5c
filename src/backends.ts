/**
 * The two implementations of the vectorization contract (docs/SEMANTICS.md) behind one interface:
 * the native Rust core through N-API, and the pure-TypeScript fallback. `src/index.ts` picks one
 * per process; tests and benchmarks use both side by side.
 */
import { createRequire } from 'node:module';
import { vectorizeBytesJs, vectorizeStringsJs } from './fallback.js';
import type { NormalizedOptions } from './options.js';
import type { Dtype, VectorBatch } from './types.js';

/** What a backend does once the facade has checked the arguments and normalized the options. */
export interface Backend {
  readonly kind: 'native' | 'js';
  vectorizeStrings(texts: readonly unknown[], n: NormalizedOptions): VectorBatch<Dtype>;
  vectorizeBytes(bytes: Uint8Array, offsets: Uint32Array, n: NormalizedOptions): VectorBatch<Dtype>;
  /** SIMD path in use ('none' for js). */
  simd(): string;
}

/** The N-API binding's exports (see the generated index.d.ts at the package root). */
export interface NativeBinding {
  vectorizeStrings(texts: unknown, options: object): object;
  vectorizeBytes(bytes: unknown, offsets: unknown, options: object): object;
  /** The width vectorizeBytes would give (every check included, nothing written). */
  measureBytes(bytes: unknown, offsets: unknown, options: object): number;
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

export function nativeBackendOf(binding: NativeBinding): Backend {
  return {
    kind: 'native',
    // The binding builds exactly a VectorBatch (see native/lib.rs `batch_object`).
    vectorizeStrings: (texts, n) => binding.vectorizeStrings(texts, n) as VectorBatch<Dtype>,
    vectorizeBytes: (bytes, offsets, n) => binding.vectorizeBytes(bytes, offsets, n) as VectorBatch<Dtype>,
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
