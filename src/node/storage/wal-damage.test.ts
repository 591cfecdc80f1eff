// Replay of a damaged write-ahead log, on real files: a crash's torn tail (the frames in flight,
// never acknowledged) opens as before; damage with acknowledged frames behind it (a flipped bit in
// an earlier frame, in a seal, in the older file while the newer one has begun, in a header and
// the frame after it) refuses to open, naming the file and offset and what would be lost, and
// leaves the directory as it was; `dropDamagedLog` opens with every write before the damage.
import { cp, mkdtemp, readFile, readdir, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { open as openLmdb } from 'lmdb';
import { ErrorCode } from '../../core/errors.js';
import { DATA_VERSION, DATA_VERSION_KEY, META_UNIT } from '../../engine/data-version.js';
import { crc32c } from '../../core/hash.js';
import { openDiskStorage, type DiskStorageOptions } from './disk-storage.js';
import { LOG_KEY } from './journal.js';
import { HEADER_BYTES, WRITES_IN_FLIGHT, seal, stampFrame } from './wal.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const key = (n: number) => new TextEncoder().encode(`k${n}`);
const value = (n: number) => new Uint8Array(200 + (n % 7)).fill(n % 251);

/**
 * A directory as a crash after `count` puts leaves it (lmdb received none of them unless
 * `settleAfter` says after how many): each put awaited alone, so one frame each.
 */
async function crashedAfter(count: number, options: { logFileBytes?: number; settleAfter?: number; dataVersion?: number } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'quartz-waldamage-'));
  const copy = `${dir}-crashed`;
  dirs.push(dir, copy);
  const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000, logFileBytes: options.logFileBytes });
  try {
    if (options.dataVersion !== undefined) {
      await (await storage.unit(META_UNIT)).kv.put(DATA_VERSION_KEY, new TextEncoder().encode(String(options.dataVersion)));
      await storage.settle();
    }
    const { kv } = await storage.unit('kv/t');
    for (let n = 0; n < count; n++) {
      await kv.put(key(n), value(n));
      if (n + 1 === options.settleAfter) await storage.settle();
    }
    // Every put above is acknowledged: on disk as it is now.
    await cp(dir, copy, { recursive: true, filter: (from) => !from.endsWith('LOCK') && !from.endsWith('-lock') });
  } finally {
    await storage.close();
  }
  return copy;
}

interface Frame {
  start: number;
  end: number;
}

/** The frames of a log file in order, up to its seal (included, if any) or the first that does not follow. */
async function framesOf(dir: string, name: string): Promise<{ epoch: number; frames: Frame[]; seal?: Frame }> {
  const bytes = await readFile(join(dir, name));
  const epoch = bytes.readUInt32LE(8);
  // The first frame's epoch field (the epoch xor the log key): every frame of the file has it.
  const tag = bytes.readUInt32LE(HEADER_BYTES + 8);
  const frames: Frame[] = [];
  for (let p = HEADER_BYTES; p + 12 <= bytes.length && bytes.readUInt32LE(p + 8) === tag; ) {
    const end = p + 12 + bytes.readUInt32LE(p);
    if (end === p + 12) return { epoch, frames, seal: { start: p, end } };
    frames.push({ start: p, end });
    p = end;
  }
  return { epoch, frames };
}

/** Flips one bit at `offset` of a file. */
async function flip(dir: string, name: string, offset: number): Promise<void> {
  const bytes = await readFile(join(dir, name));
  bytes[offset]! ^= 0x08;
  await writeFile(join(dir, name), bytes);
}

const middle = (f: Frame) => Math.floor((f.start + 12 + f.end) / 2);

/** The values of k0..k(count-1) after opening `dir` (null where missing), and what was warned. */
async function reopen(dir: string, count: number, options: Partial<DiskStorageOptions> = {}): Promise<{ present: number[]; warnings: string[] }> {
  const warnings: string[] = [];
  const storage = await openDiskStorage({ dir, warn: (message) => warnings.push(message), ...options });
  try {
    const { kv } = await storage.unit('kv/t');
    const present: number[] = [];
    for (let n = 0; n < count; n++) {
      const got = await kv.get(key(n));
      if (got !== undefined) {
        expect(Buffer.from(got).equals(Buffer.from(value(n))), `k${n}`).toBe(true);
        present.push(n);
      }
    }
    return { present, warnings };
  } finally {
    await storage.close();
  }
}

const upTo = (n: number) => Array.from({ length: n }, (_, i) => i);

