/**
 * The bench command lines the docs give cannot go stale: every `npm run bench -- NAME --flag …`
 * in README.md and docs/*.md names a bench of bench/run.mjs and flags that bench reads (each bench
 * refuses a flag it does not know, so a renamed flag would stop a reader's copied line), and every
 * `bench/….ts` script named exists.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** The sources of one bench and the shared flag parser, where its flags are declared by name. */
function benchSource(name: string): string {
  const dir = join(root, 'bench', name);
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /\.(ts|mjs)$/.test(f) && !f.endsWith('.test.ts'));
  return files.map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
}

describe('bench commands in the docs', () => {
  it('name benches and flags that exist', () => {
    const wrong: string[] = [];
    let checked = 0;
    for (const page of pages) {
      const text = readFileSync(join(root, page), 'utf8');
      for (const m of text.matchAll(/npm run bench -- ([a-z0-9-]+)((?: --?[a-z][a-z0-9-]*(?:[= ](?!-)[^\s`)]+)?)*)/g)) {
        checked++;
        const name = m[1]!;
        if (!existsSync(join(root, 'bench', name, 'index.ts'))) {
          wrong.push(`${page}: no bench '${name}'`);
          continue;
        }
        const source = benchSource(name);
        for (const flag of m[2]!.matchAll(/--([a-z][a-z0-9-]*)/g)) {
          if (!source.includes(`'${flag[1]}'`)) wrong.push(`${page}: bench ${name} reads no --${flag[1]}`);
        }
      }
      for (const m of text.matchAll(/\b(bench\/[\w/-]+\.(?:ts|mjs))\b/g)) {
        checked++;
        if (!existsSync(join(root, m[1]!))) wrong.push(`${page}: no ${m[1]}`);
      }
    }
    expect(checked).toBeGreaterThan(20);
    expect(wrong).toEqual([]);
  });
});
