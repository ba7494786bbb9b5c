/**
 * `dtesn serve` under bad input, connection abuse and shutdown (issue 16, probes 1-3), over raw
 * sockets where HTTP clients would hide what goes over the wire: every bad request gets a clear
 * 4xx naming the problem and the server keeps answering others; idle, slow and silent connections
 * time out (headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs, idleTimeoutMs set small here);
 * clients that vanish leave nothing in flight; SIGTERM with hundreds of requests in flight gives
 * each its answer or a clean 503, and a second SIGINT exits at once.
 */
import { spawn } from 'node:child_process';
import { type Socket, connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vectorize } from '../src/index.js';
import { type DtesnServer, startServer } from '../src/server/server.js';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

interface Exchange {
  /** Everything the server sent, as latin1. */
  text: string;
  /** Whether the server closed the connection (else the wait ran out). */
  closed: boolean;
  ms: number;
}

/** Sends `writes` (at their delays, ms) on a fresh connection, collects the answer until the server closes it or `waitMs`. */
function exchange(port: number, writes: Array<[number, string | Buffer]>, waitMs: number): Promise<Exchange> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const c = connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      c.destroy();
      resolve({ text, closed, ms: performance.now() - t0 });
    };
    c.on('data', (d) => (text += d.toString('latin1')));
    c.on('error', () => {});
    c.on('close', () => finish(true));
    for (const [at, data] of writes) setTimeout(() => c.destroyed || c.write(data), at);
    setTimeout(() => finish(false), waitMs);
  });
}

const status = (text: string): string => text.split('\r\n')[0] ?? '';
const errorOf = (text: string): string => (JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: string }).error;
/** A raw POST; `Connection: close` unless `keepAlive` (so that an exchange ends with its answer). */
const post = (body: string | Buffer, head = 'POST /v1/vectorize HTTP/1.1', extra = '', keepAlive = false): string =>
  `${head}\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${keepAlive ? '' : 'Connection: close\r\n'}${extra}\r\n${body}`;

/** The server's open connections. */
const connections = (s: DtesnServer): Promise<number> => new Promise((res, rej) => s.server.getConnections((e, n) => (e ? rej(e) : res(n))));

async function vectorizeOk(s: DtesnServer, texts: string[]): Promise<void> {
  const r = await fetch(`${s.url}/v1/vectorize`, { method: 'POST', body: JSON.stringify({ texts }), headers: { 'content-type': 'application/json' } });
  expect(r.status).toBe(200);
  const b = vectorize(texts);
  const rows = (k: 'ids' | 'attentionMask') => Array.from({ length: b.rows }, (_, i) => Array.from(b[k].subarray(i * b.width, (i + 1) * b.width)));
  expect(await r.json()).toEqual({ rows: b.rows, width: b.width, ids: rows('ids'), attentionMask: rows('attentionMask'), lengths: Array.from(b.lengths) });
}

