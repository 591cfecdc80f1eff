import { beforeAll, describe, expect, it } from 'vitest';
import { init, HnswIndex, ErrorCode, QuartzError, crc32c } from '../node/core.js';
import { HNSW_FILTER_COST_FACTOR, type HnswMetric } from './hnsw.js';
import { bruteForce, clusteredVectors, recallAt, seededRandom, uniformVectors } from './hnsw-testing.js';
import { expectQuartzError } from '../../tests/fixtures/expect-error.js';

beforeAll(async () => {
  await init();
});

function rows(n: number, offset = 0): Uint32Array {
  return Uint32Array.from({ length: n }, (_, i) => i + offset);
}

function searchAll(index: HnswIndex, queries: Float32Array, dims: number, k: number, ef: number, filter?: Uint32Array): Uint32Array[] {
  const out: Uint32Array[] = [];
  for (let q = 0; q < queries.length / dims; q++) out.push(index.search(queries.subarray(q * dims, (q + 1) * dims), k, { ef, filter }).ids);
  return out;
}

// Element-wise toEqual on megabyte arrays is slow; compare bytes directly.
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

describe('HnswIndex recall against brute force', () => {
  // n, dims, data kind, metric, ef, recall floor
  // Floors sit a little under what native hnswlib reaches on the same data and parameters
  // (clustered 64-d cosine: 0.964 at ef 128; clustered 128-d dot: 0.78; 37-d l2: 0.978), since
  // these small Gaussian mixtures have a high intrinsic dimension.
  const settings: [number, number, 'uniform' | 'clustered', HnswMetric, number, number][] = [
    [3000, 16, 'uniform', 'l2', 64, 0.95],
    [3000, 64, 'clustered', 'cosine', 128, 0.94],
    [3000, 37, 'clustered', 'l2', 128, 0.96],
    [3000, 32, 'uniform', 'dot', 64, 0.85],
    [2000, 128, 'clustered', 'dot', 128, 0.74],
  ];
  for (const [n, dims, kind, metric, ef, floor] of settings) {
    it(`${kind} ${n}×${dims} ${metric}: recall@10 ≥ ${floor} at ef ${ef}`, () => {
      const data = kind === 'uniform' ? uniformVectors(n, dims, 1) : clusteredVectors(n, dims, 20, 1);
      const queries = kind === 'uniform' ? uniformVectors(100, dims, 2) : clusteredVectors(100, dims, 20, 1 + 1000, 0.35);
      const index = new HnswIndex({ dims, metric, M: 12, efConstruction: 100 });
      // These measure the graph: keep the planner from scanning small indexes exactly.
      index.setFilterCostFactor(0);
      index.addBatch(rows(n), data);
      expect(index.size).toBe(n);
      const truth = bruteForce(data, queries, dims, metric, 10);
      const found = searchAll(index, queries, dims, 10, ef);
      expect(recallAt(10, truth, found)).toBeGreaterThanOrEqual(floor);
      // Batch search returns the same as one-by-one.
      const batch = index.searchBatch(queries, 10, { ef });
      expect(batch.map((r) => Array.from(r.ids))).toEqual(found.map((r) => Array.from(r)));
      index.dispose();
    });
  }

  it('scores are similarity for cosine and dot, squared distance for l2, best first', () => {
    const dims = 8;
    const data = uniformVectors(300, dims, 5);
    const q = uniformVectors(1, dims, 6);
    for (const metric of ['cosine', 'dot', 'l2'] as const) {
      const index = new HnswIndex({ dims, metric });
      index.addBatch(rows(300), data);
      const { ids, scores } = index.search(q, 5, { ef: 300 });
      const truth = bruteForce(data, q, dims, metric, 5)[0]!;
      expect(Array.from(ids)).toEqual(Array.from(truth));
      for (let i = 0; i < ids.length; i++) {
        const v = data.subarray(ids[i]! * dims, (ids[i]! + 1) * dims);
        let dot = 0, nq = 0, nv = 0, l2 = 0;
        for (let j = 0; j < dims; j++) {
          dot += q[j]! * v[j]!;
          nq += q[j]! * q[j]!;
          nv += v[j]! * v[j]!;
          l2 += (q[j]! - v[j]!) ** 2;
        }
        const expected = metric === 'cosine' ? dot / Math.sqrt(nq * nv) : metric === 'dot' ? dot : l2;
        expect(scores[i]).toBeCloseTo(expected, 4);
        if (i > 0) expect(metric === 'l2' ? scores[i]! >= scores[i - 1]! : scores[i]! <= scores[i - 1]!).toBe(true);
      }
    }
  });

  it('scans small unfiltered indexes exactly (size ≤ factor × ef) and walks the graph above that', () => {
    const dims = 16;
    const n = 1200;
    const data = clusteredVectors(n, dims, 10, 7);
    const queries = clusteredVectors(40, dims, 10, 8, 0.35);
    const index = new HnswIndex({ dims, metric: 'cosine', M: 8, efConstruction: 40 });
    index.addBatch(rows(n), data);
    const truth = bruteForce(data, queries, dims, 'cosine', 10);
    const run = (ef: number): Uint32Array[] => searchAll(index, queries, dims, 10, ef);
    // 1,200 ≤ 16 × 80: exact scan, exact results, one distance per vector.
    index.takeDistanceCount();
    const exact = run(80);
    expect(index.lastSearchPlan).toBe('exact');
    expect(index.takeDistanceCount()).toBe(40 * n);
    expect(recallAt(10, truth, exact)).toBe(1);
    // 1,200 > 16 × 64: the graph walk.
    run(64);
    expect(index.lastSearchPlan).toBe('graph');
    // Deleted vectors never come back from the scan, and it still returns k.
    for (let id = 0; id < n; id += 2) index.delete(id);
    for (const ids of run(80)) {
      expect(ids.length).toBe(10);
      for (const id of ids) expect(id % 2).toBe(1);
    }
    expect(index.lastSearchPlan).toBe('exact');
    // Factor 0 always walks, unless there are no more than k vectors.
    index.setFilterCostFactor(0);
    run(80);
    expect(index.lastSearchPlan).toBe('graph');
    index.dispose();
  });
});

