/**
 * The tensor file writers (src/tensors/tensor-file.ts) behind `dtesn vectorize --out`: batches of varying
 * widths written to .npy and .safetensors equal one core `vectorize` call over all rows (byte for
 * byte for .npy; tensor by tensor for safetensors, through a spec-level header parse written here
 * independently of src/tensors/safetensors.ts); every dtype, both padding sides, 'longest' and
 * 'max-length', zero rows; data past the 4 MiB staging and 8 MiB copy chunks; real FileBatches
 * from pipeline.vectorizeFile; bounded memory; no temporary left after finish, abort or an error;
 * errors naming the path. And the requirement: the files load in Python with numpy
 * (`np.load`) and the `safetensors` package (`safetensors.numpy.load_file`). CI installs both for
 * the python3 on the PATH (.ci/run); elsewhere that one test is skipped when they are missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vectorize } from '../src/index.js';
import { encodeNpy } from '../src/tensors/npy.js';
import { type TensorWriterOptions, openTensorWriter, tensorWriterOptionsOf } from '../src/tensors/tensor-file.js';
import type { Dtype, Encoding, MaskDtype, VectorBatch, VectorizeOptions } from '../src/vectorize/types.js';
import { liveMemory, makeTexts, pipelines, rejection, rng } from './fixtures/util.js';

// Made in beforeAll: with every test filtered out vitest runs neither hook, and nothing is left behind.
let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dtesn-tensor-file-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let serial = 0;
/** A fresh empty directory for one output. */
function outDir(): string {
  const d = join(dir, `case-${serial++}`);
  mkdirSync(d);
  return d;
}

const DTYPES: readonly Dtype[] = ['int32', 'int16', 'uint16', 'uint8', 'float32', 'int64'];
/** An encoding whose ids fit each dtype (codepoint ids pass 32767 on emoji, utf16 units pass 255...). */
const ENCODING_FOR: Record<Dtype, Encoding> = { int32: 'codepoint', int16: 'utf8', uint16: 'utf16', uint8: 'utf8', float32: 'canine', int64: 'byt5' };
/** The mask dtype each ids dtype is written with (all three mask dtypes get used). */
const MASK_FOR: Record<Dtype, MaskDtype> = { int32: 'uint8', int16: 'int32', uint16: 'uint8', uint8: 'int64', float32: 'uint8', int64: 'int64' };
const NP_DTYPE: Record<Dtype, string> = { int32: 'int32', int16: 'int16', uint16: 'uint16', uint8: 'uint8', float32: 'float32', int64: 'int64' };
const NPY_DESCR: Record<Dtype, string> = { int32: '<i4', int16: '<i2', uint16: '<u2', uint8: '|u1', float32: '<f4', int64: '<i8' };
const ST_DTYPE: Record<Dtype, string> = { int32: 'I32', int16: 'I16', uint16: 'U16', uint8: 'U8', float32: 'F32', int64: 'I64' };
const ST_SIZE: Record<string, number> = { I32: 4, I16: 2, U16: 2, U8: 1, F32: 4, I64: 8 };

type Options = VectorizeOptions<Dtype, MaskDtype>;

function optionsFor(dtype: Dtype, paddingSide: 'left' | 'right', extra: Options = {}): Options {
  return { encoding: ENCODING_FOR[dtype], dtype, maskDtype: MASK_FOR[dtype], paddingSide, padId: 3, maxLength: 64, ...extra };
}

/** The dtype name of a typed array (ids or mask). */
function dtypeOf(a: ArrayBufferView): Dtype {
  const names: Record<string, Dtype> = {
    Int32Array: 'int32', Int16Array: 'int16', Uint16Array: 'uint16', Uint8Array: 'uint8', Float32Array: 'float32', BigInt64Array: 'int64',
  };
  return names[a.constructor.name]!;
}

/** `texts` cut into batches of 1..maxRows rows (seeded), each vectorized on its own: as wide as its own longest row. */
function batchesOf(texts: readonly string[], options: Options, seed: number, maxRows = 40): VectorBatch<Dtype, MaskDtype>[] {
  const r = rng(seed);
  const out: VectorBatch<Dtype, MaskDtype>[] = [];
  for (let i = 0; i < texts.length; ) {
    const n = 1 + Math.floor(r() * maxRows);
    out.push(vectorize(texts.slice(i, i + n), options));
    i += n;
  }
  return out;
}

