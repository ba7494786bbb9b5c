/**
 * Renders the BENCHMARKS.md sections from a results JSON written by bench/vectorize.bench.ts.
 *
 *   tsx bench/report.ts                                  # print markdown for bench/results/latest.json
 *   tsx bench/report.ts path/to/results.json             # another results file
 *   tsx bench/report.ts --write BENCHMARKS.md            # replace the part of BENCHMARKS.md between
 *                                                        #   <!-- bench:begin --> and <!-- bench:end -->
 *                                                        #   (appended, with the markers, if absent)
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface MachineInfo {
  cpu: string;
  logicalCores: number;
  availableParallelism: number;
  /** getBackend().simd of the native backend, or why it is unknown. */
  simd: string;
  /** SIMD-relevant CPU flags from /proc/cpuinfo (x86) or os.arch(). */
  cpuFlags: string;
  node: string;
  v8: string;
  platform: string;
  arch: string;
  memoryGiB: number;
  backend: { kind: string; simd: string; version: string } | null;
}

/** Whether the bench's command line has `--name`. */
export function flag(name: string): boolean {
  return process.argv.slice(2).includes(`--${name}`);
}

/** The value after `--name` on the bench's command line, or `dflt`. */
export function opt(name: string, dflt: string): string {
  const argv = process.argv.slice(2);
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1]! : dflt;
}

/** A suite's machine table: its heading, the header row and one row (load average start -> end). */
export function machineTable(title: string, m: MachineInfo, loadavg: { start: number[]; end: number[] }): string[] {
  const load = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' ');
  return [
    `### ${title}: machine`,
    '',
    '| CPU | cores (logical / available) | SIMD | Node | OS | memory | load average (start → end) |',
    '|---|---|---|---|---|---|---|',
    `| ${m.cpu} | ${m.logicalCores} / ${m.availableParallelism} | ${m.simd} | ${m.node} | ${m.platform} ${m.arch} | ${m.memoryGiB} GiB | ` +
      `${load(loadavg.start)} → ${load(loadavg.end)} |`,
  ];
}

