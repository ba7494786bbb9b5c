/**
 * The pipeline over HTTP, as a request listener: `createRequestListener(options)` gives a
 * `(req, res)` function for node:http (or express, or the fastify plugin in fastify.ts) with
 * exactly the routes, limits, errors and drain of `dtesn serve`, which is built on it (server.ts).
 *
 *   POST /v1/vectorize   {"texts": [...], "options": {...}}  ->  {"rows", "width", "ids": [[...]],
 *                        "attentionMask": [[...]], "lengths": [...]}; with `Accept: application/x-npy`
 *                        the ids (or `?array=attention_mask|lengths`) as a .npy file, shape in
 *                        X-Dtesn-Rows / X-Dtesn-Width. A pipeline with a `handler` answers
 *                        {"rows", "results": [...]} (JSON only).
 *   GET  /metrics        Prometheus text (registerMetrics + dtesn_http_requests_total).
 *   GET  /healthz        the monitor's health and active alerts; 503 while a critical alert is active.
 *
 * Each request's texts go into `pipeline.submit` as one request, so concurrent HTTP requests are
 * coalesced by the micro-batcher and each still gets exactly `vectorize(its texts, its options)`.
 *
 * Status codes: 400 bad JSON, body shape, texts or options (the library's own TypeError /
 * RangeError message), or a result larger than `maxResultElements`; 404; 405 with Allow; 413 body
 * over `bodyLimit` (Content-Length checked up front, streamed bytes counted) or more texts than
 * the pipeline's maxQueue (retrying cannot help); 429 + Retry-After when the queue is full; 503
 * while draining or when the pipeline is closed; 500 for anything else (e.g. WorkerCrashError).
 *
 * Costs: the JSON of a result is written as bytes straight from the typed arrays (a digit table,
 * no per-row Array.from, no JSON.stringify), several times faster than either; it is the largest per-request cost of a 64-text request. Large results go out in ~1 MiB chunks
 * with backpressure, so one response never builds one huge string.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { PipelineClosedError, QueueFullError } from '../common/errors.js';
import { type Monitor, type MonitorOptions, createMonitor } from '../observe/monitor/monitor.js';
import { encodeNpy } from '../tensors/npy.js';
import { LOW_WORD, MAX_ELEMENTS, type NormalizedOptions, OptionsMemo, checkTexts, normalizeOptions, specialCount, wordsOf } from '../vectorize/options.js';
import { describe, intSetting, isPlainObject } from '../common/check.js';
import { type Pipeline, type PipelineConfig, createPipeline, mergeOptions } from '../pipeline/pipeline.js';
import { registerMetrics } from '../observe/export/prometheus.js';
import type { Dtype, MaskDtype, VectorBatch, VectorizeOptions } from '../vectorize/types.js';

/** What a request listener takes: the service's part of ServerOptions (no port, host or drain deadline). */
export interface ListenerOptions {
  /** [8 MiB] largest request body, bytes; beyond it 413. */
  bodyLimit?: number;
  /**
   * [16,777,216] largest result (rows x width elements) a request may ask for; beyond it 400.
   * Checked before the work from an upper bound of the width (maxLength, or the longest text),
   * so `maxLength: 2e9, padding: 'max-length'` is refused instead of allocating gigabytes.
   */
  maxResultElements?: number;
  /** A pipeline to serve (the caller keeps it and closes it), or the config of one the listener creates and closes. */
  pipeline?: Pipeline | PipelineConfig;
  /** A monitor of that pipeline (the caller stops it), or the options of one the listener creates and stops. */
  monitor?: Monitor | MonitorOptions;
  /** [a new Registry] where /metrics collects from; the listener's metrics are removed from it on close. */
  registry?: Registry;
  /** [1] Retry-After of 429 answers, seconds. */
  retryAfterSeconds?: number;
  /** [''] a path prefix the routes sit under ('/dtesn': POST /dtesn/v1/vectorize, GET /dtesn/metrics, ...). */
  prefix?: string;
}

/** A `(req, res)` listener for node:http, with what it serves and how to stop it. */
export interface RequestListener {
  (req: IncomingMessage, res: ServerResponse): void;
  readonly pipeline: Pipeline;
  readonly monitor: Monitor;
  readonly registry: Registry;
  /** True once close() was called: new requests get 503. */
  readonly closing: boolean;
  /** Requests read and not yet answered. */
  readonly inFlight: number;
  /**
   * Answers 503 to new requests, waits for those in flight, then closes the pipeline and stops
   * the monitor if it created them and removes its metrics from the registry. Idempotent. The
   * connections are the host server's: close them there.
   */
  close(): Promise<void>;
}

