/**
 * A tenant's vector collections: the catalog (unit `collections/<tenant>`) and the collections
 * themselves (one unit each, `vec/<tenant>/<name>`, see collection.ts), opened lazily and cached.
 * Create writes the collection's unit first and its catalog entry last; delete removes the
 * catalog entry first and the unit after; so a crash in between leaves at most an orphaned
 * unit, which the next open removes.
 *
 * Open collections count against the engine's OpenCollections budget: when it asks, a collection
 * with no operation in flight closes (as close does: queued writes and checkpoints finish first)
 * and its next use opens it again, after that close has finished.
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { init, isInitialized } from '../../core/loader.js';
import type { EngineContext } from '../context.js';
import type { UnitStorage } from '../../ports/storage.js';
import {
  Collection,
  DamagedCollection,
  planUpsert,
  type CollectionConfig,
  type CollectionInfo,
  type ListOptions,
  type ListPage,
  type QueryMatch,
  type QueryRequest,
  type SnapshotPolicy,
  type UpsertVector,
  type VectorRecord,
} from './collection.js';
import { OpenCollections, Resident, type OpenCollectionsOptions } from './open-collections.js';
import { badCursor, cursorFromName, nameFromCursor, pageLimit, type PageOptions } from '../list-cursor.js';
import { SortedNames } from '../../ports/sorted-strings.js';
import { refuseUnknownOptions } from '../known-options.js';
import { MAX_DIMS, validateCollectionName, validateInt, validateMetric, validateNewCollectionName, type Metric } from './validate.js';

export interface CreateCollectionRequest {
  name: string;
  dims: number;
  metric: Metric;
  /** HNSW links per node, 4–64 (default 16). */
  M?: number;
  /** HNSW build breadth, 8–1000 (default 200). */
  efConstruction?: number;
}

/** Every key of CreateCollectionRequest (the record makes the compiler check the list is complete). */
const CREATE_COLLECTION_KEYS = Object.keys({ name: true, dims: true, metric: true, M: true, efConstruction: true } satisfies Record<keyof CreateCollectionRequest, true>);

export interface CollectionPage {
  collections: CollectionInfo[];
  /** Pass back for the next page; null on the last. */
  cursor: string | null;
}

export interface VectorStoreOptions extends OpenCollectionsOptions {
  snapshot?: SnapshotPolicy;
}

/** An open collection in the budget's list. */
class OpenEntry extends Resident {
  constructor(
    readonly collection: Collection,
    evict: () => boolean,
  ) {
    super(evict, () => collection.memoryBytes);
  }
}

const CATALOG_PREFIX = 'c/';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function catalogKey(name: string): Uint8Array {
  return encoder.encode(CATALOG_PREFIX + name);
}

/**
 * Where a collection lives in storage: its own unit, and its config's entry in the tenant's
 * catalog. For tools that work on a stopped server's storage (restoring one collection).
 *
 * @example
 * collectionPlace('t1', 'docs'); // { unit: 'vec/t1/docs', catalogUnit: 'collections/t1', catalogKey: <'c/docs'> }
 */
export function collectionPlace(tenantId: string, name: string): { unit: string; catalogUnit: string; catalogKey: Uint8Array } {
  return { unit: Collection.unitName(tenantId, name), catalogUnit: `collections/${tenantId}`, catalogKey: catalogKey(name) };
}

