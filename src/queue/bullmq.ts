/**
 * `dtesn-pipeline/bullmq`: the pipeline past one machine, on BullMQ and Redis. Nothing here is a
 * protocol of its own: jobs, locks and their renewal, stalled-job recovery, attempts with backoff,
 * parent/child flows and events are BullMQ's; this module only says what a job is.
 *
 * - **Sharded files.** `enqueueShards` cuts a file into byte ranges of about `shardBytes` and adds
 *   one BullMQ flow: a parent `run` job whose children are one `shard` job per range, with job ids
 *   made from the run and the shard (`<run>` and `<run>.<index>`), so adding the same run again
 *   adds nothing. A worker (`startWorker`) runs a shard with `pipeline.vectorizeFile(path,
 *   { range, reuseBuffers: true })` (Hadoop's split rule: every line is in exactly one shard) into
 *   its own tensor file, written under a temporary name and renamed into place when complete; the
 *   output is deterministic, so a shard run twice (a worker died after finishing it) writes the same
 *   bytes. Children fail with `ignoreDependencyOnFailure`, so the parent runs once every shard has
 *   finished or failed for good: it writes the manifest (every shard's range, rows, width, dtype,
 *   files and their sha256, line numbers made absolute by adding up the shards' line counts), or,
 *   when a shard failed, fails naming it. `waitForRun` follows a run to its end.
 * - **Requests.** `vectorizeViaQueue(queue, texts, options)` adds a `vectorize` job to the request
 *   queue and resolves with its result; workers run these through `pipeline.submit`, so concurrent
 *   jobs share batches, and answer what `POST /v1/vectorize` answers.
 *
 * The input and output paths must be the same files for every worker (a shared file system); the
 * coordinator resolves them to absolute paths. Jobs of finished runs stay in Redis (that is what
 * makes adding a run again a no-op) until removed with BullMQ's own tools (`queue.clean`,
 * `queue.remove`).
 */
import { createHash } from 'node:crypto';
import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { type ConnectionOptions, FlowProducer, Job, Queue, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { checkTexts, normalizeOptions } from '../vectorize/options.js';
import { describe, intSetting, isPlainObject, showValue } from '../common/check.js';
import { type Pipeline, type PipelineConfig, createPipeline } from '../pipeline/pipeline.js';
import { registerMetrics } from '../observe/export/prometheus.js';
import { giveBack, takeBuffer } from '../common/spare.js';
import { RecordError, linesBefore } from '../io/stream.js';
import { openTensorWriter, tensorWriterOptionsOf } from '../tensors/tensor-file.js';
import type { Dtype, VectorBatch, VectorizeOptions, MaskDtype } from '../vectorize/types.js';

/** The queue of shard jobs and of their runs' parent jobs. */
export const SHARD_QUEUE = 'dtesn-shards';
/** The queue of `vectorize` request jobs. */
export const REQUEST_QUEUE = 'dtesn-requests';

export type { ConnectionOptions } from 'bullmq';

/** Where BullMQ's keys are: a Redis connection (an ioredis instance or its options) and BullMQ's key prefix. */
export interface QueueConnection {
  connection: ConnectionOptions;
  /** [BullMQ's 'bull'] namespaces every key: separate deployments (or tests) on one Redis. */
  prefix?: string;
}

export interface EnqueueOptions extends QueueConnection {
  /** The input file (lines or JSONL); every worker must be able to read this path. */
  input: string;
  /** About this many bytes per shard (the last one is shorter); shards end on byte offsets, lines are never split. */
  shardBytes: number;
  /** Output of each shard: a `.npy` or `.safetensors` path containing `{shard}` (the index, zero-padded to the widest). */
  out: string;
  /** Where the manifest is written when every shard is done. */
  manifest: string;
  /** [from the extension: .jsonl/.ndjson -> 'jsonl', else 'lines'] */
  format?: 'lines' | 'jsonl';
  /** ['text'] the JSONL field. */
  field?: string;
  /** ['skip'] a malformed JSONL line is skipped (and listed in the manifest) or fails its shard. */
  onError?: 'skip' | 'throw';
  /** [1000] rows per batch. */
  batchSize?: number;
  /** The vectorize options (checked now). */
  options?: VectorizeOptions<Dtype, MaskDtype>;
  /** [derived from the input's path, size and mtime and every other option] the run's id, also the parent job's id. */
  run?: string;
  /** [3] attempts per shard before it fails for good. */
  attempts?: number;
  /** [1000] first retry delay, ms; doubled at each attempt (BullMQ's exponential backoff). */
  backoffMs?: number;
  /**
   * [true] the sha256 of every output file, in the manifest. It reads each file back once and
   * costs about as much CPU as vectorizing (BENCHMARKS.md, the queue suite); false: `sha256: null`.
   */
  checksums?: boolean;
}

/** What a shard job carries. */
export interface ShardJobData {
  run: string;
  index: number;
  shards: number;
  input: string;
  range: [number, number];
  out: string;
  format: 'lines' | 'jsonl';
  field?: string;
  onError: 'skip' | 'throw';
  batchSize: number;
  options: VectorizeOptions<Dtype, MaskDtype>;
  checksums: boolean;
}

/** What a run's parent job carries. */
export interface RunJobData extends Omit<ShardJobData, 'index' | 'range' | 'out'> {
  inputBytes: number;
  inputMtimeMs: number;
  shardBytes: number;
  /** The output pattern, with `{shard}`. */
  out: string;
  manifest: string;
}

export interface ShardFile {
  /** Absolute path (in the manifest: relative to the manifest's directory). */
  path: string;
  bytes: number;
  /** null when the run was made with `checksums: false`. */
  sha256: string | null;
}

/** A shard job's return value. */
export interface ShardResult {
  index: number;
  range: [number, number];
  /** Input bytes of the shard's lines (the shards' add up to the file's size). */
  bytes: number;
  /** Lines read (rows, skipped and blank lines). */
  lines: number;
  rows: number;
  width: number;
  dtype: Dtype;
  files: ShardFile[];
  skipped: number;
  /** The first 100 skipped lines; `line` counts from the shard's first line (1). */
  skippedLines: Array<{ line: number; message: string }>;
  seconds: number;
}

export interface ManifestShard extends Omit<ShardResult, 'seconds'> {
  /** Absolute line number of the shard's first line. */
  firstLine: number;
}

export interface Manifest {
  schema: 'dtesn-shards-manifest/1';
  run: string;
  input: string;
  inputBytes: number;
  format: 'lines' | 'jsonl';
  field?: string;
  onError: 'skip' | 'throw';
  batchSize: number;
  options: VectorizeOptions<Dtype, MaskDtype>;
  dtype: Dtype;
  padding: 'longest' | 'max-length';
  /** How wide the shards are: padding 'longest' pads each shard to its own longest row. */
  widths: 'per-shard' | 'uniform';
  /** What each file's `sha256` is: its SHA-256, or null ('none'). */
  checksums: 'sha256' | 'none';
  shardBytes: number;
  shards: ManifestShard[];
  rows: number;
  lines: number;
  skipped: number;
  outputBytes: number;
  createdAt: string;
}

/** A finished run: the parent job's return value. */
export interface RunSummary {
  run: string;
  manifest: string;
  shards: number;
  rows: number;
  lines: number;
  skipped: number;
  inputBytes: number;
  outputBytes: number;
}

export interface EnqueuedRun {
  run: string;
  shards: Array<{ index: number; range: [number, number]; out: string }>;
  /** 'added': a new run; 'exists': already there, nothing added; 'resumed': its failed shards were removed and added again. */
  status: 'added' | 'exists' | 'resumed';
  /** With 'resumed': the shards added again. */
  retried: number[];
}

/** A shard that failed for good. */
export interface ShardFailure {
  index: number;
  range: [number, number];
  reason: string;
}

/** A run that ended with failed shards (`waitForRun`). */
export class ShardRunError extends Error {
  constructor(
    readonly run: string,
    readonly failures: ShardFailure[],
  ) {
    const list = failures.slice(0, 5).map((f) => `shard ${f.index} (bytes ${f.range[0]}-${f.range[1]}): ${f.reason}`);
    const more = failures.length > 5 ? `; and ${failures.length - 5} more` : '';
    super(`run ${run}: ${failures.length} shard${failures.length === 1 ? '' : 's'} failed: ${list.join('; ')}${more}`);
  }
  override get name(): string {
    return 'ShardRunError';
  }
}

const MAX_SHARDS = 1_000_000;

function str(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0) throw new TypeError(`options.${key} must be a non-empty string, got ${describe(v)}`);
  return v;
}

