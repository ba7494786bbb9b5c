/**
 * Renders the pipeline benchmark section of BENCHMARKS.md from bench/results/pipeline.json
 * (written by bench/pipeline.bench.ts).
 *
 *   tsx bench/pipeline-report.ts                              # print markdown for bench/results/pipeline.json
 *   tsx bench/pipeline-report.ts path/to/results.json         # another results file
 *   tsx bench/pipeline-report.ts --write BENCHMARKS.md        # replace the part of BENCHMARKS.md between
 *                                                             #   <!-- bench-pipeline:begin --> and
 *                                                             #   <!-- bench-pipeline:end --> (appended if absent)
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type MachineInfo, machineTable, reportMain } from './report.js';

/** The original DTESN implementation's reported rate for a no-op batch, items/s. */
export const ORIGINAL_ITEMS_PER_SEC = 24_741;

export interface Target {
  name: string;
  /** Measured value and the bound it is compared with. */
  value: number | null;
  target: string;
  pass: boolean | null;
  detail: string;
}

export interface RateCase {
  id: string;
  label: string;
  /** Rows per call (batch) and concurrent callers (1 = awaited one after another). */
  batchRows: number;
  concurrency: number;
  rowsPerRound: number;
  rounds: number;
  /** Median over rounds of (rows of the round / seconds of the round). */
  medianRowsPerSec: number;
  /** All rows of all rounds / all their seconds. */
  meanRowsPerSec: number;
  /** The slowest and the fastest round (absent in results written before they were kept). */
  minRowsPerSec?: number;
  maxRowsPerSec?: number;
  ratioToOriginal: number;
  note?: string;
}

export interface FileCase {
  format: 'jsonl' | 'lines';
  key: string;
  label: string;
  rounds: number;
  medianSec: number;
  rowsPerSec: number;
  mbPerSec: number;
}

export interface ScalingVariant {
  id: string;
  label: string;
  /** Median ms per call, rows/s and MB/s (UTF-8 in) for inline, 1 worker, 2 workers (...). */
  inline: { medianMs: number; rowsPerSec: number; mbPerSec: number };
  workers: { workers: number; medianMs: number; rowsPerSec: number; mbPerSec: number; poolBatches: number; inlineBatches: number }[];
  /** time(1 worker) / time(k workers) for the largest k, and that / k. */
  speedup: number;
  efficiency: number;
  rounds: number;
}

export interface RateRun {
  offered: number;
  /** Arrivals actually scheduled in the measured window / its length. */
  offeredActual: number;
  /** Completions inside the measured window / its length. */
  achieved: number;
  /** null = infinite (more than 50% / 1% of the window's requests unfinished). */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Requests of the window not completed by the drain deadline (counted as infinite latency). */
  unfinished: number;
  shed: number;
  meanBatchRows: number;
  finalTarget: number;
  ok: boolean;
  /** 2 = the repeat of a run that kept up but missed the p99 (both are listed; the better one counts). */
  attempt?: number;
}

export interface BatchingConfig {
  id: string;
  label: string;
  config: Record<string, unknown>;
  how: string;
  runs: RateRun[];
  /** Highest offered rate with achieved >= 95% of offered and p99 <= target. */
  capacity: number | null;
  /** How late the synthetic handler's delays ended (ms). */
  serviceOvershootMs: { mean: number; p99: number } | null;
}

