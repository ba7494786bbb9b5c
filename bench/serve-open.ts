/**
 * The open-loop part of the serve bench (issue 13): each contender server, at each offered rate,
 * in a **fresh** process started while the load generator (bench/http-load.ts, its own process)
 * is already loaded and waiting, so the schedule starts the moment the server listens (a cold
 * start, as after a deploy). One text per request (workload (a), `{ maxLength: 128 }`); latency
 * from each request's due time. Then a burst after idle: a fresh server, 2 s idle with 512 idle
 * keep-alive connections open, then 500 requests within 25 ms.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadOptions, LoadResult } from './http-load.js';
import { workloadA } from './workloads.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const P99_BOUND_MS = 50;

export type ServerKind = 'dtesn' | 'plain' | 'plain-greedy';
export type Model = 'none' | 'blocking';

export const SERVER_LABELS: Record<ServerKind, string> = {
  dtesn: '`dtesn serve` (startServer, defaults)',
  plain: 'plain node:http + core `vectorize` (+ handler) per request',
  'plain-greedy': 'plain node:http + greedy batcher',
};

export interface OpenRun extends LoadResult {
  server: ServerKind;
  model: Model;
  ok: boolean;
}

export interface OpenLoopResults {
  rates: OpenRun[];
  capacity: { server: ServerKind; model: Model; rate: number | null }[];
  bursts: OpenRun[];
  secondsPerRate: number;
}

function lines(child: ChildProcess, match: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = match.exec(out);
      if (m) {
        child.stdout!.off('data', onData);
        resolve(m[1] ?? m[0]);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${child.spawnfile} exited with code ${code} before printing ${match}`)));
  });
}

/** One load against a fresh server: the client first, then the server, then the schedule. */
export async function oneRun(server: ServerKind, model: Model, load: Omit<LoadOptions, 'host' | 'port' | 'path'>): Promise<OpenRun> {
  const client = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'http-load.ts'), '--stdin'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await lines(client, /ready\n/);
  const srv = spawn(process.execPath, [process.env.DTESN_CHILD ?? path.join(here, 'serve-child.mjs'), server, model], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const url = new URL(await lines(srv, /listening (\S+)\n/));
    const result = lines(client, /^(\{.*\})\n/m);
    client.stdin.end(JSON.stringify({ ...load, host: url.hostname, port: Number(url.port), path: '/v1/vectorize' }));
    // JSON has no Infinity (a request without a 200): it arrives as null.
    const r = JSON.parse(await result, (_k, v: unknown) => (v === null ? Number.POSITIVE_INFINITY : v)) as LoadResult;
    const answered = r.status['200'] ?? 0;
    return { ...r, server, model, ok: answered === r.sent && r.p99Ms <= P99_BOUND_MS };
  } finally {
    srv.kill('SIGTERM');
    client.kill('SIGTERM');
    await Promise.all([new Promise((r) => srv.once('exit', r)), new Promise((r) => (client.exitCode !== null ? r(null) : client.once('exit', r)))]);
  }
}

export async function runOpenLoop(quick: boolean, log: (m: string) => void): Promise<OpenLoopResults> {
  const texts = workloadA(4096).texts;
  const bodies = texts.map((t) => JSON.stringify({ texts: [t], options: { maxLength: 128 } }));
  const seconds = quick ? 1.5 : 3;
  const res: OpenLoopResults = { rates: [], capacity: [], bursts: [], secondsPerRate: seconds };
  const plans: { model: Model; servers: ServerKind[]; rates: number[] }[] = [
    { model: 'none', servers: ['dtesn', 'plain'], rates: quick ? [1000, 3000] : [1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000] },
    { model: 'blocking', servers: ['dtesn', 'plain', 'plain-greedy'], rates: quick ? [250, 1000, 2000] : [250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000] },
  ];
  for (const plan of plans) {
    const fails = new Map<ServerKind, number>(plan.servers.map((s) => [s, 0]));
    for (const rate of plan.rates) {
      for (const server of plan.servers) {
        if (fails.get(server)! >= 2) continue;
        const r = await oneRun(server, plan.model, { bodies, rate, seconds });
        res.rates.push(r);
        fails.set(server, r.ok ? 0 : fails.get(server)! + 1);
        log(
          `  open ${plan.model.padEnd(8)} ${server.padEnd(12)} ${String(rate).padStart(6)}/s: p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, ` +
            `p99 by second ${r.p99BySecond.map((x) => x.toFixed(0)).join(' ')}, status ${JSON.stringify(r.status)}, errors ${r.errors}, unfinished ${r.unfinished}, connections ${r.connections} ${r.ok ? 'ok' : 'FAIL'}`,
        );
      }
    }
    for (const server of plan.servers) {
      const oks = res.rates.filter((r) => r.model === plan.model && r.server === server && r.ok).map((r) => r.rate);
      res.capacity.push({ server, model: plan.model, rate: oks.length ? Math.max(...oks) : null });
    }
  }
  for (const plan of plans) {
    for (const server of plan.servers) {
      const r = await oneRun(server, plan.model, { bodies, rate: 20_000, seconds: 0.025, startDelayMs: 2000, preconnect: 512 });
      res.bursts.push(r);
      log(`  burst ${plan.model.padEnd(8)} ${server.padEnd(12)} ${r.sent} requests: p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms, status ${JSON.stringify(r.status)}`);
    }
  }
  return res;
}

