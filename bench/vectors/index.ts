/**
 * Vector collections end to end (`npm run bench -- vectors`): durable upsert through the change
 * log, reopen by log replay and by snapshot, and filtered top-10 queries at several
 * selectivities — side by side with hnswlib-node (native HNSW, same M/efConstruction) given
 * the same metadata predicate as its filter callback, and with the raw HnswIndex for the write
 * path. Next to each filtered query's time it prints what a full metadata scan costs per
 * query — the measurement behind the per-field equality indexes (docs/vectors.md).
 * `BENCH_SCALE=0.1` shrinks the dataset while developing.
 */
import hnswlib from 'hnswlib-node';
import { init } from '../../src/node/core.js';
import { HnswIndex } from '../../src/core/hnsw.js';
import { compileFilter, type Metadata } from '../../src/engine/vectors/filter.js';
import { VectorStore } from '../../src/engine/vectors/vector-store.js';
import { createTestContext } from '../../src/engine/testing.js';
import { clusteredVectors } from '../../src/core/hnsw-testing.js';
import { grouped as fmt, ratio } from '../lib/format.js';
import { timeAsync as timedAsync, timeSync } from '../lib/timing.js';

const SCALE = Number(process.env.BENCH_SCALE ?? '1');
const N = Math.round(100_000 * SCALE);
const DIMS = 128;
const CLUSTERS = 100;
const QUERIES = Math.max(100, Math.round(500 * SCALE));
const BATCH = 1000;
const K = 10;
const EF = 64;
const M = 16;
const EF_CONSTRUCTION = 200;

/** A Gaussian mixture: vectors around CLUSTERS random centres, as bench/hnsw's. */
function dataset(n: number, seed: number): Float32Array {
  return clusteredVectors(n, DIMS, CLUSTERS, seed, 0.35);
}

function metadataOf(i: number): Metadata {
  return { category: `c${i % 100}`, bucket: i % 10, year: 1950 + (i % 70), tags: i % 3 === 0 ? ['red', 'blue'] : ['green'], author: { rank: i % 1000 } };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(aa * bb);
}

function row(data: Float32Array, i: number): Float32Array {
  return data.subarray(i * DIMS, (i + 1) * DIMS);
}

/** The value and wall milliseconds of a call: the write path and queries are timed by the wall clock. */
function time<T>(fn: () => T): [T, number] {
  const { value, wallMs } = timeSync(fn);
  return [value, wallMs];
}

async function timeAsync<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const { value, wallMs } = await timedAsync(fn);
  return [value, wallMs];
}

await init();
console.log(`vectors: ${fmt(N)} × ${DIMS} cosine, ${CLUSTERS} clusters, M=${M}, efConstruction=${EF_CONSTRUCTION}, ${QUERIES} queries, k=${K}, ef=${EF}\n`);
const data = dataset(N, 1);
const queries = dataset(QUERIES, 2);
const metadata = Array.from({ length: N }, (_, i) => metadataOf(i));

// ---- write path: durable upsert vs raw index inserts vs hnswlib-node ----
const ctx = createTestContext();
const store = await VectorStore.open(ctx, 'bench', { snapshot: { everyMutations: 1_000_000, everyBytes: Number.MAX_SAFE_INTEGER } });
await store.createCollection({ name: 'docs', dims: DIMS, metric: 'cosine', M, efConstruction: EF_CONSTRUCTION });
const docs = await store.collection('docs');
const [, upsertMs] = await timeAsync(async () => {
  for (let i = 0; i < N; i += BATCH) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + BATCH); j++) batch.push({ id: `doc-${j}`, values: row(data, j), metadata: metadata[j] });
    await docs.upsert(batch);
  }
});
const raw = new HnswIndex({ dims: DIMS, metric: 'cosine', M, efConstruction: EF_CONSTRUCTION });
const [, rawMs] = time(() => {
  for (let i = 0; i < N; i += BATCH) {
    const n = Math.min(BATCH, N - i);
    raw.addBatch(Uint32Array.from({ length: n }, (_, j) => i + j), data.subarray(i * DIMS, (i + n) * DIMS));
  }
});
raw.dispose();
const peer = new hnswlib.HierarchicalNSW('cosine', DIMS);
const [, peerBuildMs] = time(() => {
  peer.initIndex(N, M, EF_CONSTRUCTION, 42);
  for (let i = 0; i < N; i++) peer.addPoint(Array.from(row(data, i)), i);
});
peer.setEf(EF);
console.log('write path (batches of 1000)           time        vectors/s   vs raw HnswIndex');
console.log(`  collection upsert (logged, durable)  ${fmt(upsertMs / 1000, 2).padStart(7)} s  ${fmt(N / (upsertMs / 1000)).padStart(10)}   ${ratio(upsertMs, rawMs)}`);
console.log(`  raw HnswIndex.addBatch               ${fmt(rawMs / 1000, 2).padStart(7)} s  ${fmt(N / (rawMs / 1000)).padStart(10)}   1.00×`);
console.log(`  hnswlib-node addPoint (native)       ${fmt(peerBuildMs / 1000, 2).padStart(7)} s  ${fmt(N / (peerBuildMs / 1000)).padStart(10)}   ${ratio(peerBuildMs, rawMs)}`);

