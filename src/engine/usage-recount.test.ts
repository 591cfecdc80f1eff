/**
 * Usage levels after a crash, on the engine: a "process" is an engine on a view of shared memory
 * storage that a crash turns off (every call fails from then on), so nothing it had not written
 * survives, as with kill -9. The levels must equal what the tenant holds, whichever run after the
 * crash first opens the tenant, and whatever its TTL sweep does meanwhile.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { init } from '../node/core.js';
import { ManualClock } from '../ports/manual-clock.js';
import { createMemoryStorage, type MemoryStorage } from '../ports/memory-storage.js';
import type { StorageProvider, UnitStorage } from '../ports/storage.js';
import { createEngine, type Engine } from './engine.js';
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
async function start(disk: MemoryStorage, day: number): Promise<Process> {
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
    unit: (name) => alive(() => view(disk.unit(name) as UnitStorage)),
    listUnits: (prefix) => alive(() => disk.listUnits(prefix)),
    dropUnit: (name) => alive(() => disk.dropUnit(name)),
    close: () => undefined,
  };
  const clock = new ManualClock(Date.UTC(2026, 0, 1) + day * DAY);
  const engine = await createEngine({ storage, capabilities: TEST_CAPABILITIES, clock, scheduler: clock });
  return { engine, clock, crash: () => (dead = true) };
}

async function bytesStored(engine: Engine, tenantId: string): Promise<number> {
  await engine.tenant(tenantId);
  return (await engine.tenants.usage(tenantId)).bytes_stored;
}

describe('usage levels after a crash', () => {
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

  it('are counted afresh again after a crash during the count', async () => {
    const disk = createMemoryStorage();
    const first = await start(disk, 0);
    const { tenant } = await first.engine.tenants.create({ email: 'c@example.com' });
    const { kv } = await first.engine.tenant(tenant.id);
    for (let i = 0; i < 3000; i++) await kv.put(`k${String(i).padStart(5, '0')}`, new Uint8Array(10));
    first.crash();

    const second = await start(disk, 1);
    const opening = second.engine.tenant(tenant.id);
    await new Promise((resolve) => setTimeout(resolve, 0)); // the count is between two pages
    second.crash();
    await opening.catch(() => undefined);

    const third = await start(disk, 2);
    expect(await bytesStored(third.engine, tenant.id)).toBe(3000 * 16);
    await third.engine.close();
  });

  it('stay exact when expired keys are swept while the count runs (the sweep waits for it)', async () => {
    const disk = createMemoryStorage();
    const first = await start(disk, 0);
    const { tenant } = await first.engine.tenants.create({ email: 'ttl@example.com' });
    const { kv } = await first.engine.tenant(tenant.id);
    for (let i = 0; i < 3000; i++) await kv.put(`k${String(i).padStart(5, '0')}`, new Uint8Array(10), { ttl: 60 });
    await kv.put('keep', new Uint8Array(10));
    first.crash();

    // A day later every TTL key has expired: the sweep is due at once, as the count starts.
    const second = await start(disk, 1);
    const opening = second.engine.tenant(tenant.id);
    let opened = false;
    void opening.then(() => (opened = true));
    while (!opened) {
      await second.clock.advance(0); // runs whatever timer is due, the sweep included
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    const { kv: again } = await opening;
    await second.clock.advance(0);
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 0));
    await again.sweep();
    expect(await again.storedBytes()).toBe('keep'.length + 10);
    expect(await bytesStored(second.engine, tenant.id)).toBe('keep'.length + 10);
    await second.engine.close();
  });
});