const DEFAULT_BODY_LIMIT = 8 << 20;
const DEFAULT_MAX_RESULT = 1 << 24;
export const VECTORIZE_PATH = '/v1/vectorize';
const JSON_TYPE = 'application/json; charset=utf-8';
const NPY_TYPE = 'application/x-npy';
const BODY_KEYS = new Set(['texts', 'options']);
const ARRAYS = ['ids', 'attention_mask', 'lengths'] as const;
type ArrayName = (typeof ARRAYS)[number];

/** The http routes, as labelled in dtesn_http_requests_total. */
type Route = '/v1/vectorize' | '/metrics' | '/healthz' | 'other';

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function isPipeline(p: unknown): p is Pipeline {
  return typeof p === 'object' && p !== null && typeof (p as Pipeline).submit === 'function' && typeof (p as Pipeline).metrics === 'function';
}

function isMonitor(m: unknown): m is Monitor {
  return typeof m === 'object' && m !== null && typeof (m as Monitor).health === 'function' && typeof (m as Monitor).alerts === 'function';
}

export function intOption(o: Record<string, unknown>, key: string, dflt: number, lo: number, hi: number): number {
  return intSetting(o, 'options', key, dflt, lo, hi);
}

/** JSON's name of a parsed value's type, for messages. */
function jsonType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

// ------------------------------------------------------------------------------------------------
// Encoding results.

/** Decimal digits of 0..9999, 4 bytes each, and their lengths. */
const DIGITS = new Uint8Array(10000 * 4);
const DIGITS_LEN = new Uint8Array(10000);
for (let v = 0; v < 10000; v++) {
  const s = String(v);
  DIGITS_LEN[v] = s.length;
  for (let k = 0; k < s.length; k++) DIGITS[v * 4 + k] = s.charCodeAt(k);
}

/** Longest decimal form of an id of each dtype ('-2147483648', '-16777216' for float32 ids). */
const ID_CHARS: Record<Dtype, number> = { int32: 11, int16: 6, uint16: 5, uint8: 3, float32: 9, int64: 20 };

function dtypeOf(ids: VectorBatch<Dtype>['ids']): Dtype {
  if (ids instanceof Int32Array) return 'int32';
  if (ids instanceof Int16Array) return 'int16';
  if (ids instanceof Uint16Array) return 'uint16';
  if (ids instanceof Float32Array) return 'float32';
  if (ids instanceof BigInt64Array) return 'int64';
  return 'uint8';
}

/**
 * Element `i` of int64 `words` (see wordsOf) as a number when a number holds it exactly, else NaN
 * (ids are small; only a padId beyond 2^53 is not): no BigInt per element.
 */
function int64At(words: Int32Array, i: number): number {
  const lo = words[2 * i + LOW_WORD]! >>> 0;
  const hi = words[2 * i + 1 - LOW_WORD]!;
  return hi >= -0x200000 && hi < 0x200000 ? hi * 4294967296 + lo : NaN;
}

/** Writes the integer `v` at `p`; returns the end. Ids are integers (float32 ones too). */
function writeInt(buf: Buffer, p: number, v: number): number {
  if (v >= 0 && v < 10000) {
    const n = DIGITS_LEN[v]!;
    const o = v * 4;
    buf[p] = DIGITS[o]!;
    if (n > 1) {
      buf[p + 1] = DIGITS[o + 1]!;
      if (n > 2) {
        buf[p + 2] = DIGITS[o + 2]!;
        if (n > 3) buf[p + 3] = DIGITS[o + 3]!;
      }
    }
    return p + n;
  }
  if (!Number.isInteger(v)) return p + buf.write(String(v), p, 'latin1');
  if (v < 0) {
    buf[p++] = 0x2d;
    v = -v;
  }
  let n = 1;
  for (let t = v; t >= 10; t = Math.floor(t / 10)) n++;
  for (let k = p + n - 1; k >= p; k--) {
    buf[k] = 0x30 + (v % 10);
    v = Math.floor(v / 10);
  }
  return p + n;
}

/** Chunks of at least this many bytes are handed to the socket one at a time. */
const CHUNK_BYTES = 1 << 20;

/**
 * The JSON of a batch as byte chunks (one for results under ~1 MiB). Equals
 * JSON.stringify({ rows, width, ids: rows of ids, attentionMask: rows of the mask, lengths }).
 */
