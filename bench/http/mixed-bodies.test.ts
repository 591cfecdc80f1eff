import { describe, expect, it } from 'vitest';
import { OffsetRuns, ProduceBodies } from './mixed-bodies.js';

const stringified = (batch: string, count: number, size: number): string =>
  JSON.stringify({ records: Array.from({ length: count }, (_, i) => ({ value: `${batch}#${i}#`.padEnd(size, '.').slice(0, size) })) });

describe('ProduceBodies', () => {
  it('writes the bytes JSON.stringify gives, batch after batch, ids getting longer and shorter', () => {
    const bodies = new ProduceBodies(100, 100);
    for (const batch of ['b0', 'b9', 'b10', 'b123456', 'b7', 'bench']) {
      expect(bodies.body(batch).toString('latin1')).toBe(stringified(batch, 100, 100));
    }
  });

  it('cuts a prefix longer than the value as padTo does', () => {
    const bodies = new ProduceBodies(3, 4);
    expect(bodies.body('b12345').toString('latin1')).toBe(stringified('b12345', 3, 4));
    expect(JSON.parse(bodies.body('b1').toString('latin1'))).toEqual(JSON.parse(stringified('b1', 3, 4)));
  });
});

describe('OffsetRuns', () => {
  it('reads every offset of each answer into its own run, growing past its first array', () => {
    const runs = new OffsetRuns();
    const answers: number[][] = [];
    for (let a = 0; a < 800; a++) {
      const offsets = Array.from({ length: 100 }, (_, i) => a * 100 + i + (a === 7 ? 1_000_000_000 : 0));
      answers.push(offsets);
      runs.addAnswer(JSON.stringify({ offsets: offsets.map((offset) => ({ partition: 0, offset })) }));
    }
    expect(runs.runs).toBe(800);
    answers.forEach((offsets, a) => expect(Array.from(runs.run(a))).toEqual(offsets));
    expect(runs.max()).toBe(1_000_000_799);
  });

  it('refuses an answer without offsets or with one that is not a number', () => {
    const runs = new OffsetRuns();
    expect(() => runs.addAnswer('{"error":"bad_request","message":"x"}')).toThrow(/without offsets/);
    expect(() => runs.addAnswer('{"offsets":[{"partition":0,"offset":"7"}]}')).toThrow(/not a number/);
  });
});
