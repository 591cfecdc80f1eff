/**
 * Restores a QZBK archive into an empty data directory (offline), through the Storage port:
 * ordered-KV entries in batches per unit, blobs one by one (streamed, so memory stays bounded
 * whatever their size), then a close that makes it durable. Or one vector collection of it over
 * a stopped server's data directory (`restoreCollection`).
 */
import { createReadStream, type ReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { DATA_VERSION, DATA_VERSION_KEY, META_UNIT, dataVersionTooNew, parseDataVersion } from '../../engine/data-version.js';
import type { BatchOp } from '../../ports/storage.js';
import { distrustUsageLevels } from '../../engine/tenants/usage-meter.js';
import { tenantStored } from '../../engine/tenants/tenant-registry.js';
import { collectionPlace } from '../../engine/vectors/vector-store.js';
import { PRIVATE_DIR_MODE, openDiskStorage, type DiskStorage, type DiskUnit } from '../storage/disk-storage.js';
import { makeDirs } from '../storage/make-dirs.js';
import { readArchive } from './archive.js';

export interface RestoreResult {
  entries: number;
  blobs: number;
  units: number;
  bytes: number;
}

export interface RestoreOptions {
  file: string;
  dataDir: string;
  /** Called with bytes of the archive read so far and the total. */
  onProgress?: (read: number, total: number) => void;
  /** Stops the restore (Ctrl-C): it rejects with `signal.reason`, leaving the directory as it found it. */
  signal?: AbortSignal;
}

const BATCH_BYTES = 4 * 1024 * 1024;
const BATCH_OPS = 2000;

/** The archive's size; NOT_FOUND or INVALID_ARGUMENT naming it when it cannot be read. */
async function archiveSize(file: string): Promise<number> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(file);
  } catch (err) {
    throw new QuartzError(ErrorCode.NOT_FOUND, `backup file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!info.isFile()) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `backup file ${file}: cannot read it (not a file)`);
  return Number(info.size);
}

/** Checks the directory is empty, or makes it; true when it made it. */
async function ensureEmpty(dir: string): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      await makeDirs(dir, PRIVATE_DIR_MODE);
      return true;
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${dir} is not a directory`);
    throw err;
  }
  if (names.length > 0) {
    throw new QuartzError(ErrorCode.PRECONDITION_FAILED, `data directory ${dir} is not empty; restore only into an empty or new directory`);
  }
  return false;
}

/** Takes back a failed restore: the directory was empty or new, so all in it is the restore's. */
async function undoRestore(dir: string, made: boolean): Promise<void> {
  if (made) return rm(dir, { recursive: true, force: true });
  for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true });
}

/** A newer data format's `meta` entry is refused (data_version_too_new) as it is read. */
function refuseNewerFormat(entry: { unit: string; key: Uint8Array; value: Uint8Array }, file: string): void {
  if (entry.unit === META_UNIT && Buffer.from(entry.key).equals(DATA_VERSION_KEY)) {
    const found = parseDataVersion(entry.value);
    if (found > DATA_VERSION) throw dataVersionTooNew(`backup archive ${file}`, found, DATA_VERSION);
  }
}

/** `chunks`, checking `signal` before each: Ctrl-C inside a blob of gigabytes must not wait for its end. */
async function* stoppable(chunks: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    signal?.throwIfAborted();
    yield chunk;
  }
}

