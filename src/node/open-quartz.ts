/**
 * openQuartz: the Node home's one-call way to an engine on a data directory (lmdb + files).
 */
import { totalmem } from 'node:os';
import { ErrorCode, QuartzError } from '../core/errors.js';
import type { InitInput } from '../core/loader.js';
import { showValue } from '../core/show-value.js';
import { DATA_VERSION } from '../engine/data-version.js';
import { createEngine, refuseUnknownSectionOptions, type Engine, type EngineOptions } from '../engine/engine.js';
import { refuseUnknownOptions } from '../engine/known-options.js';
import type { Clock, Scheduler } from '../ports/clock.js';
import { BatchEncoderPool } from './batch-encoder-pool.js';
import './core.js'; // registers build/quartz.wasm as init()'s default source
import { openDiskStorage } from './storage/disk-storage.js';
import { isNoSpace } from './storage/disk-errors.js';

export interface OpenQuartzOptions extends Pick<EngineOptions, 'kv' | 'streams' | 'vectors' | 'usage' | 'defaultPlan' | 'tenantIdleMs' | 'logger'> {
  /** The data directory; created if missing. */
  dataDir: string;
  clock?: Clock;
  scheduler?: Scheduler;
  /** Defaults to the package's build/quartz.wasm. */
  wasm?: InitInput;
  /** Worker threads that compress produce batches of 256 KiB and more (64 KiB and more behind a backlog of writes, see docs/streams.md); default one per core but one (at least 1, at most 4), 0 for none. */
  encodeThreads?: number;
  /**
   * Start even if the write-ahead log is damaged with acknowledged writes behind the damage: keep
   * every write before it, drop the rest (the damaged file is copied aside) and report it to
   * `warn`. Without it such a directory is refused with CORRUPT_DATA. Meant for one start after
   * damage (see docs/architecture.md, Durability).
   */
  dropDamagedLog?: boolean;
  /** Where dropDamagedLog reports what was dropped, and replay a damaged log header it read past (default: process.emitWarning). */
  warn?: (message: string, details: Record<string, unknown>) => void;
}

/** Every key of OpenQuartzOptions (the record makes the compiler check the list is complete). */
const OPEN_QUARTZ_OPTION_NAMES = Object.keys({
  dataDir: true,
  clock: true,
  scheduler: true,
  wasm: true,
  encodeThreads: true,
  dropDamagedLog: true,
  warn: true,
  kv: true,
  streams: true,
  vectors: true,
  usage: true,
  defaultPlan: true,
  tenantIdleMs: true,
  logger: true,
} satisfies Record<keyof OpenQuartzOptions, true>);

/** More threads than this only wait on the engine's one thread that frames and commits. */
const MAX_ENCODE_THREADS = 64;

/**
 * The Node home's budget for open vector collections when none is given: an eighth of the
 * machine's memory (or of the cgroup's limit), at least 256 MiB, leaving the rest to lmdb's
 * map, the caches and the other services (see docs/vectors.md, Memory).
 */
export function defaultOpenCollectionBytes(): number {
  return Math.max(256 * 2 ** 20, Math.floor(machineMemory() / 8));
}

/**
 * The Node home's budget for every tenant's KV key cache when none is given: a sixteenth of the
 * machine's memory (or of the cgroup's limit), at least 128 MiB (see docs/kv.md, Key cache).
 */
export function defaultKeyCacheBytes(): number {
  return Math.max(128 * 2 ** 20, Math.floor(machineMemory() / 16));
}

/** The machine's memory, or the cgroup's limit when it is lower. */
export function machineMemory(): number {
  const limit = process.constrainedMemory?.() ?? 0;
  return limit > 0 && limit < totalmem() ? limit : totalmem();
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
  // Before anything is opened: a misspelt `encodeThreads` or `dropDamagedLog` would be left to its default.
  if (options !== null && typeof options === 'object') refuseUnknownOptions(options, OPEN_QUARTZ_OPTION_NAMES, 'openQuartz');
  refuseUnknownSectionOptions(options ?? {}, 'openQuartz');
  const dataDir: unknown = options?.dataDir;
  // '' would quietly open the working directory; a non-string would fail deep in node:fs.
  if (typeof dataDir !== 'string' || dataDir === '') {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `openQuartz needs a dataDir: a non-empty path, got ${showValue(dataDir)}`);
  }
  const threads: unknown = options.encodeThreads;
  if (threads !== undefined && !(Number.isInteger(threads) && (threads as number) >= 0 && (threads as number) <= MAX_ENCODE_THREADS)) {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `encodeThreads must be an integer from 0 to ${MAX_ENCODE_THREADS}, got ${showValue(threads)}`);
  }
  const storage = await openDiskStorage({ dir: dataDir, dropDamagedLog: options.dropDamagedLog, warn: options.warn, newestDataVersion: DATA_VERSION }).catch((err: unknown) => {
    throw asOpenError(err, dataDir);
  });
  // Threads start on the first large produce, so a process that never makes one never has them.
  const batchEncoder = options.encodeThreads === 0 ? undefined : new BatchEncoderPool({ threads: options.encodeThreads });
  try {
    // openQuartz's own options stay here: createEngine refuses keys it does not have.
    const { dataDir: _dir, encodeThreads: _threads, dropDamagedLog: _drop, warn: _warn, ...engineOptions } = options;
    return await createEngine({
      ...engineOptions,
      vectors: { ...options.vectors, maxOpenBytes: options.vectors?.maxOpenBytes ?? defaultOpenCollectionBytes() },
      kv: { ...options.kv, keyCacheMaxBytes: options.kv?.keyCacheMaxBytes ?? defaultKeyCacheBytes() },
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

/** The file system's refusals as QuartzErrors, so a caller switches on `code` alone; the errno stays in `cause`. */
function asOpenError(err: unknown, dataDir: string): unknown {
  if (err instanceof QuartzError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason = err instanceof Error ? err.message : String(err);
  if (errno === 'ENOTDIR' || errno === 'EEXIST') {
    return new QuartzError(ErrorCode.INVALID_ARGUMENT, `data directory ${dataDir} is not a directory (${reason})`, { cause: err });
  }
  if (isNoSpace(err)) {
    return new QuartzError(ErrorCode.INSUFFICIENT_STORAGE, `cannot open data directory ${dataDir}: no space left on its disk (${reason}); free some space and start again (nothing was lost)`, { cause: err });
  }
  return new QuartzError(ErrorCode.INTERNAL, `cannot open data directory ${dataDir}: ${reason}`, { cause: err });
}
