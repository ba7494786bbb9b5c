/**
 * Sharded runs and queued requests over BullMQ (src/queue/bullmq.ts, src/cli/queue.ts) on a real Redis
 * (Debian's redis-server, test/fixtures/redis.ts), with `dtesn worker` and `dtesn vectorize
 * --queue` as child processes, as a user runs them:
 *
 * - three workers, one SIGKILLed while it holds a shard: the run completes, every shard's files
 *   are byte-equal to a single-process vectorizeFile of its range, all shards together are one pass
 *   over the file (rows, line numbers, skipped lines); adding the finished run again is a no-op;
 * - a poison shard (its output path is a directory) fails its attempts, ends in BullMQ's failed
 *   set, the coordinator exits 1 naming it; once fixed, the same command resumes and runs only it;
 *   an input that vanished fails every shard, each named;
 * - Redis stopped and restarted mid-run on the same port and data: workers and coordinator
 *   reconnect, the run completes, nothing lost or doubled;
 * - a shard running several lock durations is taken once (its lock renewed, the loop never blocked);
 * - vectorize jobs through pipeline.submit (shared batches), answers equal to POST /v1/vectorize's;
 * - bad command lines and unreachable URLs.
 *
 * The slow worker of the fault tests runs the JavaScript fallback (DTESN_BACKEND=js, byte-identical
 * output, slower), so that its shards take long enough to be caught in the middle.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { type AddressInfo, type Socket, createServer } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_QUEUE, SHARD_QUEUE, type Manifest, enqueueShards, startWorker, vectorizeViaQueue, waitForRun } from '../src/queue/bullmq.js';
import { vectorize } from '../src/index.js';
import { createPipeline } from '../src/pipeline/pipeline.js';
import type { FileOptions } from '../src/io/stream.js';
import { openTensorWriter, tensorWriterOptionsOf } from '../src/tensors/tensor-file.js';
import type { Dtype, MaskDtype, VectorizeOptions } from '../src/vectorize/types.js';
import { readNpy } from './fixtures/npy.js';
import { type Proc, RedisServer, dtesn } from './fixtures/redis.js';

const CORPUS = fileURLToPath(new URL('../samples/udhr.jsonl', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dtesn-queue-'));
let redis: RedisServer;
let input: string; // ~3 MB: the UDHR corpus with a BOM, CRLF lines, blank and malformed lines
let big: string; // ~24 MB: it six times over
beforeAll(async () => {
  redis = await RedisServer.start();
  const lines = readFileSync(CORPUS, 'utf8').split('\n').filter((l) => l.length > 0);
  const parts = lines.map((l, i) => (i % 997 === 5 ? '{"lang": "xx", "text": broken}\n' : i % 13 === 0 ? `${l}\r\n` : i % 101 === 0 ? `${l}\n\n` : `${l}\n`));
  input = join(dir, 'udhr-mixed.jsonl');
  writeFileSync(input, '\uFEFF' + parts.join(''));
  big = join(dir, 'udhr-x6.jsonl');
  writeFileSync(big, parts.join('').repeat(6));
}, 30_000);
afterAll(async () => {
  await redis?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const procs: Proc[] = [];
const spawnCli = (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const p = dtesn(args, env);
  procs.push(p);
  return p;
};
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
});

let serial = 0;
const newPrefix = () => `t${process.pid}x${++serial}`;
const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

/** `dtesn worker` on `prefix`, ready (its 'ready' line seen); `metrics`: the port of its /metrics. */
async function worker(prefix: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ proc: Proc; metrics: number | null }> {
  const proc = spawnCli(['worker', '--queue', redis.url, '--prefix', prefix, '--workers', '1', ...extra], env);
  const m = await proc.waitFor(/ready on .*$/m);
  const port = /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(m[0]);
  return { proc, metrics: port ? Number(port[1]) : null };
}

