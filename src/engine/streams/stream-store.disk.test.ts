/** The streams engine on the Node disk adapter (lmdb + files): durability across reopen. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { rejectsWithQuartzError } from '../../../tests/fixtures/expect-error.js';
import { ErrorCode } from '../../core/errors.js';
import { BATCH_HEADER_SIZE, SEGMENT_HEADER_SIZE, SegmentReader, readBatchHeader } from '../../core/segment.js';
import { init } from '../../node/core.js';
import { openDiskStorage } from '../../node/storage/disk-storage.js';
import { createTestContext } from '../testing.js';
import { StreamStore } from './stream-store.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const dirs: string[] = [];

beforeAll(async () => {
  await init();
});

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function open(dir: string) {
  const storage = await openDiskStorage({ dir });
  const ctx = { ...createTestContext(), storage };
  const streams = await StreamStore.open(ctx, 't1');
  return { storage, ctx, streams, close: async () => (await streams.close(), await storage.close()) };
}

/** A new data directory, removed after the test. */
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'qz-streams-'));
  dirs.push(dir);
  return dir;
}

const decodedValues = (records: { value: Uint8Array | null }[]) => records.map((r) => dec.decode(r.value!));

describe('streams on the Node disk adapter', () => {
  it('keeps produced records, segments and group offsets across reopen', async () => {
    const dir = await freshDir();
    const a = await open(dir);
    await a.streams.createTopic('orders', { partitions: 2, segment_bytes: 4096 });
    const writes = Array.from({ length: 30 }, (_, i) =>
      a.streams.produce('orders', Array.from({ length: 20 }, (_, j) => ({ key: enc.encode(`k${j % 5}`), value: enc.encode(`${i}-${j}-${'x'.repeat(i)}`) }))),
    );
    const acked = (await Promise.all(writes)).flatMap((r, i) => r.offsets.map((o, j) => ({ ...o, value: `${i}-${j}-${'x'.repeat(i)}` })));
    await a.streams.commitOffset('g', 'orders', 1, 7);
    await a.streams.maintain('orders'); // seal the tails (rolls by size run in the background)
    await a.streams.produce('orders', [{ value: enc.encode('tail'), partition: 0 }]);
    acked.push({ partition: 0, offset: acked.filter((x) => x.partition === 0).length, value: 'tail' });
    const before = a.streams.describeTopic('orders').partition_info;
    expect(before.every((p) => p.segments > 0)).toBe(true);
    await a.close();

    const b = await open(dir);
    expect(b.streams.describeTopic('orders').partition_info).toEqual(before);
    for (const p of [0, 1]) {
      const mine = acked.filter((x) => x.partition === p).sort((x, y) => x.offset - y.offset);
      expect(mine.map((x) => x.offset)).toEqual([...mine.keys()]);
      const got: string[] = [];
      let offset = 0;
      while (offset < before[p]!.high_watermark) {
        const res = await b.streams.consume('orders', p, offset, { max_records: 64 });
        got.push(...res.records.map((r) => dec.decode(r.value!)));
        offset = res.next_offset;
      }
      expect(got).toEqual(mine.map((x) => x.value));
    }
    expect((await b.streams.fetchOffsets('g', 'orders'))[1]!.offset).toBe(7);
    await b.close();
  });

  it('keeps every record intact while the buffers of sealed batches are reused for new ones', async () => {
    const dir = await freshDir();
    const a = await open(dir);
    await a.streams.createTopic('t', { segment_bytes: 64 * 1024 });
    // ~100 B JSON-ish values, distinct per record: each batch compresses to well over the pool's 16 KB floor.
    const hash = (n: number, k: number) => (Math.imul(n + k, 2654435761) >>> 0).toString(36);
    const value = (n: number) => `{"n":${n},"a":"${hash(n, 1)}${hash(n, 2)}","b":"${hash(n, 3)}${hash(n, 4)}","note":"${'abcdefghij'.slice(n % 7)}"}`.padEnd(100, '.');
    let n = 0;
    const batch = () => Array.from({ length: 800 }, () => ({ value: enc.encode(value(n++)) }));
    let read = 0;
    for (let round = 0; round < 12; round++) {
      // produce and read the tail back while older batches are sealed (and their buffers reused)
      const sealing = a.streams.maintain('t');
      await Promise.resolve();
      for (let k = 0; k < 3; k++) await Promise.all([a.streams.produce('t', batch()), a.streams.produce('t', batch())]);
      await sealing;
      const res = await a.streams.consume('t', 0, read, { max_records: 2000 });
      res.records.forEach((r, i) => expect(dec.decode(r.value!)).toBe(value(read + i)));
      read = res.next_offset;
    }
    expect(a.streams.describeTopic('t').partition_info[0]!.segments).toBeGreaterThan(5);
    await a.close();

    const b = await open(dir);
    let offset = 0;
    while (offset < n) {
      const res = await b.streams.consume('t', 0, offset, { max_records: 1000 });
      res.records.forEach((r, i) => expect(dec.decode(r.value!)).toBe(value(offset + i)));
      offset = res.next_offset;
    }
    expect(offset).toBe(n);
    await b.close();
  });

  it('deletes an orphan segment blob left by a roll that never recorded it', async () => {
    const dir = await freshDir();
    const a = await open(dir);
    await a.streams.createTopic('t');
    await a.streams.produce('t', [{ value: enc.encode('kept') }]);
    const unit = await a.storage.unit('log/t1/t/0');
    await unit.blobs.put('seg/00000000000000000000', new Uint8Array([1, 2, 3]));
    await a.close();

    const b = await open(dir);
    const unitB = await b.storage.unit('log/t1/t/0');
    expect(await unitB.blobs.list('seg/')).toEqual([]);
    const res = await b.streams.consume('t', 0, 0);
    expect(res.records.map((r) => dec.decode(r.value!))).toEqual(['kept']);
    await b.close();
  });
  it('answers the records before a damaged batch, and reports the damage to a read that starts in it', async () => {
    const dir = await freshDir();
    const a = await open(dir);
    await a.streams.createTopic('t');
    const value = (n: number) => `${n}:${(Math.imul(n, 2654435761) >>> 0).toString(36)}`.padEnd(100, String.fromCharCode(97 + (n % 26)));
    let n = 0;
    const write = (count: number) => a.streams.produce('t', Array.from({ length: count }, () => ({ value: enc.encode(value(n++)) })));
    // Three segments: [0, 40) of one batch, [40, 340) of several 16 KiB batches, [340, 380).
    for (const count of [40, 300, 40]) {
      await write(count);
      await a.streams.maintain('t');
    }
    const unit = await a.storage.unit('log/t1/t/0');
    const blobs = (await unit.blobs.list('seg/')).map((b) => b.key).sort();
    expect(blobs.length).toBe(3);
    const middle = (await unit.blobs.get(blobs[1]!))!.slice();
    const reader = SegmentReader.open(middle);
    expect(reader.batchCount).toBeGreaterThan(1);
    // Flip a bit in the records of the middle segment's second batch: only its CRC can tell.
    const first = readBatchHeader(middle, SEGMENT_HEADER_SIZE);
    const damagedAt = first.baseOffset + first.recordCount;
    middle[SEGMENT_HEADER_SIZE + first.length + BATCH_HEADER_SIZE + 20]! ^= 0x04;
    await unit.blobs.put(blobs[1]!, middle);
    await a.close();

    const b = await open(dir);
    const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => value(from + i));
    // From the intact first segment into the damaged one: the records up to the damage.
    const page = await b.streams.consume('t', 0, 0, { max_records: 1000 });
    expect(decodedValues(page.records)).toEqual(range(0, damagedAt));
    expect(page.next_offset).toBe(damagedAt);
    // The same from the middle segment's intact first batch, read whole or by range.
    for (const max of [1000, 5]) {
      const again = await b.streams.consume('t', 0, 40, { max_records: max });
      expect(decodedValues(again.records)).toEqual(range(40, Math.min(40 + max, damagedAt)));
    }
    // A read that starts in the damage gets the typed error naming the segment.
    await rejectsWithQuartzError(() => b.streams.consume('t', 0, damagedAt), ErrorCode.CHECKSUM_MISMATCH, new RegExp(`segment ${blobs[1]}.*CRC32C`));
    // The segment after the damage is read as usual.
    expect(decodedValues((await b.streams.consume('t', 0, 340, { max_records: 1000 })).records)).toEqual(range(340, 380));
    await b.close();
  });
  it('answers the intact batches of a tail entry before its damaged batch', async () => {
    const dir = await freshDir();
    const a = await open(dir);
    await a.streams.createTopic('t');
    const value = (n: number) => `${n}:`.padEnd(100, String.fromCharCode(97 + (n % 26)));
    // Two tail entries: [0, 10), then one produce of 400 records, a run of several 16 KiB batches.
    await a.streams.produce('t', Array.from({ length: 10 }, (_, i) => ({ value: enc.encode(value(i)) })));
    await a.streams.produce('t', Array.from({ length: 400 }, (_, i) => ({ value: enc.encode(value(10 + i)) })));
    const unit = await a.storage.unit('log/t1/t/0');
    const entries = await unit.kv.scan({ prefix: enc.encode('t') });
    expect(entries.length).toBe(2);
    const run = entries[1]!.value.slice();
    const first = readBatchHeader(run, 0);
    expect(first.nextOffset).toBeLessThan(410);
    // Flip a bit in the records of the run's second batch.
    run[first.length + BATCH_HEADER_SIZE + 20]! ^= 0x04;
    await unit.kv.put(entries[1]!.key, run);
    await a.close();

    const b = await open(dir);
    const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => value(from + i));
    const page = await b.streams.consume('t', 0, 0, { max_records: 1000 });
    expect(decodedValues(page.records)).toEqual(range(0, first.nextOffset));
    expect(page.next_offset).toBe(first.nextOffset);
    for (const [from, max] of [[10, 1000], [12, 5]] as const) {
      const again = await b.streams.consume('t', 0, from, { max_records: max });
      expect(decodedValues(again.records)).toEqual(range(from, Math.min(from + max, first.nextOffset)));
    }
    await rejectsWithQuartzError(() => b.streams.consume('t', 0, first.nextOffset), ErrorCode.CHECKSUM_MISMATCH, /tail entry at offset 10, batch 1: CRC32C/);
    await b.close();
  });
  it('lists no group whose committed offsets all went with a deleted topic, and a topic created again inherits none', async () => {
    const dir = await freshDir();
    const a = await open(dir);
    await a.streams.createTopic('orders', { partitions: 2 });
    await a.streams.createTopic('audit');
    await a.streams.produce('orders', [{ value: enc.encode('a'), partition: 1 }]);
    await a.streams.produce('audit', [{ value: enc.encode('b') }]);
    await a.streams.commitOffset('billing', 'orders', 1, 1);
    await a.streams.commitOffset('both', 'orders', 1, 1);
    await a.streams.commitOffset('both', 'audit', 0, 1);
    // A commit under way when the delete comes: it lands before the drop, or is refused; never kept.
    const racing = a.streams.commitOffset('late', 'orders', 0, 0).then(
      () => 'committed',
      (err: { code: string }) => err.code,
    );
    await a.streams.deleteTopic('orders');
    expect(['committed', ErrorCode.NOT_FOUND]).toContain(await racing);
    expect(await a.streams.listGroups()).toEqual(['both']);
    expect((await a.streams.listGroupsPage({ limit: 10 })).groups).toEqual(['both']);
    await a.close();

    const b = await open(dir);
    expect(await b.streams.listGroups()).toEqual(['both']);
    await b.streams.createTopic('orders', { partitions: 2 });
    for (const group of ['billing', 'both', 'late']) {
      expect((await b.streams.fetchOffsets(group, 'orders')).map((r) => r.offset)).toEqual([null, null]);
    }
    expect((await b.streams.fetchOffsets('both')).map((r) => `${r.topic}/${r.partition}=${r.offset}`)).toEqual(['audit/0=1']);
    await b.streams.commitOffset('billing', 'orders', 0, 0);
    expect(await b.streams.listGroups()).toEqual(['billing', 'both']);
    await b.close();
  });
});
