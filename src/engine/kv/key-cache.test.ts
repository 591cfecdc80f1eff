// The engine-wide bound on the KV key caches and their idle release (key-cache.ts), through the
// engine as a library user holds it: many tenants, a held scope, CAS after a key was forgotten,
// and, on the Node disk adapter (writes land a tick later), reads during trims.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { init } from '../../node/core.js';
import { openDiskStorage } from '../../node/storage/disk-storage.js';
import { ManualClock } from '../../ports/manual-clock.js';
import { createMemoryStorage } from '../../ports/memory-storage.js';
import type { StorageProvider } from '../../ports/storage.js';
import { createEngine, type Engine, type KvEngineOptions } from '../engine.js';
import { MemoryUsageRecorder, TEST_CAPABILITIES } from '../testing.js';
import { slotBytes } from './key-cache.js';
import type { KvStore } from './kv-store.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const dirs: string[] = [];

beforeAll(async () => {
  await init();
});

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Setup {
  engine: Engine;
  clock: ManualClock;
  usage: MemoryUsageRecorder;
}

async function engineWith(kv: KvEngineOptions, tenantIdleMs?: number, storage: StorageProvider = createMemoryStorage()): Promise<Setup> {
  const clock = new ManualClock();
  const usage = new MemoryUsageRecorder();
  const engine = await createEngine({ storage, capabilities: TEST_CAPABILITIES, clock, scheduler: clock, usage, kv, tenantIdleMs });
  return { engine, clock, usage };
}

async function diskStorage(): Promise<StorageProvider> {
  const dir = mkdtempSync(join(tmpdir(), 'quartz-keycache-'));
  dirs.push(dir);
  return openDiskStorage({ dir });
}

/** What the store holds in its key cache, as the budget counts it. */
const cachedBytes = (kv: KvStore): number => kv.cachedBytes;

const value = async (kv: KvStore, key: string): Promise<string | undefined> => {
  const e = await kv.get(key);
  return e === undefined ? undefined : dec.decode(e.value);
};

