/**
 * One unit's blob store as files under its own directory. A put writes a temp file, fsyncs it,
 * renames it into place and fsyncs the directory, so a blob is either absent or complete.
 *
 * Keys become file names by percent-escaping every UTF-8 byte outside [a-z0-9_-] (so names
 * are safe on case-insensitive file systems and never '.' or '..'), split into 200-character
 * directory levels marked with a trailing '~' so long keys stay under NAME_MAX.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobInfo, BlobRange, BlobStore } from '../../ports/storage.js';
import { checkBlob, checkName, checkPrefix, checkRange, compareUtf8 } from '../../ports/storage-checks.js';
import type { UnitHandleState } from './lmdb-kv.js';

const PIECE_CHARS = 200;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

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
    return fromUtf8.decode(new Uint8Array(bytes));
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

export class FileBlobs implements BlobStore {
  /** Directories known to exist durably, so steady-state puts skip mkdir + parent fsyncs. */
  private readonly knownDirs = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly tmpDir: string,
    private readonly state: UnitHandleState,
  ) {}

  private file(key: string): string {
    return join(this.root, ...blobPath(key));
  }

  /** Creates `dir` (under the unit root) and fsyncs each parent whose entries changed. */
  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
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
    const target = this.file(key);
    const dir = join(target, '..');
    await this.ensureDir(dir);
    const tmp = join(this.tmpDir, randomUUID());
    const handle = await open(tmp, 'wx');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      this.state.check();
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await syncDir(dir);
  }

  async get(key: string, range?: BlobRange): Promise<Uint8Array | undefined> {
    this.state.check();
    checkName(key, 'blob key');
    const { offset, length } = checkRange(range);
    let handle;
    try {
      handle = await open(this.file(key), 'r');
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    try {
      const size = (await handle.stat()).size;
      const from = Math.min(offset, size);
      const want = Math.min(length ?? size, size - from);
      const out = new Uint8Array(want);
      let done = 0;
      while (done < want) {
        const { bytesRead } = await handle.read(out, done, want - done, from + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === want ? out : out.subarray(0, done);
    } finally {
      await handle.close();
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
    }
    await syncDir(join(target, '..'));
  }
}
