/**
 * dtesn-pipeline vectorize benchmark (benny). See bench/README.md.
 *
 *   npm run bench                 # full run (~6-9 min on 2 cores), writes bench/results/latest.json
 *   npm run bench -- --quick      # smoke run on 1/10 of the rows, writes bench/results/quick.json
 *   options: --workloads a,b,c,u  --jobs vocab,byt5,raw  --max-time <s>  --rounds <n>  --out <file>
 *
 * Recommended launcher: `node --expose-gc --import tsx bench/vectorize.bench.ts` (gc() between
 * cases; works without --expose-gc too). The C++ floor addon is built first (g++, local headers,
 * nothing downloaded; skipped when up to date); if it cannot be built its contender is skipped.
 *
 * For every workload and job: build the contenders, check each one's output against dtesn's
 * (ids, mask, lengths; all rows it processes), run one benny suite, then measure the target ratios
 * again with interleaved A/B rounds. Prints a markdown table and writes the results JSON that
 * bench/report.ts renders into BENCHMARKS.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import benny from 'benny';
import {
  type Contender,
  type ContenderEnv,
  diffOut,
  type FloorAddon,
  type SimdutfAddon,
  JOBS,
  type JobId,
  loadHf,
  makeContenders,
  reference,
  sliceInput,
} from './contenders.js';
import { buildFloorAddon } from './floor-addon/build.mjs';
import { buildSimdutfAddon } from './simdutf-addon/build.mjs';
import { BYT5_VARIANTS, charVocabTokenizer } from './hf.js';
import { loadOurs } from './ours.js';
import { machineInfo, renderMarkdown, type BenchResults, type CaseResult, type MachineInfo, type RatioResult, flag, opt } from './report.js';
import { CHAR_VOCAB, WORKLOADS, type Workload } from './workloads.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

// ------------------------------------------------------------------------------------------------
// Arguments.

const QUICK = flag('quick');
const SCALE = Number(opt('scale', QUICK ? '0.1' : '1'));
const MAX_TIME = Number(opt('max-time', QUICK ? '0.5' : '1.5'));
const MIN_SAMPLES = Number(opt('min-samples', QUICK ? '3' : '5'));
const ROUNDS = Number(opt('rounds', QUICK ? '5' : '15'));
const WORKLOAD_IDS = opt('workloads', 'a,b,c,u').split(',').filter(Boolean);
const JOB_IDS = opt('jobs', 'vocab,byt5,raw').split(',').filter(Boolean) as JobId[];
const OUT_FILE = path.resolve(opt('out', path.join(here, 'results', QUICK ? 'quick.json' : 'latest.json')));

for (const j of JOB_IDS) if (!JOBS[j]) throw new Error(`unknown job ${j}`);
for (const w of WORKLOAD_IDS) if (!WORKLOADS[w]) throw new Error(`unknown workload ${w}`);

// ------------------------------------------------------------------------------------------------
// Helpers.

let sink: unknown; // keeps results alive so nothing is optimized away
const gc: (() => void) | undefined = (globalThis as { gc?: () => void }).gc;

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

function log(msg: string) {
  process.stderr.write(`${msg}\n`);
}


function loadFloor(notes: string[]): FloorAddon | undefined {
  try {
    const file = buildFloorAddon({ quiet: false });
    return require(file) as FloorAddon;
  } catch (e) {
    notes.push(`C++ floor addon not built: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
}

function loadSimdutf(notes: string[]): SimdutfAddon | undefined {
  try {
    const file = buildSimdutfAddon({ quiet: false });
    return require(file) as SimdutfAddon;
  } catch (e) {
    notes.push(`simdutf addon not built: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
}

/** Seconds per call of `fn`, averaged over `reps` calls. */
function timeSync(fn: () => unknown, reps: number): number {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) sink = fn();
  return (performance.now() - t0) / 1e3 / reps;
}

