/**
 * Turns file bytes into rows: the native reader (crates/dtesn-core/src/records.rs) when the
 * binding loads, else the same contract in JavaScript (TextDecoder + JSON.parse per line; slower,
 * and used only by the fallback).
 */
import { processBackend } from '../vectorize/choose.js';

export type RecordFormat = 'lines' | 'jsonl';

export interface Records {
  /** Row bytes (UTF-8); row i is bytes[offsets[i] .. offsets[i+1]). */
  bytes: Uint8Array;
  offsets: Uint32Array;
  /** 0-based line index (within the chunk) of each row. */
  lines: Uint32Array;
  /** Bytes of the chunk fully processed (through the last newline; all of it when isLast). */
  consumed: number;
  /** Lines consumed. */
  lineCount: number;
  /** Blank JSONL lines (not rows, not errors). */
  blank: number;
  /** Malformed JSONL lines, 0-based within the chunk. */
  errors: Array<{ line: number; message: string }>;
}

interface RecordsBinding {
  parseRecords(chunk: Uint8Array, format: RecordFormat, field: string | null, isLast: boolean): Records;
  fillRows: RowFiller;
  countNewlines(bytes: Uint8Array): number;
}

const native = processBackend().binding as unknown as RecordsBinding | null;

const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const encoder = new TextEncoder();

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'string':
      return 'a string';
    case 'object':
      return 'an object';
    default:
      return typeof v;
  }
}

/** What one line gives: a row's bytes, nothing (a blank JSONL line), or an error message. */
type LineResult = Uint8Array | null | string;

/** One line without its terminator: the JavaScript rules (TextDecoder + JSON.parse). */
function readLineJs(raw: Uint8Array, format: RecordFormat, field: string | null): LineResult {
  if (format === 'lines') return raw;
  const text = decoder.decode(raw);
  // Blank: nothing but JSON's own whitespace between the line breaks (' ', '\t', '\r'), as in the
  // native reader; other white space (U+00A0, U+2028, a form feed...) is malformed JSON.
  if (/^[ \t\r]*$/.test(text)) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return `invalid JSON: ${(e as Error).message}`;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return `line is ${kindOf(v)}, not an object`;
  if (!Object.prototype.hasOwnProperty.call(v, field!)) return `field '${field}' is missing`;
  const s = (v as Record<string, unknown>)[field!];
  if (typeof s !== 'string') return `field '${field}' is ${kindOf(s)}, not a string`;
  return encoder.encode(s);
}

/** Calls `f(start, next, raw)` for each line of `chunk` (all of it when `isLast`) until it returns false. */
function eachLine(chunk: Uint8Array, isLast: boolean, f: (start: number, next: number, raw: Uint8Array) => boolean): void {
  let start = 0;
  while (start < chunk.length) {
    let end = chunk.indexOf(0x0a, start);
    if (end < 0) {
      if (!isLast) break;
      end = chunk.length;
    }
    let stop = end;
    if (stop > start && chunk[stop - 1] === 0x0d) stop--;
    if (!f(start, Math.min(end + 1, chunk.length), chunk.subarray(start, stop))) break;
    start = end + 1;
  }
}

/** The JavaScript reader: one TextDecoder/JSON.parse per line. */
export function parseRecordsJs(chunk: Uint8Array, format: RecordFormat, field: string | null, isLast: boolean): Records {
  const parts: Uint8Array[] = [];
  const lines: number[] = [];
  const errors: Array<{ line: number; message: string }> = [];
  let blank = 0;
  let line = 0;
  let consumed = 0;
  eachLine(chunk, isLast, (_, next, raw) => {
    const r = readLineJs(raw, format, field);
    if (r === null) blank++;
    else if (typeof r === 'string') errors.push({ line, message: r });
    else {
      parts.push(r);
      lines.push(line);
    }
    line++;
    consumed = next;
    return true;
  });
  let size = 0;
  for (const p of parts) size += p.length;
  const bytes = new Uint8Array(size);
  const offsets = new Uint32Array(parts.length + 1);
  let at = 0;
  parts.forEach((p, i) => {
    bytes.set(p, at);
    at += p.length;
    offsets[i + 1] = at;
  });
  return { bytes, offsets, lines: Uint32Array.from(lines), consumed, lineCount: line, blank, errors };
}

