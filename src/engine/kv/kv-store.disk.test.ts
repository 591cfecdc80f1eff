// KvStore, TenantRegistry and UsageMeter on the Node disk adapter (lmdb + files): what the memory
// tests cannot show — writes that land a tick later, real blob files, and state surviving a reopen.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, isQuartzError } from '../../core/errors.js';
import { ManualClock } from '../../ports/manual-clock.js';
import { openDiskStorage, type DiskStorage } from '../../node/storage/disk-storage.js';
import type { EngineContext } from '../context.js';
import type { OrderedKV, StorageProvider } from '../../ports/storage.js';
import { MemoryUsageRecorder } from '../testing.js';
import { TenantRegistry } from '../tenants/tenant-registry.js';
import { UsageMeter } from '../tenants/usage-meter.js';
import { KvStore } from './kv-store.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const dirs: string[] = [];

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function diskContext(dir: string, clock = new ManualClock()): Promise<EngineContext & { storage: DiskStorage; clock: ManualClock; usage: MemoryUsageRecorder }> {
  return {
    storage: await openDiskStorage({ dir }),
    clock,
    scheduler: clock,
    usage: new MemoryUsageRecorder(),
    capabilities: { compileWasmAtRuntime: true, threads: true, persistentStorage: true },
  };
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'quartz-kv-'));
  dirs.push(d);
  return d;
}

