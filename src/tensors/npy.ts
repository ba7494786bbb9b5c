/**
 * NumPy `.npy` format, version 1.0 (numpy.lib.format): the magic string, a little-endian uint16
 * header length, then an ASCII Python dict literal padded with spaces and ended by '\n' so that the
 * data starts on a 64-byte boundary, then the raw little-endian array data in C order.
 */
import type { Dtype, IdsArray, MaskArray } from '../vectorize/types.js';

export type NpyArray = IdsArray | MaskArray | Int32Array;

const DESCR: Record<Dtype, string> = {
  int32: '<i4',
  int16: '<i2',
  uint16: '<u2',
  uint8: '|u1',
  float32: '<f4',
  int64: '<i8',
};

/** The NumPy type string of a typed array (`'<i4'` for Int32Array ...). */
export function npyDescr(array: NpyArray): string {
  if (array instanceof Int32Array) return DESCR.int32;
  if (array instanceof Int16Array) return DESCR.int16;
  if (array instanceof Uint16Array) return DESCR.uint16;
  if (array instanceof Uint8Array) return DESCR.uint8;
  if (array instanceof Float32Array) return DESCR.float32;
  if (array instanceof BigInt64Array) return DESCR.int64;
  throw new TypeError('npy: unsupported array type');
}

/** The NumPy type string of a dtype option. */
export function npyDescrOf(dtype: Dtype): string {
  return DESCR[dtype];
}

/**
 * The header of an array of `shape` with type `descr`. `minBytes` pads the header to at least that
 * many bytes (a writer that learns the shape only at the end reserves room and rewrites it).
 */
export function npyHeader(descr: string, shape: readonly number[], minBytes = 0): Buffer {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`npy: shape must hold non-negative integers, got [${shape.join(', ')}]`);
  }
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${dims}, }`;
  const unpadded = 10 + dict.length + 1;
  const total = Math.ceil(Math.max(unpadded, minBytes) / 64) * 64;
  if (total - 10 > 0xffff) throw new RangeError('npy: header too long for format 1.0');
  const out = Buffer.alloc(total, 0x20);
  out.write('\x93NUMPY', 0, 'latin1');
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(total - 10, 8);
  out.write(dict, 10, 'latin1');
  out[total - 1] = 0x0a;
  return out;
}

/**
 * Bytes that hold the header of any `rank`-dimensional shape of `descr`: the header of the largest
 * shape (every dimension Number.MAX_SAFE_INTEGER), 128 bytes for rank <= 2. A writer that learns
 * the shape only at the end reserves this much in front of the data and rewrites the header in
 * place with `npyHeader(descr, shape, room)`, which then has exactly `room` bytes.
 */
export function npyHeaderRoom(descr: string, rank: number): number {
  return npyHeader(descr, new Array<number>(rank).fill(Number.MAX_SAFE_INTEGER)).length;
}

/** Little-endian bytes of a typed array's elements (a view, no copy, on little-endian hosts). */
export function npyData(array: NpyArray): Buffer {
  if (!LITTLE_ENDIAN) throw new Error('npy: big-endian hosts are not supported');
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

/** A whole `.npy` file: header then data, as two buffers to write in turn. */
export function encodeNpy(array: NpyArray, shape: readonly number[]): [Buffer, Buffer] {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== array.length) throw new RangeError(`npy: shape [${shape.join(', ')}] holds ${count} elements, the array ${array.length}`);
  return [npyHeader(npyDescr(array), shape), npyData(array)];
}

/** True on little-endian hosts, the byte order .npy and safetensors data is written in. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
