// Several group writes in flight at once: acknowledged strictly in log order, and a failed write
// in the middle rejects every write behind it, even one already on disk, which must then never
// read as part of the log. The log's pwrite (wal.ts writeAt) is held by the test, so it decides
// when each write lands and which one fails.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openDiskStorage, type DiskStorage } from './disk-storage.js';
import type { LmdbKV } from './lmdb-kv.js';
import * as wal from './wal.js';

/** A write the test holds: `land` performs it, `fail` rejects it without writing. */
interface HeldWrite {
  land(): void;
  fail(): void;
}
const hold = { on: false, writes: [] as HeldWrite[] };

vi.mock('./wal.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('./wal.js')>();
  return {
    ...real,
    writeAt: (fd: number, buf: Buffer, from: number, to: number, position: number): Promise<void> => {
      if (!hold.on) return real.writeAt(fd, buf, from, to, position);
      return new Promise((resolve, reject) => {
        hold.writes.push({
          land: () => void real.writeAt(fd, buf, from, to, position).then(resolve, reject),
          fail: () => reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })),
        });
      });
    },
  };
});

const dirs: string[] = [];
afterEach(async () => {
  hold.on = false;
  for (const w of hold.writes.splice(0)) w.land();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const turn = () => new Promise((resolve) => setImmediate(resolve));
const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** What replay would find in the log of `storage` (open on `dir`) now: the puts of its records, oldest first. */
function logged(dir: string, storage: DiskStorage): string[] {
  const key = (storage as unknown as { journal: { logKey: number } }).journal.logKey;
  const files = wal.openLogFiles(dir, key);
  try {
    const { records } = wal.recover(files, { epoch: 0, offset: wal.HEADER_BYTES }, key);
    return records.flatMap((r) => r.ops.map((op) => `${text(op.key.subarray(4))}=${text(op.value!)}`));
  } finally {
    wal.closeLogFiles(files);
  }
}

async function settled(p: Promise<void>): Promise<'ok' | 'failed' | 'pending'> {
  let state: 'ok' | 'failed' | 'pending' = 'pending';
  p.then(
    () => (state = 'ok'),
    () => (state = 'failed'),
  );
  await turn();
  return state;
}

/**
 * Runs `run` on one KV unit of a fresh data dir whose lmdb checkpoints wait an hour (the log is all
 * there is), then lands any held writes and closes it. Returns the dir, for a reopen.
 */
async function withUnit(run: (unit: { kv: LmdbKV; dir: string; storage: DiskStorage }) => Promise<void>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'quartz-journal-'));
  dirs.push(dir);
  const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
  try {
    await run({ kv: (await storage.unit('kv/t1')).kv as LmdbKV, dir, storage });
  } finally {
    hold.on = false;
    for (const w of hold.writes.splice(0)) w.land();
    await storage.close();
  }
  return dir;
}

