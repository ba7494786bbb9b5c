/**
 * An open-loop HTTP/1.1 load generator for the serve bench: requests are sent at a constant rate
 * on their schedule, whatever the answers, and each latency counts from the moment its request
 * was due (coordinated omission corrected: a stalled server cannot slow the sender down and hide
 * its queue, as closed-loop tools such as autocannon do). One request at a time per keep-alive
 * connection (no pipelining); a due request takes an idle connection, opens a new one (up to
 * `maxConnections`), or waits for one (its wait counts). Raw sockets and a minimal response
 * parser, so the client costs the shared cores as little as possible.
 *
 * Run in its own process (the serve bench forks it): `runLoad()` below, or the CLI for a look:
 *   node --import tsx bench/http-load.ts --url http://127.0.0.1:8080/v1/vectorize --rate 2000 --seconds 3 --body '{"texts":["a"]}'
 */
import { connect, type Socket } from 'node:net';

export interface LoadOptions {
  host: string;
  port: number;
  path: string;
  /** Request bodies (JSON), cycled. */
  bodies: readonly string[];
  rate: number;
  seconds: number;
  /** [1024] */
  maxConnections?: number;
  /** [5000] how long to wait for the answers still out after the schedule ends, ms. */
  drainMs?: number;
  /** [0] offset of the schedule's start from now, ms (lets a server start first). */
  startDelayMs?: number;
  /** [0] keep-alive connections opened (and left idle) before the schedule starts, within startDelayMs. */
  preconnect?: number;
}

export interface LoadResult {
  rate: number;
  seconds: number;
  sent: number;
  /** Answers by status code. */
  status: Record<string, number>;
  /** Connection errors and answers not received by the drain deadline. */
  errors: number;
  unfinished: number;
  connections: number;
  /** Latency from the due time, ms; a request without a 200 counts as infinite. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** p99 over each second of the schedule (cold start, steady state). */
  p99BySecond: number[];
  /** 200s per second over the schedule. */
  achieved: number;
}

