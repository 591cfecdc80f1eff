import { beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { init } from '../../node/core.js';
import type { StorageProvider, UnitStorage } from '../../ports/storage.js';
import { createTestContext, type TestContext } from '../testing.js';
import { seededRandom } from '../../core/random-testing.js';
import { RecordSpans, sealRun, type FramedRun, type SealRunOptions } from '../../core/segment.js';
import { partitionForKey } from './murmur2.js';
import { StreamStore, offsetRun, type ProduceRecord } from './stream-store.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const utf8 = (s: string) => enc.encode(s);
const str = (b: Uint8Array | null) => (b === null ? null : dec.decode(b));
const values = (n: number, from = 0, pad = 0): ProduceRecord[] =>
  Array.from({ length: n }, (_, i) => ({ value: utf8(`v${from + i}`.padEnd(pad, '.')) }));

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

beforeAll(async () => {
  await init();
});

async function setup(): Promise<{ ctx: TestContext; streams: StreamStore }> {
  const ctx = createTestContext();
  return { ctx, streams: await StreamStore.open(ctx, 't1') };
}

async function catchErr(p: Promise<unknown> | (() => unknown)): Promise<QuartzError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(QuartzError);
    return err as QuartzError;
  }
  throw new Error('expected a QuartzError');
}

/** Every record of a partition, read in pages of `page`. */
async function readAll(streams: StreamStore, topic: string, partition: number, page = 1000): Promise<Array<{ offset: number; value: string | null }>> {
  const out: Array<{ offset: number; value: string | null }> = [];
  let offset = streams.describeTopic(topic).partition_info[partition]!.log_start_offset;
  for (;;) {
    const res = await streams.consume(topic, partition, offset, { max_records: page });
    for (const r of res.records) out.push({ offset: r.offset, value: str(r.value) });
    if (res.next_offset === res.high_watermark) return out;
    expect(res.next_offset).toBeGreaterThan(offset);
    offset = res.next_offset;
  }
}

describe('topics', () => {
  it('creates, lists, describes and deletes topics', async () => {
    const { streams } = await setup();
    const cfg = await streams.createTopic('orders', { partitions: 3, retention_ms: 1000 });
    expect(cfg).toMatchObject({ name: 'orders', partitions: 3, retention_ms: 1000, retention_bytes: -1, compression: 'lz4' });
    await streams.createTopic('audit.log-v2_x');
    expect(streams.listTopics().map((t) => t.name)).toEqual(['audit.log-v2_x', 'orders']);
    const d = streams.describeTopic('orders');
    expect(d.partition_info).toEqual([0, 1, 2].map((partition) => ({ partition, log_start_offset: 0, high_watermark: 0, bytes: 0, segments: 0 })));
    await streams.deleteTopic('orders');
    expect(streams.listTopics().map((t) => t.name)).toEqual(['audit.log-v2_x']);
    expect((await catchErr(() => streams.describeTopic('orders'))).code).toBe(ErrorCode.NOT_FOUND);
  });

  it('validates names, partitions and reserved names', async () => {
    const { streams } = await setup();
    for (const bad of ['', 'a/b', 'sp ace', 'x'.repeat(250), '..', 'ü']) {
      const err = await catchErr(streams.createTopic(bad));
      expect(err.code).toBe(ErrorCode.INVALID_ARGUMENT);
      expect(err.message).toContain('topic name');
    }
    expect((await catchErr(streams.createTopic('t', { partitions: 0 }))).message).toContain('partitions');
    expect((await catchErr(streams.createTopic('t', { partitions: 1025 }))).message).toContain('partitions');
    expect((await catchErr(streams.createTopic('t', { segment_bytes: 1.5 }))).message).toContain('segment_bytes');
    expect((await catchErr(streams.createTopic('t', { compression: 'zstd' as 'lz4' }))).message).toContain('compression');
    const reserved = await catchErr(streams.createTopic('__dead_letters'));
    expect(reserved.message).toContain('reserved');
    await streams.createTopic('__dead_letters', {}, { system: true });
    await streams.createTopic('t');
    expect((await catchErr(streams.createTopic('t'))).code).toBe(ErrorCode.ALREADY_EXISTS);
  });

  it('survives reopen, and a recreated topic starts empty', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('orders', { partitions: 2 });
    await streams.produce('orders', [{ value: utf8('a'), partition: 1 }]);
    await streams.close();
    const again = await StreamStore.open(ctx, 't1');
    expect(again.describeTopic('orders').partition_info[1]!.high_watermark).toBe(1);
    await again.deleteTopic('orders');
    await again.createTopic('orders', { partitions: 2 });
    expect(again.describeTopic('orders').partition_info[1]!.high_watermark).toBe(0);
  });
});

describe('a topic delete cut short by a crash', () => {
  it('leaves no committed group offsets to a topic created again under the name (found by the model check)', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('orders', { partitions: 2 });
    await streams.produce('orders', [{ value: utf8('a'), partition: 1 }]);
    await streams.commitOffset('billing', 'orders', 1, 1);
    await streams.close();
    // The delete's first step alone, as a kill -9 right after it leaves it: the catalog entry is
    // gone, the partition units and the group's offsets are still there.
    await (await ctx.storage.unit('topics/t1')).kv.delete(utf8('orders'));
    const again = await StreamStore.open(ctx, 't1');
    await again.createTopic('orders', { partitions: 2 });
    expect(again.describeTopic('orders').partition_info[1]!.high_watermark).toBe(0);
    expect((await again.fetchOffsets('billing', 'orders')).map((r) => r.offset)).toEqual([null, null]);
    await expect(again.commitOffset('billing', 'orders', 1, 1)).rejects.toMatchObject({ code: ErrorCode.OFFSET_OUT_OF_RANGE });
  });
});

