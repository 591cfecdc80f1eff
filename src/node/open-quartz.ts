/**
 * openQuartz: the Node home's one-call way to an engine on a data directory (lmdb + files).
 */
import type { InitInput } from '../core/loader.js';
import { createEngine, type Engine, type EngineOptions } from '../engine/engine.js';
import type { Clock, Scheduler } from '../ports/clock.js';
import { BatchEncoderPool } from './batch-encoder-pool.js';
import './core.js'; // registers build/quartz.wasm as init()'s default source
import { openDiskStorage } from './storage/disk-storage.js';

export interface OpenQuartzOptions extends Pick<EngineOptions, 'kv' | 'streams' | 'vectors' | 'usage' | 'defaultPlan'> {
  /** The data directory; created if missing. */
  dataDir: string;
  clock?: Clock;
  scheduler?: Scheduler;
  /** Defaults to the package's build/quartz.wasm. */
  wasm?: InitInput;
  /** Worker threads that compress large produce batches; default one per core (at most 4), 0 for none. */
  encodeThreads?: number;
}

/** Facts about the Node home. */
export const nodeCapabilities = { compileWasmAtRuntime: true, threads: true, persistentStorage: true } as const;

/**
 * Opens (or creates) a QuartzDB data directory and returns its engine. Refuses a directory
 * written by a newer QuartzDB (DATA_VERSION_TOO_NEW) and migrates an older one.
 *
 * @example
 * import { openQuartz } from 'quartzdb';
 * const engine = await openQuartz({ dataDir: './.quartz' });
 * const { kv } = await engine.tenant('t1');
 * await kv.put('hello', new TextEncoder().encode('world'));
 * await engine.close();
 */
export async function openQuartz(options: OpenQuartzOptions): Promise<Engine> {
  const storage = await openDiskStorage({ dir: options.dataDir });
  // Threads start on the first large produce, so a process that never makes one never has them.
  const batchEncoder = options.encodeThreads === 0 ? undefined : new BatchEncoderPool({ threads: options.encodeThreads });
  try {
    return await createEngine({
      ...options,
      storage,
      capabilities: nodeCapabilities,
      batchEncoder,
      where: `data directory ${options.dataDir}`,
    });
  } catch (err) {
    await batchEncoder?.close();
    await storage.close();
    throw err;
  }
}
