/**
 * What every engine unit receives from the engine: time, timers, the usage meter and the
 * home's capabilities. Units get their storage from the StorageProvider by unit name and
 * never reach into another unit's keys.
 */
import type { BatchEncoder } from '../ports/batch-encoder.js';
import type { Clock, Scheduler } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { StorageProvider } from '../ports/storage.js';
import type { HotValues } from './kv/hot-values.js';
import type { KeyCache } from './kv/key-cache.js';
import type { OpenCollections } from './vectors/open-collections.js';
import type { SegmentCache } from './streams/segment-cache.js';

/** Facts about the home, so the engine branches on facts rather than runtime names. */
export interface Capabilities {
  /** Can `WebAssembly.compile` user modules at request time (false on workerd). */
  compileWasmAtRuntime: boolean;
  threads: boolean;
  /** Data outlives the process (false for the memory adapter). */
  persistentStorage: boolean;
}

export type UsageMetric = 'api_calls' | 'bytes_stored' | 'records_produced' | 'vectors_stored' | 'function_ms';

/** Usage counters per tenant; the tenant registry persists them. `delta` may be negative (bytes freed). */
export interface UsageRecorder {
  /**
   * `now`: the context clock's time, from a caller that has just read it for the same request (a
   * clock read costs ~60 ns on a VM's clock, a hot KV GET's route ~1 µs); read here without it.
   */
  add(tenantId: string, metric: UsageMetric, delta: number, now?: number): void;
  /**
   * Sets a tenant's levels to what `counter` counts, if the recorder's stored levels may have
   * missed deltas (a crash lost the last unflushed ones); the engine calls it as a tenant opens,
   * before it hands the tenant's services out. Resolves once the tenant may be served; the
   * bytes may still be being counted then (see LevelCounter).
   */
  reconcile?(tenantId: string, counter: LevelCounter): Promise<void>;
}

/** Counts what a tenant holds, as the usage levels should stand. */
export interface LevelCounter {
  /** Called once the bytes are due to be counted (in the background), before they are: waits until what they include is open. */
  prepare?(): Promise<void>;
  /** Live vectors; called before the tenant is served, so no vector write runs meanwhile. */
  vectors(): Promise<number>;
  /**
   * Starts counting the bytes stored as of this call, writes going on meanwhile: resolves with
   * them, or undefined when a write failed during the count (call again). Rejects with
   * STORAGE_CLOSED if the tenant closes first.
   */
  bytes(): Promise<number | undefined>;
}

export interface EngineContext {
  storage: StorageProvider;
  clock: Clock;
  scheduler: Scheduler;
  usage: UsageRecorder;
  capabilities: Capabilities;
  /** The budget of hot KV entries shared by the engine's KV stores; without it each store has one of its own. */
  hotValues?: HotValues;
  /**
   * The segment cache shared by the engine's stream stores, so its byte budget bounds every
   * tenant together; without it each store has one of its own.
   */
  segmentCache?: SegmentCache;
  /**
   * The byte budget and idle close shared by the engine's vector stores, so it bounds the open
   * collections of every tenant together; without it each store has one of its own.
   */
  openCollections?: OpenCollections;
  /**
   * The byte budget and idle release shared by the engine's KV stores' key caches; without it
   * each store is bounded only by its own `cachedKeys`.
   */
  keyCache?: KeyCache;
  /** Seals large produce batches off the engine's thread (the Node home's worker threads); without it they are sealed inline. */
  batchEncoder?: BatchEncoder;
  /** Where background work that fails (a partition's roll or retention, a usage recount, metering KV writes) is reported; without it, the console. */
  logger?: Logger;
}
