/**
 * `node --expose-gc --import tsx bench/http/query-params.ts [--ms 1500]`: what refusing unknown
 * query parameters costs the hot routes, in process, CPU ns per call: KV GET and PUT through the
 * hono app (`app.fetch`, the Worker home's path; the Node server's direct GET takes no query and
 * its direct PUT only `?ttl=`), with no query and with known parameters, a KV list, and the
 * direct consume (the one direct route that reads a query). Run it on a checkout without the
 * check for the before figures.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createApp } from '../../src/api/app.js';
import { resolveServerConfig } from '../../src/api/config.js';
import type { DirectRequest, PlainAnswer } from '../../src/api/middleware/request.js';
import { init } from '../../src/core/loader.js';
import { createTestEngine } from '../../src/engine/testing.js';
import { parseFlags } from '../lib/args.js';
import { median } from '../lib/quantiles.js';
import { cpuNsPerCall } from '../lib/timing.js';

const flags = parseFlags({ values: ['ms'] });
const MS = flags.number('ms', 1500, 'positive');

await init(readFileSync(fileURLToPath(new URL('../../build/quartz.wasm', import.meta.url))));
const engine = await createTestEngine();
const { tenant, api_key: apiKey } = await engine.tenants.create({ email: 'query@example.com', plan: 'unlimited' });
const services = await engine.tenant(tenant.id);
const keys = Array.from({ length: 100 }, (_, i) => `bench/get-${i}`);
for (const key of keys) await services.kv.put(key, new Uint8Array(1024).fill(118), { contentType: 'application/octet-stream' });
await services.streams.createTopic('events', { partitions: 1 });
await services.streams.produce('events', Array.from({ length: 100 }, (_, i) => ({ value: new TextEncoder().encode(`record ${i}`) })));
const app = createApp({ engine, config: resolveServerConfig({ version: 'bench', default_plan: 'unlimited' }) });
const auth = `Bearer ${apiKey}`;
const headers = { authorization: auth };
const value = new Uint8Array(100).fill(120);
const direct: DirectRequest = { method: 'GET', header: (name) => (name === 'authorization' ? auth : name === 'host' ? '127.0.0.1:8787' : undefined) };

async function expectStatus(res: Response | PlainAnswer | Promise<Response | PlainAnswer> | undefined, status: number): Promise<void> {
  const answer = await res;
  if (answer?.status !== status) throw new Error(`answered ${answer?.status}, not ${status}`);
}
await expectStatus(app.fetch(new Request(`http://local/v1/kv/${keys[0]}`, { headers })), 200);
await expectStatus(app.fetch(new Request('http://local/v1/kv?prefix=bench/get-1&limit=5&cursor=', { headers })), 200);
await expectStatus(app.direct(direct, '/v1/topics/events/partitions/0/records?offset=0&max_records=10'), 200);

/** Best and median of 5 slices of `MS` in all, ns of CPU per call. */
async function time(name: string, step: (i: number) => unknown): Promise<void> {
  const perCall = await cpuNsPerCall(step, { ms: MS, warmup: 20_000, cycle: 100 });
  console.log(`  ${name.padEnd(52)} ${perCall[0]!.toFixed(0).padStart(6)} ns CPU (median ${median(perCall).toFixed(0)})`);
}

/** The answer's body read whole; hono answers a synchronous route without a promise. */
const read = (res: Response | Promise<Response>) => (res instanceof Promise ? res.then((r) => r.arrayBuffer()) : res.arrayBuffer());
console.log('Query parameters on the hot routes: 100 hot keys of 1 KB, unlimited plan, in process');
await time('hono KV GET, no query', (i) => read(app.fetch(new Request(`http://local/v1/kv/${keys[i]}`, { headers }))));
await time('hono KV PUT 100 B, ?ttl=60', (i) => read(app.fetch(new Request(`http://local/v1/kv/bench/put-${i}?ttl=60`, { method: 'PUT', headers, body: value }))));
await time('hono KV list, ?prefix=&limit=&cursor=', (i) => read(app.fetch(new Request(`http://local/v1/kv?prefix=bench/get-${i}&limit=5&cursor=`, { headers }))));
await time('direct consume, ?offset=&max_records=10', (i) => app.direct(direct, `/v1/topics/events/partitions/0/records?offset=${i}&max_records=10`) as Promise<PlainAnswer>);
// The check alone (absent from a checkout without it, which prints the rows above only).
const check = await import('../../src/api/query-params.js').catch(() => undefined);
if (check !== undefined) {
  const consumeParams = ['offset', 'max_records', 'max_bytes', 'max_wait_ms'];
  const urls = keys.map((k) => `http://local/v1/kv/${k}`);
  const queries = keys.map((_, i) => `offset=${i}&max_records=10`);
  let seen = 0;
  await time('the check alone: a URL without a query', (i) => (seen += urls[i]!.includes('?') ? 1 : 0));
  await time('the check alone: offset=&max_records=', (i) => check.refuseUnknownQuery(queries[i]!, consumeParams));
  if (seen !== 0) console.log(seen);
}
await engine.close();
