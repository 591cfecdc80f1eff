// The engine as a library (docs/library.md), on a real data directory: bad input of any type is
// invalid_argument naming what was wrong, not another code whose message misleads; a data
// directory is open in one engine at a time, however many start at once.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, QuartzError } from '../core/errors.js';
import type { Engine } from '../engine/engine.js';
import { createEngine, createMemoryStorage, openQuartz } from './index.js';
import { nodeCapabilities } from './open-quartz.js';

const engines: Engine[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function open(): Promise<Engine> {
  const dir = await mkdtemp(join(tmpdir(), 'quartz-lib-'));
  dirs.push(dir);
  const engine = await openQuartz({ dataDir: dir, encodeThreads: 0 });
  engines.push(engine);
  return engine;
}

async function refusal(call: () => unknown): Promise<{ code: string; message: string }> {
  try {
    await call();
  } catch (err) {
    if (!(err instanceof QuartzError)) throw err;
    return { code: err.code, message: err.message };
  }
  throw new Error('expected a refusal');
}

const value = new Uint8Array([1]);

describe('streams: partitions and offsets that are not whole numbers', () => {
  it('a partition that is not a non-negative integer is invalid_argument; a whole one past the count stays not_found', async () => {
    const { streams } = await (await open()).tenant('t');
    await streams.createTopic('orders', { partitions: 2 });
    await streams.produce('orders', [{ value, partition: 0 }]);
    // '0' read "topic 'orders' has no partition 0", of a topic that has one.
    for (const partition of ['0', 1.5, -1, NaN, null, Infinity] as unknown as number[]) {
      const expected = { code: ErrorCode.INVALID_ARGUMENT, message: expect.stringMatching(/^partition must be a non-negative integer, got /) };
      expect(await refusal(() => streams.consume('orders', partition, 0)), `consume partition ${String(partition)}`).toEqual(expected);
      expect(await refusal(() => streams.produce('orders', [{ value, partition }])), `produce partition ${String(partition)}`).toEqual(expected);
      expect(await refusal(() => streams.commitOffset('g', 'orders', partition, 0)), `commit partition ${String(partition)}`).toEqual(expected);
      expect(await refusal(() => streams.offsetForTimestamp('orders', partition, 0)), `offsetForTimestamp partition ${String(partition)}`).toEqual(expected);
    }
    expect(await refusal(() => streams.consume('orders', 2, 0))).toEqual({ code: ErrorCode.NOT_FOUND, message: "topic 'orders' has no partition 2" });
    expect(await refusal(() => streams.produce('orders', [{ value, partition: 2 }]))).toEqual({ code: ErrorCode.NOT_FOUND, message: "topic 'orders' has no partition 2" });
    expect(await streams.listGroups()).toEqual([]);
  });

  it('an offset that is not an integer is invalid_argument; an integer outside the log stays offset_out_of_range', async () => {
    const { streams } = await (await open()).tenant('t');
    await streams.createTopic('orders');
    await streams.produce('orders', [{ value }, { value }]);
    // '1' and 0.5 read "out of range: valid offsets are 0 to 2", which 1 is.
    for (const offset of ['1', 0.5, NaN, null, Infinity] as unknown as number[]) {
      const expected = { code: ErrorCode.INVALID_ARGUMENT, message: expect.stringMatching(/^offset must be an integer, got /) };
      expect(await refusal(() => streams.consume('orders', 0, offset)), `consume offset ${String(offset)}`).toEqual(expected);
      expect(await refusal(() => streams.commitOffset('g', 'orders', 0, offset)), `commit offset ${String(offset)}`).toEqual(expected);
    }
    expect((await refusal(() => streams.consume('orders', 0, 3))).code).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect((await refusal(() => streams.consume('orders', 0, -1))).code).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect((await refusal(() => streams.commitOffset('g', 'orders', 0, 3))).code).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect((await streams.consume('orders', 0, 1)).records.map((r) => r.offset)).toEqual([1]);
  });
});

describe('one engine per data directory', () => {
  it('two openQuartz calls at once in one process: one opens, the other is refused, and no acknowledged write is lost', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-lib-'));
    dirs.push(dir);
    // Both passed the in-process check before either took the LOCK; the second then read its own
    // pid there, took the lock for a dead process's and opened too: two engines on one log, and
    // half of 400 acknowledged puts were gone on reopen.
    const opens = await Promise.allSettled([openQuartz({ dataDir: dir }), openQuartz({ dataDir: dir })]);
    const opened = opens.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    engines.push(...opened);
    expect(opened).toHaveLength(1);
    const refused = opens.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: ErrorCode.PRECONDITION_FAILED, message: `data directory ${dir} is already open in this process` });

    const { kv } = await opened[0]!.tenant('t');
    await Promise.all(Array.from({ length: 100 }, (_, i) => kv.put(`k${i}`, value)));
    await opened[0]!.close();
    const again = await openQuartz({ dataDir: dir });
    engines.push(again);
    expect((await (await again.tenant('t')).kv.list()).keys).toHaveLength(100);
  });

  it('takes over past the claim and temp files of starters that died, removes them, and does not call such a directory foreign', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-lib-'));
    dirs.push(dir);
    const dead = String(spawnSync(process.execPath, ['-e', '']).pid);
    await writeFile(join(dir, 'LOCK'), dead);
    await writeFile(join(dir, `LOCK.stale.${dead}.0`), dead); // a starter that died while removing the stale LOCK
    await writeFile(join(dir, `LOCK.new.${dead}.0123456789ab`), dead);
    const engine = await openQuartz({ dataDir: dir });
    expect((await readdir(dir)).filter((name) => name.startsWith('LOCK'))).toEqual(['LOCK']);
    await engine.close();
  });

  it('does not take over a stale LOCK while a live process claims its removal', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-lib-'));
    dirs.push(dir);
    const dead = String(spawnSync(process.execPath, ['-e', '']).pid);
    await writeFile(join(dir, 'LOCK'), dead);
    // Our parent stands in for a live starter between claiming the stale LOCK and removing it.
    await writeFile(join(dir, `LOCK.stale.${dead}.0`), String(process.ppid));
    await expect(openQuartz({ dataDir: dir })).rejects.toMatchObject({ code: ErrorCode.PRECONDITION_FAILED, message: expect.stringContaining('being opened by other processes') });
    expect(await readFile(join(dir, 'LOCK'), 'utf8')).toBe(dead);
  });
});

