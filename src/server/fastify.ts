/**
 * `dtesn-pipeline/fastify`: the service as a fastify plugin, with exactly `dtesn serve`'s routes,
 * limits, errors and drain, under the prefix it is registered with:
 *
 *   import dtesn from 'dtesn-pipeline/fastify';
 *   await app.register(dtesn, { prefix: '/dtesn', pipeline: { maxWorkers: 2 } });
 *   // POST /dtesn/v1/vectorize, GET /dtesn/metrics, GET /dtesn/healthz
 *
 * The routes read their own bodies (fastify's parsers are switched off inside the plugin only, so
 * the body limit, the UTF-8 check and the error messages are the service's); the plugin is
 * encapsulated, so nothing leaks into the rest of the app. On the app's close (`onClose`) the
 * service drains and closes the pipeline and monitor it made. fastify is an optional peer
 * dependency: only this entry point needs it.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { type ListenerOptions, Service, VECTORIZE_PATH, servedPipeline } from './listener.js';
import { describe } from '../common/check.js';
import { warmUp } from './server.js';

/** The plugin's options: the listener's (prefix comes from fastify's own `prefix`) and the warm-up. */
export interface DtesnFastifyOptions extends Omit<ListenerOptions, 'prefix'> {
  /** [1000] as ServerOptions.warmup: requests through a private copy of the service before the plugin is ready. 0: none. */
  warmup?: number;
}

/** What fastify passes with every plugin's options (register's own). */
const FASTIFY_KEYS = new Set(['prefix', 'logLevel', 'logSerializers']);
const PLUGIN_KEYS = new Set(['bodyLimit', 'maxResultElements', 'pipeline', 'monitor', 'registry', 'retryAfterSeconds', 'warmup']);

const dtesnFastify: FastifyPluginAsync<DtesnFastifyOptions> = async (app: FastifyInstance, options: DtesnFastifyOptions) => {
  if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
  const listenerOptions: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (FASTIFY_KEYS.has(k)) continue;
    if (!PLUGIN_KEYS.has(k)) throw new TypeError(`unknown dtesn plugin option '${k}'`);
    if (k !== 'warmup') listenerOptions[k] = v;
  }
  const warmup = options.warmup ?? 1000;
  if (typeof warmup !== 'number' || !Number.isInteger(warmup) || warmup < 0 || warmup > 1_000_000) {
    throw new RangeError(`options.warmup must be an integer in [0, 1000000], got ${String(warmup)}`);
  }
  const { pipeline, own, defaults } = servedPipeline(options.pipeline);
  let svc: Service;
  try {
    if (warmup > 0) await warmUp(warmup, defaults);
    svc = new Service(pipeline, listenerOptions, { pipeline: own, defaults });
  } catch (e) {
    if (own) await pipeline.close();
    throw e;
  }
  // Bodies stay unread for the service (encapsulated: only this plugin's routes).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  for (const path of [VECTORIZE_PATH, '/metrics', '/healthz']) {
    app.all(path, (request, reply) => {
      reply.hijack();
      const url = request.raw.url ?? '';
      const q = url.indexOf('?');
      svc.handle(request.raw, reply.raw, path, q < 0 ? '' : url.slice(q + 1));
    });
  }
  app.addHook('onClose', async () => {
    await svc.drain();
    await svc.release();
  });
};

export default dtesnFastify;
export { dtesnFastify };
