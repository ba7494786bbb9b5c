/**
 * The piscina worker: loads the native binding once per thread (or the fallback) and runs the
 * pipeline's tasks. Inputs and outputs of vectorize tasks live in SharedArrayBuffers, so a task
 * message carries only views (no copy of the text or of the ids); `process` tasks run a user
 * module over items, one result per item, catching each item's error on its own.
 */
import { jsBackend, packOptions, type Backend, type NativeBinding } from '../../vectorize/backends.js';
import { processBackend } from '../../vectorize/choose.js';
import type { NormalizedOptions } from '../../vectorize/options.js';

const chosen = processBackend();
const binding: NativeBinding | null = chosen.binding;
const native: Backend | null = binding ? chosen.backend : null;

export interface MeasureTask {
  kind: 'measure';
  js: boolean;
  bytes: Uint8Array;
  offsets: Uint32Array;
  options: NormalizedOptions;
}

export interface VectorizeTask {
  kind: 'vectorize';
  js: boolean;
  bytes: Uint8Array;
  offsets: Uint32Array;
  /** With `width` set and `outIds`/`outMask` views of the shared output at this shard's rows. */
  options: NormalizedOptions;
}

export interface ProcessTask {
  kind: 'process';
  /** file: URL or absolute path of an ES module or CommonJS module exporting the function. */
  module: string;
  items: unknown[];
  /**
   * Shared [0]: the index of the item running now, `items.length` once all have run (-1 until the
   * first starts). After the worker's death it says which item was running (isolate.ts).
   */
  progress?: Int32Array;
}

export type Task = MeasureTask | VectorizeTask | ProcessTask;

export interface VectorizeResult {
  lengths: Int32Array;
  sourceLengths: Int32Array;
  /** Time spent in the kernel, ms. */
  ms: number;
}

export type ItemResult = { ok: true; value: unknown } | { ok: false; error: unknown };

function backendFor(js: boolean): Backend {
  return js || native === null ? jsBackend : native;
}

const modules = new Map<string, Promise<(item: unknown) => unknown>>();

async function loadTask(spec: string): Promise<(item: unknown) => unknown> {
  const mod = (await import(spec)) as { default?: unknown };
  let fn: unknown = mod.default;
  // A CommonJS module's export arrives as `default`; an ES module's default may itself wrap it.
  if (typeof fn === 'object' && fn !== null && typeof (fn as { default?: unknown }).default === 'function') {
    fn = (fn as { default: unknown }).default;
  }
  if (typeof fn !== 'function') {
    throw new TypeError(`task module ${spec} must export a function (default export), got ${typeof fn}`);
  }
  return fn as (item: unknown) => unknown;
}

/**
 * Every outcome comes back as a value, errors included: a rejected task then always means the
 * worker itself died (see pool.ts).
 */
export default async function run(
  task: Task,
): Promise<{ ok: true; value: number | VectorizeResult | ItemResult[] } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await perform(task) };
  } catch (error) {
    // As for an item's error: one that cannot cross threads as it is (a DOMException, an object
    // holding a function) would make piscina's reply throw in the worker and look like its death.
    return { ok: false, error: cloneable(error) };
  }
}

async function perform(task: Task): Promise<number | VectorizeResult | ItemResult[]> {
  switch (task.kind) {
    case 'measure': {
      const b = backendFor(task.js);
      if (b === native && binding) return binding.measureBytes(task.bytes, task.offsets, packOptions(task.options), task.options.vocab);
      return b.vectorizeBytes(task.bytes, task.offsets, { ...task.options, outIds: null, outMask: null }).width;
    }
    case 'vectorize': {
      const t0 = performance.now();
      const batch = backendFor(task.js).vectorizeBytes(task.bytes, task.offsets, task.options);
      return { lengths: own(batch.lengths), sourceLengths: own(batch.sourceLengths), ms: performance.now() - t0 };
    }
    case 'process': {
      let fnP = modules.get(task.module);
      if (!fnP) {
        fnP = loadTask(task.module);
        modules.set(task.module, fnP);
      }
      const fn = await fnP;
      const out: ItemResult[] = new Array(task.items.length);
      const progress = task.progress;
      for (let i = 0; i < task.items.length; i++) {
        if (progress) Atomics.store(progress, 0, i);
        let value: unknown;
        try {
          value = await fn(task.items[i]);
        } catch (error) {
          out[i] = { ok: false, error: cloneable(error) };
          continue;
        }
        try {
          // A value that cannot cross threads fails its own item, not the whole piece.
          structuredClone(value);
          out[i] = { ok: true, value };
        } catch (e) {
          // Named in the message: how a DOMException clones differs between Node versions.
          const err = e as Error;
          out[i] = { ok: false, error: new Error(`${err.name}: ${err.message}`) };
        }
      }
      if (progress) Atomics.store(progress, 0, task.items.length);
      return out;
    }
  }
}

/**
 * A copy of a view on a larger buffer (small batches' lengths sit in the backend's shared slab):
 * a posted view is cloned with its whole ArrayBuffer.
 */
function own(v: Int32Array): Int32Array {
  return v.byteLength === v.buffer.byteLength ? v : v.slice();
}

/**
 * Errors cross threads by structured clone; anything else thrown is wrapped in one that can. An
 * Error whose clone is no longer an Error (a DOMException such as DataCloneError, on Node 20)
 * is wrapped too, so that its name and message survive.
 */
function cloneable(error: unknown): unknown {
  try {
    const copy: unknown = structuredClone(error);
    if (!(error instanceof Error) || copy instanceof Error) return error;
  } catch {
    // wrapped below
  }
  return new Error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}
