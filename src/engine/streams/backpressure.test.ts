/**
 * Flow control of produce against the rolls: a producer faster than the rolls waits once the
 * partition's unsealed bytes (tail + admitted writes) reach the bound, and loses, duplicates or
 * reorders nothing; a wait that cannot end fails with a clear code. The kill -9 case is in
 * tests/crash/backpressure.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { rejectsWithQuartzError } from '../../../tests/fixtures/expect-error.js';
import { ErrorCode } from '../../core/errors.js';
import { init } from '../../node/core.js';
import { openDiskStorage } from '../../node/storage/disk-storage.js';
import type { UnitStorage } from '../../ports/storage.js';
import { systemClock, timerScheduler } from '../../ports/system-clock.js';
import { createTestContext } from '../testing.js';
import { PartitionLog, ROOM_WAIT_MS, unsealedBound, type PartitionConfig } from './partition-log.js';
import { SegmentCache } from './segment-cache.js';

const UNIT = 'log/t1/t/0';
const dirs: string[] = [];

beforeAll(async () => {
  await init();
});

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/**
 * The unit with its blob writes (the rolls' segments) held until `release`, or failing while
 * `failing`: a roll that cannot keep up, whatever the machine's speed. Everything else is the unit's own.
 */
function heldRolls(unit: UnitStorage): UnitStorage & { release(): void; failing: boolean; blobWrites: number } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const held = {
    failing: false,
    blobWrites: 0,
    release,
    kv: unit.kv,
    blobs: {
      get: unit.blobs.get.bind(unit.blobs),
      head: unit.blobs.head.bind(unit.blobs),
      list: unit.blobs.list.bind(unit.blobs),
      delete: unit.blobs.delete.bind(unit.blobs),
      readInto: unit.blobs.readInto?.bind(unit.blobs),
      put: async (key: string, bytes: Uint8Array) => {
        held.blobWrites++;
        await released;
        if (held.failing) throw new Error('no space left on device');
        return unit.blobs.put(key, bytes);
      },
      putParts:
        unit.blobs.putParts === undefined
          ? undefined
          : async (key: string, parts: readonly Uint8Array[]) => {
              held.blobWrites++;
              await released;
              if (held.failing) throw new Error('no space left on device');
              return unit.blobs.putParts!(key, parts);
            },
    },
  };
  return held;
}

/**
 * `count` records of `size` bytes, each value naming its write and place (`w<write>.<i>.`), then
 * letters that LZ4 cannot shrink much, so both codecs fill the tail alike.
 */
function records(write: number, count: number, size: number) {
  let seed = write * 7919 + 1;
  return Array.from({ length: count }, (_, i) => {
    const value = new TextEncoder().encode(`w${write}.${i}.`.padEnd(size, '-'));
    for (let at = value.indexOf(0x2d); at > 0 && at < size; at++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      value[at] = 0x61 + ((seed >>> 16) % 26);
    }
    return { key: null, value, timestamp: 1_700_000_000_000 };
  });
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 60_000;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the unsealed bound', () => {
  it('is two roll steps of segments (8 × segment_bytes), at least 32 MiB', () => {
    expect(unsealedBound(8 * 1024 * 1024)).toBe(64 * 1024 * 1024);
    expect(unsealedBound(64 * 1024 * 1024)).toBe(512 * 1024 * 1024);
    expect(unsealedBound(1024)).toBe(32 * 1024 * 1024);
  });
});

