/**
 * The `dtesn` command (src/cli/main.ts), run as a user runs it: `node dist/cli/main.js ...` in a child
 * process (the suite compiles dist first: `npm test` = tsc && vitest). Outputs are read back and
 * compared with the core `vectorize` of the same texts; errors are checked by exit code and message;
 * a failed or interrupted run must leave no output file behind.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { vectorize } from '../src/index.js';
import type { VectorizeOptions } from '../src/vectorize/types.js';
import { makeTexts } from './fixtures/util.js';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const CORPUS = fileURLToPath(new URL('../samples/udhr.jsonl', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dtesn-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `wrap`: a command the CLI runs under (argv before `node dist/cli/main.js ...`), e.g. setpriv. */
function run(args: string[], opts: { input?: string | Buffer; cwd?: string; onSpawn?: (c: ChildProcess) => void; wrap?: string[] } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const argv = [...(opts.wrap ?? []), process.execPath, CLI, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd ?? dir, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.on('error', () => undefined); // EPIPE when the command exits before reading
    opts.onSpawn?.(child);
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else if (!opts.onSpawn) child.stdin.end();
  });
}

interface Npy {
  descr: string;
  shape: number[];
  data: Buffer;
}

/** Reads a .npy file (format 1.0) by its specification. */
function readNpy(path: string): Npy {
  const buf = readFileSync(path);
  expect(buf.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
  const headerLen = buf.readUInt16LE(8);
  expect((10 + headerLen) % 64).toBe(0);
  const header = buf.subarray(10, 10 + headerLen).toString('latin1');
  const m = /^\{'descr': '([<|][a-z]\d)', 'fortran_order': False, 'shape': \(([\d, ]*)\), \} *\n$/.exec(header);
  if (!m) throw new Error(`bad npy header: ${JSON.stringify(header)}`);
  const shape = m[2]!.split(',').map((x) => x.trim()).filter((x) => x.length > 0).map(Number);
  return { descr: m[1]!, shape, data: buf.subarray(10 + headerLen) };
}

/** Reads a .safetensors file by its specification. */
function readSafetensors(path: string): Record<string, { dtype: string; shape: number[]; data: Buffer }> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const body = buf.subarray(8 + n);
  const out: Record<string, { dtype: string; shape: number[]; data: Buffer }> = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out[name] = { dtype: t.dtype, shape: t.shape, data: body.subarray(t.data_offsets[0], t.data_offsets[1]) };
  }
  return out;
}

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function jsonl(texts: readonly string[]): string {
  return texts.map((t, i) => JSON.stringify({ id: i, text: t })).join('\n') + '\n';
}

/** Whether the files hold exactly `before` (Buffer.equals: a deep toEqual of MBs takes seconds). */
function unchanged(files: readonly string[], before: readonly Buffer[]): boolean {
  return files.every((f, i) => readFileSync(join(dir, f)).equals(before[i]!));
}

/** Output files of a run named `base` in the test directory, and any temporary leftovers. */
function leftovers(prefix: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith(prefix));
}

