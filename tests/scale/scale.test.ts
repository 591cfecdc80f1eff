/**
 * A demanding user's first week at a modest N: many tenants, a 1,024-partition topic, many
 * collections, and listing routes over many keys, on the Node disk adapter across restarts.
 * Asserts answers and counts, never times: `npm run bench -- scale` prints what size costs
 * (docs/scale.md).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openQuartz } from '../../src/node/open-quartz.js';
import { partitionForKey } from '../../src/engine/streams/murmur2.js';
import { startServerWithTenant } from '../fixtures/server-with-tenant.js';
import { startServer } from '../../src/node/server/server.js';
import { resolveServeSettings } from '../../src/node/server/settings.js';

const enc = new TextEncoder();
const dirs: string[] = [];
const freshDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'quartz-scale-'));
  dirs.push(dir);
  return dir;
};

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('many tenants', () => {
  it('300 tenants keep their own keys, topics and collections across a restart, and list in pages', async () => {
    const dir = freshDir();
    const n = 300;
    let engine = await openQuartz({ dataDir: dir, encodeThreads: 0 });
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const { tenant } = await engine.tenants.create({ email: `user${i}@example.com` });
      ids.push(tenant.id);
      const { kv, streams, vectors } = await engine.tenant(tenant.id);
      await kv.put('owner', enc.encode(tenant.id));
      await streams.createTopic('events', { partitions: 2 });
      await streams.produce('events', [{ key: enc.encode(tenant.id), value: enc.encode(tenant.id) }]);
      await vectors.createCollection({ name: 'docs', dims: 2, metric: 'l2' });
    }
    const stats = await engine.stats();
    expect([stats.open_tenants, stats.topics, stats.partitions, stats.collections]).toEqual([n, n, 2 * n, n]);
    await engine.close();

    engine = await openQuartz({ dataDir: dir, encodeThreads: 0 });
    const listed: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { tenants: Array<{ id: string }>; cursor: string | null } = await engine.tenants.list({ cursor, limit: 64 });
      expect(page.tenants.length).toBeLessThanOrEqual(64);
      listed.push(...page.tenants.map((t) => t.id));
      cursor = page.cursor;
    } while (cursor !== null);
    expect(listed.sort()).toEqual([...ids].sort());
    for (const id of ids) {
      const { kv, streams, vectors } = await engine.tenant(id);
      expect(new TextDecoder().decode((await kv.get('owner'))!.value)).toBe(id);
      expect(streams.listTopics().map((t) => t.name)).toEqual(['events']);
      const p = partitionForKey(enc.encode(id), 2);
      expect((await streams.consume('events', p, 0)).records.map((r) => new TextDecoder().decode(r.value!))).toEqual([id]);
      expect((await vectors.listCollections()).map((c) => c.name)).toEqual(['docs']);
    }
    await engine.close();
  });
});

describe('a topic with 1,024 partitions', () => {
  it('takes keyed produces spread by murmur2, is consumed and committed on every partition, and is deleted while another topic takes produces', async () => {
    const dir = freshDir();
    const engine = await openQuartz({ dataDir: dir, encodeThreads: 0 });
    const { streams } = await engine.tenant('t1');
    await streams.createTopic('big', { partitions: 1024 });
    await streams.createTopic('beside');
    const perPartition = new Array<number>(1024).fill(0);
    for (let round = 0; round < 8; round++) {
      const records = Array.from({ length: 256 }, (_, i) => ({ key: enc.encode(`user-${round}-${i}`), value: enc.encode(`${round}:${i}`) }));
      const { offsets } = await streams.produce('big', records);
      offsets.forEach(({ partition }, i) => {
        expect(partition).toBe(partitionForKey(records[i]!.key, 1024));
        perPartition[partition]!++;
      });
    }
    expect(perPartition.filter((c) => c > 0).length).toBeGreaterThan(700); // spread, not piled up
    let consumed = 0;
    for (let p = 0; p < 1024; p++) {
      const res = await streams.consume('big', p, 0, { max_records: 1000 });
      expect(res.records.length).toBe(perPartition[p]);
      consumed += res.records.length;
      await streams.commitOffset('billing', 'big', p, res.next_offset);
    }
    expect(consumed).toBe(2048);
    const lags = await streams.fetchOffsets('billing', 'big');
    expect(lags).toHaveLength(1024);
    expect(lags.every((row) => row.lag === 0)).toBe(true);
    expect(engine.context.storage.listUnits!('log/t1/big/')).toHaveLength(1024);

    // The delete and the produces beside it all succeed; the big topic leaves nothing behind.
    let producing = true;
    let besideCount = 0;
    const beside = (async () => {
      while (producing || besideCount < 3) {
        await streams.produce('beside', [{ value: enc.encode(`b${besideCount}`) }]);
        besideCount++;
      }
    })();
    await streams.deleteTopic('big');
    producing = false;
    await beside;
    expect(engine.context.storage.listUnits!('log/t1/big/')).toEqual([]);
    expect(await streams.fetchOffsets('billing')).toEqual([]);
    expect((await streams.consume('beside', 0, 0, { max_records: 100_000 })).records).toHaveLength(besideCount);
    await streams.createTopic('big', { partitions: 1024 });
    expect((await streams.consume('big', 5, 0)).high_watermark).toBe(0);
    await engine.close();
  });
});

describe('many collections', () => {
  it('200 collections of 50 vectors each answer their own queries after a restart', async () => {
    const dir = freshDir();
    let engine = await openQuartz({ dataDir: dir, encodeThreads: 0 });
    let { vectors } = await engine.tenant('t1');
    const n = 200;
    for (let c = 0; c < n; c++) {
      await vectors.createCollection({ name: `c${c}`, dims: 4, metric: 'l2' });
      await (await vectors.collection(`c${c}`)).upsert(Array.from({ length: 50 }, (_, i) => ({ id: `c${c}-v${i}`, values: [c, i, 0, 1] })));
    }
    await engine.close();
    engine = await openQuartz({ dataDir: dir, encodeThreads: 0 });
    ({ vectors } = await engine.tenant('t1'));
    const listed = await vectors.listCollections();
    expect(listed).toHaveLength(n);
    expect(listed.every((c) => c.count === 50)).toBe(true);
    for (let c = 0; c < n; c += 7) {
      const { matches } = (await vectors.collection(`c${c}`)).query({ vector: [c, 10, 0, 1], k: 1 });
      expect(matches.map((m) => m.id)).toEqual([`c${c}-v10`]);
    }
    await engine.close();
  });
});

describe('many collections under a memory budget', () => {
  it('300 collections queried in turn keep the open ones within an 8 MiB budget and answer as if all stayed open', async () => {
    const dir = freshDir();
    const budget = 8 * 2 ** 20;
    const engine = await openQuartz({ dataDir: dir, encodeThreads: 0, vectors: { maxOpenBytes: budget, idleCloseMs: 0 } });
    const { vectors } = await engine.tenant('t1');
    const n = 300;
    let peakOpen = 0;
    const within = async (): Promise<void> => {
      const stats = await engine.stats();
      expect(stats.open_collection_bytes).toBeLessThanOrEqual(budget);
      peakOpen = Math.max(peakOpen, stats.open_collections);
    };
    for (let c = 0; c < n; c++) {
      await vectors.createCollection({ name: `c${c}`, dims: 8, metric: 'cosine' });
      await vectors.upsert(`c${c}`, Array.from({ length: 20 }, (_, i) => ({ id: `c${c}-v${i}`, values: [c + 1, i + 1, 1, 0, 0, 0, 0, 1] })));
      await within();
    }
    for (let round = 0; round < 2; round++) {
      for (let c = 0; c < n; c++) {
        const { matches } = await vectors.query(`c${c}`, { vector: [c + 1, 5, 1, 0, 0, 0, 0, 1], k: 1 });
        expect(matches.map((m) => m.id)).toEqual([`c${c}-v4`]);
        await within();
      }
    }
    const stats = await engine.stats();
    expect(peakOpen).toBeLessThan(n);
    expect(stats.collection_evictions).toBeGreaterThan(n);
    expect([stats.collections, stats.vectors]).toEqual([n, 20 * n]);
    expect((await vectors.listCollections()).every((c) => c.count === 20)).toBe(true);
    await engine.close();
  });
});

describe('open collections over HTTP under a budget', () => {
  it('quartz serve takes the budget from QUARTZ_OPEN_COLLECTIONS_MAX_BYTES, answers every collection and reports the evictions on /metrics', async () => {
    const dir = freshDir();
    // One byte: only the collection in use stays open, so every switch reopens one.
    const env = { QUARTZ_LOG_LEVEL: 'error', QUARTZ_OPEN_COLLECTIONS_MAX_BYTES: '1' };
    const server = await startServer(await resolveServeSettings({ port: '0', data: dir, host: '127.0.0.1' }, env), env);
    try {
      const registered = await fetch(`${server.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'budget@example.com' }) });
      const { api_key } = (await registered.json()) as { api_key: string };
      const call = async (method: string, path: string, body?: unknown): Promise<Response> =>
        fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${api_key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      const n = 6;
      for (let c = 0; c < n; c++) {
        expect((await call('POST', '/v1/collections', { name: `c${c}`, dims: 3, metric: 'l2' })).status).toBe(201);
        const upserted = await call('POST', `/v1/collections/c${c}/upsert`, { vectors: [{ id: `c${c}-a`, values: [c, 0, 0] }, { id: `c${c}-b`, values: [c, 9, 9] }] });
        expect(upserted.status).toBe(200);
      }
      for (let round = 0; round < 2; round++) {
        for (let c = 0; c < n; c++) {
          const answer = await call('POST', `/v1/collections/c${c}/query`, { vector: [c, 1, 0], k: 1 });
          expect(answer.status).toBe(200);
          expect(((await answer.json()) as { matches: { id: string }[] }).matches.map((m) => m.id)).toEqual([`c${c}-a`]);
          expect(((await (await call('GET', `/v1/collections/c${c}`)).json()) as { count: number }).count).toBe(2);
        }
      }
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toMatch(/^quartz_open_collections 1$/m);
      expect(Number(/^quartz_collection_evictions_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2 * n);
    } finally {
      await server.close('test done');
    }
  });
});

describe('listing routes over many keys', () => {
  it('GET /v1/kv pages through 3,000 keys once each, in order, with bounded pages', async () => {
    const { server, apiKey, close } = await startServerWithTenant('scale-kv');
    try {
      const tenant = (await server.engine.tenants.list({ limit: 1 })).tenants[0]!.id;
      const { kv } = await server.engine.tenant(tenant);
      const keys = Array.from({ length: 3000 }, (_, i) => `user/${String(i).padStart(5, '0')}`);
      await Promise.all(keys.map((k) => kv.put(k, enc.encode('v'))));
      await kv.put('other', enc.encode('not under the prefix'));
      const seen: string[] = [];
      let cursor: string | null = '';
      let pages = 0;
      while (cursor !== null) {
        const url = `${server.url}/v1/kv?prefix=user%2F&limit=700${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const answer = await fetch(url, { headers: { authorization: `Bearer ${apiKey}` } });
        expect(answer.status).toBe(200);
        const page = (await answer.json()) as { keys: Array<{ key: string }>; cursor: string | null };
        expect(page.keys.length).toBeLessThanOrEqual(700);
        seen.push(...page.keys.map((k) => k.key));
        cursor = page.cursor;
        pages++;
      }
      expect(seen).toEqual(keys);
      expect(pages).toBe(5);
    } finally {
      await close();
    }
  });
});
