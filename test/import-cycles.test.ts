// lib/ has no import cycles: each module can be read, and loaded, after the modules it imports.
// The graph comes from the TypeScript scanner over every lib/**/*.ts file. `import type` counts too:
// it vanishes at run time, but a cycle through it still ties two concerns into one.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const LIB = path.join(__dirname, '..', 'lib');

function sourcesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) return sourcesUnder(file);
    return name.endsWith('.ts') ? [file] : [];
  });
}

/** The lib file a relative specifier names, or null when none does. */
function resolveSpecifier(from: string, specifier: string, files: ReadonlySet<string>): string | null {
  const base = path.resolve(path.dirname(from), specifier);
  return [`${base}.ts`, path.join(base, 'index.ts')].find((f) => files.has(f)) ?? null;
}

/** file → the lib files it imports, re-exports or requires (relative specifiers only). */
function importGraph(files: readonly string[]): Map<string, string[]> {
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = importedFiles
      .map((ref) => ref.fileName)
      .filter((specifier) => specifier.startsWith('./') || specifier.startsWith('../'))
      .map((specifier) => {
        const target = resolveSpecifier(file, specifier, known);
        // An unresolved edge would hide a cycle, so it fails the test instead.
        if (target === null) throw new Error(`${path.relative(LIB, file)}: cannot resolve '${specifier}' to a lib file`);
        return target;
      });
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** One cycle per back edge a depth-first walk meets, each written as the path that closes it. */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

describe('import cycles in lib/', () => {
  const graph = importGraph(sourcesUnder(LIB));

  it('the scanner sees imports, re-exports and require() of relative paths', () => {
    const edges = (from: string): string[] => (graph.get(path.join(LIB, from)) ?? []).map((f) => path.relative(LIB, f));
    assert.ok(edges('index.ts').includes('kernel.ts'), 'index.ts re-exports kernel.ts');
    assert.ok(edges('index.ts').includes(path.join('backends', 'registry.ts')), 'index.ts re-exports backends/registry.ts');
    assert.ok(edges('kernel.ts').includes('mask.ts'), 'kernel.ts imports mask.ts');
  });

  it('the walk reports a cycle where there is one', () => {
    const toy = new Map([['a', ['b']], ['b', ['c']], ['c', ['a', 'd']], ['d', []]]);
    assert.deepEqual(findCycles(toy), [['a', 'b', 'c', 'a']]);
    assert.deepEqual(findCycles(new Map([['a', ['b']], ['b', []], ['c', ['a', 'b']]])), []);
  });

  it('no lib module imports itself through others', () => {
    const cycles = findCycles(graph).map((cycle) => cycle.map((f) => path.relative(LIB, f)).join(' → '));
    assert.deepEqual(cycles, [], `import cycles:\n  ${cycles.join('\n  ')}`);
  });
});
