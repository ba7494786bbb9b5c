/**
 * Tensor files for `dtesn vectorize --out`, written from a stream of batches with bounded memory:
 *
 * - `.npy` (NumPy format 1.0): ids in `<path>` ([rows, width], the ids dtype: `<i8` for int64),
 *   the attention mask in `<base>.mask.npy` ([rows, width], the maskDtype: uint8, int32 or int64)
 *   and lengths in `<base>.lengths.npy` (int32 [rows]), where `<base>` is `<path>` without its
 *   `.npy`.
 * - `.safetensors`: one file holding `input_ids` ([rows, width], I64 I32 I16 U16 U8 or F32),
 *   `lengths` (I32 [rows]) and `attention_mask` ([rows, width], U8 I32 or I64), stored by
 *   descending element size (ties in the order input_ids, lengths, attention_mask), as the
 *   reference writer does, so that every tensor is aligned to its element size.
 *
 * The output equals one `vectorize(allRows, options)` call: with padding 'longest' each batch is
 * as wide as its own longest row, so the file takes the widest batch's width and narrower batches
 * are re-padded (padId in ids, 0 in the mask, on the padding side).
 *
 * How, and what it costs. Each tensor's batches are appended as they come to a temporary file in
 * the target directory, through a 4 MiB staging buffer (small batches still make large writes).
 * Memory holds the staging buffers and one (rows, width) pair per run of same-width batches (tens
 * of bytes per batch at worst), whatever the output size. The ids temporary starts with room for
 * the final header (npy: 128 bytes; safetensors: the header written with 16-digit numbers), so
 * when every batch has the final width (always with padding 'max-length') the ids are already in
 * place: finish() writes the headers there, and for safetensors appends lengths and mask behind
 * the ids (a copy of 1 byte per element and 4 per row). Otherwise finish() rebuilds ids and mask
 * into new files, re-padding rows as it copies them in 8 MiB chunks: one more read and write of
 * the data (bench/writer.bench.ts measures both cases).
 *
 * Nothing is half-written: every file is complete under a temporary name (`.<name>.<pid>-<hex>.tmp`
 * beside its target) before the first rename; abort() or any error removes the temporaries (and,
 * should a rename fail, the files already renamed, so no mixed set remains). Files are not
 * fsync'ed: that would cost a disk flush; a machine crash right after finish can leave them short.
 */
import { randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { getSystemErrorMap } from 'node:util';
import { LITTLE_ENDIAN, npyDescrOf, npyHeader, npyHeaderRoom } from './npy.js';
import { DTYPES, ID_BYTES, IDS_ARRAY, IDS_ARRAY_NAME, INT64_RANGE, MASK_ARRAY, MASK_ARRAY_NAME, MASK_BYTES, MASK_DTYPES, maxWidthOf, normalizeOptions } from '../vectorize/options.js';
import { describe } from '../common/check.js';
import { SAFETENSORS_DTYPE, type SafetensorsEntry, safetensorsHeader, safetensorsHeaderRoom } from './safetensors.js';
import { giveBack, takeBuffer } from '../common/spare.js';
import type { Dtype, MaskDtype, Side, VectorBatch, VectorizeOptions } from '../vectorize/types.js';

export type TensorFormat = 'npy' | 'safetensors';

export interface TensorWriterOptions {
  /** The ids dtype; every batch's ids must be of it. */
  dtype: Dtype;
  /** Fills ids where a narrower batch is re-padded (a bigint only for dtype 'int64'). */
  padId: number | bigint;
  /** ['uint8'] The attention mask's element type; every batch's mask must be of it. */
  maskDtype?: MaskDtype;
  /** Where a narrower batch's rows get their extra padding. */
  paddingSide: Side;
  /**
   * The width of every batch when known up front (padding 'max-length'): an output without rows
   * gets it, and a batch of another width is an error. Without it the output is as wide as the
   * widest batch (padding 'longest'; 0 without rows).
   */
  width?: number;
  /** [from the extension: '.npy' or '.safetensors'] */
  format?: TensorFormat;
  /** safetensors `__metadata__` (string to string); .npy has no place for it and ignores it. */
  metadata?: Readonly<Record<string, string>>;
}

export interface TensorFileResult {
  /** The files written: the ids file first (npy: then mask, lengths). */
  files: string[];
  rows: number;
  width: number;
  /** Bytes of all files. */
  bytes: number;
}

export interface TensorWriter {
  /**
   * Appends a batch's rows. Calls are queued, in order; the batch must not change until the
   * promise settles. A batch of the wrong dtype or shape is rejected (TypeError / RangeError)
   * and the writer stays usable; an I/O error removes the temporaries and fails the writer.
   */
  write(batch: VectorBatch<Dtype, MaskDtype>): Promise<void>;
  /**
   * Completes the files, renames them into place, and closes the writer. With `signal` aborted
   * before the renames (a re-padding rebuild runs to its end first), nothing is renamed: the
   * temporaries are removed and it rejects with the signal's reason.
   */
  finish(opts?: { signal?: AbortSignal }): Promise<TensorFileResult>;
  /** Removes the temporaries and closes the writer; a no-op once finished or failed. */
  abort(): Promise<void>;
}

/**
 * The writer options implied by vectorize options (only the padding-related ones are read, so
 * stream options such as `batchSize` may be present): dtype, maskDtype, padId, paddingSide, and
 * with padding 'max-length' the width (maxLength rounded up to padToMultipleOf), all checked and
 * defaulted exactly as vectorize does.
 */
export function tensorWriterOptionsOf(
  options: VectorizeOptions<Dtype, MaskDtype> | undefined,
): Pick<TensorWriterOptions, 'dtype' | 'maskDtype' | 'padId' | 'paddingSide' | 'width'> {
  const o = (options ?? {}) as Record<string, unknown>;
  const keys = ['encoding', 'addSpecialTokens', 'maxLength', 'padding', 'padToMultipleOf', 'paddingSide', 'padId', 'dtype', 'maskDtype'];
  const n = normalizeOptions(Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])));
  const out: Pick<TensorWriterOptions, 'dtype' | 'maskDtype' | 'padId' | 'paddingSide' | 'width'> = {
    dtype: n.dtype,
    maskDtype: n.maskDtype,
    padId: n.padId,
    paddingSide: n.paddingSide,
  };
  if (n.padding === 'max-length') out.width = maxWidthOf(n);
  return out;
}

const STAGE_BYTES = 4 << 20;
const CHUNK_BYTES = 8 << 20;



type ElementArray = Int32Array | Int16Array | Uint16Array | Uint8Array | Float32Array | BigInt64Array;
type ElementView = (buffer: ArrayBuffer, byteOffset: number, length: number) => ElementArray;
const VIEW: { readonly [D in Dtype]: ElementView } = {
  int32: (b, o, n) => new Int32Array(b, o, n),
  int16: (b, o, n) => new Int16Array(b, o, n),
  uint16: (b, o, n) => new Uint16Array(b, o, n),
  uint8: (b, o, n) => new Uint8Array(b, o, n),
  float32: (b, o, n) => new Float32Array(b, o, n),
  int64: (b, o, n) => new BigInt64Array(b, o, n),
};

/** `to.fill(pad)` for every element type (a BigInt64Array takes a bigint). */
function fillPad(to: ElementArray, pad: number | bigint): void {
  if (to instanceof BigInt64Array) to.fill(BigInt(pad));
  else to.fill(Number(pad));
}

/** Consecutive batches of one width. */
interface Segment {
  rows: number;
  width: number;
}

/** A temporary file beside `target`, the output file whose name errors carry. */
interface TempFile {
  path: string;
  target: string;
  fh: FileHandle | null;
}

/** Errors that already name the output file. */
const NAMED = new WeakSet<Error>();

/** `cannot write <target>: ENOENT: no such file or directory` (the system's words for system errors). */
function cannotWrite(target: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException | null;
  let reason = err instanceof Error ? err.message : String(err);
  if (e && typeof e.errno === 'number' && typeof e.code === 'string') {
    const words = getSystemErrorMap().get(e.errno)?.[1];
    if (words !== undefined) reason = `${e.code}: ${words}`;
  }
  const named = new Error(`cannot write ${target}: ${reason}`, { cause: err });
  NAMED.add(named);
  return named;
}

async function writeAll(fh: FileHandle, bytes: Uint8Array, pos: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, pos + done);
    done += bytesWritten;
  }
}

