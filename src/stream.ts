/**
 * Batches from an iterable of strings or from a file, with bounded memory and backpressure: an
 * async generator reads only when its consumer asks for the next batch, and holds at most one
 * read chunk, the bytes of one unfinished line, and one batch.
 *
 * Files are read as bytes; the line splitting and, for JSONL, the field extraction happen in
 * native code (`parseRecords`, crates/dtesn-core/src/records.rs), so no JavaScript string is made
 * per row; rows go to `vectorizeBytes`. Without the native binding the same contract is kept by a
 * JavaScript reader (records.ts).
 */
import { open } from 'node:fs/promises';
import { describe, normalizeOptions } from './options.js';
import type { RecordFormat, Records } from './records.js';
import type { Dtype, VectorBatch, VectorizeOptions } from './types.js';

export interface StreamOptions extends VectorizeOptions<Dtype> {
  /** [1000] rows per batch. */
  batchSize?: number;
}

export interface FileOptions extends VectorizeOptions<Dtype> {
  /** 'lines': every line is a row; 'jsonl': each non-blank line is a JSON object holding the text. A UTF-8 BOM at the start of the file is skipped. */
  format: RecordFormat;
  /** ['text'] the JSONL field holding the text. */
  field?: string;
  /** [1000] rows per batch. */
  batchSize?: number;
  /** ['skip'] a malformed JSONL line is skipped and reported in `skipped`, or ends the stream. */
  onError?: 'skip' | 'throw';
  /** [1 MiB] bytes read at a time. */
  chunkBytes?: number;
}

export interface SkippedLine {
  /** 1-based line number in the file. */
  line: number;
  message: string;
}

export type FileBatch = VectorBatch<Dtype> & {
  /** 1-based line number of the batch's first row. */
  firstLine: number;
  /** 1-based line number of every row. */
  lines: Uint32Array;
  /** Malformed lines skipped since the previous batch (onError: 'skip'). */
  skipped: SkippedLine[];
};

