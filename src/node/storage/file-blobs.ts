/**
 * One unit's blob store as files under its own directory. A put writes a temp file, fsyncs it,
 * renames it into place and fsyncs the directory, so a blob is either absent or complete.
 *
 * Keys become file names by percent-escaping every UTF-8 byte outside [a-z0-9_-] (so names
 * are safe on case-insensitive file systems and never '.' or '..'), split into 200-character
 * directory levels marked with a trailing '~' so long keys stay under NAME_MAX.
 *
 * Reads go through `ReadHandles`, a small LRU of open files: a range read on a kept-open file
 * is one pread instead of four threadpool trips (open, stat, read, close), made on the calling
 * thread when small (see SYNC_READ_MAX).
 */
import { randomUUID } from 'node:crypto';
import { readSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { decodeUtf8 } from '../../core/utf8.js';
import type { BlobInfo, BlobRange, BlobStore } from '../../ports/storage.js';
import { checkBlob, checkName, checkPrefix, checkRange, checkReadTarget, compareUtf8 } from '../../ports/storage-checks.js';
import { storageFailure } from './disk-errors.js';
import type { UnitHandleState } from './lmdb-kv.js';

const PIECE_CHARS = 200;
const utf8 = new TextEncoder();

function isPlain(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x5f || b === 0x2d;
}

/** Relative path segments for a blob key. */
export function blobPath(key: string): string[] {
  let s = '';
  for (const b of utf8.encode(key)) s += isPlain(b) ? String.fromCharCode(b) : '%' + b.toString(16).padStart(2, '0');
  const pieces: string[] = [];
  for (let i = 0; i < s.length; i += PIECE_CHARS) pieces.push(s.slice(i, i + PIECE_CHARS));
  return pieces.map((p, i) => (i < pieces.length - 1 ? p + '~' : p));
}

/** The key for an escaped name (directory markers already removed), or undefined if it is not one of ours. */
export function blobKey(escaped: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < escaped.length; i++) {
    const c = escaped.charCodeAt(i);
    if (c === 0x25) {
      const b = Number.parseInt(escaped.slice(i + 1, i + 3), 16);
      if (!/^[0-9a-f]{2}$/.test(escaped.slice(i + 1, i + 3))) return undefined;
      bytes.push(b);
      i += 2;
    } else if (isPlain(c)) bytes.push(c);
    else return undefined;
  }
  try {
    return decodeUtf8(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT' || (err as NodeJS.ErrnoException)?.code === 'ENOTDIR';
}

/** Makes a directory entry change durable (POSIX needs the directory itself fsync'd). */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Buffers per writev call: Linux's IOV_MAX. */
const WRITEV_MAX = 1024;

/** Writes `parts` one after another from the file's start: writev in groups, resuming after short writes. */
async function writeAll(handle: FileHandle, parts: readonly Uint8Array[]): Promise<void> {
  let i = 0;
  while (i < parts.length) {
    let rest = parts.slice(i, i + WRITEV_MAX).filter((p) => p.length > 0);
    i += WRITEV_MAX;
    while (rest.length > 0) {
      let { bytesWritten } = await handle.writev(rest);
      if (bytesWritten === 0) throw new Error('writev wrote nothing');
      let done = 0;
      while (done < rest.length && bytesWritten >= rest[done]!.length) bytesWritten -= rest[done++]!.length;
      rest = rest.slice(done);
      if (bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
    }
  }
}

/** Open read handles kept per storage by default: far below any fd limit, above most hot sets. */
export const READ_HANDLES = 128;
/** Key → path entries a blob store keeps for reads (a few hundred KB at most); dropped all at once when full. */
const READ_PATHS = 1024;
/** A ranged read of a file whose size is not known yet allocates `length` up front only up to this. */
const UNSIZED_READ_MAX = 1024 * 1024;
/**
 * Reads up to this size are one pread on the calling thread. From the page cache that takes
 * ~10 µs, where a trip through libuv's threadpool (queue, wake a worker, wake the loop) costs
 * ~50 µs of latency and as much CPU: most of a random consume's range read. A cold read blocks
 * the loop for one disk access, as lmdb's memory-mapped KV reads already do; larger reads
 * (whole segments, big values) stay on the threadpool.
 */
const SYNC_READ_MAX = 256 * 1024;

/**
 * Fills `out` from file position `from` on; gives the bytes read (fewer only at the file's end).
 * A small read answers synchronously, so the caller need not wait a promise turn for it.
 */
function readAt(handle: FileHandle, out: Uint8Array, from: number): number | Promise<number> {
  if (out.length > SYNC_READ_MAX) return readAtAsync(handle, out, from);
  let done = 0;
  while (done < out.length) {
    const bytesRead = readSync(handle.fd, out, done, out.length - done, from + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

async function readAtAsync(handle: FileHandle, out: Uint8Array, from: number): Promise<number> {
  let done = 0;
  while (done < out.length) {
    const { bytesRead } = await handle.read(out, done, out.length - done, from + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

interface OpenFile {
  readonly path: string;
  readonly handle: Promise<FileHandle>;
  /** The handle once open, so a read on a kept handle need not wait a promise turn for it. */
  opened: FileHandle | undefined;
  /** Learned once per handle: blobs are immutable, so it holds for as long as the handle does. */
  size: number | undefined;
  /** Reads using the handle right now; it is closed only when none are. */
  leases: number;
  /** Evicted: close once the last lease ends, and never hand it out again. */
  dead: boolean;
}

/**
 * A bounded LRU of open read-only file handles, shared by the blob stores of one storage.
 * A cached handle keeps reading the file it opened even after that name is unlinked or
 * renamed over (POSIX), so writers must `evict` a path once they replace or delete it.
 *
 * @example
 * const handles = new ReadHandles(64);
 * const blobs = new FileBlobs(root, tmpDir, state, handles);
 * await handles.closeAll(); // when the storage closes
 */
export class ReadHandles {
  /** Map order is recency order: a hit moves its entry to the end. */
  private readonly files = new Map<string, OpenFile>();

  constructor(readonly capacity = READ_HANDLES) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`read handle capacity must be a positive integer, got ${String(capacity)}`);
  }

  /** Open handles kept for reuse (leased-out evicted ones not counted). */
  get size(): number {
    return this.files.size;
  }

  /** A kept handle on `path` that is already open, leased for one read (`release` it after); else undefined. */
  acquireOpen(path: string): OpenFile | undefined {
    const file = this.files.get(path);
    if (file?.opened === undefined) return undefined;
    this.files.delete(path);
    this.files.set(path, file);
    file.leases++;
    return file;
  }

  /** A handle on `path` for one read, or undefined if the file does not exist; `release` it after. */
  async acquire(path: string): Promise<OpenFile | undefined> {
    let file = this.files.get(path);
    if (file !== undefined) {
      this.files.delete(path);
      this.files.set(path, file);
    } else {
      const opening: OpenFile = { path, handle: open(path, 'r'), opened: undefined, size: undefined, leases: 0, dead: false };
      opening.handle.then((h) => (opening.opened = h)).catch(() => {});
      file = opening;
      this.files.set(path, file);
      if (this.files.size > this.capacity) void this.drop(this.files.keys().next().value!);
    }
    file.leases++;
    try {
      await file.handle;
      return file;
    } catch (err) {
      file.leases--;
      if (this.files.get(path) === file) this.files.delete(path);
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  release(file: OpenFile): void {
    file.leases--;
    if (file.dead && file.leases === 0) void this.close(file);
  }

  /** Forgets the handle on `path` (its file was replaced or deleted); an ongoing read finishes on it. */
  evict(path: string): void {
    void this.drop(path);
  }

  /** Forgets every handle under directory `dir` (a dropped unit). */
  evictUnder(dir: string): void {
    const prefix = dir.endsWith(sep) ? dir : dir + sep;
    for (const path of [...this.files.keys()]) if (path.startsWith(prefix)) void this.drop(path);
  }

  /** Closes every handle not in use now (resolving once they are closed); those in use close when their read ends. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.files.keys()].map((path) => this.drop(path)));
  }

  private drop(path: string): Promise<void> | undefined {
    const file = this.files.get(path);
    if (file === undefined) return undefined;
    this.files.delete(path);
    file.dead = true;
    return file.leases === 0 ? this.close(file) : undefined;
  }

  private close(file: OpenFile): Promise<void> {
    // A failed open has nothing to close; a failed close leaves nothing to retry.
    return file.handle.then((h) => h.close()).catch(() => {});
  }
}

export class FileBlobs implements BlobStore {
  /** Directories known to exist durably, so steady-state puts skip mkdir + parent fsyncs. */
  private readonly knownDirs = new Set<string>();
  /** Paths of keys read lately (each key checked once when it enters), so a hot read skips both. */
  private readonly readPaths = new Map<string, string>();

  /**
   * `rootDirs`, when given, holds every unit root directory that may exist (the provider's list
   * from its open, plus each root a put creates): a unit without one lists no blobs without a
   * readdir. Most units never write a blob (a partition before its first roll), and a tenant's
   * first request lists each partition's blobs: the failed readdirs took ~40% of that open's CPU.
   */
  constructor(
    private readonly root: string,
    private readonly tmpDir: string,
    private readonly state: UnitHandleState,
    private readonly handles: ReadHandles = new ReadHandles(),
    private readonly rootDirs?: Set<string>,
  ) {}

  private file(key: string): string {
    return join(this.root, ...blobPath(key));
  }

  /** Creates `dir` (under the unit root) and fsyncs each parent whose entries changed. */
  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    // Before the mkdir: a list that overlaps it must look.
    this.rootDirs?.add(this.root);
    const created = await mkdir(dir, { recursive: true });
    if (created !== undefined) {
      // Every directory from the first one created down to `dir` is new: sync each parent.
      let d = dir;
      const parents: string[] = [];
      while (d.length >= created.length) {
        const parent = join(d, '..');
        parents.push(parent);
        d = parent;
      }
      for (const p of parents) await syncDir(p);
    }
    this.knownDirs.add(dir);
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    this.state.check();
    checkName(key, 'blob key');
    checkBlob(bytes);
    return this.write(key, [bytes]);
  }

  async putParts(key: string, parts: readonly Uint8Array[]): Promise<void> {
    this.state.check();
    checkName(key, 'blob key');
    if (!Array.isArray(parts)) checkBlob(parts);
    for (const p of parts) checkBlob(p);
    return this.write(key, parts);
  }

  /**
   * Like `put` with the bytes `source` yields, each written as it comes, so a blob larger than
   * memory can be written (a restore). Nothing is in place unless the source ends without error.
   */
  async putStream(key: string, source: AsyncIterable<Uint8Array>): Promise<void> {
    this.state.check();
    checkName(key, 'blob key');
    return this.write(key, source);
  }

  private async write(key: string, parts: readonly Uint8Array[] | AsyncIterable<Uint8Array>): Promise<void> {
    const target = this.file(key);
    const dir = join(target, '..');
    await this.ensureDir(dir).catch((err: unknown) => {
      throw storageFailure(err, 'this write');
    });
    const tmp = join(this.tmpDir, randomUUID());
    try {
      const handle = await open(tmp, 'wx');
      try {
        if (Array.isArray(parts)) await writeAll(handle, parts);
        else {
          for await (const part of parts as AsyncIterable<Uint8Array>) {
            checkBlob(part);
            await writeAll(handle, [part]);
          }
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      this.state.check();
      await rename(tmp, target);
    } catch (err) {
      // A part written before the disk filled up must not keep its room until the next open.
      await rm(tmp, { force: true });
      throw storageFailure(err, 'this write');
    }
    // A kept handle would go on reading the replaced file.
    this.handles.evict(target);
    await syncDir(dir);
  }

  /** The file of a key being read; keys already seen skip the name check and the escaping. */
  private readPath(key: string): string {
    let path = this.readPaths.get(key);
    if (path === undefined) {
      checkName(key, 'blob key');
      path = this.file(key);
      if (this.readPaths.size >= READ_PATHS) this.readPaths.clear();
      this.readPaths.set(key, path);
    }
    return path;
  }

  async get(key: string, range?: BlobRange): Promise<Uint8Array | undefined> {
    this.state.check();
    const path = this.readPath(key);
    const { offset, length } = checkRange(range);
    const file = this.handles.acquireOpen(path) ?? (await this.handles.acquire(path));
    if (file === undefined) return undefined;
    try {
      const handle = file.opened ?? (await file.handle);
      // A ranged read needs no stat: a read past the end comes back short, and is clamped.
      if (file.size === undefined && (length === undefined || length > UNSIZED_READ_MAX)) file.size = (await handle.stat()).size;
      const size = file.size ?? Number.MAX_SAFE_INTEGER;
      const from = Math.min(offset, size);
      const want = Math.min(length ?? size, size - from);
      const out = new Uint8Array(want);
      const read = readAt(handle, out, from);
      const done = typeof read === 'number' ? read : await read;
      return done === want ? out : out.slice(0, done);
    } finally {
      this.handles.release(file);
    }
  }

  async readInto(key: string, offset: number, into: Uint8Array): Promise<number | undefined> {
    this.state.check();
    const path = this.readPath(key);
    checkReadTarget(into);
    checkRange({ offset, length: into.length });
    const file = this.handles.acquireOpen(path) ?? (await this.handles.acquire(path));
    if (file === undefined) return undefined;
    try {
      const read = readAt(file.opened ?? (await file.handle), into, offset);
      return typeof read === 'number' ? read : await read;
    } finally {
      this.handles.release(file);
    }
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    this.state.check();
    checkName(key, 'blob key');
    try {
      const info = await stat(this.file(key));
      return info.isFile() ? { key, size: info.size } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async list(prefix: string): Promise<BlobInfo[]> {
    this.state.check();
    checkPrefix(prefix, 'blob prefix');
    if (this.rootDirs !== undefined && !this.rootDirs.has(this.root)) return [];
    const found: { key: string; path: string }[] = [];
    const walk = async (dir: string, escapedSoFar: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (isMissing(err)) return;
        throw err;
      }
      for (const e of entries) {
        if (e.isDirectory() && e.name.endsWith('~')) await walk(join(dir, e.name), escapedSoFar + e.name.slice(0, -1));
        else if (e.isFile()) {
          const key = blobKey(escapedSoFar + e.name);
          if (key !== undefined && key.startsWith(prefix)) found.push({ key, path: join(dir, e.name) });
        }
      }
    };
    await walk(this.root, '');
    const infos = await Promise.all(
      found.map(async ({ key, path }) => {
        try {
          return { key, size: (await stat(path)).size };
        } catch (err) {
          if (isMissing(err)) return undefined; // deleted while listing
          throw err;
        }
      }),
    );
    return infos.filter((i): i is BlobInfo => i !== undefined).sort((a, b) => compareUtf8(a.key, b.key));
  }

  async delete(key: string): Promise<void> {
    this.state.check();
    checkName(key, 'blob key');
    const target = this.file(key);
    try {
      await unlink(target);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    } finally {
      // An open handle keeps an unlinked file readable: it must not serve a later get.
      this.handles.evict(target);
    }
    await syncDir(join(target, '..'));
  }
}