describe('a topic deleted while a roll seals its tail', () => {
  it('frees every byte it metered, the sealed segment included (found by the model check)', async () => {
    const { ctx, streams } = await setup();
    // Segment blob writes wait for the test: the roll is under way when the delete comes.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let sealing!: () => void;
    const sealStarted = new Promise<void>((resolve) => (sealing = resolve));
    const unit = ctx.storage.unit.bind(ctx.storage);
    (ctx.storage as StorageProvider).unit = (name: string) => {
      const u = unit(name) as UnitStorage;
      if (!name.startsWith('log/')) return u;
      const put = async (key: string, bytes: Uint8Array): Promise<void> => {
        sealing();
        await gate;
        return u.blobs.put(key, bytes);
      };
      const blobs = new Proxy(u.blobs, {
        get: (target, prop) => {
          if (prop === 'put') return put;
          if (prop === 'putParts') return undefined;
          const v = Reflect.get(target, prop) as unknown;
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      return { kv: u.kv, blobs };
    };
    await streams.createTopic('t', { segment_ms: 10 });
    await streams.produce('t', values(20));
    const ticking = ctx.clock.advance(20);
    await sealStarted;
    const deleting = streams.deleteTopic('t');
    release();
    await Promise.all([ticking, deleting]);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(0);
  });
});

describe('topics created and deleted concurrently', () => {
  it('one of several concurrent creates of a name wins; the others are ALREADY_EXISTS', async () => {
    const { streams } = await setup();
    const outcomes = await Promise.allSettled([1, 2, 3, 4].map((partitions) => streams.createTopic('t', { partitions })));
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const o of outcomes) if (o.status === 'rejected') expect((o.reason as QuartzError).code).toBe(ErrorCode.ALREADY_EXISTS);
    // The topic is the one the winner was told about.
    expect(streams.describeTopic('t').partitions).toBe((won[0] as PromiseFulfilledResult<{ partitions: number }>).value.partitions);
  });

  it('a create racing the delete of the existing topic is ALREADY_EXISTS, never a topic the delete then unwrites', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('t', { partitions: 2 });
    await streams.produce('t', [{ value: utf8('old'), partition: 1 }]);
    // Called in this order, in one turn: the create meets the old topic, the delete removes it.
    const [created, deleted] = await Promise.allSettled([streams.createTopic('t'), streams.deleteTopic('t')]);
    expect(created.status === 'rejected' && (created.reason as QuartzError).code).toBe(ErrorCode.ALREADY_EXISTS);
    expect(deleted.status).toBe('fulfilled');
    expect(streams.listTopics()).toEqual([]);
    expect((await catchErr(streams.produce('t', [{ value: utf8('late') }]))).code).toBe(ErrorCode.NOT_FOUND);
    // A create after the delete is called gets a topic that is really there, and stays after a reopen.
    const [deleting, creating] = [streams.deleteTopic('t').catch((err: unknown) => err), streams.createTopic('t')];
    expect(((await deleting) as QuartzError).code).toBe(ErrorCode.NOT_FOUND);
    await creating;
    await streams.produce('t', [{ value: utf8('new'), partition: 0 }]);
    await streams.close();
    const again = await StreamStore.open(ctx, 't1');
    expect(again.listTopics().map((t) => t.name)).toEqual(['t']);
    expect((await again.consume('t', 0, 0)).records.map((r) => str(r.value))).toEqual(['new']);
  });

  it('a second create in flight never drops the units of the first, which took records meanwhile', async () => {
    const { ctx, streams } = await setup();
    // Storage slow to list the units a create clears (a disk under load): the second create's listing waits.
    const listUnits = ctx.storage.listUnits!.bind(ctx.storage);
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    (ctx.storage as StorageProvider).listUnits = async (prefix: string) => {
      if (++calls === 2) await gate;
      return listUnits(prefix);
    };
    const first = streams.createTopic('t');
    const second = streams.createTopic('t').catch((err: unknown) => err);
    await first;
    await streams.produce('t', [{ value: utf8('kept'), partition: 0 }]);
    release();
    expect(((await second) as QuartzError).code).toBe(ErrorCode.ALREADY_EXISTS);
    await streams.close();
    const again = await StreamStore.open(ctx, 't1');
    expect((await again.consume('t', 0, 0, { max_records: 10 })).records.map((r) => str(r.value))).toEqual(['kept']);
  });
});

describe('topics with many partitions', () => {
  /** Storage whose unit creates and drops of partitions wait a turn, counting how many are in flight at once. */
  function countingStorage(ctx: TestContext): { most: { unit: number; drop: number } } {
    const most = { unit: 0, drop: 0 };
    const now = { unit: 0, drop: 0 };
    const track = async <T>(kind: 'unit' | 'drop', run: () => T): Promise<Awaited<T>> => {
      most[kind] = Math.max(most[kind], ++now[kind]);
      await new Promise((r) => setTimeout(r, 0));
      try {
        return await run();
      } finally {
        now[kind]--;
      }
    };
    const unit = ctx.storage.unit.bind(ctx.storage);
    const dropUnit = ctx.storage.dropUnit.bind(ctx.storage);
    (ctx.storage as StorageProvider).unit = (name: string) => (name.startsWith('log/') ? track('unit', () => unit(name)) : unit(name));
    (ctx.storage as StorageProvider).dropUnit = (name: string) => track('drop', () => dropUnit(name));
    return { most };
  }

  it("creates and drops a topic's partition units together, a bounded number at a time, so the adapter can batch them", async () => {
    const { ctx, streams } = await setup();
    const { most } = countingStorage(ctx);
    await streams.createTopic('wide', { partitions: 200 });
    await streams.produce('wide', [{ value: utf8('v'), partition: 199 }]);
    await streams.deleteTopic('wide');
    // One at a time, 200 partitions cost 200 lmdb commits each way on the Node disk adapter.
    expect(most.unit).toBeGreaterThan(1);
    expect(most.unit).toBeLessThanOrEqual(32);
    expect(most.drop).toBeGreaterThan(1);
    expect(most.drop).toBeLessThanOrEqual(32);
    expect(ctx.storage.listUnits('log/')).toEqual([]);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(0);
  });

  it('a delete whose partition units fail to drop still meters the bytes out; a create of the name drops them', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('orders', { partitions: 2 });
    await streams.produce('orders', [{ value: utf8('a value'), partition: 1 }]);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBeGreaterThan(0);
    const dropUnit = ctx.storage.dropUnit.bind(ctx.storage);
    let failDrop = true;
    (ctx.storage as StorageProvider).dropUnit = async (name: string) => {
      if (failDrop && name.startsWith('log/t1/orders/')) throw new Error('disk error');
      await dropUnit(name);
    };
    await expect(streams.deleteTopic('orders')).rejects.toThrow('disk error');
    expect((await catchErr(() => streams.describeTopic('orders'))).code).toBe(ErrorCode.NOT_FOUND);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(0);
    failDrop = false;
    await streams.createTopic('orders', { partitions: 1 });
    expect((await streams.consume('orders', 0, 0)).records).toEqual([]);
    expect(ctx.storage.listUnits('log/t1/orders/')).toEqual(['log/t1/orders/0']);
  });

  it('a create whose partition fails to open leaves no partition open: no timers run for it', async () => {
    const { ctx, streams } = await setup();
    const timersBefore = ctx.clock.pendingCount;
    const unit = ctx.storage.unit.bind(ctx.storage);
    (ctx.storage as StorageProvider).unit = (name: string) => {
      if (name === 'log/t1/wide/77') throw new QuartzError(ErrorCode.INSUFFICIENT_STORAGE, 'disk says no');
      return unit(name);
    };
    expect((await catchErr(streams.createTopic('wide', { partitions: 100 }))).code).toBe(ErrorCode.INSUFFICIENT_STORAGE);
    expect(ctx.clock.pendingCount).toBe(timersBefore);
    expect(streams.listTopics()).toEqual([]);
  });

  it('a reopen that fails on a later topic closes the topics it had opened', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('a', { partitions: 8 });
    await streams.createTopic('b', { partitions: 8 });
    await streams.close();
    expect(ctx.clock.pendingCount).toBe(0);
    const unit = ctx.storage.unit.bind(ctx.storage);
    (ctx.storage as StorageProvider).unit = (name: string) => {
      if (name === 'log/t1/b/3') throw new QuartzError(ErrorCode.INSUFFICIENT_STORAGE, 'disk says no');
      return unit(name);
    };
    expect((await catchErr(StreamStore.open(ctx, 't1'))).code).toBe(ErrorCode.INSUFFICIENT_STORAGE);
    expect(ctx.clock.pendingCount).toBe(0);
  });
});

