import { describe, expect, it } from 'vitest';
import { median, quantileOfSorted } from './quantiles.js';

describe('quantiles', () => {
  it('takes the sample at floor(q·n): the upper middle for an even count, the largest for p99 of 100', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(3);
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantileOfSorted(hundred, 0.99)).toBe(100);
    expect(quantileOfSorted(hundred, 0.5)).toBe(51);
    expect(quantileOfSorted(hundred, 1)).toBe(100);
  });

  it('sorts numerically and leaves its input as it was', () => {
    const samples = [10, 9, 100, 2];
    expect(median(samples)).toBe(10);
    expect(samples).toEqual([10, 9, 100, 2]);
  });

  it('is NaN for no samples', () => {
    expect(median([])).toBeNaN();
    expect(quantileOfSorted([], 0.99)).toBeNaN();
  });
});
