/**
 * The packed-options contract (native/abi.json): the generated native/abi.rs and
 * src/vectorize/abi.generated.ts are current, their code tables cover every option value, and
 * every value packed by `packOptions` reaches the binding as the same option (the native backend
 * equals the fallback on each encoding, dtype, maskDtype, padding, side, invalid mode and
 * addSpecialTokens), while a code one past the table is refused by the binding.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as abi from '../src/vectorize/abi.generated.js';
import { jsBackend, loadNative, nativeBackendOf, packOptions, vectorizeBytesOn, vectorizeOn } from '../src/vectorize/backends.js';
import { DTYPES, ENCODINGS, INVALID_MODES, MASK_DTYPES, MAX_OUTPUT_BYTES, PADDINGS, SIDES, normalizeOptions } from '../src/vectorize/options.js';
import type { Dtype, MaskDtype, VectorBatch } from '../src/vectorize/types.js';
import { plain, type Settled, settled } from './suite.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const loaded = loadNative();
if (!loaded.ok) throw new Error(`the native binding must be built for these tests: ${loaded.reason}`);
const binding = loaded.binding;
const native = nativeBackendOf(binding);

describe('generated ABI', () => {
  it('native/abi.rs and src/vectorize/abi.generated.ts are what native/abi.json generates', () => {
    const r = spawnSync(process.execPath, [path.join(root, 'native/gen-abi.mjs'), '--check'], { cwd: root, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('the code tables hold every value of each option, codes 0..n-1', () => {
    const tables: [Record<string, number>, readonly string[]][] = [
      [abi.ENCODING_CODE, ENCODINGS],
      [abi.DTYPE_CODE, DTYPES],
      [abi.MASK_CODE, MASK_DTYPES],
      [abi.PADDING_CODE, PADDINGS],
      [abi.SIDE_CODE, SIDES],
      [abi.INVALID_CODE, INVALID_MODES],
    ];
    for (const [table, values] of tables) {
      expect(Object.keys(table).sort()).toEqual([...values].sort());
      expect(Object.values(table).sort()).toEqual(values.map((_, i) => i));
    }
    expect(abi.MAX_OUTPUT_BYTES).toBe(MAX_OUTPUT_BYTES);
    expect(abi.PACKED_LEN).toBe(abi.OPTIONS_LEN + 2);
    expect(packOptions(normalizeOptions({})).length).toBe(abi.PACKED_LEN);
  });
});

const texts = ['hello', 'héllo wörld', '中文 text', '😀 emoji \uD800 lone', '', 'a much longer row of plain ascii text'];


/** The native backend and the fallback agree (the same batch, or the same error) on strings and
 *  on bytes; returns the strings' outcome. */
function both(options: Record<string, unknown>): Settled {
  const a = settled(() => vectorizeOn(native, texts, options));
  expect(a).toEqual(settled(() => vectorizeOn(jsBackend, texts, options)));
  const bytes = new TextEncoder().encode(texts.join(''));
  const offsets = new Uint32Array(texts.length + 1);
  let at = 0;
  texts.forEach((t, i) => {
    at += new TextEncoder().encode(t).length;
    offsets[i + 1] = at;
  });
  expect(settled(() => vectorizeBytesOn(native, bytes, offsets, options))).toEqual(settled(() => vectorizeBytesOn(jsBackend, bytes, offsets, options)));
  return a;
}

describe('packOptions round-trips through the binding', () => {
  const ok = (o: Record<string, unknown>) => expect(both(o).ok).toBe(true);
  it.each(ENCODINGS)('encoding %s', (encoding) => ok({ encoding, maxLength: 12 }));
  it.each(DTYPES)('dtype %s', (dtype) => ok({ dtype, encoding: 'utf8', addSpecialTokens: false, maxLength: 12, padId: 7 }));
  it.each(MASK_DTYPES)('maskDtype %s', (maskDtype) => ok({ maskDtype, maxLength: 12 }));
  it.each(PADDINGS)('padding %s', (padding) => ok({ padding, maxLength: 12, padToMultipleOf: 5 }));
  it.each(SIDES)('paddingSide %s', (paddingSide) => ok({ paddingSide, maxLength: 12, padId: 3 }));
  it.each(SIDES)('truncationSide %s', (truncationSide) => ok({ truncationSide, maxLength: 4 }));
  it('invalid replace / error', () => {
    expect(both({ invalid: 'replace', encoding: 'utf8', maxLength: 12 }).ok).toBe(true);
    expect(both({ invalid: 'error', encoding: 'utf8', maxLength: 12 }).ok).toBe(false); // the lone surrogate
  });
  it.each([true, false])('addSpecialTokens %s', (addSpecialTokens) => ok({ addSpecialTokens, encoding: 'byt5', maxLength: 12 }));
  it.each([-1, 2 ** 40 + 3, -(2 ** 53 - 1), -(2n ** 63n), 2n ** 63n - 1n])('padId %s (both words)', (padId) =>
    ok({ padId, dtype: 'int64', maxLength: 12 }),
  );

  it('a code one past each table is refused by the binding', () => {
    const bytes = new TextEncoder().encode('abc');
    const offsets = new Uint32Array([0, 3]);
    const fields: [number, number][] = [
      [abi.FIELD_ENCODING, ENCODINGS.length],
      [abi.FIELD_PADDING, PADDINGS.length],
      [abi.FIELD_PADDING_SIDE, SIDES.length],
      [abi.FIELD_TRUNCATION_SIDE, SIDES.length],
      [abi.FIELD_ADD_SPECIAL_TOKENS, 2],
      [abi.FIELD_DTYPE, DTYPES.length],
      [abi.FIELD_INVALID, INVALID_MODES.length],
      [abi.FIELD_MASK_DTYPE, MASK_DTYPES.length],
    ];
    for (const [field, count] of fields) {
      const packed = packOptions(normalizeOptions({})).slice();
      expect(binding.measureBytes(bytes, offsets, packed, null)).toBeGreaterThan(0);
      packed[field] = count - 1;
      binding.measureBytes(bytes, offsets, packed, null);
      packed[field] = count;
      expect(() => binding.measureBytes(bytes, offsets, packed, null)).toThrow(`options (packed) field ${field} is out of range: ${count}`);
    }
  });
});
