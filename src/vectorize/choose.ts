/**
 * The one place the backend is chosen, once per thread: `DTESN_BACKEND=js` forces the fallback,
 * `DTESN_BACKEND=native` makes a missing binary an error; otherwise native when it loads, else
 * the fallback with one warning naming the reason. `vectorize`, the pipeline (and through its
 * tasks its workers), the file readers, the CLI and the service all ask here.
 */
import { isMainThread } from 'node:worker_threads';
import { type Backend, type NativeBinding, jsBackend, loadNative, nativeBackendOf } from './backends.js';

export interface Chosen {
  backend: Backend;
  /** The loaded binding when the native backend was chosen (its file readers too), else null. */
  binding: NativeBinding | null;
}

// Worker threads choose as their process did (same environment, same binary) and stay silent:
// the process has said it once already.
function warn(message: string, code: string): void {
  if (isMainThread) process.emitWarning(message, { code, type: 'DtesnWarning' });
}

function choose(): Chosen {
  const want = process.env.DTESN_BACKEND ?? '';
  if (want === 'js') return { backend: jsBackend, binding: null };
  if (want !== '' && want !== 'native' && want !== 'auto') {
    warn(`DTESN_BACKEND='${want}' is not one of 'native', 'js', 'auto'; ignoring it`, 'DTESN_BAD_ENV');
  }
  const loaded = loadNative();
  if (!loaded.ok) {
    if (want === 'native') {
      throw new Error(`DTESN_BACKEND=native but the native binding could not be loaded: ${loaded.reason}`);
    }
    warn(
      `dtesn-pipeline: the native binding could not be loaded (${loaded.reason}); using the pure-TypeScript fallback`,
      'DTESN_NATIVE_UNAVAILABLE',
    );
    return { backend: jsBackend, binding: null };
  }
  const missing = loaded.binding.simdRequestUnavailable();
  if (missing !== null) {
    warn(
      `DTESN_SIMD=${missing} is not available on this CPU; using '${loaded.binding.simdPath()}' (available: ${loaded.binding.availableSimd().join(', ')})`,
      'DTESN_SIMD_UNAVAILABLE',
    );
  }
  return { backend: nativeBackendOf(loaded.binding), binding: loaded.binding };
}

let chosen: Chosen | undefined;

/** This thread's backend (chosen on first use). */
export function processBackend(): Chosen {
  return (chosen ??= choose());
}
