import { describe, expect, it } from 'vitest';
import { SegmentCache } from './segment-cache.js';

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
});
