/**
 * The short demo behind `npm start`: vectorizes the bundled multilingual sample with the native
 * backend (or the fallback) in two encodings and prints the batches and the backend.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getBackend, vectorize, vectorizeBytes } from './index.js';
import type { Dtype, VectorBatch } from './types.js';

const samplePath = fileURLToPath(new URL('../samples/sample.txt', import.meta.url));
const text = readFileSync(samplePath, 'utf8');
const rows = text.split('\n').filter((line) => line.length > 0);

function show(title: string, b: VectorBatch<Dtype>, shown = 3): void {
  console.log(`\n${title}: ${b.rows} rows x width ${b.width} (${b.ids.constructor.name})`);
  for (let r = 0; r < Math.min(shown, b.rows); r++) {
    const ids = Array.from(b.ids.subarray(r * b.width, r * b.width + Math.min(b.width, 16)));
    const mask = Array.from(b.attentionMask.subarray(r * b.width, r * b.width + Math.min(b.width, 16))).join('');
    console.log(`  row ${r}: ids ${JSON.stringify(ids)}${b.width > 16 ? ' ...' : ''}`);
    console.log(`         mask ${mask}${b.width > 16 ? '...' : ''} length ${b.lengths[r]} of ${b.sourceLengths[r]}`);
  }
}

console.log('backend:', getBackend());
console.log(`sample: ${rows.length} lines from ${samplePath}`);

show('code points, maxLength 48', vectorize(rows, { maxLength: 48 }));
show('ByT5 bytes, padded to a multiple of 8', vectorize(rows.slice(6), { encoding: 'byt5', maxLength: 64, padToMultipleOf: 8 }));

const bytes = new TextEncoder().encode(rows.join(''));
const offsets = new Uint32Array(rows.length + 1);
let at = 0;
rows.forEach((row, i) => {
  at += Buffer.byteLength(row);
  offsets[i + 1] = at;
});
show('CANINE from UTF-8 bytes (vectorizeBytes), left padding', vectorizeBytes(bytes, offsets, { encoding: 'canine', maxLength: 24, paddingSide: 'left' }), 2);

const many = Array.from({ length: 100_000 }, (_, i) => rows[i % rows.length]!);
const t0 = performance.now();
const big = vectorize(many, { maxLength: 128 });
const ms = performance.now() - t0;
console.log(`\n100,000 rows -> ${big.rows} x ${big.width} int32 in ${ms.toFixed(1)} ms (${Math.round(big.rows / (ms / 1000)).toLocaleString('en-US')} rows/s, one run, fresh output arrays; see BENCHMARKS.md for measured medians)`);