describe('produce and consume', () => {
  it('round-trips keys, values, headers, timestamps, nulls and empties', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('t');
    const now = ctx.clock.now();
    const res = await streams.produce('t', [
      { key: utf8('k1'), value: utf8('hello'), headers: [{ key: 'h', value: utf8('x') }, { key: 'n', value: null }], timestamp: 1234 },
      { key: new Uint8Array(0), value: new Uint8Array(0) },
      { key: null, value: null, timestamp: null as unknown as number }, // null as absent, as before
    ]);
    expect(res.offsets).toEqual([0, 1, 2].map((offset) => ({ partition: 0, offset })));
    const out = await streams.consume('t', 0, 0);
    expect(out).toMatchObject({ next_offset: 3, high_watermark: 3, log_start_offset: 0 });
    const [a, b, c] = out.records;
    expect(a).toMatchObject({ offset: 0, timestamp: 1234 });
    expect(str(a!.key)).toBe('k1');
    expect(str(a!.value)).toBe('hello');
    expect(a!.headers!.map((h) => [h.key, str(h.value)])).toEqual([['h', 'x'], ['n', null]]);
    expect(b!.key).toEqual(new Uint8Array(0));
    expect(b!.value).toEqual(new Uint8Array(0));
    expect(b!.timestamp).toBe(now);
    expect(c!.key).toBeNull();
    expect(c!.value).toBeNull();
    expect(c!.timestamp).toBe(now);
    expect(ctx.usage.get('t1', 'records_produced')).toBe(3);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBeGreaterThan(0);
  });

  it('keeps order and honours max_records and max_bytes (at least one record)', async () => {
    const { streams } = await setup();
    await streams.createTopic('t');
    for (let i = 0; i < 10; i++) await streams.produce('t', values(100, i * 100));
    const all = await readAll(streams, 't', 0, 37);
    expect(all.map((r) => r.offset)).toEqual([...Array(1000).keys()]);
    expect(all.map((r) => r.value)).toEqual([...Array(1000).keys()].map((i) => `v${i}`));
    const page = await streams.consume('t', 0, 5, { max_records: 3 });
    expect(page.records.map((r) => r.offset)).toEqual([5, 6, 7]);
    expect(page.next_offset).toBe(8);
    const one = await streams.consume('t', 0, 10, { max_bytes: 1 });
    expect(one.records.length).toBe(1);
    expect(one.next_offset).toBe(11);
  });

  it('partitions by key like Kafka, by explicit partition, else sticky per batch', async () => {
    const { streams } = await setup();
    await streams.createTopic('t', { partitions: 4 });
    const keys = ['alice', 'bob', 'carol', 'dave', 'eve'];
    const res = await streams.produce('t', keys.map((k) => ({ key: utf8(k), value: utf8(k) })));
    res.offsets.forEach((o, i) => expect(o.partition).toBe(partitionForKey(utf8(keys[i]!), 4)));
    const explicit = await streams.produce('t', [{ value: utf8('x'), partition: 3 }]);
    expect(explicit.offsets[0]!.partition).toBe(3);
    const b1 = await streams.produce('t', values(5));
    const b2 = await streams.produce('t', values(5));
    expect(new Set(b1.offsets.map((o) => o.partition)).size).toBe(1);
    expect(new Set(b2.offsets.map((o) => o.partition)).size).toBe(1);
    expect(b2.offsets[0]!.partition).not.toBe(b1.offsets[0]!.partition);
    const err = await catchErr(streams.produce('t', [{ value: utf8('x'), partition: 7 }]));
    expect(err.code).toBe(ErrorCode.NOT_FOUND);
    expect(err.message).toBe("topic 't' has no partition 7");
  });

  it('places and stores records given as spans as it does the same records as objects: keys by murmur2 of their range, keyless sticky, one partition or several', async () => {
    const random = seededRandom(31);
    const twins = [await setup(), await setup()];
    for (const { streams } of twins) for (const [name, partitions] of [['one', 1], ['four', 4]] as const) await streams.createTopic(name, { partitions });
    for (let round = 0; round < 40; round++) {
      const text = Array.from({ length: 4000 }, () => String.fromCharCode(0x61 + Math.floor(random() * 26))).join('');
      const bytes = utf8(text);
      const n = 1 + Math.floor(random() * 60);
      const spans = new Int32Array(n * 4);
      const objects: ProduceRecord[] = [];
      // Keyed or keyless for a whole batch half the time, mixed the other half.
      const keyed = random();
      for (let i = 0; i < n; i++) {
        const hasKey = keyed < 0.25 ? false : keyed < 0.5 ? true : random() < 0.5;
        const ks = Math.floor(random() * 3900);
        const ke = ks + Math.floor(random() * 12);
        const vs = random() < 0.05 ? -1 : Math.floor(random() * 3800);
        const ve = vs === -1 ? -1 : vs + Math.floor(random() * 200);
        spans.set([hasKey ? ks : -1, ke, vs, ve], i * 4);
        objects.push({ key: hasKey ? bytes.subarray(ks, ke) : null, value: vs === -1 ? null : bytes.subarray(vs, ve) });
      }
      const topic = random() < 0.3 ? 'one' : 'four';
      const [a, b] = await Promise.all([twins[0]!.streams.produce(topic, new RecordSpans(bytes, spans)), twins[1]!.streams.produce(topic, objects)]);
      expect(a.offsets, `round ${round}`).toEqual(b.offsets);
    }
    for (const [topic, partitions] of [['one', 1], ['four', 4]] as const) {
      for (let p = 0; p < partitions; p++) {
        const [a, b] = await Promise.all(twins.map(({ streams }) => streams.consume(topic, p, 0, { max_records: 10_000 })));
        expect(a!.records.length).toBe(b!.records.length);
        a!.records.forEach((r, i) => {
          const o = b!.records[i]!;
          expect([r.offset, r.timestamp, str(r.key), str(r.value)]).toEqual([o.offset, o.timestamp, str(o.key), str(o.value)]);
        });
      }
    }
    const keyedSpans = new RecordSpans(utf8('alicebob'), Int32Array.of(0, 5, 0, 5, 5, 8, 5, 8));
    const placed = await twins[0]!.streams.produce('four', keyedSpans);
    expect(placed.offsets.map((o) => o.partition)).toEqual([partitionForKey(utf8('alice'), 4), partitionForKey(utf8('bob'), 4)]);
  });

  it('returns offsets that read, spread and serialize as a plain array', async () => {
    const { streams } = await setup();
    await streams.createTopic('t', { partitions: 3 });
    await streams.produce('t', [{ value: utf8('x'), partition: 0 }, { value: utf8('y'), partition: 0 }]);
    const res = await streams.produce('t', [
      { value: utf8('a'), partition: 2 },
      { value: utf8('b'), partition: 0 },
      { value: utf8('c'), partition: 2 },
    ]);
    expect(res.offsets).toBe(res.offsets);
    const expected = [
      { partition: 2, offset: 0 },
      { partition: 0, offset: 2 },
      { partition: 2, offset: 1 },
    ];
    expect(JSON.parse(JSON.stringify(res))).toEqual({ offsets: expected });
    expect({ ...res }).toEqual({ offsets: expected });
    const single = await streams.produce('t', [{ value: utf8('d'), partition: 1 }, { value: utf8('e'), partition: 1 }]);
    expect(structuredClone(single)).toEqual({ offsets: [{ partition: 1, offset: 0 }, { partition: 1, offset: 1 }] });
    expect(await streams.produce('t', [])).toEqual({ offsets: [] });
  });

  it('reads each offset without the objects: count, offsetOf, partitionOf and offsetRun agree with offsets', async () => {
    const { streams } = await setup();
    await streams.createTopic('t', { partitions: 3 });
    await streams.produce('t', [{ value: utf8('x'), partition: 0 }, { value: utf8('y'), partition: 2 }]);
    const spread = await streams.produce('t', [
      { value: utf8('a'), partition: 2 },
      { value: utf8('b'), partition: 0 },
      { value: utf8('c'), partition: 2 },
      { value: utf8('d'), partition: 1 },
    ]);
    const single = await streams.produce('t', [{ value: utf8('e'), partition: 1 }, { value: utf8('f'), partition: 1 }]);
    // read before `offsets` is built and after: the same answers
    for (const res of [spread, single]) {
      const read = () => Array.from({ length: res.count }, (_, i) => ({ partition: res.partitionOf(i), offset: res.offsetOf(i) }));
      const before = read();
      expect(before).toEqual(res.offsets);
      expect(read()).toEqual(before);
    }
    expect(spread.count).toBe(4);
    expect(spread.offsets).toEqual([
      { partition: 2, offset: 1 },
      { partition: 0, offset: 1 },
      { partition: 2, offset: 2 },
      { partition: 1, offset: 0 },
    ]);
    expect(offsetRun(spread)).toBeUndefined();
    expect(offsetRun(single)).toEqual({ partition: 1, base: 1, count: 2 });
    for (const bad of [-1, 4, 1.5, NaN, '0' as unknown as number]) {
      expect(() => spread.offsetOf(bad)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
      expect(() => spread.partitionOf(bad)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    }
    const none = await streams.produce('t', []);
    expect(none.count).toBe(0);
    expect(offsetRun(none)).toBeUndefined();
    expect(() => none.offsetOf(0)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT, message: 'this produce result holds no records, so there is no record 0' }));
    expect(() => spread.partitionOf(4)).toThrow(expect.objectContaining({ message: 'a record index must be an integer from 0 to 3, got 4' }));
  });

  it('keyed records over many partitions: each offset and partition in input order, and the result shows only {offsets}', async () => {
    const { streams } = await setup();
    await streams.createTopic('t', { partitions: 7 });
    const records = Array.from({ length: 300 }, (_, i) => ({ key: utf8(`k${i % 37}`), value: utf8(`v${i}`) }));
    const res = await streams.produce('t', records);
    const next = new Array<number>(7).fill(0);
    const expected = records.map((r) => {
      const partition = partitionForKey(r.key, 7);
      return { partition, offset: next[partition]!++ };
    });
    expect(Array.from({ length: res.count }, (_, i) => ({ partition: res.partitionOf(i), offset: res.offsetOf(i) }))).toEqual(expected);
    for (const bad of [1e300, Infinity, -Infinity, 2 ** 53, null as unknown as number]) {
      expect(() => res.offsetOf(bad)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    }
    for (const shown of [JSON.parse(JSON.stringify(res)), { ...res }, structuredClone(res)]) {
      expect(Object.keys(shown)).toEqual(['offsets']);
      expect(shown.offsets).toEqual(expected);
    }
    expect(Reflect.ownKeys(res)).toEqual(['offsets']);
  });

  it('rejects bad records and oversized records with typed errors', async () => {
    const { streams } = await setup();
    await streams.createTopic('t');
    expect((await catchErr(streams.produce('t', [{ value: 'str' as unknown as Uint8Array }]))).message).toContain('value must be bytes');
    expect((await catchErr(streams.produce('t', [{ value: null, timestamp: -5 }]))).message).toContain('timestamp');
    expect((await catchErr(streams.produce('t', [{ value: null, headers: [{ key: 1 as unknown as string, value: null }] }]))).message).toContain('header');
    expect((await catchErr(streams.produce('t', [{ value: new Uint8Array(2 * 1024 * 1024) }]))).code).toBe(ErrorCode.TOO_LARGE);
    expect((await catchErr(streams.produce('nope', values(1)))).message).toBe("topic 'nope' does not exist");
    expect(streams.describeTopic('t').partition_info[0]!.high_watermark).toBe(0);
  });

  it.each([
    ['sealed inline', undefined],
    // A home's encoder, taking every run (minBytes 1): the records are framed here, sealed there.
    ['framed for an encoder', { minBytes: 1, sealRun: (framed: FramedRun, o: Omit<SealRunOptions, 'output'>) => Promise.resolve(sealRun(framed, o).bytes), close: async () => {} }],
  ] as const)('refuses records whose value grows between the check and the codec, storing nothing (%s)', async (_, batchEncoder) => {
    const ctx = createTestContext();
    if (batchEncoder !== undefined) ctx.batchEncoder = batchEncoder;
    const streams = await StreamStore.open(ctx, 't1');
    await streams.createTopic('t');
    const small = new Uint8Array(10);
    const big = new Uint8Array(900 * 1024);
    // Answers 10 B to the engine's check and 900 KiB to the codec: three of them made one 2.7 MB entry.
    const growing = (): ProduceRecord => {
      let reads = 0;
      return {
        get value() {
          return reads++ === 0 ? small : big;
        },
      };
    };
    const err = await catchErr(streams.produce('t', [growing(), growing(), growing()]));
    expect(err.code).toBe(ErrorCode.TOO_LARGE);
    expect(streams.describeTopic('t').partition_info[0]!.high_watermark).toBe(0);
    // No offset was handed out: the next produce starts at 0, and reads back only its own record.
    expect(offsetRun(await streams.produce('t', values(1)))).toMatchObject({ base: 0 });
    expect(await readAll(streams, 't', 0)).toEqual([{ offset: 0, value: 'v0' }]);
  });

  it('splits a large produce into batches under the 1 MiB entry limit', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('big', { segment_bytes: 64 * 1024 * 1024 });
    // 5 MB of incompressible values
    const recs: ProduceRecord[] = Array.from({ length: 50 }, (_, i) => {
      const v = new Uint8Array(100_000);
      for (let j = 0; j < v.length; j++) v[j] = (Math.imul(j + 1, 2654435761 + i) >>> 13) & 0xff;
      return { value: v };
    });
    const res = await streams.produce('big', recs);
    expect(res.offsets.map((o) => o.offset)).toEqual([...Array(50).keys()]);
    const unit = ctx.storage.unit('log/t1/big/0');
    const entries = unit.kv.scan({ prefix: utf8('t') }) as Array<{ value: Uint8Array }>;
    expect(entries.length).toBeGreaterThan(4);
    for (const e of entries) expect(e.value.length).toBeLessThan(1024 * 1024);
    const out = await streams.consume('big', 0, 0, { max_records: 100, max_bytes: 64 * 1024 * 1024 });
    expect(out.records.length).toBe(50);
    // byte-wise compare by hand: deep equality on 5 MB of typed arrays is very slow
    out.records.forEach((r, i) => expect(sameBytes(r.value!, recs[i]!.value!)).toBe(true));
  });

  it('splits each partition\'s share of a produce spread over partitions under the 1 MiB entry limit', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('spread', { partitions: 2, segment_bytes: 64 * 1024 * 1024 });
    // 1.2 MB of incompressible values per partition, alternating: each share alone needs several entries
    const recs: ProduceRecord[] = Array.from({ length: 24 }, (_, i) => {
      const v = new Uint8Array(100_000);
      for (let j = 0; j < v.length; j++) v[j] = (Math.imul(j + 1, 2654435761 + i) >>> 13) & 0xff;
      return { value: v, partition: i % 2 };
    });
    const res = await streams.produce('spread', recs);
    expect(res.offsets).toEqual(recs.map((_, i) => ({ partition: i % 2, offset: Math.floor(i / 2) })));
    for (const p of [0, 1]) {
      const entries = ctx.storage.unit(`log/t1/spread/${p}`).kv.scan({ prefix: utf8('t') }) as Array<{ value: Uint8Array }>;
      expect(entries.length).toBeGreaterThan(1);
      for (const e of entries) expect(e.value.length).toBeLessThan(1024 * 1024);
      const out = await streams.consume('spread', p, 0, { max_records: 100, max_bytes: 64 * 1024 * 1024 });
      expect(out.records.length).toBe(12);
      out.records.forEach((r, k) => expect(sameBytes(r.value!, recs[2 * k + p]!.value!)).toBe(true));
    }
  });

  it('reads a record\'s partition once: a getter answering another partition after the check places it in none', async () => {
    const { streams } = await setup();
    await streams.createTopic('getters', { partitions: 2 });
    let reads = 0;
    // Partition 1 for two reads (the check reads it twice when it reads it again), 7 (no such partition) after.
    const record = { value: utf8('x'), get partition() { return reads++ < 2 ? 1 : 7; } };
    const res = await streams.produce('getters', [{ value: utf8('first'), partition: 0 }, record]);
    expect(res.offsets).toEqual([{ partition: 0, offset: 0 }, { partition: 1, offset: 0 }]);
    reads = 0;
    expect((await streams.produce('getters', [record])).offsets).toEqual([{ partition: 1, offset: 1 }]);
    expect((await streams.consume('getters', 1, 0)).records.map((r) => str(r.value))).toEqual(['x', 'x']);
  });

  it('refuses an array as a record, which has none of a record\'s fields', async () => {
    const { streams } = await setup();
    await streams.createTopic('arrays');
    for (const bad of [[], [utf8('v')]]) {
      const err = await catchErr(streams.produce('arrays', [bad as unknown as ProduceRecord]));
      expect([err.code, err.message]).toEqual([ErrorCode.INVALID_ARGUMENT, "record 0 for topic 'arrays' must be an object"]);
    }
    expect((await streams.describeTopic('arrays')).partition_info[0]!.high_watermark).toBe(0);
  });

  it('gives OFFSET_OUT_OF_RANGE with the valid range', async () => {
    const { streams } = await setup();
    await streams.createTopic('t');
    await streams.produce('t', values(5));
    const err = await catchErr(streams.consume('t', 0, 6));
    expect(err.code).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect(err.details).toMatchObject({ offset: 6, log_start_offset: 0, high_watermark: 5 });
    expect(err.message).toContain("topic 't' partition 0");
    expect((await catchErr(streams.consume('t', 0, -1))).code).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect((await catchErr(streams.consume('t', 0, 1.5))).code).toBe(ErrorCode.INVALID_ARGUMENT); // not an offset at all, as over HTTP
    expect((await catchErr(streams.consume('t', 0, 0, { max_records: 0 }))).code).toBe(ErrorCode.INVALID_ARGUMENT);
    const atEnd = await streams.consume('t', 0, 5);
    expect(atEnd).toMatchObject({ records: [], next_offset: 5, high_watermark: 5 });
  });

  it('group-commits concurrent producers: offsets contiguous, nothing lost or duplicated', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('t', { segment_bytes: 4096 });
    let batches = 0;
    const unit = ctx.storage.unit('log/t1/t/0');
    const original = unit.kv.batch.bind(unit.kv);
    unit.kv.batch = (ops) => {
      batches++;
      return original(ops);
    };
    const producers = Array.from({ length: 20 }, (_, p) =>
      (async () => {
        const got: number[] = [];
        for (let i = 0; i < 5; i++) {
          const res = await streams.produce('t', Array.from({ length: 10 }, (_, j) => ({ value: utf8(`p${p}-${i}-${j}`) })));
          got.push(...res.offsets.map((o) => o.offset));
        }
        return got;
      })(),
    );
    const offsets = (await Promise.all(producers)).flat().sort((a, b) => a - b);
    expect(offsets).toEqual([...Array(1000).keys()]);
    // 100 produce calls were made durable by far fewer storage batches
    expect(batches).toBeLessThan(100);
    const all = await readAll(streams, 't', 0);
    expect(all.length).toBe(1000);
    expect(new Set(all.map((r) => r.value)).size).toBe(1000);
    // each producer's batches stayed in its own order
    for (let p = 0; p < 20; p++) {
      const mine = all.filter((r) => r.value!.startsWith(`p${p}-`)).map((r) => r.value);
      expect(mine).toEqual(Array.from({ length: 50 }, (_, k) => `p${p}-${Math.floor(k / 10)}-${k % 10}`));
    }
  });

  it('settles producers in a closed loop into two alternating halves per commit', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('t', { segment_bytes: 64 * 1024 * 1024 });
    const unit = ctx.storage.unit('log/t1/t/0');
    const sizes: number[] = [];
    const original = unit.kv.batch.bind(unit.kv);
    // a commit that takes a while, as an fsync does, so producers wait on it
    unit.kv.batch = async (ops) => {
      sizes.push(ops.length);
      await new Promise((r) => setTimeout(r, 2));
      return original(ops);
    };
    await Promise.all(
      Array.from({ length: 8 }, async (_, p) => {
        for (let i = 0; i < 10; i++) await streams.produce('t', [{ value: utf8(`p${p}-${i}`) }]);
      }),
    );
    // one half encodes while the other half's commit is on disk (not 1 write, then 7, then 1…)
    const steady = sizes.slice(2, -2);
    expect(steady.length).toBeGreaterThan(4);
    expect(Math.min(...steady)).toBeGreaterThanOrEqual(3);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(80);
  });
});

