import { beforeAll, describe, expect, it, vi } from 'vitest';
import { init } from '../../node/core.js';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { ManualClock } from '../../ports/manual-clock.js';
import { createMemoryStorage } from '../../ports/memory-storage.js';
import { MAX_ENTRY_BYTES, type BatchOp, type BlobStore, type OrderedKV, type ScanOptions, type StorageProvider, type UnitStorage } from '../../ports/storage.js';
import { createTestContext, MemoryUsageRecorder, TEST_CAPABILITIES } from '../testing.js';
import type { EngineContext } from '../context.js';
import { KeyCache, slotBytes } from './key-cache.js';
import { KvStore } from './kv-store.js';

// Large values' blob pointers carry a CRC32C, which the WASM core computes.
beforeAll(() => init());

const TAG_META_BYTE = 0x6d; // 'm'

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (s: string) => enc.encode(s);
/** Byte equality without a deep-equal walk over millions of elements. */
function same(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (a === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function rejects(fn: () => unknown, code: string, message?: RegExp): Promise<QuartzError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(QuartzError);
    const qe = err as QuartzError;
    expect(qe.code).toBe(code);
    if (message) expect(qe.message).toMatch(message);
    return qe;
  }
  throw new Error('expected a QuartzError');
}

/** The unit's entries without its meta entries (tag 'm': the version mark, written from the first put on). */
async function rawEntries(ctx: EngineContext, unit: string) {
  const u = await ctx.storage.unit(unit);
  return (await u.kv.scan({})).filter((e) => e.key[0] !== TAG_META_BYTE);
}

/**
 * Storage that behaves like lmdb: writes are queued and land (in issue order) a tick later, so
 * reads made before then see the old state; optionally reads answer asynchronously too (like
 * Durable Objects or IndexedDB). `failBatchWhen` makes a chosen batch fail, like a crash mid-write.
 */
class SlowStorage implements StorageProvider {
  readonly inner = createMemoryStorage();
  failBatchWhen: ((ops: BatchOp[]) => boolean) | undefined;
  constructor(private readonly asyncGet: boolean) {}

  unit(name: string): UnitStorage {
    const u = this.inner.unit(name);
    const self = this;
    let tail: Promise<void> = Promise.resolve();
    const later = (apply: () => void): Promise<void> => {
      tail = tail.then(() => new Promise<void>((resolve, reject) => setTimeout(() => {
        try {
          apply();
          resolve();
        } catch (err) {
          reject(err);
        }
      }, 1)));
      return tail;
    };
    const kv: OrderedKV = {
      get: (key) => (this.asyncGet ? Promise.resolve().then(() => u.kv.get(key)) : u.kv.get(key)),
      put: (key, value) => {
        const copy = value.slice();
        return later(() => void u.kv.put(key, copy));
      },
      delete: (key) => later(() => void u.kv.delete(key)),
      scan: (o: ScanOptions) => u.kv.scan(o),
      batch: (ops) => {
        if (self.failBatchWhen?.(ops)) return Promise.reject(new Error('simulated crash during batch'));
        return later(() => void u.kv.batch(ops));
      },
    };
    const blobs: BlobStore = u.blobs;
    return { kv, blobs };
  }
  dropUnit(name: string) {
    return this.inner.dropUnit(name);
  }
  close() {
    return this.inner.close();
  }
}

function slowContext(asyncGet: boolean): EngineContext & { storage: SlowStorage; clock: ManualClock; usage: MemoryUsageRecorder } {
  const clock = new ManualClock();
  return {
    storage: new SlowStorage(asyncGet),
    clock,
    scheduler: clock,
    usage: new MemoryUsageRecorder(),
    capabilities: TEST_CAPABILITIES,
  };
}

