/**
 * Batches from an iterable of strings, or from a file or byte stream, with bounded memory and
 * backpressure: an async generator reads only when its consumer asks for the next batch (a file
 * a few chunks ahead, a Node.js stream one), and holds at most four chunks, the bytes of one
 * unfinished line, and one batch.
 *
 * Chunks of files and byte streams are parsed in place (only an unfinished line at a chunk's end
 * is copied): the line splitting and, for JSONL, the field extraction happen in native code
 * (`fillRows`, crates/dtesn-core/src/records.rs), which writes each batch's rows straight into its
 * arena (bytes + offsets + line numbers, shared memory the pool can read in place): one N-API call
 * per batch, no JavaScript string or work per row; the batch goes to `vectorizeBytes`. Without the
 * native binding the same contract is kept by a JavaScript reader (records.ts).
 */
import { type FileHandle, open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { AbortWatch, checkSignal } from '../common/abort.js';
import { abortReason } from '../common/errors.js';
import { giveBack, takeBuffer } from '../common/spare.js';
import { ID_BYTES, IDS_ARRAY, MASK_ARRAY, MASK_BYTES, maxWidthOf, type NormalizedOptions } from '../vectorize/options.js';
import { describe } from '../common/check.js';
import { countNewlines, type RecordFormat, type RowFiller } from './records.js';
import type { Dtype, MaskDtype, VectorBatch, VectorizeOptions } from '../vectorize/types.js';

/** What `stream()` and `vectorizeFile()` share beyond the vectorize options. */
export interface ReuseOption {
  /**
   * [false] Write every batch into the same output memory instead of fresh arrays: a batch's
   * `ids` and `attentionMask` are views that the next batch overwrites, valid until the consumer
   * asks for the next batch (copy with `slice()` what you keep). For consumers that use each batch
   * and drop it (feed a model, write a file): no allocation per batch, and none of the garbage
   * collection that a stream of fresh outputs causes (BENCHMARKS.md, "reuse"). The memory, shared (SharedArrayBuffer), holds
   * `batchSize x maxLength` ids and mask bytes (maxLength rounded up to padToMultipleOf), made at
   * the first batch; when that exceeds 256 MiB the option has no effect (fresh arrays, as without
   * it).
   */
  reuseBuffers?: boolean;
}

export interface StreamOptions<D extends Dtype = Dtype, M extends MaskDtype = 'uint8'> extends VectorizeOptions<D, M>, ReuseOption {
  /** [1000] rows per batch. */
  batchSize?: number;
  /**
   * Ends the stream: a pending `next()` rejects with the signal's reason at once (even while the
   * source is still producing its next item), and so does the next call; the source is closed
   * (`return()`, not awaited).
   */
  signal?: AbortSignal;
}

export interface FileOptions<D extends Dtype = Dtype, M extends MaskDtype = 'uint8'> extends VectorizeOptions<D, M>, ReuseOption {
  /** 'lines': every line is a row; 'jsonl': each non-blank line is a JSON object holding the text. A UTF-8 BOM at the start of the file is skipped. */
  format: RecordFormat;
  /** ['text'] the JSONL field holding the text. */
  field?: string;
  /**
   * [1000] rows per batch. A batch also ends, with fewer rows (or none), once `batchSize` malformed
   * lines have been skipped since the previous one: memory stays bounded on a file of mostly
   * malformed lines.
   */
  batchSize?: number;
  /** ['skip'] a malformed JSONL line is skipped and reported in `skipped`, or ends the stream. */
  onError?: 'skip' | 'throw';
  /** [1 MiB] bytes read from a file at a time (a stream's chunks are taken as they come). */
  chunkBytes?: number;
  /**
   * Ends the stream: a pending `next()` rejects with the signal's reason at once (even while a read
   * is waiting for data), and so does the next call; the file is closed, a Node.js stream
   * destroyed (as leaving a `for await` loop does), another iterable's `return()` called.
   */
  signal?: AbortSignal;
  /**
   * `[start, end]`, byte offsets of a file (a path, not a stream): only the lines that *start* in
   * `[start, end)` are read, Hadoop's split rule: a range that begins inside a line skips to the
   * next line start, and the line crossing `end` is read whole. So consecutive ranges
   * `[a, b)`, `[b, c)` read every line starting in `[a, c)` exactly once, and the batches of the
   * ranges `[0, b)`, `[b, c)`, ..., `[y, size)` together are those of one pass over the file (rows,
   * skipped lines, line numbers; batches are cut per range). A BOM is skipped only by a range that
   * starts at 0. `bytesRead` counts from the range's first line, and the last batch's is the bytes
   * of all the range's lines (an empty last batch carries trailing blank JSONL lines), so the
   * ranges' add up to the file's size. Line numbers (`lines`,
   * `firstLine`, `skipped`, errors) stay those of the whole file: the newlines before the range are
   * counted first (memchr's vectorized count over a read of the bytes before `start`) unless
   * `startLine` gives the number of its first line. A range past the end of the file is a
   * RangeError.
   */
  range?: readonly [start: number, end: number];
  /**
   * The 1-based line number of the first line read: [1], or with `range` the count of the lines
   * before it. A caller that knows it (a shard's line count added up, or numbering relative to the
   * range: 1) saves that count.
   */
  startLine?: number;
}

export interface SkippedLine {
  /** 1-based line number in the file. */
  line: number;
  message: string;
}

export type FileBatch<D extends Dtype = Dtype, M extends MaskDtype = 'uint8'> = VectorBatch<D, M> & {
  /** 1-based line number of the batch's first row. */
  firstLine: number;
  /** 1-based line number of every row. */
  lines: Uint32Array;
  /** Malformed lines skipped since the previous batch (onError: 'skip'); at most batchSize. */
  skipped: SkippedLine[];
  /**
   * Input bytes consumed through the end of this batch (cumulative; a byte-order mark counts):
   * every byte before this offset is in a line of this batch or an earlier one (a row, a skipped
   * line or a blank JSONL line). A full batch (batchSize rows, or batchSize skipped lines) ends
   * just after the line that filled it; the last batch ends at the end of the input (or, with
   * `onError: 'throw'`, where the malformed line starts). Blank lines after a full last batch make
   * no batch of their own, so they are the only bytes a consumer may never see counted. For a
   * progress bar: `bytesRead / fileSize`.
   */
  bytesRead: number;
  /** Lines consumed through the end of this batch (cumulative, counted as `bytesRead` is: rows, skipped and blank lines). */
  linesRead: number;
};

/** What `vectorizeFile` reads: a file path, or a byte stream such as `process.stdin`. */
export type FileSource = string | NodeJS.ReadableStream | AsyncIterable<Uint8Array>;

/** A malformed line with `onError: 'throw'`. */
export class RecordError extends SyntaxError {
  readonly code = 'ERR_DTESN_RECORD' as const;
  constructor(
    /** The file's path; for a stream its `path` if it has one, else '<stdin>' or '<stream>'. */
    readonly path: string,
    readonly line: number,
    detail: string,
    /** Byte offset of the line's start in the file (for a stream: from the stream's start); -1 if unknown. */
    readonly offset = -1,
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

/** `FileOptions.range` checked: null when absent. */
function rangeOf(v: unknown): readonly [number, number] | null {
  if (v === undefined) return null;
  if (!Array.isArray(v) || v.length !== 2) throw new TypeError(`options.range must be [start, end] (byte offsets), got ${describe(v)}`);
  const [a, b] = v as unknown[];
  const ok = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!ok(a) || !ok(b) || a > b) {
    throw new RangeError(`options.range must be two integers 0 <= start <= end, got [${String(a)}, ${String(b)}]`);
  }
  return [a, b];
}

/** How a stream's vectorize options read once the pipeline's defaults are applied. */
export type ResolveOptions = (options: VectorizeOptions<Dtype, MaskDtype>) => NormalizedOptions;

/**
 * Splits stream/file options from vectorize options (which are checked now, with the pipeline's
 * defaults applied, not at the first batch).
 */
function split(options: unknown, own: readonly string[], resolve: ResolveOptions): { own: Record<string, unknown>; n: NormalizedOptions } {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
  const o: Record<string, unknown> = {};
  const vec: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) (own.includes(k) ? o : vec)[k] = v;
  const n = resolve(vec as VectorizeOptions<Dtype, MaskDtype>);
  if (n.outIds || n.outMask) {
    throw new TypeError('options.out is not supported for streams: pass reuseBuffers: true to write every batch into one reused output');
  }
  return { own: o, n };
}

/**
 * `reuseBuffers` checked: each batch's options, given its rows: the stream's `n` itself, or with
 * reuse `n` with its outputs set to the stream's output memory (off over REUSE_MAX_BYTES).
 */
function optionsPerBatch(own: Record<string, unknown>, n: NormalizedOptions, batchSize: number): (rows: number) => NormalizedOptions {
  const reuse = own.reuseBuffers ?? false;
  if (typeof reuse !== 'boolean') throw new TypeError(`options.reuseBuffers must be a boolean, got ${describe(reuse)}`);
  const elements = batchSize * maxWidthOf(n);
  if (!reuse || elements * (ID_BYTES[n.dtype] + MASK_BYTES[n.maskDtype]) > REUSE_MAX_BYTES) return () => n;
  // The memory of the stream, made at the first batch that has rows: one ids array and one mask
  // that every batch is written into, in shared memory so that a batch large enough for the pool
  // can still go there. batchSize x the widest width the options allow: no batch can be too wide
  // for it, whatever its text.
  let withOut: NormalizedOptions | null = null;
  return (rows) => {
    if (rows === 0) return n;
    withOut ??= {
      ...n,
      outIds: new IDS_ARRAY[n.dtype](new SharedArrayBuffer(elements * ID_BYTES[n.dtype])),
      outMask: new MASK_ARRAY[n.maskDtype](new SharedArrayBuffer(elements * MASK_BYTES[n.maskDtype])),
    };
    return withOut;
  };
}

/** The largest output memory `reuseBuffers` keeps (ids + mask); beyond it the option has no effect. */
export const REUSE_MAX_BYTES = 256 << 20;

export function streamBatches(
  source: AsyncIterable<string> | Iterable<string>,
  options: StreamOptions<Dtype, MaskDtype> | undefined,
  run: (texts: string[], options: NormalizedOptions, signal: AbortSignal | undefined) => Promise<VectorBatch<Dtype, MaskDtype>>,
  resolve: ResolveOptions,
): AsyncIterable<VectorBatch<Dtype, MaskDtype>> {
  const isIterable =
    source !== null && typeof source === 'object' && (Symbol.asyncIterator in source || Symbol.iterator in source);
  if (!isIterable) throw new TypeError(`source must be an iterable or async iterable of strings, got ${describe(source)}`);
  const { own, n } = split(options, ['batchSize', 'signal', 'reuseBuffers'], resolve);
  const batchSize = takeInt(own, 'batchSize', 1000, 1, 1 << 24);
  const signal = checkSignal(own.signal, 'options.signal');
  const optionsFor = optionsPerBatch(own, n, batchSize);
  const runRows = (rows: string[]) => run(rows, optionsFor(rows.length), signal);
  // A synchronous source is read synchronously: `for await` over it costs a promise and a
  // microtask per item, which was half of pipeline.stream's time on 1,000-row batches. Manual
  // iteration closes the source as for..of / for await do: return() on an early exit or an error
  // of ours, not when the source itself threw.
  const sync = !(Symbol.asyncIterator in (source as object));
  return (async function* () {
    if (signal?.aborted) throw abortReason(signal); // the source is not touched
    const watch = signal ? new AbortWatch(signal) : null;
    const it = sync ? (source as Iterable<unknown>)[Symbol.iterator]() : (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    let finished = false;
    let rows: string[] = [];
    let index = 0;
    try {
      for (;;) {
        let r: IteratorResult<unknown>;
        try {
          r = sync ? (it as Iterator<unknown>).next() : await (watch ? watch.wait((it as AsyncIterator<unknown>).next()) : (it as AsyncIterator<unknown>).next());
        } catch (e) {
          if (!signal?.aborted) finished = true; // a source that threw is not closed again
          throw e;
        }
        if (r.done) {
          finished = true;
          break;
        }
        const item = r.value;
        if (typeof item !== 'string') {
          // The rows before it are good: deliver them, then stop.
          if (rows.length > 0) {
            const batch = await runRows(rows);
            rows = [];
            yield batch;
          }
          throw new TypeError(`stream item ${index} must be a string, got ${item === null ? 'null' : typeof item}`);
        }
        index++;
        rows.push(item);
        if (rows.length === batchSize) {
          const batch = await runRows(rows);
          rows = [];
          yield batch;
          watch?.check(); // aborted while the consumer had the batch
        }
      }
      if (rows.length > 0) yield await runRows(rows);
    } finally {
      watch?.dispose();
      if (!finished) {
        // After an abort the source may be in the middle of producing an item (an async
        // generator would run return() only after it): close it without waiting.
        if (signal?.aborted) closeQuietly(it);
        else await it.return?.();
      }
    }
  })();
}

/** `it.return()` without waiting for it; what it throws or rejects with is dropped (the stream was aborted). */
function closeQuietly(it: Iterator<unknown> | AsyncIterator<unknown>): void {
  try {
    const r = it.return?.();
    if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(undefined, () => {});
  } catch {
    // dropped: the caller gets the abort reason
  }
}

/**
 * One batch's rows as `fillRows` writes them: UTF-8 bytes and offsets in shared memory (so the
 * pool reads them in place), and line numbers. Reused from batch to batch; grows when a batch
 * needs more (rows up to batchSize, bytes up to the batch's size).
 */
class RowArena {
  bytes = new Uint8Array(new SharedArrayBuffer(1 << 20));
  offsets: Uint32Array;
  lines: Uint32Array;
  rows = 0;

  constructor(private readonly batchSize: number) {
    const cap = Math.min(batchSize, 4096);
    this.offsets = new Uint32Array(new SharedArrayBuffer(4 * (cap + 1)));
    this.lines = new Uint32Array(cap);
  }

  growRows(): void {
    const cap = Math.min(this.batchSize, 2 * this.lines.length);
    const offsets = new Uint32Array(new SharedArrayBuffer(4 * (cap + 1)));
    offsets.set(this.offsets.subarray(0, this.rows + 1));
    const lines = new Uint32Array(cap);
    lines.set(this.lines.subarray(0, this.rows));
    this.offsets = offsets;
    this.lines = lines;
  }

  growBytes(need: number): void {
    const used = this.offsets[this.rows]!;
    const grown = new Uint8Array(new SharedArrayBuffer(Math.max(2 * this.bytes.length, used + need)));
    grown.set(this.bytes.subarray(0, used));
    this.bytes = grown;
  }
}

/** Chunks of bytes from a file or a stream, each valid until the next call (parsed in place). */
interface ByteSource {
  /** The next chunk (never empty), or null at the end. */
  next(): Promise<Uint8Array | null>;
  close(): Promise<void>;
  /** Closes it without waiting for a read in progress (after an abort); errors are dropped. */
  abandon(): void;
}

/**
 * A file read in chunks of `chunkBytes`, ahead of the caller: reads run on libuv's thread pool
 * while the caller parses the chunk it got, in place. A regular file has READ_AHEAD reads in
 * flight (positional reads, each into a buffer of its own, so READ_AHEAD + 1 buffers); a pipe or a device (a FIFO,
 * /dev/stdin, a shell's <(...)) has one, since its reads cannot be positioned and may wait for
 * data forever: leaving such a file early does not wait for the read in flight (the handle closes
 * once it finishes). Reads in flight while batches are made keep the caller from waiting for the
 * disk; one read ahead was not enough while the garbage collector's threads held the other core.
 */
const READ_AHEAD = 3;

/** What `FileOptions.range` reads of a file (checked against its size when it is opened). */
interface FileRange {
  start: number;
  end: number;
  /** Count the newlines before `start - 1` first (the source's `counted`). */
  count: boolean;
}

/** Bytes per read of the newline count before a range (two in flight). */
const COUNT_BLOCK = 4 << 20;

/** The newlines in `[0, length)` of an open file, read in blocks (stops early once `stop()`). */
async function countNewlinesBefore(h: FileHandle, length: number, stop: () => boolean): Promise<number> {
  const size = Math.min(COUNT_BLOCK, length);
  const bufs = [new Uint8Array(size), new Uint8Array(size)];
  let n = 0;
  let at = 0;
  let k = 0;
  let pending = length > 0 ? h.read(bufs[0]!, 0, size, 0) : null;
  while (pending !== null && !stop()) {
    const { bytesRead } = await pending;
    if (bytesRead === 0) break; // the file shrank; the range check saw it longer
    const cur = bufs[k]!.subarray(0, bytesRead);
    at += bytesRead;
    k ^= 1;
    pending = at < length ? h.read(bufs[k]!, 0, Math.min(size, length - at), at) : null;
    pending?.catch(() => {}); // awaited by the next turn, unless stopped
    n += countNewlines(cur);
  }
  return n;
}

/**
 * The lines of a file before the first line that starts at or after `start`: the count a
 * `range: [start, end]` makes for its line numbers (its first line is number `linesBefore + 1`).
 */
export async function linesBefore(path: string, start: number): Promise<number> {
  if (start === 0) return 0;
  const h = await open(path, 'r');
  try {
    return (await countNewlinesBefore(h, start - 1, () => false)) + 1;
  } finally {
    await h.close();
  }
}

/**
 * Reads `path` in chunks from the start, or, with `range`, from `range.start - 1` (the byte that
 * tells whether `start` begins a line) with at most one read in flight past `range.end` (only the
 * line crossing it is still needed); `counted` is then the newlines before that byte (when
 * `range.count`). `clipToRange` cuts the chunks to the range's lines.
 */
function fileSource(path: string, chunkBytes: number, range: FileRange | null = null): ByteSource & { readonly counted: number } {
  let fh: FileHandle | null = null;
  let regular = true;
  let abandoned = false;
  /** Reads in flight, oldest first: the buffer each fills and where in the file it starts. */
  let reads: { buf: Uint8Array; at: number; done: Promise<number> }[] = [];
  /** Buffers no read is using (the chunk last returned is in none of these lists until the next call). */
  const free: Uint8Array[] = [];
  let held: Uint8Array | null = null;
  /** Every buffer this source made: spares again once it is closed (src/common/spare.ts). */
  const made: Uint8Array[] = [];
  let next = 0; // where the next read issued starts (regular files)
  let ended = false;
  let counted = 0;
  const issue = (h: FileHandle) => {
    const depth = regular ? READ_AHEAD : 1;
    while (!ended && reads.length < depth) {
      if (range !== null && next >= range.end && reads.length > 0) break;
      let buf = free.pop();
      if (buf === undefined) made.push((buf = new Uint8Array(takeBuffer(chunkBytes))));
      const at = next;
      const done = h.read(buf, 0, chunkBytes, regular ? at : null).then((r) => r.bytesRead);
      done.catch(() => {}); // awaited by next() (or by close)
      reads.push({ buf, at, done });
      next += chunkBytes;
    }
  };
  const settled = () => Promise.all(reads.map((r) => r.done.catch(() => 0)));
  const abandon = () => {
    abandoned = true;
    const h = fh;
    if (h === null) return; // not open yet: a next() still opening it closes it
    fh = null;
    const pending = settled();
    reads = [];
    // Closed once the reads in flight have finished (they write into our buffers).
    void pending.then(() => h.close()).catch(() => {});
  };
  /** Checks `range` against the file, counts the newlines before it, and starts the reads there. */
  const startRange = async (h: FileHandle, r: FileRange): Promise<void> => {
    try {
      const st = await h.stat();
      if (!st.isFile()) throw new TypeError(`options.range needs a regular file: ${path} is not one`);
      if (r.end > st.size) throw new RangeError(`options.range [${r.start}, ${r.end}] is outside ${path} (${st.size} bytes)`);
      const from = r.start > 0 ? r.start - 1 : 0;
      if (r.count) counted = await countNewlinesBefore(h, from, () => abandoned);
      next = from;
    } catch (e) {
      await h.close().catch(() => {});
      throw e;
    }
  };
  return {
    get counted() {
      return counted;
    },
    async next() {
      if (fh === null) {
        if (abandoned) return null;
        const h = await open(path, 'r');
        const isFile = await h.stat().then((st) => st.isFile(), () => true);
        if (range !== null) await startRange(h, range);
        if (abandoned) {
          h.close().catch(() => {});
          return null;
        }
        fh = h;
        regular = isFile;
      }
      if (held) free.push(held); // the caller is done with the chunk it had
      held = null;
      issue(fh);
      const r = reads.shift();
      if (r === undefined) return null;
      const n = await r.done;
      if (abandoned) return null;
      if (n === 0) {
        ended = true;
        return null;
      }
      if (regular && n < chunkBytes && reads.length > 0) {
        // A short read (the end of the file, or a file that grew meanwhile): the reads after it
        // started past its end. Drop them and go on from where it stopped.
        const later = reads;
        reads = [];
        for (const x of later) free.push(x.buf);
        await Promise.all(later.map((x) => x.done.catch(() => 0)));
        next = r.at + n;
      }
      held = r.buf;
      issue(fh); // the next reads run while the caller works on this chunk
      return r.buf.subarray(0, n);
    },
    async close() {
      if (!regular) return abandon();
      await settled();
      reads = [];
      await fh?.close();
      // No read is in flight and the caller is done with its last chunk.
      for (const b of made.splice(0)) giveBack(b.buffer as ArrayBuffer);
      free.length = 0;
      held = null;
    },
    abandon,
  };
}

/**
 * The chunks of a range source (`fileSource` with `range`) cut to the bytes of the lines that
 * start in `[start, end)`: up to and including the first '\n' at or after `start - 1` is dropped
 * (nothing when `start` is 0), and the stream ends after the first '\n' at or after `end - 1` (or
 * at the end of the file). `first` is the file offset of the first byte given (known once a
 * chunk was), `linesBefore` the newlines before it (with `count`).
 */
function clipToRange(src: ByteSource & { readonly counted: number }, start: number, end: number): ByteSource & { first: number; linesBefore: number } {
  let pos = start > 0 ? start - 1 : 0; // file offset of the next chunk's first byte
  let phase: 'skip' | 'body' | 'tail' = start > 0 ? 'skip' : 'body';
  let done = false;
  const out = {
    first: start,
    linesBefore: 0,
    async next(): Promise<Uint8Array | null> {
      for (;;) {
        if (done) return null;
        const c = await src.next();
        if (c === null) {
          done = true;
          return null;
        }
        const at = pos;
        pos += c.length;
        if (start === end) {
          // Empty: the file was opened and the range checked, that is all.
          done = true;
          return null;
        }
        let lo = 0;
        if (phase === 'skip') {
          const nl = c.indexOf(0x0a);
          if (nl < 0) continue; // inside the line that starts before the range
          lo = nl + 1;
          phase = 'body';
          out.first = at + lo;
          out.linesBefore = src.counted + 1;
          if (out.first >= end) {
            done = true; // no line starts in [start, end)
            return null;
          }
        }
        if (phase === 'body') {
          if (pos < end) {
            if (lo < c.length) return c.subarray(lo);
            continue;
          }
          // This chunk holds byte end - 1: the line it is in is the range's last.
          const e = end - at;
          if (c[e - 1] === 0x0a) {
            done = true;
            return c.subarray(lo, e);
          }
          const nl = c.indexOf(0x0a, e);
          if (nl >= 0) {
            done = true;
            return c.subarray(lo, nl + 1);
          }
          phase = 'tail';
          if (lo < c.length) return c.subarray(lo);
          continue;
        }
        const nl = c.indexOf(0x0a);
        if (nl >= 0) {
          done = true;
          return c.subarray(0, nl + 1);
        }
        return c;
      }
    },
    close: () => src.close(),
    abandon: () => src.abandon(),
  };
  return out;
}

/**
 * A stream's chunks, pulled only when the reader needs bytes (so a Node.js stream is paused in
 * between: backpressure). A Node.js Readable is pulled one chunk ahead, so that its next read runs
 * while the current chunk is parsed (its chunks are fresh Buffers, never refilled); other
 * iterables are not (their producer may reuse a buffer). Ending early returns the iterator (a
 * Node.js stream is destroyed).
 */
function streamSource(source: AsyncIterable<unknown>): ByteSource {
  let it: AsyncIterator<unknown> | null = null;
  let ahead: Promise<IteratorResult<unknown>> | null = null;
  const readAhead = source instanceof Readable;
  let index = 0;
  let done = false;
  const pull = () => {
    const p = it!.next();
    p.catch(() => {}); // awaited by the next call
    return p;
  };
  return {
    async next() {
      for (;;) {
        if (done) return null;
        it ??= source[Symbol.asyncIterator]();
        const r = await (ahead ?? pull());
        ahead = null;
        if (done) return null; // abandoned meanwhile
        if (r.done) {
          done = true;
          return null;
        }
        const v = r.value;
        if (!(v instanceof Uint8Array)) {
          // Not `done`: the source did not end, close() returns it (destroys a Node.js stream).
          const what = typeof v === 'string' ? 'a string (a stream with an encoding set?)' : describe(v);
          throw new TypeError(`stream chunk ${index} must be a Uint8Array, got ${what}`);
        }
        index++;
        if (readAhead) {
          ahead = pull();
          // One event-loop turn, so that the stream starts its next read (it does so from
          // process.nextTick, which waits while promise jobs run back to back) before this chunk
          // is parsed; otherwise that read waits for the parse.
          await new Promise((r) => setImmediate(r));
        }
        if (v.length > 0) return v;
      }
    },
    async close() {
      const open = it;
      if (!stop() || open === null) return;
      await ahead?.catch(() => undefined);
      await open.return?.();
    },
    abandon() {
      const open = it;
      if (stop() && open !== null && !(source instanceof Readable)) closeQuietly(open);
    },
  };

  /**
   * Marks the source done; false if it was not open or already done. A Node.js stream is destroyed
   * at once: its iterator would destroy it in return(), but only after a pending read (return()
   * of an async generator waits for its next()), and a quiet stdin must not hold us. No error: a
   * stream without an 'error' listener would take the process down with it.
   */
  function stop(): boolean {
    if (it === null || done) return false;
    done = true;
    if (source instanceof Readable) source.destroy();
    return true;
  }
}

function sourceName(source: object): string {
  if (source === process.stdin) return '<stdin>';
  const p = (source as { path?: unknown }).path;
  return typeof p === 'string' && p.length > 0 ? p : Buffer.isBuffer(p) ? p.toString() : '<stream>';
}

/**
 * A vectorize error about one row of a batch ("row 500 is not valid UTF-8 ...", options.invalid
 * 'error'; "row 3: id 300 does not fit dtype 'uint8'") said where that row is in the input, as a
 * malformed line is: `path:line: ...`. Same class, the original as `cause`, `path` and `line` set.
 * Other errors pass through.
 */
function atLine(e: unknown, path: string, lines: Uint32Array): unknown {
  if (!(e instanceof TypeError || e instanceof RangeError)) return e;
  const m = /^row (\d+)(: )?/.exec(e.message);
  const row = m ? Number(m[1]) : -1;
  if (!m || row >= lines.length) return e;
  const line = lines[row]!;
  const detail = (m[2] ? '' : 'the line') + e.message.slice(m[0].length);
  const Ctor = e instanceof RangeError ? RangeError : TypeError;
  return Object.assign(new Ctor(`${path}:${line}: ${detail}`, { cause: e }), { path, line });
}

export function fileBatches(
  source: FileSource,
  options: FileOptions<Dtype, MaskDtype>,
  fillRows: RowFiller,
  runBytes: (bytes: Uint8Array, offsets: Uint32Array, options: NormalizedOptions, signal: AbortSignal | undefined) => Promise<VectorBatch<Dtype, MaskDtype>>,
  resolve: ResolveOptions,
): AsyncIterable<FileBatch<Dtype, MaskDtype>> {
  let name: string;
  let openSource: () => ByteSource & { first?: number; linesBefore?: number };
  if (typeof source === 'string') {
    if (source.length === 0) throw new TypeError('path must be a non-empty string, got string');
    name = source;
    openSource = () => {
      if (range === null) return fileSource(source, chunkBytes);
      const [start, end] = range;
      return clipToRange(fileSource(source, chunkBytes, { start, end, count: startLine === undefined }), start, end);
    };
  } else if (source !== null && typeof source === 'object' && Symbol.asyncIterator in source) {
    name = sourceName(source);
    openSource = () => streamSource(source as AsyncIterable<unknown>);
  } else {
    throw new TypeError(`source must be a file path, a readable stream or an async iterable of Uint8Array, got ${describe(source)}`);
  }
  if (options === undefined) throw new TypeError("options.format is required: 'lines' or 'jsonl'");
  const { own, n: normalized } = split(
    options, ['format', 'field', 'batchSize', 'onError', 'chunkBytes', 'signal', 'reuseBuffers', 'range', 'startLine'], resolve,
  );
  const signal = checkSignal(own.signal, 'options.signal');
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
  const range = rangeOf(own.range);
  if (range !== null && typeof source !== 'string') throw new TypeError('options.range needs a file path, not a stream');
  const startLine = own.startLine === undefined ? undefined : takeInt(own, 'startLine', 1, 1, Number.MAX_SAFE_INTEGER);
  const optionsFor = optionsPerBatch(own, normalized, batchSize);
  const fieldArg = format === 'jsonl' ? field : null;
  const fmt: RecordFormat = format;

  return (async function* () {
    if (signal?.aborted) throw abortReason(signal); // the source is not touched
    const watch = signal ? new AbortWatch(signal) : null;
    const src = openSource();
    try {
      const arena = new RowArena(batchSize);
      let skipped: SkippedLine[] = [];
      let lineBase = startLine === undefined ? 0 : startLine - 1; // lines consumed so far (before the first: set once a chunk came)
      let base = 0; // offset of the first byte read (a range's first line) in the file
      let consumed = 0; // input bytes consumed so far (through the last line consumed)
      // The unfinished line at the end of the last chunk (or the first bytes, until the BOM is
      // decided): chunks are parsed in place, only this part is copied.
      let carry = new Uint8Array(1024);
      let carried = 0;
      const keep = (bytes: Uint8Array) => {
        if (carried + bytes.length > carry.length) {
          const grown = new Uint8Array(Math.max(2 * carry.length, carried + bytes.length));
          grown.set(carry.subarray(0, carried));
          carry = grown;
        }
        carry.set(bytes, carried);
        carried += bytes.length;
      };
      let atStart = range === null || range[0] === 0; // a BOM starts only the file
      let first = true;
      let reported = 0; // bytesRead of the last batch
      let lineStart = lineBase; // lineBase before the first line read
      const flush = async (): Promise<FileBatch<Dtype, MaskDtype>> => {
        const n = arena.rows;
        let b: VectorBatch<Dtype, MaskDtype>;
        try {
          b = await runBytes(arena.bytes, arena.offsets.subarray(0, n + 1), optionsFor(n), signal);
        } catch (e) {
          throw atLine(e, name, arena.lines);
        }
        const lines = arena.lines.slice(0, n);
        const out: FileBatch<Dtype, MaskDtype> = { ...b, firstLine: n > 0 ? lines[0]! : 0, lines, skipped, bytesRead: consumed, linesRead: lineBase - lineStart };
        reported = consumed;
        skipped = [];
        arena.rows = 0;
        return out;
      };
      /** Rows of the complete lines of `input` (all when `isLast`) into batches; returns the bytes consumed. */
      async function* rowsOf(input: Uint8Array, isLast: boolean): AsyncGenerator<FileBatch<Dtype, MaskDtype>, number> {
        let pos = 0;
        for (;;) {
          const r = fillRows(
            input.subarray(pos), isLast, fmt, fieldArg, lineBase + 1, batchSize - arena.rows,
            onError === 'throw', onError === 'throw' ? Number.MAX_SAFE_INTEGER : batchSize - skipped.length,
            arena.bytes, arena.offsets, arena.lines, arena.rows,
          );
          arena.rows = r.rows;
          lineBase += r.lineCount;
          pos += r.consumed;
          consumed += r.consumed;
          if (r.stop === 'error') {
            const e = r.errors[r.errors.length - 1]!;
            if (arena.rows > 0) yield await flush();
            throw new RecordError(name, lineBase + 1, e.message, base + consumed);
          }
          for (const e of r.errors) skipped.push({ line: lineBase - r.lineCount + e.line + 1, message: e.message });
          // A full batch goes at once (what follows its last row belongs to the next one); so
          // does one with batchSize skipped lines (the filler stops right after the last), full
          // of rows or not, so that a file of mostly malformed lines (a wrong `field`) is still
          // read a batch at a time in bounded memory.
          if (arena.rows === batchSize || skipped.length >= batchSize) {
            yield await flush();
            watch?.check(); // aborted while the consumer had the batch
          } else if (r.stop === 'rows') arena.growRows();
          if (r.stop === 'bytes') arena.growBytes(r.need);
          else if (r.stop === 'input') return pos;
        }
      }
      for (;;) {
        const chunk = await (watch ? watch.wait(src.next()) : src.next());
        if (first) {
          first = false;
          base = src.first ?? 0;
          if (startLine === undefined) lineBase = lineStart = src.linesBefore ?? 0;
        }
        if (atStart) {
          // A UTF-8 byte-order mark starts the input, not its first row.
          if (chunk) keep(chunk);
          if (carried < 3 && chunk) continue;
          if (carry[0] === 0xef && carry[1] === 0xbb && carry[2] === 0xbf) {
            carry.copyWithin(0, 3, carried);
            carried -= 3;
            consumed = 3;
          }
          atStart = false;
          if (!chunk) {
            yield* rowsOf(carry.subarray(0, carried), true);
            break;
          }
          const nl = carry.subarray(0, carried).lastIndexOf(0x0a);
          if (nl >= 0) {
            const used = yield* rowsOf(carry.subarray(0, nl + 1), false);
            carry.copyWithin(0, used, carried);
            carried -= used;
          }
          continue;
        }
        if (!chunk) {
          yield* rowsOf(carry.subarray(0, carried), true);
          break;
        }
        let at = 0;
        if (carried > 0) {
          // The carried line ends at the chunk's first '\n' (or goes on).
          const nl = chunk.indexOf(0x0a);
          if (nl < 0) {
            keep(chunk);
            continue;
          }
          keep(chunk.subarray(0, nl + 1));
          yield* rowsOf(carry.subarray(0, carried), false);
          carried = 0;
          at = nl + 1;
        }
        const used = yield* rowsOf(chunk.subarray(at), false);
        keep(chunk.subarray(at + used));
      }
      // A range's last batch always ends at the range's end, an empty one if only blank lines were
      // left, so that the ranges' bytesRead add up to the file's size.
      if (arena.rows > 0 || skipped.length > 0 || (range !== null && consumed > reported)) yield await flush();
    } finally {
      watch?.dispose();
      // After an abort a read may be waiting for data that never comes: do not wait for it.
      if (signal?.aborted) src.abandon();
      else await src.close();
    }
  })();
}