describe('KvStore on the Node disk adapter', () => {
  it('reads its own writes before lmdb commits them, and keeps everything across a reopen', async () => {
    const dir = tempDir();
    let ctx = await diskContext(dir);
    let kv = await KvStore.open(ctx, 't1');
    const pending = [kv.put('a', enc.encode('1')), kv.put('b', enc.encode('2'), { contentType: 'text/plain', ttl: 60 })];
    // lmdb has not committed yet; the store answers from what it issued.
    expect(dec.decode((await kv.get('a'))!.value)).toBe('1');
    const [, b] = await Promise.all(pending);
    const big = new Uint8Array(1_500_000).map((_, i) => i & 0xff);
    const { version: bigVersion } = await kv.put('big', big);
    await kv.close();
    await ctx.storage.close();

    ctx = await diskContext(dir, ctx.clock);
    kv = await KvStore.open(ctx, 't1');
    expect(await kv.head('b')).toEqual({ contentType: 'text/plain', version: b.version, expiresAt: b.expiresAt, size: 1 });
    const got = await kv.get('big');
    expect(got?.version).toBe(bigVersion);
    expect(got?.value.length).toBe(big.length);
    expect(got?.value.every((v, i) => v === (i & 0xff))).toBe(true);
    expect((await kv.list()).keys.map((k) => k.key)).toEqual(['a', 'b', 'big']);
    // The TTL sweep is armed again from the stored index.
    await ctx.clock.advance(60_000);
    expect(await kv.get('b')).toBeUndefined();
    const unit = await ctx.storage.unit('kv/t1');
    expect((await unit.kv.scan({})).map((e) => e.key[0])).toEqual([0x64, 0x64, 0x6d]); // 'a', 'big', version mark

    // Replacing the big value removes its blob file.
    await kv.put('big', enc.encode('small'));
    await kv.close();
    expect(await unit.blobs.list('')).toEqual([]);
    await ctx.storage.close();
  });

  it('lets one of many concurrent compare-and-set writers win on lmdb', async () => {
    const ctx = await diskContext(tempDir());
    const kv = await KvStore.open(ctx, 't1');
    const { version } = await kv.put('k', enc.encode('0'));
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => kv.put('k', enc.encode(String(i)), { ifMatch: version })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(2);
    await kv.close();
    await ctx.storage.close();
  });

  it('hands each get its own value bytes, whether read from lmdb or from a write in flight', async () => {
    const ctx = await diskContext(tempDir());
    const kv = await KvStore.open(ctx, 't1');
    await Promise.all([kv.put('a', enc.encode('aaaa')), kv.put('b', enc.encode('bbbbbb'))]);
    // Storage reads share lmdb's read buffer: a value must survive the next read and a caller's writes.
    const a = (await kv.get('a'))!.value;
    const b = (await kv.get('b'))!.value;
    a.fill(0x7a);
    expect(dec.decode(b)).toBe('bbbbbb');
    expect(dec.decode((await kv.get('a'))!.value)).toBe('aaaa');
    // A value read from a write lmdb has not committed yet is a copy too: lmdb still reads that record.
    const pending = kv.put('c', enc.encode('cccc'));
    const early = (await kv.get('c'))!.value;
    early.fill(0x7a);
    await pending;
    expect(dec.decode((await kv.get('c'))!.value)).toBe('cccc');
    await kv.close();
    await ctx.storage.close();
  });

  it('meters a commit of many writes once they are durable, and exactly', async () => {
    const ctx = await diskContext(tempDir());
    const kv = await KvStore.open(ctx, 't1');
    const puts = Array.from({ length: 500 }, (_, i) => kv.put(`k${i % 100}`, new Uint8Array(i % 7)));
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(0); // nothing is durable yet
    await Promise.all(puts);
    // The last write of each key wins: i = 400..499, key `k${i % 100}` (2-3 bytes), value i % 7 bytes.
    let expected = 0;
    for (let i = 400; i < 500; i++) expected += `k${i % 100}`.length + (i % 7);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(expected);
    await Promise.all(Array.from({ length: 100 }, (_, i) => kv.delete(`k${i}`)));
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(0);
    await kv.close();
    await ctx.storage.close();
  });

  it('counts its stored bytes as metered at the call, with writes in flight then and issued after', async () => {
    const ctx = await diskContext(tempDir());
    const kv = await KvStore.open(ctx, 't1');
    await Promise.all(Array.from({ length: 3000 }, (_, i) => kv.put(`k${String(i).padStart(4, '0')}`, new Uint8Array(i % 50))));
    // In flight as the count starts (one lmdb commit): metered after it, so the count must include them.
    const inFlight = Array.from({ length: 200 }, (_, i) => kv.put(`k${String(i * 15).padStart(4, '0')}`, new Uint8Array(99)));
    const metered = ctx.usage.get('t1', 'bytes_stored');
    const counting = kv.storedBytes();
    // Issued after the start, ahead of and behind the scan: metered after it, so not counted.
    const later = Array.from({ length: 200 }, (_, i) => kv.delete(`k${String(2999 - i * 15).padStart(4, '0')}`));
    expect(await counting).toBe(metered);
    await Promise.all([...inFlight, ...later]);
    expect(await kv.storedBytes()).toBe(ctx.usage.get('t1', 'bytes_stored'));
    await kv.close();
    await ctx.storage.close();
  });

  it('counts its stored bytes as metered at the call when the count ends before writes in flight settle', async () => {
    const ctx = await diskContext(tempDir());
    const kv = await KvStore.open(ctx, 't1');
    await kv.put('a', new Uint8Array(10));
    // One page of keys: the count ends before lmdb commits any of these.
    const inFlight = kv.put('b', new Uint8Array(20));
    const metered = ctx.usage.get('t1', 'bytes_stored');
    const counting = kv.storedBytes();
    const later = [kv.put('c', new Uint8Array(30)), kv.delete('a')];
    expect(await counting).toBe(metered);
    await Promise.all([inFlight, ...later]);
    expect(await kv.storedBytes()).toBe(ctx.usage.get('t1', 'bytes_stored'));
    await kv.close();
    await ctx.storage.close();
  });

  it('persists tenants, hashed keys and usage across a reopen', async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    let storage = await openDiskStorage({ dir });
    let usage = await UsageMeter.open({ storage, clock, scheduler: clock });
    let ctx: EngineContext = { storage, clock, scheduler: clock, usage, capabilities: { compileWasmAtRuntime: true, threads: true, persistentStorage: true } };
    let tenants = await TenantRegistry.open(ctx);
    const { tenant, api_key } = await tenants.create({ email: 'disk@example.com', plan: 'pro' });
    const kv = await KvStore.open(ctx, tenant.id);
    await kv.put('x', new Uint8Array(99));
    usage.add(tenant.id, 'api_calls', 3);
    await kv.close();
    await tenants.close();
    await usage.close();
    await storage.close();

    storage = await openDiskStorage({ dir });
    usage = await UsageMeter.open({ storage, clock, scheduler: clock });
    ctx = { ...ctx, storage, usage };
    tenants = await TenantRegistry.open(ctx);
    expect((await tenants.authenticate(api_key))?.tenant).toEqual(tenant);
    expect(await tenants.usage(tenant.id)).toMatchObject({ api_calls: 3, bytes_stored: 100 });
    await tenants.close();
    await usage.close();
    await storage.close();
  });

  it('reuses a record only once storage has it: rounds of 1,000 puts in flight read back right, then after a reopen', async () => {
    const dir = tempDir();
    let ctx = await diskContext(dir);
    let kv = await KvStore.open(ctx, 't1');
    const valueOf = (round: number, i: number) => new Uint8Array(1024).fill((round * 7 + i) & 0xff);
    let last: Promise<unknown> = Promise.resolve();
    for (let round = 0; round < 4; round++) {
      // Rounds 1 and 2 overlap (one issued while the other is in flight, over the same keys).
      const issued = Promise.all(Array.from({ length: 1000 }, (_, i) => kv.put(`k${i}`, valueOf(round, i))));
      if (round !== 2) await last;
      last = issued;
      if (round === 1) await ctx.storage.settle();
    }
    await last;
    const check = async () => {
      // Compared as bytes: toEqual walks each element (2 M of them here: tens of seconds on a busy machine).
      for (let i = 0; i < 1000; i++) expect(Buffer.compare((await kv.get(`k${i}`))!.value, valueOf(3, i)), `k${i}`).toBe(0);
    };
    await check();
    await kv.close();
    await ctx.storage.close();
    ctx = await diskContext(dir);
    kv = await KvStore.open(ctx, 't1');
    await check();
    await kv.close();
    await ctx.storage.close();
  });
});

