#!/usr/bin/env node
// Builds bench/floor-addon/build/floor.node (see ../addons.mjs: local headers, nothing downloaded,
// skipped when up to date). For the benchmark only: this addon is never shipped.
//
//   node bench/floor-addon/build.mjs          # build if needed, print the .node path
//   node bench/floor-addon/build.mjs --force  # always rebuild
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon } from '../addons.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

export function floorAddonPath() {
  return path.join(here, 'build', 'floor.node');
}

export function buildFloorAddon({ force = false, quiet = false } = {}) {
  return buildAddon({
    out: floorAddonPath(),
    sources: [path.join(here, 'floor.cc')],
    inputs: [fileURLToPath(import.meta.url)],
    args: process.arch === 'x64' ? ['-march=x86-64-v2'] : [],
    label: 'floor-addon',
    force,
    quiet,
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(buildFloorAddon({ force: process.argv.includes('--force') }));
}
