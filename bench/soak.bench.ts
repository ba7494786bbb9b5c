/**
 * Soak (issue 16, probe 6; not in CI): memory over long runs, sampled inside the measured process
 * by bench/soak-sampler.mjs.
 *
 * 1. `dtesn serve` (the CLI, defaults) under a steady open-loop load (bench/http-load.ts in its
 *    own process: requests on their schedule whatever the answers) of workload (a) requests, 1 or
 *    64 texts each, for --seconds [600]; RSS and heap every 10 s; then SIGTERM (exit 0 expected).
 * 2. `dtesn vectorize` of generated JSONL files (workload (a) texts) of 1/8 GiB and 1 GiB, RSS and
 *    heap every 250 ms: the run takes seconds, not minutes, so a slope per minute says little
 *    there; the peaks of the two sizes side by side say whether memory grows with the file.
 *
 * Each series: first and last sample, peak, and the least-squares slope in MB per minute over all
 * samples and over the second half (after start-up and JIT). Zero errors expected.
 *
 *   npm run bench:soak                      # 10 minutes + the file; writes BENCHMARKS.md
 *   node --import tsx bench/soak.bench.ts --seconds 60 --rate 1000
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../dist/index.js';
import type { LoadResult } from './http-load.js';
import { machineInfo, machineTable, opt, spliceInto } from './report.js';
import { workloadA } from './workloads.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const CLI = path.join(root, 'dist', 'cli', 'main.js');
const SAMPLER = path.join(here, 'soak-sampler.mjs');
const SECONDS = Number(opt('seconds', '600'));
const RATE = Number(opt('rate', '2000'));
const FILE_BYTES = Number(opt('file-bytes', String(2 ** 30)));
const WRITE = opt('write', '');
const BEGIN = '<!-- bench-soak:begin -->';
const END = '<!-- bench-soak:end -->';
const MB = 2 ** 20;

interface Sample {
  t: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

interface Series {
  samples: number;
  seconds: number;
  start: number;
  end: number;
  peak: number;
  /** MB per minute, least squares over all samples, and over the second half. */
  slope: number;
  slopeLate: number;
}

function slopeOf(pts: Array<[number, number]>): number {
  const n = pts.length;
  if (n < 2) return Number.NaN;
  let sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const [x, y] of pts) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const d = n * sxx - sx * sx;
  return d === 0 ? Number.NaN : (n * sxy - sx * sy) / d;
}

function series(samples: Sample[], key: 'rss' | 'heapUsed'): Series {
  const pts = samples.map((s) => [s.t / 60, s[key] / MB] as [number, number]);
  const half = pts.filter(([t]) => t >= pts[pts.length - 1]![0] / 2);
  return {
    samples: pts.length,
    seconds: samples[samples.length - 1]!.t,
    start: pts[0]![1],
    end: pts[pts.length - 1]![1],
    peak: Math.max(...pts.map(([, y]) => y)),
    slope: slopeOf(pts),
    slopeLate: slopeOf(half),
  };
}

function readSamples(file: string): Sample[] {
  return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Sample);
}

function waitFor(child: ChildProcess, stream: 'stdout' | 'stderr', re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const on = (d: Buffer) => {
      out += d.toString();
      const m = re.exec(out);
      if (m) {
        child[stream]!.off('data', on);
        resolve(m[1] ?? m[0]);
      }
    };
    child[stream]!.on('data', on);
    child.once('exit', (code) => reject(new Error(`${path.basename(String(child.spawnargs.at(-1)))} exited (${code}) before ${re}`)));
  });
}

const exitOf = (c: ChildProcess) => new Promise<[number | null, string | null]>((r) => (c.exitCode !== null ? r([c.exitCode, null]) : c.once('exit', (code, sig) => r([code, sig]))));