describe('segments', () => {
  it('rolls by size, reads across segments and tail, and survives reopen', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('t', { segment_bytes: 2048 });
    for (let i = 0; i < 40; i++) await streams.produce('t', values(25, i * 25, 40));
    const d = streams.describeTopic('t').partition_info[0]!;
    expect(d.segments).toBeGreaterThan(3);
    expect(d.high_watermark).toBe(1000);
    const expected = [...Array(1000).keys()].map((i) => `v${i}`.padEnd(40, '.'));
    expect((await readAll(streams, 't', 0, 33)).map((r) => r.value)).toEqual(expected);
    // random reads go through the footer and one batch
    for (const at of [0, 1, 499, 777, 998]) {
      const r = await streams.consume('t', 0, at, { max_records: 2 });
      expect(r.records.map((x) => x.offset)).toEqual([at, at + 1]);
    }
    await streams.close();
    const again = await StreamStore.open(ctx, 't1');
    expect((await readAll(again, 't', 0, 101)).map((r) => r.value)).toEqual(expected);
  });

  it('reads random offsets with range reads and reads ahead the next segment for sequential consumers', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('t', { segment_bytes: 2048 });
    for (let i = 0; i < 40; i++) await streams.produce('t', values(25, i * 25, 40));
    await streams.maintain('t');
    const blobs = ctx.storage.unit('log/t1/t/0').blobs;
    const gets: Array<{ key: string; ranged: boolean }> = [];
    const original = blobs.get.bind(blobs);
    blobs.get = (key, range) => {
      gets.push({ key, ranged: range !== undefined });
      return original(key, range);
    };
    const originalInto = blobs.readInto!.bind(blobs);
    blobs.readInto = (key, offset, into) => {
      gets.push({ key, ranged: true });
      return originalInto(key, offset, into);
    };
    // a random read fetches the footer and one batch, never the whole segment
    await streams.consume('t', 0, 500, { max_records: 1 });
    expect(gets.length).toBe(2);
    expect(gets.every((g) => g.ranged)).toBe(true);
    // a sequential consumer loads whole segments and the next one ahead of need
    const segs = (await blobs.list('seg/')).map((b) => b.key);
    gets.length = 0;
    let res = await streams.consume('t', 0, 0, { max_records: 5 });
    res = await streams.consume('t', 0, res.next_offset, { max_records: 5 });
    await new Promise((r) => setTimeout(r, 0));
    const whole = gets.filter((g) => !g.ranged).map((g) => g.key);
    expect(whole).toContain(segs[0]);
    expect(whole).toContain(segs[1]);
  });

  it('keeps random readers on range reads across batch boundaries, and caches a segment read twice only into free room', async () => {
    const ctx = createTestContext();
    // a budget that holds the footers but not one whole segment
    let streams = await StreamStore.open(ctx, 't1', { segmentCacheBytes: 1500 });
    await streams.createTopic('t', { segment_bytes: 4096, compression: 'none' });
    for (let i = 0; i < 40; i++) await streams.produce('t', values(25, i * 25, 40));
    await streams.maintain('t');
    const blobs = ctx.storage.unit('log/t1/t/0').blobs;
    const segs = await blobs.list('seg/');
    // segments of three batches (the last may hold fewer: it is read by no test below)
    expect(segs.length).toBeGreaterThan(10);
    expect(segs.slice(0, -1).every((b) => b.size > 1500 && b.size <= 4096 + 200)).toBe(true);
    let whole = 0;
    const original = blobs.get.bind(blobs);
    blobs.get = (key, range) => {
      if (range === undefined) whole++;
      return original(key, range);
    };
    // 10 records from offset 20 cross from the first batch (0-24) into the second
    for (let i = 0; i < 3; i++) {
      const res = await streams.consume('t', 0, 20 + i * 100, { max_records: 10 });
      expect(res.records.map((r) => r.offset)).toEqual([...Array(10).keys()].map((k) => 20 + i * 100 + k));
      expect(res.records.map((r) => str(r.value))).toEqual([...Array(10).keys()].map((k) => `v${20 + i * 100 + k}`.padEnd(40, '.')));
    }
    await streams.consume('t', 0, 20, { max_records: 10 });
    await new Promise((r) => setTimeout(r, 0));
    expect(whole).toBe(0);
    await streams.close();
    // with room to spare, the second random read of a segment loads it whole, the first never
    streams = await StreamStore.open(ctx, 't1');
    await streams.consume('t', 0, 20, { max_records: 10 });
    expect(whole).toBe(0);
    await streams.consume('t', 0, 5, { max_records: 10 });
    expect(whole).toBe(1);
    expect((await streams.consume('t', 0, 42, { max_records: 10 })).records[0]!.offset).toBe(42);
    expect(whole).toBe(1);
  });

  it('still sees two consumers taking turns on a partition as sequential readers', async () => {
    const ctx = createTestContext();
    const streams = await StreamStore.open(ctx, 't1', { segmentCacheBytes: 1500 });
    await streams.createTopic('t', { segment_bytes: 2048, compression: 'none' });
    for (let i = 0; i < 40; i++) await streams.produce('t', values(25, i * 25, 40));
    await streams.maintain('t');
    const blobs = ctx.storage.unit('log/t1/t/0').blobs;
    const whole: string[] = [];
    const original = blobs.get.bind(blobs);
    blobs.get = (key, range) => {
      if (range === undefined) whole.push(key);
      return original(key, range);
    };
    let a = 0;
    let b = 500;
    for (let turn = 0; turn < 4; turn++) {
      const ra = await streams.consume('t', 0, a, { max_records: 5 });
      expect(ra.records[0]!.offset).toBe(a);
      a = ra.next_offset;
      const rb = await streams.consume('t', 0, b, { max_records: 5 });
      expect(rb.records[0]!.offset).toBe(b);
      b = rb.next_offset;
    }
    await new Promise((r) => setTimeout(r, 0));
    // each consumer's later reads loaded its segment whole (and the next one ahead)
    const segs = (await blobs.list('seg/')).map((x) => x.key);
    expect(whole).toContain(segs[0]);
    expect(whole.some((k) => k !== segs[0] && k !== segs[1])).toBe(true);
  });

  it('stores uncompressed batches when compression is none, and reads them back through segments', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('raw', { compression: 'none', segment_bytes: 1024 });
    for (let i = 0; i < 10; i++) await streams.produce('raw', values(10, i * 10, 40));
    await streams.maintain('raw');
    const d = streams.describeTopic('raw').partition_info[0]!;
    expect(d.segments).toBeGreaterThan(1);
    // 100 records of 40 bytes, stored as is: at least 4,000 bytes (LZ4 would shrink this padding)
    expect(d.bytes).toBeGreaterThan(4000);
    expect((await readAll(streams, 'raw', 0, 7)).map((r) => r.value)).toEqual([...Array(100).keys()].map((i) => `v${i}`.padEnd(40, '.')));
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(d.bytes);
  });

  it('rolls by time on the scheduler, at most one tick interval after the tail is segment_ms old', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('t', { segment_ms: 60_000 });
    await streams.produce('t', values(10));
    await ctx.clock.advance(59_999);
    expect(streams.describeTopic('t').partition_info[0]!.segments).toBe(0);
    await ctx.clock.advance(60_001); // segment_ms, then at most one interval of min(60 s, segment_ms)
    expect(streams.describeTopic('t').partition_info[0]!.segments).toBe(1);
    await streams.produce('t', values(10, 10));
    expect((await readAll(streams, 't', 0)).map((r) => r.value)).toEqual([...Array(20).keys()].map((i) => `v${i}`));
  });

  it('finds the offset for a timestamp across segments and tail', async () => {
    const { streams } = await setup();
    await streams.createTopic('t', { segment_bytes: 1024 });
    for (let i = 0; i < 30; i++) {
      await streams.produce('t', Array.from({ length: 10 }, (_, j) => ({ value: utf8('x'.repeat(30)), timestamp: 1000 + (i * 10 + j) * 10 })));
    }
    expect(streams.describeTopic('t').partition_info[0]!.segments).toBeGreaterThan(1);
    expect(await streams.offsetForTimestamp('t', 0, 0)).toBe(0);
    expect(await streams.offsetForTimestamp('t', 0, 1000)).toBe(0);
    expect(await streams.offsetForTimestamp('t', 0, 1001)).toBe(1);
    expect(await streams.offsetForTimestamp('t', 0, 1000 + 1234 * 1)).toBe(124);
    expect(await streams.offsetForTimestamp('t', 0, 1000 + 2990)).toBe(299);
    expect(await streams.offsetForTimestamp('t', 0, 999_999)).toBe(300);
  });
});

