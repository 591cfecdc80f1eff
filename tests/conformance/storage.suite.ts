/**
 * The Storage port conformance suite. Every home runs it against its adapters with a one-line
 * test file, so ordering, limits, atomicity and blob semantics are the same everywhere.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import { MAX_ENTRY_BYTES, MAX_KEY_BYTES, type Awaitable, type StorageProvider } from '../../src/ports/storage.js';
import { compareBytes } from '../../src/ports/storage-checks.js';
import { seededRandom } from '../../src/core/random-testing.js';
import { rejectsWithQuartzError } from '../fixtures/expect-error.js';

/** A place to keep data: each `open()` opens it (again); `destroy()` removes it after the test. */
export interface StoragePlace {
  open(): Awaitable<StorageProvider>;
  destroy(): Awaitable<void>;
}

export interface StorageHarness {
  /** A fresh, empty place. */
  place(): Awaitable<StoragePlace>;
  /** Data survives close + open of the same place. */
  persistent: boolean;
}

const bytes = (...b: number[]) => new Uint8Array(b);
const text = (s: string) => new TextEncoder().encode(s);
const plain = (b: Uint8Array | undefined) => (b === undefined ? undefined : Array.from(b));

export function storageConformance(name: string, harness: StorageHarness): void {
  describe(`Storage port conformance: ${name}`, () => {
    const places: StoragePlace[] = [];
    const open: StorageProvider[] = [];

    async function fresh(): Promise<{ place: StoragePlace; storage: StorageProvider }> {
      const place = await harness.place();
      places.push(place);
      const storage = await place.open();
      open.push(storage);
      return { place, storage };
    }

    afterEach(async () => {
      for (const s of open.splice(0)) {
        try {
          await s.close();
        } catch {
          // already closed by the test
        }
      }
      for (const p of places.splice(0)) await p.destroy();
    });

    describe('ordered KV', () => {
      it('puts, gets, overwrites and deletes', async () => {
        const { storage } = await fresh();
        const { kv } = await storage.unit('kv/t1');
        expect(await kv.get(text('a'))).toBeUndefined();
        await kv.put(text('a'), text('one'));
        expect(plain(await kv.get(text('a')))).toEqual(plain(text('one')));
        await kv.put(text('a'), text('two'));
        expect(plain(await kv.get(text('a')))).toEqual(plain(text('two')));
        await kv.put(text('empty'), new Uint8Array(0));
        expect(plain(await kv.get(text('empty')))).toEqual([]);
        await kv.delete(text('a'));
        expect(await kv.get(text('a'))).toBeUndefined();
        await kv.delete(text('never-there'));
      });

      it('never aliases the caller’s buffers', async () => {
        const { storage } = await fresh();
        const { kv } = await storage.unit('kv/t1');
        const value = bytes(1, 2, 3);
        const written = kv.put(text('k'), value);
        value[0] = 9; // before the write has even resolved
        await written;
        const got = (await kv.get(text('k')))!;
        expect(plain(got)).toEqual([1, 2, 3]);
        got[1] = 9;
        expect(plain(await kv.get(text('k')))).toEqual([1, 2, 3]);
        const scanned = await kv.scan({});
        scanned[0]!.value[2] = 9;
        expect(plain(await kv.get(text('k')))).toEqual([1, 2, 3]);
        const batched = bytes(4, 5, 6);
        const batchWritten = kv.batch([{ type: 'put', key: text('b'), value: batched }]);
        batched[0] = 9;
        await batchWritten;
        const gotBatched = (await kv.get(text('b')))!;
        expect(plain(gotBatched)).toEqual([4, 5, 6]);
        gotBatched[1] = 9;
        expect(plain(await kv.get(text('b')))).toEqual([4, 5, 6]);
      });

      it('orders keys bytewise, including 0x00, 0xFF and non-ASCII', async () => {
        const { storage } = await fresh();
        const { kv } = await storage.unit('kv/t1');
        const keys = [
          bytes(0x00),
          bytes(0x00, 0x00),
          bytes(0x00, 0xff),
          bytes(0x01),
          bytes(0x7f),
          bytes(0x80),
          bytes(0xfe, 0xff),
          bytes(0xff),
          bytes(0xff, 0x00),
          bytes(0xff, 0xff, 0xff),
          text('A'),
          text('Z'),
          text('a'),
          text('é'), // c3 a9
          text('\uffff'), // ef bf bf
          text('😀'), // f0 9f 98 80: sorts after U+FFFF bytewise, before it in UTF-16
        ];
        const random = seededRandom(7);
        const shuffled = keys.map((k) => ({ k, r: random() })).sort((x, y) => x.r - y.r).map((x) => x.k);
        for (const [i, k] of shuffled.entries()) await kv.put(k, bytes(i));
        const expected = [...keys].sort(compareBytes).map(plain);
        expect((await kv.scan({})).map((e) => plain(e.key))).toEqual(expected);
        expect((await kv.scan({ reverse: true })).map((e) => plain(e.key))).toEqual([...expected].reverse());
      });

      it('matches a sorted model over many random keys', async () => {
        const { storage } = await fresh();
        const { kv } = await storage.unit('kv/t1');
        const random = seededRandom(42);
        const model = new Map<string, Uint8Array>();
        const ops = [];
        for (let i = 0; i < 600; i++) {
          const key = new Uint8Array(1 + Math.floor(random() * 6)).map(() => Math.floor(random() * 4) * 0x55);
          ops.push({ type: 'put' as const, key, value: bytes(i & 0xff) });
          model.set(plain(key)!.join(','), key);
        }
        await kv.batch(ops);
        const sorted = [...model.values()].sort(compareBytes).map(plain);
        expect((await kv.scan({})).map((e) => plain(e.key))).toEqual(sorted);
        const lo = bytes(0x55);
        const hi = bytes(0xaa, 0x55);
        const inRange = sorted.filter((k) => compareBytes(bytes(...k!), lo) >= 0 && compareBytes(bytes(...k!), hi) < 0);
        expect((await kv.scan({ start: lo, end: hi })).map((e) => plain(e.key))).toEqual(inRange);
        expect((await kv.scan({ start: lo, end: hi, reverse: true, limit: 5 })).map((e) => plain(e.key))).toEqual(
          [...inRange].reverse().slice(0, 5),
        );
      });

      it('scans by prefix, by range, with limit and in reverse', async () => {
        const { storage } = await fresh();
        const { kv } = await storage.unit('kv/t1');
        for (const k of ['a', 'a\x00', 'ab', 'abc', 'abd', 'ac', 'b', 'b\xff']) await kv.put(text(k), text(k.toUpperCase()));
        await kv.put(bytes(0xff), bytes(1));
        await kv.put(bytes(0xff, 0xff), bytes(2));
        const keys = async (o: Parameters<typeof kv.scan>[0]) => (await kv.scan(o)).map((e) => new TextDecoder().decode(e.key));

        expect(await keys({ prefix: text('ab') })).toEqual(['ab', 'abc', 'abd']);
        expect(await keys({ prefix: text('ab'), reverse: true })).toEqual(['abd', 'abc', 'ab']);
        expect(await keys({ prefix: text('ab'), limit: 2 })).toEqual(['ab', 'abc']);
        expect(await keys({ prefix: text('ab'), reverse: true, limit: 1 })).toEqual(['abd']);
        expect(await keys({ prefix: text('a\x00') })).toEqual(['a\x00']);
        expect(await keys({ prefix: text('zz') })).toEqual([]);
        // A prefix of only 0xFF bytes has no successor key; the scan must still stop at the end.
        expect((await kv.scan({ prefix: bytes(0xff) })).map((e) => plain(e.key))).toEqual([[0xff], [0xff, 0xff]]);
        expect((await kv.scan({ prefix: bytes(0xff), reverse: true })).map((e) => plain(e.key))).toEqual([[0xff, 0xff], [0xff]]);

        expect(await keys({ start: text('ab'), end: text('ac') })).toEqual(['ab', 'abc', 'abd']);
        expect(await keys({ start: text('ab'), end: text('ac'), reverse: true })).toEqual(['abd', 'abc', 'ab']);
        expect(await keys({ start: text('abc'), end: text('abd') })).toEqual(['abc']);
        expect(await keys({ start: text('abd'), end: text('abd') })).toEqual([]);
        expect(await keys({ start: text('b'), end: text('a') })).toEqual([]);
        expect(await keys({ start: text('ac'), limit: 3 })).toEqual(['ac', 'b', 'b\xff']);
        expect(await keys({ end: text('ab') })).toEqual(['a', 'a\x00']);
        expect(await keys({ end: text('ab'), reverse: true, limit: 1 })).toEqual(['a\x00']);
        expect(await keys({ limit: 0 })).toEqual([]);
        expect((await kv.scan({ prefix: text('abc') }))[0]!.value).toEqual(text('ABC'));
      });

      it('enforces the entry and key size limits with TOO_LARGE', async () => {
        const { storage } = await fresh();
        const { kv } = await storage.unit('kv/t1');
        const max = new Uint8Array(MAX_ENTRY_BYTES).fill(7);
        await kv.put(text('max'), max);
        expect((await kv.get(text('max')))!.length).toBe(MAX_ENTRY_BYTES);
        const err = await rejectsWithQuartzError(() => kv.put(text('big'), new Uint8Array(MAX_ENTRY_BYTES + 1)), ErrorCode.TOO_LARGE);
        expect(err.message).toMatch(/blob/);
        expect(await kv.get(text('big'))).toBeUndefined();
        const longKey = new Uint8Array(MAX_KEY_BYTES).fill(0xab);
        await kv.put(longKey, bytes(1));
        expect(plain(await kv.get(longKey))).toEqual([1]);
        await rejectsWithQuartzError(() => kv.put(new Uint8Array(MAX_KEY_BYTES + 1), bytes(1)), ErrorCode.TOO_LARGE);
        await rejectsWithQuartzError(() => kv.batch([{ type: 'put', key: text('x'), value: new Uint8Array(MAX_ENTRY_BYTES + 1) }]), ErrorCode.TOO_LARGE);
      });

      it('rejects malformed input with INVALID_ARGUMENT', async () => {
        const { storage } = await fresh();
        const { kv } = await storage.unit('kv/t1');
        await rejectsWithQuartzError(() => kv.put(new Uint8Array(0), bytes(1)), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => kv.get('a' as unknown as Uint8Array), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => kv.put(text('a'), [1, 2] as unknown as Uint8Array), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => kv.delete(undefined as unknown as Uint8Array), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => kv.scan({ prefix: text('a'), start: text('a') }), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => kv.scan({ limit: -1 }), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => kv.scan({ limit: 1.5 }), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => kv.batch('nope' as unknown as []), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => kv.batch([{ type: 'upsert', key: text('a') } as never]), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => storage.unit(''), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => storage.unit('bad\ud800name'), ErrorCode.INVALID_ARGUMENT);
      });

      it('applies a batch atomically, in order', async () => {
        const { storage } = await fresh();
        const { kv } = await storage.unit('kv/t1');
        await kv.put(text('gone'), bytes(1));
        await kv.batch([
          { type: 'put', key: text('a'), value: bytes(1) },
          { type: 'put', key: text('b'), value: bytes(2) },
          { type: 'delete', key: text('gone') },
          { type: 'put', key: text('b'), value: bytes(3) },
          { type: 'put', key: text('c'), value: bytes(4) },
          { type: 'delete', key: text('c') },
        ]);
        expect((await kv.scan({})).map((e) => [new TextDecoder().decode(e.key), plain(e.value)])).toEqual([
          ['a', [1]],
          ['b', [3]],
        ]);
        // One bad operation anywhere in the batch: nothing is applied.
        await rejectsWithQuartzError(
          () =>
            kv.batch([
              { type: 'put', key: text('x'), value: bytes(1) },
              { type: 'delete', key: text('a') },
              { type: 'put', key: text('y'), value: new Uint8Array(MAX_ENTRY_BYTES + 1) },
            ]),
          ErrorCode.TOO_LARGE,
        );
        expect(await kv.get(text('x'))).toBeUndefined();
        expect(plain(await kv.get(text('a')))).toEqual([1]);
        await kv.batch([]);
      });
    });

    describe('blob store', () => {
      it('puts, reads ranges, heads, replaces and deletes', async () => {
        const { storage } = await fresh();
        const { blobs } = await storage.unit('log/t1/orders/0');
        const body = new Uint8Array(1000).map((_, i) => i & 0xff);
        expect(await blobs.get('seg/1')).toBeUndefined();
        expect(await blobs.head('seg/1')).toBeUndefined();
        await blobs.put('seg/1', body);
        expect(await blobs.head('seg/1')).toEqual({ key: 'seg/1', size: 1000 });
        expect(plain(await blobs.get('seg/1'))).toEqual(plain(body));
        expect(plain(await blobs.get('seg/1', { offset: 10, length: 5 }))).toEqual([10, 11, 12, 13, 14]);
        expect(plain(await blobs.get('seg/1', { offset: 995 }))).toEqual([227, 228, 229, 230, 231]);
        expect(plain(await blobs.get('seg/1', { offset: 998, length: 10 }))).toEqual([230, 231]);
        expect(plain(await blobs.get('seg/1', { offset: 1000 }))).toEqual([]);
        expect(plain(await blobs.get('seg/1', { offset: 5000, length: 3 }))).toEqual([]);
        expect(plain(await blobs.get('seg/1', { offset: 0, length: 0 }))).toEqual([]);
        await blobs.put('seg/1', bytes(9, 9));
        expect(plain(await blobs.get('seg/1'))).toEqual([9, 9]);
        await blobs.put('empty', new Uint8Array(0));
        expect(await blobs.head('empty')).toEqual({ key: 'empty', size: 0 });
        expect(plain(await blobs.get('empty'))).toEqual([]);
        await blobs.delete('seg/1');
        expect(await blobs.get('seg/1')).toBeUndefined();
        await blobs.delete('seg/1');
      });

      it('reads ranges into the caller’s array with readInto, where offered', async () => {
        const { storage } = await fresh();
        const { blobs } = await storage.unit('log/t1/orders/0');
        if (blobs.readInto === undefined) return;
        const body = new Uint8Array(1000).map((_, i) => i & 0xff);
        const into = new Uint8Array(16).fill(0xee);
        expect(await blobs.readInto('seg/1', 0, into)).toBeUndefined();
        await blobs.put('seg/1', body);
        // A view inside a larger array: only its own bytes are written.
        expect(await blobs.readInto('seg/1', 10, into.subarray(4, 9))).toBe(5);
        expect(plain(into.subarray(0, 10))).toEqual([0xee, 0xee, 0xee, 0xee, 10, 11, 12, 13, 14, 0xee]);
        expect(await blobs.readInto('seg/1', 998, into.subarray(0, 10))).toBe(2);
        expect(plain(into.subarray(0, 2))).toEqual([230, 231]);
        expect(await blobs.readInto('seg/1', 1000, into)).toBe(0);
        expect(await blobs.readInto('seg/1', 5000, into)).toBe(0);
        expect(await blobs.readInto('seg/1', 0, new Uint8Array(0))).toBe(0);
        const whole = new Uint8Array(1000);
        expect(await blobs.readInto('seg/1', 0, whole)).toBe(1000);
        expect(plain(whole)).toEqual(plain(body));
        // Replaced and deleted blobs are never read from a kept handle.
        await blobs.put('seg/1', bytes(9, 8, 7));
        expect(await blobs.readInto('seg/1', 1, into.subarray(0, 5))).toBe(2);
        expect(plain(into.subarray(0, 2))).toEqual([8, 7]);
        await blobs.delete('seg/1');
        expect(await blobs.readInto('seg/1', 0, into)).toBeUndefined();
        // Large enough for a home to read it in pieces or off the calling thread.
        const big = new Uint8Array(600 * 1024).map((_, i) => (i * 7) & 0xff);
        await blobs.put('big', big);
        const bigInto = new Uint8Array(big.length - 100);
        expect(await blobs.readInto('big', 100, bigInto)).toBe(bigInto.length);
        expect(bigInto.every((b, i) => b === big[i + 100])).toBe(true);
        await rejectsWithQuartzError(() => blobs.readInto!('big', -1, into), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => blobs.readInto!('big', Number.NaN, into), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => blobs.readInto!('big', 0, [1, 2] as unknown as Uint8Array), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => blobs.readInto!('', 0, into), ErrorCode.INVALID_ARGUMENT);
      });

      it('keeps any well-formed key distinct, and lists in bytewise order', async () => {
        const { storage } = await fresh();
        const { blobs } = await storage.unit('vec/t1/docs');
        const keys = ['a', 'A', 'a/b', 'a/b/c', 'a%2fb', 'a~', '.', '..', 'é', 'e\u0301', '😀', '\uffff', ' ', 'x'.repeat(1000), 'tmp', 'snap/000002', 'snap/000010'];
        for (const [i, k] of keys.entries()) await blobs.put(k, bytes(i));
        for (const [i, k] of keys.entries()) expect(plain(await blobs.get(k)), k).toEqual([i]);
        const byBytes = [...keys].sort((x, y) => compareBytes(text(x), text(y)));
        expect((await blobs.list('')).map((b) => b.key)).toEqual(byBytes);
        expect(await blobs.list('a/')).toEqual([
          { key: 'a/b', size: 1 },
          { key: 'a/b/c', size: 1 },
        ]);
        expect((await blobs.list('snap/')).map((b) => b.key)).toEqual(['snap/000002', 'snap/000010']);
        expect(await blobs.list('nothing')).toEqual([]);
      });

      it('rejects malformed blob input with INVALID_ARGUMENT', async () => {
        const { storage } = await fresh();
        const { blobs } = await storage.unit('vec/t1/docs');
        await blobs.put('k', bytes(1, 2, 3));
        await rejectsWithQuartzError(() => blobs.put('', bytes(1)), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => blobs.put('x'.repeat(1025), bytes(1)), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => blobs.put('k', 'text' as unknown as Uint8Array), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => blobs.get('k', { offset: -1 }), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => blobs.get('k', { offset: 0, length: -2 }), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => blobs.get('k', { offset: Number.NaN }), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => blobs.list(7 as unknown as string), ErrorCode.INVALID_ARGUMENT);
        await rejectsWithQuartzError(() => blobs.head('\udc00'), ErrorCode.INVALID_ARGUMENT);
      });
    });

    describe('units', () => {
      it('isolates units, even when one name prefixes another', async () => {
        const { storage } = await fresh();
        const a = await storage.unit('kv/t1');
        const b = await storage.unit('kv/t10');
        const c = await storage.unit('kv/t1/x');
        await a.kv.put(text('k'), bytes(1));
        await b.kv.put(text('k'), bytes(2));
        await a.blobs.put('blob', bytes(1));
        expect(plain(await a.kv.get(text('k')))).toEqual([1]);
        expect(plain(await b.kv.get(text('k')))).toEqual([2]);
        expect(await c.kv.get(text('k'))).toBeUndefined();
        expect(await c.kv.scan({})).toEqual([]);
        expect((await a.kv.scan({})).length).toBe(1);
        expect((await a.kv.scan({ reverse: true })).length).toBe(1);
        expect(await b.blobs.get('blob')).toBeUndefined();
        expect(await c.blobs.list('')).toEqual([]);
        // The same name opens the same unit.
        expect(plain(await (await storage.unit('kv/t1')).kv.get(text('k')))).toEqual([1]);
      });

      it('lists units by prefix', async () => {
        const { storage } = await fresh();
        if (storage.listUnits === undefined) return;
        for (const n of ['log/t1/orders/0', 'log/t1/orders/1', 'log/t2/x/0', 'kv/t1', 'log/t1/é/0']) await storage.unit(n);
        expect(await storage.listUnits('log/t1/')).toEqual(['log/t1/orders/0', 'log/t1/orders/1', 'log/t1/é/0']);
        expect(await storage.listUnits('nothing/')).toEqual([]);
      });

      it('drops a unit with everything in it, leaving the others', async () => {
        const { storage } = await fresh();
        const doomed = await storage.unit('log/t1/orders/0');
        const kept = await storage.unit('log/t1/orders/1');
        for (let i = 0; i < 50; i++) await doomed.kv.put(bytes(i), bytes(i));
        await doomed.blobs.put('seg/0', bytes(1, 2));
        await kept.kv.put(bytes(1), bytes(1));
        await kept.blobs.put('seg/0', bytes(3));
        await storage.dropUnit('log/t1/orders/0');
        await storage.dropUnit('log/t1/never-existed');
        // Handles to a dropped unit fail loudly rather than writing into the void.
        await rejectsWithQuartzError(() => doomed.kv.get(bytes(1)), ErrorCode.STORAGE_CLOSED);
        await rejectsWithQuartzError(() => doomed.blobs.get('seg/0'), ErrorCode.STORAGE_CLOSED);
        const again = await storage.unit('log/t1/orders/0');
        expect(await again.kv.scan({})).toEqual([]);
        expect(await again.blobs.list('')).toEqual([]);
        expect(plain(await kept.kv.get(bytes(1)))).toEqual([1]);
        expect(plain(await kept.blobs.get('seg/0'))).toEqual([3]);
        if (storage.listUnits !== undefined) expect(await storage.listUnits('log/')).toEqual(['log/t1/orders/0', 'log/t1/orders/1']);
        await storage.dropUnit('log/t1/orders/0');
        if (storage.listUnits !== undefined) expect(await storage.listUnits('log/')).toEqual(['log/t1/orders/1']);
      });

      it('refuses work after close with STORAGE_CLOSED', async () => {
        const { storage } = await fresh();
        const { kv, blobs } = await storage.unit('kv/t1');
        await kv.put(text('a'), bytes(1));
        await storage.close();
        await rejectsWithQuartzError(() => kv.get(text('a')), ErrorCode.STORAGE_CLOSED);
        await rejectsWithQuartzError(() => kv.put(text('a'), bytes(1)), ErrorCode.STORAGE_CLOSED);
        await rejectsWithQuartzError(() => blobs.put('a', bytes(1)), ErrorCode.STORAGE_CLOSED);
        if (blobs.readInto !== undefined) await rejectsWithQuartzError(() => blobs.readInto!('a', 0, new Uint8Array(1)), ErrorCode.STORAGE_CLOSED);
        await rejectsWithQuartzError(() => storage.unit('kv/t2'), ErrorCode.STORAGE_CLOSED);
      });
    });

    // Only adapters whose data outlives close() have this part of the contract.
    if (harness.persistent) describe('persistence', () => {
      it('keeps entries, blobs, units and drops across reopen', async () => {
        const { place, storage } = await fresh();
        const a = await storage.unit('kv/t1');
        await a.kv.put(bytes(0xff, 0x00), text('v1'));
        await a.kv.batch([
          { type: 'put', key: text('b'), value: new Uint8Array(MAX_ENTRY_BYTES).fill(3) },
          { type: 'put', key: text('c'), value: text('v3') },
        ]);
        await a.blobs.put('big/é', new Uint8Array(300_000).fill(5));
        const d = await storage.unit('kv/dropped');
        await d.kv.put(text('x'), bytes(1));
        await storage.dropUnit('kv/dropped');
        await storage.close();

        const again = await place.open();
        open.push(again);
        const a2 = await again.unit('kv/t1');
        expect(plain(await a2.kv.get(bytes(0xff, 0x00)))).toEqual(plain(text('v1')));
        expect((await a2.kv.get(text('b')))!.every((x) => x === 3)).toBe(true);
        expect((await a2.kv.scan({})).map((e) => plain(e.key))).toEqual([plain(text('b')), plain(text('c')), [0xff, 0x00]]);
        expect(await a2.blobs.head('big/é')).toEqual({ key: 'big/é', size: 300_000 });
        expect(plain(await a2.blobs.get('big/é', { offset: 299_999, length: 5 }))).toEqual([5]);
        if (again.listUnits !== undefined) expect(await again.listUnits('kv/')).toEqual(['kv/t1']);
        expect(await (await again.unit('kv/dropped')).kv.scan({})).toEqual([]);
      });
    });
  });
}