function* batchJson(b: VectorBatch<Dtype, MaskDtype>): Generator<Buffer> {
  const { rows, width, ids, attentionMask: mask, lengths } = b;
  const idBytes = width * (ID_CHARS[dtypeOf(ids)] + 1) + 3;
  const maskBytes = width * 2 + 3;
  const total = 128 + rows * (idBytes + maskBytes + 12);
  let buf = Buffer.allocUnsafe(Math.min(total, CHUNK_BYTES + idBytes + maskBytes + 128));
  let p = buf.write(`{"rows":${rows},"width":${width},"ids":[`, 0, 'latin1');
  const room = (need: number): Generator<Buffer> | null => (p + need > buf.length ? flush() : null);
  function* flush(): Generator<Buffer> {
    yield buf.subarray(0, p);
    buf = Buffer.allocUnsafe(Math.min(total, CHUNK_BYTES + idBytes + maskBytes + 128));
    p = 0;
  }
  const idv = ids as ArrayLike<number>;
  const idWords = ids instanceof BigInt64Array ? wordsOf(ids) : null;
  let i = 0;
  for (let r = 0; r < rows; r++) {
    const f = room(idBytes);
    if (f) yield* f;
    if (r > 0) buf[p++] = 0x2c;
    buf[p++] = 0x5b;
    for (let c = 0; c < width; c++, i++) {
      if (c > 0) buf[p++] = 0x2c;
      if (idWords === null) p = writeInt(buf, p, idv[i]!);
      else {
        const v = int64At(idWords, i);
        p = Number.isNaN(v) ? p + buf.write(String((ids as BigInt64Array)[i]), p, 'latin1') : writeInt(buf, p, v);
      }
    }
    buf[p++] = 0x5d;
  }
  let sep = room(19); // the separators need room as much as the rows do
  if (sep) yield* sep;
  p += buf.write('],"attentionMask":[', p, 'latin1');
  // Mask elements are 0 or 1: an int64 mask is read through its low words.
  const mv = (mask instanceof BigInt64Array ? wordsOf(mask) : mask) as ArrayLike<number>;
  const mStride = mask instanceof BigInt64Array ? 2 : 1;
  const mLow = mask instanceof BigInt64Array ? LOW_WORD : 0;
  i = 0;
  for (let r = 0; r < rows; r++) {
    const f = room(maskBytes);
    if (f) yield* f;
    if (r > 0) buf[p++] = 0x2c;
    buf[p++] = 0x5b;
    for (let c = 0; c < width; c++, i++) {
      if (c > 0) buf[p++] = 0x2c;
      buf[p++] = 0x30 + mv[i * mStride + mLow]!;
    }
    buf[p++] = 0x5d;
  }
  sep = room(13);
  if (sep) yield* sep;
  p += buf.write('],"lengths":[', p, 'latin1');
  for (let r = 0; r < rows; r++) {
    const f = room(14);
    if (f) yield* f;
    if (r > 0) buf[p++] = 0x2c;
    p = writeInt(buf, p, lengths[r]!);
  }
  const f = room(2);
  if (f) yield* f;
  buf[p++] = 0x5d;
  buf[p++] = 0x7d;
  yield buf.subarray(0, p);
}

/**
 * Whether the Accept header prefers application/x-npy over JSON (JSON wins ties: it is the
 * default). Media types are case-insensitive; each type takes the q of the most specific range
 * that matches it (the type itself, then application/*, then * / *), as RFC 9110 says.
 */
function wantsNpy(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const header = accept.toLowerCase();
  if (!header.includes('npy')) return false;
  const qOf = new Map<string, number>();
  for (const range of header.split(',')) {
    const [type = '', ...params] = range.split(';');
    let q = 1;
    for (const param of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(param);
      if (m) q = Number(m[1]);
    }
    if (!(q >= 0 && q <= 1)) continue;
    const t = type.trim();
    qOf.set(t, Math.max(qOf.get(t) ?? 0, q));
  }
  const q = (type: string) => qOf.get(type) ?? qOf.get('application/*') ?? qOf.get('*/*') ?? 0;
  const npy = q(NPY_TYPE);
  return npy > 0 && npy > q('application/json');
}

/** Request bodies: strict UTF-8 (a bad byte is a 400, not U+FFFD); a BOM is kept (then invalid JSON). */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ------------------------------------------------------------------------------------------------

