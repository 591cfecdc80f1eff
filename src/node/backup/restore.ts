/**
 * Restores a QZBK archive into an empty data directory (offline), through the Storage port:
 * ordered-KV entries in batches per unit, blobs one by one (streamed, so memory stays bounded
 * whatever their size), then a close that makes it durable.
 */
import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { DATA_VERSION, DATA_VERSION_KEY, META_UNIT, dataVersionTooNew, parseDataVersion } from '../../engine/data-version.js';
import type { BatchOp } from '../../ports/storage.js';
import { PRIVATE_DIR_MODE, openDiskStorage, type DiskUnit } from '../storage/disk-storage.js';
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
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(file);
  } catch (err) {
    throw new QuartzError(ErrorCode.NOT_FOUND, `backup file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  // Checked before the data directory is touched (a directory here failed only once that was made).
  if (!info.isFile()) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `backup file ${file}: cannot read it (not a file)`);
  const total = Number(info.size);
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
  let read = 0;
  const source = createReadStream(file, { highWaterMark: 1024 * 1024 });
  source.on('data', (chunk) => {
    read += chunk.length;
    options.onProgress?.(read, total);
  });
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
        if (entry.unit === META_UNIT && Buffer.from(entry.key).equals(DATA_VERSION_KEY)) {
          const found = parseDataVersion(entry.value);
          if (found > DATA_VERSION) throw dataVersionTooNew(`backup archive ${file}`, found, DATA_VERSION);
        }
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
