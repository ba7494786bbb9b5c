/**
 * The sharded path over BullMQ against one process: `dtesn vectorize FILE --queue ... --wait` with
 * 1, 2 and 3 `dtesn worker` processes, beside the single-process `dtesn vectorize FILE` of the same
 * file and options, on a generated JSONL file of >= 500 MB in the OS temp dir (the 1M-line file of
 * the file bench, bench/files.ts, repeated; never committed). Redis is Debian's redis-server,
 * started here on a free loopback port (append-only file on, as in the tests).
 *
 * Each contender is timed as a user waits for it: from starting the command to its exit (outputs
 * complete: for the queued path, every shard written, hashed and renamed, and the manifest
 * written). The workers are started before the timed command, as long-running services are, and
 * stopped after; outputs are removed between runs. Contenders alternate round by round (order
 * rotated), medians of rounds. A fifth contender, 1 worker with small shards, gives the cost per
 * job: (its time - 1 worker's) / (its jobs - 1 worker's jobs).
 *
 *   node --import tsx bench/queue.bench.ts                     # ~3 min on 2 cores
 *   options: --rounds <n> [3]  --copies <n> [6] (times the 1M-line file)  --shard-mb <n> [32]
 *            --small-shard-mb <n> [4]  --max-length <n> [32]  --write BENCHMARKS.md
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../src/index.js';
import { ensureFiles } from './files.js';
import { machineInfo, median, opt, spliceInto } from './report.js';
import { RedisServer } from '../test/fixtures/redis.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(here, '..', 'dist', 'cli', 'main.js');
const ROUNDS = Number(opt('rounds', '3'));
const COPIES = Number(opt('copies', '6'));
const SHARD_MB = Number(opt('shard-mb', '32'));
const SMALL_MB = Number(opt('small-shard-mb', '4'));
const MAX_LENGTH = opt('max-length', '32');
const WRITE = opt('write', '');
const OUT = path.join(here, 'results', 'queue.json');
const BEGIN = '<!-- bench-queue:begin -->';
const END = '<!-- bench-queue:end -->';
const MB = 1e6;
const log = (msg: string) => process.stderr.write(`${msg}\n`);

/** The 1M-line JSONL file `copies` times over, in the temp dir (reused when its size is right). */
function bigFile(): { file: string; bytes: number } {
  const base = ensureFiles(1_000_000, log);
  const file = path.join(os.tmpdir(), `dtesn-bench-queue-a-1M-x${COPIES}.jsonl`);
  const bytes = base.jsonlBytes * COPIES;
  if (existsSync(file) && statSync(file).size === bytes) {
    log(`  reusing ${file} (${(bytes / MB).toFixed(0)} MB)`);
    return { file, bytes };
  }
  const chunk = readFileSync(base.jsonl);
  const fd = openSync(file, 'w');
  for (let i = 0; i < COPIES; i++) writeSync(fd, chunk);
  closeSync(fd);
  log(`  wrote ${file} (${(bytes / MB).toFixed(0)} MB)`);
  return { file, bytes };
}

/** GNU time, for the CPU seconds of a command that exits by itself (null: not installed). */
const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const CPU_MARK = 'dtesn-bench-cpu';

/** CPU seconds (user + system) a live process has used so far, from /proc (0 where there is none). */
function cpuOf(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}

function run(args: string[]): Promise<{ code: number | null; stderr: string; seconds: number; cpu: number | null }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const argv = [process.execPath, CLI, ...args];
    const c = GNU_TIME ? spawn(GNU_TIME, ['-f', `${CPU_MARK} %U %S`, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.on('error', reject);
    c.on('exit', (code) => {
      const m = new RegExp(`${CPU_MARK} ([\\d.]+) ([\\d.]+)`).exec(stderr);
      resolve({ code, stderr, seconds: (performance.now() - t0) / 1000, cpu: m ? Number(m[1]) + Number(m[2]) : null });
    });
  });
}

/** `dtesn worker` processes on `prefix`, each ready. */
async function workers(n: number, url: string, prefix: string): Promise<ChildProcess[]> {
  const out: ChildProcess[] = [];
  await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<void>((resolve, reject) => {
        const c = spawn(process.execPath, [CLI, 'worker', '--queue', url, '--prefix', prefix, '--no-requests'], { stdio: ['ignore', 'ignore', 'pipe'] });
        out.push(c);
        let err = '';
        c.stderr.setEncoding('utf8').on('data', (d: string) => {
          err += d;
          if (/ready on/.test(err)) resolve();
        });
        c.on('exit', (code) => reject(new Error(`worker exited (${code}): ${err}`)));
      }),
    ),
  );
  return out;
}

async function stopAll(cs: ChildProcess[]): Promise<void> {
  await Promise.all(
    cs.map(
      (c) =>
        new Promise<void>((r) => {
          if (c.exitCode !== null) return r();
          c.removeAllListeners('exit');
          c.once('exit', () => r());
          c.kill('SIGTERM');
        }),
    ),
  );
}

