import { describe, expect, it } from 'vitest';
import { RecordCache } from './record-cache.js';

const record = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

describe('RecordCache', () => {
  it('keeps a copy of each record in its ring, dropping the oldest when the ring is full', () => {
    const cache = new RecordCache(100, 60);
    const u = cache.unit();
    const a = record(40, 1);
    cache.add(u, 'a', a);
    a.fill(9); // the cache took a copy
    cache.add(u, 'b', record(40, 2));
    expect(cache.size).toBe(80);
    expect(cache.get(u, 'a')).toEqual(record(40, 1));
    cache.add(u, 'c', record(40, 3)); // does not fit after b: wraps to 0, over a
    expect(cache.get(u, 'a')).toBeUndefined();
    expect(cache.get(u, 'b')).toEqual(record(40, 2));
    expect(cache.get(u, 'c')).toEqual(record(40, 3));
    cache.add(u, 'd', record(40, 4)); // after c, over b
    expect(cache.get(u, 'b')).toBeUndefined();
    expect(cache.get(u, 'c')).toEqual(record(40, 3));
    expect(cache.get(u, 'd')).toEqual(record(40, 4));
    expect(cache.size).toBe(80);
  });

  it('wraps past a short end without touching newer records', () => {
    const cache = new RecordCache(100, 60);
    const u = cache.unit();
    for (const [k, n] of [['a', 30], ['b', 30], ['c', 30]] as const) cache.add(u, k, record(n, k.charCodeAt(0)));
    cache.add(u, 'd', record(30, 100)); // 90..100 is too short: over a, at 0
    cache.add(u, 'e', record(50, 101)); // over b and c
    expect(['a', 'b', 'c'].map((k) => cache.get(u, k))).toEqual([undefined, undefined, undefined]);
    expect(cache.get(u, 'd')).toEqual(record(30, 100));
    expect(cache.get(u, 'e')).toEqual(record(50, 101));
    cache.add(u, 'f', record(30, 102)); // 80..100 is too short again: over d
    expect(cache.get(u, 'd')).toBeUndefined();
    expect(cache.get(u, 'e')).toEqual(record(50, 101));
    expect(cache.get(u, 'f')).toEqual(record(30, 102));
  });

  it('wrapping again drops what lies past the write position first, then what it overwrites', () => {
    const cache = new RecordCache(100, 60);
    const u = cache.unit();
    cache.add(u, 'a', record(30, 1)); // 0..30
    cache.add(u, 'b', record(30, 2)); // 30..60
    cache.add(u, 'c', record(30, 3)); // 60..90
    cache.add(u, 'd', record(30, 4)); // wraps: 0..30, over a
    cache.add(u, 'e', record(20, 5)); // 30..50, over b
    cache.add(u, 'f', record(60, 6)); // 50..110 does not fit: c (past 50) goes, then d and e (0..60)
    expect(['a', 'b', 'c', 'd', 'e'].map((k) => cache.get(u, k))).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(cache.get(u, 'f')).toEqual(record(60, 6));
    expect(cache.size).toBe(60);
  });

  it('does not keep records above its record limit, nor more records than its count limit', () => {
    const cache = new RecordCache(100, 60, 2);
    const u = cache.unit();
    cache.add(u, 'big', record(61));
    expect(cache.get(u, 'big')).toBeUndefined();
    cache.add(u, 'a', record(1));
    cache.add(u, 'b', record(1));
    cache.add(u, 'c', record(1));
    expect(cache.get(u, 'a')).toBeUndefined();
    expect(cache.size).toBe(2);
  });

  it('keeps an offered record only when its key was offered before', () => {
    const cache = new RecordCache(100, 60);
    const u = cache.unit();
    cache.offer(u, 1, 'a', record(10, 1));
    expect(cache.get(u, 'a')).toBeUndefined();
    cache.offer(u, 1, 'b', record(10, 2));
    cache.offer(u, 1, 'a', record(10, 3));
    expect(cache.get(u, 'a')).toEqual(record(10, 3));
    expect(cache.get(u, 'b')).toBeUndefined();
    cache.offer(u, 1, 'big', record(61));
    cache.offer(u, 1, 'big', record(61));
    expect(cache.get(u, 'big')).toBeUndefined();
  });

  it('forgets deleted and replaced records, and counts what delete and clear free', () => {
    const cache = new RecordCache(100, 60);
    const u = cache.unit();
    cache.add(u, 'a', record(10, 1));
    cache.add(u, 'b', record(20, 2));
    cache.delete(u, 'a');
    cache.delete(u, 'missing');
    expect(cache.size).toBe(20);
    expect(cache.get(u, 'a')).toBeUndefined();
    cache.add(u, 'b', record(5, 3));
    expect(cache.get(u, 'b')).toEqual(record(5, 3));
    expect(cache.size).toBe(5);
    // Deleted and replaced entries' room is reused in turn; dropping the old copy of b keeps the new one.
    for (let i = 0; i < 8; i++) cache.add(u, `x${i}`, record(10, 4));
    expect(cache.get(u, 'b')).toEqual(record(5, 3));
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get(u, 'b')).toBeUndefined();
  });

  it('keeps units apart, and clear forgets every unit', () => {
    const cache = new RecordCache(100, 60);
    const u = cache.unit();
    const v = cache.unit();
    cache.add(u, 'a', record(10, 1));
    expect(cache.get(v, 'a')).toBeUndefined();
    cache.offer(v, 2, 'a', record(10, 2));
    cache.offer(u, 1, 'b', record(10, 3)); // another unit's key of the same name is a different key
    cache.offer(v, 2, 'a', record(10, 2));
    expect(cache.get(u, 'a')).toEqual(record(10, 1));
    expect(cache.get(v, 'a')).toEqual(record(10, 2));
    cache.clear();
    expect(cache.get(u, 'a')).toBeUndefined();
    expect(cache.get(v, 'a')).toBeUndefined();
  });
});
