/**
 * `dtesn bench`: the benchmark a user can run from an installed package (no devDependencies, no
 * downloads). It measures, on the bundled multilingual UDHR corpus (samples/udhr.jsonl), the
 * figures the project's targets are stated in, each as the median of interleaved rounds:
 *
 *   - vectorize (native) against the pure-TypeScript fallback, same rows, same options;
 *   - vectorizeBytes on the same rows as UTF-8 + offsets;
 *   - pipeline.vectorize on batches of 10, 100 and 1,000 rows, against the 24,741 items/s the
 *     original DTESN implementation reported (for a no-op);
 *   - pipeline.vectorizeFile on the corpus repeated to ~200,000 lines (--lines), against the obvious JS way
 *     (readline + JSON.parse + vectorize per 1,000 lines).
 *
 * `dtesn bench --full` in a git checkout runs `npm run bench` instead (every suite, with the
 * external contenders; about 15 minutes) and prints BENCHMARKS.md's tables.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { vectorizeStringsJs } from '../vectorize/fallback.js';
import { getBackend, vectorize, vectorizeBytes } from '../vectorize/vectorize.js';
import { normalizeOptions } from '../vectorize/options.js';
import { createPipeline } from '../pipeline/pipeline.js';
import type { VectorizeOptions } from '../vectorize/types.js';

const ORIGINAL_ITEMS_PER_S = 24_741;
const OPTIONS: VectorizeOptions = { maxLength: 128 };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs `fn` until at least `minMs` passed; returns items per second. */
async function rate(items: number, minMs: number, fn: () => unknown): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    await fn();
    n++;
    t = performance.now();
  } while (t - t0 < minMs);
  return (items * n) / ((t - t0) / 1000);
}

interface Row {
  what: string;
  value: string;
  note: string;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export async function runBench(opts: { rounds: number; lines: number; full: boolean }): Promise<number> {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  if (opts.full) {
    if (!existsSync(path.join(root, 'bench')) || !existsSync(path.join(root, 'node_modules', 'tsx'))) {
      process.stderr.write('dtesn bench --full needs a git checkout with its devDependencies installed (npm install); the installed package carries the quick suite only: dtesn bench\n');
      return 2;
    }
    const r = spawnSync('npm', ['run', 'bench'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) return r.status ?? 1;
    process.stdout.write(readFileSync(path.join(root, 'BENCHMARKS.md'), 'utf8'));
    return 0;
  }

  const corpusPath = path.join(root, 'samples', 'udhr.jsonl');
  const texts = readFileSync(corpusPath, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => (JSON.parse(l) as { text: string }).text);
  const enc = new TextEncoder();
  const chunks = texts.map((t) => enc.encode(t));
  const offsets = new Uint32Array(texts.length + 1);
  for (let i = 0; i < chunks.length; i++) offsets[i + 1] = offsets[i]! + chunks[i]!.length;
  const bytes = new Uint8Array(offsets[texts.length]!);
  chunks.forEach((c, i) => bytes.set(c, offsets[i]!));
  const n = normalizeOptions(OPTIONS);
  const backend = getBackend();
  const rounds = opts.rounds;
  process.stderr.write(`dtesn bench: ${fmt(texts.length)} rows (${(bytes.length / 1e6).toFixed(1)} MB) of the bundled corpus, ${rounds} rounds, median rows/s\n`);

  // 1. Core: native vs fallback, interleaved.
  const nat: number[] = [];
  const js: number[] = [];
  const byt: number[] = [];
  for (let r = 0; r < rounds; r++) {
    nat.push(await rate(texts.length, 200, () => vectorize(texts, OPTIONS)));
    js.push(await rate(texts.length, 200, () => vectorizeStringsJs(texts, n)));
    byt.push(await rate(texts.length, 200, () => vectorizeBytes(bytes, offsets, OPTIONS)));
  }
  const rows: Row[] = [
    { what: `vectorize (${backend.kind}, ${backend.simd})`, value: fmt(median(nat)), note: `${(median(nat) / median(js)).toFixed(2)}x the JS fallback` },
    { what: 'vectorize (JS fallback)', value: fmt(median(js)), note: '' },
    { what: 'vectorizeBytes (UTF-8 + offsets)', value: fmt(median(byt)), note: `${(median(byt) / median(nat)).toFixed(2)}x vectorize` },
  ];

  // 2. The original workloads through the pipeline.
  const pipeline = createPipeline();
  try {
    for (const size of [10, 100, 1000]) {
      const batches: string[][] = [];
      for (let i = 0; i + size <= texts.length && batches.length < 64; i += size) batches.push(texts.slice(i, i + size));
      let k = 0;
      const xs: number[] = [];
      for (let r = 0; r < rounds; r++) {
        xs.push(await rate(size, 200, () => pipeline.vectorize(batches[k++ % batches.length]!, OPTIONS)));
      }
      rows.push({ what: `pipeline.vectorize, batches of ${size}`, value: fmt(median(xs)), note: `${(median(xs) / ORIGINAL_ITEMS_PER_S).toFixed(0)}x the original's 24,741 no-op items/s` });
    }

    // 3. A JSONL file: vectorizeFile against readline + JSON.parse + vectorize per 1,000 lines.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'dtesn-bench-'));
    try {
      const corpus = readFileSync(corpusPath);
      const copies = Math.max(1, Math.round(opts.lines / texts.length));
      const file = path.join(dir, 'corpus.jsonl');
      await writeFile(file, Buffer.concat(Array.from({ length: copies }, () => corpus)));
      const lines = texts.length * copies;
      const size = corpus.length * copies;
      const ours: number[] = [];
      const theirs: number[] = [];
      for (let r = 0; r < Math.max(3, Math.ceil(rounds / 2)); r++) {
        let t0 = performance.now();
        let got = 0;
        for await (const b of pipeline.vectorizeFile(file, { ...OPTIONS, format: 'jsonl', field: 'text', batchSize: 1000 })) got += b.rows;
        ours.push(got / ((performance.now() - t0) / 1000));
        t0 = performance.now();
        got = 0;
        let batch: string[] = [];
        for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
          if (line.length === 0) continue;
          batch.push((JSON.parse(line) as { text: string }).text);
          if (batch.length === 1000) {
            got += vectorize(batch, OPTIONS).rows;
            batch = [];
          }
        }
        if (batch.length > 0) got += vectorize(batch, OPTIONS).rows;
        theirs.push(got / ((performance.now() - t0) / 1000));
      }
      const mbps = (median(ours) * (size / lines)) / 1e6;
      rows.push({
        what: `pipeline.vectorizeFile, ${fmt(lines)}-line JSONL`,
        value: fmt(median(ours)),
        note: `${mbps.toFixed(0)} MB/s; ${(median(ours) / median(theirs)).toFixed(2)}x readline + JSON.parse + vectorize (${fmt(median(theirs))} rows/s)`,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    await pipeline.close();
  }

  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  process.stdout.write(`\n| measure (maxLength 128, int32) | rows/s | |\n|---|---:|---|\n`);
  for (const r of rows) process.stdout.write(`| ${r.what} | ${r.value} | ${r.note} |\n`);
  process.stdout.write(`\n${cpu}, ${os.availableParallelism()} cores, Node ${process.version}, ${os.platform()}-${os.arch()}; medians of ${rounds} rounds. The full suites with external contenders: \`npm run bench\` in a git checkout (BENCHMARKS.md).\n`);
  return 0;
}
