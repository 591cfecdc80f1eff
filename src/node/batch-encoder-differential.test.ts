/**
 * Differential: the same seeded produces through the Node home's real BatchEncoderPool (worker
 * threads, transferred and pooled buffers, lmdb's putOwned) and inline give the same offsets, the
 * same consume answers and byte-identical tail entries and segment blobs: several topics and
 * partitions at once, small inline writes mixed with large sealed ones, runs cut in several tail
 * entries, single huge records, incompressible values, Node Buffers with a byteOffset as values
 * and keys, and size rolls recycling buffers while runs are away.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../core/random-testing.js';
import type { BatchEncoder } from '../ports/batch-encoder.js';
import { createTestContext } from '../engine/testing.js';
import { StreamStore, type ProduceRecord } from '../engine/streams/stream-store.js';
import { BatchEncoderPool } from './batch-encoder-pool.js';
import { init } from './core.js';
import { openDiskStorage } from './storage/disk-storage.js';

const dirs: string[] = [];

beforeAll(async () => {
  await init();
});

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const TOPICS = [
  { name: 'a', partitions: 3 },
  { name: 'b', partitions: 2 },
];

/** One produce: its topic, records (some with an explicit partition) and the values to expect back. */
interface Produce {
  topic: string;
  records: ProduceRecord[];
}

/**
 * Seeded produces: mostly small (a few records, inline), some of 256 KiB to 2 MiB of compressible
 * records (sealed on a thread; above 896 KiB cut into several tail entries), values that are
 * views into larger Node Buffers (byteOffset != 0) and Buffer.from pool slabs.
 */
function workload(seed: number, count: number): Produce[] {
  const random = seededRandom(seed);
  const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', '{"n":', '}', ' ', 'quartz'];
  const text = (n: number) => {
    let s = '';
    while (s.length < n) s += words[Math.floor(random() * words.length)];
    return s.slice(0, n);
  };
  const value = (n: number): Uint8Array => {
    const kind = random();
    if (kind < 0.3) {
      // a view in the middle of a larger buffer, filled around it with bytes that must not leak in
      const pad = 1 + Math.floor(random() * 64);
      const big = Buffer.alloc(n + 2 * pad, 0xab);
      big.write(text(n), pad, 'latin1');
      return big.subarray(pad, pad + n);
    }
    if (kind < 0.5) return Buffer.from(text(n)); // small ones share Node's pool slab
    if (kind < 0.6) return Uint8Array.from({ length: n }, () => Math.floor(random() * 256)); // LZ4 cannot shrink these
    return new TextEncoder().encode(text(n));
  };
  return Array.from({ length: count }, (_, i) => {
    const topic = TOPICS[Math.floor(random() * TOPICS.length)]!;
    const large = random() < 0.35;
    // A few writes of one or two huge records (a batch each, up to the 896 KiB record limit).
    const huge = !large && random() < 0.08;
    const n = large ? 200 + Math.floor(random() * 1800) : huge ? 1 + Math.floor(random() * 2) : 1 + Math.floor(random() * 6);
    const size = large ? 600 + Math.floor(random() * 1200) : huge ? 300_000 + Math.floor(random() * 500_000) : 10 + Math.floor(random() * 3000);
    const partition = random() < 0.8 ? Math.floor(random() * topic.partitions) : undefined;
    const records = Array.from({ length: n }, (_, j): ProduceRecord => {
      const r: ProduceRecord = { key: random() < 0.3 ? Buffer.from(`k${j % 7}`) : null, value: random() < 0.02 ? null : value(size) };
      if (random() < 0.9) r.timestamp = 1_700_000_000_000 + i * 1000 + j;
      if (random() < 0.1) r.headers = [{ key: 'h', value: value(5) }];
      if (partition !== undefined) r.partition = partition;
      return r;
    });
    return { topic: topic.name, records };
  });
}

interface Outcome {
  offsets: unknown[];
  consumed: Record<string, unknown[]>;
  units: Record<string, string[]>;
}

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

