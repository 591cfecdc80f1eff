/**
 * HnswIndex: an approximate nearest-neighbour index (HNSW) whose graph and vectors live in the
 * linear memory of its own instance of the QuartzDB core (assembly/hnsw.ts). One index = one
 * instance, so dropping an index frees its memory and one index can never grow into another's.
 *
 * Scores, best first:
 * - `cosine`: cosine similarity (1 − cosine distance), in [−1, 1]; vectors are normalised once
 *   at insert, so `getVector` returns the unit-length vector.
 * - `dot`: the dot product (higher is better).
 * - `l2`: the *squared* Euclidean distance (lower is better), as hnswlib and most vector stores
 *   report it; take `Math.sqrt` for the plain distance.
 */
import { ErrorCode, QuartzError } from './errors.js';
import { instantiate, type QuartzExports } from './loader.js';

export type HnswMetric = 'cosine' | 'l2' | 'dot';

export interface HnswOptions {
  /** Vector length, 1..4096. */
  dims: number;
  metric: HnswMetric;
  /** Links per node on upper layers (level 0 keeps 2·M), 2..128; default 16. */
  M?: number;
  /** Candidate list size while building, 1..4096; default 200. */
  efConstruction?: number;
  /** Seed of the level generator, so builds are reproducible; default 42. */
  seed?: number;
}

export interface HnswSearchOptions {
  /** Candidate list size of the search (raised to k if lower); default max(64, k). */
  ef?: number;
  /** Allowed ids: only these can be returned. Unknown ids are ignored. */
  filter?: Uint32Array;
}

export interface HnswSearchResult {
  ids: Uint32Array;
  scores: Float32Array;
}

/** How the last search ran: a graph walk, an exact scan of the allowed ids, or a walk that fell back to the scan. */
export type HnswSearchPlan = 'none' | 'graph' | 'exact' | 'graph+exact';

interface HnswExports extends QuartzExports {
  hnsw_init(dims: number, metric: number, M: number, efConstruction: number, seed: number): number;
  hnsw_add_batch(idsPtr: number, vecPtr: number, n: number): number;
  hnsw_renormalise(idsPtr: number, vecPtr: number, n: number): number;
  hnsw_delete(id: number): number;
  hnsw_has(id: number): number;
  hnsw_get_vector(id: number, out: number): number;
  hnsw_size(): number;
  hnsw_set_filter(idsPtr: number, n: number): number;
  hnsw_reserve(ef: number): void;
  hnsw_search(qPtr: number, k: number, ef: number, useFilter: number, outIds: number, outScores: number): number;
  hnsw_search_batch(qPtr: number, nq: number, k: number, ef: number, useFilter: number, outIds: number, outScores: number, outCounts: number): number;
  hnsw_set_filter_beta(beta: number): void;
  hnsw_last_error_index(): number;
  hnsw_last_error_reason(): number;
  hnsw_last_plan(): number;
  hnsw_take_distance_count(): number;
  hnsw_graph_bytes(): number;
  hnsw_record_bytes(): number;
  hnsw_max_record_bytes(): number;
  hnsw_snapshot_begin(): number;
  hnsw_snapshot_next(out: number, cap: number): number;
  hnsw_checksum(crc: number, ptr: number, len: number): number;
  hnsw_restore_begin(src: number, bodyLen: number): number;
  hnsw_restore_feed(src: number, len: number): number;
  hnsw_restore_end(): number;
}

/**
 * Default cost factor of the search planner: exact scan when allowed² ≤ factor × ef × size, where
 * an unfiltered search allows everything (so: size ≤ factor × ef). Where walk and scan cost the
 * same on `npm run bench -- hnsw --filter` (between 7 and 31 at 100k × 100).
 */
export const HNSW_FILTER_COST_FACTOR = 16;

