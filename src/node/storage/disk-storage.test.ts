import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { blobKey, blobPath } from './file-blobs.js';
import { openDiskStorage } from './disk-storage.js';

describe('blob file names', () => {
  it('round-trip any key, stay within NAME_MAX, and avoid special names', () => {
    for (const key of ['a', 'A', '.', '..', 'a/b', '%', '~', 'tmp', 'é😀', '\uFEFF', '\uFEFFa', 'a\uFEFF', 'x'.repeat(1024), '\u00e9'.repeat(500)]) {
      const path = blobPath(key);
      for (const [i, seg] of path.entries()) {
        expect(Buffer.byteLength(seg)).toBeLessThanOrEqual(255);
        expect(seg).toMatch(i < path.length - 1 ? /^[a-z0-9_%-]+~$/ : /^[a-z0-9_%-]+$/);
      }
      expect(blobKey(path.map((s) => s.replace(/~$/, '')).join(''))).toBe(key);
    }
    expect(blobPath('A')).not.toEqual(blobPath('a'));
  });

  it('ignores names that are not ours', () => {
    expect(blobKey('UPPER')).toBeUndefined();
    expect(blobKey('%zz')).toBeUndefined();
    expect(blobKey('%ff')).toBeUndefined(); // not UTF-8
  });
});