/** `storage` with tenant t1's KV unit noting the buffers of the records (values over 1000 bytes) its `via` writes receive. */
function recordingRecords(inner: StorageProvider, via: 'batch' | 'putOwned', into: Set<ArrayBufferLike>): StorageProvider {
  const storage = Object.create(inner) as StorageProvider;
  storage.unit = async (name: string) => {
    const unit = await inner.unit(name);
    if (name !== 'kv/t1') return unit;
    const kv = unit.kv;
    const wrapped: OrderedKV = {
      get: (key) => kv.get(key),
      getTransient: (key) => kv.getTransient!(key),
      put: (key, value) => kv.put(key, value),
      putOwned: (key, value) => {
        if (via === 'putOwned' && value.length > 1000) into.add(value.buffer);
        return kv.putOwned!(key, value);
      },
      delete: (key) => kv.delete(key),
      scan: (options) => kv.scan(options),
      batch: (ops) => {
        if (via === 'batch') for (const op of ops) if (op.type === 'put' && op.value.length > 1000) into.add(op.value.buffer);
        return kv.batch(ops);
      },
    };
    return { ...unit, kv: wrapped };
  };
  return storage;
}

describe('KvStore records on the Node disk adapter', () => {
  it('reuses the memory of a put with a TTL once it is durable, and what was stored stays intact', async () => {
    const ctx = await diskContext(tempDir());
    // The ArrayBuffers the store's records live in, as the adapter's batch receives them.
    const recordBuffers = new Set<ArrayBufferLike>();
    const storage = recordingRecords(ctx.storage, 'batch', recordBuffers);
    const kv = await KvStore.open({ ...ctx, storage }, 't1');
    // 600 records of ~1 KB fill ten 64 KiB slabs when none comes back (each put with a TTL is a
    // batch: the record and its TTL index entry); the garbage collector took them all before.
    const valueOf = (i: number) => new Uint8Array(1024).fill(i & 0xff).map((b, j) => (j < 4 ? (i >> (8 * j)) & 0xff : b));
    for (let i = 0; i < 600; i++) await kv.put(`k${i}`, valueOf(i), { ttl: 3600 });
    expect(recordBuffers.size).toBeLessThanOrEqual(3);
    await ctx.storage.settle();
    for (let i = 0; i < 600; i += 37) expect(Buffer.from((await kv.get(`k${i}`))!.value).equals(Buffer.from(valueOf(i)))).toBe(true);
    await kv.close();
    await ctx.storage.close();
  });
});