async function serveSoak(dir: string): Promise<{ load: LoadResult; rss: Series; heap: Series; exit: [number | null, string | null] }> {
  const texts = workloadA(8192).texts;
  const bodies: string[] = [];
  for (let i = 0; i < 512; i++) {
    // One request in eight carries 64 texts, the others one.
    const k = i % 8 === 7 ? 64 : 1;
    bodies.push(JSON.stringify({ texts: Array.from({ length: k }, (_, j) => texts[(i * 64 + j) % texts.length]), options: { maxLength: 128 } }));
  }
  const samples = path.join(dir, 'serve.jsonl');
  const client = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'http-load.ts'), '--stdin'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await waitFor(client, 'stdout', /ready\n/);
  const server = spawn(process.execPath, ['--import', SAMPLER, CLI, 'serve', '--port', '0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DTESN_SOAK_SAMPLES: samples, DTESN_SOAK_SAMPLE_MS: '10000' },
  });
  try {
    const url = new URL(await waitFor(server, 'stderr', /listening on (\S+)/));
    const result = waitFor(client, 'stdout', /^(\{.*\})\n/m);
    client.stdin!.end(JSON.stringify({ host: url.hostname, port: Number(url.port), path: '/v1/vectorize', bodies, rate: RATE, seconds: SECONDS, maxConnections: 256 }));
    const load = JSON.parse(await result, (_k, v: unknown) => (v === null ? Number.POSITIVE_INFINITY : v)) as LoadResult;
    server.kill('SIGTERM');
    const exit = await exitOf(server);
    const s = readSamples(samples);
    return { load, rss: series(s, 'rss'), heap: series(s, 'heapUsed'), exit };
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
    client.kill('SIGTERM');
  }
}

async function writeCorpus(file: string, bytes: number): Promise<{ lines: number; bytes: number }> {
  const texts = workloadA(8192).texts;
  const out = createWriteStream(file);
  let written = 0;
  let lines = 0;
  while (written < bytes) {
    const parts: string[] = [];
    for (let k = 0; k < 8192 && written < bytes; k++) {
      const line = `${JSON.stringify({ id: lines, text: texts[lines % texts.length] })}\n`;
      parts.push(line);
      written += line.length;
      lines++;
    }
    if (!out.write(parts.join(''))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
  return { lines, bytes: statSync(file).size };
}

async function fileSoak(dir: string, bytes: number): Promise<{ corpus: { lines: number; bytes: number }; seconds: number; rss: Series; heap: Series; exit: [number | null, string | null]; stdout: string }> {
  const input = path.join(dir, 'soak.jsonl');
  const corpus = await writeCorpus(input, bytes);
  const samples = path.join(dir, 'file.jsonl');
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    ['--import', SAMPLER, CLI, 'vectorize', input, '--out', path.join(dir, 'out.safetensors'), '--encoding', 'utf8', '--dtype', 'uint8', '--max-length', '32', '--padding', 'max-length'],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, DTESN_SOAK_SAMPLES: samples, DTESN_SOAK_SAMPLE_MS: '250' } },
  );
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const exit = await exitOf(child);
  const seconds = (performance.now() - t0) / 1000;
  const s = readSamples(samples);
  rmSync(input);
  rmSync(samples);
  rmSync(path.join(dir, 'out.safetensors'), { force: true });
  return { corpus, seconds, rss: series(s, 'rss'), heap: series(s, 'heapUsed'), exit, stdout };
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number) => (Number.isFinite(x) ? (x >= 0 ? '+' : '') + x.toFixed(2) : 'n/a');

