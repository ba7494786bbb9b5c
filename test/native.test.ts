/**
 * The native backend: the shared suite on every SIMD path this CPU has, byte-identity with the
 * fallback on random input and options (fast-check), the public facade, environment switches,
 * and the warning when the binary cannot load.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type Backend as ImplBackend, jsBackend, loadNative, nativeBackendOf, packOptions, vectorizeBytesOn, vectorizeOn } from '../src/vectorize/backends.js';
import { normalizeOptions } from '../src/vectorize/options.js';
import type { Dtype, MaskDtype, VectorBatch } from '../src/vectorize/types.js';
import { type Backend, backendSuite, nums, pack, plain, settled } from './suite.js';

const loaded = loadNative();
if (!loaded.ok) throw new Error(`the native binding must be built for these tests: ${loaded.reason}`);
const binding = loaded.binding;
const native = nativeBackendOf(binding);
const paths = binding.availableSimd();
const best = paths[0];

function facadeOf(impl: ImplBackend, simd?: string): Backend {
  const use = () => {
    if (simd !== undefined) binding.selectSimd(simd);
  };
  return {
    vectorize(texts: unknown, options?: unknown) {
      use();
      return vectorizeOn(impl, texts, options);
    },
    vectorizeBytes(bytes: unknown, offsets: unknown, options?: unknown) {
      use();
      return vectorizeBytesOn(impl, bytes, offsets, options);
    },
  };
}

afterAll(() => {
  binding.selectSimd(best);
});

describe('SIMD paths', () => {
  it('lists what the CPU has, best first, scalar last', () => {
    expect(paths.at(-1)).toBe('scalar');
    if (process.arch === 'x64') {
      expect(paths).toContain('sse2');
      const order = ['avx512', 'avx2', 'sse2', 'scalar'];
      expect(paths).toEqual(order.filter((p) => paths.includes(p)));
    }
    expect(binding.simdPath()).toBe(best);
  });

  it('selectSimd switches the path and refuses unknown names', () => {
    for (const p of paths) {
      expect(binding.selectSimd(p)).toBe(p);
      expect(binding.simdPath()).toBe(p);
    }
    expect(() => binding.selectSimd('mmx')).toThrow(/SIMD path 'mmx' is not available on this CPU; available: /);
    binding.selectSimd(best);
  });
});

for (const p of paths) backendSuite(`native/${p}`, facadeOf(native, p));

// ---------------------------------------------------------------------------------------------
// Byte-identity with the fallback on random input, for every path.

const unit = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xd7ff }) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }) },
  { weight: 1, arbitrary: fc.integer({ min: 0xe000, max: 0xffff }) },
);
const astral = fc.integer({ min: 0x10000, max: 0x10ffff }).map((cp) => String.fromCodePoint(cp));
const text = fc
  .array(fc.oneof({ weight: 8, arbitrary: unit.map((u) => String.fromCharCode(u)) }, { weight: 1, arbitrary: astral }), {
    maxLength: 90,
  })
  .map((parts) => parts.join(''));
const longAscii = fc.string({ minLength: 100, maxLength: 400 });

const options = fc.record(
  {
    encoding: fc.constantFrom('codepoint', 'utf8', 'utf16', 'byt5', 'canine'),
    maxLength: fc.integer({ min: 2, max: 160 }),
    padding: fc.constantFrom('longest', 'max-length'),
    padToMultipleOf: fc.integer({ min: 1, max: 8 }),
    paddingSide: fc.constantFrom('left', 'right'),
    truncationSide: fc.constantFrom('left', 'right'),
    padId: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(-1, -(2 ** 53 - 1), -1n, 2n ** 40n, -(2n ** 63n), 2n ** 63n - 1n)),
    addSpecialTokens: fc.boolean(),
    dtype: fc.constantFrom('int32', 'int16', 'uint16', 'uint8', 'float32', 'int64', 'int64'),
    maskDtype: fc.constantFrom('uint8', 'int32', 'int64'),
    invalid: fc.constantFrom('replace', 'error'),
    vocab: fc.constantFrom(undefined, ['a', 'b', 'é', '中', '😀', ' ', '\uFFFD']),
  },
  { requiredKeys: ['encoding'] },
);


function fixVocab(o: Record<string, unknown>): Record<string, unknown> {
  const copy = { ...o };
  if (copy.vocab === undefined || copy.encoding !== 'codepoint') delete copy.vocab;
  return copy;
}

describe('native equals the fallback, byte for byte, on every path', () => {
  const js = facadeOf(jsBackend);
  for (const p of paths) {
    const nat = facadeOf(native, p);
    it(`strings and bytes, random text and options (${p})`, () => {
      fc.assert(
        fc.property(fc.array(fc.oneof(text, longAscii), { maxLength: 12 }), options, (rows, rawOpts) => {
          const o = fixVocab(rawOpts);
          expect(settled(() => nat.vectorize(rows, o))).toEqual(settled(() => js.vectorize(rows, o)));
          const { bytes, offsets } = pack(rows.map((r) => new TextEncoder().encode(r)));
          expect(settled(() => nat.vectorizeBytes(bytes, offsets, o))).toEqual(
            settled(() => js.vectorizeBytes(bytes, offsets, o)),
          );
        }),
        { numRuns: 300 },
      );
    });
    it(`malformed bytes (${p})`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.uint8Array({ maxLength: 60 }), { maxLength: 8 }),
          options,
          (rows, rawOpts) => {
            const o = fixVocab(rawOpts);
            const { bytes, offsets } = pack(rows, 3);
            expect(settled(() => nat.vectorizeBytes(bytes, offsets, o))).toEqual(
              settled(() => js.vectorizeBytes(bytes, offsets, o)),
            );
          },
        ),
        { numRuns: 300 },
      );
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Multilingual text on the vector decoders: every path against the fallback (and TextDecoder).

const udhr = readFileSync(fileURLToPath(new URL('../samples/udhr.jsonl', import.meta.url)), 'utf8')
  .split('\n')
  .filter((l) => l.length > 0)
  .map((l) => (JSON.parse(l) as { text: string }).text);
/** Paragraphs of many scripts, 1- to 4-byte characters: Latin, Cyrillic, Arabic, Devanagari, CJK, astral. */
const paragraph = (re: RegExp) => udhr.find((t) => t.length >= 150 && re.test(t))!;
const scripts = [/é/, /[\u0400-\u04ff]/, /[\u0600-\u06ff]/, /[\u0900-\u097f]/, /[\u4e00-\u9fff]/].map((re) => paragraph(re).slice(0, 200));
const mixed = scripts.join(' \u{1F600} ') + ' \u{10FFFD}\u{1D11E}';
const enc = new TextEncoder();
/** Damaged UTF-8: overlong forms, encoded surrogates, values above U+10FFFF, stray and truncated sequences. */
const damage = [[0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xf0, 0x80, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80], [0xf5], [0xff], [0x80], [0xbf], [0xc2], [0xe2, 0x82], [0xf0, 0x9f, 0x98]];

