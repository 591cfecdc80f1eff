import { beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../node/core.js';
import { seededRandom } from '../../core/random-testing.js';
import type { BlobStore, OrderedKV, StorageProvider, UnitStorage } from '../../ports/storage.js';
import { createTestContext, type TestContext } from '../testing.js';
import type { EngineContext } from '../context.js';
import { FILTERS, referenceMatch, sampleMetadata } from './filter.test.js';
import type { Metadata } from './filter.js';
import type { Metric } from './validate.js';
import { VectorStore } from './vector-store.js';
import { decodeSnapshot, encodeSnapshot } from './codec.js';
import { expectQuartzError, rejectsWithQuartzError } from '../../../tests/fixtures/expect-error.js';

beforeAll(async () => {
  await init();
});

function vectors(n: number, dims: number, seed: number): number[][] {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => Array.from({ length: dims }, () => r() * 2 - 1));
}

/** The documented score of `a` against query `q` under each metric. */
function score(metric: Metric, q: number[], a: number[]): number {
  let dot = 0;
  let qq = 0;
  let aa = 0;
  let l2 = 0;
  for (let i = 0; i < q.length; i++) {
    const x = Math.fround(q[i]!);
    const y = Math.fround(a[i]!);
    dot += x * y;
    qq += x * x;
    aa += y * y;
    l2 += (x - y) ** 2;
  }
  if (metric === 'l2') return Math.sqrt(l2);
  if (metric === 'cosine') return dot / Math.sqrt(qq * aa);
  return dot;
}

interface Doc {
  id: string;
  values: number[];
  metadata: Metadata;
}

/** Exact top-k over `docs` passing `keep`, best first, as [id, score] pairs. */
function bruteForce(metric: Metric, docs: Doc[], q: number[], k: number, keep: (d: Doc) => boolean = () => true): [string, number][] {
  const scored = docs.filter(keep).map((d) => [d.id, score(metric, q, d.values)] as [string, number]);
  scored.sort((a, b) => (metric === 'l2' ? a[1] - b[1] : b[1] - a[1]));
  return scored.slice(0, k);
}

function makeDocs(n: number, dims: number, seed = 1): Doc[] {
  return vectors(n, dims, seed).map((values, i) => ({ id: `doc-${i}`, values, metadata: sampleMetadata(i) }));
}

async function storeWith(ctx: EngineContext, name: string, metric: Metric, docs: Doc[], dims: number): Promise<VectorStore> {
  const store = await VectorStore.open(ctx, 't1');
  await store.createCollection({ name, dims, metric });
  await store.upsert(name, docs);
  return store;
}

