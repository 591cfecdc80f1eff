import { describe, expect, it } from 'vitest';
import { OWNER_END, SegmentCache } from './segment-cache.js';

const bytes = (n: number) => new Uint8Array(n);

describe('SegmentCache', () => {
  it('loads once for concurrent readers and serves hits from memory', async () => {
    const cache = new SegmentCache(1000);
    let loads = 0;
    const load = async () => {
      loads++;
      return bytes(100);
    };
    const [a, b] = await Promise.all([cache.get('s1', load, (v) => v.length), cache.get('s1', load, (v) => v.length)]);
    expect(a).toBe(b);
    expect(await cache.get('s1', load, (v) => v.length)).toBe(a);
    expect(loads).toBe(1);
    expect(cache.size).toBe(100);
  });

  it('evicts least-recently-used entries to stay within its byte budget', async () => {
    const cache = new SegmentCache(250);
    const get = (k: string) => cache.get(k, async () => bytes(100), (v) => v.length);
    await get('a');
    await get('b');
    await get('a'); // a is now more recent than b
    await get('c');
    expect(cache.size).toBeLessThanOrEqual(250);
    expect(cache.has('a')).toBe(true);
    expect(cache.has('b')).toBe(false);
    expect(cache.has('c')).toBe(true);
  });

  it('forgets failed loads so the next read retries, and drops by prefix', async () => {
    const cache = new SegmentCache(1000);
    await expect(cache.get('x', async () => Promise.reject(new Error('io')), () => 1)).rejects.toThrow('io');
    expect(cache.has('x')).toBe(false);
    await cache.get('log/a|seg/1', async () => bytes(10), (v) => v.length);
    await cache.get('log/b|seg/1', async () => bytes(10), (v) => v.length);
    cache.dropPrefix('log/a|');
    expect(cache.has('log/a|seg/1')).toBe(false);
    expect(cache.has('log/b|seg/1')).toBe(true);
    expect(cache.size).toBe(10);
  });

  it('offers a value only into free room and looks it up as a hit', async () => {
    const cache = new SegmentCache(1000);
    await cache.get('s1', async () => bytes(700), (v) => v.length);
    expect(cache.lookup('decoded')).toBeUndefined();
    cache.offer('decoded', 'too big', 400);
    expect(cache.has('decoded')).toBe(false);
    expect(cache.has('s1')).toBe(true);
    cache.offer('decoded', 'fits', 300);
    expect(await cache.lookup('decoded')).toBe('fits');
    expect(cache.size).toBe(1000);
    expect(cache.hits).toBe(1);
    expect(cache.misses).toBe(2);
  });

  it("forgets one owner's entries without walking the others' (a topic delete closes 1,024 partitions)", async () => {
    const cache = new SegmentCache(1 << 30);
    // Owners are partition names; a library caller's tenant id may hold '|'.
    const owners = ['log/t1/a/0', 'log/t1/a/1', 'log/t|1/a/0', 'log/t1/a/10'];
    for (const owner of owners) {
      for (let i = 0; i < 50; i++) await cache.get(`${owner}${OWNER_END}seg/${i}`, async () => bytes(10), (v) => v.length);
      cache.offer(`${owner}${OWNER_END}seg/0|@5`, bytes(7), 7);
    }
    await cache.get('no-owner', async () => bytes(3), (v) => v.length);
    const entries = (cache as unknown as { entries: Map<string, unknown> }).entries;
    let walks = 0;
    const iterate = entries[Symbol.iterator].bind(entries);
    const keys = entries.keys.bind(entries);
    entries[Symbol.iterator] = () => (walks++, iterate());
    entries.keys = () => (walks++, keys());

    cache.dropPrefix(`log/t1/a/1${OWNER_END}`);
    cache.dropPrefix(`log/t1/a/0${OWNER_END}seg/0`); // one segment: itself, its ranges ('seg/0|@5') and no other ('seg/00' is not there)
    expect(walks).toBe(0);
    expect(cache.has(`log/t1/a/1${OWNER_END}seg/3`)).toBe(false);
    expect(cache.has(`log/t1/a/10${OWNER_END}seg/3`)).toBe(true);
    expect(cache.has(`log/t1/a/0${OWNER_END}seg/0`)).toBe(false);
    expect(cache.has(`log/t1/a/0${OWNER_END}seg/0|@5`)).toBe(false);
    expect(cache.has(`log/t1/a/0${OWNER_END}seg/1`)).toBe(true);
    expect(cache.has(`log/t|1/a/0${OWNER_END}seg/0|@5`)).toBe(true);
    // 4 owners x (50 x 10 + 7) + 3, less owner a/1 (507) and a/0's seg/0 with its range (17).
    expect(cache.size).toBe(4 * 507 + 3 - 507 - 17);
    cache.dropPrefix('no-'); // no owner in the prefix: the whole cache is walked
    expect(walks).toBe(1);
    expect(cache.has('no-owner')).toBe(false);
  });
});
