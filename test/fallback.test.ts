/** The shared backend suite against the pure-TypeScript backend, plus tests of its own helpers. */
import { describe, expect, it } from 'vitest';
import { jsBackend, vectorizeBytesOn, vectorizeOn } from '../src/vectorize/backends.js';
import {
  DTYPE_RANGE,
  IDS_ARRAY,
  INT64_RANGE,
  checkBytesInput,
  normalizeOptions,
} from '../src/vectorize/options.js';
import { describe as describeValue } from '../src/common/check.js';
import { backendSuite } from './suite.js';

const js = {
  vectorize: (texts: unknown, options?: unknown) => vectorizeOn(jsBackend, texts, options),
  vectorizeBytes: (bytes: unknown, offsets: unknown, options?: unknown) => vectorizeBytesOn(jsBackend, bytes, offsets, options),
};

backendSuite('js', js);

describe('normalizeOptions', () => {
  it('fills every default', () => {
    expect(normalizeOptions(undefined)).toEqual({
      encoding: 'codepoint',
      vocab: null,
      maxLength: 512,
      padding: 'longest',
      padToMultipleOf: 1,
      paddingSide: 'right',
      truncationSide: 'right',
      padId: 0,
      addSpecialTokens: true,
      dtype: 'int32',
      maskDtype: 'uint8',
      invalid: 'replace',
      outIds: null,
      outMask: null,
    });
  });
  it('keeps a padId as a number when one holds it, a bigint otherwise (int64 only)', () => {
    expect(normalizeOptions({ dtype: 'int64', padId: 5n }).padId).toBe(5);
    expect(normalizeOptions({ dtype: 'int64', padId: -(2n ** 53n) + 1n }).padId).toBe(-(2 ** 53) + 1);
    expect(normalizeOptions({ dtype: 'int64', padId: 2n ** 53n }).padId).toBe(2n ** 53n);
    expect(normalizeOptions({ dtype: 'int64', padId: -7 }).padId).toBe(-7);
    expect(Object.is(normalizeOptions({ dtype: 'int64', padId: -0 }).padId, 0)).toBe(true);
    const ids = new BigInt64Array(4);
    const attentionMask = new BigInt64Array(4);
    const n = normalizeOptions({ dtype: 'int64', maskDtype: 'int64', out: { ids, attentionMask } });
    expect(n.outIds).toBe(ids);
    expect(n.outMask).toBe(attentionMask);
    expect(n.maskDtype).toBe('int64');
  });
  it('passes given values and out buffers through', () => {
    const ids = new Uint16Array(4);
    const attentionMask = new Uint8Array(4);
    const n = normalizeOptions({
      encoding: 'codepoint',
      vocab: ['a', '😀'],
      maxLength: 7,
      padding: 'max-length',
      padToMultipleOf: 8,
      paddingSide: 'left',
      truncationSide: 'left',
      padId: 5,
      addSpecialTokens: false,
      dtype: 'uint16',
      invalid: 'error',
      out: { ids, attentionMask },
    });
    expect(n).toMatchObject({ maxLength: 7, padding: 'max-length', padToMultipleOf: 8, paddingSide: 'left', padId: 5 });
    expect(Array.from(n.vocab!)).toEqual([0x61, 0x1f600]);
    expect(n.outIds).toBe(ids);
    expect(n.outMask).toBe(attentionMask);
  });
  it('accepts a null-prototype options object', () => {
    const o = Object.create(null) as Record<string, unknown>;
    o.maxLength = 3;
    expect(normalizeOptions(o).maxLength).toBe(3);
  });
  it('reuses the normalized vocab for an unchanged array and rebuilds it after a change', () => {
    const vocab = ['x', 'y', 'z'];
    const a = normalizeOptions({ vocab }).vocab;
    expect(normalizeOptions({ vocab }).vocab).toBe(a);
    vocab[1] = 'w';
    const b = normalizeOptions({ vocab }).vocab;
    expect(b).not.toBe(a);
    expect(Array.from(b!)).toEqual([0x78, 0x77, 0x7a]);
  });
  it('a large unchanged vocab is reused, not rebuilt', () => {
    const vocab = Array.from({ length: 50_000 }, (_, i) => String.fromCodePoint(0x10000 + i));
    const first = normalizeOptions({ vocab }).vocab;
    for (let i = 0; i < 5; i++) expect(normalizeOptions({ vocab }).vocab).toBe(first);
    vocab[49_999] = 'a';
    expect(normalizeOptions({ vocab }).vocab).not.toBe(first);
  });
});

describe('option helpers', () => {
  it('describe names constructors of objects and typeof of the rest', () => {
    expect(describeValue(null)).toBe('null');
    expect(describeValue(undefined)).toBe('undefined');
    expect(describeValue(1)).toBe('number');
    expect(describeValue('s')).toBe('string');
    expect(describeValue(1n)).toBe('bigint');
    expect(describeValue(Symbol('x'))).toBe('symbol');
    expect(describeValue(() => 1)).toBe('function');
    expect(describeValue({})).toBe('Object');
    expect(describeValue(Object.create(null))).toBe('Object');
    expect(describeValue([])).toBe('Array');
    expect(describeValue(Buffer.alloc(1))).toBe('Buffer');
    expect(describeValue(new Float32Array(1))).toBe('Float32Array');
    expect(describeValue(new (class Foo {})())).toBe('Foo');
  });
  it('IDS_ARRAY and DTYPE_RANGE agree', () => {
    expect(new IDS_ARRAY.int16(1)).toBeInstanceOf(Int16Array);
    for (const [dtype, [lo, hi]] of Object.entries(DTYPE_RANGE) as Array<[keyof typeof IDS_ARRAY, readonly [number, number]]>) {
      const a = new IDS_ARRAY[dtype](2);
      if (a instanceof BigInt64Array) {
        a[0] = BigInt(lo);
        a[1] = BigInt(hi);
        expect(Array.from(a, Number)).toEqual([lo, hi]);
        a.set(INT64_RANGE);
        expect(Array.from(a)).toEqual([...INT64_RANGE]);
        continue;
      }
      a[0] = lo;
      a[1] = hi;
      expect(Array.from(a)).toEqual([lo, hi]);
    }
  });
  it('checkBytesInput accepts Buffer and SharedArrayBuffer views, and typed arrays of another realm', async () => {
    expect(() => checkBytesInput(Buffer.from('a'), new Uint32Array(1))).not.toThrow();
    expect(() => checkBytesInput(new Uint8Array(new SharedArrayBuffer(2)), new Uint32Array(new SharedArrayBuffer(4)))).not.toThrow();
    const vm = await import('node:vm');
    const [u8, u32] = vm.runInNewContext('[new Uint8Array(2), new Uint32Array(2)]') as [unknown, unknown];
    expect(() => checkBytesInput(u8, u32)).not.toThrow();
  });
});