describe('VectorStore collections', () => {
  it('creates, describes, lists and deletes collections', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    const info = await store.createCollection({ name: 'docs', dims: 3, metric: 'cosine' });
    expect(info).toMatchObject({ name: 'docs', dims: 3, metric: 'cosine', M: 16, efConstruction: 200, count: 0 });
    await store.createCollection({ name: 'b.other_1', dims: 2, metric: 'l2', M: 8, efConstruction: 64 });
    await rejectsWithQuartzError(store.createCollection({ name: 'docs', dims: 3, metric: 'cosine' }), 'already_exists', /collection 'docs' already exists/);
    expect((await store.listCollections()).map((c) => c.name)).toEqual(['b.other_1', 'docs']);
    await store.upsert('docs', [
      { id: 'a', values: [1, 0, 0] },
      { id: 'b', values: [0, 1, 0], metadata: { x: 1 } },
    ]);
    expect(await store.describeCollection('docs')).toMatchObject({ count: 2, dims: 3 });
    expect(ctx.usage.get('t1', 'vectors_stored')).toBe(2);
    await store.deleteCollection('docs');
    expect(ctx.usage.get('t1', 'vectors_stored')).toBe(0);
    await rejectsWithQuartzError(store.collection('docs'), 'not_found', /collection 'docs' does not exist/);
    await rejectsWithQuartzError(store.describeCollection('docs'), 'not_found', /'docs'/);
    await rejectsWithQuartzError(store.deleteCollection('docs'), 'not_found', /'docs'/);
    expect(ctx.storage.listUnits('vec/t1/')).toEqual(['vec/t1/b.other_1']);
    // A re-created collection starts empty.
    await store.createCollection({ name: 'docs', dims: 3, metric: 'cosine' });
    expect((await store.describeCollection('docs')).count).toBe(0);
    await store.close();
  });

  it('calls racing a collection delete answer as before or after it (never storage_closed), and a collection created again under the name starts empty', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    for (let round = 0; round < 3; round++) {
      await store.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
      await store.upsert('docs', [{ id: 'old', values: [1, 2] }]);
      let deleted = false;
      const deleting = store.deleteCollection('docs').then(() => (deleted = true));
      // An upsert and a query at every turn of the delete's awaits, until it settles.
      const calls: Promise<string>[] = [];
      for (let i = 0; !deleted && i < 500; i++) {
        const settle = (p: Promise<unknown>) => p.then(() => 'ok', (err: { code?: string }) => err.code ?? String(err));
        calls.push(settle(store.upsert('docs', [{ id: `late-${i}`, values: [1, 2] }])));
        calls.push(settle(store.query('docs', { vector: [1, 2], k: 10 })));
        await (i % 2 === 0 ? Promise.resolve() : new Promise((r) => setImmediate(r)));
      }
      await deleting;
      expect(new Set(await Promise.all(calls))).toEqual(new Set(['ok', 'not_found']));
      await store.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
      expect((await store.query('docs', { vector: [1, 2], k: 1000 })).matches).toEqual([]);
      expect((await store.describeCollection('docs')).count).toBe(0);
      expect(ctx.usage.get('t1', 'vectors_stored')).toBe(0);
      await store.deleteCollection('docs');
    }
    await store.close();
  });

  it('a collection deleted behind queued upserts meters them out too: vectors_stored goes back to 0', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    for (let round = 0; round < 3; round++) {
      await store.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
      const upserts = Array.from({ length: 5 }, (_, i) => store.upsert('docs', [{ id: `a${i}`, values: [1, i] }, { id: `b${i}`, values: [i, 1] }]));
      for (let i = 0; i < round; i++) await Promise.resolve();
      await store.deleteCollection('docs');
      await Promise.all(upserts);
      expect(ctx.usage.get('t1', 'vectors_stored')).toBe(0);
    }
    await store.close();
  });

  it('lists collections while some are deleted: the listing never fails, it leaves the deleted ones out', async () => {
    const ctx = createTestContext();
    const names = ['a', 'b', 'c', 'd'];
    const first = await VectorStore.open(ctx, 't1');
    for (const name of names) {
      await first.createCollection({ name, dims: 2, metric: 'l2' });
      await first.upsert(name, [{ id: 'x', values: [1, 2] }]);
    }
    await first.close();
    // Reopened: half the collections open (their describe waits on them), half read from storage.
    const store = await VectorStore.open(ctx, 't1');
    await store.collection('a');
    await store.collection('c');
    let deleted = false;
    const deleting = Promise.all(names.map((name) => store.deleteCollection(name))).then(() => (deleted = true));
    const listings: Promise<string[]>[] = [];
    for (let i = 0; !deleted && i < 500; i++) {
      listings.push(store.listCollections().then((infos) => infos.map((info) => info.name)));
      await (i % 2 === 0 ? Promise.resolve() : new Promise((r) => setImmediate(r)));
    }
    await deleting;
    for (const listed of await Promise.all(listings)) expect(names).toEqual(expect.arrayContaining(listed));
    expect(await store.listCollections()).toEqual([]);
    await store.close();
  });

  it('a describe or listing whose read of a closed collection’s count is overtaken by its delete answers as after the delete (not storage_closed, nor a count of 0)', async () => {
    for (const again of [false, true]) {
      const ctx = createTestContext();
      // Reads through the collection's unit taken while `holding` wait until `release`.
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let holding = false;
      const storage: StorageProvider = {
        listUnits: (prefix) => ctx.storage.listUnits(prefix),
        dropUnit: (name) => ctx.storage.dropUnit(name),
        close: () => ctx.storage.close(),
        unit: async (name) => {
          const hold = holding && name === 'vec/t1/docs';
          const unit = await ctx.storage.unit(name);
          if (!hold) return unit;
          const get: OrderedKV['get'] = async (key) => (await released, unit.kv.get(key));
          return { ...unit, kv: { ...unit.kv, get } };
        },
      };
      const created = await VectorStore.open({ ...ctx, storage }, 't1');
      await created.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
      await created.createCollection({ name: 'other', dims: 2, metric: 'l2' });
      await created.close();
      // Reopened, as after a restart: the counts are not known yet, so the calls read them.
      const store = await VectorStore.open({ ...ctx, storage }, 't1');
      holding = true;
      const listed = store.listCollectionsPage({ limit: 10 });
      const described = store.describeCollection('docs');
      holding = false;
      await store.deleteCollection('docs');
      // Made again: the held read would now find the new, empty unit.
      if (again) await store.createCollection({ name: 'docs', dims: 3, metric: 'l2' });
      release();
      await rejectsWithQuartzError(described, 'not_found', /collection 'docs' does not exist/);
      expect((await listed).collections.map((c) => c.name)).toEqual(['other']);
      await store.close();
    }
  });

  it('a collection whose snapshot is damaged answers the damage from memory until it is deleted, naming the way out', async () => {
    const ctx = createTestContext();
    let snapshotReads = 0;
    const storage = seeingSnapshotReads(ctx, () => void snapshotReads++);
    await writeDamagedSnapshot(ctx, storage, []);

    const store = await VectorStore.open({ ...ctx, storage }, 't1');
    snapshotReads = 0;
    for (let i = 0; i < 3; i++) {
      const err = await rejectsWithQuartzError(store.query('docs', { vector: [1, 2], k: 1 }), 'checksum_mismatch', /^collection 'docs' is damaged and cannot be opened \(.*\); .*delete the collection and create it again/);
      expect(err.exposeMessage).toBe(true);
      expect(err.details).toMatchObject({ collection: 'docs' });
    }
    expect(snapshotReads).toBe(1);
    await store.deleteCollection('docs');
    await store.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
    expect(await store.query('docs', { vector: [1, 2], k: 1 })).toEqual({ matches: [] });
    await store.close();
  });

  it('a listing racing the open of a damaged collection lists every collection', async () => {
    const ctx = createTestContext();
    let snapshotRead: Promise<void> | undefined;
    const storage = seeingSnapshotReads(ctx, () => snapshotRead);
    await writeDamagedSnapshot(ctx, storage, ['other']);

    const store = await VectorStore.open({ ...ctx, storage }, 't1');
    let release!: () => void;
    snapshotRead = new Promise((resolve) => (release = resolve));
    // The query's open waits in the snapshot read while the listing starts.
    const query = rejectsWithQuartzError(store.query('docs', { vector: [1, 2], k: 1 }), 'checksum_mismatch', /^collection 'docs' is damaged/);
    await new Promise((resolve) => setTimeout(resolve, 10));
    const listing = store.listCollections();
    release();
    await query;
    expect((await listing).map((c) => `${c.name}=${c.count}`)).toEqual(['docs=1', 'other=0']);
    await store.close();
  });

  it('a delete whose unit fails to drop still meters the vectors out; the next open drops the unit', async () => {
    const ctx = createTestContext();
    let failDrop = false;
    const storage: StorageProvider = {
      unit: (name) => ctx.storage.unit(name),
      listUnits: (prefix) => ctx.storage.listUnits(prefix),
      dropUnit: async (name) => {
        if (failDrop && name === 'vec/t1/docs') throw new Error('disk error');
        await ctx.storage.dropUnit(name);
      },
      close: () => ctx.storage.close(),
    };
    const store = await VectorStore.open({ ...ctx, storage }, 't1');
    await store.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
    await store.upsert('docs', [{ id: 'a', values: [1, 2] }, { id: 'b', values: [3, 4] }]);
    failDrop = true;
    await expect(store.deleteCollection('docs')).rejects.toThrow('disk error');
    await rejectsWithQuartzError(store.describeCollection('docs'), 'not_found');
    expect(ctx.usage.get('t1', 'vectors_stored')).toBe(0);
    await store.close();
    failDrop = false;
    const reopened = await VectorStore.open({ ...ctx, storage }, 't1');
    expect(await ctx.storage.listUnits('vec/t1/')).toEqual([]);
    await reopened.close();
  });

  it('hands out an open collection synchronously, and forgets it when the collection is deleted or the store closed', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    await store.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
    expect(store.openedCollection('docs')).toBeUndefined();
    const docs = await store.collection('docs');
    expect(store.openedCollection('docs')).toBe(docs);
    expectQuartzError(() => store.openedCollection('nope'), 'not_found', /collection 'nope' does not exist/);
    expectQuartzError(() => store.openedCollection('bad/name'), 'invalid_argument', /collection name 'bad\/name' is invalid/);
    await store.deleteCollection('docs');
    expectQuartzError(() => store.openedCollection('docs'), 'not_found', /collection 'docs' does not exist/);
    await store.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
    expect(store.openedCollection('docs')).toBeUndefined();
    const again = await store.collection('docs');
    expect(again).not.toBe(docs);
    expect(store.openedCollection('docs')).toBe(again);
    await store.close();
    expectQuartzError(() => store.openedCollection('docs'), 'storage_closed', /closed/);
  });

  it('rejects bad collection specs', async () => {
    const store = await VectorStore.open(createTestContext(), 't1');
    await rejectsWithQuartzError(store.createCollection({ name: 'a/b', dims: 3, metric: 'l2' }), 'invalid_argument', /collection name 'a\/b' is invalid/);
    await rejectsWithQuartzError(store.createCollection({ name: 'x'.repeat(129), dims: 3, metric: 'l2' }), 'invalid_argument', /is invalid/);
    for (const name of ['.', '..']) await rejectsWithQuartzError(store.createCollection({ name, dims: 3, metric: 'l2' }), 'invalid_argument', /path segments in URLs/);
    await rejectsWithQuartzError(store.createCollection({ name: 'a', dims: 0, metric: 'l2' }), 'invalid_argument', /dims must be an integer from 1 to 4096, got 0/);
    await rejectsWithQuartzError(store.createCollection({ name: 'a', dims: 4097, metric: 'l2' }), 'invalid_argument', /got 4097/);
    await rejectsWithQuartzError(store.createCollection({ name: 'a', dims: 3, metric: 'hamming' as Metric }), 'invalid_argument', /metric must be one of cosine, l2, dot/);
    await rejectsWithQuartzError(store.createCollection({ name: 'a', dims: 3, metric: 'l2', M: 1 }), 'invalid_argument', /M must be/);
    await store.close();
  });

  it('upserts, gets, replaces and deletes vectors, metering the live count', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    await store.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
    const docs = await store.collection('docs');
    expect(await docs.upsert([{ id: 'a', values: [1, 2], metadata: { tag: 'x', n: { deep: true } } }, { id: 'b', values: [3, 4] }])).toEqual({ upserted: 2 });
    expect(docs.get('a')).toEqual({ id: 'a', values: [1, 2], metadata: { tag: 'x', n: { deep: true } } });
    expect(docs.get('b')).toEqual({ id: 'b', values: [3, 4], metadata: {} });
    expect(docs.get('zzz')).toBeUndefined();
    // Replace, and a repeated id in one call keeps the last occurrence.
    await docs.upsert([
      { id: 'a', values: [5, 6], metadata: { v: 1 } },
      { id: 'a', values: [7, 8], metadata: { v: 2 } },
    ]);
    expect(docs.get('a')).toEqual({ id: 'a', values: [7, 8], metadata: { v: 2 } });
    expect(docs.count).toBe(2);
    // Mutating a returned record does not reach the stored one.
    docs.get('a')!.metadata.v = 99;
    expect(docs.get('a')!.metadata.v).toBe(2);
    expect(await docs.delete(['a', 'nope'])).toEqual({ deleted: 1 });
    expect(docs.get('a')).toBeUndefined();
    expect(docs.query({ vector: [7, 8], k: 5 }).matches.map((m) => m.id)).toEqual(['b']);
    expect(await docs.delete(['a'])).toEqual({ deleted: 0 });
    // The freed internal id is reused and the new vector is found.
    await docs.upsert([{ id: 'c', values: [7, 8] }]);
    expect(docs.query({ vector: [7, 8], k: 1 }).matches).toEqual([{ id: 'c', score: 0 }]);
    expect(ctx.usage.get('t1', 'vectors_stored')).toBe(2);
    await store.close();
  });

  it('validates records, queries and list options with clear messages', async () => {
    const store = await VectorStore.open(createTestContext(), 't1');
    await store.createCollection({ name: 'docs', dims: 3, metric: 'cosine' });
    const docs = await store.collection('docs');
    await rejectsWithQuartzError(docs.upsert([{ id: 'a', values: [1, 2] }]), 'invalid_argument', /collection 'docs' expects 3 dimensions, got 2 for vector 'a'/);
    await rejectsWithQuartzError(docs.upsert([{ id: 'a', values: [1, NaN, 2] }]), 'invalid_argument', /non-finite value \(NaN\) at index 1/);
    await rejectsWithQuartzError(docs.upsert([{ id: 'a', values: [1, Infinity, 2] }]), 'invalid_argument', /non-finite/);
    await rejectsWithQuartzError(docs.upsert([{ id: 'a', values: [1, 1e39, 2] }]), 'invalid_argument', /non-finite/);
    await rejectsWithQuartzError(docs.upsert([{ id: 'a', values: [0, 0, 0] }]), 'invalid_argument', /cosine.*all-zero vector 'a'/);
    await rejectsWithQuartzError(docs.upsert([{ id: '', values: [1, 2, 3] }]), 'invalid_argument', /ids must be non-empty strings, got an empty string/);
    await rejectsWithQuartzError(docs.upsert([{ id: 'é'.repeat(257), values: [1, 2, 3] }]), 'invalid_argument', /is 514 bytes; the limit is 512/);
    await rejectsWithQuartzError(docs.upsert([{ id: 'a\uD800', values: [1, 2, 3] }]), 'invalid_argument', /not valid Unicode/);
    // URLs resolve these as path segments: over HTTP no GET or DELETE could name the vector.
    for (const id of ['.', '..']) await rejectsWithQuartzError(docs.upsert([{ id, values: [1, 2, 3] }]), 'invalid_argument', new RegExp(`vector id '\\.{${id.length}}' is not allowed: URLs`));
    await docs.upsert([{ id: '...', values: [1, 2, 3] }, { id: './', values: [1, 2, 3] }]);
    await docs.delete(['...', './']);
    await rejectsWithQuartzError(docs.upsert([{ id: 'a', values: [1, 2, 3], metadata: [1] as unknown as Metadata }]), 'invalid_argument', /metadata must be a JSON object/);
    await rejectsWithQuartzError(docs.upsert([{ id: 'a', values: [1, 2, 3], metadata: { s: 'x'.repeat(11_000) } }]), 'too_large', /metadata is \d+ bytes of JSON; the limit is 10240/);
    let deep: Metadata = {};
    for (let i = 0; i < 100_000; i++) deep = { a: deep };
    await rejectsWithQuartzError(docs.upsert([{ id: 'a', values: [1, 2, 3], metadata: deep }]), 'invalid_argument', /metadata is not JSON-serialisable: it nests too deeply$/);
    await rejectsWithQuartzError(docs.upsert([{ id: 'a', values: 'abc' as unknown as number[] }]), 'invalid_argument', /values must be an array of numbers/);
    await rejectsWithQuartzError(docs.upsert(Array.from({ length: 10_001 }, (_, i) => ({ id: `${i}`, values: [1, 1, 1] }))), 'too_large', /at most 10000 vectors/);
    expect(docs.count).toBe(0);
    await docs.upsert([{ id: 'a', values: [1, 2, 3] }]);
    expectQuartzError(() => docs.query({ vector: [1, 2, 3], k: 0 }), 'invalid_argument', /k must be an integer from 1 to 1000, got 0/);
    expectQuartzError(() => docs.query({ vector: [1, 2, 3], k: 1001 }), 'invalid_argument', /got 1001/);
    expectQuartzError(() => docs.query({ vector: [1, 2, 3], k: 1.5 }), 'invalid_argument', /k must be an integer/);
    expectQuartzError(() => docs.query({ vector: [1, 2], k: 1 }), 'invalid_argument', /^collection 'docs' expects 3 dimensions, got 2 for the query vector$/);
    expectQuartzError(() => docs.query({ vector: [1e-50, 0, -1e-46], k: 1 }), 'invalid_argument', /cosine, which is undefined for the all-zero query vector$/);
    expectQuartzError(() => docs.query({ vector: [1, 1e39, 2], k: 1 }), 'invalid_argument', /non-finite value \(1e\+39\) at index 1/);
    expectQuartzError(() => docs.query({ vector: [1, 'x', 2] as unknown as number[], k: 1 }), 'invalid_argument', /non-number at index 1/);
    // The first bad component is the one reported, whatever its fault; as for upserted values.
    expectQuartzError(() => docs.query({ vector: [Infinity, 'x', 2] as unknown as number[], k: 1 }), 'invalid_argument', /non-finite value \(Infinity\) at index 0/);
    expectQuartzError(() => docs.query({ vector: [1, 'x', NaN] as unknown as number[], k: 1 }), 'invalid_argument', /non-number at index 1/);
    await rejectsWithQuartzError(docs.upsert([{ id: 'b', values: [NaN, 'x', 2] as unknown as number[] }]), 'invalid_argument', /non-finite value \(NaN\) at index 0/);
    await rejectsWithQuartzError(docs.upsert([{ id: 'b', values: [2, null, NaN] as unknown as number[] }]), 'invalid_argument', /non-number at index 1/);
    // A refused query leaves nothing behind in the reused query buffer.
    expect(docs.query({ vector: [1, 2, 3], k: 1 }).matches.map((m) => m.id)).toEqual(['a']);
    expectQuartzError(() => docs.query({ k: 1 }), 'invalid_argument', /needs a vector or an id/);
    expectQuartzError(() => docs.query({ vector: [1, 2, 3], id: 'a', k: 1 }), 'invalid_argument', /either vector or id/);
    expectQuartzError(() => docs.query({ id: 'nope', k: 1 }), 'not_found', /collection 'docs' has no vector 'nope'/);
    expectQuartzError(() => docs.query({ vector: [1, 2, 3], k: 1, threshold: NaN }), 'invalid_argument', /threshold must be a finite number/);
    expectQuartzError(() => docs.query({ vector: [1, 2, 3], k: 1, filter: { x: { $bad: 1 } } }), 'invalid_argument', /unknown operator '\$bad'/);
    expectQuartzError(() => docs.list({ limit: 0 }), 'invalid_argument', /list limit must be an integer from 1 to 1000/);
    expectQuartzError(() => docs.list({ cursor: '%%%' }), 'invalid_argument', /cursor '%%%' is not one this API returned/);
    await rejectsWithQuartzError(store.upsert('nope', []), 'not_found', /collection 'nope' does not exist/);
    await store.close();
  });
});