/** What a response says, before it is written. */
interface Reply {
  status: number;
  headers: Record<string, string | number>;
  /** A string or buffer, or chunks written with backpressure. */
  body: string | Buffer | Buffer[] | Iterable<Buffer>;
}

function errorReply(status: number, message: string, headers: Record<string, string> = {}): Reply {
  return { status, headers: { 'content-type': JSON_TYPE, ...headers }, body: JSON.stringify({ error: message }) };
}

/** Per connection: requests read and not yet answered (more than one when pipelined), and the
 * signal that aborts their pipeline requests once the client has gone (one AbortController per
 * connection, made on first use: a controller per request costs more than a small request). */
class Connection {
  pending = 0;
  #ac: AbortController | null = null;
  #gone = false;

  get signal(): AbortSignal {
    if (this.#ac === null) {
      this.#ac = new AbortController();
      if (this.#gone) this.#ac.abort(new Error('the client closed the connection'));
    }
    return this.#ac.signal;
  }

  close(): void {
    this.#gone = true;
    this.#ac?.abort(new Error('the client closed the connection'));
  }
}

const CONNECTION = Symbol('dtesn.connection');

/**
 * What a connection is doing, for a drain (server.ts): 'busy' with requests read and not yet
 * answered, 'idle' between requests after answering some, 'new' before its first request (its
 * request may be in the socket's buffer, unread: closing it would reset a request in flight).
 */
export function connectionState(socket: Socket): 'busy' | 'idle' | 'new' {
  const c = (socket as Socket & { [CONNECTION]?: Connection })[CONNECTION];
  return c === undefined ? 'new' : c.pending > 0 ? 'busy' : 'idle';
}

function connectionOf(socket: Socket): Connection {
  const s = socket as Socket & { [CONNECTION]?: Connection };
  let c = s[CONNECTION];
  if (c === undefined) {
    const conn = (c = new Connection());
    s[CONNECTION] = conn;
    socket.once('close', () => conn.close());
  }
  return c;
}

function ignore(): void {}

const EMPTY = Buffer.alloc(0);

function* prepend(head: readonly Buffer[], rest: Iterator<Buffer>): Generator<Buffer> {
  yield* head;
  for (let r = rest.next(); !r.done; r = rest.next()) yield r.value;
}

export class Service {
  readonly registry: Registry;
  readonly monitor: Monitor;
  closing = false;
  private readonly bodyLimit: number;
  private readonly maxResult: number;
  private readonly retryAfter: string;
  private readonly prefix: string;
  private readonly ownPipeline: boolean;
  private readonly ownMonitor: boolean;
  /** The pipeline's default options when the server made it (for the result-size bound). */
  private readonly defaults: VectorizeOptions<Dtype, MaskDtype> | undefined;
  private readonly unregister: () => void;
  /** HTTP answers by `${route} ${code}`, counted per request and handed to prom-client at scrape time. */
  private readonly answered = new Map<string, number>();
  inFlight = 0;
  /** What the result bound normalized last (see OptionsMemo), and for bodies without options. */
  private readonly lastOptions = new OptionsMemo<NormalizedOptions>();
  private defaultOptions: NormalizedOptions | undefined;
  private released: Promise<void> | null = null;
  private drained: (() => void) | null = null;
  /** Called once in-flight requests reach zero while closing (the host server closes idle connections then). */
  onDrained: (() => void) | null = null;

