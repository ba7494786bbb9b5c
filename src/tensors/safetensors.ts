/**
 * The safetensors header (huggingface/safetensors, `safetensors/src/tensor.rs`): 8 bytes of
 * little-endian u64 `N`, then `N` bytes of UTF-8 JSON
 * `{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}`,
 * then the byte buffer the offsets point into (relative to its start). The reference reader sorts
 * tensors by offset and requires them to cover the buffer exactly, with no hole and nothing after;
 * it rejects headers over 100 MB. The reference writer pads the JSON with spaces to a multiple of 8
 * bytes, so the buffer starts 8-aligned, and stores tensors by descending element size, so each
 * one is aligned to its element size; tensor-file.ts keeps both properties.
 */
import type { Dtype } from '../vectorize/types.js';

export type SafetensorsDtype = 'I32' | 'I16' | 'U16' | 'U8' | 'F32' | 'I64';

/** The safetensors dtype string of each ids dtype. */
export const SAFETENSORS_DTYPE: { readonly [D in Dtype]: SafetensorsDtype } = {
  int32: 'I32',
  int16: 'I16',
  uint16: 'U16',
  uint8: 'U8',
  float32: 'F32',
  int64: 'I64',
};

/** The reference reader's limit on `N` (MAX_HEADER_SIZE). */
export const SAFETENSORS_MAX_HEADER = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** [begin, end) in the byte buffer after the header. */
  dataOffsets: readonly [number, number];
}

function checkCount(what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`safetensors: ${what} must be a non-negative safe integer, got ${v}`);
}

/**
 * The 8 size bytes and the JSON header of `entries` (in the given order, metadata first), padded
 * with spaces to a multiple of 8 bytes and to at least `minBytes` bytes in all (a writer that
 * learns the shapes only at the end reserves `safetensorsHeaderRoom` bytes and rewrites the header
 * in place).
 */
export function safetensorsHeader(
  entries: readonly SafetensorsEntry[],
  metadata?: Readonly<Record<string, string>>,
  minBytes = 0,
): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`safetensors: metadata values must be strings, '${k}' is ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  for (const e of entries) {
    if (e.name === '__metadata__' || e.name in header) throw new TypeError(`safetensors: duplicate or reserved tensor name '${e.name}'`);
    for (const d of e.shape) checkCount('shape', d);
    checkCount('data_offsets', e.dataOffsets[0]);
    checkCount('data_offsets', e.dataOffsets[1]);
    header[e.name] = { dtype: e.dtype, shape: [...e.shape], data_offsets: [e.dataOffsets[0], e.dataOffsets[1]] };
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const total = Math.ceil(Math.max(8 + json.length, minBytes) / 8) * 8;
  if (total - 8 > SAFETENSORS_MAX_HEADER) {
    throw new RangeError(`safetensors: header of ${total - 8} bytes is over the readers' limit of ${SAFETENSORS_MAX_HEADER}`);
  }
  const out = Buffer.alloc(total, 0x20);
  out.writeBigUInt64LE(BigInt(total - 8), 0);
  json.copy(out, 8);
  return out;
}

/**
 * Bytes that hold the header of these tensors whatever their shapes and offsets: the header with
 * every number at its largest (Number.MAX_SAFE_INTEGER, 16 digits) is the longest one.
 */
export function safetensorsHeaderRoom(
  entries: ReadonlyArray<{ name: string; dtype: SafetensorsDtype; rank: number }>,
  metadata?: Readonly<Record<string, string>>,
): number {
  const M = Number.MAX_SAFE_INTEGER;
  const widest = entries.map((e) => ({
    name: e.name,
    dtype: e.dtype,
    shape: new Array<number>(e.rank).fill(M),
    dataOffsets: [M, M] as const,
  }));
  return safetensorsHeader(widest, metadata).length;
}