export interface PipelineBenchResults {
  schema: 1;
  kind: 'pipeline';
  date: string;
  durationSec: number;
  machine: MachineInfo;
  loadavg: { start: number[]; end: number[] };
  config: Record<string, unknown>;
  vectorize: { workload: string; options: Record<string, unknown>; cases: RateCase[] };
  file: {
    lines: number;
    jsonlBytes: number;
    linesBytes: number;
    paths: { jsonl: string; lines: string };
    generatedSec: number | null;
    verify: { format: string; contender: string; rows: number; exact: boolean; detail: string | null }[];
    cases: FileCase[];
    ratios: { format: string; a: string; b: string; ratio: number; target: number | null }[];
  };
  scaling: {
    input: string;
    rows: number;
    utf8Bytes: number;
    variants: ScalingVariant[];
    /** Fixed CPU work / memory traffic through processBatch on the same pools, same rounds. */
    controls: { id: string; label: string; w1Ms: number; w2Ms: number; speedup: number }[];
    auto: { calls: number; batches: { inline: number; pool: number }; decisions: { inline: number; pool: number }; medianMs: number } | null;
  };
  batching: {
    handler: string;
    targetLatencyMs: number;
    windowSec: number;
    warmupSec: number;
    drainSec: number;
    arrivals: string;
    serviceOvershootMs: { mean: number; p99: number } | null;
    configs: BatchingConfig[];
  };
  targets: Target[];
  notes: string[];
}

const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');

