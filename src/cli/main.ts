#!/usr/bin/env node
/**
 * The `dtesn` command:
 *
 *   dtesn vectorize [INPUT] --out FILE [options]   a text file (or stdin, or the bundled corpus)
 *                                                  -> .npy files or one .safetensors file
 *   dtesn serve [--port 8080] [--host 127.0.0.1]   the HTTP service (src/server/server.ts)
 *   dtesn bench [--rounds N] [--lines N] [--full]  the benchmark suite (src/cli/bench.ts)
 *   dtesn vectorize INPUT --queue URL ...          sharded over BullMQ, and `dtesn worker`
 *                                                  (src/cli/queue.ts, src/queue/bullmq.ts)
 *
 * Exit codes: 0 done; 1 the work failed (unreadable input, unwritable output, a malformed line
 * with --on-error throw); 2 the command line is wrong (unknown flag, bad value), on stderr; 130
 * interrupted by SIGINT, 143 by SIGTERM.
 * Output is written under temporary names and renamed into place only when everything succeeded,
 * so a failed or interrupted run leaves no half-written file.
 */
import { constants as fsConstants, realpathSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { access, mkdir, open, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Health, createMonitor } from '../observe/monitor/monitor.js';
import { normalizeOptions } from '../vectorize/options.js';
import { createPipeline, type Pipeline } from '../pipeline/pipeline.js';
import { RecordError, type FileBatch } from '../io/stream.js';
import { openTensorWriter, type TensorWriter, tensorWriterOptionsOf } from '../tensors/tensor-file.js';
import type { Dtype, MaskDtype, VectorizeOptions } from '../vectorize/types.js';
import type { ParseArgsConfig } from 'node:util';
import { getBackend } from '../vectorize/vectorize.js';
import { RunError, UsageError, int64Flag, intFlag, parse } from './args.js';

const BUNDLED_CORPUS = fileURLToPath(new URL('../../samples/udhr.jsonl', import.meta.url));

const USAGE = `Usage:
  dtesn vectorize [INPUT] --out FILE [options]
  dtesn serve [--port 8080] [--host 127.0.0.1] [--workers N] [--body-limit BYTES] [--max-queue ROWS] [--warmup REQUESTS]
  dtesn bench [--rounds N] [--lines N] [--full]
  dtesn vectorize INPUT --queue redis://HOST:PORT --shard-bytes N --out 'DIR/NAME-{shard}.npy' --manifest FILE [--wait]
  dtesn worker --queue redis://HOST:PORT [--concurrency N] [--workers N] [--metrics-port P]  (dtesn worker --help)
  dtesn --version | --help
`;

/** \`dtesn vectorize --help\`. */
const VECTORIZE_HELP = `Usage: dtesn vectorize [INPUT] --out FILE [options]

dtesn vectorize: streams INPUT (a file; '-' for stdin; none: the bundled multilingual UDHR corpus)
through the pipeline and writes the padded arrays:
  --out FILE.npy          ids in FILE.npy, plus FILE.mask.npy and FILE.lengths.npy
  --out FILE.safetensors  one file with tensors input_ids, attention_mask, lengths
Options:
  --format lines|jsonl     [from the extension: .jsonl/.ndjson -> jsonl, else lines]
  --field NAME             [text] the JSONL field holding the text
  --encoding E             [codepoint] codepoint | utf8 | utf16 | byt5 | canine
  --max-length N           [512] tokens per row, special tokens included
  --padding P              [longest] longest (the longest row of the file) | max-length
  --pad-to-multiple-of N   round the width up to a multiple of N
  --padding-side S         [right] left | right
  --truncation-side S      [right] left | right
  --pad-id N               [0] (any int64 with --dtype int64)
  --no-special-tokens      no EOS (byt5) / CLS, SEP (canine)
  --dtype D                [int32] int32 | int16 | uint16 | uint8 | float32 | int64 (ids; lengths are int32)
  --mask-dtype D           [uint8] uint8 | int32 | int64 (attention mask; int64 is what ONNX models take)
  --invalid M              [replace] replace | error (malformed UTF-8 in the input)
  --on-error M             [skip] skip | throw: a malformed JSONL line is skipped and counted, or stops the run
  --batch-size N           [1000] rows per batch
  --workers N              [available cores] worker threads
  --report FILE            also write the final report as JSON
  --quiet                  no progress bar and no summary
Sharded over BullMQ on Redis (workers: dtesn worker; every worker reads INPUT and writes --out at
the same paths, a shared file system):
  --queue redis://HOST:PORT  enqueue one job per shard instead of vectorizing here
  --shard-bytes N          about N input bytes per shard (lines are never split)
  --out 'DIR/NAME-{shard}.npy|.safetensors'  one output per shard ({shard}: its zero-padded index)
  --manifest FILE          written when every shard is done: shards, ranges, rows, widths, sha256s
  --wait                   follow the run (progress bar) to its end: exit 1 naming failed shards
  --run ID                 [from the input's path, size, mtime and the options] the run's id
  --attempts N             [3] attempts per shard; --backoff MS [1000] the first retry's delay
  --prefix P               [bull] BullMQ's key prefix; --connect-timeout MS [5000]
  --no-checksums           no sha256 of the outputs in the manifest (hashing costs about as much as vectorizing)
`;


/** \`dtesn serve --help\`. */
const SERVE_HELP = `Usage: dtesn serve [options]

dtesn serve: the pipeline over HTTP: POST /v1/vectorize, GET /metrics (Prometheus), GET /healthz.
Options:
  --port N                 [8080] 0 picks a free port
  --host H                 [127.0.0.1]
  --workers N              [available cores] worker threads of the pipeline
  --body-limit BYTES       [8388608] largest request body; beyond it 413
  --max-queue ROWS         [100000] rows waiting; beyond it 429
  --warmup REQUESTS        [1000] requests sent to a private copy of the service before it listens; 0: none
SIGTERM or SIGINT: stop accepting, finish the requests in flight, exit 0 (a second signal: at once).
`;

/** \`dtesn bench --help\`. */
const BENCH_HELP = `Usage: dtesn bench [--rounds N] [--lines N] [--full]

dtesn bench: the benchmark on the bundled corpus (the full suites with contenders: npm run bench in a checkout).
Options:
  --rounds N               [7] rounds per case (medians)
  --lines N                [200000] lines of the bundled corpus, repeated as needed
  --full                   in a git checkout: npm run bench (every suite, with its contenders)
`;

/** \`dtesn --help\`: the commands, then each command's own help. */
const HELP = `${USAGE}\n${VECTORIZE_HELP.split('\n').slice(2).join('\n')}\n${SERVE_HELP.split('\n').slice(2).join('\n')}`;

const VECTORIZE_FLAGS = {
  out: { type: 'string', short: 'o' },
  format: { type: 'string' },
  field: { type: 'string' },
  encoding: { type: 'string' },
  'max-length': { type: 'string' },
  padding: { type: 'string' },
  'pad-to-multiple-of': { type: 'string' },
  'padding-side': { type: 'string' },
  'truncation-side': { type: 'string' },
  'pad-id': { type: 'string' },
  'no-special-tokens': { type: 'boolean' },
  dtype: { type: 'string' },
  'mask-dtype': { type: 'string' },
  invalid: { type: 'string' },
  'on-error': { type: 'string' },
  'batch-size': { type: 'string' },
  workers: { type: 'string' },
  report: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
  queue: { type: 'string' },
  'shard-bytes': { type: 'string' },
  manifest: { type: 'string' },
  wait: { type: 'boolean' },
  run: { type: 'string' },
  prefix: { type: 'string' },
  attempts: { type: 'string' },
  backoff: { type: 'string' },
  'connect-timeout': { type: 'string' },
  'no-checksums': { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

/** Library option name -> the flag that sets it, to translate the library's messages. */
const FLAG_OF: Record<string, string> = {
  encoding: '--encoding',
  maxLength: '--max-length',
  padding: '--padding',
  padToMultipleOf: '--pad-to-multiple-of',
  paddingSide: '--padding-side',
  truncationSide: '--truncation-side',
  padId: '--pad-id',
  dtype: '--dtype',
  maskDtype: '--mask-dtype',
  invalid: '--invalid',
  field: '--field',
  format: '--format',
  batchSize: '--batch-size',
  onError: '--on-error',
};

/** Rewrites a library message about `options.x` to name the flag (`--x`) instead. */
function asFlagMessage(message: string): string {
  return message.replace(/options\.([A-Za-z]+)/g, (m, name: string) => FLAG_OF[name] ?? m);
}

const MB = 1024 * 1024;

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function fmtMs(n: number | null | undefined): string {
  return n === null || n === undefined ? 'n/a' : `${n.toFixed(n < 10 ? 2 : 1)} ms`;
}

export interface VectorizeReport {
  schema: 'dtesn-vectorize-report/1';
  input: string;
  format: 'lines' | 'jsonl';
  outputs: string[];
  rows: number;
  width: number;
  /** Malformed lines skipped (--on-error skip), and the first 100 of them. */
  skipped: number;
  skippedLines: Array<{ line: number; message: string }>;
  inputBytes: number;
  outputBytes: number;
  seconds: number;
  rowsPerSecond: number;
  inputMBPerSecond: number;
  /** Run time of each batch, ms (the pipeline's batch latency distribution). */
  batchLatencyMs: { p50: number | null; p90: number | null; p99: number | null; max: number | null };
  health: Health;
  options: VectorizeOptions<Dtype, MaskDtype>;
  backend: ReturnType<typeof getBackend>;
  workers: number;
}

interface Progress {
  update(rows: number, bytes: number): void;
  stop(): void;
}

/** cli-progress on a TTY: rows, MB, rate, ETA (against the file size; no ETA for stdin). */
async function progressBar(totalBytes: number | null): Promise<Progress> {
  const { default: cliProgress } = await import('cli-progress');
  const start = performance.now();
  const known = totalBytes !== null && totalBytes > 0;
  const bar = new cliProgress.SingleBar(
    {
      format: known
        ? ' {bar} {percentage}% | {rows} rows | {mb}/{totalMb} MB | {rate} rows/s | ETA {eta_formatted}'
        : ' {rows} rows | {mb} MB | {rate} rows/s',
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
      etaBuffer: 20,
      fps: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  const totalMb = known ? (totalBytes / MB).toFixed(1) : '?';
  bar.start(known ? totalBytes : 1, 0, { rows: '0', mb: '0.0', totalMb, rate: '0' });
  return {
    update(rows, bytes) {
      const s = (performance.now() - start) / 1000;
      bar.update(known ? bytes : 0, { rows: fmtInt(rows), mb: (bytes / MB).toFixed(1), totalMb, rate: s > 0 ? fmtInt(rows / s) : '0' });
    },
    stop() {
      bar.stop();
    },
  };
}

async function vectorizeCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parse(args, VECTORIZE_FLAGS, 1);
  if (v.help) {
    process.stdout.write(VECTORIZE_HELP);
    return 0;
  }
  if (v.out === undefined) throw new UsageError('--out FILE is required (FILE.npy or FILE.safetensors)');
  const ext = path.extname(v.out).toLowerCase();
  if (ext !== '.npy' && ext !== '.safetensors') {
    throw new UsageError(`--out must name a .npy or .safetensors file, got '${v.out}'`);
  }
  const input = positionals[0] ?? null;
  const inputName = input === null ? BUNDLED_CORPUS : input === '-' ? '<stdin>' : input;
  let format: 'lines' | 'jsonl';
  if (v.format !== undefined) {
    if (v.format !== 'lines' && v.format !== 'jsonl') throw new UsageError(`--format must be one of lines, jsonl, got '${v.format}'`);
    format = v.format;
  } else {
    format = input === null || /\.(jsonl|ndjson)$/i.test(input) ? 'jsonl' : 'lines';
  }
  if (v.field !== undefined && format !== 'jsonl') throw new UsageError('--field is only valid with --format jsonl');
  if (v.field === '') throw new UsageError("--field must name a field, got ''");
  const onError = v['on-error'] ?? 'skip';
  if (onError !== 'skip' && onError !== 'throw') throw new UsageError(`--on-error must be one of skip, throw, got '${onError}'`);

  const options: VectorizeOptions<Dtype, MaskDtype> = {};
  const set = <K extends keyof VectorizeOptions<Dtype, MaskDtype>>(k: K, x: VectorizeOptions<Dtype, MaskDtype>[K] | undefined): void => {
    if (x !== undefined) options[k] = x;
  };
  set('encoding', v.encoding as VectorizeOptions<Dtype>['encoding']);
  set('maxLength', intFlag('--max-length', v['max-length'], 1, 2 ** 31 - 1));
  set('padding', v.padding as VectorizeOptions<Dtype>['padding']);
  set('padToMultipleOf', intFlag('--pad-to-multiple-of', v['pad-to-multiple-of'], 1, 2 ** 31 - 1));
  set('paddingSide', v['padding-side'] as VectorizeOptions<Dtype>['paddingSide']);
  set('truncationSide', v['truncation-side'] as VectorizeOptions<Dtype>['truncationSide']);
  set('padId', v.dtype === 'int64' ? int64Flag('--pad-id', v['pad-id']) : intFlag('--pad-id', v['pad-id'], -(2 ** 31), 2 ** 31 - 1));
  if (v['no-special-tokens']) options.addSpecialTokens = false;
  set('dtype', v.dtype as Dtype | undefined);
  set('maskDtype', v['mask-dtype'] as MaskDtype | undefined);
  set('invalid', v.invalid as VectorizeOptions<Dtype>['invalid']);
  try {
    normalizeOptions(options); // a bad value is a command-line error, named by its flag
  } catch (e) {
    throw new UsageError(asFlagMessage((e as Error).message));
  }
  const batchSize = intFlag('--batch-size', v['batch-size'], 1, 1 << 24) ?? 1000;
  const workers = intFlag('--workers', v.workers, 1, 64);
  if (v.queue !== undefined) {
    const { queueVectorize } = await import('./queue.js');
    return queueVectorize({ flags: v, input: input === '-' ? null : inputName, format, field: v.field, onError, batchSize, options });
  }
  for (const f of ['shard-bytes', 'manifest', 'wait', 'run', 'prefix', 'attempts', 'backoff', 'connect-timeout', 'no-checksums'] as const) {
    if (v[f] !== undefined) throw new UsageError(`--${f} is only valid with --queue`);
  }

  // Input: check it now, so a missing file is one clear line rather than a stack trace.
  let totalBytes: number | null = null;
  if (input !== '-') {
    try {
      const s = await stat(inputName);
      if (!s.isFile()) throw new RunError(`cannot read input '${inputName}': not a regular file`);
      // Readable too (permissions), before any output is opened.
      await (await open(inputName, 'r')).close();
      totalBytes = s.size;
    } catch (e) {
      if (e instanceof RunError) throw e;
      throw new RunError(`cannot read input '${inputName}': ${describeFsError(e)}`);
    }
  }

  // Ctrl-C from here on: no output, exit 130. The handlers come before anything is created, and
  // stay for the whole run (`on`, not `once`: a second signal must not kill the process while it
  // removes its temporaries).
  const interrupted = new AbortController();
  let signalled: NodeJS.Signals = 'SIGINT';
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!interrupted.signal.aborted) signalled = signal;
    interrupted.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const offSignals = (): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  // Directories this run creates (for --out and --report), removed again if it fails.
  const made: Array<[first: string | undefined, leaf: string]> = [];
  const unmake = async (): Promise<void> => {
    for (const [first, leaf] of made.reverse()) await removeMadeDirs(first, leaf);
  };
  const outPath = path.resolve(v.out);
  const reportPath = v.report === undefined ? null : path.resolve(v.report);
  let writer: TensorWriter;
  try {
    try {
      made.push([await mkdir(path.dirname(outPath), { recursive: true }), path.dirname(outPath)]);
    } catch (e) {
      throw new RunError(`cannot write '${v.out}': ${describeFsError(e)}`);
    }
    if (reportPath !== null) {
      // Checked now, not after the outputs are in place: a report that cannot be written then
      // would leave them behind (or, removed, lose what they replaced).
      try {
        made.push([await mkdir(path.dirname(reportPath), { recursive: true }), path.dirname(reportPath)]);
        await access(path.dirname(reportPath), fsConstants.W_OK);
        const st = await stat(reportPath).catch(() => null);
        if (st?.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      } catch (e) {
        throw new RunError(`cannot write report '${v.report}': ${describeFsError(e)}`);
      }
    }
    try {
      // With 'max-length' the width is known up front (also for an input without rows).
      writer = await openTensorWriter(outPath, {
        ...tensorWriterOptionsOf(options),
        metadata: { producer: 'dtesn-pipeline', options: JSON.stringify(options, bigintAsString) },
      });
    } catch (e) {
      throw new RunError(writeFailure(v.out, e));
    }
  } catch (e) {
    offSignals();
    await unmake();
    throw e;
  }

  const pipeline = createPipeline(workers === undefined ? {} : { maxWorkers: workers });
  const monitor = createMonitor(pipeline, { intervalMs: 1000 });
  const quiet = v.quiet === true;
  const progress = !quiet && process.stderr.isTTY ? await progressBar(totalBytes) : null;
  const t0 = performance.now();
  let rows = 0;
  let width = 0;
  let bytesRead = 0;
  let skipped = 0;
  const skippedLines: Array<{ line: number; message: string }> = [];
  let finished = false;
  const interruptedExit = async (): Promise<number> => {
    progress?.stop();
    await writer.abort();
    await unmake();
    process.stderr.write(`dtesn: ${signalled}: interrupted; no output written\n`);
    // The shell's convention for a death by signal: 128 + its number (SIGINT 130, SIGTERM 143).
    return 128 + (osConstants.signals[signalled] ?? 2);
  };
  try {
    const source = input === '-' ? process.stdin : inputName;
    // The interrupt ends the batches at once, also while a read waits on a quiet stdin (which
    // vectorizeFile then destroys, as leaving the loop would). Each batch is written out before
    // the next is asked for, so every batch can use the same output memory (reuseBuffers).
    const batches: AsyncIterable<FileBatch<Dtype, MaskDtype>> = pipeline.vectorizeFile(source, {
      ...options, format, ...(v.field !== undefined ? { field: v.field } : {}), batchSize, onError, signal: interrupted.signal,
      reuseBuffers: true,
    });
    try {
      for await (const b of batches) {
        try {
          await writer.write(b);
        } catch (e) {
          throw new RunError(`${writeFailure(v.out, e)}; no output written`);
        }
        rows += b.rows;
        width = Math.max(width, b.width);
        bytesRead = b.bytesRead;
        skipped += b.skipped.length;
        for (const s of b.skipped) if (skippedLines.length < 100) skippedLines.push(s);
        progress?.update(rows, bytesRead);
      }
    } catch (e) {
      if (!interrupted.signal.aborted) {
        // The input failed while it was read (removed, unreadable, an I/O error).
        if (typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string') {
          throw new RunError(`cannot read input '${inputName}': ${describeFsError(e)}; no output written`);
        }
        throw e;
      }
    }
    if (interrupted.signal.aborted) return await interruptedExit();
    let done;
    try {
      // An interrupt during a long re-padding rebuild: nothing is renamed into place.
      done = await writer.finish({ signal: interrupted.signal });
    } catch (e) {
      if (interrupted.signal.aborted) return await interruptedExit();
      throw new RunError(`${writeFailure(v.out, e)}; no output written`);
    }
    finished = true;
    const seconds = (performance.now() - t0) / 1000;
    progress?.update(rows, bytesRead);
    progress?.stop();
    monitor.sample();
    const m = pipeline.metrics();
    const health = monitor.health();
    const batch = m.latency?.batch;
    const report: VectorizeReport = {
      schema: 'dtesn-vectorize-report/1',
      input: input === null ? 'bundled corpus: samples/udhr.jsonl' : inputName,
      format,
      outputs: done.files.map(displayPath),
      rows,
      width: done.width,
      skipped,
      skippedLines,
      inputBytes: bytesRead,
      outputBytes: done.bytes,
      seconds,
      rowsPerSecond: rows / seconds,
      inputMBPerSecond: bytesRead / MB / seconds,
      batchLatencyMs: { p50: batch?.p50 ?? null, p90: batch?.p90 ?? null, p99: batch?.p99 ?? null, max: batch?.max ?? null },
      health,
      options,
      backend: getBackend(),
      workers: m.config.maxWorkers,
    };
    if (v.report !== undefined) {
      try {
        await writeJsonAtomically(v.report, report);
      } catch (e) {
        // Checked writable before the work; failing now, the outputs stay (they are complete).
        throw new RunError(`${(e as Error).message}; the outputs were written: ${report.outputs.join(', ')}`);
      }
    }
    if (!quiet) process.stdout.write(summary(report));
    return 0;
  } catch (e) {
    progress?.stop();
    if (!finished) {
      await writer.abort().catch(() => undefined);
      await unmake();
    }
    if (e instanceof RecordError) throw new RunError(`${e.message} (--on-error throw); no output written`);
    throw e;
  } finally {
    offSignals();
    monitor.stop();
    await pipeline.close();
  }
}

/**
 * Removes the directories `mkdir(leaf, { recursive: true })` created (`first` is what it
 * returned: the topmost one it made), deepest first, each only if empty.
 */
async function removeMadeDirs(first: string | undefined, leaf: string): Promise<void> {
  if (first === undefined) return;
  for (let d = leaf; ; d = path.dirname(d)) {
    try {
      await rmdir(d);
    } catch {
      return; // not empty, or gone: leave it and what is above it
    }
    if (d === first || path.dirname(d) === d) return;
  }
}

function summary(r: VectorizeReport): string {
  const lines = [
    `dtesn vectorize: ${fmtInt(r.rows)} rows x width ${r.width} from ${r.input}`,
    `  outputs:     ${r.outputs.join(', ')} (${(r.outputBytes / MB).toFixed(1)} MB)`,
    `  skipped:     ${fmtInt(r.skipped)} malformed line${r.skipped === 1 ? '' : 's'}${r.skipped > 0 ? ` (first at line ${r.skippedLines[0]!.line}: ${r.skippedLines[0]!.message})` : ''}`,
    `  throughput:  ${fmtInt(r.rowsPerSecond)} rows/s, ${r.inputMBPerSecond.toFixed(1)} MB/s in ${r.seconds.toFixed(2)} s`,
    `  batch time:  p50 ${fmtMs(r.batchLatencyMs.p50)}, p90 ${fmtMs(r.batchLatencyMs.p90)}, p99 ${fmtMs(r.batchLatencyMs.p99)}, max ${fmtMs(r.batchLatencyMs.max)}`,
    `  health:      ${r.health.score.toFixed(1)}/100 (${r.health.grade}): ${healthParts(r.health)}`, // to 0.1, as graded
    `  backend:     ${r.backend.kind} (${r.backend.simd}), ${r.workers} worker${r.workers === 1 ? '' : 's'}`,
  ];
  return lines.join('\n') + '\n';
}

/** A path as a person reads it: relative to the working directory when inside it, else absolute. */
function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel === '' || rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

/** The health score's parts, so that a low score says why (docs/METRICS.md has the formula). */
function healthParts(h: Health): string {
  const c = h.components;
  const part = (name: string, x: { points: number; weight: number }) => `${name} ${x.points.toFixed(0)}/${x.weight}`;
  return [part('throughput', c.throughput), part('pool utilization', c.utilization), part('memory', c.memory), part('CPU headroom', c.cpu)].join(', ');
}

/** JSON.stringify's replacer for the options: an int64 padId past 2^53 is a bigint, written as its digits. */
function bigintAsString(_key: string, x: unknown): unknown {
  return typeof x === 'bigint' ? String(x) : x;
}

async function writeJsonAtomically(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify(value, bigintAsString, 2) + '\n');
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new RunError(`cannot write report '${file}': ${describeFsError(e)}`);
  }
}

/**
 * What a failed write of the outputs says: `cannot write 'OUT': no space left on device (ENOSPC)`
 * for a system error (the writer's own error carries it as its cause), else the writer's message.
 */
function writeFailure(out: string, e: unknown): string {
  const cause = (e as { cause?: unknown }).cause;
  const sys = [e, cause].find((x) => typeof (x as NodeJS.ErrnoException | null)?.code === 'string');
  return sys !== undefined ? `cannot write '${out}': ${describeFsError(sys)}` : (e as Error).message;
}

function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const words: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOTDIR: 'a part of the path is not a directory',
    EISDIR: 'is a directory',
    EROFS: 'read-only file system',
    ENOSPC: 'no space left on device',
    EFBIG: 'file too large',
    EDQUOT: 'disk quota exceeded',
    EIO: 'input/output error',
  };
  return err.code && words[err.code] ? `${words[err.code]} (${err.code})` : err.message;
}

