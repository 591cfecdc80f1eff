// The journal's pending writes: acknowledged writes that lmdb has not received yet are read back
// by get, getTransient and scan (merged into lmdb's range in key order, deletes hiding lmdb's
// entries), and the answers do not change once lmdb holds them.
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom } from '../../core/random-testing.js';
import type { KVEntry, ScanOptions } from '../../ports/storage.js';
import { compareBytes } from '../../ports/storage-checks.js';
import { openDiskStorage } from './disk-storage.js';
import type { LmdbKV } from './lmdb-kv.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** The scan a sorted model answers. */
function modelScan(model: Map<string, Uint8Array>, o: ScanOptions): KVEntry[] {
  let keys = [...model.keys()].map((k) => Buffer.from(k, 'hex')).sort(compareBytes);
  if (o.prefix !== undefined) keys = keys.filter((k) => k.length >= o.prefix!.length && compareBytes(k.subarray(0, o.prefix!.length), o.prefix!) === 0);
  if (o.start !== undefined) keys = keys.filter((k) => compareBytes(k, o.start!) >= 0);
  if (o.end !== undefined) keys = keys.filter((k) => compareBytes(k, o.end!) < 0);
  if (o.reverse) keys.reverse();
  if (o.limit !== undefined) keys = keys.slice(0, o.limit);
  return keys.map((k) => ({ key: new Uint8Array(k), value: model.get(hex(k))! }));
}