export class VectorStore {
  private readonly open = new Map<string, Promise<Collection>>();
  /** The collections of `open` that finished opening: queries reach them without a promise. */
  private readonly ready = new Map<string, OpenEntry>();
  /** Collections whose stored data failed its checks on open: every call answers that until a delete. */
  private readonly damaged = new Map<string, DamagedCollection>();
  /** Collections closing for the budget: the next open of the name waits, so one unit never has two instances. */
  private readonly closing = new Map<string, Promise<void>>();
  /** Operations in flight per name (counted before the collection opens): the budget leaves these open. */
  private readonly busy = new Map<string, number>();
  private readonly budget: OpenCollections;
  /** The budget is this store's own (no engine-wide one in the context): closed with the store. */
  private readonly ownBudget: boolean;
  /** Catalog changes run one at a time so create/delete of one name cannot interleave. */
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Names whose delete has begun: calls made from then on answer NOT_FOUND, as after the delete,
   * rather than opening the collection again from the unit being dropped (which stayed cached and
   * showed the old vectors in a collection created again under the name).
   */
  private readonly deleting = new Set<string>();
  /** The names of `configs`, in order, so a page of the listing is a slice. */
  private readonly names: SortedNames;
  /**
   * Live counts of collections not open, as stored: set at create and close, and by the first
   * describe that reads one from storage; so listings and `totals()` read each at most once.
   * An open collection's own count wins over its entry here.
   */
  private readonly storedCounts = new Map<string, number>();
  /** The sum of `storedCounts`. */
  private storedSum = 0;
  private closed = false;

  private constructor(
    private readonly ctx: EngineContext,
    readonly tenantId: string,
    private readonly catalog: UnitStorage,
    private readonly configs: Map<string, CollectionConfig>,
    private readonly options: VectorStoreOptions,
  ) {
    this.ownBudget = ctx.openCollections === undefined;
    this.budget = ctx.openCollections ?? new OpenCollections(ctx.clock, ctx.scheduler, options);
    this.names = new SortedNames(configs.keys());
  }

  /**
   * Opens a tenant's vector store: reads its catalog and removes units a crash orphaned.
   * Loads the WASM core if the home has not yet.
   * @example
   * const vectors = await VectorStore.open(ctx, 't1');
   * await vectors.createCollection({ name: 'docs', dims: 768, metric: 'cosine' });
   */
  static async open(ctx: EngineContext, tenantId: string, options: VectorStoreOptions = {}): Promise<VectorStore> {
    if (!isInitialized()) await init();
    const catalog = await ctx.storage.unit(collectionPlace(tenantId, '').catalogUnit);
    const configs = new Map<string, CollectionConfig>();
    for (const { value } of await catalog.kv.scan({ prefix: encoder.encode(CATALOG_PREFIX) })) {
      let config: CollectionConfig;
      try {
        config = JSON.parse(decoder.decode(value)) as CollectionConfig;
      } catch {
        throw new QuartzError(ErrorCode.CORRUPT_DATA, `the collection catalog of tenant '${tenantId}' holds a malformed entry`);
      }
      configs.set(config.name, config);
    }
    const prefix = `vec/${tenantId}/`;
    for (const unit of (await ctx.storage.listUnits?.(prefix)) ?? []) {
      const name = unit.slice(prefix.length);
      // A name with '/' belongs to another tenant whose id extends this one ('t1/x'), never to us.
      if (!name.includes('/') && !configs.has(name)) await ctx.storage.dropUnit(unit);
    }
    return new VectorStore(ctx, tenantId, catalog, configs, options);
  }

