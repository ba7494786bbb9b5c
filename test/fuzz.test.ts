/**
 * The JS-side fuzz (test/fuzz/vectorize.fuzz.ts) in a child process, bounded: native against the
 * fallback on random and hostile input, and the binding on junk arguments. A child, so that a
 * crash or a hang of the binding fails this test (with the case that did it) instead of taking
 * the test runner down. `npm run fuzz` runs the same for as long as FUZZ_SECONDS says.
 *
 * Two runs: seed 2 with 20,000 cases a property (on the code before the fixes it met the stale
 * `length` of a detached view in V8's optimized code at case 4,067 of the strings property), then
 * fresh seeds for 25 s (printed; to replay one: FUZZ_SEED=<seed> npm run fuzz).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('./fuzz/vectorize.fuzz.ts', import.meta.url));

function fuzz(env: Record<string, string>): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 150_000,
    killSignal: 'SIGKILL',
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}${r.signal ? `\n(killed by ${r.signal})` : ''}` };
}

describe('fuzz: vectorize / vectorizeBytes, native against the fallback', () => {
  it('seed 2, 20,000 cases a property', { timeout: 160_000 }, () => {
    const r = fuzz({ FUZZ_SEED: '2', FUZZ_RUNS: '20000' });
    expect(r.out).toMatch(/FUZZ OK: 50000 cases, 1 rounds/);
    expect(r.status, r.out).toBe(0);
  });

  it('fresh seeds for 25 s', { timeout: 160_000 }, () => {
    const r = fuzz({ FUZZ_SECONDS: '25', FUZZ_RUNS: '5000' });
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/FUZZ OK: \d+ cases/);
    console.log(r.out.trim().split('\n').slice(-2).join('\n'));
  });
});