describe('dtesn vectorize', () => {
  const texts = makeTexts(7, 60_000).slice(0, 2500);

  it('a JSONL file -> .npy files equal to the core vectorize of its texts (longest padding over the whole file)', async () => {
    writeFileSync(join(dir, 'a.jsonl'), jsonl(texts));
    const r = await run(['vectorize', 'a.jsonl', '--out', 'a.npy', '--max-length', '64', '--batch-size', '300', '--report', 'a.report.json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const want = vectorize(texts, { maxLength: 64 });
    const ids = readNpy(join(dir, 'a.npy'));
    expect(ids).toMatchObject({ descr: '<i4', shape: [want.rows, want.width] });
    expect(ids.data.equals(bytesOf(want.ids))).toBe(true);
    const mask = readNpy(join(dir, 'a.mask.npy'));
    expect(mask).toMatchObject({ descr: '|u1', shape: [want.rows, want.width] });
    expect(mask.data.equals(bytesOf(want.attentionMask))).toBe(true);
    const lengths = readNpy(join(dir, 'a.lengths.npy'));
    expect(lengths).toMatchObject({ descr: '<i4', shape: [want.rows] });
    expect(lengths.data.equals(bytesOf(want.lengths))).toBe(true);
    expect(r.stdout).toContain(`dtesn vectorize: ${want.rows.toLocaleString('en-US')} rows x width ${want.width}`);
    expect(r.stdout).toMatch(/skipped: +0 malformed lines/);
    expect(r.stdout).toMatch(/throughput: +[\d,]+ rows\/s, [\d.]+ MB\/s/);
    expect(r.stdout).toMatch(/batch time: +p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms/);
    expect(r.stdout).toMatch(/health: +\d+\.\d\/100 \([A-F]\): throughput \d+\/30, pool utilization \d+\/25, memory \d+\/25, CPU headroom \d+\/20\n/);
    const report = JSON.parse(readFileSync(join(dir, 'a.report.json'), 'utf8')) as Record<string, unknown>;
    expect(report).toMatchObject({
      schema: 'dtesn-vectorize-report/1',
      format: 'jsonl',
      rows: want.rows,
      width: want.width,
      skipped: 0,
      inputBytes: Buffer.byteLength(jsonl(texts)),
      outputs: ['a.npy', 'a.mask.npy', 'a.lengths.npy'],
    });
    expect(leftovers('a.')).toEqual(['a.jsonl', 'a.lengths.npy', 'a.mask.npy', 'a.npy', 'a.report.json'].sort());
  });

  it('--out x.safetensors: one file with input_ids, attention_mask, lengths; options as flags', async () => {
    const lines = texts.slice(0, 700);
    writeFileSync(join(dir, 'b.txt'), lines.map((t) => t.replace(/[\r\n]/g, ' ')).join('\n') + '\n');
    const flat = lines.map((t) => t.replace(/[\r\n]/g, ' '));
    const r = await run([
      'vectorize', 'b.txt', '--out', 'b.safetensors', '--encoding', 'byt5', '--max-length', '40', '--padding', 'max-length',
      '--padding-side', 'left', '--truncation-side', 'left', '--dtype', 'int16', '--quiet',
    ]);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const o: VectorizeOptions<'int16'> = { encoding: 'byt5', maxLength: 40, padding: 'max-length', paddingSide: 'left', truncationSide: 'left', dtype: 'int16' };
    const want = vectorize(flat, o);
    const t = readSafetensors(join(dir, 'b.safetensors'));
    expect(Object.keys(t).sort()).toEqual(['attention_mask', 'input_ids', 'lengths']);
    expect(t.input_ids).toMatchObject({ dtype: 'I16', shape: [want.rows, 40] });
    expect(t.input_ids!.data.equals(bytesOf(want.ids))).toBe(true);
    expect(t.attention_mask).toMatchObject({ dtype: 'U8', shape: [want.rows, 40] });
    expect(t.attention_mask!.data.equals(bytesOf(want.attentionMask))).toBe(true);
    expect(t.lengths).toMatchObject({ dtype: 'I32', shape: [want.rows] });
    expect(t.lengths!.data.equals(bytesOf(want.lengths))).toBe(true);
  });

  it('--dtype int64 --mask-dtype int64: <i8 .npy files and I64 safetensors, as an ONNX model takes them; --pad-id any int64', async () => {
    const lines = texts.slice(0, 300).map((t) => t.replace(/[\r\n]/g, ' '));
    writeFileSync(join(dir, 'i64.txt'), lines.join('\n') + '\n');
    const flags = ['--encoding', 'byt5', '--max-length', '48', '--dtype', 'int64', '--mask-dtype', 'int64', '--pad-id=-9223372036854775808', '--quiet'];
    const o = { encoding: 'byt5', maxLength: 48, dtype: 'int64', maskDtype: 'int64', padId: -(2n ** 63n) } as const;
    const want = vectorize(lines, o);
    expect(want.ids).toBeInstanceOf(BigInt64Array);
    const r = await run(['vectorize', 'i64.txt', '--out', 'i64.npy', '--report', 'i64.report.json', ...flags]);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const report = JSON.parse(readFileSync(join(dir, 'i64.report.json'), 'utf8')) as { rows: number; options: Record<string, unknown> };
    expect(report.rows).toBe(lines.length);
    expect(report.options).toMatchObject({ dtype: 'int64', maskDtype: 'int64', padId: '-9223372036854775808' });
    const ids = readNpy(join(dir, 'i64.npy'));
    expect(ids.descr).toBe('<i8');
    expect(ids.shape).toEqual([want.rows, want.width]);
    expect(ids.data.equals(bytesOf(want.ids))).toBe(true);
    const mask = readNpy(join(dir, 'i64.mask.npy'));
    expect(mask.descr).toBe('<i8');
    expect(mask.data.equals(bytesOf(want.attentionMask))).toBe(true);
    const s = await run(['vectorize', 'i64.txt', '--out', 'i64.safetensors', ...flags.slice(0, -1), '--mask-dtype', 'int32', '--quiet']);
    expect(s).toMatchObject({ code: 0, stderr: '' });
    const t = readSafetensors(join(dir, 'i64.safetensors'));
    const want32 = vectorize(lines, { ...o, maskDtype: 'int32' });
    expect(t.input_ids).toMatchObject({ dtype: 'I64', shape: [want.rows, want.width] });
    expect(t.input_ids!.data.equals(bytesOf(want32.ids))).toBe(true);
    expect(t.attention_mask).toMatchObject({ dtype: 'I32', shape: [want.rows, want.width] });
    expect(t.attention_mask!.data.equals(bytesOf(want32.attentionMask))).toBe(true);
    // The options recorded in the metadata keep the pad's digits.
    const header = readFileSync(join(dir, 'i64.safetensors'));
    expect(header.toString('utf8', 8, 8 + Number(header.readBigUInt64LE(0)))).toContain('\\"padId\\":\\"-9223372036854775808\\"');
  });

  it('stdin (INPUT -), lines format', async () => {
    const lines = ['hello', 'wörld 😀', '', 'last line'];
    const r = await run(['vectorize', '-', '--out', 'c.npy', '--quiet'], { input: lines.join('\n') + '\n' });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const want = vectorize(lines);
    const ids = readNpy(join(dir, 'c.npy'));
    expect(ids.shape).toEqual([4, want.width]);
    expect(ids.data.equals(bytesOf(want.ids))).toBe(true);
  });

  it('malformed JSONL lines are skipped and counted with their line numbers; --on-error throw stops with no output', async () => {
    const good = ['one', 'two', 'three', 'four'];
    const body = [JSON.stringify({ text: 'one' }), '{"text": ', JSON.stringify({ text: 'two' }), '{"other": 1}', JSON.stringify({ text: 'three' }), JSON.stringify({ text: 'four' })].join('\n') + '\n';
    writeFileSync(join(dir, 'd.jsonl'), body);
    const r = await run(['vectorize', 'd.jsonl', '--out', 'd.npy', '--report', 'd.report.json']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/skipped: +2 malformed lines \(first at line 2: /);
    const report = JSON.parse(readFileSync(join(dir, 'd.report.json'), 'utf8')) as { rows: number; skipped: number; skippedLines: Array<{ line: number }> };
    expect(report.rows).toBe(4);
    expect(report.skipped).toBe(2);
    expect(report.skippedLines.map((s) => s.line)).toEqual([2, 4]);
    expect(readNpy(join(dir, 'd.npy')).data.equals(bytesOf(vectorize(good).ids))).toBe(true);

    const t = await run(['vectorize', 'd.jsonl', '--out', 'e.npy', '--on-error', 'throw']);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/^dtesn vectorize: d\.jsonl:2: .+ \(--on-error throw\); no output written\n$/);
    expect(leftovers('e.')).toEqual([]);
  });

  it('with no INPUT it vectorizes the bundled multilingual corpus', async () => {
    const r = await run(['vectorize', '--out', 'f.npy', '--max-length', '32', '--report', 'f.report.json']);
    expect(r.code).toBe(0);
    const lines = readFileSync(CORPUS, 'utf8').split('\n').filter((l) => l.length > 0);
    const report = JSON.parse(readFileSync(join(dir, 'f.report.json'), 'utf8')) as { rows: number; input: string; inputBytes: number };
    expect(report.rows).toBe(lines.length);
    expect(report.input).toBe('bundled corpus: samples/udhr.jsonl');
    expect(report.inputBytes).toBe(readFileSync(CORPUS).length);
    const want = vectorize(lines.map((l) => (JSON.parse(l) as { text: string }).text), { maxLength: 32 });
    expect(readNpy(join(dir, 'f.npy')).data.equals(bytesOf(want.ids))).toBe(true);
  });

  it('errors say what and where, exit non-zero, and leave nothing behind', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['vectorize', 'missing.jsonl', '--out', 'g.npy'], 1, /^dtesn vectorize: cannot read input 'missing\.jsonl': no such file or directory \(ENOENT\)\n$/],
      [['vectorize', 'a.jsonl', '--out', 'a.jsonl/g.npy'], 1, /^dtesn vectorize: cannot write 'a\.jsonl\/g\.npy': .*(ENOTDIR|EEXIST)/],
      [['vectorize', 'a.jsonl', '--out', 'g.csv'], 2, /--out must name a \.npy or \.safetensors file, got 'g\.csv'/],
      [['vectorize', 'a.jsonl'], 2, /--out FILE is required/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--max-length', '0'], 2, /--max-length must be an integer in \[1, 2147483647\], got '0'/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--max-length', '12abc'], 2, /--max-length must be an integer in \[1, 2147483647\], got '12abc'/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--encoding', 'ascii'], 2, /--encoding must be one of .*got 'ascii'/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--dtype', 'uint8', '--encoding', 'canine'], 2, /canine.*does not fit dtype 'uint8'/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--format', 'csv'], 2, /--format must be one of lines, jsonl, got 'csv'/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--mask-dtype', 'bool'], 2, /^dtesn vectorize: --mask-dtype must be one of 'uint8', 'int32', 'int64', got 'bool'\n/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--dtype', 'int64', '--pad-id', '9223372036854775808'], 2, /--pad-id must be an integer in \[-9223372036854775808, 9223372036854775807\] for dtype 'int64', got 9223372036854775808/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--dtype', 'int64', '--pad-id', '1e3'], 2, /^dtesn vectorize: --pad-id must be an integer, got '1e3'\n/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--pad-id', '4294967296'], 2, /--pad-id must be an integer in \[-2147483648, 2147483647\], got '4294967296'/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--frobnicate'], 2, /Unknown option '--frobnicate'/],
      [['vectorize', 'b.txt', '--out', 'g.npy', '--field', 'x'], 2, /--field is only valid with --format jsonl/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--field', ''], 2, /^dtesn vectorize: --field must name a field, got ''\n/],
      [['vectorize', 'a.jsonl', '--out', 'g.npy', '--report', 'a.jsonl/r.json'], 1, /^dtesn vectorize: cannot write report 'a\.jsonl\/r\.json': .*(ENOTDIR|EEXIST)/],
      // --invalid error: the bad row named by its file and line, not by its index in a batch.
      [['vectorize', 'bad-utf8.txt', '--out', 'g.npy', '--invalid', 'error', '--batch-size', '2'], 1, /^dtesn vectorize: TypeError: bad-utf8\.txt:4: the line is not valid UTF-8 at byte 1 \(options\.invalid is 'error'\)\n$/],
      [['vectorize', 'a.jsonl', 'b.txt', '--out', 'g.npy'], 2, /unexpected argument 'b\.txt'/],
      [['frob'], 2, /unknown command 'frob'/],
    ];
    writeFileSync(join(dir, 'bad-utf8.txt'), Buffer.concat([Buffer.from('ok\nok\nok\nx'), Buffer.from([0xff]), Buffer.from('\nok\n')]));
    for (const [args, code, message] of cases) {
      const r = await run(args);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    }
    expect(leftovers('g.')).toEqual([]);
  });

  it('a report that cannot be written is refused before the work: earlier outputs at those names stay, nothing is left', async () => {
    const old = await run(['vectorize', 'a.jsonl', '--out', 'k.npy', '-q']);
    expect(old.code).toBe(0);
    const before = ['k.npy', 'k.mask.npy', 'k.lengths.npy'].map((f) => readFileSync(join(dir, f)));
    mkdirSync(join(dir, 'report-dir'), { recursive: true }); // a directory where the report file should go
    const r = await run(['vectorize', 'b.txt', '--out', 'k.npy', '--report', 'report-dir', '-q']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("dtesn vectorize: cannot write report 'report-dir': is a directory (EISDIR)\n");
    expect(unchanged(['k.npy', 'k.mask.npy', 'k.lengths.npy'], before)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('a failed run removes the directories it made for --out and --report', async () => {
    writeFileSync(join(dir, 'one-bad.jsonl'), '{"text":"a"}\nnot json\n');
    const r = await run(['vectorize', 'one-bad.jsonl', '--out', 'made/sub/x.npy', '--report', 'made2/r.json', '--on-error', 'throw', '-q']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/one-bad\.jsonl:2: .*\(--on-error throw\); no output written/);
    expect(existsSync(join(dir, 'made'))).toBe(false);
    expect(existsSync(join(dir, 'made2'))).toBe(false);
  });

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s while reading: exit %i, no output file', async (signal, code) => {
    let child: ChildProcess | undefined;
    const done = run(['vectorize', '-', '--out', 'h.npy'], { onSpawn: (c) => (child = c) });
    const line = 'a line of text that keeps coming\n'.repeat(2000);
    child!.stdin!.write(line);
    await new Promise((r) => setTimeout(r, 1500));
    child!.stdin!.write(line);
    child!.kill(signal);
    const r = await done;
    expect(r.code).toBe(code);
    expect(r.stderr).toContain(`dtesn: ${signal}: interrupted; no output written`);
    expect(leftovers('h.')).toEqual([]);
  });

  it('--help and --version; each command’s --help lists its own flags; no command is a usage error on stderr', async () => {
    const h = await run(['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('dtesn vectorize [INPUT] --out FILE');
    expect(h.stdout).toContain('--max-length N');
    expect(h.stdout).toContain('--warmup REQUESTS');
    const vh = await run(['vectorize', '--help']);
    expect(vh.code).toBe(0);
    expect(vh.stdout).toMatch(/^Usage: dtesn vectorize \[INPUT\] --out FILE/);
    expect(vh.stdout).toContain('--max-length N');
    expect(vh.stdout).not.toContain('--body-limit');
    const sh = await run(['serve', '--help']);
    expect(sh.code).toBe(0);
    expect(sh.stdout).toMatch(/^Usage: dtesn serve/);
    expect(sh.stdout).toContain('--body-limit BYTES');
    expect(sh.stdout).not.toContain('--max-length');
    const bh = await run(['bench', '--help']);
    expect(bh.stdout).toMatch(/^Usage: dtesn bench/);
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/^Usage:\n {2}dtesn vectorize/);
    const bad = await run(['serve', '--port', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/--port/);
    const v = await run(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^dtesn \d+\.\d+\.\d+\n$/);
  });
});

/** Mounts a tmpfs of 2 MB at `at` (`ro`: read-only); false where mounting is not allowed (not root). */
function mountTmpfs(at: string, ro = false): boolean {
  mkdirSync(at, { recursive: true });
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=2m${ro ? ',ro' : ''}`, 'tmpfs', at], { stdio: 'ignore' }).status === 0;
}

const isRoot = process.getuid?.() === 0;
/** As root, permissions do not stop reads or writes: such runs go through setpriv as nobody. */
const AS_NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

describe('dtesn vectorize faults (issue 16, probe 5)', () => {
  it('a directory or an unreadable file as INPUT: exit 1, the reason named, nothing written', async () => {
    mkdirSync(join(dir, 'a-dir'), { recursive: true });
    const d = await run(['vectorize', 'a-dir', '--out', 'u.npy']);
    expect({ code: d.code, stderr: d.stderr }).toEqual({ code: 1, stderr: "dtesn vectorize: cannot read input 'a-dir': not a regular file\n" });
    // Unreadable: mode 000; as root (which reads it anyway) the run is made as nobody.
    writeFileSync(join(dir, 'secret.txt'), 'hidden\n');
    chmodSync(join(dir, 'secret.txt'), 0o000);
    chmodSync(dir, 0o777);
    try {
      const r = await run(['vectorize', 'secret.txt', '--out', 'u.npy'], isRoot ? { wrap: AS_NOBODY } : {});
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: "dtesn vectorize: cannot read input 'secret.txt': permission denied (EACCES)\n" });
    } finally {
      chmodSync(dir, 0o700);
      chmodSync(join(dir, 'secret.txt'), 0o600);
    }
    expect(leftovers('u.')).toEqual([]);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('a read-only output directory: exit 1, named, nothing left, an earlier output kept', async () => {
    const ro = join(dir, 'ro');
    // A read-only tmpfs where mounting works (root), else a directory of mode 555.
    const mounted = mountTmpfs(ro, true);
    if (!mounted) {
      mkdirSync(ro, { recursive: true });
      chmodSync(ro, 0o555);
    }
    try {
      const r = await run(['vectorize', 'a.jsonl', '--out', 'ro/o.npy']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(mounted ? /^dtesn vectorize: cannot write 'ro\/o\.npy': read-only file system \(EROFS\)\n$/ : /^dtesn vectorize: cannot write 'ro\/o\.npy': permission denied \(EACCES\)\n$/);
      expect(readdirSync(ro)).toEqual([]);
    } finally {
      if (mounted) spawnSync('umount', [ro]);
      else chmodSync(ro, 0o755);
    }
  });

  it('a full disk (2 MB tmpfs, or a 2 MB file size limit): exit 1, named, no temporaries, the earlier output kept', async () => {
    const full = join(dir, 'full');
    // A 2 MB tmpfs where mounting works (root); else the same path to a failing write through a
    // 2 MB file size limit (ulimit -f: Node ignores SIGXFSZ, so the write fails with EFBIG).
    const mounted = mountTmpfs(full);
    const wrap = mounted ? [] : ['bash', '-c', 'ulimit -f 2048; exec "$0" "$@"'];
    try {
      writeFileSync(join(dir, 'tiny.txt'), 'one\ntwo\n');
      const small = await run(['vectorize', 'tiny.txt', '--out', 'full/o.safetensors', '-q'], { wrap });
      expect(small.code).toBe(0);
      const before = readFileSync(join(full, 'o.safetensors'));
      // ~6 MB of output (20,000 rows x 64 x 5 bytes) on 2 MB.
      writeFileSync(join(dir, 'many.txt'), Array.from({ length: 20_000 }, (_, i) => `row ${i} `.repeat(10)).join('\n'));
      const r = await run(['vectorize', 'many.txt', '--out', 'full/o.safetensors', '-q', '--padding', 'max-length', '--max-length', '64'], { wrap });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        mounted
          ? "dtesn vectorize: cannot write 'full/o.safetensors': no space left on device (ENOSPC); no output written\n"
          : "dtesn vectorize: cannot write 'full/o.safetensors': file too large (EFBIG); no output written\n",
      );
      expect(readdirSync(full)).toEqual(['o.safetensors']);
      expect(readFileSync(join(full, 'o.safetensors')).equals(before)).toBe(true);
    } finally {
      if (mounted) spawnSync('umount', [full]);
    }
  });

  it('binary input: every line vectorized as TextDecoder decodes it; --invalid error names the line', async () => {
    const bytes = Buffer.alloc(300_000);
    let x = 7;
    for (let i = 0; i < bytes.length; i++) bytes[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    writeFileSync(join(dir, 'bin.dat'), bytes);
    const r = await run(['vectorize', 'bin.dat', '--out', 'bin.npy', '-q', '--max-length', '300']);
    expect(r.code).toBe(0);
    const lines = bytes.toString('latin1').split('\n');
    if (lines.at(-1) === '') lines.pop();
    const dec = new TextDecoder('utf-8', { ignoreBOM: true });
    const texts = lines.map((l) => dec.decode(Buffer.from(l.endsWith('\r') ? l.slice(0, -1) : l, 'latin1')));
    const want = vectorize(texts, { maxLength: 300 });
    const ids = readNpy(join(dir, 'bin.npy'));
    expect(ids.shape).toEqual([want.rows, want.width]);
    expect(ids.data.equals(bytesOf(want.ids))).toBe(true);
    const e = await run(['vectorize', 'bin.dat', '--out', 'bin2.npy', '--invalid', 'error']);
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(/^dtesn vectorize: TypeError: bin\.dat:\d+: the line is not valid UTF-8 at byte \d+ \(options\.invalid is 'error'\)\n$/);
    expect(leftovers('bin2.')).toEqual([]);
  });

  it('CRLF line ends and no trailing newline; a 200 MB line between short ones', async () => {
    writeFileSync(join(dir, 'crlf.txt'), 'héllo\r\nwörld\r\n\r\nlast');
    const r = await run(['vectorize', 'crlf.txt', '--out', 'crlf.npy', '-q']);
    expect(r.code).toBe(0);
    const want = vectorize(['héllo', 'wörld', '', 'last']);
    expect(readNpy(join(dir, 'crlf.npy')).data.equals(bytesOf(want.ids))).toBe(true);
    expect(readNpy(join(dir, 'crlf.lengths.npy')).data.equals(bytesOf(want.lengths))).toBe(true);

    writeFileSync(join(dir, 'long.txt'), Buffer.concat([Buffer.from('first\n'), Buffer.alloc(200_000_000, 'é'), Buffer.from('\nlast\n')]));
    const l = await run(['vectorize', 'long.txt', '--out', 'long.npy', '-q', '--max-length', '16']);
    rmSync(join(dir, 'long.txt'));
    expect({ code: l.code, stderr: l.stderr }).toEqual({ code: 0, stderr: '' });
    expect(Array.from(new Int32Array(new Uint8Array(readNpy(join(dir, 'long.lengths.npy')).data).buffer))).toEqual([5, 16, 4]);
    const ids = new Int32Array(new Uint8Array(readNpy(join(dir, 'long.npy')).data).buffer);
    expect(Array.from(ids.subarray(16, 32))).toEqual(Array(16).fill(233));
  });

  it('--on-error throw: exit 1 naming the line, nothing left, the earlier output at that path kept', async () => {
    expect((await run(['vectorize', 'a.jsonl', '--out', 'keep.npy', '-q'])).code).toBe(0);
    const before = ['keep.npy', 'keep.mask.npy', 'keep.lengths.npy'].map((f) => readFileSync(join(dir, f)));
    writeFileSync(join(dir, 'bad-late.jsonl'), `${'{"text":"fine"}\n'.repeat(5000)}{"text": oops}\n`);
    const r = await run(['vectorize', 'bad-late.jsonl', '--out', 'keep.npy', '--on-error', 'throw', '-q']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dtesn vectorize: bad-late\.jsonl:5001: .* \(--on-error throw\); no output written\n$/);
    expect(unchanged(['keep.npy', 'keep.mask.npy', 'keep.lengths.npy'], before)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('SIGINT (once, or twice) while a file is being written: exit 130, no temporaries, the earlier output kept', async () => {
    writeFileSync(join(dir, 'big.txt'), Array.from({ length: 300_000 }, (_, i) => `line ${i} of a file`).join('\n'));
    expect((await run(['vectorize', 'b.txt', '--out', 'int.npy', '-q'])).code).toBe(0);
    const before = ['int.npy', 'int.mask.npy', 'int.lengths.npy'].map((f) => readFileSync(join(dir, f)));
    for (const signals of [1, 2]) {
      let child: ChildProcess | undefined;
      const done = run(['vectorize', 'big.txt', '--out', 'int.npy', '--padding', 'max-length', '--max-length', '256'], { onSpawn: (c) => (child = c) });
      // Interrupt once the output's temporaries exist: the run is between opening and renaming.
      while (!readdirSync(dir).some((f) => f.startsWith('.int.') && f.endsWith('.tmp'))) await new Promise((res) => setTimeout(res, 2));
      for (let k = 0; k < signals; k++) child!.kill('SIGINT');
      const r = await done;
      expect({ signals, code: r.code, stderr: r.stderr }).toEqual({ signals, code: 130, stderr: 'dtesn: SIGINT: interrupted; no output written\n' });
      expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      expect(unchanged(['int.npy', 'int.mask.npy', 'int.lengths.npy'], before)).toBe(true);
    }
  });
});

describe('dtesn serve', () => {
  it('listens, answers, and drains on SIGTERM with exit 0', async () => {
    let child: ChildProcess | undefined;
    const done = run(['serve', '--port', '0', '--workers', '1'], { onSpawn: (c) => (child = c) });
    const url = await new Promise<string>((resolve, reject) => {
      let err = '';
      child!.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /listening on (http:\/\/[^ ]+)/.exec(err);
        if (m) resolve(m[1]!);
      });
      child!.on('close', () => reject(new Error(`serve exited: ${err}`)));
    });
    const res = await fetch(`${url}/v1/vectorize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ texts: ['hi', 'there'], options: { maxLength: 8 } }) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { rows: number; width: number; ids: number[][]; lengths: number[] };
    const want = vectorize(['hi', 'there'], { maxLength: 8 });
    expect(body.rows).toBe(2);
    expect(body.width).toBe(want.width);
    expect(body.ids).toEqual([Array.from(want.ids.subarray(0, want.width)), Array.from(want.ids.subarray(want.width))]);
    expect(body.lengths).toEqual(Array.from(want.lengths));
    child!.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(0);
  });
});

describe('dtesn bench', () => {
  it('runs the quick suite on the bundled corpus and prints the table', { timeout: 120_000 }, async () => {
    const r = await run(['bench', '--rounds', '1', '--lines', '20000']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\| vectorize \(native, \w+\) \| [\d,]+ \| [\d.]+x the JS fallback \|/);
    expect(r.stdout).toMatch(/\| pipeline\.vectorize, batches of 1000 \| [\d,]+ \| \d+x the original's 24,741 no-op items\/s \|/);
    expect(r.stdout).toMatch(/\| pipeline\.vectorizeFile, [\d,]+-line JSONL \| [\d,]+ \| \d+ MB\/s; [\d.]+x readline/);
    expect(existsSync(join(dir, 'bench'))).toBe(false);
  });
});
