import { describe, expect, it } from 'vitest';
import { MemoryBucketStore, takeToken } from './rate-limit.js';

describe('takeToken', () => {
  it('allows capacity requests at once, then refuses with Retry-After until a token refills', () => {
    const state = { tokens: 100, at: 0 };
    for (let i = 0; i < 100; i++) expect(takeToken(state, 100, 0).allowed).toBe(true);
    const refused = takeToken(state, 100, 0);
    expect(refused).toMatchObject({ allowed: false, limit: 100, remaining: 0, retryAfterSeconds: 1, resetSeconds: 60 });
    // 100/min is one token per 600 ms.
    expect(takeToken(state, 100, 599).allowed).toBe(false);
    expect(takeToken(state, 100, 600).allowed).toBe(true);
  });

  it('reports remaining and seconds until full', () => {
    const state = { tokens: 10, at: 0 };
    const r = takeToken(state, 10, 0);
    expect(r).toMatchObject({ allowed: true, remaining: 9, resetSeconds: 6, retryAfterSeconds: 0 });
    expect(takeToken(state, 10, 60_000)).toMatchObject({ remaining: 9, resetSeconds: 6 });
  });

  it('a lowered capacity caps what the bucket holds; time going backwards refills nothing', () => {
    const state = { tokens: 10_000, at: 1000 };
    expect(takeToken(state, 100, 1000).remaining).toBe(99);
    expect(takeToken(state, 100, 0).remaining).toBe(98);
  });
});

describe('MemoryBucketStore', () => {
  it('keeps one bucket per key', () => {
    const store = new MemoryBucketStore();
    expect(store.take('a', 1, 0).allowed).toBe(true);
    expect(store.take('a', 1, 0).allowed).toBe(false);
    expect(store.take('b', 1, 0).allowed).toBe(true);
    expect(store.size).toBe(2);
  });

  it('stays bounded: full buckets are forgotten first, else the oldest', () => {
    const store = new MemoryBucketStore(3);
    store.take('a', 60, 0);
    store.take('b', 60, 0);
    store.take('c', 60, 0);
    // At t=1s 'a', 'b', 'c' have refilled (one token per second): all three can go.
    store.take('d', 60, 1000);
    expect(store.size).toBe(1);
    store.take('e', 60, 1000);
    store.take('f', 60, 1000);
    store.take('g', 60, 1000);
    expect(store.size).toBe(3);
  });
});