/** Median (NaN when empty). */
export function median(xs: readonly number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? Number.NaN : n % 2 ? s[(n - 1) >> 1]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** The machine a suite ran on: CPU model and SIMD flags, cores, Node, OS, memory, our backend. */
export function machineInfo(backend: { kind: string; simd: string; version: string } | null): MachineInfo {
  let cpu = os.cpus()[0]?.model?.trim() || 'unknown';
  let cpuFlags = os.arch();
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() || cpu;
    const flags = new Set((/^flags\s*:\s*(.+)$/m.exec(info)?.[1] ?? '').split(/\s+/));
    const simd = ['sse4_2', 'avx2', 'bmi2', 'avx512f', 'avx512bw', 'avx512vl', 'avx512vbmi', 'avx512vbmi2'].filter((f) => flags.has(f));
    if (simd.length) cpuFlags = simd.join(' ');
    if (/asimd/.test([...flags].join(' ')) || /Features\s*:.*asimd/m.test(info)) cpuFlags = 'neon (asimd)';
  } catch {
    /* not Linux */
  }
  return {
    cpu,
    logicalCores: os.cpus().length,
    availableParallelism: os.availableParallelism(),
    simd: backend?.kind === 'native' ? backend.simd : `n/a (backend ${backend?.kind ?? 'not loaded'})`,
    cpuFlags,
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.type()} ${os.release()}`,
    arch: os.arch(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    backend: backend ? { kind: backend.kind, simd: backend.simd, version: backend.version } : null,
  };
}

export interface WorkloadInfo {
  id: string;
  title: string;
  rows: number;
  utf8Bytes: number;
  codeUnits: number;
  codePoints: number;
  nonAsciiRows: number;
  maxLength: number;
}

export interface CaseResult {
  workload: string;
  job: string;
  jobTitle: string;
  key: string;
  label: string;
  kind: 'strings' | 'bytes';
  /** Rows and UTF-8 input bytes processed per call. */
  rows: number;
  utf8Bytes: number;
  exact: boolean;
  verifyDetail: string | null;
  note?: string;
  /** benny (benchmark.js) ops/s: calls per second, from the mean. */
  opsPerSec: number;
  /** Median seconds per call over the samples. */
  medianSec: number;
  meanSec: number;
  rmePercent: number;
  samples: number;
  /** From the median: rows / medianSec and utf8Bytes / medianSec / 1e6. */
  rowsPerSec: number;
  mbPerSec: number;
}

export interface RatioResult {
  name: string;
  workload: string;
  job: string;
  /** Speed of `a` over speed of `b` (= time(b) / time(a)). */
  a: string;
  b: string;
  target: number;
  /** From the benny medians of the two cases. */
  bennyRatio: number | null;
  /** Interleaved A/B rounds in one process: ratio of the medians, and median of per-round ratios. */
  interleaved: { ratio: number; medianOfRatios: number; medianSecA: number; medianSecB: number; rounds: number } | null;
  pass: boolean | null;
}

export interface BenchResults {
  schema: 1;
  date: string;
  durationSec: number;
  machine: MachineInfo;
  config: { quick: boolean; scale: number; vocabSize: number; maxTime: number; minSamples: number; rounds: number; jobs: string[]; workloads: string[] };
  reference: string;
  workloads: WorkloadInfo[];
  cases: CaseResult[];
  ratios: RatioResult[];
  skipped: string[];
  notes: string[];
  hf: { rustVersion: string | null; jsVersion: string | null; verification: { variant: string; lib: string; workload: string; job: string; exact: boolean; detail: string | null }[] };
}

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');

function fmtRate(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

function fmtMs(sec: number): string {
  const ms = sec * 1e3;
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

const fmtX = (r: number | null | undefined) =>
  r == null || !Number.isFinite(r) ? 'n/a' : r >= 0.095 || r <= 0 ? `${r.toFixed(2)}x` : `1/${Math.round(1 / r)}`;

export function renderMarkdown(r: BenchResults): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(`### Machine`, '');
  out.push('| CPU | cores (logical / available) | SIMD (dtesn native) | CPU SIMD flags | Node | V8 | OS | memory |');
  out.push('|---|---|---|---|---|---|---|---|');
  out.push(
    `| ${m.cpu} | ${m.logicalCores} / ${m.availableParallelism} | ${m.simd} | ${m.cpuFlags} | ${m.node} | ${m.v8} | ${m.platform} ${m.arch} | ${m.memoryGiB} GiB |`,
  );
  out.push('');
  out.push(
    `Run ${r.date.slice(0, 19).replace('T', ' ')} UTC, ${Math.round(r.durationSec)} s` +
      (r.config.quick ? ' (**--quick**: smaller workloads, fewer samples; not for publishing)' : '') +
      `. benny (benchmark.js) cases with maxTime ${r.config.maxTime} s, minSamples ${r.config.minSamples}; ` +
      `all contenders in one process, one after another; rates below use each case's **median** time per call. ` +
      `Backend: ${m.backend ? `${m.backend.kind} (simd ${m.backend.simd}, v${m.backend.version})` : 'not loaded'}. ` +
      `Outputs checked against ${r.reference} before timing.`,
  );
  out.push('');

  out.push('### Workloads', '');
  out.push('| id | rows | UTF-8 MB | code points | non-ASCII rows | maxLength | description |');
  out.push('|---|---:|---:|---:|---:|---:|---|');
  for (const w of r.workloads) {
    out.push(`| ${w.id} | ${fmtInt(w.rows)} | ${(w.utf8Bytes / 1e6).toFixed(2)} | ${fmtInt(w.codePoints)} | ${fmtInt(w.nonAsciiRows)} | ${w.maxLength} | ${w.title} |`);
  }
  out.push('');
  out.push(
    `Jobs: **vocab** = \`{ encoding: 'codepoint', vocab }\` (a ${r.config.vocabSize}-character vocabulary: ASCII letters, digits, ` +
      'space, common punctuation, 16 accented letters, 10 CJK characters; unknown = 1); **byt5** = `{ encoding: \'byt5\' }`; ' +
      "**raw** = default options (code points). All: padding 'longest', right side, pad 0, output Int32Array rows x width + Uint8Array mask.",
  );
  out.push('');

  out.push('### Throughput', '');
  for (const w of r.workloads) {
    const cases = r.cases.filter((c) => c.workload === w.id);
    if (!cases.length) continue;
    out.push(`#### (${w.id}) ${w.title}`, '');
    out.push('| job | contender | input | rows/call | median ms/call | rows/s | MB/s (UTF-8 in) | vs dtesn native | exact | ±% | note |');
    out.push('|---|---|---|---:|---:|---:|---:|---:|---|---:|---|');
    for (const c of cases) {
      const native = cases.find((x) => x.job === c.job && x.key === 'native');
      const vs = native ? c.rowsPerSec / native.rowsPerSec : null;
      out.push(
        `| ${c.job} | ${c.label} | ${c.kind} | ${fmtInt(c.rows)} | ${fmtMs(c.medianSec)} | ${fmtRate(c.rowsPerSec)} | ${c.mbPerSec.toFixed(1)} | ${fmtX(vs)} | ` +
          `${c.exact ? 'yes' : `**no**: ${c.verifyDetail}`} | ${c.rmePercent.toFixed(1)} | ${c.note ?? ''} |`,
      );
    }
    out.push('');
  }

  out.push('### Targets', '');
  out.push('Speed ratio A/B = time(B) / time(A). "interleaved" alternates A and B for N rounds in the same process ' +
    '(ratio of the two median times; median of the per-round ratios in brackets) and is the number the pass/fail uses; ' +
    '"benny" divides the two benny medians.');
  out.push('');
  out.push('| ratio | workload | job | target | interleaved | benny | pass |');
  out.push('|---|---|---|---:|---:|---:|---|');
  for (const q of r.ratios) {
    const il = q.interleaved ? `${fmtX(q.interleaved.ratio)} [${fmtX(q.interleaved.medianOfRatios)}], ${q.interleaved.rounds} rounds` : 'n/a';
    out.push(`| ${q.name} | ${q.workload} | ${q.job} | >= ${q.target} | ${il} | ${fmtX(q.bennyRatio)} | ${q.pass == null ? 'n/a' : q.pass ? 'yes' : '**no**'} |`);
  }
  out.push('');

  out.push('### Competitors and exactness', '');
  out.push(
    `- HuggingFace \`tokenizers\` ${r.hf.rustVersion ?? '(not installed)'} (napi-rs binding of the Rust crate) and ` +
      `\`@huggingface/tokenizers\` ${r.hf.jsVersion ?? '(not installed)'} (the JS tokenizer of @huggingface/transformers v4) ` +
      'get tokenizer.json documents built in memory by bench/hf.ts: vocab = BPE with no merges over the single characters ' +
      '(`[PAD]` 0, `[UNK]` 1, vocab[i] -> i + 2, no pre-tokenizer); byt5 = ByteLevel pre-tokenizer (use_regex false) + BPE with ' +
      'no merges over the 256 byte characters (byte + 3) + TemplateProcessing `$A </s>`. The Rust tokenizer pads/truncates ' +
      'itself (tokenizer.json padding BatchLongest + truncation); tokenizers.js has no batch API, the bench truncates ' +
      '(keeping EOS) and pads. Both are timed on a slice of the rows (see rows/call); the Rust `encodeBatch` uses all cores.',
  );
  const hv = r.hf.verification;
  if (hv.length) {
    const bad = hv.filter((v) => !v.exact);
    out.push(
      `- tokenizer.json variants checked: ${[...new Set(hv.map((v) => `${v.variant} (${v.lib})`))].join(', ')} — ` +
        (bad.length ? `**not exact**: ${bad.map((v) => `${v.variant}/${v.lib}/${v.workload}: ${v.detail}`).join('; ')}` : 'all exact on the samples.'),
    );
  }
  const inexact = r.cases.filter((c) => !c.exact);
  out.push(inexact.length
    ? `- Not exact (timed anyway, flagged above): ${inexact.map((c) => `${c.label} (${c.workload}/${c.job})`).join(', ')}.`
    : '- Every timed contender reproduced dtesn\'s ids, attention mask (and lengths, where it has them) exactly on its whole input.');
  out.push('- The C++ floor (bench/floor-addon, built locally with g++ for the bench only) is one N-API call: ' +
    'napi_get_element + napi_get_value_string_utf16 into one reused buffer per row, widened to int32 with zero padding. ' +
    'It copies UTF-16 code units, i.e. it only does the raw job, and equals code points on ASCII; it reads at most width + 1 ' +
    'units of a row and neither validates nor counts a row\'s full length (dtesn must, for sourceLengths and lone surrogates). ' +
    'Both write into arrays allocated once (dtesn through `out`). dtesn does not cross per row: the facade joins the rows in ' +
    'JavaScript and the binding copies them with one N-API call per 4 K units.');
  out.push('- The simdutf contenders (bench/simdutf-addon, simdutf\'s C++ from the `simdutf` crate, built for the bench only) do the raw job ' +
    'in one N-API call: per row a validating `convert_utf8_to_utf32` (bytes) or `napi_get_value_string_utf16` + ' +
    '`convert_utf16le_to_utf32` (strings) into a reused arena, then rows x width copied out with the mask and lengths.');
  for (const s of r.skipped) out.push(`- Skipped: ${s}`);
  for (const n of r.notes) out.push(`- Note: ${n}`);
  out.push('');
  return out.join('\n');
}

