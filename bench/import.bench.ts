/**
 * What importing the package costs a fresh process (issue 17): wall time of `node <script>` and
 * its RSS at the end, for the addon alone (the napi-rs loader, index.cjs), the main entry
 * (`dtesn-pipeline`: the core and the pipeline), and the service entry (`dtesn-pipeline/server`),
 * each followed by one `vectorize` call; an empty script as the floor. Every case runs in its own
 * process, the cases interleaved round by round; medians.
 *
 *   npm run bench:import            # writes BENCHMARKS.md
 *   node --import tsx bench/import.bench.ts --rounds 5
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getBackend } from '../dist/index.js';
import { flag, machineInfo, machineTable, median, opt, spliceInto } from './report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const ROUNDS = Number(opt('rounds', flag('quick') ? '5' : '21'));
const WRITE = opt('write', '');
const BEGIN = '<!-- bench-import:begin -->';
const END = '<!-- bench-import:end -->';

const url = (p: string) => JSON.stringify(pathToFileURL(path.join(root, p)).href);
const report = "process.stdout.write(JSON.stringify({ rss: process.memoryUsage().rss }));";
const CASES = [
  { id: 'empty', label: 'an empty script (node itself)', code: report },
  {
    id: 'addon',
    label: 'the addon alone (index.cjs, the napi-rs loader and the .node)',
    code: `import { createRequire } from 'node:module'; const a = createRequire(import.meta.url)(${JSON.stringify(path.join(root, 'index.cjs'))}); void a; ${report}`,
  },
  { id: 'core', label: '`dtesn-pipeline` (dist/index.js) + one vectorize call', code: `const m = await import(${url('dist/index.js')}); m.vectorize(['a']); ${report}` },
  { id: 'server', label: '`dtesn-pipeline/server` (dist/server/server.js) + the core + one vectorize call', code: `await import(${url('dist/server/server.js')}); const m = await import(${url('dist/index.js')}); m.vectorize(['a']); ${report}` },
] as const;

function main(): void {
  if (!existsSync(path.join(root, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.json` first');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dtesn-import-'));
  const files = CASES.map((c) => {
    const f = path.join(dir, `${c.id}.mjs`);
    writeFileSync(f, c.code);
    return f;
  });
  const runs = CASES.map(() => ({ ms: [] as number[], rssMB: [] as number[] }));
  const loadStart = os.loadavg();
  try {
    for (let r = 0; r < ROUNDS + 1; r++) {
      CASES.forEach((c, i) => {
        const t0 = performance.now();
        const out = spawnSync(process.execPath, [files[i]!], { encoding: 'utf8' });
        const ms = performance.now() - t0;
        if (out.status !== 0) throw new Error(`${c.id}: ${out.stderr}`);
        if (r === 0) return; // the first round warms the page cache
        runs[i]!.ms.push(ms);
        runs[i]!.rssMB.push((JSON.parse(out.stdout) as { rss: number }).rss / 2 ** 20);
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const med = runs.map((x) => ({ ms: median(x.ms), rssMB: median(x.rssMB) }));
  const addon = med[1]!;
  const core = med[2]!;
  const out: string[] = [];
  out.push(...machineTable('Import cost', machineInfo(getBackend()), { start: loadStart, end: os.loadavg() }));
  out.push('');
  out.push(
    `Run ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC. Command: \`npm run bench:import\` (bench/import.bench.ts). ` +
      `Each case is a fresh \`node <script>\` process (Node ${process.version}); wall time of the process and its RSS at the end; ` +
      `medians of ${ROUNDS} interleaved rounds (a first round, not counted, warms the page cache).`,
  );
  out.push('');
  out.push('| what the process loads | wall ms (median) | min – max | RSS MB (median) | vs the addon alone |');
  out.push('|---|---:|---:|---:|---|');
  CASES.forEach((c, i) => {
    const m = med[i]!;
    const x = runs[i]!;
    out.push(
      `| ${c.label} | ${m.ms.toFixed(1)} | ${Math.min(...x.ms).toFixed(1)} – ${Math.max(...x.ms).toFixed(1)} | ${m.rssMB.toFixed(1)} | ` +
        `${i === 0 ? '' : `${(m.ms / addon.ms).toFixed(2)}x time, ${(m.rssMB / addon.rssMB).toFixed(2)}x RSS`} |`,
    );
  });
  const okT = core.ms <= addon.ms * 1.1;
  const okR = core.rssMB <= addon.rssMB * 1.1;
  out.push('');
  out.push(
    `- Target: importing \`dtesn-pipeline\` within 10% of the addon alone: time ${(core.ms / addon.ms).toFixed(2)}x (${okT ? 'yes' : '**no**'}), ` +
      `RSS ${(core.rssMB / addon.rssMB).toFixed(2)}x (${okR ? 'yes' : '**no**'}).`,
  );
  out.push('');
  const md = out.join('\n');
  process.stdout.write(`${md}\n`);
  if (WRITE) {
    const file = path.resolve(WRITE);
    writeFileSync(file, spliceInto(existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n', md, BEGIN, END));
  }
}

main();