/** A malformed line with `onError: 'throw'`. */
export class RecordError extends SyntaxError {
  readonly code = 'ERR_DTESN_RECORD' as const;
  constructor(
    readonly path: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${path}:${line}: ${detail}`);
  }
  override get name(): string {
    return 'RecordError';
  }
}

function takeInt(o: Record<string, unknown>, key: string, dflt: number, lo: number, hi: number): number {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw new RangeError(`options.${key} must be an integer in [${lo}, ${hi}], got ${typeof v === 'number' ? v : describe(v)}`);
  }
  return v;
}

/** Splits stream/file options from vectorize options (which are checked now, not at the first batch). */
function split(options: unknown, own: readonly string[]): { own: Record<string, unknown>; vec: VectorizeOptions<Dtype> } {
  if (options === undefined) return { own: {}, vec: {} };
  if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
  const o: Record<string, unknown> = {};
  const vec: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) (own.includes(k) ? o : vec)[k] = v;
  const n = normalizeOptions(vec);
  if (n.outIds || n.outMask) throw new TypeError('options.out is not supported for streams: every batch is a new array');
  return { own: o, vec: vec as VectorizeOptions<Dtype> };
}

export function streamBatches(
  source: AsyncIterable<string> | Iterable<string>,
  options: StreamOptions | undefined,
  run: (texts: string[], options: VectorizeOptions<Dtype>) => Promise<VectorBatch<Dtype>>,
): AsyncIterable<VectorBatch<Dtype>> {
  const isIterable =
    source !== null && typeof source === 'object' && (Symbol.asyncIterator in source || Symbol.iterator in source);
  if (!isIterable) throw new TypeError(`source must be an iterable or async iterable of strings, got ${describe(source)}`);
  const { own, vec } = split(options, ['batchSize']);
  const batchSize = takeInt(own, 'batchSize', 1000, 1, 1 << 24);
  return (async function* () {
    let rows: string[] = [];
    let index = 0;
    for await (const item of source as AsyncIterable<unknown>) {
      if (typeof item !== 'string') {
        // The rows before it are good: deliver them, then stop.
        if (rows.length > 0) {
          const batch = await run(rows, vec);
          rows = [];
          yield batch;
        }
        throw new TypeError(`stream item ${index} must be a string, got ${item === null ? 'null' : typeof item}`);
      }
      index++;
      rows.push(item);
      if (rows.length === batchSize) {
        const batch = await run(rows, vec);
        rows = [];
        yield batch;
      }
    }
    if (rows.length > 0) yield await run(rows, vec);
  })();
}

/** Rows collected for the next batch: their UTF-8 bytes (shared memory, so the pool reads them in place). */
class RowBuffer {
  bytes = new Uint8Array(new SharedArrayBuffer(1 << 20));
  offsets = new Uint32Array(new SharedArrayBuffer(4 * 1025));
  lines = new Uint32Array(1024);
  rows = 0;

  push(src: Uint8Array, line: number): void {
    const at = this.offsets[this.rows]!;
    const end = at + src.length;
    if (end > this.bytes.length) {
      const grown = new Uint8Array(new SharedArrayBuffer(Math.max(end, this.bytes.length * 2)));
      grown.set(this.bytes.subarray(0, at));
      this.bytes = grown;
    }
    if (this.rows + 2 > this.offsets.length) {
      const grown = new Uint32Array(new SharedArrayBuffer(this.offsets.length * 8));
      grown.set(this.offsets);
      this.offsets = grown;
      const lines = new Uint32Array(this.offsets.length);
      lines.set(this.lines);
      this.lines = lines;
    }
    this.bytes.set(src, at);
    this.lines[this.rows] = line;
    this.rows++;
    this.offsets[this.rows] = end;
  }

  clear(): void {
    this.rows = 0;
  }
}

export type RecordParser = (chunk: Uint8Array, format: RecordFormat, field: string | null, isLast: boolean) => Records;

export function fileBatches(
  path: string,
  options: FileOptions,
  parseRecords: RecordParser,
  runBytes: (bytes: Uint8Array, offsets: Uint32Array, options: VectorizeOptions<Dtype>) => Promise<VectorBatch<Dtype>>,
): AsyncIterable<FileBatch> {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError(`path must be a non-empty string, got ${describe(path)}`);
  if (options === undefined) throw new TypeError("options.format is required: 'lines' or 'jsonl'");
  const { own, vec } = split(options, ['format', 'field', 'batchSize', 'onError', 'chunkBytes']);
  const format = own.format;
  if (format !== 'lines' && format !== 'jsonl') {
    throw new TypeError(`options.format must be one of 'lines', 'jsonl', got ${typeof format === 'string' ? `'${format}'` : describe(format)}`);
  }
  const field = own.field ?? 'text';
  if (typeof field !== 'string' || field.length === 0) throw new TypeError(`options.field must be a non-empty string, got ${describe(field)}`);
  if (own.field !== undefined && format !== 'jsonl') throw new TypeError("options.field is only valid with format 'jsonl'");
  const onError = own.onError ?? 'skip';
  if (onError !== 'skip' && onError !== 'throw') throw new TypeError(`options.onError must be one of 'skip', 'throw', got ${describe(onError)}`);
  const batchSize = takeInt(own, 'batchSize', 1000, 1, 1 << 24);
  const chunkBytes = takeInt(own, 'chunkBytes', 1 << 20, 16, 1 << 30);

  return (async function* () {
    const fh = await open(path, 'r');
    try {
      const rows = new RowBuffer();
      let skipped: SkippedLine[] = [];
      let carry: Uint8Array = new Uint8Array(0);
      let lineBase = 0; // lines fully consumed before the current chunk
      let eof = false;
      let atStart = true;
      const flush = async (): Promise<FileBatch> => {
        const n = rows.rows;
        const b = await runBytes(rows.bytes, rows.offsets.subarray(0, n + 1), vec);
        const lines = rows.lines.slice(0, n);
        const out: FileBatch = { ...b, firstLine: n > 0 ? lines[0]! : 0, lines, skipped };
        skipped = [];
        rows.clear();
        return out;
      };
      while (!eof) {
        const buf = new Uint8Array(carry.length + chunkBytes);
        buf.set(carry);
        const { bytesRead } = await fh.read(buf, carry.length, chunkBytes, null);
        eof = bytesRead === 0;
        let chunk = buf.subarray(0, carry.length + bytesRead);
        if (atStart) {
          // A UTF-8 byte-order mark starts the file, not its first row.
          if (chunk.length < 3 && !eof) {
            carry = chunk.slice();
            continue;
          }
          if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3);
          atStart = false;
        }
        const rec = parseRecords(chunk, format, format === 'jsonl' ? field : null, eof);
        const firstError = onError === 'throw' && rec.errors.length > 0 ? rec.errors[0]!.line : Number.POSITIVE_INFINITY;
        let e = 0; // errors before a row are reported with the batch that row goes into
        for (let i = 0; i < rec.lines.length; i++) {
          const line = rec.lines[i]!;
          if (line > firstError) break;
          for (; e < rec.errors.length && rec.errors[e]!.line < line; e++) skipped.push({ line: lineBase + rec.errors[e]!.line + 1, message: rec.errors[e]!.message });
          rows.push(rec.bytes.subarray(rec.offsets[i]!, rec.offsets[i + 1]!), lineBase + line + 1);
          if (rows.rows === batchSize) yield await flush();
        }
        if (firstError !== Number.POSITIVE_INFINITY) {
          if (rows.rows > 0) yield await flush();
          throw new RecordError(path, lineBase + firstError + 1, rec.errors[0]!.message);
        }
        for (; e < rec.errors.length; e++) skipped.push({ line: lineBase + rec.errors[e]!.line + 1, message: rec.errors[e]!.message });
        lineBase += rec.lineCount;
        carry = chunk.slice(rec.consumed);
      }
      if (rows.rows > 0 || skipped.length > 0) yield await flush();
    } finally {
      await fh.close();
    }
  })();
}