async function writeAll(path: string, batches: readonly VectorBatch<Dtype, MaskDtype>[], options: Options, extra: Partial<TensorWriterOptions> = {}) {
  const w = await openTensorWriter(path, { ...tensorWriterOptionsOf(options), ...extra });
  for (const b of batches) await w.write(b);
  return w.finish();
}

function bytes(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** The three .npy files of a batch as `encodeNpy` makes them in one go. */
function npyFilesOf(b: VectorBatch<Dtype, MaskDtype>): [Buffer, Buffer, Buffer] {
  return [
    Buffer.concat(encodeNpy(b.ids, [b.rows, b.width])),
    Buffer.concat(encodeNpy(b.attentionMask, [b.rows, b.width])),
    Buffer.concat(encodeNpy(b.lengths, [b.rows])),
  ];
}

/** NumPy format 1.0 read by its spec (numpy.lib.format), as this test's own check. */
function parseNpy(buf: Buffer): { descr: string; shape: number[]; data: Buffer } {
  expect(buf.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
  expect([buf[6], buf[7]]).toEqual([1, 0]);
  const dataAt = 10 + buf.readUInt16LE(8);
  expect(dataAt % 64, 'data starts 64-aligned').toBe(0);
  const header = buf.subarray(10, dataAt).toString('latin1');
  const m = /^\{'descr': '([<|][iuf][1248])', 'fortran_order': False, 'shape': \(((?:\d+, )*\d+,?|)\), \} *\n$/.exec(header);
  if (!m) return expect.fail(`npy header ${JSON.stringify(header)}`);
  const shape = m[2]!.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  return { descr: m[1]!, shape, data: buf.subarray(dataAt) };
}

interface StTensor {
  dtype: string;
  shape: number[];
  begin: number;
  data: Buffer;
}

/**
 * safetensors read by its spec: u64 LE header size N (under the readers' 100 MB), N bytes of JSON
 * starting with '{' and padded only with spaces, N a multiple of 8 (what the reference writer
 * does); tensors whose data_offsets cover the byte buffer exactly, without holes, each of
 * product(shape) x element size bytes and aligned to its element size in the file.
 */
function parseSafetensors(buf: Buffer): { n: number; tensors: Map<string, StTensor>; metadata: Record<string, string> | undefined } {
  const n = Number(buf.readBigUInt64LE(0));
  expect(n).toBeLessThanOrEqual(100_000_000);
  expect(n % 8, 'header size a multiple of 8').toBe(0);
  const text = buf.subarray(8, 8 + n).toString('utf8');
  expect(text[0]).toBe('{');
  expect(/^[^]*\} *$/.test(text), 'only spaces after the JSON').toBe(true);
  const json = JSON.parse(text) as Record<string, unknown>;
  const metadata = json.__metadata__ as Record<string, string> | undefined;
  const tensors = new Map<string, StTensor>();
  const spans: Array<[number, number]> = [];
  for (const [name, v] of Object.entries(json)) {
    if (name === '__metadata__') continue;
    const t = v as { dtype: string; shape: number[]; data_offsets: [number, number] };
    expect(Object.keys(t).sort()).toEqual(['data_offsets', 'dtype', 'shape']);
    const size = ST_SIZE[t.dtype];
    if (size === undefined) return expect.fail(`dtype ${t.dtype}`);
    const [begin, end] = t.data_offsets;
    expect(end - begin, `${name} byte size`).toBe(t.shape.reduce((a, b) => a * b, 1) * size);
    expect((8 + n + begin) % size, `${name} aligned`).toBe(0);
    spans.push([begin, end]);
    tensors.set(name, { dtype: t.dtype, shape: t.shape, begin, data: buf.subarray(8 + n + begin, 8 + n + end) });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [b, e] of spans) {
    expect(b, 'no hole, no overlap').toBe(at);
    at = e;
  }
  expect(8 + n + at, 'the buffer ends with the last tensor').toBe(buf.length);
  return { n, tensors, metadata };
}

function expectSafetensorsOf(file: string, want: VectorBatch<Dtype, MaskDtype>, dtype: Dtype, metadata?: Record<string, string>): void {
  const { tensors, metadata: got } = parseSafetensors(readFileSync(file));
  expect([...tensors.keys()].sort()).toEqual(['attention_mask', 'input_ids', 'lengths']);
  expect(got).toEqual(metadata);
  const ids = tensors.get('input_ids')!;
  expect({ dtype: ids.dtype, shape: ids.shape }).toEqual({ dtype: ST_DTYPE[dtype], shape: [want.rows, want.width] });
  expect(ids.data.equals(bytes(want.ids)), 'input_ids bytes').toBe(true);
  const mask = tensors.get('attention_mask')!;
  expect({ dtype: mask.dtype, shape: mask.shape }).toEqual({ dtype: ST_DTYPE[dtypeOf(want.attentionMask)], shape: [want.rows, want.width] });
  expect(mask.data.equals(bytes(want.attentionMask)), 'attention_mask bytes').toBe(true);
  const lengths = tensors.get('lengths')!;
  expect({ dtype: lengths.dtype, shape: lengths.shape }).toEqual({ dtype: 'I32', shape: [want.rows] });
  expect(lengths.data.equals(bytes(want.lengths)), 'lengths bytes').toBe(true);
}

function expectNpyOf(file: string, want: VectorBatch<Dtype, MaskDtype>): void {
  const base = file.replace(/\.npy$/, '');
  const [ids, mask, lengths] = npyFilesOf(want);
  expect(readFileSync(file).equals(ids), 'ids file bytes').toBe(true);
  expect(readFileSync(`${base}.mask.npy`).equals(mask), 'mask file bytes').toBe(true);
  expect(readFileSync(`${base}.lengths.npy`).equals(lengths), 'lengths file bytes').toBe(true);
}

const texts = makeTexts(11, 6000, { empty: 0.05, long: 0.01, maxPieces: 12 });

describe('batches of varying widths equal one vectorize call', () => {
  for (const dtype of DTYPES) {
    for (const side of ['right', 'left'] as const) {
      it(`${dtype}, padding side ${side}: .npy byte for byte, .safetensors tensor by tensor`, async () => {
        const options = optionsFor(dtype, side);
        const batches = batchesOf(texts, options, 5);
        expect(new Set(batches.map((b) => b.width)).size, 'batch widths vary').toBeGreaterThan(3);
        const want = vectorize(texts, options);
        const d = outDir();
        const npy = await writeAll(join(d, 'out.npy'), batches, options);
        expect(npy).toEqual({
          files: [join(d, 'out.npy'), join(d, 'out.mask.npy'), join(d, 'out.lengths.npy')],
          rows: want.rows,
          width: want.width,
          bytes: npyFilesOf(want).reduce((a, f) => a + f.length, 0),
        });
        expectNpyOf(join(d, 'out.npy'), want);
        const metadata = { producer: 'test', 'ünïcode ✓': 'a "quoted"\nvalue' };
        const st = await writeAll(join(d, 'out.safetensors'), batches, options, { metadata });
        expect(st).toMatchObject({ files: [join(d, 'out.safetensors')], rows: want.rows, width: want.width });
        expect(st.bytes).toBe(readFileSync(join(d, 'out.safetensors')).length);
        expectSafetensorsOf(join(d, 'out.safetensors'), want, dtype, metadata);
        expect(readdirSync(d).sort()).toEqual(['out.lengths.npy', 'out.mask.npy', 'out.npy', 'out.safetensors']);
      });
    }
  }

  it('padToMultipleOf: the widest batch is already rounded, as one call rounds its width', async () => {
    const options = optionsFor('int32', 'left', { padToMultipleOf: 8 });
    const batches = batchesOf(texts, options, 6);
    const want = vectorize(texts, options);
    expect(want.width % 8).toBe(0);
    const d = outDir();
    await writeAll(join(d, 'x.npy'), batches, options);
    expectNpyOf(join(d, 'x.npy'), want);
  });

  it("padding 'max-length': every batch of the given width, written in place; another width is rejected and the writer goes on", async () => {
    const options = optionsFor('uint16', 'right', { padding: 'max-length', maxLength: 24 });
    expect(tensorWriterOptionsOf(options)).toEqual({ dtype: 'uint16', maskDtype: 'uint8', padId: 3, paddingSide: 'right', width: 24 });
    expect(tensorWriterOptionsOf({ padding: 'max-length', maxLength: 10, padToMultipleOf: 4, batchSize: 5 } as Options).width).toBe(12);
    const batches = batchesOf(texts, options, 7);
    const want = vectorize(texts, options);
    for (const ext of ['npy', 'safetensors']) {
      const d = outDir();
      const w = await openTensorWriter(join(d, `m.${ext}`), tensorWriterOptionsOf(options));
      for (const [i, b] of batches.entries()) {
        await w.write(b);
        if (i === 2) {
          const narrow = vectorize(['ab'], { ...options, padding: 'longest' });
          const err = await rejection(w.write(narrow));
          expect(err).toBeInstanceOf(RangeError);
          expect(err.message).toBe('batch width 2 differs from the output width 24 (options.width)');
        }
      }
      expect((await w.finish()).width).toBe(24);
      if (ext === 'npy') expectNpyOf(join(d, 'm.npy'), want);
      else expectSafetensorsOf(join(d, 'm.safetensors'), want, 'uint16');
    }
  });

  it('safetensors stores lengths first when the ids bytes are not a multiple of 4, so every tensor stays aligned', async () => {
    for (const [dtype, rows, maxLength] of [['int16', 3, 5], ['uint8', 5, 7], ['uint8', 4, 2], ['int32', 3, 5]] as const) {
      const options = optionsFor(dtype, 'right', { padding: 'max-length', maxLength, maskDtype: 'uint8' });
      const t = texts.slice(0, rows);
      const want = vectorize(t, options);
      const file = join(outDir(), 'a.safetensors');
      await writeAll(file, batchesOf(t, options, 8, 2), options);
      const { tensors } = parseSafetensors(readFileSync(file));
      const idsBytes = rows * maxLength * ST_SIZE[ST_DTYPE[dtype]]!;
      expect(tensors.get('lengths')!.begin, `${dtype} ${rows}x${maxLength}`).toBe(idsBytes % 4 === 0 ? idsBytes : 0);
      expectSafetensorsOf(file, want, dtype);
    }
  });

  it('safetensors with wide masks: ids, lengths, mask when each lands aligned, else by descending element size', async () => {
    // [dtype, maskDtype, rows, width, the file order]
    const cases: Array<[Dtype, MaskDtype, number, number, string[]]> = [
      ['int64', 'int64', 3, 5, ['input_ids', 'attention_mask', 'lengths']], // the mask would start at 132
      ['int64', 'int64', 4, 5, ['input_ids', 'lengths', 'attention_mask']], // at 176
      ['int32', 'int64', 3, 4, ['attention_mask', 'input_ids', 'lengths']], // at 60
      ['int32', 'int64', 3, 5, ['input_ids', 'lengths', 'attention_mask']], // at 72
      ['uint8', 'int64', 3, 3, ['attention_mask', 'lengths', 'input_ids']], // lengths at 9
      ['int16', 'int32', 3, 5, ['lengths', 'attention_mask', 'input_ids']], // lengths at 30
      ['int64', 'uint8', 3, 5, ['input_ids', 'lengths', 'attention_mask']],
    ];
    for (const [dtype, maskDtype, rows, width, order] of cases) {
      for (const padding of ['max-length', 'longest'] as const) {
        const options = optionsFor(dtype, 'left', { padding, maxLength: width, maskDtype });
        const t = texts.filter((x) => x.length > 8).slice(0, rows);
        const want = vectorize(t, options);
        const file = join(outDir(), 'w.safetensors');
        await writeAll(file, batchesOf(t, options, 18, 2), options);
        const { tensors } = parseSafetensors(readFileSync(file));
        const got = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin).map(([name]) => name);
        // Rows longer than maxLength: 'longest' gives the same width as 'max-length'.
        expect(want.width).toBe(width);
        expect(got, `${dtype}/${maskDtype} ${rows}x${width} ${padding}`).toEqual(order);
        expectSafetensorsOf(file, want, dtype);
      }
    }
  });

  it('zero rows: no batch, or batches without rows, give [0, width] and [0] arrays', async () => {
    for (const options of [optionsFor('int32', 'right'), optionsFor('float32', 'left', { padding: 'max-length', maxLength: 9 })]) {
      const want = vectorize([], options);
      expect(want.width).toBe(options.padding === 'max-length' ? 9 : 0);
      const d = outDir();
      await writeAll(join(d, 'z.npy'), [], options);
      expectNpyOf(join(d, 'z.npy'), want);
      await writeAll(join(d, 'z.safetensors'), [vectorize([], options), vectorize([], options)], options);
      expectSafetensorsOf(join(d, 'z.safetensors'), want, options.dtype!);
      expect(parseNpy(readFileSync(join(d, 'z.npy'))).shape).toEqual([0, want.width]);
      expect(parseNpy(readFileSync(join(d, 'z.lengths.npy'))).shape).toEqual([0]);
    }
  });

  it('re-opened headers: .npy dict and data offset by the NumPy spec, a format the writer chose as one call would', async () => {
    const options = optionsFor('int16', 'left');
    const want = vectorize(texts, options);
    const d = outDir();
    await writeAll(join(d, 'h.npy'), batchesOf(texts, options, 9), options);
    const ids = parseNpy(readFileSync(join(d, 'h.npy')));
    expect({ descr: ids.descr, shape: ids.shape }).toEqual({ descr: NPY_DESCR.int16, shape: [want.rows, want.width] });
    expect(ids.data.equals(bytes(want.ids))).toBe(true);
    const mask = parseNpy(readFileSync(join(d, 'h.mask.npy')));
    expect({ descr: mask.descr, shape: mask.shape }).toEqual({ descr: '<i4', shape: [want.rows, want.width] });
    const lengths = parseNpy(readFileSync(join(d, 'h.lengths.npy')));
    expect({ descr: lengths.descr, shape: lengths.shape }).toEqual({ descr: '<i4', shape: [want.rows] });
    expect(lengths.data.equals(bytes(want.lengths))).toBe(true);
  });
});

