/**
 * The HTTP service (src/server/server.ts) over real sockets: results equal the core `vectorize` exactly
 * (JSON and .npy, alone and under concurrent requests with mixed options), every error status
 * with its exact message, load shedding, health, metrics, graceful drain, and SIGTERM handling in
 * a child process.
 *
 * Nothing here depends on timing: slow requests are made by a pipeline `handler` held on a gate,
 * the queue is filled by requests waiting behind it (maxWorkers 1: one batch in flight), and the
 * monitor is sampled by hand.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { PipelineClosedError } from '../src/common/errors.js';
import { vectorize } from '../src/index.js';
import type { AlertRule } from '../src/observe/monitor/monitor.js';
import { type Pipeline, createPipeline } from '../src/pipeline/pipeline.js';
import { type DtesnServer, type ServerOptions, closeOnSignals, startServer } from '../src/server/server.js';
import type { Dtype, MaskDtype, VectorBatch, VectorizeOptions } from '../src/vectorize/types.js';
import { gate, makeTexts, rejection, thrown } from './fixtures/util.js';

type Opts = VectorizeOptions<Dtype, MaskDtype>;

const servers: DtesnServer[] = [];
const external: Pipeline[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(external.splice(0).map((p) => p.close()));
});

/** A server on a free port; without its warm-up unless asked (it costs ~0.3 s a server). */
async function serve(options: ServerOptions = {}): Promise<DtesnServer> {
  const s = await startServer({ port: 0, warmup: 0, ...options });
  servers.push(s);
  return s;
}

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface Req {
  method?: string;
  headers?: Record<string, string | number>;
  /** Sent with Content-Length. */
  body?: string | Buffer;
  /** Sent chunked (no Content-Length), one write each. */
  chunks?: Array<string | Buffer>;
}

/** One request on its own connection (no agent: nothing is shared between requests or tests). */
function request(url: string, r: Req = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: r.method ?? 'GET', headers: r.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    // A server that answers before reading the whole body (413) may reset the connection while
    // the rest is written: the answer, when it came, is what counts.
    req.on('error', reject);
    if (r.chunks) {
      for (const c of r.chunks) req.write(c);
      req.end();
    } else req.end(r.body);
  });
}

function post(srv: DtesnServer, body: unknown, o: { path?: string; headers?: Record<string, string> } = {}): Promise<Res> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return request(srv.url + (o.path ?? '/v1/vectorize'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...o.headers },
    body: text,
  });
}

const json = (r: Res): unknown => JSON.parse(r.body.toString('utf8'));

/** What the service must answer: the core's batch as rows of plain numbers. */
function expected(texts: string[], options?: Opts): object {
  const b = vectorize(texts, options);
  // int64 elements as numbers: JSON has no bigints (the pads a request can send are numbers).
  const rowsOf = (a: ArrayLike<number | bigint>) =>
    Array.from({ length: b.rows }, (_, r) => Array.from(Array.prototype.slice.call(a, r * b.width, (r + 1) * b.width) as Array<number | bigint>, Number));
  return { rows: b.rows, width: b.width, ids: rowsOf(b.ids), attentionMask: rowsOf(b.attentionMask), lengths: Array.from(b.lengths) };
}

/** A handler held until `release()`: `entered` resolves when the first batch reaches it. */
function heldHandler(): { handler: (b: VectorBatch<Dtype>) => Promise<unknown[]>; entered: Promise<void>; release: () => void; batches: number[] } {
  const g = gate();
  const e = gate();
  const batches: number[] = [];
  return {
    handler: async (b) => {
      batches.push(b.rows);
      e.open();
      await g.wait;
      return Array.from(b.lengths);
    },
    entered: e.wait,
    release: g.open,
    batches,
  };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) expect.fail(`timed out waiting for ${what}`);
}

function connectError(url: string): Promise<NodeJS.ErrnoException | null> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    s.on('connect', () => {
      s.destroy();
      resolve(null);
    });
    s.on('error', (e) => resolve(e));
  });
}

/** The .npy file of `b`: its header fields and data. */
function parseNpy(buf: Buffer): { major: number; minor: number; headerLen: number; dict: string; data: Buffer } {
  expect(buf.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
  const headerLen = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + headerLen).toString('latin1');
  expect((10 + headerLen) % 64, 'data aligned on 64 bytes').toBe(0);
  expect(header.endsWith('\n')).toBe(true);
  return { major: buf[6]!, minor: buf[7]!, headerLen, dict: header.trimEnd(), data: buf.subarray(10 + headerLen) };
}

const bytesOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

// ------------------------------------------------------------------------------------------------