describe('multilingual text on every path', () => {
  const js = facadeOf(jsBackend);
  const modes = [{}, { invalid: 'error' }, { encoding: 'utf16' }, { encoding: 'canine', maxLength: 300 }, { vocab: ['a', 'é', '中', '\uFFFD'] }] as const;
  for (const p of paths) {
    const nat = facadeOf(native, p);
    const same = (rows: string[] | Uint8Array[], o: object) => {
      if (typeof rows[0] === 'string' || rows.length === 0) {
        expect(settled(() => nat.vectorize(rows as string[], o))).toEqual(settled(() => js.vectorize(rows as string[], o)));
        return;
      }
      const { bytes, offsets } = pack(rows as Uint8Array[], 1);
      expect(settled(() => nat.vectorizeBytes(bytes, offsets, o))).toEqual(settled(() => js.vectorizeBytes(bytes, offsets, o)));
    };
    it(`rows of every length 0-300, strings and bytes (${p})`, () => {
      const rows = Array.from({ length: 301 }, (_, n) => (mixed.repeat(2)).slice(n % 7, (n % 7) + n));
      for (const o of modes) {
        same(rows, o);
        same(rows.map((r) => enc.encode(r)), o);
      }
    });
    it(`a malformed sequence at every byte of two 64-byte blocks and across their ends (${p})`, () => {
      const base = enc.encode(mixed).subarray(0, 160);
      for (let at = 0; at < 130; at++) {
        const rows = damage.map((d) => {
          const r = new Uint8Array(base.length);
          r.set(base);
          r.set(d, at);
          return r;
        });
        same(rows, {});
        same(rows, { invalid: 'error' });
        same(rows, { encoding: 'utf16', maxLength: 200 });
      }
    });
    it(`a batch large enough to be handed over in parts, with a call made from a getter meanwhile (${p})`, () => {
      // 4,000 rows of ~400 units: 1.6 M units, past the 1 M at which the facade stages chunks.
      const long = mixed.repeat(Math.ceil(1000 / mixed.length));
      const rows = Array.from({ length: 4000 }, (_, i) => long.slice(i % 50, (i % 50) + 300 + (i % 200)));
      expect(rows.reduce((n, r) => n + r.length, 0)).toBeGreaterThan(1 << 20);
      const o = { maxLength: 600 };
      expect(settled(() => nat.vectorize(rows, o))).toEqual(settled(() => js.vectorize(rows, o)));
      // Row 3500 is read after the first parts were staged; its getter vectorizes another batch.
      const tricky = rows.slice();
      let inner: unknown;
      Object.defineProperty(tricky, 3500, {
        get: () => {
          inner = plain(nat.vectorize(['inner call', mixed.slice(0, 40)], o));
          return rows[3500];
        },
      });
      expect(settled(() => nat.vectorize(tricky, o))).toEqual(settled(() => js.vectorize(rows, o)));
      expect(inner).toEqual(plain(js.vectorize(['inner call', mixed.slice(0, 40)], o)));
    });
    it(`WHATWG replacement: TextDecoder's code points and U+FFFD counts (${p})`, () => {
      const dec = new TextDecoder('utf-8', { ignoreBOM: true });
      fc.assert(
        fc.property(
          fc.array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...scripts.map((s) => Array.from(enc.encode(s.slice(0, 40))))) },
            { weight: 2, arbitrary: fc.constantFrom(...damage) }, { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 8 }) }),
          { maxLength: 12 }).map((parts) => Uint8Array.from(parts.flat())),
          (row) => {
            const want = Array.from(dec.decode(row), (c) => c.codePointAt(0)!);
            const b = nat.vectorizeBytes(row, new Uint32Array([0, row.length]), { maxLength: 2000, padding: 'longest' });
            const got = nums(b.ids.subarray(0, b.lengths[0]));
            expect(got).toEqual(want);
            expect(got.filter((c) => c === 0xfffd).length).toBe(want.filter((c) => c === 0xfffd).length);
          },
        ),
        { numRuns: 300 },
      );
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Native-only behaviour.

