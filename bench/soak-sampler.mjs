// Loaded with `node --import bench/soak-sampler.mjs ...` into the process a soak measures (a
// `dtesn serve` or a `dtesn vectorize`): appends its memory every DTESN_SOAK_SAMPLE_MS to the
// file DTESN_SOAK_SAMPLES, one JSON line each ({ t: seconds since start, rss, heapUsed,
// heapTotal, external, arrayBuffers }, bytes), and once more as it exits. Nothing else changes.
import { appendFileSync } from 'node:fs';

const file = process.env.DTESN_SOAK_SAMPLES;
const every = Number(process.env.DTESN_SOAK_SAMPLE_MS ?? 10000);
if (file) {
  const t0 = performance.now();
  const sample = () => {
    const m = process.memoryUsage();
    const line = { t: (performance.now() - t0) / 1000, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
    appendFileSync(file, `${JSON.stringify(line)}\n`);
  };
  setInterval(sample, every).unref();
  process.on('exit', sample);
}
