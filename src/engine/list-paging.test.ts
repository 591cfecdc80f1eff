/**
 * Paged catalog listings (topics, collections, groups) while names come and go between and
 * during pages: no name repeats, names come in order, and every name that existed throughout
 * the listing is listed exactly once.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { init } from '../node/core.js';
import { seededRandom } from '../core/random-testing.js';
import { createTestContext } from './testing.js';
import { StreamStore } from './streams/stream-store.js';
import { VectorStore } from './vectors/vector-store.js';
import { cursorFromName } from './list-cursor.js';

beforeAll(async () => {
  await init();
});

interface Catalog {
  create(name: string): Promise<unknown>;
  remove(name: string): Promise<unknown>;
  page(cursor: string | null, limit: number): Promise<{ names: string[]; cursor: string | null }>;
}

/**
 * Lists `catalog` page by page with random limits while random creates and deletes run: some
 * settle between pages, some are left in flight across a page's call.
 */
async function listAmidChanges(catalog: Catalog, seed: number, initial: string[], pool: string[]): Promise<void> {
  const random = seededRandom(seed);
  const live = new Set(initial);
  for (const name of initial) await catalog.create(name);
  const throughout = new Set(live);
  const everLive = new Set(live);
  const listed: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const inFlight: Promise<unknown>[] = [];
    for (let i = Math.floor(random() * 4); i > 0; i--) {
      const name = pool[Math.floor(random() * pool.length)]!;
      if (live.has(name)) {
        live.delete(name);
        throughout.delete(name);
        inFlight.push(catalog.remove(name));
      } else {
        live.add(name);
        everLive.add(name);
        inFlight.push(catalog.create(name));
      }
    }
    if (random() < 0.5) await Promise.all(inFlight);
    const page = await catalog.page(cursor, 1 + Math.floor(random() * 5));
    await Promise.all(inFlight);
    listed.push(...page.names);
    cursor = page.cursor;
    pages++;
  } while (cursor !== null);
  expect(pages).toBeGreaterThan(3);
  for (let i = 1; i < listed.length; i++) expect(listed[i - 1]! < listed[i]!, `${listed[i - 1]} before ${listed[i]}`).toBe(true);
  for (const name of throughout) expect(listed, name).toContain(name);
  for (const name of listed) expect(everLive.has(name), name).toBe(true);
}

