// The code a user would write instead of dtesn's batching and service, as bench contenders (plain
// JavaScript, so that the serve bench's server processes run it without a TypeScript loader):
// the 20-line greedy micro-batcher of issue 13, a model stage that blocks the event loop, and a
// plain node:http server that vectorizes per request.
import { createServer } from 'node:http';

/** Blocks this thread for `ms` (a CPU-bound model stage called in process). */
export function spin(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** The blocking model stage of the benches: 2 ms + 5 us per row, one result per row. */
export function blockingHandler(batch) {
  spin(2 + 0.005 * batch.rows);
  return Promise.resolve(new Array(batch.rows).fill(0));
}

/**
 * The greedy batcher: whenever it is idle, take everything waiting (up to maxRows), vectorize it
 * with one core call, await the handler, resolve each request with its row; no timer, no
 * controller. Without a handler each request gets its row of ids.
 */
export function greedyBatcher(vectorize, options, handler, maxRows = 1000) {
  const queue = [];
  let busy = false;
  async function loop() {
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
  return (text) =>
    new Promise((resolve, reject) => {
      queue.push({ text, resolve, reject });
      if (!busy) void loop();
    });
}

/** The JSON answer of POST /v1/vectorize, written the obvious way. */
function batchJson(b) {
  const ids = [];
  const mask = [];
  for (let r = 0; r < b.rows; r++) {
    ids.push(Array.from(b.ids.subarray(r * b.width, (r + 1) * b.width)));
    mask.push(Array.from(b.attentionMask.subarray(r * b.width, (r + 1) * b.width)));
  }
  return JSON.stringify({ rows: b.rows, width: b.width, ids, attentionMask: mask, lengths: Array.from(b.lengths) });
}

/**
 * The plain server: node:http, JSON.parse, core `vectorize` per request (or the greedy batcher in
 * front of the handler), JSON.stringify. About 25 lines a user writes.
 */
export function plainServer(vectorize, handler, greedy) {
  const batchers = new Map();
  return createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const reply = (status, body) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(body);
      };
      (async () => {
        const { texts, options } = JSON.parse(Buffer.concat(chunks).toString());
        if (greedy) {
          const key = JSON.stringify(options ?? {});
          let b = batchers.get(key);
          if (!b) batchers.set(key, (b = greedyBatcher(vectorize, options ?? {}, handler)));
          const results = await Promise.all(texts.map((t) => b(t)));
          return reply(200, JSON.stringify({ rows: texts.length, results }));
        }
        const batch = vectorize(texts, options);
        if (handler) return reply(200, JSON.stringify({ rows: batch.rows, results: await handler(batch) }));
        reply(200, batchJson(batch));
      })().catch((e) => reply(400, JSON.stringify({ error: String(e.message) })));
    });
  });
}
