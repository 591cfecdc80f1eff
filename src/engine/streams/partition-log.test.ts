import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { BATCH_HEADER_SIZE, SEGMENT_HEADER_SIZE, SegmentReader, encodeBatch, readBatchHeader, readBatchRun, type SegmentCodec } from '../../core/segment.js';
import { PAGE_SLAB_BYTES } from '../../core/segment-records.js';
import { init } from '../../node/core.js';
import type { MemoryStorage } from '../../ports/memory-storage.js';
import type { BlobStore, OrderedKV, UnitStorage } from '../../ports/storage.js';
import { rejectsWithQuartzError } from '../../../tests/fixtures/expect-error.js';
import { createTestContext, type TestContext } from '../testing.js';
import { BLOCK_BYTES, PartitionLog, type PartitionConfig } from './partition-log.js';
import { SegmentCache } from './segment-cache.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const UNIT = 'log/t1/t/0';

beforeAll(async () => {
  await init();
});

function config(codec: SegmentCodec): PartitionConfig {
  return { retentionMs: -1, retentionBytes: -1, segmentBytes: 1 << 20, segmentMs: 3_600_000, codec };
}

function open(ctx: TestContext, codec: SegmentCodec): Promise<PartitionLog> {
  return PartitionLog.open(UNIT, ctx.storage.unit(UNIT), config(codec), ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} });
}

async function produce(log: PartitionLog, batches: number): Promise<void> {
  for (let i = 0; i < batches; i++) {
    await log.append(Array.from({ length: 10 }, (_, j) => ({ key: null, value: enc.encode(`v${i * 10 + j}`), timestamp: 1_700_000_000_000 + i })));
  }
}

async function segmentBlobs(storage: MemoryStorage): Promise<Uint8Array[]> {
  const blobs = storage.unit(UNIT).blobs;
  const out: Uint8Array[] = [];
  for (const { key } of await blobs.list('seg/')) out.push((await blobs.get(key))!);
  return out;
}

