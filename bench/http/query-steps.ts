/**
 * `node --expose-gc --import tsx bench/http/query-steps.ts [--dims 128] [--n 1000] [--k 10] [--metric cosine] [--ms 1500] [--wasm FILE]`:
 * the vector query's steps in process, each timed alone in CPU time (µs per query), on the http
 * bench's data (a collection of n random vectors with 4-decimal values, 64 query bodies): the body
 * read, the collection's query (checks, search, matches), the index's search alone, the answer's
 * JSON, and the whole direct route (auth, the pipeline's headers, metrics) without node's socket work.
 */
import { createApp } from '../../src/api/app.js';
import { resolveServerConfig } from '../../src/api/config.js';
import type { DirectRequest, PlainAnswer } from '../../src/api/middleware/request.js';
import { queryBodyFromBytes } from '../../src/api/query-body.js';
import { queryResultJson } from '../../src/api/routes/vectors.js';
import { HnswIndex } from '../../src/core/hnsw.js';
import { init } from '../../src/core/loader.js';
import { seededRandom } from '../../src/core/random-testing.js';
import { createTestEngine } from '../../src/engine/testing.js';
import type { QueryRequest } from '../../src/engine/vectors/collection.js';
import { createMetrics } from '../../src/node/server/metrics.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fourDecimalVector } from './query-vector.js';
import { parseFlags, refuseFlag } from '../lib/args.js';
import { median } from '../lib/quantiles.js';
import { cpuNsPerCall } from '../lib/timing.js';

const flags = parseFlags({ values: ['dims', 'n', 'k', 'metric', 'ms', 'wasm'] });
const DIMS = flags.number('dims', 128, 'positive');
const N = flags.number('n', 1000, 'positive');
const K = flags.number('k', 10, 'positive');
const METRIC = (flags.string('metric') ?? 'cosine') as 'cosine' | 'l2' | 'dot';
if (!['cosine', 'l2', 'dot'].includes(METRIC)) refuseFlag(`--metric must be cosine, l2 or dot, got '${METRIC}'`);
const MS = flags.number('ms', 1500, 'positive');
const WASM = flags.string('wasm') ?? fileURLToPath(new URL('../../build/quartz.wasm', import.meta.url));

await init(readFileSync(WASM));
const rand = seededRandom(42);
const randomVector = () => fourDecimalVector(rand, DIMS);

const engine = await createTestEngine();
const { tenant, api_key: apiKey } = await engine.tenants.create({ email: 'steps@example.com', plan: 'unlimited' });
const vectors = (await engine.tenant(tenant.id)).vectors;
await vectors.createCollection({ name: 'bench', dims: DIMS, metric: METRIC });
for (let b = 0; b < N; b += 500) {
  await vectors.upsert('bench', Array.from({ length: Math.min(500, N - b) }, (_, i) => ({ id: `v${b + i}`, values: randomVector(), metadata: { n: b + i } })));
}
const collection = await vectors.collection('bench');
const encoder = new TextEncoder();
const texts = Array.from({ length: 64 }, () => JSON.stringify({ vector: randomVector(), k: K }));
const bodies = texts.map((t) => encoder.encode(t));
const parsed = bodies.map((b) => queryBodyFromBytes(b) as QueryRequest);
const results = parsed.map((p) => collection.query(p));
const index = new HnswIndex({ dims: DIMS, metric: METRIC });
for (let b = 0; b < N; b += 500) {
  const ids = Array.from({ length: Math.min(500, N - b) }, (_, i) => b + i);
  index.addBatch(Uint32Array.from(ids), new Float32Array(ids.length * DIMS).map(() => rand() * 2 - 1));
}
const f32s = parsed.map((p) => Float32Array.from(p.vector as ArrayLike<number>));

const app = createApp({ engine, config: resolveServerConfig({ version: 'bench', default_plan: 'unlimited' }), metrics: createMetrics(engine) });
const auth = `Bearer ${apiKey}`;
const requestFor = (bytes: Uint8Array): DirectRequest => ({
  method: 'POST',
  header: (name) => (name === 'authorization' ? auth : name === 'content-length' ? String(bytes.length) : name === 'host' ? '127.0.0.1:8787' : name === 'content-type' ? 'application/json' : undefined),
  body: () => Promise.resolve(bytes),
});
const requests = bodies.map(requestFor);
const first = await app.direct(requests[0]!, '/v1/collections/bench/query');
if (first?.status !== 200) throw new Error(`direct query answered ${first?.status}: ${String(first?.body)}`);

/** Best and median of 5 slices of `MS` in all, µs of CPU per call. */
async function time(name: string, step: (i: number) => unknown): Promise<void> {
  const perCall = (await cpuNsPerCall(step, { ms: MS, warmup: 2000, cycle: 64 })).map((ns) => ns / 1000);
  console.log(`  ${name.padEnd(44)} ${perCall[0]!.toFixed(2).padStart(7)} µs CPU (median ${median(perCall).toFixed(2)})`);
}

console.log(`query steps: ${N} × ${DIMS}-d ${METRIC}, k=${K}, 64 bodies of ~${bodies[0]!.length} B`);
await time('body read (queryBodyFromBytes)', (i) => queryBodyFromBytes(bodies[i]!));
await time('collection.query (checks, search, matches)', (i) => collection.query(parsed[i]!));
await time('index.search alone (Float32Array query)', (i) => index.search(f32s[i]!, K));
await time('answer JSON (queryResultJson)', (i) => queryResultJson(results[i]!));
await time('direct route, whole (no socket)', (i) => app.direct(requests[i]!, '/v1/collections/bench/query') as Promise<PlainAnswer>);
// Other shapes real users send: metadata in the answer, a filter, values in the answer.
const shapes: [string, Record<string, unknown>][] = [
  ['include_metadata', { include_metadata: true }],
  ['filter {n: {$lt: 500}}', { filter: { n: { $lt: 500 } } }],
  ['include_values', { include_values: true }],
];
for (const [label, extra] of shapes) {
  const shapedBodies = texts.map((t) => encoder.encode(JSON.stringify({ ...JSON.parse(t), ...extra })));
  const shapedParsed = shapedBodies.map((b) => queryBodyFromBytes(b) as QueryRequest);
  const shaped = shapedBodies.map(requestFor);
  await time(`${label}: body read`, (i) => queryBodyFromBytes(shapedBodies[i]!));
  await time(`${label}: collection.query`, (i) => collection.query(shapedParsed[i]!));
  await time(`${label}: direct route, whole`, (i) => app.direct(shaped[i]!, '/v1/collections/bench/query') as Promise<PlainAnswer>);
}
await engine.close();