/** Interleaved A/B: speed(A)/speed(B) from alternating rounds, each >= ~60 ms of calls. */
function interleave(a: () => unknown, b: () => unknown, rounds: number) {
  const target = QUICK ? 0.02 : 0.06;
  const ta = timeSync(a, 1);
  const tb = timeSync(b, 1);
  const repsA = Math.max(1, Math.round(target / Math.max(ta, 1e-6)));
  const repsB = Math.max(1, Math.round(target / Math.max(tb, 1e-6)));
  const A: number[] = [];
  const B: number[] = [];
  const R: number[] = [];
  for (let r = 0; r < rounds; r++) {
    gc?.();
    let x: number;
    let y: number;
    if (r % 2 === 0) {
      x = timeSync(a, repsA);
      y = timeSync(b, repsB);
    } else {
      y = timeSync(b, repsB);
      x = timeSync(a, repsA);
    }
    A.push(x);
    B.push(y);
    R.push(y / x);
  }
  const medianSecA = median(A);
  const medianSecB = median(B);
  return { ratio: medianSecB / medianSecA, medianOfRatios: median(R), medianSecA, medianSecB, rounds };
}

interface RatioSpec {
  name: string;
  workload: string;
  job: JobId;
  a: string;
  b: string;
  target: number;
}

/** The ratios the project's performance targets are stated in. */
function ratioSpecs(workload: string, jobs: JobId[]): RatioSpec[] {
  const specs: RatioSpec[] = [];
  for (const job of jobs) {
    if (workload === 'a') {
      specs.push({ name: 'native / fallback', workload, job, a: 'native', b: 'fallback', target: 1.5 });
      specs.push({ name: 'vectorizeBytes / vectorize (native)', workload, job, a: 'native-bytes', b: 'native', target: 2.5 });
      if (job === 'raw') specs.push({ name: 'native / C++ floor', workload, job, a: 'native', b: 'floor', target: 1.0 });
    }
    if (workload === 'c') specs.push({ name: 'native / fallback', workload, job, a: 'native', b: 'fallback', target: 2.5 });
    if ((workload === 'b' || workload === 'u') && job === 'raw') {
      specs.push({ name: 'vectorizeBytes / simdutf bytes', workload, job, a: 'native-bytes', b: 'simdutf-bytes', target: 1.0 });
      specs.push({ name: 'native / C++ floor', workload, job, a: 'native', b: 'floor', target: 1.0 });
      specs.push({ name: 'native / simdutf strings', workload, job, a: 'native', b: 'simdutf-strings', target: 1.0 });
    }
  }
  return specs;
}

// ------------------------------------------------------------------------------------------------

async function verify(env: ContenderEnv, c: Contender): Promise<string | null> {
  try {
    const got = await c.run();
    const want = reference(env, c.input.texts, c.expect).out;
    return diffOut(got, want);
  } catch (e) {
    return `threw ${(e as Error).message}`;
  }
}

