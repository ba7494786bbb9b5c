// Builds the bench's small node-addon-api addons (bench/floor-addon, bench/simdutf-addon) with a
// direct C++ compiler call against the headers of the running Node (<prefix>/include/node,
// prefix = dirname(dirname(process.execPath))) and node-addon-api from node_modules. Nothing is
// downloaded. Skips the build when the output is newer than its inputs and was built for the same
// Node/compiler flags. For the benchmarks only: these addons are never shipped, and neither
// `npm install` nor the tests build them.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export function nodeIncludeDir() {
  const candidates = [
    process.env.DTESN_NODE_INCLUDE,
    path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean);
  for (const dir of candidates) if (existsSync(path.join(dir, 'node_api.h'))) return dir;
  throw new Error(`node_api.h not found (looked in ${candidates.join(', ')}); set DTESN_NODE_INCLUDE`);
}

/**
 * Compiles `sources` into `out` (a .node file). `inputs` are extra files whose change forces a
 * rebuild (headers, the calling build script); `args` extra compiler arguments (before the
 * sources); `label` prefixes the printed command.
 */
export function buildAddon({ out, sources, inputs = [], args = [], label, force = false, quiet = false }) {
  const require = createRequire(import.meta.url);
  const addonApiDir = path.dirname(require.resolve('node-addon-api/package.json'));
  const stampFile = out + '.stamp';
  const cxx = process.env.CXX || 'g++';
  const all = [
    '-O3', '-std=c++17', '-shared', '-fPIC', '-fvisibility=hidden',
    `-I${nodeIncludeDir()}`, `-I${addonApiDir}`,
    '-DNAPI_VERSION=8', '-DNAPI_DISABLE_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED',
    ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : []),
    ...args,
    '-o', out, ...sources,
  ];
  const stamp = JSON.stringify({ node: process.version, cxx, args: all });
  if (!force && existsSync(out) && existsSync(stampFile)) {
    const outTime = statSync(out).mtimeMs;
    const deps = [...sources, ...inputs, path.join(addonApiDir, 'napi.h'), path.join(addonApiDir, 'napi-inl.h')];
    const fresh = deps.every((f) => statSync(f).mtimeMs <= outTime);
    if (fresh && readFileSync(stampFile, 'utf8') === stamp) return out;
  }
  mkdirSync(path.dirname(out), { recursive: true });
  if (!quiet) console.error(`[${label}] ${cxx} ${all.join(' ')}`);
  execFileSync(cxx, all, { stdio: ['ignore', 'inherit', 'inherit'] });
  writeFileSync(stampFile, stamp);
  return out;
}
