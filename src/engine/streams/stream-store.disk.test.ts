/** The streams engine on the Node disk adapter (lmdb + files): durability across reopen. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
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
  return { storage, ctx, streams: await StreamStore.open(ctx, 't1') };
}

describe('streams on the Node disk adapter', () => {
  it('keeps produced records, segments and group offsets across reopen', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qz-streams-'));
    dirs.push(dir);
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
    await a.streams.close();
    await a.storage.close();

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
    await b.streams.close();
    await b.storage.close();
  });

  it('keeps every record intact while the buffers of sealed batches are reused for new ones', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qz-streams-'));
    dirs.push(dir);
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
    await a.streams.close();
    await a.storage.close();

    const b = await open(dir);
    let offset = 0;
    while (offset < n) {
      const res = await b.streams.consume('t', 0, offset, { max_records: 1000 });
      res.records.forEach((r, i) => expect(dec.decode(r.value!)).toBe(value(offset + i)));
      offset = res.next_offset;
    }
    expect(offset).toBe(n);
    await b.streams.close();
    await b.storage.close();
  });

  it('deletes an orphan segment blob left by a roll that never recorded it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qz-streams-'));
    dirs.push(dir);
    const a = await open(dir);
    await a.streams.createTopic('t');
    await a.streams.produce('t', [{ value: enc.encode('kept') }]);
    const unit = await a.storage.unit('log/t1/t/0');
    await unit.blobs.put('seg/00000000000000000000', new Uint8Array([1, 2, 3]));
    await a.streams.close();
    await a.storage.close();

    const b = await open(dir);
    const unitB = await b.storage.unit('log/t1/t/0');
    expect(await unitB.blobs.list('seg/')).toEqual([]);
    const res = await b.streams.consume('t', 0, 0);
    expect(res.records.map((r) => dec.decode(r.value!))).toEqual(['kept']);
    await b.streams.close();
    await b.storage.close();
  });
});