describe('tick timers', () => {
  /** A context whose scheduler only notes each task and when it falls due; the test runs them. */
  function recordingSetup(): { ctx: TestContext; timers: Array<{ due: number; task: () => void | Promise<void> }> } {
    const ctx = createTestContext();
    const timers: Array<{ due: number; task: () => void | Promise<void> }> = [];
    const scheduler = {
      schedule: (delayMs: number, task: () => void | Promise<void>) => {
        timers.push({ due: ctx.clock.now() + delayMs, task });
        return () => {};
      },
    };
    return { ctx: { ...ctx, scheduler } as unknown as TestContext, timers };
  }

  it('spreads the ticks of partitions opened together over the interval', async () => {
    const { ctx, timers } = recordingSetup();
    const streams = await StreamStore.open(ctx, 't1');
    const start = ctx.clock.now();
    await streams.createTopic('t', { partitions: 64 });
    // one timer per occupied 100 ms slot: 64 partitions take nearly as many slots
    expect(new Set(timers.map((t) => t.due)).size).toBe(timers.length);
    expect(timers.length).toBeGreaterThan(55);
    expect(timers.length).toBeLessThanOrEqual(64);
    const perSecond = new Map<number, number>();
    for (const { due } of timers) {
      expect(due).toBeGreaterThan(start);
      expect(due).toBeLessThanOrEqual(start + 60_000);
      const second = Math.floor((due - start) / 1000);
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    }
    // in 100 ms slots of the interval (partitions sharing one tick in one timer wake-up)
    expect(timers.every(({ due }) => due % 100 === 0)).toBe(true);
    // 64 over 60 seconds: about one a second, never a burst of them
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(6);
    expect(perSecond.size).toBeGreaterThan(30);
    await streams.close();
  });

  it('ticks partitions that share a slot on one timer: 2,048 partitions, at most 600 timers, every one rolled', async () => {
    const ctx = createTestContext();
    const streams = await StreamStore.open(ctx, 't1');
    await streams.createTopic('a', { partitions: 1024, segment_ms: 60_000 });
    await streams.createTopic('b', { partitions: 1024, segment_ms: 60_000 });
    expect(ctx.clock.pendingCount).toBeLessThanOrEqual(600);
    for (const topic of ['a', 'b']) {
      await streams.produce(topic, Array.from({ length: 1024 }, (_, p) => ({ value: utf8(`v${p}`), partition: p })));
    }
    // a topic deleted meanwhile takes its partitions out of slots the other's still tick in
    await streams.deleteTopic('a');
    expect(ctx.clock.pendingCount).toBeLessThanOrEqual(600);
    await ctx.clock.advance(120_000);
    expect(streams.describeTopic('b').partition_info.every((p) => p.segments === 1)).toBe(true);
    await streams.close();
    expect(ctx.clock.pendingCount).toBe(0);
  });

  it('passes over a partition whose tick is still running when its slot comes round again', async () => {
    const { ctx, timers } = recordingSetup();
    const gated = gateLogBlobPuts(ctx);
    const streams = await StreamStore.open(ctx, 't1');
    await streams.createTopic('t', { segment_ms: 1000 });
    await streams.produce('t', values(5));
    await ctx.clock.advance(2000);
    // the slot's wake-up starts a roll that waits on the disk; the next wake-up comes meanwhile
    const first = timers[0]!.task();
    await new Promise((r) => setTimeout(r, 10));
    expect(gated.puts()).toBe(1);
    await ctx.clock.advance(1000);
    const second = timers[1]!.task();
    expect(second).toBeUndefined();
    await new Promise((r) => setTimeout(r, 10));
    expect(gated.puts()).toBe(1);
    gated.release();
    await first;
    expect(streams.describeTopic('t').partition_info[0]!.segments).toBe(1);
    await streams.close();
  });

  it('keeps a partition on its phase: after a late tick the next is due an interval after the missed one', async () => {
    const { ctx, timers } = recordingSetup();
    const streams = await StreamStore.open(ctx, 't1');
    await streams.createTopic('t', { segment_ms: 1000 });
    const first = timers[0]!;
    expect(first.due - ctx.clock.now()).toBeLessThanOrEqual(1000);
    // the event loop was busy: the tick runs 400 ms after it fell due
    await ctx.clock.advance(first.due - ctx.clock.now() + 400);
    await first.task();
    expect(timers.length).toBe(2);
    expect(timers[1]!.due).toBe(first.due + 1000);
    await streams.close();
  });

  it('a topic deleted while its tick rolls, then created again under the same name, rolls on time on one slot timer', async () => {
    const ctx = createTestContext();
    const gated = gateLogBlobPuts(ctx);
    const streams = await StreamStore.open(ctx, 't1');
    await streams.createTopic('t', { segment_ms: 1000 });
    await streams.produce('t', values(5));
    const wakeUps = ctx.clock.advance(2000); // the slot's wake-up starts a roll that waits on the disk
    await new Promise((r) => setTimeout(r, 20));
    expect(gated.puts()).toBe(1);
    const deleted = streams.deleteTopic('t');
    await new Promise((r) => setTimeout(r, 20));
    gated.release();
    await deleted;
    await wakeUps;
    expect(ctx.clock.pendingCount).toBe(0); // the slot went with its last partition
    await streams.createTopic('t', { segment_ms: 1000 });
    expect(ctx.clock.pendingCount).toBe(1);
    await streams.produce('t', values(3));
    await ctx.clock.advance(2000);
    expect(streams.describeTopic('t').partition_info[0]).toMatchObject({ segments: 1, high_watermark: 3 });
    await streams.close();
    expect(ctx.clock.pendingCount).toBe(0);
  });

  it("a tenant closed during its slots' wake-ups leaves the other tenants' partitions in those slots ticking", async () => {
    const ctx = createTestContext();
    const [a, b] = [await StreamStore.open(ctx, 'a'), await StreamStore.open(ctx, 'b')];
    for (const s of [a, b]) {
      await s.createTopic('t', { segment_ms: 1000, partitions: 200 });
      for (let p = 0; p < 200; p++) await s.produce('t', [{ value: utf8('x'), partition: p }]);
    }
    const wakeUps = ctx.clock.advance(1500);
    const closing = a.close();
    await Promise.all([wakeUps, closing]);
    await ctx.clock.advance(1000);
    expect(b.describeTopic('t').partition_info.every((p) => p.segments === 1)).toBe(true);
    await b.close();
    expect(ctx.clock.pendingCount).toBe(0);
  });

  it('a roll that fails on a full disk is logged once, not every tick; the other partitions keep rolling; it rolls once the disk has room', async () => {
    const ctx = createTestContext();
    let diskFull = true;
    const unit = ctx.storage.unit.bind(ctx.storage);
    (ctx.storage as StorageProvider).unit = (name: string) => {
      const u = unit(name) as UnitStorage;
      if (!name.startsWith('log/t1/full/')) return u;
      const put = async (key: string, bytes: Uint8Array): Promise<void> => {
        if (diskFull) throw new QuartzError(ErrorCode.INSUFFICIENT_STORAGE, 'no space left on device');
        return u.blobs.put(key, bytes);
      };
      return { kv: u.kv, blobs: { ...u.blobs, put, putParts: undefined, get: u.blobs.get.bind(u.blobs), delete: u.blobs.delete.bind(u.blobs), list: u.blobs.list.bind(u.blobs) } };
    };
    const streams = await StreamStore.open(ctx, 't1');
    await streams.createTopic('full', { segment_ms: 1000 });
    await streams.createTopic('fine', { segment_ms: 1000 });
    const logged = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      await streams.produce('full', values(5));
      await streams.produce('fine', values(5));
      await ctx.clock.advance(10_000); // ten ticks
      expect(streams.describeTopic('fine').partition_info[0]!.segments).toBe(1);
      expect(streams.describeTopic('full').partition_info[0]!.segments).toBe(0);
      expect(logged).toHaveBeenCalledTimes(1);
      expect(String(logged.mock.calls[0]![0])).toContain("'log/t1/full/0'");
      diskFull = false;
      await ctx.clock.advance(1000);
      expect(streams.describeTopic('full').partition_info[0]!.segments).toBe(1);
      expect(logged).toHaveBeenCalledTimes(2);
      expect(String(logged.mock.calls[1]![0])).toContain("'log/t1/full/0'");
      expect((await readAll(streams, 'full', 0)).map((r) => r.value)).toEqual([...Array(5).keys()].map((i) => `v${i}`));
    } finally {
      logged.mockRestore();
      await streams.close();
    }
  });
});