describe('KvStore basics', () => {
  it('puts, gets, heads and deletes with content types and growing versions', async () => {
    const ctx = createTestContext();
    const kv = await KvStore.open(ctx, 't1');
    expect(await kv.get('a')).toBeUndefined();
    const first = await kv.put('a', bytes('hello'));
    const got = await kv.get('a');
    expect(got && dec.decode(got.value)).toBe('hello');
    expect(got).toMatchObject({ contentType: 'application/octet-stream', version: first.version, expiresAt: null, size: 5 });
    const second = await kv.put('a', bytes('{"x":1}'), { contentType: 'application/json' });
    expect(second.version).toBeGreaterThan(first.version);
    expect(await kv.head('a')).toEqual({ contentType: 'application/json', version: second.version, expiresAt: null, size: 7 });
    expect(await kv.delete('a')).toBe(true);
    expect(await kv.delete('a')).toBe(false);
    expect(await kv.get('a')).toBeUndefined();
    expect(await kv.head('a')).toBeUndefined();
    await kv.put('empty', new Uint8Array(0));
    expect((await kv.get('empty'))?.size).toBe(0);
    await kv.close();
  });

  it('accepts keys with slashes and non-ASCII characters up to 512 bytes', async () => {
    const kv = await KvStore.open(createTestContext(), 't1');
    const keys = ['user/42', 'ключ', '鍵/🔑', 'x'.repeat(512), 'é'.repeat(256)];
    for (const [i, key] of keys.entries()) await kv.put(key, Uint8Array.of(i));
    for (const [i, key] of keys.entries()) expect((await kv.get(key))?.value).toEqual(Uint8Array.of(i));
  });

  it('meters bytes stored as key + value bytes, with negative deltas on overwrite and delete', async () => {
    const ctx = createTestContext();
    const kv = await KvStore.open(ctx, 't1');
    await kv.put('abc', new Uint8Array(100));
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(103);
    await kv.put('abc', new Uint8Array(10));
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(13);
    await kv.put('é', new Uint8Array(1));
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(16);
    await kv.delete('abc');
    await kv.delete('é');
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(0);
  });

  it('rejects bad input with a QuartzError naming the problem', async () => {
    const kv = await KvStore.open(createTestContext(), 't1', { maxValueBytes: 1000 });
    await rejects(() => kv.put('', bytes('x')), ErrorCode.INVALID_ARGUMENT, /key must not be empty/);
    await rejects(() => kv.put('k'.repeat(600), bytes('x')), ErrorCode.INVALID_ARGUMENT, /^key is 600 bytes; the limit is 512$/);
    await rejects(() => kv.get('é'.repeat(300)), ErrorCode.INVALID_ARGUMENT, /key is 600 bytes; the limit is 512/);
    await rejects(() => kv.put('bad\uD800', bytes('x')), ErrorCode.INVALID_ARGUMENT, /lone surrogate/);
    for (const dots of ['.', '..']) await rejects(() => kv.put(dots, bytes('x')), ErrorCode.INVALID_ARGUMENT, /not allowed: URLs cannot carry/);
    expect(await kv.get('..')).toBeUndefined(); // reads and deletes take them, so keys stored before the rule stay reachable in process
    await kv.put('.../..x', bytes('x')); // only the whole key is refused
    await kv.delete('.../..x');
    await rejects(() => kv.get(42 as unknown as string), ErrorCode.INVALID_ARGUMENT, /key must be a string/);
    await rejects(() => kv.put('k', 'text' as unknown as Uint8Array), ErrorCode.INVALID_ARGUMENT, /value of key 'k' must be bytes/);
    const big = await rejects(() => kv.put('k', new Uint8Array(1001)), ErrorCode.TOO_LARGE, /value of key 'k' is 1001 bytes; the limit is 1000/);
    expect(big.status).toBe(413);
    await rejects(() => kv.put('k', bytes('x'), { contentType: 'text/plain\n' }), ErrorCode.INVALID_ARGUMENT, /content type/);
    await rejects(() => kv.put('k', bytes('x'), { contentType: 'x'.repeat(256) }), ErrorCode.INVALID_ARGUMENT, /content type is 256/);
    for (const ttl of [0, -1, 1.5, Number.NaN, 1e12]) await rejects(() => kv.put('k', bytes('x'), { ttl }), ErrorCode.INVALID_ARGUMENT, /ttl must be/);
    await rejects(() => kv.put('k', bytes('x'), { ifMatch: -1 }), ErrorCode.INVALID_ARGUMENT, /ifMatch/);
    await rejects(() => kv.put('k', bytes('x'), { ifNoneMatch: 'abc' as '*' }), ErrorCode.INVALID_ARGUMENT, /ifNoneMatch only takes/);
    await rejects(() => kv.put('k', bytes('x'), { ifNoneMatch: '*', ifMatch: 1 }), ErrorCode.INVALID_ARGUMENT, /cannot be combined/);
    for (const limit of [0, 1001, 2.5]) await rejects(() => kv.list({ limit }), ErrorCode.INVALID_ARGUMENT, /limit must be/);
    await rejects(() => kv.list({ cursor: '%%%' }), ErrorCode.INVALID_ARGUMENT, /cursor is not valid/);
    await rejects(() => KvStore.open(createTestContext(), ''), ErrorCode.INVALID_ARGUMENT, /tenant id/);
    await rejects(() => KvStore.open(createTestContext(), 'a/../b'), ErrorCode.INVALID_ARGUMENT, /tenant id "a\/..\/b" must be/);
    await rejects(() => KvStore.open(createTestContext(), 't', { maxValueBytes: -1 }), ErrorCode.INVALID_ARGUMENT, /maxValueBytes/);
    expect(await kv.list()).toEqual({ keys: [], cursor: null });
    await kv.close();
    await rejects(() => kv.get('k'), ErrorCode.STORAGE_CLOSED, /KV store of tenant 't1' is closed/);
  });

  it('reports a corrupt stored record as CORRUPT_DATA instead of crashing', async () => {
    const ctx = createTestContext();
    const kv = await KvStore.open(ctx, 't1');
    await kv.put('k', bytes('fine'));
    const unit = ctx.storage.unit('kv/t1');
    unit.kv.put(Uint8Array.of(0x64, 0x6b), Uint8Array.of(1, 0, 200, 0));
    await rejects(() => kv.get('k'), ErrorCode.CORRUPT_DATA, /key 'k'/);
    await rejects(() => kv.list(), ErrorCode.CORRUPT_DATA, /key 'k'/);
  });

  it('keeps tenants apart: the same key in two tenants holds two values', async () => {
    const ctx = createTestContext();
    const a = await KvStore.open(ctx, 'alpha');
    const b = await KvStore.open(ctx, 'beta');
    await a.put('shared', bytes('A'));
    await b.put('shared', bytes('B'));
    await a.put('only-a', bytes('A2'));
    expect(dec.decode((await a.get('shared'))!.value)).toBe('A');
    expect(dec.decode((await b.get('shared'))!.value)).toBe('B');
    expect(await b.get('only-a')).toBeUndefined();
    expect((await b.list()).keys.map((k) => k.key)).toEqual(['shared']);
    await b.delete('shared');
    expect(dec.decode((await a.get('shared'))!.value)).toBe('A');
    expect(ctx.usage.get('alpha', 'bytes_stored')).toBe(6 + 1 + 6 + 2);
    expect(ctx.usage.get('beta', 'bytes_stored')).toBe(0);
  });
});