export function fmtRate(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

const fmtMs = (ms: number | null) => (ms == null || !Number.isFinite(ms) ? '∞ (unfinished)' : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
const fmtX = (r: number | null | undefined) => (r == null || !Number.isFinite(r) ? 'n/a' : r >= 100 ? `${r.toFixed(0)}x` : `${r.toFixed(2)}x`);

export function renderPipelineMarkdown(r: PipelineBenchResults): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(...machineTable('Pipeline', m, r.loadavg));
  out.push('');
  out.push(
    `Run ${r.date.slice(0, 19).replace('T', ' ')} UTC, ${Math.round(r.durationSec)} s` +
      (r.config.quick ? ' (**--quick**: smaller inputs, shorter runs; not for publishing)' : '') +
      '. Everything runs in one process; contenders of one comparison alternate round by round and the figures are ' +
      'medians over rounds (a round\'s rate is its rows / its wall time on the monotonic clock, i.e. a true mean, ' +
      'never an average of per-batch rates).',
  );
  out.push('');

  // 1.
  const v = r.vectorize;
  out.push(`### Pipeline: batches and streams (vs the original ${ORIGINAL_ITEMS_PER_SEC.toLocaleString('en-US')} items/s)`, '');
  out.push(`Workload: ${v.workload}; options \`${JSON.stringify(v.options)}\`.`, '');
  out.push('| case | rows/call | callers | rows/round | rounds | rows/s (median) | rounds: slowest - fastest | rows/s (total / total) | vs original |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const c of v.cases) {
    const range = c.minRowsPerSec != null && c.maxRowsPerSec != null ? `${fmtRate(c.minRowsPerSec)} - ${fmtRate(c.maxRowsPerSec)}` : 'n/a';
    out.push(
      `| ${c.label} | ${fmtInt(c.batchRows)} | ${c.concurrency} | ${fmtInt(c.rowsPerRound)} | ${c.rounds} | ${fmtRate(c.medianRowsPerSec)} | ` +
        `${range} | ${fmtRate(c.meanRowsPerSec)} | ${fmtX(c.ratioToOriginal)} |`,
    );
  }
  out.push('');
  const gen = v.cases.find((c) => c.id === 'source-async');
  const sa = v.cases.find((c) => c.id === 'stream-async');
  if (gen && sa) {
    out.push(
      `The async generator alone (\`for await\` over it, no work) yields ${fmtRate(gen.medianRowsPerSec)} items/s, ` +
        `${fmtX(gen.ratioToOriginal)} the original: one promise and microtask turn per item, before any vectorizing. ` +
        `pipeline.stream over it runs at ${((100 * sa.medianRowsPerSec) / gen.medianRowsPerSec).toFixed(0)}% of that rate.`,
      '',
    );
  }

  const conc = [10, 100, 1000]
    .map((n) => [v.cases.find((c) => c.id === `conc64-${n}`), v.cases.find((c) => c.id === `core-conc64-${n}`)] as const)
    .filter((x): x is readonly [RateCase, RateCase] => x[0] !== undefined && x[1] !== undefined);
  if (conc.length) {
    out.push(
      'With 64 concurrent callers, 64 results wait in the microtask queue at any time (41 MB of outputs at 1,000 rows, ' +
        'which then outlive the scavenges that free them in the sequential case). The core called in the same pattern ' +
        `(\`await Promise.resolve(vectorize(...))\`): ${conc.map(([p, c]) => `${fmtInt(p.batchRows)} rows ${fmtX(c.ratioToOriginal)} (pipeline / core ${(p.medianRowsPerSec / c.medianRowsPerSec).toFixed(2)})`).join(', ')}.`,
      '',
    );
  }

  // 2.
  const f = r.file;
  out.push('### Pipeline: files', '');
  out.push(
    `${fmtInt(f.lines)} lines of workload (a)-like text: JSONL \`{"id":n,"text":"..."}\` ${(f.jsonlBytes / 1e6).toFixed(1)} MB, ` +
      `plain lines ${(f.linesBytes / 1e6).toFixed(1)} MB, in ${path.dirname(f.paths.jsonl)} (page cache warm). ` +
      'Batches of 1,000 rows, `{ maxLength: 128 }`. MB/s = file bytes / time.',
  );
  out.push('');
  out.push('| format | contender | rounds | median s/pass | rows/s | MB/s (file) |');
  out.push('|---|---|---:|---:|---:|---:|');
  for (const c of f.cases) out.push(`| ${c.format} | ${c.label} | ${c.rounds} | ${c.medianSec.toFixed(2)} | ${fmtRate(c.rowsPerSec)} | ${c.mbPerSec.toFixed(1)} |`);
  out.push('');
  for (const q of f.ratios) out.push(`- ${q.format}: ${q.a} / ${q.b} = **${fmtX(q.ratio)}**${q.target != null ? ` (target >= ${q.target}x)` : ''}`);
  const bad = f.verify.filter((x) => !x.exact);
  out.push(
    `- Verified before timing: ${f.verify.map((x) => `${x.format}/${x.contender} (${fmtInt(x.rows)} rows)`).join(', ')} — ` +
      (bad.length ? `**differences**: ${bad.map((x) => `${x.format}/${x.contender}: ${x.detail}`).join('; ')}` : 'identical batches (rows, width, ids, mask, lengths).'),
  );
  out.push('');

  // 3.
  const s = r.scaling;
  out.push('### Pipeline: worker scaling (vectorizeBytes)', '');
  out.push(`Input: ${s.input}: ${fmtInt(s.rows)} rows, ${(s.utf8Bytes / 1e6).toFixed(1)} MB UTF-8.`, '');
  out.push('| variant | inline ms | 1 worker ms | 2 workers ms | inline rows/s | 1 worker rows/s | 2 workers rows/s | 2w MB/s | speedup 2w/1w | efficiency | pool batches (1w, 2w) | rounds |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|');
  for (const x of s.variants) {
    const w1 = x.workers.find((w) => w.workers === 1);
    const w2 = x.workers.find((w) => w.workers === 2);
    out.push(
      `| ${x.label} | ${x.inline.medianMs.toFixed(1)} | ${w1?.medianMs.toFixed(1) ?? 'n/a'} | ${w2?.medianMs.toFixed(1) ?? 'n/a'} | ` +
        `${fmtRate(x.inline.rowsPerSec)} | ${fmtRate(w1?.rowsPerSec ?? NaN)} | ${fmtRate(w2?.rowsPerSec ?? NaN)} | ${w2?.mbPerSec.toFixed(0) ?? 'n/a'} | ` +
        `${fmtX(x.speedup)} | ${x.efficiency.toFixed(2)} | ${w1?.poolBatches ?? '-'}, ${w2?.poolBatches ?? '-'} | ${x.rounds} |`,
    );
  }
  for (const c of s.controls ?? []) {
    out.push(`| ${c.label} | - | ${c.w1Ms.toFixed(1)} | ${c.w2Ms.toFixed(1)} | | | | | ${fmtX(c.speedup)} | ${(c.speedup / 2).toFixed(2)} | | ${s.variants[0]?.rounds ?? ''} |`);
  }
  if (s.auto) {
    out.push('');
    out.push(
      `Cost model left alone (2 workers, ${s.auto.calls} calls, first variant's input): median ${s.auto.medianMs.toFixed(1)} ms/call; ` +
        `batches inline ${s.auto.batches.inline} / pool ${s.auto.batches.pool}; decisions inline ${s.auto.decisions.inline} / pool ${s.auto.decisions.pool}.`,
    );
  }
  out.push('');

  // 4.
  const b = r.batching;
  out.push('### Pipeline: micro-batching under open-loop load', '');
  out.push(
    `Single-row \`submit\` requests, ${b.arrivals}; each rate runs ${b.warmupSec} s of warm-up then a ${b.windowSec} s measured window; ` +
      `requests of the window not done ${b.drainSec} s after it are counted as unfinished (infinite latency). Handler: ${b.handler}` +
      (b.serviceOvershootMs ? ` Measured handler overshoot: mean ${b.serviceOvershootMs.mean.toFixed(3)} ms, p99 ${b.serviceOvershootMs.p99.toFixed(3)} ms.` : '') +
      ` Latency = completion − scheduled arrival (so generator lag counts). Capacity = highest offered rate with achieved >= 95% ` +
      `of offered and p99 <= ${b.targetLatencyMs} ms.`,
  );
  out.push('');
  for (const c of b.configs) {
    out.push(`#### ${c.label} — capacity ${c.capacity == null ? 'none' : `**${fmtInt(c.capacity)} rows/s**`}`, '');
    out.push(
      `Config \`${JSON.stringify(c.config)}\`; ${c.how}` +
        (c.serviceOvershootMs ? ` Handler delays ended late by ${c.serviceOvershootMs.mean.toFixed(2)} ms on average (p99 ${c.serviceOvershootMs.p99.toFixed(2)} ms).` : ''),
      '',
    );
    out.push('| offered rows/s | actual offered | achieved rows/s | p50 ms | p99 ms | mean batch rows | final target | unfinished | shed | ok |');
    out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const x of [...c.runs].sort((p, q) => p.offered - q.offered)) {
      out.push(
        `| ${fmtInt(x.offered)} | ${fmtInt(x.offeredActual)} | ${fmtInt(x.achieved)} | ${fmtMs(x.p50Ms)} | ${fmtMs(x.p99Ms)} | ` +
          `${x.meanBatchRows.toFixed(1)} | ${x.finalTarget} | ${fmtInt(x.unfinished)} | ${fmtInt(x.shed)} | ${x.ok ? 'yes' : 'no'}${(x.attempt ?? 1) > 1 ? ' (repeat)' : ''} |`,
      );
    }
    out.push('');
  }

  out.push('### Pipeline: targets', '');
  out.push('| target | measured | bound | pass | detail |');
  out.push('|---|---:|---|---|---|');
  for (const t of r.targets) {
    out.push(`| ${t.name} | ${t.value == null ? 'n/a' : fmtX(t.value).replace(/x$/, '') } | ${t.target} | ${t.pass == null ? 'n/a' : t.pass ? 'yes' : '**no**'} | ${t.detail} |`);
  }
  out.push('');
  for (const n of r.notes) out.push(`- Note: ${n}`);
  if (r.notes.length) out.push('');
  return out.join('\n');
}

const BEGIN = '<!-- bench-pipeline:begin -->';
const END = '<!-- bench-pipeline:end -->';

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  reportMain<PipelineBenchResults>(
    path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', 'pipeline.json'),
    renderPipelineMarkdown,
    BEGIN,
    END,
  );
}
