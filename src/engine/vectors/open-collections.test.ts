import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { init } from '../../node/core.js';
import type { StorageProvider, UnitStorage } from '../../ports/storage.js';
import { createTestContext, createTestEngine, type TestContext } from '../testing.js';
import { ManualClock } from '../../ports/manual-clock.js';
import { Collection } from './collection.js';
import { OpenCollections, type OpenCollectionsOptions } from './open-collections.js';
import { VectorStore } from './vector-store.js';
import { rejectsWithQuartzError } from '../../../tests/fixtures/expect-error.js';
import { ErrorCode, QuartzError, isQuartzError } from '../../core/errors.js';
import { seededRandom } from '../../core/random-testing.js';

beforeAll(async () => {
  await init();
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** A test context whose stores share one budget, as an engine's do. */
function budgetContext(options: OpenCollectionsOptions): TestContext & { openCollections: OpenCollections } {
  const ctx = createTestContext();
  return { ...ctx, openCollections: new OpenCollections(ctx.clock, ctx.scheduler, options) };
}

/** `n` collections `c0`… of 4 dimensions with two vectors each (all the same size when open). */
async function smallCollections(store: VectorStore, n: number): Promise<void> {
  for (let c = 0; c < n; c++) {
    await store.createCollection({ name: `c${c}`, dims: 4, metric: 'l2' });
    await store.upsert(`c${c}`, [
      { id: 'near', values: [c, 0, 0, 0], metadata: { c } },
      { id: 'far', values: [c + 100, 0, 0, 0] },
    ]);
  }
}

function nearest(store: VectorStore, name: string): Promise<unknown> {
  return store.query(name, { vector: [Number(name.slice(1)), 1, 0, 0], k: 2, include_metadata: true });
}

/** Bytes of one of `smallCollections`' collections when open. */
async function smallCollectionBytes(): Promise<number> {
  const ctx = budgetContext({ maxOpenBytes: Infinity, idleCloseMs: 0 });
  const store = await VectorStore.open(ctx, 't1');
  await smallCollections(store, 1);
  const bytes = ctx.openCollections.stats().open_collection_bytes;
  await store.close();
  return bytes;
}

function isOpen(store: VectorStore, name: string): boolean {
  return store.isOpen(name);
}

/** Holds writes (kv batches and blob puts) to units under `prefix` while `held` is true, until `release()`. */
function gatedStorage(inner: StorageProvider, prefix: string): StorageProvider & { hold: () => void; release: () => void; waiting: () => number; events: string[] } {
  let held = false;
  let waiters: (() => void)[] = [];
  /** `write <unit>` as each held-back kind of write reaches the storage, `drop <unit>` as a unit is dropped. */
  const events: string[] = [];
  const gate = async (name: string): Promise<void> => {
    if (held && name.startsWith(prefix)) await new Promise<void>((resolve) => waiters.push(resolve));
    events.push(`write ${name}`);
  };
  const wrap = (name: string, unit: UnitStorage): UnitStorage => ({
    kv: { ...unit.kv, get: (k) => unit.kv.get(k), scan: (o) => unit.kv.scan(o), put: (k, v) => unit.kv.put(k, v), delete: (k) => unit.kv.delete(k), batch: async (ops) => (await gate(name), unit.kv.batch(ops)) },
    blobs: { ...unit.blobs, get: (k, r) => unit.blobs.get(k, r), head: (k) => unit.blobs.head(k), list: (p) => unit.blobs.list(p), delete: (k) => unit.blobs.delete(k), put: async (k, b) => (await gate(name), unit.blobs.put(k, b)) },
  });
  return {
    ...inner,
    unit: async (name) => wrap(name, await inner.unit(name)),
    listUnits: (p) => inner.listUnits!(p),
    dropUnit: (name) => (events.push(`drop ${name}`), inner.dropUnit(name)),
    events,
    close: () => inner.close(),
    hold: () => {
      held = true;
    },
    release: () => {
      held = false;
      const go = waiters;
      waiters = [];
      for (const resolve of go) resolve();
    },
    waiting: () => waiters.length,
  };
}

/** Lets the memory adapter's promise chains run out. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

/**
 * Two small collections on a budget that holds one and a half, c0 the most recently used, and
 * c0's storage writes held from here on (release them with `storage.release()`).
 */
async function twoWithC0Held(): Promise<{ ctx: TestContext & { openCollections: OpenCollections }; store: VectorStore; storage: ReturnType<typeof gatedStorage> }> {
  const one = await smallCollectionBytes();
  const base = budgetContext({ maxOpenBytes: one + one / 2, idleCloseMs: 0 });
  const storage = gatedStorage(base.storage, 'vec/t1/c0');
  const ctx = { ...base, storage } as unknown as typeof base;
  const store = await VectorStore.open(ctx, 't1');
  await smallCollections(store, 2);
  await nearest(store, 'c0');
  storage.hold();
  return { ctx, store, storage };
}

describe('OpenCollections budget', () => {
  it('keeps the open collections within the byte budget, closing the least recently used first', async () => {
    const one = await smallCollectionBytes();
    const ctx = budgetContext({ maxOpenBytes: 3 * one + one / 2, idleCloseMs: 0 });
    const store = await VectorStore.open(ctx, 't1');
    await smallCollections(store, 10);
    const answers = new Map<string, unknown>();
    for (let c = 0; c < 10; c++) {
      answers.set(`c${c}`, await nearest(store, `c${c}`));
      const { open_collections, open_collection_bytes } = ctx.openCollections.stats();
      expect(open_collection_bytes).toBeLessThanOrEqual(ctx.openCollections.maxBytes);
      expect(open_collections).toBeLessThanOrEqual(3);
    }
    expect(['c6', 'c7', 'c8', 'c9'].map((n) => isOpen(store, n))).toEqual([false, true, true, true]);
    // c7 used again, so c8 is now the least recently used and goes when c0 reopens.
    await nearest(store, 'c7');
    const evictions = ctx.openCollections.stats().collection_evictions;
    await nearest(store, 'c0');
    expect(['c0', 'c7', 'c8', 'c9'].map((n) => isOpen(store, n))).toEqual([true, true, false, true]);
    expect(ctx.openCollections.stats()).toMatchObject({ open_collections: 3, open_collection_bytes: 3 * one, collection_evictions: evictions + 1, collection_idle_closes: 0 });
    // Reopened collections answer exactly as before, with the same counts and metering.
    for (let c = 0; c < 10; c++) expect(await nearest(store, `c${c}`)).toEqual(answers.get(`c${c}`));
    expect((await store.listCollections()).map((c) => c.count)).toEqual(Array(10).fill(2));
    expect(ctx.usage.get('t1', 'vectors_stored')).toBe(20);
    await store.upsert('c3', [{ id: 'new', values: [0, 0, 0, 1] }]);
    await nearest(store, 'c4'); // pushes c3's budget neighbours out; c3 stays metered once
    expect(await store.deleteVectors('c1', ['near', 'absent'])).toEqual({ deleted: 1 });
    expect(ctx.usage.get('t1', 'vectors_stored')).toBe(20);
    expect(await store.describeCollection('c3')).toMatchObject({ count: 3 });
    expect(await store.describeCollection('c1')).toMatchObject({ count: 1 });
    await store.close();
    expect(ctx.openCollections.stats().open_collections).toBe(0);
  });

  it('grows with upserts and closes others once a collection outgrows its share', async () => {
    const one = await smallCollectionBytes();
    const ctx = budgetContext({ maxOpenBytes: 3 * one, idleCloseMs: 0 });
    const store = await VectorStore.open(ctx, 't1');
    await smallCollections(store, 3);
    expect(ctx.openCollections.stats().open_collections).toBe(3);
    const big = Array.from({ length: 2000 }, (_, i) => ({ id: `v${i}`, values: [i, i % 7, i % 13, 1] }));
    await store.upsert('c0', big);
    // c0 alone is over the budget now: the others close, the one in use stays.
    expect(ctx.openCollections.stats().open_collections).toBe(1);
    expect(isOpen(store, 'c0')).toBe(true);
    expect(ctx.openCollections.stats().open_collection_bytes).toBeGreaterThan(3 * one);
    expect(await store.describeCollection('c0')).toMatchObject({ count: 2002 });
    await store.close();
  });

  it('leaves a collection with an operation in flight open, and closes it once the operation is done', async () => {
    const { ctx, store, storage } = await twoWithC0Held();
    const upsert = store.upsert('c0', [{ id: 'late', values: [9, 9, 9, 9] }]);
    await settle();
    expect(storage.waiting()).toBe(1);
    await nearest(store, 'c1'); // over budget: c0 is the least recently used, but busy
    expect(isOpen(store, 'c0')).toBe(true);
    expect(isOpen(store, 'c1')).toBe(true);
    storage.release();
    expect(await upsert).toEqual({ upserted: 1 });
    // The upsert's end made c0 the most recently used, so c1 went.
    expect(isOpen(store, 'c0')).toBe(true);
    expect(isOpen(store, 'c1')).toBe(false);
    await nearest(store, 'c1');
    expect(isOpen(store, 'c0')).toBe(false);
    expect(await store.get('c0', 'late')).toMatchObject({ values: [9, 9, 9, 9] });
    expect(ctx.usage.get('t1', 'vectors_stored')).toBe(5);
    await store.close();
  });
});

describe('OpenCollections idle close', () => {
  it('closes a collection unused for the idle time, through the scheduler, and reopens it on use', async () => {
    const ctx = budgetContext({ maxOpenBytes: Infinity, idleCloseMs: 60_000 });
    const store = await VectorStore.open(ctx, 't1');
    await smallCollections(store, 2);
    const before = await nearest(store, 'c0');
    await ctx.clock.advance(30_000);
    await nearest(store, 'c1');
    await ctx.clock.advance(29_999);
    expect([isOpen(store, 'c0'), isOpen(store, 'c1')]).toEqual([true, true]);
    await ctx.clock.advance(1);
    expect([isOpen(store, 'c0'), isOpen(store, 'c1')]).toEqual([false, true]);
    await ctx.clock.advance(30_000);
    expect([isOpen(store, 'c0'), isOpen(store, 'c1')]).toEqual([false, false]);
    expect(ctx.openCollections.stats()).toMatchObject({ open_collections: 0, open_collection_bytes: 0, collection_idle_closes: 2, collection_evictions: 0 });
    // Nothing open, nothing scheduled: an idle server has no timer running for this.
    expect(ctx.clock.pendingCount).toBe(0);
    await settle();
    expect(await nearest(store, 'c0')).toEqual(before);
    expect(ctx.clock.pendingCount).toBe(1);
    await store.close();
  });

  it('never closes with 0 and stops its timer when the engine closes', async () => {
    const ctx = budgetContext({ maxOpenBytes: Infinity, idleCloseMs: 0 });
    const store = await VectorStore.open(ctx, 't1');
    await smallCollections(store, 1);
    await ctx.clock.advance(365 * 86_400_000);
    expect(isOpen(store, 'c0')).toBe(true);
    await store.close();

    const clock = new ManualClock();
    const engine = await createTestEngine({ clock });
    const { vectors } = await engine.tenant('t1');
    await smallCollections(vectors, 1);
    const pending = clock.pendingCount;
    await engine.close();
    expect(clock.pendingCount).toBeLessThan(pending);
  });
});

describe('OpenCollections races', () => {
  /**
   * c0 open with a checkpoint held in storage, then closed for the budget: its close waits for
   * the checkpoint, so the eviction is still in progress when the test's calls arrive.
   */
  async function evicting(): Promise<{ ctx: TestContext & { openCollections: OpenCollections }; store: VectorStore; storage: ReturnType<typeof gatedStorage>; opens: () => number }> {
    const { ctx, store, storage } = await twoWithC0Held();
    const checkpoint = (await store.collection('c0')).checkpoint();
    await settle();
    expect(storage.waiting()).toBe(1);
    const realOpen = Collection.open.bind(Collection);
    let opens = 0;
    vi.spyOn(Collection, 'open').mockImplementation(async (...args) => {
      // Never two instances of one unit: c0 opens again only once the old one has closed.
      if (args[2].name === 'c0') {
        opens++;
        expect(storage.waiting()).toBe(0);
      }
      return realOpen(...args);
    });
    const evictions = ctx.openCollections.stats().collection_evictions;
    await nearest(store, 'c1');
    expect(isOpen(store, 'c0')).toBe(false);
    expect(ctx.openCollections.stats().collection_evictions).toBe(evictions + 1);
    void checkpoint;
    return { ctx, store, storage, opens: () => opens };
  }

  it('an upsert, a query and a describe arriving while the collection closes wait for the close and see every write', async () => {
    const { ctx, store, storage, opens } = await evicting();
    const queried = store.query('c0', { vector: [1, 2, 3, 4], k: 1 });
    const upsert = store.upsert('c0', [{ id: 'during', values: [1, 2, 3, 4] }]);
    const described = store.describeCollection('c0');
    const listed = store.listVectors('c0');
    await settle();
    storage.release();
    expect((await queried).matches.map((m) => m.id)).toEqual(['near']);
    expect(await upsert).toEqual({ upserted: 1 });
    // Calls made while the upsert was unacknowledged may or may not see it, as without eviction.
    expect((await listed).vectors.map((v) => v.id)).toEqual(expect.arrayContaining(['far', 'near']));
    expect([2, 3]).toContain((await described).count);
    expect((await store.query('c0', { vector: [1, 2, 3, 4], k: 1 })).matches.map((m) => m.id)).toEqual(['during']);
    expect(await store.describeCollection('c0')).toMatchObject({ count: 3 });
    expect(ctx.usage.get('t1', 'vectors_stored')).toBe(5);
    // Concurrent opens shared one.
    expect(opens()).toBe(1);
    await store.close();
  });

  it.each([
    ['alone', false],
    ['after an upsert', true],
  ])('a deleteCollection arriving while the collection closes (%s) deletes it for good', async (_, withUpsert) => {
    const { ctx, store, storage, opens } = await evicting();
    const upsert = withUpsert ? store.upsert('c0', [{ id: 'before-delete', values: [1, 2, 3, 4] }]) : Promise.resolve();
    const deleted = store.deleteCollection('c0');
    await settle();
    const during = store.query('c0', { vector: [1, 2, 3, 4], k: 1 });
    storage.release();
    await deleted;
    await rejectsWithQuartzError(during, 'not_found', /collection 'c0' does not exist/);
    // The upsert came first: it lands (or finds the collection gone), but never resurrects it.
    await upsert.catch(() => undefined);
    await settle();
    await rejectsWithQuartzError(store.describeCollection('c0'), 'not_found');
    // Nothing the closing instance wrote reached the unit after it was dropped.
    expect(storage.events.lastIndexOf('drop vec/t1/c0')).toBeGreaterThan(storage.events.lastIndexOf('write vec/t1/c0'));
    expect((await store.listCollections()).map((c) => c.name)).toEqual(['c1']);
    expect(await ctx.storage.listUnits!('vec/t1/')).toEqual(['vec/t1/c1']);
    expect(ctx.usage.get('t1', 'vectors_stored')).toBe(2);
    await store.createCollection({ name: 'c0', dims: 4, metric: 'l2' });
    expect(await store.describeCollection('c0')).toMatchObject({ count: 0 });
    expect((await store.query('c0', { vector: [0, 0, 0, 0], k: 5 })).matches).toEqual([]);
    expect(opens()).toBeLessThanOrEqual(2);
    await store.close();
  });

  it('shares one open among concurrent first uses of a closed collection', async () => {
    const ctx = budgetContext({ maxOpenBytes: Infinity, idleCloseMs: 1000 });
    const store = await VectorStore.open(ctx, 't1');
    await smallCollections(store, 1);
    await ctx.clock.advance(1000);
    expect(isOpen(store, 'c0')).toBe(false);
    const open = vi.spyOn(Collection, 'open');
    const results = await Promise.all([nearest(store, 'c0'), nearest(store, 'c0'), store.get('c0', 'near'), store.listVectors('c0'), store.upsert('c0', [{ id: 'x', values: [0, 0, 0, 0] }])]);
    expect(results[0]).toEqual(results[1]);
    expect(open).toHaveBeenCalledTimes(1);
    expect(ctx.openCollections.stats().open_collections).toBe(1);
    await store.close();
  });
});

/**
 * Memory storage whose calls each yield a random number of turns (so concurrent calls interleave
 * differently per seed) and whose writes to vector units fail at `failRate()` as a full disk would.
 */
function shuffledStorage(inner: StorageProvider, random: () => number, failRate: () => number): StorageProvider {
  const turns = async (): Promise<void> => {
    for (let n = Math.floor(random() * 4); n > 0; n--) await new Promise<void>((resolve) => (random() < 0.5 ? setImmediate(resolve) : queueMicrotask(resolve)));
  };
  const write = async <T>(name: string, fn: () => T | Promise<T>): Promise<T> => {
    await turns();
    if (name.startsWith('vec/') && random() < failRate()) throw new QuartzError(ErrorCode.INSUFFICIENT_STORAGE, 'disk full (injected)');
    return fn();
  };
  const wrap = (name: string, unit: UnitStorage): UnitStorage => ({
    kv: {
      ...unit.kv,
      get: async (k) => (await turns(), unit.kv.get(k)),
      scan: async (o) => (await turns(), unit.kv.scan(o)),
      put: (k, v) => write(name, () => unit.kv.put(k, v)),
      delete: (k) => write(name, () => unit.kv.delete(k)),
      batch: (ops) => write(name, () => unit.kv.batch(ops)),
    },
    blobs: {
      ...unit.blobs,
      get: async (k, r) => (await turns(), unit.blobs.get(k, r)),
      head: (k) => unit.blobs.head(k),
      list: async (p) => (await turns(), unit.blobs.list(p)),
      delete: async (k) => (await turns(), unit.blobs.delete(k)),
      put: (k, b) => write(name, () => unit.blobs.put(k, b)),
    },
  });
  return {
    unit: async (name) => (await turns(), wrap(name, await inner.unit(name))),
    listUnits: (p) => inner.listUnits!(p),
    dropUnit: async (name) => (await turns(), inner.dropUnit(name)),
    close: () => inner.close(),
  };
}

describe('open collections under random concurrent use (seeded)', () => {
  // Two tenants' stores on one budget that fits none (or about one) of their collections, an idle
  // close the clock keeps passing, and rounds of concurrent upserts, deletes, queries, describes,
  // full listings and, on 'c', deletes and creates of the collection itself; on even seeds 5% of
  // vector writes fail. Every acknowledged write must be listed, counted and metered, live and
  // after reopening; no call may fail but as documented; listings page in order and skip nothing
  // that existed throughout.
  for (let seed = 1; seed <= 16; seed++) {
    it(`seed ${seed}`, async () => {
      const random = seededRandom(seed);
      let failRate = 0;
      const base = createTestContext();
      const ctx: TestContext & { openCollections: OpenCollections } = {
        ...base,
        storage: shuffledStorage(base.storage, random, () => failRate) as TestContext['storage'],
        openCollections: new OpenCollections(base.clock, base.scheduler, { maxOpenBytes: seed % 4 < 2 ? 1 : 30_000, idleCloseMs: 50 }),
      };
      const options = { snapshot: { everyMutations: 3 } };
      const stores = [await VectorStore.open(ctx, 't0', options), await VectorStore.open(ctx, 't1', options)];
      const names = ['a', 'b', 'c'];
      for (const store of stores) for (const name of names) await store.createCollection({ name, dims: 2, metric: 'l2' });
      failRate = seed % 2 === 0 ? 0.05 : 0;
      /** Acknowledged live ids of the collections never deleted ('a', 'b'), by `<store>/<name>`. */
      const live = new Map<string, Set<string>>();
      /** Ids a delete was asked for: they may go before that delete is acknowledged. */
      const doomed = new Set<string>();
      const unexpected: unknown[] = [];
      let nextId = 0;
      for (let round = 0; round < 25; round++) {
        const calls: Promise<unknown>[] = [];
        for (let i = 0; i < 12; i++) {
          const s = Math.floor(random() * 2);
          const store = stores[s]!;
          const name = names[Math.floor(random() * names.length)]!;
          const ids = live.get(`${s}/${name}`) ?? new Set<string>();
          live.set(`${s}/${name}`, ids);
          const allowed = (err: unknown): void => {
            if (isQuartzError(err, ErrorCode.INSUFFICIENT_STORAGE)) return;
            if (name === 'c' && (isQuartzError(err, ErrorCode.NOT_FOUND) || isQuartzError(err, ErrorCode.ALREADY_EXISTS))) return;
            unexpected.push(err);
          };
          const r = random();
          if (r < 0.35) {
            const batch = [`v${nextId++}`, `v${nextId++}`];
            calls.push(store.upsert(name, batch.map((id) => ({ id, values: [random(), random()] }))).then(() => name !== 'c' && batch.forEach((id) => ids.add(id)), allowed));
          } else if (r < 0.45) {
            const id = ids.size > 0 ? [...ids][Math.floor(random() * ids.size)]! : 'none';
            doomed.add(id);
            calls.push(store.deleteVectors(name, [id]).then(() => ids.delete(id), allowed));
          } else if (r < 0.55) calls.push(store.query(name, { vector: [0, 0], k: 3 }).catch(allowed));
          else if (r < 0.62) calls.push(store.describeCollection(name).catch(allowed));
          else if (r < 0.75) {
            const throughout = [...ids].filter((id) => !doomed.has(id));
            calls.push(
              allIds(store, name)
                .then((listed) => {
                  if (listed.some((id, j) => j > 0 && listed[j - 1]! >= id)) unexpected.push(new Error(`a listing of ${s}/${name} out of order: ${listed.join()}`));
                  const missing = throughout.filter((id) => !listed.includes(id) && !doomed.has(id));
                  if (missing.length > 0) unexpected.push(new Error(`a listing of ${s}/${name} skipped ${missing.join()}`));
                })
                .catch(allowed),
            );
          } else if (r < 0.8) calls.push(store.listCollectionsPage({ limit: 2 }).catch(allowed));
          else if (r < 0.85 && name === 'c') calls.push(store.deleteCollection('c').catch(allowed));
          else if (r < 0.9 && name === 'c') calls.push(store.createCollection({ name: 'c', dims: 2, metric: 'l2' }).catch(allowed));
          else calls.push(base.clock.advance(Math.floor(random() * 60)));
        }
        await Promise.all(calls);
        const { open_collections, open_collection_bytes } = ctx.openCollections.stats();
        expect(open_collection_bytes).toBeGreaterThanOrEqual(0);
        expect(open_collections).toBe(stores.reduce((n, store) => n + names.filter((name) => store.isOpen(name)).length, 0));
      }
      failRate = 0;
      expect(unexpected).toEqual([]);
      const check = async (opened: VectorStore[]): Promise<void> => {
        for (const [key, ids] of live) {
          const [s, name] = key.split('/') as [string, string];
          if (name === 'c') continue;
          expect(await allIds(opened[Number(s)]!, name), key).toEqual([...ids].sort());
          expect((await opened[Number(s)]!.describeCollection(name)).count).toBe(ids.size);
        }
        for (const [s, store] of opened.entries()) {
          const counted = (await store.listCollections()).reduce((n, c) => n + c.count, 0);
          expect(base.usage.get(`t${s}`, 'vectors_stored')).toBe(counted);
        }
      };
      await check(stores);
      for (const store of stores) await store.close();
      expect(ctx.openCollections.stats()).toMatchObject({ open_collections: 0, open_collection_bytes: 0 });
      const reopened = [await VectorStore.open(ctx, 't0'), await VectorStore.open(ctx, 't1')];
      await check(reopened);
      for (const store of reopened) await store.close();
    });
  }
});

/** Every vector id of a collection, page by page (two at a time, so a listing spans many calls). */
async function allIds(store: VectorStore, name: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await store.listVectors(name, { limit: 2, cursor });
    ids.push(...page.vectors.map((v) => v.id));
    cursor = page.cursor;
  } while (cursor !== null);
  return ids;
}
