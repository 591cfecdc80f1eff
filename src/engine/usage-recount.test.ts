/**
 * Usage levels after a crash, on the engine: a "process" is an engine on a view of shared memory
 * storage that a crash turns off (every call fails from then on), so nothing it had not written
 * survives, as with kill -9. The levels must equal what the tenant holds, whichever run after the
 * crash first opens the tenant, and whatever its writes and TTL sweep do while its bytes are
 * counted (in the background: the tenant is served meanwhile). The races run on lmdb too, where
 * writes are in flight for a while.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../core/random-testing.js';
import { init } from '../node/core.js';
import { openDiskStorage } from '../node/storage/disk-storage.js';
import { ManualClock } from '../ports/manual-clock.js';
import { createMemoryStorage, type MemoryStorage } from '../ports/memory-storage.js';
import { MAX_ENTRY_BYTES, type StorageProvider, type UnitStorage } from '../ports/storage.js';
import { createEngine, type Engine } from './engine.js';
import { periodOf, type UsageMeter } from './tenants/usage-meter.js';
import { TAG_DATA } from './kv/kv-record.js';
import { TEST_CAPABILITIES } from './testing.js';

beforeAll(async () => {
  await init();
});

const DAY = 86_400_000;

interface Process {
  engine: Engine;
  clock: ManualClock;
  /** kill -9: the process's storage calls fail from now on, its timers never fire again. */
  crash(): void;
}

/** A process on `disk`: new object identities, as a new process opening the same files has. */
async function start(disk: MemoryStorage, day: number, hold?: (unit: string) => Promise<void>): Promise<Process> {
  let dead = false;
  const alive = <T>(op: () => T): T => {
    if (dead) throw new Error('the process was killed');
    return op();
  };
  const view = (u: UnitStorage): UnitStorage => ({
    kv: {
      get: (k) => alive(() => u.kv.get(k)),
      put: (k, v) => alive(() => u.kv.put(k, v)),
      delete: (k) => alive(() => u.kv.delete(k)),
      scan: (o) => alive(() => u.kv.scan(o)),
      batch: (ops) => alive(() => u.kv.batch(ops)),
    },
    blobs: {
      get: (k, r) => alive(() => u.blobs.get(k, r)),
      head: (k) => alive(() => u.blobs.head(k)),
      list: (p) => alive(() => u.blobs.list(p)),
      put: (k, b) => alive(() => u.blobs.put(k, b)),
      delete: (k) => alive(() => u.blobs.delete(k)),
    },
  });
  const storage: StorageProvider = {
    unit: hold === undefined ? (name) => alive(() => view(disk.unit(name) as UnitStorage)) : async (name) => {
      await hold(name);
      return alive(() => view(disk.unit(name) as UnitStorage));
    },
    listUnits: (prefix) => alive(() => disk.listUnits(prefix)),
    dropUnit: (name) => alive(() => disk.dropUnit(name)),
    close: () => undefined,
  };
  const clock = new ManualClock(Date.UTC(2026, 0, 1) + day * DAY);
  const engine = await createEngine({ storage, capabilities: TEST_CAPABILITIES, clock, scheduler: clock });
  return { engine, clock, crash: () => (dead = true) };
}

const meterOf = (engine: Engine) => engine.context.usage as UsageMeter;

/** A tenant holding 3,000 keys of 10 bytes, left by a crash on `disk` (day 0). */
async function crashedWithKeys(disk: MemoryStorage, email: string): Promise<{ id: string }> {
  const first = await start(disk, 0);
  const { tenant } = await first.engine.tenants.create({ email });
  const { kv } = await first.engine.tenant(tenant.id);
  for (let i = 0; i < 3000; i++) await kv.put(`k${String(i).padStart(5, '0')}`, new Uint8Array(10));
  first.crash();
  return tenant;
}

/**
 * A tenant with the key `k` (100 bytes) and the topic `orders` of 2 partitions (and `produced`
 * bytes in one partition's log), its levels stored by a clean stop on day 0: only the crash on
 * day 1 makes them suspect.
 */
async function crashedWithTopic(disk: MemoryStorage, email: string, produced?: { bytes: number; partition: number }): Promise<{ id: string }> {
  const first = await start(disk, 0);
  const { tenant } = await first.engine.tenants.create({ email });
  const scope = await first.engine.tenant(tenant.id);
  await scope.kv.put('k', new Uint8Array(100));
  await scope.streams.createTopic('orders', { partitions: 2 });
  if (produced) await scope.streams.produce('orders', [{ value: new Uint8Array(produced.bytes), partition: produced.partition }]);
  await first.engine.close();
  const crashed = await start(disk, 1);
  await crashed.engine.tenant(tenant.id);
  crashed.crash();
  return tenant;
}