const BEGIN = '<!-- bench:begin -->';
const END = '<!-- bench:end -->';

/** Replaces the part of `doc` between the `begin`/`end` markers with `section` (appends both if absent). */
export function spliceInto(doc: string, section: string, begin = BEGIN, end = END): string {
  const body = `${begin}\n${section}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i >= 0 && j > i) return doc.slice(0, i) + body + doc.slice(j + end.length);
  return `${doc.replace(/\s*$/, '')}\n\n${body}\n`;
}

/**
 * The command line of the report scripts: `[results.json] [--write FILE]` renders the results
 * (default `defaultFile`) and prints the markdown, or splices it into FILE between the markers.
 */
export function reportMain<R>(defaultFile: string, render: (r: R) => string, begin = BEGIN, end = END): void {
  const args = process.argv.slice(2);
  const wi = args.indexOf('--write');
  const target = wi >= 0 ? args[wi + 1] : null;
  const file = args.find((a, k) => !a.startsWith('--') && (wi < 0 || k !== wi + 1)) ?? defaultFile;
  const md = render(JSON.parse(readFileSync(file, 'utf8')) as R);
  if (target) {
    const doc = existsSync(target) ? readFileSync(target, 'utf8') : '# Benchmarks\n';
    writeFileSync(target, spliceInto(doc, md, begin, end));
    console.error(`wrote ${target}`);
  } else {
    process.stdout.write(md + '\n');
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  reportMain<BenchResults>(path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', 'latest.json'), renderMarkdown);
}