describe('journal: writes not yet in lmdb', () => {
  it('are read back by get, getTransient and scans merged with lmdb’s entries', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-journal-'));
    dirs.push(dir);
    // No batch reaches lmdb unless the test asks (settle).
    const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
    try {
      const kv = (await storage.unit('kv/t1')).kv as LmdbKV;
      const other = (await storage.unit('kv/t2')).kv as LmdbKV;
      const random = seededRandom(7);
      // Short keys over a small alphabet (0x00 and 0xff included), so writes hit each other's keys and prefixes.
      const alphabet = [0x00, 0x01, 0x61, 0x62, 0x7f, 0x80, 0xff];
      const randomKey = (max = 4) => new Uint8Array(1 + Math.floor(random() * max)).map(() => alphabet[Math.floor(random() * alphabet.length)]!);
      const model = new Map<string, Uint8Array>();
      const write = async (n: number) => {
        const writes: Promise<void>[] = [];
        for (let i = 0; i < n; i++) {
          const key = randomKey();
          const r = random();
          if (r < 0.25) {
            writes.push(kv.delete(key));
            model.delete(hex(key));
          } else if (r < 0.4) {
            const value = Uint8Array.of(i, 1);
            const gone = randomKey();
            writes.push(kv.batch([{ type: 'put', key, value }, { type: 'delete', key: gone }]));
            model.set(hex(key), value);
            model.delete(hex(gone));
          } else {
            const value = Uint8Array.of(i, 2, Math.floor(random() * 256));
            writes.push(kv.put(key, value));
            model.set(hex(key), value);
          }
          // The other unit's pending writes never show in this one's answers.
          writes.push(other.put(key, Uint8Array.of(9)));
        }
        await Promise.all(writes);
      };
      const check = async () => {
        for (let i = 0; i < 300; i++) {
          const o: ScanOptions = {};
          if (random() < 0.3) o.prefix = randomKey(2);
          else {
            if (random() < 0.6) o.start = randomKey();
            if (random() < 0.6) o.end = randomKey();
          }
          if (random() < 0.5) o.limit = Math.floor(random() * 20);
          if (random() < 0.5) o.reverse = true;
          expect(kv.scan(o).map((e) => [hex(e.key), hex(e.value)]), JSON.stringify(o, (_k, v) => (v instanceof Uint8Array ? hex(v) : v))).toEqual(
            modelScan(model, o).map((e) => [hex(e.key), hex(e.value)]),
          );
        }
        for (let i = 0; i < 300; i++) {
          const key = randomKey();
          const want = model.get(hex(key));
          expect(kv.get(key)).toEqual(want);
          expect(kv.getTransient(key)).toEqual(want);
        }
      };

      await write(300);
      await storage.settle(); // these are lmdb's now
      expect(kv.pending.size).toBe(0);
      await write(300); // and these are only in the log and the pending map
      expect(kv.pending.size).toBeGreaterThan(50);
      await check();
      await storage.settle();
      expect(kv.pending.size).toBe(0);
      await check();
    } finally {
      await storage.close();
    }
  });

  it('logs a large batch of small ops (a roll’s tail deletes); a value above 16 KiB goes straight to lmdb', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-journal-'));
    dirs.push(dir);
    const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
    try {
      const kv = (await storage.unit('log/t1/t/0')).kv as LmdbKV;
      const key = (i: number) => new TextEncoder().encode(`t${String(i).padStart(20, '0')}`);
      // ~100 KB in one record, no value above 16 KiB: logged, so pending until lmdb's next batch.
      const ops = Array.from({ length: 3000 }, (_, i) => ({ type: 'delete' as const, key: key(i) }));
      await kv.batch([{ type: 'put', key: key(-1), value: Uint8Array.of(1) }, ...ops]);
      expect(kv.pending.size).toBe(3001);
      expect(kv.get(key(-1))).toEqual(Uint8Array.of(1));
      await storage.settle();
      expect(kv.pending.size).toBe(0);
      // One value above 16 KiB: lmdb's own commit, never pending.
      const big = new Uint8Array(20 << 10).fill(7);
      await kv.batch([{ type: 'put', key: key(1), value: big }, { type: 'delete', key: key(2) }]);
      expect(kv.pending.size).toBe(0);
      expect(kv.get(key(1))).toEqual(big);
    } finally {
      await storage.close();
    }
  });

  it('replays logged batches after a crash: each op under its own unit, puts and deletes alike', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-journal-'));
    const copy = `${dir}-crashed`;
    dirs.push(dir, copy);
    const key = (i: number) => new TextEncoder().encode(`k${i}`);
    const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
    try {
      const a = (await storage.unit('kv/a')).kv;
      const b = (await storage.unit('kv/b')).kv;
      await Promise.all([a.put(key(0), Uint8Array.of(0)), b.put(key(0), Uint8Array.of(0))]);
      await storage.settle(); // lmdb holds k0 in both units; the batches below are only in the log
      await Promise.all([
        // Keys of different lengths and a value of 0 bytes: every length field and the unit id of each op matter.
        a.batch([{ type: 'put', key: key(1), value: Uint8Array.of(1, 1) }, { type: 'delete', key: key(0) }, { type: 'put', key: key(22), value: new Uint8Array(0) }]),
        b.batch([{ type: 'delete', key: key(333) }, { type: 'put', key: key(0), value: Uint8Array.of(7, 7, 7) }]),
      ]);
      // Acknowledged: on disk as a crash leaves it.
      await cp(dir, copy, { recursive: true, filter: (from) => !from.endsWith('LOCK') && !from.endsWith('-lock') });
    } finally {
      await storage.close();
    }
    const reopened = await openDiskStorage({ dir: copy });
    try {
      const entries = async (unit: string) =>
        ((await (await reopened.unit(unit)).kv.scan({})) as KVEntry[]).map((e) => [new TextDecoder().decode(e.key), hex(e.value)]);
      expect(await entries('kv/a')).toEqual([
        ['k1', '0101'],
        ['k22', ''],
      ]);
      expect(await entries('kv/b')).toEqual([['k0', '070707']]);
    } finally {
      await reopened.close();
    }
  });

  it('hands a run of values above 16 KiB to lmdb in one commit before their caller goes on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-journal-'));
    dirs.push(dir);
    const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
    try {
      const kv = (await storage.unit('log/t1/t/0')).kv as LmdbKV;
      const events: string[] = [];
      type Commit = (apply: () => void) => Promise<unknown>;
      const env = (storage as unknown as { env: { batch: Commit; transaction: Commit } }).env;
      for (const name of ['batch', 'transaction'] as const) {
        const commit = env[name].bind(env);
        env[name] = (apply) => {
          events.push('lmdb commit');
          return commit(() => {
            apply();
            events.push('writes handed to lmdb');
          });
        };
      }
      const big = (i: number) => new Uint8Array(20 << 10).fill(i);
      // A produce group's batches: issued in one synchronous loop, then the producers go on.
      const writes = [1, 2, 3].map((i) => kv.putOwned(Uint8Array.of(0x74, i), big(i)));
      queueMicrotask(() => events.push('caller goes on'));
      setImmediate(() => events.push('event turn over'));
      await Promise.all(writes);
      // Handed over after the event turn, the commit waited for whatever the callers did meanwhile
      // (a transaction's callback runs on this thread once lmdb's writer has opened it).
      expect(events).toEqual(['lmdb commit', 'writes handed to lmdb', 'caller goes on', 'event turn over']);
      for (const i of [1, 2, 3]) expect(kv.get(Uint8Array.of(0x74, i))).toEqual(big(i));
    } finally {
      await storage.close();
    }
  });
  it('sends a group of many small writes issued together to lmdb directly, in order with the writes around it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-journal-'));
    dirs.push(dir);
    let storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
    const key = (name: string) => new TextEncoder().encode(name);
    const value = (i: number) => new Uint8Array(100).fill(i & 0xff);
    const big = new Uint8Array(20 << 10).fill(7);
    /** 2,000 puts of 100 B in one event turn: far past the journal's bulk line. */
    const burst = (round: number, k0: Uint8Array) => {
      const puts = [kv.put(key('k0'), k0)];
      for (let i = 1; i < 2000; i++) puts.push(kv.put(key(`k${i}`), value(round + i)));
      return puts;
    };
    let kv = (await storage.unit('kv/t1')).kv as LmdbKV;
    try {
      await kv.put(key('k0'), Uint8Array.of(1)); // logged: pending until lmdb's next batch
      expect(kv.pending.size).toBe(1);
      await Promise.all(burst(0, Uint8Array.of(2)));
      // Acknowledged once lmdb committed it, with the logged write before it: nothing is pending.
      expect(kv.pending.size).toBe(0);
      expect(kv.get(key('k0'))).toEqual(Uint8Array.of(2));
      expect(kv.get(key('k1999'))).toEqual(value(1999));
      // A large write and a small one after the burst, in the same turn, of keys it wrote: the
      // large one reaches lmdb after the burst, the small one is logged after both.
      const puts = burst(1, Uint8Array.of(3));
      puts.push(kv.put(key('k0'), big), kv.put(key('k1'), Uint8Array.of(4)));
      await Promise.all(puts);
      expect(kv.pending.size).toBe(1);
      expect(kv.get(key('k0'))).toEqual(big);
      expect(kv.get(key('k1'))).toEqual(Uint8Array.of(4));
      // The log holds only that last write; replay after a reopen brings it back over lmdb's.
      await storage.close();
      storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
      kv = (await storage.unit('kv/t1')).kv as LmdbKV;
      expect(kv.get(key('k0'))).toEqual(big);
      expect(kv.get(key('k1'))).toEqual(Uint8Array.of(4));
      for (const i of [2, 1000, 1999]) expect(kv.get(key(`k${i}`))).toEqual(value(1 + i));
    } finally {
      await storage.close();
    }
  });

  it('counts each record’s own cost toward the bulk line: 1,000 puts of 100 B go direct, 128 of 1 KB are logged', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-journal-'));
    dirs.push(dir);
    const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
    const key = (i: number) => new TextEncoder().encode(`k${i}`);
    try {
      const kv = (await storage.unit('kv/t1')).kv as LmdbKV;
      // ~123 KB of records: past the line only once each record also counts for its per-record cost.
      await Promise.all(Array.from({ length: 1000 }, (_, i) => kv.put(key(i), new Uint8Array(100).fill(i & 0xff))));
      expect(kv.pending.size).toBe(0);
      // ~134 KB of records in fewer, larger writes: logged, pending until lmdb's next batch.
      await Promise.all(Array.from({ length: 128 }, (_, i) => kv.put(key(i), new Uint8Array(1024).fill(i & 0xff))));
      expect(kv.pending.size).toBe(128);
      expect(kv.get(key(127))).toEqual(new Uint8Array(1024).fill(127));
      expect(kv.get(key(999))).toEqual(new Uint8Array(100).fill(999 & 0xff));
    } finally {
      await storage.close();
    }
  });

  it('puts a key written many times before a batch once, in order with large writes of it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-journal-'));
    dirs.push(dir);
    let storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
    const big = new Uint8Array(20 << 10).fill(7);
    const key = (name: string) => new TextEncoder().encode(name);
    try {
      const kv = (await storage.unit('kv/t1')).kv as LmdbKV;
      // A large write skips the pending map: it must reach lmdb between the logged ones around it.
      await Promise.all([kv.put(key('a'), Uint8Array.of(1)), kv.put(key('a'), big), kv.put(key('b'), Uint8Array.of(1))]);
      await kv.put(key('a'), Uint8Array.of(2));
      await kv.put(key('b'), big);
      const puts: Promise<void>[] = [];
      for (let i = 0; i < 50; i++) puts.push(kv.put(key('hot'), Uint8Array.of(i)));
      await Promise.all(puts);
      expect(kv.pending.size).toBe(1);
      // A later write published while the batch waits for lmdb's writer: the batch leaves the key
      // to the next one, and reads find the later write meanwhile.
      type Commit = (apply: () => void) => Promise<unknown>;
      const env = (storage as unknown as { env: { transaction: Commit } }).env;
      const commit = env.transaction.bind(env);
      let later: Promise<void> | undefined;
      env.transaction = (apply) => {
        later ??= kv.put(key('hot'), Uint8Array.of(99));
        return later.then(() => commit(apply));
      };
      // (settle would hold the later write back: the batch is started as the timer starts it.)
      await (storage as unknown as { journal: { applyNow(): Promise<void> } }).journal.applyNow();
      expect(kv.get(key('hot'))).toEqual(Uint8Array.of(99));
      expect(kv.pending.size).toBe(1);
      env.transaction = commit;
      await storage.settle();
      expect(kv.pending.size).toBe(0);
      await storage.close();
      storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
      const again = (await storage.unit('kv/t1')).kv as LmdbKV;
      expect(again.get(key('hot'))).toEqual(Uint8Array.of(99));
      expect(again.get(key('a'))).toEqual(Uint8Array.of(2));
      expect(again.get(key('b'))).toEqual(big);
    } finally {
      await storage.close();
    }
  });
});