describe('VectorStore queries', () => {
  const dims = 8;
  const docs = makeDocs(300, dims);
  const queries = vectors(20, dims, 99);

  it.each(['cosine', 'l2', 'dot'] as Metric[])('returns the exact top-k with %s scores', async (metric) => {
    const store = await storeWith(createTestContext(), 'c', metric, docs, dims);
    const c = await store.collection('c');
    for (const q of queries) {
      const got = c.query({ vector: q, k: 10, ef: 300 }).matches;
      const want = bruteForce(metric, docs, q, 10);
      expect(got.map((m) => m.id)).toEqual(want.map(([id]) => id));
      got.forEach((m, i) => expect(m.score).toBeCloseTo(want[i]![1], 4));
    }
    await store.close();
  });

  it('searches with a useful default breadth when the query gives no ef', async () => {
    const many = makeDocs(4000, 32);
    const store = await storeWith(createTestContext(), 'c', 'cosine', many, 32);
    const c = await store.collection('c');
    let found = 0;
    const probes = vectors(50, 32, 7);
    for (const q of probes) {
      const want = new Set(bruteForce('cosine', many, q, 10).map(([id]) => id));
      for (const m of c.query({ vector: q, k: 10 }).matches) if (want.has(m.id)) found++;
    }
    // ef = k alone reaches about 0.7 here; the index default reaches well above 0.9.
    expect(found / (probes.length * 10)).toBeGreaterThan(0.9);
    await store.close();
  });

  it('honours every filter operator exactly, returning k whenever k match', async () => {
    const store = await storeWith(createTestContext(), 'c', 'cosine', docs, dims);
    const c = await store.collection('c');
    for (const filter of FILTERS) {
      for (const q of queries.slice(0, 4)) {
        for (const k of [5, 40]) {
          const got = c.query({ vector: q, k, ef: 400, filter }).matches;
          const want = bruteForce('cosine', docs, q, k, (d) => referenceMatch(filter, d.metadata));
          expect({ filter, k, ids: got.map((m) => m.id) }).toEqual({ filter, k, ids: want.map(([id]) => id) });
        }
      }
    }
    expect(c.query({ vector: queries[0]!, k: 5, filter: { genre: 'polka' } }).matches).toEqual([]);
    await store.close();
  });

  it('keeps filter results exact while metadata changes under the per-field indexes', async () => {
    const store = await storeWith(createTestContext(), 'c', 'l2', docs, dims);
    const c = await store.collection('c');
    const live = new Map(docs.map((d) => [d.id, d]));
    const check = () => {
      for (const filter of FILTERS) {
        const got = c.query({ vector: queries[1]!, k: 40, ef: 400, filter }).matches.map((m) => m.id);
        const want = bruteForce('l2', [...live.values()], queries[1]!, 40, (d) => referenceMatch(filter, d.metadata)).map(([id]) => id);
        expect({ filter, got }).toEqual({ filter, got: want });
      }
    };
    check(); // builds the indexes of every field the filters name
    const changed = docs.slice(0, 60).map((d, i) => ({ ...d, metadata: sampleMetadata(i + 1) }));
    await c.upsert(changed);
    for (const d of changed) live.set(d.id, d);
    const gone = docs.filter((_, i) => i % 5 === 1).map((d) => d.id);
    await c.delete(gone);
    for (const id of gone) live.delete(id);
    const back = docs.slice(1, 30).map((d) => ({ ...d, id: `new-${d.id}`, values: d.values.map((v) => v * 0.5 + 0.1), metadata: { genre: 'jazz', tags: ['a', 'z'], n: 3 } }));
    await c.upsert(back);
    for (const d of back) live.set(d.id, d);
    check();
    await store.close();
  });

  it('queries by id, applies thresholds per metric and honours include flags', async () => {
    const store = await storeWith(createTestContext(), 'c', 'cosine', docs, dims);
    await store.createCollection({ name: 'e', dims, metric: 'l2' });
    await store.upsert('e', docs);
    const c = await store.collection('c');
    const byId = c.query({ id: 'doc-7', k: 5, ef: 300 }).matches;
    expect(byId[0]).toMatchObject({ id: 'doc-7' });
    expect(byId[0]!.score).toBeCloseTo(1, 5);
    expect(byId.map((m) => m.id)).toEqual(bruteForce('cosine', docs, docs[7]!.values, 5).map(([id]) => id));

    const all = c.query({ vector: queries[0]!, k: 50, ef: 300 }).matches;
    const cut = all[20]!.score;
    const kept = c.query({ vector: queries[0]!, k: 50, ef: 300, threshold: cut }).matches;
    expect(kept.length).toBeGreaterThanOrEqual(21);
    expect(kept.every((m) => m.score >= cut)).toBe(true);
    expect(kept).toEqual(all.filter((m) => m.score >= cut));

    const e = await store.collection('e');
    const near = e.query({ vector: queries[1]!, k: 50, ef: 300 }).matches;
    const radius = near[9]!.score;
    const inside = e.query({ vector: queries[1]!, k: 50, ef: 300, threshold: radius }).matches;
    expect(inside).toEqual(near.filter((m) => m.score <= radius));
    expect(inside.length).toBeGreaterThanOrEqual(10);

    const bare = c.query({ vector: queries[0]!, k: 2 }).matches[0]!;
    expect(Object.keys(bare).sort()).toEqual(['id', 'score']);
    const full = c.query({ vector: queries[0]!, k: 2, include_metadata: true, include_values: true }).matches[0]!;
    const doc = docs.find((d) => d.id === full.id)!;
    expect(full.metadata).toEqual(doc.metadata);
    // Values come back as upserted (f32), not normalised.
    expect(full.values).toEqual(doc.values.map(Math.fround));
    await store.close();
  });

  it.each(['cosine', 'l2', 'dot'] as Metric[])('orders equal %s scores by id, whatever order the vectors came in', async (metric) => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    await store.createCollection({ name: 'c', dims: 2, metric });
    const ids = ['e', 'ü', 'c', 'a', 'd', 'b', 'B'];
    // Two groups of equal scores, interleaved in upsert order, then one id freed and taken again.
    await store.upsert('c', ids.map((id, i) => ({ id, values: i % 2 === 0 ? [1, 0] : [0, 1] })));
    await store.deleteVectors('c', ['c']);
    await store.upsert('c', [{ id: 'c', values: [1, 0] }]);
    const order = async (s: VectorStore) => (await s.query('c', { vector: [1, 0], k: 10 })).matches.map((m) => m.id);
    const want = ['B', 'c', 'd', 'e', 'a', 'b', 'ü'];
    expect(await order(store)).toEqual(want);
    expect(await order(await VectorStore.open(ctx, 't1'))).toEqual(want);
  });

  it('answers with copies of the metadata, or with the objects the collection holds when asked to share them', async () => {
    const store = await storeWith(createTestContext(), 'c', 'cosine', docs, dims);
    const c = await store.collection('c');
    const request = { vector: queries[2]!, k: 3, include_metadata: true };
    const first = c.query(request).matches[0]!;
    const doc = docs.find((d) => d.id === first.id)!;
    // A caller changing what it got back changes nothing stored.
    (first.metadata as Record<string, unknown>).changed = true;
    expect(c.query(request).matches[0]!.metadata).toEqual(doc.metadata);
    expect(c.query(request).matches[0]!.metadata).not.toBe(c.query(request).matches[0]!.metadata);
    // Shared: the same object each time (the HTTP API writes it out at once), equal to the copy.
    const shared = c.query(request, { sharedMetadata: true }).matches[0]!.metadata;
    expect(shared).toBe(c.query(request, { sharedMetadata: true }).matches[0]!.metadata);
    expect(shared).toEqual(doc.metadata);
    // null options are no options, as elsewhere in the library.
    expect(c.query(request, null).matches[0]!.metadata).not.toBe(shared);
    await store.close();
  });

  it('a shared answer keeps the metadata it was given: later upserts and deletes replace the stored object, never change it', async () => {
    const store = await storeWith(createTestContext(), 'c', 'cosine', docs, dims);
    const c = await store.collection('c');
    const request = { vector: queries[3]!, k: 5, include_metadata: true };
    const answer = c.query(request, { sharedMetadata: true }).matches;
    const before = JSON.stringify(answer);
    const [first, second] = answer;
    // A new value for the first match's metadata, and the second deleted.
    await c.upsert([{ id: first!.id, values: docs.find((d) => d.id === first!.id)!.values, metadata: { replaced: true, ...first!.metadata } }]);
    await c.delete([second!.id]);
    expect(JSON.stringify(answer)).toBe(before);
    expect(c.query(request, { sharedMetadata: true }).matches[0]!.metadata).toMatchObject({ replaced: true });
    await store.close();
  });

  it('lists every vector once, in order, through the cursor', async () => {
    const store = await storeWith(createTestContext(), 'c', 'dot', docs, dims);
    const c = await store.collection('c');
    const seen: string[] = [];
    let page = c.list({ limit: 7 });
    for (;;) {
      seen.push(...page.vectors.map((v) => v.id));
      expect(page.vectors.length).toBeLessThanOrEqual(7);
      if (page.cursor === null) break;
      page = c.list({ limit: 7, cursor: page.cursor });
    }
    expect(seen).toEqual(docs.map((d) => d.id).sort());
    const withData = c.list({ limit: 1, include_metadata: true, include_values: true }).vectors[0]!;
    const doc = docs.find((d) => d.id === withData.id)!;
    expect(withData).toEqual({ id: doc.id, metadata: doc.metadata, values: doc.values.map(Math.fround) });
    // A cursor stays valid across deletes of the id it points at.
    const first = c.list({ limit: 3 });
    await c.delete([first.vectors[2]!.id]);
    expect(c.list({ limit: 1, cursor: first.cursor }).vectors[0]!.id).toBe(seen[3]);
    await store.close();
  });

  it('pages past an id that starts with U+FEFF without repeating ids', async () => {
    // The cursor's decoder dropped a leading BOM, so the next page resumed after 'a', not '\uFEFFa'.
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    await store.createCollection({ name: 'c', dims: 1, metric: 'l2' });
    const ids = ['a', 'b', '\uFEFFa', '\uFFFF'];
    await store.upsert('c', ids.map((id, i) => ({ id, values: [i] })));
    const c = await store.collection('c');
    const seen: string[] = [];
    for (let page = c.list({ limit: 1 }); ; page = c.list({ limit: 1, cursor: page.cursor! })) {
      seen.push(...page.vectors.map((v) => v.id));
      if (page.cursor === null || seen.length > ids.length) break;
    }
    expect(seen).toEqual(ids);
  });

  it('keeps tenants apart even with the same collection name', async () => {
    const ctx = createTestContext();
    const a = await VectorStore.open(ctx, 'ta');
    const b = await VectorStore.open(ctx, 'tb');
    await a.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
    await b.createCollection({ name: 'docs', dims: 3, metric: 'cosine' });
    await a.upsert('docs', [{ id: 'x', values: [1, 1] }]);
    await b.upsert('docs', [
      { id: 'y', values: [1, 0, 0] },
      { id: 'z', values: [0, 1, 0] },
    ]);
    expect(await a.get('docs', 'y')).toBeUndefined();
    expect((await b.describeCollection('docs')).count).toBe(2);
    await a.deleteCollection('docs');
    expect((await b.query('docs', { vector: [1, 0, 0], k: 1 })).matches[0]!.id).toBe('y');
    expect(ctx.usage.get('ta', 'vectors_stored')).toBe(0);
    expect(ctx.usage.get('tb', 'vectors_stored')).toBe(2);
    // A tenant whose id extends another's keeps its collections when the shorter one reopens.
    const nested = await VectorStore.open(ctx, 'tb/x');
    await nested.createCollection({ name: 'n', dims: 2, metric: 'l2' });
    await nested.upsert('n', [{ id: 'q', values: [1, 2] }]);
    await VectorStore.open(ctx, 'tb');
    expect((await (await VectorStore.open(ctx, 'tb/x')).get('n', 'q'))?.values).toEqual([1, 2]);
    await a.close();
    await b.close();
  });
});