describe('a producer that outruns the rolls, on the Node disk adapter', () => {
  it.each(['none', 'lz4'] as const)('waits at the bound (%s), then loses, duplicates and reorders nothing', async (codec) => {
    const dir = await mkdtemp(join(tmpdir(), 'qz-backpressure-'));
    dirs.push(dir);
    const storage = await openDiskStorage({ dir });
    const unit = heldRolls(await storage.unit(UNIT));
    const bound = 2 * 1024 * 1024;
    const config: PartitionConfig = { retentionMs: -1, retentionBytes: -1, segmentBytes: 256 * 1024, segmentMs: 3_600_000, codec, maxUnsealedBytes: bound };
    const log = await PartitionLog.open(UNIT, unit, config, systemClock, timerScheduler, new SegmentCache(1 << 20), { onBytes() {} });
    // 8 producers of 100 × 1 KB writes (~100 KB each), 48 writes in all: ~2.4 times the bound.
    const WRITERS = 8;
    const WRITES = 6;
    const PER_WRITE = 100;
    const WRITE_BYTES = PER_WRITE * (1000 + 24);
    const acked: Array<{ writer: number; write: number; base: number }> = [];
    let done = 0;
    const producers = Array.from({ length: WRITERS }, async (_, w) => {
      for (let k = 0; k < WRITES; k++) {
        const base = await log.append(records(w * WRITES + k, PER_WRITE, 1000));
        acked.push({ writer: w, write: k, base });
      }
      done++;
    });

    // The rolls are held: producers stop at the bound, and the engine holds no more than it.
    await until(() => log.writesWaitingForRoom === WRITERS || done === WRITERS, 'every producer waiting');
    expect(done, 'producers finished while no roll could seal anything').toBe(0);
    expect(log.unsealedBytes).toBeGreaterThanOrEqual(bound - WRITE_BYTES);
    expect(log.unsealedPeak).toBeLessThan(bound + WRITE_BYTES);
    expect(unit.blobWrites).toBeGreaterThan(0);
    const ackedWhileHeld = acked.length;
    expect(ackedWhileHeld).toBeLessThan(WRITERS * WRITES);

    unit.release();
    await Promise.all(producers);
    expect(log.unsealedPeak, 'the bound held to the end').toBeLessThan(bound + WRITE_BYTES);
    expect(log.writesWaitingForRoom).toBe(0);
    await log.roll();
    expect(log.stats().segments).toBeGreaterThan(4);

    // Every acknowledged write is there once, whole and in order, and the offsets are contiguous.
    const total = WRITERS * WRITES * PER_WRITE;
    expect(log.highWatermark).toBe(total);
    const values: string[] = [];
    for (let offset = 0; offset < total; ) {
      const page = await log.read(offset, 1000, 8 << 20, 't/0');
      for (const r of page.records) {
        expect(r.offset, 'contiguous offsets').toBe(values.length);
        values.push(/^w\d+\.\d+\./.exec(new TextDecoder().decode(r.value!))![0]);
      }
      offset = page.nextOffset;
    }
    expect(values.length).toBe(total);
    for (const a of acked) {
      for (let i = 0; i < PER_WRITE; i++) expect(values[a.base + i]).toBe(`w${a.writer * WRITES + a.write}.${i}.`);
    }
    // Each producer's writes got ascending offsets: admitted in the order they came.
    for (let w = 0; w < WRITERS; w++) {
      const bases = acked.filter((a) => a.writer === w).map((a) => a.base);
      expect(bases).toEqual([...bases].sort((x, y) => x - y));
    }
    expect(new Set(acked.map((a) => a.base)).size).toBe(acked.length);
    await log.close();
    await storage.close();
  }, 120_000);
});

describe('a wait that cannot end', () => {
  const config: PartitionConfig = { retentionMs: -1, retentionBytes: -1, segmentBytes: 64 * 1024, segmentMs: 3_600_000, codec: 'none', maxUnsealedBytes: 256 * 1024 };

  it(`fails with unavailable after ${ROOM_WAIT_MS / 1000} s, storing nothing, and the partition goes on once the roll catches up`, async () => {
    const ctx = createTestContext();
    const unit = heldRolls(ctx.storage.unit(UNIT));
    const log = await PartitionLog.open(UNIT, unit, config, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} });
    for (let k = 0; k < 3; k++) await log.append(records(k, 100, 1000));
    const waiting = log.append(records(3, 100, 1000));
    const behind = log.append(records(4, 1, 10));
    await until(() => log.writesWaitingForRoom === 2, 'the writes waiting');
    const hwm = log.highWatermark;
    await ctx.clock.advance(ROOM_WAIT_MS);
    await rejectsWithQuartzError(waiting, ErrorCode.UNAVAILABLE, /waited 30 s for the roll to seal its tail .*nothing was stored/);
    await rejectsWithQuartzError(behind, ErrorCode.UNAVAILABLE);
    expect(log.highWatermark).toBe(hwm);

    unit.release();
    const next = await log.append(records(5, 1, 10));
    expect(next).toBe(hwm);
    expect((await log.read(next, 10, 1 << 20, 't/0')).records.map((r) => r.offset)).toEqual([hwm]);
    await log.close();
  });

  it("fails with the roll's error when the roll it waits for fails, and the next write that waits starts another", async () => {
    const ctx = createTestContext();
    const unit = heldRolls(ctx.storage.unit(UNIT));
    const log = await PartitionLog.open(UNIT, unit, config, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {}, logger: { error() {}, info() {} } });
    for (let k = 0; k < 3; k++) await log.append(records(k, 100, 1000));
    const waiting = log.append(records(3, 100, 1000));
    await until(() => log.writesWaitingForRoom === 1, 'the write waiting');
    const hwm = log.highWatermark;
    unit.failing = true;
    unit.release();
    await rejectsWithQuartzError(waiting, ErrorCode.UNAVAILABLE, /the roll failed \(no space left on device\); nothing was stored/);
    expect(log.highWatermark).toBe(hwm);

    unit.failing = false;
    const next = await log.append(records(4, 100, 1000));
    expect(next).toBe(hwm);
    expect(log.stats().segments).toBeGreaterThan(0);
    await log.close();
  });

  it('fails the writes still waiting when the partition closes', async () => {
    const ctx = createTestContext();
    const unit = heldRolls(ctx.storage.unit(UNIT));
    const log = await PartitionLog.open(UNIT, unit, config, ctx.clock, ctx.scheduler, new SegmentCache(1 << 20), { onBytes() {} });
    for (let k = 0; k < 3; k++) await log.append(records(k, 100, 1000));
    const waiting = log.append(records(3, 100, 1000));
    await until(() => log.writesWaitingForRoom === 1, 'the write waiting');
    const closed = log.close();
    await rejectsWithQuartzError(waiting, ErrorCode.NOT_FOUND, /is closed/);
    unit.release();
    await closed;
  });
});
