#!/usr/bin/env node
// bench/http's peer server: the same stack as `quartz serve` (hono on @hono/node-server) with
// nothing behind it, so the bench can show what our routes cost on top of the stack.
//   GET  /bare    a constant 1 KB body: the ceiling every QuartzDB route is compared with
//   POST /bare    reads the request body whole, then answers the same constant 1 KB: what a
//                 request carrying a body (KV PUT, vector query) costs the stack with nothing behind it
//   POST /scan    reads the request body whole, runs the exact scan a vector query over 1,000 ×
//                 128-d cosine vectors does (the core's HnswIndex, k=10, on one of 64 fixed query
//                 vectors: the body is not parsed), then answers the same constant 1 KB: the stack
//                 and the scan with nothing else, the least a vector query can cost here
//   POST /append  the reference durable log: each request's records appended to one
//                 file as JSON lines with an fsync per request
//   PUT  /lmdb/K  the body put into a plain lmdb database with the durability settings of our
//                 disk adapter (each put's promise resolves once its commit is fsync'd): the
//                 ceiling for a durable KV PUT on this disk, with no engine behind it
//   PUT  /log/K   the body written to an O_DSYNC log, group-committed (bodies that arrive while
//                 a write is on the disk go out together in the next one): the least a durable
//                 PUT can cost on this stack and disk, with no index, no read path, no recovery.
//                 The file is written through once at start and then reused in a ring, as a
//                 write-ahead log's files are, so a write never has to flush a new file size too
// Plain JS run by node itself (like the compiled server), so no loader sits on its hot path.
// Usage: node bench/http/peers.mjs --port N --dir DIR
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { open as openLmdb } from 'lmdb';
import { HnswIndex, init } from '../../dist/src/node/core.js';
import { seededRandom } from '../../dist/src/core/random-testing.js';

const arg = (/** @type {string} */ name) => {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`peers.mjs: --${name} is required`);
  return process.argv[i + 1];
};
const port = Number(arg('port'));
const file = await open(join(arg('dir'), 'append.jsonl'), 'a');
// The options src/node/storage/disk-storage.ts opens its environment with.
const lmdb = openLmdb({ path: join(arg('dir'), 'peer.mdb'), overlappingSync: false, noSync: false, noMetaSync: false, commitDelay: 0, eventTurnBatching: true, pageSize: 8192, encoding: 'binary' });

const LOG_BYTES = 64 * 1024 * 1024;
const log = await open(join(arg('dir'), 'peer.log'), constants.O_WRONLY | constants.O_CREAT | constants.O_DSYNC);
{
  const zeros = new Uint8Array(4 * 1024 * 1024);
  const plain = await open(join(arg('dir'), 'peer.log'), 'r+');
  for (let at = 0; at < LOG_BYTES; at += zeros.length) await plain.write(zeros, 0, zeros.length, at);
  await plain.sync();
  await plain.close();
}
let logAt = 0;

/** @type {{ bytes: Uint8Array[]; acks: (() => void)[] }} */
let group = { bytes: [], acks: [] };
let writing = false;
let flushing = Promise.resolve();
async function flushGroups() {
  writing = true;
  while (group.acks.length > 0) {
    const { bytes, acks } = group;
    group = { bytes: [], acks: [] };
    let size = 0;
    for (const b of bytes) size += b.length;
    if (logAt + size > LOG_BYTES) logAt = 0;
    await log.writev(bytes, logAt);
    logAt += size;
    for (const ack of acks) ack();
  }
  writing = false;
}
/**
 * @param {string} key
 * @param {Uint8Array} body
 * @returns {Promise<void>}
 */
function appendDurably(key, body) {
  return new Promise((resolve) => {
    group.bytes.push(Buffer.from(`${key} ${body.length}\n`), body);
    group.acks.push(resolve);
    if (!writing) flushing = flushGroups();
  });
}

// The vector query's collection as the bench makes it (1,000 × 128-d, cosine, 4-decimal values).
await init();
const rand = seededRandom(42);
const randomVector = () => Float32Array.from({ length: 128 }, () => Math.round((rand() * 2 - 1) * 1e4) / 1e4);
const index = new HnswIndex({ dims: 128, metric: 'cosine' });
for (let id = 0; id < 1000; id++) index.add(id, randomVector());
const queries = Array.from({ length: 64 }, randomVector);
let nextQuery = 0;

const KB = 'x'.repeat(1024);
const app = new Hono();
app.get('/bare', (c) => c.body(KB, 200, { 'content-type': 'application/octet-stream' }));
app.post('/bare', async (c) => {
  await c.req.arrayBuffer();
  return c.body(KB, 200, { 'content-type': 'application/octet-stream' });
});
app.post('/scan', async (c) => {
  await c.req.arrayBuffer();
  const { scores } = index.search(queries[nextQuery++ & 63], 10);
  // The scan's result feeds the answer, so it cannot be skipped.
  return c.body(scores.length === 10 ? KB : '', 200, { 'content-type': 'application/octet-stream' });
});
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

app.put('/lmdb/:key', async (c) => {
  const body = new Uint8Array(await c.req.arrayBuffer());
  await lmdb.put(c.req.param('key'), body);
  return c.json({ key: c.req.param('key') });
});

app.put('/log/:key', async (c) => {
  const body = new Uint8Array(await c.req.arrayBuffer());
  await appendDurably(c.req.param('key'), body);
  return c.json({ key: c.req.param('key') });
});

const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port });
process.on('SIGTERM', () => {
  server.close();
  // A group still being written (a request that came in as the bench stopped) lands before its file closes.
  void flushing
    .then(() => Promise.allSettled([file.close(), log.close(), lmdb.close()]))
    .finally(() => process.exit(0));
});