/** Query answers of a collection for a fixed set of queries, to compare across reopen. */
async function answers(store: VectorStore, name: string, qs: number[][]): Promise<unknown[]> {
  const c = await store.collection(name);
  return qs.flatMap((q) => [c.query({ vector: q, k: 10, include_metadata: true, include_values: true }), c.query({ vector: q, k: 5, filter: { genre: 'jazz' } })]);
}

describe('VectorStore persistence', () => {
  const dims = 16;
  const docs = makeDocs(400, dims, 3);
  const qs = vectors(10, dims, 5);

  async function mutate(store: VectorStore, checkpointAt: number[] = []): Promise<void> {
    await store.createCollection({ name: 'docs', dims, metric: 'cosine' });
    const c = await store.collection('docs');
    for (let i = 0; i < docs.length; i += 50) {
      await c.upsert(docs.slice(i, i + 50));
      if (checkpointAt.includes(i)) await c.checkpoint();
    }
    await c.delete(docs.filter((_, i) => i % 7 === 0).map((d) => d.id));
    await c.upsert(docs.slice(0, 30).map((d) => ({ ...d, metadata: { ...d.metadata, genre: 'jazz', v: 2 } })));
  }

  it.each([
    ['without a snapshot', []],
    ['with a snapshot mid-way', [150]],
    ['with snapshots, the last one after all but the final calls', [0, 200, 350]],
  ] as [string, number[]][])('answers the same queries the same way after reopen %s', async (_label, checkpoints) => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1', { snapshot: { everyMutations: 1_000_000 } });
    await mutate(store, checkpoints);
    const before = await answers(store, 'docs', qs);
    const count = (await store.collection('docs')).count;
    // No close: a reopen must not depend on a clean shutdown.
    const reopened = await VectorStore.open(ctx, 't1');
    expect((await reopened.collection('docs')).count).toBe(count);
    expect(await answers(reopened, 'docs', qs)).toEqual(before);
    expect(await reopened.describeCollection('docs')).toMatchObject({ count });
    const unit = ctx.storage.unit('vec/t1/docs');
    const blobs = await unit.blobs.list('snap/');
    expect(blobs.length).toBe(checkpoints.length > 0 ? 1 : 0);
    await reopened.close();
  });

  it.each([
    ['mutations', { everyMutations: 3 }],
    ['log bytes', { everyBytes: 2_000 }],
  ] as [string, object][])('checkpoints on its own after the configured number of %s and trims the log', async (_label, policy) => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1', { snapshot: policy });
    await store.createCollection({ name: 'docs', dims, metric: 'l2' });
    const c = await store.collection('docs');
    const unit = ctx.storage.unit('vec/t1/docs');
    const log = async () => (await unit.kv.scan({ prefix: new Uint8Array([0x6c]) })).length;
    for (let i = 0; i < 10; i++) await c.upsert(docs.slice(i * 10, i * 10 + 10));
    await new Promise((resolve) => setTimeout(resolve, 10)); // the background checkpoint settles
    expect((await unit.blobs.list('snap/')).length).toBe(1);
    expect(await log()).toBeLessThan(3);
    expect(c.lastCheckpointError).toBeUndefined();
    const before = await answers(store, 'docs', qs);
    const reopened = await VectorStore.open(ctx, 't1');
    expect(await answers(reopened, 'docs', qs)).toEqual(before);
    await c.checkpoint();
    expect(await log()).toBe(0);
  });

  it('waits for the log to reach a quarter of the last snapshot before checkpointing on its own', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1', { snapshot: { everyMutations: 1 } });
    await store.createCollection({ name: 'docs', dims, metric: 'l2' });
    const c = await store.collection('docs');
    await c.upsert(docs); // 400 records: the first checkpoint follows at once
    await new Promise((resolve) => setTimeout(resolve, 10));
    const unit = ctx.storage.unit('vec/t1/docs');
    const [first] = await unit.blobs.list('snap/');
    expect(first).toBeDefined();
    for (let i = 0; i < 20; i++) await c.upsert([{ ...docs[i]!, metadata: { round: i } }]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect((await unit.blobs.list('snap/')).map((b) => b.key)).toEqual([first!.key]);
    await c.upsert(docs.slice(0, 300)); // now past a quarter of the snapshot
    await new Promise((resolve) => setTimeout(resolve, 10));
    const [second] = await unit.blobs.list('snap/');
    expect(second!.key).not.toBe(first!.key);
  });

  it('replays a log longer than one scan page in order', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1', { snapshot: { everyMutations: 1_000_000 } });
    await store.createCollection({ name: 'docs', dims, metric: 'l2' });
    for (let i = 0; i < 50; i++) await store.upsert('docs', [{ id: `v${i % 20}`, values: docs[i]!.values, metadata: { i } }]);
    const reopened = await (await VectorStore.open(ctx, 't1')).collection('docs');
    expect(reopened.count).toBe(20);
    expect(reopened.get('v5')).toEqual({ id: 'v5', values: docs[45]!.values.map(Math.fround), metadata: { i: 45 } });
  });

  it('keeps ids that start with U+FEFF across a replay of the log and a snapshot (found by the model check)', async () => {
    // The codec's decoder dropped a leading BOM: after a restart '\uFEFFa' was 'a', and deleting
    // it by its own id removed nothing.
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1', { snapshot: { everyMutations: 1_000_000 } });
    await store.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
    const ids = ['\uFEFFa', '\uFEFF', 'b\uFEFF'];
    await store.upsert('docs', ids.map((id, i) => ({ id, values: [i, 1] })));
    await store.deleteVectors('docs', ['b\uFEFF']);
    const replayed = await (await VectorStore.open(ctx, 't1')).collection('docs');
    expect(replayed.get('\uFEFFa')?.values).toEqual([0, 1]);
    expect(replayed.get('\uFEFF')?.values).toEqual([1, 1]);
    expect(replayed.get('a')).toBeUndefined();
    await replayed.checkpoint();
    const fromSnapshot = await (await VectorStore.open(ctx, 't1')).collection('docs');
    expect(fromSnapshot.get('\uFEFFa')?.values).toEqual([0, 1]);
    expect(fromSnapshot.count).toBe(2);
  });

  it('splits a big upsert into several log entries and replays it whole', async () => {
    const ctx = createTestContext();
    const big = 1024;
    const store = await VectorStore.open(ctx, 't1');
    await store.createCollection({ name: 'big', dims: big, metric: 'dot' });
    const many = vectors(600, big, 8).map((values, i) => ({ id: `v${i}`, values }));
    await store.upsert('big', many);
    const logEntries = await ctx.storage.unit('vec/t1/big').kv.scan({ prefix: new Uint8Array([0x6c]) });
    expect(logEntries.length).toBeGreaterThan(2);
    const reopened = await VectorStore.open(ctx, 't1');
    const c = await reopened.collection('big');
    expect(c.count).toBe(600);
    expect(c.get('v599')!.values).toEqual(many[599]!.values.map(Math.fround));
  });

  it('rebuilds the graph from the snapshot values when the index format is one it cannot read', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    await mutate(store);
    const snap = decodeSnapshot((await store.collection('docs')).snapshot());
    const index = snap.index.slice();
    new DataView(index.buffer).setUint16(4, 99, true); // a future HNSW format version
    await store.createCollection({ name: 'copy', dims, metric: 'cosine' });
    const copy = await store.collection('copy');
    await copy.restore(encodeSnapshot({ ...snap, index }));
    const exact = (c: Awaited<ReturnType<VectorStore['collection']>>) => qs.map((q) => c.query({ vector: q, k: 10, ef: 500 }).matches.map((m) => m.id));
    expect(copy.count).toBe((await store.collection('docs')).count);
    expect(exact(copy)).toEqual(exact(await store.collection('docs')));
  });

  it('scores cosine vectors of a snapshot written by a build that normalised in f32 by their direction, also after a checkpoint and a reopen', async () => {
    // Collection.snapshot() of build c7f03f0: cosine, 2 dims, huge [3e19, 3e19], x [1, 0], y [0, 1],
    // third [1, 3]. That build squared in f32, so huge's norm overflowed and its graph node holds zeros.
    const old = Uint8Array.from(
      Buffer.from(
        'UVZTTgEAAQACAAAAAQAAAAAAAAAEAAAAAAAAALQAAAAAAAAAAAAAAAQAaHVnZQIAAAB7fbUq0F+1KtBfAQAAAAEAeAIAAAB7fQAAgD8AAAAAAgAAAAEAeQIAAAB7fQAAAAAAAIA/AwAAAAUAdGhpcmQCAAAAe30AAIA/AABAQFFITlMBAAEAAgAAABAAAADIAAAABAAAAAQAAAAAAAAAAAAAAOAbhM8va2GyAAAAAAAAAAAAAAAAAwAAAAEAAAACAAAAAwAAAAAAAAAAAAAAAQAAAAAAAAADAAAAAAAAAAIAAAADAAAAAACAPwAAAAACAAAAAAAAAAMAAAABAAAAAAAAAAMAAAAAAAAAAACAPwMAAAAAAAAAAwAAAAIAAAABAAAAAAAAAJvooT7o3HI/r5KcZ3IplFk=',
        'base64',
      ),
    );
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    await store.createCollection({ name: 'c', dims: 2, metric: 'cosine' });
    await (await store.collection('c')).restore(old);
    const scores = async (s: VectorStore, request: { vector: number[] } | { id: string }) =>
      (await s.query('c', { ...request, k: 10 })).matches.map((m) => [m.id, +m.score.toFixed(6)]);
    const want = [
      ['huge', 1],
      ['third', 0.894427],
      ['x', 0.707107],
      ['y', 0.707107],
    ];
    expect(await scores(store, { vector: [1, 1] })).toEqual(want);
    expect(await scores(store, { id: 'huge' })).toEqual(want);
    // Replayed beside it, an equal vector scores exactly as much (ties go by id).
    await store.upsert('c', [{ id: 'twin', values: [1, 3] }]);
    expect((await store.query('c', { vector: [1, 1], k: 3 })).matches.map((m) => m.id)).toEqual(['huge', 'third', 'twin']);
    await (await store.collection('c')).checkpoint();
    expect(await scores(await VectorStore.open(ctx, 't1'), { vector: [1, 1] })).toEqual([want[0], want[1], ['twin', 0.894427], want[2], want[3]]);
  });

  it('snapshot() bytes restore into another collection, durably', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    await mutate(store);
    const bytes = (await store.collection('docs')).snapshot();
    await store.createCollection({ name: 'copy', dims, metric: 'cosine' });
    await store.upsert('copy', [{ id: 'gone', values: docs[0]!.values }]);
    const copy = await store.collection('copy');
    await copy.restore(bytes);
    expect(copy.get('gone')).toBeUndefined();
    expect(await answers(store, 'copy', qs)).toEqual(await answers(store, 'docs', qs));
    const count = copy.count;
    expect(ctx.usage.get('t1', 'vectors_stored')).toBe(2 * count);
    const reopened = await VectorStore.open(ctx, 't1');
    expect(await answers(reopened, 'copy', qs)).toEqual(await answers(store, 'docs', qs));

    await store.createCollection({ name: 'other', dims: 4, metric: 'cosine' });
    await rejectsWithQuartzError((await store.collection('other')).restore(bytes), 'invalid_argument', /16-dimension cosine vectors; collection 'other' is 4-dimension cosine/);
    const bad = bytes.slice();
    bad[100]! ^= 1;
    await rejectsWithQuartzError(copy.restore(bad), 'checksum_mismatch', /CRC-32C/);
    expect(copy.count).toBe(count);
  });
});