/**
 * The score the core's kernels give, step by step in f32 as they take them (four lanes; 16 floats
 * per turn into two sums; a tail of 4 into the first; lanes added left to right), so a test can
 * check scores bit for bit. `v` is the stored vector (unit length for cosine, see getVector).
 */
function kernelScore(metric: HnswMetric, query: Float32Array, v: Float32Array): number {
  const f = Math.fround;
  const padded = (query.length + 3) & ~3;
  let q = Float32Array.from({ length: padded }, (_, j) => query[j] ?? 0);
  if (metric === 'cosine') {
    // The core normalises in f64 (so subnormal and huge components keep their direction).
    let n = 0;
    for (const x of query) n += x * x;
    const inv = 1 / Math.sqrt(n);
    q = q.map((x) => f(x * inv));
  }
  const term = (j: number): number => (metric === 'l2' ? f(f(q[j]! - (v[j] ?? 0)) * f(q[j]! - (v[j] ?? 0))) : f(q[j]! * (v[j] ?? 0)));
  const s0 = [0, 0, 0, 0];
  const s1 = [0, 0, 0, 0];
  const end16 = padded & ~15;
  for (let i = 0; i < end16; i += 16) {
    for (let l = 0; l < 4; l++) {
      s0[l] = f(s0[l]! + f(term(i + l) + term(i + 4 + l)));
      s1[l] = f(s1[l]! + f(term(i + 8 + l) + term(i + 12 + l)));
    }
  }
  for (let i = end16; i < padded; i += 4) for (let l = 0; l < 4; l++) s0[l] = f(s0[l]! + term(i + l));
  const t = s0.map((x, l) => f(x + s1[l]!));
  const sum = f(f(f(t[0]! + t[1]!) + t[2]!) + t[3]!);
  return metric === 'l2' ? sum : f(1 - f(1 - sum));
}

