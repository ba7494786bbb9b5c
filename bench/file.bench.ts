/**
 * `pipeline.vectorizeFile` on a generated 1,000,000-line file of workload (a)-like texts (JSONL
 * `{"id":n,"text":"..."}` and plain lines; the files of the pipeline suite, bench/files.ts), from
 * the path and from a byte stream (fs.createReadStream: what the CLI reads from stdin), against the
 * obvious JavaScript way: readline + JSON.parse + core `vectorize` per 1,000 lines. Same options
 * (`{ maxLength: 128 }`, batches of 1,000), all in one process, contenders alternating round by
 * round (order rotated, gc() before each), medians of rounds. Before timing, every contender's
 * batches over the whole file are checked to be identical (a hash of every batch's rows, width,
 * ids, mask and lengths), and one untimed pass samples memory (bounded: two read chunks, one
 * unfinished line and one batch live).
 *
 *   node --expose-gc --import tsx bench/file.bench.ts             # ~2 min on 2 cores
 *   node --expose-gc --import tsx bench/file.bench.ts --quick     # 100k lines, 3 rounds
 *   node --expose-gc --import tsx bench/file.bench.ts --corpus udhr  # multilingual: samples/udhr.jsonl
 *                                                  # repeated to >= 100 MB (its own BENCHMARKS.md table)
 *   options: --rounds <n>  --lines <n>  --out <file.json>  --write BENCHMARKS.md (splices the table)
 *            --only <keys>  (contenders, e.g. file,readline-await)  --no-verify  --no-variants
 *
 * Then the same comparison again in a child process started with each of VARIANTS' Node flags
 * (only the path form and the readline baselines, no verification: the parent has verified them).
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../src/index.js';
import { createPipeline } from '../src/pipeline/pipeline.js';
import type { FileBatch } from '../src/io/stream.js';
import type { Dtype, VectorBatch } from '../src/vectorize/types.js';
import { ensureFiles, ensureUdhrFiles, readlineBatches, readlineEvents } from './files.js';
import { median, spliceInto, opt } from './report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const CORPUS = opt('corpus', 'a');
if (CORPUS !== 'a' && CORPUS !== 'udhr') throw new Error(`--corpus must be a or udhr, got ${CORPUS}`);
const LINES = Number(opt('lines', QUICK ? '100000' : '1000000'));
const ROUNDS = Number(opt('rounds', QUICK ? '3' : '7'));
const OUT = path.resolve(opt('out', path.join(here, 'results', `file${CORPUS === 'udhr' ? '-udhr' : ''}${QUICK ? '-quick' : ''}.json`)));
const WRITE = opt('write', '');
const OPTIONS = { maxLength: 128 } as const;
const BATCH = 1000;
const ONLY = opt('only', '').split(',').filter(Boolean);
const VERIFY = !argv.includes('--no-verify');
/**
 * Node flags of the child runs. V8 sizes a small heap's old generation to a few times its live
 * objects (8 MB in a scratch loop over this file, --trace-gc-verbose: limits of 24-44 MB), and
 * fresh ArrayBuffer outputs count against that limit until a scavenge frees them, so a
 * vectorizeFile pass with fresh outputs starts a full mark-compact every ~25-45 batches
 * (--trace-gc: ~15 a pass); a larger initial old space removes them (one in six passes). Not
 * allowed in NODE_OPTIONS; a node command-line flag.
 */
const VARIANTS = argv.includes('--no-variants') ? [] : [['--initial-old-space-size=128']];
const BEGIN = CORPUS === 'udhr' ? '<!-- bench-file-udhr:begin -->' : '<!-- bench-file:begin -->';
const END = CORPUS === 'udhr' ? '<!-- bench-file-udhr:end -->' : '<!-- bench-file:end -->';

const gc: () => void = (globalThis as { gc?: () => void }).gc ?? (() => {});
const log = (msg: string) => process.stderr.write(`${msg}\n`);
let sink: unknown;


/** FNV-1a over a batch's rows, width, ids, mask and lengths, folded into `h`. */
function digest(h: number, b: VectorBatch<Dtype>): number {
  const mix = (x: number) => {
    h = Math.imul(h ^ (x | 0), 16777619);
  };
  mix(b.rows);
  mix(b.width);
  const n = b.rows * b.width;
  for (let i = 0; i < n; i++) mix(Number(b.ids[i]!) * 2 + Number(b.attentionMask[i]!));
  for (let i = 0; i < b.rows; i++) mix(b.lengths[i]!);
  return h;
}

interface Case {
  format: 'jsonl' | 'lines';
  key: string;
  label: string;
  medianSec: number;
  rowsPerSec: number;
  mbPerSec: number;
  seconds: number[];
}