  constructor(
    readonly pipeline: Pipeline,
    opts: ListenerOptions,
    own: { pipeline: boolean; defaults: VectorizeOptions<Dtype, MaskDtype> | undefined },
  ) {
    const o = opts as Record<string, unknown>;
    this.bodyLimit = intOption(o, 'bodyLimit', DEFAULT_BODY_LIMIT, 0, Number.MAX_SAFE_INTEGER);
    this.maxResult = intOption(o, 'maxResultElements', DEFAULT_MAX_RESULT, 1, MAX_ELEMENTS);
    this.retryAfter = String(intOption(o, 'retryAfterSeconds', 1, 0, 86400));
    const prefix = o.prefix ?? '';
    if (typeof prefix !== 'string' || (prefix !== '' && (!prefix.startsWith('/') || prefix.endsWith('/')))) {
      throw new TypeError(`options.prefix must be '' or a path like '/dtesn' (a leading slash, no trailing one), got ${describe(prefix)}`);
    }
    this.prefix = prefix;
    this.ownPipeline = own.pipeline;
    this.defaults = own.defaults;
    const registry = opts.registry ?? new Registry();
    if (!(registry instanceof Registry)) throw new TypeError(`options.registry must be a prom-client Registry, got ${describe(registry)}`);
    this.registry = registry;
    if (opts.monitor !== undefined && isMonitor(opts.monitor)) {
      this.monitor = opts.monitor;
      this.ownMonitor = false;
    } else {
      this.monitor = createMonitor(pipeline, opts.monitor as MonitorOptions | undefined);
      this.ownMonitor = true;
    }
    let unregisterPipeline: (() => void) | null = null;
    try {
      unregisterPipeline = registerMetrics(pipeline, registry, { monitor: this.monitor });
      const answered = this.answered;
      new Counter({
        name: 'dtesn_http_requests_total',
        help: 'HTTP requests answered, by route and status code.',
        labelNames: ['route', 'code'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [k, v] of answered) {
            const at = k.lastIndexOf(' ');
            this.inc({ route: k.slice(0, at), code: k.slice(at + 1) }, v);
          }
        },
      });
    } catch (e) {
      unregisterPipeline?.();
      if (this.ownMonitor) this.monitor.stop();
      throw e;
    }
    const removePipeline = unregisterPipeline;
    // A registry of its own also gets prom-client's process and Node.js metrics (CPU, memory,
    // event-loop lag, GC), as every Node service exports them; a caller's registry is left as it is.
    const ownRegistry = opts.registry === undefined;
    if (ownRegistry) collectDefaultMetrics({ register: registry });
    this.unregister = () => {
      removePipeline();
      registry.removeSingleMetric('dtesn_http_requests_total');
      if (ownRegistry) registry.clear();
    };
  }

  // ----------------------------------------------------------------------------------------------