describe('HnswIndex exact scan', () => {
  // Dimensions with and without a 16-float tail; odd and even counts; holes from deletes; filters.
  for (const dims of [3, 20, 128]) {
    for (const metric of ['cosine', 'l2', 'dot'] as const) {
      it(`scores ${dims}-d ${metric} bit for bit as the kernel computes them, best first`, () => {
        const n = 101;
        const index = new HnswIndex({ dims, metric });
        index.addBatch(rows(n), uniformVectors(n, dims, dims));
        for (const id of [0, 7, 8, 50, 100]) index.delete(id);
        const queries = uniformVectors(5, dims, dims + 1);
        const stored = new Map<number, Float32Array>();
        for (let id = 0; id < n; id++) {
          const v = index.getVector(id);
          if (v !== undefined) stored.set(id, v);
        }
        for (const filter of [undefined, Uint32Array.from(rows(n).filter((id) => id % 3 !== 1))]) {
          for (let qi = 0; qi < 5; qi++) {
            const q = queries.subarray(qi * dims, (qi + 1) * dims);
            const { ids, scores } = index.search(q, 15, { ef: 64, filter });
            expect(index.lastSearchPlan).toBe('exact');
            const expected = [...stored]
              .filter(([id]) => filter === undefined || filter.includes(id))
              .map(([id, v]) => ({ id, score: kernelScore(metric, q, v) }))
              .sort((a, b) => (metric === 'l2' ? a.score - b.score : b.score - a.score))
              .slice(0, 15);
            expect(Array.from(ids)).toEqual(expected.map((e) => e.id));
            expect(Array.from(scores)).toEqual(expected.map((e) => e.score));
          }
        }
        index.dispose();
      });
    }
  }
});

describe('HnswIndex delete and upsert', () => {
  const dims = 24;
  const n = 3000;
  const data = clusteredVectors(n, dims, 15, 11);
  const queries = clusteredVectors(100, dims, 15, 12);

  it('a deleted id never returns; recall holds after deleting 30% and re-inserting', () => {
    const index = new HnswIndex({ dims, metric: 'l2', M: 12, efConstruction: 100 });
    index.addBatch(rows(n), data);
    const truth = bruteForce(data, queries, dims, 'l2', 10);
    const before = recallAt(10, truth, searchAll(index, queries, dims, 10, 64));
    const rand = seededRandom(3);
    const gone = new Set<number>();
    while (gone.size < n * 0.3) gone.add(Math.floor(rand() * n));
    for (const id of gone) expect(index.delete(id)).toBe(true);
    expect(index.delete([...gone][0]!)).toBe(false);
    expect(index.size).toBe(n - gone.size);
    for (const id of gone) expect(index.has(id)).toBe(false);

    const keep = Uint32Array.from(rows(n).filter((i) => !gone.has(i)));
    const truthAfterDelete = bruteForce(data, queries, dims, 'l2', 10, keep);
    const found = searchAll(index, queries, dims, 10, 64);
    for (const r of found) for (const id of r) expect(gone.has(id)).toBe(false);
    expect(recallAt(10, truthAfterDelete, found)).toBeGreaterThanOrEqual(before - 0.02);

    // Re-insert the deleted ids: their slots are reused and their neighbours repaired.
    const back = Uint32Array.from(gone);
    const backVectors = new Float32Array(back.length * dims);
    back.forEach((id, i) => backVectors.set(data.subarray(id * dims, (id + 1) * dims), i * dims));
    index.addBatch(back, backVectors);
    expect(index.size).toBe(n);
    expect(before).toBeGreaterThanOrEqual(0.9);
    expect(recallAt(10, truth, searchAll(index, queries, dims, 10, 64))).toBeGreaterThanOrEqual(before - 0.03);
  });

  it('an upsert replaces the vector of an existing id', () => {
    const index = new HnswIndex({ dims, metric: 'cosine', M: 8, efConstruction: 64 });
    index.addBatch(rows(500), data.subarray(0, 500 * dims));
    const target = data.subarray(900 * dims, 901 * dims);
    index.add(42, target);
    expect(index.size).toBe(500);
    const { ids, scores } = index.search(target, 1);
    expect(ids[0]).toBe(42);
    expect(scores[0]).toBeCloseTo(1, 5);
    // The old vector of 42 is gone: searching for it no longer finds 42 first.
    const old = index.search(data.subarray(42 * dims, 43 * dims), 3, { ef: 200 });
    expect(Array.from(old.ids)).not.toContain(42);
    const stored = index.getVector(42)!;
    let norm = 0;
    for (const x of stored) norm += x * x;
    expect(norm).toBeCloseTo(1, 5);
  });

  it('keeps working through many delete and re-insert rounds, including the entry point', () => {
    const index = new HnswIndex({ dims, metric: 'l2', M: 8, efConstruction: 64 });
    // Walk the graph (800 vectors would otherwise be scanned exactly), so broken links show.
    index.setFilterCostFactor(0);
    const m = 800;
    index.addBatch(rows(m), data.subarray(0, m * dims));
    const rand = seededRandom(9);
    for (let round = 0; round < 6; round++) {
      const ids = new Set<number>();
      while (ids.size < 200) ids.add(Math.floor(rand() * m));
      for (const id of ids) index.delete(id);
      // Fresh vectors elsewhere in space, so every re-inserted node moves.
      index.addBatch(Uint32Array.from(ids), clusteredVectors(ids.size, dims, 15, 100 + round));
      expect(index.size).toBe(m);
    }
    // Every id is still findable by its own (current) vector.
    let hits = 0;
    for (let id = 0; id < m; id++) if (index.search(index.getVector(id)!, 1, { ef: 64 }).ids[0] === id) hits++;
    expect(hits / m).toBeGreaterThanOrEqual(0.97);
    // Deleting everything leaves an empty, usable index.
    for (let id = 0; id < m; id++) index.delete(id);
    expect(index.size).toBe(0);
    expect(index.search(data.subarray(0, dims), 5).ids.length).toBe(0);
    index.add(7, data.subarray(0, dims));
    expect(Array.from(index.search(data.subarray(0, dims), 5).ids)).toEqual([7]);
  });
});

