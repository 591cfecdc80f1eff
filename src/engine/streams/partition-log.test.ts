import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { BATCH_HEADER_SIZE, type SegmentCodec } from '../../core/segment.js';
import { init } from '../../node/core.js';
import type { MemoryStorage } from '../../ports/memory-storage.js';
import { rejectsWithQuartzError } from '../../../tests/fixtures/expect-error.js';
import { createTestContext, type TestContext } from '../testing.js';
import { PartitionLog, type PartitionConfig } from './partition-log.js';
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