const SERVE_FLAGS = {
  port: { type: 'string', short: 'p' },
  host: { type: 'string' },
  workers: { type: 'string' },
  'body-limit': { type: 'string' },
  'max-queue': { type: 'string' },
  warmup: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

async function serveCommand(args: string[]): Promise<number> {
  const { values: v } = parse(args, SERVE_FLAGS, 0);
  if (v.help) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  const port = intFlag('--port', v.port, 0, 65535) ?? 8080;
  const host = v.host ?? '127.0.0.1';
  const workers = intFlag('--workers', v.workers, 1, 64);
  const bodyLimit = intFlag('--body-limit', v['body-limit'], 1, 2 ** 31 - 1);
  const maxQueue = intFlag('--max-queue', v['max-queue'], 1, 2 ** 31 - 1);
  const warmup = intFlag('--warmup', v.warmup, 0, 1_000_000);
  const { startServer, closeOnSignals } = await import('../server/server.js');
  let server;
  try {
    server = await startServer({
      port,
      host,
      ...(bodyLimit !== undefined ? { bodyLimit } : {}),
      ...(warmup !== undefined ? { warmup } : {}),
      pipeline: { ...(workers !== undefined ? { maxWorkers: workers } : {}), ...(maxQueue !== undefined ? { maxQueue } : {}) },
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new RunError(`cannot listen on ${host}:${port}: address already in use`);
    if (err.code === 'EACCES') throw new RunError(`cannot listen on ${host}:${port}: permission denied`);
    throw e;
  }
  process.stderr.write(`dtesn serve: listening on ${server.url} (POST /v1/vectorize, GET /metrics, GET /healthz); Ctrl-C to stop\n`);
  // On SIGTERM/SIGINT: stop accepting, finish in-flight requests, close the pipeline, exit 0 (a
  // second signal exits at once).
  closeOnSignals(server, { onSignal: (signal) => process.stderr.write(`dtesn serve: ${signal}: draining\n`) });
  await new Promise<never>(() => undefined);
  return 0;
}

const BENCH_FLAGS = {
  rounds: { type: 'string' },
  lines: { type: 'string' },
  full: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

async function benchCommand(args: string[]): Promise<number> {
  const { values: v } = parse(args, BENCH_FLAGS, 0);
  if (v.help) {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  const { runBench } = await import('./bench.js');
  return runBench({
    rounds: intFlag('--rounds', v.rounds, 1, 1000) ?? 7,
    lines: intFlag('--lines', v.lines, 1000, 100_000_000) ?? 200_000,
    full: v.full === true,
  });
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'vectorize':
        return await vectorizeCommand(rest);
      case 'serve':
        return await serveCommand(rest);
      case 'bench':
        return await benchCommand(rest);
      case 'worker':
        return await (await import('./queue.js')).workerCommand(rest);
      case '--version':
      case '-v':
        process.stdout.write(`dtesn ${getBackend().version}\n`);
        return 0;
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(HELP);
        return 0;
      case undefined:
        // A usage error: the short usage, on stderr.
        process.stderr.write(USAGE);
        return 2;
      default:
        throw new UsageError(`unknown command '${command}' (vectorize, serve, bench, worker)`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`dtesn ${command ?? ''}: ${e.message}\nRun 'dtesn --help' for usage.\n`);
      return 2;
    }
    if (e instanceof RunError) {
      process.stderr.write(`dtesn ${command}: ${e.message}\n`);
      return 1;
    }
    const err = e as Error;
    process.stderr.write(`dtesn ${command}: ${err.name}: ${err.message}\n`);
    return 1;
  }
}

// Run when executed (as the `dtesn` bin or `node dist/cli/main.js`), not when imported by tests.
// npm links the bin (node_modules/.bin/dtesn -> dist/cli/main.js), so compare real paths.
function isMain(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (isMain()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Interrupted: do not wait for an input that may never end (a pipe still open).
      if (code === 130 || code === 143) process.exit(code);
    },
    (e: unknown) => {
      process.stderr.write(`dtesn: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