interface Contender {
  key: string;
  label: string;
  workers: number;
  shardBytes: number | null;
  seconds: number[];
  /** CPU seconds of every process of a run (command, workers, Redis), per round. */
  cpu: Array<number | null>;
  shards: number;
  extra?: string[];
}

/**
 * How many cores this run could use: one CPU-bound child process alone, then as many at once as
 * there are cores; cores available = n x (time alone) / (time together). On a shared machine it
 * says how much parallelism the worker contenders could have had.
 */
async function cores(): Promise<number> {
  const n = os.availableParallelism();
  const spin = () =>
    new Promise<number>((resolve, reject) => {
      const code = 'const t=performance.now();let x=0;for(let i=0;i<2e8;i++)x+=i%7;process.stdout.write(String(performance.now()-t))';
      const c = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      c.on('error', reject);
      c.on('exit', () => resolve(Number(out)));
    });
  const alone = await spin();
  const together = Math.max(...(await Promise.all(Array.from({ length: n }, spin))));
  return (n * alone) / together;
}

async function main(): Promise<void> {
  const loadStart = os.loadavg();
  const m = machineInfo(getBackend());
  log(`dtesn queue bench: ${m.cpu}, ${m.availableParallelism} cores, Node ${process.version}, load ${loadStart.map((x) => x.toFixed(2)).join(' ')}`);
  if (!existsSync(CLI)) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  const { file, bytes } = bigFile();
  const redis = await RedisServer.start();
  const outDir = path.join(os.tmpdir(), `dtesn-bench-queue-out-${process.pid}`);
  const vec = ['--max-length', MAX_LENGTH, '--quiet'];
  const shard = Math.round(SHARD_MB * 1e6);
  const small = Math.round(SMALL_MB * 1e6);
  const contenders: Contender[] = [
    { key: 'single', label: '`dtesn vectorize FILE` (one process)', workers: 0, shardBytes: null, seconds: [], cpu: [], shards: 0 },
    ...[1, 2, 3].map((w) => ({ key: `queue-${w}`, label: `--queue, ${w} worker${w > 1 ? 's' : ''}, ${SHARD_MB} MB shards`, workers: w, shardBytes: shard, seconds: [], cpu: [], shards: Math.ceil(bytes / shard) })),
    { key: 'queue-2-nosum', label: `--queue, 2 workers, ${SHARD_MB} MB shards, --no-checksums`, workers: 2, shardBytes: shard, seconds: [], cpu: [], shards: Math.ceil(bytes / shard), extra: ['--no-checksums'] },
    { key: 'queue-1-small', label: `--queue, 1 worker, ${SMALL_MB} MB shards`, workers: 1, shardBytes: small, seconds: [], cpu: [], shards: Math.ceil(bytes / small) },
  ];
  const capacity = [await cores()];
  let serial = 0;
  try {
    // One untimed pass of each kind first: page cache, JIT of nothing (fresh processes), Redis warm.
    for (let round = -1; round < ROUNDS; round++) {
      const order = contenders.map((_, i) => contenders[(i + Math.max(round, 0)) % contenders.length]!);
      for (const c of order) {
        rmSync(outDir, { recursive: true, force: true });
        mkdirSync(outDir, { recursive: true });
        let r;
        let others = 0; // CPU seconds of the workers and Redis during the run
        if (c.shardBytes === null) {
          r = await run(['vectorize', file, '--out', path.join(outDir, 'all.npy'), ...vec]);
        } else {
          const prefix = `b${process.pid}x${++serial}`;
          const ws = await workers(c.workers, redis.url, prefix);
          const before = [...ws.map((w) => cpuOf(w.pid)), cpuOf(redis.pid)];
          try {
            r = await run([
              'vectorize', file, '--queue', redis.url, '--prefix', prefix, '--shard-bytes', String(c.shardBytes),
              '--out', path.join(outDir, 'part-{shard}.npy'), '--manifest', path.join(outDir, 'manifest.json'), '--wait', ...vec, ...(c.extra ?? []),
            ]);
            others = [...ws.map((w) => cpuOf(w.pid)), cpuOf(redis.pid)].reduce((a, x, i) => a + x - before[i]!, 0);
          } finally {
            await stopAll(ws);
          }
          const manifest = JSON.parse(readFileSync(path.join(outDir, 'manifest.json'), 'utf8')) as { shards: unknown[]; inputBytes: number };
          if (manifest.shards.length !== c.shards || manifest.inputBytes !== bytes) throw new Error(`${c.key}: manifest of ${manifest.shards.length} shards`);
        }
        if (r.code !== 0) throw new Error(`${c.key} exited ${r.code}: ${r.stderr}`);
        const cpu = r.cpu === null ? null : r.cpu + others;
        if (round >= 0) {
          c.seconds.push(r.seconds);
          c.cpu.push(cpu);
        }
        log(`  ${round < 0 ? 'warm-up' : `round ${round + 1}`}: ${c.key} ${r.seconds.toFixed(2)} s, CPU ${cpu?.toFixed(2) ?? '?'} s (${readdirSync(outDir).length} files)`);
      }
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true });
    await redis.destroy();
  }
  capacity.push(await cores());
  const loadEnd = os.loadavg();
  const single = median(contenders[0]!.seconds);
  const rows = contenders.map((c) => {
    const s = median(c.seconds);
    const cpu = c.cpu.every((x) => x !== null) ? median(c.cpu as number[]) : null;
    return { key: c.key, label: c.label, workers: c.workers, shards: c.shards, medianSec: s, cpuSec: cpu, mbPerSec: bytes / MB / s, shardsPerSec: c.shards ? c.shards / s : null, vsSingle: single / s, seconds: c.seconds };
  });
  const q1 = rows.find((r) => r.key === 'queue-1')!;
  const q1s = rows.find((r) => r.key === 'queue-1-small')!;
  const perJobMs = ((q1s.medianSec - q1.medianSec) / (q1s.shards - q1.shards)) * 1000;
  const perMbMs = ((q1.medianSec - single) / (bytes / MB)) * 1000;
  const res = {
    date: new Date().toISOString(),
    machine: m,
    loadavg: { start: loadStart, end: loadEnd },
    coresAvailable: capacity,
    file: { bytes, copies: COPIES },
    options: { maxLength: Number(MAX_LENGTH) },
    rounds: ROUNDS,
    rows,
    perJobMs,
    perMbMs,
  };
  mkdirSync(path.dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(res, null, 2) + '\n');
  const md = render(res);
  process.stdout.write(md + '\n');
  if (WRITE) writeFileSync(WRITE, spliceInto(readFileSync(WRITE, 'utf8'), md, BEGIN, END));
}

