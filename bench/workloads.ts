/**
 * Deterministic benchmark workloads (seeded PRNG, no I/O, no downloads).
 *
 *   a  100,000 ASCII rows of 20..120 chars of word-like text
 *   b  100,000 rows of 20..120 characters, each character non-ASCII with probability 0.1:
 *      accented Latin (2-byte UTF-8), CJK (3-byte), emoji (astral: 4-byte UTF-8, UTF-16
 *      surrogate pairs); nearly every row has some
 *   c  10,000 ASCII rows of ~2,000 chars (1,900..2,100)
 *   u  the bundled UDHR corpus (samples/udhr.jsonl, its "text" fields: 165 language variants, 63% of the
 *      rows non-ASCII) six times over, maxLength 256
 *
 * Every workload is also given as UTF-8 bytes + Uint32Array offsets (row i is
 * bytes[offsets[i] .. offsets[i+1])), the input of `vectorizeBytes`.
 * Rows never contain lone surrogates, '[' / ']' or '<' / '>' (so no text can look like a special
 * token of the HF tokenizers built in hf.ts).
 */

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** mulberry32: tiny, fast, good enough for test data; deterministic for a given seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Workload {
  /** 'a' | 'b' | 'c' | 'u' */
  id: string;
  title: string;
  texts: string[];
  /** UTF-8 of all rows, concatenated. */
  bytes: Uint8Array;
  /** rows + 1 offsets into `bytes`. */
  offsets: Uint32Array;
  rows: number;
  /** Total UTF-8 bytes of the input (= bytes.length). */
  utf8Bytes: number;
  /** Total UTF-16 code units. */
  codeUnits: number;
  /** Total code points. */
  codePoints: number;
  /** Rows containing any non-ASCII character. */
  nonAsciiRows: number;
  /** The `maxLength` the bench uses for this workload (rows above it are truncated). */
  maxLength: number;
}

const CONSONANTS = 'bcdfghjklmnprstvwyz';
const VOWELS = 'aeiou';
const PUNCT_END = ['.', '.', '.', ',', ',', ';', ':', '!', '?'];
const RARE = ['#', '@', '%', '&', '*', '+', '=', '/', '~', '_', '$']; // some fall outside the bench vocab
const ACCENTED = 'éèêàâçëïîôöüùûñßøåæœáíóúãõÁÉÖÜÑ';
const CJK = '的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴按线照抱独存够注紧量';
// Astral emoji (surrogate pairs in UTF-16, 4 bytes in UTF-8) and a few BMP symbols.
const EMOJI = [
  '\u{1F600}', '\u{1F602}', '\u{1F60D}', '\u{1F44D}', '\u{1F389}', '\u{1F680}', '\u{1F525}', '\u{1F4A9}',
  '\u{1F914}', '\u{1F64F}', '\u{1F308}', '\u{1F355}', '\u{1F431}', '\u{1F436}', '\u{1F30D}', '\u{1F9E0}',
  '\u2764\uFE0F', '\u2728', '\u2600', '\u{1F1EB}\u{1F1F7}', '\u{1F468}\u200D\u{1F4BB}',
];

function pick<T>(rng: () => number, s: ArrayLike<T>): T {
  return s[Math.floor(rng() * s.length)];
}

function asciiWord(rng: () => number): string {
  const syll = 1 + Math.floor(rng() * 3);
  let w = '';
  for (let i = 0; i < syll; i++) {
    w += pick(rng, CONSONANTS) + pick(rng, VOWELS);
    if (rng() < 0.3) w += pick(rng, CONSONANTS);
  }
  const r = rng();
  if (r < 0.08) w = w[0].toUpperCase() + w.slice(1);
  else if (r < 0.1) w = String(Math.floor(rng() * 10000));
  else if (r < 0.115) w = pick(rng, RARE) + w;
  else if (r < 0.125) w = `(${w})`;
  else if (r < 0.135) w = `'${w}'`;
  if (rng() < 0.1) w += pick(rng, PUNCT_END);
  return w;
}

function nonAsciiWord(rng: () => number): string {
  const r = rng();
  if (r < 0.4) {
    // Latin word with accented letters.
    let w = asciiWord(rng);
    const n = 1 + Math.floor(rng() * 2);
    for (let i = 0; i < n; i++) {
      const at = Math.floor(rng() * (w.length + 1));
      w = w.slice(0, at) + pick(rng, ACCENTED) + w.slice(at);
    }
    return w;
  }
  if (r < 0.75) {
    // CJK run of 1..6 characters (no spaces inside).
    const n = 1 + Math.floor(rng() * 6);
    let w = '';
    for (let i = 0; i < n; i++) w += pick(rng, CJK);
    return w;
  }
  // Emoji, alone or glued to a word.
  const e = pick(rng, EMOJI);
  return rng() < 0.5 ? e : asciiWord(rng) + e;
}

