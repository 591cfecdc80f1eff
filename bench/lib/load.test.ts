import { describe, expect, it } from 'vitest';
import { keepInFlight } from './load.js';

describe('keepInFlight', () => {
  it('keeps at most `workers` calls outstanding and stops at the total, rounded up to whole calls', async () => {
    let outstanding = 0;
    let most = 0;
    let calls = 0;
    const sent = await keepInFlight(4, 10_500, 1000, async () => {
      calls++;
      most = Math.max(most, ++outstanding);
      await new Promise((r) => setTimeout(r, 1));
      outstanding--;
    });
    expect(calls).toBe(11);
    expect(sent).toBe(11_000);
    expect(most).toBe(4);
  });
});
