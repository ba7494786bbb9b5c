/**
 * The data processing pipeline: one per process, fed by many concurrent requests.
 *
 * - `vectorize` / `vectorizeBytes`: one batch, run inline or split over the worker pool (shared
 *   memory in and out), whichever the cost model (cost.ts) expects to finish first. Results equal
 *   the core `vectorize` exactly, whatever path ran.
 * - `submit`: requests of a few rows, coalesced by the work-conserving micro-batcher
 *   (batcher.ts); each request gets exactly what `vectorize([its rows], options)` returns, or its
 *   own rows' results from the downstream `handler`.
 * - `stream` / `vectorizeFile`: batches from an iterable, or a file or byte stream, with bounded
 *   memory (stream.ts).
 * - `processBatch`: a user task module over items on the workers, one outcome per item.
 */
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Backend, jsBackend } from '../vectorize/backends.js';
import { processBackend } from '../vectorize/choose.js';
import { MicroBatcher, RequestFailure } from './submit/batcher.js';
import { CostModel, type InputKind } from './cost.js';
import { checkSignal } from '../common/abort.js';
import { PipelineClosedError, abortReason, queueFull } from '../common/errors.js';
import { MetricsCollector, type MetricsObserver, type PipelineMetrics, type PipelineSettings } from '../observe/metrics.js';
import { ID_BYTES, IDS_ARRAY, MASK_ARRAY, MASK_BYTES, type NormalizedOptions, OptionsMemo, checkBytesInput, checkTexts, maxWidthOf, normalizeOptions } from '../vectorize/options.js';
import { describe, intSetting, isPlainObject } from '../common/check.js';
import { type TaskOutcome, WorkerPool } from './pool/pool.js';
import { MAX_RETRIES, type RangeTasks, RetryBudget, type Segment, runRange } from './isolate.js';
import { ProcessResources } from '../observe/resources.js';
import { fillRows, fillRowsJs } from '../io/records.js';
import { type FileBatch, type FileOptions, type FileSource, type StreamOptions, streamBatches, fileBatches } from '../io/stream.js';
import type { Dtype, IdsArray, MaskArray, MaskDtype, VectorBatch, VectorizeOptions } from '../vectorize/types.js';
import type { ItemResult, Task, VectorizeResult } from './pool/worker.js';

/**
 * `R`: what the handler gives per row (`never`: no handler); `DD`, `DM`: the dtype and maskDtype
 * of the default options (`vectorize.dtype`, `.maskDtype`), which calls without their own get.
 */
