/**
 * The sides of `bench kv`'s rows, opened one way for its table and for `put-driver.ts`, so a
 * profile of one side alone runs what the table compares.
 */
import { join } from 'node:path';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import type { EngineContext } from '../../src/engine/context.js';
import { KvStore, type KvStoreOptions } from '../../src/engine/kv/kv-store.js';
import { UsageMeter } from '../../src/engine/tenants/usage-meter.js';
import type { DiskStorage } from '../../src/node/storage/disk-storage.js';
import { systemClock, timerScheduler } from '../../src/ports/system-clock.js';

/** The peer: raw lmdb in `dir`, every commit fsync'd before its promise resolves. */
export function openRawLmdb(dir: string): { env: RootDatabase; db: Database<Uint8Array, string> } {
  const env = openLmdb({ path: join(dir, 'raw.mdb'), overlappingSync: false, noSync: false, commitDelay: 0, eventTurnBatching: true, pageSize: 8192 });
  return { env, db: env.openDB<Uint8Array, string>('data', { encoding: 'binary' }) };
}

/** The engine's KvStore of tenant `bench` on `storage`, metering on; `close` closes both. */
export async function openEngineKv(storage: DiskStorage, options: KvStoreOptions = {}): Promise<{ kv: KvStore; close: () => Promise<void> }> {
  const usage = await UsageMeter.open({ storage, clock: systemClock, scheduler: timerScheduler });
  const ctx: EngineContext = { storage, clock: systemClock, scheduler: timerScheduler, usage, capabilities: { compileWasmAtRuntime: true, threads: true, persistentStorage: true } };
  const kv = await KvStore.open(ctx, 'bench', options);
  return {
    kv,
    close: async () => {
      await kv.close();
      await usage.close();
    },
  };
}