const METRICS: readonly HnswMetric[] = ['l2', 'cosine', 'dot'];
const MAX_DIMS = 4096;
const MAX_K = 100_000;
// Budget for one index's linear memory (wasm32 stops at 4 GiB; leave room for scratch and the
// allocator), and the per-node bytes beside the record (visited/filter tags, flags, heap, id map).
const MAX_INDEX_BYTES = 3.5 * 2 ** 30;
let indexByteLimit = MAX_INDEX_BYTES;
const PER_NODE_OVERHEAD = 48;
const MAX_EF = 100_000;
const E_NONFINITE = -2;
const E_ZERO = -3;
// -4 (corrupt snapshot) falls through to CORRUPT_DATA in check().
const E_VERSION = -5;
const SNAPSHOT_MAGIC = 0x534e4851; // "QHNS" little-endian
const SNAPSHOT_VERSION = 1;
const SNAPSHOT_HEADER = 48;
// Snapshots stream through the index's scratch buffer in parts of about this size.
const SNAPSHOT_PART_BYTES = 256 << 10;
// Insert batches are copied into wasm in slices of about this many bytes, so a large batch does
// not leave an equally large scratch buffer behind in the index's memory.
const INSERT_SLICE_BYTES = 256 << 10;
const PLANS: readonly HnswSearchPlan[] = ['none', 'graph', 'exact', 'graph+exact'];
const CORRUPT_REASONS: Record<number, string> = {
  2: 'bad magic',
  3: 'bad parameters',
  4: 'node count exceeds the data',
  5: 'bad entry point',
  6: 'truncated node records',
  7: 'bad node level or flags',
  8: 'neighbour list too long',
  9: 'link to a missing node',
  10: 'non-finite vector value',
  11: 'duplicate id',
  12: 'link to a node without that level',
  13: 'entry point is not on the top level',
  14: 'counts do not match',
  15: 'trailing bytes',
  16: 'bad free list',
};

function invalid(message: string, details?: Record<string, unknown>): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, message, details ? { details } : undefined);
}

function checkInt(name: string, value: unknown, lo: number, hi: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < lo || value > hi) {
    throw invalid(`HNSW ${name} must be an integer in ${lo}..${hi}, got ${String(value)}`);
  }
  return value;
}

function checkId(id: unknown): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xffffffff) {
    throw invalid(`vector id must be an integer in 0..4294967295, got ${String(id)}`);
  }
  return id;
}

let restoring: Uint8Array | undefined;

export class HnswIndex {
  readonly dims: number;
  readonly metric: HnswMetric;
  readonly M: number;
  readonly efConstruction: number;
  private wasm: HnswExports | undefined;
  private scratchPtr = 0;
  private scratchBytes = 0;
  private reservedEf = 0;
  private f32: Float32Array;
  private u32: Uint32Array;
  private lastBuffer: ArrayBuffer;