describe('KvStore compare-and-set', () => {
  it('create-only, if-match on put and delete, with the current version in the error', async () => {
    const kv = await KvStore.open(createTestContext(), 't1');
    const { version: v1 } = await kv.put('k', bytes('1'), { ifNoneMatch: '*' });
    const conflict = await rejects(() => kv.put('k', bytes('2'), { ifNoneMatch: '*' }), ErrorCode.PRECONDITION_FAILED, /key 'k' already exists/);
    expect(conflict.status).toBe(412);
    expect(conflict.details).toEqual({ key: 'k', current_version: v1 });
    const { version: v2 } = await kv.put('k', bytes('2'), { ifMatch: v1 });
    await rejects(() => kv.put('k', bytes('3'), { ifMatch: v1 }), ErrorCode.PRECONDITION_FAILED, new RegExp(`is at version ${v2}, not ${v1}`));
    await rejects(() => kv.put('missing', bytes('3'), { ifMatch: v1 }), ErrorCode.PRECONDITION_FAILED, /does not exist/);
    await rejects(() => kv.delete('k', { ifMatch: v1 }), ErrorCode.PRECONDITION_FAILED);
    expect(dec.decode((await kv.get('k'))!.value)).toBe('2');
    expect(await kv.delete('k', { ifMatch: v2 })).toBe(true);
    await rejects(() => kv.delete('k', { ifMatch: v2 }), ErrorCode.PRECONDITION_FAILED, /does not exist/);
    // Re-created after a delete: a fresh version, so a stale ETag cannot match it.
    const { version: v3 } = await kv.put('k', bytes('again'), { ifNoneMatch: '*' });
    expect(v3).toBeGreaterThan(v2);
  });

  it("'*' and lists of versions, checked in the write's own step: a large put still meets `ifMatch: '*'` after writes came in during its upload", async () => {
    const kv = await KvStore.open(slowContext(false), 't1');
    await rejects(() => kv.put('k', bytes('x'), { ifMatch: '*' }), ErrorCode.PRECONDITION_FAILED, /key 'k' does not exist/);
    const { version: v1 } = await kv.put('k', bytes('1'), { ifNoneMatch: [7] });
    const { version: v2 } = await kv.put('k', bytes('2'), { ifMatch: [1, v1, 3] });
    const miss = await rejects(() => kv.put('k', bytes('3'), { ifMatch: [v1, 1, 2, 3, 4] }), ErrorCode.PRECONDITION_FAILED, new RegExp(`is at version ${v2}, not one of ${v1}, 1, 2, 3, …$`));
    expect(miss.details).toEqual({ key: 'k', current_version: v2 });
    await rejects(() => kv.put('k', bytes('3'), { ifNoneMatch: [v1, v2] }), ErrorCode.PRECONDITION_FAILED, new RegExp(`is at version ${v2}, one of ${v1}, ${v2} it must not be at`));
    await rejects(() => kv.put('k', bytes('3'), { ifMatch: [] }), ErrorCode.PRECONDITION_FAILED, new RegExp(`is at version ${v2}; the condition lists no version`));
    await kv.put('k', bytes('3'), { ifNoneMatch: [] }); // lists nothing: holds whatever the key is at
    // A large put holds its key from the call on, but its condition is checked once its blob is
    // written: the small puts called after it apply after it, so '*' meets a key that exists throughout.
    const large = kv.put('k', new Uint8Array(1_500_000).fill(5), { ifMatch: '*' });
    const after = [kv.put('k', bytes('4'), { ifMatch: '*' }), kv.delete('k', { ifMatch: '*' })];
    await expect(large).resolves.toMatchObject({ expiresAt: null });
    await expect(Promise.all(after)).resolves.toEqual([expect.objectContaining({ expiresAt: null }), true]);
    await rejects(() => kv.delete('k', { ifMatch: '*' }), ErrorCode.PRECONDITION_FAILED, /does not exist/);
    await rejects(() => kv.put('k', bytes('x'), { ifMatch: [1.5] }), ErrorCode.INVALID_ARGUMENT, /ifMatch must be/);
    await rejects(() => kv.put('k', bytes('x'), { ifNoneMatch: [-1] }), ErrorCode.INVALID_ARGUMENT, /ifNoneMatch only takes/);
    await kv.close();
  });

  it('checks a conditional write against the versions listed at the call, though the caller changes its list before the write is issued', async () => {
    const kv = await KvStore.open(slowContext(false), 't1');
    const { version } = await kv.put('k', bytes('1'));
    // A large put checks its condition once its blob is written, several awaits after the call.
    const listed = [version];
    const large = kv.put('k', new Uint8Array(1_500_000).fill(5), { ifMatch: listed });
    listed[0] = version + 1; // the caller reuses its array once put() returned
    const { version: v2 } = await large;
    const unlisted = [v2];
    const refused = kv.put('k', new Uint8Array(1_500_000).fill(6), { ifNoneMatch: unlisted });
    unlisted.length = 0;
    await rejects(() => refused, ErrorCode.PRECONDITION_FAILED, new RegExp(`is at version ${v2}, one of ${v2} it must not be at`));
    await kv.close();
    // A delete of a key not in the cache reads it first (asynchronously here) and checks after.
    const ctx = slowContext(true);
    const first = await KvStore.open(ctx, 't1');
    const { version: v3 } = await first.put('d', bytes('1'));
    await first.close();
    const reopened = await KvStore.open(ctx, 't1');
    const gone = [v3];
    const deleted = reopened.delete('d', { ifMatch: gone });
    gone[0] = v3 + 1;
    await expect(deleted).resolves.toBe(true);
    await reopened.close();
  });

  it('reports a metering failure of writes that settled later through the logger port, not the console', async () => {
    const ctx = slowContext(false);
    const logged: { message: string; details?: Record<string, unknown> }[] = [];
    ctx.logger = { error: (message, details) => logged.push({ message, details }), info: () => undefined };
    const broken = new Error('meter down');
    ctx.usage.add = () => {
      throw broken;
    };
    const consoleError = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const kv = await KvStore.open(ctx, 't1');
      await kv.put('k', bytes('v')); // its write settles later: metered in the group's handler
      await new Promise((resolve) => setTimeout(resolve, 0));
      expect(logged).toEqual([{ message: "metering KV writes of tenant 't1' failed", details: { tenant: 't1', err: broken } }]);
      expect(consoleError).not.toHaveBeenCalled();
      await kv.close();
    } finally {
      consoleError.mockRestore();
    }
  });

  it('never reissues a version after a crash, even when writes ran ahead of the clock', async () => {
    const ctx = slowContext(false);
    const kv = await KvStore.open(ctx, 't1');
    // The clock stands still, so every put runs the versions one further ahead of it.
    const before: number[] = [];
    for (let i = 0; i < 50; i++) before.push((await kv.put('k', bytes(String(i)))).version);
    await kv.delete('k');
    // A crash: no close (so no mark from it), then a fresh store on the same storage.
    const next = await KvStore.open(ctx, 't1');
    const { version } = await next.put('k', bytes('again'));
    expect(version).toBeGreaterThan(Math.max(...before));
  });

  it('versions never repeat across a reopen, even when the clock has not moved', async () => {
    const ctx = createTestContext();
    let kv = await KvStore.open(ctx, 't1');
    const versions: number[] = [];
    for (let i = 0; i < 3; i++) versions.push((await kv.put('k', bytes(String(i)))).version);
    await kv.delete('k');
    await kv.close();
    kv = await KvStore.open(ctx, 't1');
    versions.push((await kv.put('k', bytes('x'))).version);
    expect(new Set(versions).size).toBe(4);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
  });

  for (const asyncGet of [false, true]) {
    it(`lets exactly one of many racing conditional writers win (${asyncGet ? 'async' : 'sync'} reads, lagging writes)`, async () => {
      const ctx = slowContext(asyncGet);
      const kv = await KvStore.open(ctx, 't1');
      const { version } = await kv.put('counter', bytes('0'));
      const attempts = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => kv.put('counter', bytes(String(i + 1)), { ifMatch: version })));
      const won = attempts.filter((a) => a.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const a of attempts) if (a.status === 'rejected') expect((a.reason as QuartzError).code).toBe(ErrorCode.PRECONDITION_FAILED);
      const creators = await Promise.allSettled(Array.from({ length: 5 }, () => kv.put('fresh', bytes('x'), { ifNoneMatch: '*' })));
      expect(creators.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
      expect(ctx.usage.get('t1', 'bytes_stored')).toBe('counter'.length + 1 + 'fresh'.length + 1);
      await kv.close();
    });

    it(`reads its own writes before storage has made them durable (${asyncGet ? 'async' : 'sync'} reads)`, async () => {
      const ctx = slowContext(asyncGet);
      const kv = await KvStore.open(ctx, 't1');
      const p1 = kv.put('k', bytes('one'));
      expect(dec.decode((await kv.get('k'))!.value)).toBe('one');
      const p2 = kv.delete('k');
      expect(await kv.get('k')).toBeUndefined();
      const p3 = kv.put('k', bytes('three'));
      expect(dec.decode((await kv.get('k'))!.value)).toBe('three');
      await Promise.all([p1, p2, p3]);
      expect(dec.decode((await kv.get('k'))!.value)).toBe('three');
      expect(ctx.usage.get('t1', 'bytes_stored')).toBe(6);
      await kv.close();
    });
  }
});