const int = (o: Record<string, unknown>, key: string, dflt: number, lo: number, hi: number) => intSetting(o, 'options', key, dflt, lo, hi);

/** The output path of shard `index` of `shards`: `{shard}` replaced by the index, zero-padded to the widest. */
export function shardPath(pattern: string, index: number, shards: number): string {
  return pattern.replaceAll('{shard}', String(index).padStart(String(Math.max(shards - 1, 0)).length, '0'));
}

/** The byte ranges of a file of `size` bytes cut every `shardBytes` (one empty range for an empty file). */
export function shardRanges(size: number, shardBytes: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = 0; s < size || out.length === 0; s += shardBytes) out.push([s, Math.min(s + shardBytes, size)]);
  return out;
}

/** A run id: no '.', which separates it from the shard index in job ids, and no ':' (BullMQ's). */
const RUN_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** Checks the options and makes the run's data (no Redis yet). */
async function planRun(o: EnqueueOptions): Promise<RunJobData> {
  if (!isPlainObject(o)) throw new TypeError(`options must be an object, got ${describe(o)}`);
  if (o.connection === undefined || o.connection === null) throw new TypeError('options.connection is required: a Redis connection (an ioredis instance or its options)');
  const r = o as unknown as Record<string, unknown>;
  const input = path.resolve(str(r, 'input'));
  const shardBytes = int(r, 'shardBytes', NaN, 1, Number.MAX_SAFE_INTEGER);
  if (Number.isNaN(shardBytes)) throw new TypeError('options.shardBytes is required: about how many bytes per shard');
  const out = path.resolve(str(r, 'out'));
  if (!out.includes('{shard}')) throw new TypeError(`options.out must contain {shard} (one output per shard), got '${o.out}'`);
  const ext = path.extname(out).toLowerCase();
  if (ext !== '.npy' && ext !== '.safetensors') throw new TypeError(`options.out must name .npy or .safetensors files, got '${o.out}'`);
  const manifest = path.resolve(str(r, 'manifest'));
  const format = o.format ?? (/\.(jsonl|ndjson)$/i.test(input) ? 'jsonl' : 'lines');
  if (format !== 'lines' && format !== 'jsonl') throw new TypeError(`options.format must be one of 'lines', 'jsonl', got ${describe(format)}`);
  if (o.field !== undefined) {
    str(r, 'field');
    if (format !== 'jsonl') throw new TypeError("options.field is only valid with format 'jsonl'");
  }
  const onError = o.onError ?? 'skip';
  if (onError !== 'skip' && onError !== 'throw') throw new TypeError(`options.onError must be one of 'skip', 'throw', got ${describe(onError)}`);
  const batchSize = int(r, 'batchSize', 1000, 1, 1 << 24);
  const options = o.options ?? {};
  normalizeOptions(options); // a bad option is refused now, not by every shard
  const checksums = o.checksums ?? true;
  if (typeof checksums !== 'boolean') throw new TypeError(`options.checksums must be a boolean, got ${describe(checksums)}`);
  if (o.run !== undefined && (typeof o.run !== 'string' || !RUN_ID.test(o.run) || /^\d+$/.test(o.run))) {
    throw new TypeError(`options.run must be 1-128 letters, digits, '_' or '-', not only digits, got ${showValue(o.run)}`);
  }
  const st = await stat(input);
  if (!st.isFile()) throw new TypeError(`options.input must be a regular file: ${input} is not one`);
  const shards = Math.max(1, Math.ceil(st.size / shardBytes));
  if (shards > MAX_SHARDS) throw new RangeError(`options.shardBytes ${shardBytes} cuts ${input} (${st.size} bytes) into ${shards} shards, over ${MAX_SHARDS}: use larger shards`);
  const data: RunJobData = {
    run: '',
    shards,
    input,
    inputBytes: st.size,
    inputMtimeMs: Math.floor(st.mtimeMs),
    shardBytes,
    out,
    manifest,
    format,
    ...(o.field !== undefined ? { field: o.field } : {}),
    onError,
    batchSize,
    options,
    checksums,
  };
  // The same file (path, size, mtime) and the same settings make the same run: adding it again is a no-op.
  data.run = o.run ?? `run-${createHash('sha256').update(JSON.stringify(data)).digest('hex').slice(0, 16)}`;
  return data;
}