/** Wraps a provider so that every write after `budget` of them throws, like a process dying there. */
function dyingStorage(inner: StorageProvider, budget: number): StorageProvider & { died: () => boolean } {
  let writes = 0;
  const step = (): void => {
    writes++;
    if (writes > budget) throw new Error(`simulated crash at write ${writes}`);
  };
  const wrapUnit = (unit: UnitStorage): UnitStorage => {
    const kv: OrderedKV = {
      get: (key) => unit.kv.get(key),
      scan: (o) => unit.kv.scan(o),
      put: (key, value) => (step(), unit.kv.put(key, value)),
      delete: (key) => (step(), unit.kv.delete(key)),
      batch: (ops) => (step(), unit.kv.batch(ops)),
    };
    const blobs: BlobStore = {
      get: (key, range) => unit.blobs.get(key, range),
      head: (key) => unit.blobs.head(key),
      list: (prefix) => unit.blobs.list(prefix),
      put: async (key, bytes) => (step(), unit.blobs.put(key, bytes)),
      delete: async (key) => (step(), unit.blobs.delete(key)),
    };
    return { kv, blobs };
  };
  return {
    unit: async (name) => wrapUnit(await inner.unit(name)),
    listUnits: (prefix) => inner.listUnits!(prefix),
    dropUnit: (name) => (step(), inner.dropUnit(name)),
    close: () => inner.close(),
    died: () => writes > budget,
  };
}

