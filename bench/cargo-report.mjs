// Renders the latest `cargo bench -p dtesn-core` results (criterion's JSON under target/criterion)
// as a markdown table: median GB/s of input bytes per kernel and SIMD path, beside memcpy.
// Usage: node bench/cargo-report.mjs  (after `cargo bench -p dtesn-core --bench kernels --bench records`)
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../target/criterion/', import.meta.url).pathname;
const rows = [];
function walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() && e.name === 'new' && existsSync(join(p, 'benchmark.json'))) {
      const b = JSON.parse(readFileSync(join(p, 'benchmark.json'), 'utf8'));
      const est = JSON.parse(readFileSync(join(p, 'estimates.json'), 'utf8'));
      const bytes = b.throughput?.Bytes ?? b.throughput?.BytesDecimal;
      if (bytes) rows.push({ group: b.group_id, fn: b.function_id, gbs: bytes / est.median.point_estimate });
    } else if (e.isDirectory() && e.name !== 'report' && e.name !== 'base') walk(p);
  }
}
walk(root);
const groups = [...new Set(rows.map((r) => r.group))].sort();
const out = ['| group | kernel | path | median GB/s |', '|---|---|---|---|'];
for (const g of groups) {
  for (const r of rows.filter((x) => x.group === g).sort((a, b) => a.fn.localeCompare(b.fn))) {
    const [kernel, path = ''] = r.fn.split('/');
    out.push(`| ${g} | ${kernel} | ${path} | ${r.gbs.toFixed(2)} |`);
  }
}
console.log(out.join('\n'));