function shardJobs(run: RunJobData): ShardJobData[] {
  const { inputBytes, shardBytes, shards, out, manifest: _m, inputMtimeMs: _t, ...common } = run;
  return shardRanges(inputBytes, shardBytes).map((range, index) => ({ ...common, shards, index, range, out: shardPath(out, index, shards) }));
}

const shardId = (run: string, index: number) => `${run}.${index}`;

/** `{ connection, prefix }` as BullMQ's options take them. */
function bullOpts(c: QueueConnection): { connection: ConnectionOptions; prefix?: string } {
  return c.prefix === undefined ? { connection: c.connection } : { connection: c.connection, prefix: c.prefix };
}

/**
 * Adds a run: one flow of a parent `run` job and one `shard` job per byte range of the input.
 * Adding a run that is already there adds nothing (`status: 'exists'`), whatever its state; a run
 * that failed is resumed (`'resumed'`): its failed shards and its parent are removed and the flow
 * added again, so the shards that completed are kept (with their results) and only the failed
 * ones run again.
 */
export async function enqueueShards(options: EnqueueOptions): Promise<EnqueuedRun> {
  const run = await planRun(options);
  const jobs = shardJobs(run);
  const attempts = int(options as unknown as Record<string, unknown>, 'attempts', 3, 1, 1000);
  const backoffMs = int(options as unknown as Record<string, unknown>, 'backoffMs', 1000, 0, 86_400_000);
  const opts = bullOpts(options);
  const queue = new Queue(SHARD_QUEUE, opts);
  const flow = new FlowProducer(opts);
  try {
    let status: EnqueuedRun['status'] = 'added';
    const retried: number[] = [];
    const parent = await Job.fromId(queue, run.run);
    if (parent) {
      if ((await parent.getState()) !== 'failed') return { run: run.run, shards: summary(jobs), status: 'exists', retried };
      for (const j of jobs) {
        const child = await Job.fromId(queue, shardId(run.run, j.index));
        if (child && (await child.getState()) === 'failed') {
          await child.remove();
          retried.push(j.index);
        }
      }
      await parent.remove({ removeChildren: false });
      status = 'resumed';
    }
    await flow.add({
      name: 'run',
      queueName: SHARD_QUEUE,
      data: run,
      // Unrecoverable failures (failed shards) fail it at once; attempts are for the manifest's I/O.
      opts: { jobId: run.run, attempts, backoff: { type: 'exponential', delay: backoffMs } },
      children: jobs.map((data) => ({
        name: 'shard',
        queueName: SHARD_QUEUE,
        data,
        opts: { jobId: shardId(run.run, data.index), attempts, backoff: { type: 'exponential', delay: backoffMs }, ignoreDependencyOnFailure: true },
      })),
    });
    return { run: run.run, shards: summary(jobs), status, retried };
  } finally {
    await flow.close();
    await queue.close();
  }
}

function summary(jobs: ShardJobData[]): EnqueuedRun['shards'] {
  return jobs.map((j) => ({ index: j.index, range: j.range, out: j.out }));
}

export interface RunProgress {
  run: string;
  shards: number;
  shardsDone: number;
  rows: number;
  /** Input bytes of finished shards plus what running ones have read. */
  bytes: number;
  inputBytes: number;
}

