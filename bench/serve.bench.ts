/**
 * Load benchmark of the HTTP service (`dtesn serve`, src/server/server.ts): open loop against the plain
 * servers a user would write (bench/serve-open.ts: latency and capacity, from a cold start, and a
 * burst after idle), then closed-loop throughput with autocannon.
 *
 *   npm run bench:serve                                          # full run (~6 min), writes BENCHMARKS.md
 *   node --import tsx bench/serve.bench.ts --quick               # smoke run (~1 min)
 *   options: --sections open,closed  --duration <s>  --rounds <n>  --connections 1,16,64,256  --out <file>  --write <BENCHMARKS.md>
 *
 * Points: 1 text and 64 texts of workload (a) per request (ASCII, 20-120 chars, `{ maxLength: 128 }`),
 * at each connection count; every round visits every point once, so slow drifts of a shared
 * machine spread over all points instead of landing on one; figures are medians over rounds.
 *
 * The server runs in a child process (startServer, default pipeline config), the client here.
 * In one process autocannon's request building and response parsing would run on the server's
 * event loop and be counted as server time; apart, each has its own thread. On a 2-core machine
 * they still compete for the cores (and with the pipeline's workers), which the notes say.
 *
 * Writes bench/results/serve.json (quick: serve-quick.json) and prints the markdown table
 * (bench/serve-report.ts renders the same from the JSON). The pool runs dist/pipeline/pool/worker.js: run
 * `npx tsc -p tsconfig.json` after changing src/ (npm run bench:serve does).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { getBackend, vectorize } from '../src/index.js';
import { closeOnSignals, startServer } from '../src/server/server.js';
import { type MachineInfo, machineInfo, median, spliceInto, flag, opt } from './report.js';
import { SERVE_BEGIN, SERVE_END, type ServeBenchResults, type ServePoint, type ServeRun, renderServeMarkdown } from './serve-report.js';
import { runOpenLoop } from './serve-open.js';
import { workloadA } from './workloads.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const OPTIONS = { maxLength: 128 } as const;
const log = (msg: string) => process.stderr.write(`${msg}\n`);

// ------------------------------------------------------------------------------------------------
// The server process.

async function child(): Promise<void> {
  const srv = await startServer({ port: 0, host: '127.0.0.1' });
  closeOnSignals(srv);
  process.stdout.write(`listening ${srv.url}\n`);
}

// ------------------------------------------------------------------------------------------------



/** dtesn_batch_size's sum and count from /metrics (rows per batch the pipeline ran). */
async function batchTotals(url: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) => Number(/^(\S+) (\S+)$/m.exec(text.split('\n').find((l) => l.startsWith(`${name} `)) ?? '')?.[2] ?? NaN);
  return { sum: read('dtesn_batch_size_sum'), count: read('dtesn_batch_size_count') };
}

interface Payload {
  id: string;
  texts: number;
  bodies: string[];
}

function run(url: string, p: Payload, connections: number, durationSec: number): Promise<autocannon.Result> {
  let next = 0;
  return autocannon({
    url: `${url}/v1/vectorize`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    connections,
    duration: durationSec,
    // One request at a time per connection, as HTTP/1.1 clients do.
    pipelining: 1,
    requests: [
      {
        setupRequest: (req) => {
          req.body = p.bodies[next++ % p.bodies.length];
          return req;
        },
      },
    ],
  });
}