export interface PipelineConfig<R = unknown, DD extends Dtype = Dtype, DM extends MaskDtype = MaskDtype> {
  /** [os.availableParallelism()] 1..64 workers in the pool. */
  maxWorkers?: number;
  /** [1000] the most rows a micro-batch takes (a free slot takes every waiting row up to it). */
  maxBatchSize?: number;
  /** [2] with fixedBatchSize: the longest the oldest waiting row waits for its batch to fill. */
  batchTimeoutMs?: number;
  /** [50] the p99 end-to-end latency of submit the monitor holds the pipeline to (alert latency-p99). */
  targetLatencyMs?: number;
  /**
   * Static batching (rows, 1..maxBatchSize): batches close at this many rows or when their oldest
   * row has waited batchTimeoutMs (Ray Serve's and TF Serving's batching). Unset (the default):
   * work-conserving, a free slot takes every waiting row up to maxBatchSize at once.
   */
  fixedBatchSize?: number;
  /** [100000] rows waiting; beyond it new work is refused at once with QueueFullError. */
  maxQueue?: number;
  /** Defaults for every call. */
  vectorize?: VectorizeOptions<DD, DM>;
  /**
   * Optional downstream stage for `submit`, one result per row; `submit` then resolves to its
   * request's rows' results. Its batches have the maskDtype of the defaults (`DM`): a handling
   * pipeline's calls cannot name another.
   */
  handler?(batch: VectorBatch<Dtype, DM>, signal: AbortSignal): Promise<R[]>;
  /** [true]; false = the JS fallback everywhere. */
  enableVectorization?: boolean;
  /**
   * [true] the metrics collector: rate windows, latency and batch-size histograms, event-loop
   * delay (see src/observe/metrics.ts). false: counters only, no timers, no histograms.
   */
  enableProfiling?: boolean;
  /** Worker heap limit (`resourceLimits.maxOldGenerationSizeMb`); a worker over it is replaced. */
  workerHeapMb?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export type ProcessResult<R> = { ok: true; value: R } | { ok: false; error: Error };

export interface ProcessOptions {
  /** The task module (a path, a URL or a file: URL) whose default export runs on each item. */
  task: string | URL;
  signal?: AbortSignal;
  /**
   * [64] re-runs on fresh workers this call may start to find the items that kill their worker
   * (src/pipeline/isolate.ts); once spent, the items of a piece whose worker dies all fail with
   * WorkerCrashError. 0: no re-run at all.
   */
  maxRetries?: number;
}

export type { PipelineMetrics } from '../observe/metrics.js';

/**
 * Any pipeline: what a server, a monitor or an exporter takes. `createPipeline` returns one of its
 * two precise kinds: a `VectorizingPipeline` (no handler: `submit` resolves to the request's rows
 * as a batch) or a `HandlingPipeline` (its rows' handler results).
 */
export interface Pipeline {
  vectorize<D extends Dtype = 'int32', M extends MaskDtype = 'uint8'>(texts: readonly string[], options?: VectorizeOptions<D, M>, opts?: CallOptions): Promise<VectorBatch<D, M>>;
  vectorizeBytes<D extends Dtype = 'int32', M extends MaskDtype = 'uint8'>(
    bytes: Uint8Array,
    offsets: Uint32Array,
    options?: VectorizeOptions<D, M>,
    opts?: CallOptions,
  ): Promise<VectorBatch<D, M>>;
  submit(text: string | readonly string[], options?: VectorizeOptions<Dtype, MaskDtype>, opts?: CallOptions): Promise<VectorBatch<Dtype, MaskDtype> | unknown[]>;
  stream<D extends Dtype = Dtype, M extends MaskDtype = 'uint8'>(source: AsyncIterable<string> | Iterable<string>, options?: StreamOptions<D, M>): AsyncIterable<VectorBatch<D, M>>;
  /** A file path, or a byte stream such as `process.stdin` (an async iterable of Uint8Array). */
  vectorizeFile<D extends Dtype = Dtype, M extends MaskDtype = 'uint8'>(source: FileSource, options: FileOptions<D, M>): AsyncIterable<FileBatch<D, M>>;
  processBatch<T, R>(items: readonly T[], opts: ProcessOptions): Promise<Array<ProcessResult<R>>>;
  metrics(): PipelineMetrics;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * The calls' dtypes default to the pipeline's (`DD`, `DM`: from `config.vectorize.dtype` and
 * `.maskDtype`).
 */
interface TypedCalls<DD extends Dtype, DM extends MaskDtype> {
  vectorize<D extends Dtype = DD, M extends MaskDtype = DM>(texts: readonly string[], options?: VectorizeOptions<D, M>, opts?: CallOptions): Promise<VectorBatch<D, M>>;
  vectorizeBytes<D extends Dtype = DD, M extends MaskDtype = DM>(bytes: Uint8Array, offsets: Uint32Array, options?: VectorizeOptions<D, M>, opts?: CallOptions): Promise<VectorBatch<D, M>>;
  stream<D extends Dtype = DD, M extends MaskDtype = DM>(source: AsyncIterable<string> | Iterable<string>, options?: StreamOptions<D, M>): AsyncIterable<VectorBatch<D, M>>;
  vectorizeFile<D extends Dtype = DD, M extends MaskDtype = DM>(source: FileSource, options: FileOptions<D, M>): AsyncIterable<FileBatch<D, M>>;
}

/** A pipeline without a handler: `submit` resolves to exactly `vectorize([its rows], options)`. */
export interface VectorizingPipeline<DD extends Dtype = 'int32', DM extends MaskDtype = 'uint8'> extends Pipeline, TypedCalls<DD, DM> {
  submit<D extends Dtype = DD, M extends MaskDtype = DM>(text: string | readonly string[], options?: VectorizeOptions<D, M>, opts?: CallOptions): Promise<VectorBatch<D, M>>;
  vectorize<D extends Dtype = DD, M extends MaskDtype = DM>(texts: readonly string[], options?: VectorizeOptions<D, M>, opts?: CallOptions): Promise<VectorBatch<D, M>>;
  vectorizeBytes<D extends Dtype = DD, M extends MaskDtype = DM>(bytes: Uint8Array, offsets: Uint32Array, options?: VectorizeOptions<D, M>, opts?: CallOptions): Promise<VectorBatch<D, M>>;
  stream<D extends Dtype = DD, M extends MaskDtype = DM>(source: AsyncIterable<string> | Iterable<string>, options?: StreamOptions<D, M>): AsyncIterable<VectorBatch<D, M>>;
  vectorizeFile<D extends Dtype = DD, M extends MaskDtype = DM>(source: FileSource, options: FileOptions<D, M>): AsyncIterable<FileBatch<D, M>>;
}

/** A pipeline with a handler giving `R` per row: `submit` resolves to its request's rows' results. */
export interface HandlingPipeline<R, DD extends Dtype = 'int32', DM extends MaskDtype = 'uint8'> extends Pipeline, TypedCalls<DD, DM> {
  submit(text: string | readonly string[], options?: VectorizeOptions<Dtype, DM>, opts?: CallOptions): Promise<R[]>;
  vectorize<D extends Dtype = DD, M extends MaskDtype = DM>(texts: readonly string[], options?: VectorizeOptions<D, M>, opts?: CallOptions): Promise<VectorBatch<D, M>>;
  vectorizeBytes<D extends Dtype = DD, M extends MaskDtype = DM>(bytes: Uint8Array, offsets: Uint32Array, options?: VectorizeOptions<D, M>, opts?: CallOptions): Promise<VectorBatch<D, M>>;
  stream<D extends Dtype = DD, M extends MaskDtype = DM>(source: AsyncIterable<string> | Iterable<string>, options?: StreamOptions<D, M>): AsyncIterable<VectorBatch<D, M>>;
  vectorizeFile<D extends Dtype = DD, M extends MaskDtype = DM>(source: FileSource, options: FileOptions<D, M>): AsyncIterable<FileBatch<D, M>>;
}

/**
 * Internal, for tests (not exported by the package entry point): `pipeline[ROUTE] = 'pool'` or
 * `'inline'` sends every batch that may use the pool that way instead of asking the cost model;
 * `'auto'` (the default) asks it.
 */
export const ROUTE = Symbol('dtesn.pipeline.route');

/**
 * Internal, for the OpenTelemetry export: `pipeline[OBSERVE](observer)` hands it every value the
 * metrics collector records (see MetricsCollector.observe) and returns the unsubscribe, or null
 * when profiling is off.
 */
export const OBSERVE = Symbol.for('dtesn.pipeline.observe');

/**
 * Internal, for tests: `createPipeline({ [WORKER_FILE]: path })` gives the pool (and its fresh
 * workers) another worker file, one that wraps the real one to inject faults.
 */
export const WORKER_FILE = Symbol('dtesn.pipeline.workerFile');

/** Below this many input bytes a batch always runs inline: dispatch costs more than it saves. */
const POOL_MIN_BYTES = 256 << 10;
/** Shards are at least this large, so that their dispatch stays small next to their work. */
const SHARD_MIN_BYTES = 128 << 10;

const CONFIG_KEYS = new Set([
  'maxWorkers', 'maxBatchSize', 'batchTimeoutMs', 'targetLatencyMs', 'fixedBatchSize', 'maxQueue', 'vectorize', 'handler',
  'enableVectorization', 'enableProfiling', 'workerHeapMb',
]);

function intIn(config: Record<string, unknown>, key: string, dflt: number, lo: number, hi: number): number {
  return intSetting(config, 'config', key, dflt, lo, hi);
}

function numIn(config: Record<string, unknown>, key: string, dflt: number, lo: number, loOpen: boolean, hi = Number.MAX_VALUE, why = ''): number {
  const v = config[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number') throw new TypeError(`config.${key} must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v) || (loOpen ? v <= lo : v < lo)) {
    throw new RangeError(`config.${key} must be a finite number ${loOpen ? '>' : '>='} ${lo}, got ${v}`);
  }
  if (v > hi) throw new RangeError(`config.${key} must be <= ${hi}${why}, got ${v}`);
  return v;
}

function boolIn(config: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = config[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new TypeError(`config.${key} must be a boolean, got ${describe(v)}`);
  return v;
}

/**
 * Options of a call over the pipeline's defaults. A key given as `undefined` means "the default":
 * the pipeline's where it has one (docs/SEMANTICS.md: undefined values mean the default).
 */
export function mergeOptions(defaults: object | undefined, options: unknown): unknown {
  if (defaults === undefined) return options;
  if (options === undefined) return defaults;
  // Not a plain object (an array, a Date, a class instance): normalizeOptions refuses it by name,
  // where a spread would have made a plain object of it.
  if (!isPlainObject(options)) return options;
  const d = defaults as Readonly<Record<string, unknown>>;
  const merged: Record<string, unknown> = { ...d };
  for (const k of Object.keys(options)) {
    const v = options[k];
    merged[k] = v === undefined && k in d ? d[k] : v;
  }
  return merged;
}

const vocabIds = new WeakMap<Uint32Array, number>();
let nextVocabId = 1;

/** Calls with the same fingerprint may share a batch. */
function fingerprint(n: NormalizedOptions): string {
  let vocab = 0;
  if (n.vocab) {
    vocab = vocabIds.get(n.vocab) ?? 0;
    if (vocab === 0) {
      vocab = nextVocabId++;
      vocabIds.set(n.vocab, vocab);
    }
  }
  return [n.encoding, vocab, n.maxLength, n.padding, n.padToMultipleOf, n.paddingSide, n.truncationSide, n.padId, n.addSpecialTokens, n.dtype, n.maskDtype, n.invalid].join('|');
}

function isShared(a: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && a.buffer instanceof SharedArrayBuffer;
}

/**
 * Whether the caller's out buffers share a buffer with each other or with the input. The core
 * refuses overlaps before writing anything; shards writing their own slices would not see them,
 * so such calls run inline.
 */
function outSharesMemory(n: NormalizedOptions, inputs: readonly ArrayBufferView[]): boolean {
  const views: ArrayBufferView[] = [];
  if (n.outIds) views.push(n.outIds);
  if (n.outMask) views.push(n.outMask);
  const outs = views.length;
  views.push(...inputs);
  for (let i = 0; i < outs; i++) for (let j = i + 1; j < views.length; j++) if (views[i]!.buffer === views[j]!.buffer) return true;
  return false;
}

/** The width `vectorize(rows of this request)` would give, from its rows' kept lengths. */
function widthFor(n: NormalizedOptions, lengths: Int32Array, from: number, count: number): number {
  let w: number;
  if (n.padding === 'max-length') w = n.maxLength;
  else {
    w = 0;
    for (let i = from; i < from + count; i++) if (lengths[i]! > w) w = lengths[i]!;
  }
  const m = n.padToMultipleOf;
  if (m > 1 && w % m !== 0) w += m - (w % m);
  return w;
}

/**
 * Each request's rows of a coalesced batch as its own batch, exactly what vectorizing them alone
 * gives (the width can only be smaller, and the columns cut are padding). Every result is a view
 * of one ArrayBuffer allocated for the whole batch: per-request typed arrays of their own cost an
 * off-heap allocation each, and GC pressure: most of a small request's cost.
 * A caller keeping one result keeps that buffer (the batch's rows, at most maxBatchSize) alive.
 */
function splitBatch(b: VectorBatch<Dtype, MaskDtype>, n: NormalizedOptions, counts: readonly number[]): VectorBatch<Dtype, MaskDtype>[] {
  const e = ID_BYTES[n.dtype];
  const me = MASK_BYTES[n.maskDtype];
  const widths = new Array<number>(counts.length);
  let from = 0;
  let cells = 0;
  for (let i = 0; i < counts.length; i++) {
    const w = widthFor(n, b.lengths, from, counts[i]!);
    widths[i] = w;
    cells += counts[i]! * w;
    from += counts[i]!;
  }
  const rows = from;
  // Layout: lengths and sourceLengths (int32) of every request, then ids, then masks: each region
  // starts aligned for its element type (int64 ids and masks at multiples of 8).
  const idsStart = rows * 8;
  const maskStart = Math.ceil((idsStart + cells * e) / me) * me;
  const buf = new ArrayBuffer(maskStart + cells * me);
  let lenAt = 0;
  let idsAt = idsStart;
  let maskAt = maskStart;
  const Ctor = IDS_ARRAY[n.dtype];
  const MaskCtor = MASK_ARRAY[n.maskDtype];
  // Copied region by region with plain loops: a temporary subarray per row (to call set) would
  // double the typed arrays a small request allocates.
  const bl = b.lengths;
  const bs = b.sourceLengths;
  const allLens = new Int32Array(buf, 0, rows * 2);
  let at = 0;
  from = 0;
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i]!;
    for (let r = 0; r < count; r++) allLens[at + r] = bl[from + r]!;
    for (let r = 0; r < count; r++) allLens[at + count + r] = bs[from + r]!;
    at += 2 * count;
    from += count;
  }
  // Elements are copied as they are, bigints included (these are plain moves, not arithmetic).
  const allIds = new Ctor(buf, idsStart, cells) as Int32Array;
  const allMask = new MaskCtor(buf, maskStart, cells) as Uint8Array;
  const bids = b.ids as Int32Array;
  const bmask = b.attentionMask as Uint8Array;
  const W = b.width;
  if (cells === rows * W) {
    allIds.set(bids.subarray(0, cells));
    allMask.set(bmask.subarray(0, cells));
  } else {
    const left = n.paddingSide === 'left';
    let d = 0;
    from = 0;
    for (let i = 0; i < counts.length; i++) {
      const w = widths[i]!;
      const end = from + counts[i]!;
      for (let row = from; row < end; row++) {
        let src = row * W + (left ? W - w : 0);
        const stop = src + w;
        for (; src < stop; src++, d++) {
          allIds[d] = bids[src]!;
          allMask[d] = bmask[src]!;
        }
      }
      from = end;
    }
  }
  const out: VectorBatch<Dtype, MaskDtype>[] = new Array(counts.length);
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i]!;
    const w = widths[i]!;
    const lengths = new Int32Array(buf, lenAt, count);
    const sourceLengths = new Int32Array(buf, lenAt + count * 4, count);
    lenAt += count * 8;
    const ids = new Ctor(buf, idsAt, count * w) as IdsArray;
    const mask = new MaskCtor(buf, maskAt, count * w) as MaskArray;
    idsAt += count * w * e;
    maskAt += count * w * me;
    out[i] = { ids, rows: count, width: w, lengths, sourceLengths, attentionMask: mask } as VectorBatch<Dtype, MaskDtype>;
  }
  return out;
}