describe('journal: a batch lmdb refuses (not for want of space)', () => {
  it('stops the journal, and no later batch moves the log position past the refused writes: the next open replays them all', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-journal-'));
    dirs.push(dir);
    const storage = await openDiskStorage({ dir, applyDelayMs: 3_600_000 });
    const kv = (await storage.unit('kv/t')).kv;
    const key = (s: string) => new TextEncoder().encode(s);
    await kv.put(key('first'), Uint8Array.of(1));
    const env = (storage as unknown as { env: { transaction(apply: () => void): Promise<unknown> } }).env;
    const transaction = env.transaction;
    // The next checkpoint fails once lmdb had time to start it, as an I/O error would.
    env.transaction = () => {
      env.transaction = transaction;
      return new Promise((_, reject) => setTimeout(() => reject(new Error('injected lmdb failure')), 20));
    };
    const refused = storage.settle();
    // Checked below; on a loaded machine it rejects while the put runs, before `expect` holds it.
    refused.catch(() => undefined);
    await kv.put(key('second'), Uint8Array.of(2)); // logged while the failing checkpoint runs
    await expect(refused).rejects.toThrow(/injected/);
    await expect(storage.settle()).rejects.toThrow(/write-ahead log failure/);
    await expect((async () => kv.put(key('third'), Uint8Array.of(3)))()).rejects.toThrow(/write-ahead log failure/);
    expect(await kv.get(key('first'))).toEqual(Uint8Array.of(1)); // still read from the pending writes
    await storage.close().catch(() => undefined);

    const reopened = await openDiskStorage({ dir });
    const again = (await reopened.unit('kv/t')).kv;
    expect(await again.get(key('first'))).toEqual(Uint8Array.of(1));
    expect(await again.get(key('second'))).toEqual(Uint8Array.of(2));
    expect(await again.get(key('third'))).toBeUndefined();
    await reopened.close();
  });
});
