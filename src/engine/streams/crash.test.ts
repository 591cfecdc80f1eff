/**
 * Crash safety of produce and segment rolls, and detection of damaged segment blobs.
 * A storage wrapper "crashes" after N writes (either before or after the Nth write lands);
 * a fresh StreamStore then reopens the surviving storage and must serve every acknowledged
 * record exactly once.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { readBatchRun } from '../../core/segment.js';
import { init } from '../../node/core.js';
import { createMemoryStorage, type MemoryStorage } from '../../ports/memory-storage.js';
import type { BatchOp, BlobStore, OrderedKV, StorageProvider, UnitStorage } from '../../ports/storage.js';
import { createTestContext } from '../testing.js';
import { StreamStore } from './stream-store.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

beforeAll(async () => {
  await init();
});

class Crash extends Error {}

/** Wraps a provider so that write number `crashAt` (1-based) and everything after it fail. */
function crashingStorage(inner: MemoryStorage, crashAt: number, landBeforeCrash: boolean): StorageProvider & { writes: number } {
  const state = { writes: 0 };
  const write = <T>(op: () => T): T => {
    state.writes++;
    if (state.writes < crashAt) return op();
    if (state.writes === crashAt && landBeforeCrash) op();
    throw new Crash(`crash at write ${state.writes}`);
  };
  const wrapUnit = (unit: UnitStorage): UnitStorage => {
    const kv: OrderedKV = {
      get: (k) => unit.kv.get(k),
      scan: (o) => unit.kv.scan(o),
      put: (k, v) => write(() => unit.kv.put(k, v)),
      delete: (k) => write(() => unit.kv.delete(k)),
      batch: (ops: BatchOp[]) => write(() => unit.kv.batch(ops)),
    };
    const blobs: BlobStore = {
      get: (k, r) => unit.blobs.get(k, r),
      head: (k) => unit.blobs.head(k),
      list: (p) => unit.blobs.list(p),
      put: async (k, b) => write(() => unit.blobs.put(k, b)),
      delete: async (k) => write(() => unit.blobs.delete(k)),
    };
    return { kv, blobs };
  };
  return {
    get writes() {
      return state.writes;
    },
    unit: (name) => wrapUnit(inner.unit(name)),
    listUnits: (prefix) => inner.listUnits(prefix),
    dropUnit: (name) => write(() => inner.dropUnit(name)),
    close: () => inner.close(),
  };
}

interface Run {
  acked: Map<number, string>;
  writes: number;
}

/** Produces batches (some concurrently) on a tiny segment size until storage crashes. */
async function workload(storage: StorageProvider & { writes: number }): Promise<Run> {
  const ctx = { ...createTestContext(), storage };
  const acked = new Map<number, string>();
  let streams: StreamStore;
  try {
    streams = await StreamStore.open(ctx, 't1');
    await streams.createTopic('t', { segment_bytes: 1024, retention_bytes: 1500, retention_ms: -1 });
  } catch (err) {
    if (err instanceof Crash) return { acked, writes: storage.writes };
    throw err;
  }
  try {
    for (let round = 0; round < 12; round++) {
      const batch = (k: number) => Array.from({ length: 8 }, (_, j) => ({ value: enc.encode(`r${round}-${k}-${j}`.padEnd(30, '#')) }));
      const results = await Promise.allSettled([0, 1, 2].map((k) => streams.produce('t', batch(k))));
      for (const [k, res] of results.entries()) {
        if (res.status === 'rejected') throw res.reason;
        res.value.offsets.forEach((o, j) => acked.set(o.offset, `r${round}-${k}-${j}`.padEnd(30, '#')));
      }
      if (round % 4 === 3) await streams.maintain('t');
    }
  } catch (err) {
    if (!(err instanceof Crash)) throw err;
  }
  return { acked, writes: storage.writes };
}