  private check(): void {
    if (this.closed) throw new QuartzError(ErrorCode.STORAGE_CLOSED, `the vector store of tenant '${this.tenantId}' is closed`);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private configOf(name: string): CollectionConfig {
    validateCollectionName(name);
    const config = this.deleting.has(name) ? undefined : this.configs.get(name);
    if (config === undefined) throw new QuartzError(ErrorCode.NOT_FOUND, `collection '${name}' does not exist`);
    return config;
  }

  /**
   * Creates an empty collection; ALREADY_EXISTS if the name is taken.
   * @example
   * await vectors.createCollection({ name: 'docs', dims: 3, metric: 'l2', M: 16 });
   */
  async createCollection(request: CreateCollectionRequest): Promise<CollectionInfo> {
    this.check();
    if (typeof request !== 'object' || request === null) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, 'createCollection takes {name, dims, metric}');
    const name = validateNewCollectionName(request.name);
    refuseUnknownOptions(request, CREATE_COLLECTION_KEYS, `collection '${name}'`);
    const config: CollectionConfig = {
      name,
      dims: validateInt(request.dims, 1, MAX_DIMS, `collection '${name}': dims`),
      metric: validateMetric(request.metric, name),
      M: request.M === undefined ? 16 : validateInt(request.M, 4, 64, `collection '${name}': M`),
      efConstruction: request.efConstruction === undefined ? 200 : validateInt(request.efConstruction, 8, 1000, `collection '${name}': efConstruction`),
      created_at: this.ctx.clock.now(),
    };
    return this.exclusive(async () => {
      this.check();
      if (this.configs.has(name)) throw new QuartzError(ErrorCode.ALREADY_EXISTS, `collection '${name}' already exists`);
      const unitName = Collection.unitName(this.tenantId, name);
      await this.ctx.storage.dropUnit(unitName); // leftovers of a create or delete a crash cut short
      await Collection.initialise(await this.ctx.storage.unit(unitName), config);
      await this.catalog.kv.put(catalogKey(name), encoder.encode(JSON.stringify(config)));
      this.configs.set(name, config);
      this.names.add(name);
      this.setStoredCount(name, 0);
      return { ...config, count: 0 };
    });
  }

  /**
   * A collection's config and live count (read from storage if it is not open).
   * @example
   * const { count, dims } = await vectors.describeCollection('docs');
   */
  async describeCollection(name: string): Promise<CollectionInfo> {
    this.check();
    let config = this.configOf(name);
    const closing = this.closing.get(name);
    if (closing !== undefined) {
      // Its count is stored once the close has landed the writes queued before it.
      await closing;
      config = this.configOf(name);
    }
    const opened = this.open.get(name);
    if (opened !== undefined) {
      // An open that finds damage leaves the listing to the stored count, as once it has failed:
      // a listing racing it would otherwise fail for every collection of the tenant.
      const collection = await opened.catch((err: unknown) => {
        if (err instanceof DamagedCollection) return undefined;
        throw err;
      });
      if (collection !== undefined) return collection.describe();
    }
    const known = this.storedCounts.get(name);
    if (known !== undefined) return { ...config, count: known };
    let count: number;
    try {
      count = await Collection.storedCount(await this.ctx.storage.unit(Collection.unitName(this.tenantId, name)));
    } catch (err) {
      this.checkNotDeletedSince(name, config);
      throw err;
    }
    this.checkNotDeletedSince(name, config);
    // Kept unless a close stored a newer count meanwhile (a delete or a new config was checked just above).
    if (this.configs.get(name) === config && !this.storedCounts.has(name)) this.setStoredCount(name, count);
    return { ...config, count };
  }

  /**
   * How many collections the tenant has and their live vectors, for the engine's stats: open
   * collections' counts as they stand, the others' as stored, each read from storage at most once
   * after start. Once every count is known a call costs a pass over the open collections only.
   *
   * @example
   * const { collections, vectors } = await store.totals();
   */
  async totals(): Promise<{ collections: number; vectors: number }> {
    return this.knownTotals() ?? this.countEach();
  }

  /** totals() if every count is known already (no storage read needed), else undefined. */
  knownTotals(): { collections: number; vectors: number } | undefined {
    this.check();
    // The stored counts summed, open collections' live counts in place of theirs.
    let vectors = this.storedSum;
    let known = this.storedCounts.size;
    for (const [name, entry] of this.ready) {
      const stored = this.storedCounts.get(name);
      if (stored === undefined) known++;
      vectors += entry.collection.count - (stored ?? 0);
    }
    return known === this.configs.size && this.deleting.size === 0 ? { collections: known, vectors } : undefined;
  }

