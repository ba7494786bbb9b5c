/**
 * Tensor file writer throughput (src/tensors/tensor-file.ts): MB/s of output written, from open to finish
 * (renames included), for both formats, with padding 'max-length' (every batch 128 wide: ids go
 * straight to their place) and 'longest' (batch widths vary from 64 to 128: the files are rebuilt
 * with re-padding at finish). The batches are made once and written again and again, so the
 * figure is the writer's alone, not vectorize's.
 *
 *   npx tsx bench/writer.bench.ts [--mb 1024] [--dir /tmp] [--rows 1000] [--dtype int32] [--rounds 3]
 *
 * Prints the best of `--rounds` runs per case (the machine is shared; the best run is the one
 * least disturbed). Output goes to the page cache: files are not fsync'ed, as the writer does not.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { IDS_ARRAY } from '../src/vectorize/options.js';
import { openTensorWriter } from '../src/tensors/tensor-file.js';
import type { Dtype, VectorBatch } from '../src/vectorize/types.js';

const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '1024' },
    dir: { type: 'string', default: os.tmpdir() },
    rows: { type: 'string', default: '1000' },
    dtype: { type: 'string', default: 'int32' },
    rounds: { type: 'string', default: '3' },
  },
});
const targetBytes = Number(values.mb) * 1e6;
const rowsPerBatch = Number(values.rows);
const dtype = values.dtype as Dtype;
const rounds = Number(values.rounds);
const MAX = 128;

function batchOf(width: number): VectorBatch<Dtype> {
  const ids = new IDS_ARRAY[dtype](rowsPerBatch * width);
  const attentionMask = new Uint8Array(rowsPerBatch * width);
  const lengths = new Int32Array(rowsPerBatch);
  for (let r = 0; r < rowsPerBatch; r++) {
    const len = 1 + ((r * 7919) % width);
    lengths[r] = len;
    for (let c = 0; c < len; c++) {
      ids[r * width + c] = 32 + ((r + c) % 90);
      attentionMask[r * width + c] = 1;
    }
  }
  return { ids, attentionMask, lengths, sourceLengths: lengths, rows: rowsPerBatch, width };
}

const uniform = [batchOf(MAX)];
const varied = [64, 96, 128, 80, 112].map(batchOf);
const dir = mkdtempSync(path.join(values.dir, 'dtesn-writer-bench-'));

async function run(ext: 'npy' | 'safetensors', batches: VectorBatch<Dtype>[]): Promise<{ mbps: number; bytes: number }> {
  const w = await openTensorWriter(path.join(dir, `out.${ext}`), { dtype, padId: 0, paddingSide: 'right' });
  const perRow = MAX * (new IDS_ARRAY[dtype](1).byteLength + 1) + 4;
  const batchCount = Math.max(1, Math.round(targetBytes / (perRow * rowsPerBatch)));
  const t0 = performance.now();
  for (let i = 0; i < batchCount; i++) await w.write(batches[i % batches.length]!);
  const done = await w.finish();
  const seconds = (performance.now() - t0) / 1000;
  for (const f of done.files) rmSync(f);
  return { mbps: done.bytes / 1e6 / seconds, bytes: done.bytes };
}

console.log(`tensor writer, ${dtype} ids, ${rowsPerBatch}-row batches, ~${values.mb} MB per run, best of ${rounds}, in ${dir}`);
console.log('| format | padding | output MB | MB/s |');
console.log('|---|---|---:|---:|');
try {
  for (const ext of ['npy', 'safetensors'] as const) {
    for (const [padding, batches] of [['max-length', uniform], ['longest', varied]] as const) {
      let best = { mbps: 0, bytes: 0 };
      for (let i = 0; i < rounds; i++) {
        const r = await run(ext, batches);
        if (r.mbps > best.mbps) best = r;
      }
      console.log(`| ${ext} | ${padding} | ${(best.bytes / 1e6).toFixed(0)} | ${best.mbps.toFixed(0)} |`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
