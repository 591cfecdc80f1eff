import { StreamStore } from '../../src/engine/streams/stream-store.js';
import type { EngineContext } from '../../src/engine/context.js';
import { openDiskStorage, type DiskStorage } from '../../src/node/storage/disk-storage.js';
import { systemClock, timerScheduler } from '../../src/ports/system-clock.js';

/** The streams benches' store: one StreamStore on the Node disk adapter in `dir`, metering off. */
export async function openStore(dir: string, cacheBytes = 1024 * 1024 * 1024): Promise<{ storage: DiskStorage; streams: StreamStore }> {
  const storage = await openDiskStorage({ dir });
  const ctx: EngineContext = {
    storage,
    clock: systemClock,
    scheduler: timerScheduler,
    usage: { add() {} },
    capabilities: { compileWasmAtRuntime: true, threads: false, persistentStorage: true },
  };
  return { storage, streams: await StreamStore.open(ctx, 'bench', { segmentCacheBytes: cacheBytes }) };
}
