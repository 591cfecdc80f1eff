#!/usr/bin/env node
// The `quartz` command: a thin launcher for the compiled CLI in dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cli = fileURLToPath(new URL('../dist/src/node/cli/index.js', import.meta.url));
if (!existsSync(cli)) {
  console.error('quartz: the CLI is not built yet (run `npm install`, which builds everything).');
  process.exit(1);
}
await import(pathToFileURL(cli).href);