describe('HnswIndex filtered search', () => {
  const dims = 32;
  const n = 4000;
  const data = clusteredVectors(n, dims, 20, 21);
  const queries = clusteredVectors(50, dims, 20, 22);
  let index: HnswIndex;
  let unfilteredRecall = 0;
  beforeAll(() => {
    index = new HnswIndex({ dims, metric: 'cosine', M: 12, efConstruction: 100 });
    index.addBatch(rows(n), data);
    unfilteredRecall = recallAt(10, bruteForce(data, queries, dims, 'cosine', 10), searchAll(index, queries, dims, 10, 32));
    expect(unfilteredRecall).toBeGreaterThanOrEqual(0.75);
  });

  for (const selectivity of [0.5, 0.1, 0.02, 0.002]) {
    for (const plan of ['default', 'graph'] as const) {
      it(`honours a ${selectivity * 100}% allow-set exactly and returns k whenever k exist (${plan} plan)`, () => {
        const rand = seededRandom(Math.round(selectivity * 1000));
        const allowed = Uint32Array.from(rows(n).filter(() => rand() < selectivity));
        const allowedSet = new Set(allowed);
        const truth = bruteForce(data, queries, dims, 'cosine', 10, allowed);
        // The default rule: exact when allowed² ≤ factor × ef × size; factor 0 forces the walk.
        index.setFilterCostFactor(plan === 'graph' ? 0 : HNSW_FILTER_COST_FACTOR);
        const ef = 32;
        // With no more allowed ids than k, scanning them is always the plan.
        const exact = allowed.length <= 10 || (plan === 'default' && allowed.length ** 2 <= HNSW_FILTER_COST_FACTOR * ef * index.size);
        const found: Uint32Array[] = [];
        const plans = new Set<string>();
        for (let q = 0; q < 50; q++) {
          const r = index.search(queries.subarray(q * dims, (q + 1) * dims), 10, { ef, filter: allowed });
          plans.add(index.lastSearchPlan);
          expect(r.ids.length).toBe(Math.min(10, allowed.length));
          for (const id of r.ids) expect(allowedSet.has(id)).toBe(true);
          found.push(r.ids);
        }
        index.setFilterCostFactor(HNSW_FILTER_COST_FACTOR);
        if (exact) {
          expect([...plans]).toEqual(['exact']);
          expect(recallAt(10, truth, found)).toBe(1);
        } else {
          expect(plans.has('exact')).toBe(false);
          // The walk (with its exact fallback) is at least as good as an unfiltered walk.
          expect(recallAt(10, truth, found)).toBeGreaterThanOrEqual(unfilteredRecall - 0.03);
        }
      });
    }
  }

  it('ignores unknown and deleted ids in the allow-set', () => {
    const allowed = Uint32Array.of(1, 2, 3, 999_999, 5);
    index.delete(5);
    const r = index.search(queries.subarray(0, dims), 10, { filter: allowed });
    expect(Array.from(r.ids).sort()).toEqual([1, 2, 3]);
    expect(index.search(queries.subarray(0, dims), 10, { filter: new Uint32Array(0) }).ids.length).toBe(0);
    // A later unfiltered search is not filtered.
    expect(index.search(queries.subarray(0, dims), 10).ids.length).toBe(10);
    index.add(5, data.subarray(5 * dims, 6 * dims));
  });

  it('filters batch searches too', () => {
    const allowed = Uint32Array.from(rows(n).filter((i) => i % 7 === 0));
    const truth = bruteForce(data, queries, dims, 'cosine', 10, allowed);
    const found = index.searchBatch(queries, 10, { ef: 64, filter: allowed }).map((r) => r.ids);
    for (const r of found) for (const id of r) expect(id % 7).toBe(0);
    expect(recallAt(10, truth, found)).toBeGreaterThanOrEqual(0.93);
  });
});

