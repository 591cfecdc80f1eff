// The lmdb adapter's hot-path extras beyond the conformance suite: transient reads, handed-over
// values, and (unit id, key) pairs written straight into lmdb's key buffer.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { MAX_ENTRY_BYTES, MAX_KEY_BYTES } from '../../ports/storage.js';
import { openDiskStorage, type DiskStorage } from './disk-storage.js';
import { unitKeyEncoder, type LmdbKV } from './lmdb-kv.js';

const dirs: string[] = [];
const open: DiskStorage[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function storage(): Promise<DiskStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'quartz-lmdb-kv-'));
  dirs.push(dir);
  const s = await openDiskStorage({ dir });
  open.push(s);
  return s;
}

/** The disk home's KV answers reads synchronously; the port types say Awaitable. */
async function lmdbKV(s: DiskStorage, unit: string): Promise<LmdbKV> {
  return (await s.unit(unit)).kv as LmdbKV;
}

const bytes = (...b: number[]) => Uint8Array.from(b);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof QuartzError ? err.code : `not a QuartzError: ${String(err)}`;
  }
  return undefined;
}

describe('lmdb adapter hot path', () => {
  it('getTransient answers what get answers, for short, long and absent keys, in the right unit only', async () => {
    const s = await storage();
    const a = (await lmdbKV(s, 'kv/a'));
    const b = (await lmdbKV(s, 'kv/b'));
    // 1, 64 and 65 bytes take the byte loop; longer keys take TypedArray#set.
    const keys = [bytes(0), new Uint8Array(64).fill(7), new Uint8Array(65).fill(8), new Uint8Array(MAX_KEY_BYTES).fill(0xff)];
    for (const [i, k] of keys.entries()) await a.put(k, new Uint8Array(i * 100 + 1).fill(i));
    for (const [i, k] of keys.entries()) {
      const owned = a.get(k)!;
      const view = a.getTransient(k)!;
      expect(view).toEqual(owned);
      expect(view.length).toBe(i * 100 + 1);
      expect(b.getTransient(k)).toBeUndefined();
    }
    expect(a.getTransient(bytes(9, 9))).toBeUndefined();
  });

  it('getTransient hands out a buffer the next read reuses, which is why callers decode at once', async () => {
    const s = await storage();
    const kv = await lmdbKV(s, 'kv/a');
    await kv.put(bytes(1), bytes(1, 1, 1));
    await kv.put(bytes(2), bytes(2, 2, 2));
    await s.settle(); // until then the writes are served from the journal's pending map
    const first = kv.getTransient(bytes(1))!;
    const copy = first.slice();
    kv.getTransient(bytes(2));
    expect(copy).toEqual(bytes(1, 1, 1));
    // Documented behaviour, not a promise: lmdb's shared read buffer now holds the second value.
    expect(first).toEqual(bytes(2, 2, 2));
  });

  it('putOwned stores the bytes given, under keys the binary scan path and dropUnit see', async () => {
    const s = await storage();
    const kv = await lmdbKV(s, 'kv/a');
    const other = (await lmdbKV(s, 'kv/ab'));
    await Promise.all([kv.putOwned(bytes(1), bytes(10)), kv.putOwned(bytes(2), new Uint8Array(5000).fill(3)), other.putOwned(bytes(1), bytes(99))]);
    expect(kv.scan({}).map((e) => [Array.from(e.key), e.value.length])).toEqual([
      [[1], 1],
      [[2], 5000],
    ]);
    await kv.delete(bytes(1));
    expect(kv.get(bytes(1))).toBeUndefined();
    await s.dropUnit('kv/a');
    expect(other.get(bytes(1))).toEqual(bytes(99));
  });

  it('putOwned lets go of the bytes once durable: the caller may reuse them, logged or in a bulk group', async () => {
    const s = await storage();
    const kv = await lmdbKV(s, 'kv/a');
    // One put alone is logged and waits in the pending map for lmdb; 1,000 of 1 KB go to lmdb in one commit.
    const one = new Uint8Array(100).fill(7);
    await kv.putOwned(bytes(0), one);
    one.fill(0);
    const many = Array.from({ length: 1000 }, (_, i) => new Uint8Array(1024).fill(i & 0xff));
    await Promise.all(many.map((v, i) => kv.putOwned(bytes(1, i >> 8, i & 0xff), v)));
    for (const v of many) v.fill(0);
    const check = () => {
      expect(kv.get(bytes(0))).toEqual(new Uint8Array(100).fill(7));
      for (let i = 0; i < 1000; i += 111) expect(kv.get(bytes(1, i >> 8, i & 0xff))).toEqual(new Uint8Array(1024).fill(i & 0xff));
    };
    check(); // from the pending map
    await s.settle();
    check(); // from lmdb
  });

  it('putOwned writes of one key in one log frame: the last one is read and stored, whatever the caller does with the bytes after', async () => {
    const s = await storage();
    const kv = await lmdbKV(s, 'kv/a');
    // Issued in one turn, so they share a frame; the first two are replaced in the pending map
    // within it (and not copied), the third is copied when its frame is published.
    const values = [1, 2, 3].map((i) => new Uint8Array(1024).fill(i));
    const other = new Uint8Array(1024).fill(9);
    await Promise.all([...values.map((v) => kv.putOwned(bytes(5), v)), kv.putOwned(bytes(6), other)]);
    for (const v of [...values, other]) v.fill(0);
    const check = () => {
      expect(kv.get(bytes(5))).toEqual(new Uint8Array(1024).fill(3));
      expect(kv.get(bytes(6))).toEqual(new Uint8Array(1024).fill(9));
    };
    check(); // from the pending map
    await s.settle();
    check(); // from lmdb
  });

  it('rejects bad input to the extras with the same typed errors as get and put', async () => {
    const s = await storage();
    const kv = await lmdbKV(s, 'kv/a');
    expect(code(() => kv.getTransient(new Uint8Array(0)))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(code(() => kv.getTransient('k' as unknown as Uint8Array))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(code(() => kv.getTransient(new Uint8Array(MAX_KEY_BYTES + 1)))).toBe(ErrorCode.TOO_LARGE);
    expect(code(() => kv.putOwned(new Uint8Array(MAX_KEY_BYTES + 1), bytes(1)))).toBe(ErrorCode.TOO_LARGE);
    expect(code(() => kv.putOwned(bytes(1), new Uint8Array(MAX_ENTRY_BYTES + 1)))).toBe(ErrorCode.TOO_LARGE);
    expect(code(() => kv.putOwned(bytes(1), [1] as unknown as Uint8Array))).toBe(ErrorCode.INVALID_ARGUMENT);
    await s.dropUnit('kv/a');
    expect(code(() => kv.getTransient(bytes(1)))).toBe(ErrorCode.STORAGE_CLOSED);
    expect(code(() => kv.putOwned(bytes(1), bytes(1)))).toBe(ErrorCode.STORAGE_CLOSED);
  });

  describe('record cache', () => {
    /** Reads through both read paths, so either one keeping a stale record fails the test. */
    const read = (kv: LmdbKV, key: Uint8Array) => {
      const transient = kv.getTransient(key)?.slice();
      expect(kv.get(key)).toEqual(transient);
      return transient;
    };

    it('a read after a put, delete or batch sees the write, before and after lmdb holds it', async () => {
      const s = await storage();
      const kv = await lmdbKV(s, 'kv/a');
      await kv.put(bytes(1), bytes(10));
      await kv.put(bytes(2), bytes(20));
      await s.settle();
      expect(read(kv, bytes(1))).toEqual(bytes(10)); // now kept
      expect(read(kv, bytes(2))).toEqual(bytes(20));
      const put = kv.put(bytes(1), bytes(11));
      // Not acknowledged yet, so in neither the pending map nor lmdb: the old record, not kept.
      expect(read(kv, bytes(1))).toEqual(bytes(10));
      await put;
      expect(read(kv, bytes(1))).toEqual(bytes(11)); // from the pending map
      await s.settle();
      expect(read(kv, bytes(1))).toEqual(bytes(11));
      await kv.delete(bytes(1));
      await s.settle();
      expect(read(kv, bytes(1))).toBeUndefined();
      await kv.batch([{ type: 'put', key: bytes(2), value: bytes(21) }]);
      await s.settle();
      expect(read(kv, bytes(2))).toEqual(bytes(21));
      await kv.putOwned(bytes(2), bytes(22));
      await s.settle();
      expect(read(kv, bytes(2))).toEqual(bytes(22));
    });

    it('keeps nothing read while a write lmdb commits directly (a large value) is in flight', async () => {
      const s = await storage();
      const kv = await lmdbKV(s, 'kv/a');
      await kv.put(bytes(1), bytes(10));
      await s.settle();
      const large = new Uint8Array(64 << 10).fill(7);
      const put = kv.put(bytes(1), large);
      // Neither in the pending map nor in lmdb yet: the old record, as without a cache...
      expect(read(kv, bytes(1))).toEqual(bytes(10));
      await put;
      // ...but not kept past the write.
      expect(read(kv, bytes(1))).toEqual(large);
    });

    it('counts each write of a shared journal group: keeps nothing while one is in flight, keeps again once all settle', async () => {
      const s = await storage();
      const kv = await lmdbKV(s, 'kv/a');
      const kept = () => (kv as unknown as { records: { size: number } }).records.size;
      await Promise.all([kv.put(bytes(1), bytes(10)), kv.put(bytes(2), bytes(20)), kv.put(bytes(3), bytes(30))]);
      await s.settle();
      // Two small writes share one group's promise; the large one, issued with them, settles after it.
      const large = new Uint8Array(64 << 10).fill(7);
      const small = [kv.put(bytes(1), bytes(11)), kv.put(bytes(2), bytes(21))];
      const put = kv.put(bytes(3), large);
      await Promise.all(small);
      expect(read(kv, bytes(3))).toEqual(bytes(30));
      expect(kept()).toBe(0);
      await put;
      expect(read(kv, bytes(3))).toEqual(large);
      await s.settle();
      expect(read(kv, bytes(1))).toEqual(bytes(11));
      expect(kept()).toBe(1);
    });

    it('get hands out a copy of a kept record', async () => {
      const s = await storage();
      const kv = await lmdbKV(s, 'kv/a');
      await kv.put(bytes(1), bytes(10, 11));
      await s.settle();
      kv.getTransient(bytes(1)); // kept
      kv.get(bytes(1))!.fill(0);
      expect(kv.get(bytes(1))).toEqual(bytes(10, 11));
      expect(kv.getTransient(bytes(1))).toEqual(bytes(10, 11));
    });

    it('keeps units apart', async () => {
      const s = await storage();
      const a = await lmdbKV(s, 'kv/a');
      const b = await lmdbKV(s, 'kv/b');
      await a.put(bytes(1), bytes(10));
      await s.settle();
      expect(read(a, bytes(1))).toEqual(bytes(10));
      expect(read(b, bytes(1))).toBeUndefined();
    });
  });

  it('the key encoder writes id ‖ key big-endian and refuses to overflow its target', () => {
    const target = new Uint8Array(8);
    expect(unitKeyEncoder.writeKey({ id: 0x01020304, key: bytes(9, 8) }, target, 1)).toBe(7);
    expect(Array.from(target)).toEqual([0, 1, 2, 3, 4, 9, 8, 0]);
    expect(() => unitKeyEncoder.writeKey({ id: 1, key: bytes(1, 2, 3, 4, 5) }, target, 0)).toThrow(RangeError);
    expect(unitKeyEncoder.writeKey(bytes(5, 6), target, 6)).toBe(8);
    expect(Array.from(unitKeyEncoder.readKey(target, 1, 3))).toEqual([1, 2]);
  });
});
