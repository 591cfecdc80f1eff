import { mkdir, mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openDiskStorage } from './disk-storage.js';
import { FileBlobs, ReadHandles } from './file-blobs.js';
import type { UnitHandleState } from './lmdb-kv.js';

const linux = process.platform === 'linux';

/** File descriptors this process holds on files under `dir` (Linux: /proc/self/fd). */
async function fdsUnder(dir: string): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(join('/proc/self/fd', fd)).catch(() => '');
    if (target.startsWith(dir + '/')) n++;
  }
  return n;
}

/** Waits for closes still in the threadpool, until `dir` has `n` open fds (fails after 5 s). */
async function fdsSettle(dir: string, n: number): Promise<void> {
  await vi.waitFor(async () => expect(await fdsUnder(dir)).toBe(n), { timeout: 5000 });
}

function bytes(...xs: number[]): Uint8Array {
  return new Uint8Array(xs);
}

describe('blob read handles', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-blobs-'));
    dirs.push(dir);
    return dir;
  }

  /** A FileBlobs on its own directory with a handle pool of `capacity`. */
  async function blobStore(capacity: number): Promise<{ dir: string; blobs: FileBlobs; handles: ReadHandles }> {
    const dir = await tempDir();
    await mkdir(join(dir, 'root'));
    await mkdir(join(dir, 'tmp'));
    const state: UnitHandleState = { name: 'blobs/test', id: 1, dropped: false, check() {} };
    const handles = new ReadHandles(capacity);
    return { dir, blobs: new FileBlobs(join(dir, 'root'), join(dir, 'tmp'), state, handles), handles };
  }

  it('never serves a deleted or replaced blob from a kept handle', async () => {
    const { blobs, handles } = await blobStore(8);
    await blobs.put('seg/1', bytes(1, 2, 3, 4));
    expect([...(await blobs.get('seg/1', { offset: 1, length: 2 }))!]).toEqual([2, 3]);
    expect(handles.size).toBe(1);
    await blobs.delete('seg/1');
    expect(handles.size).toBe(0);
    expect(await blobs.get('seg/1', { offset: 0, length: 4 })).toBeUndefined();
    await blobs.put('seg/1', bytes(9, 8, 7));
    expect([...(await blobs.get('seg/1', { offset: 0, length: 4 }))!]).toEqual([9, 8, 7]);
    expect([...(await blobs.get('seg/1'))!]).toEqual([9, 8, 7]);
    // replaced in place, without a delete in between
    await blobs.put('seg/1', bytes(5, 5, 5, 5, 5, 5));
    expect([...(await blobs.get('seg/1', { offset: 2, length: 10 }))!]).toEqual([5, 5, 5, 5]);
    expect([...(await blobs.get('seg/1'))!]).toEqual([5, 5, 5, 5, 5, 5]);
  });

  it('reads every key from its own file past the bound of kept key paths, and still checks keys it has not kept', async () => {
    const { blobs } = await blobStore(8);
    const keys = Array.from({ length: 1030 }, (_, i) => `seg/${i}/é`);
    await Promise.all(keys.map((k, i) => blobs.put(k, bytes(i & 0xff, i >> 8))));
    for (const round of [0, 1]) {
      for (const [i, k] of keys.entries()) expect([...(await blobs.get(k, { offset: 0, length: 2 }))!], `round ${round}, ${k}`).toEqual([i & 0xff, i >> 8]);
    }
    await expect(blobs.get('', { offset: 0, length: 1 })).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(blobs.get('seg/\ud800', { offset: 0, length: 1 })).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(blobs.get('x'.repeat(5000))).rejects.toMatchObject({ code: 'invalid_argument' });
  });

  it('putParts writes the concatenation of many parts (more than one writev), empty ones included', async () => {
    const { blobs } = await blobStore(8);
    // 2,500 parts of 0-4 bytes: three writev groups of at most 1,024 buffers
    const parts = Array.from({ length: 2500 }, (_, i) => new Uint8Array(i % 5).fill(i & 0xff));
    const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((at, p) => (whole.set(p, at), at + p.length), 0);
    await blobs.putParts('seg/2', parts);
    expect(await blobs.get('seg/2')).toEqual(whole);
    await blobs.putParts('seg/2', [bytes(7), new Uint8Array(3 << 20).fill(3)]);
    expect((await blobs.head('seg/2'))?.size).toBe(1 + (3 << 20));
    await blobs.putParts('seg/3', []);
    expect((await blobs.get('seg/3'))?.length).toBe(0);
    await expect(blobs.putParts('seg/4', [bytes(1), 'x' as unknown as Uint8Array])).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(await blobs.head('seg/4')).toBeUndefined();
  });

  it('reads past the end without a size: short or empty, never padded', async () => {
    const { blobs } = await blobStore(8);
    await blobs.put('b', bytes(1, 2, 3));
    expect([...(await blobs.get('b', { offset: 2, length: 5 }))!]).toEqual([3]);
    expect([...(await blobs.get('b', { offset: 3, length: 5 }))!]).toEqual([]);
    expect([...(await blobs.get('b', { offset: 1000, length: 1 }))!]).toEqual([]);
    // a length too large to allocate blindly is clamped by the file's size
    expect([...(await blobs.get('b', { offset: 1, length: 2 ** 40 }))!]).toEqual([2, 3]);
    expect([...(await blobs.get('b', { offset: 1 }))!]).toEqual([2, 3]);
  });

  it('keeps at most its capacity of handles, least recently used out first', async () => {
    const { dir, blobs, handles } = await blobStore(4);
    for (let i = 0; i < 20; i++) await blobs.put(`seg/${i}`, bytes(i, i + 1));
    for (let i = 0; i < 20; i++) {
      expect([...(await blobs.get(`seg/${i}`, { offset: 1, length: 1 }))!]).toEqual([i + 1]);
      expect(handles.size).toBeLessThanOrEqual(4);
    }
    // seg/16 is the oldest kept: touching it keeps it over seg/17 when seg/0 comes in
    await blobs.get('seg/16', { offset: 0, length: 1 });
    await blobs.get('seg/0', { offset: 0, length: 1 });
    await blobs.delete('seg/17');
    await blobs.delete('seg/16');
    expect(handles.size).toBe(3);
    if (linux) await fdsSettle(dir, 3);
    await handles.closeAll();
    expect(handles.size).toBe(0);
    if (linux) await fdsSettle(dir, 0);
  });

  it('lets a read in flight finish when its handle is evicted', async () => {
    const { dir, blobs, handles } = await blobStore(1);
    const big = new Uint8Array(4 << 20).map((_, i) => i & 0xff);
    await blobs.put('a', big);
    await blobs.put('b', bytes(1));
    await blobs.get('a', { offset: 0, length: 1 }); // 'a' now has a kept handle
    // A get takes its lease before its first await, so these reads hold the kept handle of 'a'
    // while 'b' pushes it out of the pool and the delete evicts it.
    const whole = blobs.get('a');
    const ranged = blobs.get('a', { offset: 3, length: 2 });
    const other = blobs.get('b');
    const deleted = blobs.delete('a');
    const [a, r, b] = await Promise.all([whole, ranged, other, deleted]);
    expect(a!.length).toBe(big.length);
    expect(a![12345]).toBe(12345 & 0xff);
    expect([...r!]).toEqual([3, 4]);
    expect([...b!]).toEqual([1]);
    expect(await blobs.get('a')).toBeUndefined();
    await handles.closeAll();
    if (linux) await fdsSettle(dir, 0);
  });

  it.skipIf(!linux)('closes the handles of a dropped unit and of a closed storage', async () => {
    const dir = await tempDir();
    const storage = await openDiskStorage({ dir });
    const doomed = await storage.unit('log/t1/a/0');
    const kept = await storage.unit('log/t1/a/1');
    for (let i = 0; i < 5; i++) {
      await doomed.blobs.put(`seg/${i}`, bytes(i));
      await kept.blobs.put(`seg/${i}`, bytes(i));
      await doomed.blobs.get(`seg/${i}`, { offset: 0, length: 1 });
      await kept.blobs.get(`seg/${i}`, { offset: 0, length: 1 });
    }
    const blobsDir = join(dir, 'blobs');
    expect(await fdsUnder(blobsDir)).toBe(10);
    await storage.dropUnit('log/t1/a/0');
    await fdsSettle(blobsDir, 5);
    expect([...(await kept.blobs.get('seg/4', { offset: 0, length: 1 }))!]).toEqual([4]);
    await storage.close();
    await fdsSettle(blobsDir, 0);
  });
});
