/**
 * `npm run bench -- lists [--topics N] [--collections N] [--reps R] [--storage disk|memory]`:
 * what the catalog listings cost a tenant with many topics and collections. One tenant gets N
 * topics (default 20,000) and N collections (default 5,000) through `openQuartz` (or a memory
 * engine), then the hono app answers `GET /v1/topics` and `GET /v1/collections` as an unpaged
 * client sends them (no query: the first page, or before paging the whole list), with
 * `?limit=100`, and a walk of every page; `engine.stats()` walks every topic and collection.
 * Last, a collection of `--vector-ids` ids (default 200,000) listed a page at a time while
 * another client upserts one vector between pages (`GET /v1/collections/:c/vectors?limit=100`).
 * Printed per request: the median wall time, the CPU time, and the answer's bytes. The same
 * script runs against a build from before paging (its routes ignore the query), for the ratio.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openQuartz, type Engine } from '../../src/node/index.js';
import { createApp } from '../../src/api/app.js';
import { hashKey, resolveServerConfig } from '../../src/api/config.js';
import { createTestEngine } from '../../src/engine/testing.js';
import { parseFlags, refuseFlag } from '../lib/args.js';
import { median } from '../lib/quantiles.js';
import { timeRepeated } from '../lib/timing.js';

const flags = parseFlags({ values: ['topics', 'collections', 'vector-ids', 'reps', 'storage'] });
const topicCount = flags.number('topics', 20_000);
const collectionCount = flags.number('collections', 5_000);
const reps = flags.number('reps', 7, 'positive');
const vectorIds = flags.number('vector-ids', 200_000);
const storage = flags.string('storage') ?? 'disk';
if (storage !== 'disk' && storage !== 'memory') refuseFlag(`--storage must be disk or memory, got '${storage}'`);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'quartz-bench-lists-'));
  const engine: Engine = storage === 'memory' ? await createTestEngine() : await openQuartz({ dataDir: dir, encodeThreads: 0 });
  try {
    const app = createApp({ engine, config: resolveServerConfig({ version: 'bench', admin_key_hash: await hashKey('admin-key') }) });
    const { tenant, api_key } = await engine.tenants.create({ email: 'lists@example.com', plan: 'unlimited' });
    const scope = await engine.tenant(tenant.id);
    let t0 = performance.now();
    const pad = (i: number) => String(i).padStart(6, '0');
    // Created in a shuffled order, so a listing cannot lean on creation order.
    const order = (n: number) => Array.from({ length: n }, (_, i) => (i * 7919) % n);
    await Promise.all(order(topicCount).map((i) => scope.streams.createTopic(`topic-${pad(i)}`)));
    const topicsSetup = performance.now() - t0;
    t0 = performance.now();
    await Promise.all(order(collectionCount).map((i) => scope.vectors.createCollection({ name: `docs-${pad(i)}`, dims: 8, metric: 'cosine' })));
    const collectionsSetup = performance.now() - t0;
    console.log(`${storage} storage: ${topicCount} topics (${(topicsSetup / 1000).toFixed(1)} s to create), ${collectionCount} collections (${(collectionsSetup / 1000).toFixed(1)} s), ${reps} reps`);

    const get = async (path: string): Promise<{ bytes: number; json: { cursor?: string | null } }> => {
      const res = await app.fetch(new Request(`http://local${path}`, { headers: { authorization: `Bearer ${api_key}` } }));
      const text = await res.text();
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text.slice(0, 200)}`);
      return { bytes: Buffer.byteLength(text), json: JSON.parse(text) as { cursor?: string | null } };
    };
    const measure = async (label: string, run: () => Promise<number>): Promise<void> => {
      await run(); // warm-up
      const { wallMs, cpuMs, last: bytes = 0 } = await timeRepeated(reps, run);
      console.log(`${label.padEnd(44)} wall ${median(wallMs).toFixed(2).padStart(9)} ms   cpu ${median(cpuMs).toFixed(2).padStart(9)} ms   ${(bytes / 1024).toFixed(1).padStart(9)} KiB`);
    };
    const walk = async (path: string, field: string): Promise<number> => {
      let bytes = 0;
      let cursor: string | null | undefined = null;
      let items = 0;
      do {
        const page = await get(`${path}${cursor ? `${path.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(cursor)}` : ''}`);
        bytes += page.bytes;
        items += ((page.json as Record<string, unknown>)[field] as unknown[]).length;
        cursor = page.json.cursor;
      } while (typeof cursor === 'string');
      if (items !== (field === 'topics' ? topicCount : collectionCount)) throw new Error(`${path}: walked ${items} ${field}`);
      return bytes;
    };
    await measure('GET /v1/topics (no query)', async () => (await get('/v1/topics')).bytes);
    await measure('GET /v1/topics?limit=100', async () => (await get('/v1/topics?limit=100')).bytes);
    await measure('every topic, page by page (default limit)', () => walk('/v1/topics', 'topics'));
    await measure('GET /v1/collections (no query)', async () => (await get('/v1/collections')).bytes);
    await measure('GET /v1/collections?limit=100', async () => (await get('/v1/collections?limit=100')).bytes);
    await measure('every collection, page by page (default limit)', () => walk('/v1/collections', 'collections'));
    await measure('engine.stats()', async () => {
      await engine.stats();
      return 0;
    });
    if (vectorIds > 0) {
      await scope.vectors.createCollection({ name: 'big', dims: 2, metric: 'l2', M: 4, efConstruction: 8 });
      for (let i = 0; i < vectorIds; i += 10_000) {
        await scope.vectors.upsert('big', Array.from({ length: Math.min(10_000, vectorIds - i) }, (_, j) => ({ id: `v-${pad(((i + j) * 7919) % vectorIds)}`, values: [i + j, 1] })));
      }
      let n = 0;
      await measure(`vectors page after an upsert (${vectorIds} ids)`, async () => {
        await scope.vectors.upsert('big', [{ id: `new-${n++}`, values: [n, 2] }]);
        return (await get('/v1/collections/big/vectors?limit=100')).bytes;
      });
      await measure(`vectors page, no write between (${vectorIds} ids)`, async () => (await get('/v1/collections/big/vectors?limit=100')).bytes);
    }
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