describe('HnswIndex snapshots', () => {
  const dims = 20;
  const data = clusteredVectors(1500, dims, 10, 31);
  const queries = clusteredVectors(30, dims, 10, 32);

  function build(): HnswIndex {
    const index = new HnswIndex({ dims, metric: 'dot', M: 10, efConstruction: 80, seed: 5 });
    index.addBatch(rows(1500), data);
    for (let id = 0; id < 1500; id += 5) index.delete(id);
    return index;
  }

  it('serialize → deserialize gives identical results and keeps working', () => {
    const index = build();
    const bytes = index.serialize();
    const copy = HnswIndex.deserialize(bytes);
    expect(copy.size).toBe(index.size);
    expect(copy.dims).toBe(dims);
    expect(copy.metric).toBe('dot');
    expect(copy.M).toBe(10);
    for (let q = 0; q < 30; q++) {
      const qv = queries.subarray(q * dims, (q + 1) * dims);
      const a = index.search(qv, 10, { ef: 40 });
      const b = copy.search(qv, 10, { ef: 40 });
      expect(Array.from(b.ids)).toEqual(Array.from(a.ids));
      expect(Array.from(b.scores)).toEqual(Array.from(a.scores));
    }
    // Both keep evolving the same way (free slots and the level generator are in the snapshot).
    index.add(3000, data.subarray(0, dims));
    copy.add(3000, data.subarray(0, dims));
    index.add(3001, data.subarray(dims, 2 * dims));
    copy.add(3001, data.subarray(dims, 2 * dims));
    expect(sameBytes(copy.serialize(), index.serialize())).toBe(true);
    expect(copy.getVector(3001)).toEqual(index.getVector(3001));
  });

  it('streams large snapshots in parts, without doubling the loaded index memory', () => {
    const big = 3000;
    const bigDims = 96;
    const bigData = uniformVectors(big, bigDims, 33);
    const index = new HnswIndex({ dims: bigDims, metric: 'l2', M: 8, efConstruction: 40 });
    index.addBatch(rows(big), bigData);
    const bytes = index.serialize();
    expect(bytes.length).toBeGreaterThan(4 * (256 << 10));
    const copy = HnswIndex.deserialize(bytes);
    expect(sameBytes(copy.serialize(), bytes)).toBe(true);
    for (let q = 0; q < 20; q++) {
      const qv = bigData.subarray(q * 97 * bigDims, (q * 97 + 1) * bigDims);
      expect(Array.from(copy.search(qv, 5).ids)).toEqual(Array.from(index.search(qv, 5).ids));
    }
    // Loading did not need room for the whole snapshot beside the index.
    expect(copy.memoryBytes).toBeLessThanOrEqual(index.memoryBytes);
  });

  it('an empty index round-trips', () => {
    const empty = new HnswIndex({ dims: 3, metric: 'l2' });
    const copy = HnswIndex.deserialize(empty.serialize());
    expect(copy.size).toBe(0);
    copy.add(1, [1, 2, 3]);
    expect(Array.from(copy.search([1, 2, 3], 1).ids)).toEqual([1]);
  });

  it('renormalise rewrites cosine unit vectors from original values in place, skipping absent ids and leaving other metrics alone', () => {
    const index = new HnswIndex({ dims: 2, metric: 'cosine' });
    index.addBatch(Uint32Array.of(1, 2, 3), new Float32Array([1, 0, 0, 1, 1, 1]));
    // As if an older build had stored other unit vectors: they are taken from these values now.
    expect(index.renormalise(Uint32Array.of(1, 9, 3), new Float32Array([0, 5, 1, 1, 3e38, 3e38]))).toBe(2);
    expect(Array.from(index.getVector(1)!)).toEqual([0, 1]);
    expect(Array.from(index.getVector(3)!)).toEqual([Math.fround(Math.SQRT1_2), Math.fround(Math.SQRT1_2)]);
    expect(index.size).toBe(3);
    expectQuartzError(() => index.renormalise(Uint32Array.of(1, 2), new Float32Array([1, 1, 0, 0])), 'invalid_argument', /vector for id 2 is all zeros/);
    expectQuartzError(() => index.renormalise(Uint32Array.of(1), new Float32Array([NaN, 1])), 'invalid_argument', /vector for id 1 has a non-finite value/);
    expectQuartzError(() => index.renormalise(Uint32Array.of(1), new Float32Array([1])), 'invalid_argument', /got 1 floats for 1 ids of 2 dimensions/);
    const l2 = new HnswIndex({ dims: 2, metric: 'l2' });
    l2.add(1, [3, 4]);
    expect(l2.renormalise(Uint32Array.of(1), new Float32Array([6, 8]))).toBe(0);
    expect(Array.from(l2.getVector(1)!)).toEqual([3, 4]);
  });

  it('refuses corrupt snapshots with a QuartzError', () => {
    const bytes = build().serialize();
    const flipped = bytes.slice();
    flipped[200] ^= 0x40;
    expectQuartzError(() => HnswIndex.deserialize(flipped), ErrorCode.CHECKSUM_MISMATCH);
    expectQuartzError(() => HnswIndex.deserialize(bytes.subarray(0, 30)), ErrorCode.CORRUPT_DATA, /too short/);
    expectQuartzError(() => HnswIndex.deserialize(bytes.subarray(0, bytes.length - 100)), ErrorCode.CHECKSUM_MISMATCH);
    const magic = bytes.slice();
    magic[0] = 0;
    expectQuartzError(() => HnswIndex.deserialize(magic), ErrorCode.UNSUPPORTED_FORMAT, /magic/);
    const version = bytes.slice();
    version[4] = 9;
    expectQuartzError(() => HnswIndex.deserialize(version), ErrorCode.UNSUPPORTED_FORMAT);

    // Forged snapshots with a valid checksum are caught by the structural checks.
    const reseal = (b: Uint8Array) => {
      new DataView(b.buffer, b.byteOffset).setUint32(b.length - 4, crc32c(b.subarray(0, b.length - 4)), true);
      return b;
    };
    const badLink = bytes.slice();
    // First node: label(4) level(2) flags(2) count(4) then its first link.
    new DataView(badLink.buffer).setUint32(48 + 12, 1_000_000, true);
    expectQuartzError(() => HnswIndex.deserialize(reseal(badLink)), ErrorCode.CORRUPT_DATA, /missing node/);
    const badDims = bytes.slice();
    new DataView(badDims.buffer).setUint32(8, 0, true);
    expectQuartzError(() => HnswIndex.deserialize(reseal(badDims)), ErrorCode.CORRUPT_DATA);
    const badCount = bytes.slice();
    new DataView(badCount.buffer).setUint32(20, 0x7fffffff, true);
    expectQuartzError(() => HnswIndex.deserialize(reseal(badCount)), ErrorCode.CORRUPT_DATA);
    // Cut inside a node record, resealed: the reader sees a truncated record, not a crash.
    const cut = reseal(bytes.slice(0, 48 + 30 + 4));
    expectQuartzError(() => HnswIndex.deserialize(cut), ErrorCode.CORRUPT_DATA);
    const extra = new Uint8Array(bytes.length + 4);
    extra.set(bytes.subarray(0, bytes.length - 4));
    expectQuartzError(() => HnswIndex.deserialize(reseal(extra)), ErrorCode.CORRUPT_DATA, /trailing|counts|free list/);
    const rand = seededRandom(77);
    for (let trial = 0; trial < 30; trial++) {
      const junk = bytes.slice();
      const at = 48 + Math.floor(rand() * (junk.length - 52));
      junk[at] = Math.floor(rand() * 256);
      junk[at + 1] ^= 0xff;
      try {
        const loaded = HnswIndex.deserialize(reseal(junk));
        // A change that keeps the structure valid (a vector value, say) must still search safely.
        loaded.search(queries.subarray(0, dims), 10);
      } catch (err) {
        expect(err).toBeInstanceOf(QuartzError);
        expect([ErrorCode.CORRUPT_DATA]).toContain((err as QuartzError).code);
      }
    }
  });
});