  /** totals() by a pass over the names, reading the counts not known yet (once each). */
  private async countEach(): Promise<{ collections: number; vectors: number }> {
    let collections = 0;
    let vectors = 0;
    let unknown: string[] | undefined;
    for (const name of this.configs.keys()) {
      if (this.deleting.has(name)) continue; // listed as gone already
      const entry = this.ready.get(name);
      const count = entry !== undefined ? entry.collection.count : this.storedCounts.get(name);
      if (count === undefined) {
        (unknown ??= []).push(name);
      } else {
        collections++;
        vectors += count;
      }
    }
    if (unknown !== undefined) {
      for (const info of await this.describeEach(unknown)) {
        collections++;
        vectors += info.count;
      }
    }
    return { collections, vectors };
  }

  /**
   * NOT_FOUND, as after the delete, if one began since `config` was read: it may have dropped the
   * unit under a read (storage_closed) or let a read see the empty unit of the name made again.
   */
  private checkNotDeletedSince(name: string, config: CollectionConfig): void {
    if (this.configOf(name) !== config) throw new QuartzError(ErrorCode.NOT_FOUND, `collection '${name}' does not exist`);
  }

  /**
   * Every collection of the tenant, by name; one deleted while it is listed is left out. Reads
   * the stored count of each collection that is not open: see listCollectionsPage for a page at
   * a time.
   */
  async listCollections(): Promise<CollectionInfo[]> {
    this.check();
    return this.describeEach(this.names.all());
  }

  /**
   * One page of collections in name order, each described (config and live count); pass
   * `cursor` back for the next. A page continues after the last name of the one before, so a
   * collection that exists throughout a listing is listed exactly once, whatever is created or
   * deleted meanwhile. Only the page's collections are described.
   *
   * @example
   * const { collections, cursor } = await vectors.listCollectionsPage({ limit: 100 });
   */
  async listCollectionsPage(options: PageOptions = {}): Promise<CollectionPage> {
    this.check();
    options ??= {}; // JavaScript callers pass null for "no options"
    const limit = pageLimit(options.limit);
    let after: string | undefined;
    if (options.cursor !== undefined && options.cursor !== null) {
      after = nameFromCursor(options.cursor, 128);
      try {
        validateCollectionName(after);
      } catch {
        throw badCursor();
      }
    }
    const { names, more } = this.names.after(after, limit);
    const collections = await this.describeEach(names);
    // The cursor is the page's last name even if that collection went while it was described.
    return { collections, cursor: more ? cursorFromName(names[names.length - 1]!) : null };
  }

  private async describeEach(names: string[]): Promise<CollectionInfo[]> {
    const described = await Promise.all(
      names.map((name) =>
        this.describeCollection(name).catch((err: unknown) => {
          if (err instanceof QuartzError && err.code === ErrorCode.NOT_FOUND) return undefined;
          throw err;
        }),
      ),
    );
    return described.filter((info) => info !== undefined);
  }

  private setStoredCount(name: string, count: number): void {
    this.storedSum += count - (this.storedCounts.get(name) ?? 0);
    this.storedCounts.set(name, count);
  }

  /**
   * Deletes a collection with its data and frees its index's WASM instance.
   * @example
   * await vectors.deleteCollection('docs');
   */
  async deleteCollection(name: string): Promise<void> {
    this.check();
    this.configOf(name);
    await this.exclusive(async () => {
      this.configOf(name);
      this.deleting.add(name);
      try {
        const unitName = Collection.unitName(this.tenantId, name);
        // A close for the budget still writing (queued upserts, a checkpoint) finishes before the unit goes.
        await this.closing.get(name);
        const opened = this.open.get(name);
        this.open.delete(name);
        const entry = this.ready.get(name);
        if (entry !== undefined) this.budget.remove(entry);
        this.ready.delete(name);
        let count: number;
        if (opened !== undefined) {
          const collection = await opened.catch(() => undefined);
          // Counted once closed: upserts queued before the delete land during close and meter theirs.
          await collection?.close('deleted');
          count = collection?.count ?? (await Collection.storedCount(await this.ctx.storage.unit(unitName)));
        } else {
          count = await Collection.storedCount(await this.ctx.storage.unit(unitName));
        }
        await this.catalog.kv.delete(catalogKey(name));
        this.configs.delete(name);
        this.damaged.delete(name);
        this.names.delete(name);
        this.storedSum -= this.storedCounts.get(name) ?? 0;
        this.storedCounts.delete(name);
        // Gone for the tenant with its catalog entry: metered out even if dropping the unit fails (the next open drops it).
        if (count !== 0) this.ctx.usage.add(this.tenantId, 'vectors_stored', -count);
        await this.ctx.storage.dropUnit(unitName);
      } finally {
        this.deleting.delete(name);
      }
    });
  }

