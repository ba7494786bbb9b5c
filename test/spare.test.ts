/** src/common/spare.ts: buffers handed back are handed out again (same size only), within the cap, and dropped when idle. */
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { SPARE_IDLE_MS, SPARE_MAX_BYTES, giveBack, takeBuffer } from '../src/common/spare.js';

// The idle timer is the module's; fake from the first buffer given back on, and every test ends idle.
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.advanceTimersByTime(SPARE_IDLE_MS + 1);
  vi.useRealTimers();
});

it('a buffer given back is taken again by a request of its size, once; other sizes get new buffers', () => {
  const a = takeBuffer(12345);
  giveBack(a);
  expect(takeBuffer(12346)).not.toBe(a);
  expect(takeBuffer(12345)).toBe(a);
  expect(takeBuffer(12345)).not.toBe(a); // handed out once
});

it(`keeps at most ${SPARE_MAX_BYTES >> 20} MiB, and nothing after ${SPARE_IDLE_MS} ms without a buffer given back`, () => {
  const size = 8 << 20;
  const bufs = Array.from({ length: SPARE_MAX_BYTES / size + 2 }, () => takeBuffer(size));
  for (const b of bufs) giveBack(b);
  const again = Array.from({ length: bufs.length }, () => takeBuffer(size));
  expect(again.filter((b) => bufs.includes(b))).toHaveLength(SPARE_MAX_BYTES / size);
  for (const b of again) giveBack(b);
  vi.advanceTimersByTime(SPARE_IDLE_MS + 1);
  expect(again.includes(takeBuffer(size))).toBe(false);
});
