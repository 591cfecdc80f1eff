/**
 * bench/hnsw: our WASM HNSW (HnswIndex) against native hnswlib (hnswlib-node, C++ with SSE) and
 * a pure-JS brute force, on the same data in the same run, single thread.
 *
 *   npm run bench -- hnsw                                   # 100,000 × 128 Gaussian mixture, l2
 *   npm run bench -- hnsw --n 20000 --dims 64 --metric cosine
 *   npm run bench -- hnsw --fvecs base.fvecs [--query-fvecs query.fvecs] --metric cosine
 *   npm run bench -- hnsw --n 20000 --filter                # also measure the filter plans
 *   (--runs N: QPS is the best of N passes, default 3; --ef 10,20,40; --M; --efc; --spread)
 *
 * Prints build time, memory, recall@10 and QPS per ef for both indexes, and the QPS ratio at
 * equal recall (log-QPS interpolated along each curve). Times are process CPU time, since the
 * machine is shared; memory is vectors + links by each layout, and RSS growth over each build.
 */
import { readFileSync } from 'node:fs';
import hnswlib from 'hnswlib-node';
import { init, HnswIndex, type HnswMetric } from '../../src/node/core.js';
import { HNSW_FILTER_COST_FACTOR } from '../../src/core/hnsw.js';
import { bruteForce, clusteredVectors, recallAt, seededRandom } from '../../src/core/hnsw-testing.js';
import { parseFlags, refuseFlag } from '../lib/args.js';
import { grouped as fmt, ratio } from '../lib/format.js';
import { collectGarbage as gc, timeSync } from '../lib/timing.js';

interface Args {
  n: number;
  dims: number;
  clusters: number;
  spread: number;
  queries: number;
  metric: HnswMetric;
  M: number;
  efConstruction: number;
  k: number;
  efs: number[];
  fvecs?: string;
  queryFvecs?: string;
  filter: boolean;
  seed: number;
  runs: number;
}

const METRICS: readonly HnswMetric[] = ['l2', 'cosine', 'dot'];

function parseArgs(): Args {
  const flags = parseFlags({
    values: ['n', 'dims', 'clusters', 'spread', 'queries', 'metric', 'M', 'efc', 'ef-construction', 'k', 'ef', 'fvecs', 'query-fvecs', 'seed', 'runs'],
    switches: ['filter'],
  });
  const metric = (flags.string('metric') ?? 'l2') as HnswMetric;
  if (!METRICS.includes(metric)) refuseFlag(`--metric must be one of ${METRICS.join(', ')}, got '${metric}'`);
  return {
    n: flags.number('n', 100_000, 'positive'),
    dims: flags.number('dims', 128, 'positive'),
    clusters: flags.number('clusters', 100, 'positive'),
    spread: flags.number('spread', 0.35),
    queries: flags.number('queries', 1000, 'positive'),
    metric,
    M: flags.number('M', 16, 'positive'),
    efConstruction: flags.number('efc', flags.number('ef-construction', 200, 'positive'), 'positive'),
    k: flags.number('k', 10, 'positive'),
    efs: flags.list('ef', ['10', '20', '40', '80', '160', '320']).map(Number),
    fvecs: flags.string('fvecs'),
    queryFvecs: flags.string('query-fvecs'),
    filter: flags.has('filter'),
    seed: flags.number('seed', 1),
    runs: flags.number('runs', 3, 'positive'),
  };
}