async function readAll(fh: FileHandle, into: Uint8Array, pos: number): Promise<void> {
  for (let done = 0; done < into.length; ) {
    const { bytesRead } = await fh.read(into, done, into.length - done, pos + done);
    if (bytesRead === 0) throw new Error(`temporary file ended ${into.length - done} bytes early`);
    done += bytesRead;
  }
}

function bytesOf(a: ElementArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Appends to a file at increasing positions, staging small pieces so that writes stay large. */
class Appender {
  private stage = new Uint8Array(takeBuffer(STAGE_BYTES));
  private used = 0;

  constructor(
    readonly fh: FileHandle,
    private pos: number,
  ) {}

  /** The file's size once flushed. */
  get end(): number {
    return this.pos + this.used;
  }

  async append(bytes: Uint8Array): Promise<void> {
    if (this.used + bytes.length > this.stage.length) await this.flush();
    if (bytes.length >= this.stage.length / 2) {
      await writeAll(this.fh, bytes, this.pos);
      this.pos += bytes.length;
    } else {
      this.stage.set(bytes, this.used);
      this.used += bytes.length;
    }
  }

  /** Drops the staging buffer (a closed writer that is still referenced holds no 4 MiB). */
  release(): void {
    if (this.stage.byteLength > 0) giveBack(this.stage.buffer as ArrayBuffer);
    this.stage = new Uint8Array(0);
    this.used = 0;
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    await writeAll(this.fh, this.stage.subarray(0, this.used), this.pos);
    this.pos += this.used;
    this.used = 0;
  }
}

/** Copies `length` bytes from `src` at `pos` to `dst`, in chunks (reading the next while writing one). */
async function copyBytes(src: FileHandle, pos: number, length: number, dst: Appender): Promise<void> {
  // Small copies get buffers of their own size; large ones spare CHUNK_BYTES buffers (src/common/spare.ts).
  const spared = length >= CHUNK_BYTES / 8;
  const take = () => (spared ? new Uint8Array(takeBuffer(CHUNK_BYTES)) : new Uint8Array(length));
  const bufs = [take(), take()];
  let n = Math.min(CHUNK_BYTES, length);
  // A read ahead that fails while a write fails too must not become an unhandled rejection.
  const readAhead = (buf: Uint8Array, at: number): Promise<void> => {
    const p = readAll(src, buf, at);
    p.catch(() => {});
    return p;
  };
  let reading = readAhead(bufs[0]!.subarray(0, n), pos);
  for (let done = 0, k = 0; done < length; k ^= 1) {
    await reading;
    const cur = bufs[k]!.subarray(0, n);
    done += n;
    n = Math.min(CHUNK_BYTES, length - done);
    reading = n > 0 ? readAhead(bufs[k ^ 1]!.subarray(0, n), pos + done) : Promise.resolve();
    await dst.append(cur);
  }
  await reading;
  if (spared) for (const b of bufs) giveBack(b.buffer as ArrayBuffer); // every read and write on them has finished
}

/**
 * Copies rows stored back to back from `pos` (runs of `segments`, elements of `dtype`) to `dst`
 * as rows of `width`, re-padding narrower rows with `pad` on the right or left. Memory: two 8 MiB
 * buffers (or two rows, when a row is larger).
 */
async function copyRepadded(
  src: FileHandle,
  pos: number,
  segments: readonly Segment[],
  width: number,
  dtype: Dtype,
  pad: number | bigint,
  left: boolean,
  dst: Appender,
): Promise<void> {
  const size = ID_BYTES[dtype];
  const rowOut = width * size;
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / Math.max(rowOut, 1)));
  let inBuf: ArrayBuffer | null = null;
  let outBuf: ArrayBuffer | null = null;
  for (const seg of segments) {
    const rowIn = seg.width * size;
    if (seg.width === width) {
      await copyBytes(src, pos, seg.rows * rowIn, dst);
      pos += seg.rows * rowIn;
      continue;
    }
    inBuf ??= takeBuffer(Math.max(CHUNK_BYTES, perChunk * rowOut));
    outBuf ??= takeBuffer(Math.max(CHUNK_BYTES, perChunk * rowOut));
    const shift = left ? width - seg.width : 0;
    for (let r = 0; r < seg.rows; ) {
      const n = Math.min(perChunk, seg.rows - r);
      await readAll(src, new Uint8Array(inBuf, 0, n * rowIn), pos);
      pos += n * rowIn;
      r += n;
      fillPad(VIEW[dtype](outBuf, 0, n * width), pad);
      // One set() of each row's bytes: about 20 ns of call overhead each, small against the row's
      // bytes for any width worth streaming to a file.
      if (seg.width > 0) {
        const from = new Uint8Array(inBuf, 0, n * rowIn);
        const to = new Uint8Array(outBuf, 0, n * rowOut);
        for (let i = 0; i < n; i++) to.set(from.subarray(i * rowIn, (i + 1) * rowIn), (i * width + shift) * size);
      }
      await dst.append(new Uint8Array(outBuf, 0, n * rowOut));
    }
  }
  if (inBuf) giveBack(inBuf);
  if (outBuf) giveBack(outBuf);
}