/**
 * @example
 * const { entries, blobs } = await restoreBackup({ file: 'backup.qzb', dataDir: './restored' });
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const { file, dataDir } = options;
  // Checked before the data directory is touched (a directory here failed only once that was made).
  const total = await archiveSize(file);
  options.signal?.throwIfAborted();
  const made = await ensureEmpty(dataDir);
  // Whatever fails from here (opening the storage, the archive, a full disk, closing, Ctrl-C),
  // the directory goes back to how it was found: a partial restore would start as a server that
  // silently lacks data, and block a retry.
  try {
    return await restoreInto(options, total);
  } catch (err) {
    await undoRestore(dataDir, made);
    throw err;
  }
}

async function restoreInto(options: RestoreOptions, total: number): Promise<RestoreResult> {
  const { file, dataDir, signal } = options;
  const storage = await openDiskStorage({ dir: dataDir });
  const result: RestoreResult = { entries: 0, blobs: 0, units: 0, bytes: total };
  const seen = new Set<string>();
  let pendingUnit: DiskUnit | undefined;
  let pending: BatchOp[] = [];
  let pendingBytes = 0;
  const flush = async (): Promise<void> => {
    if (pendingUnit !== undefined && pending.length > 0) await pendingUnit.kv.batch(pending);
    pending = [];
    pendingBytes = 0;
  };
  const source = archiveStream(file, total, options.onProgress);
  try {
    let current: string | undefined;
    for await (const entry of readArchive(source, file)) {
      signal?.throwIfAborted();
      if (entry.unit !== current) {
        await flush();
        current = entry.unit;
        pendingUnit = await storage.unit(entry.unit);
        if (!seen.has(entry.unit)) {
          seen.add(entry.unit);
          result.units++;
        }
      }
      if (entry.type === 'kv') {
        // The meta unit comes first (the first unit made): a newer format is refused before gigabytes are written for nothing.
        refuseNewerFormat(entry, file);
        pending.push({ type: 'put', key: entry.key, value: entry.value });
        pendingBytes += entry.key.length + entry.value.length;
        result.entries++;
        if (pending.length >= BATCH_OPS || pendingBytes >= BATCH_BYTES) await flush();
      } else {
        // Streamed to its file: a blob (a large value, a collection's snapshot) may be bigger than memory.
        await pendingUnit!.blobs.putStream(entry.key, stoppable(entry.chunks, signal));
        result.blobs++;
      }
    }
    await flush();
    signal?.throwIfAborted();
  } catch (err) {
    source.destroy();
    await storage.close().catch(() => undefined);
    // A frame intact by its checksum whose unit name or key the storage refuses: the archive is at fault, not the call.
    if (err instanceof QuartzError && err.code === ErrorCode.INVALID_ARGUMENT) throw new QuartzError(ErrorCode.CORRUPT_DATA, `backup archive ${file}: ${err.message}`);
    throw err;
  }
  source.destroy();
  await storage.close();
  return result;
}

export interface RestoreCollectionOptions {
  file: string;
  /** The data directory of a stopped server, holding the tenant. */
  dataDir: string;
  tenant: string;
  collection: string;
  /** Called with bytes of the archive read so far and the total. */
  onProgress?: (read: number, total: number) => void;
  /** Stops the restore while the archive is read (Ctrl-C): it rejects with `signal.reason`, the directory as it was. */
  signal?: AbortSignal;
}

export interface RestoreCollectionResult {
  tenant: string;
  collection: string;
  /** The collection's ordered-KV entries and blobs restored (its catalog entry not counted). */
  entries: number;
  blobs: number;
  bytes: number;
}

/** Where the archive's copy of the collection is written while the rest of the archive is checked. */
const STAGING_PREFIX = 'restore-staging/';

/**
 * Restores one vector collection from a backup archive over a stopped server's data directory,
 * leaving every other unit as it is: the way back for a collection whose snapshot was damaged
 * (docs/vectors.md) without restoring the whole server to the backup's moment. The collection's
 * unit is written to a staging unit while the whole archive is read and checked; only then does it
 * replace the collection's unit (whatever it held: damaged, deleted, created again) and its catalog
 * entry. Tenants' usage levels are counted afresh on the next start, as after a crash.
 *
 * @example
 * await restoreCollection({ file: 'backup.qzb', dataDir: './.quartz', tenant: 't_1', collection: 'docs' });
 */
