/**
 * A seeded PRNG for tests and benchmarks, so generated data (vectors, keys, bytes) is the same
 * on every run and a failure reproduces. Platform-free.
 */

/**
 * mulberry32: a small, fast 32-bit PRNG returning floats in [0, 1).
 *
 * @example
 * const random = seededRandom(42);
 * const byte = Math.floor(random() * 256);
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
