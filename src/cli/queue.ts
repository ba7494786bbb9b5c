/**
 * The `dtesn` commands over BullMQ (src/queue/bullmq.ts), loaded by src/cli/main.ts only when used, so that
 * bullmq and ioredis stay optional:
 *
 *   dtesn vectorize INPUT --queue redis://HOST:PORT --shard-bytes N --out 'DIR/NAME-{shard}.npy'
 *         --manifest FILE [--wait]       the coordinator: cuts INPUT into shards, enqueues one flow
 *   dtesn worker --queue redis://HOST:PORT [--concurrency N] [--workers N] [--metrics-port P]
 *                                        runs shard jobs and `vectorize` request jobs
 *
 * Redis is probed once before anything else with a bounded connection timeout (--connect-timeout),
 * so a wrong or unreachable URL is one line naming it (exit 2 for a URL that is not redis://, 1 for
 * one that does not answer); after that the connections reconnect by themselves (a Redis restart
 * is waited out, jobs resume).
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ParseArgsConfig } from 'node:util';
import type { Redis as RedisClient } from 'ioredis';
import { RunError, UsageError, intFlag, parse } from './args.js';
import type { PipelineConfig } from '../pipeline/pipeline.js';
import type { Dtype, VectorizeOptions, MaskDtype } from '../vectorize/types.js';

type Bull = typeof import('../queue/bullmq.js');

/** bullmq and ioredis, or a usage line saying how to get them (they are optional peer dependencies). */
async function loadQueueModules(): Promise<{ bull: Bull; Redis: typeof import('ioredis').Redis }> {
  try {
    const [bull, ioredis] = await Promise.all([import('../queue/bullmq.js'), import('ioredis')]);
    return { bull, Redis: ioredis.Redis };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_MODULE_NOT_FOUND' && /'(bullmq|ioredis)'/.test(err.message)) {
      throw new RunError('--queue needs the optional peer dependencies bullmq and ioredis: npm install bullmq ioredis');
    }
    throw e;
  }
}

/** A Redis URL as a person may see it: the password hidden. */
function shown(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.href.replace(/\/$/, '');
  } catch {
    return url;
  }
}

/** Checks that `--queue` is a redis:// (or rediss://) URL with a host. */
export function checkQueueUrl(url: string | undefined): string {
  if (url === undefined || url === '') throw new UsageError('--queue redis://HOST:PORT is required');
  let u: URL | null = null;
  try {
    u = new URL(url);
  } catch {
    // not a URL at all
  }
  if (u === null || (u.protocol !== 'redis:' && u.protocol !== 'rediss:') || u.hostname === '') {
    throw new UsageError(`--queue must be a redis:// URL (redis://HOST:PORT), got '${url}'`);
  }
  return url;
}

/**
 * Probes `url` (one connection attempt, at most `timeoutMs`), then returns the connection the
 * queues use: commands wait while Redis is away (BullMQ requires maxRetriesPerRequest: null) and it
 * reconnects every 100 ms .. 2 s.
 */
async function connect(Redis: typeof import('ioredis').Redis, url: string, timeoutMs: number): Promise<RedisClient> {
  // disconnectTimeout: how long disconnect() waits for the server to close its end; ioredis' 2 s
  // default held the process that long after a failed probe.
  const probe = new Redis(url, {
    lazyConnect: true, connectTimeout: timeoutMs, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, disconnectTimeout: 100,
  });
  let last: Error | null = null;
  probe.on('error', (e: Error) => (last = e));
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe.connect().then(() => probe.ping()),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (e) {
    const why = (last as Error | null)?.message ?? (e as Error).message;
    throw new RunError(`cannot reach Redis at ${shown(url)} (--queue): ${why}`);
  } finally {
    clearTimeout(timer);
    probe.disconnect();
  }
  const conn = new Redis(url, { maxRetriesPerRequest: null, connectTimeout: timeoutMs, disconnectTimeout: 100, retryStrategy: (n: number) => Math.min(100 * n, 2000) });
  conn.on('error', () => {}); // reconnects; BullMQ's objects report what matters
  return conn;
}

const MB = 1024 * 1024;
const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');