describe('VectorStore crash safety', () => {
  it('survives a crash between writing a snapshot blob and committing it, and clears the orphan', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    await store.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
    await store.upsert('docs', [{ id: 'a', values: [1, 1] }]);
    await (await store.collection('docs')).checkpoint();
    await store.upsert('docs', [{ id: 'b', values: [2, 2] }]);
    // Fail exactly the commit batch (the one that moves the pointer) of the next checkpoint.
    const failing: StorageProvider = {
      ...ctx.storage,
      unit: (name) => {
        const unit = ctx.storage.unit(name);
        return {
          blobs: unit.blobs,
          kv: {
            ...unit.kv,
            get: (k) => unit.kv.get(k),
            scan: (o) => unit.kv.scan(o),
            put: (k, v) => unit.kv.put(k, v),
            delete: (k) => unit.kv.delete(k),
            batch: (ops) => {
              if (ops.some((op) => op.type === 'put' && op.key.length === 1 && op.key[0] === 0x73)) throw new Error('simulated crash');
              return unit.kv.batch(ops);
            },
          },
        };
      },
      listUnits: (p) => ctx.storage.listUnits(p),
      dropUnit: (n) => ctx.storage.dropUnit(n),
      close: () => ctx.storage.close(),
    };
    const dying = await VectorStore.open({ ...ctx, storage: failing }, 't1');
    const c = await dying.collection('docs');
    await c.upsert([{ id: 'c', values: [3, 3] }]);
    await expect(c.checkpoint()).rejects.toThrow(/simulated crash/);
    const unit = ctx.storage.unit('vec/t1/docs');
    expect((await unit.blobs.list('snap/')).length).toBe(2); // the committed one and the orphan
    const reopened = await VectorStore.open(ctx, 't1');
    const r = await reopened.collection('docs');
    expect(r.list().vectors.map((v) => v.id)).toEqual(['a', 'b', 'c']);
    expect(r.query({ vector: [3, 3], k: 3 }).matches.map((m) => m.id)).toEqual(['c', 'b', 'a']);
    expect((await unit.blobs.list('snap/')).length).toBe(1);
  });

  const dims = 4;
  const docs = makeDocs(120, dims, 11);

  /** Runs a fixed workload until the storage dies; returns the acknowledged model. */
  async function workload(ctx: EngineContext): Promise<Map<string, Doc>> {
    const model = new Map<string, Doc>();
    try {
      const store = await VectorStore.open(ctx, 't1', { snapshot: { everyMutations: 2 } });
      await store.createCollection({ name: 'docs', dims, metric: 'l2' });
      const c = await store.collection('docs');
      for (let step = 0; step < 12; step++) {
        const batch = docs.slice(step * 10, step * 10 + 10);
        await c.upsert(batch);
        for (const d of batch) model.set(d.id, d);
        if (step % 3 === 2) {
          const gone = [...model.keys()].filter((_, i) => i % 4 === step % 4);
          await c.delete(gone);
          for (const id of gone) model.delete(id);
        }
        if (step % 4 === 1) {
          const moved = batch.slice(0, 3).map((d) => ({ ...d, values: d.values.map((v) => v + 1), metadata: { moved: step } }));
          await c.upsert(moved);
          for (const d of moved) model.set(d.id, d);
        }
        if (step % 5 === 4) await c.checkpoint();
      }
    } catch (err) {
      if (!String(err).includes('simulated crash') && !String((err as Error).cause).includes('simulated crash')) throw err;
    }
    return model;
  }

  it('loses no acknowledged write and duplicates none, wherever the crash falls', async () => {
    // Budget b lets b writes through and fails every later one; raise it until a run completes.
    let total = 0;
    for (let budget = 1; ; budget++) {
      const ctx = createTestContext();
      const dying = dyingStorage(ctx.storage, budget);
      const model = await workload({ ...ctx, storage: dying });
      // Let background checkpoints settle (they swallow the crash and keep it as lastCheckpointError).
      await new Promise((r) => setTimeout(r, 0));
      const store = await VectorStore.open(ctx, 't1');
      const names = (await store.listCollections()).map((c) => c.name);
      if (names.length === 0) {
        expect(model.size).toBe(0);
        continue;
      }
      const c = await store.collection('docs');
      expect({ budget, count: c.count }).toEqual({ budget, count: model.size });
      for (const [id, d] of model) {
        expect(c.get(id), `budget ${budget}: ${id}`).toEqual({ id, values: d.values.map(Math.fround), metadata: d.metadata });
      }
      const listed = c.list({ limit: 1000 }).vectors.map((v) => v.id);
      expect(listed).toEqual([...model.keys()].sort());
      expect((await store.describeCollection('docs')).count).toBe(model.size);
      await store.close();
      total = budget;
      if (!dying.died()) break;
    }
    expect(total).toBeGreaterThan(20);
  });
});

