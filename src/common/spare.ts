/**
 * Spare I/O buffers, reused from one file to the next within a process: a queue worker reads and
 * writes a few files per shard, and fresh multi-MiB buffers for each (read chunks, the tensor
 * writer's staging and copy buffers, the sha256 reads) made V8 run a full mark-compact about once
 * per shard (--trace-gc: 16 in a 563 MB run of 18 shards, against 1 for the same file in one
 * pass), since fresh ArrayBuffers count against its external-memory limit. Buffers come back
 * only when nothing reads or writes them; at most SPARE_MAX_BYTES are kept, and all are dropped
 * after SPARE_IDLE_MS without use, so a process that wrote one file does not keep them.
 */

/** The most bytes kept spare. */
export const SPARE_MAX_BYTES = 64 << 20;
/** Spares unused this long are dropped. */
export const SPARE_IDLE_MS = 2000;

const spares = new Map<number, ArrayBuffer[]>();
let kept = 0;
let timer: NodeJS.Timeout | null = null;

/** An ArrayBuffer of `bytes` bytes: a spare one (contents undefined) or a new one. */
export function takeBuffer(bytes: number): ArrayBuffer {
  const b = spares.get(bytes)?.pop();
  if (b === undefined) return new ArrayBuffer(bytes);
  kept -= bytes;
  return b;
}

/** Hands back a buffer that no read, write or view in use touches any more. */
export function giveBack(b: ArrayBuffer): void {
  if (b.byteLength === 0 || kept + b.byteLength > SPARE_MAX_BYTES) return;
  let list = spares.get(b.byteLength);
  if (list === undefined) spares.set(b.byteLength, (list = []));
  list.push(b);
  kept += b.byteLength;
  if (timer) timer.refresh();
  else {
    timer = setTimeout(() => {
      spares.clear();
      kept = 0;
      timer = null;
    }, SPARE_IDLE_MS);
    timer.unref();
  }
}