describe('KvStore TTL', () => {
  it('hides expired keys at once and purges them in a sweep', async () => {
    // A clock that moves without running the scheduler, so "invisible before the purge" is observable.
    const ctx = createTestContext();
    const idle = new ManualClock();
    const kv = await KvStore.open({ ...ctx, scheduler: idle }, 't1');
    const { expiresAt } = await kv.put('session', bytes('s'), { ttl: 60 });
    expect(expiresAt).toBe(ctx.clock.now() + 60_000);
    await kv.put('forever', bytes('f'));
    expect((await kv.list()).keys).toEqual([
      { key: 'forever', size: 1, content_type: 'application/octet-stream', expires_at: null },
      { key: 'session', size: 1, content_type: 'application/octet-stream', expires_at: expiresAt },
    ]);
    await ctx.clock.advance(59_999);
    expect(await kv.get('session')).toBeDefined();
    await ctx.clock.advance(1);
    expect(await kv.get('session')).toBeUndefined();
    expect(await kv.head('session')).toBeUndefined();
    expect((await kv.list()).keys.map((k) => k.key)).toEqual(['forever']);
    expect(await rawEntries(ctx, 'kv/t1')).toHaveLength(3); // record + TTL index entry + 'forever'
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(8 + 8);
    expect(await kv.sweep()).toBe(1);
    expect(await rawEntries(ctx, 'kv/t1')).toHaveLength(1);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(8);
  });

  it('schedules the sweep itself, also after a reopen', async () => {
    const ctx = createTestContext();
    let kv = await KvStore.open(ctx, 't1');
    await kv.put('a', bytes('1'), { ttl: 10 });
    await kv.put('b', bytes('2'), { ttl: 20 });
    await ctx.clock.advance(10_000);
    expect((await rawEntries(ctx, 'kv/t1')).map((e) => e.key[0])).toEqual([0x64, 0x78]); // only b and its index entry
    await kv.close();
    expect(ctx.clock.pendingCount).toBe(0);
    kv = await KvStore.open(ctx, 't1');
    await ctx.clock.advance(10_000);
    expect(await rawEntries(ctx, 'kv/t1')).toEqual([]);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(0);
    await kv.close();
  });

  it('overwriting changes or clears the expiry; an expired key can be created again', async () => {
    const ctx = createTestContext();
    const kv = await KvStore.open(ctx, 't1');
    await kv.put('k', bytes('1'), { ttl: 10 });
    await kv.put('k', bytes('2')); // no TTL now
    await ctx.clock.advance(20_000);
    expect(dec.decode((await kv.get('k'))!.value)).toBe('2');
    await kv.put('k', bytes('3'), { ttl: 5 });
    await kv.put('k', bytes('4'), { ttl: 100 });
    await ctx.clock.advance(5_000);
    expect(dec.decode((await kv.get('k'))!.value)).toBe('4');
    const idle = await KvStore.open({ ...ctx, scheduler: new ManualClock() }, 't2');
    await idle.put('k', bytes('old'), { ttl: 1 });
    await ctx.clock.advance(1_000);
    await idle.put('k', bytes('new'), { ifNoneMatch: '*' }); // the expired key does not count as existing
    await rejects(() => idle.delete('gone', { ifMatch: 1 }), ErrorCode.PRECONDITION_FAILED);
    expect(dec.decode((await idle.get('k'))!.value)).toBe('new');
    expect(ctx.usage.get('t2', 'bytes_stored')).toBe(4);
    expect(await idle.sweep()).toBe(0); // nothing left to purge: the overwrite removed the old index entry
    expect((await rawEntries(ctx, 'kv/t2')).length).toBe(1);
  });
});

