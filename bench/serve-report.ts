/**
 * Renders the HTTP service section of BENCHMARKS.md from bench/results/serve.json (written by
 * bench/serve.bench.ts).
 *
 *   tsx bench/serve-report.ts                              # print markdown for bench/results/serve.json
 *   tsx bench/serve-report.ts path/to/results.json         # another results file
 *   tsx bench/serve-report.ts --write BENCHMARKS.md        # replace the part of BENCHMARKS.md between
 *                                                          #   <!-- bench-serve:begin --> and
 *                                                          #   <!-- bench-serve:end --> (appended if absent)
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmtRate } from './pipeline-report.js';
import { type MachineInfo, machineTable, reportMain } from './report.js';
import { type OpenLoopResults, renderOpenLoop } from './serve-open.js';

export const SERVE_BEGIN = '<!-- bench-serve:begin -->';
export const SERVE_END = '<!-- bench-serve:end -->';

/** One autocannon run against one point. */
export interface ServeRun {
  round: number;
  durationSec: number;
  /** 2xx answers / duration. */
  requestsPerSec: number;
  textsPerSec: number;
  /** autocannon's latency percentiles, ms (2xx and non-2xx answers alike). */
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Rows per batch the pipeline ran during the run (from /metrics: dtesn_batch_size sum / count). */
  meanBatchRows: number | null;
}

export interface ServePoint {
  payload: string;
  textsPerRequest: number;
  connections: number;
  runs: ServeRun[];
  /** Medians over the rounds. */
  requestsPerSec: number;
  textsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  meanBatchRows: number | null;
  /** Lowest and highest requests/s over the rounds (how noisy the point was). */
  requestsPerSecRange: [number, number];
}

export interface ServeBenchResults {
  schema: 1;
  kind: 'serve';
  date: string;
  durationSec: number;
  machine: MachineInfo;
  loadavg: { start: number[]; end: number[] };
  config: { quick: boolean; durationSec: number; rounds: number; connections: number[]; options: Record<string, unknown>; server: string; client: string };
  verified: { payload: string; exact: boolean; detail: string | null }[];
  points: ServePoint[];
  /** The open-loop part (null when not run). */
  open: OpenLoopResults | null;
  notes: string[];
}

const fmtMs = (ms: number) => (!Number.isFinite(ms) ? 'n/a' : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

export function renderServeMarkdown(r: ServeBenchResults): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(...machineTable('HTTP service (`dtesn serve`)', m, r.loadavg));
  out.push('');
  out.push(
    `Run ${r.date.slice(0, 19).replace('T', ' ')} UTC, ${Math.round(r.durationSec)} s` +
      (r.config.quick ? ' (**--quick**: short runs; not for publishing)' : '') +
      `. Command: \`npm run bench:serve\`. Server: ${r.config.server} Client: ${r.config.client} ` +
      `Each point runs ${r.config.durationSec} s per round, ${r.config.rounds} rounds (the points alternate within a round); ` +
      'figures are **medians over the rounds**, with the lowest and highest requests/s beside them. ' +
      `Request options \`${JSON.stringify(r.config.options)}\`.`,
  );
  out.push('');
  if (r.open) out.push(...renderOpenLoop(r.open));
  if (!r.points.length) return out.join('\n');
  out.push('**Closed loop** (autocannon, throughput):');
  out.push('');
  out.push('| texts / request | connections | requests/s (median) | requests/s (min – max) | texts/s | p50 ms | p99 ms | mean rows per pipeline batch | non-2xx / errors |');
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const p of r.points) {
    const bad = p.runs.reduce((a, x) => a + x.non2xx, 0);
    const errs = p.runs.reduce((a, x) => a + x.errors, 0);
    out.push(
      `| ${p.textsPerRequest} | ${p.connections} | ${fmtRate(p.requestsPerSec)} | ${fmtRate(p.requestsPerSecRange[0])} – ${fmtRate(p.requestsPerSecRange[1])} | ` +
        `${fmtRate(p.textsPerSec)} | ${fmtMs(p.p50Ms)} | ${fmtMs(p.p99Ms)} | ${p.meanBatchRows == null ? 'n/a' : p.meanBatchRows.toFixed(1)} | ${bad} / ${errs} |`,
    );
  }
  out.push('');
  const bad = r.verified.filter((v) => !v.exact);
  out.push(
    `- Verified before timing: ${r.verified.map((v) => v.payload).join(', ')} — ` +
      (bad.length ? `**differences**: ${bad.map((v) => `${v.payload}: ${v.detail}`).join('; ')}` : 'the JSON answers equal the core `vectorize` of the same texts exactly.'),
  );
  out.push('- autocannon records latency in whole milliseconds: p50 "1.00" means under ~1.5 ms.');
  for (const n of r.notes) out.push(`- Note: ${n}`);
  out.push('');
  return out.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  reportMain<ServeBenchResults>(path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', 'serve.json'), renderServeMarkdown, SERVE_BEGIN, SERVE_END);
}
