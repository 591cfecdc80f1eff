#!/usr/bin/env node
// The `quartz` command: a thin launcher for the compiled CLI in dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cli = fileURLToPath(new URL('../dist/src/node/cli/index.js', import.meta.url));
if (!existsSync(cli)) {
  console.error('quartz: the CLI is not built yet (run `npm install`, which builds everything).');
  process.exit(1);
}
try {
  await import(pathToFileURL(cli).href);
} catch (err) {
  // Loading the CLI opens its modules' files many at once: a low `ulimit -n` fails here, before
  // the CLI's own error handling exists. One line, not a loader stack trace.
  if (err?.code !== 'EMFILE' && err?.code !== 'ENFILE') throw err;
  console.error(`quartz: too many open files while loading (${err.code}); raise the limit (\`ulimit -n 1024\`) and start again`);
  process.exit(1);
}