  /** One request; `path` and `query` override the URL's (the fastify plugin routes itself). */
  handle(req: IncomingMessage, res: ServerResponse, path?: string, query?: string): void {
    this.inFlight++;
    const conn = connectionOf(req.socket);
    conn.pending++;
    let route: Route = 'other';
    res.on('error', ignore); // a client gone mid-response: nothing to tell it
    req.on('error', ignore);
    res.once('close', () => {
      if (res.headersSent) {
        const k = `${route} ${res.statusCode}`;
        this.answered.set(k, (this.answered.get(k) ?? 0) + 1);
      }
      conn.pending--;
      if (--this.inFlight === 0 && this.closing) this.drainedNow();
    });
    if (path === undefined) {
      let url = req.url ?? '/';
      // The absolute form of a request target (`POST http://host/v1/vectorize`, what proxies
      // send): a server must accept it (RFC 9112, 3.2.2); the route is its path.
      if (url.charCodeAt(0) !== 0x2f) {
        const m = /^https?:\/\/[^/?#]*/i.exec(url);
        if (m !== null) url = url.length > m[0].length ? url.slice(m[0].length) : '/';
      }
      const q = url.indexOf('?');
      path = q < 0 ? url : url.slice(0, q);
      query = q < 0 ? '' : url.slice(q + 1);
      if (this.prefix !== '') path = path.startsWith(`${this.prefix}/`) ? path.slice(this.prefix.length) : `\0${path}`; // outside: no route
    }
    if (this.closing) return this.reply(res, errorReply(503, 'the server is shutting down'), conn);
    if (path === VECTORIZE_PATH) {
      route = VECTORIZE_PATH;
      if (req.method !== 'POST') return this.reply(res, this.badMethod('POST'), conn);
      return this.vectorize(req, res, query ?? '', conn);
    }
    let reply: Reply | Promise<Reply>;
    if (path === '/metrics') {
      route = '/metrics';
      reply = req.method === 'GET' || req.method === 'HEAD' ? this.metricsReply() : this.badMethod('GET, HEAD');
    } else if (path === '/healthz') {
      route = '/healthz';
      reply = req.method === 'GET' || req.method === 'HEAD' ? this.healthReply() : this.badMethod('GET, HEAD');
    } else {
      const p = this.prefix;
      const shown = path.startsWith('\0') ? path.slice(1) : `${p}${path}`;
      reply = errorReply(404, `no route ${JSON.stringify(shown)}: try POST ${p}${VECTORIZE_PATH}, GET ${p}/metrics, GET ${p}/healthz`);
    }
    Promise.resolve(reply).then(
      (r) => this.reply(res, r, conn),
      (e: unknown) => this.reply(res, this.errorOf(e), conn),
    );
  }

  /** Sends `r` (or nothing when the client is gone); a write that fails ends the connection. */
  private reply(res: ServerResponse, r: Reply, conn: Connection): void {
    this.send(res, r, conn).catch(() => {
      if (!res.destroyed) res.destroy();
    });
  }

  private badMethod(allow: string): Reply {
    return errorReply(405, `method not allowed: use ${allow.replace(', ', ' or ')}`, { allow });
  }

  /** The status and message of an error of a request. */
  private errorOf(e: unknown): Reply {
    if (e instanceof HttpError) return errorReply(e.status, e.message, e.headers);
    if (e instanceof QueueFullError) {
      // More rows than the whole queue holds: a retry would be refused again.
      if (e.rows > e.limit) return errorReply(413, `${e.rows} texts exceed the pipeline's maxQueue of ${e.limit} rows: send them in smaller requests`);
      return errorReply(429, e.message, { 'retry-after': this.retryAfter });
    }
    if (e instanceof PipelineClosedError) return errorReply(503, e.message);
    if (e instanceof TypeError || e instanceof RangeError) return errorReply(400, e.message);
    return errorReply(500, e instanceof Error ? `${e.name}: ${e.message}` : `internal error: ${String(e)}`);
  }

  private async send(res: ServerResponse, r: Reply, conn: Connection): Promise<void> {
    if (res.destroyed || res.headersSent) return;
    const body = r.body;
    // Draining: the last answer on a connection closes it. Not an earlier one: the requests
    // pipelined behind it would get no answer at all.
    const last = this.closing && conn.pending === 1;
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      // One call with every header (setHeader per header costs more than the rest of a small answer).
      const h = r.headers;
      const flat: string[] = [];
      for (const k in h) flat.push(k, String(h[k]));
      flat.push('content-length', String(typeof body === 'string' ? Buffer.byteLength(body) : body.length));
      if (last) flat.push('connection', 'close');
      res.writeHead(r.status, flat);
      res.end(body);
      return;
    }
    res.statusCode = r.status;
    for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
    if (last) res.setHeader('connection', 'close');
    if (Array.isArray(body)) {
      let n = 0;
      for (const b of body) n += b.length;
      res.setHeader('content-length', n);
      for (let i = 0; i < body.length - 1; i++) res.write(body[i]);
      res.end(body[body.length - 1]);
      return;
    }
    const it = body[Symbol.iterator]();
    let cur = it.next();
    let next = cur.done ? cur : it.next();
    if (!cur.done && next.done) {
      // One chunk: a plain response with Content-Length.
      res.setHeader('content-length', cur.value.length);
      res.end(cur.value);
      return;
    }
    while (!cur.done) {
      if (res.destroyed) return;
      if (next.done) {
        res.end(cur.value);
        return;
      }
      if (!res.write(cur.value)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.on('drain', done);
          res.on('close', done);
        });
      }
      cur = next;
      next = it.next();
    }
    res.end();
  }

  // ----------------------------------------------------------------------------------------------
  // POST /v1/vectorize

  /**
   * POST /v1/vectorize: reads the body (callbacks, not a promise per request: this path runs per
   * request at tens of thousands a second), parses it, submits its texts, answers.
   */
  private vectorize(req: IncomingMessage, res: ServerResponse, query: string, conn: Connection): void {
    const fail = (e: unknown) => this.reply(res, this.errorOf(e), conn);
    let array: ArrayName = 'ids';
    if (query !== '') {
      const a = new URLSearchParams(query).get('array');
      if (a !== null) {
        if (!(ARRAYS as readonly string[]).includes(a)) {
          return fail(new HttpError(400, `array must be one of ${ARRAYS.map((x) => `'${x}'`).join(', ')}, got ${JSON.stringify(a)}`));
        }
        array = a as ArrayName;
      }
    }
    const npy = wantsNpy(req.headers.accept);
    const limit = this.bodyLimit;
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
      return fail(new HttpError(413, `the body of ${declared} bytes is over the limit of ${limit} bytes`, { connection: 'close' }));
    }
    let first: Buffer | null = null;
    let chunks: Buffer[] | null = null;
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        // The rest is not read; the connection closes after the answer.
        fail(new HttpError(413, `the body is over the limit of ${limit} bytes`, { connection: 'close' }));
        return;
      }
      if (first === null) first = chunk;
      else (chunks ??= [first]).push(chunk);
    };
    const onEnd = () => {
      cleanup();
      const raw = chunks !== null ? Buffer.concat(chunks, size) : (first ?? EMPTY);
      let pending: Promise<VectorBatch<Dtype, MaskDtype> | unknown[]>;
      try {
        pending = this.submitBody(raw, conn);
      } catch (e) {
        return fail(e);
      }
      pending.then((result) => {
        let r: Reply;
        try {
          r = this.answer(result, npy, array);
        } catch (e) {
          return fail(e);
        }
        this.reply(res, r, conn);
      }, fail);
    };
    // The client went away before the body ended: nothing to answer.
    const onClose = () => cleanup();
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
  }

  /** Parses and checks a body, and submits its texts (throws what is wrong with it). */
  private submitBody(raw: Buffer, conn: Connection): Promise<VectorBatch<Dtype, MaskDtype> | unknown[]> {
    let text: string;
    try {
      text = UTF8.decode(raw);
    } catch {
      // Decoding leniently would turn the bad bytes into U+FFFD before options.invalid could see them.
      throw new HttpError(400, 'the body is not valid UTF-8 (JSON text must be, RFC 8259)');
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw new HttpError(400, `invalid JSON: ${(e as Error).message}`);
    }
    if (!isPlainObject(body)) throw new HttpError(400, `the body must be a JSON object {"texts": [...], "options": {...}}, got ${jsonType(body)}`);
    for (const k in body) {
      if (!BODY_KEYS.has(k)) throw new HttpError(400, `unknown field ${JSON.stringify(k)} in the body (expected "texts" and "options")`);
    }
    const texts = body.texts;
    checkTexts(texts); // a single string would be one row to submit(): here texts must be an array
    const options = body.options as VectorizeOptions<Dtype, MaskDtype> | undefined;
    this.checkResultSize(texts, options);
    return this.pipeline.submit(texts as readonly string[], options, { signal: conn.signal });
  }

  /** The answer to a vectorize request. */
  private answer(result: VectorBatch<Dtype, MaskDtype> | unknown[], npy: boolean, array: ArrayName): Reply {
    if (Array.isArray(result)) {
      // A pipeline with a handler: its per-row results.
      if (npy) throw new HttpError(406, 'this pipeline has a handler: its results are JSON only');
      let json: string;
      try {
        json = JSON.stringify({ rows: result.length, results: result });
      } catch (e) {
        throw new Error(`the handler's results are not JSON: ${(e as Error).message}`);
      }
      return { status: 200, headers: { 'content-type': JSON_TYPE, 'x-dtesn-rows': result.length }, body: json };
    }
    const b = result;
    if (b.rows * b.width > this.maxResult) throw this.tooLarge(b.rows * b.width);
    if (npy) {
      const [head, data] =
        array === 'ids' ? encodeNpy(b.ids, [b.rows, b.width]) : array === 'attention_mask' ? encodeNpy(b.attentionMask, [b.rows, b.width]) : encodeNpy(b.lengths, [b.rows]);
      return { status: 200, headers: { 'content-type': NPY_TYPE, 'x-dtesn-rows': b.rows, 'x-dtesn-width': b.width }, body: [head, data] };
    }
    const chunks = batchJson(b);
    const one = chunks.next();
    const second = chunks.next();
    // Most answers are one chunk: a plain buffer, written in one call with its headers.
    const body: Buffer | Iterable<Buffer> = second.done ? (one.value as Buffer) : prepend([one.value as Buffer, second.value], chunks);
    return { status: 200, headers: { 'content-type': JSON_TYPE, 'x-dtesn-rows': b.rows, 'x-dtesn-width': b.width }, body };
  }

  private tooLarge(elements: number): HttpError {
    return new HttpError(
      400,
      `the result would hold up to ${elements} elements (rows x width), over this server's maxResultElements of ${this.maxResult}: send fewer texts or a smaller maxLength`,
    );
  }

  /**
   * Refuses a request whose result could exceed maxResultElements, before any work. Options the
   * library refuses are left for submit() to name.
   */
  private checkResultSize(texts: readonly unknown[], options: unknown): void {
    const rows = texts.length;
    if (rows === 0) return;
    let n = options === undefined ? this.defaultOptions : this.lastOptions.get(options);
    if (n === undefined) {
      try {
        n = normalizeOptions(mergeOptions(this.defaults, options));
      } catch {
        return;
      }
      if (options === undefined) this.defaultOptions = n;
      else if (isPlainObject(options)) this.lastOptions.set(options, n);
    }
    let width = n.maxLength;
    if (n.padding === 'longest') {
      let longest = 0;
      for (let i = 0; i < rows; i++) {
        const t = texts[i];
        if (typeof t === 'string' && t.length > longest) longest = t.length;
      }
      // A UTF-16 unit is at most 3 UTF-8 bytes, and at most one code point.
      const perUnit = n.encoding === 'utf8' || n.encoding === 'byt5' ? 3 : 1;
      width = Math.min(width, longest * perUnit + specialCount(n.encoding, n.addSpecialTokens));
    }
    const m = n.padToMultipleOf;
    if (width % m !== 0) width += m - (width % m);
    if (rows * width > this.maxResult) throw this.tooLarge(rows * width);
  }

  // ----------------------------------------------------------------------------------------------
  // GET /metrics, GET /healthz

  private async metricsReply(): Promise<Reply> {
    const text = await this.registry.metrics();
    return { status: 200, headers: { 'content-type': this.registry.contentType }, body: text };
  }

  private healthReply(): Reply {
    const health = this.monitor.health();
    const { active } = this.monitor.alerts();
    const m = this.pipeline.metrics();
    const critical = active.some((a) => a.severity === 'critical');
    const body = {
      status: critical ? 'critical' : 'ok',
      score: health.score,
      grade: health.grade,
      components: health.components,
      alerts: active,
      backend: m.backend,
      queueDepth: m.queueDepth,
      uptimeSeconds: m.uptimeSeconds,
    };
    return { status: critical ? 503 : 200, headers: { 'content-type': JSON_TYPE, 'cache-control': 'no-store' }, body: JSON.stringify(body) };
  }

  // ----------------------------------------------------------------------------------------------

  private drainedNow(): void {
    this.onDrained?.();
    this.drained?.();
  }

  /** Refuses new requests (503) from now on; resolves when none is in flight. */
  drain(): Promise<void> {
    this.closing = true;
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const prev = this.drained;
      this.drained = () => {
        prev?.();
        resolve();
      };
    });
  }

  /** Closes the pipeline and monitor it made and removes its metrics (once; after drain). */
  release(): Promise<void> {
    this.closing = true;
    this.released ??= (async () => {
      try {
        if (this.ownPipeline) await this.pipeline.close();
      } finally {
        if (this.ownMonitor) this.monitor.stop();
        this.unregister();
      }
    })();
    return this.released;
  }
}