async function metric(port: number, line: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`^${line.source} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

const VEC: VectorizeOptions<Dtype, MaskDtype> = { maxLength: 96 };
const VEC_FLAGS = ['--max-length', '96'];

/** What one process gives for `range` of `file`: the bytes of each .npy file vectorizeFile + the tensor writer make. */
async function expectedShard(file: string, range: [number, number], tag: string): Promise<Buffer[]> {
  const p = createPipeline({ maxWorkers: 1 });
  try {
    const out = join(dir, `expected-${tag}.npy`);
    const w = await openTensorWriter(out, tensorWriterOptionsOf(VEC));
    const o: FileOptions<Dtype, MaskDtype> = { ...VEC, format: 'jsonl', range, reuseBuffers: true };
    for await (const b of p.vectorizeFile(file, o)) await w.write(b);
    const done = await w.finish();
    const bytes = done.files.map((f) => readFileSync(f));
    for (const f of done.files) unlinkSync(f);
    return bytes;
  } finally {
    await p.close();
  }
}

/** Every row's kept ids and its line, and the skipped lines, of one pass over `file`. */
async function wholePass(file: string) {
  const p = createPipeline({ maxWorkers: 1 });
  const rows: number[][] = [];
  const lines: number[] = [];
  const skipped: Array<{ line: number; message: string }> = [];
  try {
    for await (const b of p.vectorizeFile(file, { ...VEC, format: 'jsonl' })) {
      for (let i = 0; i < b.rows; i++) rows.push(Array.from(b.ids.subarray(i * b.width, i * b.width + b.lengths[i]!) as ArrayLike<number | bigint>, Number));
      lines.push(...b.lines);
      skipped.push(...b.skipped);
    }
  } finally {
    await p.close();
  }
  return { rows, lines, skipped };
}

/** Checks a finished run's manifest and files against single-process passes; returns the manifest. */
async function checkRun(manifestPath: string, file: string): Promise<Manifest> {
  const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  const base = join(manifestPath, '..');
  expect(m.schema).toBe('dtesn-shards-manifest/1');
  expect(m.shards.map((s) => s.index)).toEqual(m.shards.map((_, i) => i));
  const whole = await wholePass(file);
  const rows: number[][] = [];
  for (const s of m.shards) {
    const want = await expectedShard(file, s.range, String(s.index));
    expect(s.files.length).toBe(3);
    s.files.forEach((f, k) => {
      const got = readFileSync(join(base, f.path));
      expect(got.equals(want[k]!), `shard ${s.index}, ${f.path}`).toBe(true);
      expect(f.sha256).toBe(sha256(join(base, f.path)));
      expect(f.bytes).toBe(got.length);
    });
    const ids = readNpy(join(base, s.files[0]!.path));
    const lengths = readNpy(join(base, s.files[2]!.path));
    expect(ids.shape).toEqual([s.rows, s.width]);
    const idv = new Int32Array(ids.data.buffer, ids.data.byteOffset, ids.data.length / 4);
    const lv = new Int32Array(lengths.data.buffer, lengths.data.byteOffset, lengths.data.length / 4);
    for (let i = 0; i < s.rows; i++) rows.push(Array.from(idv.subarray(i * s.width, i * s.width + lv[i]!)));
  }
  // All shards together: one pass over the file, nothing lost or doubled.
  expect(rows.length).toBe(whole.rows.length);
  expect(rows).toEqual(whole.rows);
  expect(m.rows).toBe(whole.rows.length);
  // Lines and the kind of fault; the wording after it is the reader's (workers under
  // DTESN_BACKEND=js read with JSON.parse, whose messages differ from the native reader's).
  const kind = (l: { line: number; message: string }) => ({ line: l.line, kind: l.message.split(':')[0] });
  expect(m.shards.flatMap((s) => s.skippedLines).map(kind)).toEqual(whole.skipped.map(kind));
  expect(m.skipped).toBe(whole.skipped.length);
  expect(m.shards.reduce((a, s) => a + s.bytes, 0)).toBe(statSync(file).size);
  for (let k = 1; k < m.shards.length; k++) expect(m.shards[k]!.firstLine).toBe(m.shards[k - 1]!.firstLine + m.shards[k - 1]!.lines);
  expect(m.lines).toBe(m.shards.at(-1)!.firstLine + m.shards.at(-1)!.lines - 1);
  return m;
}

function coordinator(prefix: string, file: string, out: string, manifest: string, extra: string[] = []): Proc {
  return spawnCli(['vectorize', file, '--queue', redis.url, '--prefix', prefix, '--out', out, '--manifest', manifest, ...VEC_FLAGS, '--wait', ...extra]);
}

/** A job of the shard queue, and its state. */
async function shardJob(prefix: string, id: string): Promise<{ job: Job; state: string }> {
  const q = new Queue(SHARD_QUEUE, { connection: { host: '127.0.0.1', port: redis.port }, prefix });
  try {
    const job = await Job.fromId(q, id);
    if (!job) throw new Error(`no job ${id}`);
    return { job, state: await job.getState() };
  } finally {
    await q.close();
  }
}

describe('sharded runs with dtesn worker processes', () => {
  it('three workers, one SIGKILLed while it holds a shard: the run completes, each shard equals vectorizeFile of its range, together one pass; adding it again is a no-op', { timeout: 90_000 }, async () => {
    const prefix = newPrefix();
    const flags = ['--lock-duration', '1000', '--stalled-interval', '500'];
    const victim = await worker(prefix, flags, { DTESN_BACKEND: 'js' });
    const b = await worker(prefix, [...flags, '--metrics-port', '0']);
    const c = await worker(prefix, flags);
    const out = join(dir, 'run1');
    const manifest = join(out, 'manifest.json');
    // 2 MB shards in batches of 5 rows: tens of ms each on the victim's JavaScript fallback, so
    // that it is killed in the middle of the one it announced.
    const runArgs = ['--shard-bytes', '2000000', '--batch-size', '5'];
    const shards = Math.ceil(statSync(big).size / 2_000_000);
    const coord = coordinator(prefix, big, join(out, 'part-{shard}.npy'), manifest, runArgs);
    const first = await victim.proc.waitFor(/shard (\d+)\/\d+ \(bytes \d+-\d+\) started/);
    victim.proc.child.kill('SIGKILL');
    await victim.proc.exited;
    const held = Number(first[1]);
    expect(victim.proc.stderr).not.toMatch(new RegExp(`shard ${held} done`)); // killed while it held it
    expect(await coord.exited).toEqual({ code: 0, signal: null });
    const run = /run (run-[0-9a-f]{16})/.exec(coord.stderr)![1]!;
    expect(coord.stdout).toMatch(new RegExp(`run ${run} done: [\\d,]+ rows in ${shards} shards`));
    const m = await checkRun(manifest, big);
    expect(m.shards.length).toBe(shards);
    expect(m.shards.every((s) => s.width <= 96)).toBe(true);
    // The killed worker's shard was taken again (its lock expired) and finished by another.
    const { job, state } = await shardJob(prefix, `${run}.${held}`);
    expect(job.attemptsStarted).toBeGreaterThanOrEqual(2);
    expect(job.processedBy).not.toBe(`dtesn-${hostname()}-${victim.proc.pid}`);
    expect(state).toBe('completed');

    // Adding the finished run again: nothing is added, nothing runs, nothing is rewritten.
    const jobsBefore = await metric(b.metrics!, /dtesn_bullmq_jobs_total\{kind="shard",outcome="completed"\}/);
    const mtimes = [manifest, ...m.shards.map((s) => join(out, s.files[0]!.path))].map((f) => statSync(f).mtimeMs);
    const started = async () => Promise.all(m.shards.map(async (s) => (await shardJob(prefix, `${run}.${s.index}`)).job.attemptsStarted));
    const startedBefore = await started();
    const again = coordinator(prefix, big, join(out, 'part-{shard}.npy'), manifest, runArgs);
    expect(await again.exited).toEqual({ code: 0, signal: null });
    expect(again.stderr).toContain(`run ${run}: ${shards} shards of ${big} already enqueued (nothing added)`);
    await new Promise((r) => setTimeout(r, 300));
    expect(await metric(b.metrics!, /dtesn_bullmq_jobs_total\{kind="shard",outcome="completed"\}/)).toBe(jobsBefore);
    expect([manifest, ...m.shards.map((s) => join(out, s.files[0]!.path))].map((f) => statSync(f).mtimeMs)).toEqual(mtimes);
    expect(await started()).toEqual(startedBefore);
    // The metrics name the work done (rows of the shards this worker finished) and pass promtool.
    expect(await metric(b.metrics!, /dtesn_bullmq_shard_rows_total/)).toBeGreaterThan(0);
    const exposition = await (await fetch(`http://127.0.0.1:${b.metrics}/metrics`)).text();
    expect(exposition).toMatch(/^dtesn_items_processed_total \d+$/m); // the pipeline's own metrics too
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
    if (promtool.error) throw new Error('promtool not found: `npm run test:tools` installs it (Debian package prometheus)');
    expect(`${promtool.stdout}${promtool.stderr}`.trim()).toBe('');
    await Promise.all([b.proc.stop(), c.proc.stop()]);
    expect(b.proc.stderr).toMatch(/SIGTERM: finishing the jobs in progress/);
    expect((await b.proc.exited).code).toBe(0);
  });

  it('a poison shard fails its attempts, ends in the failed set and the coordinator exits 1 naming it; fixed, the same command runs only it; a vanished input fails every shard', { timeout: 60_000 }, async () => {
    const prefix = newPrefix();
    await worker(prefix);
    const out = join(dir, 'run2');
    mkdirSync(join(out, 'part-2.npy'), { recursive: true }); // shard 2 cannot write its output
    const manifest = join(out, 'manifest.json');
    const args = ['--shard-bytes', '800000', '--attempts', '2', '--backoff', '20'];
    const coord = coordinator(prefix, input, join(out, 'part-{shard}.npy'), manifest, args);
    expect((await coord.exited).code).toBe(1);
    const run = /run (run-[0-9a-f]{16})/.exec(coord.stderr)![1]!;
    expect(coord.stderr).toMatch(new RegExp(`run ${run}: 1 shard failed: shard 2 \\(bytes 1600000-2400000\\): cannot write .*part-2\\.npy: it is a directory\n`));
    const failed = await shardJob(prefix, `${run}.2`);
    expect(failed.state).toBe('failed');
    expect(failed.job.attemptsMade).toBe(2);
    const { job: done0, state: state0 } = await shardJob(prefix, `${run}.0`);
    expect(state0).toBe('completed');
    expect(() => statSync(manifest)).toThrow(); // no manifest for a failed run

    rmdirSync(join(out, 'part-2.npy'));
    const resumed = coordinator(prefix, input, join(out, 'part-{shard}.npy'), manifest, args);
    expect(await resumed.exited).toEqual({ code: 0, signal: null });
    expect(resumed.stderr).toContain(`resumed: failed shard 2 enqueued again`);
    await checkRun(manifest, input);
    const { job: again0 } = await shardJob(prefix, `${run}.0`);
    expect([again0.attemptsStarted, again0.finishedOn]).toEqual([1, done0.finishedOn]); // not run again

    // An input that vanished after the run was enqueued: every shard fails, each one named.
    const prefix2 = newPrefix();
    const gone = join(dir, 'vanishing.jsonl');
    writeFileSync(gone, readFileSync(input).subarray(0, 900_000));
    const coord2 = coordinator(prefix2, gone, join(dir, 'run3', 'p-{shard}.npy'), join(dir, 'run3', 'm.json'), ['--shard-bytes', '300000', '--attempts', '2', '--backoff', '20']);
    await coord2.waitFor(/3 shards of .* enqueued/);
    unlinkSync(gone);
    await worker(prefix2);
    expect((await coord2.exited).code).toBe(1);
    expect(coord2.stderr).toMatch(/3 shards failed: shard 0 \(bytes 0-300000\): .*ENOENT.*; shard 1 \(bytes 300000-600000\): .*ENOENT.*; shard 2 \(bytes 600000-900000\): .*ENOENT/);
  });

  it("onError 'throw': a shard with a malformed line fails at once, without retries, naming the absolute line and the shard", { timeout: 60_000 }, async () => {
    const prefix = newPrefix();
    await worker(prefix);
    const out = join(dir, 'run-throw');
    const coord = coordinator(prefix, input, join(out, 'p-{shard}.npy'), join(out, 'm.json'), ['--shard-bytes', '1000000', '--on-error', 'throw', '--attempts', '3', '--backoff', '20']);
    expect((await coord.exited).code).toBe(1);
    const run = /run (run-[0-9a-f]{16})/.exec(coord.stderr)![1]!;
    // Each shard's first malformed line, by its number in the whole file.
    const { skipped } = await wholePass(input);
    const sizes = [0, 1e6, 2e6, 3e6, statSync(input).size];
    const starts = readFileSync(input).reduce<number[]>((a, b, i) => (b === 10 ? (a.push(i + 1), a) : a), [0]);
    const shardOf = (line: number) => sizes.findIndex((_, k) => starts[line - 1]! < sizes[k + 1]!);
    const first = new Map<number, number>();
    for (const s of skipped) if (!first.has(shardOf(s.line))) first.set(shardOf(s.line), s.line);
    expect(first.size).toBeGreaterThan(1);
    for (const [k, line] of first) {
      expect(coord.stderr).toContain(`shard ${k} (bytes ${sizes[k]}-${sizes[k + 1]}): ${input}:${line}: invalid JSON`);
      const { job, state } = await shardJob(prefix, `${run}.${k}`);
      expect([state, job.attemptsMade]).toEqual(['failed', 1]); // UnrecoverableError: no retry
    }
  });

  it('Redis stopped and restarted mid-run (same port, same data): workers and coordinator reconnect, the run completes, nothing lost or doubled', { timeout: 90_000 }, async () => {
    const prefix = newPrefix();
    const flags = ['--lock-duration', '3000', '--stalled-interval', '1000'];
    const w1 = await worker(prefix, flags, { DTESN_BACKEND: 'js' });
    const w2 = await worker(prefix, flags, { DTESN_BACKEND: 'js' });
    const out = join(dir, 'run4');
    const manifest = join(out, 'manifest.json');
    const coord = coordinator(prefix, big, join(out, 'part-{shard}.npy'), manifest, ['--shard-bytes', '500000']);
    const shards = Math.ceil(statSync(big).size / 500_000);
    const countDone = () => (w1.proc.stderr + w2.proc.stderr).match(/ done: /g)?.length ?? 0;
    await w1.proc.waitFor(/shard \d+\/\d+ .* started/); // work in progress, most shards still waiting
    const pid = redis.pid;
    await redis.stop();
    expect(countDone()).toBeLessThan(shards - 2); // without Redis no worker can take another shard
    await new Promise((r) => setTimeout(r, 300));
    await redis.start();
    expect(redis.pid).not.toBe(pid);
    expect(await coord.exited).toEqual({ code: 0, signal: null });
    const m = await checkRun(manifest, big);
    expect(m.shards.length).toBe(shards);
  });

  it('a shard running several lock durations is taken once: its lock is renewed while it runs', { timeout: 60_000 }, async () => {
    const prefix = newPrefix();
    // The lock must be short next to the shard's run time (1-2 s depending on the CPU), so that
    // outlasting it twice is certain and shows the renewal, not luck.
    const lockMs = 250;
    const flags = ['--lock-duration', String(lockMs), '--stalled-interval', '100'];
    const slow = await worker(prefix, flags, { DTESN_BACKEND: 'js' });
    const out = join(dir, 'run5');
    // One shard of 72 MB in batches of 5 rows on the JavaScript fallback: 1-2 s.
    const huge = join(dir, 'udhr-x24.jsonl');
    writeFileSync(huge, Buffer.concat(Array.from({ length: 4 }, () => readFileSync(big))));
    const coord = spawnCli(['vectorize', huge, '--queue', redis.url, '--prefix', prefix, '--out', join(out, 'one-{shard}.npy'), '--manifest', join(out, 'manifest.json'),
      '--max-length', '8', '--batch-size', '5', '--shard-bytes', String(statSync(huge).size), '--wait', '--no-checksums']);
    await slow.proc.waitFor(/shard 0\/1 .* started/);
    // (--no-checksums: the manifest says so, and no file is read back.)
    const other = await worker(prefix, flags); // would take the shard if its lock expired
    expect(await coord.exited).toEqual({ code: 0, signal: null });
    const run = /run (run-[0-9a-f]{16})/.exec(coord.stderr)![1]!;
    const seconds = Number(/shard 0 done: [\d,]+ rows in ([\d.]+) s/.exec(slow.proc.stderr)![1]);
    expect(seconds).toBeGreaterThan((2 * lockMs) / 1000); // it did outlast its lock
    const { job } = await shardJob(prefix, `${run}.0`);
    expect([job.attemptsStarted, job.stalledCounter, job.attemptsMade]).toEqual([1, 0, 1]); // one start, never stalled, one attempt made (the successful one)
    expect(slow.proc.stderr.match(/shard 0\/1 .* started/g)).toHaveLength(1);
    expect(other.proc.stderr).not.toMatch(/started/);
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.rows).toBe(4 * (await wholePass(big)).rows.length);
    expect([m.checksums, ...m.shards[0]!.files.map((f) => f.sha256)]).toEqual(['none', null, null, null]);
    unlinkSync(huge);
  });
});