// ---- reopen: replay the whole log vs load a snapshot ----
const [, replayMs] = await timeAsync(async () => {
  const again = await VectorStore.open(ctx, 'bench');
  await again.collection('docs');
  await again.close();
});
const [, checkpointMs] = await timeAsync(() => docs.checkpoint());
const snapshotBytes = (await ctx.storage.unit('vec/bench/docs').blobs.list('snap/'))[0]!.size;
const [, snapshotOpenMs] = await timeAsync(async () => {
  const again = await VectorStore.open(ctx, 'bench');
  await again.collection('docs');
  await again.close();
});
console.log('\nreopen (memory storage)');
console.log(`  by log replay                         ${fmt(replayMs / 1000, 2)} s`);
console.log(`  checkpoint (snapshot ${fmt(snapshotBytes / 2 ** 20, 1)} MiB)        ${fmt(checkpointMs / 1000, 2)} s`);
console.log(`  by snapshot                           ${fmt(snapshotOpenMs / 1000, 2)} s  (${fmt(replayMs / snapshotOpenMs, 1)}× faster than replay)`);

// ---- filtered queries ----
const FILTERS: [string, Record<string, unknown>][] = [
  ['none (100%)', {}],
  ['bucket = 3 (10%)', { bucket: 3 }],
  ['category in 5 (5%)', { category: { $in: ['c1', 'c2', 'c3', 'c4', 'c5'] } }],
  ['category = c7 (1%)', { category: 'c7' }],
  ['rank < 1 (0.1%)', { 'author.rank': { $lt: 1 } }],
  ['year ≥ 2000 and tags=red (~9.5%)', { $and: [{ year: { $gte: 2000 } }, { tags: 'red' }] }],
];

console.log('\nfiltered top-10 (single thread)        ours QPS   recall   ms/query   full scan ms   hnswlib-node QPS   recall   ratio');
for (const [label, filter] of FILTERS) {
  const { match } = compileFilter(filter);
  const allowed: number[] = [];
  for (let i = 0; i < N; i++) if (match(metadata[i]!)) allowed.push(i);
  // Exact answers for recall.
  const exact = Array.from({ length: QUERIES }, (_, q) => {
    const query = row(queries, q);
    return new Set(
      allowed
        .map((i) => [i, cosine(query, row(data, i))] as [number, number])
        .sort((a, b) => b[1] - a[1])
        .slice(0, K)
        .map(([i]) => `doc-${i}`),
    );
  });
  const useFilter = Object.keys(filter).length > 0;
  const request = (q: number) => ({ vector: row(queries, q), k: K, ef: EF, ...(useFilter ? { filter } : {}) });
  docs.query(request(0));
  let hits = 0;
  const [, oursMs] = time(() => {
    for (let q = 0; q < QUERIES; q++) {
      for (const m of docs.query(request(q)).matches) if (exact[q]!.has(m.id)) hits++;
    }
  });
  // The allow-set scan alone, as the collection runs it.
  const [, scanMs] = time(() => {
    for (let q = 0; q < QUERIES; q++) {
      let n = 0;
      for (let i = 0; i < N; i++) if (match(metadata[i]!)) n++;
      if (n < 0) throw new Error('unreachable');
    }
  });
  let peerHits = 0;
  const peerFilter = useFilter ? (label: number) => match(metadata[label]!) : undefined;
  const [, peerMs] = time(() => {
    for (let q = 0; q < QUERIES; q++) {
      const k = Math.min(K, allowed.length);
      const res = peer.searchKnn(Array.from(row(queries, q)), k, peerFilter);
      for (const i of res.neighbors) if (exact[q]!.has(`doc-${i}`)) peerHits++;
    }
  });
  const ours = QUERIES / (oursMs / 1000);
  const theirs = QUERIES / (peerMs / 1000);
  const want = QUERIES * Math.min(K, allowed.length);
  console.log(
    `  ${label.padEnd(36)} ${fmt(ours).padStart(8)}   ${fmt(hits / want, 3)}   ${fmt(oursMs / QUERIES, 3).padStart(8)}   ${(useFilter ? fmt(scanMs / QUERIES, 3) : '-').padStart(12)}   ${fmt(theirs).padStart(16)}   ${fmt(peerHits / want, 3)}   ${ratio(ours, theirs)}`,
  );
}
await store.close();
console.log('\nratio = our QPS / hnswlib-node QPS; full scan ms = evaluating the filter over every record, the allow-set cost without per-field indexes.');