/**
 * Opens a writer for `target`. Checks the options and that the files can be created (a missing
 * directory or a directory in place of the file is an error naming the path, before any batch).
 */
export async function openTensorWriter(target: string, options: TensorWriterOptions): Promise<TensorWriter> {
  if (typeof target !== 'string' || target.length === 0) {
    throw new TypeError(`path must be a non-empty string, got ${describe(target)}`);
  }
  if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
  const { dtype, padId, paddingSide, width, metadata } = options;
  const maskDtype = options.maskDtype ?? 'uint8';
  if (!DTYPES.includes(dtype)) {
    throw new TypeError(`options.dtype must be one of ${DTYPES.map((d) => `'${d}'`).join(', ')}, got ${describe(dtype)}`);
  }
  if (!MASK_DTYPES.includes(maskDtype)) {
    throw new TypeError(`options.maskDtype must be one of ${MASK_DTYPES.map((d) => `'${d}'`).join(', ')}, got ${describe(maskDtype)}`);
  }
  if (typeof padId === 'bigint') {
    if (dtype !== 'int64') throw new TypeError(`options.padId must be a number for dtype '${dtype}' (a bigint only for 'int64'), got bigint`);
    if (padId < INT64_RANGE[0] || padId > INT64_RANGE[1]) throw new RangeError(`options.padId must fit int64, got ${padId}`);
  } else if (typeof padId !== 'number' || !Number.isFinite(padId)) {
    throw new TypeError(`options.padId must be a number, got ${describe(padId)}`);
  } else if (dtype === 'int64' && !Number.isSafeInteger(padId)) {
    throw new RangeError(`options.padId must be a safe integer, or a bigint, for dtype 'int64', got ${padId}`);
  }
  if (paddingSide !== 'left' && paddingSide !== 'right') {
    throw new TypeError(`options.paddingSide must be 'left' or 'right', got ${describe(paddingSide)}`);
  }
  if (width !== undefined && (!Number.isSafeInteger(width) || width < 0)) {
    throw new RangeError(`options.width must be a non-negative integer, got ${describe(width)}`);
  }
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null) {
      throw new TypeError(`options.metadata must be an object of strings, got ${describe(metadata)}`);
    }
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`options.metadata['${k}'] must be a string, got ${describe(v)}`);
    }
  }
  const format = formatOf(target, options.format);
  if (!LITTLE_ENDIAN) throw new Error(`cannot write ${target}: big-endian hosts are not supported`);

  const targets =
    format === 'npy'
      ? [target, `${target.replace(/\.npy$/i, '')}.mask.npy`, `${target.replace(/\.npy$/i, '')}.lengths.npy`]
      : [target];
  for (const t of targets) {
    const st = await stat(t).catch(() => null);
    if (st?.isDirectory()) throw cannotWrite(t, 'it is a directory');
  }
  const w = new Writer(target, format, dtype, maskDtype, padId, paddingSide === 'left', width ?? null, metadata);
  await w.start(targets);
  return w;
}

function formatOf(target: string, format: unknown): TensorFormat {
  if (format !== undefined) {
    if (format !== 'npy' && format !== 'safetensors') {
      throw new TypeError(`options.format must be 'npy' or 'safetensors', got ${describe(format)}`);
    }
    return format;
  }
  const ext = path.extname(target).toLowerCase();
  if (ext === '.npy') return 'npy';
  if (ext === '.safetensors') return 'safetensors';
  const from = ext ? `the extension '${ext}'` : 'a name without extension';
  throw new TypeError(`${target}: cannot tell the output format from ${from}: use .npy or .safetensors, or options.format`);
}