describe('POST /v1/vectorize', () => {
  const texts = [...makeTexts(11, 600, { loneSurrogates: 0.2 }), 'hello', 'wörld 😀', ''];
  /** The same rows in ASCII, for dtypes too narrow for code points beyond it. */
  const ascii = texts.map((t) => t.replace(/[^\x00-\x7f]/g, '?'));
  const optionSets: Array<Opts | undefined> = [
    undefined,
    { encoding: 'byt5', maxLength: 16 },
    { encoding: 'canine', maxLength: 24, paddingSide: 'left', truncationSide: 'left' },
    { encoding: 'utf16', padding: 'max-length', maxLength: 20, padToMultipleOf: 8, padId: -1 },
    { encoding: 'utf8', maxLength: 12, dtype: 'uint8', addSpecialTokens: false },
    { vocab: ['a', 'b', 'é', '😀', ' '], maxLength: 32, dtype: 'int16' },
    { encoding: 'codepoint', maxLength: 64, dtype: 'float32', padId: 3 },
    { encoding: 'utf16', maxLength: 30, dtype: 'uint16', truncationSide: 'left' },
    { encoding: 'canine', maxLength: 9, dtype: 'uint16', padToMultipleOf: 4 },
    // The JSON answer does not depend on the dtypes: the same numbers.
    { encoding: 'byt5', maxLength: 16, dtype: 'int64', maskDtype: 'int64' },
    { encoding: 'canine', maxLength: 24, paddingSide: 'left', dtype: 'int64', maskDtype: 'int32', padId: -(2 ** 53 - 1) },
    { maxLength: 20, dtype: 'int64', padId: 2 ** 53 - 1, padding: 'max-length' },
  ];
  const rowsFor = (o: Opts | undefined) => (o?.encoding === 'canine' && o.dtype === 'uint16' ? ascii : texts);

  it.each(optionSets.map((o) => ({ o, name: JSON.stringify(o) ?? 'no options' })))('JSON equals the core vectorize: $name', async ({ o }) => {
    const texts = rowsFor(o);
    const srv = await serve({ pipeline: { maxWorkers: 1 } });
    const r = await post(srv, o === undefined ? { texts } : { texts, options: o });
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    const want = expected(texts, o) as { rows: number; width: number };
    expect(json(r)).toEqual(want);
    expect(r.headers['x-dtesn-rows']).toBe(String(want.rows));
    expect(r.headers['x-dtesn-width']).toBe(String(want.width));
    expect(Number(r.headers['content-length'])).toBe(r.body.length);
  });

  it('int64 ids beyond 2^53 (a bigint padId of the pipeline defaults) are written with all their digits', async () => {
    for (const padId of [2n ** 60n, -(2n ** 63n)]) {
      const srv = await serve({ pipeline: { maxWorkers: 1, vectorize: { dtype: 'int64', maskDtype: 'int64', padId, padding: 'max-length', maxLength: 4 } } });
      const r = await post(srv, { texts: ['a', 'bc'] });
      expect(r.status).toBe(200);
      expect(r.body.toString('utf8')).toBe(
        `{"rows":2,"width":4,"ids":[[97,${padId},${padId},${padId}],[98,99,${padId},${padId}]],"attentionMask":[[1,0,0,0],[1,1,0,0]],"lengths":[1,2]}`,
      );
    }
  });

  it('no texts: an empty batch', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 } });
    const r = await post(srv, { texts: [] });
    expect(r.status).toBe(200);
    expect(json(r)).toEqual({ rows: 0, width: 0, ids: [], attentionMask: [], lengths: [] });
  });

  it('a result of several MiB is streamed in chunks and still equals the core', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 } });
    const many = makeTexts(5, 400_000);
    const o: Opts = { maxLength: 256, padding: 'max-length' };
    const r = await post(srv, { texts: many, options: o });
    expect(r.status).toBe(200);
    expect(r.headers['transfer-encoding']).toBe('chunked');
    expect(r.body.length).toBeGreaterThan(2 << 20);
    expect(json(r)).toEqual(expected(many, o));
  });

  it('.npy answers: ids, attention_mask, lengths, header and data exact', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 } });
    const cases: Array<{ o: Opts; array?: string; descr: string; pick: (b: VectorBatch<Dtype, MaskDtype>) => ArrayBufferView; shape: (b: VectorBatch<Dtype, MaskDtype>) => string }> = [
      { o: { encoding: 'byt5', maxLength: 16 }, descr: '<i4', pick: (b) => b.ids, shape: (b) => `(${b.rows}, ${b.width})` },
      { o: { encoding: 'utf8', dtype: 'uint8', maxLength: 10 }, descr: '|u1', pick: (b) => b.ids, shape: (b) => `(${b.rows}, ${b.width})` },
      { o: { encoding: 'utf8', dtype: 'int16', maxLength: 10, padId: -7 }, descr: '<i2', pick: (b) => b.ids, shape: (b) => `(${b.rows}, ${b.width})` },
      { o: { encoding: 'utf16', dtype: 'uint16', maxLength: 10 }, descr: '<u2', pick: (b) => b.ids, shape: (b) => `(${b.rows}, ${b.width})` },
      { o: { dtype: 'float32', maxLength: 10 }, descr: '<f4', pick: (b) => b.ids, shape: (b) => `(${b.rows}, ${b.width})` },
      { o: { maxLength: 10, paddingSide: 'left' }, array: 'attention_mask', descr: '|u1', pick: (b) => b.attentionMask, shape: (b) => `(${b.rows}, ${b.width})` },
      { o: { encoding: 'canine', maxLength: 10 }, array: 'lengths', descr: '<i4', pick: (b) => b.lengths, shape: (b) => `(${b.rows},)` },
      // int64 ids and masks: '<i8', as an ONNX model's inputs.
      { o: { encoding: 'byt5', maxLength: 16, dtype: 'int64', padId: -1 }, descr: '<i8', pick: (b) => b.ids, shape: (b) => `(${b.rows}, ${b.width})` },
      { o: { maxLength: 10, maskDtype: 'int64' }, array: 'attention_mask', descr: '<i8', pick: (b) => b.attentionMask, shape: (b) => `(${b.rows}, ${b.width})` },
      { o: { maxLength: 10, maskDtype: 'int32', dtype: 'int64' }, array: 'attention_mask', descr: '<i4', pick: (b) => b.attentionMask, shape: (b) => `(${b.rows}, ${b.width})` },
    ];
    for (const c of cases) {
      const r = await post(srv, { texts, options: c.o }, { path: `/v1/vectorize${c.array ? `?array=${c.array}` : ''}`, headers: { accept: 'application/x-npy' } });
      expect(r.status, r.body.toString()).toBe(200);
      expect(r.headers['content-type']).toBe('application/x-npy');
      const want = vectorize(texts, c.o);
      expect(r.headers['x-dtesn-rows']).toBe(String(want.rows));
      expect(r.headers['x-dtesn-width']).toBe(String(want.width));
      const npy = parseNpy(r.body);
      expect([npy.major, npy.minor]).toEqual([1, 0]);
      expect(npy.dict).toBe(`{'descr': '${c.descr}', 'fortran_order': False, 'shape': ${c.shape(want)}, }`);
      expect(npy.data.equals(bytesOf(c.pick(want))), `${JSON.stringify(c.o)} ${c.array ?? 'ids'} data`).toBe(true);
    }
  });

  it('Accept negotiation: JSON unless npy is preferred; a bad ?array= is a 400', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 } });
    const typeFor = async (accept: string) => (await post(srv, { texts: ['ab'] }, { headers: { accept } })).headers['content-type'];
    expect(await typeFor('application/x-npy;q=0.9, application/json;q=0.5')).toBe('application/x-npy');
    expect(await typeFor('application/json, application/x-npy;q=0.5')).toBe('application/json; charset=utf-8');
    expect(await typeFor('*/*')).toBe('application/json; charset=utf-8');
    // Media types are case-insensitive; a wildcard counts for JSON at its own q.
    expect(await typeFor('APPLICATION/X-NPY')).toBe('application/x-npy');
    expect(await typeFor('application/x-npy;q=0.1, */*')).toBe('application/json; charset=utf-8');
    expect(await typeFor('application/x-npy;q=0.1, application/*;q=0.9')).toBe('application/json; charset=utf-8');
    expect(await typeFor('application/x-npy, application/*;q=0.9')).toBe('application/x-npy');
    expect(await typeFor('application/x-npy, application/json;q=0')).toBe('application/x-npy');
    const bad = await post(srv, { texts: ['ab'] }, { path: '/v1/vectorize?array=mask', headers: { accept: 'application/x-npy' } });
    expect(bad.status).toBe(400);
    expect(json(bad)).toEqual({ error: `array must be one of 'ids', 'attention_mask', 'lengths', got "mask"` });
  });

  it('concurrent requests with mixed options each get exactly their own result', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 2, batchTimeoutMs: 5 } });
    const sets: Array<Opts | undefined> = [undefined, { encoding: 'byt5', maxLength: 16 }, { encoding: 'canine', maxLength: 12, paddingSide: 'left' }, { encoding: 'utf16', maxLength: 40, dtype: 'uint16' }];
    const reqs = Array.from({ length: 48 }, (_, i) => ({ texts: makeTexts(100 + i, 20 + (i % 7) * 40), options: sets[i % sets.length] }));
    const got = await Promise.all(reqs.map((q) => post(srv, q)));
    got.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(json(r), `request ${i}`).toEqual(expected(reqs[i]!.texts, reqs[i]!.options));
    });
    const m = srv.pipeline.metrics();
    expect(m.processed).toBe(reqs.reduce((a, q) => a + q.texts.length, 0));
    expect(m.failed).toBe(0);
  });

  it('400 with the library message for bad JSON, body shape, texts and options', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 } });
    const jsonError = (s: string) => `invalid JSON: ${thrown(() => JSON.parse(s)).message}`;
    const core = (t: unknown, o?: unknown) => thrown(() => vectorize(t as string[], o as Opts)).message;
    const cases: Array<[string, string]> = [
      ['{"texts": [', jsonError('{"texts": [')],
      ['', jsonError('')],
      ['\u00ff\u00fe', jsonError('\u00ff\u00fe')],
      ['[1, 2]', 'the body must be a JSON object {"texts": [...], "options": {...}}, got array'],
      ['null', 'the body must be a JSON object {"texts": [...], "options": {...}}, got null'],
      ['"texts"', 'the body must be a JSON object {"texts": [...], "options": {...}}, got string'],
      ['{"texts": ["a"], "opts": {}}', 'unknown field "opts" in the body (expected "texts" and "options")'],
      ['{}', 'texts must be an array of strings, got undefined'],
      ['{"texts": "hello"}', 'texts must be an array of strings, got string'],
      ['{"texts": {"0": "a"}}', 'texts must be an array of strings, got object'],
      ['{"texts": ["a", 5]}', 'texts[1] must be a string, got number'],
      ['{"texts": ["a", "b", null]}', 'texts[2] must be a string, got null'],
      ['{"texts": [["a"]]}', 'texts[0] must be a string, got object'],
      ['{"texts": ["a"], "options": null}', 'options must be an object, got null'],
      ['{"texts": ["a"], "options": [1]}', 'options must be an object, got Array'],
      ['{"texts": ["a"], "options": {"foo": 1}}', "unknown option 'foo'"],
      ['{"texts": ["a"], "options": {"__proto__": {"maxLength": 1}}}', "unknown option '__proto__'"],
      ['{"texts": ["a"], "options": {"maxLength": 0}}', 'options.maxLength must be an integer >= 1, got 0'],
      ['{"texts": ["a"], "options": {"maxLength": 1e400}}', 'options.maxLength must be an integer >= 1, got Infinity'],
      ['{"texts": ["a"], "options": {"maxLength": 1e15}}', 'options.maxLength must be an integer >= 1, got 1000000000000000'],
      ['{"texts": ["a"], "options": {"maxLength": "12"}}', 'options.maxLength must be a number, got string'],
      ['{"texts": ["a"], "options": {"encoding": "latin1"}}', core(['a'], { encoding: 'latin1' })],
      ['{"texts": ["a"], "options": {"padId": 70000, "dtype": "uint16"}}', core(['a'], { padId: 70000, dtype: 'uint16' })],
      ['{"texts": ["a"], "options": {"out": {"ids": [0]}}}', core(['a'], { out: { ids: [0] } })],
      ['{"texts": ["ab", "\\u20ac"], "options": {"dtype": "uint8"}}', core(['ab', '€'], { dtype: 'uint8' })],
      ['{"texts": ["ok", "a\\ud800b"], "options": {"invalid": "error"}}', core(['ok', 'a\uD800b'], { invalid: 'error' })],
    ];
    for (const [body, message] of cases) {
      const r = await post(srv, body);
      expect({ body, status: r.status, json: json(r) }).toEqual({ body, status: 400, json: { error: message } });
    }
    // The pipeline kept working, and counted the rows it refused as failed, never processed.
    const ok = await post(srv, { texts: ['a'] });
    expect(json(ok)).toEqual(expected(['a']));
  });

  it('a JSON answer of several chunks is exact wherever a row ends in a chunk (the separators need room too)', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 } });
    // '€€' rows (ids [8364,8364]): these counts end the last row 1..3 bytes before a chunk's end.
    for (const n of [58260, 87391]) {
      const texts = Array<string>(n).fill('€€');
      const r = await post(srv, { texts });
      expect(r.status).toBe(200);
      expect(r.body.toString('latin1')).toBe(JSON.stringify(expected(texts)));
    }
  });

  it('a body that is not valid UTF-8 is a 400, not text repaired with U+FFFD', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 } });
    const body = Buffer.concat([Buffer.from('{"texts":["caf'), Buffer.from([0xe9]), Buffer.from('"],"options":{"invalid":"error"}}')]);
    const r = await request(srv.url + '/v1/vectorize', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect({ status: r.status, json: json(r) }).toEqual({ status: 400, json: { error: 'the body is not valid UTF-8 (JSON text must be, RFC 8259)' } });
    expect(srv.pipeline.metrics().accepted).toBe(0);
  });

  it('the result bound uses the pipeline defaults of the server when the body has no options: refused before the work', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1, vectorize: { padding: 'max-length', maxLength: 20_000 } }, maxResultElements: 1_000_000 });
    const r = await post(srv, { texts: Array(2000).fill('a') });
    expect(r.status).toBe(400);
    expect(json(r)).toEqual({ error: `the result would hold up to 40000000 elements (rows x width), over this server's maxResultElements of 1000000: send fewer texts or a smaller maxLength` });
    expect(srv.pipeline.metrics()).toMatchObject({ accepted: 0, processed: 0 });
  });

  it('results over maxResultElements are refused before the work (huge maxLength, padToMultipleOf)', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 }, maxResultElements: 1000 });
    const msg = (n: number) => `the result would hold up to ${n} elements (rows x width), over this server's maxResultElements of 1000: send fewer texts or a smaller maxLength`;
    const cases: Array<[object, number, string]> = [
      [{ texts: ['a'], options: { maxLength: 2147483647, padding: 'max-length' } }, 400, msg(2147483647)],
      [{ texts: ['a', 'b'], options: { padToMultipleOf: 2147483647 } }, 400, msg(2 * 2147483647)],
      [{ texts: Array(11).fill('x'.repeat(100)), options: { maxLength: 128 } }, 400, msg(1100)],
      [{ texts: ['x'.repeat(400)], options: { encoding: 'byt5', maxLength: 5000 } }, 400, msg(1201)],
    ];
    for (const [body, status, error] of cases) {
      const r = await post(srv, body);
      expect({ status: r.status, json: json(r) }).toEqual({ status, json: { error } });
    }
    // At the bound: served. 10 rows x 100 columns.
    const at = await post(srv, { texts: Array(10).fill('x'.repeat(100)), options: { maxLength: 128 } });
    expect(at.status).toBe(200);
    expect(srv.pipeline.metrics().accepted).toBe(10);
  });

  it('413 for a body over bodyLimit, by Content-Length and by counting a chunked body', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 }, bodyLimit: 1024 });
    const fill = (n: number) => {
      const head = '{"texts": ["';
      const tail = '"]}';
      return head + 'x'.repeat(n - head.length - tail.length) + tail;
    };
    const big = await post(srv, fill(1025));
    expect(big.status).toBe(413);
    expect(big.headers.connection).toBe('close');
    expect(json(big)).toEqual({ error: 'the body of 1025 bytes is over the limit of 1024 bytes' });

    const chunked = await request(`${srv.url}/v1/vectorize`, { method: 'POST', chunks: [fill(1025).slice(0, 600), fill(1025).slice(600)] });
    expect(chunked.status).toBe(413);
    expect(json(chunked)).toEqual({ error: 'the body is over the limit of 1024 bytes' });

    const atLimit = await request(`${srv.url}/v1/vectorize`, { method: 'POST', chunks: [fill(1024).slice(0, 600), fill(1024).slice(600)] });
    expect(atLimit.status).toBe(200);
    expect(json(atLimit)).toEqual(expected(['x'.repeat(1024 - 15)]));
  });

  it('429 with Retry-After when the queue is full; 413 for more texts than the whole queue', async () => {
    const h = heldHandler();
    const srv = await serve({ pipeline: { maxWorkers: 1, maxQueue: 2, handler: h.handler }, retryAfterSeconds: 3 });
    const first = post(srv, { texts: ['held'] }); // runs, held in the handler: the one batch slot is taken
    await h.entered;
    const second = post(srv, { texts: ['wait', 'ing'] }); // waits in the queue: 2 rows
    await until(() => srv.pipeline.metrics().queueDepth === 2, 'the second request to queue');
    const shed = await post(srv, { texts: ['one more'] });
    expect(shed.status).toBe(429);
    expect(shed.headers['retry-after']).toBe('3');
    expect(json(shed)).toEqual({ error: 'queue full: 2 rows waiting + 1 requested would exceed maxQueue 2; retry later or raise maxQueue' });
    const tooMany = await post(srv, { texts: ['a', 'b', 'c'] });
    expect(tooMany.status).toBe(413);
    expect(json(tooMany)).toEqual({ error: "3 texts exceed the pipeline's maxQueue of 2 rows: send them in smaller requests" });
    h.release();
    const [a, b] = await Promise.all([first, second]);
    expect([a.status, json(a)]).toEqual([200, { rows: 1, results: [4] }]);
    expect([b.status, json(b)]).toEqual([200, { rows: 2, results: [4, 3] }]);
    // A handler's results are JSON only.
    const npy = await post(srv, { texts: ['x'] }, { headers: { accept: 'application/x-npy' } });
    expect([npy.status, json(npy)]).toEqual([406, { error: 'this pipeline has a handler: its results are JSON only' }]);
    const m = srv.pipeline.metrics();
    expect(m.shed).toBe(4);
  });

  it('a client that disconnects while its request waits frees its place in the queue', async () => {
    const h = heldHandler();
    const srv = await serve({ pipeline: { maxWorkers: 1, handler: h.handler } });
    const first = post(srv, { texts: ['held'] });
    await h.entered;
    const req = http.request(`${srv.url}/v1/vectorize`, { method: 'POST', agent: false });
    req.on('error', () => {});
    req.end(JSON.stringify({ texts: ['x', 'y', 'z'] }));
    await until(() => srv.pipeline.metrics().queueDepth === 3, 'the request to queue');
    req.destroy();
    await until(() => srv.pipeline.metrics().queueDepth === 0, 'the aborted request to leave the queue');
    h.release();
    expect(json(await first)).toEqual({ rows: 1, results: [4] });
    expect(h.batches).toEqual([1]);
  });

  it('survives clients that abort mid-body, garbage and bad methods; nothing stays in flight', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 }, drainTimeoutMs: Infinity });
    const u = new URL(srv.url);
    // Headers promise 100 bytes, 10 come, then the connection drops.
    const s1 = net.connect(Number(u.port), u.hostname);
    await once(s1, 'connect');
    s1.write('POST /v1/vectorize HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"texts": ');
    await new Promise((r) => setTimeout(r, 20));
    s1.destroy();
    // Not HTTP at all.
    const s2 = net.connect(Number(u.port), u.hostname);
    await once(s2, 'connect');
    s2.end('\x00\x01GARBAGE\r\n\r\n');
    const reply = (await once(s2, 'data'))[0] as Buffer;
    expect(reply.toString('latin1')).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    s2.destroy();

    const get = await request(`${srv.url}/v1/vectorize`);
    expect([get.status, get.headers.allow, json(get)]).toEqual([405, 'POST', { error: 'method not allowed: use POST' }]);
    const del = await request(`${srv.url}/healthz`, { method: 'DELETE' });
    expect([del.status, del.headers.allow]).toEqual([405, 'GET, HEAD']);
    const nf = await request(`${srv.url}/v2/vectorize?x=1`);
    expect([nf.status, json(nf)]).toEqual([404, { error: 'no route "/v2/vectorize": try POST /v1/vectorize, GET /metrics, GET /healthz' }]);

    const ok = await post(srv, { texts: ['still', 'here'] });
    expect(json(ok)).toEqual(expected(['still', 'here']));
    // close() waits for requests in flight (no timeout here): the aborted one must not count.
    await srv.close();
  });
});