async function main(): Promise<void> {
  const machine = machineInfo(getBackend());
  const loadStart = os.loadavg();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dtesn-soak-'));
  const started = new Date();
  try {
    console.log(`soak: dtesn serve at ${RATE} requests/s for ${SECONDS} s ...`);
    const serve = await serveSoak(dir);
    console.log(`  answered ${JSON.stringify(serve.load.status)}, errors ${serve.load.errors}, unfinished ${serve.load.unfinished}, p99 ${serve.load.p99Ms.toFixed(1)} ms; RSS ${f1(serve.rss.start)} -> ${f1(serve.rss.end)} MB, slope ${f2(serve.rss.slope)} MB/min; exit ${serve.exit.join(' ')}`);
    const files = [];
    for (const bytes of [FILE_BYTES / 8, FILE_BYTES]) {
      console.log(`soak: dtesn vectorize of ${(bytes / MB).toFixed(0)} MB of JSONL ...`);
      const file = await fileSoak(dir, bytes);
      console.log(`  ${file.corpus.lines} lines in ${file.seconds.toFixed(1)} s; RSS ${f1(file.rss.start)} -> ${f1(file.rss.end)} MB (peak ${f1(file.rss.peak)}), exit ${file.exit.join(' ')}`);
      files.push(file);
    }
    const ok200 = serve.load.status['200'] ?? 0;
    const out: string[] = [];
    out.push(...machineTable('Soak', machine, { start: loadStart, end: os.loadavg() }));
    out.push('');
    out.push(
      `Run ${started.toISOString().slice(0, 19).replace('T', ' ')} UTC. Command: \`npm run bench:soak\` (bench/soak.bench.ts; --seconds ${SECONDS} --rate ${RATE}). ` +
        'Memory sampled inside the measured process (bench/soak-sampler.mjs: `process.memoryUsage()`); slope: least squares over the samples, MB per minute, over the whole run and over its second half.',
    );
    out.push('');
    out.push('| run | duration | requests / rows | answered | errors | RSS MB first → last (peak) | RSS slope MB/min (all / 2nd half) | heap used MB first → last | heap slope MB/min (all / 2nd half) | exit |');
    out.push('|---|---:|---:|---|---:|---|---|---|---|---:|');
    // A slope per minute of a run of seconds is its start-up ramp: shown only for runs of a minute or more.
    const slopes = (x: Series) => (x.seconds >= 60 ? `${f2(x.slope)} / ${f2(x.slopeLate)}` : `— (a ${x.seconds.toFixed(0)} s run)`);
    const row = (name: string, secs: number, count: string, answered: string, errors: number, rss: Series, heap: Series, exit: [number | null, string | null]) =>
      `| ${name} | ${secs.toFixed(0)} s | ${count} | ${answered} | ${errors} | ${f1(rss.start)} → ${f1(rss.end)} (${f1(rss.peak)}) | ${slopes(rss)} | ${f1(heap.start)} → ${f1(heap.end)} | ${slopes(heap)} | ${exit[0] ?? exit[1]} |`;
    out.push(
      row(
        `\`dtesn serve\`, open loop ${RATE}/s (1 or 64 texts, workload (a)), samples every 10 s`,
        serve.rss.seconds,
        serve.load.sent.toLocaleString('en-US'),
        `${ok200.toLocaleString('en-US')} × 200${Object.keys(serve.load.status).filter((k) => k !== '200').map((k) => `, ${serve.load.status[k]} × ${k}`).join('')}; p50 ${serve.load.p50Ms.toFixed(1)} ms, p99 ${serve.load.p99Ms.toFixed(1)} ms`,
        serve.load.errors + serve.load.unfinished,
        serve.rss,
        serve.heap,
        serve.exit,
      ),
    );
    for (const file of files) {
      const written = /(\d[\d,]*) rows/.exec(file.stdout)?.[1];
      out.push(
        row(
          `\`dtesn vectorize\` of ${(file.corpus.bytes / MB).toFixed(0)} MB JSONL (utf8, uint8, max-length 32), samples every 250 ms`,
          file.seconds,
          file.corpus.lines.toLocaleString('en-US'),
          written ? `${written} rows written` : 'see log',
          file.exit[0] === 0 ? 0 : 1,
          file.rss,
          file.heap,
          file.exit,
        ),
      );
    }
    const section = out.join('\n');
    console.log(`\n${section}`);
    if (WRITE) {
      const { readFileSync: read, writeFileSync } = await import('node:fs');
      writeFileSync(WRITE, spliceInto(read(WRITE, 'utf8'), section, BEGIN, END));
    }
    if (serve.load.errors + serve.load.unfinished > 0 || ok200 !== serve.load.sent || serve.exit[0] !== 0 || files.some((f) => f.exit[0] !== 0)) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
