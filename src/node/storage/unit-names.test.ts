import { describe, expect, it } from 'vitest';
import { compareUtf8 } from '../../ports/storage-checks.js';
import { UnitNames } from './unit-names.js';

describe('UnitNames', () => {
  it('lists exactly the names under a prefix, in UTF-8 order, as names come and go', () => {
    // Names around the prefix's edges and characters whose UTF-16 and UTF-8 orders differ.
    const all = ['log/t1/a/0', 'log/t1/a/1', 'log/t1/a/10', 'log/t1/a/', 'log/t1/a', 'log/t1/ab/0', 'log/t10/a/0', 'log/t1/a/\u{1F600}', 'log/t1/a/\uFF5E', 'log/t0/z', 'kv/t1', 'log/t1/a/0'];
    const names = new UnitNames(all);
    const expected = (prefix: string, set: Set<string>) => [...set].filter((n) => n.startsWith(prefix)).sort(compareUtf8);
    const live = new Set(all);
    for (const prefix of ['log/t1/a/', 'log/t1/', 'log/t1/a', 'log/', '', 'zz', 'log/t1/a/\uFF5E']) expect(names.withPrefix(prefix)).toEqual(expected(prefix, live));
    expect(names.withPrefix('log/t1/a/')).toEqual(['log/t1/a/', 'log/t1/a/0', 'log/t1/a/1', 'log/t1/a/10', 'log/t1/a/\uFF5E', 'log/t1/a/\u{1F600}']);
    names.delete('log/t1/a/1');
    names.delete('not/there');
    names.add('log/t1/a/2');
    names.add('log/t1/a/2');
    live.delete('log/t1/a/1');
    live.add('log/t1/a/2');
    expect(names.size).toBe(live.size);
    for (const prefix of ['log/t1/a/', 'log/t1/', '']) expect(names.withPrefix(prefix)).toEqual(expected(prefix, live));
  });

  it('agrees with a plain filter over thousands of random names', () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    const alphabet = ['a', 'b', '/', '0', '\u00e9', '\uFFFD', '\u{10000}'];
    const word = () => Array.from({ length: 1 + rand(5) }, () => alphabet[rand(alphabet.length)]).join('');
    const live = new Set<string>();
    const names = new UnitNames();
    for (let i = 0; i < 3000; i++) {
      const w = word();
      if (rand(3) === 0) {
        names.delete(w);
        live.delete(w);
      } else {
        names.add(w);
        live.add(w);
      }
    }
    for (let i = 0; i < 200; i++) {
      const prefix = word().slice(0, rand(3));
      expect(names.withPrefix(prefix)).toEqual([...live].filter((n) => n.startsWith(prefix)).sort(compareUtf8));
    }
  });
});
