#!/usr/bin/env node
// bench/http's peer server: the same stack as `quartz serve` (hono on @hono/node-server) with
// nothing behind it, so the bench can show what our routes cost on top of the stack.
//   GET  /bare    a constant 1 KB body: the ceiling every QuartzDB route is compared with
//   POST /append  the reference durable log: each request's records appended to one
//                 file as JSON lines with an fsync per request
// Plain JS run by node itself (like the compiled server), so no loader sits on its hot path.
// Usage: node bench/http/peers.mjs --port N --dir DIR
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`peers.mjs: --${name} is required`);
  return process.argv[i + 1];
};
const port = Number(arg('port'));
const file = await open(join(arg('dir'), 'append.jsonl'), 'a');

const KB = 'x'.repeat(1024);
const app = new Hono();
app.get('/bare', (c) => c.body(KB, 200, { 'content-type': 'application/octet-stream' }));
app.post('/append', async (c) => {
  const body = await c.req.json();
  const records = body?.records;
  if (!Array.isArray(records) || records.length === 0) return c.json({ error: 'invalid_argument', message: 'records: expected a non-empty array' }, 400);
  let lines = '';
  for (const r of records) lines += JSON.stringify(r) + '\n';
  await file.write(lines);
  await file.datasync();
  return c.json({ appended: records.length });
});

const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port });
process.on('SIGTERM', () => {
  server.close();
  void file.close().finally(() => process.exit(0));
});
