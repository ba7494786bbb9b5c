/**
 * Loads dtesn's own entry points for the bench, tolerating pieces that are not built yet:
 *   src/index.ts     vectorize, vectorizeBytes, getBackend (native backend unless DTESN_BACKEND=js)
 *   src/vectorize/fallback.ts  vectorizeStringsJs, vectorizeBytesJs (pure TS), fed normalizeOptions(options)
 *   src/vectorize/options.ts   normalizeOptions
 * DTESN_BENCH_SRC=<dir> points the bench at another source tree (e.g. a stub while developing).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { fileURLToPath } from 'node:url';
import type { BackendInfo, VectorBatch, VectorizeOptions } from '../src/vectorize/types.js';

type Batch = VectorBatch<any>;

export interface Ours {
  vectorize?: (texts: readonly string[], options?: VectorizeOptions<any>) => Batch;
  vectorizeBytes?: (bytes: Uint8Array, offsets: Uint32Array, options?: VectorizeOptions<any>) => Batch;
  getBackend?: () => BackendInfo;
  vectorizeStringsJs?: (texts: readonly unknown[], n: any) => Batch;
  vectorizeBytesJs?: (bytes: Uint8Array, offsets: Uint32Array, n: any) => Batch;
  normalizeOptions?: (options: unknown) => any;
  backend?: BackendInfo;
  /** True when `vectorize` runs the native (Rust) backend. */
  nativeReady: boolean;
  /** True when the pure-TS fallback can be called directly. */
  fallbackReady: boolean;
  notes: string[];
}

async function tryImport(file: string, notes: string[]): Promise<Record<string, any> | undefined> {
  try {
    return await import(pathToFileURL(file).href);
  } catch (e) {
    notes.push(`${path.basename(file)} not loaded: ${String((e as Error)?.message ?? e).split('\n')[0]}`);
    return undefined;
  }
}

export async function loadOurs(): Promise<Ours> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const src = path.resolve(process.env.DTESN_BENCH_SRC ?? path.join(here, '..', 'src'));
  const notes: string[] = [];
  const index = await tryImport(path.join(src, 'index.ts'), notes);
  const fallback = await tryImport(path.join(src, 'fallback.ts'), notes);
  const options = await tryImport(path.join(src, 'options.ts'), notes);
  const ours: Ours = {
    vectorize: index?.vectorize,
    vectorizeBytes: index?.vectorizeBytes,
    getBackend: index?.getBackend,
    vectorizeStringsJs: fallback?.vectorizeStringsJs,
    vectorizeBytesJs: fallback?.vectorizeBytesJs,
    normalizeOptions: options?.normalizeOptions,
    nativeReady: false,
    fallbackReady: false,
    notes,
  };
  if (ours.getBackend) {
    try {
      ours.backend = ours.getBackend();
    } catch (e) {
      notes.push(`getBackend() threw: ${(e as Error).message}`);
    }
  }
  ours.nativeReady = !!(ours.vectorize && ours.vectorizeBytes && ours.backend?.kind === 'native');
  if (ours.vectorize && !ours.nativeReady) {
    notes.push(`src/index.ts loaded but the backend is ${JSON.stringify(ours.backend?.kind ?? 'unknown')}` +
      (process.env.DTESN_BACKEND ? ` (DTESN_BACKEND=${process.env.DTESN_BACKEND})` : '') + ': native contenders skipped');
  }
  ours.fallbackReady = !!(ours.vectorizeStringsJs && ours.vectorizeBytesJs && ours.normalizeOptions);
  return ours;
}
