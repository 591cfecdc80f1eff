/**
 * `npm run bench -- stats [--scenario one,many] [--topics N] [--collections N] [--tenants N] [--reps R] [--storage disk|memory]`:
 * what a metrics scrape costs at scale. `one`: a tenant with N topics (default 20,000) and N
 * collections (default 5,000). `many`: N tenants (default 2,000), each with 3 topics of 4
 * partitions and 2 collections. Each scenario writes a little everywhere, restarts the engine
 * (disk) so nothing is open but what the tenants' first use opened, then times `engine.stats()`
 * and `GET /metrics` through the hono app with the Node home's metrics: median wall and CPU per
 * call, and the longest event-loop stall while the scrapes ran (a 1 ms timer's worst lateness).
 * The peer is the same script on a checkout from before, run alternately.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openQuartz, type Engine } from '../../src/node/index.js';
import { createApp } from '../../src/api/app.js';
import { hashKey, resolveServerConfig } from '../../src/api/config.js';
import { createMetrics } from '../../src/node/server/metrics.js';
import { createTestEngine } from '../../src/engine/testing.js';
import { parseFlags, refuseFlag } from '../lib/args.js';
import { median } from '../lib/quantiles.js';
import { timeAsync, timeRepeated } from '../lib/timing.js';

const flags = parseFlags({ values: ['scenario', 'topics', 'collections', 'tenants', 'reps', 'storage'] });
const scenarios = flags.list('scenario', ['one', 'many']);
for (const s of scenarios) if (s !== 'one' && s !== 'many') refuseFlag(`unknown scenario '${s}' (one, many)`);
const topicCount = flags.number('topics', 20_000);
const collectionCount = flags.number('collections', 5_000);
const tenantCount = flags.number('tenants', 2_000);
const reps = flags.number('reps', 7, 'positive');
const storage = flags.string('storage') ?? 'disk';
if (storage !== 'disk' && storage !== 'memory') refuseFlag(`--storage must be disk or memory, got '${storage}'`);
const pad = (i: number) => String(i).padStart(6, '0');

type Populate = (engine: Engine) => Promise<string[]>;

/** One tenant, many topics and collections; a record in every 10th topic, a vector in every 10th collection. */
const oneTenant: Populate = async (engine) => {
  const { tenant } = await engine.tenants.create({ email: 'stats@example.com', plan: 'unlimited' });
  const scope = await engine.tenant(tenant.id);
  const value = new TextEncoder().encode('x'.repeat(100));
  await Promise.all(Array.from({ length: topicCount }, (_, i) => scope.streams.createTopic(`topic-${pad(i)}`)));
  await Promise.all(Array.from({ length: collectionCount }, (_, i) => scope.vectors.createCollection({ name: `docs-${pad(i)}`, dims: 4, metric: 'cosine' })));
  for (let i = 0; i < topicCount; i += 10) await scope.streams.produce(`topic-${pad(i)}`, [{ value }]);
  for (let i = 0; i < collectionCount; i += 10) await scope.vectors.upsert(`docs-${pad(i)}`, [{ id: 'a', values: [1, 2, 3, 4] }, { id: 'b', values: [4, 3, 2, 1] }]);
  return [tenant.id];
};

/** Many tenants, each with 3 topics of 4 partitions and 2 collections, a little data in each. */
const manyTenants: Populate = async (engine) => {
  const ids: string[] = [];
  const value = new TextEncoder().encode('x'.repeat(100));
  for (let t = 0; t < tenantCount; t += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, tenantCount - t) }, async (_, j) => {
        const { tenant } = await engine.tenants.create({ email: `t${t + j}@example.com`, plan: 'unlimited' });
        ids.push(tenant.id);
        const scope = await engine.tenant(tenant.id);
        for (let k = 0; k < 3; k++) {
          await scope.streams.createTopic(`events-${k}`, { partitions: 4 });
          await scope.streams.produce(`events-${k}`, [{ value, partition: k }]);
        }
        for (let k = 0; k < 2; k++) {
          await scope.vectors.createCollection({ name: `docs-${k}`, dims: 4, metric: 'l2' });
          await scope.vectors.upsert(`docs-${k}`, [{ id: 'a', values: [1, 2, 3, k] }]);
        }
      }),
    );
  }
  return ids;
};

async function run(name: string, populate: Populate): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'quartz-bench-stats-'));
  const open = (): Promise<Engine> => (storage === 'memory' ? createTestEngine() : openQuartz({ dataDir: dir, encodeThreads: 0 }));
  let engine = await open();
  try {
    let t0 = performance.now();
    const ids = await populate(engine);
    const setup = performance.now() - t0;
    t0 = performance.now();
    if (storage !== 'memory') {
      // A restart: what a long-running server holds is what its tenants' use opened since.
      await engine.close();
      engine = await open();
      t0 = performance.now();
      for (const id of ids) await engine.tenant(id);
    }
    const reopen = performance.now() - t0;
    const metrics = createMetrics(engine);
    const app = createApp({ engine, config: resolveServerConfig({ version: 'bench', admin_key_hash: await hashKey('admin-key') }), metrics });
    const { value: st, wallMs, cpuMs } = await timeAsync(() => engine.stats());
    const first = `first engine.stats() after the reopen: wall ${wallMs.toFixed(1)} ms, cpu ${cpuMs.toFixed(1)} ms`;
    console.log(
      `\n${name}: ${storage} storage, ${ids.length} tenants, ${st.topics} topics, ${st.partitions} partitions, ${st.collections} collections, ${st.vectors} vectors ` +
        `(setup ${(setup / 1000).toFixed(1)} s, reopen ${(reopen / 1000).toFixed(1)} s), ${reps} reps`,
    );
    console.log(first);
    const measure = async (label: string, call: () => Promise<unknown>): Promise<void> => {
      await call(); // warm-up
      const stall = monitorEventLoopDelay({ resolution: 1 });
      stall.enable();
      const gap = () => new Promise<void>((resolve) => setTimeout(resolve, 5)); // for the stall timer
      const { wallMs, cpuMs } = await timeRepeated(reps, call, gap);
      stall.disable();
      const maxStallMs = stall.max / 1e6;
      console.log(`${label.padEnd(24)} wall ${median(wallMs).toFixed(3).padStart(9)} ms   cpu ${median(cpuMs).toFixed(3).padStart(9)} ms   longest stall ${maxStallMs.toFixed(1).padStart(7)} ms`);
    };
    await measure('engine.stats()', () => engine.stats());
    await measure('GET /metrics', async () => {
      const res = await app.fetch(new Request('http://local/metrics'));
      if (res.status !== 200) throw new Error(`/metrics: ${res.status}`);
      await res.text();
    });
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const s of scenarios) {
  if (s === 'one') await run('one tenant', oneTenant);
  else await run('many tenants', manyTenants);
}