describe('bad input (probe 1)', () => {
  let s: DtesnServer;
  beforeAll(async () => {
    s = await startServer({ port: 0, warmup: 0, pipeline: { maxWorkers: 1 }, headersTimeoutMs: 300, requestTimeoutMs: 600 });
  });
  afterAll(() => s.close());

  it('the absolute form of a request target (what proxies send) reaches its route', async () => {
    const r = await exchange(s.address.port, [[0, post('{"texts":["hi"]}', `POST http://127.0.0.1:${s.address.port}/v1/vectorize HTTP/1.1`)]], 2000);
    expect(status(r.text)).toBe('HTTP/1.1 200 OK');
    expect(r.text).toContain('{"rows":1,"width":2,"ids":[[104,105]]');
    const q = await exchange(s.address.port, [[0, `GET http://x/metrics?y=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]], 2000);
    expect(status(q.text)).toBe('HTTP/1.1 200 OK');
  });

  it('framing: a Content-Length that lies, both Content-Length and chunked, a bad one; a header flood', async () => {
    const port = s.address.port;
    // Claims more than it sends: 408 once requestTimeoutMs has passed, and closed.
    const more = await exchange(port, [[0, 'POST /v1/vectorize HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"texts":["a"]}']], 5000);
    expect({ status: status(more.text), closed: more.closed }).toEqual({ status: 'HTTP/1.1 408 Request Timeout', closed: true });
    // Claims less: the request is its first 5 bytes, the rest garbage that node:http refuses: 400, closed.
    const less = await exchange(port, [[0, 'POST /v1/vectorize HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{"texts":["a"]}']], 2000);
    expect({ status: status(less.text), closed: less.closed }).toEqual({ status: 'HTTP/1.1 400 Bad Request', closed: true });
    for (const head of ['Content-Length: 5\r\nTransfer-Encoding: chunked', 'Content-Length: abc', 'Content-Length: 5\r\nContent-Length: 6']) {
      const r = await exchange(port, [[0, `POST /v1/vectorize HTTP/1.1\r\nHost: x\r\n${head}\r\n\r\nhello`]], 2000);
      expect({ head, status: status(r.text), closed: r.closed }).toEqual({ head, status: 'HTTP/1.1 400 Bad Request', closed: true });
    }
    const flood = await exchange(port, [[0, `GET /healthz HTTP/1.1\r\nHost: x\r\n${'X-Flood: yes\r\n'.repeat(5000)}\r\n`]], 2000);
    expect({ status: status(flood.text), closed: flood.closed }).toEqual({ status: 'HTTP/1.1 431 Request Header Fields Too Large', closed: true });
    await vectorizeOk(s, ['still here']);
  });

  it('JSON nested a million deep, 100,000 texts, a 50 MB text, options asking for gigabytes, odd Accept headers, odd methods and paths', async () => {
    const port = s.address.port;
    const ask = async (raw: string, ms = 20_000) => {
      const r = await exchange(port, [[0, raw]], ms);
      return { status: status(r.text), text: r.text };
    };
    const deep = await ask(post(`{"texts":["a"],"options":{"vocab":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}}`));
    expect([deep.status, errorOf(deep.text)]).toEqual(['HTTP/1.1 400 Bad Request', 'options.vocab[0] must be a single code point, got Array']);
    const top = await ask(post(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`));
    expect([top.status, errorOf(top.text)]).toEqual(['HTTP/1.1 400 Bad Request', 'the body must be a JSON object {"texts": [...], "options": {...}}, got array']);
    // 100,000 texts: every row answered (the last one checked against the core).
    const texts = Array.from({ length: 100_000 }, (_, i) => `text ${i}`);
    const many = await fetch(`${s.url}/v1/vectorize`, { method: 'POST', body: JSON.stringify({ texts }) });
    const body = (await many.json()) as { rows: number; ids: number[][] };
    expect([many.status, body.rows]).toEqual([200, 100_000]);
    expect(body.ids[99_999]).toEqual(Array.from(vectorize(['text 99999'], { padding: 'max-length', maxLength: 10 }).ids));
    // One 50 MB text: over the default 8 MiB body limit, named.
    const huge = await fetch(`${s.url}/v1/vectorize`, { method: 'POST', body: JSON.stringify({ texts: ['é'.repeat(25_000_000)] }) });
    expect([huge.status, ((await huge.json()) as { error: string }).error]).toEqual([413, 'the body of 50000014 bytes is over the limit of 8388608 bytes']);
    const giga = await ask(post(JSON.stringify({ texts: ['a', 'b'], options: { maxLength: 2e9, padding: 'max-length' } })));
    expect([giga.status, errorOf(giga.text)]).toEqual([
      'HTTP/1.1 400 Bad Request',
      "the result would hold up to 4000000000 elements (rows x width), over this server's maxResultElements of 16777216: send fewer texts or a smaller maxLength",
    ]);
    // An Accept header of 300 ranges with a bad q: JSON, the default.
    const accept = await ask(post('{"texts":["a"]}', undefined, `Accept: ${'application/x-npy;q=0.5,'.repeat(300)}*/*;q=abc\r\n`));
    expect(accept.status).toBe('HTTP/1.1 200 OK');
    expect(accept.text).toContain('content-type: application/json');
    for (const [line, want] of [
      ['TRACE /v1/vectorize HTTP/1.1', 'HTTP/1.1 405 Method Not Allowed'],
      ['DELETE /metrics HTTP/1.1', 'HTTP/1.1 405 Method Not Allowed'],
      ['OPTIONS * HTTP/1.1', 'HTTP/1.1 404 Not Found'],
      ['GET /v1/vectorize/../metrics HTTP/1.1', 'HTTP/1.1 404 Not Found'],
      ['GET //metrics HTTP/1.1', 'HTTP/1.1 404 Not Found'],
      ['BREW /coffee HTTP/1.1', 'HTTP/1.1 400 Bad Request'],
    ] as const) {
      const r = await ask(`${line}\r\nHost: x\r\nConnection: close\r\n\r\n`, 2000);
      expect({ line, status: r.status }).toEqual({ line, status: want });
    }
    await vectorizeOk(s, ['après tout', '😀']);
  });
});

describe('connection abuse (probe 2)', () => {
  let s: DtesnServer;
  beforeAll(async () => {
    s = await startServer({
      port: 0, warmup: 0, pipeline: { maxWorkers: 1 }, bodyLimit: 64 << 20,
      // The idle timeout past the others (their check runs every 400 ms here), or it could cut a
      // silent connection before its 408.
      headersTimeoutMs: 400, requestTimeoutMs: 800, keepAliveTimeoutMs: 300, idleTimeoutMs: 3000,
    });
  });
  afterAll(() => s.close());

  it('silent, slowloris (headers or body a byte at a time) and stalled connections get 408 and close; others keep being served', async () => {
    const port = s.address.port;
    const slow = (prefix: string, rest: string, every: number): Array<[number, string]> => [[0, prefix], ...[...rest].map((ch, i) => [(i + 1) * every, ch] as [number, string])];
    const runs = Promise.all([
      exchange(port, [], 5000),
      exchange(port, slow('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', 'a'.repeat(100), 50), 5000),
      exchange(port, slow('POST /v1/vectorize HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n', '{"texts":["a"]}', 100), 5000),
      exchange(port, [[0, 'GET /heal']], 5000),
    ]);
    await vectorizeOk(s, ['served meanwhile']);
    const [silent, slowHeaders, slowBody, partial] = await runs;
    for (const [name, r, limit] of [['silent', silent, 400], ['slow headers', slowHeaders, 400], ['slow body', slowBody, 800], ['partial line', partial, 400]] as const) {
      expect({ name, status: status(r.text), closed: r.closed }).toEqual({ name, status: 'HTTP/1.1 408 Request Timeout', closed: true });
      // node:http checks the timeouts once a second at most (connectionsCheckingInterval).
      expect(r.ms, name).toBeGreaterThanOrEqual(limit - 20);
      expect(r.ms, name).toBeLessThan(limit + 1500);
    }
  });

  it('2,000 idle keep-alive connections close after keepAliveTimeoutMs; other clients are served meanwhile', async () => {
    const port = s.address.port;
    const idle: Socket[] = [];
    let answered = 0;
    for (let i = 0; i < 2000; i++) {
      const c = connect(port, '127.0.0.1');
      c.on('error', () => {});
      c.on('data', (d) => (answered += d.toString().startsWith('HTTP/1.1 200') ? 1 : 0));
      c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      idle.push(c);
    }
    await vectorizeOk(s, ['while 2000 wait']);
    for (let i = 0; i < 400 && answered < 2000; i++) await new Promise((r) => setTimeout(r, 10));
    expect(answered).toBe(2000);
    await vectorizeOk(s, ['and after']);
    for (let i = 0; i < 500 && (await connections(s)) > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await connections(s)).toBe(0);
    for (const c of idle) c.destroy();
  });

  it('clients that vanish mid-request or mid-response, or stop reading, leave nothing behind; pipelined requests are answered in order', async () => {
    const port = s.address.port;
    const big = JSON.stringify({ texts: Array.from({ length: 20_000 }, (_, i) => `text ${i} `.repeat(20)), options: { maxLength: 256, padding: 'max-length' } });
    // Mid-request: half a body, then gone.
    const half = connect(port, '127.0.0.1');
    half.on('error', () => {});
    half.write('POST /v1/vectorize HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"texts":["a');
    // Mid-response: 100 KB of a ~30 MB answer, then gone.
    const mid = connect(port, '127.0.0.1');
    let got = 0;
    const midGone = new Promise<void>((r) => mid.on('close', () => r()));
    mid.on('error', () => {});
    mid.on('data', (d) => {
      got += d.length;
      if (got > 100_000) mid.destroy();
    });
    mid.write(post(big));
    // Stops reading: the answer fills the socket buffers, then nothing moves: closed after idleTimeoutMs.
    const stalled = connect(port, '127.0.0.1');
    stalled.pause();
    stalled.on('error', () => {});
    stalled.write(post(big));
    setTimeout(() => half.destroy(), 50);
    await midGone;
    // Pipelining: three requests in one write, three answers in order.
    const keep = (b: string) => post(b, undefined, undefined, true);
    const piped = await exchange(port, [[0, keep('{"texts":["a"]}') + keep('{"texts":["bb"]}') + post('{"texts":["ccc"]}')]], 2000);
    expect(piped.closed).toBe(true);
    expect(piped.text.match(/"ids":\[\[[\d,]+\]\]/g)).toEqual(['"ids":[[97]]', '"ids":[[98,98]]', '"ids":[[99,99,99]]']);
    // The stalled one goes after idleTimeoutMs (3 s) without traffic.
    for (let i = 0; i < 1000 && (await connections(s)) > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await connections(s)).toBe(0);
    stalled.destroy();
    const m = s.pipeline.metrics();
    expect({ pending: m.pending, queueDepth: m.queueDepth }).toEqual({ pending: 0, queueDepth: 0 });
    expect(m.accepted).toBe(m.processed + m.failed + m.aborted);
    await vectorizeOk(s, ['fine']);
  });
});

describe('shutdown (probe 3)', () => {
  /** `dtesn serve` in a child, its URL, and what it wrote to stderr. */
  async function serve(): Promise<{ url: string; child: ReturnType<typeof spawn>; exited: Promise<[number | null, string | null]>; stderr: () => string }> {
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--workers', '1', '--warmup', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const exited = new Promise<[number | null, string | null]>((r) => child.on('exit', (c, sig) => r([c, sig])));
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /listening on (\S+)/.exec(err);
        if (m) resolve(m[1]!);
      });
      child.on('exit', () => reject(new Error(`dtesn serve exited: ${err}`)));
    });
    return { url, child, exited, stderr: () => err };
  }

  /** `n` requests, each on its own connection, all written before it resolves `sent`. */
  function flood(url: string, n: number): { sent: Promise<void>; outcomes: Promise<string[]> } {
    const { port } = new URL(url);
    const body = JSON.stringify({ texts: Array.from({ length: 50 }, (_, i) => `a text number ${i} `.repeat(8)) });
    let written = 0;
    let markSent: () => void;
    const sent = new Promise<void>((r) => (markSent = r));
    const outcomes = Promise.all(
      Array.from({ length: n }, () =>
        new Promise<string>((resolve) => {
          const c = connect(Number(port), '127.0.0.1');
          let text = '';
          c.on('data', (d) => (text += d.toString('latin1')));
          c.on('error', (e: NodeJS.ErrnoException) => (text += `[${e.code}]`));
          c.on('close', () => {
            const st = status(text);
            if (st === 'HTTP/1.1 200 OK') resolve(text.includes('"rows":50,') ? '200' : 'bad 200');
            else if (st === 'HTTP/1.1 503 Service Unavailable') resolve(`503 ${errorOf(text)}`);
            else resolve(text === '' ? 'cut' : `other: ${text.slice(0, 80)}`);
          });
          c.write(post(body).replace('\r\nHost: x', '\r\nHost: x\r\nConnection: close'), () => {
            if (++written === n) markSent!();
          });
        }),
      ),
    );
    return { sent, outcomes };
  }

  it('SIGTERM with 500 requests in flight: each gets its answer or a clean 503; exit 0', { timeout: 60_000 }, async () => {
    const srv = await serve();
    const { sent, outcomes } = flood(srv.url, 500);
    await sent;
    srv.child.kill('SIGTERM');
    const got = await outcomes;
    const counts = new Map<string, number>();
    for (const o of got) counts.set(o, (counts.get(o) ?? 0) + 1);
    expect([...counts.keys()].filter((k) => k !== '200' && k !== '503 the server is shutting down')).toEqual([]);
    expect(counts.get('200')).toBeGreaterThan(0);
    expect(await srv.exited).toEqual([0, null]);
    expect(srv.stderr()).toMatch(/dtesn serve: SIGTERM: draining\n$/);
  });

  it('SIGINT twice: the second exits at once with 130', { timeout: 60_000 }, async () => {
    const srv = await serve();
    // A request that stays in flight (half its body): the drain waits for it, so the second
    // signal always comes during the drain.
    const held = connect(Number(new URL(srv.url).port), '127.0.0.1');
    held.on('error', () => {});
    held.write('POST /v1/vectorize HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"texts":');
    const { sent, outcomes } = flood(srv.url, 300);
    await sent;
    srv.child.kill('SIGINT');
    for (let i = 0; i < 1000 && !srv.stderr().includes('SIGINT: draining'); i++) await new Promise((r) => setTimeout(r, 5));
    srv.child.kill('SIGINT');
    expect(await srv.exited).toEqual([130, null]);
    held.destroy();
    expect(srv.stderr()).toMatch(/SIGINT: draining\n.*SIGINT: draining\n$/s);
    const got = await outcomes;
    // Those the drain had not finished are cut (no answer): that is what a second signal asks for.
    const unexpected = got.filter((o) => o !== '200' && o !== '503 the server is shutting down' && o !== 'cut' && o !== 'other: [ECONNRESET]');
    expect(unexpected).toEqual([]);
  });
});
