import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../core/random-testing.js';
import { decimal, etagOf } from './kv.js';

describe('decimal', () => {
  it('writes what String() writes for every integer from 0 to 2^53 - 1', () => {
    const edges = [0, 1, 9, 10, 999_999_999, 1e9, 1e9 + 1, 1e9 + 999, 2e9 - 1, 1_796_539_641_777, 1e15, 2 ** 53 - 1];
    const rand = seededRandom(3);
    const random = Array.from({ length: 2000 }, (_, i) => Math.floor(rand() * 10 ** (1 + (i % 16))));
    for (const n of [...edges, ...random]) expect(decimal(n), String(n)).toBe(String(n));
  });

  it('makes the ETag of a version', () => {
    expect(etagOf(1_796_539_000_042)).toBe('"1796539000042"');
  });
});