describe('native binding', () => {
  it("transferring a small batch's buffer (the shared slab) away does not break later calls (found by the fuzz)", () => {
    const b = native.vectorizeStrings(['abc'], normalizeOptions({}));
    expect(b.ids.buffer.byteLength).toBe(64 << 10); // a slab batch
    // What posting it to a worker with a transfer list does.
    structuredClone(b.ids.buffer, { transfer: [b.ids.buffer as ArrayBuffer] });
    expect(b.ids.byteLength).toBe(0);
    for (let i = 0; i < 3; i++) {
      expect(plain(native.vectorizeStrings(['hello'], normalizeOptions({})))).toEqual(plain(jsBackend.vectorizeStrings(['hello'], normalizeOptions({}))));
      const { bytes, offsets } = pack([new TextEncoder().encode('wörld')]);
      expect(plain(native.vectorizeBytes(bytes, offsets, normalizeOptions({})))).toEqual(plain(jsBackend.vectorizeBytes(bytes, offsets, normalizeOptions({}))));
    }
  });

  it('detached inputs and out buffers count as empty, in both backends', () => {
    const detached = <T extends ArrayBufferView>(v: T): T => {
      structuredClone(v.buffer, { transfer: [v.buffer as ArrayBuffer] });
      return v;
    };
    const cases: Array<[string, (b: ImplBackend) => VectorBatch<Dtype, MaskDtype>]> = [
      ['bytes', (b) => vectorizeBytesOn(b, detached(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), new Uint32Array([6, 8]), {})],
      ['offsets', (b) => vectorizeBytesOn(b, new Uint8Array(8), detached(new Uint32Array([0, 2])), {})],
      ['out.ids', (b) => vectorizeOn(b, ['ab'], { out: { ids: detached(new Int32Array(8)) } })],
      ['out.attentionMask', (b) => vectorizeOn(b, ['ab'], { out: { attentionMask: detached(new Uint8Array(8)) } })],
      ['out without rows', (b) => vectorizeOn(b, [], { out: { ids: detached(new Int32Array(8)), attentionMask: detached(new Uint8Array(8)) } })],
      // Found by the fuzz after int64 ids landed: the fallback made a view of the detached buffer.
      ['int64 out without rows', (b) => vectorizeOn(b, [], { dtype: 'int64', maskDtype: 'int64', out: { ids: detached(new BigInt64Array(8)), attentionMask: detached(new BigInt64Array(8)) } })],
      ['int64 out.ids', (b) => vectorizeOn(b, ['ab'], { dtype: 'int64', out: { ids: detached(new BigInt64Array(8)) } })],
    ];
    const outcomeOf = (f: () => VectorBatch<Dtype, MaskDtype>): string | object => {
      try {
        const r = f();
        return { rows: r.rows, width: r.width, ids: r.ids.byteLength };
      } catch (e) {
        return `${(e as Error).name}: ${(e as Error).message}`;
      }
    };
    const want = [
      'RangeError: offsets[0] = 6 exceeds bytes.length = 0',
      'RangeError: offsets must have at least 1 element',
      'RangeError: options.out.ids has 0 elements, the batch needs 1 x 2 = 2',
      'RangeError: options.out.attentionMask has 0 elements, the batch needs 1 x 2 = 2',
      { rows: 0, width: 0, ids: 0 },
      { rows: 0, width: 0, ids: 0 },
      'RangeError: options.out.ids has 0 elements, the batch needs 1 x 2 = 2',
    ];
    for (const be of [native, jsBackend]) expect(cases.map(([, f]) => outcomeOf(() => f(be))), be.kind).toEqual(want);
  });

  it('large outputs are allocated without zero-fill, yet their whole ArrayBuffer holds only what was written', () => {
    // Stale heap bytes must not show through the gaps between the parts sharing one buffer.
    for (let i = 0; i < 60; i++) {
      const dtype = (['int16', 'uint8', 'int32', 'int64'] as const)[i % 4];
      const maskDtype = (['uint8', 'int32', 'int64'] as const)[i % 3];
      const rows = Array.from({ length: 40 + (i % 7) }, (_, r) => 'x'.repeat(300 + ((i + r * 7) % 13)));
      // Outputs of 16-60 KB (past the slab): dirty the allocator with freed buffers of those sizes.
      for (let k = 0; k < 4; k++) Buffer.allocUnsafeSlow(16_000 + ((i * 3700 + k * 1100) % 45_000)).fill(0xab);
      const b = native.vectorizeStrings(rows, normalizeOptions({ dtype, maskDtype, padId: 0 }));
      expect(b.ids.byteLength + b.attentionMask.byteLength).toBeGreaterThan(16 << 10);
      expect(b.ids.byteOffset).toBe(0);
      // Large batches get lengths of their own (holding them does not keep the ids alive).
      expect(b.lengths.buffer).not.toBe(b.ids.buffer);
      // Layout: ids, mask, then the lengths and source lengths the batch's copies were made from.
      const all = new Uint8Array(b.ids.buffer);
      const covered = new Uint8Array(all.length);
      const align8 = (x: number) => Math.ceil(x / 8) * 8;
      const lensAt = align8(b.attentionMask.byteOffset + b.attentionMask.byteLength);
      const srcAt = align8(lensAt + 4 * b.rows);
      expect(new Int32Array(b.ids.buffer, lensAt, b.rows)).toEqual(b.lengths);
      expect(new Int32Array(b.ids.buffer, srcAt, b.rows)).toEqual(b.sourceLengths);
      expect(all.length).toBe(srcAt + 4 * b.rows);
      for (const [start, bytes] of [[b.ids.byteOffset, b.ids.byteLength], [b.attentionMask.byteOffset, b.attentionMask.byteLength], [lensAt, 4 * b.rows], [srcAt, 4 * b.rows]]) {
        covered.fill(1, start, start + bytes);
      }
      expect(b.attentionMask.buffer).toBe(b.ids.buffer);
      for (let j = 0; j < all.length; j++) if (!covered[j]) expect(all[j]).toBe(0);
      expect(plain(b)).toEqual(plain(jsBackend.vectorizeStrings(rows, normalizeOptions({ dtype, maskDtype }))));
    }
  });

  it('small outputs are carved from a shared slab: disjoint views, never overwritten later, zero elsewhere', () => {
    for (let k = 0; k < 8; k++) Buffer.allocUnsafeSlow(64 << 10).fill(0xab);
    const made: { b: VectorBatch<Dtype, MaskDtype>; rows: string[]; o: { dtype: Dtype; maskDtype: MaskDtype } }[] = [];
    for (let i = 0; i < 400; i++) {
      const dtype = (['int16', 'uint8', 'int32', 'float32', 'uint16', 'int64'] as const)[i % 6];
      const maskDtype = (['uint8', 'int32', 'int64', 'uint8'] as const)[i % 4];
      const o = { dtype, maskDtype };
      const rows = Array.from({ length: 1 + (i % 9) }, (_, r) => 'abéc'.repeat((i + r * 5) % 11));
      let b: VectorBatch<Dtype, MaskDtype>;
      if (i % 5 === 3) {
        const { bytes, offsets } = pack(rows.map((r) => new TextEncoder().encode(r)));
        b = native.vectorizeBytes(bytes, offsets, normalizeOptions(o));
      } else b = native.vectorizeStrings(rows, normalizeOptions(o));
      made.push({ b, rows, o });
    }
    const slabs = new Map<ArrayBufferLike, [number, number][]>();
    for (const { b, rows, o } of made) {
      // Every batch is still exactly what it was when made.
      expect(plain(b)).toEqual(plain(jsBackend.vectorizeStrings(rows, normalizeOptions(o))));
      const views = [b.ids, b.attentionMask, b.lengths, b.sourceLengths] as ArrayBufferView[];
      for (const v of views) {
        expect(v.buffer).toBe(b.ids.buffer);
        expect(v.byteOffset % 8).toBe(0);
        const list = slabs.get(v.buffer) ?? [];
        list.push([v.byteOffset, v.byteOffset + v.byteLength]);
        slabs.set(v.buffer, list);
      }
    }
    // 400 small batches share a handful of 64 KiB buffers.
    expect(slabs.size).toBeGreaterThan(1);
    expect(slabs.size).toBeLessThan(60);
    for (const [buffer, list] of slabs) {
      expect(buffer.byteLength).toBe(64 << 10);
      list.sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < list.length; i++) expect(list[i]![0]).toBeGreaterThanOrEqual(list[i - 1]![1]);
      // From the first view this test made on (earlier tests may own what comes before), bytes
      // of no view are zero: gaps and the part not handed out yet.
      const all = new Uint8Array(buffer);
      let at = list[0]![0];
      for (const [start, end] of list) {
        for (let j = at; j < start; j++) expect(all[j]).toBe(0);
        at = end;
      }
      for (let j = at; j < all.length; j++) expect(all[j]).toBe(0);
    }
  });

  it('an out array or input over a whole slab is never written through: the batch then gets its own buffer', () => {
    const first = native.vectorizeStrings(['abc'], normalizeOptions({}));
    const keep = plain(first);
    const slabIds = new Int32Array(first.ids.buffer);
    const b = native.vectorizeStrings(['xyz!'], normalizeOptions({ out: { ids: slabIds } }));
    expect(b.ids.buffer).toBe(first.ids.buffer);
    expect(nums(b.ids)).toEqual([120, 121, 122, 33]); // written where the caller said
    expect(b.lengths.buffer).not.toBe(first.ids.buffer);
    expect(Array.from(b.lengths)).toEqual([4]);
    // The input bytes may be the whole slab too.
    const second = native.vectorizeStrings(['hello'], normalizeOptions({}));
    const bytes = new Uint8Array(second.ids.buffer);
    const before = bytes.slice();
    const c = native.vectorizeBytes(bytes, new Uint32Array([second.ids.byteOffset, second.ids.byteOffset + 4]), normalizeOptions({}));
    expect(c.ids.buffer).not.toBe(second.ids.buffer);
    expect(nums(c.ids)).toEqual([104, 0, 0, 0]); // 'h' and the int32's three zero bytes
    expect(bytes).toEqual(before);
    // The first batch kept its ids only where the caller did not write over them on purpose.
    expect(nums(first.attentionMask)).toEqual(keep.attentionMask);
  });

  it('a getter that calls back into vectorize while the strings are read', () => {
    const rows: string[] = ['ab', 'cd'];
    Object.defineProperty(rows, 1, {
      get() {
        const inner = native.vectorizeStrings(['xyz'], normalizeOptions({}));
        expect(nums(inner.ids)).toEqual([120, 121, 122]);
        return 'cd';
      },
    });
    const b = native.vectorizeStrings(rows, normalizeOptions({}));
    expect(nums(b.ids)).toEqual([97, 98, 99, 100]);
  });

  it('more than 2^20 rows (scratch of their own) and rows past the 64 K-unit chunks equal the fallback', () => {
    const many = Array.from({ length: (1 << 20) + 3 }, (_, i) => 'abcdefg'.slice(0, i % 5));
    expect(plain(native.vectorizeStrings(many, normalizeOptions({ maxLength: 8 })))).toEqual(plain(jsBackend.vectorizeStrings(many, normalizeOptions({ maxLength: 8 }))));
    // Long rows are chunks of their own; short ones share a rope, where a row ending in a high
    // surrogate meets the next one's low surrogate: still two lone surrogates.
    const long = ['x'.repeat(40_000), '\uD83D', '\uDE00y'.repeat(20_000), '', 'z'.repeat(65_536), 'w', 'a\uD83D', '\uDE00b', 'ok'];
    for (const invalid of ['replace', 'error'] as const) {
      const o = normalizeOptions({ maxLength: 70_000, invalid });
      const want = settled(() => jsBackend.vectorizeStrings(long, o));
      expect(settled(() => native.vectorizeStrings(long, o))).toEqual(want);
      expect(want.ok).toBe(invalid === 'replace');
      const short = long.slice(6);
      expect(settled(() => native.vectorizeStrings(short, o))).toEqual(settled(() => jsBackend.vectorizeStrings(short, o)));
    }
    expect(() => native.vectorizeStrings(long.slice(6), normalizeOptions({ invalid: 'error' }))).toThrow(/row 0/);
  });

  it('a getter that throws propagates its error and leaves the module working', () => {
    const rows: string[] = ['ab', 'cd'];
    Object.defineProperty(rows, 0, {
      get() {
        throw new SyntaxError('from the getter');
      },
    });
    expect(() => native.vectorizeStrings(rows, normalizeOptions({}))).toThrow(SyntaxError);
    expect(nums(native.vectorizeStrings(['q'], normalizeOptions({})).ids)).toEqual([113]);
  });

  it('strings longer than the arena spare room are read whole', () => {
    const long = 'x'.repeat(70_000) + '😀';
    const b = native.vectorizeStrings(['a', long, 'b'], normalizeOptions({ maxLength: 100_000 }));
    expect(b.width).toBe(70_001);
    expect(b.lengths[1]).toBe(70_001);
    expect(b.ids[b.width + 70_000]).toBe(0x1f600);
  });

  it('out buffers on a SharedArrayBuffer, longer than the batch, are written and viewed (both backends)', () => {
    const texts = ['hello', 'wörld 😀', ''];
    const o = { encoding: 'byt5', maxLength: 16 } as const;
    const want = plain(facadeOf(jsBackend).vectorize(texts, o));
    for (const impl of [native, jsBackend]) {
      const ids = new Int32Array(new SharedArrayBuffer(4 * 100)).fill(-9);
      const attentionMask = new Uint8Array(new SharedArrayBuffer(100)).fill(9);
      const b = facadeOf(impl).vectorize(texts, { ...o, out: { ids, attentionMask } });
      expect(plain(b)).toEqual(want);
      expect(b.ids.buffer).toBe(ids.buffer);
      expect(b.attentionMask.buffer).toBe(attentionMask.buffer);
      expect(ids[b.rows * b.width]).toBe(-9);
      const { bytes, offsets } = pack(texts.map((t) => new TextEncoder().encode(t)));
      const bb = facadeOf(impl).vectorizeBytes(bytes, offsets, { ...o, out: { ids, attentionMask } });
      expect(plain(bb)).toEqual(want);
    }
  });

  it('outputs overlapping the input offsets are refused (direct binding call)', () => {
    const buf = new ArrayBuffer(64);
    const bytes = new Uint8Array(buf, 0, 8).fill(97);
    const offsets = new Uint32Array(buf, 8, 2);
    offsets[1] = 8;
    const outIds = new Int32Array(buf, 8, 8);
    const n = normalizeOptions({});
    expect(() => binding.vectorizeBytes(bytes, offsets, packOptions(n), null, outIds, null, null)).toThrow(
      new RangeError('options.out.ids overlaps the input offsets'),
    );
  });

  it('a direct call with bad packed options or arguments throws instead of crashing', () => {
    const good = () => packOptions(normalizeOptions({})).slice();
    const bad = (i: number, v: number) => {
      const p = good();
      p[i] = v;
      return p;
    };
    // One row 'a' through the binding's string entry, with these packed options and vocabulary.
    const one = (p: Int32Array, vocab: Uint32Array | null = null) =>
      binding.vectorizeJoined(['a'], new Uint32Array([1]), 1, p, vocab, null, null, null);
    expect(() => one(bad(0, 9))).toThrow(
      new RangeError('options (packed) field 0 is out of range: 9'),
    );
    expect(() => one(bad(1, -1))).toThrow(
      new RangeError('options.maxLength must be an integer >= 1, got -1'),
    );
    expect(() => one(bad(6, 300))).not.toThrow();
    expect(() => one(bad(8, 6))).toThrow(new RangeError('options (packed) field 8 is out of range: 6'));
    expect(() => one(bad(12, 3))).toThrow(new RangeError('options (packed) field 12 is out of range: 3'));
    // The padId's high word (field 11) reaches the core's range check: 2^32 does not fit int32.
    expect(() => one(bad(11, 1))).toThrow(
      new RangeError("options.padId must be an integer in [-2147483648, 2147483647] for dtype 'int32', got 4294967296"),
    );
    expect(() => one(good().subarray(0, 5))).toThrow(
      new RangeError('options (packed) must have 15 fields, got 5'),
    );
    expect(() => one({} as Int32Array)).toThrow(
      new TypeError('options must be a Int32Array (packed), got object'),
    );
    const uint8 = bad(8, 3);
    uint8[6] = 300;
    expect(() => one(uint8)).toThrow(
      new RangeError("options.padId must be an integer in [0, 255] for dtype 'uint8', got 300"),
    );
    expect(() => binding.vectorizeBytes(new Uint16Array(2), new Uint32Array(1), good(), null, null, null, null)).toThrow(
      new TypeError('bytes must be a Uint8Array, got Uint16Array'),
    );
    expect(() => one(good(), new Uint32Array([97, 97]))).toThrow(
      new RangeError("options.vocab[1] repeats 'a' (first at index 0)"),
    );
    // The joined-strings entry: chunks that do not match the lengths, bad lengths, a bad slab.
    const joined = (chunks: unknown, lengths: unknown, rows: number, slab: unknown = null, p = good()) =>
      binding.vectorizeJoined(chunks as string[], lengths as Uint32Array, rows, p, null, null, null, slab as ArrayBuffer);
    expect(() => joined(['abc'], new Uint32Array([2, 3]), 2)).toThrow(new RangeError('internal: the joined texts hold 3 units, the rows 5'));
    expect(() => joined(['abcdef'], new Uint32Array([2, 3]), 2)).toThrow(new RangeError('internal: the joined texts hold 6 units, the rows 5'));
    expect(() => joined(['ab', 'cde', 'x'], new Uint32Array([2, 3]), 2)).toThrow(new RangeError('internal: the joined texts hold 6 units, the rows 5'));
    expect(() => joined(['abc'], new Uint32Array([3]), 2)).toThrow(new RangeError('internal: more rows than lengths'));
    expect(() => joined(['abc'], [3], 1)).toThrow(new TypeError('lengths must be a Uint32Array, got object'));
    expect(() => joined([3], new Uint32Array([1]), 1)).toThrow(/N-API call failed while reading texts/);
    expect(() => joined('abc', new Uint32Array([3]), 1)).toThrow(/N-API call failed while reading texts/);
    expect(() => joined(['abc'], new Uint32Array([3]), 1, {})).toThrow(new TypeError('slab must be an ArrayBuffer, got object'));
    const offset = (o: number) => {
      const p = good();
      p[14] = o;
      return p;
    };
    expect(() => joined(['abc'], new Uint32Array([3]), 1, new ArrayBuffer(64), offset(3))).toThrow(
      new RangeError('slab offset 3 is not a multiple of 8 inside the slab (64 bytes)'),
    );
    expect(() => joined(['abc'], new Uint32Array([3]), 1, new ArrayBuffer(64), offset(72))).toThrow(
      new RangeError('slab offset 72 is not a multiple of 8 inside the slab (64 bytes)'),
    );
    // A slab without room for the batch: a fresh buffer, and -1 written back for the offset.
    const p = offset(64);
    const r = joined(['abc'], new Uint32Array([3]), 1, new ArrayBuffer(64), p);
    expect(r).toBeInstanceOf(ArrayBuffer);
    expect([p[13], p[14]]).toEqual([3, -1]);
    expect(Array.from(new Int32Array(r, 0, 3))).toEqual([97, 98, 99]);
    // With room: the slab itself, the parts from the offset given.
    const q = offset(16);
    const slab = new ArrayBuffer(64);
    expect(joined(['abc'], new Uint32Array([3]), 1, slab, q)).toBe(slab);
    expect([q[13], q[14]]).toEqual([3, 16]);
    expect(Array.from(new Int32Array(slab, 16, 3))).toEqual([97, 98, 99]);
    expect(Array.from(new Uint8Array(slab, 0, 16))).toEqual(new Array(16).fill(0));
  });
});

