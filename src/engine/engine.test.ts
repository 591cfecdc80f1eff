import { beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '../core/errors.js';
import { init } from '../node/core.js';
import { ManualClock } from '../ports/manual-clock.js';
import { createMemoryStorage, type MemoryStorage } from '../ports/memory-storage.js';
import type { StorageProvider } from '../ports/storage.js';
import { DATA_VERSION, META_UNIT } from './data-version.js';
import { createEngine, type EngineOptions } from './engine.js';
import { MemoryUsageRecorder } from './testing.js';

const text = (s: string) => new TextEncoder().encode(s);
const caps = { compileWasmAtRuntime: true, threads: false, persistentStorage: false };

function options(): EngineOptions & { usage: MemoryUsageRecorder; clock: ManualClock; storage: MemoryStorage } {
  const clock = new ManualClock();
  return { storage: createMemoryStorage(), capabilities: caps, clock, scheduler: clock, usage: new MemoryUsageRecorder() };
}

beforeAll(async () => {
  await init();
});

describe('createEngine', () => {
  it("reports a tenant's failed usage recount through the logger port and serves the tenant", async () => {
    const opts = options();
    const broken = new Error('recount failed');
    opts.usage.reconcile = () => Promise.reject(broken);
    const logged: unknown[] = [];
    const consoleError = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const engine = await createEngine({ ...opts, logger: { error: (message, details) => logged.push({ message, details }), info: () => undefined } });
      const { kv } = await engine.tenant('t1');
      await kv.put('k', text('v'));
      expect(logged).toEqual([{ message: "counting the stored usage of tenant 't1' failed; its levels stay as stored", details: { tenant: 't1', err: broken } }]);
      expect(consoleError).not.toHaveBeenCalled();
      await engine.close();
    } finally {
      consoleError.mockRestore();
    }
  });

  it('opens each tenant’s KV, streams and vectors once, scoped to that tenant', async () => {
    const opts = options();
    const engine = await createEngine(opts);
    const a = await engine.tenant('t1');
    expect(await engine.tenant('t1')).toBe(a);
    const b = await engine.tenant('t2');

    await a.kv.put('k', text('for t1'));
    expect(await b.kv.get('k')).toBeUndefined();
    expect(new TextDecoder().decode((await a.kv.get('k'))!.value)).toBe('for t1');

    await a.streams.createTopic('orders', { partitions: 1 });
    const { offsets } = await a.streams.produce('orders', [{ value: text('o1') }, { value: text('o2') }]);
    expect(offsets).toEqual([
      { partition: 0, offset: 0 },
      { partition: 0, offset: 1 },
    ]);
    expect(b.streams.listTopics()).toEqual([]);
    const consumed = await a.streams.consume('orders', 0, 0);
    expect(consumed.records.map((r) => new TextDecoder().decode(r.value!))).toEqual(['o1', 'o2']);

    await a.vectors.createCollection({ name: 'docs', dims: 3, metric: 'cosine' });
    await a.vectors.upsert('docs', [{ id: 'v1', values: [1, 0, 0] }]);
    expect((await a.vectors.get('docs', 'v1'))?.values).toEqual([1, 0, 0]);
    expect(await b.vectors.listCollections()).toEqual([]);

    expect(opts.usage.get('t1', 'bytes_stored')).toBeGreaterThan(0);
    expect(opts.usage.get('t2', 'bytes_stored')).toBe(0);
    expect(engine.context.clock).toBe(opts.clock);
    await engine.close();
  });

  it('meters into the tenant registry by default', async () => {
    const { usage: _, ...opts } = options();
    const engine = await createEngine(opts);
    const { tenant } = await engine.tenants.create({ email: 'ada@example.com' });
    const { kv } = await engine.tenant(tenant.id);
    await kv.put('k', new Uint8Array(100));
    expect((await engine.tenants.usage(tenant.id)).bytes_stored).toBeGreaterThanOrEqual(100);
    await engine.close();
  });

  it('rejects tenant ids that could escape their units', async () => {
    const engine = await createEngine(options());
    for (const bad of ['', 'a/b', '../x', 'x\u0000', 'x'.repeat(129), 42 as unknown as string]) {
      await expect(engine.tenant(bad), String(bad)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    }
    await engine.close();
  });

  it('records the data format version, and refuses data from a newer QuartzDB', async () => {
    const opts = options();
    const engine = await createEngine(opts);
    expect(engine.dataVersion).toMatchObject({ from: 0, to: DATA_VERSION });
    await engine.close();

    const newer = options();
    await (await newer.storage.unit(META_UNIT)).kv.put(text('data_version'), text(String(DATA_VERSION + 7)));
    await expect(createEngine({ ...newer, where: 'data directory /srv/q' })).rejects.toMatchObject({
      code: ErrorCode.DATA_VERSION_TOO_NEW,
      message: expect.stringContaining('data directory /srv/q'),
    });
  });

  it('a refused cache or collection budget leaves no timer behind (its own usage meter flushes on one)', async () => {
    const { usage: _, ...opts } = options();
    for (const refused of [{ vectors: { maxOpenBytes: -1 } }, { vectors: { idleCloseMs: Number.NaN } }, { streams: { segmentCacheBytes: -1 } }]) {
      await expect(createEngine({ ...opts, ...refused })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    }
    expect(opts.clock.pendingCount).toBe(0);
  });

  it('closes every service and the storage, after which it refuses work', async () => {
    const opts = options();
    const engine = await createEngine(opts);
    const { kv, streams } = await engine.tenant('t1');
    await streams.createTopic('ticks', { partitions: 2 });
    await engine.close();
    await engine.close();
    await expect(engine.tenant('t1')).rejects.toMatchObject({ code: ErrorCode.STORAGE_CLOSED });
    await expect(Promise.resolve().then(() => kv.get('k'))).rejects.toMatchObject({ code: ErrorCode.STORAGE_CLOSED });
    expect(opts.storage.closed).toBe(true);
    // Partition logs' roll timers are cancelled on close: nothing left to fire.
    expect(opts.clock.pendingCount).toBe(0);
  });

  it('closes and reopens one tenant', async () => {
    const engine = await createEngine(options());
    const first = await engine.tenant('t1');
    await first.kv.put('k', text('v'));
    await engine.closeTenant('t1');
    const second = await engine.tenant('t1');
    expect(second).not.toBe(first);
    expect((await second.kv.get('k'))?.size).toBe(1);
    await engine.close();
  });
});

describe('a tenant whose partitions are still opening', () => {
  /** Storage on which opening the tenant's partition units waits until `release()`. */
  function gatedPartitions(storage: MemoryStorage): { release: () => void; waiting: () => number } {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let waiting = 0;
    const unit = storage.unit.bind(storage);
    (storage as StorageProvider).unit = async (name: string) => {
      if (name.startsWith('log/t1/')) {
        waiting++;
        await gate;
      }
      return unit(name);
    };
    return { release: open, waiting: () => waiting };
  }

  it('serves KV and vectors before its partitions open; streams calls wait for them', async () => {
    const opts = options();
    const engine = await createEngine(opts);
    const first = await engine.tenant('t1');
    await first.kv.put('k', text('v'));
    await first.streams.createTopic('orders', { partitions: 4 });
    await first.streams.produce('orders', [{ value: text('o1'), partition: 3 }]);
    // as after a restart: the tenant opens again on its next request
    await engine.closeTenant('t1');
    const gate = gatedPartitions(opts.storage);
    let whole = false;
    void engine.tenant('t1').then(() => (whole = true));
    const early = await engine.services('t1');
    expect(new TextDecoder().decode((await early.kv.get('k'))!.value)).toBe('v');
    expect(await early.vectors.listCollections()).toEqual([]);
    expect(gate.waiting()).toBeGreaterThan(0);
    expect(whole).toBe(false);
    // the synchronous figures refuse rather than answer without the partitions
    expect(() => early.streams.describeTopic('orders')).toThrow(expect.objectContaining({ code: ErrorCode.UNAVAILABLE }));
    const consumed = early.streams.consume('orders', 3, 0);
    gate.release();
    expect((await consumed).records.map((r) => new TextDecoder().decode(r.value!))).toEqual(['o1']);
    expect(await engine.tenant('t1')).toBe(early);
    expect(early.streams.describeTopic('orders').partition_info[3]!.high_watermark).toBe(1);
    await engine.close();
    expect(opts.clock.pendingCount).toBe(0);
  });

  it('a damaged partition: KV through services() keeps answering, streams calls report the damage until the tenant closes', async () => {
    const opts = options();
    const engine = await createEngine(opts);
    const first = await engine.tenant('t1');
    await first.kv.put('k', text('v'));
    await first.streams.createTopic('orders', { partitions: 2 });
    await engine.closeTenant('t1');
    await (await opts.storage.unit('log/t1/orders/1')).kv.put(Uint8Array.of(0x6d), text('{not json'));
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { kv } = await engine.services('t1');
      const reads = await Promise.allSettled([kv.get('k'), kv.put(`w${i}`, text('x')), kv.get('k')]);
      for (const r of reads) answers.push(r.status === 'fulfilled' ? 'ok' : String((r.reason as { code?: string }).code));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(answers).toEqual(Array(18).fill('ok'));
    const held = await engine.services('t1');
    await engine.tenant('t1').catch(() => undefined);
    expect(await held.kv.get('k')).toMatchObject({ size: 1 });
    await expect(engine.tenant('t1')).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA });
    const { streams } = await engine.services('t1');
    await expect(streams.consume('orders', 0, 0)).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA });
    // Repaired, then closed: the next open reads it afresh.
    await (await opts.storage.unit('log/t1/orders/1')).kv.put(Uint8Array.of(0x6d), text('{"logStart":0}'));
    await engine.closeTenant('t1');
    expect((await engine.tenant('t1')).streams.describeTopic('orders').partitions).toBe(2);
    await engine.close();
    expect(opts.clock.pendingCount).toBe(0);
  });

  it('stats() answers at once while partitions open: the tenant is counted as opening, its figures once open', async () => {
    const opts = options();
    const engine = await createEngine(opts);
    const first = await engine.tenant('t1');
    await first.streams.createTopic('orders', { partitions: 4 });
    await first.vectors.createCollection({ name: 'docs', dims: 2, metric: 'cosine' });
    await (await engine.tenant('t2')).streams.createTopic('other', { partitions: 1 });
    await engine.closeTenant('t1');
    const gate = gatedPartitions(opts.storage);
    await engine.services('t1');
    expect(gate.waiting()).toBeGreaterThan(0);
    // The gate stays shut: a stats() that waits for the partitions never answers.
    const blocked = Symbol('blocked');
    const early = await Promise.race([engine.stats(), new Promise<typeof blocked>((resolve) => setTimeout(() => resolve(blocked), 500))]);
    expect(early).not.toBe(blocked);
    expect(early).toMatchObject({ open_tenants: 1, opening_tenants: 1, topics: 1, partitions: 1, collections: 0 });
    gate.release();
    await engine.tenant('t1');
    expect(await engine.stats()).toMatchObject({ open_tenants: 2, opening_tenants: 0, topics: 2, partitions: 5, collections: 1 });
    await engine.close();
  });

  it('stats() leaves out a tenant whose partition failed to open: neither open nor opening', async () => {
    const opts = options();
    const engine = await createEngine(opts);
    await (await engine.tenant('t1')).streams.createTopic('orders', { partitions: 2 });
    await engine.closeTenant('t1');
    await (await opts.storage.unit('log/t1/orders/1')).kv.put(Uint8Array.of(0x6d), text('{not json'));
    await expect(engine.tenant('t1')).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA });
    expect(await engine.stats()).toMatchObject({ open_tenants: 0, opening_tenants: 0, topics: 0 });
    await engine.close();
  });

  it('closes partitions that finish opening after the tenant closed: none keeps ticking', async () => {
    const opts = options();
    const engine = await createEngine(opts);
    await (await engine.tenant('t1')).streams.createTopic('orders', { partitions: 8 });
    await engine.closeTenant('t1');
    const timers = opts.clock.pendingCount;
    const gate = gatedPartitions(opts.storage);
    await engine.services('t1');
    const closing = engine.closeTenant('t1');
    gate.release();
    await closing;
    expect(opts.clock.pendingCount).toBe(timers);
    await engine.close();
    expect(opts.clock.pendingCount).toBe(0);
  });
});

