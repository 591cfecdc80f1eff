import { describe, expect, it } from 'vitest';
import { HotValues, MAX_HOT_VALUE_BYTES } from './hot-values.js';
import type { KvEntry } from './kv-store.js';

function entryOf(hot: HotValues, size: number, fill: number): KvEntry {
  const value = hot.alloc(size);
  value.fill(fill);
  return { value, contentType: 'application/octet-stream', version: fill, expiresAt: null, size };
}

describe('HotValues', () => {
  it('keeps entries per store and forgets them one by one or all at once', () => {
    const hot = new HotValues(1 << 20);
    const a = hot.unit();
    const b = hot.unit();
    const one = entryOf(hot, 10, 1);
    hot.keep(a, 'k', one);
    hot.keep(b, 'k', entryOf(hot, 10, 2));
    expect(hot.get(a, 'k')).toBe(one);
    expect(hot.get(b, 'k')?.version).toBe(2);
    hot.forget(a, 'k');
    expect(hot.get(a, 'k')).toBeUndefined();
    expect(hot.get(b, 'k')?.version).toBe(2);
    hot.forgetAll(b);
    expect(hot.get(b, 'k')).toBeUndefined();
  });

  it('stays within its byte budget, oldest out first, counting forgotten entries until they leave', () => {
    const hot = new HotValues(3000);
    const unit = hot.unit();
    for (let i = 0; i < 10; i++) {
      hot.keep(unit, `k${i}`, entryOf(hot, 1000, i));
      expect(hot.size).toBeLessThanOrEqual(3000);
    }
    expect([...Array(10).keys()].filter((i) => hot.get(unit, `k${i}`) !== undefined)).toEqual([7, 8, 9]);
    // A forgotten entry's room is counted until it leaves the queue: replacing k9 pushes k7 out.
    hot.keep(unit, 'k9', entryOf(hot, 1000, 99));
    expect(hot.get(unit, 'k7')).toBeUndefined();
    expect(hot.get(unit, 'k9')?.version).toBe(99);
  });

  it('keeps no value above its size limit or its budget', () => {
    const hot = new HotValues(1 << 20);
    const unit = hot.unit();
    expect(hot.fits(MAX_HOT_VALUE_BYTES + 1)).toBe(false);
    hot.keep(unit, 'big', { value: new Uint8Array(MAX_HOT_VALUE_BYTES + 1), contentType: 'x', version: 1, expiresAt: null, size: MAX_HOT_VALUE_BYTES + 1 });
    expect(hot.get(unit, 'big')).toBeUndefined();
    const small = new HotValues(100);
    expect(small.fits(101)).toBe(false);
    expect(small.fits(100)).toBe(true);
    expect(small.alloc(100).length).toBe(100);
  });
});