describe('KvStore list', () => {
  it('pages through many keys with an opaque cursor while keys are inserted concurrently', async () => {
    const kv = await KvStore.open(createTestContext(), 't1');
    const original: string[] = [];
    for (let i = 0; i < 2500; i++) original.push(`item/${String(i).padStart(5, '0')}`);
    for (const key of original) await kv.put(key, bytes(key));
    await kv.put('other/1', bytes('x'));
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    let inserted = 0;
    do {
      const page: Awaited<ReturnType<KvStore['list']>> = await kv.list({ prefix: 'item/', cursor, limit: 97 });
      pages++;
      seen.push(...page.keys.map((k) => k.key));
      cursor = page.cursor;
      // Between pages: one key before everything seen so far, one just after the cursor position.
      await kv.put(`item/${String(inserted).padStart(5, '0')}-early`, bytes('e'));
      if (cursor !== null) await kv.put(`${seen[seen.length - 1]}-late`, bytes('l'));
      inserted++;
    } while (cursor !== null);
    expect(new Set(seen).size).toBe(seen.length); // no duplicates
    expect([...seen].sort()).toEqual(seen); // in order
    for (const key of original) expect(seen).toContain(key);
    expect(seen.filter((k) => k.endsWith('-late'))).toHaveLength(pages - 1); // inserted after the cursor: seen
    expect(seen).not.toContain('other/1');
    expect(pages).toBe(Math.ceil((2500 + pages - 1) / 97));
  });

  it('sorts keys by their UTF-8 bytes and ends with a null cursor exactly on the last page', async () => {
    const kv = await KvStore.open(createTestContext(), 't1');
    for (const key of ['b', 'a', 'é', 'z', '\u{1F600}', '\uFFFD']) await kv.put(key, bytes(key));
    const page1 = await kv.list({ limit: 3 });
    expect(page1.keys.map((k) => k.key)).toEqual(['a', 'b', 'z']);
    expect(page1.cursor).not.toBeNull();
    const page2 = await kv.list({ limit: 3, cursor: page1.cursor });
    expect(page2.keys.map((k) => k.key)).toEqual(['é', '\uFFFD', '\u{1F600}']);
    expect(page2.cursor).toBeNull();
    await rejects(() => kv.list({ prefix: 'q', cursor: page1.cursor }), ErrorCode.INVALID_ARGUMENT, /does not belong to a listing of prefix 'q'/);
  });

  it('lists and sweeps a key that starts with a byte-order mark as that key (found by the model check)', async () => {
    // U+FEFF is an ordinary character of a key; a decoder that drops a leading BOM renamed it.
    const ctx = createTestContext();
    const kv = await KvStore.open(ctx, 't1');
    await kv.put('\uFEFFbom', bytes('v'), { ttl: 1 });
    expect((await kv.list()).keys.map((k) => k.key)).toEqual(['\uFEFFbom']);
    expect((await kv.list({ prefix: '\uFEFF' })).keys.map((k) => k.key)).toEqual(['\uFEFFbom']);
    await ctx.clock.advance(1000); // runs the scheduled sweep
    await kv.sweep();
    expect(await rawEntries(ctx, 'kv/t1')).toHaveLength(0);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(0);
  });
});