  /**
   * An empty index in a fresh core instance. Requires `await init()` first.
   * @example
   * await init();
   * const index = new HnswIndex({ dims: 3, metric: 'cosine' });
   * index.add(7, new Float32Array([0.1, 0.2, 0.3]));
   * const { ids, scores } = index.search(new Float32Array([0.1, 0.2, 0.25]), 1); // ids[0] === 7
   */
  constructor(options: HnswOptions) {
    if (options === null || typeof options !== 'object') throw invalid('HNSW options must be an object with dims and metric');
    this.dims = checkInt('dims', options.dims, 1, MAX_DIMS);
    if (!METRICS.includes(options.metric)) {
      throw invalid(`HNSW metric must be 'cosine', 'l2' or 'dot', got ${String(options.metric)}`);
    }
    this.metric = options.metric;
    this.M = checkInt('M', options.M ?? 16, 2, 128);
    this.efConstruction = checkInt('efConstruction', options.efConstruction ?? 200, 1, 4096);
    const seed = checkInt('seed', options.seed ?? 42, 0, 0xffffffff);
    const wasm = instantiate<HnswExports>();
    if (typeof wasm.hnsw_init !== 'function') {
      throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, 'the loaded QuartzDB core has no HNSW index (hnsw_init is missing)');
    }
    this.wasm = wasm;
    this.lastBuffer = wasm.memory.buffer;
    this.f32 = new Float32Array(this.lastBuffer);
    this.u32 = new Uint32Array(this.lastBuffer);
    const snapshot = restoring;
    if (snapshot) {
      this.restore(snapshot);
    } else if (wasm.hnsw_init(this.dims, METRICS.indexOf(this.metric), this.M, this.efConstruction, seed) !== 0) {
      throw invalid('HNSW parameters were refused by the core');
    }
    this.reserve(64);
    this.wasm.hnsw_set_filter_beta(HNSW_FILTER_COST_FACTOR);
  }

  /** Live vectors in the index. */
  get size(): number {
    return this.core().hnsw_size();
  }

  /** Bytes of the index's linear memory (everything it holds, scratch included). */
  get memoryBytes(): number {
    return this.core().memory.buffer.byteLength;
  }

  /** Bytes of vectors plus graph links (level-0 records and upper-layer lists). */
  get graphBytes(): number {
    return this.core().hnsw_graph_bytes();
  }

  /** How the most recent single search ran (small indexes and sparse filters scan exactly). */
  get lastSearchPlan(): HnswSearchPlan {
    return PLANS[this.core().hnsw_last_plan()] ?? 'none';
  }

  /**
   * Inserts a vector, or replaces the vector of an id that is already present.
   * @example
   * index.add(1, new Float32Array([1, 0, 0]));
   */
  add(id: number, vector: Float32Array | readonly number[]): void {
    checkId(id);
    const v = this.checkVector(vector, 'vector');
    this.addBatch(Uint32Array.of(id), v instanceof Float32Array ? v : Float32Array.from(v));
  }

  /** Checks a flat batch's types and length (`ids.length × dims` floats); returns the dimensions. */
  private checkFlatBatch(method: string, ids: Uint32Array, vectors: Float32Array): number {
    if (!(ids instanceof Uint32Array)) throw invalid(`${method} ids must be a Uint32Array`);
    if (!(vectors instanceof Float32Array)) throw invalid(`${method} vectors must be a flat Float32Array`);
    const dims = this.dims;
    if (vectors.length !== ids.length * dims) {
      throw invalid(`${method} got ${vectors.length} floats for ${ids.length} ids of ${dims} dimensions (expected ${ids.length * dims})`);
    }
    return dims;
  }

  /**
   * Inserts (or replaces) many vectors in one call: `vectors` is flat, `ids.length × dims`.
   * The whole batch is validated before anything is inserted; a later duplicate id wins.
   * @example
   * index.addBatch(Uint32Array.of(1, 2), new Float32Array([1, 0, 0, 0, 1, 0]));
   */
  addBatch(ids: Uint32Array, vectors: Float32Array): void {
    const wasm = this.core();
    const dims = this.checkFlatBatch('addBatch', ids, vectors);
    this.checkRoomFor(ids.length);
    for (let i = 0; i < ids.length; i++) {
      let sum = 0;
      for (let j = i * dims, end = j + dims; j < end; j++) {
        const x = vectors[j]!;
        if (!Number.isFinite(x)) {
          throw invalid(`vector for id ${ids[i]} has a non-finite value (${x}) at dimension ${j - i * dims}`, { id: ids[i] });
        }
        sum += x * x;
      }
      if (this.metric === 'cosine' && sum === 0) throw invalid(`vector for id ${ids[i]} is all zeros, which has no cosine direction`, { id: ids[i] });
    }
    this.inSlices(ids, vectors, (idsPtr, vectorsPtr, n) => {
      try {
        return wasm.hnsw_add_batch(idsPtr, vectorsPtr, n);
      } catch (err) {
        // Only a failed memory growth gets here; the graph may be half-linked, so retire it.
        this.dispose();
        throw new QuartzError(ErrorCode.INSUFFICIENT_STORAGE, `HNSW index ran out of wasm memory and was discarded: ${(err as Error).message}`, { cause: err });
      }
    });
  }

  /**
   * Copies a flat batch into wasm memory a slice at a time (at most `INSERT_SLICE_BYTES`) and
   * runs `call` on each; a negative answer is the error of the slice's vector at
   * `hnsw_last_error_index`. Returns the sum of the answers.
   */
  private inSlices(ids: Uint32Array, vectors: Float32Array, call: (idsPtr: number, vectorsPtr: number, n: number) => number): number {
    const wasm = this.core();
    const dims = this.dims;
    const per = Math.max(1, Math.floor(INSERT_SLICE_BYTES / (dims * 4 + 4)));
    let total = 0;
    for (let start = 0; start < ids.length; start += per) {
      const n = Math.min(per, ids.length - start);
      const ptr = this.scratch(n * 4 + n * dims * 4);
      this.refreshViews();
      this.u32.set(ids.subarray(start, start + n), ptr >>> 2);
      this.f32.set(vectors.subarray(start * dims, (start + n) * dims), (ptr >>> 2) + n);
      const rc = call(ptr, ptr + n * 4, n);
      if (rc < 0) throw this.vectorError(rc, 'vector', ids[start + wasm.hnsw_last_error_index()]);
      total += rc;
    }
    return total;
  }

  /**
   * Under cosine, rewrites the stored unit vectors of present `ids` from their original values
   * (`vectors` flat, `ids.length × dims`) as this build normalises them, keeping the graph; other
   * metrics store values as given, so nothing changes. A snapshot of a build that normalised in
   * f32 holds zeros for vectors with components past ~1.8e19 and last-bit differences elsewhere
   * (equal vectors scored unequally). Returns how many vectors were rewritten.
   * @example
   * index.renormalise(Uint32Array.of(1, 2), new Float32Array([3e19, 3e19, 1, 0]));
   */
  renormalise(ids: Uint32Array, vectors: Float32Array): number {
    const wasm = this.core();
    this.checkFlatBatch('renormalise', ids, vectors);
    if (this.metric !== 'cosine') return 0;
    return this.inSlices(ids, vectors, (idsPtr, vectorsPtr, n) => wasm.hnsw_renormalise(idsPtr, vectorsPtr, n));
  }

  /**
   * Throws TOO_LARGE if `count` more vectors could take the index past what one wasm memory
   * holds (4 GiB on wasm32, less room for scratch and the allocator). addBatch refuses such a
   * batch before inserting any of it; a caller that must not fail later (a collection, before it
   * logs a write) asks first. Every vector counts as new, replacements too: an upper bound.
   * @example
   * index.checkRoomFor(10_000);
   */
  checkRoomFor(count: number): void {
    const wasm = this.core();
    const projected = this.graphBytes + count * (wasm.hnsw_record_bytes() + PER_NODE_OVERHEAD);
    if (projected > indexByteLimit) {
      throw new QuartzError(ErrorCode.TOO_LARGE, `an HNSW index of ${this.dims} dimensions cannot take ${count} more vectors: it would need about ${(projected / 2 ** 20).toFixed(1)} MiB, over the ${(indexByteLimit / 2 ** 20).toFixed(1)} MiB one wasm memory can hold`, { details: { limit_bytes: indexByteLimit, needed_bytes: projected } });
    }
  }

  /**
   * The k nearest vectors to `query`, best first (see the file header for what scores mean).
   * With `filter`, only allowed ids are returned, and k of them whenever k exist. The search
   * scans the allowed vectors exactly instead of walking the graph when allowed² ≤ factor × ef ×
   * size (see setFilterCostFactor); unfiltered that means size ≤ factor × ef (1,024 at the
   * defaults), so small indexes give exact results.
   * @example
   * const { ids, scores } = index.search(query, 10, { ef: 80, filter: Uint32Array.of(3, 5, 8) });
   */
  search(query: Float32Array | readonly number[], k: number, options: HnswSearchOptions = {}): HnswSearchResult {
    const wasm = this.core();
    const q = this.checkVector(query, 'query');
    const { ef, useFilter } = this.prepare(k, options);
    const bytes = this.dims * 4 + k * 8;
    const ptr = this.scratch(bytes);
    this.refreshViews();
    this.f32.set(q, ptr >>> 2);
    const idsPtr = ptr + this.dims * 4;
    const scoresPtr = idsPtr + k * 4;
    const n = wasm.hnsw_search(ptr, k, ef, useFilter, idsPtr, scoresPtr);
    if (n < 0) throw this.vectorError(n, 'query');
    this.refreshViews();
    return {
      ids: this.u32.slice(idsPtr >>> 2, (idsPtr >>> 2) + n),
      scores: this.f32.slice(scoresPtr >>> 2, (scoresPtr >>> 2) + n),
    };
  }

  /**
   * Many queries in one call: `queries` is flat, `n × dims`; returns one result per query.
   * @example
   * const results = index.searchBatch(new Float32Array([1, 0, 0, 0, 1, 0]), 5);
   */
  searchBatch(queries: Float32Array, k: number, options: HnswSearchOptions = {}): HnswSearchResult[] {
    const wasm = this.core();
    if (!(queries instanceof Float32Array) || queries.length % this.dims !== 0) {
      throw invalid(`searchBatch queries must be a flat Float32Array whose length is a multiple of ${this.dims}`);
    }
    const nq = queries.length / this.dims;
    const { ef, useFilter } = this.prepare(k, options);
    const ptr = this.scratch(queries.length * 4 + nq * k * 8 + nq * 4);
    const idsPtr = ptr + queries.length * 4;
    const scoresPtr = idsPtr + nq * k * 4;
    const countsPtr = scoresPtr + nq * k * 4;
    this.refreshViews();
    this.f32.set(queries, ptr >>> 2);
    const rc = wasm.hnsw_search_batch(ptr, nq, k, ef, useFilter, idsPtr, scoresPtr, countsPtr);
    if (rc < 0) throw this.vectorError(rc, `query ${wasm.hnsw_last_error_index()}`);
    this.refreshViews();
    const ids = this.u32.slice(idsPtr >>> 2, (idsPtr >>> 2) + nq * k);
    const scores = this.f32.slice(scoresPtr >>> 2, (scoresPtr >>> 2) + nq * k);
    const counts = this.u32.subarray(countsPtr >>> 2, (countsPtr >>> 2) + nq);
    const out: HnswSearchResult[] = new Array(nq);
    for (let i = 0; i < nq; i++) {
      out[i] = { ids: ids.subarray(i * k, i * k + counts[i]!), scores: scores.subarray(i * k, i * k + counts[i]!) };
    }
    return out;
  }

  /**
   * Removes an id; returns whether it was present. Its slot is reused by a later insert.
   * @example
   * index.delete(7); // true
   */
  delete(id: number): boolean {
    return this.core().hnsw_delete(checkId(id)) === 1;
  }

  /** @example index.has(7) */
  has(id: number): boolean {
    return this.core().hnsw_has(checkId(id)) === 1;
  }

  /**
   * The stored vector of an id (unit length for cosine), or undefined.
   * @example
   * const v = index.getVector(7);
   */
  getVector(id: number): Float32Array | undefined {
    const wasm = this.core();
    checkId(id);
    const ptr = this.scratch(this.dims * 4);
    if (wasm.hnsw_get_vector(id, ptr) !== 1) return undefined;
    this.refreshViews();
    return this.f32.slice(ptr >>> 2, (ptr >>> 2) + this.dims);
  }

  /**
   * The whole index as one checksummed snapshot (docs/format.md, "HNSW index snapshot").
   * @example
   * const copy = HnswIndex.deserialize(index.serialize());
   */
  serialize(): Uint8Array {
    const wasm = this.core();
    const out = new Uint8Array(wasm.hnsw_snapshot_begin());
    // No bigger than the snapshot: a small index would keep a 256 KiB scratch for good.
    const cap = Math.min(SNAPSHOT_PART_BYTES, out.length) + wasm.hnsw_max_record_bytes();
    const ptr = this.scratch(cap);
    let pos = 0;
    for (;;) {
      const n = wasm.hnsw_snapshot_next(ptr, cap);
      if (n === 0) break;
      out.set(new Uint8Array(wasm.memory.buffer, ptr, n), pos);
      pos += n;
    }
    if (pos !== out.length) throw new QuartzError(ErrorCode.INTERNAL, `HNSW snapshot wrote ${pos} bytes, expected ${out.length}`);
    return out;
  }

  /**
   * Loads a snapshot made by `serialize` into a new index (no re-insertion). A damaged or
   * foreign snapshot throws CORRUPT_DATA, CHECKSUM_MISMATCH or UNSUPPORTED_FORMAT.
   * @example
   * const index = HnswIndex.deserialize(await blobs.get('vectors/docs.hnsw'));
   */
  static deserialize(bytes: Uint8Array): HnswIndex {
    if (!(bytes instanceof Uint8Array)) throw invalid('HnswIndex.deserialize needs a Uint8Array');
    if (bytes.length < SNAPSHOT_HEADER + 4) {
      throw new QuartzError(ErrorCode.CORRUPT_DATA, `HNSW snapshot is too short (${bytes.length} bytes)`);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(0, true) !== SNAPSHOT_MAGIC) throw new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, 'not an HNSW snapshot (bad magic)');
    const version = view.getUint16(4, true);
    if (version !== SNAPSHOT_VERSION) {
      throw new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `HNSW snapshot version ${version} is not supported (this build reads version ${SNAPSHOT_VERSION})`);
    }
    const metric = METRICS[view.getUint8(6)];
    const options = { dims: view.getUint32(8, true), metric: metric!, M: view.getUint32(12, true), efConstruction: view.getUint32(16, true) };
    restoring = bytes;
    try {
      return new HnswIndex(options);
    } catch (err) {
      if (err instanceof QuartzError && err.code === ErrorCode.INVALID_ARGUMENT) {
        throw new QuartzError(ErrorCode.CORRUPT_DATA, `HNSW snapshot has bad parameters: ${err.message}`, { cause: err });
      }
      throw err;
    } finally {
      restoring = undefined;
    }
  }

  /**
   * Releases the index's wasm instance; every later call throws.
   * @example
   * index.dispose();
   */
  dispose(): void {
    this.wasm = undefined;
    this.f32 = new Float32Array(0);
    this.u32 = new Uint32Array(0);
  }

  /**
   * Tunes when a search scans the allowed ids exactly instead of walking the graph: exact when
   * allowed² ≤ factor × ef × size, an unfiltered search allowing all `size` ids (default
   * HNSW_FILTER_COST_FACTOR, measured by `npm run bench -- hnsw --filter`). 0 always walks the
   * graph unless size ≤ k (still falling back to a scan if the walk finds fewer than k).
   * @example
   * index.setFilterCostFactor(0);
   */
  setFilterCostFactor(factor: number): void {
    if (typeof factor !== 'number' || !(factor >= 0) || factor === Infinity) throw invalid(`filter cost factor must be a finite number ≥ 0, got ${String(factor)}`);
    this.core().hnsw_set_filter_beta(factor);
  }

  /** Distances computed since the last call (the bench uses it to size the exact-scan threshold). */
  takeDistanceCount(): number {
    return this.core().hnsw_take_distance_count();
  }

  /** Checks the snapshot's checksum, then streams it into this fresh instance part by part. */
  private restore(bytes: Uint8Array): void {
    const wasm = this.wasm!;
    try {
      // A part holds at least one whole record; no bigger than the snapshot (see serialize).
      const cap = Math.min(SNAPSHOT_PART_BYTES, bytes.length) + 8 + MAX_DIMS * 4 + (1 + 2 * this.M) * 4 + 31 * (1 + this.M) * 4;
      const ptr = this.scratch(cap);
      const bodyEnd = bytes.length - 4;
      let crc = 0;
      for (let pos = 0; pos < bodyEnd; pos += cap) {
        const part = bytes.subarray(pos, Math.min(bodyEnd, pos + cap));
        new Uint8Array(wasm.memory.buffer, ptr, part.length).set(part);
        crc = wasm.hnsw_checksum(crc, ptr, part.length);
      }
      const stored = new DataView(bytes.buffer, bytes.byteOffset + bodyEnd, 4).getUint32(0, true);
      if (crc >>> 0 !== stored) throw new QuartzError(ErrorCode.CHECKSUM_MISMATCH, 'HNSW snapshot checksum does not match its contents');
      new Uint8Array(wasm.memory.buffer, ptr, SNAPSHOT_HEADER).set(bytes.subarray(0, SNAPSHOT_HEADER));
      this.check(wasm.hnsw_restore_begin(ptr, bodyEnd - SNAPSHOT_HEADER));
      let pos = SNAPSHOT_HEADER;
      while (pos < bodyEnd) {
        const part = bytes.subarray(pos, Math.min(bodyEnd, pos + cap));
        new Uint8Array(wasm.memory.buffer, ptr, part.length).set(part);
        const used = this.check(wasm.hnsw_restore_feed(ptr, part.length));
        // A part always holds at least one whole record, so no progress means a truncated one.
        if (used === 0) throw new QuartzError(ErrorCode.CORRUPT_DATA, 'HNSW snapshot is corrupt: truncated node records');
        pos += used;
      }
      if (bodyEnd === SNAPSHOT_HEADER) this.check(wasm.hnsw_restore_feed(ptr, 0));
      this.check(wasm.hnsw_restore_end());
    } catch (err) {
      this.wasm = undefined;
      throw err;
    }
  }

  private check(rc: number): number {
    if (rc >= 0) return rc;
    if (rc === E_VERSION) throw new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, 'HNSW snapshot version is not supported');
    const reason = CORRUPT_REASONS[this.wasm!.hnsw_last_error_reason()] ?? 'inconsistent contents';
    throw new QuartzError(ErrorCode.CORRUPT_DATA, `HNSW snapshot is corrupt: ${reason}`);
  }

  private core(): HnswExports {
    if (!this.wasm) throw new QuartzError(ErrorCode.PRECONDITION_FAILED, 'this HnswIndex was disposed');
    return this.wasm;
  }

  private checkVector(vector: Float32Array | readonly number[], what: string): Float32Array | readonly number[] {
    if (!(vector instanceof Float32Array) && !Array.isArray(vector)) throw invalid(`${what} must be a Float32Array or an array of numbers`);
    if (vector.length !== this.dims) {
      throw invalid(`${what} has ${vector.length} dimensions, the index has ${this.dims}`, { expected: this.dims, actual: vector.length });
    }
    return vector;
  }

  private prepare(k: number, options: HnswSearchOptions): { ef: number; useFilter: number } {
    checkInt('k', k, 1, MAX_K);
    const ef = Math.max(k, options.ef === undefined ? 64 : checkInt('ef', options.ef, 1, MAX_EF));
    this.reserve(ef);
    const filter = options.filter;
    if (filter === undefined) return { ef, useFilter: 0 };
    if (!(filter instanceof Uint32Array)) throw invalid('search filter must be a Uint32Array of allowed ids');
    const wasm = this.wasm!;
    const ptr = this.scratch(filter.length * 4);
    this.refreshViews();
    this.u32.set(filter, ptr >>> 2);
    wasm.hnsw_set_filter(ptr, filter.length);
    return { ef, useFilter: 1 };
  }

  private reserve(ef: number): void {
    if (ef <= this.reservedEf) return;
    this.wasm!.hnsw_reserve(ef);
    this.reservedEf = ef;
  }

  /** A scratch region of at least `bytes`, reused across calls (contents are not kept). */
  private scratch(bytes: number): number {
    if (bytes > this.scratchBytes) {
      const wasm = this.wasm!;
      if (this.scratchPtr) wasm.free(this.scratchPtr);
      this.scratchBytes = Math.max(bytes, Math.min(this.scratchBytes * 2, INSERT_SLICE_BYTES), 1024);
      this.scratchPtr = wasm.alloc(this.scratchBytes);
    }
    return this.scratchPtr;
  }

  private refreshViews(): void {
    const buffer = this.wasm!.memory.buffer;
    if (buffer !== this.lastBuffer) {
      this.lastBuffer = buffer;
      this.f32 = new Float32Array(buffer);
      this.u32 = new Uint32Array(buffer);
    }
  }

  private vectorError(rc: number, what: string, id?: number): QuartzError {
    const subject = id === undefined ? what : `${what} for id ${id}`;
    if (rc === E_NONFINITE) return invalid(`${subject} has a non-finite value (NaN or Infinity)`);
    if (rc === E_ZERO) return invalid(`${subject} is all zeros, which has no cosine direction`);
    return new QuartzError(ErrorCode.INTERNAL, `HNSW core returned error ${rc} for ${subject}`);
  }
}

/**
 * Sets the byte limit every index checks in checkRoomFor (undefined: back to the real 3.5 GiB),
 * so tests reach it with a few vectors. Internal: not exported from the package.
 * @example
 * setHnswByteLimitForTests(4 << 20);
 */
export function setHnswByteLimitForTests(bytes: number | undefined): void {
  indexByteLimit = bytes ?? MAX_INDEX_BYTES;
}