describe('a roll triggered by segment_bytes that fails', () => {
  it('is logged once per failure streak through the logger port, and the partition rolls once storage works again', async () => {
    const ctx = createTestContext();
    const errors: Array<{ message: string; details?: Record<string, unknown> }> = [];
    const infos: string[] = [];
    ctx.logger = { error: (message, details) => errors.push({ message, details }), info: (message) => infos.push(message) };
    let diskFull = true;
    let refusedPuts = 0;
    const unit = ctx.storage.unit.bind(ctx.storage);
    (ctx.storage as StorageProvider).unit = (name: string) => {
      const u = unit(name) as UnitStorage;
      if (!name.startsWith('log/t1/full/')) return u;
      const put = async (key: string, bytes: Uint8Array): Promise<void> => {
        if (diskFull) {
          refusedPuts++;
          throw new QuartzError(ErrorCode.INSUFFICIENT_STORAGE, 'no space left on device');
        }
        return u.blobs.put(key, bytes);
      };
      return { kv: u.kv, blobs: { ...u.blobs, put, putParts: undefined, get: u.blobs.get.bind(u.blobs), delete: u.blobs.delete.bind(u.blobs), list: u.blobs.list.bind(u.blobs) } };
    };
    const random = seededRandom(7);
    // Incompressible, so the tail passes segment_bytes.
    const noise = (n: number): ProduceRecord[] => Array.from({ length: n }, () => ({ value: Uint8Array.from({ length: 200 }, () => random() * 256) }));
    const streams = await StreamStore.open(ctx, 't1');
    // segment_ms far off: only the size triggers a roll here, never the tick.
    await streams.createTopic('full', { segment_bytes: 1024, segment_ms: 86_400_000 });
    try {
      await streams.produce('full', noise(10)); // past segment_bytes: a roll is requested
      await vi.waitFor(() => expect(refusedPuts).toBe(1));
      await vi.waitFor(() => expect(errors).toHaveLength(1));
      expect(errors[0]!.message).toContain("'log/t1/full/0'");
      expect(errors[0]!.details).toMatchObject({ partition: 'log/t1/full/0', err: expect.objectContaining({ code: ErrorCode.INSUFFICIENT_STORAGE }) });
      // Each produce retries the roll; the streak is logged once, not per roll.
      for (let i = 1; i <= 3; i++) {
        await streams.produce('full', noise(1));
        await vi.waitFor(() => expect(refusedPuts).toBe(1 + i));
      }
      await streams.maintain('full').catch(() => undefined); // queued behind the rolls: they have all ended
      expect(errors).toHaveLength(1);
      expect(infos).toEqual([]);
      expect(streams.describeTopic('full').partition_info[0]!.segments).toBe(0);
      diskFull = false;
      await streams.produce('full', noise(1));
      await vi.waitFor(() => expect(streams.describeTopic('full').partition_info[0]!.segments).toBeGreaterThan(0));
      await vi.waitFor(() => expect(infos).toHaveLength(1));
      expect(infos[0]).toContain("'log/t1/full/0'");
      expect(errors).toHaveLength(1);
      expect((await readAll(streams, 'full', 0)).map((r) => r.offset)).toEqual([...Array(14).keys()]);
    } finally {
      await streams.close();
    }
  });
});

