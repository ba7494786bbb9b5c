/**
 * The contenders of the benchmark. Each one turns (a slice of) a workload into the arrays of one
 * job — row-major Int32Array ids (rows x width), Uint8Array attention mask, and where it has them
 * Int32Array lengths — and states which dtesn options must give the very same arrays, so the bench
 * can verify it against dtesn before timing it.
 *
 * Jobs (padding 'longest', right padding/truncation, pad id 0, maxLength per workload):
 *   vocab  char vocabulary: { encoding: 'codepoint', vocab: CHAR_VOCAB }
 *   byt5   ByT5 ids: { encoding: 'byt5' } (UTF-8 byte + 3, EOS 1)
 *   raw    plain code points: { encoding: 'codepoint' } (default options); the C++ floor copies
 *          UTF-16 code units, which equal code points on the ASCII workloads (a) and (c); the
 *          simdutf addon does the very job (UTF-8 bytes or strings -> code points) with simdutf
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { VectorBatch, VectorizeOptions } from '../src/vectorize/types.js';
import { byt5ByteLevelTokenizer, charVocabTokenizer } from './hf.js';
import type { Ours } from './ours.js';
import { CHAR_VOCAB, type Workload } from './workloads.js';

export type JobId = 'vocab' | 'byt5' | 'raw';

export interface Job {
  id: JobId;
  title: string;
  options(w: Workload): VectorizeOptions<'int32'>;
}

export const JOBS: Record<JobId, Job> = {
  vocab: {
    id: 'vocab',
    title: 'char vocab (codepoint + vocab)',
    options: (w) => ({ encoding: 'codepoint', vocab: CHAR_VOCAB, maxLength: w.maxLength }),
  },
  byt5: { id: 'byt5', title: 'ByT5 (UTF-8 byte + 3, EOS)', options: (w) => ({ encoding: 'byt5', maxLength: w.maxLength }) },
  raw: { id: 'raw', title: 'code points (default encoding)', options: (w) => ({ encoding: 'codepoint', maxLength: w.maxLength }) },
};

/** What every contender hands back. `ids`/`attentionMask` have exactly rows * width elements. */
export interface Out {
  ids: Int32Array;
  attentionMask: Uint8Array;
  rows: number;
  width: number;
  lengths?: Int32Array;
}

/** The rows a contender processes: the whole workload, or its first `rows` rows for slow contenders. */
export interface Input {
  texts: string[];
  bytes: Uint8Array;
  offsets: Uint32Array;
  rows: number;
  utf8Bytes: number;
}

export function sliceInput(w: Workload, rows = w.rows): Input {
  if (rows >= w.rows) return { texts: w.texts, bytes: w.bytes, offsets: w.offsets, rows: w.rows, utf8Bytes: w.utf8Bytes };
  const offsets = w.offsets.subarray(0, rows + 1);
  return {
    texts: w.texts.slice(0, rows),
    bytes: w.bytes.subarray(0, offsets[rows]),
    offsets,
    rows,
    utf8Bytes: offsets[rows] - offsets[0],
  };
}

export interface Contender {
  /** Stable key, e.g. 'native', 'fallback', 'hf-rust'. */
  key: string;
  label: string;
  job: JobId;
  /** 'strings' (a JS string[]) or 'bytes' (UTF-8 + offsets). */
  kind: 'strings' | 'bytes';
  input: Input;
  /** dtesn options whose vectorize() output on input.texts must equal this contender's output. */
  expect: VectorizeOptions<'int32'>;
  run: () => Out | Promise<Out>;
  note?: string;
}

function fromBatch(b: VectorBatch<any>): Out {
  return { ids: b.ids as Int32Array, attentionMask: b.attentionMask, rows: b.rows, width: b.width, lengths: b.lengths };
}

/** Reused `out` buffers big enough for any width the job can produce (rows x maxLength). */
function outBuffers(rows: number, maxLength: number) {
  return { ids: new Int32Array(rows * maxLength), attentionMask: new Uint8Array(rows * maxLength) };
}

// ---------------------------------------------------------------------------------------------
// Naive JS: for..of + codePointAt into number[] rows, then fresh typed arrays (what most people write).

function pack(rowsTok: number[][], width: number): Out {
  const rows = rowsTok.length;
  const ids = new Int32Array(rows * width);
  const attentionMask = new Uint8Array(rows * width);
  const lengths = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const r = rowsTok[i];
    ids.set(r, i * width);
    attentionMask.fill(1, i * width, i * width + r.length);
    lengths[i] = r.length;
  }
  return { ids, attentionMask, rows, width, lengths };
}

