/**
 * int64 ids and masks (issue 17): `dtype: 'int64', maskDtype: 'int64'` (BigInt64Array ids and
 * mask, what ONNX Runtime and transformers.js take) against int32 + uint8 on the same rows, and
 * against int32 + uint8 followed by `BigInt64Array.from(ids, BigInt)` and the same for the mask
 * (the code a user writes otherwise; transformers.js builds its tensors that way).
 *
 *   npm run bench:int64                                   # ~2 min, writes BENCHMARKS.md
 *   node --expose-gc --import tsx bench/int64.bench.ts [--rounds 11] [--write BENCHMARKS.md]
 *
 * Workloads (a) (100,000 rows of 20-120 ASCII characters, maxLength 128, in 1,000-row batches: the
 * issue's 1,000 x 128 ByT5 batch) and (c) (10,000 rows of ~2,000 characters, maxLength 2048, in
 * 100-row batches), ByT5 ids, from strings (`vectorize`) and from bytes (`vectorizeBytes`), with
 * fresh outputs (the default) and with `out` arrays reused across the batches. One round runs
 * every batch of the workload once per contender; int32 and int64 alternate in ABBA order, with
 * gc() between rounds; figures are medians over the rounds, the ratio the median of the rounds'
 * ratios. The conversion contender is timed over every batch in fewer rounds (it is ~100x slower).
 * Targets: int64 >= 0.8x the speed of int32 on (a) and (c); >= 10x int32 + BigInt64Array.from.
 *
 * Runs from the compiled package (dist/): `npm run bench:int64` compiles first.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { getBackend, vectorize, vectorizeBytes } from '../dist/index.js';
import { flag, machineInfo, machineTable, median, opt, spliceInto } from './report.js';
import { type Workload, workloadA, workloadC } from './workloads.js';

const QUICK = flag('quick');
const ROUNDS = Number(opt('rounds', QUICK ? '3' : '11'));
const CONVERT_ROUNDS = QUICK ? 1 : 3;
const WRITE = opt('write', '');
export const INT64_BEGIN = '<!-- bench-int64:begin -->';
export const INT64_END = '<!-- bench-int64:end -->';

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const log = (msg: string) => process.stderr.write(`${msg}\n`);

type Input = 'strings' | 'bytes';
type Outputs = 'fresh' | 'reused';

interface Case {
  workload: string;
  title: string;
  batchRows: number;
  input: Input;
  outputs: Outputs;
  int32Ms: number;
  int64Ms: number;
  /** Median over the rounds of int32 time / int64 time: int64's speed relative to int32's. */
  ratio: number;
  /** int32 + BigInt64Array.from (ids and mask), strings and fresh outputs only. */
  convertMs: number | null;
  rows: number;
  elements: number;
}

function batchesOf(w: Workload, per: number): { texts: string[][]; offsets: Uint32Array[] } {
  const texts: string[][] = [];
  const offsets: Uint32Array[] = [];
  for (let i = 0; i < w.rows; i += per) {
    texts.push(w.texts.slice(i, i + per));
    offsets.push(w.offsets.subarray(i, Math.min(i + per, w.rows) + 1));
  }
  return { texts, offsets };
}

function time(f: () => void): number {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
}

/** One workload: every input x outputs case, int32 and int64 interleaved. */
function runWorkload(w: Workload, per: number): Case[] {
  const { texts, offsets } = batchesOf(w, per);
  const o32 = { encoding: 'byt5', maxLength: w.maxLength } as const;
  const o64 = { ...o32, dtype: 'int64', maskDtype: 'int64' } as const;
  const n = per * w.maxLength;
  const out32 = { ids: new Int32Array(n), attentionMask: new Uint8Array(n) };
  const out64 = { ids: new BigInt64Array(n), attentionMask: new BigInt64Array(n) };
  let elements = 0;
  for (const t of texts) {
    const b = vectorize(t, o32);
    elements += b.rows * b.width;
  }
  // The same batches through each contender; every result is checked once against int32's.
  const run = (input: Input, outputs: Outputs, wide: boolean) => () => {
    for (let k = 0; k < texts.length; k++) {
      if (input === 'strings') {
        if (wide) vectorize(texts[k]!, outputs === 'fresh' ? o64 : { ...o64, out: out64 });
        else vectorize(texts[k]!, outputs === 'fresh' ? o32 : { ...o32, out: out32 });
      } else if (wide) vectorizeBytes(w.bytes, offsets[k]!, outputs === 'fresh' ? o64 : { ...o64, out: out64 });
      else vectorizeBytes(w.bytes, offsets[k]!, outputs === 'fresh' ? o32 : { ...o32, out: out32 });
    }
  };
  for (let k = 0; k < texts.length; k += Math.max(1, Math.floor(texts.length / 7))) {
    const a = vectorizeBytes(w.bytes, offsets[k]!, o32);
    const b = vectorize(texts[k]!, o64);
    if (a.ids.length !== b.ids.length || a.ids.some((x, i) => BigInt(x) !== b.ids[i]) || a.attentionMask.some((x, i) => BigInt(x) !== b.attentionMask[i])) {
      throw new Error(`workload ${w.id}, batch ${k}: int64 differs from int32`);
    }
  }
  const cases: Case[] = [];
  for (const input of ['strings', 'bytes'] as const) {
    for (const outputs of ['fresh', 'reused'] as const) {
      const a = run(input, outputs, false);
      const b = run(input, outputs, true);
      a();
      b(); // warm-up
      const t32: number[] = [];
      const t64: number[] = [];
      const ratios: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        gc();
        let x: number;
        let y: number;
        if (r % 2 === 0) {
          x = time(a);
          y = time(b);
        } else {
          y = time(b);
          x = time(a);
        }
        t32.push(x);
        t64.push(y);
        ratios.push(x / y);
      }
      let convertMs: number | null = null;
      if (input === 'strings' && outputs === 'fresh') {
        const conv: number[] = [];
        for (let r = 0; r < CONVERT_ROUNDS; r++) {
          gc();
          conv.push(
            time(() => {
              for (const t of texts) {
                const b32 = vectorize(t, o32);
                BigInt64Array.from(b32.ids, BigInt);
                BigInt64Array.from(b32.attentionMask, BigInt);
              }
            }),
          );
        }
        convertMs = median(conv);
      }
      const c: Case = {
        workload: w.id, title: w.title, batchRows: per, input, outputs,
        int32Ms: median(t32), int64Ms: median(t64), ratio: median(ratios), convertMs, rows: w.rows, elements,
      };
      log(`${w.id} ${input} ${outputs}: int32 ${c.int32Ms.toFixed(1)} ms, int64 ${c.int64Ms.toFixed(1)} ms (${c.ratio.toFixed(2)}x)` +
        (convertMs === null ? '' : `, int32 + BigInt64Array.from ${convertMs.toFixed(0)} ms (${(convertMs / c.int64Ms).toFixed(0)}x int64's time)`));
      cases.push(c);
    }
  }
  return cases;
}