describe('disk storage recovery', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('sweeps temp files and blob dirs of dropped units left by a crash', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    dirs.push(dir);
    const first = await openDiskStorage({ dir });
    const { blobs } = await first.unit('vec/t1/docs');
    await blobs.put('snap/1', new Uint8Array([1]));
    await first.close();
    // What a crash mid-put and mid-drop leaves: a temp file and a blob dir no unit owns.
    await writeFile(join(dir, 'blobs', 'tmp', 'half-written'), new Uint8Array(10));
    await mkdir(join(dir, 'blobs', '999'));
    await writeFile(join(dir, 'blobs', '999', 'seg'), new Uint8Array(1));

    const again = await openDiskStorage({ dir });
    expect(await readdir(join(dir, 'blobs', 'tmp'))).toEqual([]);
    expect((await readdir(join(dir, 'blobs'))).sort()).toEqual(['1', 'tmp']);
    expect(Array.from((await (await again.unit('vec/t1/docs')).blobs.get('snap/1'))!)).toEqual([1]);
    // A new unit gets a fresh id, never a dropped one's.
    await again.dropUnit('vec/t1/docs');
    await again.dropUnit(((await again.unit('kv/no-blobs')), 'kv/no-blobs')); // a unit that never had a blob dir
    // Removed by the drop itself, not left for the next open's sweep.
    expect(await readdir(join(dir, 'blobs'))).toEqual(['tmp']);
    await again.close();
    const third = await openDiskStorage({ dir });
    await (await third.unit('vec/t1/docs')).blobs.put('x', new Uint8Array([2]));
    expect((await readdir(join(dir, 'blobs'))).sort()).toEqual(['3', 'tmp']);
    await third.close();
  });

  it('lists the blobs a unit had before the open, and those put since, skipping units without a blob dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    dirs.push(dir);
    const first = await openDiskStorage({ dir });
    await (await first.unit('log/t1/a/0')).blobs.put('seg/1', new Uint8Array([1]));
    await first.unit('log/t1/b/0');
    await first.close();
    const again = await openDiskStorage({ dir });
    const a = (await again.unit('log/t1/a/0')).blobs;
    const b = (await again.unit('log/t1/b/0')).blobs;
    expect((await a.list('seg/')).map((x) => x.key)).toEqual(['seg/1']);
    expect(await b.list('seg/')).toEqual([]);
    await b.put('seg/2', new Uint8Array([2]));
    expect((await b.list('seg/')).map((x) => x.key)).toEqual(['seg/2']);
    const fresh = (await again.unit('log/t1/c/0')).blobs;
    expect(await fresh.list('')).toEqual([]);
    await fresh.put('seg/3', new Uint8Array([3]));
    expect((await fresh.list('')).map((x) => x.key)).toEqual(['seg/3']);
    await again.close();
  });

  it('hands out one unit id for concurrent first opens of the same name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    dirs.push(dir);
    const storage = await openDiskStorage({ dir });
    const [a, b] = await Promise.all([storage.unit('kv/t1'), storage.unit('kv/t1')]);
    expect(a).toBe(b);
    expect(storage.listUnits('')).toEqual(['kv/t1']);
    await storage.close();
  });

  it("dropping a unit leaves other units' hot records cached, and never serves the dropped unit's", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    dirs.push(dir);
    const storage = await openDiskStorage({ dir });
    const key = new Uint8Array([1]);
    const hot = await storage.unit('kv/hot');
    const gone = await storage.unit('log/t1/big/0');
    await hot.kv.put(key, new Uint8Array([7]));
    await gone.kv.put(key, new Uint8Array([8]));
    await storage.settle();
    // A record is kept once it is read a second time.
    for (let i = 0; i < 2; i++) {
      await hot.kv.get(key);
      await gone.kv.get(key);
    }
    const records = (storage as unknown as { records: { size: number } }).records;
    const kept = records.size;
    expect(kept).toBeGreaterThan(0);
    await storage.dropUnit('log/t1/big/0');
    // Every tenant's hot records emptied whenever anyone deleted a topic.
    expect(records.size).toBe(kept);
    expect(Array.from((await hot.kv.get(key))!)).toEqual([7]);
    await expect(Promise.resolve().then(() => gone.kv.get(key))).rejects.toMatchObject({ code: ErrorCode.STORAGE_CLOSED });
    expect(await (await storage.unit('log/t1/big/0')).kv.get(key)).toBeUndefined();
    await storage.close();
  });

  it('locks the data directory against a second opener, and takes over a dead process’s lock', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    dirs.push(dir);
    const first = await openDiskStorage({ dir });
    await expect(openDiskStorage({ dir })).rejects.toMatchObject({ code: ErrorCode.PRECONDITION_FAILED, message: expect.stringContaining('already open') });
    await first.close();

    // Another live process holds it (our parent stands in for one).
    await writeFile(join(dir, 'LOCK'), String(process.ppid));
    await expect(openDiskStorage({ dir })).rejects.toMatchObject({
      code: ErrorCode.PRECONDITION_FAILED,
      message: `data directory ${dir} is in use by process ${process.ppid}`,
    });

    // A process that died without closing (kill -9) leaves its pid behind.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(join(dir, 'LOCK'), String(dead));
    const second = await openDiskStorage({ dir });
    await second.close();
    expect(await readdir(dir)).not.toContain('LOCK');
  });

  it("refuses a non-empty directory that is not a QuartzDB one, touching nothing in it (its blobs/ was swept away)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    dirs.push(dir);
    await mkdir(join(dir, 'blobs', 'photos'), { recursive: true });
    await writeFile(join(dir, 'blobs', 'photos', 'cat.jpg'), 'precious');
    await writeFile(join(dir, 'notes.txt'), 'mine');
    await expect(openDiskStorage({ dir })).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
      message: `data directory ${dir} is not a QuartzDB data directory (it has no kv.mdb) and is not empty ('blobs', 'notes.txt'); name a new or empty directory, or one a QuartzDB server made`,
    });
    expect(readFileSync(join(dir, 'blobs', 'photos', 'cat.jpg'), 'utf8')).toBe('precious');
    expect((await readdir(dir)).sort()).toEqual(['blobs', 'notes.txt']);

    // A user's own blobs/tmp is refused too: the open empties blobs/tmp.
    await rm(join(dir, 'blobs', 'photos'), { recursive: true });
    await rm(join(dir, 'notes.txt'));
    await mkdir(join(dir, 'blobs', 'tmp'));
    await writeFile(join(dir, 'blobs', 'tmp', 'draft'), 'mine');
    await expect(openDiskStorage({ dir })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    expect(readFileSync(join(dir, 'blobs', 'tmp', 'draft'), 'utf8')).toBe('mine');
  });

  it("creates a new data directory readable by its user alone, and leaves an existing one's mode", async () => {
    const base = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    dirs.push(base);
    const dir = join(base, 'parent', 'data');
    await (await openDiskStorage({ dir })).close();
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(base, 'parent'))).mode & 0o077).not.toBe(0); // the levels above: the usual mode
    const shared = join(base, 'shared');
    await mkdir(shared);
    await chmod(shared, 0o750);
    await (await openDiskStorage({ dir: shared })).close();
    expect((await stat(shared)).mode & 0o777).toBe(0o750);
  });

  it('opens a directory a first start left before kv.mdb, a mount point with lost+found, one with an admin.key put there first', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    dirs.push(dir);
    await mkdir(join(dir, 'lost+found'));
    await mkdir(join(dir, 'blobs', 'tmp'), { recursive: true });
    await writeFile(join(dir, 'admin.key'), 'qza_provisioned-by-the-operator\n');
    await writeFile(join(dir, 'LOCK'), String(spawnSync(process.execPath, ['-e', '']).pid!));
    const first = await openDiskStorage({ dir });
    await first.close();
    // Once it holds data it is a QuartzDB directory, whatever else is put beside it.
    await writeFile(join(dir, 'README.txt'), 'notes of the operator');
    await (await openDiskStorage({ dir })).close();
  });

  it("removes the LOCK's temp and claim files that killed starters left, even an empty one, and nobody's file of another name", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    dirs.push(dir);
    await (await openDiskStorage({ dir })).close();
    // A starter killed (kill -9) right after creating its temp file, before writing its pid into it,
    // and another killed while it held a claim on a stale LOCK.
    const starter = spawn(
      process.execPath,
      ['-e', `const fs = require('node:fs'); const dir = process.argv[1];
fs.writeFileSync(dir + '/LOCK.new.' + process.pid + '.0123456789ab', '', { flag: 'wx' });
fs.writeFileSync(dir + '/LOCK.stale.4242_77.0', String(process.pid), { flag: 'wx' });
console.log('ready'); setInterval(() => {}, 1000);`, dir],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve) => starter.stdout.once('data', () => resolve()));
    const dead = starter.pid!;
    starter.kill('SIGKILL');
    await new Promise((resolve) => starter.once('exit', resolve));
    // The user's own files, one of them holding the dead pid: not ours to remove.
    await writeFile(join(dir, 'LOCK.backup'), String(dead));
    await writeFile(join(dir, 'LOCK.new.notes'), `${dead}\n`);
    const storage = await openDiskStorage({ dir });
    await storage.close();
    expect((await readdir(dir)).filter((name) => name.startsWith('LOCK')).sort()).toEqual(['LOCK.backup', 'LOCK.new.notes']);
    expect(readFileSync(join(dir, 'LOCK.backup'), 'utf8')).toBe(String(dead));

    // Nor does a user's LOCK.something make a directory without kv.mdb pass for a data directory.
    const other = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    dirs.push(other);
    await writeFile(join(other, 'LOCK.backup'), 'mine');
    await expect(openDiskStorage({ dir: other })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringContaining("('LOCK.backup')") });
    expect(await readdir(other)).toEqual(['LOCK.backup']);
  });

  it.skipIf(process.platform !== 'linux')('writes its start time in the LOCK, and takes over a lock whose pid is reused or an unreaped zombie (Linux)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    dirs.push(dir);
    const startOf = (pid: number) => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
    };
    const first = await openDiskStorage({ dir });
    expect(readFileSync(join(dir, 'LOCK'), 'utf8')).toBe(`${process.pid} ${startOf(process.pid)}`);
    await first.close();

    // The live owner, start time and all, keeps the directory.
    await writeFile(join(dir, 'LOCK'), `${process.ppid} ${startOf(process.ppid)}`);
    await expect(openDiskStorage({ dir })).rejects.toMatchObject({ code: ErrorCode.PRECONDITION_FAILED, message: expect.stringContaining(`in use by process ${process.ppid}`) });

    // The same pid with another start time is a later process that reuses the killed server's pid.
    await writeFile(join(dir, 'LOCK'), `${process.ppid} 1${startOf(process.ppid)}`);
    await (await openDiskStorage({ dir })).close();

    // A killed server whose parent has not reaped it yet: a zombie holds its pid.
    const parent = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
      await vi.waitFor(() => expect(readFileSync(`/proc/${zombie}/stat`, 'latin1')).toMatch(/\) Z /), { timeout: 5000 });
      await writeFile(join(dir, 'LOCK'), String(zombie));
      const second = await openDiskStorage({ dir });
      await second.close();
      expect(await readdir(dir)).not.toContain('LOCK');
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

describe('disk storage memory map', () => {
  it('maps kv.mdb once however much it grows, so RSS counts each page once (Linux)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-disk-'));
    const storage = await openDiskStorage({ dir });
    try {
      const { kv } = await storage.unit('kv/t1');
      const value = new Uint8Array(64 * 1024).fill(7);
      // 48 MiB: started small, lmdb would have doubled its map several times on the way.
      for (let round = 0; round < 8; round++) {
        await Promise.all(Array.from({ length: 96 }, (_, i) => kv.put(new TextEncoder().encode(`k${round}-${i}`), value)));
      }
      const maps = readFileSync('/proc/self/maps', 'utf8')
        .split('\n')
        .filter((line) => line.endsWith(join(dir, 'kv.mdb'))); // not kv.mdb-lock
      expect(maps).toHaveLength(1);
    } finally {
      await storage.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