const names = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${String(i * 7919 % 1000).padStart(3, '0')}`);

describe('paged listings amid creates and deletes', () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`topics (seed ${seed})`, async () => {
      const streams = await StreamStore.open(createTestContext(), 't1');
      const pool = names(60, 'topic-');
      await listAmidChanges(
        {
          create: (name) => streams.createTopic(name),
          remove: (name) => streams.deleteTopic(name),
          page: async (cursor, limit) => {
            const page = streams.listTopicsPage({ cursor, limit });
            return { names: page.topics.map((t) => t.name), cursor: page.cursor };
          },
        },
        seed,
        pool.slice(0, 30),
        pool,
      );
      await streams.close();
    });

    it(`collections (seed ${seed})`, async () => {
      const vectors = await VectorStore.open(createTestContext(), 't1');
      const pool = names(60, 'docs-');
      await listAmidChanges(
        {
          create: (name) => vectors.createCollection({ name, dims: 2, metric: 'l2' }),
          remove: (name) => vectors.deleteCollection(name),
          page: async (cursor, limit) => {
            const page = await vectors.listCollectionsPage({ cursor, limit });
            return { names: page.collections.map((c) => c.name), cursor: page.cursor };
          },
        },
        seed,
        pool.slice(0, 30),
        pool,
      );
      await vectors.close();
    });
  }

  it('groups page in byte order of their ids and continue after a cursor', async () => {
    const streams = await StreamStore.open(createTestContext(), 't1');
    await streams.createTopic('orders');
    const groups = ['b', 'a', '\uFEFFbom', 'é', 'a\u00a0', 'zz', 'ключ', 'a b'];
    for (const g of groups) await streams.commitOffset(g, 'orders', 0, 0);
    const byBytes = [...groups, 'zzz'].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    const listed: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await streams.listGroupsPage({ cursor, limit: 3 });
      listed.push(...page.groups);
      cursor = page.cursor;
      // Committed between pages: listed when it sorts after the cursor.
      if (listed.length === 3) await streams.commitOffset('zzz', 'orders', 0, 0);
    } while (cursor !== null);
    expect(listed).toEqual(byBytes);
    expect(await streams.listGroups()).toEqual(byBytes);
    // A group that is gone still marks where its page ended.
    expect((await streams.listGroupsPage({ cursor: cursorFromName('b'), limit: 2 })).groups).toEqual(['zz', 'zzz']);
    await streams.close();
  });

  // Few changes between listings against many ids are applied one by one; many are merged.
  for (const [base, changes] of [
    [0, 30],
    [3000, 4],
  ] as const) {
    it(`vector ids list exactly as a sort of the live ids, through upserts, deletes and re-adds between listings (${base} ids, ${changes} changes)`, async () => {
      const vectors = await VectorStore.open(createTestContext(), 't1');
      await vectors.createCollection({ name: 'docs', dims: 1, metric: 'l2', M: 4, efConstruction: 8 });
      const random = seededRandom(5);
      const live = new Set<string>();
      const ids = Array.from({ length: base }, (_, i) => `base-${i}`);
      if (base > 0) await vectors.upsert('docs', ids.map((id) => ({ id, values: [random()] })));
      for (const id of ids) live.add(id);
      const pick = () => (random() < 0.5 && base > 0 ? `base-${Math.floor(random() * base)}` : `id-${Math.floor(random() * 200)}`);
      const all = async () => {
        const ids: string[] = [];
        let cursor: string | null = null;
        do {
          const page = await vectors.listVectors('docs', { cursor, limit: 1 + Math.floor(random() * 40) });
          ids.push(...page.vectors.map((v) => v.id));
          cursor = page.cursor;
        } while (cursor !== null);
        return ids;
      };
      for (let round = 0; round < 60; round++) {
        const upserts = Array.from({ length: Math.floor(random() * changes) }, pick);
        if (upserts.length > 0) await vectors.upsert('docs', upserts.map((id) => ({ id, values: [random()] })));
        for (const id of upserts) live.add(id);
        const deletes = Array.from({ length: Math.floor(random() * changes) }, pick);
        await vectors.deleteVectors('docs', deletes);
        for (const id of deletes) live.delete(id);
        if (random() < 0.7) expect(await all(), `round ${round}`).toEqual([...live].sort());
      }
      await vectors.close();
    });
  }

  it('a page of collections reads only its own collections, each once after start', async () => {
    const ctx = createTestContext();
    const created = await VectorStore.open(ctx, 't1');
    for (let i = 0; i < 50; i++) await created.createCollection({ name: `c${String(i).padStart(2, '0')}`, dims: 2, metric: 'l2' });
    await created.close();
    // Reopened, as after a restart: no count is known yet.
    const vectors = await VectorStore.open(ctx, 't1');
    const units = vi.spyOn(ctx.storage, 'unit');
    const page = await vectors.listCollectionsPage({ limit: 5, cursor: cursorFromName('c09') });
    expect(page.collections.map((c) => c.name)).toEqual(['c10', 'c11', 'c12', 'c13', 'c14']);
    expect(page.cursor).toBe(cursorFromName('c14'));
    expect(units.mock.calls.map(([unit]) => unit).sort()).toEqual(['c10', 'c11', 'c12', 'c13', 'c14'].map((c) => `vec/t1/${c}`));
    units.mockClear();
    expect((await vectors.listCollectionsPage({ limit: 5, cursor: cursorFromName('c09') })).collections.map((c) => c.count)).toEqual([0, 0, 0, 0, 0]);
    expect(units).not.toHaveBeenCalled();
    units.mockRestore();
    await vectors.close();
  });
});