describe('HnswIndex memory of small indexes', () => {
  // Servers hold thousands of small collections, one index (and wasm memory) each.
  it('a hundred vectors cost a few wasm pages, not a 1,024-node chunk and a 256 KiB snapshot buffer', () => {
    const dims = 32;
    const data = uniformVectors(100, dims, 5);
    const index = new HnswIndex({ dims, metric: 'cosine' });
    index.addBatch(rows(100), data);
    const bytes = index.serialize();
    const copy = HnswIndex.deserialize(bytes);
    // Was 896 KiB and 448 KiB; 2 of the 4 pages are the module's initial memory.
    expect(index.memoryBytes).toBeLessThanOrEqual(256 << 10);
    expect(copy.memoryBytes).toBeLessThanOrEqual(256 << 10);
    expect(sameBytes(copy.serialize(), bytes)).toBe(true);
  });

  it('a larger index takes no more wasm memory than whole chunks from the start did', () => {
    const index = new HnswIndex({ dims: 128, metric: 'l2', M: 16, efConstruction: 40 });
    index.addBatch(rows(5000), uniformVectors(5000, 128, 3));
    // 4.5 MiB with 1,024-node chunks throughout; first-chunk copies left by growing 32, 64, ...
    // 1,024 made the allocator grow to 7 MiB.
    expect(index.memoryBytes).toBeLessThanOrEqual(4.5 * 2 ** 20);
  });

  it('the first chunk grows by copying, with deletes and reused slots, and answers as before', () => {
    const dims = 8;
    const n = 2500; // crosses 32, 128, 1,024 and into a second and third chunk
    const data = uniformVectors(n, dims, 9);
    const index = new HnswIndex({ dims, metric: 'l2', M: 8, efConstruction: 64 });
    for (let from = 0; from < n; from += 37) {
      const to = Math.min(n, from + 37);
      index.addBatch(rows(to - from, from), data.subarray(from * dims, to * dims));
      if (from % 5 === 0) index.delete(from); // frees a slot that a later add reuses
    }
    for (let id = 0; id < n; id += 101) {
      if (index.has(id)) expect(Array.from(index.getVector(id)!)).toEqual(Array.from(data.subarray(id * dims, (id + 1) * dims)));
    }
    const copy = HnswIndex.deserialize(index.serialize());
    for (let q = 0; q < 20; q++) {
      const qv = data.subarray(q * 61 * dims, (q * 61 + 1) * dims);
      const exact = index.search(qv, 5, { ef: n }).ids;
      expect(Array.from(copy.search(qv, 5, { ef: n }).ids)).toEqual(Array.from(exact));
    }
  });
});

