import { describe, expect, it } from 'vitest';
import { keepTickShape } from './tick-shape.js';

describe('keepTickShape', () => {
  it('keeps one nextTick entry, and the same one on later calls', () => {
    const kept = keepTickShape();
    expect(kept).toHaveProperty('callback');
    expect(kept).toHaveProperty('args');
    expect(keepTickShape()).toBe(kept);
  });
});