async function refusal(dir: string): Promise<{ code: string; message: string; details: Record<string, unknown> }> {
  const err = await openDiskStorage({ dir }).then(
    async (s) => {
      await s.close();
      throw new Error('opened');
    },
    (e: { code: string; message: string; details: Record<string, unknown> }) => e,
  );
  return err;
}

describe('write-ahead log replay: a crash’s torn tail', () => {
  it('opens with every write before a torn last frame', async () => {
    const dir = await crashedAfter(20);
    const { frames } = await framesOf(dir, 'wal-0');
    await truncate(join(dir, 'wal-0'), frames.at(-1)!.start + 30);
    expect((await reopen(dir, 20)).present).toEqual(upTo(19));
  });

  it('opens when a bit flipped in the last frame (it may have been in flight)', async () => {
    const dir = await crashedAfter(20);
    const { frames } = await framesOf(dir, 'wal-0');
    await flip(dir, 'wal-0', middle(frames.at(-1)!));
    const { present, warnings } = await reopen(dir, 20);
    expect(present).toEqual(upTo(19));
    expect(warnings).toEqual([]);
  });

  it(`opens with ${WRITES_IN_FLIGHT - 1} whole frames behind the bad one (all ${WRITES_IN_FLIGHT} may have been in flight), refuses with ${WRITES_IN_FLIGHT}`, async () => {
    const inFlight = await crashedAfter(20);
    const { frames } = await framesOf(inFlight, 'wal-0');
    await flip(inFlight, 'wal-0', middle(frames.at(-WRITES_IN_FLIGHT)!));
    expect((await reopen(inFlight, 20)).present).toEqual(upTo(20 - WRITES_IN_FLIGHT));

    const beyond = await crashedAfter(20);
    await flip(beyond, 'wal-0', middle((await framesOf(beyond, 'wal-0')).frames.at(-WRITES_IN_FLIGHT - 1)!));
    const err = await refusal(beyond);
    expect(err.code).toBe(ErrorCode.CORRUPT_DATA);
    expect(err.details).toMatchObject({ file: 'wal-0', frames: WRITES_IN_FLIGHT, records: WRITES_IN_FLIGHT });
  });

  it('ignores damage in frames lmdb holds already', async () => {
    const dir = await crashedAfter(20, { settleAfter: 10 });
    const { frames } = await framesOf(dir, 'wal-0');
    await flip(dir, 'wal-0', middle(frames[3]!));
    expect((await reopen(dir, 20)).present).toEqual(upTo(20));
  });
  it('replays a directory from before the log key (frames with the plain CRC32C), then writes with a key', async () => {
    const dir = await crashedAfter(20);
    // Back to the old format: no key in lmdb, each frame's epoch and CRC fields without it.
    const env = openLmdb({ path: join(dir, 'kv.mdb'), pageSize: 8192, maxDbs: 4 });
    const meta = env.openDB<unknown, string>('meta', { keyEncoding: 'ordered-binary', encoding: 'msgpack' });
    const logKey = meta.get(LOG_KEY) as number;
    expect(logKey).toBeGreaterThan(0);
    await meta.remove(LOG_KEY);
    await env.close();
    const bytes = await readFile(join(dir, 'wal-0'));
    const { frames } = await framesOf(dir, 'wal-0');
    for (const f of frames) {
      bytes.writeUInt32LE((bytes.readUInt32LE(f.start + 8) ^ logKey) >>> 0, f.start + 8);
      bytes.writeUInt32LE(crc32c(bytes.subarray(f.start + 8, f.end)), f.start + 4);
    }
    await writeFile(join(dir, 'wal-0'), bytes);
    expect((await reopen(dir, 20)).present).toEqual(upTo(20));
    // The open made a key; what is written with it replays after a crash.
    const again = `${dir}-again`;
    dirs.push(again);
    const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
    try {
      const { kv } = await storage.unit('kv/t');
      await kv.put(key(20), value(20));
      await cp(dir, again, { recursive: true, filter: (from) => !from.endsWith('LOCK') && !from.endsWith('-lock') });
    } finally {
      await storage.close();
    }
    expect((await reopen(again, 21)).present).toEqual(upTo(21));
  });

  it('a stored value that holds bytes reading as seals and frames of later epochs (plain CRC32C) does not make a later crash read as damage', async () => {
    // What a caller can compute without the directory's log key: a seal, and three chained
    // one-record frames (a record of no ops), for each of the next epochs.
    const forged = (epoch: number) => {
      const frames = Buffer.alloc(3 * 20);
      for (let f = 0; f < 3; f++) {
        frames.writeUInt32LE(4, f * 20 + 12);
        stampFrame(frames, f * 20, f * 20 + 20, epoch, 0);
      }
      return Buffer.concat([seal(epoch, 0), frames]);
    };
    const dir = await mkdtemp(join(tmpdir(), 'quartz-waldamage-'));
    const copy = `${dir}-crashed`;
    dirs.push(dir, copy);
    // Three starts: the first logs the values in wal-0, the third reuses wal-0 (a later epoch) and
    // crashes after one put, its log ending before the values' old bytes.
    for (let start = 0; start < 3; start++) {
      const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
      try {
        const { kv } = await storage.unit('kv/t');
        // Made once the storage is open: the CRC32C is the core's (init).
        const hostile = Buffer.concat(Array.from({ length: 40 }, (_, e) => forged(e + 1)));
        if (start === 0) for (let n = 0; n < 5; n++) await kv.put(key(100 + n), hostile);
        await kv.put(key(start), value(start));
        if (start === 2) await cp(dir, copy, { recursive: true, filter: (from) => !from.endsWith('LOCK') && !from.endsWith('-lock') });
      } finally {
        await storage.close();
      }
    }
    const { present, warnings } = await reopen(copy, 3);
    expect(present).toEqual(upTo(3));
    expect(warnings).toEqual([]);
    // Nor can a value place the four bytes the search behind a stop looks for (a candidate frame
    // checked at each): a frame's epoch field is not the plain epoch.
    const log = await readFile(join(copy, 'wal-0'));
    expect(log.readUInt32LE(HEADER_BYTES + 8)).not.toBe(log.readUInt32LE(8));
  });
});