describe('large outputs', () => {
  it('data past the staging buffer and the copy chunks, re-padded on the left, equals one call (both formats)', async () => {
    // ~107k rows x 128: ids 52 MB, mask 13 MB: several 8 MiB chunks in every copy; batch widths 113..128.
    const big = makeTexts(21, 5_000_000, { empty: 0.02, long: 0, maxPieces: 40 });
    const options = optionsFor('int32', 'left', { maxLength: 128 });
    const want = vectorize(big, options);
    expect(want.rows * want.width).toBeGreaterThan(9 << 20);
    const batches = batchesOf(big, options, 12, 3000);
    expect(new Set(batches.map((b) => b.width)).size).toBeGreaterThan(3);
    const d = outDir();
    await writeAll(join(d, 'big.npy'), batches, options);
    expectNpyOf(join(d, 'big.npy'), want);
    await writeAll(join(d, 'big.safetensors'), batches, options);
    expectSafetensorsOf(join(d, 'big.safetensors'), want, 'int32');
    // max-length: ids in place, lengths and mask appended behind them in chunks.
    const fixed = { ...options, padding: 'max-length' as const };
    await writeAll(join(d, 'fixed.safetensors'), batchesOf(big, fixed, 13, 3000), fixed);
    expectSafetensorsOf(join(d, 'fixed.safetensors'), vectorize(big, fixed), 'int32');
  });

  it('memory stays bounded while 150 MB are written with re-padding', async () => {
    // Five batches reused: the input costs ~3 MB, the output 150 MB.
    const batches = [64, 96, 128, 80, 112].map((w) => {
      const rows = 1000;
      const ids = new Int32Array(rows * w).fill(7);
      const lengths = new Int32Array(rows).fill(w);
      return { ids, attentionMask: new Uint8Array(rows * w).fill(1), lengths, sourceLengths: lengths, rows, width: w };
    });
    const before = await liveMemory();
    let peak = 0;
    const w = await openTensorWriter(join(outDir(), 'mem.npy'), { dtype: 'int32', padId: 0, paddingSide: 'right' });
    for (let i = 0; i < 300; i++) {
      await w.write(batches[i % 5]!);
      if (i % 25 === 0) peak = Math.max(peak, (await liveMemory()) - before);
    }
    const done = await w.finish();
    expect(done.bytes).toBeGreaterThan(150e6);
    // Three 4 MiB staging buffers, plus some slack for the collector's timing.
    expect(peak).toBeLessThan(24 << 20);
    expect((await liveMemory()) - before).toBeLessThan(8 << 20);
  });
});

