#!/usr/bin/env node
// Builds bench/simdutf-addon/build/simdutf_job.node: the vectorize job done with simdutf, the
// outside reference of the vectorize bench (see simdutf_job.cc). simdutf's C++ comes from the
// `simdutf` crate that crates/dtesn-core names as an optional dependency (its amalgamated
// simdutf.cpp / simdutf.h), located with `cargo metadata` (which fetches the crate from the
// registry if it is not there yet). Built like ../floor-addon (see ../addons.mjs); for the
// benchmark only, never shipped, never built by `npm install` or the tests.
//
//   node bench/simdutf-addon/build.mjs          # build if needed, print the .node path
//   node bench/simdutf-addon/build.mjs --force  # always rebuild
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon } from '../addons.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..', '..');

export function simdutfAddonPath() {
  return path.join(here, 'build', 'simdutf_job.node');
}

/** The directory holding simdutf.cpp and simdutf.h, and simdutf's version. */
export function simdutfSources() {
  const meta = JSON.parse(
    execFileSync('cargo', ['metadata', '--format-version', '1', '--features', 'dtesn-core/simdutf'], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 64 << 20,
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const pkg = meta.packages.find((p) => p.name === 'simdutf');
  if (!pkg) throw new Error('cargo metadata lists no simdutf package (crates/dtesn-core feature "simdutf")');
  const dir = path.join(path.dirname(pkg.manifest_path), 'cpp');
  if (!existsSync(path.join(dir, 'simdutf.cpp'))) throw new Error(`no simdutf.cpp in ${dir}`);
  return { dir, crateVersion: pkg.version };
}

export function buildSimdutfAddon({ force = false, quiet = false } = {}) {
  const { dir } = simdutfSources();
  return buildAddon({
    out: simdutfAddonPath(),
    sources: [path.join(here, 'simdutf_job.cc'), path.join(dir, 'simdutf.cpp')],
    inputs: [fileURLToPath(import.meta.url), path.join(dir, 'simdutf.h')],
    // simdutf picks its kernels at run time (SIMDUTF_FORCE_IMPLEMENTATION overrides).
    args: [`-I${dir}`],
    label: 'simdutf-addon',
    force,
    quiet,
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(buildSimdutfAddon({ force: process.argv.includes('--force') }));
}
