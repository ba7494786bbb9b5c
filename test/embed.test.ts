/**
 * The service embedded in someone else's server: `createRequestListener` on a plain node:http
 * server (with a prefix), the fastify plugin, and the main entry point staying light (it loads no
 * HTTP service, prom-client or OpenTelemetry code).
 */
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import dtesnFastify from '../src/server/fastify.js';
import { vectorize } from '../src/index.js';
import { createRequestListener, type RequestListener } from '../src/server/listener.js';
import { createPipeline } from '../src/pipeline/pipeline.js';
import type { Dtype, VectorBatch } from '../src/vectorize/types.js';
import { gate, rejection } from './fixtures/util.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** What the service answers for `texts`: the core's batch as rows of plain numbers. */
function expected(texts: string[]): object {
  const b = vectorize(texts);
  const rowsOf = (a: ArrayLike<number>) => Array.from({ length: b.rows }, (_, r) => Array.from(Array.prototype.slice.call(a, r * b.width, (r + 1) * b.width) as number[]));
  return { rows: b.rows, width: b.width, ids: rowsOf(b.ids), attentionMask: rowsOf(b.attentionMask), lengths: Array.from(b.lengths) };
}

async function listen(listener: RequestListener): Promise<{ server: Server; url: string }> {
  const server = createServer(listener);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  cleanups.push(() => listener.close());
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const post = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('createRequestListener', () => {
  it('serves dtesn serve’s routes, answers and errors on a server of one’s own, under a prefix', async () => {
    const listener = createRequestListener({ prefix: '/dtesn', pipeline: { maxWorkers: 1 } });
    const { url } = await listen(listener);
    const ok = await post(`${url}/dtesn/v1/vectorize`, { texts: ['hello', 'wörld 😀'] });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual(expected(['hello', 'wörld 😀']));
    const bad = await post(`${url}/dtesn/v1/vectorize`, { texts: ['a'], options: { maxLength: 0 } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toBe('options.maxLength must be an integer >= 1, got 0');
    const outside = await post(`${url}/v1/vectorize`, { texts: ['a'] });
    expect(outside.status).toBe(404);
    expect(await outside.json()).toEqual({ error: 'no route "/v1/vectorize": try POST /dtesn/v1/vectorize, GET /dtesn/metrics, GET /dtesn/healthz' });
    expect((await fetch(`${url}/dtesn/v1/vectorize`)).status).toBe(405);
    const metrics = await (await fetch(`${url}/dtesn/metrics`)).text();
    expect(metrics).toMatch(/^dtesn_http_requests_total\{route="\/v1\/vectorize",code="200"\} 1$/m);
    expect(metrics).toMatch(/^dtesn_http_requests_total\{route="\/v1\/vectorize",code="400"\} 1$/m);
    expect((await fetch(`${url}/dtesn/healthz`)).status).toBe(200);
    expect(listener.pipeline.metrics().processed).toBe(2);
  });

  it('close(): requests in flight finish, new ones get 503, then the pipeline it made is closed', async () => {
    const g = gate();
    const entered = gate();
    const listener = createRequestListener({
      pipeline: {
        maxWorkers: 1,
        handler: async (b) => {
          entered.open();
          await g.wait;
          return new Array(b.rows).fill('done');
        },
      },
    });
    const { url } = await listen(listener);
    const inFlight = post(`${url}/v1/vectorize`, { texts: ['a'] });
    await entered.wait;
    expect(listener.inFlight).toBe(1);
    const closed = listener.close();
    expect(listener.closing).toBe(true);
    const late = await post(`${url}/v1/vectorize`, { texts: ['b'] });
    expect(late.status).toBe(503);
    expect(await late.json()).toEqual({ error: 'the server is shutting down' });
    g.open();
    const r = await inFlight;
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ rows: 1, results: ['done'] });
    await closed;
    expect(listener.close()).toBe(closed);
    expect((await rejection(listener.pipeline.submit('x'))).name).toBe('PipelineClosedError');
  });

  it('a registry of its own carries prom-client’s process and Node.js metrics; a registry given is left as it is', async () => {
    const own = createRequestListener({ pipeline: { maxWorkers: 1 } });
    cleanups.push(() => own.close());
    const text = await own.registry.metrics();
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'dtesn_items_processed_total']) {
      expect(text, name).toMatch(new RegExp(`^${name}[ {]`, 'm'));
    }
    const registry = new Registry();
    const given = createRequestListener({ pipeline: { maxWorkers: 1 }, registry });
    expect(await registry.metrics()).not.toMatch(/^process_cpu_user_seconds_total/m);
    await given.close();
    expect((await registry.metrics()).trim()).toBe(''); // everything it added is removed
  });

  it('leaves a pipeline it was given open, and refuses bad options by name', async () => {
    const p = createPipeline({ maxWorkers: 1 });
    cleanups.push(() => p.close());
    const listener = createRequestListener({ pipeline: p });
    await listener.close();
    expect(((await p.submit('ok')) as VectorBatch<Dtype>).rows).toBe(1);
    expect(() => createRequestListener({ port: 1 } as never)).toThrow(new TypeError("unknown listener option 'port'"));
    expect(() => createRequestListener({ prefix: 'x' })).toThrow(TypeError);
    expect(() => createRequestListener({ prefix: '/x/' })).toThrow(/options.prefix must be '' or a path like '\/dtesn'/);
    expect(() => createRequestListener({ pipeline: 3 as never })).toThrow(new TypeError('options.pipeline must be a pipeline or a pipeline config, got number'));
  });
});