describe('retention', () => {
  it('deletes whole segments by age and moves the log start', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('t', { segment_bytes: 1024, retention_ms: 3_600_000 });
    for (let i = 0; i < 20; i++) await streams.produce('t', values(10, i * 10, 40));
    await streams.maintain('t'); // seal offsets 0..199 so the age boundary falls on a segment edge
    await ctx.clock.advance(1_800_000);
    for (let i = 20; i < 40; i++) await streams.produce('t', values(10, i * 10, 40));
    const before = streams.describeTopic('t').partition_info[0]!;
    expect(before.segments).toBeGreaterThan(2);
    const bytesBefore = ctx.usage.get('t1', 'bytes_stored');
    await ctx.clock.advance(1_900_000);
    const after = streams.describeTopic('t').partition_info[0]!;
    expect(after.log_start_offset).toBe(200);
    expect(ctx.usage.get('t1', 'bytes_stored')).toBeLessThan(bytesBefore);
    const err = await catchErr(streams.consume('t', 0, 0));
    expect(err.code).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect(err.details).toMatchObject({ log_start_offset: 200, high_watermark: 400 });
    expect((await readAll(streams, 't', 0)).map((r) => r.offset)).toEqual([...Array(200).keys()].map((i) => i + 200));
    // the deleted segments' blobs are gone
    const blobs = await ctx.storage.unit('log/t1/t/0').blobs.list('seg/');
    expect(blobs.length).toBe(streams.describeTopic('t').partition_info[0]!.segments);
  });

  it('seals a quiet tail older than retention_ms so retention can delete it', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('t', { retention_ms: 600_000 }); // segment_ms stays at its 1-day default
    await streams.produce('t', values(10));
    await ctx.clock.advance(600_000); // the tail is sealed once it is retention_ms old
    await ctx.clock.advance(600_000); // and that segment expires one retention period later
    const d = streams.describeTopic('t').partition_info[0]!;
    expect(d).toMatchObject({ log_start_offset: 10, high_watermark: 10, segments: 0, bytes: 0 });
    expect(ctx.usage.get('t1', 'bytes_stored')).toBe(0);
  });

  it('deletes the oldest segments beyond retention_bytes', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('t', { segment_bytes: 1024, retention_bytes: 4096, retention_ms: -1 });
    for (let i = 0; i < 20; i++) await streams.produce('t', values(20, i * 20, 50));
    await streams.maintain('t');
    const d = streams.describeTopic('t').partition_info[0]!;
    expect(d.bytes).toBeLessThanOrEqual(4096 + 2048);
    expect(d.log_start_offset).toBeGreaterThan(0);
    const rest = await readAll(streams, 't', 0);
    expect(rest[0]!.offset).toBe(d.log_start_offset);
    expect(rest[rest.length - 1]!.offset).toBe(399);
    await streams.close();
    const again = await StreamStore.open(ctx, 't1');
    expect(again.describeTopic('t').partition_info[0]!.log_start_offset).toBe(d.log_start_offset);
  });
});