class Writer implements TensorWriter {
  private readonly temps: TempFile[] = [];
  private readonly segments: Segment[] = [];
  private rows = 0;
  private maxWidth = 0;
  // Set by start(), before the writer is handed out.
  private ids!: Appender;
  private mask!: Appender;
  private lengths!: Appender;
  /** [ids, mask, lengths] temporaries. */
  private files!: [TempFile, TempFile, TempFile];
  private tail: Promise<unknown> = Promise.resolve();
  private closed: 'finished' | 'aborted' | null = null;
  /** finish()'s signal: checked before the renames. */
  private finishSignal: AbortSignal | undefined;
  private failure: Error | null = null;
  private readonly idsRoom: number;

  constructor(
    private readonly target: string,
    private readonly format: TensorFormat,
    private readonly dtype: Dtype,
    private readonly maskDtype: MaskDtype,
    private readonly padId: number | bigint,
    private readonly left: boolean,
    private readonly fixedWidth: number | null,
    private readonly metadata: Readonly<Record<string, string>> | undefined,
  ) {
    this.idsRoom =
      format === 'npy'
        ? npyHeaderRoom(npyDescrOf(dtype), 2)
        : safetensorsHeaderRoom(
            this.layout().map((e) => ({ name: e.name, dtype: e.dtype, rank: e.shape.length })),
            metadata,
          );
  }

  /** Creates the temporaries: npy: three files, each with header room; safetensors: the file and two spools. */
  async start(targets: string[]): Promise<void> {
    const [idsTarget, maskTarget = this.target, lengthsTarget = this.target] = targets;
    try {
      const ids = await this.temp(idsTarget!);
      const mask = await this.temp(maskTarget);
      const lengths = await this.temp(lengthsTarget);
      this.files = [ids, mask, lengths];
      const room = this.format === 'npy' ? npyHeaderRoom(npyDescrOf(this.maskDtype), 2) : 0;
      this.ids = new Appender(ids.fh!, this.idsRoom);
      this.mask = new Appender(mask.fh!, room);
      this.lengths = new Appender(lengths.fh!, this.format === 'npy' ? npyHeaderRoom('<i4', 1) : 0);
    } catch (err) {
      await this.cleanup();
      throw err;
    }
  }

  private async temp(target: string): Promise<TempFile> {
    const p = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    const t: TempFile = { path: p, target, fh: null };
    try {
      t.fh = await open(p, 'wx+'); // read too: finish() copies from spools
    } catch (err) {
      throw cannotWrite(target, err);
    }
    this.temps.push(t);
    return t;
  }