describe('Engine.tenant with hostile ids', () => {
  it('refuses BigInt and lone-surrogate ids as tenant ids (UTF-8 unit names would merge two tenants)', async () => {
    const engine = await createEngine(options());
    await expect(engine.tenant(10n as never)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: /got 10n/ });
    await expect(engine.tenant('a\uD800')).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: /tenant id .*well-formed Unicode/ });
    await engine.close();
  });
});

describe('the segment cache', () => {
  it('is one budget for every tenant, not one per tenant (thousands of tenants reading streams)', async () => {
    const budget = 96 * 1024;
    const engine = await createEngine({ ...options(), streams: { segmentCacheBytes: budget } });
    const tenants = await Promise.all(['t1', 't2', 't3'].map((id) => engine.tenant(id)));
    const value = new Uint8Array(1000).fill(7);
    for (const { streams } of tenants) {
      await streams.createTopic('events');
      // Batches of 10 records: each is a tail batch the consumer decodes and caches.
      for (let i = 0; i < 6; i++) await streams.produce('events', Array.from({ length: 10 }, () => ({ value })));
      for (let offset = 0; offset < 60; offset += 10) await streams.consume('events', 0, offset, { max_records: 10 });
    }
    // Each tenant cached ~60 KB: three caches would hold ~180 KB between them.
    const seen = tenants.map(({ streams }) => streams.cacheStats());
    for (const stats of seen) expect(stats).toEqual(seen[0]);
    expect(seen[0]!.bytes).toBeGreaterThan(0);
    expect(seen[0]!.bytes).toBeLessThanOrEqual(budget);
    const stats = await engine.stats();
    expect(stats.cache_misses).toBe(seen[0]!.misses);
    expect(stats.cache_hits).toBe(seen[0]!.hits);
    await engine.close();
  });
});