describe('vectorize request jobs', () => {
  it('run through pipeline.submit on a worker: answers equal POST /v1/vectorize, concurrent jobs share batches; bad options fail once with the library message', { timeout: 30_000 }, async () => {
    const prefix = newPrefix();
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const w = startWorker({ connection, prefix, pipeline: { maxWorkers: 1 }, requestConcurrency: 64 });
    const queue = new Queue(REQUEST_QUEUE, { connection, prefix });
    try {
      const lines = readFileSync(CORPUS, 'utf8').split('\n').slice(0, 200).map((l) => (JSON.parse(l) as { text: string }).text);
      const o = { encoding: 'byt5', maxLength: 24 } as const;
      const answers = await Promise.all(lines.map((t, i) => vectorizeViaQueue(queue, [t, lines[(i + 1) % lines.length]!], o)));
      answers.forEach((a, i) => {
        const b = vectorize([lines[i]!, lines[(i + 1) % lines.length]!], o);
        const rows = (x: ArrayLike<number>) => [0, 1].map((r) => Array.from(x).slice(r * b.width, (r + 1) * b.width));
        expect(a).toEqual({ rows: 2, width: b.width, ids: rows(b.ids), attentionMask: rows(b.attentionMask), lengths: Array.from(b.lengths) });
      });
      const m = w.pipeline.metrics();
      expect(m.batching.batches).toBeLessThan(lines.length); // requests shared batches
      const bad = await vectorizeViaQueue(queue, ['x'], { maxLength: 0 }).then(() => null, (e: Error) => e);
      expect(bad?.message).toBe('options.maxLength must be an integer >= 1, got 0');
      const badTexts = await vectorizeViaQueue(queue, [42 as unknown as string]).then(() => null, (e: Error) => e);
      expect(badTexts?.message).toBe('texts[0] must be a string, got number');
      const failed = await queue.getFailed();
      expect(failed.map((j) => j.attemptsMade).sort()).toEqual([1, 1]);
      await expect(vectorizeViaQueue(queue, 'x' as unknown as string[])).rejects.toThrow(new TypeError('texts must be an array of strings, got string'));
    } finally {
      await queue.close();
      await w.close();
      connection.disconnect();
    }
  });

  it('with a handler pipeline: each job gets its rows\' results as { rows, results }', { timeout: 30_000 }, async () => {
    const prefix = newPrefix();
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const w = startWorker({
      connection, prefix, requests: true,
      pipeline: { maxWorkers: 1, handler: async (b) => Array.from(b.lengths, (n, i) => ({ row: i, tokens: n })) },
    });
    const queue = new Queue(REQUEST_QUEUE, { connection, prefix });
    try {
      expect(await vectorizeViaQueue(queue, ['ab', 'wörld'])).toEqual({ rows: 2, results: [{ row: 0, tokens: 2 }, { row: 1, tokens: 5 }] });
    } finally {
      await queue.close();
      await w.close();
      connection.disconnect();
    }
  });
});

