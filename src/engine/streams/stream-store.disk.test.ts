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