describe('the engine-wide KV key cache bound', () => {
  it('keeps many tenants writing past it under it, forgetting the least recently used tenants first', async () => {
    const max = 40 * slotBytes('key-000');
    const { engine } = await engineWith({ keyCacheMaxBytes: max });
    const stores: KvStore[] = [];
    for (let t = 0; t < 12; t++) {
      const { kv } = await engine.tenant(`t${t}`);
      stores.push(kv);
      for (let i = 0; i < 10; i++) {
        await kv.put(`key-${String(i).padStart(3, '0')}`, enc.encode(`t${t}-v${i}`));
        const st = await engine.stats();
        expect(st.kv_cached_key_bytes).toBeLessThanOrEqual(max);
        expect(st.kv_cached_key_bytes).toBe(stores.reduce((sum, s) => sum + cachedBytes(s), 0));
      }
    }
    const st = await engine.stats();
    expect(st.kv_cached_keys_evicted).toBeGreaterThanOrEqual(12 * 10 - 40);
    expect(st.kv_cached_keys).toBe(st.kv_cached_key_bytes / slotBytes('key-000'));
    // The first tenants went first; the last one written keeps its keys.
    expect(cachedBytes(stores[0]!)).toBe(0);
    expect(cachedBytes(stores[11]!)).toBe(10 * slotBytes('key-000'));
    // Forgetting is invisible: every value and version is right, and puts still meter the difference.
    for (let t = 0; t < 12; t++) {
      for (let i = 0; i < 10; i++) expect(await value(stores[t]!, `key-${String(i).padStart(3, '0')}`)).toBe(`t${t}-v${i}`);
    }
    await engine.close();
  });

  it('answers If-Match and If-None-Match right after the key was forgotten', async () => {
    const max = 8 * slotBytes('k0');
    const { engine, usage } = await engineWith({ keyCacheMaxBytes: max });
    const { kv: a } = await engine.tenant('a');
    const first = await a.put('k', enc.encode('one'));
    const { kv: b } = await engine.tenant('b');
    for (let i = 0; i < 20; i++) await b.put(`k${i}`, enc.encode('x'));
    expect(cachedBytes(a)).toBe(0);

    await expect(a.put('k', enc.encode('stale'), { ifMatch: first.version - 1 })).rejects.toMatchObject({ code: ErrorCode.PRECONDITION_FAILED });
    // The refused put read the key back into the cache; b's writes push it out again.
    expect(cachedBytes(a)).toBe(slotBytes('k'));
    for (let i = 0; i < 20; i++) await b.put(`k${i}`, enc.encode('y'));
    expect(cachedBytes(a)).toBe(0);
    await expect(a.put('k', enc.encode('new'), { ifNoneMatch: '*' })).rejects.toMatchObject({ code: ErrorCode.PRECONDITION_FAILED });
    for (let i = 0; i < 20; i++) await b.put(`k${i}`, enc.encode('z'));
    expect(cachedBytes(a)).toBe(0);
    const second = await a.put('k', enc.encode('three'), { ifMatch: first.version });
    expect(second.version).toBeGreaterThan(first.version);
    expect(await a.head('k')).toMatchObject({ version: second.version, size: 5 });
    // bytes_stored: the key once, with the newest value's size (the forgotten size was read back).
    expect(usage.get('a', 'bytes_stored')).toBe(1 + 5);
    await engine.close();
  });

  it('never drops a key whose write is in flight: reads during trims see the newest write (disk)', async () => {
    const max = 16 * slotBytes('key-00');
    const { engine } = await engineWith({ keyCacheMaxBytes: max }, undefined, await diskStorage());
    const tenants = await Promise.all(['a', 'b', 'c'].map(async (id) => (await engine.tenant(id)).kv));
    for (const kv of tenants) for (let i = 0; i < 30; i++) await kv.put(`key-${String(i).padStart(2, '0')}`, enc.encode('old'));
    // 90 writes issued at once, none awaited: every new slot pushes the budget, which may only
    // take settled keys. Reads issued after them all must see them.
    const writes: Promise<unknown>[] = [];
    const reads: Promise<string | undefined>[] = [];
    const key = (i: number) => `key-${String(i).padStart(2, '0')}`;
    for (let i = 0; i < 30; i++) for (const kv of tenants) writes.push(kv.put(key(i), enc.encode(`new-${kv.tenantId}`)));
    for (let i = 0; i < 30; i++) {
      for (const kv of tenants) reads.push(Promise.resolve(kv.get(key(i))).then((e) => (e === undefined ? undefined : dec.decode(e.value))));
    }
    const seen = await Promise.all(reads);
    await Promise.all(writes);
    expect(seen).toEqual(Array.from({ length: 30 }, () => tenants.map((kv) => `new-${kv.tenantId}`)).flat());
    expect((await engine.stats()).kv_cached_key_bytes).toBeLessThanOrEqual(max);
    for (const kv of tenants) expect(await value(kv, 'key-00')).toBe(`new-${kv.tenantId}`);
    await engine.close();
  });

  it('refuses a budget that is not a whole non-negative number', async () => {
    for (const bad of [-1, Number.NaN, 1.5, '1' as unknown as number]) {
      await expect(engineWith({ keyCacheMaxBytes: bad })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    }
    await expect(engineWith({}, -5)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
  });
});

describe('an idle tenant', () => {
  it('lets go of its key cache, and a scope held across that keeps working', async () => {
    const { engine, clock, usage } = await engineWith({}, 60_000);
    const { kv } = await engine.tenant('held');
    const v1 = await kv.put('a', enc.encode('one'));
    await kv.put('b', enc.encode('two'), { ttl: 3600 });
    const { kv: busy } = await engine.tenant('busy');
    await busy.put('x', enc.encode('x'));
    expect((await engine.stats()).kv_cached_keys).toBe(3);

    // 'busy' is used every 20 s; 'held' not at all for two minutes.
    for (let s = 0; s < 6; s++) {
      await clock.advance(20_000);
      await busy.get('x');
    }
    const st = await engine.stats();
    expect(st).toMatchObject({ kv_cached_keys: 1, kv_cached_keys_idle_released: 2, kv_cached_keys_evicted: 0 });
    expect(cachedBytes(kv)).toBe(0);
    expect(cachedBytes(busy)).toBe(slotBytes('x'));

    // The held scope answers as before: values, versions, TTLs, CAS and metering.
    expect(await kv.head('a')).toMatchObject({ version: v1.version, size: 3 });
    await expect(kv.put('a', enc.encode('no'), { ifMatch: v1.version + 1 })).rejects.toMatchObject({ code: ErrorCode.PRECONDITION_FAILED });
    const v2 = await kv.put('a', enc.encode('three'), { ifMatch: v1.version });
    expect(v2.version).toBeGreaterThan(v1.version);
    expect(await kv.put('b', enc.encode('2'))).toMatchObject({ expiresAt: null });
    expect(await value(kv, 'b')).toBe('2');
    expect(await kv.delete('a')).toBe(true);
    expect((await kv.list()).keys.map((k) => k.key)).toEqual(['b']);
    expect(usage.get('held', 'bytes_stored')).toBe(1 + 1);

    // Idle again, then back: still the same store, nothing reopened.
    await clock.advance(120_000);
    expect(cachedBytes(kv)).toBe(0);
    expect(await engine.tenant('held')).toMatchObject({ kv });
    expect(await value(kv, 'b')).toBe('2');
    await engine.close();
    expect(clock.pendingCount).toBe(0);
  });

  it('keeps its keys with tenantIdleMs 0, and runs no timer for an engine with no cached keys', async () => {
    const { engine, clock } = await engineWith({}, 0);
    const { kv } = await engine.tenant('t');
    await kv.put('a', enc.encode('1'));
    await clock.advance(3_600_000);
    expect((await engine.stats()).kv_cached_keys).toBe(1);
    await engine.close();

    const idle = await engineWith({}, 60_000);
    const { kv: store } = await idle.engine.tenant('t');
    const timers = idle.clock.pendingCount;
    await store.put('a', enc.encode('1'));
    expect(idle.clock.pendingCount).toBe(timers + 1);
    await idle.clock.advance(120_000);
    expect((await idle.engine.stats()).kv_cached_keys).toBe(0);
    expect(idle.clock.pendingCount).toBe(timers);
    await idle.engine.close();
  });
});

describe('Engine.closeTenant', () => {
  it('lets tenant(id) called during the close wait for it and reopen (disk)', async () => {
    const { engine } = await engineWith({}, undefined, await diskStorage());
    const first = await engine.tenant('t');
    await first.kv.put('k', enc.encode('v1'));
    const closing = engine.closeTenant('t');
    // A second close during the first waits for it.
    let closedTwice = false;
    const closingTwice = engine.closeTenant('t').then(() => (closedTwice = true));
    const second = await engine.tenant('t');
    expect(closedTwice).toBe(true);
    await closing;
    await closingTwice;
    expect(second).not.toBe(first);
    expect(await value(second.kv, 'k')).toBe('v1');
    await second.kv.put('k', enc.encode('v2'));
    expect(() => first.kv.get('k')).toThrow(expect.objectContaining({ code: ErrorCode.STORAGE_CLOSED }));
    await engine.close();
  });
});
