import { StreamStore } from '../../src/engine/streams/stream-store.js';
import type { EngineContext } from '../../src/engine/context.js';
import { BatchEncoderPool } from '../../src/node/batch-encoder-pool.js';
import { openDiskStorage, type DiskStorage } from '../../src/node/storage/disk-storage.js';
import { systemClock, timerScheduler } from '../../src/ports/system-clock.js';

/**
 * The streams benches' store: one StreamStore on the Node disk adapter in `dir`, metering off,
 * with the Node home's batch encoder: `encodeThreads` worker threads sealing produce batches
 * (`--encode-threads N`; undefined: one per core but one, as there; 0 seals inline, as before them).
 */
export async function openStore(dir: string, cacheBytes = 1024 * 1024 * 1024, encodeThreads?: number): Promise<{ storage: DiskStorage; streams: StreamStore; close(): Promise<void> }> {
  const storage = await openDiskStorage({ dir });
  const threads = encodeThreads;
  const batchEncoder = threads === 0 ? undefined : new BatchEncoderPool({ threads });
  const ctx: EngineContext = {
    storage,
    clock: systemClock,
    scheduler: timerScheduler,
    usage: { add() {} },
    capabilities: { compileWasmAtRuntime: true, threads: true, persistentStorage: true },
    batchEncoder,
  };
  const streams = await StreamStore.open(ctx, 'bench', { segmentCacheBytes: cacheBytes });
  const close = async () => {
    await streams.close();
    await batchEncoder?.close();
    await storage.close();
  };
  return { storage, streams, close };
}