describe('KvStore records replaced in flight', () => {
  it('reuses the memory of a put that a later put of the same key replaced before it was durable', async () => {
    const ctx = await diskContext(tempDir());
    // The ArrayBuffers the store's records live in, as the adapter's putOwned receives them.
    const recordBuffers = new Set<ArrayBufferLike>();
    const storage = recordingRecords(ctx.storage, 'putOwned', recordBuffers);
    const kv = await KvStore.open({ ...ctx, storage }, 't1');
    // Three writes of one key at a time, as clients writing the same keys in turn send them: the
    // first two are replaced in their slot before they are durable. 600 records of ~1 KB fill ten
    // 64 KiB slabs when those never come back.
    const valueOf = (i: number) => new Uint8Array(1024).fill(i & 0xff).map((b, j) => (j < 4 ? (i >> (8 * j)) & 0xff : b));
    for (let i = 0; i < 600; i += 3) {
      const key = `k${(i / 3) % 20}`;
      await Promise.all([kv.put(key, valueOf(i)), kv.put(key, valueOf(i + 1)), kv.put(key, valueOf(i + 2))]);
    }
    expect(recordBuffers.size).toBeLessThanOrEqual(3);
    // Each key holds its last round's third value, before and after lmdb takes the log's writes.
    const last = (k: number) => valueOf(3 * (180 + k) + 2);
    for (let k = 0; k < 20; k++) expect(same((await kv.get(`k${k}`))!.value, last(k))).toBe(true);
    await ctx.storage.settle();
    for (let k = 0; k < 20; k++) expect(same((await kv.get(`k${k}`))!.value, last(k))).toBe(true);
    await kv.close();
    await ctx.storage.close();
  });
});

/** The files under `dir/blobs` (temp blobs left out). */
function blobFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) {
        if (!(d === join(dir, 'blobs') && e.name === 'tmp')) walk(join(d, e.name));
      } else found.push(join(d, e.name));
    }
  };
  walk(join(dir, 'blobs'));
  return found;
}

function flipByte(file: string, at: number): void {
  const bytes = readFileSync(file);
  bytes[at]! ^= 0x10;
  writeFileSync(file, bytes);
}

const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.from(a).equals(Buffer.from(b));

/** A record as the code before blob CRCs wrote a large value's pointer: flag 0 set, the name right after the content type. */
function pointerWithoutCrc(contentType: string, version: number, size: number, name: string): Uint8Array {
  const type = enc.encode(contentType);
  const nameBytes = enc.encode(name);
  const rec = new Uint8Array(23 + type.length + nameBytes.length);
  const view = new DataView(rec.buffer);
  rec[0] = 1; // format
  rec[1] = 1; // value in the blob store
  rec[2] = type.length;
  view.setUint32(3, Math.floor(version / 2 ** 32));
  view.setUint32(7, version >>> 0);
  // 11..18: expires_at 0, never
  view.setUint32(19, size);
  rec.set(type, 23);
  rec.set(nameBytes, 23 + type.length);
  return rec;
}