async function verify(memory: MemoryStorage, acked: Map<number, string>): Promise<void> {
  const ctx = { ...createTestContext(), storage: memory };
  const streams = await StreamStore.open(ctx, 't1');
  if (streams.listTopics().length === 0) {
    expect(acked.size).toBe(0);
    return;
  }
  const info = streams.describeTopic('t').partition_info[0]!;
  const seen = new Map<number, string>();
  let offset = info.log_start_offset;
  while (offset < info.high_watermark) {
    const res = await streams.consume('t', 0, offset, { max_records: 7 });
    for (const r of res.records) {
      expect(seen.has(r.offset)).toBe(false);
      seen.set(r.offset, dec.decode(r.value!));
    }
    expect(res.next_offset).toBeGreaterThan(offset);
    offset = res.next_offset;
  }
  // offsets are contiguous from the log start to the high watermark
  expect([...seen.keys()]).toEqual(Array.from({ length: info.high_watermark - info.log_start_offset }, (_, i) => info.log_start_offset + i));
  // every acknowledged record that retention has not removed is there, byte for byte
  for (const [o, v] of acked) if (o >= info.log_start_offset) expect(seen.get(o)).toBe(v);
  expect(info.high_watermark).toBeGreaterThanOrEqual(acked.size === 0 ? 0 : Math.max(...acked.keys()) + 1);
  // no orphan blobs survive the reopen
  const blobs = await memory.unit('log/t1/t/0').blobs.list('seg/');
  expect(blobs.length).toBe(info.segments);
  await streams.close();
}

describe('crash at every write', () => {
  it('keeps every acknowledged record exactly once, whether the crashing write landed or not', async () => {
    const clean = createMemoryStorage();
    const total = (await workload(crashingStorage(clean, Number.MAX_SAFE_INTEGER, false))).writes;
    expect(total).toBeGreaterThan(30);
    // the uncrashed run rolls segments and applies retention, so crashes land inside both
    const done = await StreamStore.open({ ...createTestContext(), storage: clean }, 't1');
    const info = done.describeTopic('t').partition_info[0]!;
    expect(info.segments).toBeGreaterThan(1);
    expect(info.log_start_offset).toBeGreaterThan(0);
    for (let crashAt = 1; crashAt <= total; crashAt++) {
      for (const landed of [false, true]) {
        const memory = createMemoryStorage();
        const { acked } = await workload(crashingStorage(memory, crashAt, landed));
        await verify(memory, acked);
        // and the log keeps working after recovery
        const again = await StreamStore.open({ ...createTestContext(), storage: memory }, 't1');
        if (again.listTopics().length > 0) {
          const res = await again.produce('t', [{ value: enc.encode('after') }]);
          const read = await again.consume('t', 0, res.offsets[0]!.offset);
          expect(dec.decode(read.records[0]!.value!)).toBe('after');
        }
      }
    }
  });
});

/** Request sizes: neighbours always differ, so a reused offset cannot line up with old entries. */
const SIZES = [2, 5, 3, 7, 4, 6, 1, 8];

describe('a failed commit that may have landed', () => {
  it('re-reads the tail before handing out offsets again, so no offset is used twice', async () => {
    let rejected = 0;
    // the failing batch is a produce commit or a roll's descriptor batch, depending on failAt
    for (let failAt = 1; failAt <= 6; failAt++) {
      for (const landed of [false, true]) {
        const memory = createMemoryStorage();
        let batches = 0;
        const storage: StorageProvider = {
          unit: (name) => {
            const unit = memory.unit(name);
            if (!name.startsWith('log/')) return unit;
            const kv: OrderedKV = {
              get: (k) => unit.kv.get(k),
              scan: (o) => unit.kv.scan(o),
              put: (k, v) => unit.kv.put(k, v),
              delete: (k) => unit.kv.delete(k),
              batch: (ops) => {
                if (++batches !== failAt) return unit.kv.batch(ops);
                if (landed) unit.kv.batch(ops);
                // reported asynchronously, as a real adapter does, so requests queue behind it
                return Promise.reject(new Error('transient storage error'));
              },
            };
            return { kv, blobs: unit.blobs };
          },
          listUnits: (p) => memory.listUnits(p),
          dropUnit: (n) => memory.dropUnit(n),
          close: () => memory.close(),
        };
        const ctx = { ...createTestContext(), storage };
        const streams = await StreamStore.open(ctx, 't1');
        await streams.createTopic('t', { segment_bytes: 1024 });
        const acked = new Map<number, string>();
        for (let round = 0; round < 8; round++) {
          // three producers per round: the first commits alone, the other two group-commit
          const outcomes = await Promise.allSettled(
            [0, 1, 2].map(async (k) => {
              // varying sizes, so a reused offset would leave entries that overlap or leave gaps
              const res = await streams.produce('t', Array.from({ length: SIZES[(round * 3 + k) % SIZES.length]! }, (_, j) => ({ value: enc.encode(`${round}-${k}-${j}`) })));
              res.offsets.forEach((o, j) => acked.set(o.offset, `${round}-${k}-${j}`));
            }),
          );
          rejected += outcomes.filter((o) => o.status === 'rejected').length;
        }
        // the log keeps working after the failure
        const after = await streams.produce('t', [{ value: enc.encode('after') }]);
        acked.set(after.offsets[0]!.offset, 'after');
        await streams.close();
        await verify(memory, acked);
      }
    }
    expect(rejected).toBeGreaterThan(4);
  });
});

