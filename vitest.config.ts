import { defineConfig } from 'vitest/config';

// VITEST_JSON=<file> adds a JSON report beside the console one (.ci/run sums them into one line).
const json = process.env.VITEST_JSON;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    reporters: json ? ['default', ['json', { outputFile: json }]] : ['default'],
  },
});