describe('KvStore large values on the Node disk adapter', () => {
  it('reads a large value whose blob file lost a bit as checksum_mismatch naming the key, never as other bytes', async () => {
    const dir = tempDir();
    let ctx = await diskContext(dir);
    let kv = await KvStore.open(ctx, 't1');
    const big = new Uint8Array(3_000_000).map((_, i) => (i * 7) & 0xff);
    await kv.put('big/one', big, { contentType: 'application/x-big' });
    await kv.put('small', enc.encode('fine'));
    await kv.close();
    await ctx.storage.close();
    const [file, ...others] = blobFiles(dir);
    expect(others).toEqual([]);
    // One bit, in the middle of the value: the length still matches.
    flipByte(file!, 1_234_567);

    ctx = await diskContext(dir, ctx.clock);
    kv = await KvStore.open(ctx, 't1');
    for (const read of [() => kv.get('big/one'), () => kv.getShared('big/one')]) {
      const err = await Promise.resolve()
        .then(read)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(isQuartzError(err, ErrorCode.CHECKSUM_MISMATCH), String(err)).toBe(true);
      expect((err as Error).message).toContain("key 'big/one'");
    }
    // The rest of the store is untouched, and the key's metadata still answers.
    expect(dec.decode((await kv.get('small'))!.value)).toBe('fine');
    expect((await kv.head('big/one'))?.size).toBe(big.length);
    // Flipped back, the value reads again: the check compares, it does not damage.
    flipByte(file!, 1_234_567);
    expect(same((await kv.get('big/one'))?.value, big)).toBe(true);
    // A new value replaces the damaged one whole.
    flipByte(file!, 0);
    await kv.put('big/one', big);
    expect(same((await kv.get('big/one'))?.value, big)).toBe(true);
    await kv.close();
    await ctx.storage.close();
  });

  it('reads a large value whose pointer was written before pointers carried a CRC, checking its length only', async () => {
    const dir = tempDir();
    let ctx = await diskContext(dir);
    const unit = await ctx.storage.unit('kv/t1');
    const old = new Uint8Array(1_500_000).map((_, i) => (i * 13) & 0xff);
    const name = 'v/0123456789abcdef0123456789abcdef';
    await unit.blobs.put(name, old);
    await unit.kv.put(Uint8Array.of(0x64, ...enc.encode('legacy')), pointerWithoutCrc('image/png', 1_700_000_000_000, old.length, name));
    await ctx.storage.settle();

    let kv = await KvStore.open(ctx, 't1');
    const got = await kv.get('legacy');
    expect(got).toMatchObject({ contentType: 'image/png', version: 1_700_000_000_000, expiresAt: null, size: old.length });
    expect(same(got?.value, old)).toBe(true);
    expect((await kv.list()).keys).toEqual([{ key: 'legacy', size: old.length, content_type: 'image/png', expires_at: null }]);
    await kv.close();
    await ctx.storage.close();

    // Without a CRC there is nothing to compare a flipped bit with: only a wrong length is caught.
    const [file] = blobFiles(dir);
    flipByte(file!, 10);
    ctx = await diskContext(dir, ctx.clock);
    kv = await KvStore.open(ctx, 't1');
    expect((await kv.get('legacy'))?.value[10]).toBe(old[10]! ^ 0x10);
    writeFileSync(file!, readFileSync(file!).subarray(0, 1000));
    await expect(kv.get('legacy')).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA });

    // Replacing it writes a pointer with a CRC and retires the old blob.
    const next = new Uint8Array(1_200_000).fill(9);
    await kv.put('legacy', next);
    expect(same((await kv.get('legacy'))?.value, next)).toBe(true);
    await kv.close();
    expect(blobFiles(dir)).toHaveLength(1);
    expect(blobFiles(dir)[0]).not.toBe(file);
    await ctx.storage.close();
  });
});