describe('HnswIndex bad input', () => {
  it('refuses bad options', () => {
    expectQuartzError(() => new HnswIndex({ dims: 0, metric: 'l2' }), ErrorCode.INVALID_ARGUMENT, /dims/);
    expectQuartzError(() => new HnswIndex({ dims: 4097, metric: 'l2' }), ErrorCode.INVALID_ARGUMENT, /dims/);
    expectQuartzError(() => new HnswIndex({ dims: 1.5, metric: 'l2' }), ErrorCode.INVALID_ARGUMENT, /dims/);
    expectQuartzError(() => new HnswIndex({ dims: 4, metric: 'hamming' as HnswMetric }), ErrorCode.INVALID_ARGUMENT, /metric/);
    expectQuartzError(() => new HnswIndex({ dims: 4, metric: 'l2', M: 1 }), ErrorCode.INVALID_ARGUMENT, /M must/);
    expectQuartzError(() => new HnswIndex({ dims: 4, metric: 'l2', M: 1000 }), ErrorCode.INVALID_ARGUMENT, /M must/);
    expectQuartzError(() => new HnswIndex({ dims: 4, metric: 'l2', efConstruction: 0 }), ErrorCode.INVALID_ARGUMENT, /efConstruction/);
    expectQuartzError(() => new HnswIndex(null as unknown as { dims: number; metric: HnswMetric }), ErrorCode.INVALID_ARGUMENT);
  });

  it('refuses bad vectors, ids and queries without changing the index', () => {
    const index = new HnswIndex({ dims: 4, metric: 'cosine' });
    index.add(1, [1, 0, 0, 0]);
    expectQuartzError(() => index.add(2, [1, 2, 3]), ErrorCode.INVALID_ARGUMENT, /3 dimensions, the index has 4/);
    expectQuartzError(() => index.add(2, [1, NaN, 0, 0]), ErrorCode.INVALID_ARGUMENT, /id 2 has a non-finite value/);
    expectQuartzError(() => index.add(2, [1, Infinity, 0, 0]), ErrorCode.INVALID_ARGUMENT, /non-finite/);
    expectQuartzError(() => index.add(2, [0, 0, 0, 0]), ErrorCode.INVALID_ARGUMENT, /all zeros/);
    expectQuartzError(() => index.add(-1, [1, 0, 0, 0]), ErrorCode.INVALID_ARGUMENT, /id/);
    expectQuartzError(() => index.add(2 ** 32, [1, 0, 0, 0]), ErrorCode.INVALID_ARGUMENT, /id/);
    expectQuartzError(() => index.addBatch(Uint32Array.of(2, 3), new Float32Array([1, 0, 0, 0, NaN, 0, 0, 0])), ErrorCode.INVALID_ARGUMENT, /id 3/);
    expectQuartzError(() => index.addBatch(Uint32Array.of(2, 3), new Float32Array(5)), ErrorCode.INVALID_ARGUMENT, /expected 8/);
    expect(index.size).toBe(1);
    expect(index.has(2)).toBe(false);
    expectQuartzError(() => index.search([1, 0, 0], 1), ErrorCode.INVALID_ARGUMENT, /query has 3 dimensions/);
    expectQuartzError(() => index.search([1, NaN, 0, 0], 1), ErrorCode.INVALID_ARGUMENT, /query has a non-finite/);
    expectQuartzError(() => index.search([0, 0, 0, 0], 1), ErrorCode.INVALID_ARGUMENT, /all zeros/);
    expectQuartzError(() => index.search([1, 0, 0, 0], 0), ErrorCode.INVALID_ARGUMENT, /k must/);
    expectQuartzError(() => index.search([1, 0, 0, 0], 1, { ef: -3 }), ErrorCode.INVALID_ARGUMENT, /ef must/);
    expectQuartzError(() => index.search([1, 0, 0, 0], 1, { filter: [1] as unknown as Uint32Array }), ErrorCode.INVALID_ARGUMENT, /filter/);
    expectQuartzError(() => index.searchBatch(new Float32Array(6), 1), ErrorCode.INVALID_ARGUMENT, /multiple of 4/);
    expectQuartzError(() => index.searchBatch(new Float32Array([1, 0, 0, 0, 0, 0, Infinity, 0]), 1), ErrorCode.INVALID_ARGUMENT, /query 1/);
    expect(index.getVector(99)).toBeUndefined();
    index.dispose();
    expectQuartzError(() => index.size, ErrorCode.PRECONDITION_FAILED, /disposed/);
  });

  it('handles 4096 dimensions and more than one storage chunk', () => {
    const dims = 4096;
    const index = new HnswIndex({ dims, metric: 'l2', M: 4, efConstruction: 16 });
    const data = uniformVectors(40, dims, 41);
    index.addBatch(rows(40), data);
    expect(index.search(data.subarray(7 * dims, 8 * dims), 1).ids[0]).toBe(7);
    const small = new HnswIndex({ dims: 2, metric: 'l2', M: 4, efConstruction: 16 });
    small.addBatch(rows(2500), uniformVectors(2500, 2, 42));
    expect(small.size).toBe(2500);
    expect(small.search([0.5, 0.5], 3).ids.length).toBe(3);
    expect(small.graphBytes).toBeGreaterThan(2500 * 8);
  });

  it('refuses a batch that cannot fit in a wasm memory before inserting any of it', () => {
    const dims = 4096;
    const index = new HnswIndex({ dims, metric: 'l2', M: 4, efConstruction: 16 });
    // 250,000 × 4096 floats is 4 GB: refused from the sizes alone (the vectors are never read).
    const ids = new Uint32Array(250_000);
    const huge = { length: ids.length * dims } as unknown as Float32Array;
    Object.setPrototypeOf(huge, Float32Array.prototype);
    expectQuartzError(() => index.addBatch(ids, huge), ErrorCode.TOO_LARGE, /wasm memory/);
    expect(index.size).toBe(0);
  });

  it('gives each index its own memory', () => {
    const a = new HnswIndex({ dims: 4, metric: 'l2' });
    const b = new HnswIndex({ dims: 4, metric: 'l2' });
    a.add(1, [1, 2, 3, 4]);
    expect(b.has(1)).toBe(false);
    expect(b.size).toBe(0);
  });
});
