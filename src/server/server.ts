/**
 * `dtesn serve`: the request listener (listener.ts) on a node:http server of its own, with its
 * connections, a warm-up before it listens, a drain deadline, and signal handling.
 */
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constants as osConstants } from 'node:os';
import { Registry } from 'prom-client';
import type { Socket } from 'node:net';
import { type ListenerOptions, Service, VECTORIZE_PATH, connectionState, intOption, servedPipeline } from './listener.js';
import type { Monitor } from '../observe/monitor/monitor.js';
import { describe } from '../common/check.js';
import { type Pipeline, createPipeline } from '../pipeline/pipeline.js';
import type { Dtype, MaskDtype, VectorizeOptions } from '../vectorize/types.js';

export { createRequestListener, type ListenerOptions, type RequestListener } from './listener.js';

export interface ServerOptions extends Omit<ListenerOptions, 'prefix'> {
  /** [8080] 0 picks a free port (see `DtesnServer.url`). */
  port?: number;
  /** ['127.0.0.1'] */
  host?: string;
  /**
   * [1000] requests the service sends itself before it listens, through a private copy of itself
   * on another loopback port with a pipeline of its own (no handler: the caller's handler and
   * pipeline are never called), so that the code every request runs is compiled before the first
   * real one arrives instead of while the first seconds of traffic queue behind it (BENCHMARKS.md,
   * the serve suite's cold starts). Costs ~0.2-0.4 s of start-up. 0: none.
   */
  warmup?: number;
  /**
   * [30000] how long close() lets in-flight requests finish before it cuts their connections
   * (the pipeline still finishes the work it accepted). Infinity waits for ever.
   */
  drainTimeoutMs?: number;
  /**
   * [10000] time a client has to send a request's headers, from the moment the connection (or
   * the previous request) began; past it the connection gets 408 and closes. Covers slowloris
   * (headers a byte at a time) and connections that never send anything.
   */
  headersTimeoutMs?: number;
  /** [60000] time a client has to send a whole request, body included; past it 408. */
  requestTimeoutMs?: number;
  /** [5000] how long an idle keep-alive connection stays open after its last answer. */
  keepAliveTimeoutMs?: number;
  /**
   * [120000] a connection with no traffic either way for this long is closed: a client that
   * stopped reading its answer (or vanished without closing) does not hold it for ever.
   */
  idleTimeoutMs?: number;
}

export interface DtesnServer {
  /** `http://host:port` (IPv6 hosts in brackets). */
  readonly url: string;
  readonly address: AddressInfo;
  readonly server: Server;
  readonly pipeline: Pipeline;
  readonly monitor: Monitor;
  readonly registry: Registry;
  /** True once close() was called. */
  readonly closing: boolean;
  /**
   * Graceful drain: stops accepting connections, answers 503 to requests arriving on open
   * connections, lets in-flight requests finish, closes idle keep-alive connections, then closes
   * the pipeline and stops the monitor if the server created them. Idempotent.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface SignalOptions {
  /** [['SIGTERM', 'SIGINT']] */
  signals?: readonly NodeJS.Signals[];
  /**
   * [true] exit when the drain is done: code 0, or 1 when close() failed. A second signal during
   * the drain exits at once with 128 + the signal number.
   */
  exit?: boolean;
  /** Called on each signal received (e.g. to log it). */
  onSignal?: (signal: NodeJS.Signals) => void;
  /** Called when close() fails (default: printed to stderr). */
  onError?: (error: unknown) => void;
}

const SERVER_KEYS = new Set([
  'port', 'host', 'bodyLimit', 'maxResultElements', 'pipeline', 'monitor', 'registry', 'retryAfterSeconds', 'drainTimeoutMs', 'warmup',
  'headersTimeoutMs', 'requestTimeoutMs', 'keepAliveTimeoutMs', 'idleTimeoutMs',
]);

/**
 * Starts the HTTP service and resolves once it listens. Throws (rejects) for bad options, a
 * pipeline config the pipeline refuses, or a port that cannot be bound (the pipeline and monitor
 * it created are then closed again).
 */