describe('with pipeline.vectorizeFile', () => {
  const make = pipelines();
  it('the CLI loop: FileBatches of a file written to .safetensors equal vectorize of its lines', async () => {
    // Sorted by length, so that batch widths grow and every batch but the last is re-padded.
    const lines = makeTexts(31, 400_000, { empty: 0.05, long: 0.02, maxPieces: 25 }).sort((a, b) => a.length - b.length);
    const d = outDir();
    writeFileSync(join(d, 'in.txt'), `${lines.join('\n')}\n`);
    const options = optionsFor('int32', 'right', { maxLength: 64 });
    const p = make({ maxWorkers: 2 });
    const w = await openTensorWriter(join(d, 'o.safetensors'), tensorWriterOptionsOf(options));
    const widths = new Set<number>();
    for await (const b of p.vectorizeFile(join(d, 'in.txt'), { ...options, format: 'lines', batchSize: 3000 })) {
      widths.add(b.width);
      await w.write(b);
    }
    await w.finish();
    expect(widths.size).toBeGreaterThan(1);
    expectSafetensorsOf(join(d, 'o.safetensors'), vectorize(lines, options), 'int32');
  });
});

describe('no half-written output, errors naming the path', () => {
  const small = optionsFor('int32', 'right');
  const some = batchesOf(texts.slice(0, 100), small, 14);

  it('abort removes every temporary, leaves existing files as they were, and closes the writer', async () => {
    for (const name of ['a.npy', 'a.safetensors']) {
      const d = outDir();
      writeFileSync(join(d, 'a.npy'), 'old');
      const w = await openTensorWriter(join(d, name), tensorWriterOptionsOf(small));
      for (const b of some) await w.write(b);
      expect(readdirSync(d).filter((f) => f.endsWith('.tmp')).length).toBe(3);
      await w.abort();
      expect(readdirSync(d)).toEqual(['a.npy']);
      expect(readFileSync(join(d, 'a.npy'), 'utf8')).toBe('old');
      await w.abort(); // again: nothing to do
      const late = await rejection(w.write(some[0]!));
      expect(late.message).toBe(`tensor writer for ${join(d, name)} is closed (aborted)`);
      expect((await rejection(w.finish())).message).toBe(late.message);
    }
  });

  it('finish with an aborted signal renames nothing: earlier files stay, no temporary is left, it rejects with the reason', async () => {
    for (const name of ['s.npy', 's.safetensors']) {
      const d = outDir();
      writeFileSync(join(d, name), 'old');
      const w = await openTensorWriter(join(d, name), tensorWriterOptionsOf(small));
      for (const b of some) await w.write(b);
      const c = new AbortController();
      const reason = new Error('interrupted');
      c.abort(reason);
      expect(await rejection(w.finish({ signal: c.signal }))).toBe(reason);
      expect(readdirSync(d)).toEqual([name]);
      expect(readFileSync(join(d, name), 'utf8')).toBe('old');
    }
  });

  it('finish leaves only the outputs; the writer is closed after', async () => {
    const d = outDir();
    const w = await openTensorWriter(join(d, 'f.npy'), tensorWriterOptionsOf(small));
    for (const b of some) await w.write(b);
    await w.finish();
    expect(readdirSync(d).sort()).toEqual(['f.lengths.npy', 'f.mask.npy', 'f.npy']);
    await w.abort(); // a no-op once finished: the outputs stay
    expect(readdirSync(d).length).toBe(3);
    expect((await rejection(w.write(some[0]!))).message).toBe(`tensor writer for ${join(d, 'f.npy')} is closed (finished)`);
  });

  it('a missing directory, a file as directory, a directory as target: errors name the path', async () => {
    const d = outDir();
    const missing = join(d, 'nope', 'y.npy');
    expect((await rejection(openTensorWriter(missing, tensorWriterOptionsOf(small)))).message).toBe(
      `cannot write ${missing}: ENOENT: no such file or directory`,
    );
    writeFileSync(join(d, 'file'), '');
    const underFile = join(d, 'file', 'y.safetensors');
    expect((await rejection(openTensorWriter(underFile, tensorWriterOptionsOf(small)))).message).toBe(
      `cannot write ${underFile}: ENOTDIR: not a directory`,
    );
    mkdirSync(join(d, 'z.mask.npy'));
    expect((await rejection(openTensorWriter(join(d, 'z.npy'), tensorWriterOptionsOf(small)))).message).toBe(
      `cannot write ${join(d, 'z.mask.npy')}: it is a directory`,
    );
    expect(readdirSync(d).sort()).toEqual(['file', 'z.mask.npy']);
  });

  it('an I/O error at finish (the directory vanished) names the path and leaves nothing', async () => {
    for (const name of ['v.npy', 'v.safetensors']) {
      const d = outDir();
      const w = await openTensorWriter(join(d, name), tensorWriterOptionsOf(small));
      for (const b of some) await w.write(b);
      rmSync(d, { recursive: true });
      const err = await rejection(w.finish());
      expect(err.message).toMatch(new RegExp(`^cannot write ${d}/v\\.(npy|mask\\.npy|safetensors): ENOENT: no such file or directory$`));
      expect(existsSync(d)).toBe(false);
      expect((await rejection(w.write(some[0]!))).message).toBe(err.message);
    }
  });

  it('bad options and batches: clear errors, before anything is written', async () => {
    const d = outDir();
    const opts = tensorWriterOptionsOf(small);
    expect((await rejection(openTensorWriter(join(d, 'x.bin'), opts))).message).toBe(
      `${join(d, 'x.bin')}: cannot tell the output format from the extension '.bin': use .npy or .safetensors, or options.format`,
    );
    expect((await rejection(openTensorWriter(join(d, 'x.npy'), { ...opts, dtype: 'int8' as Dtype }))).message).toMatch(/^options\.dtype must be one of 'int32'/);
    expect((await rejection(openTensorWriter(join(d, 'x.npy'), { ...opts, maskDtype: 'bool' as MaskDtype }))).message).toBe(
      "options.maskDtype must be one of 'uint8', 'int32', 'int64', got string",
    );
    expect((await rejection(openTensorWriter(join(d, 'x.npy'), { ...opts, padId: 1n }))).message).toBe(
      "options.padId must be a number for dtype 'int32' (a bigint only for 'int64'), got bigint",
    );
    expect((await rejection(openTensorWriter(join(d, 'x.npy'), { ...opts, dtype: 'int64', padId: 2 ** 60 }))).message).toBe(
      "options.padId must be a safe integer, or a bigint, for dtype 'int64', got 1152921504606847000",
    );
    expect((await rejection(openTensorWriter(join(d, 'x.npy'), { ...opts, dtype: 'int64', padId: 2n ** 63n }))).message).toBe(
      'options.padId must fit int64, got 9223372036854775808',
    );
    expect(readdirSync(d)).toEqual([]);
    const w = await openTensorWriter(join(d, 'x.bin'), { ...opts, format: 'safetensors' });
    const wrong = await rejection(w.write(vectorize(['a'], { dtype: 'int16' })));
    expect(wrong).toBeInstanceOf(TypeError);
    expect(wrong.message).toMatch(/^batch\.ids must be a Int32Array for dtype 'int32', got /);
    await w.write(some[0]!);
    expect((await w.finish()).rows).toBe(some[0]!.rows);
    expect(readdirSync(d)).toEqual(['x.bin']);
  });
});