describe('journal: group writes in flight together', () => {
  it('acknowledges in log order; a failed middle write rejects the writes behind it, which replay never finds', async () => {
    const dir = await withUnit(async ({ kv, dir, storage }) => {
      await kv.put(bytes('first'), bytes('0')); // grows the file: later writes are plain frames
      hold.on = true;
      // One write per event turn: each goes out as its own group while the others are in flight.
      const a = kv.put(bytes('a'), bytes('1'));
      await turn();
      const b = kv.put(bytes('b'), bytes('2'));
      await turn();
      const c = kv.put(bytes('c'), bytes('3'));
      await turn();
      expect(hold.writes).toHaveLength(3);
      const [wa, wb, wc] = hold.writes.splice(0);

      // The last lands first: not acknowledged while the writes before it are still in flight.
      wc!.land();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await settled(c)).toBe('pending');
      expect(logged(dir, storage)).toEqual(['first=0']); // a's frame is not there yet, so c's is not read either
      wb!.fail();
      wa!.land();
      await expect(a).resolves.toBeUndefined();
      await expect(b).rejects.toThrow('EIO');
      // c reached the disk, but behind a failed write: rejected, never published, never replayed.
      await expect(c).rejects.toThrow('EIO');
      expect(kv.get(bytes('c'))).toBeUndefined();

      // The log goes on where b failed. d's frame is as long as b's: were it written in b's place,
      // c's stale frame would follow it as if it continued the log.
      hold.on = false;
      await kv.put(bytes('d'), bytes('4'));
      expect(logged(dir, storage)).toEqual(['first=0', 'a=1', 'd=4']);
      expect(kv.get(bytes('d'))).toEqual(bytes('4'));
      expect(kv.get(bytes('a'))).toEqual(bytes('1'));
    });
    // Nothing rejected comes back after a reopen.
    const reopened = await openDiskStorage({ dir });
    try {
      const kv = (await reopened.unit('kv/t1')).kv;
      expect((await kv.scan({})).map((e) => `${text(e.key)}=${text(e.value)}`)).toEqual(['a=1', 'd=4', 'first=0']);
    } finally {
      await reopened.close();
    }
  });

  it('hands a write to the log within its own turn, with the writes of the promise jobs queued before the pump', async () => {
    await withUnit(async ({ kv }) => {
      await kv.put(bytes('first'), bytes('0')); // grows the file: later writes are plain frames
      hold.on = true;
      // Two request handlers resumed together (the bodies read in one check phase): one frame.
      const resumed = Promise.resolve();
      const a = resumed.then(() => kv.put(bytes('a'), bytes('1')));
      const b = resumed.then(() => kv.put(bytes('b'), bytes('2')));
      // Issued before any later check phase: under load that comes after a whole poll phase.
      let issuedByNextImmediate = -1;
      setImmediate(() => (issuedByNextImmediate = hold.writes.length));
      await turn();
      expect(issuedByNextImmediate).toBe(1);
      hold.writes.splice(0)[0]!.land();
      await Promise.all([a, b]);
      expect(kv.get(bytes('b'))).toEqual(bytes('2'));
    });
  });

  it('grows the log file ahead of the frames, beside their writes', async () => {
    await withUnit(async ({ kv, dir, storage }) => {
      const value = new Uint8Array(1000).fill(1);
      await kv.put(bytes('first'), value); // the file's first 2 MiB, grown in line
      expect((await stat(join(dir, 'wal-0'))).size).toBe(wal.HEADER_BYTES + (2 << 20));
      // ~1.3 MiB of frames: past half of the first step, so the next one is written ahead of them.
      for (let i = 0; i < 1300; i += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => kv.put(bytes(`k${i + j}`), value)));
      await storage.settle();
      expect((await stat(join(dir, 'wal-0'))).size).toBe(wal.HEADER_BYTES + (4 << 20));
      expect(logged(dir, storage)).toHaveLength(1301);
    });
  });

  it('holds back the acknowledgement of writes that land while a backup holds the journal', async () => {
    await withUnit(async ({ kv, storage }) => {
      await kv.put(bytes('first'), bytes('0'));
      hold.on = true;
      const a = kv.put(bytes('a'), bytes('1'));
      await turn();
      const b = kv.put(bytes('b'), bytes('2'));
      await turn();
      const [wa, wb] = hold.writes.splice(0);
      expect(wb).toBeDefined();
      hold.on = false;
      const { data, release } = await storage.backupSource();
      // Both land while held: on disk, but not acknowledged, not published, not in lmdb's snapshot.
      wb!.land();
      wa!.land();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await settled(a)).toBe('pending');
      expect(await settled(b)).toBe('pending');
      expect(kv.get(bytes('a'))).toBeUndefined();
      expect(data.getKeysCount({})).toBe(1);
      release();
      await Promise.all([a, b]);
      expect(kv.get(bytes('b'))).toEqual(bytes('2'));
    });
  });

  it('keeps several writes in flight at once, and a failed last write alone rewinds in place', async () => {
    await withUnit(async ({ kv, dir, storage }) => {
      await kv.put(bytes('first'), bytes('0'));
      hold.on = true;
      const puts: Promise<void>[] = [];
      for (let i = 0; i < 6; i++) {
        puts.push(kv.put(bytes(`k${i}`), bytes(String(i))));
        await turn();
      }
      // More writes in flight than one, fewer than six: the rest wait for a slot.
      const inFlight = hold.writes.length;
      expect(inFlight).toBeGreaterThan(1);
      expect(inFlight).toBeLessThan(6);
      // Land them in reverse order as they come (the rest go out as slots free up), until every
      // put is acknowledged.
      let done = false;
      const all = Promise.all(puts).then(() => (done = true));
      while (!done) {
        for (const w of hold.writes.splice(0).reverse()) w.land();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await all;
      // A failed write with nothing behind it: its frame is overwritten by the next, same file.
      const failing = kv.put(bytes('x'), bytes('9'));
      await turn();
      expect(hold.writes).toHaveLength(1);
      hold.writes.splice(0)[0]!.fail();
      await expect(failing).rejects.toThrow('EIO');
      hold.on = false;
      await kv.put(bytes('y'), bytes('8'));
      expect(logged(dir, storage)).toEqual(['first=0', 'k0=0', 'k1=1', 'k2=2', 'k3=3', 'k4=4', 'k5=5', 'y=8']);
    });
  });
});