describe('the fastify plugin', () => {
  it('registers the routes under its prefix with the service’s own answers, leaves the app’s parsers alone, and closes with the app', async () => {
    const app = Fastify();
    app.post('/echo', async (request) => ({ got: request.body })); // the app's JSON parser still works
    await app.register(dtesnFastify, { prefix: '/dtesn', pipeline: { maxWorkers: 1 }, warmup: 50 });
    await app.listen({ port: 0, host: '127.0.0.1' });
    let closed = false;
    cleanups.push(async () => {
      if (!closed) await app.close();
    });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const ok = await post(`${url}/dtesn/v1/vectorize`, { texts: ['hello', 'wörld 😀'] });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-dtesn-width')).toBe(String(vectorize(['hello', 'wörld 😀']).width));
    expect(await ok.json()).toEqual(expected(['hello', 'wörld 😀']));
    const bad = await fetch(`${url}/dtesn/v1/vectorize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"texts": [1]}' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'texts[0] must be a string, got number' });
    const notJson = await fetch(`${url}/dtesn/v1/vectorize`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'nope' });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: string }).error).toMatch(/^invalid JSON: /);
    expect((await fetch(`${url}/dtesn/v1/vectorize`)).status).toBe(405);
    expect(await (await fetch(`${url}/dtesn/metrics`)).text()).toMatch(/^dtesn_http_requests_total\{route="\/v1\/vectorize",code="200"\} 1$/m);
    expect((await fetch(`${url}/dtesn/healthz`)).status).toBe(200);
    const echo = await post(`${url}/echo`, { a: 1 });
    expect(await echo.json()).toEqual({ got: { a: 1 } });
    await app.close();
    closed = true;
  });

  it('refuses unknown options by name', async () => {
    const app = Fastify();
    cleanups.push(() => app.close());
    await expect(app.register(dtesnFastify, { port: 1 } as never)).rejects.toThrow("unknown dtesn plugin option 'port'");
  });
});

describe('the main entry point', () => {
  it('loads no HTTP service, prom-client or OpenTelemetry code (they are subpath entries)', () => {
    const dist = path.join(here, '..', 'dist', 'index.js');
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { createRequire } from 'node:module';
         const m = await import(${JSON.stringify(dist)});
         const p = m.createPipeline({ maxWorkers: 1 }); await p.submit('a'); await p.close();
         const cjs = Object.keys(createRequire(import.meta.url).cache);
         console.log(JSON.stringify({
           exports: Object.keys(m).filter((k) => /server|metrics|otel|listener/i.test(k)),
           cjs: cjs.filter((f) => /prom-client|opentelemetry|piscina/.test(f)).length,
           http: process.moduleLoadList.some((x) => /^NativeModule (http|_http_server)$/.test(x)),
         }));`,
      ],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(out)).toEqual({ exports: [], cjs: 0, http: false });
  });
});
