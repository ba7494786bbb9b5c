/**
 * examples/serve-cluster.mjs: `dtesn serve` in node:cluster workers sharing one port, their metrics
 * summed by prom-client's AggregatorRegistry in the primary (README, "Past one machine").
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { Proc, freePort } from './fixtures/redis.js';

const EXAMPLE = fileURLToPath(new URL('../examples/serve-cluster.mjs', import.meta.url));

it('two cluster workers answer on one port; the primary serves their metrics summed; SIGTERM drains and exits', { timeout: 30_000 }, async () => {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const p = new Proc(spawn(process.execPath, [EXAMPLE, '--port', String(port), '--metrics-port', String(metricsPort), '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  try {
    await p.waitFor(/serve-cluster: 2 workers on/);
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        fetch(`http://127.0.0.1:${port}/v1/vectorize`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', connection: 'close' },
          body: JSON.stringify({ texts: [`text ${i}`] }),
        }).then((r) => r.json() as Promise<{ rows: number }>),
      ),
    );
    expect(answers.map((a) => a.rows)).toEqual(Array(12).fill(1));
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(text).toMatch(/^dtesn_http_requests_total\{route="\/v1\/vectorize",code="200"\} 12$/m);
    expect(text).toMatch(/^dtesn_items_processed_total 12$/m);
    expect(text).toMatch(/^dtesn_workers 2$/m); // one pool thread in each of the two processes, summed
  } finally {
    p.child.kill('SIGTERM');
  }
  expect(await p.exited).toEqual({ code: 0, signal: null });
});