  /**
   * The open collection (loaded on first use); NOT_FOUND for an unknown name.
   * @example
   * const docs = await vectors.collection('docs');
   * docs.query({ vector: q, k: 10 });
   */
  async collection(name: string): Promise<Collection> {
    this.check();
    const config = this.configOf(name);
    let opened = this.open.get(name);
    // Answered from memory: each call would read the whole damaged snapshot again to fail again.
    const damage = this.damaged.get(name);
    if (damage !== undefined) throw damage;
    if (opened === undefined) {
      const closing = this.closing.get(name);
      const pending = (async () => {
        if (closing !== undefined) await closing;
        return Collection.open(this.ctx, this.tenantId, config, await this.ctx.storage.unit(Collection.unitName(this.tenantId, name)), this.options.snapshot);
      })();
      opened = pending;
      this.open.set(name, pending);
      pending.then(
        (collection) => {
          if (this.open.get(name) !== pending) return;
          const entry: OpenEntry = new OpenEntry(collection, () => this.evict(name, entry));
          this.ready.set(name, entry);
          this.budget.touch(entry);
          this.budget.add(entry);
        },
        // A failed open is not cached, so a later call retries it; damage stays until the collection is deleted.
        (err: unknown) => {
          if (this.open.get(name) !== pending) return;
          this.open.delete(name);
          if (err instanceof DamagedCollection) this.damaged.set(name, err);
        },
      );
    }
    return opened;
  }

  /**
   * The collection if it is already open, else undefined (then `await collection(name)`); throws
   * as `collection` does for an unknown name. Lets a hot read path skip the promise hops. Use it
   * at once: an unused collection may be closed for the memory budget, and the store's own
   * methods reopen it where a held Collection would answer STORAGE_CLOSED.
   * @example
   * const docs = vectors.openedCollection('docs') ?? (await vectors.collection('docs'));
   */
  openedCollection(name: string): Collection | undefined {
    this.check();
    this.configOf(name);
    const entry = this.ready.get(name);
    if (entry === undefined) return undefined;
    this.budget.touch(entry);
    return entry.collection;
  }

  /** Whether the collection is open in memory now; unlike the other calls, asking is no use of it. */
  isOpen(name: string): boolean {
    return this.ready.has(name);
  }

  /**
   * Runs `fn` on the open collection, at once if it is open, else once it has opened; the name
   * counts as busy meanwhile, so the budget leaves it open until `fn` has finished.
   */
  private async using<T>(name: string, fn: (collection: Collection) => T | Promise<T>): Promise<T> {
    this.check();
    this.configOf(name);
    this.busy.set(name, (this.busy.get(name) ?? 0) + 1);
    try {
      const entry = this.ready.get(name);
      return await fn(entry !== undefined ? entry.collection : await this.collection(name));
    } finally {
      const left = this.busy.get(name)! - 1;
      if (left === 0) this.busy.delete(name);
      else this.busy.set(name, left);
      const entry = this.ready.get(name);
      // A write that failed halfway through its apply left the collection unusable: the next
      // call opens it again from storage (the failed write was taken back out of its log).
      if (entry !== undefined && entry.collection.needsReopen) {
        if (this.evict(name, entry)) this.budget.remove(entry);
      }
      // Re-measured: an upsert may have grown it past the budget.
      else if (entry !== undefined) this.budget.used(entry);
    }
  }

