/**
 * The generated files of the file benchmarks (bench/file.bench.ts and the file section of
 * bench/pipeline.bench.ts) and the obvious JavaScript way of reading them, so both suites time the
 * same files against the same baselines.
 */
import { once } from 'node:events';
import { closeSync, createReadStream, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { vectorize } from '../src/index.js';
import type { Dtype, VectorBatch, VectorizeOptions } from '../src/vectorize/types.js';
import { workloadA } from './workloads.js';

const FILE_GEN_VERSION = 1;

export interface BenchFiles {
  jsonl: string;
  plain: string;
  jsonlBytes: number;
  plainBytes: number;
  /** Seconds spent writing them, or null when reused. */
  generatedSec: number | null;
}

/**
 * Writes (or reuses, in the OS temp dir) a JSONL file `{"id":n,"text":"..."}` and a plain-lines
 * file of `lines` workload (a) rows: the same generator and seed as workload (a), so its first
 * 100k rows are (a).
 */
export function ensureFiles(lines: number, log: (msg: string) => void): BenchFiles {
  const base = path.join(os.tmpdir(), `dtesn-bench-a-${lines}-v${FILE_GEN_VERSION}`);
  const jsonl = `${base}.jsonl`;
  const plain = `${base}.txt`;
  const meta = `${base}.meta.json`;
  try {
    const m = JSON.parse(readFileSync(meta, 'utf8')) as { lines: number; jsonlBytes: number; plainBytes: number };
    if (m.lines === lines && statSync(jsonl).size === m.jsonlBytes && statSync(plain).size === m.plainBytes) {
      log(`  reusing ${jsonl} (${(m.jsonlBytes / 1e6).toFixed(1)} MB) and ${plain}`);
      return { jsonl, plain, jsonlBytes: m.jsonlBytes, plainBytes: m.plainBytes, generatedSec: null };
    }
  } catch {
    /* absent or stale: regenerate */
  }
  const t0 = performance.now();
  const w = workloadA(lines);
  const fj = openSync(jsonl, 'w');
  const fp = openSync(plain, 'w');
  let jsonlBytes = 0;
  let plainBytes = 0;
  const CH = 10_000;
  for (let i = 0; i < lines; i += CH) {
    let a = '';
    let b = '';
    for (let k = i; k < Math.min(lines, i + CH); k++) {
      a += `{"id":${k},"text":${JSON.stringify(w.texts[k])}}\n`;
      b += `${w.texts[k]}\n`;
    }
    jsonlBytes += writeSync(fj, a);
    plainBytes += writeSync(fp, b);
  }
  closeSync(fj);
  closeSync(fp);
  writeFileSync(meta, JSON.stringify({ version: FILE_GEN_VERSION, lines, jsonlBytes, plainBytes }) + '\n');
  const generatedSec = (performance.now() - t0) / 1e3;
  log(`  wrote ${jsonl} (${(jsonlBytes / 1e6).toFixed(1)} MB) and ${plain} in ${generatedSec.toFixed(1)} s`);
  return { jsonl, plain, jsonlBytes, plainBytes, generatedSec };
}

/**
 * Writes (or reuses) the multilingual files: the lines of samples/udhr.jsonl (`{"lang":..,"text":..}`,
 * 165 language variants) repeated until the JSONL file holds at least `minBytes`, and a plain-lines
 * file of their texts.
 */
export function ensureUdhrFiles(minBytes: number, log: (msg: string) => void): BenchFiles & { lines: number; times: number } {
  const src = readFileSync(new URL('../samples/udhr.jsonl', import.meta.url), 'utf8').split('\n').filter((l) => l.length > 0);
  const oneBytes = src.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
  const times = Math.ceil(minBytes / oneBytes);
  const base = path.join(os.tmpdir(), `dtesn-bench-udhr-x${times}-v${FILE_GEN_VERSION}`);
  const jsonl = `${base}.jsonl`;
  const plain = `${base}.txt`;
  const meta = `${base}.meta.json`;
  const lines = src.length * times;
  try {
    const m = JSON.parse(readFileSync(meta, 'utf8')) as { jsonlBytes: number; plainBytes: number };
    if (statSync(jsonl).size === m.jsonlBytes && statSync(plain).size === m.plainBytes) {
      log(`  reusing ${jsonl} (${(m.jsonlBytes / 1e6).toFixed(1)} MB) and ${plain}`);
      return { jsonl, plain, jsonlBytes: m.jsonlBytes, plainBytes: m.plainBytes, generatedSec: null, lines, times };
    }
  } catch {
    /* absent or stale: regenerate */
  }
  const t0 = performance.now();
  const a = src.join('\n') + '\n';
  const b = src.map((l) => (JSON.parse(l) as { text: string }).text.replace(/\n/g, ' ')).join('\n') + '\n';
  const fj = openSync(jsonl, 'w');
  const fp = openSync(plain, 'w');
  let jsonlBytes = 0;
  let plainBytes = 0;
  for (let k = 0; k < times; k++) {
    jsonlBytes += writeSync(fj, a);
    plainBytes += writeSync(fp, b);
  }
  closeSync(fj);
  closeSync(fp);
  writeFileSync(meta, JSON.stringify({ version: FILE_GEN_VERSION, times, jsonlBytes, plainBytes }) + '\n');
  const generatedSec = (performance.now() - t0) / 1e3;
  log(`  wrote ${jsonl} (${(jsonlBytes / 1e6).toFixed(1)} MB) and ${plain} in ${generatedSec.toFixed(1)} s`);
  return { jsonl, plain, jsonlBytes, plainBytes, generatedSec, lines, times };
}

/** The obvious JS way: readline over a file stream (for await), JSON.parse per line, core vectorize per 1,000 lines. */
export async function* readlineBatches(file: string, jsonl: boolean, options: VectorizeOptions<Dtype>): AsyncGenerator<VectorBatch<Dtype>> {
  const rl = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let texts: string[] = [];
  for await (const line of rl) {
    texts.push(jsonl ? (JSON.parse(line) as { text: string }).text : line);
    if (texts.length === 1000) {
      yield vectorize(texts, options);
      texts = [];
    }
  }
  if (texts.length) yield vectorize(texts, options);
}

/** The same with rl.on('line') instead of async iteration (the faster readline idiom); calls `each` per batch. */
export async function readlineEvents(file: string, jsonl: boolean, options: VectorizeOptions<Dtype>, each: (b: VectorBatch<Dtype>) => void): Promise<void> {
  const rl = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let texts: string[] = [];
  rl.on('line', (line) => {
    texts.push(jsonl ? (JSON.parse(line) as { text: string }).text : line);
    if (texts.length === 1000) {
      each(vectorize(texts, options));
      texts = [];
    }
  });
  await once(rl, 'close');
  if (texts.length) each(vectorize(texts, options));
}
