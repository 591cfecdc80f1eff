/**
 * One vector collection: string ids mapped to internal u32 ids, metadata and original values
 * in JS, the HNSW graph in its own WASM instance, and persistence through the collection's
 * storage unit (`vec/<tenant>/<collection>`):
 *
 * - every mutation call is planned (internal ids assigned), written to the change log as one
 *   atomic `batch()` (split into entries under the port's 1 MiB limit), and only then applied
 *   in memory and acknowledged;
 * - a checkpoint writes the whole state to a snapshot blob, then in one atomic batch points
 *   `s` at it and trims the log it covers. A crash between the steps leaves the old pointer and
 *   the full log, so nothing acknowledged is lost and nothing is applied twice;
 * - open loads the pointed-to snapshot, replays the log after it, and deletes orphaned blobs.
 *
 * KV keys: `c` config JSON · `n` live count u32 · `s` snapshot pointer JSON · `l…` log (codec.ts).
 */
import { ErrorCode, QuartzError, isQuartzError } from '../../core/errors.js';
import { HnswIndex } from '../../core/hnsw.js';
import { cursorFromName, nameFromCursor } from '../list-cursor.js';
import type { EngineContext } from '../context.js';
import { consoleLogger } from '../../ports/logger.js';
import { lowerBound } from '../../ports/sorted-strings.js';
import type { BatchOp, UnitStorage } from '../../ports/storage.js';
import {
  LOG_DELETE,
  LOG_UPSERT,
  decodeLogChunk,
  decodeSnapshot,
  encodeLogChunks,
  encodeSnapshot,
  logKey,
  parseLogKey,
  type DeleteRecord,
  type LogEntry,
  type SnapshotContents,
  type SnapshotRecord,
  type UpsertRecord,
} from './codec.js';
import { FieldIndexes } from './field-index.js';
import { refuseUnknownOptions } from '../known-options.js';
import { compileFilter, type Metadata } from './filter.js';
import {
  MAX_EF,
  MAX_ID_BYTES,
  MAX_K,
  validateId,
  validateInt,
  validateMetadata,
  validateNewId,
  validateQueryValues,
  validateValues,
  type Metric,
} from './validate.js';

export interface CollectionConfig {
  name: string;
  dims: number;
  metric: Metric;
  M: number;
  efConstruction: number;
  created_at: number;
}

export interface CollectionInfo extends CollectionConfig {
  count: number;
}

/** When a collection checkpoints on its own (whichever comes first). */
export interface SnapshotPolicy {
  /** Mutation calls logged since the last snapshot. Default 1000. */
  everyMutations?: number;
  /** Bytes of change log since the last snapshot. Default 8 MiB. */
  everyBytes?: number;
}

export interface UpsertVector {
  id: string;
  values: ArrayLike<number>;
  metadata?: Metadata;
}

/** The keys of UpsertVector and QueryRequest (the records make the compiler check the lists are complete). */
const UPSERT_VECTOR_KEYS = Object.keys({ id: true, values: true, metadata: true } satisfies Record<keyof UpsertVector, true>);
const QUERY_KEYS = Object.keys({
  vector: true,
  id: true,
  k: true,
  ef: true,
  threshold: true,
  filter: true,
  include_metadata: true,
  include_values: true,
} satisfies Record<keyof QueryRequest, true>);

export interface VectorRecord {
  id: string;
  values: number[];
  metadata: Metadata;
}

export interface QueryRequest {
  /** The query vector; give this or `id`. */
  vector?: ArrayLike<number>;
  /** Query with a stored vector's values (the stored vector itself is among the matches). */
  id?: string;
  /** 1–1000. */
  k: number;
  /** Search breadth; at least k is used. */
  ef?: number;
  /**
   * Keeps only matches at least this similar: for cosine and dot, `score >= threshold`
   * (scores are similarities, higher is better); for l2, `score <= threshold` (scores are
   * Euclidean distances, lower is better).
   */
  threshold?: number;
  filter?: unknown;
  include_metadata?: boolean;
  include_values?: boolean;
}

export interface QueryMatch {
  id: string;
  score: number;
  metadata?: Metadata;
  values?: number[];
}

export interface ListOptions {
  cursor?: string | null;
  /** 1–1000, default 100. */
  limit?: number;
  include_metadata?: boolean;
  include_values?: boolean;
}

export interface ListPage {
  vectors: { id: string; metadata?: Metadata; values?: number[] }[];
  /** Pass back to get the next page; null on the last page. */
  cursor: string | null;
}

export const MAX_UPSERT_BATCH = 10_000;

/** Vectors checked and copied (values to f32, metadata to JSON bytes) by id, ready to apply. */
export type PlannedUpsert = Map<string, Omit<UpsertRecord, 'internalId'>>;

/**
 * Checks an upsert against a collection's config and copies what it will store, so the caller
 * may reuse its arrays and objects as soon as the call returns. Needs only the config: the
 * store plans before the collection has finished opening.
 */
