/**
 * `node --expose-gc --import tsx bench/http/get-steps.ts [--ms 1500]`: a hot KV GET's own work in
 * process, each step timed alone in CPU time (ns per GET), on the http bench's data (100 keys of
 * 1 KB, read until hot): the store's read of a hot entry, the whole direct route without node's
 * socket work (matching, auth, request id, the entry, headers, metrics), with the same request
 * strings every call and with fresh ones as node's parser gives them (the difference: hashes V8
 * had cached), and the clock reads the route makes (two `performance.now()` for the latency
 * histogram, one `Date.now()` that auth shares between the principal cache and the usage meter).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createApp } from '../../src/api/app.js';
import { resolveServerConfig } from '../../src/api/config.js';
import type { DirectRequest, PlainAnswer } from '../../src/api/middleware/request.js';
import { init } from '../../src/core/loader.js';
import { createTestEngine } from '../../src/engine/testing.js';
import { createMetrics } from '../../src/node/server/metrics.js';
import { parseFlags } from '../lib/args.js';
import { median } from '../lib/quantiles.js';
import { cpuNsPerCall } from '../lib/timing.js';

const flags = parseFlags({ values: ['ms'] });
const MS = flags.number('ms', 1500, 'positive');

await init(readFileSync(fileURLToPath(new URL('../../build/quartz.wasm', import.meta.url))));
const engine = await createTestEngine();
const { tenant, api_key: apiKey } = await engine.tenants.create({ email: 'steps@example.com', plan: 'unlimited' });
const kv = (await engine.tenant(tenant.id)).kv;
const keys = Array.from({ length: 100 }, (_, i) => `bench/get-${i}`);
for (const key of keys) await kv.put(key, new Uint8Array(1024).fill(118), { contentType: 'application/octet-stream' });
const app = createApp({ engine, config: resolveServerConfig({ version: 'bench', default_plan: 'unlimited' }), metrics: createMetrics(engine) });
const auth = `Bearer ${apiKey}`;
const request: DirectRequest = { method: 'GET', header: (name) => (name === 'authorization' ? auth : name === 'host' ? '127.0.0.1:8787' : undefined) };
const targets = keys.map((k) => `/v1/kv/${k}`);
const probe = await app.direct(request, targets[0]!);
if (probe?.status !== 200) throw new Error(`direct GET answered ${probe?.status}: ${String(probe?.body)}`);

/** Best and median of 5 slices of `MS` in all, ns of CPU per call. */
async function time(name: string, step: (i: number) => unknown): Promise<void> {
  const perCall = await cpuNsPerCall(step, { ms: MS, warmup: 20_000, cycle: 100 });
  console.log(`  ${name.padEnd(44)} ${perCall[0]!.toFixed(0).padStart(6)} ns CPU (median ${median(perCall).toFixed(0)})`);
}

// node's parser hands every request fresh strings (its target, each header value): a string
// that comes back every call has its hash cached, which a request's never have. A slice of a
// longer text is a fresh string at little cost.
const within = (text: string): string => `${text} `;
const fresh = (text: string): string => text.slice(0, -1);
const authText = within(auth);
const hostText = within('127.0.0.1:8787');
const targetTexts = targets.map(within);
const freshRequest = (): DirectRequest => {
  const a = fresh(authText);
  const h = fresh(hostText);
  return { method: 'GET', header: (name) => (name === 'authorization' ? a : name === 'host' ? h : undefined) };
};

console.log('KV GET steps: 100 hot keys of 1 KB, unlimited plan, metrics on');
await time('kv.getShared (a hot entry)', (i) => kv.getShared(keys[i]!));
await time('direct route, whole (no socket)', (i) => app.direct(request, targets[i]!) as PlainAnswer | Promise<PlainAnswer>);
await time('fresh request strings alone', (i) => freshRequest().header(fresh(targetTexts[i]!)));
await time('the same with the direct route', (i) => app.direct(freshRequest(), fresh(targetTexts[i]!)) as PlainAnswer | Promise<PlainAnswer>);
let sink = 0;
await time('performance.now()', () => (sink += performance.now()));
await time('Date.now()', () => (sink += Date.now()));
if (Number.isNaN(sink)) console.log(sink);
await engine.close();
