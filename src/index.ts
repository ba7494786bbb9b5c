/**
 * dtesn-pipeline: turn batches of text into padded numeric arrays (character- or byte-level ids,
 * attention masks, lengths) with a SIMD Rust core, or a pure-TypeScript fallback with identical
 * output where the native binary cannot load. The contract is docs/SEMANTICS.md.
 *
 * Costs (see BENCHMARKS.md): `vectorize` joins the strings in JavaScript and the binding copies
 * them with one N-API call per 64 K-unit chunk (not per string); `vectorizeBytes` needs no string
 * crossing at all and runs near memory speed. Pass
 * `options.out` buffers to reuse memory across calls: allocating a fresh output costs more than
 * the work for large batches.
 */
import { createRequire } from 'node:module';
import { type Backend, jsBackend, loadNative, nativeBackendOf, vectorizeBytesOn, vectorizeOn } from './backends.js';
import type { BackendInfo, Dtype, MaskDtype, VectorBatch, VectorizeOptions } from './types.js';

export type {
  BackendInfo,
  Dtype,
  Encoding,
  IdsArray,
  IdsArrayOf,
  InvalidMode,
  MaskArray,
  MaskArrayOf,
  MaskDtype,
  OutBuffers,
  Padding,
  Side,
  VectorBatch,
  VectorizeOptions,
} from './types.js';

const version: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

function warn(message: string, code: string): void {
  process.emitWarning(message, { code, type: 'DtesnWarning' });
}

/**
 * Chooses the backend once per process: `DTESN_BACKEND=js` forces the fallback,
 * `DTESN_BACKEND=native` makes a missing binary an error; otherwise native when it loads, else
 * the fallback with one warning naming the reason.
 */
function chooseBackend(): Backend {
  const want = process.env.DTESN_BACKEND ?? '';
  if (want === 'js') return jsBackend;
  if (want !== '' && want !== 'native' && want !== 'auto') {
    warn(`DTESN_BACKEND='${want}' is not one of 'native', 'js', 'auto'; ignoring it`, 'DTESN_BAD_ENV');
  }
  const loaded = loadNative();
  if (!loaded.ok) {
    if (want === 'native') {
      throw new Error(`DTESN_BACKEND=native but the native binding could not be loaded: ${loaded.reason}`);
    }
    warn(
      `dtesn-pipeline: the native binding could not be loaded (${loaded.reason}); using the pure-TypeScript fallback`,
      'DTESN_NATIVE_UNAVAILABLE',
    );
    return jsBackend;
  }
  const missing = loaded.binding.simdRequestUnavailable();
  if (missing !== null) {
    warn(
      `DTESN_SIMD=${missing} is not available on this CPU; using '${loaded.binding.simdPath()}' (available: ${loaded.binding.availableSimd().join(', ')})`,
      'DTESN_SIMD_UNAVAILABLE',
    );
  }
  return nativeBackendOf(loaded.binding);
}

const backend: Backend = chooseBackend();

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

export { createPipeline } from './pipeline.js';
export type { CallOptions, Pipeline, PipelineConfig, PipelineMetrics, ProcessOptions, ProcessResult } from './pipeline.js';
export type { FileBatch, FileOptions, FileSource, SkippedLine, StreamOptions } from './stream.js';
export { RecordError } from './stream.js';
export { AbortError, PipelineClosedError, QueueFullError, WorkerCrashError } from './errors.js';
export type {
  BatchingMetrics,
  DistributionSnapshot,
  EventLoopDelay,
  LatencyMetrics,
  MetricsSource,
  ParallelizationMetrics,
  Percentiles,
  PipelineSettings,
  ResourceMetrics,
  ThroughputMetrics,
} from './metrics.js';
export { DEFAULT_THRESHOLDS } from './alerts.js';
export { HEALTH_WEIGHTS } from './health.js';
export { Monitor, createMonitor } from './monitor.js';
export type {
  Alert,
  AlertRule,
  Grade,
  Health,
  HealthComponent,
  MonitorEvents,
  MonitorOptions,
  MonitorReport,
  MonitorSample,
  MonitorTrends,
  ResolvedAlert,
  RuleContext,
  Severity,
  Thresholds,
  Trend,
} from './monitor.js';
// The HTTP service, Prometheus and OpenTelemetry are subpath entries (dtesn-pipeline/server,
// /fastify, /prometheus, /otel): importing the core and the pipeline loads none of them.
export { openTensorWriter, tensorWriterOptionsOf } from './tensor-file.js';
export type { TensorFileResult, TensorFormat, TensorWriter, TensorWriterOptions } from './tensor-file.js';
export { encodeNpy } from './npy.js';