/** The coordinator's part of the `dtesn vectorize` command line, as cli.ts parsed it. */
export interface QueueVectorizeArgs {
  flags: {
    queue?: string;
    'shard-bytes'?: string;
    manifest?: string;
    wait?: boolean;
    run?: string;
    prefix?: string;
    attempts?: string;
    backoff?: string;
    'connect-timeout'?: string;
    'no-checksums'?: boolean;
    out?: string;
    report?: string;
    workers?: string;
    quiet?: boolean;
  };
  /** The input path (the bundled corpus when none was given); null for stdin. */
  input: string | null;
  format: 'lines' | 'jsonl';
  field: string | undefined;
  onError: 'skip' | 'throw';
  batchSize: number;
  options: VectorizeOptions<Dtype, MaskDtype>;
}

/** `dtesn vectorize INPUT --queue URL ...`: enqueue a run, and with --wait follow it to its end. */
export async function queueVectorize(a: QueueVectorizeArgs): Promise<number> {
  const v = a.flags;
  const url = checkQueueUrl(v.queue);
  if (a.input === null) throw new UsageError('--queue needs an input file every worker can read, not stdin');
  if (v.report !== undefined) throw new UsageError('--report is not used with --queue: the manifest (--manifest) is the report');
  if (v.workers !== undefined) throw new UsageError("--workers is set on each 'dtesn worker' with --queue");
  if (v['shard-bytes'] === undefined) throw new UsageError('--shard-bytes N is required with --queue (about N bytes per shard)');
  const shardBytes = intFlag('--shard-bytes', v['shard-bytes'], 1, Number.MAX_SAFE_INTEGER)!;
  if (v.out === undefined || !v.out.includes('{shard}')) {
    throw new UsageError(`--out must contain {shard} with --queue (one file per shard, e.g. 'out/part-{shard}.npy'), got '${v.out ?? ''}'`);
  }
  if (v.manifest === undefined || v.manifest === '') throw new UsageError('--manifest FILE is required with --queue');
  const attempts = intFlag('--attempts', v.attempts, 1, 1000);
  const backoffMs = intFlag('--backoff', v.backoff, 0, 86_400_000);
  const timeoutMs = intFlag('--connect-timeout', v['connect-timeout'], 1, 600_000) ?? 5000;
  const { bull, Redis } = await loadQueueModules();
  const connection = await connect(Redis, url, timeoutMs);
  const conn = { connection, ...(v.prefix !== undefined ? { prefix: v.prefix } : {}) };
  const say = (s: string) => {
    if (!v.quiet) process.stderr.write(`dtesn vectorize: ${s}\n`);
  };
  try {
    let run;
    try {
      run = await bull.enqueueShards({
        ...conn,
        input: a.input,
        shardBytes,
        out: v.out,
        manifest: v.manifest,
        format: a.format,
        ...(a.field !== undefined ? { field: a.field } : {}),
        onError: a.onError,
        batchSize: a.batchSize,
        options: a.options,
        ...(v.run !== undefined ? { run: v.run } : {}),
        ...(attempts !== undefined ? { attempts } : {}),
        ...(backoffMs !== undefined ? { backoffMs } : {}),
        checksums: v['no-checksums'] !== true,
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT' || err.code === 'EACCES') throw new RunError(`cannot read input '${a.input}': ${err.message}`);
      if (e instanceof TypeError && e.message.startsWith('options.input')) throw new RunError(`cannot read input '${a.input}': not a regular file`);
      if (e instanceof TypeError || e instanceof RangeError) throw new UsageError(e.message.replace(/options\.([A-Za-z]+)/g, (_, k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`));
      throw e;
    }
    const n = run.shards.length;
    const what = run.status === 'added' ? 'enqueued' : run.status === 'exists' ? 'already enqueued (nothing added)' : `resumed: failed shard${run.retried.length === 1 ? '' : 's'} ${run.retried.join(', ')} enqueued again`;
    say(`run ${run.run}: ${n} shard${n === 1 ? '' : 's'} of ${a.input} ${what} on ${shown(url)}`);
    if (!v.wait) {
      say(`workers: dtesn worker --queue ${shown(url)}${v.prefix !== undefined ? ` --prefix ${v.prefix}` : ''}; the manifest is written to ${v.manifest} once every shard is done`);
      process.stdout.write(`${run.run}\n`);
      return 0;
    }
    return await follow(bull, conn, run.run, v.quiet === true);
  } finally {
    connection.disconnect();
  }
}

/** --wait: a progress bar on a terminal, then the run's summary (exit 0) or its failed shards (exit 1). */
async function follow(bull: Bull, conn: { connection: RedisClient; prefix?: string }, run: string, quiet: boolean): Promise<number> {
  const interrupted = new AbortController();
  const onSignal = () => interrupted.abort(new Error('interrupted'));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const bar = !quiet && process.stderr.isTTY ? await progressBar() : null;
  const t0 = performance.now();
  try {
    const s = await bull.waitForRun({ ...conn, run, signal: interrupted.signal, onProgress: (p) => bar?.update(p) });
    bar?.stop();
    const sec = (performance.now() - t0) / 1000;
    if (!quiet) {
      process.stdout.write(
        `dtesn vectorize: run ${run} done: ${fmtInt(s.rows)} rows in ${s.shards} shard${s.shards === 1 ? '' : 's'}, ${fmtInt(s.skipped)} malformed line${s.skipped === 1 ? '' : 's'} skipped\n` +
          `  manifest:    ${s.manifest}\n` +
          `  input:       ${(s.inputBytes / MB).toFixed(1)} MB, output ${(s.outputBytes / MB).toFixed(1)} MB; waited ${sec.toFixed(2)} s\n`,
      );
    }
    return 0;
  } catch (e) {
    bar?.stop();
    if (interrupted.signal.aborted) {
      process.stderr.write(`dtesn vectorize: interrupted; run ${run} goes on in the queue (the same command follows it again)\n`);
      return 130;
    }
    if (e instanceof bull.ShardRunError) throw new RunError(e.message);
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function progressBar(): Promise<{ update(p: import('../queue/bullmq.js').RunProgress): void; stop(): void }> {
  const { default: cliProgress } = await import('cli-progress');
  const bar = new cliProgress.SingleBar(
    {
      format: ' {bar} {percentage}% | {done}/{shards} shards | {rows} rows | {mb}/{totalMb} MB | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
      etaBuffer: 20,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(p) {
      const payload = { done: p.shardsDone, shards: p.shards, rows: fmtInt(p.rows), mb: (p.bytes / MB).toFixed(1), totalMb: (p.inputBytes / MB).toFixed(1) };
      if (!started) {
        if (p.bytes === 0 && p.shardsDone === 0) return; // no rate yet: cli-progress would show an ETA of 'NFs'
        bar.start(Math.max(p.inputBytes, 1), 0, payload);
        started = true;
      }
      bar.update(Math.min(p.bytes, p.inputBytes), payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

// -----------------------------------------------------------------------------------------------

const WORKER_FLAGS = {
  queue: { type: 'string' },
  prefix: { type: 'string' },
  concurrency: { type: 'string' },
  'request-concurrency': { type: 'string' },
  'no-requests': { type: 'boolean' },
  workers: { type: 'string' },
  handler: { type: 'string' },
  'metrics-port': { type: 'string' },
  'metrics-host': { type: 'string' },
  'lock-duration': { type: 'string' },
  'stalled-interval': { type: 'string' },
  'connect-timeout': { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const WORKER_HELP = `dtesn worker --queue redis://HOST:PORT [options]: runs the jobs of 'dtesn vectorize --queue'
(shards of a file, every worker reading the same path: a shared file system) and 'vectorize'
request jobs (vectorizeViaQueue), until SIGTERM/SIGINT (which let the jobs in progress finish).
  --concurrency N          [1] shard jobs at once in this process
  --request-concurrency N  [64] vectorize jobs at once (they share batches through pipeline.submit)
  --no-requests            take no vectorize jobs
  --workers N              [available cores] worker threads of the pipeline
  --handler MODULE         a module whose default export is the pipeline's handler(batch, signal)
  --metrics-port P         serve /metrics (Prometheus) on P (0: any free port)
  --metrics-host H         [127.0.0.1]
  --prefix P               [bull] BullMQ's key prefix (must match the coordinator's)
  --lock-duration MS       [30000] a job's lock, renewed at half of it while the job runs
  --stalled-interval MS    [30000] how often jobs of dead workers are looked for
  --connect-timeout MS     [5000] for the first connection to Redis
  --quiet                  no log lines
`;

/** `dtesn worker`. */
export async function workerCommand(args: string[]): Promise<number> {
  const { values: v } = parse(args, WORKER_FLAGS, 0);
  if (v.help) {
    process.stdout.write(WORKER_HELP);
    return 0;
  }
  const url = checkQueueUrl(v.queue);
  const concurrency = intFlag('--concurrency', v.concurrency, 1, 1024) ?? 1;
  const requestConcurrency = intFlag('--request-concurrency', v['request-concurrency'], 1, 100_000) ?? 64;
  const workers = intFlag('--workers', v.workers, 1, 64);
  const metricsPort = intFlag('--metrics-port', v['metrics-port'], 0, 65535);
  const metricsHost = v['metrics-host'] ?? '127.0.0.1';
  if (v['metrics-host'] !== undefined && metricsPort === undefined) throw new UsageError('--metrics-host is only valid with --metrics-port');
  const lockDuration = intFlag('--lock-duration', v['lock-duration'], 100, 86_400_000);
  const stalledInterval = intFlag('--stalled-interval', v['stalled-interval'], 100, 86_400_000);
  const timeoutMs = intFlag('--connect-timeout', v['connect-timeout'], 1, 600_000) ?? 5000;
  const config: PipelineConfig = workers !== undefined ? { maxWorkers: workers } : {};
  if (v.handler !== undefined) config.handler = await loadHandler(v.handler);
  const quiet = v.quiet === true;
  const log = (s: string) => {
    if (!quiet) process.stderr.write(`dtesn worker: ${s}\n`);
  };
  const { bull, Redis } = await loadQueueModules();
  const connection = await connect(Redis, url, timeoutMs);
  const errors = new Map<string, number>();
  const worker = bull.startWorker({
    connection,
    ...(v.prefix !== undefined ? { prefix: v.prefix } : {}),
    pipeline: config,
    concurrency,
    requestConcurrency,
    requests: v['no-requests'] !== true,
    ...(lockDuration !== undefined ? { lockDuration } : {}),
    ...(stalledInterval !== undefined ? { stalledInterval } : {}),
    onEvent: (e) => {
      switch (e.type) {
        case 'shard-started':
          return log(`run ${e.run}: shard ${e.index}/${e.shards} (bytes ${e.range[0]}-${e.range[1]}) started, attempt ${e.attempt}`);
        case 'shard-completed':
          return log(`run ${e.run}: shard ${e.index} done: ${fmtInt(e.rows)} rows in ${e.seconds.toFixed(2)} s`);
        case 'shard-failed':
          return log(`run ${e.run}: shard ${e.index} failed${e.final ? ' for good' : ' (will retry)'}: ${e.error}`);
        case 'run-completed':
          return log(`run ${e.run} done: ${fmtInt(e.rows)} rows, manifest ${e.manifest}`);
        case 'run-failed':
          return log(`run ${e.run} failed: ${e.error}`);
        case 'error': {
          // Connection trouble repeats every reconnect: once per message per 10 s.
          const now = Date.now();
          if ((errors.get(e.error.message) ?? 0) > now - 10_000) return;
          errors.set(e.error.message, now);
          return log(`${e.error.message} (reconnecting)`);
        }
      }
    },
  });
  let server: Server | null = null;
  if (metricsPort !== undefined) {
    try {
      server = await serveMetrics(worker.registry, metricsPort, metricsHost);
    } catch (e) {
      await worker.close();
      connection.disconnect();
      throw new RunError(`cannot serve metrics on ${metricsHost}:${metricsPort}: ${(e as Error).message}`);
    }
  }
  const addr = server?.address();
  const metricsAt = addr && typeof addr === 'object' ? `; metrics on http://${metricsHost}:${addr.port}/metrics` : '';
  log(`ready on ${shown(url)} (${bull.SHARD_QUEUE} x${concurrency}${v['no-requests'] ? '' : `, ${bull.REQUEST_QUEUE} x${requestConcurrency}`})${metricsAt}`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) process.exit(130); // a second signal: now
      stopping = true;
      log(`${signal}: finishing the jobs in progress`);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await worker.close();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  connection.disconnect();
  return 0;
}

async function loadHandler(spec: string): Promise<NonNullable<PipelineConfig['handler']>> {
  let mod: { default?: unknown; handler?: unknown };
  try {
    mod = (await import(pathToFileURL(path.resolve(spec)).href)) as typeof mod;
  } catch (e) {
    throw new RunError(`cannot load --handler '${spec}': ${(e as Error).message}`);
  }
  const f = mod.default ?? mod.handler;
  if (typeof f !== 'function') throw new UsageError(`--handler '${spec}' must export a function (default export or 'handler'), got ${typeof f}`);
  return f as NonNullable<PipelineConfig['handler']>;
}

function serveMetrics(registry: import('prom-client').Registry, port: number, host: string): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url !== '/metrics' || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
