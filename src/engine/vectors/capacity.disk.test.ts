/**
 * A collection whose index has no room left, on lmdb on disk, reopened from the files: a write
 * the apply could not take is refused before it is logged, a log entry that cannot apply (an
 * older build logged before it checked) is dropped on open rather than failing every open, and
 * an apply that fails after the log write anyway takes its entry back out. The index's 3.5 GiB
 * limit is lowered for the test (setHnswByteLimitForTests) so a few hundred vectors reach it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { HnswIndex, setHnswByteLimitForTests } from '../../core/hnsw.js';
import { seededRandom } from '../../core/random-testing.js';
import { init } from '../../node/core.js';
import { openDiskStorage } from '../../node/storage/disk-storage.js';
import type { Logger } from '../../ports/logger.js';
import type { BatchOp, StorageProvider, UnitStorage } from '../../ports/storage.js';
import { rejectsWithQuartzError } from '../../../tests/fixtures/expect-error.js';
import type { EngineContext } from '../context.js';
import { createTestContext } from '../testing.js';
import { LOG_UPSERT, encodeLogChunks, logKey, type UpsertRecord } from './codec.js';
import { Collection } from './collection.js';
import { VectorStore } from './vector-store.js';

const DIMS = 8;
const encoder = new TextEncoder();

beforeAll(async () => {
  await init();
});

const dirs: string[] = [];
afterEach(() => {
  setHnswByteLimitForTests(undefined);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function docs(from: number, n: number, seed: number): { id: string; values: number[] }[] {
  const rand = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => ({ id: `v${from + i}`, values: Array.from({ length: DIMS }, () => rand() * 2 - 1) }));
}

/**
 * A limit with room for the first 100 vectors and 150 more, not 300 more: what 100 took in an
 * index built like a collection's, plus 150 of the check's own per-vector estimate.
 */
function limitFor100Plus150(): number {
  const index = new HnswIndex({ dims: DIMS, metric: 'l2', M: 16, efConstruction: 200, seed: 0x51a27 });
  const flat = new Float32Array(docs(0, 100, 1).flatMap((d) => d.values));
  index.addBatch(Uint32Array.from({ length: 100 }, (_, i) => i), flat);
  const perVector = index.graphBytes / 100 + 48;
  const limit = index.graphBytes + 150 * perVector;
  index.dispose();
  return limit;
}

interface Process {
  ctx: EngineContext;
  store: VectorStore;
  reports: string[];
  close(): Promise<void>;
}

/** A "process": the store on lmdb in `dir`, with new object identities each time, as after a restart. */
async function start(dir: string, afterBatch?: (unit: string, ops: BatchOp[]) => void): Promise<Process> {
  const disk = await openDiskStorage({ dir });
  const wrap = (name: string, unit: UnitStorage): UnitStorage => ({
    kv: {
      get: (k) => unit.kv.get(k),
      scan: (o) => unit.kv.scan(o),
      put: (k, v) => unit.kv.put(k, v),
      delete: (k) => unit.kv.delete(k),
      batch: async (ops) => {
        await unit.kv.batch(ops);
        afterBatch?.(name, ops);
      },
    },
    blobs: unit.blobs,
  });
  const storage: StorageProvider = {
    unit: async (name) => wrap(name, await disk.unit(name)),
    listUnits: (prefix) => disk.listUnits!(prefix),
    dropUnit: (name) => disk.dropUnit(name),
    close: () => disk.close(),
  };
  const reports: string[] = [];
  const logger: Logger = { error: (message) => reports.push(message), info: (message) => reports.push(message) };
  const ctx: EngineContext = { ...createTestContext(), storage, logger };
  const store = await VectorStore.open(ctx, 't1');
  return {
    ctx,
    store,
    reports,
    close: async () => {
      await store.close();
      await disk.close();
    },
  };
}

function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'quartz-vec-capacity-'));
  dirs.push(dir);
  return dir;
}

async function logKeysOf(unit: UnitStorage): Promise<string[]> {
  const page = await unit.kv.scan({ start: logKey(0, 0), end: new Uint8Array([0x6d]), limit: 1000 });
  return page.map(({ key }) => {
    const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
    return `${view.getBigUint64(1)}.${view.getUint32(9)}`;
  });
}