// ---------------------------------------------------------------------------------------------
// The public entry point and its environment switches, in child processes.

const root = fileURLToPath(new URL('..', import.meta.url));
const tsx = fileURLToPath(new URL('../node_modules/tsx/dist/cli.mjs', import.meta.url));

function child(env: Record<string, string>, code: string): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, [tsx, '--eval', code], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

const probe = `import { getBackend, vectorize } from './src/index.ts';
console.log(JSON.stringify({ b: getBackend(), ids: Array.from(vectorize(['hello'], { encoding: 'byt5' }).ids) }));`;

describe('backend selection', () => {
  it('native by default, with the best SIMD path', () => {
    const r = child({ DTESN_BACKEND: '', DTESN_SIMD: '' }, probe);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.b).toEqual({ kind: 'native', simd: best, version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(out.ids).toEqual([107, 104, 111, 111, 114, 1]);
    expect(r.stderr).not.toMatch(/Warning/);
  });

  it('DTESN_SIMD forces each path the CPU has', () => {
    for (const p of paths) {
      const r = child({ DTESN_SIMD: p }, probe);
      expect(JSON.parse(r.stdout).b.simd).toBe(p);
    }
  });

  it('DTESN_SIMD naming a missing path warns and uses the best one', () => {
    const r = child({ DTESN_SIMD: 'neon-x' }, probe);
    expect(JSON.parse(r.stdout).b.simd).toBe(best);
    expect(r.stderr).toMatch(/DTESN_SIMD=neon-x is not available on this CPU; using '/);
  });

  it('DTESN_BACKEND=js forces the fallback', () => {
    const r = child({ DTESN_BACKEND: 'js' }, probe);
    const out = JSON.parse(r.stdout);
    expect(out.b.kind).toBe('js');
    expect(out.b.simd).toBe('none');
    expect(out.ids).toEqual([107, 104, 111, 111, 114, 1]);
  });

  it('DTESN_BACKEND=js rules every path: vectorize, createPipeline and its workers, vectorizeFile, the service', () => {
    const code = `import { createPipeline, getBackend, vectorize } from './src/index.ts';
import { startServer } from './src/server/server.ts';
import { processBackend } from './src/vectorize/choose.ts';
import { ROUTE } from './src/pipeline/pipeline.ts';
(async () => {
const p = createPipeline({ maxWorkers: 1 });
p[ROUTE] = 'pool';
const viaPool = await p.vectorize(Array.from({ length: 4000 }, (_, i) => 'row ' + i), { encoding: 'byt5' });
const file = [];
for await (const b of p.vectorizeFile('samples/udhr.jsonl', { format: 'jsonl', field: 'text', batchSize: 5000, maxLength: 8 })) file.push(b.rows);
const s = await startServer({ port: 0, host: '127.0.0.1', warmup: 0 });
const health = await (await fetch(s.url + '/healthz')).json();
await s.close();
console.log(JSON.stringify({ b: getBackend().kind, chosen: processBackend().binding === null, pipeline: p.metrics().backend, poolRows: viaPool.rows,
  pool: p.metrics().parallelization.poolBatches, same: JSON.stringify(Array.from(viaPool.ids)) === JSON.stringify(Array.from(vectorize(Array.from({ length: 4000 }, (_, i) => 'row ' + i), { encoding: 'byt5' }).ids)), file: file.reduce((a, b) => a + b, 0), served: health.backend, ids: Array.from(vectorize(['hi']).ids) }));
await p.close();
})();`;
    const r = child({ DTESN_BACKEND: 'js' }, code);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ b: 'js', chosen: true, pipeline: 'js', poolRows: 4000, same: true, served: 'js', ids: [104, 105], file: 17524 });
    expect(out.pool).toBeGreaterThan(0);
  });

  it('the CLI reports and uses the backend DTESN_BACKEND names', () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'dtesn-env-')), 'o.npy');
    const cli = (env: Record<string, string>) =>
      spawnSync(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'vectorize', path.join(root, 'samples', 'udhr.jsonl'), '--out', out, '--max-length', '8'], { env: { ...process.env, ...env }, encoding: 'utf8' });
    expect(cli({ DTESN_BACKEND: 'js' }).stdout + cli({ DTESN_BACKEND: 'js' }).stderr).toMatch(/backend: {5}js \(none\)/);
    expect(cli({ DTESN_BACKEND: '' }).stdout).toMatch(new RegExp(`backend: {5}native \\(${best}\\)`));
  });

  it('an unloadable binary gives one warning naming the reason, then the fallback works', () => {
    // The pipeline, its worker threads and the file reader choose too: still one warning.
    const code = `${probe}\nvectorize(['x']);
import { createPipeline } from './src/index.ts';
import { ROUTE } from './src/pipeline/pipeline.ts';
const p = createPipeline({ maxWorkers: 2 });
p[ROUTE] = 'pool';
p.vectorize(Array.from({ length: 3000 }, (_, i) => 'r' + i)).then(() => p.close());`;
    const r = child({ NAPI_RS_NATIVE_LIBRARY_PATH: '/nonexistent/dtesn.node' }, code);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.b.kind).toBe('js');
    expect(out.ids).toEqual([107, 104, 111, 111, 114, 1]);
    const warnings = r.stderr.match(/the native binding could not be loaded \(.+\); using the pure-TypeScript fallback/g);
    expect(warnings).toHaveLength(1);
  });

  it('DTESN_BACKEND=native makes an unloadable binary an error', () => {
    const r = child({ DTESN_BACKEND: 'native', NAPI_RS_NATIVE_LIBRARY_PATH: '/nonexistent/dtesn.node' }, probe);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/DTESN_BACKEND=native but the native binding could not be loaded/);
  });
});

const bytesOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('large out arrays', () => {
  // 6,000 rows x 2,048 = 12.3 M elements: 61 MB of int32 ids + mask; 37 MB with int16.
  const rows = 6000;
  const enc = new TextEncoder();
  const texts = Array.from({ length: rows }, (_, i) => `row ${i} ` + 'é中😀abc'.repeat((i * 37) % 300));
  const parts = texts.map((t) => enc.encode(t));
  const offsets = new Uint32Array(rows + 1);
  parts.forEach((p, i) => (offsets[i + 1] = offsets[i]! + p.length));
  const bytes = new Uint8Array(offsets[rows]!);
  parts.forEach((p, i) => bytes.set(p, offsets[i]!));

  it.each(paths)('equal a fresh output on SIMD path %s, every element overwritten (ids, mask, both; shared or not)', (simd) => {
    const f = facadeOf(native, simd);
    for (const o of [
      { maxLength: 2048, padding: 'max-length' as const, padId: -3 },
      { maxLength: 2048, paddingSide: 'left' as const, truncationSide: 'left' as const, encoding: 'byt5' as const, dtype: 'int16' as const },
    ]) {
      const want = f.vectorizeBytes(bytes, offsets, o);
      const n = want.rows * want.width;
      const Ids = o.dtype === 'int16' ? Int16Array : Int32Array;
      for (const shared of [false, true]) {
        const mem = (size: number) => (shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size)) as ArrayBuffer;
        const ids = new Ids(mem(n * Ids.BYTES_PER_ELEMENT + 64)).fill(0x5a5a);
        const mask = new Uint8Array(mem(n + 3)).fill(7);
        for (const out of [{ ids }, { attentionMask: mask }, { ids: ids.subarray(3), attentionMask: mask.subarray(1) }]) {
          const got = f.vectorizeBytes(bytes, offsets, { ...o, out });
          expect([got.rows, got.width, got.ids.constructor, got.ids.length, got.attentionMask.length]).toEqual([want.rows, want.width, Ids, n, n]);
          expect(Array.from(got.lengths)).toEqual(Array.from(want.lengths));
          expect(Array.from(got.sourceLengths)).toEqual(Array.from(want.sourceLengths));
          // Byte-equal (a toEqual of 12 M elements would take minutes).
          expect(bytesOf(got.ids).equals(bytesOf(want.ids)), `ids, out ${Object.keys(out).join('+')}, shared ${shared}`).toBe(true);
          expect(bytesOf(got.attentionMask).equals(bytesOf(want.attentionMask)), `mask, out ${Object.keys(out).join('+')}`).toBe(true);
        }
      }
    }
  });

  it.each(paths)('int64 ids and masks on SIMD path %s: equal a fresh output and the fallback, every element overwritten', (simd) => {
    // 1,500 rows x 2,048: 3 M elements, 24 MB per int64 array.
    const few = 1500;
    const sub = offsets.subarray(0, few + 1);
    const f = facadeOf(native, simd);
    const js = facadeOf(jsBackend);
    for (const o of [
      { maxLength: 2048, padding: 'max-length', padId: -(2n ** 40n), dtype: 'int64', maskDtype: 'int64' },
      { maxLength: 2048, paddingSide: 'left', truncationSide: 'left', encoding: 'byt5', dtype: 'int64', maskDtype: 'int32' },
      { maxLength: 700, encoding: 'utf16', dtype: 'int32', maskDtype: 'int64', padId: 9 },
    ] as const) {
      const want = f.vectorizeBytes(bytes, sub, o);
      const ref = js.vectorizeBytes(bytes, sub, o);
      expect(bytesOf(want.ids).equals(bytesOf(ref.ids)), 'ids equal the fallback').toBe(true);
      expect(bytesOf(want.attentionMask).equals(bytesOf(ref.attentionMask)), 'mask equals the fallback').toBe(true);
      const n = want.rows * want.width;
      const Ids = o.dtype === 'int64' ? BigInt64Array : Int32Array;
      const Mask = o.maskDtype === 'int64' ? BigInt64Array : Int32Array;
      for (const shared of [false, true]) {
        const mem = (size: number) => (shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size)) as ArrayBuffer;
        const ids = new Ids(mem(n * Ids.BYTES_PER_ELEMENT + 64));
        const mask = new Mask(mem(n * Mask.BYTES_PER_ELEMENT + 24));
        new Uint8Array(ids.buffer).fill(0xa5);
        new Uint8Array(mask.buffer).fill(0x77);
        for (const out of [{ ids }, { attentionMask: mask }, { ids: ids.subarray(3), attentionMask: mask.subarray(1) }]) {
          const got = f.vectorizeBytes(bytes, sub, { ...o, out });
          expect([got.rows, got.width, got.ids.constructor, got.attentionMask.constructor]).toEqual([want.rows, want.width, Ids, Mask]);
          expect(bytesOf(got.ids).equals(bytesOf(want.ids)), `ids, out ${Object.keys(out).join('+')}, shared ${shared}`).toBe(true);
          expect(bytesOf(got.attentionMask).equals(bytesOf(want.attentionMask)), `mask, out ${Object.keys(out).join('+')}`).toBe(true);
        }
      }
    }
  });
});