async function run(seed: number, encoder: BatchEncoder | undefined, segmentBytes: number): Promise<Outcome> {
  const dir = await mkdtemp(join(tmpdir(), 'qz-encoder-diff-'));
  dirs.push(dir);
  const storage = await openDiskStorage({ dir });
  const ctx = { ...createTestContext({ start: 1_700_000_000_000 }), storage, batchEncoder: encoder };
  const streams = await StreamStore.open(ctx, 't1');
  for (const t of TOPICS) await streams.createTopic(t.name, { partitions: t.partitions, segment_bytes: segmentBytes });
  const produces = workload(seed, 60);
  // In three waves, each all at once, so commits, rolls and runs away on threads overlap.
  const offsets: unknown[] = [];
  for (let wave = 0; wave < 3; wave++) {
    const part = produces.filter((_, i) => i % 3 === wave);
    const results = await Promise.all(part.map((p) => streams.produce(p.topic, p.records)));
    offsets.push(...results.map((r) => r.offsets));
  }
  const consumed: Record<string, unknown[]> = {};
  for (const t of TOPICS) {
    for (let p = 0; p < t.partitions; p++) {
      const got: unknown[] = [];
      for (let at = 0; ; ) {
        const res = await streams.consume(t.name, p, at, { max_records: 500, max_bytes: 4 << 20 });
        if (res.records.length === 0) break;
        for (const r of res.records) got.push({ ...r, key: r.key && hex(r.key), value: r.value && hex(r.value), headers: r.headers?.map((h) => ({ ...h, value: h.value && hex(h.value) })) });
        at = res.next_offset;
      }
      consumed[`${t.name}/${p}`] = got;
    }
  }
  await streams.close();
  const units: Record<string, string[]> = {};
  for (const t of TOPICS) {
    for (let p = 0; p < t.partitions; p++) {
      const unit = await storage.unit(`log/t1/${t.name}/${p}`);
      const tail = (await unit.kv.scan({ prefix: new Uint8Array([0x74]) })).map((e) => `${hex(e.key)}=${hex(e.value)}`);
      const blobs: string[] = [];
      for (const { key } of await unit.blobs.list('seg/')) blobs.push(`${key}=${hex((await unit.blobs.get(key))!)}`);
      units[`${t.name}/${p}`] = [...tail, ...blobs];
    }
  }
  await storage.close();
  await encoder?.close();
  return { offsets, consumed, units };
}

/** The pool, counting the runs it took (rather than declined), so the test knows the threads were used. */
function counted(pool: BatchEncoderPool): BatchEncoder & { taken: number } {
  const encoder = {
    minBytes: pool.minBytes,
    taken: 0,
    sealRun: (...args: Parameters<BatchEncoder['sealRun']>) => {
      const sealed = pool.sealRun(...args);
      if (sealed !== undefined) encoder.taken++;
      return sealed;
    },
    close: () => pool.close(),
  };
  return encoder;
}

describe('produce through the worker-thread encoder against inline', () => {
  it('gives the same offsets, consume answers and stored bytes (no rolls during the produces)', async () => {
    const inline = await run(7, undefined, 1 << 30);
    const encoder = counted(new BatchEncoderPool({ threads: 2 }));
    const pooled = await run(7, encoder, 1 << 30);
    expect(encoder.taken).toBeGreaterThan(10);
    expect(Object.values(inline.units).flat().length).toBeGreaterThan(20);
    expect(pooled.offsets).toEqual(inline.offsets);
    expect(pooled.consumed).toEqual(inline.consumed);
    expect(pooled.units).toEqual(inline.units);
  }, 60_000);

  it('gives the same consume answers while size rolls recycle buffers under runs in flight', async () => {
    const inline = await run(8, undefined, 512 * 1024);
    // A lower line than the default, so mid-sized writes go to the threads too.
    const encoder = counted(new BatchEncoderPool({ threads: 2, minBytes: 16 * 1024 }));
    const pooled = await run(8, encoder, 512 * 1024);
    expect(encoder.taken).toBeGreaterThan(10);
    expect(pooled.offsets).toEqual(inline.offsets);
    expect(pooled.consumed).toEqual(inline.consumed);
  }, 60_000);
});