export function parseRecords(chunk: Uint8Array, format: RecordFormat, field: string | null, isLast: boolean): Records {
  return native ? native.parseRecords(chunk, format, field, isLast) : parseRecordsJs(chunk, format, field, isLast);
}

/** Why `fillRows` returned (see `Filled`). */
export type FillStop = 'input' | 'rows' | 'bytes' | 'error' | 'errors';

/** What one `fillRows` call did. */
export interface Filled {
  /** Bytes of the input consumed: whole lines, each a row, blank, or in `errors`. */
  consumed: number;
  /** Lines consumed. */
  lineCount: number;
  /** Blank JSONL lines among them. */
  blank: number;
  /** Rows in the arena now. */
  rows: number;
  /**
   * 'input': every complete line consumed; 'rows': `maxRows` added or the arena's rows full;
   * 'bytes': the next row (`need` bytes) does not fit in `bytes`, its line is not consumed;
   * 'error': with `stopAtError`, the last of `errors`, whose line is not consumed; 'errors':
   * `maxErrors` bad lines recorded (their lines consumed).
   */
  stop: FillStop;
  need: number;
  /** Malformed JSONL lines, 0-based from the start of the input. */
  errors: Array<{ line: number; message: string }>;
}

/**
 * Appends the rows of `input`'s complete lines (all when `isLast`) to an arena in place: row bytes
 * into `bytes` from `offsets[rows]` on, their ends into `offsets`, their line numbers
 * (`firstLine` + the line's index) into `lines`. The rules are those of `parseRecords`; one call
 * fills a batch, with no JavaScript work per row (native). See `Filled` for where it stops.
 */
export type RowFiller = (
  input: Uint8Array,
  isLast: boolean,
  format: RecordFormat,
  field: string | null,
  firstLine: number,
  maxRows: number,
  stopAtError: boolean,
  maxErrors: number,
  bytes: Uint8Array,
  offsets: Uint32Array,
  lines: Uint32Array,
  rows: number,
) => Filled;

/** `fillRows` in JavaScript (the fallback): the rows of `readLineJs`, with the native stops. */
export const fillRowsJs: RowFiller = (input, isLast, format, field, firstLine, maxRows, stopAtError, maxErrors, bytes, offsets, lines, rows) => {
  const capacity = Math.min(offsets.length - 1, lines.length);
  const limit = rows + Math.max(0, Math.min(maxRows, capacity - rows));
  const out: Filled = { consumed: 0, lineCount: 0, blank: 0, rows, stop: 'input', need: 0, errors: [] };
  eachLine(input, isLast, (start, next, raw) => {
    if (out.rows >= limit) {
      out.stop = 'rows';
      return false;
    }
    const r = readLineJs(raw, format, field);
    if (r === null) out.blank++;
    else if (typeof r === 'string') {
      out.errors.push({ line: out.lineCount, message: r });
      if (stopAtError) {
        out.stop = 'error';
        return false;
      }
      if (out.errors.length >= maxErrors) out.stop = 'errors'; // after this line is consumed
    } else {
      const at = offsets[out.rows]!;
      if (at > bytes.length || r.length > bytes.length - at) {
        out.stop = 'bytes';
        out.need = r.length;
        return false;
      }
      bytes.set(r, at);
      lines[out.rows] = (firstLine + out.lineCount) >>> 0;
      out.rows++;
      offsets[out.rows] = at + r.length;
    }
    out.lineCount++;
    out.consumed = next;
    return out.stop !== 'errors';
  });
  return out;
};

export const fillRows: RowFiller = native ? native.fillRows : fillRowsJs;

/** The number of '\n' bytes in `bytes` (the JavaScript fallback: Buffer's indexOf, one call per line). */
export function countNewlinesJs(bytes: Uint8Array): number {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let n = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
}

/** The number of '\n' bytes in `bytes`: natively memchr's vectorized count. */
export const countNewlines: (bytes: Uint8Array) => number = native ? native.countNewlines : countNewlinesJs;
