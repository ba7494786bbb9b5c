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
} from './vectorize/types.js';

export { getBackend, vectorize, vectorizeBytes } from './vectorize/vectorize.js';

export { createPipeline } from './pipeline/pipeline.js';
export type { CallOptions, Pipeline, PipelineConfig, PipelineMetrics, ProcessOptions, ProcessResult } from './pipeline/pipeline.js';
export type { FileBatch, FileOptions, FileSource, SkippedLine, StreamOptions } from './io/stream.js';
export { RecordError } from './io/stream.js';
export { AbortError, PipelineClosedError, QueueFullError, WorkerCrashError } from './common/errors.js';
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
} from './observe/metrics.js';
export { DEFAULT_THRESHOLDS } from './observe/monitor/alerts.js';
export { HEALTH_WEIGHTS } from './observe/monitor/health.js';
export { Monitor, createMonitor } from './observe/monitor/monitor.js';
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
} from './observe/monitor/monitor.js';
// The HTTP service, Prometheus and OpenTelemetry are subpath entries (dtesn-pipeline/server,
// /fastify, /prometheus, /otel): importing the core and the pipeline loads none of them.
export { openTensorWriter, tensorWriterOptionsOf } from './tensors/tensor-file.js';
export type { TensorFileResult, TensorFormat, TensorWriter, TensorWriterOptions } from './tensors/tensor-file.js';
export { encodeNpy } from './tensors/npy.js';