export function planUpsert(config: CollectionConfig, vectors: unknown): PlannedUpsert {
  const name = config.name;
  if (!Array.isArray(vectors)) throw invalid(`collection '${name}': upsert takes an array of vectors`);
  if (vectors.length > MAX_UPSERT_BATCH) {
    throw new QuartzError(ErrorCode.TOO_LARGE, `collection '${name}': upsert takes at most ${MAX_UPSERT_BATCH} vectors per call, got ${vectors.length}`);
  }
  const planned: PlannedUpsert = new Map();
  for (let i = 0; i < vectors.length; i++) {
    const v: unknown = vectors[i];
    if (typeof v !== 'object' || v === null) throw invalid(`collection '${name}': each vector must be an object with id and values`);
    // A misspelt metadata would be dropped unnoticed.
    refuseUnknownOptions(v, UPSERT_VECTOR_KEYS, `collection '${name}': vectors[${i}]`, 'field');
    const { id, values, metadata } = v as UpsertVector;
    const idBytes = validateNewId(id, name);
    const f32 = validateValues(values, config.dims, name, id, config.metric);
    const { json } = validateMetadata(metadata, name, id);
    planned.delete(id); // keeps insertion order = last occurrence
    planned.set(id, { id, idBytes, values: f32, metadataJson: json });
  }
  return planned;
}
const DEFAULT_POLICY: Required<SnapshotPolicy> = { everyMutations: 1000, everyBytes: 8 * 1024 * 1024 };
const SNAPSHOT_PREFIX = 'snap/';
const KEY_CONFIG = new Uint8Array([0x63]); // "c"
const KEY_COUNT = new Uint8Array([0x6e]); // "n"
const KEY_POINTER = new Uint8Array([0x73]); // "s"
const LOG_END = new Uint8Array([0x6d]); // "m": just past every "l…" key
/** Log entries read per scan on open: at most 16 MiB in memory at once. */
const REPLAY_PAGE = 16;
/** Log bytes, as a share of the last snapshot's size, below which no automatic checkpoint runs. */
const SNAPSHOT_GROWTH = 0.25;
/** JS heap per vector slot beside its values: id string, map entries, metadata object (a typical small one). */
const HEAP_BYTES_PER_VECTOR = 256;
/** JS heap of an open collection beside its vectors: the object, its maps, its instance's wrapper. */
const COLLECTION_HEAP_BYTES = 8 * 1024;
/** Fixed so a replayed collection draws the same HNSW levels as the original. */
const INDEX_SEED = 0x51a27;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function invalid(message: string): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, message);
}

/** Parses stored JSON; damage is CORRUPT_DATA naming what held it, never a bare SyntaxError. */
function parseStored<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(decoder.decode(bytes)) as T;
  } catch {
    throw new QuartzError(ErrorCode.CORRUPT_DATA, `${what} holds malformed JSON`);
  }
}

/**
 * A collection whose stored snapshot or log fails its checks. Nothing kept can rebuild it: the log
 * before the snapshot was dropped when the snapshot was written, and the snapshot's one CRC cannot
 * tell which of its records are intact (a damaged value would be served as if it were right).
 */
export class DamagedCollection extends QuartzError {
  constructor(name: string, cause: QuartzError) {
    super(
      cause.code,
      `collection '${name}' is damaged and cannot be opened (${cause.message}); its vectors cannot be read: delete the collection and create it again, then upsert its vectors again or restore them from a backup`,
      { cause, details: { collection: name, damage: cause.message }, exposeMessage: true },
    );
  }
}

function snapshotKey(seq: number): string {
  return `${SNAPSHOT_PREFIX}${seq.toString().padStart(16, '0')}`;
}