function isPipelineConfig(p: unknown): p is PipelineConfig | undefined {
  return p === undefined || (typeof p === 'object' && p !== null && !isPipeline(p));
}

/** The pipeline to serve, and whether the service made it (and so closes it). */
export function servedPipeline(given: unknown): { pipeline: Pipeline; own: boolean; defaults: VectorizeOptions<Dtype, MaskDtype> | undefined } {
  if (isPipeline(given)) return { pipeline: given, own: false, defaults: undefined };
  if (!isPipelineConfig(given)) throw new TypeError(`options.pipeline must be a pipeline or a pipeline config, got ${describe(given)}`);
  const config = given ?? {};
  return { pipeline: createPipeline(config), own: true, defaults: config.vectorize };
}

const LISTENER_KEYS = new Set(['bodyLimit', 'maxResultElements', 'pipeline', 'monitor', 'registry', 'retryAfterSeconds', 'prefix']);

/**
 * A request listener with exactly `dtesn serve`'s routes, limits, errors and drain, for a server
 * of your own: `http.createServer(createRequestListener())`, or `app.use(listener)` in express.
 * Throws for bad options (a pipeline it made is closed again).
 */
export function createRequestListener(options: ListenerOptions = {}): RequestListener {
  if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
  for (const k of Object.keys(options)) if (!LISTENER_KEYS.has(k)) throw new TypeError(`unknown listener option '${k}'`);
  const { pipeline, own, defaults } = servedPipeline(options.pipeline);
  let svc: Service;
  try {
    svc = new Service(pipeline, options, { pipeline: own, defaults });
  } catch (e) {
    if (own) void pipeline.close();
    throw e;
  }
  let closed: Promise<void> | null = null;
  const listener = ((req: IncomingMessage, res: ServerResponse) => svc.handle(req, res)) as RequestListener;
  Object.defineProperties(listener, {
    pipeline: { value: pipeline, enumerable: true },
    monitor: { value: svc.monitor, enumerable: true },
    registry: { value: svc.registry, enumerable: true },
    closing: { get: () => svc.closing, enumerable: true },
    inFlight: { get: () => svc.inFlight, enumerable: true },
    close: { value: () => (closed ??= svc.drain().then(() => svc.release())) },
  });
  return listener;
}
