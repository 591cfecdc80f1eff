#!/usr/bin/env node
// The general bench's bare twin of every shape: the same stack as `quartz serve` (hono on
// @hono/node-server) with nothing behind it, answering any method on /bytes?n=N with N constant
// bytes (after reading a request body whole, if any), so each QuartzDB shape is compared with a
// route that moves the same bytes in and out. Plain JS run by node itself, as the server is.
// Usage: node bench/general/peer.mjs --port N
import { serve } from '@hono/node-server';
import { Hono } from 'hono';

const i = process.argv.indexOf('--port');
if (i < 0 || i + 1 >= process.argv.length) throw new Error('general-peer.mjs: --port is required');
const port = Number(process.argv[i + 1]);

/** @type {Map<number, Uint8Array<ArrayBuffer>>} */
const bodies = new Map();
const bodyOf = (/** @type {number} */ n) => {
  let body = bodies.get(n);
  if (body === undefined) bodies.set(n, (body = new Uint8Array(n).fill(0x78)));
  return body;
};

const app = new Hono();
app.all('/bytes', async (c) => {
  if (c.req.method !== 'GET' && c.req.method !== 'HEAD') await c.req.arrayBuffer();
  const n = Number(c.req.query('n') ?? 0);
  return c.body(bodyOf(n), 200, { 'content-type': c.req.query('type') ?? 'application/octet-stream' });
});

const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port });
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