describe('write-ahead log replay: a clean close', () => {
  it('seals the log where it ends, so the next open finds its end without searching behind it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-waldamage-'));
    dirs.push(dir);
    const storage = await openDiskStorage({ dir });
    const { kv } = await storage.unit('kv/t');
    for (let n = 0; n < 5; n++) await kv.put(key(n), value(n));
    await storage.close();
    const { frames, seal } = await framesOf(dir, 'wal-0');
    expect(frames).toHaveLength(5);
    expect(seal?.start).toBe(frames[4]!.end);
    expect((await reopen(dir, 5)).present).toEqual(upTo(5));
  });
});

describe('write-ahead log replay: damage behind which acknowledged writes lie', () => {
  it('refuses a flipped bit in an early frame in one line naming the file, offset and loss, and changes nothing', async () => {
    const dir = await crashedAfter(20);
    // frames[0] is the unit's first put; k5 is in frames[5].
    const { frames } = await framesOf(dir, 'wal-0');
    await flip(dir, 'wal-0', middle(frames[5]!));
    const before = await readFile(join(dir, 'wal-0'));
    const err = await refusal(dir);
    expect(err.code).toBe(ErrorCode.CORRUPT_DATA);
    expect(err.message).not.toContain('\n');
    expect(err.message).toContain(`write-ahead log ${join(dir, 'wal-0')} is damaged at byte ${frames[5]!.start} (its CRC32C does not match; 14 whole frames follow, more than the ${WRITES_IN_FLIGHT - 1} a crash can leave): 14 later frames (14 writes, acknowledged ones among them) would be lost`);
    expect(err.message).toContain('--drop-damaged-log');
    expect(err.details).toMatchObject({ file: 'wal-0', offset: frames[5]!.start, frames: 14, records: 14 });
    // Refused again, the same: nothing was applied or rewritten.
    expect((await refusal(dir)).details).toEqual(err.details);
    expect((await readFile(join(dir, 'wal-0'))).equals(before)).toBe(true);
  });

  it('refuses damage in a frame’s length field as well (the frames behind it are found by their epoch)', async () => {
    const dir = await crashedAfter(20);
    const { frames } = await framesOf(dir, 'wal-0');
    await flip(dir, 'wal-0', frames[5]!.start + 1);
    expect((await refusal(dir)).details).toMatchObject({ offset: frames[5]!.start, frames: 14 });
  });

  it('with dropDamagedLog: opens with every write before the damage, warns what was dropped, keeps a copy; later crashes replay normally', async () => {
    const dir = await crashedAfter(20);
    const { frames } = await framesOf(dir, 'wal-0');
    await flip(dir, 'wal-0', middle(frames[5]!));
    const damaged = await readFile(join(dir, 'wal-0'));
    const { present, warnings } = await reopen(dir, 20, { dropDamagedLog: true });
    expect(present).toEqual(upTo(5));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/is damaged at byte \d+ \(its CRC32C does not match; 14 whole frames follow, more than the 2 a crash can leave\): started anyway: dropped 14 later frames \(14 writes, acknowledged ones among them\), kept every write before it \(5 replayed from the log\); the damaged file is copied to .*wal-0\.damaged-/);
    const copies = (await readdir(dir)).filter((name) => name.startsWith('wal-0.damaged-'));
    expect(copies).toHaveLength(1);
    expect((await readFile(join(dir, copies[0]!))).equals(damaged)).toBe(true);

    // Writes after it, then a crash: they replay, and the dropped frames never come back.
    const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
    const second = `${dir}-second`;
    dirs.push(second);
    try {
      const { kv } = await storage.unit('kv/t');
      for (let n = 30; n < 35; n++) await kv.put(key(n), value(n));
      await cp(dir, second, { recursive: true, filter: (from) => !from.endsWith('LOCK') && !from.endsWith('-lock') });
    } finally {
      await storage.close();
    }
    const after = await reopen(second, 35);
    expect(after.present).toEqual([...upTo(5), 30, 31, 32, 33, 34]);
    expect(after.warnings).toEqual([]);
  });
});

