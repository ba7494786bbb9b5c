/**
 * What every `dtesn` command shares to read its command line: the two errors a command ends
 * with, strict flag parsing, and integer flags.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A wrong command line: printed with a pointer to --help, exit code 2. */
export class UsageError extends Error {
  override get name(): string {
    return 'UsageError';
  }
}

/** The work failed for a reason the user can act on (no stack trace), exit code 1. */
export class RunError extends Error {}

/** Parsed flags and positionals of a command (strict: an unknown flag is a UsageError). */
export type Parsed<T extends NonNullable<ParseArgsConfig['options']>> = ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>>;

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T, positionals: number): Parsed<T> {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (parsed.positionals.length > positionals) {
    throw new UsageError(`unexpected argument '${parsed.positionals[positionals]}'`);
  }
  return parsed;
}

/** An int64 flag value: a decimal integer, as a number when it is a safe one, else a bigint (whose range normalizeOptions checks). */
export function int64Flag(flag: string, value: string | undefined): number | bigint | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value.trim())) throw new UsageError(`${flag} must be an integer, got '${value}'`);
  const n = BigInt(value.trim());
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

/** An integer flag value: the whole string must be a decimal integer in [lo, hi]. */
export function intFlag(flag: string, value: string | undefined, lo: number, hi: number): number | undefined {
  if (value === undefined) return undefined;
  const n = /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < lo || n > hi) {
    throw new UsageError(`${flag} must be an integer in [${lo}, ${hi}], got '${value}'`);
  }
  return n;
}