describe('KvStore large values', () => {
  const big = (n: number, seed: number) => {
    const v = new Uint8Array(n);
    for (let i = 0; i < n; i++) v[i] = (i * 31 + seed) & 0xff;
    return v;
  };

  it('keeps values above 1 MiB in the blob store, invisibly, and cleans replaced blobs up', async () => {
    const ctx = createTestContext();
    const kv = await KvStore.open(ctx, 't1');
    const unit = ctx.storage.unit('kv/t1');
    const value = big(3 * 1024 * 1024 + 7, 1);
    const { version } = await kv.put('big', value, { contentType: 'video/mp4' });
    expect(await unit.blobs.list('')).toHaveLength(1);
    const got = await kv.get('big');
    expect(got?.contentType).toBe('video/mp4');
    expect(got?.version).toBe(version);
    expect(got?.size).toBe(value.length);
    expect(same(got!.value, value)).toBe(true);
    expect((await kv.head('big'))?.size).toBe(value.length);
    expect((await kv.list()).keys).toEqual([{ key: 'big', size: value.length, content_type: 'video/mp4', expires_at: null }]);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(3 + value.length);

    const value2 = big(2 * 1024 * 1024, 2);
    await kv.put('big', value2);
    await kv.close(); // waits for the background clean-up
    const reopened = await KvStore.open(ctx, 't1');
    expect(await unit.blobs.list('')).toHaveLength(1);
    expect(same((await reopened.get('big'))?.value, value2)).toBe(true);
    await reopened.put('big', bytes('small now'));
    await reopened.put('big2', value, { ttl: 1 });
    await ctx.clock.advance(1_000);
    await reopened.close();
    expect(await unit.blobs.list('')).toEqual([]);
    expect((await rawEntries(ctx, 'kv/t1')).filter((e) => e.key[0] !== 0x64 && e.key[0] !== 0x6d)).toEqual([]);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(3 + 9);
  });

  it('stores a value inline up to the 1 MiB entry limit and in a blob one byte beyond it', async () => {
    const ctx = createTestContext();
    const kv = await KvStore.open(ctx, 't1');
    const unit = ctx.storage.unit('kv/t1');
    const inline = MAX_ENTRY_BYTES - 23 - 'text/plain'.length; // header + content type + value = one entry
    await kv.put('edge', big(inline, 7), { contentType: 'text/plain' });
    expect(await unit.blobs.list('')).toEqual([]);
    await kv.put('edge', big(inline + 1, 8), { contentType: 'text/plain' });
    expect(await unit.blobs.list('')).toHaveLength(1);
    expect(same((await kv.get('edge'))?.value, big(inline + 1, 8))).toBe(true);
  });

  it('applies a large put and the calls on its key made after it in call order, though its blob takes longer to write', async () => {
    const ctx = createTestContext();
    const kv = await KvStore.open(ctx, 't1');
    const unit = ctx.storage.unit('kv/t1');
    // Issued together, as a program that does not await each write does: each must end as the last call left it.
    const put = kv.put('k', big(2_000_000, 5));
    const read = kv.get('k');
    expect(await kv.delete('k')).toBe(true);
    await put;
    expect((await read)?.size).toBe(2_000_000);
    expect(await kv.get('k')).toBeUndefined();

    void kv.put('k', big(2_000_000, 6));
    await kv.put('k', bytes('small, called last'));
    expect(dec.decode((await kv.get('k'))!.value)).toBe('small, called last');

    const first = kv.put('k', big(1_500_000, 7));
    const second = kv.put('k', big(1_200_000, 8), { ifMatch: 1 });
    const third = kv.put('k', big(1_100_000, 9));
    await first;
    await rejects(() => second, ErrorCode.PRECONDITION_FAILED);
    await third;
    expect((await kv.get('k'))!.size).toBe(1_100_000);
    await kv.close();
    expect(await unit.blobs.list('')).toHaveLength(1);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(1 + 1_100_000);
  });

  it('discards the uploaded blob when a conditional big put loses', async () => {
    const ctx = createTestContext();
    const kv = await KvStore.open(ctx, 't1');
    await kv.put('k', bytes('small'));
    await rejects(() => kv.put('k', big(2_000_000, 3), { ifNoneMatch: '*' }), ErrorCode.PRECONDITION_FAILED);
    await kv.close();
    expect(await ctx.storage.unit('kv/t1').blobs.list('')).toEqual([]);
    expect(await rawEntries(ctx, 'kv/t1')).toHaveLength(1); // the record
  });

  it('removes a blob orphaned by a crash between upload and record write on the next open', async () => {
    const ctx = slowContext(false);
    ctx.storage.failBatchWhen = (ops) => ops.some((op) => op.type === 'put' && op.key[0] === 0x64);
    const kv = await KvStore.open(ctx, 't1');
    await expect(Promise.resolve().then(() => kv.put('k', big(1_500_000, 4)))).rejects.toThrow('simulated crash');
    const raw = ctx.storage.inner.unit('kv/t1');
    expect(await raw.blobs.list('')).toHaveLength(1); // the "crash" left the blob behind, under its marker
    ctx.storage.failBatchWhen = undefined;
    // A fresh process: nothing in memory remembers the upload, only the marker in storage.
    const next = await KvStore.open(ctx, 't1');
    expect(await raw.blobs.list('')).toEqual([]);
    expect((await raw.kv.scan({})).filter((e) => e.key[0] !== TAG_META_BYTE)).toEqual([]);
    expect(await next.get('k')).toBeUndefined();
  });

  it('serves big values through lagging storage and async reads', async () => {
    const ctx = slowContext(true);
    const kv = await KvStore.open(ctx, 't1');
    const value = big(1_200_000, 5);
    await Promise.all([kv.put('k', value), kv.put('k', big(1_100_000, 6))]);
    expect(same((await kv.get('k'))?.value, big(1_100_000, 6))).toBe(true);
    await kv.delete('k');
    await kv.close();
    expect(await ctx.storage.inner.unit('kv/t1').blobs.list('')).toEqual([]);
  });
});


