/**
 * The cross-home tests load the built package (dist/ + build/), as its users do. `npm test`
 * builds dist/ first; this check turns a missing or stale build into a clear failure instead
 * of a test of old code.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

function newestSource(dir: string): { path: string; mtime: number } {
  let newest = { path: '', mtime: 0 };
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.test.ts')) continue;
    const path = join(entry.parentPath, entry.name);
    const mtime = statSync(path).mtimeMs;
    if (mtime > newest.mtime) newest = { path, mtime };
  }
  return newest;
}

/** Throws, naming the fix, when a built file is missing or older than the sources it comes from. */
export function assertBuilt(files: string[]): void {
  for (const file of ['build/quartz.wasm', ...files]) {
    if (!existsSync(join(root, file))) {
      throw new Error(`${file} is missing: run \`npm run build\` (npm install does it) before these tests`);
    }
  }
  const oldest = Math.min(...files.map((f) => statSync(join(root, f)).mtimeMs));
  for (const dir of ['src/core', 'web', 'worker']) {
    const newest = newestSource(join(root, dir));
    if (newest.mtime > oldest) {
      throw new Error(`dist/ is older than ${relative(root, newest.path)}: run \`npm run build:ts\` before these tests`);
    }
  }
}
