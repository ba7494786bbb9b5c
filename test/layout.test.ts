/**
 * The house rule of src/ (README, "Where things live"): each room imports only from rooms below
 * it, so a change in one room cannot reach up into another, and no two modules import each other.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
/** Lowest first; a module may import from its own room or any earlier one. */
const ROOMS = ['common', 'vectorize', 'io', 'tensors', 'observe', 'pipeline', 'server', 'queue', 'cli', 'index'];

function modules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? modules(path.join(dir, e.name)) : /\.c?ts$/.test(e.name) ? [path.join(dir, e.name)] : [],
  );
}
const roomOf = (file: string) => path.relative(SRC, file).split(path.sep)[0]!.replace(/\.ts$/, '');
/** Relative imports (static, dynamic, re-exports, require) of a module, as source files. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\(\s*|require\(\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specs.map((s) => path.resolve(path.dirname(file), s).replace(/\.js$/, '.ts').replace(/\.cjs$/, '.cts')).filter((f) => f.startsWith(SRC));
}

const files = modules(SRC);

describe('src/ layout', () => {
  it('every module lives in a known room', () => {
    expect(files.map(roomOf).filter((r) => !ROOMS.includes(r))).toEqual([]);
  });

  it('imports go only downward (or within a room)', () => {
    const upward = files.flatMap((f) =>
      importsOf(f)
        .filter((t) => ROOMS.indexOf(roomOf(t)) > ROOMS.indexOf(roomOf(f)))
        .map((t) => `${path.relative(SRC, f)} -> ${path.relative(SRC, t)}`),
    );
    expect(upward).toEqual([]);
  });

  it('no import cycles', () => {
    const graph = new Map(files.map((f) => [f, importsOf(f)]));
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (f: string, stack: string[]) => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...stack.slice(stack.indexOf(f)), f].map((x) => path.relative(SRC, x)).join(' -> '));
        return;
      }
      state.set(f, 'open');
      for (const t of graph.get(f) ?? []) visit(t, [...stack, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });
});