describe('damaged segment blobs', () => {
  async function sealed(): Promise<{ memory: MemoryStorage; streams: StreamStore; blob: string }> {
    const ctx = createTestContext();
    const streams = await StreamStore.open(ctx, 't1');
    await streams.createTopic('t', { segment_bytes: 1 << 20 });
    for (let i = 0; i < 10; i++) await streams.produce('t', Array.from({ length: 10 }, (_, j) => ({ value: enc.encode(`v${i * 10 + j}`) })));
    await streams.maintain('t');
    const [info] = await ctx.storage.unit('log/t1/t/0').blobs.list('seg/');
    return { memory: ctx.storage, streams, blob: info!.key };
  }

  async function expectTypedFailure(p: Promise<unknown>, codes: string[]): Promise<QuartzError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(QuartzError);
    expect(codes).toContain((err as QuartzError).code);
    return err as QuartzError;
  }

  it('detects a flipped bit in a batch, for sequential and random reads, and names the segment', async () => {
    const { memory, streams, blob } = await sealed();
    const blobs = memory.unit('log/t1/t/0').blobs;
    const bytes = (await blobs.get(blob))!;
    bytes[200] ^= 0x10; // inside the first batches' stored records
    await blobs.put(blob, bytes);
    const random = await expectTypedFailure(streams.consume('t', 0, 13), [ErrorCode.CHECKSUM_MISMATCH, ErrorCode.CORRUPT_DATA]);
    expect(random.message).toContain(blob);
    // A page from the intact first batch stops where the damage starts; one that starts there fails.
    const before = await streams.consume('t', 0, 0, { max_records: 1000 });
    expect(before.records.map((r) => dec.decode(r.value!))).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`));
    expect(before.next_offset).toBe(10);
    await expectTypedFailure(streams.consume('t', 0, before.next_offset, { max_records: 1000 }), [ErrorCode.CHECKSUM_MISMATCH, ErrorCode.CORRUPT_DATA]);
    // batches the flip did not touch are still served
    const later = await streams.consume('t', 0, 95, { max_records: 5 });
    expect(later.records.map((r) => dec.decode(r.value!))).toEqual(['v95', 'v96', 'v97', 'v98', 'v99']);
  });

  it('detects a torn blob and a damaged footer rather than serving partial data', async () => {
    const { memory, streams, blob } = await sealed();
    const blobs = memory.unit('log/t1/t/0').blobs;
    const bytes = (await blobs.get(blob))!;
    await blobs.put(blob, bytes.subarray(0, bytes.length - 30));
    await expectTypedFailure(streams.consume('t', 0, 50), [ErrorCode.CORRUPT_DATA, ErrorCode.CHECKSUM_MISMATCH]);
    await expectTypedFailure(streams.consume('t', 0, 0, { max_records: 1000 }), [ErrorCode.CORRUPT_DATA, ErrorCode.CHECKSUM_MISMATCH]);

    const other = await sealed();
    const ob = other.memory.unit('log/t1/t/0').blobs;
    const full = (await ob.get(other.blob))!;
    full[full.length - 40] ^= 0x01; // inside the footer
    await ob.put(other.blob, full);
    await expectTypedFailure(other.streams.consume('t', 0, 50), [ErrorCode.CORRUPT_DATA, ErrorCode.CHECKSUM_MISMATCH]);
    await expectTypedFailure(other.streams.consume('t', 0, 0, { max_records: 1000 }), [ErrorCode.CORRUPT_DATA, ErrorCode.CHECKSUM_MISMATCH]);
  });

  it('detects a flipped bit in any batch of a tail entry: the page ends before it, a read from it fails', async () => {
    const ctx = createTestContext();
    let streams = await StreamStore.open(ctx, 't1');
    await streams.createTopic('t', { segment_bytes: 64 << 20 });
    // One write of ~70 KB: a run of several 16 KiB batches in one tail entry; then a second entry.
    await streams.produce('t', Array.from({ length: 600 }, (_, i) => ({ value: enc.encode(`{"n":${i},"text":"${'tail record '.repeat(9)}"}`) })));
    await streams.produce('t', [{ value: enc.encode('second') }]);
    await streams.close();
    const kv = ctx.storage.unit('log/t1/t/0').kv;
    const [entry] = (await kv.scan({ prefix: enc.encode('t') })) as Array<{ key: Uint8Array; value: Uint8Array }>;
    const run = readBatchRun(entry!.value);
    expect(run.length).toBeGreaterThan(3);
    const bad = entry!.value.slice();
    bad[bad.length - run[run.length - 1]!.length + 70]! ^= 0x04; // inside the last batch's records
    await kv.batch([{ type: 'put', key: entry!.key, value: bad }]);
    streams = await StreamStore.open(ctx, 't1');
    const damagedAt = run[run.length - 1]!.baseOffset;
    const page = await streams.consume('t', 0, 0, { max_records: 1000 });
    expect(page.records.map((r) => r.offset)).toEqual(Array.from({ length: damagedAt }, (_, i) => i));
    expect(page.next_offset).toBe(damagedAt);
    const err = await expectTypedFailure(streams.consume('t', 0, damagedAt, { max_records: 10 }), [ErrorCode.CHECKSUM_MISMATCH]);
    expect(err.message).toContain(`tail entry at offset 0, batch ${run.length - 1}`);
    expect((await streams.consume('t', 0, 600)).records.map((r) => dec.decode(r.value!))).toEqual(['second']);
    await streams.close();
  });

  it('refuses to open a partition whose tail entries are damaged or out of sequence', async () => {
    const { memory, streams } = await sealed();
    await streams.produce('t', [{ value: enc.encode('tail') }]);
    await streams.close();
    const kv = memory.unit('log/t1/t/0').kv;
    const [entry] = (await kv.scan({ prefix: enc.encode('t') })) as Array<{ key: Uint8Array; value: Uint8Array }>;
    const moved = entry!.key.slice();
    moved[8]! += 5; // the same batch under a key 5 offsets later: a gap
    await kv.batch([
      { type: 'delete', key: entry!.key },
      { type: 'put', key: moved, value: entry!.value },
    ]);
    const err = await expectTypedFailure(StreamStore.open({ ...createTestContext(), storage: memory }, 't1'), [ErrorCode.CORRUPT_DATA]);
    expect(err.message).toContain('log/t1/t/0');
    await kv.batch([{ type: 'put', key: moved, value: enc.encode('not a batch') }]);
    await expectTypedFailure(StreamStore.open({ ...createTestContext(), storage: memory }, 't1'), [ErrorCode.CORRUPT_DATA]);
  });

  it('reports a damaged topic catalog entry as corrupt data', async () => {
    const { memory, streams } = await sealed();
    await streams.close();
    await memory.unit('topics/t1').kv.put(enc.encode('t'), enc.encode('{"name":'));
    const err = await expectTypedFailure(StreamStore.open({ ...createTestContext(), storage: memory }, 't1'), [ErrorCode.CORRUPT_DATA]);
    expect(err.message).toContain("topic catalog entry 't'");
  });

  it('reports a missing segment blob as corrupt data', async () => {
    const { memory, streams, blob } = await sealed();
    await memory.unit('log/t1/t/0').blobs.delete(blob);
    const err = await expectTypedFailure(streams.consume('t', 0, 10), [ErrorCode.CORRUPT_DATA]);
    expect(err.message).toContain('missing');
  });
});