/** Extra exactness check of both ByT5 tokenizer.json variants and the char-vocab one, on the first 2,000 rows. */
async function verifyHfVariants(env: ContenderEnv, w: Workload): Promise<BenchResults['hf']['verification']> {
  const res: BenchResults['hf']['verification'] = [];
  const input = sliceInput(w, Math.min(w.rows, 2_000));
  const { hf } = env;
  const cases: { variant: string; job: JobId; build: (max: number | null) => object; eos: number | null }[] = [
    { variant: 'char BPE (no merges)', job: 'vocab', build: (m) => charVocabTokenizer(CHAR_VOCAB, m), eos: null },
    ...Object.entries(BYT5_VARIANTS).map(([variant, build]) => ({ variant, job: 'byt5' as JobId, build, eos: 1 })),
  ];
  for (const cse of cases) {
    const want = reference(env, input.texts, JOBS[cse.job].options(w)).out;
    const width = want.width;
    for (const lib of ['rust', 'js'] as const) {
      if (!hf[lib]) continue;
      let detail: string | null;
      try {
        let rowsIds: number[][];
        if (lib === 'rust') {
          const tk = hf.rust.Tokenizer.fromString(JSON.stringify(cse.build(w.maxLength)));
          rowsIds = (await tk.encodeBatch(input.texts)).map((e: any) => e.getIds().slice(0, e.getAttentionMask().reduce((s: number, x: number) => s + x, 0)));
        } else {
          const tk = new hf.js.Tokenizer(cse.build(null), {});
          rowsIds = input.texts.map((t) => {
            let r: number[] = tk.encode(t).ids;
            if (r.length > w.maxLength) {
              r = r.slice(0, cse.eos == null ? w.maxLength : w.maxLength - 1);
              if (cse.eos != null) r.push(cse.eos);
            }
            return r;
          });
        }
        detail = null;
        for (let i = 0; i < input.rows && !detail; i++) {
          const exp = Array.from(want.ids.subarray(i * width, i * width + want.lengths![i]));
          const got = rowsIds[i];
          if (got.length !== exp.length || got.some((x, k) => x !== exp[k])) {
            const k = got.findIndex((x, kk) => x !== exp[kk]);
            detail = `row ${i}: ${got.length} ids, want ${exp.length}; first difference at ${k < 0 ? Math.min(got.length, exp.length) : k}`;
          }
        }
      } catch (e) {
        detail = `threw ${(e as Error).message.split('\n')[0]}`;
      }
      res.push({ variant: cse.variant, lib, workload: w.id, job: cse.job, exact: detail == null, detail });
    }
  }
  return res;
}

