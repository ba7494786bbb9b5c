/**
 * The package as a consumer loads it: `import` and `require('dtesn-pipeline')` through the
 * package's own `exports` (a self-reference, so the compiled dist/ is what runs), in a fresh Node
 * process of the version running the suite, with nothing on stderr. CommonJS works through
 * require(esm), which needs no flag and prints no warning on the Node versions package.json
 * `engines` names (^20.19, ^22.13, >= 23.5). The full install path (tarballs, no Rust on the PATH,
 * the `dtesn` bin) is .ci/install-test.sh.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Runs `code` as a CommonJS (`.cjs`) or ESM (`.mjs`) entry point with the package root as cwd. */
function run(kind: 'cjs' | 'mjs', code: string): { status: number | null; stdout: string; stderr: string } {
  const flag = kind === 'cjs' ? '--input-type=commonjs' : '--input-type=module';
  const r = spawnSync(process.execPath, [flag, '-e', code], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, DTESN_BACKEND: 'native', NODE_OPTIONS: '' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const probe = `
  const b = vectorize(['hello', 'wörld 😀'], { encoding: 'byt5', maxLength: 16 });
  const info = getBackend();
  console.log(JSON.stringify({ kind: info.kind, version: info.version, row0: Array.from(b.ids.subarray(0, 6)), errors: typeof QueueFullError }));
`;
const expected = { kind: 'native', version: pkg.version, row0: [107, 104, 111, 111, 114, 1], errors: 'function' };

describe(`the package entry points on Node ${process.version}`, () => {
  it('require() resolves to the ESM build and works without a warning', () => {
    const r = run('cjs', `const { vectorize, getBackend, QueueFullError } = require('dtesn-pipeline');${probe}`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(expected);
  });

  it('import works without a warning', () => {
    const r = run('mjs', `import { vectorize, getBackend, QueueFullError } from 'dtesn-pipeline';${probe}`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(expected);
  });

  it('require and import get the same module instance (no dual-package state)', () => {
    const r = run(
      'mjs',
      `import { createRequire } from 'node:module';
       import * as esm from 'dtesn-pipeline';
       const cjs = createRequire(import.meta.url)('dtesn-pipeline');
       console.log(cjs.QueueFullError === esm.QueueFullError && cjs.vectorize === esm.vectorize);`,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('true');
  });

  it('both conditions resolve to dist/index.js', () => {
    const require = createRequire(import.meta.url);
    expect(require.resolve('dtesn-pipeline')).toBe(fileURLToPath(new URL('../dist/index.js', import.meta.url)));
    expect(import.meta.resolve('dtesn-pipeline')).toBe(new URL('../dist/index.js', import.meta.url).href);
  });
});