  /**
   * Closes an unused collection for the budget (see OpenCollections); false, leaving it open, if
   * an operation on it is in flight or it is no longer this store's open instance.
   */
  private evict(name: string, entry: OpenEntry): boolean {
    if (this.closed || this.busy.has(name) || this.ready.get(name) !== entry) return false;
    this.ready.delete(name);
    this.open.delete(name);
    // Every commit stores the count with it, so the closed collection's count is its stored one;
    // set again once writes queued before the close have landed.
    this.setStoredCount(name, entry.collection.count);
    const closing: Promise<void> = entry.collection
      .close()
      .catch(() => undefined)
      .then(() => {
        this.setStoredCount(name, entry.collection.count);
        if (this.closing.get(name) === closing) this.closing.delete(name);
      });
    this.closing.set(name, closing);
    return true;
  }

  /**
   * Upserts into a collection (see Collection.upsert): durable and atomic when it resolves.
   * @example
   * await vectors.upsert('docs', [{ id: 'a', values: [0.1, 0.2, 0.3], metadata: { lang: 'en' } }]);
   */
  async upsert(name: string, vectors: UpsertVector[]): Promise<{ upserted: number }> {
    this.check();
    // Checked and copied before the first await: the caller may reuse its arrays once this returns.
    const planned = planUpsert(this.configOf(name), vectors);
    return this.using(name, (collection) => collection.upsertPlanned(planned));
  }

  /**
   * One vector, or undefined if the collection has no such id.
   * @example
   * const rec = await vectors.get('docs', 'a');
   */
  async get(name: string, id: string): Promise<VectorRecord | undefined> {
    return this.using(name, (collection) => collection.get(id));
  }

  /**
   * Deletes vectors by id; unknown ids are ignored.
   * @example
   * const { deleted } = await vectors.deleteVectors('docs', ['a']);
   */
  async deleteVectors(name: string, ids: string[]): Promise<{ deleted: number }> {
    // An open collection reads the ids at once; for one still to open, a copy taken now: the
    // caller may reuse its array once this returns.
    const copied = this.openedCollection(name) !== undefined || !Array.isArray(ids) ? ids : ids.slice();
    return this.using(name, (collection) => collection.delete(copied));
  }

  /**
   * A page of vectors in id order; pass `cursor` back for the next one.
   * @example
   * const { vectors: page, cursor } = await vectors.listVectors('docs', { limit: 50 });
   */
  async listVectors(name: string, options?: ListOptions): Promise<ListPage> {
    return this.using(name, (collection) => collection.list(options));
  }

  /**
   * Top-k nearest neighbours (see Collection.query for scores, threshold and filters).
   * @example
   * const { matches } = await vectors.query('docs', { vector: q, k: 5, filter: { lang: 'en' } });
   */
  async query(name: string, request: QueryRequest, options?: { sharedMetadata?: boolean }): Promise<{ matches: QueryMatch[] }> {
    const ready = this.openedCollection(name);
    if (ready !== undefined) return ready.query(request, options);
    // The vector is read once the collection has opened: copy it now, as an open collection reads it now.
    const vector = request?.vector;
    const copied = Array.isArray(vector) || vector instanceof Float32Array || vector instanceof Float64Array ? { ...request, vector: vector.slice() } : request;
    return this.using(name, (collection) => collection.query(copied, options));
  }

  /** Closes every open collection (finishing queued writes and checkpoints). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    const opened = [...this.open.values()];
    this.open.clear();
    for (const entry of this.ready.values()) this.budget.remove(entry);
    this.ready.clear();
    if (this.ownBudget) this.budget.close();
    await Promise.all(this.closing.values());
    for (const p of opened) {
      const collection = await p.catch(() => undefined);
      await collection?.close();
    }
  }
}
