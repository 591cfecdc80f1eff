/**
 * Data generators and exact brute-force search shared by the HNSW tests and bench/hnsw.
 * Platform-free so the bench and tests use the same reference.
 */
import type { HnswMetric } from './hnsw.js';
import { seededRandom } from './random-testing.js';

export { seededRandom };

function gaussian(rand: () => number): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** n × dims uniform values in [-1, 1). */
export function uniformVectors(n: number, dims: number, seed: number): Float32Array {
  const rand = seededRandom(seed);
  const out = new Float32Array(n * dims);
  for (let i = 0; i < out.length; i++) out[i] = rand() * 2 - 1;
  return out;
}

/**
 * A Gaussian mixture: `clusters` centres drawn N(0, 1) per dimension, each point a centre plus
 * N(0, spread²) noise. Real embeddings cluster like this, which is harder for a graph than
 * uniform data.
 */
export function clusteredVectors(n: number, dims: number, clusters: number, seed: number, spread = 0.35): Float32Array {
  const rand = seededRandom(seed);
  const centres = new Float32Array(clusters * dims);
  for (let i = 0; i < centres.length; i++) centres[i] = gaussian(rand);
  const out = new Float32Array(n * dims);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(rand() * clusters) * dims;
    for (let j = 0; j < dims; j++) out[i * dims + j] = centres[c + j]! + spread * gaussian(rand);
  }
  return out;
}

/** Distance with "smaller is closer" semantics matching the index's internal order. */
export function distanceFn(metric: HnswMetric, dims: number): (a: Float32Array, ai: number, b: Float32Array, bi: number) => number {
  if (metric === 'l2') {
    return (a, ai, b, bi) => {
      let s = 0;
      for (let j = 0; j < dims; j++) {
        const d = a[ai + j]! - b[bi + j]!;
        s += d * d;
      }
      return s;
    };
  }
  if (metric === 'dot') {
    return (a, ai, b, bi) => {
      let s = 0;
      for (let j = 0; j < dims; j++) s += a[ai + j]! * b[bi + j]!;
      return -s;
    };
  }
  return (a, ai, b, bi) => {
    let s = 0;
    let na = 0;
    let nb = 0;
    for (let j = 0; j < dims; j++) {
      const x = a[ai + j]!;
      const y = b[bi + j]!;
      s += x * y;
      na += x * x;
      nb += y * y;
    }
    return -s / Math.sqrt(na * nb);
  };
}

/**
 * Exact top-k by brute force: for each query, the indices (rows of `data`) of its k nearest,
 * nearest first. `allowed`, when given, restricts the candidates to those rows.
 */
export function bruteForce(data: Float32Array, queries: Float32Array, dims: number, metric: HnswMetric, k: number, allowed?: ArrayLike<number>): Uint32Array[] {
  const dist = distanceFn(metric, dims);
  const n = data.length / dims;
  const rows = allowed ?? Uint32Array.from({ length: n }, (_, i) => i);
  const out: Uint32Array[] = [];
  const bestD = new Float64Array(k);
  const bestI = new Uint32Array(k);
  for (let q = 0; q < queries.length / dims; q++) {
    let len = 0;
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r]!;
      const d = dist(queries, q * dims, data, row * dims);
      if (len === k && d >= bestD[k - 1]!) continue;
      let i = len < k ? len++ : k - 1;
      while (i > 0 && bestD[i - 1]! > d) {
        bestD[i] = bestD[i - 1]!;
        bestI[i] = bestI[i - 1]!;
        i--;
      }
      bestD[i] = d;
      bestI[i] = row;
    }
    out.push(bestI.slice(0, len));
  }
  return out;
}

/** Mean fraction of the true top-k found in each result's first k. */
export function recallAt(k: number, truth: ArrayLike<number>[], found: ArrayLike<number>[]): number {
  let hit = 0;
  let total = 0;
  for (let q = 0; q < truth.length; q++) {
    const t = truth[q]!;
    const want = Math.min(k, t.length);
    const set = new Set(Array.from(t).slice(0, want));
    const f = found[q]!;
    for (let i = 0; i < Math.min(k, f.length); i++) if (set.has(f[i]!)) hit++;
    total += want;
  }
  return total === 0 ? 1 : hit / total;
}
