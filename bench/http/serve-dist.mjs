#!/usr/bin/env node
// The compiled server (dist/) started the way `quartz serve` starts it, for checkouts whose CLI
// entry (dist/src/node/cli/index.js) is not built: the bench prefers `node bin/quartz.js serve`.
// SIGTERM runs the graceful close and exits 0, so `node --cpu-prof` writes its profile.
// Usage: node bench/http/serve-dist.mjs --port N --data DIR [--log-level L]
import { fileURLToPath, pathToFileURL } from 'node:url';

const dist = (p) => pathToFileURL(fileURLToPath(new URL(`../../dist/src/node/server/${p}`, import.meta.url))).href;
const { startServer } = await import(dist('server.js'));
const { resolveServeSettings } = await import(dist('settings.js'));

const flag = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const settings = await resolveServeSettings({ host: '127.0.0.1', port: flag('port'), data: flag('data'), logLevel: flag('log-level') }, process.env);
const server = await startServer(settings, process.env);
console.log(`listening on ${server.url}`);
const stop = () => void server.close('signal').then((inTime) => process.exit(inTime ? 0 : 1));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