// ------------------------------------------------------------------------------------------------

describe('GET /metrics and /healthz', () => {
  it('/metrics: the pipeline in Prometheus text, plus HTTP answers by route and code', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 } });
    await post(srv, { texts: ['a', 'bb', 'ccc'] });
    await post(srv, { texts: ['d'] });
    await post(srv, '{');
    const r = await request(`${srv.url}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe(srv.registry.contentType);
    const text = r.body.toString();
    const value = (name: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      return line === undefined ? undefined : Number(line.slice(name.length + 1));
    };
    expect(value('dtesn_items_processed_total')).toBe(4);
    expect(value('dtesn_items_failed_total')).toBe(0);
    expect(value('dtesn_http_requests_total{route="/v1/vectorize",code="200"}')).toBe(2);
    expect(value('dtesn_http_requests_total{route="/v1/vectorize",code="400"}')).toBe(1);
    for (const name of ['dtesn_batch_duration_seconds', 'dtesn_queue_depth', 'dtesn_health_score', 'dtesn_alerts_active']) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
    const head = await request(`${srv.url}/metrics`, { method: 'HEAD' });
    expect([head.status, head.body.length]).toEqual([200, 0]);
  });

  it('/healthz: 200, then 503 while a critical alert is active, 200 again once it resolved', async () => {
    let critical = false;
    const rule: AlertRule = { name: 'test-critical', severity: 'critical', direction: 'above', threshold: 0, value: () => (critical ? 1 : 0) };
    // The CPU threshold is out of reach: a busy test machine must not fire the built-in warning.
    const srv = await serve({
      pipeline: { maxWorkers: 1 },
      monitor: { intervalMs: 3_600_000, fireAfter: 1, resolveAfter: 1, rules: [rule], thresholds: { cpuUtilizationMax: 1e9 } },
    });
    const sample = async () => {
      await until(() => srv.monitor.sample() !== null, 'a monitor sample');
    };
    await sample();
    const ok = await request(`${srv.url}/healthz`);
    expect(ok.status).toBe(200);
    const body = json(ok) as Record<string, unknown>;
    expect(body.status).toBe('ok');
    expect(body.score).toBe(srv.monitor.health().score);
    expect(body.alerts).toEqual([]);
    expect(body.backend).toBe(srv.pipeline.metrics().backend);

    critical = true;
    await sample();
    const bad = await request(`${srv.url}/healthz`);
    expect(bad.status).toBe(503);
    const b = json(bad) as { status: string; alerts: Array<{ rule: string; severity: string; value: number }> };
    expect(b.status).toBe('critical');
    expect(b.alerts.map((a) => [a.rule, a.severity, a.value])).toEqual([['test-critical', 'critical', 1]]);

    critical = false;
    await sample();
    expect((await request(`${srv.url}/healthz`)).status).toBe(200);
  });

  it('/healthz: the built-in memory rule (critical) over a 1 MiB threshold gives 503', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 }, monitor: { intervalMs: 3_600_000, fireAfter: 1, thresholds: { memoryUsageMaxMb: 1 } } });
    await until(() => srv.monitor.sample() !== null, 'a monitor sample');
    const r = await request(`${srv.url}/healthz`);
    expect(r.status).toBe(503);
    const alerts = (json(r) as { alerts: Array<{ rule: string; severity: string }> }).alerts;
    expect(alerts.filter((a) => a.severity === 'critical').map((a) => a.rule)).toEqual(['memory']);
  });
});

// ------------------------------------------------------------------------------------------------

describe('draining and closing', () => {
  it('close(): in-flight requests finish with 200, new connections are refused, then the pipeline closes', async () => {
    const h = heldHandler();
    const srv = await startServer({ port: 0, pipeline: { maxWorkers: 1, handler: h.handler } });
    const inflight = post(srv, { texts: ['hello', 'hi'] });
    await h.entered;
    let closed = false;
    const closing = srv.close().then(() => {
      closed = true;
    });
    expect(srv.closing).toBe(true);
    // The listener closes once an event-loop turn has accepted nothing more (queued connections
    // are accepted first, and answered 503); then new connections are refused.
    await until(() => !srv.server.listening, 'the listener to close');
    expect((await connectError(srv.url))?.code).toBe('ECONNREFUSED');
    await new Promise((r) => setTimeout(r, 20));
    expect(closed).toBe(false); // still waiting for the request in flight
    h.release();
    const r = await inflight;
    expect([r.status, json(r)]).toEqual([200, { rows: 2, results: [5, 2] }]);
    expect(r.headers.connection).toBe('close');
    await closing;
    expect(srv.server.listening).toBe(false);
    expect(await rejection(srv.pipeline.submit('x'))).toBeInstanceOf(PipelineClosedError);
    expect(srv.monitor.running).toBe(false);
    await srv.close(); // idempotent
  });

  it('close() past drainTimeoutMs cuts the connections still open, and still closes the pipeline after its work', async () => {
    const h = heldHandler();
    const srv = await startServer({ port: 0, pipeline: { maxWorkers: 1, handler: h.handler }, drainTimeoutMs: 50 });
    const inflight = post(srv, { texts: ['cut'] });
    await h.entered;
    const closing = srv.close();
    expect((await rejection(inflight)).message).toBe('socket hang up');
    h.release(); // the pipeline finishes what it accepted before close() resolves
    await closing;
    expect(srv.server.listening).toBe(false);
    expect(await rejection(srv.pipeline.submit('x'))).toBeInstanceOf(PipelineClosedError);
    expect(srv.pipeline.metrics().processed).toBe(1);
  });

  it('503 for a request arriving on an open connection while draining', async () => {
    const h = heldHandler();
    const srv = await serve({ pipeline: { maxWorkers: 1, handler: h.handler } });
    const u = new URL(srv.url);
    const sock = net.connect(Number(u.port), u.hostname);
    await once(sock, 'connect');
    const received: Buffer[] = [];
    sock.on('data', (d: Buffer) => received.push(d));
    const body = JSON.stringify({ texts: ['abc'] });
    const req = `POST /v1/vectorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    sock.write(req);
    await h.entered;
    let requests = 1;
    srv.server.on('request', () => requests++);
    const closing = srv.close();
    sock.write(req); // pipelined behind the first, on the same connection
    await until(() => requests === 2, 'the second request to be read');
    expect(received).toEqual([]);
    h.release();
    await once(sock, 'end');
    await closing;
    // Two answers in order: the first finished, the second refused.
    const text = Buffer.concat(received).toString('utf8');
    const answers = [...text.matchAll(/HTTP\/1\.1 (\d{3}) [^\r]*\r\n([\s\S]*?)\r\n\r\n/g)].map((m) => {
      const len = Number(/content-length: (\d+)/i.exec(m[2]!)![1]);
      const at = m.index! + m[0].length;
      return [Number(m[1]), text.slice(at, at + len)];
    });
    expect(answers).toEqual([
      [200, JSON.stringify({ rows: 1, results: [3] })],
      [503, JSON.stringify({ error: 'the server is shutting down' })],
    ]);
  });

  it('503 when the (caller-owned) pipeline is closed; close() leaves it to its owner', async () => {
    const p = createPipeline({ maxWorkers: 1 });
    external.push(p);
    const srv = await serve({ pipeline: p });
    expect(srv.pipeline).toBe(p);
    await p.close();
    const r = await post(srv, { texts: ['a'] });
    expect([r.status, json(r)]).toEqual([503, { error: 'the pipeline is closed and accepts no new work' }]);

    const q = createPipeline({ maxWorkers: 1 });
    external.push(q);
    const s2 = await startServer({ port: 0, pipeline: q });
    await s2.close();
    const b = (await q.submit(['ab'])) as VectorBatch<Dtype>;
    expect([b.rows, b.width]).toEqual([1, 2]);
  });

  it('startServer refuses bad options and a port in use (and closes the pipeline it made)', async () => {
    expect((await rejection(startServer({ port: 0, foo: 1 } as ServerOptions))).message).toBe("unknown server option 'foo'");
    expect((await rejection(startServer({ port: 70000 }))).message).toBe('options.port must be an integer in [0, 65535], got 70000');
    expect((await rejection(startServer({ port: 0, bodyLimit: -1 }))).message).toBe('options.bodyLimit must be an integer in [0, 9007199254740991], got -1');
    expect((await rejection(startServer({ port: 0, pipeline: { maxWorkers: 0 } }))).message).toBe('config.maxWorkers must be an integer in [1, 64], got 0');
    const srv = await serve({ pipeline: { maxWorkers: 1 } });
    const p = createPipeline({ maxWorkers: 1 });
    external.push(p);
    const e = (await rejection(startServer({ port: srv.address.port, pipeline: p }))) as NodeJS.ErrnoException;
    expect(e.code).toBe('EADDRINUSE');
    expect(((await p.submit(['ok'])) as VectorBatch<Dtype>).rows).toBe(1); // not closed: the caller owns it
  });

  it('the warm-up runs before it listens, through a pipeline of its own: the caller’s handler and pipeline are never called', async () => {
    expect((await rejection(startServer({ port: 0, warmup: -1 }))).message).toBe('options.warmup must be an integer in [0, 1000000], got -1');
    let calls = 0;
    const p = createPipeline({ maxWorkers: 1, handler: async (b) => (calls++, new Array(b.rows).fill('model')) });
    external.push(p);
    const srv = await serve({ pipeline: p, warmup: 300 });
    expect(calls).toBe(0);
    expect(p.metrics()).toMatchObject({ accepted: 0, processed: 0 });
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    expect(text).not.toMatch(/dtesn_http_requests_total\{route="\/v1\/vectorize"/); // its own counters start at zero
    const r = await request(`${srv.url}/v1/vectorize`, { method: 'POST', body: JSON.stringify({ texts: ['ab', 'c'] }) });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString())).toEqual({ rows: 2, results: ['model', 'model'] });
    expect(calls).toBe(1);
    // The private service is gone: nothing else listens or runs (a second server starts the same way).
    const srv2 = await serve({ pipeline: { maxWorkers: 1 }, warmup: 300 });
    expect(srv2.pipeline.metrics().accepted).toBe(0);
  });

  it('closeOnSignals adds and removes its listeners', async () => {
    const srv = await serve({ pipeline: { maxWorkers: 1 } });
    const before = [process.listenerCount('SIGTERM'), process.listenerCount('SIGINT'), process.listenerCount('SIGHUP')];
    const off = closeOnSignals(srv, { signals: ['SIGHUP'], exit: false });
    expect(process.listenerCount('SIGHUP')).toBe(before[2]! + 1);
    expect(process.listenerCount('SIGTERM')).toBe(before[0]);
    off();
    expect([process.listenerCount('SIGTERM'), process.listenerCount('SIGINT'), process.listenerCount('SIGHUP')]).toEqual(before);
    const off2 = closeOnSignals(srv, { exit: false });
    expect([process.listenerCount('SIGTERM'), process.listenerCount('SIGINT')]).toEqual([before[0]! + 1, before[1]! + 1]);
    off2();
    // Emitting the event (not a real signal: the test runner's own listeners are left alone)
    // closes the server; exit: false keeps this process.
    const seen: string[] = [];
    const off3 = closeOnSignals(srv, { signals: ['SIGUSR2'], exit: false, onSignal: (s) => seen.push(s) });
    process.emit('SIGUSR2', 'SIGUSR2');
    expect(seen).toEqual(['SIGUSR2']);
    expect(srv.closing).toBe(true);
    await srv.close();
    off3();
  });

  it('SIGTERM in a real process: the request in flight completes, then the process exits 0', async () => {
    const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'server', 'server.js');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dtesn-serve-'));
    const script = path.join(dir, 'serve.mjs');
    // The handler holds the request until this process has received SIGTERM: the answer can only
    // come from the drain.
    writeFileSync(
      script,
      `import { closeOnSignals, startServer } from ${JSON.stringify(pathToFileURL(dist).href)};
let term;
const sigterm = new Promise((r) => { term = r; });
process.once('SIGTERM', () => term());
const srv = await startServer({ port: 0, pipeline: { maxWorkers: 1, handler: async (b) => {
  process.stdout.write('handler\\n');
  await sigterm;
  return Array.from(b.lengths);
} } });
closeOnSignals(srv);
process.on('exit', (code) => process.stdout.write('exit ' + code + '\\n'));
process.stdout.write('listening ' + srv.url + '\\n');
`,
    );
    try {
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = once(child, 'close') as Promise<[number | null, string | null]>;
      const line = async (re: RegExp): Promise<RegExpExecArray> => {
        await until(() => re.test(out) || child.exitCode !== null, `${re} from the child`);
        const m = re.exec(out);
        if (!m) expect.fail(`child exited early: ${out} ${err}`);
        return m;
      };
      const url = (await line(/listening (\S+)\n/))[1]!;
      const response = request(`${url}/v1/vectorize`, { method: 'POST', body: JSON.stringify({ texts: ['hello'] }) });
      await line(/handler\n/);
      child.kill('SIGTERM');
      const r = await response;
      expect([r.status, json(r)]).toEqual([200, { rows: 1, results: [5] }]);
      // Refused once the drain has accepted what was queued (a request before that gets 503).
      let refused: NodeJS.ErrnoException | null = null;
      for (let i = 0; i < 200 && refused === null; i++) {
        refused = await connectError(url);
        if (refused === null) await new Promise((res) => setTimeout(res, 10));
      }
      expect(refused?.code).toBe('ECONNREFUSED');
      const [code, signal] = await exited;
      expect({ code, signal, err }).toEqual({ code: 0, signal: null, err: '' });
      expect(out).toBe(`listening ${url}\nhandler\nexit 0\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
