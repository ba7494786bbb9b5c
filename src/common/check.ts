/**
 * The argument checks every module uses, and the descriptions of values their messages show. One
 * rule everywhere: a value of the wrong type is a TypeError, a value of the right type outside
 * what is allowed is a RangeError; the message names the argument and shows what it got.
 */

/**
 * T of the messages that name a type: the constructor name for objects (`Array`, `Buffer`,
 * `Int32Array`, `Object` for null-prototype objects), else `typeof` (`null` for null).
 */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  const t = typeof v;
  if (t !== 'object') return t;
  try {
    const ctor: unknown = (v as { constructor?: unknown }).constructor;
    if (typeof ctor === 'function') {
      const name: unknown = (ctor as { name?: unknown }).name;
      if (typeof name === 'string' && name !== '') return name;
    }
  } catch {
    // A throwing getter or revoked proxy: fall through.
  }
  return 'Object';
}

/** T of the messages about `texts` and `texts[I]`: `typeof`, or `null`. */
export function typeOf(v: unknown): string {
  return v === null ? 'null' : typeof v;
}

/** V of enum messages: strings quoted with `'`, other values `String(v)`. */
export function showValue(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  try {
    return String(v);
  } catch {
    return `[object ${describe(v)}]`;
  }
}

// The %TypedArray%.prototype[@@toStringTag] getter: the typed-array kind of any view (a Buffer is a
// 'Uint8Array'), undefined for everything else, and it works across realms, unlike instanceof.
const typedArrayTag = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype) as object,
  Symbol.toStringTag,
)?.get as (this: unknown) => string | undefined;

/** The typed-array kind of `v` ('Uint8Array', 'Int32Array', ...), or undefined when not a typed array. */
export function typedArrayKind(v: unknown): string | undefined {
  return typedArrayTag.call(v);
}

/** An object literal (or Object.create(null)): what options and config objects must be. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * An integer `name` in [lo, hi]: a TypeError for a non-number, a RangeError for a number that is
 * not an integer in range. `range` is how the message states the bounds.
 */
export function checkInt(v: unknown, name: string, lo: number, hi: number, range = hi === Infinity ? `>= ${lo}` : `in [${lo}, ${hi}]`): number {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name} must be an integer ${range}, got ${v}`);
  return v;
}

/** `where.key` as checkInt, or `dflt` when absent (config objects: pipeline, server, monitor). */
export function intSetting(o: Record<string, unknown>, where: string, key: string, dflt: number, lo: number, hi: number, range?: string): number {
  const v = o[key];
  return v === undefined ? dflt : checkInt(v, `${where}.${key}`, lo, hi, range);
}
