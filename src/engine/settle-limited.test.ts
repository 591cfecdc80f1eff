import { describe, expect, it } from 'vitest';
import { settleLimited, valuesOrThrow } from './settle-limited.js';

describe('settleLimited', () => {
  it('keeps at most `limit` tasks in flight, more than one, and answers in input order', async () => {
    let inFlight = 0;
    let most = 0;
    const results = await settleLimited(Array.from({ length: 100 }, (_, i) => i), 8, async (n) => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, n % 3));
      inFlight--;
      return n * 2;
    });
    expect(most).toBe(8);
    expect(valuesOrThrow(results)).toEqual(Array.from({ length: 100 }, (_, i) => i * 2));
  });

  it('settles every task when some fail, and valuesOrThrow throws the first failure', async () => {
    const ran: number[] = [];
    const results = await settleLimited([1, 2, 3, 4], 2, (n) => {
      ran.push(n);
      if (n % 2 === 0) throw new Error(`bad ${n}`);
      return n;
    });
    expect(ran.sort()).toEqual([1, 2, 3, 4]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected']);
    expect(() => valuesOrThrow(results)).toThrow('bad 2');
    expect(await settleLimited([], 4, () => 1)).toEqual([]);
  });
});