describe('write-ahead log replay: two files', () => {
  // 64 KiB files hold ~200 puts of ~220 B; 300 fill wal-0 (epoch 1), seal it and go on in wal-1 (epoch 2).
  const FILE = 64 << 10;
  const COUNT = 300;

  async function twoFiles(): Promise<{ dir: string; older: Awaited<ReturnType<typeof framesOf>>; newer: Awaited<ReturnType<typeof framesOf>> }> {
    const dir = await crashedAfter(COUNT, { logFileBytes: FILE });
    const older = await framesOf(dir, 'wal-0');
    const newer = await framesOf(dir, 'wal-1');
    expect(older.seal).toBeDefined();
    expect(newer.epoch).toBe(older.epoch + 1);
    expect(newer.frames.length).toBeGreaterThan(WRITES_IN_FLIGHT);
    return { dir, older, newer };
  }

  it('replays both files whole', async () => {
    const { dir } = await twoFiles();
    expect((await reopen(dir, COUNT)).present).toEqual(upTo(COUNT));
  });

  it('replays files swapped by name (they are told apart by epoch); refuses when the file lmdb’s position points into is gone', async () => {
    const swapped = await twoFiles();
    await rename(join(swapped.dir, 'wal-0'), join(swapped.dir, 'wal-x'));
    await rename(join(swapped.dir, 'wal-1'), join(swapped.dir, 'wal-0'));
    await rename(join(swapped.dir, 'wal-x'), join(swapped.dir, 'wal-1'));
    expect((await reopen(swapped.dir, COUNT)).present).toEqual(upTo(COUNT));

    const deleted = await twoFiles();
    await rm(join(deleted.dir, 'wal-0'));
    const err = await refusal(deleted.dir);
    expect(err.code).toBe(ErrorCode.CORRUPT_DATA);
    expect(err.details).toMatchObject({ file: 'wal-0', offset: HEADER_BYTES, frames: deleted.newer.frames.length });
    expect(err.message).toContain('holds no frames of epoch 1');
  });

  it('refuses a damaged frame in the older file, counting the newer file’s frames as lost', async () => {
    const { dir, older, newer } = await twoFiles();
    const bad = older.frames.length - 10;
    await flip(dir, 'wal-0', middle(older.frames[bad]!));
    const err = await refusal(dir);
    expect(err.details).toMatchObject({ file: 'wal-0', offset: older.frames[bad]!.start, frames: 9 + newer.frames.length });
    expect(err.message).toContain('its seal follows');
  });

  it('refuses damage in the older file’s last frame before its seal, and in the seal itself, while the newer file holds writes', async () => {
    const last = await twoFiles();
    await flip(last.dir, 'wal-0', middle(last.older.frames.at(-1)!));
    expect((await refusal(last.dir)).details).toMatchObject({ file: 'wal-0', offset: last.older.frames.at(-1)!.start, frames: last.newer.frames.length });

    const seal = await twoFiles();
    await flip(seal.dir, 'wal-0', seal.older.seal!.start + 5);
    const err = await refusal(seal.dir);
    expect(err.details).toMatchObject({ file: 'wal-0', offset: seal.older.seal!.start, frames: seal.newer.frames.length });
    expect(err.message).toContain('the file is not sealed, yet wal-1 holds the next epoch');
  });

  it('opens when only the older file’s seal is damaged and the newer file holds no frame yet (nothing is lost)', async () => {
    const { dir, older } = await twoFiles();
    await truncate(join(dir, 'wal-1'), HEADER_BYTES); // a crash right after the switch
    await flip(dir, 'wal-0', older.seal!.start + 5);
    expect((await reopen(dir, COUNT)).present).toEqual(upTo(older.frames.length));
  });

  it('in the newer file: opens at its torn last frame, refuses an early damaged one', async () => {
    const tail = await twoFiles();
    await flip(tail.dir, 'wal-1', middle(tail.newer.frames.at(-1)!));
    expect((await reopen(tail.dir, COUNT)).present).toEqual(upTo(COUNT - 1));

    const early = await twoFiles();
    await flip(early.dir, 'wal-1', middle(early.newer.frames[1]!));
    expect((await refusal(early.dir)).details).toMatchObject({ file: 'wal-1', offset: early.newer.frames[1]!.start, frames: early.newer.frames.length - 2 });
  });

  it('reads a file whose header is damaged by its frames’ epoch: nothing is lost', async () => {
    const newer = await twoFiles();
    await flip(newer.dir, 'wal-1', 9); // the epoch field of the header
    const { present, warnings } = await reopen(newer.dir, COUNT);
    expect(present).toEqual(upTo(COUNT));
    expect(warnings).toEqual([`write-ahead log ${join(newer.dir, 'wal-1')}: its header is damaged (or was torn by a crash while written); its frames were read by their own epoch (2), nothing was lost`]);
    // Rewritten: reported once.
    expect((await reopen(newer.dir, COUNT)).warnings).toEqual([]);

    const older = await twoFiles();
    await flip(older.dir, 'wal-0', 1); // the magic
    expect((await reopen(older.dir, COUNT)).present).toEqual(upTo(COUNT));
  });

  it('refuses a file whose header and first frame are both damaged when its later frames continue the log', async () => {
    const { dir, newer } = await twoFiles();
    await flip(dir, 'wal-1', 9);
    await flip(dir, 'wal-1', middle(newer.frames[0]!));
    const err = await refusal(dir);
    expect(err.details).toMatchObject({ file: 'wal-1', offset: 0, frames: newer.frames.length - 1 });
    expect(err.message).toContain('its header and first frame are damaged, and frames of epoch 2 follow');
  });

  it('refuses the same in the one file lmdb’s position points into', async () => {
    const dir = await crashedAfter(20);
    const { frames } = await framesOf(dir, 'wal-0');
    await flip(dir, 'wal-0', 9);
    await flip(dir, 'wal-0', middle(frames[0]!));
    expect((await refusal(dir)).details).toMatchObject({ file: 'wal-0', offset: 0, frames: 19, records: 19 });
  });
});