describe('KvStore key cache', () => {
  it('a store that remembers no settled key still answers reads from the write in flight', async () => {
    for (const asyncGet of [false, true]) {
      const kv = await KvStore.open(slowContext(asyncGet), 't1', { cachedKeys: 0 });
      await kv.put('a', bytes('old'));
      const put = kv.put('a', bytes('new'));
      const during = await kv.get('a');
      expect(during && dec.decode(during.value)).toBe('new');
      await put;
      expect(dec.decode((await kv.get('a'))!.value)).toBe('new');
    }
  });

  it('gives the same answers, versions and metering whatever it remembers, on sync and async storage', async () => {
    // One random workload against stores that remember no settled key, 3 keys, and all of them;
    // a store that forgets reads storage instead, so every answer must be the same.
    for (const asyncGet of [false, true]) {
      const ctx = slowContext(asyncGet);
      const stores = await Promise.all([0, 3, 1000].map((cachedKeys, i) => KvStore.open(ctx, `t${i}`, { cachedKeys })));
      const model = new Map<string, { value: string; expiresAt: number | null }>();
      let seed = asyncGet ? 7 : 11;
      const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
      for (let step = 0; step < 400; step++) {
        const key = `k${rand(12)}`;
        const op = rand(10);
        const ttl = rand(3) === 0 ? 1 + rand(3) : undefined;
        const matchCurrent = rand(2) === 0;
        const answers = await Promise.all(
          stores.map(async (kv) => {
            try {
              if (op < 4) return await kv.put(key, bytes(`v${step}`), ttl === undefined ? {} : { ttl });
              if (op < 6) {
                const meta = await kv.head(key);
                return await kv.put(key, bytes(`w${step}`), matchCurrent && meta ? { ifMatch: meta.version } : { ifMatch: 1, contentType: 'text/plain' });
              }
              if (op < 7) return await kv.put(key, bytes(`c${step}`), { ifNoneMatch: '*' });
              if (op < 9) return await kv.delete(key, matchCurrent ? {} : { ifMatch: (await kv.head(key))?.version ?? 5 });
              return 'sweep';
            } catch (err) {
              return (err as QuartzError).code;
            }
          }),
        );
        if (op === 9) await ctx.clock.advance(700);
        expect(answers[1]).toEqual(answers[0]);
        expect(answers[2]).toEqual(answers[0]);
        const a = answers[0];
        if (typeof a === 'object' && a !== null) model.set(key, { value: dec.decode(bytes(op < 4 ? `v${step}` : op < 6 ? `w${step}` : `c${step}`)), expiresAt: a.expiresAt });
        if (a === true || a === false) model.delete(key);
        for (const kv of stores) {
          for (const [k, want] of model) {
            const entry = await kv.get(k);
            const live = want.expiresAt === null || want.expiresAt > ctx.clock.now();
            expect(entry === undefined ? undefined : dec.decode(entry.value)).toBe(live ? want.value : undefined);
            // A shared entry, kept from an earlier read, must have been forgotten by every write since.
            expect(await kv.getShared(k)).toEqual(entry);
          }
        }
      }
      await Promise.all(stores.map((kv) => kv.sweep()));
      const stored = [0, 1, 2].map((i) => ctx.usage.get(`t${i}`, 'bytes_stored'));
      let live = 0;
      for (const [k, want] of model) if (want.expiresAt === null || want.expiresAt > ctx.clock.now()) live += k.length + want.value.length;
      expect(stored).toEqual([live, live, live]);
      await Promise.all(stores.map((kv) => kv.close()));
    }
  });

  for (const asyncGet of [false, true]) {
    it(`shares a hot key's entry until the key is written, deleted or expires (${asyncGet ? 'async' : 'sync'} reads, lagging writes)`, async () => {
      const ctx = slowContext(asyncGet);
      const kv = await KvStore.open(ctx, 't1');
      const value = async (key: string) => {
        const entry = await kv.getShared(key);
        return entry === undefined ? undefined : dec.decode(entry.value);
      };
      await kv.put('k', bytes('one'));
      const first = await kv.getShared('k');
      // Kept only from a synchronous read: an asynchronous one could race a write.
      if (asyncGet) expect(await kv.getShared('k')).not.toBe(first);
      else expect(await kv.getShared('k')).toBe(first);
      const put = kv.put('k', bytes('two'), { contentType: 'text/plain' });
      expect(await value('k')).toBe('two'); // the write in flight, never kept
      const { version } = await put;
      expect(await kv.getShared('k')).toMatchObject({ contentType: 'text/plain', version, size: 3 });
      expect(await value('k')).toBe('two');
      // A write that fails after it was read in flight leaves what storage kept.
      ctx.storage.failBatchWhen = (ops) => ops.some((op) => op.type === 'put' && op.key[0] === 0x64);
      const failing = kv.put('k', bytes('lost'), { ttl: 60 });
      expect(await value('k')).toBe('lost');
      await expect(failing).rejects.toThrow(/simulated crash/);
      ctx.storage.failBatchWhen = undefined;
      expect(await value('k')).toBe('two');
      const deleted = kv.delete('k');
      expect(await value('k')).toBeUndefined();
      await deleted;
      expect(await value('k')).toBeUndefined();
      await kv.put('t', bytes('ttl'), { ttl: 1 });
      expect(await value('t')).toBe('ttl');
      expect(await value('t')).toBe('ttl');
      await ctx.clock.advance(1000);
      expect(await value('t')).toBeUndefined();
      expect(await kv.get('t')).toBeUndefined();
      await kv.close();
    });
  }

  it('forgets what a failed write claimed and meters the next write against what storage kept', async () => {
    const ctx = slowContext(false);
    const kv = await KvStore.open(ctx, 't1');
    const first = await kv.put('k', bytes('12345'));
    ctx.storage.failBatchWhen = (ops) => ops.some((op) => op.type === 'put' && op.key[0] === 0x64);
    await expect(kv.put('k', bytes('1234567890'), { ttl: 60 })).rejects.toThrow(/simulated crash/);
    ctx.storage.failBatchWhen = undefined;
    expect(await kv.head('k')).toMatchObject({ version: first.version, size: 5, expiresAt: null });
    await kv.put('k', bytes('1'), { ifMatch: first.version });
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(2);
  });

  it('stays within its bound however many distinct keys are written and read', async () => {
    // The cache is private; its size is the one figure this test is about.
    const cached = (kv: KvStore) => (kv as unknown as { slots: Map<string, unknown> }).slots.size;
    for (const asyncGet of [false, true]) {
      const kv = await KvStore.open(slowContext(asyncGet), 't1', { cachedKeys: 20 });
      for (let round = 0; round < 8; round++) {
        // 40 new keys per round with their writes in flight together, then rewrites of older ones (read from storage first).
        await Promise.all(Array.from({ length: 40 }, (_, i) => kv.put(`k${round * 40 + i}`, bytes('v'), { contentType: `text/x-${round}` })));
        await Promise.all(Array.from({ length: 10 }, (_, i) => kv.put(`k${(round * 37 + i * 13) % (round * 40 + 40)}`, bytes('w'))));
        expect(cached(kv)).toBeLessThanOrEqual(20);
      }
      expect(dec.decode((await kv.get('k0'))!.value)).toMatch(/^[vw]$/);
      await kv.close();
    }
  });

  it('refuses a cache size that is not a non-negative integer', async () => {
    await rejects(() => KvStore.open(createTestContext(), 't1', { cachedKeys: -1 }), ErrorCode.INVALID_ARGUMENT, /cachedKeys/);
    await rejects(() => KvStore.open(createTestContext(), 't1', { cachedKeys: 1.5 }), ErrorCode.INVALID_ARGUMENT, /cachedKeys/);
  });
});

describe('KvStore ownership', () => {
  it('refuses a second open store on the same tenant until the first is closed', async () => {
    const ctx = createTestContext();
    const kv = await KvStore.open(ctx, 't1');
    await kv.put('k', bytes('1'));
    await rejects(() => KvStore.open(ctx, 't1'), ErrorCode.PRECONDITION_FAILED, /already open/);
    await kv.close();
    const again = await KvStore.open(ctx, 't1');
    expect(dec.decode((await again.get('k'))!.value)).toBe('1');
    await again.close();
  });
});