describe('in code', () => {
  it("enqueueShards + startWorker + waitForRun: progress reported, padding 'max-length' gives every shard one width", { timeout: 30_000 }, async () => {
    const prefix = newPrefix();
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const w = startWorker({ connection, prefix, pipeline: { maxWorkers: 1 }, requests: false });
    try {
      const out = join(dir, 'lib-run');
      const run = await enqueueShards({
        connection, prefix, input, shardBytes: 1_000_000, out: join(out, 'p-{shard}.safetensors'), manifest: join(out, 'm.json'),
        options: { maxLength: 16, padding: 'max-length', dtype: 'uint16', encoding: 'utf8' },
      });
      expect(run.status).toBe('added');
      const seen: number[] = [];
      const summary = await waitForRun({ connection, prefix, run: run.run, onProgress: (p) => seen.push(p.shardsDone) });
      expect(summary.shards).toBe(4);
      expect(seen.at(-1)).toBe(4);
      expect(seen).toEqual([...seen].sort((a, b) => a - b)); // shards done never go back
      const m = JSON.parse(readFileSync(join(out, 'm.json'), 'utf8')) as Manifest;
      expect([m.widths, m.dtype, m.padding]).toEqual(['uniform', 'uint16', 'max-length']);
      expect(m.shards.map((x) => [x.width, x.dtype, x.files.length])).toEqual(Array(4).fill([16, 'uint16', 1]));
      expect(m.shards.map((x) => x.files[0]!.path)).toEqual(['p-0.safetensors', 'p-1.safetensors', 'p-2.safetensors', 'p-3.safetensors']);
      expect(summary.rows).toBe((await wholePass(input)).rows.length);
    } finally {
      await w.close();
      connection.disconnect();
    }
  });

  it('dtesn worker --handler MODULE: request jobs answer { rows, results } from the handler', { timeout: 30_000 }, async () => {
    const prefix = newPrefix();
    const handler = join(dir, 'handler.mjs');
    writeFileSync(handler, 'export default async (batch) => Array.from(batch.lengths, (n) => ({ tokens: n }));\n');
    await worker(prefix, ['--handler', handler]);
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(REQUEST_QUEUE, { connection, prefix });
    try {
      expect(await vectorizeViaQueue(queue, ['abc', '😀'], { encoding: 'utf8' })).toEqual({ rows: 2, results: [{ tokens: 3 }, { tokens: 4 }] });
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });
});

describe('bad input', () => {
  const run = (args: string[]) => {
    const p = spawnCli(args);
    return p.exited.then((r) => ({ ...r, stderr: p.stderr }));
  };
  const out = () => join(dir, 'bad', 'p-{shard}.npy');

  it('command lines: a --queue that is not redis://, --shard-bytes not a positive integer, --out without {shard}, coordinator flags without --queue (exit 2, naming the flag)', async () => {
    const base = ['vectorize', input, '--manifest', join(dir, 'bad', 'm.json')];
    const cases: Array<[string[], RegExp]> = [
      [[...base, '--queue', 'http://127.0.0.1:6379', '--shard-bytes', '1000', '--out', out()], /--queue must be a redis:\/\/ URL \(redis:\/\/HOST:PORT\), got 'http:\/\/127\.0\.0\.1:6379'/],
      [[...base, '--queue', 'localhost:6379', '--shard-bytes', '1000', '--out', out()], /--queue must be a redis:\/\/ URL/],
      [[...base, '--queue', redis.url, '--shard-bytes', '0', '--out', out()], /--shard-bytes must be an integer in \[1, 9007199254740991\], got '0'/],
      [[...base, '--queue', redis.url, '--shard-bytes', '64MB', '--out', out()], /--shard-bytes must be an integer in \[1, \d+\], got '64MB'/],
      [[...base, '--queue', redis.url, '--out', out()], /--shard-bytes N is required with --queue/],
      [[...base, '--queue', redis.url, '--shard-bytes', '1000', '--out', join(dir, 'bad', 'p.npy')], /--out must contain \{shard\} with --queue/],
      [['vectorize', input, '--queue', redis.url, '--shard-bytes', '1000', '--out', out()], /--manifest FILE is required with --queue/],
      [['vectorize', '-', '--queue', redis.url, '--shard-bytes', '1000', '--out', out(), '--manifest', 'm.json'], /--queue needs an input file every worker can read, not stdin/],
      [['vectorize', input, '--shard-bytes', '1000', '--out', join(dir, 'bad', 'x.npy')], /--shard-bytes is only valid with --queue/],
      [[...base, '--queue', redis.url, '--shard-bytes', '1000', '--out', out(), '--run', 'a.b'], /--run must be 1-128 letters, digits, '_' or '-', not only digits, got 'a\.b'/],
      [['worker'], /--queue redis:\/\/HOST:PORT is required/],
      [['worker', '--queue', 'redis://'], /--queue must be a redis:\/\/ URL/],
      [['worker', '--queue', redis.url, '--concurrency', '0'], /--concurrency must be an integer in \[1, 1024\], got '0'/],
    ];
    for (const [args, re] of cases) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
    }
  });

  it('an unreachable Redis: exit 1 naming the URL, after at most the connection timeout; a missing input: exit 1', { timeout: 30_000 }, async () => {
    const { freePort } = await import('./fixtures/redis.js');
    const url = `redis://127.0.0.1:${await freePort()}`;
    const t0 = Date.now();
    const r = await run(['vectorize', input, '--queue', url, '--shard-bytes', '1000', '--out', out(), '--manifest', join(dir, 'bad', 'm.json'), '--connect-timeout', '1500']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach Redis at ${url} (--queue): connect ECONNREFUSED 127.0.0.1:`);
    const w = await run(['worker', '--queue', url, '--connect-timeout', '1500']);
    expect(w.code).toBe(1);
    expect(w.stderr).toContain(`cannot reach Redis at ${url} (--queue)`);
    expect(Date.now() - t0).toBeLessThan(10_000);
    // A server that accepts the connection and never answers: the timeout bounds the wait.
    const mute = createServer(() => {});
    const sockets: Socket[] = [];
    mute.on('connection', (s) => sockets.push(s));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    const muteUrl = `redis://127.0.0.1:${(mute.address() as AddressInfo).port}`;
    try {
      const t1 = Date.now();
      const silent = await run(['worker', '--queue', muteUrl, '--connect-timeout', '500']);
      expect(silent.code).toBe(1);
      expect(silent.stderr).toContain(`cannot reach Redis at ${muteUrl} (--queue): no answer in 500 ms`);
      expect(Date.now() - t1).toBeLessThan(5_000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => mute.close(r));
    }
    const missing = await run(['vectorize', join(dir, 'nope.jsonl'), '--queue', redis.url, '--shard-bytes', '1000', '--out', out(), '--manifest', join(dir, 'bad', 'm.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read input '.*nope\.jsonl'/);
  });

  it('enqueueShards refuses bad options by name before touching Redis', async () => {
    const connection = { host: '127.0.0.1', port: redis.port };
    const base = { connection, input, out: join(dir, 'bad', 'p-{shard}.npy'), manifest: join(dir, 'bad', 'm.json'), shardBytes: 1000 };
    await expect(enqueueShards({ ...base, shardBytes: 0 })).rejects.toThrow(new RangeError('options.shardBytes must be an integer in [1, 9007199254740991], got 0'));
    await expect(enqueueShards({ ...base, out: join(dir, 'p.npy') })).rejects.toThrow(/options\.out must contain \{shard\}/);
    await expect(enqueueShards({ ...base, out: join(dir, 'p-{shard}.txt') })).rejects.toThrow(/options\.out must name \.npy or \.safetensors files/);
    await expect(enqueueShards({ ...base, options: { maxLength: -1 } })).rejects.toThrow('options.maxLength must be an integer >= 1, got -1');
    await expect(enqueueShards({ ...base, run: 'a:b' })).rejects.toThrow(new TypeError("options.run must be 1-128 letters, digits, '_' or '-', not only digits, got 'a:b'"));
    await expect(enqueueShards({ ...base, run: '123' })).rejects.toThrow(/options\.run must be/);
    await expect(enqueueShards({ ...base, input: join(dir, 'nope.jsonl') })).rejects.toThrow(/ENOENT/);
    await expect(enqueueShards({ ...base, input: dir })).rejects.toThrow(new TypeError(`options.input must be a regular file: ${dir} is not one`));
    await expect(enqueueShards({ ...base, connection: undefined as unknown as Redis })).rejects.toThrow(/options\.connection is required/);
    expect(() => startWorker({} as Parameters<typeof startWorker>[0])).toThrow(new TypeError('options.connection is required: a Redis connection (an ioredis instance or its options)'));
    expect(() => startWorker({ connection, concurrency: 0 })).toThrow(new RangeError('options.concurrency must be an integer in [1, 1024], got 0'));
  });
});

it('the run id is derived from the input (path, size, mtime) and the settings: the same run is added once, a changed file is another run', async () => {
  const f = join(dir, 'ids.jsonl');
  writeFileSync(f, '{"text":"a"}\n');
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  try {
    const prefix = newPrefix();
    const o = { connection, prefix, input: f, shardBytes: 100, out: join(dir, 'ids-{shard}.npy'), manifest: join(dir, 'ids.json') };
    const a = await enqueueShards(o);
    const b = await enqueueShards(o);
    expect([a.status, b.status, b.run]).toEqual(['added', 'exists', a.run]);
    expect(a.shards).toEqual([{ index: 0, range: [0, 13], out: join(dir, 'ids-0.npy') }]);
    expect((await enqueueShards({ ...o, options: { maxLength: 8 } })).run).not.toBe(a.run);
    utimesSync(f, new Date(), new Date(Date.now() + 5000));
    expect((await enqueueShards(o)).run).not.toBe(a.run);
  } finally {
    connection.disconnect();
  }
});

it("the package: 'dtesn-pipeline/bullmq' is a subpath export; the main entry does not load bullmq or ioredis (optional peers)", () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const code = `
    import { createRequire } from 'node:module';
    const main = await import('dtesn-pipeline');
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).filter((k) => /node_modules[\\\\/](bullmq|ioredis)[\\\\/]/.test(k)).length;
    const before = loaded();
    const q = await import('dtesn-pipeline/bullmq');
    console.log(JSON.stringify({ main: typeof main.createPipeline, before, after: loaded() > 0, api: ['enqueueShards', 'startWorker', 'vectorizeViaQueue', 'waitForRun'].map((k) => typeof q[k]) }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  expect(r.stderr).toBe('');
  expect(JSON.parse(r.stdout)).toEqual({ main: 'function', before: 0, after: true, api: ['function', 'function', 'function', 'function'] });
});
