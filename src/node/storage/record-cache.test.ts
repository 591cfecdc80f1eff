import { describe, expect, it } from 'vitest';
import { RecordCache } from './record-cache.js';

const record = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

describe('RecordCache', () => {
  it('keeps records within its byte budget, dropping the oldest first', () => {
    const cache = new RecordCache(100, 60);
    cache.add('a', record(40, 1));
    cache.add('b', record(40, 2));
    expect(cache.size).toBe(80);
    cache.get('a'); // a hit does not reorder
    cache.add('c', record(40, 3));
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toEqual(record(40, 2));
    expect(cache.get('c')).toEqual(record(40, 3));
    expect(cache.size).toBe(80);
  });

  it('does not keep records above its record limit', () => {
    const cache = new RecordCache(100, 60);
    cache.add('a', record(61));
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('counts what delete and clear free', () => {
    const cache = new RecordCache(100, 60);
    cache.add('a', record(10));
    cache.add('b', record(20));
    cache.delete('a');
    cache.delete('missing');
    expect(cache.size).toBe(20);
    expect(cache.get('a')).toBeUndefined();
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get('b')).toBeUndefined();
  });
});
