/**
 * A real model run: onnxruntime-node executes a small ONNX model on our batches. The model
 * (test/fixtures/byt5_embed.py, built here with the `onnx` Python package that
 * `npm run test:tools` installs) gathers an embedding row per ByT5 id, masks the padding and
 * mean-pools over the sequence; its inputs are int64, as Hugging Face exports have them. The
 * batch's BigInt64Arrays go into `ort.Tensor` as they are (no copy), and every pooled vector is
 * checked against the same computation done here in JavaScript from the text's UTF-8 bytes. The
 * same model then runs as a pipeline handler behind `submit`, and behind the HTTP service.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vectorize } from '../src/index.js';
import { createPipeline } from '../src/pipeline/pipeline.js';
import { startServer } from '../src/server/server.js';
import type { Dtype, VectorBatch } from '../src/vectorize/types.js';
import { makeTexts } from './fixtures/util.js';

const SCRIPT = fileURLToPath(new URL('./fixtures/byt5_embed.py', import.meta.url));
const DIM = 8;
const MAX_LENGTH = 96;
const OPTIONS = { encoding: 'byt5', dtype: 'int64', maskDtype: 'int64', maxLength: MAX_LENGTH } as const;

let dir = '';
let session: ort.InferenceSession;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dtesn-onnx-'));
  const model = join(dir, 'byt5_embed.onnx');
  const py = spawnSync('python3', [SCRIPT, model], { encoding: 'utf8' });
  if (py.status !== 0) {
    throw new Error(`python3 with the onnx package could not build the test model (\`npm run test:tools\` installs it): ${py.stderr}`);
  }
  session = await ort.InferenceSession.create(model);
});
afterAll(async () => {
  await session?.release();
  rmSync(dir, { recursive: true, force: true });
});

/** The model's embedding table (see byt5_embed.py). */
const embedding = (id: number, j: number): number => ((37 * id + 11 * j) % 101) / 101 - 0.5;

/** What the model must give for `text`: ByT5 ids (UTF-8 bytes + 3, cut to maxLength - 1, then EOS 1), their rows' mean. */
function expectedPooled(text: string): number[] {
  const ids = Array.from(new TextEncoder().encode(text).subarray(0, MAX_LENGTH - 1), (b) => b + 3);
  ids.push(1);
  return Array.from({ length: DIM }, (_, j) => ids.reduce((s, id) => s + embedding(id, j), 0) / ids.length);
}

/** The model on a batch: its int64 arrays are the tensors' data, not copies. */
async function embed(batch: VectorBatch<Dtype, 'int64'>): Promise<Float32Array> {
  if (!(batch.ids instanceof BigInt64Array)) throw new TypeError('the model takes int64 ids');
  const dims = [batch.rows, batch.width];
  const inputIds = new ort.Tensor('int64', batch.ids, dims);
  const attentionMask = new ort.Tensor('int64', batch.attentionMask, dims);
  expect(inputIds.data).toBe(batch.ids);
  expect(attentionMask.data).toBe(batch.attentionMask);
  const out = await session.run({ input_ids: inputIds, attention_mask: attentionMask });
  const pooled = out.pooled!;
  expect(pooled.dims).toEqual([batch.rows, DIM]);
  return pooled.data as Float32Array;
}

function expectPooled(got: ArrayLike<number>, texts: readonly string[]): void {
  expect(got.length).toBe(texts.length * DIM);
  texts.forEach((t, r) => {
    const want = expectedPooled(t);
    for (let j = 0; j < DIM; j++) expect(got[r * DIM + j], `row ${r}, dimension ${j}`).toBeCloseTo(want[j]!, 5);
  });
}

const udhr = readFileSync(fileURLToPath(new URL('../samples/udhr.jsonl', import.meta.url)), 'utf8')
  .split('\n')
  .filter((l) => l.length > 0)
  .map((l) => (JSON.parse(l) as { text: string }).text);