describe('long-poll', () => {
  it('wakes as soon as a record arrives', async () => {
    const { streams } = await setup();
    await streams.createTopic('t');
    let settled = false;
    const poll = streams.consume('t', 0, 0, { max_wait_ms: 60_000 }).then((r) => {
      settled = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(settled).toBe(false);
    await streams.produce('t', values(2));
    const res = await poll;
    expect(res.records.map((r) => str(r.value))).toEqual(['v0', 'v1']);
  });

  it('returns empty after max_wait_ms on the scheduler', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('t');
    const poll = streams.consume('t', 0, 0, { max_wait_ms: 1000 });
    await ctx.clock.advance(1000);
    expect(await poll).toMatchObject({ records: [], next_offset: 0 });
  });

  it('is cancelled by an AbortSignal', async () => {
    const { streams } = await setup();
    await streams.createTopic('t');
    const ac = new AbortController();
    const poll = streams.consume('t', 0, 0, { max_wait_ms: 60_000, signal: ac.signal });
    ac.abort(new Error('shutdown'));
    await expect(poll).rejects.toThrow('shutdown');
    const aborted = streams.consume('t', 0, 0, { max_wait_ms: 60_000, signal: ac.signal });
    await expect(aborted).rejects.toThrow('shutdown');
  });

  it('holds the host open while it waits, and lets go however the wait ends', async () => {
    const ctx = createTestContext();
    let held = 0;
    const scheduler = {
      schedule: ctx.clock.schedule.bind(ctx.clock),
      hold: () => {
        held++;
        return () => void held--;
      },
    };
    const streams = await StreamStore.open({ ...ctx, scheduler }, 't1');
    await streams.createTopic('t');
    const ac = new AbortController();
    const endings: Array<[string, (poll: Promise<unknown>) => Promise<unknown>]> = [
      ['a record', async (poll) => (await streams.produce('t', values(1)), poll)],
      ['the time', async (poll) => (await ctx.clock.advance(1000), poll)],
      ['an abort', async (poll) => (ac.abort(), poll.catch(() => undefined))],
      ['close', async (poll) => (await streams.close(), poll.catch(() => undefined))],
    ];
    for (const [ending, end] of endings) {
      const hwm = streams.describeTopic('t').partition_info[0]!.high_watermark;
      const poll = streams.consume('t', 0, hwm, { max_wait_ms: 1000, signal: ending === 'an abort' ? ac.signal : undefined });
      expect(held, ending).toBe(1);
      await end(poll);
      expect(held, ending).toBe(0);
    }
  });

  it('wakes with STORAGE_CLOSED when the store shuts down', async () => {
    const { streams } = await setup();
    await streams.createTopic('t');
    const poll = streams.consume('t', 0, 0, { max_wait_ms: 60_000 });
    await streams.close();
    expect((await catchErr(poll)).code).toBe(ErrorCode.STORAGE_CLOSED);
  });

  it('wakes with NOT_FOUND when the topic is deleted', async () => {
    const { streams } = await setup();
    await streams.createTopic('t');
    const poll = streams.consume('t', 0, 0, { max_wait_ms: 60_000 });
    await streams.deleteTopic('t');
    expect((await catchErr(poll)).code).toBe(ErrorCode.NOT_FOUND);
  });
});

describe('consumer groups', () => {
  it('lists a group whose name starts with U+FEFF under that name (found by the model check)', async () => {
    const { streams } = await setup();
    await streams.createTopic('orders');
    await streams.produce('orders', values(2));
    await streams.commitOffset('\uFEFFbilling', 'orders', 0, 1);
    expect(await streams.listGroups()).toEqual(['\uFEFFbilling']);
    expect((await streams.fetchOffsets('\uFEFFbilling')).map((r) => r.offset)).toEqual([1]);
  });
  it('commits, fetches with lag, lists groups, validates', async () => {
    const { ctx, streams } = await setup();
    await streams.createTopic('orders', { partitions: 2 });
    await streams.produce('orders', [...values(5).map((r) => ({ ...r, partition: 0 })), ...values(3).map((r) => ({ ...r, partition: 1 }))]);
    await streams.commitOffset('billing', 'orders', 0, 2, 'host-a');
    await streams.commitOffset('audit', 'orders', 1, 3);
    expect(await streams.listGroups()).toEqual(['audit', 'billing']);
    expect(await streams.fetchOffsets('billing', 'orders')).toEqual([
      { topic: 'orders', partition: 0, offset: 2, metadata: 'host-a', high_watermark: 5, lag: 3 },
      { topic: 'orders', partition: 1, offset: null, metadata: null, high_watermark: 3, lag: null },
    ]);
    expect((await streams.fetchOffsets('audit')).map((r) => r.lag)).toEqual([null, 0]);
    expect((await catchErr(streams.commitOffset('billing', 'orders', 0, 6))).code).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect((await catchErr(streams.commitOffset('', 'orders', 0, 1))).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((await catchErr(streams.commitOffset('g', 'orders', 9, 1))).message).toBe("topic 'orders' has no partition 9");
    await streams.close();
    const again = await StreamStore.open(ctx, 't1');
    expect((await again.fetchOffsets('billing', 'orders'))[0]!.offset).toBe(2);
    await again.deleteTopic('orders');
    expect(await again.fetchOffsets('billing')).toEqual([]);
  });
  it('commits several partitions in one durable write, all of them or none', async () => {
    const ctx = createTestContext();
    let groupWrites = 0;
    // the memory storage, counting the writes to the groups' unit
    const storage = Object.create(ctx.storage) as StorageProvider;
    storage.unit = async (name: string) => {
      const unit = await ctx.storage.unit(name);
      if (!name.startsWith('groups/')) return unit;
      const kv = Object.create(unit.kv) as UnitStorage['kv'];
      kv.batch = (ops) => (groupWrites++, unit.kv.batch(ops));
      return { ...unit, kv };
    };
    const streams = await StreamStore.open({ ...ctx, storage }, 't1');
    await streams.createTopic('orders', { partitions: 4 });
    await streams.produce('orders', [0, 1, 2, 3].flatMap((p) => values(p + 2).map((r) => ({ ...r, partition: p }))));
    const none = async (offsets: Parameters<StreamStore['commitOffsets']>[2]) => {
      const err = await catchErr(streams.commitOffsets('g', 'orders', offsets));
      expect((await streams.fetchOffsets('g', 'orders')).every((r) => r.offset === null)).toBe(true);
      return err;
    };
    expect((await none([{ partition: 0, offset: 1 }, { partition: 1, offset: 9 }])).code).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect((await none([{ partition: 0, offset: 1 }, { partition: 7, offset: 0 }])).message).toBe("topic 'orders' has no partition 7");
    expect((await none([{ partition: 2, offset: 1 }, { partition: 2, offset: 2 }])).message).toMatch(/partition 2 appears more than once/);
    expect((await none([{ partition: 0, offset: 1, metadata: 'x'.repeat(5000) }])).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((await none([])).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((await none([{ partition: 0, offset: 1 }, null as never])).message).toMatch(/must be \{partition, offset, metadata\?\}, got null/);
    expect((await none('nope' as never)).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(groupWrites).toBe(0);
    await streams.commitOffsets('g', 'orders', [
      { partition: 3, offset: 5, metadata: 'host-b' },
      { partition: 0, offset: 2 },
      { partition: 1, offset: 1 },
    ]);
    expect(groupWrites).toBe(1);
    expect(await streams.fetchOffsets('g', 'orders')).toEqual([
      { topic: 'orders', partition: 0, offset: 2, metadata: null, high_watermark: 2, lag: 0 },
      { topic: 'orders', partition: 1, offset: 1, metadata: null, high_watermark: 3, lag: 2 },
      { topic: 'orders', partition: 2, offset: null, metadata: null, high_watermark: 4, lag: null },
      { topic: 'orders', partition: 3, offset: 5, metadata: 'host-b', high_watermark: 5, lag: 0 },
    ]);
    expect(await streams.listGroups()).toEqual(['g']);
  });
});

describe('StreamStore with hostile arguments', () => {
  it('refuses a signal that is not an AbortSignal before a long-poll registers, so close still works', async () => {
    const { streams } = await setup();
    await streams.createTopic('t');
    const err = await catchErr(streams.consume('t', 0, 0, { max_wait_ms: 1000, signal: {} as AbortSignal }));
    expect(err.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(err.message).toMatch(/signal must be an AbortSignal/);
    await streams.close(); // threw a TypeError from the abandoned waiter before the check
  });

  it('takes null options as none and names odd values in messages instead of throwing a TypeError', async () => {
    const { streams } = await setup();
    await streams.createTopic('t', null as never);
    await streams.produce('t', [{ value: utf8('a') }]);
    expect((await streams.consume('t', 0, 0, null as never)).records).toHaveLength(1);
    expect((await catchErr(streams.consume('t', 0, Symbol('o') as never))).message).toBe('offset must be an integer, got Symbol(o)');
    expect((await catchErr(streams.createTopic(10n as never))).message).toMatch(/got 10n/);
    expect((await catchErr(streams.createTopic('c', { compression: 10n as never }))).message).toMatch(/got 10n/);
    expect((await catchErr(streams.commitOffset(10n as never, 't', 0, 0))).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((await catchErr(streams.fetchOffsets('g', Symbol('t') as never))).code).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('lets a topic create under way finish before close returns (and refuses the queued ones)', async () => {
    const { ctx, streams } = await setup();
    let settled = false;
    const creating = streams.createTopic('t', { partitions: 3 }).finally(() => (settled = true));
    const queued = streams.createTopic('u').catch((err: QuartzError) => err.code);
    for (let i = 0; i < 3; i++) await Promise.resolve(); // the first create is now awaiting storage
    await streams.close();
    // Before, close returned while the create went on: it opened logs nobody closed, and in the
    // engine (which closes storage next) it failed with storage_closed after writing its catalog entry.
    expect(settled).toBe(true);
    await creating;
    expect(await queued).toBe(ErrorCode.STORAGE_CLOSED);
    const reopened = await StreamStore.open(ctx, 't1');
    expect(reopened.listTopics().map((t) => t.name)).toEqual(['t']);
    await reopened.close();
  });

  it('refuses lone surrogates in group ids and header keys, which UTF-8 would store as U+FFFD', async () => {
    const { streams } = await setup();
    await streams.createTopic('t');
    expect((await catchErr(streams.commitOffset('g\uD800', 't', 0, 0))).message).toMatch(/well-formed Unicode/);
    const err = await catchErr(streams.produce('t', [{ value: null, headers: [{ key: 'h\uDC00', value: null }] }]));
    expect(err.message).toMatch(/header key .*lone surrogate/);
    expect(streams.describeTopic('t').partition_info[0]!.high_watermark).toBe(0);
  });
});

describe('group names of every kind (seeded)', () => {
  it('list and keep their offsets as they are; a topic deleted and created again drops only its own, in its own tenant', async () => {
    const ctx = createTestContext();
    const [mine, theirs] = [await StreamStore.open(ctx, 't1'), await StreamStore.open(ctx, 't2')];
    const pieces = ['\uFEFF', 'g', '-', ' ', '"', '\\', '/', '.', 'é', '中', '😀', '\u{10FFFF}', '\u2028', '\u007f', '\u0085', '\uFFFE', 'orders', 'o'];
    const rand = seededRandom(53);
    const groups = new Set<string>(['\uFEFF', '\uFEFF\uFEFF', 'x\uFEFF', 'orders', 'o']);
    while (groups.size < 40) groups.add(Array.from({ length: 1 + Math.floor(rand() * 4) }, () => pieces[Math.floor(rand() * pieces.length)]).join(''));
    for (const s of [mine, theirs]) {
      for (const name of ['orders', 'orders2', 'order']) {
        await s.createTopic(name, { partitions: 2 });
        await s.produce(name, [{ value: utf8('a'), partition: 0 }, { value: utf8('b'), partition: 1 }]);
      }
    }
    for (const g of groups) {
      for (const s of [mine, theirs]) for (const name of ['orders', 'orders2', 'order']) await s.commitOffset(g, name, 1, 1);
    }
    expect(new Set(await mine.listGroups())).toEqual(groups);
    await mine.deleteTopic('orders');
    await mine.createTopic('orders', { partitions: 2 });
    for (const g of groups) {
      const what = JSON.stringify(g);
      expect((await mine.fetchOffsets(g, 'orders')).map((r) => r.offset), what).toEqual([null, null]);
      for (const name of ['orders2', 'order']) expect((await mine.fetchOffsets(g, name)).map((r) => r.offset), what).toEqual([null, 1]);
      for (const name of ['orders', 'orders2', 'order']) expect((await theirs.fetchOffsets(g, name)).map((r) => r.offset), what).toEqual([null, 1]);
    }
    expect(new Set(await mine.listGroups())).toEqual(groups);
    expect(new Set(await theirs.listGroups())).toEqual(groups);
    await mine.close();
    await theirs.close();
  });
});

/** Holds every blob put of the partitions' logs (a roll's segment write) until `release`, counting them. */
function gateLogBlobPuts(ctx: { storage: StorageProvider }): { release(): void; puts(): number } {
  let open!: () => void;
  let gate: Promise<void> | undefined = new Promise<void>((resolve) => (open = resolve));
  let puts = 0;
  const unit = ctx.storage.unit.bind(ctx.storage);
  ctx.storage.unit = (name: string) => {
    const u = unit(name) as UnitStorage;
    if (!name.startsWith('log/')) return u;
    const put = async (key: string, bytes: Uint8Array): Promise<void> => {
      puts++;
      if (gate !== undefined) await gate;
      return u.blobs.put(key, bytes);
    };
    return { kv: u.kv, blobs: { ...u.blobs, put, putParts: undefined, get: u.blobs.get.bind(u.blobs), delete: u.blobs.delete.bind(u.blobs), list: u.blobs.list.bind(u.blobs) } };
  };
  return {
    release: () => {
      gate = undefined;
      open();
    },
    puts: () => puts,
  };
}