/** A row of `target` code units (exactly, when possible: a trailing multi-unit char may be dropped). */
function makeRow(rng: () => number, target: number, nonAscii: boolean): string {
  let s = '';
  while (s.length < target) {
    const w = nonAscii && rng() < 0.35 ? nonAsciiWord(rng) : asciiWord(rng);
    s += s.length === 0 ? w : ' ' + w;
  }
  // Cut at `target` code units without splitting a surrogate pair; drop a trailing space.
  let end = target;
  const c = s.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end--;
  s = s.slice(0, end);
  if (s.endsWith(' ')) s = s.slice(0, -1) + 'x';
  return s;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** UTF-8 bytes + offsets of `texts` (one pass with encodeInto into a buffer sized 3 bytes/unit). */
export function toBytes(texts: readonly string[]): { bytes: Uint8Array; offsets: Uint32Array } {
  let units = 0;
  for (const t of texts) units += t.length;
  const buf = new Uint8Array(units * 3);
  const offsets = new Uint32Array(texts.length + 1);
  const enc = new TextEncoder();
  let pos = 0;
  for (let i = 0; i < texts.length; i++) {
    pos += enc.encodeInto(texts[i], buf.subarray(pos)).written;
    offsets[i + 1] = pos;
  }
  return { bytes: buf.slice(0, pos), offsets };
}

function finish(id: string, title: string, texts: string[], maxLength: number): Workload {
  const { bytes, offsets } = toBytes(texts);
  let codeUnits = 0;
  let codePoints = 0;
  let nonAsciiRows = 0;
  for (const t of texts) {
    codeUnits += t.length;
    for (const _ of t) codePoints++;
    if (!isAscii(t)) nonAsciiRows++;
  }
  return {
    id, title, texts, bytes, offsets, rows: texts.length,
    utf8Bytes: bytes.length, codeUnits, codePoints, nonAsciiRows, maxLength,
  };
}

export function workloadA(rows = 100_000, seed = 0xa11ce): Workload {
  const rng = mulberry32(seed);
  const texts: string[] = new Array(rows);
  for (let i = 0; i < rows; i++) texts[i] = makeRow(rng, 20 + Math.floor(rng() * 101), false);
  return finish('a', `${rows.toLocaleString('en-US')} ASCII rows, 20-120 chars (maxLength 128)`, texts, 128);
}

/** One non-ASCII character: accented Latin (2 bytes) 50%, CJK (3 bytes) 35%, emoji (4 bytes) 15%. */
function nonAsciiChar(rng: () => number): string {
  const r = rng();
  if (r < 0.5) return pick(rng, ACCENTED);
  if (r < 0.85) return pick(rng, CJK);
  return String.fromCodePoint(0x1f300 + Math.floor(rng() * 0x300));
}

export function workloadB(rows = 100_000, seed = 0xb0b): Workload {
  const rng = mulberry32(seed);
  const texts: string[] = new Array(rows);
  for (let i = 0; i < rows; i++) {
    // Word-like ASCII of 20..120 characters, then each character (spaces too) replaced by a
    // non-ASCII one with probability 0.1.
    const ascii = makeRow(rng, 20 + Math.floor(rng() * 101), false);
    let s = '';
    for (const ch of ascii) s += rng() < 0.1 ? nonAsciiChar(rng) : ch;
    texts[i] = s;
  }
  return finish('b', `${rows.toLocaleString('en-US')} rows, 20-120 chars, each char non-ASCII with p = 0.1 (accents, CJK, emoji; maxLength 128)`, texts, 128);
}

/** The bundled UDHR corpus, its "text" field per line, `times` times over. */
export function workloadU(times = 6): Workload {
  const file = fileURLToPath(new URL('../samples/udhr.jsonl', import.meta.url));
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
  const one = lines.map((l) => (JSON.parse(l) as { text: string }).text);
  const texts: string[] = [];
  for (let k = 0; k < times; k++) texts.push(...one);
  return finish('u', `samples/udhr.jsonl x${times}: ${texts.length.toLocaleString('en-US')} paragraphs in 165 language variants (maxLength 256)`, texts, 256);
}

/** Long rows; maxLength 2048 so that most rows fit and ~a quarter are truncated. */
export function workloadC(rows = 10_000, seed = 0xc0ffee): Workload {
  const rng = mulberry32(seed);
  const texts: string[] = new Array(rows);
  for (let i = 0; i < rows; i++) texts[i] = makeRow(rng, 1900 + Math.floor(rng() * 201), false);
  return finish('c', `${rows.toLocaleString('en-US')} ASCII rows, ~2,000 chars (maxLength 2048)`, texts, 2048);
}

export const WORKLOADS: Record<string, (scale?: number) => Workload> = {
  a: (scale = 1) => workloadA(Math.round(100_000 * scale)),
  b: (scale = 1) => workloadB(Math.round(100_000 * scale)),
  c: (scale = 1) => workloadC(Math.round(10_000 * scale)),
  u: (scale = 1) => workloadU(Math.max(1, Math.round(6 * scale))),
};

/**
 * The character vocabulary of the "char-vocab" job: printable ASCII letters, digits, space and
 * common punctuation, a handful of accented letters and CJK characters. Everything else
 * ('#', '@', '%', '&', '*', '+', '=', '/', '~', '_', '$', most CJK, all emoji) maps to 1 (unknown).
 */
export const CHAR_VOCAB: readonly string[] = Array.from(
  ' abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?\'"-()' + 'éèêàâçëïîôöüñßøå' + '的一是不了人我在有他',
);
