#!/usr/bin/env node
// Builds bench/floor-addon/build/floor.node with a direct g++ call against the headers of the
// running Node (<prefix>/include/node, prefix = dirname(dirname(process.execPath))) and
// node-addon-api from node_modules. Nothing is downloaded. Skips the build when the output is newer
// than its inputs and was built for the same Node/compiler flags. For the benchmark only: this
// addon is never shipped.
//
//   node bench/floor-addon/build.mjs          # build if needed, print the .node path
//   node bench/floor-addon/build.mjs --force  # always rebuild
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export function floorAddonPath() {
  return path.join(here, 'build', 'floor.node');
}

function nodeIncludeDir() {
  const candidates = [
    process.env.DTESN_NODE_INCLUDE,
    path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean);
  for (const dir of candidates) if (existsSync(path.join(dir, 'node_api.h'))) return dir;
  throw new Error(`node_api.h not found (looked in ${candidates.join(', ')}); set DTESN_NODE_INCLUDE`);
}

export function buildFloorAddon({ force = false, quiet = false } = {}) {
  const require = createRequire(import.meta.url);
  const addonApiDir = path.dirname(require.resolve('node-addon-api/package.json'));
  const src = path.join(here, 'floor.cc');
  const out = floorAddonPath();
  const stampFile = out + '.stamp';
  const cxx = process.env.CXX || 'g++';
  const arch = process.arch === 'x64' ? ['-march=x86-64-v2'] : [];
  const args = [
    '-O3', ...arch, '-std=c++17', '-shared', '-fPIC', '-fvisibility=hidden',
    `-I${nodeIncludeDir()}`, `-I${addonApiDir}`,
    '-DNAPI_VERSION=8', '-DNAPI_DISABLE_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED',
    ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : []),
    '-o', out, src,
  ];
  const stamp = JSON.stringify({ node: process.version, cxx, args });
  if (!force && existsSync(out) && existsSync(stampFile)) {
    const outTime = statSync(out).mtimeMs;
    const inputs = [src, fileURLToPath(import.meta.url), path.join(addonApiDir, 'napi.h'), path.join(addonApiDir, 'napi-inl.h')];
    const fresh = inputs.every((f) => statSync(f).mtimeMs <= outTime);
    if (fresh && readFileSync(stampFile, 'utf8') === stamp) return out;
  }
  mkdirSync(path.dirname(out), { recursive: true });
  if (!quiet) console.error(`[floor-addon] ${cxx} ${args.join(' ')}`);
  execFileSync(cxx, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  writeFileSync(stampFile, stamp);
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(buildFloorAddon({ force: process.argv.includes('--force') }));
}
