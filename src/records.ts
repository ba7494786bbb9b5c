/**
 * Turns file bytes into rows: the native reader (crates/dtesn-core/src/records.rs) when the
 * binding loads, else the same contract in JavaScript (TextDecoder + JSON.parse per line; slower,
 * and used only by the fallback).
 */
import { loadNative } from './backends.js';

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
}

const loaded = loadNative();
const native = loaded.ok ? (loaded.binding as unknown as RecordsBinding) : null;

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

/** The JavaScript reader: one TextDecoder/JSON.parse per line. */
export function parseRecordsJs(chunk: Uint8Array, format: RecordFormat, field: string | null, isLast: boolean): Records {
  const parts: Uint8Array[] = [];
  const lines: number[] = [];
  const errors: Array<{ line: number; message: string }> = [];
  let blank = 0;
  let start = 0;
  let line = 0;
  for (;;) {
    let end = chunk.indexOf(0x0a, start);
    if (end < 0) {
      if (!isLast || start >= chunk.length) break;
      end = chunk.length;
    }
    let stop = end;
    if (stop > start && chunk[stop - 1] === 0x0d) stop--;
    const raw = chunk.subarray(start, stop);
    if (format === 'lines') {
      parts.push(raw);
      lines.push(line);
    } else {
      const text = decoder.decode(raw);
      if (text.trim() === '') blank++;
      else {
        try {
          const v: unknown = JSON.parse(text);
          if (typeof v !== 'object' || v === null || Array.isArray(v)) {
            errors.push({ line, message: `line is ${kindOf(v)}, not an object` });
          } else if (!Object.prototype.hasOwnProperty.call(v, field!)) {
            errors.push({ line, message: `field '${field}' is missing` });
          } else {
            const s = (v as Record<string, unknown>)[field!];
            if (typeof s !== 'string') errors.push({ line, message: `field '${field}' is ${kindOf(s)}, not a string` });
            else {
              parts.push(encoder.encode(s));
              lines.push(line);
            }
          }
        } catch (e) {
          errors.push({ line, message: `invalid JSON: ${(e as Error).message}` });
        }
      }
    }
    line++;
    start = end + 1;
    if (end >= chunk.length) break;
  }
  const consumed = Math.min(start, chunk.length);
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