  write(batch: VectorBatch<Dtype, MaskDtype>): Promise<void> {
    try {
      this.check(batch);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.run(async () => {
      const { rows, width } = batch;
      if (rows === 0) return;
      // The three files are written in parallel (libuv's pool); all settle before an error ends the writer.
      const settled = await Promise.allSettled([
        this.ids.append(bytesOf(batch.ids)),
        this.mask.append(bytesOf(batch.attentionMask)),
        this.lengths.append(bytesOf(batch.lengths)),
      ]);
      for (const s of settled) if (s.status === 'rejected') throw s.reason;
      const last = this.segments[this.segments.length - 1];
      if (last?.width === width) last.rows += rows;
      else this.segments.push({ rows, width });
      this.rows += rows;
      if (width > this.maxWidth) this.maxWidth = width;
    });
  }

  finish(opts?: { signal?: AbortSignal }): Promise<TensorFileResult> {
    this.finishSignal = opts?.signal;
    return this.run(async () => {
      const result = await (this.format === 'npy' ? this.finishNpy() : this.finishSafetensors());
      this.closed = 'finished';
      return result;
    });
  }

  abort(): Promise<void> {
    const p = this.tail.then(async () => {
      if (this.closed === null) this.closed = 'aborted';
      await this.cleanup();
    });
    this.tail = p.catch(() => {});
    return p;
  }

  private check(batch: VectorBatch<Dtype, MaskDtype>): void {
    if (typeof batch !== 'object' || batch === null) throw new TypeError(`batch must be a VectorBatch, got ${describe(batch)}`);
    const { rows, width, ids, attentionMask, lengths } = batch;
    if (!Number.isSafeInteger(rows) || rows < 0 || !Number.isSafeInteger(width) || width < 0) {
      throw new RangeError(`batch rows and width must be non-negative integers, got ${describe(rows)} x ${describe(width)}`);
    }
    if (!(ids instanceof IDS_ARRAY[this.dtype])) {
      throw new TypeError(`batch.ids must be a ${IDS_ARRAY_NAME[this.dtype]} for dtype '${this.dtype}', got ${describe(ids)}`);
    }
    if (ids.length !== rows * width) throw new RangeError(`batch.ids has ${ids.length} elements, rows x width is ${rows * width}`);
    if (!(attentionMask instanceof MASK_ARRAY[this.maskDtype]) || attentionMask.length !== rows * width) {
      throw new RangeError(
        `batch.attentionMask must be a ${MASK_ARRAY_NAME[this.maskDtype]} of rows x width = ${rows * width} elements (maskDtype '${this.maskDtype}'), got ${describe(attentionMask)}`,
      );
    }
    if (!(lengths instanceof Int32Array) || lengths.length !== rows) {
      throw new RangeError(`batch.lengths must be an Int32Array of rows = ${rows} elements, got ${describe(lengths)}`);
    }
    if (rows > 0 && this.fixedWidth !== null && width !== this.fixedWidth) {
      throw new RangeError(`batch width ${width} differs from the output width ${this.fixedWidth} (options.width)`);
    }
  }

  /** Runs `f` after everything queued before it, unless the writer is closed or failed; an error in `f` fails the writer. */
  private run<T>(f: () => Promise<T>): Promise<T> {
    const p = this.tail.then(async () => {
      if (this.failure) throw this.failure;
      if (this.closed) throw new Error(`tensor writer for ${this.target} is closed (${this.closed})`);
      try {
        return await f();
      } catch (err) {
        const named = err instanceof Error && NAMED.has(err) ? err : cannotWrite(this.target, err);
        this.failure = named;
        await this.cleanup();
        throw named;
      }
    });
    this.tail = p.catch(() => {});
    return p;
  }

  private get width(): number {
    return this.fixedWidth ?? this.maxWidth;
  }

  private get uniform(): boolean {
    return this.segments.every((s) => s.width === this.width);
  }

  /**
   * The safetensors tensors in file order, with their offsets for the current rows and width:
   * input_ids, lengths, attention_mask when each one lands aligned to its element size that way
   * (the ids are then in place in their temporary), else by descending element size.
   */
  private layout(): SafetensorsEntry[] {
    const { rows, width } = this;
    const elem = { input_ids: ID_BYTES[this.dtype], lengths: 4, attention_mask: MASK_BYTES[this.maskDtype] };
    const sizes = {
      input_ids: rows * width * elem.input_ids,
      lengths: rows * 4,
      attention_mask: rows * width * elem.attention_mask,
    };
    const names = ['input_ids', 'lengths', 'attention_mask'] as const;
    let order: ReadonlyArray<(typeof names)[number]> = names;
    let end = 0;
    for (const name of names) {
      if (end % elem[name] !== 0) {
        order = [...names].sort((a, b) => elem[b] - elem[a]); // stable: ties keep their order
        break;
      }
      end += sizes[name];
    }
    const shape = { input_ids: [rows, width], lengths: [rows], attention_mask: [rows, width] };
    const dtype = { input_ids: SAFETENSORS_DTYPE[this.dtype], lengths: 'I32', attention_mask: SAFETENSORS_DTYPE[this.maskDtype] } as const;
    let at = 0;
    return order.map((name) => {
      const e: SafetensorsEntry = { name, dtype: dtype[name], shape: shape[name], dataOffsets: [at, at + sizes[name]] };
      at += sizes[name];
      return e;
    });
  }

  private async finishNpy(): Promise<TensorFileResult> {
    const [idsT, maskT, lengthsT] = this.files;
    const { rows, width } = this;
    await Promise.all([this.ids.flush(), this.mask.flush(), this.lengths.flush()]);
    const done: Array<[TempFile, number]> = [];
    const idsHeader = npyHeader(npyDescrOf(this.dtype), [rows, width], this.idsRoom);
    const maskDescr = npyDescrOf(this.maskDtype);
    const maskHeader = npyHeader(maskDescr, [rows, width], npyHeaderRoom(maskDescr, 2));
    if (this.uniform) {
      await writeAll(idsT.fh!, idsHeader, 0);
      await writeAll(maskT.fh!, maskHeader, 0);
      done.push([idsT, this.ids.end], [maskT, this.mask.end]);
    } else {
      done.push(await this.rebuild(idsT, idsHeader, async (dst) => {
        await copyRepadded(idsT.fh!, this.idsRoom, this.segments, width, this.dtype, this.padId, this.left, dst);
      }));
      done.push(await this.rebuild(maskT, maskHeader, async (dst) => {
        await copyRepadded(maskT.fh!, maskHeader.length, this.segments, width, this.maskDtype, 0, this.left, dst);
      }));
    }
    const lengthsHeader = npyHeader('<i4', [rows], npyHeaderRoom('<i4', 1));
    await writeAll(lengthsT.fh!, lengthsHeader, 0);
    done.push([lengthsT, this.lengths.end]);
    return this.publish(done);
  }

  private async finishSafetensors(): Promise<TensorFileResult> {
    const [idsT, maskT, lengthsT] = this.files;
    const { rows, width } = this;
    await Promise.all([this.ids.flush(), this.mask.flush(), this.lengths.flush()]);
    const entries = this.layout();
    const maskBytes = rows * width * MASK_BYTES[this.maskDtype];
    if (this.uniform && entries[0]!.name === 'input_ids') {
      // The ids are in place: the other two go behind them.
      for (const { name } of entries.slice(1)) {
        if (name === 'lengths') await copyBytes(lengthsT.fh!, 0, rows * 4, this.ids);
        else await copyBytes(maskT.fh!, 0, maskBytes, this.ids);
      }
      await this.ids.flush();
      await writeAll(idsT.fh!, safetensorsHeader(entries, this.metadata, this.idsRoom), 0);
      return this.publish([[idsT, this.ids.end]]);
    }
    const header = safetensorsHeader(entries, this.metadata);
    const rebuilt = await this.rebuild(idsT, header, async (dst) => {
      for (const { name } of entries) {
        if (name === 'input_ids') await copyRepadded(idsT.fh!, this.idsRoom, this.segments, width, this.dtype, this.padId, this.left, dst);
        else if (name === 'lengths') await copyBytes(lengthsT.fh!, 0, rows * 4, dst);
        else await copyRepadded(maskT.fh!, 0, this.segments, width, this.maskDtype, 0, this.left, dst);
      }
    });
    return this.publish([rebuilt]);
  }

  /** Writes `header` and `fill`'s data to a new temporary for `from.target` (`from` is removed with the other temporaries at the end). */
  private async rebuild(from: TempFile, header: Buffer, fill: (dst: Appender) => Promise<void>): Promise<[TempFile, number]> {
    const to = await this.temp(from.target);
    const dst = new Appender(to.fh!, header.length);
    await writeAll(to.fh!, header, 0);
    await fill(dst);
    await dst.flush();
    return [to, dst.end];
  }

  /** Closes every temporary, renames the finished ones into place (all complete first), removes the rest. */
  private async publish(done: Array<[TempFile, number]>): Promise<TensorFileResult> {
    const signal = this.finishSignal;
    if (signal?.aborted) {
      const reason: unknown = signal.reason ?? new Error('aborted');
      if (reason instanceof Error) NAMED.add(reason); // passed through as it is
      throw reason;
    }
    for (const t of this.temps) {
      await t.fh?.close();
      t.fh = null;
    }
    const renamed: string[] = [];
    try {
      for (const [t] of done) {
        try {
          await rename(t.path, t.target);
        } catch (err) {
          throw cannotWrite(t.target, err);
        }
        renamed.push(t.target);
        this.temps.splice(this.temps.indexOf(t), 1);
      }
    } catch (err) {
      await Promise.all(renamed.map((p) => rm(p, { force: true })));
      throw err;
    }
    await this.cleanup();
    return { files: renamed, rows: this.rows, width: this.width, bytes: done.reduce((a, [, n]) => a + n, 0) };
  }

  /** Closes and removes every temporary; never throws. */
  private async cleanup(): Promise<void> {
    for (const a of [this.ids, this.mask, this.lengths] as Array<Appender | undefined>) a?.release();
    const temps = this.temps.splice(0);
    await Promise.all(
      temps.map(async (t) => {
        await t.fh?.close().catch(() => {});
        t.fh = null;
        await rm(t.path, { force: true }).catch(() => {});
      }),
    );
  }
}