describe('write-ahead log replay: a directory of a newer QuartzDB', () => {
  it('is refused for its version before its log is read, so a newer log is never taken for damage', async () => {
    const dir = await crashedAfter(20, { dataVersion: DATA_VERSION + 1 });
    // A frame this build cannot read, with acknowledged frames behind it: damage to this build.
    await flip(dir, 'wal-0', middle((await framesOf(dir, 'wal-0')).frames[2]!));
    const before = await readFile(join(dir, 'wal-0'));
    const err = await openDiskStorage({ dir, newestDataVersion: DATA_VERSION }).then(
      async (s) => {
        await s.close();
        throw new Error('opened');
      },
      (e: { code: string; message: string }) => e,
    );
    expect(err).toMatchObject({ code: ErrorCode.DATA_VERSION_TOO_NEW, message: expect.stringContaining(`data directory ${dir} is in format version ${DATA_VERSION + 1}`) });
    expect((await readFile(join(dir, 'wal-0'))).equals(before)).toBe(true);
    // Without the version to compare, the same directory reads as damage.
    expect((await refusal(dir)).code).toBe(ErrorCode.CORRUPT_DATA);
  });

  it('opens a directory of this format version with its log as before', async () => {
    const dir = await crashedAfter(20, { dataVersion: DATA_VERSION });
    expect((await reopen(dir, 20, { newestDataVersion: DATA_VERSION })).present).toEqual(upTo(20));
  });
});