export function naiveCodepoints(texts: readonly string[], maxLength: number, vocab?: readonly string[]): Out {
  const map = vocab ? new Map(vocab.map((ch, i) => [ch.codePointAt(0)!, i + 2])) : null;
  const rowsTok: number[][] = [];
  let width = 0;
  for (const t of texts) {
    const row: number[] = [];
    for (const ch of t) {
      let cp = ch.codePointAt(0)!;
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; // lone surrogate
      row.push(map ? (map.get(cp) ?? 1) : cp);
    }
    if (row.length > maxLength) row.length = maxLength;
    if (row.length > width) width = row.length;
    rowsTok.push(row);
  }
  return pack(rowsTok, width);
}

export function naiveByt5(texts: readonly string[], maxLength: number): Out {
  const cap = maxLength - 1;
  const rowsTok: number[][] = [];
  let width = 0;
  for (const t of texts) {
    const row: number[] = [];
    for (const ch of t) {
      let cp = ch.codePointAt(0)!;
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
      if (cp < 0x80) row.push(cp + 3);
      else if (cp < 0x800) row.push((0xc0 | (cp >> 6)) + 3, (0x80 | (cp & 63)) + 3);
      else if (cp < 0x10000) row.push((0xe0 | (cp >> 12)) + 3, (0x80 | ((cp >> 6) & 63)) + 3, (0x80 | (cp & 63)) + 3);
      else
        row.push(
          (0xf0 | (cp >> 18)) + 3,
          (0x80 | ((cp >> 12) & 63)) + 3,
          (0x80 | ((cp >> 6) & 63)) + 3,
          (0x80 | (cp & 63)) + 3,
        );
    }
    if (row.length > cap) row.length = cap;
    row.push(1); // EOS
    if (row.length > width) width = row.length;
    rowsTok.push(row);
  }
  return pack(rowsTok, width);
}

// ---------------------------------------------------------------------------------------------
// TextEncoder.encodeInto per row into one reused scratch buffer, then widened (+3, EOS) into reused out.

function textEncoderByt5(input: Input, maxLength: number): () => Out {
  const { texts, rows } = input;
  let units = 0;
  for (const t of texts) units += t.length;
  const scratch = new Uint8Array(units * 3);
  const ends = new Uint32Array(rows + 1);
  const out = outBuffers(rows, maxLength);
  const lengths = new Int32Array(rows);
  const enc = new TextEncoder();
  const cap = maxLength - 1;
  return () => {
    let pos = 0;
    let width = 0;
    for (let i = 0; i < rows; i++) {
      pos += enc.encodeInto(texts[i], scratch.subarray(pos)).written;
      ends[i + 1] = pos;
      const n = Math.min(pos - ends[i], cap) + 1;
      if (n > width) width = n;
    }
    const { ids, attentionMask } = out;
    for (let i = 0; i < rows; i++) {
      const s = ends[i];
      const n = Math.min(ends[i + 1] - s, cap);
      const base = i * width;
      for (let j = 0; j < n; j++) ids[base + j] = scratch[s + j] + 3;
      ids[base + n] = 1;
      ids.fill(0, base + n + 1, base + width);
      attentionMask.fill(1, base, base + n + 1);
      attentionMask.fill(0, base + n + 1, base + width);
      lengths[i] = n + 1;
    }
    return {
      ids: ids.subarray(0, rows * width),
      attentionMask: attentionMask.subarray(0, rows * width),
      rows,
      width,
      lengths,
    };
  };
}

// ---------------------------------------------------------------------------------------------
// HuggingFace tokenizers.

const require = createRequire(import.meta.url);

/** The version of an installed package whose "exports" may hide its package.json. */
function packageVersion(name: string): string | undefined {
  let dir = path.dirname(require.resolve(name));
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8'));
      if (pkg.name === name) return pkg.version;
    }
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

export interface HfLibs {
  rust?: any; // the `tokenizers` module (napi-rs binding of the Rust crate)
  js?: any; // the `@huggingface/tokenizers` module
  rustVersion?: string;
  jsVersion?: string;
  notes: string[];
}

