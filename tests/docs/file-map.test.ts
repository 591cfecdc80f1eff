/**
 * The File map of docs/architecture.md cannot drift from the tree: every file it names exists in
 * the folder it is listed under, and every shipped source file of assembly/, src/core, src/ports,
 * src/engine, src/api and src/node is named (tests, test helpers and the one-file-per-thing
 * folders commands/, routes/, schemas/ and middleware/ aside, which the map names as folders).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const doc = readFileSync(join(root, 'docs/architecture.md'), 'utf8');
const map = /^## File map\n\n```\n([\s\S]*?)^```$/m.exec(doc)?.[1] ?? '';

/** Each file name of the map, with the path it resolves to under its folder (undefined: none). */
function namedFiles(): { name: string; path: string | undefined }[] {
  const out: { name: string; path: string | undefined }[] = [];
  let top = '';
  let sub = '';
  for (const line of map.split('\n')) {
    // `src/core/` at the start of a line opens a folder; `  kv/  ...` a subfolder of it.
    const folder = /^([a-z][\w./-]*\/)(?:\s|$)/.exec(line);
    if (folder) {
      top = folder[1]!;
      sub = '';
    } else {
      const subfolder = /^ {2}([a-z][\w-]*\/)\s/.exec(line);
      if (subfolder) sub = subfolder[1]!;
      else if (/^ {2}\S/.test(line)) sub = '';
    }
    // Not a name inside a path or pattern (`bin/quartz.js`, `*-testing.ts`).
    for (const m of line.matchAll(/(?<![\w*/-])([a-z0-9][\w-]*(?:\.[\w-]+)*\.(?:ts|js))\b/g)) {
      const name = m[1]!;
      const path = [join(top, sub, name), join(top, name)].find((p) => existsSync(join(root, p)));
      out.push({ name, path });
    }
  }
  return out;
}

describe('docs/architecture.md file map', () => {
  it('names only files that exist, and every shipped source file', () => {
    expect(map.length).toBeGreaterThan(0);
    const named = namedFiles();
    expect(named.filter((f) => f.path === undefined).map((f) => f.name)).toEqual([]);
    const paths = new Set(named.map((f) => f.path));
    const unnamed: string[] = [];
    for (const dir of ['assembly', 'src/core', 'src/ports', 'src/engine', 'src/api', 'src/node']) {
      for (const file of readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })) {
        if (!file.endsWith('.ts') || /\.test\.ts$|-testing\.ts$|\.d\.ts$|(^|\/)(commands|routes|schemas|middleware)\//.test(file)) continue;
        if (!paths.has(join(dir, file))) unnamed.push(join(dir, file));
      }
    }
    expect(unnamed).toEqual([]);
  });
});