describe('VectorStore with hostile arguments', () => {
  it('stores what an upsert was given even when the caller reuses its arrays and objects once the call returns', async () => {
    const ctx = createTestContext();
    let store = await VectorStore.open(ctx, 't1');
    await store.createCollection({ name: 'c', dims: 3, metric: 'l2' });
    await store.close();
    store = await VectorStore.open(ctx, 't1'); // the collection is not open yet: the upsert waits for it
    for (const id of ['cold', 'warm']) {
      const values = [1, 2, 3];
      const metadata = { n: 1 };
      const pending = store.upsert('c', [{ id, values, metadata }]);
      values[0] = 9;
      metadata.n = 2;
      await pending;
      expect(await store.get('c', id)).toEqual({ id, values: [1, 2, 3], metadata: { n: 1 } });
    }
    const ids = ['cold'];
    await store.close();
    store = await VectorStore.open(ctx, 't1');
    const deleting = store.deleteVectors('c', ids);
    ids.push('warm');
    expect(await deleting).toEqual({ deleted: 1 });
    expect(await store.get('c', 'warm')).toBeDefined();
  });

  it('refuses metadata whose JSON is not an object (toJSON) and names BigInt arguments', async () => {
    const store = await VectorStore.open(createTestContext(), 't1');
    await store.createCollection({ name: 'c', dims: 2, metric: 'l2' });
    for (const metadata of [{ toJSON: () => undefined }, new Date(0), { toJSON: () => 5 }]) {
      await rejectsWithQuartzError(() => store.upsert('c', [{ id: 'a', values: [1, 2], metadata: metadata as never }]), 'invalid_argument', /must be a JSON object/);
    }
    await rejectsWithQuartzError(() => store.createCollection({ name: 'd', dims: 3n as never, metric: 'l2' }), 'invalid_argument', /got 3n/);
    await rejectsWithQuartzError(() => store.query('c', { vector: [1, 2], k: 1n as never }), 'invalid_argument', /got 1n/);
    expect((await store.listVectors('c', null as never)).vectors).toEqual([]);
  });

  it.each(['l2', 'dot'] as Metric[])('refuses %s values whose scores would overflow f32 (which answered null scores in no order), naming the value', async (metric) => {
    const store = await VectorStore.open(createTestContext(), 't1');
    await store.createCollection({ name: 'c', dims: 2, metric });
    const edge = [1e17, -1e17];
    await store.upsert('c', [{ id: 'edge', values: edge }, { id: 'neg', values: [-1e17, 1e17] }, { id: 'one', values: [1, 1] }]);
    const { matches } = await store.query('c', { vector: edge, k: 3 });
    expect(matches.every((m) => Number.isFinite(m.score))).toBe(true);
    expect(matches[0]!.id).toBe('edge');
    await rejectsWithQuartzError(() => store.upsert('c', [{ id: 'a', values: [1, 3e38] }]), 'invalid_argument', /vector 'a' has a value \(3e\+38\) at index 1 beyond ±1e\+17/);
    await rejectsWithQuartzError(() => store.query('c', { vector: [-2e17, 0], k: 1 }), 'invalid_argument', /the query vector has a value \(-200000000000000000\) at index 0 beyond ±1e\+17/);
    expect((await store.describeCollection('c')).count).toBe(3);
  });

  it('scores cosine vectors of subnormal or near-f32-maximum components by their direction, and such an upsert leaves the collection usable, also after a reopen', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1');
    await store.createCollection({ name: 'c', dims: 3, metric: 'cosine' });
    // Squared in f32, 1e-45 rounds to 0 and 3e38 overflows: the norm must not be taken there.
    await store.upsert('c', [
      { id: 'tiny', values: [1e-45, 0, 0] },
      { id: 'huge', values: [0, 3e38, 3e38] },
      { id: 'plain', values: [0, 0, 1] },
    ]);
    // Against the direction [1, 1, 0]: tiny [1, 0, 0] is at 45°, huge [0, 1, 1] at 60°, plain at 90°.
    const expected = [
      { id: 'tiny', score: +Math.SQRT1_2.toFixed(6) },
      { id: 'huge', score: 0.5 },
      { id: 'plain', score: 0 },
    ];
    const scores = async (s: VectorStore, vector: number[]) => (await s.query('c', { vector, k: 3 })).matches.map((m) => ({ id: m.id, score: +m.score.toFixed(6) }));
    for (const q of [[1, 1, 0], [2e-45, 2e-45, 0], [3e38, 3e38, 0]]) expect(await scores(store, q)).toEqual(expected);
    await store.upsert('c', [{ id: 'after', values: [-1, -1, -1] }]);
    const reopened = await VectorStore.open(ctx, 't1');
    expect(await scores(reopened, [1e-40, 1e-40, 0])).toEqual(expected);
    expect((await reopened.describeCollection('c')).count).toBe(4);
  });
});