export async function loadHf(): Promise<HfLibs> {
  const libs: HfLibs = { notes: [] };
  try {
    libs.rust = require('tokenizers');
    libs.rustVersion = packageVersion('tokenizers');
  } catch (e) {
    libs.notes.push(`tokenizers (Rust binding) not loaded: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    libs.js = await import('@huggingface/tokenizers');
    libs.jsVersion = packageVersion('@huggingface/tokenizers');
  } catch (e) {
    libs.notes.push(`@huggingface/tokenizers not loaded: ${(e as Error).message.split('\n')[0]}`);
  }
  return libs;
}

/** Rust binding: encodeBatch (padding/truncation configured in tokenizer.json), then copied into typed arrays. */
function hfRust(libs: HfLibs, json: object, input: Input): () => Promise<Out> {
  const tk = libs.rust.Tokenizer.fromString(JSON.stringify(json));
  const { texts, rows } = input;
  return async () => {
    const encs = await tk.encodeBatch(texts);
    const width = rows ? encs[0].getLength() : 0;
    const ids = new Int32Array(rows * width);
    const attentionMask = new Uint8Array(rows * width);
    for (let i = 0; i < rows; i++) {
      ids.set(encs[i].getIds(), i * width);
      attentionMask.set(encs[i].getAttentionMask(), i * width);
    }
    return { ids, attentionMask, rows, width };
  };
}

/** tokenizers.js: encode() per row (it has no batch API), truncate keeping `eos`, pad, copy into typed arrays. */
function hfJs(libs: HfLibs, json: object, input: Input, maxLength: number, eos: number | null): () => Out {
  const tk = new libs.js.Tokenizer(json, {});
  const { texts, rows } = input;
  return () => {
    const rowsIds: number[][] = new Array(rows);
    let width = 0;
    for (let i = 0; i < rows; i++) {
      let r: number[] = tk.encode(texts[i]).ids;
      if (r.length > maxLength) {
        r = r.slice(0, eos == null ? maxLength : maxLength - 1);
        if (eos != null) r.push(eos);
      }
      rowsIds[i] = r;
      if (r.length > width) width = r.length;
    }
    const ids = new Int32Array(rows * width);
    const attentionMask = new Uint8Array(rows * width);
    for (let i = 0; i < rows; i++) {
      ids.set(rowsIds[i], i * width);
      attentionMask.fill(1, i * width, i * width + rowsIds[i].length);
    }
    return { ids, attentionMask, rows, width };
  };
}

// ---------------------------------------------------------------------------------------------

export interface FloorAddon {
  floorUtf16(texts: readonly string[], width: number, ids: Int32Array, mask: Uint8Array, lengths: Int32Array): void;
}

/** bench/simdutf-addon: the raw job (code points) done with simdutf; each returns the width. */
export interface SimdutfAddon {
  codepointsBytes(bytes: Uint8Array, offsets: Uint32Array, maxLength: number, ids: Int32Array, mask: Uint8Array, lengths: Int32Array): number;
  codepointsStrings(texts: readonly string[], maxLength: number, ids: Int32Array, mask: Uint8Array, lengths: Int32Array): number;
  implementation(): string;
  version: string;
}

/**
 * Rows given to the slow contenders (HF tokenizers, ~50 us/row and more): their first 5,000 rows
 * of (a)/(b), 300 of (c), i.e. ~0.3-0.5 s per call. Throughput is reported per row and per byte.
 */
export function slowRows(w: Workload): number {
  return w.id === 'c' ? Math.min(w.rows, 300) : Math.min(w.rows, 5_000);
}

export interface ContenderEnv {
  ours: Ours;
  hf: HfLibs;
  floor?: FloorAddon;
  simdutf?: SimdutfAddon;
}

export function makeContenders(w: Workload, jobId: JobId, env: ContenderEnv): { contenders: Contender[]; skipped: string[] } {
  const job = JOBS[jobId];
  const opts = job.options(w);
  const maxLength = w.maxLength;
  const full = sliceInput(w);
  const small = sliceInput(w, slowRows(w));
  const { ours, hf, floor, simdutf } = env;
  const list: Contender[] = [];
  const skipped: string[] = [];
  const add = (c: Omit<Contender, 'job' | 'expect'> & { expect?: VectorizeOptions<'int32'> }) =>
    list.push({ job: jobId, expect: opts, ...c });

  // dtesn native (facade, out reused).
  if (ours.nativeReady) {
    const o = { ...opts, out: outBuffers(full.rows, maxLength) };
    add({ key: 'native', label: 'dtesn vectorize (native)', kind: 'strings', input: full, run: () => fromBatch(ours.vectorize!(full.texts, o)) });
    if (jobId === 'raw') {
      const ou = { ...opts, encoding: 'utf16' as const, out: outBuffers(full.rows, maxLength) };
      add({
        key: 'native-utf16', label: "dtesn vectorize (native, encoding 'utf16')", kind: 'strings', input: full,
        expect: { ...opts, encoding: 'utf16' },
        run: () => fromBatch(ours.vectorize!(full.texts, ou)),
      });
    }
  } else skipped.push('dtesn native: backend not available');

  // dtesn fallback (pure TS, out reused; normalizeOptions inside the timed call, as the facade does).
  if (ours.fallbackReady) {
    const o = { ...opts, out: outBuffers(full.rows, maxLength) };
    add({
      key: 'fallback', label: 'dtesn fallback (TS)', kind: 'strings', input: full,
      run: () => fromBatch(ours.vectorizeStringsJs!(full.texts, ours.normalizeOptions!(o))),
    });
  } else skipped.push('dtesn fallback: src/vectorize/fallback.ts not available');

  // Naive JS.
  if (jobId === 'byt5') {
    add({ key: 'naive', label: 'naive for..of/codePointAt', kind: 'strings', input: full, run: () => naiveByt5(full.texts, maxLength) });
    add({ key: 'textencoder', label: 'TextEncoder.encodeInto + widen', kind: 'strings', input: full, run: textEncoderByt5(full, maxLength) });
  } else {
    const vocab = jobId === 'vocab' ? CHAR_VOCAB : undefined;
    add({ key: 'naive', label: 'naive for..of/codePointAt', kind: 'strings', input: full, run: () => naiveCodepoints(full.texts, maxLength, vocab) });
  }

  // C++ crossing floor (UTF-16 code units; equal to code points on ASCII).
  if (jobId === 'raw') {
    if (floor) {
      const ids = new Int32Array(full.rows * maxLength);
      const mask = new Uint8Array(full.rows * maxLength);
      const lengths = new Int32Array(full.rows);
      const { texts, rows } = full;
      add({
        key: 'floor', label: 'C++ floor (N-API, UTF-16 units)', kind: 'strings', input: full,
        expect: { ...opts, encoding: 'utf16' },
        note: w.nonAsciiRows ? 'copies UTF-16 code units (= dtesn utf16), not code points' : undefined,
        run: () => {
          let longest = 0;
          for (let i = 0; i < rows; i++) if (texts[i].length > longest) longest = texts[i].length;
          const width = Math.min(longest, maxLength);
          floor.floorUtf16(texts, width, ids, mask, lengths);
          return { ids: ids.subarray(0, rows * width), attentionMask: mask.subarray(0, rows * width), rows, width, lengths };
        },
      });
    } else skipped.push('C++ floor: addon not built');
    if (simdutf) {
      const ids = new Int32Array(full.rows * maxLength);
      const mask = new Uint8Array(full.rows * maxLength);
      const lengths = new Int32Array(full.rows);
      const { texts, bytes, offsets, rows } = full;
      const out = (width: number): Out => ({ ids: ids.subarray(0, rows * width), attentionMask: mask.subarray(0, rows * width), rows, width, lengths });
      const impl = `simdutf ${simdutf.version}, ${simdutf.implementation()}`;
      add({
        key: 'simdutf-bytes', label: 'simdutf (C++ N-API, UTF-8 bytes)', kind: 'bytes', input: full, note: impl,
        run: () => out(simdutf.codepointsBytes(bytes, offsets, maxLength, ids, mask, lengths)),
      });
      add({
        key: 'simdutf-strings', label: 'simdutf (C++ N-API, strings)', kind: 'strings', input: full, note: impl,
        run: () => out(simdutf.codepointsStrings(texts, maxLength, ids, mask, lengths)),
      });
    } else skipped.push('simdutf: addon not built');
  }

  // HuggingFace tokenizers.
  if (jobId === 'vocab' || jobId === 'byt5') {
    const eos = jobId === 'byt5' ? 1 : null;
    const rustJson = jobId === 'vocab' ? charVocabTokenizer(CHAR_VOCAB, maxLength) : byt5ByteLevelTokenizer(maxLength);
    const jsJson = jobId === 'vocab' ? charVocabTokenizer(CHAR_VOCAB, null) : byt5ByteLevelTokenizer(null);
    const sliceNote = small.rows < full.rows ? `first ${small.rows.toLocaleString('en-US')} rows` : undefined;
    if (hf.rust) {
      add({
        key: 'hf-rust', label: `HF tokenizers ${hf.rustVersion} (Rust binding)`, kind: 'strings', input: small,
        note: ['encodeBatch, multi-threaded', sliceNote].filter(Boolean).join('; '),
        run: hfRust(hf, rustJson, small),
      });
    } else skipped.push('HF tokenizers (Rust): not installed');
    if (hf.js) {
      add({
        key: 'hf-js', label: `HF tokenizers.js ${hf.jsVersion}`, kind: 'strings', input: small, note: sliceNote,
        run: hfJs(hf, jsJson, small, maxLength, eos),
      });
    } else skipped.push('HF tokenizers.js: not installed');
  }

  // vectorizeBytes on the UTF-8 + offsets form (its fallback on the ASCII workloads only).
  {
    if (ours.nativeReady) {
      const o = { ...opts, out: outBuffers(full.rows, maxLength) };
      add({
        key: 'native-bytes', label: 'dtesn vectorizeBytes (native)', kind: 'bytes', input: full,
        run: () => fromBatch(ours.vectorizeBytes!(full.bytes, full.offsets, o)),
      });
    }
    if (ours.fallbackReady && (w.id === 'a' || w.id === 'c')) {
      const o = { ...opts, out: outBuffers(full.rows, maxLength) };
      add({
        key: 'fallback-bytes', label: 'dtesn vectorizeBytes (fallback TS)', kind: 'bytes', input: full,
        run: () => fromBatch(ours.vectorizeBytesJs!(full.bytes, full.offsets, ours.normalizeOptions!(o))),
      });
    }
  }
  return { contenders: list, skipped };
}

// ---------------------------------------------------------------------------------------------
// Verification.

/** The reference output: dtesn's facade if loaded (native or js backend), else its fallback, else naive JS. */
export function reference(env: ContenderEnv, texts: string[], options: VectorizeOptions<'int32'>): { out: Out; by: string } {
  const { ours } = env;
  if (ours.vectorize) return { out: fromBatch(ours.vectorize(texts, options)), by: `dtesn vectorize (${ours.backend?.kind ?? '?'})` };
  if (ours.fallbackReady) return { out: fromBatch(ours.vectorizeStringsJs!(texts, ours.normalizeOptions!(options))), by: 'dtesn fallback' };
  const maxLength = options.maxLength ?? 512;
  if (options.encoding === 'byt5') return { out: naiveByt5(texts, maxLength), by: 'naive JS (dtesn not loaded)' };
  if (options.encoding === 'utf16') {
    const rowsTok = texts.map((t) => Array.from({ length: Math.min(t.length, maxLength) }, (_, j) => t.charCodeAt(j)));
    return { out: pack(rowsTok, rowsTok.reduce((m, r) => Math.max(m, r.length), 0)), by: 'naive JS (dtesn not loaded)' };
  }
  return { out: naiveCodepoints(texts, maxLength, options.vocab), by: 'naive JS (dtesn not loaded)' };
}

/** null when equal, else a description of the first difference. */
export function diffOut(got: Out, want: Out): string | null {
  if (got.rows !== want.rows) return `rows ${got.rows} != ${want.rows}`;
  if (got.width !== want.width) return `width ${got.width} != ${want.width}`;
  const n = want.rows * want.width;
  if (got.ids.length !== n) return `ids has ${got.ids.length} elements, want ${n}`;
  if (got.attentionMask.length !== n) return `attentionMask has ${got.attentionMask.length} elements, want ${n}`;
  for (let k = 0; k < n; k++) {
    if (got.ids[k] !== want.ids[k]) {
      const r = Math.floor(k / want.width);
      return `ids[${r}][${k - r * want.width}] = ${got.ids[k]}, want ${want.ids[k]}`;
    }
  }
  for (let k = 0; k < n; k++) {
    if (got.attentionMask[k] !== want.attentionMask[k]) {
      const r = Math.floor(k / want.width);
      return `attentionMask[${r}][${k - r * want.width}] = ${got.attentionMask[k]}, want ${want.attentionMask[k]}`;
    }
  }
  if (got.lengths && want.lengths) {
    for (let i = 0; i < want.rows; i++) {
      if (got.lengths[i] !== want.lengths[i]) return `lengths[${i}] = ${got.lengths[i]}, want ${want.lengths[i]}`;
    }
  }
  return null;
}