/** .fvecs (the TEXMEX format): per vector an int32 dimension then that many float32, little-endian. */
function readFvecs(path: string, limit = Infinity): { data: Float32Array; dims: number; n: number } {
  const buf = readFileSync(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims = view.getInt32(0, true);
  if (!(dims > 0 && dims <= 4096)) throw new Error(`${path}: bad dimension ${dims}`);
  const stride = 4 + dims * 4;
  if (buf.byteLength % stride !== 0) throw new Error(`${path}: size is not a multiple of ${stride}`);
  const n = Math.min(buf.byteLength / stride, limit);
  const data = new Float32Array(n * dims);
  for (let i = 0; i < n; i++) {
    if (view.getInt32(i * stride, true) !== dims) throw new Error(`${path}: vector ${i} has another dimension`);
    for (let j = 0; j < dims; j++) data[i * dims + j] = view.getFloat32(i * stride + 4 + j * 4, true);
  }
  return { data, dims, n };
}

function mb(bytes: number): string {
  return `${fmt(bytes / 2 ** 20, 1)} MiB`;
}

interface Point { ef: number; recall: number; qps: number }

/**
 * QPS at `recall` on a curve, interpolating log-QPS linearly in recall between the points around
 * it; when even the lowest ef is above it, the fastest point that reaches it. Undefined if the
 * curve never reaches it.
 */
function qpsAt(curve: Point[], recall: number): number | undefined {
  const pts = [...curve].sort((a, b) => a.recall - b.recall);
  for (let i = 0; i < pts.length; i++) {
    const p = pts[i]!;
    if (p.recall === recall) return p.qps;
    if (p.recall > recall) {
      if (i === 0) return Math.max(...pts.map((x) => x.qps));
      const a = pts[i - 1]!;
      const t = (recall - a.recall) / (p.recall - a.recall);
      return Math.exp(Math.log(a.qps) + t * (Math.log(p.qps) - Math.log(a.qps)));
    }
  }
  return undefined;
}

/**
 * Process CPU time of `fn` (the machine is shared, and CPU time is what contention disturbs least;
 * both peers run synchronously on this thread, so it is their single-thread cost).
 */
function timeIt<T>(fn: () => T): { value: T; ms: number } {
  const { value, cpuMs } = timeSync(fn);
  return { value, ms: cpuMs };
}

/** Fastest of `runs` timings: the machine is shared, so the minimum is the least disturbed run. */
function bestOf<T>(runs: number, fn: () => T): { value: T; ms: number } {
  let best = timeIt(fn);
  for (let i = 1; i < runs; i++) {
    const t = timeIt(fn);
    if (t.ms < best.ms) best = t;
  }
  return best;
}

async function main(): Promise<void> {
  const args = parseArgs();
  await init();
  let data: Float32Array;
  let queries: Float32Array;
  let dims = args.dims;
  let n: number;
  let source: string;
  if (args.fvecs) {
    const base = readFvecs(args.fvecs);
    dims = base.dims;
    if (args.queryFvecs) {
      const q = readFvecs(args.queryFvecs, args.queries);
      if (q.dims !== dims) throw new Error('query and base dimensions differ');
      data = base.data.subarray(0, Math.min(base.n, args.n) * dims);
      queries = q.data;
    } else {
      // Hold out the last vectors of the file as queries.
      const nq = Math.min(args.queries, Math.floor(base.n / 10));
      const nb = Math.min(base.n - nq, args.n);
      data = base.data.subarray(0, nb * dims);
      queries = base.data.slice((base.n - nq) * dims);
    }
    source = `${args.fvecs}`;
  } else {
    const all = clusteredVectors(args.n + args.queries, dims, args.clusters, args.seed, args.spread);
    data = all.subarray(0, args.n * dims);
    queries = all.subarray(args.n * dims);
    source = `Gaussian mixture, ${args.clusters} clusters, spread ${args.spread}`;
  }
  n = data.length / dims;
  const nq = queries.length / dims;
  const { metric, M, efConstruction, k } = args;
  console.log(`data: ${fmt(n)} × ${dims} (${source}), ${fmt(nq)} held-out queries, metric ${metric}, M ${M}, efConstruction ${efConstruction}, k ${k}, single thread`);

  // --- pure-JS brute force: the exact answers, and the floor every index must beat.
  const brute = timeIt(() => bruteForce(data, queries, dims, metric, k));
  const truth = brute.value;
  const bruteQps = (nq / brute.ms) * 1000;
  console.log(`JS brute force: ${fmt(bruteQps, 1)} QPS (recall 1.000)`);

  // --- hnswlib-node (native). Its API takes number[]; convert up front so that cost is not billed to it.
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) rows.push(Array.from(data.subarray(i * dims, (i + 1) * dims)));
  const qrows: number[][] = [];
  for (let i = 0; i < nq; i++) qrows.push(Array.from(queries.subarray(i * dims, (i + 1) * dims)));
  gc();
  const rssBefore = process.memoryUsage().rss;
  const native = new hnswlib.HierarchicalNSW(metric === 'dot' ? 'ip' : metric, dims);
  const nativeBuild = timeIt(() => {
    native.initIndex(n, M, efConstruction, 100);
    for (let i = 0; i < n; i++) native.addPoint(rows[i]!, i);
  });
  gc();
  const nativeRss = process.memoryUsage().rss - rssBefore;
  // hnswlib's layout: per element level-0 links (4 + 2M·4) + vector + 8-byte label, and
  // (4 + M·4) per upper level; the expected upper levels per element are 1/(M − 1).
  const nativeFormula = n * (4 + 2 * M * 4 + dims * 4 + 8) + (n / (M - 1)) * (4 + M * 4);
  console.log(`hnswlib-node build: ${fmt(nativeBuild.ms / 1000, 2)} s; memory: ${mb(nativeFormula)} by its layout (vectors + links + labels), ${mb(nativeRss)} RSS growth`);

  // --- ours.
  const ids = Uint32Array.from({ length: n }, (_, i) => i);
  gc();
  const ourRssBefore = process.memoryUsage().rss;
  const ours = new HnswIndex({ dims, metric, M, efConstruction, seed: 100 });
  const ourBuild = timeIt(() => ours.addBatch(ids, data));
  gc();
  const ourRss = process.memoryUsage().rss - ourRssBefore;
  console.log(`HnswIndex build:    ${fmt(ourBuild.ms / 1000, 2)} s; memory: ${mb(ours.graphBytes)} vectors + links, ${mb(ourRss)} RSS growth (${mb(ours.memoryBytes)} linear memory reserved; the allocator doubles it and untouched pages are not resident)`);
  // RSS growth is shown for information only: in one process it is blurred by the JS heap
  // growing and shrinking around each build, so the ratio uses the exact layouts.
  console.log(`build ratio (ours / native): ${fmt(ourBuild.ms / nativeBuild.ms, 2)}×; memory ratio (vectors + links, by layout): ${fmt(ours.graphBytes / nativeFormula, 2)}×`);

  // --- recall / QPS curves.
  const ourCurve: Point[] = [];
  const batchCurve: Point[] = [];
  const nativeCurve: Point[] = [];
  const sortNative = (r: hnswlib.SearchResult) => r.neighbors.map((id, i) => [r.distances[i]!, id] as const).sort((a, b) => a[0] - b[0]).map((p) => p[1]);
  // Warm both up so JIT and caches are in the same state.
  for (let q = 0; q < Math.min(nq, 200); q++) {
    ours.search(queries.subarray(q * dims, (q + 1) * dims), k, { ef: 40 });
    native.setEf(40);
    native.searchKnn(qrows[q]!, k);
  }
  console.log('\n   ef | ours recall    QPS  batch QPS | hnswlib recall    QPS | QPS ratio');
  for (const ef of args.efs) {
    const ourFound: Uint32Array[] = new Array(nq);
    const o = bestOf(args.runs, () => {
      for (let q = 0; q < nq; q++) ourFound[q] = ours.search(queries.subarray(q * dims, (q + 1) * dims), k, { ef }).ids;
    });
    const b = bestOf(args.runs, () => ours.searchBatch(queries, k, { ef }));
    native.setEf(Math.max(ef, k));
    const nativeRaw: hnswlib.SearchResult[] = new Array(nq);
    const h = bestOf(args.runs, () => {
      for (let q = 0; q < nq; q++) nativeRaw[q] = native.searchKnn(qrows[q]!, k);
    });
    const nativeFound = nativeRaw.map(sortNative);
    const op: Point = { ef, recall: recallAt(k, truth, ourFound), qps: (nq / o.ms) * 1000 };
    const bp: Point = { ef, recall: recallAt(k, truth, b.value.map((r) => r.ids)), qps: (nq / b.ms) * 1000 };
    const hp: Point = { ef, recall: recallAt(k, truth, nativeFound), qps: (nq / h.ms) * 1000 };
    ourCurve.push(op);
    batchCurve.push(bp);
    nativeCurve.push(hp);
    console.log(`${String(ef).padStart(5)} | ${op.recall.toFixed(3).padStart(11)} ${fmt(op.qps).padStart(6)} ${fmt(bp.qps).padStart(10)} | ${hp.recall.toFixed(3).padStart(14)} ${fmt(hp.qps).padStart(6)} | ${ratio(op.qps, hp.qps)}`);
  }
  console.log('\nQPS at equal recall (interpolated):');
  for (const target of [0.8, 0.9, 0.95, 0.97, 0.99]) {
    const a = qpsAt(ourCurve, target);
    const ab = qpsAt(batchCurve, target);
    const h = qpsAt(nativeCurve, target);
    if (a === undefined || h === undefined) {
      console.log(`  recall ${target.toFixed(2)}: not reached by both curves`);
      continue;
    }
    console.log(`  recall ${target.toFixed(2)}: ours ${fmt(a)} QPS (batch ${ab === undefined ? '—' : fmt(ab)}), hnswlib ${fmt(h)} QPS → ${fmt(a / h, 2)}× native; ${fmt(a / bruteQps, 1)}× JS brute force`);
  }

  // The issue's targets: ≥ 0.8× native QPS at recall ≥ 0.95, build ≤ 1.3×, memory ≤ 1.3×.
  const at95 = [0.95, 0.97, 0.99].map((r) => {
    const a = qpsAt(ourCurve, r);
    const h = qpsAt(nativeCurve, r);
    return a === undefined || h === undefined ? undefined : a / h;
  }).filter((x): x is number => x !== undefined);
  const worst95 = at95.length ? Math.min(...at95) : undefined;
  const mark = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log(`
targets: query at recall ≥ 0.95 ${worst95 === undefined ? 'not measured (curves do not reach 0.95)' : `${fmt(worst95, 2)}× native (≥ 0.8×: ${mark(worst95 >= 0.8)})`}; build ${fmt(ourBuild.ms / nativeBuild.ms, 2)}× (≤ 1.3×: ${mark(ourBuild.ms / nativeBuild.ms <= 1.3)}); memory ${fmt(ours.graphBytes / nativeFormula, 2)}× by layout (≤ 1.3×: ${mark(ours.graphBytes / nativeFormula <= 1.3)})`);

  if (args.filter) filterBench(ours, data, queries, dims, n, k);
  ours.dispose();
}

