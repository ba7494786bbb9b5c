/**
 * The obvious micro-batcher a user writes in twenty lines (issue 13's "greedy batcher"): whenever
 * it is idle, take everything waiting (up to maxRows), vectorize it with one core call, await the
 * handler, resolve each request with its row; no timer, no controller. A bench contender.
 */
import { vectorize } from '../src/index.js';
import type { Dtype, VectorBatch, VectorizeOptions } from '../src/types.js';

type Handler = (batch: VectorBatch<Dtype>) => unknown[] | Promise<unknown[]>;

export function greedyBatcher(options: VectorizeOptions<Dtype>, handler: Handler | undefined, maxRows = 1000) {
  const queue: { text: string; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  let busy = false;
  async function loop(): Promise<void> {
    busy = true;
    while (queue.length > 0) {
      const take = queue.splice(0, maxRows);
      try {
        const batch = vectorize(take.map((r) => r.text), options);
        if (handler) {
          const out = await handler(batch);
          take.forEach((r, i) => r.resolve(out[i]));
        } else {
          take.forEach((r, i) => r.resolve(batch.ids.subarray(i * batch.width, (i + 1) * batch.width)));
        }
      } catch (e) {
        for (const r of take) r.reject(e);
      }
    }
    busy = false;
  }
  return (text: string): Promise<unknown> =>
    new Promise((resolve, reject) => {
      queue.push({ text, resolve, reject });
      if (!busy) void loop();
    });
}
