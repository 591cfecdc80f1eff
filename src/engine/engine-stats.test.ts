/**
 * engine.stats() keeps its figures without walking storage: these check them against a model
 * and a fresh walk after random writes, deletes, evictions of collections and tenant restarts.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { init } from '../node/core.js';
import { seededRandom } from '../core/random-testing.js';
import { createMemoryStorage } from '../ports/memory-storage.js';
import { createEngine, type Engine, type TenantScope } from './engine.js';
import { TEST_CAPABILITIES } from './testing.js';

beforeAll(async () => {
  await init();
});

/** Topics, partitions, segments and bytes as describeTopic gives them: the slow walk stats replaced. */
function walkLogs(scopes: TenantScope[]): { topics: number; partitions: number; segments: number; log_bytes: number } {
  const out = { topics: 0, partitions: 0, segments: 0, log_bytes: 0 };
  for (const { streams } of scopes) {
    for (const topic of streams.listTopics()) {
      out.topics++;
      for (const p of streams.describeTopic(topic.name).partition_info) {
        out.partitions++;
        out.segments += p.segments;
        out.log_bytes += p.bytes;
      }
    }
  }
  return out;
}

describe('engine.stats()', () => {
  for (const [seed, maxOpenBytes] of [
    [1, 1],
    [2, 1],
    [3, 2 ** 30],
  ] as const) {
    it(`matches a model and a fresh walk after random operations, evictions and restarts (seed ${seed}, budget ${maxOpenBytes} bytes)`, async () => {
      const random = seededRandom(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
      const storage = createMemoryStorage();
      // A budget of one byte: every collection not in use closes as soon as another opens.
      const engine: Engine = await createEngine({ storage, capabilities: TEST_CAPABILITIES, vectors: { maxOpenBytes } });
      const tenantIds = ['t1', 't2', 't3'];
      const collectionNames = ['a', 'b', 'c', 'd'];
      const topicNames = ['x', 'y', 'z'];
      const ids = Array.from({ length: 12 }, (_, i) => `v${i}`);
      const vectors = new Map<string, Map<string, Set<string>>>(tenantIds.map((t) => [t, new Map()]));
      const topics = new Map<string, Map<string, number>>(tenantIds.map((t) => [t, new Map()]));
      const value = new Uint8Array(300).map(() => random() * 256); // incompressible, so segments roll

      /** One random operation on `tenant`'s data (steps run side by side only for different tenants, so the model stays exact). */
      const step = async (tenant: string): Promise<void> => {
        const scope = await engine.tenant(tenant);
        const cols = vectors.get(tenant)!;
        const tops = topics.get(tenant)!;
        const name = pick(collectionNames);
        const topic = pick(topicNames);
        const r = random();
        if (r < 0.1) {
          if (!cols.has(name)) {
            await scope.vectors.createCollection({ name, dims: 2, metric: 'l2', M: 4, efConstruction: 8 });
            cols.set(name, new Set());
          }
        } else if (r < 0.15) {
          if (cols.has(name)) {
            await scope.vectors.deleteCollection(name);
            cols.delete(name);
          }
        } else if (r < 0.4) {
          if (cols.has(name)) {
            const chosen = Array.from({ length: 1 + Math.floor(random() * 4) }, () => pick(ids));
            await scope.vectors.upsert(name, chosen.map((id) => ({ id, values: [random(), random()] })));
            for (const id of chosen) cols.get(name)!.add(id);
          }
        } else if (r < 0.5) {
          if (cols.has(name)) {
            const chosen = Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(ids));
            await scope.vectors.deleteVectors(name, chosen);
            for (const id of chosen) cols.get(name)!.delete(id);
          }
        } else if (r < 0.55) {
          // Listings and describes fill the known counts too.
          if (random() < 0.5) await scope.vectors.listCollectionsPage({ limit: 2 });
          else if (cols.has(name)) expect((await scope.vectors.describeCollection(name)).count).toBe(cols.get(name)!.size);
        } else if (r < 0.62) {
          if (!tops.has(topic)) {
            const partitions = 1 + Math.floor(random() * 3);
            await scope.streams.createTopic(topic, { partitions, segment_bytes: 1024, retention_bytes: random() < 0.7 ? -1 : 4096 });
            tops.set(topic, partitions);
          }
        } else if (r < 0.65) {
          if (tops.has(topic)) {
            await scope.streams.deleteTopic(topic);
            tops.delete(topic);
          }
        } else if (tops.has(topic)) {
          await scope.streams.produce(topic, Array.from({ length: 1 + Math.floor(random() * 5) }, () => ({ value })));
        }
      };

      let sawSegments = false;
      const check = async (round: number): Promise<void> => {
        const scopes = await Promise.all(tenantIds.map((t) => engine.tenant(t)));
        let collections = 0;
        let live = 0;
        for (const cols of vectors.values()) {
          collections += cols.size;
          for (const set of cols.values()) live += set.size;
        }
        let topicCount = 0;
        let partitions = 0;
        for (const tops of topics.values()) {
          topicCount += tops.size;
          for (const n of tops.values()) partitions += n;
        }
        // Rolls and retention run in the background: compare with a walk taken on either side of
        // the stats, once the logs held still across them.
        for (let attempt = 0; ; attempt++) {
          const before = walkLogs(scopes);
          const stats = await engine.stats();
          const after = walkLogs(scopes);
          if (JSON.stringify(before) !== JSON.stringify(after) && attempt < 50) {
            await new Promise((resolve) => setTimeout(resolve, 5));
            continue;
          }
          expect(stats, `round ${round}`).toMatchObject({ open_tenants: 3, collections, vectors: live, topics: topicCount, partitions, segments: after.segments, log_bytes: after.log_bytes });
          expect(after).toMatchObject({ topics: topicCount, partitions });
          sawSegments ||= stats.segments > 0;
          break;
        }
      };

      for (let round = 0; round < 150; round++) {
        // Steps of two tenants run side by side, with a scrape now and then, as requests do.
        const first = Math.floor(random() * tenantIds.length);
        const second = (first + 1 + Math.floor(random() * (tenantIds.length - 1))) % tenantIds.length;
        await Promise.all([step(tenantIds[first]!), step(tenantIds[second]!), random() < 0.3 ? engine.stats() : undefined]);
        if (random() < 0.1) {
          // A restart of a tenant, scraped meanwhile: its stores close and open again, nothing
          // known but what is stored.
          const tenant = pick(tenantIds);
          await Promise.all([engine.stats(), engine.closeTenant(tenant)]);
          await engine.tenant(tenant);
        }
        if (round % 5 === 4) await check(round);
      }
      await check(150);
      // The run covered what it is for.
      expect(sawSegments).toBe(true);
      if (maxOpenBytes === 1) expect((await engine.stats()).collection_evictions).toBeGreaterThan(10);
      await engine.close();
    });
  }

  it('reads a collection’s stored count at most once after start, and none for an open or created one', async () => {
    const storage = createMemoryStorage();
    const engine = await createEngine({ storage, capabilities: TEST_CAPABILITIES });
    const scope = await engine.tenant('t1');
    for (const name of ['a', 'b', 'c']) {
      await scope.vectors.createCollection({ name, dims: 2, metric: 'l2' });
      await scope.vectors.upsert(name, [{ id: '1', values: [1, 2] }]);
    }
    await engine.closeTenant('t1');
    const reopened = await engine.tenant('t1');
    const units = vi.spyOn(storage, 'unit');
    // The first scrape after the restart reads each count once.
    expect(await engine.stats()).toMatchObject({ collections: 3, vectors: 3 });
    expect(units.mock.calls.map(([unit]) => unit).sort()).toEqual(['vec/t1/a', 'vec/t1/b', 'vec/t1/c']);
    units.mockClear();
    await reopened.vectors.upsert('b', [{ id: '2', values: [3, 4] }]); // opens b
    units.mockClear();
    for (let i = 0; i < 3; i++) expect(await engine.stats()).toMatchObject({ collections: 3, vectors: 4 });
    expect(units).not.toHaveBeenCalled();
    units.mockRestore();
    await engine.close();
  });
});