class DtesnPipeline implements Pipeline {
  private readonly backend: Backend;
  private readonly pool: WorkerPool | null;
  private readonly batcher: MicroBatcher<SubmitRequest, RequestOutcome, NormalizedOptions>;
  private readonly cost = new CostModel();
  private readonly staging = new Staging();
  private readonly defaults: Readonly<Record<string, unknown>> | undefined;
  private readonly handler: PipelineConfig['handler'];
  private readonly maxQueue: number;
  private readonly profiling: boolean;
  /** The metrics collector; null with `enableProfiling: false`. */
  private readonly prof: MetricsCollector | null;
  private readonly resources: ProcessResources;
  private readonly settings: PipelineSettings;
  private readonly started = performance.now();
  private closing: Promise<void> | null = null;
  private readonly running = new Set<Promise<unknown>>();
  private pending = 0;
  private readonly counts = { accepted: 0, processed: 0, failed: 0, aborted: 0, shed: 0, bytesIn: 0, inline: 0, pool: 0 };
  [ROUTE]: 'auto' | 'pool' | 'inline' = 'auto';

  [OBSERVE](observer: MetricsObserver): (() => void) | null {
    return this.prof?.observe(observer) ?? null;
  }

  constructor(config: PipelineConfig) {
    if (typeof config !== 'object' || config === null) throw new TypeError(`config must be an object, got ${describe(config)}`);
    const c = config as Record<string, unknown>;
    for (const k of Object.keys(c)) if (!CONFIG_KEYS.has(k)) throw new TypeError(`unknown config option '${k}'`);
    const workers = intIn(c, 'maxWorkers', Math.min(64, availableParallelism()), 1, 64);
    const maxBatchSize = intIn(c, 'maxBatchSize', 1000, 1, 1 << 24);
    // A timer cannot wait longer: Node fires a longer setTimeout after 1 ms.
    const batchTimeoutMs = numIn(c, 'batchTimeoutMs', 2, 0, false, 2 ** 31 - 1, " (setTimeout's limit)");
    const targetLatencyMs = numIn(c, 'targetLatencyMs', 50, 0, true);
    const fixedBatchSize = c.fixedBatchSize === undefined ? null : intIn(c, 'fixedBatchSize', 0, 1, maxBatchSize);
    this.maxQueue = intIn(c, 'maxQueue', 100_000, 1, 2 ** 31 - 1);
    const heap = c.workerHeapMb === undefined ? undefined : intIn(c, 'workerHeapMb', 0, 16, 1 << 20);
    if (c.handler !== undefined && typeof c.handler !== 'function') {
      throw new TypeError(`config.handler must be a function, got ${describe(c.handler)}`);
    }
    this.handler = config.handler;
    this.profiling = boolIn(c, 'enableProfiling', true);
    const vectorization = boolIn(c, 'enableVectorization', true);
    if (config.vectorize !== undefined) {
      const d = normalizeOptions(config.vectorize); // refuse bad defaults now, naming the option
      if (d.outIds || d.outMask) throw new TypeError('config.vectorize.out is not supported: pass out buffers per call');
      // A copy: the caller changing its object later must not change some calls and not others
      // (calls without options use the defaults as normalized once).
      const v = config.vectorize;
      this.defaults = Object.freeze({ ...v, ...(Array.isArray(v.vocab) ? { vocab: Object.freeze([...v.vocab]) } : {}) });
    } else {
      this.defaults = undefined;
    }
    this.backend = vectorization ? processBackend().backend : jsBackend;
    const file = (config as { [WORKER_FILE]?: string })[WORKER_FILE];
    this.pool = new WorkerPool(workers, heap ? { maxOldGenerationSizeMb: heap } : undefined, file);
    this.settings = {
      maxWorkers: workers, maxBatchSize, batchTimeoutMs, targetLatencyMs, maxQueue: this.maxQueue,
      enableVectorization: vectorization, enableProfiling: this.profiling, workerHeapMb: heap ?? null, fixedBatchSize,
    };
    const prof = this.profiling ? new MetricsCollector(this.started) : null;
    this.prof = prof;
    this.resources = new ProcessResources({ now: () => performance.now(), eventLoopDelay: this.profiling });
    // submit()'s micro-batcher: work-conserving (batcher.ts), or static with fixedBatchSize. Its
    // row counts are the pipeline's counts of submitted rows (metrics()).
    this.batcher = new MicroBatcher<SubmitRequest, RequestOutcome, NormalizedOptions>({
      maxBatchSize,
      fixedBatchSize: fixedBatchSize ?? undefined,
      batchTimeoutMs,
      maxQueue: this.maxQueue,
      maxInFlight: workers,
      rowsOf: rowsOfRequest,
      run: (_key, reqs, signal, n, start) => {
        prof?.begin(start); // ended in onBatch
        return this.runSubmitted(reqs, n, signal);
      },
      onBatch: prof
        ? (b, latencies, count) => {
            const t = b.end; // the batcher's clock (performance.now): no read of our own
            prof.microBatch(b.rows, b.target, b.waitMs, b.runMs, t);
            prof.requests(latencies, count, t);
            prof.processed(b.resolvedRows, t);
            prof.end(t);
          }
        : undefined,
    });
  }

