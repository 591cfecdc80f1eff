#!/usr/bin/env node
// `npm run bench -- <name> [...]`: runs bench/<name>/index.ts (all of them when no name is given).
import { readdirSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('.', import.meta.url));
const available = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, d.name, 'index.ts')))
  .map((d) => d.name)
  .sort();
const [name, ...rest] = process.argv.slice(2);
const chosen = name ? [name] : available;
for (const bench of chosen) {
  if (!available.includes(bench)) {
    console.error(`unknown bench '${bench}'; available: ${available.join(', ') || 'none yet'}`);
    process.exit(2);
  }
  console.log(`\n=== bench ${bench} ===`);
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--expose-gc', join(root, bench, 'index.ts'), ...rest], { stdio: 'inherit' });
  if (run.status !== 0) process.exit(run.status ?? 1);
}