export interface WaitOptions extends QueueConnection {
  run: string;
  /** Called as shards report progress and finish (at most every `pollMs` for progress). */
  onProgress?: (p: RunProgress) => void;
  signal?: AbortSignal;
  /** [500] how often the run's state is read (events do the rest). */
  pollMs?: number;
}

/**
 * Follows a run until its parent job finishes: resolves with its summary (the manifest is
 * written), or rejects with ShardRunError naming every shard that failed for good. Progress comes
 * from BullMQ's queue events (shards' `updateProgress` and completions); the end from the parent's
 * state, read every `pollMs`, so that a missed event (a Redis restart) cannot hang it.
 */
export async function waitForRun(o: WaitOptions): Promise<RunSummary> {
  if (!isPlainObject(o) || o.connection === undefined || o.connection === null) throw new TypeError('options.connection is required: a Redis connection (an ioredis instance or its options)');
  if (typeof o.run !== 'string' || o.run.length === 0) throw new TypeError(`options.run must be a run id, got ${describe(o.run)}`);
  const opts = bullOpts(o);
  const pollMs = int(o as unknown as Record<string, unknown>, 'pollMs', 500, 10, 60_000);
  const queue = new Queue(SHARD_QUEUE, opts);
  const events = new QueueEvents(SHARD_QUEUE, opts);
  const done = new Map<string, { rows: number; bytes: number }>();
  const running = new Map<string, { rows: number; bytes: number }>();
  const prefix = `${o.run}.`;
  try {
    const parent = await Job.fromId<RunJobData>(queue, o.run);
    if (!parent) throw new Error(`run ${o.run} is not in the queue ${SHARD_QUEUE}${o.prefix ? ` (prefix ${o.prefix})` : ''}`);
    const run = parent.data;
    const report = () =>
      o.onProgress?.({
        run: o.run,
        shards: run.shards,
        shardsDone: done.size,
        rows: sum(done, 'rows') + sum(running, 'rows'),
        bytes: sum(done, 'bytes') + sum(running, 'bytes'),
        inputBytes: run.inputBytes,
      });
    const finished = (id: string, r: unknown) => {
      const v = (typeof r === 'string' ? JSON.parse(r) : r) as ShardResult;
      running.delete(id);
      done.set(id, { rows: v.rows, bytes: v.bytes });
    };
    events.on('progress', ({ jobId, data }) => {
      if (!jobId.startsWith(prefix) || done.has(jobId)) return;
      const d = data as { rows?: number; bytes?: number };
      if (typeof d === 'object' && d !== null) running.set(jobId, { rows: d.rows ?? 0, bytes: d.bytes ?? 0 });
    });
    let wake = () => {};
    events.on('completed', ({ jobId, returnvalue }) => {
      if (jobId === o.run) return wake();
      if (!jobId.startsWith(prefix)) return;
      finished(jobId, returnvalue);
      report();
    });
    events.on('failed', ({ jobId }) => {
      if (jobId === o.run) wake();
    });
    await events.waitUntilReady();
    // What finished before the events were followed (and, at the end, what their events have not brought yet).
    const sync = async (job: Job) => {
      for (const [key, v] of Object.entries(await job.getChildrenValues<ShardResult>())) finished(key.slice(key.lastIndexOf(':') + 1), v);
    };
    await sync(parent);
    report();
    for (;;) {
      if (o.signal?.aborted) throw o.signal.reason;
      const p = await Job.fromId<RunJobData, RunSummary>(queue, o.run);
      if (!p) throw new Error(`run ${o.run} was removed from the queue while it ran`);
      const state = await p.getState();
      if (state === 'completed') {
        await sync(p);
        report();
        return p.returnvalue;
      }
      if (state === 'failed') {
        const failures = await failuresOf(queue, p);
        if (failures.length > 0) throw new ShardRunError(o.run, failures);
        throw new Error(`run ${o.run} failed: ${p.failedReason}`);
      }
      report();
      await new Promise<void>((resolve) => {
        wake = resolve;
        void sleep(pollMs, o.signal).then(resolve);
      });
    }
  } finally {
    await events.close();
    await queue.close();
  }
}