describe('onnxruntime-node on int64 batches', () => {
  it('vectorize -> ort.Tensor("int64", batch.ids) without a copy -> the pooled embeddings computed in JavaScript', async () => {
    // Multilingual paragraphs (1- to 4-byte characters, cut inside a character at maxLength), and short and empty rows.
    const texts = [...udhr.slice(0, 120), 'hello', '', 'wörld 😀'];
    const batch = vectorize(texts, OPTIONS);
    expect(batch.ids).toBeInstanceOf(BigInt64Array);
    expect(batch.attentionMask).toBeInstanceOf(BigInt64Array);
    expectPooled(await embed(batch), texts);
  });

  it('a small batch whose arrays are views into a shared buffer (byteOffset > 0) is read where it lies', async () => {
    vectorize(['x'], OPTIONS); // takes the start of the current small-output buffer
    const batch = vectorize(['tiny', 'ab'], OPTIONS);
    expect(batch.ids.byteOffset).toBeGreaterThan(0);
    expectPooled(await embed(batch), ['tiny', 'ab']);
  });

  it('the model refuses int32 ids, as exported models do: the reason for dtype int64', async () => {
    const batch = vectorize(['hello'], { encoding: 'byt5' });
    const dims = [batch.rows, batch.width];
    await expect(
      session.run({
        input_ids: new ort.Tensor('int32', batch.ids, dims),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(batch.rows * batch.width).fill(1n), dims),
      }),
    ).rejects.toThrow(/Unexpected input data type\. Actual: \(tensor\(int32\)\) , expected: \(tensor\(int64\)\)/);
  });
});

describe('the model as a pipeline handler', () => {
  const handler = async (batch: VectorBatch<Dtype, 'int64'>) => {
    const pooled = await embed(batch);
    return Array.from({ length: batch.rows }, (_, r) => Array.from(pooled.subarray(r * DIM, (r + 1) * DIM)));
  };

  it('behind submit: concurrent requests coalesced into model batches, each gets its own rows’ vectors', async () => {
    await using p = createPipeline({ maxWorkers: 1, vectorize: OPTIONS, handler });
    const texts = makeTexts(77, 20_000, { maxPieces: 8 });
    const requests = Array.from({ length: 200 }, (_, i) => (i % 5 === 0 ? texts.slice(i, i + 3) : texts[i]!));
    const before = p.metrics().batcher.batches;
    // Typed from the handler: each request's rows' vectors.
    const results: number[][][] = await Promise.all(requests.map((r) => p.submit(r)));
    requests.forEach((r, i) => {
      const rows = typeof r === 'string' ? [r] : r;
      expect(results[i]!.length, `request ${i}`).toBe(rows.length);
      expectPooled(results[i]!.flat(), rows);
    });
    expect(p.metrics().batcher.batches - before, 'requests shared model batches').toBeLessThan(100);
  });

  it('behind the HTTP service: POST /v1/vectorize answers the model’s vectors', async () => {
    const pipeline = createPipeline({ maxWorkers: 1, vectorize: OPTIONS, handler });
    const srv = await startServer({ port: 0, host: '127.0.0.1', pipeline, warmup: 0 });
    try {
      const texts = [...udhr.slice(200, 210), 'hello', ''];
      const body = JSON.stringify({ texts });
      const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = http.request(`${srv.url}/v1/vectorize`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (r) => {
          let text = '';
          r.setEncoding('utf8').on('data', (c: string) => (text += c));
          r.on('end', () => resolve({ status: r.statusCode!, text }));
        });
        req.on('error', reject);
        req.end(body);
      });
      expect(res.status, res.text).toBe(200);
      const answer = JSON.parse(res.text) as { rows: number; results: number[][] };
      expect(answer.rows).toBe(texts.length);
      expectPooled(answer.results.flat(), texts);
    } finally {
      await srv.close();
      await pipeline.close();
    }
  });
});
