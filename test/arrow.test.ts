/**
 * Apache Arrow Utf8 columns into vectorizeBytes without a copy: an Arrow string column is UTF-8
 * bytes plus int32 row offsets, exactly vectorizeBytes' input once the offsets are viewed as a
 * Uint32Array (Arrow offsets are never negative, so the bits are the same numbers). Checked with
 * the `apache-arrow` package on columns built in memory, sliced (offsets[0] > 0), split into
 * record batches, read back from Arrow IPC bytes (the buffers are views into the file's bytes),
 * and read from Parquet through parquet-wasm (a maintained reader that yields Arrow).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as arrow from 'apache-arrow';
import { Table as ParquetTable, readParquet, writeParquet } from 'parquet-wasm/node';
import { describe, expect, it } from 'vitest';
import { vectorize, vectorizeBytes } from '../src/index.js';
import { createPipeline } from '../src/pipeline/pipeline.js';
import { expectSameBatch } from './fixtures/util.js';

const udhr = readFileSync(fileURLToPath(new URL('../samples/udhr.jsonl', import.meta.url)), 'utf8')
  .split('\n')
  .filter((l) => l.length > 0)
  .map((l) => (JSON.parse(l) as { text: string }).text);

/**
 * vectorizeBytes' input over an Arrow Utf8 chunk: its bytes and its offsets, both as they are. A
 * builder's offset buffer may be longer than the chunk (padding): its rows + 1 offsets are taken.
 */
function rowsOf(data: arrow.Data<arrow.Utf8>): { bytes: Uint8Array; offsets: Uint32Array } {
  const o = data.valueOffsets;
  return { bytes: data.values, offsets: new Uint32Array(o.buffer, o.byteOffset, data.length + 1) };
}

const OPTIONS = { encoding: 'byt5', maxLength: 128, dtype: 'int64', maskDtype: 'int64' } as const;

describe('Arrow Utf8 columns', () => {
  const texts = [...udhr.slice(0, 300), '', 'hello', 'wörld 😀'];
  const column = arrow.vectorFromArray(texts, new arrow.Utf8());

  it('a column is one chunk of bytes and offsets, handed over without a copy: the batch equals vectorize(texts)', () => {
    expect(column.data.length).toBe(1);
    const data = column.data[0]!;
    const { bytes, offsets } = rowsOf(data);
    // The same memory: no byte or offset was copied.
    expect(bytes).toBe(data.values);
    expect(offsets.buffer).toBe(data.valueOffsets.buffer);
    expect(offsets.byteOffset).toBe(data.valueOffsets.byteOffset);
    expect(offsets[0]).toBe(0);
    expectSameBatch(vectorizeBytes(bytes, offsets, OPTIONS), vectorize(texts, OPTIONS));
    expectSameBatch(vectorizeBytes(bytes, offsets), vectorize(texts));
  });

  it('a sliced column: offsets start past 0 into the whole column’s bytes', () => {
    const part = column.slice(57, 213);
    const data = part.data[0]!;
    const { bytes, offsets } = rowsOf(data);
    expect(offsets[0]).toBeGreaterThan(0);
    expect(offsets.length).toBe(213 - 57 + 1);
    expectSameBatch(vectorizeBytes(bytes, offsets, OPTIONS), vectorize(texts.slice(57, 213), OPTIONS));
  });

  it('a table of several record batches, written to Arrow IPC and read back: each chunk is a view into the IPC bytes', () => {
    const batches = [texts.slice(0, 100), texts.slice(100, 101), texts.slice(101)].map(
      (t) => new arrow.Table({ text: arrow.vectorFromArray(t, new arrow.Utf8()) }).batches[0]!,
    );
    const ipc = arrow.tableToIPC(new arrow.Table(batches), 'file');
    const table = arrow.tableFromIPC(ipc);
    const col = table.getChild('text')!;
    expect(col.data.length).toBe(3);
    let at = 0;
    for (const data of col.data as Array<arrow.Data<arrow.Utf8>>) {
      const { bytes, offsets } = rowsOf(data);
      expect(bytes.buffer).toBe(ipc.buffer);
      expect(offsets.buffer).toBe(ipc.buffer);
      expectSameBatch(vectorizeBytes(bytes, offsets, OPTIONS), vectorize(texts.slice(at, at + data.length), OPTIONS));
      at += data.length;
    }
    expect(at).toBe(texts.length);
  });

  it('null entries are empty rows (their offsets are equal); the validity bitmap says which', () => {
    const withNulls = arrow.vectorFromArray(['a', null, 'bc', null], new arrow.Utf8());
    const data = withNulls.data[0]!;
    expect(data.nullCount).toBe(2);
    const { bytes, offsets } = rowsOf(data);
    expectSameBatch(vectorizeBytes(bytes, offsets, OPTIONS), vectorize(['a', '', 'bc', ''], OPTIONS));
  });

  it('LargeUtf8 (64-bit offsets) is refused by name: its offsets are not a Uint32Array', () => {
    const large = arrow.vectorFromArray(['ab', 'c'], new arrow.LargeUtf8()).data[0]!;
    expect(large.valueOffsets).toBeInstanceOf(BigInt64Array);
    expect(() => vectorizeBytes(large.values, large.valueOffsets as unknown as Uint32Array)).toThrow(
      new TypeError('offsets must be a Uint32Array, got BigInt64Array'),
    );
  });

  it('through the pipeline: the column as it is, int64 ids and mask, equal to the core', async () => {
    await using p = createPipeline({ maxWorkers: 1 });
    const { bytes, offsets } = rowsOf(column.data[0]!);
    expectSameBatch(await p.vectorizeBytes(bytes, offsets, OPTIONS), vectorize(texts, OPTIONS));
  });
});

describe('Parquet through parquet-wasm (read as Arrow)', () => {
  it('a Parquet file’s string column, read into Arrow, into vectorizeBytes: equal to vectorize of its texts', () => {
    const texts = [...udhr.slice(300, 500), ''];
    const source = new arrow.Table({ text: arrow.vectorFromArray(texts, new arrow.Utf8()), n: arrow.vectorFromArray(texts.map((t) => t.length)) });
    const parquet = writeParquet(ParquetTable.fromIPCStream(arrow.tableToIPC(source, 'stream')));
    expect(parquet.subarray(0, 4)).toEqual(new Uint8Array([0x50, 0x41, 0x52, 0x31])); // 'PAR1'
    const table = arrow.tableFromIPC(readParquet(parquet).intoIPCStream());
    const col = table.getChild('text')!;
    expect(String(col.type)).toBe('Utf8');
    let at = 0;
    for (const data of col.data as Array<arrow.Data<arrow.Utf8>>) {
      const { bytes, offsets } = rowsOf(data);
      expectSameBatch(vectorizeBytes(bytes, offsets, OPTIONS), vectorize(texts.slice(at, at + data.length), OPTIONS));
      at += data.length;
    }
    expect(at).toBe(texts.length);
  });
});