interface Conn {
  socket: Socket;
  busy: boolean;
  /** The request in flight: its index. */
  req: number;
  buf: Buffer;
  need: number;
  headerEnd: number;
  status: number;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const CRLF2 = Buffer.from('\r\n\r\n');

export function runLoad(o: LoadOptions): Promise<LoadResult> {
  const maxConnections = o.maxConnections ?? 1024;
  const drainMs = o.drainMs ?? 5000;
  const n = Math.max(1, Math.round(o.rate * o.seconds));
  const payloads = o.bodies.map((b) => {
    const body = Buffer.from(b);
    const head = `POST ${o.path} HTTP/1.1\r\nhost: ${o.host}:${o.port}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`;
    return Buffer.concat([Buffer.from(head), body]);
  });
  const lat = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
  const statusCount: Record<string, number> = {};
  let errors = 0;
  let settled = 0;
  let opened = 0;
  const idle: Conn[] = [];
  const waiting: number[] = []; // due requests without a connection
  let waitHead = 0;
  const periodMs = 1000 / o.rate;
  const start = performance.now() + (o.startDelayMs ?? 0);
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const settle = () => {
    if (++settled === n) finish();
  };

  const sentAt = process.env.DTESN_LOAD_TRACE ? new Float64Array(n) : null;
  const send = (c: Conn, k: number) => {
    if (sentAt) sentAt[k] = performance.now() - start;
    c.busy = true;
    c.req = k;
    c.need = -1;
    c.headerEnd = -1;
    c.buf = Buffer.alloc(0);
    c.socket.write(payloads[k % payloads.length]!);
  };
  const next = (c: Conn) => {
    c.busy = false;
    if (waitHead < waiting.length) send(c, waiting[waitHead++]!);
    else idle.push(c);
  };
  const open = (first: number) => {
    opened++;
    const c = attach(connect({ host: o.host, port: o.port, noDelay: true }));
    c.socket.once('connect', () => send(c, first));
  };
  function attach(socket: Socket): Conn {
    const c: Conn = { socket, busy: false, req: -1, buf: Buffer.alloc(0), need: -1, headerEnd: -1, status: 0 };
    socket.on('data', (d: Buffer) => {
      c.buf = c.buf.length === 0 ? d : Buffer.concat([c.buf, d]);
      for (;;) {
        if (c.headerEnd < 0) {
          const at = c.buf.indexOf(CRLF2);
          if (at < 0) return;
          c.headerEnd = at + 4;
          const head = c.buf.subarray(0, at).toString('latin1');
          c.status = Number(head.slice(9, 12));
          const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
          c.need = c.headerEnd + (m ? Number(m[1]) : 0);
        }
        if (c.buf.length < c.need) return;
        const k = c.req;
        const rest = c.buf.subarray(c.need);
        statusCount[c.status] = (statusCount[c.status] ?? 0) + 1;
        if (c.status === 200) lat[k] = performance.now() - start - k * periodMs;
        settle();
        c.buf = rest;
        c.headerEnd = -1;
        next(c);
        if (rest.length === 0 || !c.busy) return;
      }
    });
    let dead = false;
    const fail = () => {
      if (dead) return;
      dead = true;
      if (c.busy) {
        c.busy = false;
        errors++;
        settle();
      }
      const i = idle.indexOf(c);
      if (i >= 0) idle.splice(i, 1);
      opened--;
    };
    socket.on('error', fail);
    socket.on('close', fail);
    return c;
  }

  for (let k = 0; k < (o.preconnect ?? 0); k++) {
    opened++;
    const c = attach(connect({ host: o.host, port: o.port, noDelay: true }));
    c.socket.once('connect', () => idle.push(c));
  }

  let i = 0;
  const tick = () => {
    const now = performance.now() - start;
    while (i < n && i * periodMs <= now) {
      const k = i++;
      const c = idle.pop();
      if (c) send(c, k);
      else if (opened < maxConnections) open(k);
      else waiting.push(k);
    }
    if (i < n) {
      const wait = i * periodMs - (performance.now() - start);
      if (wait >= 1) setTimeout(tick, wait - 0.5);
      else setImmediate(tick);
    } else {
      setTimeout(finish, drainMs + 1).unref();
    }
  };
  const first = start - performance.now();
  if (first > 1) setTimeout(tick, first);
  else tick();

  return done.then(() => {
    const unfinished = n - settled;
    const sorted = lat.slice().sort();
    const bySecond: number[] = [];
    const perSecond = Math.max(1, Math.round(o.rate));
    for (let s = 0; s * perSecond < n; s++) bySecond.push(percentile(lat.slice(s * perSecond, (s + 1) * perSecond).sort(), 0.99));
    if (process.env.DTESN_LOAD_TRACE) {
      const w = Math.max(1, Math.round(o.rate / 20));
      const parts: string[] = [];
      for (let s = 0; s < Math.min(n, o.rate) ; s += w) parts.push(percentile(lat.slice(s, s + w).sort(), 0.99).toFixed(0));
      process.stderr.write(`p99 per 50 ms of the first second: ${parts.join(' ')}\n`);
      if (sentAt) {
        const late: string[] = [];
        for (let s = 0; s < Math.min(n, o.rate); s += w) {
          let worst = 0;
          for (let k = s; k < Math.min(n, s + w); k++) worst = Math.max(worst, sentAt[k]! - k * periodMs);
          late.push(worst.toFixed(0));
        }
        process.stderr.write(`worst send lateness per 50 ms: ${late.join(' ')}\n`);
      }
    }
    const ok = statusCount['200'] ?? 0;
    for (const c of idle) c.socket.destroy();
    return {
      rate: o.rate,
      seconds: o.seconds,
      sent: n,
      status: statusCount,
      errors,
      unfinished,
      connections: opened,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      maxMs: sorted[n - 1]!,
      p99BySecond: bySecond,
      achieved: ok / o.seconds,
    };
  });
}

// The CLI, and the child-process protocol of the serve bench (`--stdin`): the options as JSON on
// stdin (the bodies are too long for a command line), the result as one JSON line on stdout.
const argv = process.argv.slice(2);
if (argv[0] === '--stdin') {
  process.stdout.write('ready\n'); // loaded: the driver may start the server now
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const r = await runLoad(JSON.parse(Buffer.concat(chunks).toString()) as LoadOptions);
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
} else if (argv.includes('--url')) {
  const get = (k: string, d: string) => (argv.includes(`--${k}`) ? argv[argv.indexOf(`--${k}`) + 1]! : d);
  const u = new URL(get('url', 'http://127.0.0.1:8080/v1/vectorize'));
  const r = await runLoad({
    host: u.hostname, port: Number(u.port), path: u.pathname, bodies: [get('body', '{"texts":["hello"]}')],
    rate: Number(get('rate', '1000')), seconds: Number(get('seconds', '3')),
  });
  console.log(JSON.stringify(r, null, 2));
  process.exit(0);
}
