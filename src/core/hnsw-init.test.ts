import { expect, it } from 'vitest';
import { HnswIndex } from './hnsw.js';
import { ErrorCode, QuartzError } from './errors.js';

// A separate file so the core module is never initialised here.
it('HnswIndex needs init() first', () => {
  let caught: unknown;
  try {
    new HnswIndex({ dims: 4, metric: 'l2' });
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(QuartzError);
  expect((caught as QuartzError).code).toBe(ErrorCode.NOT_INITIALIZED);
});