function sum(m: Map<string, { rows: number; bytes: number }>, k: 'rows' | 'bytes'): number {
  let n = 0;
  for (const v of m.values()) n += v[k];
  return n;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    t.unref(); // the connections hold the process while it waits; an early wake leaves no timer holding it
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The shards of a run that failed for good, in order, with BullMQ's failedReason of each. */
async function failuresOf(queue: Queue, parent: Job<RunJobData>): Promise<ShardFailure[]> {
  const failed = await parent.getIgnoredChildrenFailures();
  const out: ShardFailure[] = [];
  for (const [key, reason] of Object.entries(failed)) {
    const child = await Job.fromId<ShardJobData>(queue, key.slice(key.lastIndexOf(':') + 1));
    if (child) out.push({ index: child.data.index, range: child.data.range, reason });
  }
  return out.sort((a, b) => a.index - b.index);
}

// -----------------------------------------------------------------------------------------------
// Workers.

export interface StartWorkerOptions extends QueueConnection {
  /** A pipeline to run the jobs on (the caller closes it), or the config of one the worker makes and closes. */
  pipeline?: Pipeline | PipelineConfig;
  /** [1] shard jobs this process runs at once (each reads its range on this thread). */
  concurrency?: number;
  /** [64] `vectorize` jobs at once: they share batches through `pipeline.submit`. */
  requestConcurrency?: number;
  /** [BullMQ's 30000] ms a job's lock lasts; renewed at half of it while the job runs. */
  lockDuration?: number;
  /** [BullMQ's 30000] ms between checks for jobs whose lock expired (their worker died). */
  stalledInterval?: number;
  /** [2] times a job may stall (its worker died) and go back to wait before it fails. */
  maxStalledCount?: number;
  /** [a new Registry] where the job counters and the pipeline's metrics are registered. */
  registry?: Registry;
  /** [true] also take `vectorize` jobs from REQUEST_QUEUE. */
  requests?: boolean;
  /** Job events and BullMQ's errors (e.g. to log them). */
  onEvent?: (e: WorkerEvent) => void;
}

export type WorkerEvent =
  | { type: 'shard-started'; run: string; index: number; shards: number; range: [number, number]; attempt: number }
  | { type: 'shard-completed'; run: string; index: number; rows: number; seconds: number }
  | { type: 'shard-failed'; run: string; index: number; error: string; final: boolean }
  | { type: 'run-completed'; run: string; manifest: string; rows: number }
  | { type: 'run-failed'; run: string; error: string }
  | { type: 'error'; error: Error };

export interface DtesnWorker {
  readonly pipeline: Pipeline;
  readonly registry: Registry;
  /** BullMQ's workers: shards (and runs), and requests (null with `requests: false`). */
  readonly shardWorker: Worker;
  readonly requestWorker: Worker | null;
  /** Waits for the jobs in progress to finish, then closes the workers (and a pipeline it made). */
  close(): Promise<void>;
}

/** What `vectorize` request jobs carry. */
export interface VectorizeJobData {
  texts: readonly string[];
  options?: VectorizeOptions<Dtype, MaskDtype>;
}

/** A request job's return value: the JSON of `POST /v1/vectorize`. */
export type VectorizeResponse =
  | { rows: number; width: number; ids: number[][]; attentionMask: number[][]; lengths: number[] }
  | { rows: number; results: unknown[] };

function isPipeline(p: unknown): p is Pipeline {
  return typeof p === 'object' && p !== null && typeof (p as Pipeline).vectorizeFile === 'function' && typeof (p as Pipeline).submit === 'function';
}

/** Job counters, in `registry`. */
class JobMetrics {
  readonly jobs: Counter<'kind' | 'outcome'>;
  readonly active: Gauge<'kind'>;
  readonly seconds: Histogram<'kind'>;
  readonly rows: Counter;
  readonly inputBytes: Counter;
  readonly outputBytes: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.jobs = new Counter({ name: 'dtesn_bullmq_jobs_total', help: 'BullMQ jobs this worker finished, by kind (shard, run, vectorize) and outcome (completed, failed)', labelNames: ['kind', 'outcome'], registers });
    this.active = new Gauge({ name: 'dtesn_bullmq_jobs_active', help: 'BullMQ jobs this worker is running', labelNames: ['kind'], registers });
    this.seconds = new Histogram({
      name: 'dtesn_bullmq_job_duration_seconds',
      help: 'Run time of the jobs this worker finished',
      labelNames: ['kind'],
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.rows = new Counter({ name: 'dtesn_bullmq_shard_rows_total', help: 'Rows written by completed shard jobs', registers });
    this.inputBytes = new Counter({ name: 'dtesn_bullmq_shard_input_bytes_total', help: 'Input bytes of completed shard jobs', registers });
    this.outputBytes = new Counter({ name: 'dtesn_bullmq_shard_output_bytes_total', help: 'Bytes of the files completed shard jobs wrote', registers });
  }

  async time<T>(kind: string, f: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    this.active.inc({ kind });
    try {
      const r = await f();
      this.jobs.inc({ kind, outcome: 'completed' });
      return r;
    } catch (e) {
      this.jobs.inc({ kind, outcome: 'failed' });
      throw e;
    } finally {
      this.active.dec({ kind });
      this.seconds.observe({ kind }, (performance.now() - t0) / 1000);
    }
  }
}

const HASH_READ = 4 << 20;

/** The sha256 of a file, hex: reads into two reused buffers, the next read running while one is hashed. */
async function sha256File(file: string): Promise<string> {
  // Spare buffers (src/common/spare.ts): a fresh Buffer per read made a collection every few files.
  const bufs = [new Uint8Array(takeBuffer(HASH_READ)), new Uint8Array(takeBuffer(HASH_READ))];
  const h = createHash('sha256');
  const fh = await open(file, 'r');
  let reading: Promise<number> | null = null;
  try {
    let k = 0;
    let at = 0;
    reading = fh.read(bufs[0]!, 0, HASH_READ, 0).then((r) => r.bytesRead);
    for (;;) {
      const n = await reading;
      reading = null;
      if (n === 0) break;
      at += n;
      const cur = bufs[k]!;
      k ^= 1;
      reading = fh.read(bufs[k]!, 0, HASH_READ, at).then((r) => r.bytesRead);
      h.update(cur.subarray(0, n));
    }
  } finally {
    await reading?.catch(() => 0);
    await fh.close();
  }
  for (const b of bufs) giveBack(b.buffer as ArrayBuffer);
  return h.digest('hex');
}

/** Writes `text` to `file` under a temporary name, then renames it into place. */
async function writeAtomically(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${Date.now().toString(36)}.tmp`);
  try {
    await writeFile(tmp, text);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
}

/** How often a shard reports its progress (job.updateProgress), ms. */
const PROGRESS_MS = 250;
/**
 * How long a shard works before it lets the event loop turn, ms. A file's batches are made from a
 * chunk already read with promise jobs only, so without this a 1 MiB chunk of small batches held
 * the loop for tens of ms, and with it BullMQ's lock renewal timers: a short lock was lost
 * mid-shard.
 */
const YIELD_MS = 10;
/** Skipped lines a shard lists (all are counted). */
const SKIPPED_LISTED = 100;

async function runShard(job: Job<ShardJobData>, pipeline: Pipeline, metrics: JobMetrics, signal: AbortSignal | undefined): Promise<ShardResult> {
  const d = job.data;
  const t0 = performance.now();
  let writer;
  try {
    await mkdir(path.dirname(d.out), { recursive: true });
    writer = await openTensorWriter(d.out, {
      ...tensorWriterOptionsOf(d.options),
      metadata: { producer: 'dtesn-pipeline', options: JSON.stringify(d.options), run: d.run, shard: String(d.index), range: `${d.range[0]}-${d.range[1]}` },
    });
  } catch (e) {
    throw await shardError(e, d, false); // the output may be writable on the next attempt (space freed, a directory made)
  }
  let rows = 0;
  let width = 0;
  let bytes = 0;
  let lines = 0;
  let skipped = 0;
  const skippedLines: ShardResult['skippedLines'] = [];
  let last = performance.now();
  let turned = last;
  try {
    const batches = pipeline.vectorizeFile(d.input, {
      ...d.options,
      format: d.format,
      ...(d.field !== undefined ? { field: d.field } : {}),
      onError: d.onError,
      batchSize: d.batchSize,
      range: d.range,
      startLine: 1, // numbered from the shard's first line; the run adds the shards' counts up
      reuseBuffers: true,
      ...(signal ? { signal } : {}),
    });
    for await (const b of batches) {
      await writer.write(b);
      rows += b.rows;
      width = Math.max(width, b.width);
      bytes = b.bytesRead;
      lines = b.linesRead;
      skipped += b.skipped.length;
      for (const s of b.skipped) if (skippedLines.length < SKIPPED_LISTED) skippedLines.push(s);
      const now = performance.now();
      if (now - turned >= YIELD_MS) {
        await new Promise((r) => setImmediate(r));
        turned = performance.now();
      }
      if (now - last >= PROGRESS_MS) {
        last = now;
        // Not awaited: while Redis is away the update waits in ioredis' queue, the shard goes on.
        job.updateProgress({ rows, bytes }).catch(() => {});
      }
    }
    const done = await writer.finish();
    const files: ShardFile[] = [];
    for (const f of done.files) files.push({ path: f, bytes: (await stat(f)).size, sha256: d.checksums === false ? null : await sha256File(f) });
    const outBytes = files.reduce((a, f) => a + f.bytes, 0);
    metrics.rows.inc(rows);
    metrics.inputBytes.inc(bytes);
    metrics.outputBytes.inc(outBytes);
    return {
      index: d.index, range: d.range, bytes, lines, rows, width: done.width, dtype: tensorWriterOptionsOf(d.options).dtype, files, skipped, skippedLines,
      seconds: (performance.now() - t0) / 1000,
    };
  } catch (e) {
    await writer.abort();
    throw await shardError(e, d);
  }
}

/**
 * A shard's error for its job (the shard is named by whoever reports it: the worker's log, the
 * run's failure), with an absolute line number where the error names a line (counted now, on the
 * error path only). Errors of the input itself (a malformed line with onError 'throw', a row the
 * options refuse) would fail every attempt: UnrecoverableError, no retry.
 */
async function shardError(e: unknown, d: ShardJobData, ofInput = true): Promise<Error> {
  const err = e instanceof Error ? e : new Error(String(e));
  const line = (err as { line?: unknown }).line;
  const file = (err as { path?: unknown }).path;
  let message = err.message;
  const deterministic = ofInput && (err instanceof RecordError || err instanceof TypeError || err instanceof RangeError);
  if (typeof line === 'number' && typeof file === 'string' && message.startsWith(`${file}:${line}:`)) {
    const before = await linesBefore(d.input, d.range[0]).catch(() => null);
    if (before !== null) message = `${file}:${before + line}:${message.slice(`${file}:${line}:`.length)}`;
  }
  const out = deterministic ? new UnrecoverableError(message) : new Error(message);
  out.cause = err;
  return out;
}

/** The run's parent job: every shard is done; write the manifest (or fail naming the failed shards). */
async function finishRun(job: Job<RunJobData>, queue: () => Queue): Promise<RunSummary> {
  const d = job.data;
  const failures = await failuresOf(queue(), job);
  if (failures.length > 0) throw new UnrecoverableError(new ShardRunError(d.run, failures).message);
  const values = Object.values(await job.getChildrenValues<ShardResult>()).sort((a, b) => a.index - b.index);
  if (values.length !== d.shards || values.some((v, i) => v.index !== i)) {
    throw new Error(`run ${d.run}: ${values.length} of ${d.shards} shard results found`);
  }
  const base = path.dirname(d.manifest);
  let line = 1;
  const shards: ManifestShard[] = values.map((v) => {
    const firstLine = line;
    line += v.lines;
    return {
      index: v.index,
      range: v.range,
      bytes: v.bytes,
      firstLine,
      lines: v.lines,
      rows: v.rows,
      width: v.width,
      dtype: v.dtype,
      files: v.files.map((f) => ({ ...f, path: path.relative(base, f.path) || f.path })),
      skipped: v.skipped,
      skippedLines: v.skippedLines.map((s) => ({ line: firstLine + s.line - 1, message: s.message })),
    };
  });
  const n = normalizeOptions(d.options);
  const manifest: Manifest = {
    schema: 'dtesn-shards-manifest/1',
    run: d.run,
    input: d.input,
    inputBytes: d.inputBytes,
    format: d.format,
    ...(d.field !== undefined ? { field: d.field } : {}),
    onError: d.onError,
    batchSize: d.batchSize,
    options: d.options,
    dtype: n.dtype,
    padding: n.padding,
    widths: n.padding === 'longest' ? 'per-shard' : 'uniform',
    checksums: d.checksums === false ? 'none' : 'sha256',
    shardBytes: d.shardBytes,
    shards,
    rows: shards.reduce((a, s) => a + s.rows, 0),
    lines: line - 1,
    skipped: shards.reduce((a, s) => a + s.skipped, 0),
    outputBytes: shards.reduce((a, s) => a + s.files.reduce((b, f) => b + f.bytes, 0), 0),
    createdAt: new Date().toISOString(),
  };
  await writeAtomically(d.manifest, JSON.stringify(manifest, null, 2) + '\n');
  return {
    run: d.run, manifest: d.manifest, shards: d.shards, rows: manifest.rows, lines: manifest.lines, skipped: manifest.skipped,
    inputBytes: d.inputBytes, outputBytes: manifest.outputBytes,
  };
}

/** A request job: `{ texts, options }` through pipeline.submit, answered as POST /v1/vectorize answers. */
async function runRequest(job: Job<VectorizeJobData>, pipeline: Pipeline): Promise<VectorizeResponse> {
  const d = job.data as unknown;
  try {
    if (!isPlainObject(d)) throw new TypeError(`the job's data must be an object { texts, options }, got ${describe(d)}`);
    for (const k of Object.keys(d)) if (k !== 'texts' && k !== 'options') throw new TypeError(`unknown field '${k}' in the job's data (expected texts and options)`);
    checkTexts(d.texts);
    const r = await pipeline.submit(d.texts as readonly string[], d.options as VectorizeOptions<Dtype, MaskDtype> | undefined);
    return Array.isArray(r) ? { rows: r.length, results: r } : batchJson(r);
  } catch (e) {
    // Bad texts or options fail every attempt the same way.
    if (e instanceof TypeError || e instanceof RangeError) throw new UnrecoverableError(e.message);
    throw e;
  }
}

function batchJson(b: VectorBatch<Dtype, MaskDtype>): VectorizeResponse {
  const ids: number[][] = [];
  const attentionMask: number[][] = [];
  for (let r = 0; r < b.rows; r++) {
    // int64 ids and masks as JSON numbers (exact below 2^53, which ids are).
    ids.push(Array.from(b.ids.subarray(r * b.width, (r + 1) * b.width) as ArrayLike<number | bigint>, Number));
    attentionMask.push(Array.from(b.attentionMask.subarray(r * b.width, (r + 1) * b.width) as ArrayLike<number | bigint>, Number));
  }
  return { rows: b.rows, width: b.width, ids, attentionMask, lengths: Array.from(b.lengths) };
}

/**
 * Starts this process's BullMQ workers: shard jobs (and their runs' parent jobs) from SHARD_QUEUE,
 * `concurrency` at a time, and `vectorize` jobs from REQUEST_QUEUE, `requestConcurrency` at a time,
 * on one pipeline. A shard reports `{ rows, bytes }` with `job.updateProgress` every 250 ms; its
 * work yields to the event loop at every batch, so BullMQ renews its lock however long it runs.
 */
export function startWorker(options: StartWorkerOptions): DtesnWorker {
  if (!isPlainObject(options)) throw new TypeError(`options must be an object, got ${describe(options)}`);
  if (options.connection === undefined || options.connection === null) throw new TypeError('options.connection is required: a Redis connection (an ioredis instance or its options)');
  const o = options as unknown as Record<string, unknown>;
  const concurrency = int(o, 'concurrency', 1, 1, 1024);
  const requestConcurrency = int(o, 'requestConcurrency', 64, 1, 100_000);
  const lockDuration = int(o, 'lockDuration', 30_000, 100, 86_400_000);
  const stalledInterval = int(o, 'stalledInterval', 30_000, 100, 86_400_000);
  const maxStalledCount = int(o, 'maxStalledCount', 2, 0, 1000);
  const owned = !isPipeline(options.pipeline);
  const pipeline = isPipeline(options.pipeline) ? options.pipeline : createPipeline(options.pipeline ?? {});
  const registry = options.registry ?? new Registry();
  const metrics = new JobMetrics(registry);
  const unregister = registerMetrics(pipeline, registry);
  const emit = (e: WorkerEvent) => options.onEvent?.(e);
  const base = { ...bullOpts(options), lockDuration, stalledInterval, maxStalledCount, name: `dtesn-${hostname()}-${process.pid}` };
  let queue: Queue | null = null;
  const shardQueue = () => (queue ??= new Queue(SHARD_QUEUE, bullOpts(options)));

  const shardWorker = new Worker(
    SHARD_QUEUE,
    async (job: Job, _token?: string, signal?: AbortSignal) => {
      if (job.name === 'run') {
        const d = job.data as RunJobData;
        try {
          const s = await metrics.time('run', () => finishRun(job as Job<RunJobData>, shardQueue));
          emit({ type: 'run-completed', run: d.run, manifest: s.manifest, rows: s.rows });
          return s;
        } catch (e) {
          emit({ type: 'run-failed', run: d.run, error: (e as Error).message });
          throw e;
        }
      }
      if (job.name !== 'shard') throw new UnrecoverableError(`unknown job name '${job.name}' in ${SHARD_QUEUE} (expected shard or run)`);
      const d = job.data as ShardJobData;
      emit({ type: 'shard-started', run: d.run, index: d.index, shards: d.shards, range: d.range, attempt: job.attemptsMade + 1 });
      try {
        const r = await metrics.time('shard', () => runShard(job as Job<ShardJobData>, pipeline, metrics, signal));
        emit({ type: 'shard-completed', run: d.run, index: d.index, rows: r.rows, seconds: r.seconds });
        return r;
      } catch (e) {
        const final = e instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        emit({ type: 'shard-failed', run: d.run, index: d.index, error: (e as Error).message, final });
        throw e;
      }
    },
    { ...base, concurrency },
  );
  const requestWorker =
    options.requests === false
      ? null
      : new Worker(REQUEST_QUEUE, (job: Job) => metrics.time('vectorize', () => runRequest(job as Job<VectorizeJobData>, pipeline)), { ...base, concurrency: requestConcurrency });
  // BullMQ's workers emit 'error' for connection trouble (they reconnect by themselves); an
  // EventEmitter without a listener would throw it.
  for (const w of [shardWorker, requestWorker]) w?.on('error', (error) => emit({ type: 'error', error }));
  let closing: Promise<void> | null = null;
  return {
    pipeline,
    registry,
    shardWorker,
    requestWorker,
    close() {
      closing ??= (async () => {
        await Promise.all([shardWorker.close(), requestWorker?.close()]);
        await queue?.close();
        unregister();
        if (owned) await pipeline.close();
      })();
      return closing;
    },
  };
}

// -----------------------------------------------------------------------------------------------
// Requests.

export interface ViaQueueOptions {
  /** [none] reject after this many ms (the job itself is not removed). */
  timeoutMs?: number;
  /** BullMQ job options of the request job (attempts, priority, ...). */
  jobOptions?: Parameters<Queue['add']>[2];
}

/** One QueueEvents per queue, shared by the calls in flight and closed a second after the last. */
const shared = new WeakMap<Queue, { events: QueueEvents; users: number; timer: NodeJS.Timeout | null }>();

function eventsFor(queue: Queue): { events: QueueEvents; release: () => void } {
  let s = shared.get(queue);
  if (!s) {
    const prefix = (queue.opts as { prefix?: string }).prefix;
    const events = new QueueEvents(queue.name, { connection: queue.opts.connection, ...(prefix !== undefined ? { prefix } : {}) });
    s = { events, users: 0, timer: null };
    shared.set(queue, s);
  }
  const entry = s;
  if (entry.timer) clearTimeout(entry.timer);
  entry.timer = null;
  entry.users++;
  // Every job.waitUntilFinished listens for the queue's 'closing' while it waits: many requests in
  // flight are not a leak.
  if (queue.getMaxListeners() < entry.users + 10) queue.setMaxListeners(entry.users + 10);
  return {
    events: entry.events,
    release() {
      if (--entry.users > 0) return;
      entry.timer = setTimeout(() => {
        shared.delete(queue);
        entry.events.close().catch(() => {});
      }, 1000);
      entry.timer.unref();
    },
  };
}

/**
 * Vectorizes `texts` on whichever worker takes the job: adds a `vectorize` job to `queue` (a
 * BullMQ Queue named REQUEST_QUEUE) and resolves with its result, the JSON of `POST /v1/vectorize`
 * (`{ rows, width, ids, attentionMask, lengths }`, or `{ rows, results }` from a pipeline with a
 * handler). Bad texts or options reject with the library's message, once (no retry). Jobs are
 * removed an hour after they complete and a day after they fail.
 */
export async function vectorizeViaQueue(
  queue: Queue,
  texts: readonly string[],
  options?: VectorizeOptions<Dtype, MaskDtype>,
  opts: ViaQueueOptions = {},
): Promise<VectorizeResponse> {
  if (!(queue instanceof Queue)) throw new TypeError(`queue must be a BullMQ Queue, got ${describe(queue)}`);
  checkTexts(texts);
  if (opts.timeoutMs !== undefined && !(opts.timeoutMs > 0)) throw new RangeError(`opts.timeoutMs must be > 0, got ${describe(opts.timeoutMs)}`);
  const { events, release } = eventsFor(queue);
  try {
    await events.waitUntilReady();
    const data: VectorizeJobData = options === undefined ? { texts } : { texts, options };
    const job = await queue.add('vectorize', data, { removeOnComplete: { age: 3600 }, removeOnFail: { age: 86_400 }, ...opts.jobOptions });
    return (await job.waitUntilFinished(events, opts.timeoutMs)) as VectorizeResponse;
  } finally {
    release();
  }
}