// -------------------------------------------------------------------------------------------------
// Python: numpy and safetensors load the files.

const PYTHON_CHECK = String.raw`
import json, sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

def check(a, want, what):
    assert isinstance(a, np.ndarray), f'{what}: {type(a)}'
    assert a.dtype == np.dtype(want['dtype']), f'{what}: dtype {a.dtype}, want {want["dtype"]}'
    assert list(a.shape) == want['shape'], f'{what}: shape {a.shape}, want {want["shape"]}'
    b = np.array(want['values'], dtype=want['dtype']).reshape(want['shape'])
    assert np.array_equal(a, b), f'{what}: values differ at {np.argwhere(a != b)[:3].tolist()}'

n = 0
for case in json.load(open(sys.argv[1])):
    if case['kind'] == 'npy':
        check(np.load(case['path'], allow_pickle=False), case['array'], case['path'])
        n += 1
    else:
        tensors = load_file(case['path'])
        assert sorted(tensors) == sorted(case['tensors']), f"{case['path']}: tensors {sorted(tensors)}"
        for name, want in case['tensors'].items():
            check(tensors[name], want, case['path'] + ':' + name)
            n += 1
        with safe_open(case['path'], framework='np') as f:
            assert f.metadata() == case['metadata'], f"{case['path']}: metadata {f.metadata()}"
print(f'checked {n} arrays')
`;