function u32Bytes(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

function decodeCursor(cursor: string, collection: string): string {
  try {
    return nameFromCursor(cursor, MAX_ID_BYTES);
  } catch {
    throw invalid(`collection '${collection}': cursor '${cursor.slice(0, 64)}' is not one this API returned`);
  }
}

/** Two sorted id lists merged, each id once and only if `live` has it. */
function mergeLive(a: string[], b: string[], live: Map<string, number>): string[] {
  const merged: string[] = [];
  let i = 0;
  let j = 0;
  let last: string | undefined;
  while (i < a.length || j < b.length) {
    const id = j >= b.length || (i < a.length && a[i]! <= b[j]!) ? a[i++]! : b[j++]!;
    if (id !== last && live.has(id)) merged.push(id);
    last = id;
  }
  return merged;
}

/**
 * Puts matches of equal score (already best first) in id order. The index leaves ties in the
 * order of its internal slots, which follow the history of upserts and deletes, not anything a
 * caller sees. An insertion sort within runs of equal scores: k comparisons when nothing ties.
 */
function orderTiesById(matches: QueryMatch[]): void {
  for (let i = 1; i < matches.length; i++) {
    const m = matches[i]!;
    let j = i;
    while (j > 0 && matches[j - 1]!.score === m.score && matches[j - 1]!.id > m.id) {
      matches[j] = matches[j - 1]!;
      j--;
    }
    matches[j] = m;
  }
}

/** The in-memory half of a collection; built by open, restore and replay alike. */
class State {
  readonly ids: (string | undefined)[] = [];
  readonly byId = new Map<string, number>();
  readonly metadata: (Metadata | undefined)[] = [];
  /** Original values (the index normalises cosine vectors), `dims` floats per internal id. */
  values: Float32Array;
  /** Internal ids below `nextId` that are free, in the order they were freed. */
  readonly free = new Set<number>();
  nextId = 0;
  count = 0;
  readonly fields = new FieldIndexes();
  /**
   * The ids in code-unit order as of the last listing (undefined: not built), and the ids that
   * became live or stopped being live since. A listing after writes applies those changes (a
   * binary search and a splice each, or one merge when there are many) where sorting every id
   * again cost O(n log n) for each page a client read while another wrote (70 ms at 200,000 ids).
   */
  private sorted: string[] | undefined;
  private added: string[] = [];
  private removed: string[] = [];

  constructor(
    readonly dims: number,
    readonly index: HnswIndex,
  ) {
    this.values = new Float32Array(dims * 64);
  }

  valuesOf(internal: number): Float32Array {
    return this.values.subarray(internal * this.dims, (internal + 1) * this.dims);
  }

  /** A vector's values as a new array of numbers (what Array.from gives, ~10× cheaper than its iteration). */
  valuesArray(internal: number): number[] {
    const values = this.valuesOf(internal);
    const out = new Array<number>(values.length);
    for (let i = 0; i < values.length; i++) out[i] = values[i]!;
    return out;
  }

  /** Ids in code-unit order, brought up to date lazily after a mutation. */
  sortedIds(): string[] {
    let sorted = this.sorted;
    if (sorted === undefined) {
      sorted = [...this.byId.keys()].sort();
    } else if (this.added.length + this.removed.length === 0) {
      return sorted;
    } else if ((this.added.length + this.removed.length) * 64 <= sorted.length) {
      // An id in both lists (removed, then live again, or the other way round) ends as byId says.
      for (const id of this.removed) {
        if (this.byId.has(id)) continue;
        const at = lowerBound(sorted, id);
        if (sorted[at] === id) sorted.splice(at, 1);
      }
      for (const id of this.added) {
        if (!this.byId.has(id)) continue;
        const at = lowerBound(sorted, id);
        if (sorted[at] !== id) sorted.splice(at, 0, id);
      }
    } else {
      sorted = mergeLive(sorted, this.added.sort(), this.byId);
    }
    this.sorted = sorted;
    this.added = [];
    this.removed = [];
    return sorted;
  }

  /** Notes a change of the live ids for sortedIds, while it keeps a sorted list. */
  private idChange(list: string[], id: string): void {
    if (this.sorted === undefined) return;
    list.push(id);
    // Past the live count a whole sort is as cheap, and the lists stop growing.
    if (this.added.length + this.removed.length > this.byId.size + 1024) {
      this.sorted = undefined;
      this.added = [];
      this.removed = [];
    }
  }

  /**
   * Applies one decoded log chunk (also used by replay, so it trusts the recorded internal ids).
   * The index's room is checked before anything changes, so a TOO_LARGE leaves the state as it was.
   */
  apply(entry: LogEntry): void {
    if (entry.kind === LOG_UPSERT) {
      this.index.checkRoomFor(entry.records.length);
      const ids = new Uint32Array(entry.records.length);
      const flat = new Float32Array(entry.records.length * this.dims);
      entry.records.forEach((r, i) => {
        const previous = this.byId.get(r.id);
        if (previous !== undefined && previous !== r.internalId) this.remove(previous);
        this.claim(r.internalId, r.id);
        const old = this.metadata[r.internalId];
        if (old !== undefined) this.fields.remove(r.internalId, old);
        const metadata = parseStored<Metadata>(r.metadataJson, `metadata of vector '${r.id}'`);
        this.metadata[r.internalId] = metadata;
        this.fields.add(r.internalId, metadata);
        this.valuesOf(r.internalId).set(r.values);
        ids[i] = r.internalId;
        flat.set(r.values, i * this.dims);
      });
      this.index.addBatch(ids, flat);
    } else {
      for (const r of entry.records) {
        if (this.byId.get(r.id) === r.internalId) this.remove(r.internalId);
      }
    }
  }

  private claim(internal: number, id: string): void {
    if (this.ids[internal] === undefined) this.count++;
    else if (this.ids[internal] !== id) {
      this.byId.delete(this.ids[internal]!);
      this.idChange(this.removed, this.ids[internal]!);
    }
    if (!this.byId.has(id)) this.idChange(this.added, id);
    this.ids[internal] = id;
    this.byId.set(id, internal);
    this.free.delete(internal);
    for (let i = this.nextId; i < internal; i++) this.free.add(i);
    this.nextId = Math.max(this.nextId, internal + 1);
    this.growValues(internal + 1);
  }

  /** Makes room for the values of internal ids below `slots`; INSUFFICIENT_STORAGE if the heap cannot. */
  growValues(slots: number): void {
    if (slots * this.dims <= this.values.length) return;
    let size = this.values.length * 2;
    while (size < slots * this.dims) size *= 2;
    let grown: Float32Array;
    try {
      grown = new Float32Array(size);
    } catch (err) {
      throw new QuartzError(ErrorCode.INSUFFICIENT_STORAGE, `no memory for ${slots} vectors of ${this.dims} dimensions (${size * 4} bytes of values)`, { cause: err });
    }
    grown.set(this.values);
    this.values = grown;
  }

  private remove(internal: number): void {
    const id = this.ids[internal];
    if (id === undefined) return;
    this.index.delete(internal);
    this.byId.delete(id);
    this.fields.remove(internal, this.metadata[internal]!);
    this.ids[internal] = undefined;
    this.metadata[internal] = undefined;
    this.free.add(internal);
    this.count--;
    this.idChange(this.removed, id);
  }

  /** Live (internal id, metadata) pairs. */
  *live(): Generator<[number, Metadata]> {
    for (let internal = 0; internal < this.nextId; internal++) {
      if (this.ids[internal] !== undefined) yield [internal, this.metadata[internal]!];
    }
  }

  records(): SnapshotRecord[] {
    const out: SnapshotRecord[] = [];
    for (let internal = 0; internal < this.nextId; internal++) {
      const id = this.ids[internal];
      if (id === undefined) continue;
      out.push({
        internalId: internal,
        id,
        metadataJson: encoder.encode(JSON.stringify(this.metadata[internal])),
        values: this.valuesOf(internal),
      });
    }
    return out;
  }
}

/** Replay met a log entry the index has no room for (TOO_LARGE, refused before it changed anything). */
class UnappliableEntry extends Error {
  constructor(
    readonly seq: number,
    override readonly cause: QuartzError,
  ) {
    super(`change-log entry ${seq} cannot be applied`);
  }
}

/** A log mutation that is durable and not yet covered by a snapshot. */
interface LoggedMutation {
  seq: number;
  chunks: number;
  bytes: number;
}

export class Collection {
  private state: State;
  private closed = false;
  private deleted = false;
  /** Set when an in-memory apply failed after its log write: the collection must be reopened. */
  private broken: Error | undefined;
  /** The live count storage holds once `broken` is set (the half-applied state's own is not). */
  private brokenCount = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private lastSeq: number;
  private snapshotSeq: number;
  private snapshotBlob: string | undefined;
  private snapshotBytes: number;
  private logged: LoggedMutation[];
  private logBytes: number;
  /** Bumped by restore so an overlapping checkpoint knows its snapshot is stale. */
  private generation = 0;
  private checkpointing: Promise<void> | undefined;
  /** The last background checkpoint failure (the log still holds everything; the next trigger retries). */
  lastCheckpointError: unknown;
  /** A query's f32 vector: the index copies it into its own memory, so one buffer serves every query. */
  private readonly queryScratch: Float32Array;

  private constructor(
    private readonly ctx: EngineContext,
    private readonly tenantId: string,
    readonly config: CollectionConfig,
    private readonly unit: UnitStorage,
    private readonly policy: Required<SnapshotPolicy>,
    init: { state: State; lastSeq: number; snapshotSeq: number; snapshotBlob: string | undefined; snapshotBytes: number; logged: LoggedMutation[]; logBytes: number },
  ) {
    this.state = init.state;
    this.lastSeq = init.lastSeq;
    this.snapshotSeq = init.snapshotSeq;
    this.snapshotBlob = init.snapshotBlob;
    this.snapshotBytes = init.snapshotBytes;
    this.logged = init.logged;
    this.logBytes = init.logBytes;
    this.queryScratch = new Float32Array(config.dims);
  }

  /**
   * The storage unit that holds one collection.
   * @example
   * Collection.unitName('t1', 'docs'); // 'vec/t1/docs'
   */
  static unitName(tenantId: string, name: string): string {
    return `vec/${tenantId}/${name}`;
  }

  /**
   * Writes a new, empty collection's config into its (already cleared) unit.
   * @example
   * await Collection.initialise(await ctx.storage.unit('vec/t1/docs'), config);
   */
  static async initialise(unit: UnitStorage, config: CollectionConfig): Promise<void> {
    await unit.kv.batch([
      { type: 'put', key: KEY_CONFIG, value: encoder.encode(JSON.stringify(config)) },
      { type: 'put', key: KEY_COUNT, value: u32Bytes(0) },
    ]);
  }

  /**
   * The live vector count as last persisted, without loading the collection.
   * @example
   * const count = await Collection.storedCount(await ctx.storage.unit('vec/t1/docs'));
   */
  static async storedCount(unit: UnitStorage): Promise<number> {
    const bytes = await unit.kv.get(KEY_COUNT);
    return bytes === undefined || bytes.length !== 4 ? 0 : new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
  }

  /**
   * Loads a collection: the newest snapshot, then the change log after it.
   * @example
   * const docs = await Collection.open(ctx, 't1', config, await ctx.storage.unit('vec/t1/docs'));
   */
  static async open(ctx: EngineContext, tenantId: string, config: CollectionConfig, unit: UnitStorage, policy: SnapshotPolicy = {}): Promise<Collection> {
    // Log entries the index has no room for: written by a build that logged before it checked,
    // they never applied, and their callers were answered with an error. Replay leaves each out
    // (starting over, so none is half-applied), then drops them from the log and reports them.
    const skip = new Set<number>();
    for (;;) {
      try {
        return await Collection.load(ctx, tenantId, config, unit, policy, skip);
      } catch (err) {
        if (isQuartzError(err, ErrorCode.CHECKSUM_MISMATCH) || isQuartzError(err, ErrorCode.CORRUPT_DATA)) throw new DamagedCollection(config.name, err);
        if (!(err instanceof UnappliableEntry)) throw err;
        skip.add(err.seq);
        (ctx.logger ?? consoleLogger).error(
          `collection '${config.name}' of tenant '${tenantId}': change-log entry ${err.seq} cannot be applied (${err.cause.message}); it was never acknowledged, and is dropped from the log`,
          { tenant: tenantId, collection: config.name, seq: err.seq },
        );
      }
    }
  }

  private static async load(ctx: EngineContext, tenantId: string, config: CollectionConfig, unit: UnitStorage, policy: SnapshotPolicy, skip: Set<number>): Promise<Collection> {
    const what = `collection '${config.name}'`;
    let state = Collection.emptyState(config);
    let snapshotSeq = 0;
    let snapshotBlob: string | undefined;
    let snapshotBytes = 0;
    const pointerBytes = await unit.kv.get(KEY_POINTER);
    try {
      if (pointerBytes !== undefined) {
        const pointer = parseStored<{ seq: number; blob: string }>(pointerBytes, `${what} snapshot pointer`);
        if (!Number.isSafeInteger(pointer.seq) || typeof pointer.blob !== 'string') {
          throw new QuartzError(ErrorCode.CORRUPT_DATA, `${what}: the snapshot pointer is malformed`);
        }
        const bytes = await unit.blobs.get(pointer.blob);
        if (bytes === undefined) throw new QuartzError(ErrorCode.CORRUPT_DATA, `${what}: snapshot blob '${pointer.blob}' is missing`);
        state.index.dispose();
        state = Collection.stateFromSnapshot(config, bytes, `${what} snapshot '${pointer.blob}'`);
        snapshotSeq = pointer.seq;
        snapshotBlob = pointer.blob;
        snapshotBytes = bytes.length;
      }
      const logged: LoggedMutation[] = [];
      let logBytes = 0;
      let lastSeq = snapshotSeq;
      let start = logKey(snapshotSeq + 1, 0);
      const dropped: BatchOp[] = [];
      for (;;) {
        const page = await unit.kv.scan({ start, end: LOG_END, limit: REPLAY_PAGE });
        for (const { key, value } of page) {
          const { seq, chunk } = parseLogKey(key);
          if (skip.has(seq)) {
            dropped.push({ type: 'delete', key });
            continue;
          }
          const entry = decodeLogChunk(value, config.dims, `${what} change-log entry ${seq}.${chunk}`);
          try {
            state.apply(entry);
          } catch (err) {
            if (isQuartzError(err, ErrorCode.TOO_LARGE)) throw new UnappliableEntry(seq, err);
            throw err;
          }
          const last = logged[logged.length - 1];
          if (last !== undefined && last.seq === seq) {
            last.chunks++;
            last.bytes += value.length;
          } else {
            logged.push({ seq, chunks: 1, bytes: value.length });
          }
          logBytes += value.length;
          lastSeq = seq;
        }
        if (page.length < REPLAY_PAGE) break;
        const { seq, chunk } = parseLogKey(page[page.length - 1]!.key);
        start = logKey(seq, chunk + 1);
      }
      if (dropped.length > 0) await unit.kv.batch([...dropped, { type: 'put', key: KEY_COUNT, value: u32Bytes(state.count) }]);
      // Blobs other than the pointed-to one are leftovers of a checkpoint a crash cut short.
      for (const blob of await unit.blobs.list(SNAPSHOT_PREFIX)) {
        if (blob.key !== snapshotBlob) await unit.blobs.delete(blob.key);
      }
      return new Collection(ctx, tenantId, config, unit, { ...DEFAULT_POLICY, ...policy }, { state, lastSeq, snapshotSeq, snapshotBlob, snapshotBytes, logged, logBytes });
    } catch (err) {
      state.index.dispose();
      throw err;
    }
  }

  private static newIndex(config: CollectionConfig): HnswIndex {
    return new HnswIndex({ dims: config.dims, metric: config.metric, M: config.M, efConstruction: config.efConstruction, seed: INDEX_SEED });
  }

  private static emptyState(config: CollectionConfig): State {
    return new State(config.dims, Collection.newIndex(config));
  }

  private static stateFromSnapshot(config: CollectionConfig, bytes: Uint8Array, what: string): State {
    const snap = decodeSnapshot(bytes, what);
    if (snap.dims !== config.dims || snap.metric !== config.metric) {
      throw invalid(`${what} holds ${snap.dims}-dimension ${snap.metric} vectors; collection '${config.name}' is ${config.dims}-dimension ${config.metric}`);
    }
    const index = Collection.indexFromSnapshot(config, snap);
    const state = new State(config.dims, index);
    try {
      if (index.size !== snap.records.length) throw new QuartzError(ErrorCode.CORRUPT_DATA, `${what}: its index holds ${index.size} vectors but it lists ${snap.records.length}`);
      for (const r of snap.records) {
        if (state.byId.has(r.id) || state.ids[r.internalId] !== undefined || !index.has(r.internalId)) {
          throw new QuartzError(ErrorCode.CORRUPT_DATA, `${what}: record '${r.id}' (internal ${r.internalId}) is duplicated or missing from its index`);
        }
        // Direct fill: the index already holds every vector, so no addBatch here.
        state.ids[r.internalId] = r.id;
        state.byId.set(r.id, r.internalId);
        state.metadata[r.internalId] = parseStored<Metadata>(r.metadataJson, `${what}: metadata of vector '${r.id}'`);
        state.nextId = Math.max(state.nextId, r.internalId + 1);
        state.count++;
      }
      const values = new Float32Array(Math.max(64, state.nextId) * config.dims);
      for (const r of snap.records) values.set(r.values, r.internalId * config.dims);
      state.values = values;
      for (let i = 0; i < state.nextId; i++) if (state.ids[i] === undefined) state.free.add(i);
      return state;
    } catch (err) {
      index.dispose();
      throw err;
    }
  }

  /**
   * The snapshot's serialized graph, or, when this build cannot read that index format, a graph
   * rebuilt from the snapshot's own copy of the values (slower, but the data stays readable).
   * Cosine unit vectors are taken again from those values: builds before f64 norms stored zeros
   * for vectors with components past ~1.8e19 (they matched nothing, even themselves, until
   * upserted again) and others a last bit off this build's, so equal vectors scored unequally.
   */
  private static indexFromSnapshot(config: CollectionConfig, snap: SnapshotContents): HnswIndex {
    const values = (): [Uint32Array, Float32Array] => {
      const flat = new Float32Array(snap.records.length * config.dims);
      snap.records.forEach((r, i) => flat.set(r.values, i * config.dims));
      return [Uint32Array.from(snap.records, (r) => r.internalId), flat];
    };
    let index: HnswIndex;
    try {
      index = HnswIndex.deserialize(snap.index);
    } catch (err) {
      if (!isQuartzError(err, ErrorCode.UNSUPPORTED_FORMAT)) throw err;
      index = Collection.newIndex(config);
      index.addBatch(...values());
      return index;
    }
    if (config.metric !== 'cosine') return index;
    try {
      index.renormalise(...values());
    } catch (err) {
      index.dispose();
      throw err;
    }
    return index;
  }

  get name(): string {
    return this.config.name;
  }

  /** Live vectors. */
  get count(): number {
    return this.broken === undefined ? this.state.count : this.brokenCount;
  }

  /** A write failed halfway through its apply: every call fails until the collection is closed and opened again. */
  get needsReopen(): boolean {
    return this.broken !== undefined;
  }

  /**
   * Roughly what the open collection holds: its index's wasm memory (which never shrinks), its
   * values, and an estimate of the JS heap for ids, maps and metadata objects per vector slot.
   */
  get memoryBytes(): number {
    if (this.closed) return 0;
    let wasm = 0;
    try {
      wasm = this.state.index.memoryBytes;
    } catch {
      // an index discarded after a failed growth holds no memory
    }
    return COLLECTION_HEAP_BYTES + wasm + this.state.values.byteLength + this.state.nextId * HEAP_BYTES_PER_VECTOR;
  }

  describe(): CollectionInfo {
    return { ...this.config, count: this.state.count };
  }

  private check(): void {
    if (this.closed) {
      if (this.deleted) throw new QuartzError(ErrorCode.NOT_FOUND, `collection '${this.name}' does not exist`);
      throw new QuartzError(ErrorCode.STORAGE_CLOSED, `collection '${this.name}' is closed`);
    }
    if (this.broken) {
      throw new QuartzError(ErrorCode.INTERNAL, `collection '${this.name}' failed to apply a write and must be reopened (the store reopens it on its next call): ${this.broken.message}`, { cause: this.broken });
    }
  }

  /** Runs mutations one at a time so log order, apply order and sequence numbers agree. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      this.check();
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Logs one mutation atomically, then applies it. Returns the change in live count. */
  private async commit(entry: LogEntry): Promise<number> {
    const seq = this.lastSeq + 1;
    const chunks = encodeLogChunks(entry);
    const ops: BatchOp[] = chunks.map((value, i) => ({ type: 'put', key: logKey(seq, i), value }));
    const before = this.state.count;
    const countAfter = this.predictCount(entry);
    ops.push({ type: 'put', key: KEY_COUNT, value: u32Bytes(countAfter) });
    await this.unit.kv.batch(ops);
    try {
      this.state.apply(entry);
    } catch (err) {
      // The checks before the log write cover what is known to fail (the index's room, the
      // values' heap); this is what they cannot foresee, such as wasm memory failing to grow.
      // The state is half-applied: take the entry back out of the log so that reopening (the
      // store does it on the next call) neither fails on it again nor keeps a write the caller
      // was told failed.
      this.broken = err as Error;
      this.brokenCount = before;
      let undone = true;
      try {
        await this.unit.kv.batch([
          ...chunks.map((_, i): BatchOp => ({ type: 'delete', key: logKey(seq, i) })),
          { type: 'put', key: KEY_COUNT, value: u32Bytes(before) },
        ]);
      } catch {
        undone = false;
        this.brokenCount = countAfter;
      }
      const code = isQuartzError(err) ? err.code : ErrorCode.INTERNAL;
      const outcome = undone ? 'it was not stored' : 'it stays logged and is applied again when the collection reopens';
      throw new QuartzError(code, `collection '${this.name}': applying the write failed, and ${outcome}: ${(err as Error).message}`, { cause: err });
    }
    this.lastSeq = seq;
    let bytes = 0;
    for (const c of chunks) bytes += c.length;
    this.logged.push({ seq, chunks: chunks.length, bytes });
    this.logBytes += bytes;
    const delta = this.state.count - before;
    if (delta !== 0) this.ctx.usage.add(this.tenantId, 'vectors_stored', delta);
    return delta;
  }

  private predictCount(entry: LogEntry): number {
    let count = this.state.count;
    if (entry.kind === LOG_UPSERT) {
      for (const r of entry.records) if (!this.state.byId.has(r.id)) count++;
    } else {
      count -= entry.records.length;
    }
    return count;
  }

  /**
   * Checkpoints in the background once the policy's count or size is reached — and the log has
   * grown to a quarter of the last snapshot, so a big collection is not rewritten whole for
   * every few MiB of change (replay stays bounded by that quarter too).
   */
  private afterMutation(): void {
    const reached = this.logged.length >= this.policy.everyMutations || this.logBytes >= this.policy.everyBytes;
    const due = reached && this.logBytes >= this.snapshotBytes * SNAPSHOT_GROWTH;
    if (due && this.checkpointing === undefined) {
      this.checkpoint().catch((err: unknown) => {
        this.lastCheckpointError = err;
      });
    }
  }

  /**
   * Inserts or replaces vectors. Durable (logged) before it resolves; atomic for the whole call.
   * Within one call a repeated id keeps its last occurrence.
   * @example
   * await docs.upsert([{ id: 'a', values: [0.1, 0.2, 0.3], metadata: { lang: 'en' } }]);
   */
  async upsert(vectors: UpsertVector[]): Promise<{ upserted: number }> {
    this.check();
    return this.upsertPlanned(planUpsert(this.config, vectors));
  }

  /** Applies vectors `planUpsert` checked and copied against this collection's config. */
  async upsertPlanned(planned: PlannedUpsert): Promise<{ upserted: number }> {
    this.check();
    if (planned.size === 0) return { upserted: 0 };
    await this.exclusive(async () => {
      const freeIds = this.state.free.values();
      let next = this.state.nextId;
      const records: UpsertRecord[] = [];
      for (const r of planned.values()) {
        let internalId = this.state.byId.get(r.id);
        if (internalId === undefined) {
          const reused = freeIds.next();
          internalId = reused.done ? next++ : reused.value;
        }
        records.push({ ...r, internalId });
      }
      this.makeRoom(records.length, next);
      await this.commit({ kind: LOG_UPSERT, records });
    });
    this.afterMutation();
    return { upserted: planned.size };
  }

  /**
   * Refuses, before anything is logged, an upsert the apply could not take: more vectors than
   * the index has room for (TOO_LARGE), or values the heap cannot grow to hold (grown now).
   */
  private makeRoom(records: number, slots: number): void {
    try {
      this.state.index.checkRoomFor(records);
    } catch (err) {
      if (!isQuartzError(err, ErrorCode.TOO_LARGE)) throw err;
      throw new QuartzError(ErrorCode.TOO_LARGE, `collection '${this.name}' is full: ${err.message}; nothing was stored`, { cause: err, details: err.details });
    }
    this.state.growValues(slots);
  }

  /**
   * Deletes vectors by id; unknown ids are ignored. Durable before it resolves.
   * @example
   * const { deleted } = await docs.delete(['a', 'b']);
   */
  async delete(ids: string[]): Promise<{ deleted: number }> {
    this.check();
    if (!Array.isArray(ids)) throw invalid(`collection '${this.name}': delete takes an array of ids`);
    const wanted = new Set<string>();
    for (const id of ids) {
      validateId(id, this.name);
      wanted.add(id);
    }
    const deleted = await this.exclusive(async () => {
      const records: DeleteRecord[] = [];
      for (const id of wanted) {
        const internalId = this.state.byId.get(id);
        if (internalId !== undefined) records.push({ internalId, id, idBytes: encoder.encode(id) });
      }
      if (records.length === 0) return 0;
      return -(await this.commit({ kind: LOG_DELETE, records }));
    });
    if (deleted > 0) this.afterMutation();
    return { deleted };
  }

  /**
   * One vector by id, or undefined.
   * @example
   * const rec = docs.get('a'); // { id: 'a', values: [...], metadata: {...} }
   */
  get(id: string): VectorRecord | undefined {
    this.check();
    validateId(id, this.name);
    const internal = this.state.byId.get(id);
    if (internal === undefined) return undefined;
    return { id, values: this.state.valuesArray(internal), metadata: structuredClone(this.state.metadata[internal]!) };
  }

  /**
   * Pages through vectors in id order (UTF-16 code-unit order).
   * @example
   * let page = docs.list({ limit: 100 });
   * while (page.cursor) page = docs.list({ cursor: page.cursor, limit: 100 });
   */
  list(options: ListOptions = {}): ListPage {
    this.check();
    options ??= {}; // JavaScript callers pass null for "no options"
    const limit = options.limit === undefined ? 100 : validateInt(options.limit, 1, 1000, `collection '${this.name}': list limit`);
    const sorted = this.state.sortedIds();
    let from = 0;
    if (options.cursor !== undefined && options.cursor !== null) {
      if (typeof options.cursor !== 'string') throw invalid(`collection '${this.name}': cursor must be a string`);
      const after = decodeCursor(options.cursor, this.name);
      let lo = 0;
      let hi = sorted.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (sorted[mid]! <= after) lo = mid + 1;
        else hi = mid;
      }
      from = lo;
    }
    const page = sorted.slice(from, from + limit);
    const vectors = page.map((id) => {
      const internal = this.state.byId.get(id)!;
      const out: ListPage['vectors'][number] = { id };
      if (options.include_metadata) out.metadata = structuredClone(this.state.metadata[internal]!);
      if (options.include_values) out.values = this.state.valuesArray(internal);
      return out;
    });
    const more = from + limit < sorted.length;
    return { vectors, cursor: more && page.length > 0 ? cursorFromName(page[page.length - 1]!) : null };
  }

  /**
   * Nearest neighbours, best first. Scores are similarities for cosine and dot (higher is
   * better) and Euclidean distances for l2 (lower is better); see QueryRequest.threshold.
   * With a filter, only vectors whose metadata match are returned, and k of them whenever
   * k exist.
   * @example
   * const { matches } = docs.query({ vector: q, k: 5, filter: { lang: 'en' }, include_metadata: true });
   *
   * With `options.sharedMetadata`, a match's metadata is the collection's own object rather than a copy:
   * for a caller that only serialises it before its next call (the HTTP API writes it as JSON at
   * once), which saves a structuredClone per match. Never modify it, nor keep it across a write.
   */
  query(request: QueryRequest, options: { sharedMetadata?: boolean } | null = {}): { matches: QueryMatch[] } {
    this.check();
    if (typeof request !== 'object' || request === null) throw invalid(`collection '${this.name}': query takes an object`);
    // A misspelt filter or threshold would answer matches the caller meant to leave out.
    refuseUnknownOptions(request, QUERY_KEYS, `collection '${this.name}': query`);
    const k = validateInt(request.k, 1, MAX_K, `collection '${this.name}': k`);
    const ef = request.ef === undefined ? undefined : validateInt(request.ef, 1, MAX_EF, `collection '${this.name}': ef`);
    if (request.threshold !== undefined && (typeof request.threshold !== 'number' || !Number.isFinite(request.threshold))) {
      throw invalid(`collection '${this.name}': threshold must be a finite number`);
    }
    let vector: Float32Array;
    if (request.vector !== undefined && request.id !== undefined) throw invalid(`collection '${this.name}': query takes either vector or id, not both`);
    if (request.vector !== undefined) {
      vector = validateQueryValues(request.vector, this.config.dims, this.name, this.config.metric, this.queryScratch);
    } else if (request.id !== undefined) {
      validateId(request.id, this.name);
      const internal = this.state.byId.get(request.id);
      if (internal === undefined) throw new QuartzError(ErrorCode.NOT_FOUND, `collection '${this.name}' has no vector '${request.id}'`);
      vector = this.state.valuesOf(internal).slice();
    } else {
      throw invalid(`collection '${this.name}': query needs a vector or an id`);
    }
    let allowed: Uint32Array | undefined;
    if (request.filter !== undefined && request.filter !== null) {
      allowed = this.allowSet(request.filter);
      if (allowed !== undefined && allowed.length === 0) return { matches: [] };
    }
    if (this.state.count === 0) return { matches: [] };
    const result = this.state.index.search(vector, Math.min(k, this.state.count), {
      // Without an ef the index's own default (max(64, k)) applies: ef = k alone gives poor recall.
      ...(ef === undefined ? {} : { ef: Math.max(ef, k) }),
      ...(allowed === undefined ? {} : { filter: allowed }),
    });
    const matches: QueryMatch[] = [];
    const lowerIsBetter = this.config.metric === 'l2';
    for (let i = 0; i < result.ids.length; i++) {
      const internal = result.ids[i]!;
      const id = this.state.ids[internal];
      if (id === undefined) continue;
      // The index reports squared L2; the API promises the plain Euclidean distance.
      const score = lowerIsBetter ? Math.sqrt(result.scores[i]!) : result.scores[i]!;
      if (request.threshold !== undefined && (lowerIsBetter ? score > request.threshold : score < request.threshold)) continue;
      const match: QueryMatch = { id, score };
      if (request.include_metadata) {
        const metadata = this.state.metadata[internal]!;
        match.metadata = options?.sharedMetadata === true ? metadata : structuredClone(metadata);
      }
      if (request.include_values) match.values = this.state.valuesArray(internal);
      matches.push(match);
    }
    orderTiesById(matches);
    return { matches };
  }

  /**
   * Internal ids whose metadata match (in no particular order: the index takes a set), or
   * undefined when every vector does. `$eq`/`$in` conditions narrow the candidates through
   * per-field indexes; candidates are checked against the whole filter unless the filter is
   * nothing but the equality tests the indexes answered.
   */
  private allowSet(filter: unknown): Uint32Array | undefined {
    const { match, plan, exact } = compileFilter(filter);
    const state = this.state;
    const candidates = state.fields.candidates(plan, () => state.live());
    const { ids, metadata } = state;
    if (candidates !== undefined) {
      const out = new Uint32Array(candidates.size);
      let n = 0;
      if (exact) for (const internal of candidates.ids) out[n++] = internal;
      else for (const internal of candidates.ids) if (match(metadata[internal]!)) out[n++] = internal;
      return n === state.count ? undefined : out.subarray(0, n);
    }
    const out = new Uint32Array(state.count);
    let n = 0;
    for (let internal = 0; internal < state.nextId; internal++) {
      if (ids[internal] !== undefined && match(metadata[internal]!)) out[n++] = internal;
    }
    return n === state.count ? undefined : out.subarray(0, n);
  }

  /**
   * The whole collection as bytes (format in docs/vectors.md), restorable with `restore`.
   * @example
   * const bytes = docs.snapshot();
   * await other.restore(bytes);
   */
  snapshot(): Uint8Array {
    this.check();
    return this.encodeState(this.lastSeq);
  }

  private encodeState(seq: number): Uint8Array {
    return encodeSnapshot({ dims: this.config.dims, metric: this.config.metric, seq, records: this.state.records(), index: this.state.index.serialize() });
  }

  /**
   * Replaces the collection's contents with a snapshot's, durably (it becomes the newest
   * snapshot and the log before it is dropped). The snapshot must match dims and metric.
   * @example
   * await docs.restore(await fetchBackup());
   */
  async restore(bytes: Uint8Array): Promise<void> {
    this.check();
    const incoming = Collection.stateFromSnapshot(this.config, bytes, `snapshot restored into collection '${this.name}'`);
    try {
      await this.exclusive(async () => {
        this.generation++;
        const seq = this.lastSeq + 1;
        const previous = this.state;
        const before = previous.count;
        this.state = incoming;
        try {
          const blob = snapshotKey(seq);
          const bytes = this.encodeState(seq);
          await this.unit.blobs.put(blob, bytes);
          await this.pointAt(seq, blob, bytes.length);
        } catch (err) {
          this.state = previous;
          throw err;
        }
        previous.index.dispose();
        this.lastSeq = seq;
        const delta = incoming.count - before;
        if (delta !== 0) this.ctx.usage.add(this.tenantId, 'vectors_stored', delta);
      });
    } catch (err) {
      if (this.state !== incoming) incoming.index.dispose();
      throw err;
    }
  }

  /**
   * Writes a snapshot of the current state and trims the change log it covers. Runs on its
   * own after `SnapshotPolicy` thresholds; call it directly to checkpoint now.
   * @example
   * await docs.checkpoint();
   */
  checkpoint(): Promise<void> {
    this.check();
    this.checkpointing ??= this.runCheckpoint().finally(() => {
      this.checkpointing = undefined;
    });
    return this.checkpointing;
  }

  private async runCheckpoint(): Promise<void> {
    // Encoded synchronously: the state here is exactly the state after mutation `seq`.
    const seq = this.lastSeq;
    if (seq === this.snapshotSeq) return;
    const generation = this.generation;
    const blob = snapshotKey(seq);
    // The blob is written outside the write lock so mutations keep flowing meanwhile.
    const bytes = this.encodeState(seq);
    await this.unit.blobs.put(blob, bytes);
    await this.exclusive(async () => {
      if (generation !== this.generation) {
        await this.unit.blobs.delete(blob); // a restore replaced the state meanwhile
        return;
      }
      await this.pointAt(seq, blob, bytes.length);
    });
    this.lastCheckpointError = undefined;
  }

  /**
   * The commit point of a snapshot whose blob is durable: pointer, count and the trim of every
   * log entry up to `seq`, in one atomic batch; then the superseded blob goes.
   */
  private async pointAt(seq: number, blob: string, size: number): Promise<void> {
    const ops: BatchOp[] = [
      { type: 'put', key: KEY_POINTER, value: encoder.encode(JSON.stringify({ seq, blob })) },
      { type: 'put', key: KEY_COUNT, value: u32Bytes(this.state.count) },
    ];
    let covered = 0;
    while (covered < this.logged.length && this.logged[covered]!.seq <= seq) {
      const m = this.logged[covered++]!;
      for (let c = 0; c < m.chunks; c++) ops.push({ type: 'delete', key: logKey(m.seq, c) });
    }
    await this.unit.kv.batch(ops);
    const oldBlob = this.snapshotBlob;
    this.snapshotSeq = seq;
    this.snapshotBlob = blob;
    this.snapshotBytes = size;
    this.logged = this.logged.slice(covered);
    this.logBytes = this.logged.reduce((sum, m) => sum + m.bytes, 0);
    if (oldBlob !== undefined && oldBlob !== blob) {
      // Best effort: the snapshot is committed either way, and open deletes any blob left over.
      await Promise.resolve(this.unit.blobs.delete(oldBlob)).catch(() => undefined);
    }
  }

  /**
   * Waits for queued mutations and any running checkpoint, then frees the WASM instance. Calls
   * still holding the collection then fail with STORAGE_CLOSED, or NOT_FOUND when it closed
   * because it was deleted.
   */
  async close(reason: 'closed' | 'deleted' = 'closed'): Promise<void> {
    if (this.closed) return;
    await this.queue;
    if (this.checkpointing) await this.checkpointing.catch(() => undefined);
    this.closed = true;
    this.deleted = reason === 'deleted';
    this.state.index.dispose();
  }
}
