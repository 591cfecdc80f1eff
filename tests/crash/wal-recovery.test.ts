/**
 * Recovery from the write-ahead log after kill -9, when lmdb never received the acknowledged
 * writes (wal-child.ts): replay brings every one back, a torn tail ends replay at the frame before
 * it (never a half-applied batch), a flipped bit with acknowledged frames behind it refuses the
 * open unless told to drop them (then the frames behind it never come back after later writes and
 * a second crash; see src/node/storage/wal-damage.test.ts for the cases), writes of a unit dropped afterwards stay gone,
 * and replaying records lmdb already holds changes nothing.
 */
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import { openDiskStorage, type DiskStorageOptions } from '../../src/node/storage/disk-storage.js';
import { APPLIED_KEY } from '../../src/node/storage/journal.js';
import { killAfter } from './harness.js';
import { WAL_OPS, stateAfter, walOp } from './wal-workload.js';

let root: string;
let crashed: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'quartz-wal-'));
  crashed = join(root, 'crashed');
  await killAfter(new URL('./wal-child.ts', import.meta.url), [crashed], 0);
}, 120_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let copies = 0;
async function copyOfCrash(): Promise<string> {
  const dir = join(root, `copy-${copies++}`);
  await cp(crashed, dir, { recursive: true });
  return dir;
}

/** Start offsets of the frames in the log file the child wrote (wal-0: the first epoch of a new directory). */
async function frames(dir: string): Promise<{ path: string; starts: number[]; ends: number[] }> {
  const path = join(dir, 'wal-0');
  const bytes = await readFile(path);
  // The first frame's epoch field (the epoch xor the log key): every frame of the file has it.
  const tag = bytes.readUInt32LE(4096 + 8);
  const starts: number[] = [];
  const ends: number[] = [];
  for (let p = 4096; p + 12 <= bytes.length && bytes.readUInt32LE(p + 8) === tag; p += 12 + bytes.readUInt32LE(p)) {
    starts.push(p);
    ends.push(p + 12 + bytes.readUInt32LE(p));
  }
  return { path, starts, ends };
}

function rawLmdb(dir: string) {
  const env = openLmdb({ path: join(dir, 'kv.mdb'), pageSize: 8192, maxDbs: 4 });
  return {
    env,
    data: env.openDB<Buffer, Buffer>('data', { keyEncoding: 'binary', encoding: 'binary' }),
    meta: env.openDB<unknown, string>('meta', { keyEncoding: 'ordered-binary', encoding: 'msgpack' }),
  };
}

/** What the reopened storage holds in `raw/wal`, and whether `raw/gone` left anything in lmdb. */
async function reopen(dir: string, options: Partial<DiskStorageOptions> = {}): Promise<{ state: Map<string, Uint8Array>; units: string[]; rawKeys: number }> {
  const storage = await openDiskStorage({ dir, ...options });
  try {
    const { kv } = await storage.unit('raw/wal');
    const state = new Map<string, Uint8Array>();
    for (const { key, value } of await kv.scan({})) state.set(new TextDecoder().decode(key), value);
    for (const [name, value] of state) expect(await kv.get(new TextEncoder().encode(name)), name).toEqual(value);
    const units = storage.listUnits('raw/');
    const { data, release } = await storage.backupSource();
    release();
    const rawKeys = data.getKeysCount({});
    return { state, units, rawKeys };
  } finally {
    await storage.close();
  }
}

const plain = (m: Map<string, Uint8Array>) => new Map([...m].map(([k, v]) => [k, Array.from(v)]));