/** The process of day 2, the tenant's partitions held shut until `release()`. */
async function startWithPartitionsHeld(disk: MemoryStorage, tenantId: string): Promise<{ second: Process; release: () => void }> {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const second = await start(disk, 2, (unit) => (unit.startsWith(`log/${tenantId}/`) ? gate : Promise.resolve()));
  return { second, release };
}

/** The tenant's bytes_stored once any count of its levels is done. */
async function bytesStored(engine: Engine, tenantId: string): Promise<number> {
  await engine.tenant(tenantId);
  await meterOf(engine).recounting(tenantId);
  const usage = await engine.tenants.usage(tenantId);
  expect(usage.recounting).toBe(false);
  return usage.bytes_stored;
}

describe('usage levels after a crash', () => {
  it('are not counted on a new data directory, whose first open is no crash', async () => {
    const first = await start(createMemoryStorage(), 0);
    const { tenant } = await first.engine.tenants.create({ email: 'new@example.com' });
    await (await first.engine.tenant(tenant.id)).kv.put('k', new Uint8Array(100));
    expect(meterOf(first.engine).recounting(tenant.id)).toBeUndefined();
    expect(await first.engine.tenants.usage(tenant.id)).toMatchObject({ bytes_stored: 101, recounting: false });
    await first.engine.close();
  });

  it('are counted after a crash of a new directory whose only tenant was never registered (its deltas never reached the tenants unit)', async () => {
    const disk = createMemoryStorage();
    const first = await start(disk, 0);
    await (await first.engine.tenant('acme')).kv.put('k', new Uint8Array(100));
    first.crash(); // before the meter's first flush: the tenants unit is still empty

    const second = await start(disk, 1);
    expect(await bytesStored(second.engine, 'acme')).toBe(101);
    await second.engine.close();
  });

  it('are counted afresh when the tenant is first used after the crash, even in a later run that a clean stop preceded', async () => {
    const disk = createMemoryStorage();
    const first = await start(disk, 0);
    const { tenant: used } = await first.engine.tenants.create({ email: 'used@example.com' });
    const { tenant: idle } = await first.engine.tenants.create({ email: 'idle@example.com' });
    for (const id of [used.id, idle.id]) await (await first.engine.tenant(id)).kv.put('k', new Uint8Array(100));
    first.crash(); // before the meter's first flush: both deltas are lost

    // The run after the crash uses one tenant only, then stops cleanly.
    const second = await start(disk, 1);
    expect(await bytesStored(second.engine, used.id)).toBe(101);
    await second.engine.close();

    const third = await start(disk, 2);
    expect(await bytesStored(third.engine, used.id)).toBe(101);
    expect(await bytesStored(third.engine, idle.id)).toBe(101);
    await third.engine.close();
  });

  it('are counted afresh again after a crash during the count, which left the tenant served', async () => {
    const disk = createMemoryStorage();
    const tenant = await crashedWithKeys(disk, 'c@example.com');

    const second = await start(disk, 1);
    const { kv: served } = await second.engine.tenant(tenant.id);
    // The count lets requests run between its pages: a read is answered while it runs.
    expect(await served.get('k02999')).toMatchObject({ size: 10 });
    expect((await second.engine.tenants.usage(tenant.id)).recounting).toBe(true);
    second.crash();
    await meterOf(second.engine).recounting(tenant.id)?.catch(() => undefined);

    const third = await start(disk, 2);
    expect(await bytesStored(third.engine, tenant.id)).toBe(3000 * 16);
    await third.engine.close();
  });

  it('stay exact when expired keys are swept while the count runs', async () => {
    const disk = createMemoryStorage();
    const first = await start(disk, 0);
    const { tenant } = await first.engine.tenants.create({ email: 'ttl@example.com' });
    const { kv } = await first.engine.tenant(tenant.id);
    for (let i = 0; i < 3000; i++) await kv.put(`k${String(i).padStart(5, '0')}`, new Uint8Array(10), { ttl: 60 });
    await kv.put('keep', new Uint8Array(10));
    first.crash();

    // A day later every TTL key has expired: the sweep is due at once, as the count starts.
    const second = await start(disk, 1);
    const { kv: again } = await second.engine.tenant(tenant.id);
    const counting = meterOf(second.engine).recounting(tenant.id);
    expect(counting).toBeDefined();
    let done = false;
    // Memory storage answers a scan at once: the records left as the count ends.
    let recordsAtEnd = 0;
    void counting!.then(() => {
      done = true;
      recordsAtEnd = (disk.unit(`kv/${tenant.id}`).kv.scan({ prefix: Uint8Array.of(TAG_DATA) }) as unknown[]).length;
    });
    while (!done) {
      await second.clock.advance(0); // runs whatever timer is due, the sweep included
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    expect(recordsAtEnd).toBeLessThan(3001); // the sweep ran during the count
    await again.sweep();
    expect(await again.storedBytes()).toBe('keep'.length + 10);
    expect(await bytesStored(second.engine, tenant.id)).toBe('keep'.length + 10);
    await second.engine.close();
  });

  it('leave the tenant served while its partitions open after the crash: the count waits for them, requests do not', async () => {
    const disk = createMemoryStorage();
    const tenant = await crashedWithTopic(disk, 'parts@example.com', { bytes: 50, partition: 1 });
    const { second, release } = await startWithPartitionsHeld(disk, tenant.id);
    const early = await Promise.race([second.engine.services(tenant.id), new Promise<undefined>((resolve) => setTimeout(resolve, 2000))]);
    expect(early, 'services() waited for the partitions').toBeDefined();
    expect(await early!.kv.get('k')).toMatchObject({ size: 100 });
    expect((await second.engine.tenants.usage(tenant.id)).recounting).toBe(true);
    release();
    const logs = (await second.engine.tenant(tenant.id)).streams.logTotals().bytes;
    expect(logs).toBeGreaterThan(0);
    expect(await bytesStored(second.engine, tenant.id)).toBe(101 + logs);
    await second.engine.close();
  });

  it('stop cleanly when the tenant closes while the count waits for its partitions, and are counted on the next open', async () => {
    const disk = createMemoryStorage();
    const tenant = await crashedWithTopic(disk, 'wait@example.com');
    const { second, release } = await startWithPartitionsHeld(disk, tenant.id);
    const errors: unknown[] = [];
    const logged = console.error;
    console.error = (...args: unknown[]) => void errors.push(args);
    try {
      await second.engine.services(tenant.id);
      const counting = meterOf(second.engine).recounting(tenant.id)!;
      expect(counting).toBeDefined();
      const closing = second.engine.closeTenant(tenant.id);
      release();
      await closing;
      await expect(counting).rejects.toMatchObject({ code: 'storage_closed' });
      expect(await bytesStored(second.engine, tenant.id)).toBe(101);
      await second.engine.close();
    } finally {
      console.error = logged;
    }
    expect(errors).toEqual([]);
  });

  it('stay exact when a topic is deleted as the count of the bytes begins', async () => {
    const disk = createMemoryStorage();
    const tenant = await crashedWithTopic(disk, 'drop@example.com', { bytes: 500, partition: 0 });
    const { second, release } = await startWithPartitionsHeld(disk, tenant.id);
    const { streams } = await second.engine.services(tenant.id);
    // Queued behind the partitions' open, as the count is: the delete takes the topic off the
    // logs' totals at once, and meters its bytes out only once its partitions are closed.
    const deleting = streams.deleteTopic('orders');
    release();
    await deleting;
    expect(await bytesStored(second.engine, tenant.id)).toBe(101);
    await second.engine.close();
  });

  it('stop cleanly when the tenant or the engine closes during the count, and are counted on the next open', async () => {
    const disk = createMemoryStorage();
    const tenant = await crashedWithKeys(disk, 'close@example.com');

    const second = await start(disk, 1);
    const errors: unknown[] = [];
    const logged = console.error;
    console.error = (...args: unknown[]) => void errors.push(args);
    try {
      await second.engine.tenant(tenant.id);
      const counting = meterOf(second.engine).recounting(tenant.id)!;
      expect(counting).toBeDefined();
      await second.engine.closeTenant(tenant.id);
      await expect(counting).rejects.toMatchObject({ code: 'storage_closed' });
      // Reopened: counted again, from the start.
      expect(await bytesStored(second.engine, tenant.id)).toBe(3000 * 16);
      await second.engine.close();

      // An engine closed mid-count: the meter's last flush does not record the tenant as counted.
      const third = await start(disk, 2);
      await third.engine.tenant(tenant.id);
      expect(meterOf(third.engine).recounting(tenant.id)).toBeUndefined(); // counted in the run before
      await third.engine.close();
    } finally {
      console.error = logged;
    }
    expect(errors).toEqual([]);
  });
});

/** Stored-bytes sizes of the tenant's starting keys: varied, a few large enough for the blob store. */
function sizeOf(i: number): number {
  return i % 997 === 0 ? MAX_ENTRY_BYTES + 1000 : (i * 37) % 300;
}

const KEYS = 12_000;
const keyOf = (i: number) => `k${String(i).padStart(5, '0')}`;

/**
 * Fills a tenant, stops cleanly, then leaves the meter's state as a crash would: no clean mark and
 * stored levels short of deltas it lost. Returns the tenant id.
 */
async function crashedTenant(storage: () => Promise<StorageProvider>, clock: ManualClock): Promise<string> {
  const engine = await createEngine({ storage: await storage(), capabilities: TEST_CAPABILITIES, clock, scheduler: clock });
  const { tenant } = await engine.tenants.create({ email: 'race@example.com' });
  const { kv } = await engine.tenant(tenant.id);
  await Promise.all(Array.from({ length: KEYS }, (_, i) => kv.put(keyOf(i), new Uint8Array(sizeOf(i)), i % 5 === 0 ? { ttl: 3600 } : undefined)));
  await engine.close();
  const raw = await storage();
  const meter = await raw.unit('tenants');
  await meter.kv.delete(new TextEncoder().encode('m/clean'));
  for (const name of [`g/${tenant.id}`, `u/${periodOf(clock.now())}/${tenant.id}`]) {
    const key = new TextEncoder().encode(name);
    const row = JSON.parse(new TextDecoder().decode((await meter.kv.get(key))!)) as Record<string, number>;
    await meter.kv.put(key, new TextEncoder().encode(JSON.stringify({ ...row, bytes_stored: row.bytes_stored! - 777 })));
  }
  await raw.close();
  return tenant.id;
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.each([
  ['memory', () => {
    const disk = createMemoryStorage();
    // Each engine gets a view whose close leaves the shared storage open, as a process exiting leaves its files.
    return async (): Promise<StorageProvider> => ({ unit: (n) => disk.unit(n), listUnits: (p) => disk.listUnits(p), dropUnit: (n) => disk.dropUnit(n), close: () => undefined });
  }],
  ['lmdb on disk', () => {
    const dir = mkdtempSync(join(tmpdir(), 'quartz-recount-'));
    dirs.push(dir);
    return () => openDiskStorage({ dir });
  }],
] as const)('bytes counted after a crash on %s', (_, makeStorage) => {
  it('are exact when the count finishes, whatever writes ran during it', async () => {
    const storage = makeStorage();
    const tenantId = await crashedTenant(storage, new ManualClock(Date.UTC(2026, 0, 1)));
    // Two hours on, the TTL keys have expired: the sweep purges them during the count.
    const clock = new ManualClock(Date.UTC(2026, 0, 1) + 7200_000);
    const engine = await createEngine({ storage: await storage(), capabilities: TEST_CAPABILITIES, clock, scheduler: clock });
    const { kv } = await engine.tenant(tenantId);
    const counting = meterOf(engine).recounting(tenantId);
    expect(counting).toBeDefined();
    let done = false;
    void counting!.then(() => (done = true));

    const random = seededRandom(7);
    const pick = () => keyOf(Math.floor(random() * (KEYS + 200))); // some new keys among the old
    let writes = 0;
    const issued: Promise<unknown>[] = [];
    while (!done) {
      // Several at once, so writes are in flight together (one lmdb commit) across the scan's pages.
      const ops: Promise<unknown>[] = [];
      for (let j = 0; j < 16; j++) {
        const key = pick();
        const r = random();
        if (r < 0.3) ops.push(kv.put(key, new Uint8Array(Math.floor(random() * 500))));
        else if (r < 0.45) ops.push(kv.put(`${key}/new${writes}`, new Uint8Array(Math.floor(random() * 50))));
        else if (r < 0.65) ops.push(kv.delete(key));
        else if (r < 0.75) ops.push(kv.put(key, new Uint8Array(20), { ttl: 1 }));
        else if (r < 0.8) ops.push(kv.put(key, new Uint8Array(MAX_ENTRY_BYTES + Math.floor(random() * 1000)))); // blob-backed
        else ops.push(Promise.resolve(kv.get(key)));
        writes++;
      }
      issued.push(...ops);
      if (random() < 0.3) await clock.advance(2000); // the 1 s TTLs expire; their sweep runs
      // Not waiting for the writes: on lmdb they stay in flight while the scan reads its next pages.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    await Promise.all(issued);
    expect(writes).toBeGreaterThan(100);
    expect((await engine.tenants.usage(tenantId)).recounting).toBe(false);
    const level = (await engine.tenants.usage(tenantId)).bytes_stored;
    // Nothing runs now: a count of what the tenant holds is the truth.
    expect(level).toBe(await kv.storedBytes());
    await engine.close();

    // And stays so across a clean restart, with no count.
    const again = await createEngine({ storage: await storage(), capabilities: TEST_CAPABILITIES, clock, scheduler: clock });
    await again.tenant(tenantId);
    expect(meterOf(again).recounting(tenantId)).toBeUndefined();
    expect((await again.tenants.usage(tenantId)).bytes_stored).toBe(level);
    await again.close();
  });
});