describe('sealing the tail', () => {
  it('seals batches encoded in this run and batches reloaded after a reopen to the same bytes', async () => {
    for (const codec of ['none', 'lz4'] as const) {
      const inRun = createTestContext();
      const a = await open(inRun, codec);
      await produce(a, 5);
      await a.roll();

      const reloaded = createTestContext();
      const b = await open(reloaded, codec);
      await produce(b, 5);
      await b.close();
      const c = await open(reloaded, codec);
      await c.roll();

      const [sealedInRun] = await segmentBlobs(inRun.storage);
      const [sealedAfterReopen] = await segmentBlobs(reloaded.storage);
      expect(sealedInRun).toBeDefined();
      expect(sealedAfterReopen).toEqual(sealedInRun);
      const read = await a.read(0, 100, 1 << 20, 't/0');
      expect(read.records.map((r) => dec.decode(r.value!))).toEqual(Array.from({ length: 50 }, (_, i) => `v${i}`));
      await a.close();
      await c.close();
    }
  });

  it('refuses to seal a tail batch that was damaged in storage, and keeps the tail', async () => {
    for (const codec of ['none', 'lz4'] as const) {
      const ctx = createTestContext();
      const first = await open(ctx, codec);
      await produce(first, 3);
      await first.close();

      // flip a bit inside the second batch's records: its header stays sane, only the CRC can tell
      const kv = ctx.storage.unit(UNIT).kv;
      const entries = await kv.scan({ prefix: enc.encode('t') });
      expect(entries.length).toBe(3);
      const damaged = entries[1]!.value.slice();
      damaged[BATCH_HEADER_SIZE + 2]! ^= 0x04;
      await kv.put(entries[1]!.key, damaged);

      const log = await open(ctx, codec);
      await rejectsWithQuartzError(() => log.roll(), ErrorCode.CHECKSUM_MISMATCH, /CRC32C/);
      expect(await ctx.storage.unit(UNIT).blobs.list('seg/')).toEqual([]);
      expect((await kv.scan({ prefix: enc.encode('t') })).length).toBe(3);
      expect(log.stats().segments).toBe(0);
      // the intact batch before the damage is still served
      const read = await log.read(0, 10, 1 << 20, 't/0');
      expect(read.records.map((r) => dec.decode(r.value!))).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`));
      await log.close();
    }
  });
});

describe('small batches', () => {
  /** 1,000 records of ~100 B, as one produce write. */
  const write = (from: number) => Array.from({ length: 1000 }, (_, i) => ({ key: null, value: enc.encode(`{"n":${from + i},"note":"${'x'.repeat(80)}"}`), timestamp: 1_700_000_000_000 + i }));
  const text = (from: number, n: number) => Array.from({ length: n }, (_, i) => `{"n":${from + i},"note":"${'x'.repeat(80)}"}`);

  /** Batch headers of a sealed segment blob, in order. */
  function segmentBatches(blob: Uint8Array) {
    const reader = SegmentReader.open(blob);
    const out = [];
    for (let at = SEGMENT_HEADER_SIZE; out.length < reader.batchCount; ) {
      const h = readBatchHeader(blob, at);
      out.push(h);
      at += h.length;
    }
    return out;
  }

  it('stores a produce write as one tail entry of small batches, sealed as they are', async () => {
    for (const codec of ['none', 'lz4'] as const) {
      const ctx = createTestContext();
      const log = await open(ctx, codec);
      await log.append(write(0));
      const entries = await ctx.storage.unit(UNIT).kv.scan({ prefix: enc.encode('t') });
      expect(entries.length).toBe(1);
      const run = readBatchRun(entries[0]!.value);
      expect(run.length).toBeGreaterThan(5);
      for (const h of run) expect(h.uncompressedSize).toBeLessThanOrEqual(BLOCK_BYTES);
      expect((await log.read(995, 10, 1 << 20, 't/0')).records.map((r) => dec.decode(r.value!))).toEqual(text(995, 5));
      await log.roll();
      const [blob] = await segmentBlobs(ctx.storage);
      // the run's batches, byte for byte, right after the segment header
      expect(blob!.subarray(SEGMENT_HEADER_SIZE, SEGMENT_HEADER_SIZE + entries[0]!.value.length)).toEqual(entries[0]!.value);
      expect(segmentBatches(blob!).length).toBe(run.length);
      for (const offset of [0, 137, 500, 990]) {
        expect((await log.read(offset, 10, 1 << 20, 't/0')).records.map((r) => dec.decode(r.value!))).toEqual(text(offset, 10));
      }
      await log.close();
    }
  });

  it('cuts a large batch written before runs as it seals it, and refuses one whose CRC fails', async () => {
    for (const codec of ['none', 'lz4'] as const) {
      const ctx = createTestContext();
      const kv = ctx.storage.unit(UNIT).kv;
      // what the previous version stored: the whole write as one batch
      const key = new Uint8Array(9);
      key[0] = 0x74; // 't' + u64be(0)
      const legacy = encodeBatch(write(0), { baseOffset: 0, codec });
      expect(readBatchHeader(legacy).uncompressedSize).toBeGreaterThan(BLOCK_BYTES);
      const damaged = legacy.slice();
      damaged[damaged.length - 1]! ^= 0x10;
      await kv.put(key, damaged);
      const broken = await open(ctx, codec);
      await rejectsWithQuartzError(() => broken.roll(), ErrorCode.CHECKSUM_MISMATCH, /CRC32C/);
      expect(await ctx.storage.unit(UNIT).blobs.list('seg/')).toEqual([]);
      expect(broken.stats().segments).toBe(0);
      await broken.close();

      await kv.put(key, legacy);
      const log = await open(ctx, codec);
      await log.append(write(1000)); // a run after it
      await log.roll();
      const [blob] = await segmentBlobs(ctx.storage);
      const batches = segmentBatches(blob!);
      expect(batches.length).toBeGreaterThan(10);
      for (const h of batches) expect(h.uncompressedSize).toBeLessThanOrEqual(BLOCK_BYTES);
      for (const offset of [0, 499, 995, 1500]) {
        expect((await log.read(offset, 10, 1 << 20, 't/0')).records.map((r) => dec.decode(r.value!))).toEqual(text(offset, 10));
      }
      await log.close();
    }
  });
});

/**
 * A memory unit with the optional fast paths a disk adapter offers: `putOwned` (its puts can be
 * made to fail from the `failAt`-th call on, after landing or not) and `putParts`.
 */
function withFastPaths(unit: UnitStorage): UnitStorage & { fail: { at: number; landed: boolean }; puts: number; parts: number } {
  const fast = {
    fail: { at: Infinity, landed: false },
    puts: 0,
    parts: 0,
    kv: {
      get: (key) => unit.kv.get(key),
      put: (key, value) => unit.kv.put(key, value),
      delete: (key) => unit.kv.delete(key),
      scan: (options) => unit.kv.scan(options),
      batch: (ops) => unit.kv.batch(ops),
      putOwned: async (key, value) => {
        if (++fast.puts >= fast.fail.at) {
          if (fast.fail.landed) await unit.kv.put(key, value);
          throw new Error('disk full');
        }
        await unit.kv.put(key, value);
      },
    } satisfies OrderedKV,
    blobs: {
      put: (key, bytes) => unit.blobs.put(key, bytes),
      get: (key, range) => unit.blobs.get(key, range),
      head: (key) => unit.blobs.head(key),
      list: (prefix) => unit.blobs.list(prefix),
      delete: (key) => unit.blobs.delete(key),
      putParts: (key, parts) => {
        fast.parts++;
        const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        parts.reduce((at, p) => (whole.set(p, at), at + p.length), 0);
        return unit.blobs.put(key, whole);
      },
    } satisfies BlobStore,
  };
  return fast;
}

describe('storage fast paths', () => {
  it('commits with putOwned and seals with putParts to the bytes of the plain paths', async () => {
    for (const codec of ['none', 'lz4'] as const) {
      const plain = createTestContext();
      const a = await open(plain, codec);
      const ctx = createTestContext();
      const unit = withFastPaths(ctx.storage.unit(UNIT));
      const b = await PartitionLog.open(UNIT, unit, config(codec), ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} });
      for (const log of [a, b]) {
        // concurrent appends: one commit holds several writes
        await Promise.all(Array.from({ length: 6 }, (_, i) => log.append([{ key: null, value: enc.encode(`v${i}`), timestamp: 1_700_000_000_000 + i }])));
        await log.roll();
      }
      expect(unit.puts).toBe(6);
      expect(unit.parts).toBe(1);
      expect(await segmentBlobs(ctx.storage)).toEqual(await segmentBlobs(plain.storage));
      expect((await b.read(0, 10, 1 << 20, 't/0')).records.map((r) => dec.decode(r.value!)).sort()).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'v5']);
      await a.close();
      await b.close();
    }
  });

  it("reuses a sealed tail entry's buffer for a later produce whatever its codec, and the records a consumer read from it stay intact", async () => {
    // Incompressible values: LZ4 stores these batches uncompressed, as a `compression: none` topic does.
    let seed = 7;
    const noise = (length: number) =>
      Uint8Array.from({ length }, () => {
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        return seed & 0xff;
      });
    for (const codec of ['none', 'lz4'] as const) {
      const ctx = createTestContext();
      const unit = withFastPaths(ctx.storage.unit(UNIT));
      const buffers: ArrayBufferLike[] = [];
      const putOwned = unit.kv.putOwned!;
      unit.kv.putOwned = (key, value) => {
        buffers.push(value.buffer);
        return putOwned(key, value);
      };
      const log = await PartitionLog.open(UNIT, unit, config(codec), ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} });
      // One tail entry above the pool's 16 KiB minimum.
      const write = (values: Uint8Array[]) => log.append(values.map((value, i) => ({ key: null, value, timestamp: 1_700_000_000_000 + i })));
      const first = Array.from({ length: 40 }, () => noise(1000));
      await write(first);
      const held = (await log.read(0, 100, 1 << 20, 't/0')).records;
      await log.roll();
      const second = Array.from({ length: 40 }, () => noise(1000));
      await write(second);
      expect(buffers).toHaveLength(2);
      expect(buffers[1], codec).toBe(buffers[0]);
      // The consumer's records from the first entry are not views of the buffer the second overwrote.
      expect(held.map((r) => r.value)).toEqual(first);
      const all = (await log.read(0, 100, 1 << 20, 't/0')).records;
      expect(all.map((r) => r.value)).toEqual([...first, ...second]);
      await log.close();
    }
  });

  it('starts the next commit before acknowledging the one that landed', async () => {
    const ctx = createTestContext();
    const unit = withFastPaths(ctx.storage.unit(UNIT));
    const events: string[] = [];
    const putOwned = unit.kv.putOwned!;
    // As the disk journal does, the storage starts a run of writes in a microtask after they are issued.
    unit.kv.putOwned = (key, value) => {
      const offset = key[key.length - 1];
      events.push(`put ${offset}`);
      queueMicrotask(() => events.push(`start ${offset}`));
      return putOwned(key, value);
    };
    const log = await PartitionLog.open(UNIT, unit, config('none'), ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} });
    // the first append commits alone; the next two queue behind it and commit together
    await Promise.all(Array.from({ length: 3 }, (_, i) => log.append([{ key: null, value: enc.encode(`v${i}`), timestamp: 1 }]).then(() => events.push(`ack ${i}`))));
    // Acknowledged first, a producer would go on (encode its next batch) before the storage started the next commit.
    expect(events).toEqual(['put 0', 'start 0', 'put 1', 'put 2', 'start 1', 'start 2', 'ack 0', 'ack 1', 'ack 2']);
    await log.close();
  });

  it('after a failed putOwned commit, fails its writes, re-reads the tail and goes on from what landed', async () => {
    for (const landed of [false, true]) {
      const ctx = createTestContext();
      const unit = withFastPaths(ctx.storage.unit(UNIT));
      const log = await PartitionLog.open(UNIT, unit, config('none'), ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} });
      await log.append([{ key: null, value: enc.encode('first'), timestamp: 1 }]);
      // the second commit's third put fails: the commit holds writes 2..n, all rejected
      unit.fail = { at: unit.puts + 3, landed };
      const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => log.append([{ key: null, value: enc.encode(`w${i}`), timestamp: 2 }])));
      expect(results.filter((r) => r.status === 'rejected').length).toBeGreaterThan(0);
      unit.fail = { at: Infinity, landed: false };
      const next = await log.append([{ key: null, value: enc.encode('after'), timestamp: 3 }]);
      const read = await log.read(0, 100, 1 << 20, 't/0');
      // offsets stay contiguous, every acknowledged record is there, 'after' is last
      expect(read.records.map((r) => r.offset)).toEqual(Array.from({ length: next + 1 }, (_, i) => i));
      const values = read.records.map((r) => dec.decode(r.value!));
      results.forEach((r, i) => r.status === 'fulfilled' && expect(values[r.value]).toBe(`w${i}`));
      expect(values[next]).toBe('after');
      await log.close();
    }
  });
});

describe('rolls', () => {
  it('seal segments of at most segment_bytes, however far the tail ran ahead of its roll', async () => {
    const ctx = createTestContext();
    const segmentBytes = 4096;
    const log = await PartitionLog.open(UNIT, ctx.storage.unit(UNIT), { ...config('none'), segmentBytes }, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} });
    const batch = (i: number) => Array.from({ length: 10 }, (_, j) => ({ key: null, value: enc.encode(`v${i * 10 + j}`.padEnd(100, '.')), timestamp: 1_700_000_000_000 + i }));
    // 20 batches of ~1.1 KB in one group commit: the tail is ~22 KB when the roll starts
    await Promise.all(Array.from({ length: 20 }, (_, i) => log.append(batch(i))));
    await log.applyRetention(); // runs after the size-triggered roll
    const blobs = ctx.storage.unit(UNIT).blobs;
    let sizes = (await blobs.list('seg/')).map((b) => b.size);
    expect(sizes.length).toBeGreaterThanOrEqual(5);
    // what is left in the tail is less than one segment's worth
    const sealed = (await blobs.list('seg/')).reduce((n, b) => n + b.size, 0);
    expect(log.stats().bytes - sealed).toBeLessThan(segmentBytes);
    await log.roll(); // an explicit roll seals the rest
    sizes = (await blobs.list('seg/')).map((b) => b.size);
    // batches up to segment_bytes, plus the segment's header and footer
    for (const size of sizes) expect(size).toBeLessThanOrEqual(segmentBytes + 200);
    expect(log.stats().segments).toBe(sizes.length);
    const read = await log.read(0, 1000, 1 << 20, 't/0');
    expect(read.records.map((r) => r.offset)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    await log.close();
  });

  it('write several segment blobs at once and record them in one KV batch; a failed blob write records none of them', async () => {
    const ctx = createTestContext();
    const unit = ctx.storage.unit(UNIT);
    const io = { blobPuts: 0, failBlobPut: 2, kvBatches: 0 };
    const flaky: UnitStorage = {
      kv: {
        get: (key) => unit.kv.get(key),
        put: (key, value) => unit.kv.put(key, value),
        delete: (key) => unit.kv.delete(key),
        scan: (options) => unit.kv.scan(options),
        batch: (ops) => (io.kvBatches++, unit.kv.batch(ops)),
      },
      blobs: {
        put: async (key, bytes) => {
          if (++io.blobPuts === io.failBlobPut) throw new Error('disk full');
          return unit.blobs.put(key, bytes);
        },
        get: (key, range) => unit.blobs.get(key, range),
        head: (key) => unit.blobs.head(key),
        list: (prefix) => unit.blobs.list(prefix),
        delete: (key) => unit.blobs.delete(key),
      },
    };
    const openOn = (u: UnitStorage, segmentBytes: number) =>
      PartitionLog.open(UNIT, u, { ...config('none'), segmentBytes }, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} });
    // a tail of ~22 KB written under a large segment_bytes, so no roll has run yet
    const writer = await openOn(unit, 1 << 20);
    const batch = (i: number) => Array.from({ length: 10 }, (_, j) => ({ key: null, value: enc.encode(`v${i * 10 + j}`.padEnd(100, '.')), timestamp: 1_700_000_000_000 + i }));
    for (let i = 0; i < 20; i++) await writer.append(batch(i));
    await writer.close();

    // sealed in segments of 4 KB: the first step writes four blobs, and the second of them fails
    const log = await openOn(flaky, 4096);
    await expect(log.roll()).rejects.toThrow('disk full');
    expect(io.blobPuts).toBe(4);
    expect(io.kvBatches).toBe(0);
    expect(log.stats().segments).toBe(0);
    expect((await log.read(0, 1000, 1 << 20, 't/0')).records.length).toBe(200);
    await log.close();

    // reopening deletes the orphans; the next roll seals the rest, four segments per KV batch
    const again = await openOn(flaky, 4096);
    expect(await unit.blobs.list('seg/')).toEqual([]);
    await again.roll();
    const sealed = again.stats().segments;
    expect(sealed).toBeGreaterThanOrEqual(5);
    expect(io.kvBatches).toBe(Math.ceil(sealed / 4));
    expect((await unit.blobs.list('seg/')).length).toBe(sealed);
    const all = await again.read(0, 1000, 1 << 20, 't/0');
    expect(all.records.map((r) => r.offset)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    await again.close();
  });
});

describe('reading the tail', () => {
  it('decodes a tail batch once while consumers page through it, and forgets it once sealed', async () => {
    const ctx = createTestContext();
    const cache = new SegmentCache(1 << 20);
    const log = await PartitionLog.open(UNIT, ctx.storage.unit(UNIT), config('lz4'), ctx.clock, ctx.scheduler, cache, { onBytes() {} });
    await log.append(Array.from({ length: 1000 }, (_, i) => ({ key: null, value: enc.encode(`v${i}`), timestamp: 1_700_000_000_000 })));
    for (let page = 0; page < 10; page++) {
      const read = await log.read(page * 100, 100, 1 << 20, 't/0');
      expect(read.records.map((r) => dec.decode(r.value!))).toEqual(Array.from({ length: 100 }, (_, i) => `v${page * 100 + i}`));
    }
    expect(cache.misses).toBe(1);
    expect(cache.hits).toBe(9);
    expect(cache.size).toBeGreaterThan(0);
    await log.roll();
    expect(cache.size).toBe(0);
    const sealed = await log.read(950, 100, 1 << 20, 't/0');
    expect(sealed.records.map((r) => dec.decode(r.value!))).toEqual(Array.from({ length: 50 }, (_, i) => `v${950 + i}`));
    await log.close();
  });
});

describe('random reads of a sealed segment', () => {
  /** A log of 4,000 records in four batches of 1,000, rolled into one LZ4 segment, and a reader of 10-record pages that checks them. */
  async function sealedLog(cache: SegmentCache) {
    const ctx = createTestContext();
    const log = await PartitionLog.open(UNIT, ctx.storage.unit(UNIT), config('lz4'), ctx.clock, ctx.scheduler, cache, { onBytes() {} });
    for (let b = 0; b < 4; b++) {
      await log.append(Array.from({ length: 1000 }, (_, i) => ({ key: null, value: enc.encode(`v${b * 1000 + i}`), timestamp: 1_700_000_000_000 })));
    }
    await log.roll();
    const page = async (offset: number) => {
      const { records } = await log.read(offset, 10, 1 << 20, 't/0');
      expect(records.map((r) => dec.decode(r.value!))).toEqual(Array.from({ length: 10 }, (_, i) => `v${offset + i}`));
      return records;
    };
    return { log, page };
  }

  it('keep the batches of a segment held whole decoded in the cache', async () => {
    const cache = new SegmentCache(8 << 20);
    const { log, page } = await sealedLog(cache);
    // A cold segment's first random read is a range read, which builds only the page: its
    // records hold their own bytes (pages share a small slab), not the batch's decompressed records.
    const ranged = await page(3500);
    expect(ranged[0]!.value!.buffer.byteLength).toBe(PAGE_SLAB_BYTES);
    await page(1200); // the second loads it whole
    const once = await page(2300); // decoded once: only the page is built
    expect(once[0]!.value!.buffer).toBe(ranged[0]!.value!.buffer);
    const kept = await page(1200); // a batch decoded a second time is kept decoded
    await page(2300);
    const again = await page(1200);
    // The batch was not decoded again: the same record objects come back.
    expect(again[0]).toBe(kept[0]);
    // A page that runs past its batch continues in the next one.
    const across = await log.read(1995, 10, 1 << 20, 't/0');
    expect(across.records.map((r) => r.offset)).toEqual(Array.from({ length: 10 }, (_, i) => 1995 + i));
    await log.close();
  });

  it('range-read pages keep their values after the read buffer is reused, for both codecs and without readInto', async () => {
    for (const codec of ['none', 'lz4'] as const) {
      for (const readInto of [true, false]) {
        const ctx = createTestContext();
        const unit = ctx.storage.unit(UNIT);
        const blobs: BlobStore = readInto
          ? unit.blobs
          : {
              put: (key, bytes) => unit.blobs.put(key, bytes),
              get: (key, range) => unit.blobs.get(key, range),
              head: (key) => unit.blobs.head(key),
              list: (prefix) => unit.blobs.list(prefix),
              delete: (key) => unit.blobs.delete(key),
            };
        // No room to load a segment whole: every read is a range read of one batch.
        const log = await PartitionLog.open(UNIT, { kv: unit.kv, blobs }, config(codec), ctx.clock, ctx.scheduler, new SegmentCache(1 << 10), { onBytes() {} });
        for (let b = 0; b < 4; b++) {
          await log.append(Array.from({ length: 1000 }, (_, i) => ({ key: enc.encode(`k${b * 1000 + i}`), value: enc.encode(`v${b * 1000 + i}`), headers: [{ key: 'h', value: enc.encode(`h${i}`) }], timestamp: 1_700_000_000_000 })));
        }
        await log.roll();
        const pages = [];
        for (const offset of [3500, 1200, 2300, 100, 3990]) pages.push({ offset, records: (await log.read(offset, 10, 1 << 20, 't/0')).records });
        for (const { offset, records } of pages) {
          const want = Array.from({ length: 10 }, (_, i) => offset + i);
          expect(records.map((r) => dec.decode(r.key!)), `${codec} ${readInto}`).toEqual(want.map((o) => `k${o}`));
          expect(records.map((r) => dec.decode(r.value!))).toEqual(want.map((o) => `v${o}`));
          expect(records.map((r) => dec.decode(r.headers[0]!.value!))).toEqual(want.map((o) => `h${o % 1000}`));
        }
        await log.close();
      }
    }
  });

  it('fail a range read that comes back short with CORRUPT_DATA, even when the reused buffer still holds that batch', async () => {
    const ctx = createTestContext();
    const unit = ctx.storage.unit(UNIT);
    const log = await PartitionLog.open(UNIT, unit, config('lz4'), ctx.clock, ctx.scheduler, new SegmentCache(1 << 10), { onBytes() {} });
    await log.append(Array.from({ length: 1000 }, (_, i) => ({ key: null, value: enc.encode(`v${i}`), timestamp: 1_700_000_000_000 })));
    await log.roll();
    const [{ key: blob }] = await unit.blobs.list('seg/');
    // The first read caches the footer and leaves the batch's bytes in the pooled read buffer.
    expect((await log.read(500, 10, 1 << 20, 't/0')).records[0]!.offset).toBe(500);
    const whole = (await unit.blobs.get(blob!))!;
    await unit.blobs.put(blob!, whole.subarray(0, SEGMENT_HEADER_SIZE + BATCH_HEADER_SIZE + 10));
    await rejectsWithQuartzError(() => log.read(500, 10, 1 << 20, 't/0'), ErrorCode.CORRUPT_DATA, /shorter than recorded/);
    await log.close();
  });

  it('build only the page when the cache has no room to keep the decoded batch', async () => {
    // Room for the segment (tens of KB), not for a decoded batch of 1,000 records (~300 KB).
    const cache = new SegmentCache(128 << 10);
    const { log, page } = await sealedLog(cache);
    await page(3500);
    await page(1200); // loads the segment whole
    expect(cache.size).toBeGreaterThan(0);
    for (const offset of [2300, 2400, 2500]) {
      // The second decode of a batch would be kept, but cannot be: it builds only the page.
      const records = await page(offset);
      expect(records[0]!.value!.buffer.byteLength).toBe(PAGE_SLAB_BYTES);
    }
    expect(cache.size).toBeLessThan(128 << 10);
    await log.close();
  });
});

describe('PartitionLog random reads of sealed segments (pages decoded partly)', () => {
  it('answer every page with the records appended, whatever the record sizes, offsets and max_records, cold or cached, for both codecs', async () => {
    let seed = 4242;
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (const codec of ['none', 'lz4'] as const) {
      for (const cacheBytes of [1 << 10, 64 << 20]) {
        const ctx = createTestContext();
        // A small cache: every read a range read of one batch; a large one: segments promoted and batches kept.
        const log = await PartitionLog.open(UNIT, ctx.storage.unit(UNIT), { ...config(codec), segmentBytes: 64 << 10 }, ctx.clock, ctx.scheduler, new SegmentCache(cacheBytes), { onBytes() {} });
        const values: string[] = [];
        for (let b = 0; b < 40; b++) {
          const n = 1 + Math.floor(random() * 150);
          const batch = Array.from({ length: n }, () => {
            const i = values.length;
            // Mostly small and alike (the page's first guess holds), now and then one large or empty.
            const r = random();
            const size = r < 0.05 ? 2000 + Math.floor(random() * 6000) : r < 0.1 ? 0 : 5 + Math.floor(random() * 60);
            const value = `${i}:${'abcdefghij'.repeat(Math.ceil(size / 10)).slice(0, size)}`;
            values.push(value);
            return { key: random() < 0.5 ? null : enc.encode(`k${i}`), value: enc.encode(value), timestamp: 1_700_000_000_000 + i };
          });
          await log.append(batch);
        }
        await log.roll();
        const end = values.length;
        for (let i = 0; i < 400; i++) {
          const r = random();
          const offset = r < 0.1 ? 0 : r < 0.2 ? end - 1 : r < 0.25 ? end : Math.floor(random() * end);
          const max = [1, 2, 3, 10, 100, 1000][Math.floor(random() * 6)]!;
          const { records } = await log.read(offset, max, 1 << 30, 't/0');
          const label = `${codec} cache ${cacheBytes} offset ${offset} max ${max}`;
          expect(records.map((x) => x.offset), label).toEqual(Array.from({ length: Math.min(max, end - offset) }, (_, j) => offset + j));
          expect(records.map((x) => dec.decode(x.value!)), label).toEqual(values.slice(offset, offset + max));
        }
        await log.close();
      }
    }
  });
});

describe('a partition closed while a read runs', () => {
  it('never serves the segments that read loads to a partition opened later under the same name', async () => {
    // A topic deleted while a consumer reads it, then created again: the read goes on loading the
    // old unit's segments (its blobs stay until the unit is dropped), and the new partition's
    // segments have the same names.
    const cache = new SegmentCache(1 << 20);
    const batch = (tag: string, from: number) => Array.from({ length: 10 }, (_, i) => ({ key: null, value: enc.encode(`${tag}${from + i}`), timestamp: 1_700_000_000_000 }));
    const old = createTestContext();
    const oldUnit = old.storage.unit(UNIT);
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let gated = false;
    const blobs = new Proxy(oldUnit.blobs, {
      get(target, prop, receiver) {
        if (prop === 'get') {
          return async (name: string) => {
            if (gated) {
              gated = false;
              await gate;
            }
            return target.get(name);
          };
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const log = await PartitionLog.open(UNIT, { kv: oldUnit.kv, blobs }, config('none'), old.clock, old.scheduler, cache, { onBytes() {} });
    await log.append(batch('old', 0));
    await log.roll();
    await log.append(batch('old', 10));
    await log.roll();
    gated = true;
    const reading = log.read(0, 100, 1 << 20, 't/0').catch(() => undefined);
    await log.close();
    release();
    await reading;

    const fresh = createTestContext();
    const again = await PartitionLog.open(UNIT, fresh.storage.unit(UNIT), config('none'), fresh.clock, fresh.scheduler, cache, { onBytes() {} });
    await again.append(batch('new', 0));
    await again.roll();
    await again.append(batch('new', 10));
    await again.roll();
    const read = await again.read(10, 10, 1 << 20, 't/0');
    expect(read.records.map((r) => dec.decode(r.value!))).toEqual(Array.from({ length: 10 }, (_, i) => `new${10 + i}`));
    await again.close();
  });
});