describe('kill -9: write-ahead log replay', () => {
  it('the child’s acknowledged writes were only in the log (lmdb got none)', async () => {
    const dir = await copyOfCrash();
    const { env, data } = rawLmdb(dir);
    try {
      expect(data.getKeysCount({})).toBe(0);
    } finally {
      await env.close();
    }
    expect((await frames(dir)).starts).toHaveLength(WAL_OPS + 1); // the dropped unit's put, then one frame per operation
  });

  it('replays every acknowledged write, and none of a unit dropped after its writes', async () => {
    const dir = await copyOfCrash();
    const { state, units, rawKeys } = await reopen(dir);
    expect(plain(state)).toEqual(plain(stateAfter(WAL_OPS)));
    expect(units).toEqual(['raw/wal']);
    expect(rawKeys).toBe(state.size); // nothing under the dropped unit's id
  });

  it('stops at a torn last frame: every earlier write, nothing of the torn one', async () => {
    const dir = await copyOfCrash();
    const { path, starts } = await frames(dir);
    await truncate(path, starts.at(-1)! + 20); // the last write (a batch: operation 59 puts and deletes) torn mid-frame
    const { state } = await reopen(dir);
    expect(plain(state)).toEqual(plain(stateAfter(WAL_OPS - 1)));
  });

  it('refuses a frame with a flipped bit and acknowledged frames after it; told to drop them, stops at it', async () => {
    const dir = await copyOfCrash();
    const { path, starts, ends } = await frames(dir);
    const bytes = await readFile(path);
    const bad = 31; // frame 31 holds operation 30
    bytes[Math.floor((starts[bad]! + 12 + ends[bad]!) / 2)]! ^= 0x10;
    await writeFile(path, bytes);
    await expect(reopen(dir)).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA, details: { file: 'wal-0', offset: starts[bad], frames: WAL_OPS - bad } });
    const { state } = await reopen(dir, { dropDamagedLog: true, warn: () => undefined });
    expect(plain(state)).toEqual(plain(stateAfter(bad - 1)));
  });

  it('after recovering from a damaged middle frame, the durable frames behind it never come back (a second crash)', async () => {
    const dir = await copyOfCrash();
    const { path, starts, ends } = await frames(dir);
    const bytes = await readFile(path);
    const bad = 31; // frame 31 holds operation 30; frames 32.. (operations 31..59) stay whole on disk
    bytes[Math.floor((starts[bad]! + 12 + ends[bad]!) / 2)]! ^= 0x10;
    await writeFile(path, bytes);
    // Recover, then log operation 30 again: a frame exactly as long as the damaged one, so were the
    // writer to go on at the damaged position in the same epoch, frame 32 would follow it. lmdb
    // gets none of it (the apply delay is an hour).
    const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000, dropDamagedLog: true, warn: () => undefined });
    const second = join(root, `copy-${copies++}`);
    try {
      const { kv } = await storage.unit('raw/wal');
      await kv.batch(walOp(30));
      // A crash now: the directory as it is on disk (every write above is acknowledged, so durable).
      await cp(dir, second, { recursive: true, filter: (from) => !from.endsWith('LOCK') && !from.endsWith('-lock') });
    } finally {
      await storage.close();
    }
    const { state } = await reopen(second);
    expect(plain(state)).toEqual(plain(stateAfter(31)));
  });

  it('replaying records lmdb already holds changes nothing (recovery is idempotent)', async () => {
    const dir = await copyOfCrash();
    const once = await reopen(dir);
    // Put the crashed log back and lmdb's log position with it, as if the first recovery had
    // applied the records but died before recording how far it got.
    for (const name of ['wal-0', 'wal-1']) await cp(join(crashed, name), join(dir, name));
    const { env, meta } = rawLmdb(dir);
    try {
      const crashedPosition = rawLmdb(crashed);
      const position = crashedPosition.meta.get(APPLIED_KEY);
      await crashedPosition.env.close();
      await meta.put(APPLIED_KEY, position);
    } finally {
      await env.close();
    }
    const twice = await reopen(dir);
    expect(plain(twice.state)).toEqual(plain(once.state));
    expect(plain(twice.state)).toEqual(plain(stateAfter(WAL_OPS)));
  });
});
