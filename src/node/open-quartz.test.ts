import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../core/errors.js';
import { DATA_VERSION, META_UNIT, readDataVersion } from '../engine/data-version.js';
import { openQuartz } from './index.js';
import { openDiskStorage } from './storage/disk-storage.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'quartz-open-'));
  dirs.push(dir);
  return dir;
}

describe('openQuartz', () => {
  it('opens a data directory whose tenants, KV, topics, vectors and usage survive reopen', async () => {
    const dir = await dataDir();
    const engine = await openQuartz({ dataDir: dir });
    expect(engine.context.capabilities.persistentStorage).toBe(true);
    const { tenant, api_key } = await engine.tenants.create({ email: 'ada@example.com' });
    const { kv, streams, vectors } = await engine.tenant(tenant.id);
    await kv.put('greeting', new TextEncoder().encode('hello'));
    await streams.createTopic('orders', { partitions: 2 });
    await streams.produce('orders', [{ value: new TextEncoder().encode('o1'), partition: 1 }]);
    await vectors.createCollection({ name: 'docs', dims: 2, metric: 'dot' });
    await vectors.upsert('docs', [{ id: 'a', values: [1, 2] }]);
    await engine.close();

    const again = await openQuartz({ dataDir: dir });
    expect(again.dataVersion).toEqual({ from: DATA_VERSION, to: DATA_VERSION, applied: [] });
    expect((await again.tenants.authenticate(api_key))?.tenant.id).toBe(tenant.id);
    const scope = await again.tenant(tenant.id);
    expect(new TextDecoder().decode((await scope.kv.get('greeting'))!.value)).toBe('hello');
    const { records } = await scope.streams.consume('orders', 1, 0);
    expect(new TextDecoder().decode(records[0]!.value!)).toBe('o1');
    expect((await scope.vectors.get('docs', 'a'))?.values).toEqual([1, 2]);
    expect((await again.tenants.usage(tenant.id)).bytes_stored).toBeGreaterThan(0);
    await again.close();
  });

  it('compresses large produce batches on its worker threads: every record reads back, before and after reopen', async () => {
    const dir = await dataDir();
    const engine = await openQuartz({ dataDir: dir, encodeThreads: 2 });
    const { streams } = await engine.tenant('t1');
    await streams.createTopic('events', { partitions: 1, segment_bytes: 256 * 1024 });
    const value = (i: number) => new TextEncoder().encode(`{"i":${i},"note":"${'event text '.repeat(1 + (i % 90))}"}`);
    // 20 writes of 600 records (~310 KB each, above the encoder's minBytes) in flight at once, and small ones between them
    const writes = Array.from({ length: 40 }, (_, w) => Array.from({ length: w % 2 === 0 ? 600 : 3 }, (_, j) => ({ value: value(w * 1000 + j) })));
    const answers = await Promise.all(writes.map((records) => streams.produce('events', records)));
    const offsets = answers.flatMap((a) => a.offsets.map((o) => o.offset));
    expect(offsets).toEqual(Array.from({ length: offsets.length }, (_, i) => i));
    const expected = writes.flat().map((r) => new TextDecoder().decode(r.value));
    const readAll = async (s: typeof streams) => {
      const out: string[] = [];
      for (let at = 0; at < expected.length; ) {
        const page = await s.consume('events', 0, at, { max_records: 1000 });
        for (const r of page.records) out.push(new TextDecoder().decode(r.value!));
        at = page.next_offset;
      }
      return out;
    };
    expect(await readAll(streams)).toEqual(expected);
    await engine.close();
    const again = await openQuartz({ dataDir: dir, encodeThreads: 2 });
    expect(await readAll((await again.tenant('t1')).streams)).toEqual(expected);
    await again.close();
  });

  it('refuses a data directory written by a newer QuartzDB, naming it', async () => {
    const dir = await dataDir();
    const storage = await openDiskStorage({ dir });
    await (await storage.unit(META_UNIT)).kv.put(new TextEncoder().encode('data_version'), new TextEncoder().encode(String(DATA_VERSION + 1)));
    await storage.close();
    await expect(openQuartz({ dataDir: dir })).rejects.toMatchObject({
      code: ErrorCode.DATA_VERSION_TOO_NEW,
      message: expect.stringContaining(`data directory ${dir} is in format version ${DATA_VERSION + 1}`),
    });
    // Refusing did not touch the data, and released the directory for the next attempt.
    const check = await openDiskStorage({ dir });
    expect(await readDataVersion(check)).toBe(DATA_VERSION + 1);
    await check.close();
  });

  it('refuses a missing, empty or non-string dataDir, and a file, with typed errors', async () => {
    for (const options of [undefined, {}, { dataDir: '' }, { dataDir: 5 }, { dataDir: 5n }]) {
      await expect(openQuartz(options as never)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringContaining('dataDir') });
    }
    const file = join(await dataDir(), 'a-file');
    await writeFile(file, 'x');
    await expect(openQuartz({ dataDir: file })).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
      message: expect.stringContaining(`data directory ${file} is not a directory`),
    });
  });

  it('refuses an encodeThreads that is not a whole number from 0 to 64, before opening anything', async () => {
    const dir = await dataDir();
    for (const encodeThreads of [-1, 1.5, Number.NaN, 65, '2']) {
      await expect(openQuartz({ dataDir: dir, encodeThreads } as never)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringContaining('encodeThreads') });
    }
    // nothing was left open: the directory opens at once
    await (await openQuartz({ dataDir: dir, encodeThreads: 0 })).close();
  });

  it('lets writes already made finish when it closes: a large KV value, a record, a vector', async () => {
    const dir = await dataDir();
    const engine = await openQuartz({ dataDir: dir });
    const { kv, streams, vectors } = await engine.tenant('t1');
    await streams.createTopic('orders');
    await vectors.createCollection({ name: 'docs', dims: 2, metric: 'dot' });
    // Not awaited before close(): a program that fires writes and then shuts down.
    const large = new Uint8Array(2 * 1024 * 1024).fill(7);
    const writes = [
      kv.put('large', large),
      kv.put('small', new Uint8Array([1])),
      streams.produce('orders', [{ value: new Uint8Array([2]) }]),
      vectors.upsert('docs', [{ id: 'a', values: [1, 2] }]),
    ];
    await engine.close();
    expect((await Promise.allSettled(writes)).map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);

    const again = await openQuartz({ dataDir: dir });
    const scope = await again.tenant('t1');
    // Buffer.equals: toEqual walks a 2 MiB array element by element for seconds.
    expect(Buffer.from((await scope.kv.get('large'))!.value).equals(large)).toBe(true);
    expect((await scope.kv.get('small'))?.size).toBe(1);
    expect((await scope.streams.consume('orders', 0, 0)).records).toHaveLength(1);
    expect((await scope.vectors.get('docs', 'a'))?.values).toEqual([1, 2]);
    await again.close();
  });

  it('upgrades a directory that predates format versioning, keeping its data', async () => {
    const dir = await dataDir();
    const storage = await openDiskStorage({ dir });
    await (await storage.unit('kv/t1')).kv.put(new TextEncoder().encode('keep'), new Uint8Array([1]));
    await storage.close();

    const engine = await openQuartz({ dataDir: dir });
    expect(engine.dataVersion).toEqual({ from: 0, to: DATA_VERSION, applied: Array.from({ length: DATA_VERSION }, (_, i) => i + 1) });
    const { kv } = await engine.context.storage.unit('kv/t1');
    expect(Array.from((await kv.get(new TextEncoder().encode('keep')))!)).toEqual([1]);
    await engine.close();
  });
});