  // -------------------------------------------------------------------------------------------
  // One batch: inline or on the pool.

  private open(): void {
    if (this.closing) throw new PipelineClosedError();
  }

  /** Registers work so that close() waits for it. */
  private track<T>(p: Promise<T>): Promise<T> {
    this.running.add(p);
    const done = () => this.running.delete(p);
    p.then(done, done);
    return p;
  }

  /** Admission for pool-bound and submitted rows: refuse when the waiting rows are past maxQueue. */
  private admit(rows: number): void {
    const depth = this.pending + this.batcher.queuedRows;
    if (depth > 0 && depth + rows > this.maxQueue) {
      this.counts.shed += rows;
      throw queueFull(this.maxQueue, depth, rows);
    }
  }

  vectorize<D extends Dtype = 'int32', M extends MaskDtype = 'uint8'>(texts: readonly string[], options?: VectorizeOptions<D, M>, opts?: CallOptions): Promise<VectorBatch<D, M>> {
    // A batch that cannot go to the pool runs now, on this thread, like the core `vectorize`: no
    // async frames and nothing for close() to wait for (small batches are dominated by these).
    let n: NormalizedOptions;
    let units: number;
    let signal: AbortSignal | undefined;
    try {
      this.open();
      signal = checkSignal(opts?.signal, 'opts.signal');
      if (signal?.aborted) throw abortReason(signal);
      checkTexts(texts);
      n = options === undefined ? this.defaultOptions().n : normalizeOptions(mergeOptions(this.defaults, options));
      units = unitsOf(texts);
      if (!this.stringsPoolable(units, n)) {
        const rows = texts.length;
        const nn = n;
        return Promise.resolve(this.inline('strings', units * 2, rows, () => this.backend.vectorizeStrings(texts, nn)) as VectorBatch<D, M>);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return this.track(this.runStrings(texts, n, signal, true)) as Promise<VectorBatch<D, M>>;
  }

  /** A stream's options with this pipeline's defaults applied (see `streamBatches`). */
  private readonly resolve = (options: VectorizeOptions<Dtype, MaskDtype>): NormalizedOptions => normalizeOptions(mergeOptions(this.defaults, options));

  /**
   * One batch of a stream: its rows were checked as they were read and its options resolved once
   * for the whole stream (`resolve`), so only what can change between batches is checked here.
   */
  private async streamBatch(run: () => Promise<VectorBatch<Dtype, MaskDtype>>, signal: AbortSignal | undefined): Promise<VectorBatch<Dtype, MaskDtype>> {
    this.open();
    if (signal?.aborted) throw abortReason(signal);
    return run();
  }

  /** Whether a string batch of `units` UTF-16 units may go to the pool at all. */
  private stringsPoolable(units: number, n: NormalizedOptions): boolean {
    // Encoding to UTF-8 changes what 'utf16' sees and hides lone surrogates from 'error'.
    return (
      this.pool !== null && units * 2 >= POOL_MIN_BYTES && n.encoding !== 'utf16' && n.invalid === 'replace' &&
      (n.outIds === null || isShared(n.outIds)) && (n.outMask === null || isShared(n.outMask)) && !outSharesMemory(n, [])
    );
  }

  /** Strings: inline, or encoded into shared memory and vectorized on the pool. */
  private async runStrings(texts: readonly unknown[], n: NormalizedOptions, signal: AbortSignal | undefined, direct: boolean): Promise<VectorBatch<Dtype, MaskDtype>> {
    const units = unitsOf(texts);
    const rows = texts.length;
    const poolable = this.stringsPoolable(units, n);
    const shards = this.shardCount(units * 2);
    if (!poolable || !this.choosePool('strings', units * 2, shards)) {
      return this.inline('strings', units * 2, direct ? rows : 0, () => this.backend.vectorizeStrings(texts, n));
    }
    const t0 = performance.now();
    const packed = encodeShared(texts, this.staging);
    const prepMs = performance.now() - t0;
    const b = await this.onPool('strings', packed.bytes, packed.offsets, n, signal, prepMs, units * 2, direct, () =>
      this.backend.vectorizeStrings(texts, n),
    );
    this.staging.give(packed.pair); // every task that read it has finished
    return b;
  }

  vectorizeBytes<D extends Dtype = 'int32', M extends MaskDtype = 'uint8'>(
    bytes: Uint8Array,
    offsets: Uint32Array,
    options?: VectorizeOptions<D, M>,
    opts?: CallOptions,
  ): Promise<VectorBatch<D, M>> {
    return this.track(this.vectorizeBytesImpl(bytes, offsets, options, opts?.signal)) as Promise<VectorBatch<D, M>>;
  }

  private async vectorizeBytesImpl(bytes: unknown, offsets: unknown, options: unknown, signalArg?: unknown): Promise<VectorBatch<Dtype, MaskDtype>> {
    this.open();
    const signal = checkSignal(signalArg, 'opts.signal');
    if (signal?.aborted) throw abortReason(signal);
    checkBytesInput(bytes, offsets);
    const offs = offsets as Uint32Array;
    const n = normalizeOptions(mergeOptions(this.defaults, options));
    return this.runBytes(bytes, offs, n, signal, true);
  }

  private async runBytes(bytes: Uint8Array, offs: Uint32Array, n: NormalizedOptions, signal: AbortSignal | undefined, direct: boolean): Promise<VectorBatch<Dtype, MaskDtype>> {
    const rows = Math.max(0, offs.length - 1);
    const size = rows > 0 ? offs[rows]! - offs[0]! : 0;
    const sane = rows > 0 && offs[rows]! >= offs[0]! && offs[rows]! <= bytes.length;
    const poolable =
      this.pool !== null && sane && size >= POOL_MIN_BYTES &&
      (n.outIds === null || isShared(n.outIds)) && (n.outMask === null || isShared(n.outMask)) && !outSharesMemory(n, [bytes, offs]);
    if (!poolable || !this.choosePool('bytes', size, this.shardCount(size))) {
      return this.inline('bytes', Math.max(0, size), direct ? rows : 0, () => this.backend.vectorizeBytes(bytes, offs, n));
    }
    const t0 = performance.now();
    let shared = bytes;
    let sharedOffs = offs;
    let pair: StagingPair | null = null;
    if (!isShared(bytes) || !isShared(offs)) {
      // One copy into shared memory: the rows' bytes, and offsets rebased to them.
      const start = offs[0]!;
      pair = this.staging.take(size, offs.length);
      shared = new Uint8Array(pair.bytes, 0, size);
      shared.set(bytes.subarray(start, start + size));
      sharedOffs = new Uint32Array(pair.offsets, 0, offs.length);
      for (let i = 0; i < offs.length; i++) sharedOffs[i] = offs[i]! - start;
    }
    const prepMs = performance.now() - t0;
    const b = await this.onPool('bytes', shared, sharedOffs, n, signal, prepMs, size, direct, () => this.backend.vectorizeBytes(bytes, offs, n));
    if (pair) this.staging.give(pair); // every task that read it has finished
    return b;
  }

  private choosePool(kind: InputKind, bytes: number, shards: number): boolean {
    if (this[ROUTE] !== 'auto') return this[ROUTE] === 'pool';
    // Until the workers have loaded the addon a pool batch would wait for their start-up: the
    // first batch that could use them starts them, and runs inline meanwhile.
    const pool = this.pool!;
    if (!pool.warm) {
      pool.start();
      return false;
    }
    return this.cost.choosePool(kind, bytes, shards);
  }

  private shardCount(bytes: number): number {
    const size = this.pool?.size ?? 1;
    return Math.max(1, Math.min(size, Math.floor(bytes / SHARD_MIN_BYTES)));
  }

  /** Runs `f` on this thread; `rows` are counted as accepted and processed (0 for submitted rows). */
  private inline(kind: InputKind, bytes: number, rows: number, f: () => VectorBatch<Dtype, MaskDtype>): VectorBatch<Dtype, MaskDtype> {
    const t0 = performance.now();
    let b: VectorBatch<Dtype, MaskDtype>;
    try {
      b = f();
    } catch (e) {
      this.counts.accepted += rows;
      this.counts.failed += rows;
      this.prof?.ranInline(0, t0, performance.now()); // activity only
      throw e;
    }
    const t1 = performance.now();
    this.cost.observeInline(kind, bytes, t1 - t0);
    this.counts.inline++;
    this.counts.accepted += rows;
    this.counts.processed += rows;
    this.counts.bytesIn += bytes;
    // Submitted rows (rows = 0 here) are counted per request and per micro-batch instead.
    this.prof?.ranInline(rows, t0, t1);
    return b;
  }

  /**
   * Splits the rows into shards balanced by bytes, measures their width on the workers when the
   * padding depends on the data, then has every worker write its rows into one shared output.
   * An error inside a worker (bad input) is reproduced inline by `exact`, so the caller gets the
   * very error (row numbers included) that the core gives.
   */
  private async onPool(
    kind: InputKind,
    bytes: Uint8Array,
    offs: Uint32Array,
    n: NormalizedOptions,
    signal: AbortSignal | undefined,
    prepMs: number,
    size: number,
    direct: boolean,
    exact: () => VectorBatch<Dtype, MaskDtype>,
  ): Promise<VectorBatch<Dtype, MaskDtype>> {
    const pool = this.pool!;
    const rows = offs.length - 1;
    // Submitted rows were admitted (and are counted) by the batcher.
    const counted = direct ? rows : 0;
    if (direct) this.admit(rows);
    this.pending += counted;
    this.counts.accepted += counted;
    const t0 = performance.now();
    this.prof?.begin(t0);
    try {
      const cuts = shardCuts(offs, this.shardCount(size));
      const js = this.backend.kind === 'js';
      const base = { ...n, outIds: null, outMask: null };
      // One task per shard; a shard whose worker dies is run again in halves on fresh workers,
      // down to the row that kills it (isolate.ts), whose WorkerCrashError is then the call's.
      const budget = new RetryBudget(MAX_RETRIES);
      const name = (a: number, b: number) => (b - a === 1 ? `row ${a}` : `rows ${a}..${b - 1}`);
      const shards = async <V extends number | VectorizeResult>(task: (a: number, b: number) => Task): Promise<Array<{ from: number; outcome: TaskOutcome<V> }>> => {
        const ranges: RangeTasks = { pool, budget, signal, progress: false, task, name };
        const segments = (await Promise.all(cuts.slice(0, -1).map((c, i) => runRange<V>(ranges, c, cuts[i + 1]!)))).flat();
        return segments.map((sg) => {
          if (sg.crash) throw sg.crash;
          return { from: sg.from, outcome: sg.outcome };
        });
      };
      let width: number;
      // Caller out buffers are written only after the measuring pass has checked every row.
      if (n.padding === 'max-length' && n.width == null && n.outIds === null && n.outMask === null) {
        width = maxWidthOf(n);
      } else {
        const widths = await shards<number>((a, b) => ({ kind: 'measure', js, bytes, offsets: offs.subarray(a, b + 1), options: base }));
        width = 0;
        for (const w of widths) {
          if (!w.outcome.ok) return this.exactAfterWorkerError(exact, counted);
          width = Math.max(width, w.outcome.value);
        }
      }
      const total = rows * width;
      if (total > 2147483647) return this.exactAfterWorkerError(exact, counted);
      const eb = ID_BYTES[n.dtype];
      if ((n.outIds && n.outIds.length < total) || (n.outMask && n.outMask.length < total)) return this.exactAfterWorkerError(exact, counted);
      const Ctor = IDS_ARRAY[n.dtype];
      const ids: IdsArray = n.outIds ?? new Ctor(new SharedArrayBuffer(total * eb));
      const mask: MaskArray = n.outMask ?? new MASK_ARRAY[n.maskDtype](new SharedArrayBuffer(total * MASK_BYTES[n.maskDtype]));
      const results = await shards<VectorizeResult>((a, b) => ({
        kind: 'vectorize',
        js,
        bytes,
        offsets: offs.subarray(a, b + 1),
        options: { ...n, width, outIds: ids.subarray(a * width, b * width), outMask: mask.subarray(a * width, b * width) },
      }));
      const lengths = new Int32Array(rows);
      const sourceLengths = new Int32Array(rows);
      let workerMs = 0;
      for (const r of results) {
        if (!r.outcome.ok) return this.exactAfterWorkerError(exact, counted);
        const v = r.outcome.value;
        lengths.set(v.lengths, r.from);
        sourceLengths.set(v.sourceLengths, r.from);
        workerMs += v.ms;
      }
      const t1 = performance.now();
      this.cost.observePool(kind, size, cuts.length - 1, prepMs, workerMs, t1 - t0 + prepMs);
      this.counts.pool++;
      this.counts.processed += counted;
      this.counts.bytesIn += size;
      const prof = this.prof;
      if (prof) {
        prof.poolBatch(workerMs, t1 - t0 + prepMs);
        if (direct) prof.ranDirect(rows, t1 - t0 + prepMs, t1);
      }
      return {
        ids: ids.length === total ? ids : ids.subarray(0, total),
        rows,
        width,
        lengths,
        sourceLengths,
        attentionMask: mask.length === total ? mask : mask.subarray(0, total),
      } as VectorBatch<Dtype, MaskDtype>;
    } catch (e) {
      if (signal?.aborted) this.counts.aborted += counted;
      else this.counts.failed += counted;
      throw e;
    } finally {
      this.pending -= counted;
      this.prof?.end(performance.now());
    }
  }

  /** A worker refused the input: the same call inline throws the exact error of the core. */
  private exactAfterWorkerError(exact: () => VectorBatch<Dtype, MaskDtype>, rows: number): VectorBatch<Dtype, MaskDtype> {
    const b = exact(); // throws the core's error (counted as failed by onPool's catch)
    this.counts.inline++;
    this.counts.processed += rows;
    this.prof?.processed(rows, performance.now());
    return b;
  }

  // -------------------------------------------------------------------------------------------
  // submit(): micro-batching.

  /**
   * One promise per request and nothing else that outlives the call: the batcher's entry holds
   * the request, its key's queue holds the normalized options, and the rows are counted by the
   * batcher (metrics()). Shedding comes first: under overload most calls end there, and a refusal
   * must cost far less than an acceptance, or refusals alone starve the batches being served.
   */
  submit(text: string | readonly string[], options?: VectorizeOptions<Dtype, MaskDtype>, opts?: CallOptions): Promise<VectorBatch<Dtype, MaskDtype> | unknown[]> {
    if (this.closing !== null) return Promise.reject(new PipelineClosedError());
    const single = typeof text === 'string';
    const rows = single ? 1 : Array.isArray(text) ? text.length : 0;
    if (rows > 0) {
      const depth = this.pending + this.batcher.queuedRows;
      if (depth + rows > this.maxQueue) {
        this.counts.shed += rows;
        return Promise.reject(queueFull(this.maxQueue, depth, rows));
      }
    }
    let req: SubmitRequest;
    let n: NormalizedOptions;
    let key: string;
    let signal: AbortSignal | undefined;
    try {
      signal = opts === undefined ? undefined : checkSignal(opts.signal, 'opts.signal');
      // The core's order (docs/SEMANTICS.md, Errors): the array, the options, then each row.
      if (!single) checkTexts(text);
      if (options === undefined) {
        ({ n, key } = this.defaultOptions());
      } else {
        const seen = this.lastOptions.get(options);
        if (seen !== undefined) ({ n, key } = seen);
        else {
          n = normalizeOptions(mergeOptions(this.defaults, options));
          if (n.outIds || n.outMask) throw new TypeError('options.out is not supported by submit(): results are per request');
          key = fingerprint(n);
          if (isPlainObject(options)) this.lastOptions.set(options, { n, key });
        }
      }
      req = single ? text : ownRows(text as readonly unknown[]);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.batcher.submit(key, req, signal, n) as Promise<VectorBatch<Dtype, MaskDtype> | unknown[]>;
  }

  /**
   * The pipeline's default options, normalized once (they were checked at creation and are not
   * mutated): calls without options, the common case, skip the work.
   */
  private defaultRequest: { n: NormalizedOptions; key: string } | null = null;
  private readonly lastOptions = new OptionsMemo<{ n: NormalizedOptions; key: string }>();

  private defaultOptions(): { n: NormalizedOptions; key: string } {
    if (this.defaultRequest === null) {
      const d = normalizeOptions(this.defaults);
      this.defaultRequest = { n: d, key: fingerprint(d) };
    }
    return this.defaultRequest;
  }

  /**
   * One coalesced batch: vectorize every request's rows together, then hand each its share. A bad
   * row (e.g. `invalid: 'error'`, an id that does not fit the dtype) fails only its own request:
   * the batch is then vectorized request by request, so each gets its own result or error.
   * Synchronous (no promise turn) when the batch runs inline and there is no handler.
   */
  private runSubmitted(reqs: SubmitRequest[], n: NormalizedOptions, signal: AbortSignal): Promise<RequestOutcome[]> {
    const texts = flatten(reqs);
    const units = unitsOf(texts);
    if (!this.stringsPoolable(units, n)) {
      let batch: VectorBatch<Dtype, MaskDtype>;
      try {
        batch = this.inline('strings', units * 2, 0, () => this.backend.vectorizeStrings(texts, n));
      } catch (e) {
        return this.oneByOne(reqs, n, signal, e);
      }
      return this.handOut(reqs, n, batch, signal);
    }
    return this.runStrings(texts, n, signal, false).then(
      (batch) => this.handOut(reqs, n, batch, signal),
      (e: unknown) => this.oneByOne(reqs, n, signal, e),
    );
  }

  /** After a batch's rows failed: each request alone, so a bad row fails only its own request. */
  private oneByOne(reqs: SubmitRequest[], n: NormalizedOptions, signal: AbortSignal, e: unknown): Promise<RequestOutcome[]> {
    if (reqs.length === 1 || signal.aborted) return Promise.reject(e);
    return Promise.all(reqs.map((r) => this.runSubmitted([r], n, signal).then(([x]) => x!, (err: unknown) => new RequestFailure(err))));
  }

  /** Each request's share of a batch: its rows' handler results, or its rows as their own batch. */
  private handOut(reqs: SubmitRequest[], n: NormalizedOptions, batch: VectorBatch<Dtype, MaskDtype>, signal: AbortSignal): Promise<RequestOutcome[]> {
    const handler = this.handler;
    if (handler === undefined) {
      return Promise.resolve(reqs.length === 1 ? [batch] : splitBatch(batch, n, reqs.map(rowsOfRequest)));
    }
    // The handler runs once per batch; its failure is every request's failure.
    return Promise.resolve(handler(batch, signal)).then((results) => {
      if (!Array.isArray(results) || results.length !== batch.rows) {
        throw new TypeError(
          `handler must resolve to an array of ${batch.rows} results (one per row), got ${Array.isArray(results) ? `${results.length} results` : describe(results)}`,
        );
      }
      const out = new Array<unknown[]>(reqs.length);
      let at = 0;
      for (let i = 0; i < reqs.length; i++) {
        const r = reqs[i]!;
        const k = typeof r === 'string' ? 1 : r.length;
        out[i] = results.slice(at, at + k);
        at += k;
      }
      return out;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Streams.

  stream<D extends Dtype = Dtype, M extends MaskDtype = 'uint8'>(source: AsyncIterable<string> | Iterable<string>, options?: StreamOptions<D, M>): AsyncIterable<VectorBatch<D, M>> {
    this.open();
    // Each batch is tracked like a vectorize call: close() lets one that has started finish.
    // The batches are of the dtype the options name (the core's contract).
    return streamBatches(
      source,
      options as StreamOptions<Dtype, MaskDtype> | undefined,
      (texts, n, signal) => this.track(this.streamBatch(() => this.runStrings(texts, n, signal, true), signal)),
      this.resolve,
    ) as AsyncIterable<VectorBatch<D, M>>;
  }

  /**
   * Files and byte streams are read, parsed (native `fillRows`, one call per batch) and vectorized
   * on this thread: on the pool, a small batch's output costs more to build in shared memory than
   * vectorizing it saves, and parsing there while this thread vectorizes makes this thread wait
   * for a worker that shares the cores with it (both were slower in the file bench).
   */
  vectorizeFile<D extends Dtype = Dtype, M extends MaskDtype = 'uint8'>(source: FileSource, options: FileOptions<D, M>): AsyncIterable<FileBatch<D, M>> {
    this.open();
    return fileBatches(
      source,
      // The conditional padId type keeps a generic D from converting directly.
      options as unknown as FileOptions<Dtype, MaskDtype>,
      this.backend.kind === 'native' ? fillRows : fillRowsJs,
      (bytes, offsets, n, signal) => this.track(this.streamBatch(() => this.runBytes(bytes, offsets, n, signal, true), signal)),
      this.resolve,
    ) as AsyncIterable<FileBatch<D, M>>;
  }

  // -------------------------------------------------------------------------------------------
  // Generic processing.

  processBatch<T, R>(items: readonly T[], opts: ProcessOptions): Promise<Array<ProcessResult<R>>> {
    return this.track(this.processImpl<T, R>(items, opts));
  }

  private async processImpl<T, R>(items: readonly T[], opts: ProcessOptions): Promise<Array<ProcessResult<R>>> {
    this.open();
    if (!Array.isArray(items)) throw new TypeError(`items must be an array, got ${describe(items)}`);
    if (typeof opts !== 'object' || opts === null) throw new TypeError(`opts must be an object, got ${describe(opts)}`);
    const task = opts.task instanceof URL ? opts.task.href : opts.task;
    if (typeof task !== 'string' || task.length === 0) throw new TypeError(`opts.task must be a module path or URL, got ${describe(opts.task)}`);
    // A path is a path: '#', '?' and '%' in it are characters, not URL syntax.
    const spec = task.startsWith('file:') || task.startsWith('data:') ? task : pathToFileURL(resolvePath(task)).href;
    const signal = checkSignal(opts.signal, 'opts.signal');
    const maxRetries = intSetting(opts as unknown as Record<string, unknown>, 'opts', 'maxRetries', MAX_RETRIES, 0, 2 ** 31 - 1);
    if (signal?.aborted) throw abortReason(signal);
    if (items.length === 0) return [];
    const pool = this.pool!;
    this.admit(items.length);
    this.pending += items.length;
    this.counts.accepted += items.length;
    const prof = this.prof;
    const t0 = prof ? performance.now() : 0;
    prof?.begin(t0);
    try {
      const pieces = Math.min(items.length, pool.size * 4);
      const per = Math.ceil(items.length / pieces);
      const out = new Array<ProcessResult<R>>(items.length);
      const budget = new RetryBudget(maxRetries);
      // Runs the items at indices `pos` (in order) as one piece; a worker death is isolated to
      // the item that causes it (isolate.ts).
      const runPiece = async (pos: readonly number[]): Promise<void> => {
        const ranges: RangeTasks = {
          pool,
          budget,
          signal,
          progress: true,
          task: (a, b, progress) => ({ kind: 'process', module: spec, items: pos.slice(a, b).map((i) => items[i]), ...(progress ? { progress } : {}) }),
          name: (a, b) => (b - a === 1 ? `items[${pos[a]}]` : `items[${pos[a]}..${pos[b - 1]}]`),
        };
        let segments: Array<Segment<ItemResult[]>>;
        try {
          segments = await runRange<ItemResult[]>(ranges, 0, pos.length);
        } catch (e) {
          if (signal?.aborted) throw e;
          // An item that cannot be sent to a worker (a function, a symbol, a getter that
          // throws...) fails alone, named; the piece's other items run without it.
          const rest: number[] = [];
          for (const i of pos) {
            try {
              structuredClone(items[i]);
              rest.push(i);
            } catch (c) {
              out[i] = { ok: false, error: new TypeError(`items[${i}] cannot be sent to a worker: ${(c as Error).message}`) };
            }
          }
          if (rest.length === pos.length) throw e; // not an item's fault after all
          if (rest.length > 0) await runPiece(rest);
          return;
        }
        for (const s of segments) {
          for (let k = s.from; k < s.to; k++) {
            if (s.crash) out[pos[k]!] = { ok: false, error: s.crash };
            else if (!s.outcome.ok) out[pos[k]!] = { ok: false, error: asError(s.outcome.error) };
            else {
              const x = s.outcome.value[k - s.from]!;
              out[pos[k]!] = x.ok ? { ok: true, value: x.value as R } : { ok: false, error: asError(x.error) };
            }
          }
        }
      };
      const all = Array.from(items.keys());
      const chunks: number[][] = [];
      for (let i = 0; i < items.length; i += per) chunks.push(all.slice(i, i + per));
      await Promise.all(chunks.map((pos) => runPiece(pos)));
      let ok = 0;
      for (const r of out) if (r.ok) ok++;
      this.counts.processed += ok;
      this.counts.failed += out.length - ok;
      if (prof) {
        const t1 = performance.now();
        prof.processed(ok, t1);
        prof.batchRun(items.length, t1 - t0, t1);
      }
      return out;
    } catch (e) {
      if (signal?.aborted) this.counts.aborted += items.length;
      else this.counts.failed += items.length;
      throw e;
    } finally {
      this.pending -= items.length;
      prof?.end(performance.now());
    }
  }

  // -------------------------------------------------------------------------------------------

  metrics(): PipelineMetrics {
    const now = performance.now();
    const b = this.batcher.stats();
    // Submitted rows are counted by the batcher; everything else here.
    const d = this.counts;
    const c = {
      ...d,
      accepted: d.accepted + b.acceptedRows,
      processed: d.processed + b.resolvedRows,
      failed: d.failed + b.rejectedRows,
      aborted: d.aborted + b.abortedRows,
      shed: d.shed + b.shedRows,
    };
    // Accepted and not settled: the pool calls and processBatch items in progress, and the
    // batcher's requests waiting or running.
    const pending = this.pending + (b.acceptedRows - b.resolvedRows - b.rejectedRows - b.abortedRows);
    const pool = this.pool?.stats() ?? null;
    const prof = this.prof;
    const queueDepth = this.pending + this.batcher.queuedRows;
    const uptimeSeconds = (now - this.started) / 1000;
    const workers = this.settings.maxWorkers;
    const rates = prof?.rates(now);
    return {
      accepted: c.accepted,
      processed: c.processed,
      failed: c.failed,
      aborted: c.aborted,
      pending,
      shed: c.shed,
      bytesIn: c.bytesIn,
      batches: { inline: c.inline, pool: c.pool },
      queueDepth,
      batcher: b,
      pool,
      cost: this.cost.snapshot(),
      backend: this.backend.kind,
      profiling: prof !== null,
      timestamp: now,
      uptimeSeconds,
      config: { ...this.settings },
      throughput: {
        accepted: c.accepted,
        processed: c.processed,
        failed: c.failed,
        aborted: c.aborted,
        pending,
        shed: c.shed,
        bytesIn: c.bytesIn,
        meanRate: uptimeSeconds > 0 ? c.processed / uptimeSeconds : 0,
        rate1s: rates?.rate1s ?? null,
        rate10s: rates?.rate10s ?? null,
        rate60s: rates?.rate60s ?? null,
        peakRate1s: rates?.peakRate1s ?? null,
        inFlight: prof?.inFlight ?? null,
        activeSeconds: prof?.activeSeconds(now) ?? null,
      },
      latency: prof?.latency(now) ?? null,
      batching: {
        queueDepth,
        queuedRequests: b.queuedRequests,
        inFlightBatches: b.inFlight,
        target: b.target,
        batches: b.batches,
        readyBatches: b.readyBatches,
        fullBatches: b.fullBatches,
        timeoutBatches: b.timeoutBatches,
        flushBatches: b.flushBatches,
        size: prof?.sizes(now) ?? null,
        efficiency: prof?.efficiency() ?? null,
      },
      parallelization: {
        workers,
        threads: pool?.threads ?? 0,
        busyWorkers: Math.min(pool?.busy ?? 0, workers),
        poolUtilization: pool?.utilization ?? 0,
        busyWorkerSeconds: ((pool?.utilization ?? 0) * (now - (this.pool?.startedAt ?? now)) * workers) / 1000,
        parallelEfficiency: prof?.parallelEfficiency(workers) ?? null,
        inlineBatches: c.inline,
        poolBatches: c.pool,
        completedTasks: pool?.completed ?? 0,
        retriedTasks: pool?.retried ?? 0,
        crashedTasks: pool?.crashed ?? 0,
      },
      resources: this.resources.snapshot(),
    };
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        await this.batcher.close();
        while (this.running.size > 0) await Promise.allSettled([...this.running]);
        await this.pool?.close();
        this.resources.close();
      })();
    }
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A request: one text, or its own copy of the texts it was submitted with. */
type SubmitRequest = string | readonly string[];

type RequestOutcome = VectorBatch<Dtype, MaskDtype> | unknown[] | RequestFailure;

function rowsOfRequest(r: SubmitRequest): number {
  return typeof r === 'string' ? 1 : r.length;
}

/** The rows of a batch's requests, in order, as one array (the array itself for a lone request). */
function flatten(reqs: readonly SubmitRequest[]): readonly string[] {
  if (reqs.length === 1 && typeof reqs[0] !== 'string') return reqs[0]!;
  const texts: string[] = [];
  for (const r of reqs) {
    if (typeof r === 'string') texts.push(r);
    else for (const t of r) texts.push(t);
  }
  return texts;
}

/**
 * The rows read once, now, into an array of our own: the request may wait for batch-mates, and a
 * caller reusing its array after submit() returned must not change what it asked for (nor the
 * rows counted against maxQueue and the batch size).
 */
function ownRows(texts: readonly unknown[]): string[] {
  const rows = texts.length;
  const own = new Array<string>(rows);
  for (let i = 0; i < rows; i++) {
    const t: unknown = texts[i];
    if (typeof t !== 'string') throw new TypeError(`texts[${i}] must be a string, got ${t === null ? 'null' : typeof t}`);
    own[i] = t;
  }
  return own;
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** UTF-16 code units of the strings among `texts` (what the cost model sizes string batches by). */
function unitsOf(texts: readonly unknown[]): number {
  let units = 0;
  for (let i = 0; i < texts.length; i++) {
    const t = texts[i];
    if (typeof t === 'string') units += t.length;
  }
  return units;
}

/** Row indices cutting `offs` into `k` shards of about equal bytes: [0, c1, ..., rows]. */
function shardCuts(offs: Uint32Array, k: number): number[] {
  const rows = offs.length - 1;
  const start = offs[0]!;
  const total = offs[rows]! - start;
  const cuts = [0];
  for (let s = 1; s < k; s++) {
    const target = start + (total * s) / k;
    let lo = cuts[cuts.length - 1]!;
    let hi = rows;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (offs[mid]! < target) lo = mid + 1;
      else hi = mid;
    }
    if (lo > cuts[cuts.length - 1]! && lo < rows) cuts.push(lo);
  }
  cuts.push(rows);
  return cuts;
}

const encoder = new TextEncoder();

/** Two SharedArrayBuffers for a pool call's input: row bytes and offsets. */
interface StagingPair {
  bytes: SharedArrayBuffer;
  offsets: SharedArrayBuffer;
}

/** Staging buffers up to this size are kept for the next pool call. */
const STAGING_KEEP_BYTES = 64 << 20;

/**
 * The shared memory that pool calls copy their input into (plain bytes, or strings encoded to
 * UTF-8), kept for the next call: a fresh SharedArrayBuffer is fresh pages, faulted in (and zeroed
 * by the kernel) on the calling thread while the workers wait, every call: most of the serial
 * part of a large pool call. One idle pair is kept (up to
 * STAGING_KEEP_BYTES). A pair comes back only from a call whose tasks have all finished; a call
 * that was aborted or failed drops its pair, since a worker may still be reading it.
 */
class Staging {
  private idle: StagingPair | null = null;

  take(bytes: number, offsets: number): StagingPair {
    const p = this.idle;
    if (p !== null && p.bytes.byteLength >= bytes && p.offsets.byteLength >= offsets * 4) {
      this.idle = null;
      return p;
    }
    return { bytes: new SharedArrayBuffer(bytes), offsets: new SharedArrayBuffer(offsets * 4) };
  }

  give(p: StagingPair): void {
    if (p.bytes.byteLength + p.offsets.byteLength > STAGING_KEEP_BYTES) return;
    // Keep the larger pair: it serves more calls.
    if (this.idle === null || this.idle.bytes.byteLength < p.bytes.byteLength) this.idle = p;
  }
}

/** Strings as UTF-8 in staging shared memory (lone surrogates become U+FFFD, as vectorize does). */
function encodeShared(texts: readonly unknown[], staging: Staging): { bytes: Uint8Array; offsets: Uint32Array; pair: StagingPair } {
  let size = 0;
  for (let i = 0; i < texts.length; i++) {
    const t = texts[i];
    if (typeof t !== 'string') throw new TypeError(`texts[${i}] must be a string, got ${t === null ? 'null' : typeof t}`);
    size += Buffer.byteLength(t, 'utf8');
  }
  const pair = staging.take(size, texts.length + 1);
  const bytes = new Uint8Array(pair.bytes, 0, size);
  const offsets = new Uint32Array(pair.offsets, 0, texts.length + 1);
  offsets[0] = 0;
  let at = 0;
  for (let i = 0; i < texts.length; i++) {
    at += encoder.encodeInto(texts[i] as string, bytes.subarray(at)).written;
    offsets[i + 1] = at;
  }
  return { bytes, offsets, pair };
}

/** Creates a pipeline. Its workers start when first needed (see WorkerPool) and stay until `close()`. */
export function createPipeline<R, DD extends Dtype = 'int32', DM extends MaskDtype = 'uint8'>(
  config: PipelineConfig<R, DD, DM> & { handler: NonNullable<PipelineConfig<R, DD, DM>['handler']> },
): HandlingPipeline<R, DD, DM>;
export function createPipeline<DD extends Dtype = 'int32', DM extends MaskDtype = 'uint8'>(
  config?: PipelineConfig<never, DD, DM> & { handler?: undefined },
): VectorizingPipeline<DD, DM>;
export function createPipeline(config?: PipelineConfig): Pipeline;
export function createPipeline(config: PipelineConfig = {}): Pipeline {
  return new DtesnPipeline(config) as unknown as Pipeline;
}
