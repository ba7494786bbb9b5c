// `dtesn serve` on every core of one machine: node:cluster worker processes share the port (the
// primary hands out connections round-robin), each with its own pipeline of one pool thread (the
// processes are the parallelism), and the primary serves all their metrics summed by prom-client's
// AggregatorRegistry on a port of its own (a scrape of the shared port would reach one worker).
// Across machines, run copies of `dtesn serve` behind a load balancer and let Prometheus scrape each.
//
//   node examples/serve-cluster.mjs [--port 8080] [--metrics-port 9464] [--host 127.0.0.1] [--workers N]
//
// SIGTERM/SIGINT: every worker drains (finishes its in-flight requests) and exits, then the primary.
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { AggregatorRegistry, register } from 'prom-client';
import { closeOnSignals, startServer } from 'dtesn-pipeline/server';

const { values: v } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    'metrics-port': { type: 'string', default: '9464' },
    host: { type: 'string', default: '127.0.0.1' },
    workers: { type: 'string', default: String(os.availableParallelism()) },
  },
});

if (cluster.isPrimary) {
  const n = Number(v.workers);
  let ready = 0;
  cluster.on('message', (_worker, message) => {
    if (message === 'listening' && ++ready === n) console.log(`serve-cluster: ${n} workers on http://${v.host}:${v.port}, metrics on http://${v.host}:${v['metrics-port']}/metrics`);
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) console.error(`serve-cluster: worker ${worker.process.pid} exited (${signal ?? code})`);
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  });
  for (let i = 0; i < n; i++) cluster.fork();
  // Counters and histograms are summed over the workers; so are gauges (prom-client's default
  // aggregator): pool sizes and queue depths add up, a health score or a ratio does not.
  const aggregator = new AggregatorRegistry();
  createServer((req, res) => {
    if (req.url !== '/metrics') return res.writeHead(404).end();
    aggregator.clusterMetrics().then(
      (text) => res.writeHead(200, { 'content-type': aggregator.contentType }).end(text),
      (e) => res.writeHead(500).end(String(e)),
    );
  }).listen(Number(v['metrics-port']), v.host);
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  // registry: prom-client's global one, which the AggregatorRegistry of the primary collects. A
  // worker answers the primary's requests for it once an AggregatorRegistry exists in the worker
  // too (prom-client 15 sets its message listener up in the constructor).
  new AggregatorRegistry();
  const server = await startServer({ port: Number(v.port), host: v.host, registry: register, pipeline: { maxWorkers: 1 } });
  closeOnSignals(server);
  process.send?.('listening');
}