describe('a collection whose index is full, on lmdb', () => {
  it('refuses an upsert it has no room for before logging it, keeps serving, and reopens with what was acknowledged', async () => {
    const dir = newDir();
    let p = await start(dir);
    await p.store.createCollection({ name: 'c', dims: DIMS, metric: 'l2' });
    await p.store.upsert('c', docs(0, 100, 1));
    setHnswByteLimitForTests(limitFor100Plus150());

    await rejectsWithQuartzError(p.store.upsert('c', docs(100, 300, 2)), ErrorCode.TOO_LARGE, /collection 'c' is full.*nothing was stored/);
    // Not broken: reads and smaller writes go on.
    expect((await p.store.describeCollection('c')).count).toBe(100);
    expect((await p.store.query('c', { vector: docs(0, 1, 1)[0]!.values, k: 1 })).matches[0]!.id).toBe('v0');
    await p.store.upsert('c', docs(100, 10, 3));
    expect((await p.store.describeCollection('c')).count).toBe(110);
    await p.close();

    p = await start(dir);
    expect((await p.store.describeCollection('c')).count).toBe(110);
    expect(await p.store.get('c', 'v200')).toBeUndefined();
    expect(await p.store.get('c', 'v109')).toBeDefined();
    expect(p.reports).toEqual([]);
    await p.close();
  });

  it('drops, on open, a logged entry the index has no room for (an older build logged it before it checked), and reports it once', async () => {
    const dir = newDir();
    let p = await start(dir);
    await p.store.createCollection({ name: 'c', dims: DIMS, metric: 'l2' });
    await p.store.upsert('c', docs(0, 100, 1));
    await p.close();

    // What the older build left: entry 2 (300 vectors) logged with its count, never applied;
    // entry 3, a small one, after it.
    const disk = await openDiskStorage({ dir });
    const unit = await disk.unit(Collection.unitName('t1', 'c'));
    expect(await logKeysOf(unit)).toEqual(['1.0']);
    const records = (from: number, n: number, seed: number): UpsertRecord[] =>
      docs(from, n, seed).map((d, i) => ({ internalId: from + i, id: d.id, idBytes: encoder.encode(d.id), metadataJson: encoder.encode('{}'), values: Float32Array.from(d.values) }));
    const entry2 = encodeLogChunks({ kind: LOG_UPSERT, records: records(100, 300, 2) });
    const entry3 = encodeLogChunks({ kind: LOG_UPSERT, records: records(400, 5, 3) });
    const count = new Uint8Array(4);
    new DataView(count.buffer).setUint32(0, 405, true);
    await unit.kv.batch([
      ...entry2.map((value, i): BatchOp => ({ type: 'put', key: logKey(2, i), value })),
      ...entry3.map((value, i): BatchOp => ({ type: 'put', key: logKey(3, i), value })),
      { type: 'put', key: new Uint8Array([0x6e]), value: count },
    ]);
    await disk.close();

    setHnswByteLimitForTests(limitFor100Plus150());
    p = await start(dir);
    expect((await p.store.describeCollection('c')).count).toBe(405); // the stored count, before it opens
    expect((await p.store.query('c', { vector: docs(0, 1, 1)[0]!.values, k: 1 })).matches[0]!.id).toBe('v0');
    expect((await p.store.describeCollection('c')).count).toBe(105);
    expect(await p.store.get('c', 'v150')).toBeUndefined();
    expect(await p.store.get('c', 'v402')).toBeDefined();
    expect(p.reports).toHaveLength(1);
    expect(p.reports[0]).toMatch(/collection 'c' of tenant 't1': change-log entry 2 cannot be applied .*dropped from the log/);
    await p.store.upsert('c', docs(500, 10, 4));
    await p.close();

    p = await start(dir);
    expect((await p.store.describeCollection('c')).count).toBe(115); // stored at the drop, then by the upsert
    expect(await p.store.get('c', 'v505')).toBeDefined();
    expect(await p.store.get('c', 'v150')).toBeUndefined();
    expect(p.reports).toEqual([]);
    await p.close();
  });

  it('takes a write whose apply fails after its log write back out of the log, and the next call reopens the collection', async () => {
    const dir = newDir();
    const limit = limitFor100Plus150();
    // The room is checked before the log write; lowering the limit just after that write is how
    // an apply fails that the check could not foresee (as wasm memory failing to grow would).
    let lowerAfterNextLogWrite = false;
    let p = await start(dir, (unit, ops) => {
      if (!lowerAfterNextLogWrite || unit !== Collection.unitName('t1', 'c') || !ops.some((op) => op.type === 'put' && op.key[0] === 0x6c)) return;
      lowerAfterNextLogWrite = false;
      setHnswByteLimitForTests(limit);
    });
    await p.store.createCollection({ name: 'c', dims: DIMS, metric: 'l2' });
    await p.store.upsert('c', docs(0, 100, 1));

    lowerAfterNextLogWrite = true;
    await rejectsWithQuartzError(p.store.upsert('c', docs(100, 300, 2)), ErrorCode.TOO_LARGE, /applying the write failed, and it was not stored/);
    const unit = await p.ctx.storage.unit(Collection.unitName('t1', 'c'));
    expect(await logKeysOf(unit)).toEqual(['1.0']);
    expect(await Collection.storedCount(unit)).toBe(100);

    expect((await p.store.describeCollection('c')).count).toBe(100);
    expect((await p.store.query('c', { vector: docs(0, 1, 1)[0]!.values, k: 1 })).matches[0]!.id).toBe('v0');
    expect(await p.store.get('c', 'v150')).toBeUndefined();
    await p.store.upsert('c', docs(100, 10, 3));
    expect((await p.store.describeCollection('c')).count).toBe(110);
    await p.close();

    p = await start(dir);
    expect((await p.store.describeCollection('c')).count).toBe(110);
    expect(await p.store.get('c', 'v109')).toBeDefined();
    expect(p.reports).toEqual([]);
    await p.close();
  });
});
