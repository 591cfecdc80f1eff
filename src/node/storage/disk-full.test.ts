/**
 * A real full disk: a small tmpfs mounted for the test (needs root; skipped otherwise). Writes the
 * disk cannot hold fail as `insufficient_storage`, nothing acknowledged is lost, and writes work
 * again once space is freed, without reopening.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCode, isQuartzError } from '../../core/errors.js';
import { restoreBackup } from '../backup/restore.js';
import { createBackup } from '../backup/snapshot.js';
import { openQuartz } from '../open-quartz.js';
import { openDiskStorage } from './disk-storage.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('disk-full.test.ts: skipped, mounting a tmpfs needs root');

const key = (i: number | string) => new TextEncoder().encode(`k${i}`);

/** Fills the file system at `path` with one file (a write that hits ENOSPC leaves what fit). */
function fill(path: string): void {
  try {
    writeFileSync(path, Buffer.alloc(64 << 20, 1));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
}

describe.skipIf(!isRoot)('disk storage on a full disk', () => {
  let mnt = '';
  beforeAll(async () => {
    mnt = await mkdtemp(join(tmpdir(), 'quartz-full-'));
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]);
    if (mounted.status !== 0) throw new Error(`mount tmpfs: ${mounted.stderr.toString()}`);
  });
  afterAll(async () => {
    spawnSync('umount', ['--lazy', mnt]); // lazy: a failed test may leave files open
    await rmdir(mnt);
  });

  it('refuses what does not fit with insufficient_storage, keeps every acknowledged write, and writes again once space is freed', async () => {
    const dir = join(mnt, 'data');
    const filler = join(mnt, 'filler');
    const storage = await openDiskStorage({ dir });
    const { kv, blobs } = await storage.unit('kv/t');
    const value = new Uint8Array(1000).fill(7);
    let acknowledged = 0;
    for (; acknowledged < 300; acknowledged++) await kv.put(key(acknowledged), value);
    fill(filler);

    // Small writes are acknowledged from the log while its file has room; lmdb's batches behind
    // them fail meanwhile and are retried.
    let refused: unknown;
    for (; acknowledged < 100_000; acknowledged++) {
      try {
        await kv.put(key(acknowledged), value);
      } catch (err) {
        refused = err;
        break;
      }
    }
    expect(isQuartzError(refused, ErrorCode.INSUFFICIENT_STORAGE), String(refused)).toBe(true);
    await expect(blobs.put('big', new Uint8Array(2 << 20))).rejects.toMatchObject({ code: ErrorCode.INSUFFICIENT_STORAGE });
    // A blob cut short by the full disk does not keep its room.
    expect(await readdir(join(dir, 'blobs', 'tmp'))).toEqual([]);
    // Reads go on meanwhile.
    expect(await kv.get(key(acknowledged - 1))).toEqual(value);

    await rm(filler);
    await kv.put(key('after'), value);
    await blobs.put('big', new Uint8Array(2 << 20).fill(3));
    // lmdb takes the writes it refused earlier: the retried batch commits.
    await storage.settle();
    await storage.close();

    const reopened = await openDiskStorage({ dir });
    const again = await reopened.unit('kv/t');
    for (let i = 0; i < acknowledged; i++) expect(await again.kv.get(key(i))).toEqual(value);
    expect(await again.kv.get(key('after'))).toEqual(value);
    expect((await again.blobs.get('big'))?.length).toBe(2 << 20);
    await reopened.close();
  });

  // lmdb-js formats a failed page write's error into a 100-byte heap buffer and overruns it for
  // large writes: a full disk under 300 KB puts aborted the process within seconds (malloc()).
  it('refuses an lmdb commit that may not fit before lmdb writes it, however often the disk fills and frees', async () => {
    const dir = join(mnt, 'data3');
    const filler = join(mnt, 'filler3');
    const lmdbErrors = vi.spyOn(console, 'error');
    // Logged writes wait for a checkpoint until something asks for one (the backup below).
    const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
    const { kv } = await storage.unit('kv/t');
    const big = (i: number) => new Uint8Array(300_000).fill(i); // past the log's limit: straight to lmdb
    let acknowledged = 0;
    for (let round = 0; round < 3; round++) {
      await kv.put(key(`small${round}`), Uint8Array.of(round));
      fill(filler);
      for (let i = 0; i < 5; i++) await expect(kv.put(key(`big${round}-${i}`), big(i))).rejects.toMatchObject({ code: ErrorCode.INSUFFICIENT_STORAGE });
      // A backup first brings lmdb up to every logged write: refused the same way (507, documented on GET /v1/admin/backup).
      await expect(storage.backupSource()).rejects.toMatchObject({ code: ErrorCode.INSUFFICIENT_STORAGE });
      await rm(filler);
      await kv.put(key(`big${round}`), big(round));
      acknowledged++;
    }
    expect(lmdbErrors.mock.calls.filter((args) => /write page/.test(String(args[0])))).toEqual([]);
    lmdbErrors.mockRestore();
    for (let round = 0; round < acknowledged; round++) {
      expect(await kv.get(key(`big${round}`))).toEqual(big(round));
      expect(await kv.get(key(`small${round}`))).toEqual(Uint8Array.of(round));
    }
    await storage.close();
    await rm(dir, { recursive: true });
  });

  it('reports a disk too full to open the data directory as insufficient_storage, then opens once space is freed', async () => {
    const dir = join(mnt, 'data2');
    const filler = join(mnt, 'filler2');
    const storage = await openDiskStorage({ dir, logFileBytes: 1 << 20 });
    const { kv } = await storage.unit('kv/t');
    for (let i = 0; i < 500; i++) await kv.put(key(i), new Uint8Array(500).fill(i & 0xff));
    // Closed without moving the log into lmdb is what a kill leaves: the next open must replay it.
    fill(filler);
    await storage.close().catch(() => undefined);
    await expect(openDiskStorage({ dir })).rejects.toMatchObject({ code: ErrorCode.INSUFFICIENT_STORAGE, message: expect.stringContaining(dir) });
    await rm(filler);
    const reopened = await openDiskStorage({ dir });
    const again = await reopened.unit('kv/t');
    for (let i = 0; i < 500; i++) expect((await again.kv.get(key(i)))?.[0]).toBe(i & 0xff);
    await reopened.close();
    await rm(dir, { recursive: true });
  });

  it('a restore that cannot open its storage on a full disk leaves the directory empty', async () => {
    const source = await mkdtemp(join(tmpdir(), 'quartz-full-src-'));
    try {
      const engine = await openQuartz({ dataDir: join(source, 'data') });
      const { tenant } = await engine.tenants.create({ email: 'r@example.com' });
      await (await engine.tenant(tenant.id)).kv.put('k', new Uint8Array(10));
      const snap = await createBackup(engine);
      const file = join(source, 'all.qzb');
      await writeFile(file, new Uint8Array(await new Response(snap.body).arrayBuffer()));
      await engine.close();

      const target = join(mnt, 'restored');
      await mkdir(target);
      const filler = join(mnt, 'filler3');
      fill(filler);
      await expect(restoreBackup({ file, dataDir: target })).rejects.toMatchObject({ code: ErrorCode.INSUFFICIENT_STORAGE });
      expect(await readdir(target)).toEqual([]);
      await rm(filler);
      await rm(target, { recursive: true });
    } finally {
      await rm(source, { recursive: true, force: true });
    }
  });
});