describe('vector ids of every kind (seeded)', () => {
  it('page without repeats or gaps, and come back as they are from a replay of the log and from a snapshot', async () => {
    const ctx = createTestContext();
    const store = await VectorStore.open(ctx, 't1', { snapshot: { everyMutations: 1_000_000 } });
    await store.createCollection({ name: 'c', dims: 1, metric: 'l2' });
    const pieces = ['\uFEFF', 'a', 'b', '/', ' ', '"', '\\', '\u0000', '\n', '\u2028', 'é', '中', '😀', '\u{10FFFF}', '\uFFFE', '\uFFFF'];
    const rand = seededRandom(61);
    const ids = new Set<string>(['\uFEFF', '\uFEFFa', 'a', 'a\uFEFF', '中'.repeat(170) + 'ab', '😀'.repeat(128)]);
    while (ids.size < 60) ids.add(Array.from({ length: 1 + Math.floor(rand() * 4) }, () => pieces[Math.floor(rand() * pieces.length)]).join(''));
    await store.upsert('c', [...ids].map((id, i) => ({ id, values: [i] })));
    const gone = [...ids].filter((_, i) => i % 5 === 0);
    await store.deleteVectors('c', gone);
    const kept = [...ids].filter((_, i) => i % 5 !== 0);
    const listed = async (s: VectorStore): Promise<string[]> => {
      const c = await s.collection('c');
      const seen: string[] = [];
      for (let page = c.list({ limit: 7 }); ; page = c.list({ limit: 7, cursor: page.cursor! })) {
        seen.push(...page.vectors.map((v) => v.id));
        if (page.cursor === null || seen.length > ids.size) return seen;
      }
    };
    const expectKept = async (s: VectorStore, when: string) => {
      const seen = await listed(s);
      expect(new Set(seen).size, when).toBe(seen.length);
      expect(new Set(seen), when).toEqual(new Set(kept));
      const c = await s.collection('c');
      for (const [i, id] of [...ids].entries()) expect(c.get(id)?.values, `${when} ${JSON.stringify(id)}`).toEqual(i % 5 === 0 ? undefined : [i]);
    };
    await expectKept(store, 'live');
    const replayed = await VectorStore.open(ctx, 't1');
    await expectKept(replayed, 'replayed');
    await (await replayed.collection('c')).checkpoint();
    await expectKept(await VectorStore.open(ctx, 't1'), 'from the snapshot');
  });
});

/** The test context's storage, with `onRead` called (and awaited) before each snapshot blob read. */
function seeingSnapshotReads(ctx: ReturnType<typeof createTestContext>, onRead: () => Promise<void> | void | undefined): StorageProvider {
  return {
    listUnits: (prefix) => ctx.storage.listUnits(prefix),
    dropUnit: (name) => ctx.storage.dropUnit(name),
    close: () => ctx.storage.close(),
    unit: async (name) => {
      const unit = await ctx.storage.unit(name);
      const blobs: BlobStore = {
        put: (key, bytes) => unit.blobs.put(key, bytes),
        get: async (key, range) => {
          if (key.startsWith('snap/')) await onRead();
          return unit.blobs.get(key, range);
        },
        head: (key) => unit.blobs.head(key),
        list: (prefix) => unit.blobs.list(prefix),
        delete: (key) => unit.blobs.delete(key),
      };
      return { ...unit, blobs };
    },
  };
}

/** Tenant t1 with collection `docs` (one vector, checkpointed, one bit of its snapshot flipped) and empty `others`. */
async function writeDamagedSnapshot(ctx: ReturnType<typeof createTestContext>, storage: StorageProvider, others: string[]): Promise<void> {
  const first = await VectorStore.open({ ...ctx, storage }, 't1');
  await first.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
  for (const name of others) await first.createCollection({ name, dims: 2, metric: 'l2' });
  await first.upsert('docs', [{ id: 'a', values: [1, 2] }]);
  await (await first.collection('docs')).checkpoint();
  await first.close();
  const unit = ctx.storage.unit('vec/t1/docs');
  const [{ key }] = await unit.blobs.list('snap/');
  const bytes = (await unit.blobs.get(key!))!.slice();
  bytes[40]! ^= 0x01;
  await unit.blobs.put(key!, bytes);
}