async function main(): Promise<void> {
  const quick = flag('quick');
  const durationSec = Number(opt('duration', quick ? '1' : '4'));
  const rounds = Number(opt('rounds', quick ? '1' : '3'));
  const connections = opt('connections', '1,16,64,256').split(',').map(Number);
  const outFile = path.resolve(opt('out', path.join(here, 'results', quick ? 'serve-quick.json' : 'serve.json')));
  const write = opt('write', '');
  if (!existsSync(path.join(here, '..', 'dist', 'pipeline', 'pool', 'worker.js'))) throw new Error('dist/pipeline/pool/worker.js is missing: run `npx tsc -p tsconfig.json` first (the pool runs the compiled worker)');

  const t0 = performance.now();
  const machine = machineInfo(getBackend());
  const res: ServeBenchResults = {
    schema: 1,
    kind: 'serve',
    date: new Date().toISOString(),
    durationSec: 0,
    machine,
    loadavg: { start: os.loadavg(), end: [] },
    config: {
      quick, durationSec, rounds, connections, options: OPTIONS,
      server: 'startServer on 127.0.0.1 in a child process, default pipeline config (maxWorkers = available cores, work-conserving micro-batching).',
      client: 'autocannon in this process, one request at a time per connection (no pipelining), bodies cycled from pre-serialized workload (a) requests.',
    },
    verified: [],
    points: [],
    open: null,
    notes: [],
  };
  log(`dtesn serve bench: ${machine.cpu}, ${machine.logicalCores} cores, Node ${machine.node}, load ${res.loadavg.start.map((x) => x.toFixed(2)).join(' ')}`);
  const sections = new Set(opt('sections', 'open,closed').split(','));
  if (sections.has('open')) {
    log('\n== open loop (fresh server per rate)');
    res.open = await runOpenLoop(quick, log);
  }
  if (!sections.has('closed')) return finish(res, t0, outFile, write);

  const texts = workloadA(20_000).texts;
  const payloads: Payload[] = [
    { id: '1 text', texts: 1, bodies: texts.slice(0, 4096).map((t) => JSON.stringify({ texts: [t], options: OPTIONS })) },
    {
      id: '64 texts',
      texts: 64,
      bodies: Array.from({ length: 256 }, (_, i) => JSON.stringify({ texts: texts.slice((i * 64) % (texts.length - 64), ((i * 64) % (texts.length - 64)) + 64), options: OPTIONS })),
    },
  ];

  const server = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\S+)\n/.exec(out);
      if (m) resolve(m[1]!);
    });
    server.once('exit', (code) => reject(new Error(`the server exited with code ${code}`)));
  });
  const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
  try {
    // Exactness first: the same bodies the load sends, against the core.
    for (const p of payloads) {
      const body = JSON.parse(p.bodies[1]!) as { texts: string[] };
      const got = (await (await fetch(`${url}/v1/vectorize`, { method: 'POST', body: p.bodies[1] })).json()) as { rows: number; width: number; ids: number[][]; attentionMask: number[][]; lengths: number[] };
      const want = vectorize(body.texts, OPTIONS);
      const rowsOf = (a: ArrayLike<number>) => Array.from({ length: want.rows }, (_, r) => Array.from(Array.prototype.slice.call(a, r * want.width, (r + 1) * want.width) as number[]));
      const same = JSON.stringify(got) === JSON.stringify({ rows: want.rows, width: want.width, ids: rowsOf(want.ids), attentionMask: rowsOf(want.attentionMask), lengths: Array.from(want.lengths) });
      res.verified.push({ payload: p.id, exact: same, detail: same ? null : 'the JSON answer differs from vectorize()' });
    }
    // Warm-up: JIT on both sides, the adaptive batch target.
    for (const p of payloads) await run(url, p, 16, quick ? 0.5 : 1);

    const points: ServePoint[] = [];
    for (const p of payloads) {
      for (const c of connections) {
        points.push({ payload: p.id, textsPerRequest: p.texts, connections: c, runs: [], requestsPerSec: 0, textsPerSec: 0, p50Ms: 0, p99Ms: 0, meanBatchRows: null, requestsPerSecRange: [0, 0] });
      }
    }
    for (let round = 1; round <= rounds; round++) {
      log(`\n== round ${round}/${rounds} (load ${os.loadavg()[0]!.toFixed(2)})`);
      for (const point of points) {
        const p = payloads.find((x) => x.id === point.payload)!;
        const before = await batchTotals(url);
        const r = await run(url, p, point.connections, durationSec);
        const after = await batchTotals(url);
        const ok = r['2xx'];
        const x: ServeRun = {
          round,
          durationSec: r.duration,
          requestsPerSec: ok / r.duration,
          textsPerSec: (ok * p.texts) / r.duration,
          p50Ms: r.latency.p50,
          p99Ms: r.latency.p99,
          non2xx: r.non2xx,
          errors: r.errors,
          timeouts: r.timeouts,
          meanBatchRows: after.count > before.count ? (after.sum - before.sum) / (after.count - before.count) : null,
        };
        point.runs.push(x);
        log(
          `  ${p.id.padEnd(8)} c=${String(point.connections).padStart(3)}: ${Math.round(x.requestsPerSec)} req/s, ${Math.round(x.textsPerSec)} texts/s, ` +
            `p50 ${x.p50Ms} ms, p99 ${x.p99Ms} ms, batch ${x.meanBatchRows?.toFixed(1) ?? 'n/a'} rows, non-2xx ${x.non2xx}, errors ${x.errors}`,
        );
      }
    }
    for (const point of points) {
      const rps = point.runs.map((x) => x.requestsPerSec);
      point.requestsPerSec = median(rps);
      point.textsPerSec = median(point.runs.map((x) => x.textsPerSec));
      point.p50Ms = median(point.runs.map((x) => x.p50Ms));
      point.p99Ms = median(point.runs.map((x) => x.p99Ms));
      const rows = point.runs.map((x) => x.meanBatchRows).filter((v): v is number => v !== null);
      point.meanBatchRows = rows.length ? median(rows) : null;
      point.requestsPerSecRange = [Math.min(...rps), Math.max(...rps)];
    }
    res.points = points;
  } finally {
    server.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) res.notes.push(`The server exited with code ${code} on SIGTERM (expected 0).`);
  }
  res.loadavg.end = os.loadavg();
  res.notes.push(
    `Shared machine: ${machine.availableParallelism} cores for the client, the server's event loop and its ${machine.availableParallelism} pipeline workers, ` +
      'plus other people\'s jobs (load average above). The client needs about as much CPU per request as the server, so these are ' +
      'figures for this client on this box, not the server\'s ceiling; the min–max column shows the run-to-run spread.',
    'Latency is autocannon\'s: from writing the request to the end of the answer, on loopback, closed loop (each connection sends its next ' +
      'request when the answer came), so p99 grows with connections once the server is saturated (queueing, not loss).',
  );
  return finish(res, t0, outFile, write);
}

function finish(res: ServeBenchResults, t0: number, outFile: string, write: string): void {
  if (res.loadavg.end.length === 0) res.loadavg.end = os.loadavg();
  res.durationSec = (performance.now() - t0) / 1e3;
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(res, null, 2)}\n`);
  const md = renderServeMarkdown(res);
  process.stdout.write(`\n${md}\n`);
  log(`wrote ${path.relative(process.cwd(), outFile)} in ${Math.round(res.durationSec)} s total`);
  if (write) {
    const file = path.resolve(write);
    const doc = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
    writeFileSync(file, spliceInto(doc, md, SERVE_BEGIN, SERVE_END));
    log(`updated ${path.relative(process.cwd(), file)}`);
  }
}

if (flag('child')) await child();
else
  await main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