/**
 * Filtered search cost, walk vs exact scan, across selectivities: where they cross sets the
 * default cost factor (exact when allowed² ≤ factor × ef × size).
 */
function filterBench(index: HnswIndex, data: Float32Array, queries: Float32Array, dims: number, n: number, k: number): void {
  console.log('\nfiltered search: µs per query, walk vs exact scan (factor that would put the switch here)');
  const nq = Math.min(200, queries.length / dims);
  for (const ef of [32, 128]) {
    for (const s of [0.5, 0.2, 0.1, 0.05, 0.02, 0.01]) {
      const rand = seededRandom(Math.round(s * 1e4));
      const allowed = Uint32Array.from({ length: n }, (_, i) => i).filter(() => rand() < s);
      const cost: number[] = [];
      let recall = 0;
      for (const factor of [0, 1e15]) {
        index.setFilterCostFactor(factor);
        const found: Uint32Array[] = [];
        const t = bestOf(2, () => {
          found.length = 0;
          for (let q = 0; q < nq; q++) found.push(index.search(queries.subarray(q * dims, (q + 1) * dims), k, { ef, filter: allowed }).ids);
        });
        cost.push((t.ms * 1000) / nq);
        if (factor === 0) recall = recallAt(k, bruteForce(data, queries.subarray(0, nq * dims), dims, index.metric, k, allowed), found);
      }
      const crossover = (allowed.length * allowed.length) / (ef * n);
      console.log(`  ef ${String(ef).padStart(3)} selectivity ${String(s).padStart(5)} (${fmt(allowed.length).padStart(6)} allowed): walk ${fmt(cost[0]!).padStart(6)} µs (recall ${recall.toFixed(3)}), exact ${fmt(cost[1]!).padStart(6)} µs → ${cost[0]! < cost[1]! ? 'walk' : 'exact'} wins; allowed²/(ef·size) = ${fmt(crossover, 1)}`);
    }
  }
  index.setFilterCostFactor(HNSW_FILTER_COST_FACTOR);
}

await main();