const fmtMs = (ms: number) => (!Number.isFinite(ms) ? '∞' : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

/** The targets of issue 13 for the service, from an open-loop run. */
export function openTargets(o: OpenLoopResults): { name: string; value: string; target: string; pass: boolean | null }[] {
  const cap = (s: ServerKind, m: Model) => o.capacity.find((c) => c.server === s && c.model === m)?.rate ?? null;
  const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? a / b : null);
  const none = ratio(cap('dtesn', 'none'), cap('plain', 'none'));
  const blocking = ratio(cap('dtesn', 'blocking'), cap('plain', 'blocking'));
  const greedy = ratio(cap('dtesn', 'blocking'), cap('plain-greedy', 'blocking'));
  const f = (r: number | null, a: number | null, b: number | null) => `${r?.toFixed(2) ?? 'n/a'}x (${a ?? 'none'} vs ${b ?? 'none'} req/s)`;
  return [
    { name: 'capacity, no handler: dtesn serve / plain server', value: f(none, cap('dtesn', 'none'), cap('plain', 'none')), target: '>= 1.0x', pass: none === null ? null : none >= 1 },
    { name: 'capacity, blocking handler: dtesn serve / plain server with the handler per request', value: f(blocking, cap('dtesn', 'blocking'), cap('plain', 'blocking')), target: '>= 5x (goal 8x)', pass: blocking === null ? null : blocking >= 5 },
    { name: 'capacity, blocking handler: dtesn serve / plain server + greedy batcher', value: f(greedy, cap('dtesn', 'blocking'), cap('plain-greedy', 'blocking')), target: '(reference)', pass: null },
  ];
}

export function renderOpenLoop(o: OpenLoopResults): string[] {
  const out: string[] = [];
  out.push(
    `**Open loop** (bench/serve-open.ts): one text per request at a constant rate for ${o.secondsPerRate} s, latency from each request's due time ` +
      '(bench/http-load.ts: raw keep-alive sockets, one request at a time per connection, up to 1,024 connections, in its own process); ' +
      'every rate on a **fresh** server process whose load starts the moment it listens (cold start). Capacity: the highest rate with ' +
      `p99 <= ${P99_BOUND_MS} ms and every answer 200. A contender stops after two failing rates.`,
  );
  out.push('');
  out.push('| target | value | bound | pass |');
  out.push('|---|---|---|---|');
  for (const t of openTargets(o)) out.push(`| ${t.name} | ${t.value} | ${t.target} | ${t.pass == null ? 'n/a' : t.pass ? 'yes' : '**no**'} |`);
  out.push('');
  for (const model of ['none', 'blocking'] as const) {
    const rows = o.rates.filter((r) => r.model === model);
    if (!rows.length) continue;
    const servers = [...new Set(rows.map((r) => r.server))];
    const rates = [...new Set(rows.map((r) => r.rate))].sort((a, b) => a - b);
    out.push(`#### ${model === 'none' ? 'No handler' : 'Blocking handler (2 ms + 5 us/row on the event loop)'}: p50 / p99 ms (p99 of the first second)`);
    out.push('');
    out.push(`| req/s | ${servers.map((s) => SERVER_LABELS[s]).join(' | ')} |`);
    out.push(`|---:|${servers.map(() => '---').join('|')}|`);
    for (const rate of rates) {
      const cells = servers.map((s) => {
        const r = rows.find((x) => x.server === s && x.rate === rate);
        if (!r) return '–';
        const lost = r.sent - (r.status['200'] ?? 0);
        return `${fmtMs(r.p50Ms)} / ${r.ok ? fmtMs(r.p99Ms) : `**${fmtMs(r.p99Ms)}**`} (${fmtMs(r.p99BySecond[0] ?? NaN)})${lost ? `, ${lost} not 200` : ''}`;
      });
      out.push(`| ${rate.toLocaleString('en-US')} | ${cells.join(' | ')} |`);
    }
    out.push(`| **capacity** | ${servers.map((s) => `**${o.capacity.find((c) => c.server === s && c.model === model)?.rate?.toLocaleString('en-US') ?? 'none'}**`).join(' | ')} |`);
    out.push('');
  }
  if (o.bursts.length) {
    out.push('#### A burst after 2 s idle (fresh server, 512 idle keep-alive connections; 500 requests within 25 ms): latency from each request’s due time, ms');
    out.push('');
    out.push('| model | server | p50 | p99 | max | answers |');
    out.push('|---|---|---:|---:|---:|---|');
    for (const b of o.bursts) out.push(`| ${b.model} | ${SERVER_LABELS[b.server]} | ${fmtMs(b.p50Ms)} | ${fmtMs(b.p99Ms)} | ${fmtMs(b.maxMs)} | ${JSON.stringify(b.status)} |`);
    out.push('');
  }
  return out;
}