export async function restoreCollection(options: RestoreCollectionOptions): Promise<RestoreCollectionResult> {
  const { file, dataDir, tenant, collection, signal } = options;
  const total = await archiveSize(file);
  signal?.throwIfAborted();
  try {
    if ((await readdir(dataDir)).length === 0) throw new QuartzError(ErrorCode.NOT_FOUND, `data directory ${dataDir} is empty; restoring one collection needs the server's data directory`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new QuartzError(ErrorCode.NOT_FOUND, `data directory ${dataDir} does not exist`);
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${dataDir} is not a directory`);
    throw err;
  }
  const storage = await openDiskStorage({ dir: dataDir });
  try {
    if (!(await tenantStored(storage, tenant))) throw new QuartzError(ErrorCode.NOT_FOUND, `tenant '${tenant}' does not exist in ${dataDir}`);
    const place = collectionPlace(tenant, collection);
    const stagingName = STAGING_PREFIX + place.unit;
    // A staging unit left by a restore that was cut short holds nothing worth keeping.
    await storage.dropUnit(stagingName);
    let staged: Staged;
    try {
      staged = await stageCollection(storage, stagingName, place, options, total);
    } catch (err) {
      await storage.dropUnit(stagingName);
      throw err;
    }
    if (staged.config === undefined) {
      await storage.dropUnit(stagingName);
      throw new QuartzError(ErrorCode.NOT_FOUND, `backup archive ${file} holds no collection '${collection}' of tenant '${tenant}'`);
    }
    // The archive is whole: from here the collection is replaced. A crash during the copy leaves it
    // damaged (or partly written), and running the restore again finishes it.
    await replaceUnit(storage, stagingName, place.unit);
    await (await storage.unit(place.catalogUnit)).kv.put(place.catalogKey, staged.config);
    await storage.dropUnit(stagingName);
    await distrustUsageLevels(storage);
    return { tenant, collection, entries: staged.entries, blobs: staged.blobs, bytes: total };
  } finally {
    await storage.close();
  }
}

interface Staged {
  /** The collection's catalog entry in the archive; undefined when the archive has no such collection. */
  config: Uint8Array | undefined;
  entries: number;
  blobs: number;
}

/** The archive file as a stream that reports the bytes read so far to `onProgress`. */
function archiveStream(file: string, total: number, onProgress: ((read: number, total: number) => void) | undefined): ReadStream {
  let read = 0;
  const source = createReadStream(file, { highWaterMark: 1024 * 1024 });
  source.on('data', (chunk) => {
    read += chunk.length;
    onProgress?.(read, total);
  });
  return source;
}

/** Reads the whole archive (every CRC checked), writing the collection's unit to `stagingName`. */
async function stageCollection(storage: DiskStorage, stagingName: string, place: ReturnType<typeof collectionPlace>, options: RestoreCollectionOptions, total: number): Promise<Staged> {
  const { file, signal } = options;
  const staging = await storage.unit(stagingName);
  const staged: Staged = { config: undefined, entries: 0, blobs: 0 };
  let pending: BatchOp[] = [];
  let pendingBytes = 0;
  const flush = async (): Promise<void> => {
    if (pending.length > 0) await staging.kv.batch(pending);
    pending = [];
    pendingBytes = 0;
  };
  const source = archiveStream(file, total, options.onProgress);
  try {
    for await (const entry of readArchive(source, file)) {
      signal?.throwIfAborted();
      if (entry.type === 'kv') {
        refuseNewerFormat(entry, file);
        if (entry.unit === place.catalogUnit && Buffer.from(entry.key).equals(place.catalogKey)) staged.config = entry.value;
        if (entry.unit !== place.unit) continue;
        pending.push({ type: 'put', key: entry.key, value: entry.value });
        pendingBytes += entry.key.length + entry.value.length;
        staged.entries++;
        if (pending.length >= BATCH_OPS || pendingBytes >= BATCH_BYTES) await flush();
      } else if (entry.unit === place.unit) {
        await staging.blobs.putStream(entry.key, stoppable(entry.chunks, signal));
        staged.blobs++;
      }
    }
    await flush();
    signal?.throwIfAborted();
  } catch (err) {
    if (err instanceof QuartzError && err.code === ErrorCode.INVALID_ARGUMENT) throw new QuartzError(ErrorCode.CORRUPT_DATA, `backup archive ${file}: ${err.message}`);
    throw err;
  } finally {
    source.destroy();
  }
  return staged;
}

/** Bytes of a blob read at a time when one unit's blob is copied to another. */
const COPY_CHUNK = 4 * 1024 * 1024;

/** Replaces unit `to` with a copy of unit `from`: blobs first, then the ordered-KV entries (which point at them). */
async function replaceUnit(storage: DiskStorage, from: string, to: string): Promise<void> {
  await storage.dropUnit(to);
  const source = await storage.unit(from);
  const target = await storage.unit(to);
  for (const { key, size } of await source.blobs.list('')) {
    await target.blobs.putStream(key, blobChunks(source, key, size));
  }
  let start: Uint8Array | undefined;
  for (;;) {
    const page = await source.kv.scan({ start, limit: BATCH_OPS });
    if (page.length === 0) return;
    await target.kv.batch(page.map(({ key, value }): BatchOp => ({ type: 'put', key, value })));
    // The next page starts just after this one's last key.
    start = Uint8Array.of(...page[page.length - 1]!.key, 0);
  }
}

async function* blobChunks(unit: DiskUnit, key: string, size: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < size; offset += COPY_CHUNK) {
    const chunk = await unit.blobs.get(key, { offset, length: Math.min(COPY_CHUNK, size - offset) });
    if (chunk === undefined) throw new QuartzError(ErrorCode.CORRUPT_DATA, `blob '${key}' went missing while it was copied`);
    yield chunk;
  }
}