describe('options nobody reads', () => {
  // A misspelt option left to its default would silently change how real data is kept (Kafka
  // answers "Unknown topic config name" for the same mistake).
  it('createTopic, createCollection, upsert, query and the tenant calls refuse an unknown option, naming the one it resembles, and change nothing', async () => {
    const engine = await open();
    const { streams, vectors } = await engine.tenant('t');
    const invalid = (message: string) => ({ code: ErrorCode.INVALID_ARGUMENT, message });
    expect(await refusal(() => streams.createTopic('orders', { partitons: 3 } as never))).toEqual(invalid("topic 'orders': unknown option 'partitons'; did you mean 'partitions'?"));
    expect(await refusal(() => streams.createTopic('orders', { retentionMs: 60_000 } as never))).toEqual(invalid("topic 'orders': unknown option 'retentionMs'; did you mean 'retention_ms'?"));
    expect(await refusal(() => streams.createTopic('orders', { partitions: 2, replicas: 3, 'cleanup.policy': 'compact' } as never))).toEqual(
      invalid("topic 'orders': unknown options 'replicas', 'cleanup.policy'; known: partitions, retention_ms, retention_bytes, segment_bytes, segment_ms, compression"),
    );
    expect(await refusal(() => streams.createTopic('orders', 3 as never))).toEqual(invalid('createTopic options must be an object, got 3'));
    expect(streams.listTopics()).toEqual([]);
    // The HTTP names of the HNSW settings are the library's M and efConstruction.
    expect(await refusal(() => vectors.createCollection({ name: 'docs', dims: 3, metric: 'cosine', m: 32 } as never))).toEqual(invalid("collection 'docs': unknown option 'm'; did you mean 'M'?"));
    expect(await refusal(() => vectors.createCollection({ name: 'docs', dims: 3, metric: 'cosine', ef_construction: 400 } as never))).toEqual(
      invalid("collection 'docs': unknown option 'ef_construction'; did you mean 'efConstruction'?"),
    );
    expect(await vectors.listCollections()).toEqual([]);
    expect(await refusal(() => engine.tenants.create({ email: 'ada@example.com', plna: 'pro' } as never))).toEqual(invalid("tenant: unknown option 'plna'; did you mean 'plan'?"));
    const { tenant } = await engine.tenants.create({ email: 'ada@example.com' });
    expect(await refusal(() => engine.tenants.update(tenant.id, { billing_id: 'cus_1' } as never))).toEqual(invalid("tenant update: unknown option 'billing_id'; known: plan, billing_customer_id"));
    expect((await engine.tenants.get(tenant.id))!.billing_customer_id).toBeNull();
    // The known options still work, undefined ones included.
    expect(await streams.createTopic('orders', { partitions: 3, retention_ms: undefined })).toMatchObject({ partitions: 3 });
    expect(await vectors.createCollection({ name: 'docs', dims: 3, metric: 'cosine', M: 32, efConstruction: undefined })).toMatchObject({ M: 32 });
    // A misspelt metadata was dropped; a misspelt filter answered unfiltered.
    expect(await refusal(() => vectors.upsert('docs', [{ id: 'a', values: [1, 0, 0] }, { id: 'b', values: [0, 1, 0], metdata: { lang: 'en' } } as never]))).toEqual(
      invalid("collection 'docs': vectors[1]: unknown field 'metdata'; did you mean 'metadata'?"),
    );
    expect((await vectors.describeCollection('docs')).count).toBe(0);
    await vectors.upsert('docs', [{ id: 'a', values: [1, 0, 0], metadata: { lang: 'de' } }]);
    expect(await refusal(() => vectors.query('docs', { vector: [1, 0, 0], k: 1, fliter: { lang: 'en' } } as never))).toEqual(
      invalid("collection 'docs': query: unknown option 'fliter'; did you mean 'filter'?"),
    );
    expect((await vectors.query('docs', { vector: [1, 0, 0], k: 1, filter: { lang: 'en' } })).matches).toEqual([]);
  });
  it('produce records, consume options and the options of openQuartz and createEngine refuse an unknown key, naming the one it resembles, and change nothing', async () => {
    const engine = await open();
    const { streams } = await engine.tenant('t');
    const invalid = (message: string) => ({ code: ErrorCode.INVALID_ARGUMENT, message });
    await streams.createTopic('orders', { partitions: 2 });
    // A misspelt partition sent the record elsewhere; a misspelt value stored a null one.
    expect(await refusal(() => streams.produce('orders', [{ value }, { value, partiton: 1 } as never]))).toEqual(
      invalid("record 1 for topic 'orders': unknown field 'partiton'; did you mean 'partition'?"),
    );
    expect(await refusal(() => streams.produce('orders', [{ vlaue: value, partition: 0 } as never]))).toEqual(invalid("record 0 for topic 'orders': unknown field 'vlaue'; did you mean 'value'?"));
    // A consumed record sent back as it came: its offset is not the producer's to set (as over HTTP).
    expect(await refusal(() => streams.produce('orders', [{ offset: 7, timestamp: 1, key: null, value, headers: [] } as never]))).toEqual(
      invalid("record 0 for topic 'orders': unknown field 'offset'; known: key, value, headers, timestamp, partition"),
    );
    expect(streams.describeTopic('orders').partition_info.map((p) => p.high_watermark)).toEqual([0, 0]);
    // Records with the known keys, undefined ones and inherited ones included, are produced.
    const inherited = Object.assign(Object.create({ note: 'on the prototype' }) as object, { value, partition: 1 });
    expect((await streams.produce('orders', [{ value, partition: 0, key: undefined, timestamp: undefined, headers: undefined }, inherited as never])).count).toBe(2);
    // A misspelt max_records read 500 records; a misspelt max_wait_ms answered at once.
    expect(await refusal(() => streams.consume('orders', 0, 0, { max_record: 1 } as never))).toEqual(invalid("consume of topic 'orders': unknown option 'max_record'; did you mean 'max_records'?"));
    expect(await refusal(() => streams.consume('orders', 0, 0, { maxWaitMs: 100 } as never))).toEqual(invalid("consume of topic 'orders': unknown option 'maxWaitMs'; did you mean 'max_wait_ms'?"));
    expect((await streams.consume('orders', 0, 0, { max_records: 1, max_bytes: undefined })).records).toHaveLength(1);

    const dir = join(await mkdtemp(join(tmpdir(), 'quartz-lib-')), 'data');
    dirs.push(dir);
    expect(await refusal(() => openQuartz({ dataDir: dir, encodeThread: 0 } as never))).toEqual(invalid("openQuartz: unknown option 'encodeThread'; did you mean 'encodeThreads'?"));
    expect(await refusal(() => openQuartz({ dataDir: dir, vectors: { maxOpenByte: 1 } } as never))).toEqual(invalid("openQuartz: vectors: unknown option 'maxOpenByte'; did you mean 'maxOpenBytes'?"));
    expect(await refusal(() => openQuartz({ dataDir: dir, vectors: { snapshot: { everyMutation: 3 } } } as never))).toEqual(
      invalid("openQuartz: vectors.snapshot: unknown option 'everyMutation'; did you mean 'everyMutations'?"),
    );
    expect(await refusal(() => openQuartz({ dataDir: dir, kv: { maxValueSize: 1 } } as never))).toEqual(invalid("openQuartz: kv: unknown option 'maxValueSize'; known: maxValueBytes, cachedKeys, keyCacheMaxBytes"));
    expect(await refusal(() => openQuartz({ dataDir: dir, streams: { segmentCache: 1 } } as never))).toEqual(invalid("openQuartz: streams: unknown option 'segmentCache'; known: segmentCacheBytes"));
    await expect(readdir(dir)).rejects.toMatchObject({ code: 'ENOENT' }); // nothing was opened
    expect(await refusal(() => createEngine({ storage: createMemoryStorage(), capabilities: nodeCapabilities, tenantIdlMs: 5 } as never))).toEqual(
      invalid("createEngine: unknown option 'tenantIdlMs'; did you mean 'tenantIdleMs'?"),
    );
    // A JavaScript caller's missing options or storage: a typed error, not a TypeError from deep in the open.
    for (const options of [undefined, null, {}, { storage: 5 }, { storage: {} }]) {
      expect(await refusal(() => createEngine(options as never))).toEqual(
        invalid(expect.stringMatching(/^createEngine needs options with a storage \(a StorageProvider, e\.g\. createMemoryStorage\(\)\), got /)),
      );
    }
    const known = await openQuartz({ dataDir: dir, encodeThreads: 0, dropDamagedLog: undefined, vectors: { snapshot: { everyMutations: 3 }, maxOpenBytes: 1 << 30 } });
    await known.close();
  });
});