function render(r: {
  date: string; machine: ReturnType<typeof machineInfo>; loadavg: { start: number[]; end: number[] }; coresAvailable: number[]; file: { bytes: number; copies: number };
  options: { maxLength: number }; rounds: number; perJobMs: number; perMbMs: number;
  rows: Array<{ label: string; shards: number; medianSec: number; cpuSec: number | null; mbPerSec: number; shardsPerSec: number | null; vsSingle: number; seconds: number[]; key: string }>;
}): string {
  const load = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' ');
  const m = r.machine;
  const out = [
    '### Sharded over BullMQ: `dtesn vectorize --queue` and `dtesn worker` processes vs one process',
    '',
    `Machine: ${m.cpu}, ${m.availableParallelism} cores (shared with other work: load average ${load(r.loadavg.start)} → ${load(r.loadavg.end)}; ` +
      `cores a CPU-bound process could use, measured before → after: ${r.coresAvailable.map((x) => x.toFixed(2)).join(' → ')}), SIMD ${m.simd}, Node ${m.node}, ${m.platform} ${m.arch}, ${m.memoryGiB} GiB; Redis: Debian's redis-server on loopback. ` +
      `Run ${r.date.replace('T', ' ').slice(0, 19)} UTC with \`npm run bench:queue\`.`,
    '',
    `${(r.file.bytes / 1e6).toFixed(0)} MB of JSONL (the file bench's 1M-line workload (a) file ${r.file.copies} times over, in the OS temp dir, page cache warm), ` +
      `\`--max-length ${r.options.maxLength}\`, int32, .npy outputs. Time from starting the command to its exit (queued: every shard written, hashed (sha256) and renamed, the manifest written; ` +
      `workers started before, as services are). Contenders alternate round by round; ${r.rounds} rounds after a warm-up round, medians. ` +
      'CPU s: user + system time of the command (GNU time), the workers and Redis during the run (/proc), median.',
    '',
    '| contender | shards | median s | MB/s | shards/s | vs one process | CPU s (all processes) | all rounds (s) |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...r.rows.map(
      (x) =>
        `| ${x.label} | ${x.shards || '-'} | ${x.medianSec.toFixed(2)} | ${x.mbPerSec.toFixed(0)} | ${x.shardsPerSec === null ? '-' : x.shardsPerSec.toFixed(1)} | ${x.vsSingle.toFixed(2)}x | ` +
        `${x.cpuSec === null ? '-' : x.cpuSec.toFixed(2)} | ${x.seconds.map((s) => s.toFixed(2)).join(' ')} |`,
    ),
    '',
    `- 2 workers / one process = **${r.rows.find((x) => x.key === 'queue-2')!.vsSingle.toFixed(2)}x** (issue 18 target >= 0.9x)`,
    `- cost per job (1 worker, small shards against ${r.rows.find((x) => x.key === 'queue-1')!.shards} shards): ${r.perJobMs.toFixed(1)} ms; ` +
      `cost per MB (1 worker against one process): ${r.perMbMs.toFixed(2)} ms`,
  ];
  return out.join('\n');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