export async function startServer(options: ServerOptions = {}): Promise<DtesnServer> {
  if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!SERVER_KEYS.has(k)) throw new TypeError(`unknown server option '${k}'`);
  const port = intOption(o, 'port', 8080, 0, 65535);
  const warmup = intOption(o, 'warmup', 1000, 0, 1_000_000);
  const host = o.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw new TypeError(`options.host must be a non-empty string, got ${describe(host)}`);
  const drain = o.drainTimeoutMs ?? 30_000;
  if (typeof drain !== 'number' || !(drain >= 0)) throw new RangeError(`options.drainTimeoutMs must be a number >= 0, got ${String(drain)}`);
  const headersTimeout = intOption(o, 'headersTimeoutMs', 10_000, 1, 2 ** 31 - 1);
  const requestTimeout = intOption(o, 'requestTimeoutMs', 60_000, 0, 2 ** 31 - 1);
  if (requestTimeout !== 0 && requestTimeout < headersTimeout) {
    throw new RangeError(`options.requestTimeoutMs must be 0 (none) or >= options.headersTimeoutMs (${headersTimeout}), got ${requestTimeout}`);
  }
  const keepAliveTimeout = intOption(o, 'keepAliveTimeoutMs', 5_000, 0, 2 ** 31 - 1);
  const idleTimeout = intOption(o, 'idleTimeoutMs', 120_000, 0, 2 ** 31 - 1);
  const { pipeline, own, defaults } = servedPipeline(options.pipeline);
  let service: Service | undefined;
  let server: Server | undefined;
  try {
    if (warmup > 0) await warmUp(warmup, defaults);
    const {
      port: _port, host: _host, drainTimeoutMs: _drain, warmup: _warmup,
      headersTimeoutMs: _h, requestTimeoutMs: _r, keepAliveTimeoutMs: _k, idleTimeoutMs: _i, ...listenerOptions
    } = options;
    const svc = (service = new Service(pipeline, listenerOptions, { pipeline: own, defaults }));
    // The timeouts are set here, not after: node:http reads them (and how often it checks them,
    // 30 s by default: too coarse for a 10 s headers timeout) when the server is made.
    const srv = (server = createServer(
      { headersTimeout, requestTimeout, keepAliveTimeout, connectionsCheckingInterval: Math.min(1000, headersTimeout) },
      (req, res) => svc.handle(req, res),
    ));
    srv.setTimeout(idleTimeout); // no 'timeout' listener: node:http destroys the idle socket
    trackSockets(srv);
    await listen(srv, port, host);
  } catch (e) {
    if (service !== undefined) await closeService(service, server, 0).catch(() => {});
    else if (own) await pipeline.close();
    throw e;
  }
  const svc = service;
  const srv = server;
  const address = srv.address() as AddressInfo;
  const h = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${h}:${address.port}`;
  let closed: Promise<void> | null = null;
  const close = () => (closed ??= closeService(svc, srv, drain));
  return {
    url,
    address,
    server: srv,
    pipeline,
    monitor: svc.monitor,
    registry: svc.registry,
    get closing() {
      return svc.closing;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** A server's open connections, and how many it has accepted in all (for the drain). */
interface Connections {
  open: Set<Socket>;
  accepted: number;
}

const CONNECTIONS = new WeakMap<Server, Connections>();

/** Makes `server` keep its open connections (for the drain). */
function trackSockets(server: Server): void {
  const c: Connections = { open: new Set(), accepted: 0 };
  CONNECTIONS.set(server, c);
  server.on('connection', (s: Socket) => {
    c.accepted++;
    c.open.add(s);
    s.once('close', () => c.open.delete(s));
  });
}

/** The longest a drain keeps accepting the connections queued before it began. */
const ACCEPT_MS = 1000;

/** How long a drain leaves a connection that has sent no request yet (its request may be on the way). */
const NEW_CONNECTION_GRACE_MS = 1000;

/**
 * The graceful drain: 503 for requests from now on, in-flight requests finish (past
 * `drainTimeoutMs` every connection is cut), idle keep-alive connections close, no new
 * connections, then the service releases what it made.
 *
 * Nothing sent before the drain began is reset: the listener stays open until an event-loop turn
 * accepts no new connection (ACCEPT_MS at most), so that those the kernel has queued are accepted
 * (closing it resets them: with 500 requests arriving at once, up to 150 were), and
 * a connection that has not sent its first request yet is left for NEW_CONNECTION_GRACE_MS (its
 * request may be in the socket's buffer, unread; node:http's closeIdleConnections() would close
 * it): one that sends it gets its 503 (or the answer, if it came first), one that sends nothing is
 * closed after the grace.
 */
async function closeService(svc: Service, server: Server | undefined, drainTimeoutMs: number): Promise<void> {
  if (server !== undefined) {
    const drained = svc.drain();
    const conns = CONNECTIONS.get(server) ?? { open: new Set<Socket>(), accepted: 0 };
    const sockets = conns.open;
    // Accept what the kernel has queued: event-loop turns (each with a poll phase, where libuv
    // accepts; a busy loop accepts a few a turn) until one accepts nothing new, for at most
    // ACCEPT_MS. Requests on them get 503.
    const until = performance.now() + ACCEPT_MS;
    for (let before = -1; server.listening && conns.accepted !== before && performance.now() < until; ) {
      before = conns.accepted;
      await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
    }
    const serverClosed = server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    const closeIdle = () => {
      for (const s of sockets) if (connectionState(s) === 'idle') s.destroySoon();
    };
    closeIdle();
    const grace = setTimeout(() => {
      for (const s of sockets) if (connectionState(s) === 'new') s.destroy();
    }, NEW_CONNECTION_GRACE_MS);
    // Connections whose last response began before close() stay open as idle keep-alive ones
    // until that response is done.
    svc.onDrained = () => setImmediate(closeIdle);
    // Past the deadline every connection is cut: requests in flight then end (their 'close'
    // counts them out), and so do connections still sending their headers.
    const deadline = Number.isFinite(drainTimeoutMs) ? setTimeout(() => server.closeAllConnections(), drainTimeoutMs) : undefined;
    await drained;
    closeIdle();
    await serverClosed;
    clearTimeout(deadline);
    clearTimeout(grace);
  }
  await svc.release();
}

/** Bodies of the warm-up requests: ASCII and multilingual rows, with and without options. */
const WARM_BODIES = [
  { texts: ['The quick brown fox jumps over the lazy dog'] },
  { texts: ['Alle Menschen sind frei und gleich an Würde und Rechten geboren.'], options: { maxLength: 128 } },
  { texts: ['人人生而自由，在尊严和权利上一律平等。', 'hello 😀'], options: { encoding: 'byt5', maxLength: 64 } },
].map((b) => JSON.stringify(b));

/** See ServerOptions.warmup: `count` requests through a private service, then it closes (internal; the fastify plugin uses it too). */
export async function warmUp(count: number, defaults: VectorizeOptions<Dtype, MaskDtype> | undefined): Promise<void> {
  const svc = new Service(createPipeline({ maxWorkers: 1, vectorize: defaults }), { registry: new Registry(), monitor: { intervalMs: 60_000 } }, { pipeline: true, defaults });
  const server = createServer((req, res) => svc.handle(req, res));
  trackSockets(server);
  try {
    await listen(server, 0, '127.0.0.1');
    const { port } = server.address() as AddressInfo;
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    try {
      let next = 0;
      const one = (): Promise<void> =>
        new Promise<void>((resolve) => {
          const body = WARM_BODIES[next++ % WARM_BODIES.length]!;
          const req = httpRequest({ host: '127.0.0.1', port, path: VECTORIZE_PATH, method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
            res.resume();
            res.once('end', resolve);
            res.once('error', () => resolve());
          });
          req.once('error', () => resolve()); // a warm-up that fails costs nothing but its warmth
          req.end(body);
        });
      const lanes = Array.from({ length: 16 }, async () => {
        while (next < count) await one();
      });
      await Promise.all(lanes);
    } finally {
      agent.destroy();
    }
  } finally {
    await closeService(svc, server, 0);
  }
}

/**
 * Closes `server` gracefully on the first of `signals` (SIGTERM, SIGINT), then exits 0 (unless
 * `exit: false`). The CLI calls this after startServer. Returns a function that removes the
 * listeners again.
 */
export function closeOnSignals(server: DtesnServer, options: SignalOptions = {}): () => void {
  const signals = options.signals ?? (['SIGTERM', 'SIGINT'] as const);
  const exit = options.exit ?? true;
  let received = false;
  const onSignal = (signal: NodeJS.Signals) => {
    options.onSignal?.(signal);
    if (received) {
      if (exit) process.exit(128 + (osConstants.signals[signal] ?? 0));
      return;
    }
    received = true;
    server.close().then(
      () => {
        if (exit) process.exit(0);
      },
      (e: unknown) => {
        if (options.onError) options.onError(e);
        else console.error('dtesn serve: closing failed:', e);
        if (exit) process.exit(1);
      },
    );
  };
  for (const s of signals) process.on(s, onSignal);
  return () => {
    for (const s of signals) process.off(s, onSignal);
  };
}