interface FileResults {
  date: string;
  machine: { cpu: string; cores: number; simd: string; node: string; os: string; memoryGiB: number; loadavg: { start: number[]; end: number[] } };
  corpus: string;
  lines: number;
  bytes: { jsonl: number; lines: number };
  rounds: number;
  options: object;
  verified: Array<{ format: string; rows: number; identical: string[] }>;
  memory: Array<{ format: string; liveGrowthMB: number; rssGrowthMB: number }>;
  cases: Case[];
  ratios: Array<{ format: string; ours: string; baseline: string; ratio: number }>;
  /** The same comparison in child processes started with other Node flags. */
  variants: Array<{ flags: string[]; rounds: number; cases: Case[]; ratios: FileResults['ratios'] }>;
}

async function main(): Promise<void> {
  const started = Date.now();
  const loadStart = os.loadavg();
  const b = getBackend();
  const cpu = /^model name\s*:\s*(.+)$/m.exec(existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '')?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  log(`dtesn file bench: ${cpu}, ${os.availableParallelism()} cores, Node ${process.version}, backend ${b.kind} (simd ${b.simd}), load ${loadStart.map((x) => x.toFixed(2)).join(' ')}`);
  if (!existsSync(path.join(here, '..', 'dist', 'pipeline', 'pool', 'worker.js'))) throw new Error('dist/pipeline/pool/worker.js is missing: run `npx tsc -p tsconfig.json` first (the pipeline starts its pool from it)');
  const udhr = CORPUS === 'udhr' ? ensureUdhrFiles(QUICK ? 10e6 : 100e6, log) : null;
  const files = udhr ?? ensureFiles(LINES, log);
  const lines = udhr?.lines ?? LINES;
  const p = createPipeline();
  const res: FileResults = {
    date: new Date().toISOString(),
    machine: { cpu, cores: os.availableParallelism(), simd: b.simd, node: process.version, os: `${os.type()} ${os.release()} ${os.arch()}`, memoryGiB: Math.round(os.totalmem() / 2 ** 30), loadavg: { start: loadStart, end: [] } },
    corpus: udhr ? `samples/udhr.jsonl x${udhr.times}` : 'workload (a)',
    lines,
    bytes: { jsonl: files.jsonlBytes, lines: files.plainBytes },
    rounds: ROUNDS,
    options: { ...OPTIONS, batchSize: BATCH },
    verified: [],
    memory: [],
    cases: [],
    ratios: [],
    variants: [],
  };

  for (const format of ['jsonl', 'lines'] as const) {
    const file = format === 'jsonl' ? files.jsonl : files.plain;
    const bytes = format === 'jsonl' ? files.jsonlBytes : files.plainBytes;
    const jsonl = format === 'jsonl';
    const fileOpts = { format, batchSize: BATCH, ...OPTIONS };
    const each = async (it: AsyncIterable<VectorBatch<Dtype>>, f: (b: VectorBatch<Dtype>) => void) => {
      for await (const x of it) f(x);
    };
    // The obvious way with the same reuse as reuseBuffers: core vectorize into one `out`.
    const out = { ids: new Int32Array(BATCH * OPTIONS.maxLength), attentionMask: new Uint8Array(BATCH * OPTIONS.maxLength) };
    const parse = jsonl ? ' + JSON.parse' : '';
    const all: Array<{ key: string; label: string; run: (f: (b: VectorBatch<Dtype>) => void) => Promise<void> }> = [
      { key: 'file', label: `pipeline.vectorizeFile(path, { format: '${format}' })`, run: (f) => each(p.vectorizeFile(file, fileOpts), f) },
      { key: 'stream', label: `pipeline.vectorizeFile(fs.createReadStream(path), { format: '${format}' })`, run: (f) => each(p.vectorizeFile(createReadStream(file), fileOpts), f) },
      {
        key: 'file-reuse', label: `pipeline.vectorizeFile(path, { format: '${format}', reuseBuffers: true })`,
        run: (f) => each(p.vectorizeFile(file, { ...fileOpts, reuseBuffers: true }), f),
      },
      { key: 'readline-await', label: `readline (for await)${parse} + core vectorize`, run: (f) => each(readlineBatches(file, jsonl, OPTIONS), f) },
      { key: 'readline-events', label: `readline (on 'line')${parse} + core vectorize`, run: (f) => readlineEvents(file, jsonl, OPTIONS, f) },
      { key: 'readline-events-out', label: `readline (on 'line')${parse} + core vectorize into a reused out`, run: (f) => readlineEvents(file, jsonl, { ...OPTIONS, out }, f) },
    ];
    const contenders = all.filter((c) => ONLY.length === 0 || ONLY.includes(c.key));

    if (VERIFY) {
      // Whole-file equality, untimed.
      const digests = new Map<string, { h: number; rows: number }>();
      for (const c of contenders) {
        let h = 0x811c9dc5;
        let rows = 0;
        await c.run((x) => {
          h = digest(h, x);
          rows += x.rows;
        });
        digests.set(c.key, { h, rows });
      }
      const ref = digests.get('readline-events') ?? [...digests.values()][0]!; // --only may leave it out
      const differ = [...digests].filter(([, d]) => d.h !== ref.h || d.rows !== ref.rows).map(([k]) => k);
      if (differ.length || ref.rows !== lines) throw new Error(`${format}: batches differ from readline + core vectorize: ${differ.join(', ')} (rows ${ref.rows})`);
      res.verified.push({ format, rows: ref.rows, identical: [...digests.keys()] });
      log(`  ${format}: every contender's batches identical over the whole file (${ref.rows.toLocaleString('en-US')} rows)`);

      // Memory of one untimed pass: live heap + ArrayBuffers after full GCs (with event-loop turns
      // between, so that finalizers of native buffers have run), and rss, every 50 batches.
      const settled = async () => {
        for (let i = 0; i < 3; i++) {
          gc();
          await new Promise((r) => setImmediate(r));
        }
        gc();
        return process.memoryUsage();
      };
      sink = null;
      const m0 = await settled();
      let live = 0;
      let rss = 0;
      let k = 0;
      for await (const x of p.vectorizeFile(file, fileOpts)) {
        sink = x;
        if (++k % 50 === 0) {
          const m = await settled();
          live = Math.max(live, m.heapUsed + m.arrayBuffers - m0.heapUsed - m0.arrayBuffers);
          rss = Math.max(rss, m.rss - m0.rss);
        }
      }
      res.memory.push({ format, liveGrowthMB: live / 2 ** 20, rssGrowthMB: rss / 2 ** 20 });
      log(`  ${format}: memory growth during a pass: live ${(live / 2 ** 20).toFixed(1)} MiB, rss ${(rss / 2 ** 20).toFixed(1)} MiB (file ${(bytes / 2 ** 20).toFixed(0)} MiB)`);
    }

    // Timed rounds, order rotated.
    const seconds = new Map<string, number[]>(contenders.map((c) => [c.key, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < contenders.length; i++) {
        const c = contenders[(i + r) % contenders.length]!;
        gc();
        let rows = 0;
        const t0 = performance.now();
        await c.run((x) => {
          rows += x.rows;
          sink = x;
        });
        seconds.get(c.key)!.push((performance.now() - t0) / 1e3);
        if (rows !== lines) throw new Error(`${c.key}: ${rows} rows`);
      }
    }
    const cases = contenders.map((c): Case => {
      const s = seconds.get(c.key)!;
      const t = median(s);
      return { format, key: c.key, label: c.label, medianSec: t, rowsPerSec: lines / t, mbPerSec: bytes / t / 1e6, seconds: s };
    });
    res.cases.push(...cases);
    for (const c of cases) log(`  ${format} ${c.label.padEnd(64)} ${c.medianSec.toFixed(3)} s  ${(c.rowsPerSec / 1e6).toFixed(2)} M rows/s  ${c.mbPerSec.toFixed(0)} MB/s`);
    const byKey = (k: string) => cases.find((c) => c.key === k);
    const pairs: Array<[string, string]> = [
      ['file', 'readline-await'], ['file', 'readline-events'], ['stream', 'readline-await'], ['stream', 'readline-events'],
      ['file-reuse', 'readline-await'], ['file-reuse', 'readline-events'], ['file-reuse', 'readline-events-out'],
    ];
    for (const [a, b] of pairs) {
      const ours = byKey(a);
      const base = byKey(b);
      if (!ours || !base) continue;
      res.ratios.push({ format, ours: ours.label, baseline: base.label, ratio: base.medianSec / ours.medianSec });
      log(`  ${format} ${ours.key} vs ${base.key}: ${(base.medianSec / ours.medianSec).toFixed(2)}x`);
    }
  }
  await p.close();
  for (const flags of VARIANTS) {
    const tmp = path.join(os.tmpdir(), `dtesn-file-bench-variant-${process.pid}.json`);
    log(`child run: node ${flags.join(' ')}`);
    execFileSync(
      process.execPath,
      [...flags, '--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--only', 'file,readline-await,readline-events', '--no-verify', '--no-variants',
        '--corpus', CORPUS, '--lines', String(LINES), '--rounds', String(Math.min(ROUNDS, 5)), '--out', tmp],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const child = JSON.parse(readFileSync(tmp, 'utf8')) as FileResults;
    rmSync(tmp, { force: true });
    res.variants.push({ flags, rounds: child.rounds, cases: child.cases, ratios: child.ratios });
  }
  res.machine.loadavg.end = os.loadavg();
  mkdirSync(path.dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(res, null, 2) + '\n');
  const md = render(res);
  if (WRITE) {
    writeFileSync(WRITE, spliceInto(readFileSync(WRITE, 'utf8'), md, BEGIN, END));
    log(`wrote ${WRITE}`);
  }
  process.stdout.write(md + '\n');
  log(`done in ${((Date.now() - started) / 1e3).toFixed(0)} s; results in ${OUT}`);
}

const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(1)} k`);

function caseTable(cases: readonly Case[]): string[] {
  return [
    '| format | contender | median s/pass | rows/s | MB/s (file) | all rounds (s) |',
    '|---|---|---:|---:|---:|---|',
    ...cases.map((c) => `| ${c.format} | ${c.label} | ${c.medianSec.toFixed(3)} | ${fmt(c.rowsPerSec)} | ${c.mbPerSec.toFixed(1)} | ${c.seconds.map((s) => s.toFixed(2)).join(' ')} |`),
  ];
}

function render(r: FileResults): string {
  const m = r.machine;
  const out: string[] = [];
  const multi = r.corpus.startsWith('samples/udhr');
  out.push(multi ? '### vectorizeFile vs the obvious JavaScript way: multilingual' : '### vectorizeFile vs the obvious JavaScript way', '');
  out.push(`Machine: ${m.cpu}, ${m.cores} cores (shared with other work: load average ${m.loadavg.start.map((x) => x.toFixed(2)).join(' ')} → ${m.loadavg.end.map((x) => x.toFixed(2)).join(' ')}), SIMD ${m.simd}, Node ${m.node}, ${m.os}, ${m.memoryGiB} GiB. Run ${r.date.replace('T', ' ').slice(0, 19)} UTC with \`node --expose-gc --import tsx bench/file.bench.ts${multi ? ' --corpus udhr' : ''}\`.`, '');
  out.push(
    (multi
      ? `${r.lines.toLocaleString('en-US')} lines: the UDHR corpus (${r.corpus}, 165 language variants, 63% of the lines non-ASCII; bench/files.ts): JSONL \`{"lang":"..","text":"..."}\` ${(r.bytes.jsonl / 1e6).toFixed(1)} MB,`
      : `${r.lines.toLocaleString('en-US')} lines of workload (a)-like text (bench/files.ts): JSONL \`{"id":n,"text":"..."}\` ${(r.bytes.jsonl / 1e6).toFixed(1)} MB,`) +
      ` plain lines ${(r.bytes.lines / 1e6).toFixed(1)} MB, in the OS temp dir (page cache warm). ` +
      `Batches of ${BATCH.toLocaleString('en-US')} rows, \`${JSON.stringify(OPTIONS)}\`, default pipeline. One process; contenders alternate round by round (order rotated, gc() before each); ${r.rounds} rounds, medians. MB/s = file bytes / time.`,
    '',
  );
  out.push(...caseTable(r.cases));
  out.push('');
  for (const x of r.ratios) {
    const target = x.format === 'jsonl' && x.ours.includes('vectorizeFile(path') && !x.baseline.includes('reused out') ? ` (issue ${multi ? 14 : 3} target >= 3x)` : '';
    out.push(`- ${x.format}: ${x.ours} / ${x.baseline} = **${x.ratio.toFixed(2)}x**${target}`);
  }
  for (const v of r.verified) out.push(`- Verified before timing (${v.format}): every contender's batches over the whole file (${v.rows.toLocaleString('en-US')} rows) hash the same (rows, width, ids, mask, lengths).`);
  for (const v of r.variants) {
    out.push('', `Node started with \`${v.flags.join(' ')}\` (a child process, same machine, right after; ${v.rounds} rounds; the path form and the readline baselines only):`, '');
    out.push(...caseTable(v.cases));
    out.push('');
    for (const x of v.ratios) out.push(`- ${x.format}, \`${v.flags.join(' ')}\`: ${x.ours} / ${x.baseline} = **${x.ratio.toFixed(2)}x**`);
    out.push('');
  }
  for (const x of r.memory) out.push(`- Memory during one ${x.format} pass (sampled every 50 batches after a full GC): live heap + ArrayBuffers grew at most ${x.liveGrowthMB.toFixed(1)} MiB, rss ${x.rssGrowthMB.toFixed(1)} MiB, for a ${((x.format === 'jsonl' ? r.bytes.jsonl : r.bytes.lines) / 2 ** 20).toFixed(0)} MiB file.`);
  return out.join('\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