const hasPython = spawnSync('python3', ['-c', 'import numpy, safetensors.numpy'], { encoding: 'utf8' }).status === 0;

describe('Python', () => {
  it('numpy np.load and safetensors.numpy.load_file read every dtype, side and shape', async () => {
    if (!hasPython) throw new Error('python3 with numpy and safetensors not found: `npm run test:tools` installs them (PyPI)');
    const d = outDir();
    const arr = (dtype: string, shape: number[], a: ArrayLike<number | bigint>) => ({ dtype, shape, values: Array.from(a, Number) });
    const cases: object[] = [];
    const t = texts.slice(0, 300);
    const variants: Array<[string, Options]> = [];
    for (const dtype of DTYPES) for (const side of ['right', 'left'] as const) variants.push([`${dtype}-${side}`, optionsFor(dtype, side)]);
    variants.push(['fixed', optionsFor('int16', 'right', { padding: 'max-length', maxLength: 7 })]);
    variants.push(['int64-negative-pad', optionsFor('int64', 'left', { padId: -1, maskDtype: 'int32' })]);
    for (const [name, options] of variants) {
      const want = vectorize(t, options);
      const dtype = NP_DTYPE[options.dtype!];
      const ids = arr(dtype, [want.rows, want.width], want.ids);
      const mask = arr(NP_DTYPE[options.maskDtype ?? 'uint8'], [want.rows, want.width], want.attentionMask);
      const lengths = arr('int32', [want.rows], want.lengths);
      await writeAll(join(d, `${name}.npy`), batchesOf(t, options, 15), options);
      cases.push(
        { kind: 'npy', path: join(d, `${name}.npy`), array: ids },
        { kind: 'npy', path: join(d, `${name}.mask.npy`), array: mask },
        { kind: 'npy', path: join(d, `${name}.lengths.npy`), array: lengths },
      );
      const metadata = { variant: name, 'ключ': 'значение ✓' };
      await writeAll(join(d, `${name}.safetensors`), batchesOf(t, options, 16), options, { metadata });
      cases.push({ kind: 'safetensors', path: join(d, `${name}.safetensors`), tensors: { input_ids: ids, attention_mask: mask, lengths }, metadata });
    }
    const empty = optionsFor('uint8', 'left', { padding: 'max-length', maxLength: 5 });
    await writeAll(join(d, 'empty.npy'), [], empty);
    await writeAll(join(d, 'empty.safetensors'), [], empty);
    cases.push(
      { kind: 'npy', path: join(d, 'empty.npy'), array: arr('uint8', [0, 5], []) },
      { kind: 'npy', path: join(d, 'empty.lengths.npy'), array: arr('int32', [0], []) },
      {
        kind: 'safetensors',
        path: join(d, 'empty.safetensors'),
        metadata: null, // none given: no __metadata__, which safe_open reports as None
        tensors: { input_ids: arr('uint8', [0, 5], []), attention_mask: arr('int64', [0, 5], []), lengths: arr('int32', [0], []) },
      },
    );
    writeFileSync(join(d, 'cases.json'), JSON.stringify(cases));
    const py = spawnSync('python3', ['-c', PYTHON_CHECK, join(d, 'cases.json')], { encoding: 'utf8' });
    expect(py.stderr).toBe('');
    expect(py.status).toBe(0);
    expect(py.stdout.trim()).toBe(`checked ${14 * 6 + 5} arrays`);
  });
});