describe('KvStore with hostile arguments', () => {
  it('takes null options as none, and names a BigInt or Symbol argument instead of throwing a TypeError', async () => {
    const kv = await KvStore.open(createTestContext(), 't1');
    const nul = null as never;
    await kv.put('k', new Uint8Array([1]), nul);
    expect((await kv.list(nul)).keys.map((k) => k.key)).toEqual(['k']);
    expect(await kv.delete('k', nul)).toBe(true);
    await rejects(() => kv.put('k', new Uint8Array(1), { ifNoneMatch: 10n as never }), ErrorCode.INVALID_ARGUMENT, /got 10n/);
    await rejects(() => kv.put('k', new Uint8Array(1), { ifNoneMatch: Symbol('s') as never }), ErrorCode.INVALID_ARGUMENT, /got Symbol\(s\)/);
  });

  it('stores a large value as it was when put() returned, though the caller reuses its buffer at once', async () => {
    const kv = await KvStore.open(createTestContext(), 't1');
    // A blob, written after an await; a Buffer too, whose slice() is a view and no copy.
    for (const value of [new Uint8Array(MAX_ENTRY_BYTES + 1), Buffer.alloc(MAX_ENTRY_BYTES + 1)]) {
      value.fill(7);
      const pending = kv.put('big', value);
      value.fill(0);
      await pending;
      const stored = (await kv.get('big'))!.value;
      expect(stored.length).toBe(MAX_ENTRY_BYTES + 1);
      expect(stored.every((b) => b === 7)).toBe(true);
    }
  });

  it('refuses a list prefix with a lone surrogate (UTF-8 would list keys holding U+FFFD)', async () => {
    const kv = await KvStore.open(createTestContext(), 't1');
    await kv.put('a\uFFFD', new Uint8Array([1]));
    await rejects(() => kv.list({ prefix: 'a\uD800' }), ErrorCode.INVALID_ARGUMENT, /lone surrogate/);
  });
});

describe('storedBytes (the crash recount of bytes_stored)', () => {
  it('equals what the writes metered, and never reads more than 64 MiB of rows in one scan', async () => {
    const ctx = createTestContext();
    let largestScan = 0;
    const inner = ctx.storage;
    const storage: StorageProvider = {
      unit(name) {
        const unit = inner.unit(name);
        const kv: OrderedKV = {
          get: (k) => unit.kv.get(k),
          put: (k, v) => unit.kv.put(k, v),
          delete: (k) => unit.kv.delete(k),
          batch: (ops: BatchOp[]) => unit.kv.batch(ops),
          scan: async (options: ScanOptions) => {
            const rows = await unit.kv.scan(options);
            largestScan = Math.max(largestScan, rows.reduce((sum, row) => sum + row.key.length + row.value.length, 0));
            return rows;
          },
        };
        return { kv, blobs: unit.blobs };
      },
      listUnits: (prefix) => inner.listUnits(prefix),
      dropUnit: (name) => inner.dropUnit(name),
      close: () => inner.close(),
    };
    const kv = await KvStore.open({ ...ctx, storage }, 't1');
    // Values just under the storage entry limit are stored in their records, read whole by a scan.
    const nearLimit = new Uint8Array(MAX_ENTRY_BYTES - 1024);
    for (let i = 0; i < 100; i++) await kv.put(`big/${i}`, nearLimit);
    await kv.put('blob', new Uint8Array(MAX_ENTRY_BYTES * 2)); // in the blob store
    for (let i = 0; i < 50; i++) await kv.put(`small/${i}`, new Uint8Array(i), { ttl: i + 1 });
    await kv.delete('big/7');
    await kv.put('big/8', Uint8Array.of(1));
    largestScan = 0;
    expect(await kv.storedBytes()).toBe(ctx.usage.get('t1', 'bytes_stored'));
    expect(largestScan).toBeGreaterThan(0);
    expect(largestScan).toBeLessThanOrEqual(64 * MAX_ENTRY_BYTES);
    await kv.close();
  });
});

describe('KvStore under the engine-wide key cache budget', () => {
  // Writes land a tick later (and, with asyncGet, reads of unknown keys answer a tick later too):
  // the budget's passes run while writes are in flight and while keys are being read for a write.
  for (const asyncGet of [false, true]) {
    it(`keeps keys in flight or being read for a write, so reads and versions stay right (asyncGet ${asyncGet})`, async () => {
      const ctx = slowContext(asyncGet);
      const max = 6 * slotBytes('k00');
      ctx.keyCache = new KeyCache(ctx.scheduler, { maxBytes: max });
      const stores = await Promise.all(['a', 'b', 'c'].map((t) => KvStore.open(ctx, t)));
      const keys = Array.from({ length: 20 }, (_, i) => `k${String(i).padStart(2, '0')}`);
      const first = new Map<string, number>();
      for (const kv of stores) for (const k of keys) first.set(`${kv.tenantId}/${k}`, (await kv.put(k, bytes('old'))).version);

      // Every put issued before any lands, the budget passing as they go; then reads, which must see them all.
      const puts: Promise<{ version: number }>[] = [];
      for (const k of keys) {
        for (const kv of stores) puts.push(kv.put(k, bytes(`new-${kv.tenantId}`), { ifMatch: first.get(`${kv.tenantId}/${k}`) }));
      }
      const reads: Promise<string | undefined>[] = [];
      for (const k of keys) {
        for (const kv of stores) reads.push(Promise.resolve(kv.get(k)).then((e) => (e === undefined ? undefined : dec.decode(e.value))));
      }
      expect(await Promise.all(reads)).toEqual(keys.flatMap(() => stores.map((kv) => `new-${kv.tenantId}`)));
      const versions = (await Promise.all(puts)).map((r) => r.version);
      expect(ctx.keyCache.stats().kv_cached_key_bytes).toBeLessThanOrEqual(max);
      expect(ctx.keyCache.stats().kv_cached_keys_evicted).toBeGreaterThan(0);
      // Each key is at the version its put returned: a put on it with that version goes through.
      let i = 0;
      for (const k of keys) for (const kv of stores) await kv.put(k, bytes('last'), { ifMatch: versions[i++] });
      for (const kv of stores) expect(ctx.usage.get(kv.tenantId, 'bytes_stored')).toBe(keys.length * (3 + 4));
      await Promise.all(stores.map((kv) => kv.close()));
      expect(ctx.keyCache.stats()).toMatchObject({ kv_cached_keys: 0, kv_cached_key_bytes: 0 });
    });
  }
});