async function main() {
  const started = Date.now();
  const notes: string[] = [];
  const skipped = new Set<string>();
  const ours = await loadOurs();
  notes.push(...ours.notes);
  const hf = await loadHf();
  notes.push(...hf.notes);
  const floor = JOB_IDS.includes('raw') ? loadFloor(notes) : undefined;
  const simdutf = JOB_IDS.includes('raw') ? loadSimdutf(notes) : undefined;
  const env: ContenderEnv = { ours, hf, floor, simdutf };
  const machine = machineInfo(ours.backend ?? null);
  const refName = ours.vectorize ? `dtesn vectorize (${ours.backend?.kind ?? '?'} backend)` : ours.fallbackReady ? 'dtesn fallback' : 'naive JS (dtesn not loaded)';
  log(`dtesn bench: ${machine.cpu}, ${machine.logicalCores} cores, Node ${machine.node}, backend ${machine.backend?.kind ?? 'not loaded'} (simd ${machine.simd})`);
  log(`reference: ${refName}; gc between cases: ${gc ? 'yes' : 'no (run node with --expose-gc)'}`);
  for (const n of notes) log(`note: ${n}`);

  const results: BenchResults = {
    schema: 1,
    date: new Date().toISOString(),
    durationSec: 0,
    machine,
    config: { quick: QUICK, scale: SCALE, vocabSize: CHAR_VOCAB.length, maxTime: MAX_TIME, minSamples: MIN_SAMPLES, rounds: ROUNDS, jobs: JOB_IDS, workloads: WORKLOAD_IDS },
    reference: refName,
    workloads: [],
    cases: [],
    ratios: [],
    skipped: [],
    notes,
    hf: { rustVersion: hf.rustVersion ?? null, jsVersion: hf.jsVersion ?? null, verification: [] },
  };

  for (const wid of WORKLOAD_IDS) {
    const t0 = performance.now();
    const w = WORKLOADS[wid](SCALE);
    log(`\n== workload (${w.id}) ${w.title}: ${w.rows} rows, ${(w.utf8Bytes / 1e6).toFixed(2)} MB UTF-8 (generated in ${((performance.now() - t0) / 1e3).toFixed(1)} s)`);
    results.workloads.push({
      id: w.id, title: w.title, rows: w.rows, utf8Bytes: w.utf8Bytes, codeUnits: w.codeUnits,
      codePoints: w.codePoints, nonAsciiRows: w.nonAsciiRows, maxLength: w.maxLength,
    });
    if (JOB_IDS.includes('vocab') || JOB_IDS.includes('byt5')) results.hf.verification.push(...(await verifyHfVariants(env, w)));

    const byJob = new Map<JobId, Map<string, Contender>>();
    for (const jobId of JOB_IDS) {
      const { contenders, skipped: sk } = makeContenders(w, jobId, env);
      sk.forEach((s) => skipped.add(s));
      const verified = new Map<string, string | null>();
      for (const c of contenders) {
        const d = await verify(env, c);
        verified.set(c.key, d);
        log(`  verify ${w.id}/${jobId} ${c.label} (${c.input.rows} rows): ${d == null ? 'exact' : `NOT EXACT: ${d}`}`);
      }
      const runnable = contenders.filter((c) => !verified.get(c.key)?.startsWith('threw'));
      byJob.set(jobId, new Map(runnable.map((c) => [c.key, c])));

      const cases = runnable.map((c) =>
        benny.add(
          c.label,
          () => {
            gc?.();
            const run = c.run;
            return c.key === 'hf-rust'
              ? async () => {
                  sink = await run();
                }
              : () => {
                  sink = run();
                };
          },
          { maxTime: MAX_TIME, minSamples: MIN_SAMPLES },
        ),
      );
      const summary = await benny.suite(`(${w.id}) ${JOBS[jobId].title}`, ...cases, benny.cycle(), benny.complete());
      for (const res of summary.results) {
        const c = runnable.find((x) => x.label === res.name)!;
        const med = res.details.median;
        const cr: CaseResult = {
          workload: w.id, job: jobId, jobTitle: JOBS[jobId].title, key: c.key, label: c.label, kind: c.kind,
          rows: c.input.rows, utf8Bytes: c.input.utf8Bytes,
          exact: verified.get(c.key) == null, verifyDetail: verified.get(c.key) ?? null, note: c.note,
          opsPerSec: res.ops, medianSec: med, meanSec: res.details.mean, rmePercent: res.details.relativeMarginOfError,
          samples: res.samples, rowsPerSec: c.input.rows / med, mbPerSec: c.input.utf8Bytes / med / 1e6,
        };
        results.cases.push(cr);
        log(`  ${cr.label.padEnd(48)} ${(med * 1e3).toFixed(2).padStart(9)} ms/call  ${(cr.rowsPerSec / 1e6).toFixed(3).padStart(8)} Mrows/s  ${cr.mbPerSec.toFixed(1).padStart(7)} MB/s`);
      }
    }

    // Target ratios: interleaved A/B rounds while this workload's contenders are alive.
    for (const spec of ratioSpecs(w.id, JOB_IDS)) {
      const cs = byJob.get(spec.job);
      const A = cs?.get(spec.a);
      const B = cs?.get(spec.b);
      const ca = results.cases.find((c) => c.workload === w.id && c.job === spec.job && c.key === spec.a);
      const cb = results.cases.find((c) => c.workload === w.id && c.job === spec.job && c.key === spec.b);
      const bennyRatio = ca && cb ? cb.medianSec / ca.medianSec : null;
      let interleaved: RatioResult['interleaved'] = null;
      if (A && B) {
        interleaved = interleave(A.run, B.run, ROUNDS);
        log(`  ratio ${spec.name} (${w.id}/${spec.job}): interleaved ${interleaved.ratio.toFixed(2)}x [median of ratios ${interleaved.medianOfRatios.toFixed(2)}x], benny ${bennyRatio?.toFixed(2)}x, target >= ${spec.target}`);
      } else {
        log(`  ratio ${spec.name} (${w.id}/${spec.job}): n/a (${!A ? spec.a : spec.b} not available)`);
      }
      results.ratios.push({ ...spec, bennyRatio, interleaved, pass: interleaved ? interleaved.ratio >= spec.target : null });
    }
    byJob.clear();
    gc?.();
  }

  results.skipped = [...skipped];
  results.durationSec = (Date.now() - started) / 1e3;
  mkdirSync(path.dirname(OUT_FILE), { recursive: true });
  writeFileSync(OUT_FILE, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write('\n' + renderMarkdown(results) + '\n');
  log(`wrote ${path.relative(process.cwd(), OUT_FILE)} in ${Math.round(results.durationSec)} s total`);
  void sink;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