const loadStart = os.loadavg();
const backend = getBackend();
log(`int64 bench: ${backend.kind}/${backend.simd}, ${ROUNDS} rounds`);
const cases = [...runWorkload(workloadA(QUICK ? 20_000 : 100_000), 1000), ...runWorkload(workloadC(QUICK ? 2_000 : 10_000), 100)];
const loadEnd = os.loadavg();

function render(): string {
  const m = machineInfo(backend);
  const f = (x: number) => x.toFixed(1);
  const mrows = (c: Case, ms: number) => (c.rows / ms / 1000).toFixed(2);
  const out: string[] = [
    '## int64 ids and masks (`npm run bench:int64`)',
    '',
    `${new Date().toISOString().slice(0, 10)}. Command: \`node --expose-gc --import tsx bench/int64.bench.ts\` (${ROUNDS} rounds). ByT5 ids; ` +
      '`int64` = `dtype: \'int64\', maskDtype: \'int64\'` (BigInt64Array ids and mask, 16 bytes per element); `int32` = the defaults (Int32Array ids, ' +
      'Uint8Array mask, 5 bytes per element); `int32 + from` = int32, then `BigInt64Array.from(ids, BigInt)` and the same for the mask. ' +
      'Every batch of the workload in turn, fresh outputs (the default) or `out` arrays reused across the batches; medians over the rounds, ' +
      'int32 and int64 in ABBA order. Targets: int64 >= 0.8x int32, >= 10x `int32 + from`.',
    '',
    '| workload | batches | input | outputs | int32 (ms) | int64 (ms) | int64 M rows/s | output GB/s int32 / int64 | int64 / int32 speed | target 0.8x | int32 + from (ms) | int64 vs int32 + from | target 10x |',
    '|---|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|',
  ];
  // Bytes written per element: ids + mask.
  const gbps = (c: Case, bytesPerElement: number, ms: number) => ((c.elements * bytesPerElement) / ms / 1e6).toFixed(1);
  for (const c of cases) {
    const conv = c.convertMs === null ? ['', '', ''] : [f(c.convertMs), `${(c.convertMs / c.int64Ms).toFixed(0)}x`, c.convertMs / c.int64Ms >= 10 ? 'met' : 'missed'];
    out.push(
      `| (${c.workload}) | ${(c.rows / c.batchRows).toLocaleString('en-US')} x ${c.batchRows.toLocaleString('en-US')} rows | ${c.input} | ${c.outputs} | ${f(c.int32Ms)} | ${f(c.int64Ms)} | ${mrows(c, c.int64Ms)} | ` +
        `${gbps(c, 5, c.int32Ms)} / ${gbps(c, 16, c.int64Ms)} | ${c.ratio.toFixed(2)}x | ${c.ratio >= 0.8 ? 'met' : 'missed'} | ${conv.join(' | ')} |`,
    );
  }
  const rates = cases.map((c) => (16 / c.int64Ms) / (5 / c.int32Ms));
  out.push(
    '',
    `int64 + int64 writes 16 bytes per element where int32 + uint8 writes 5 (3.2x); per byte, int64 writes at ${Math.min(...rates).toFixed(2)}-` +
      `${Math.max(...rates).toFixed(2)}x int32's rate (the output GB/s column), so the gap is the bytes: int64 would have to write 2.6x faster ` +
      'per byte than int32 to reach 0.8x. The int64 ids and fills run on the same vector paths as int32. Fresh outputs add the page faults ' +
      'of 3.2x the memory; reusing `out` (or `reuseBuffers` in streams) removes them.',
    '',
    ...machineTable('int64 ids and masks', m, { start: loadStart, end: loadEnd }),
  );
  return out.join('\n');
}

const section = render();
process.stdout.write(`${section}\n`);
if (WRITE) {
  writeFileSync(WRITE, spliceInto(readFileSync(WRITE, 'utf8'), section, INT64_BEGIN, INT64_END));
  log(`wrote ${WRITE}`);
}
