/**
 * The Storage port: what the engine needs from a home, and nothing more. Each engine unit
 * (the tenant registry, one tenant's KV, one partition's log, one vector collection) opens
 * its own `UnitStorage` and never reaches into another unit's keys, so the Worker home can
 * put each unit in its own Durable Object and the browser home in its own IndexedDB range.
 *
 * Methods may answer synchronously when the adapter can (lmdb, memory): callers treat every
 * result as `Awaitable` so hot paths skip a promise when none is needed.
 */

export type Awaitable<T> = T | Promise<T>;

/** One ordered-KV entry holds at most this many bytes (Durable Objects cap a row at 2 MB). */
export const MAX_ENTRY_BYTES = 1024 * 1024;
/** Keys are short; long names belong in values. */
export const MAX_KEY_BYTES = 2048;

export interface KVEntry {
  key: Uint8Array;
  value: Uint8Array;
}

export interface ScanOptions {
  /** Only keys starting with these bytes. Mutually exclusive with start/end. */
  prefix?: Uint8Array;
  /** Inclusive lower bound. */
  start?: Uint8Array;
  /** Exclusive upper bound. */
  end?: Uint8Array;
  limit?: number;
  reverse?: boolean;
}

export type BatchOp =
  | { type: 'put'; key: Uint8Array; value: Uint8Array }
  | { type: 'delete'; key: Uint8Array };

/**
 * The durable, transactional half. Keys are bytes and sort bytewise in every home.
 * A write has been fsync'd (or the home's equivalent) before its promise resolves.
 * `put` and `batch` keep copies of what they hold: once a write settles, its caller may reuse
 * the key and value arrays it passed (the KV store reuses its records' memory).
 */
export interface OrderedKV {
  get(key: Uint8Array): Awaitable<Uint8Array | undefined>;
  put(key: Uint8Array, value: Uint8Array): Awaitable<void>;
  delete(key: Uint8Array): Awaitable<void>;
  scan(options: ScanOptions): Awaitable<KVEntry[]>;
  /** All operations apply atomically, or none do. */
  batch(ops: BatchOp[]): Awaitable<void>;
  /**
   * Optional fast read for callers that decode at once, offered only by adapters that read
   * synchronously: like `get`, but the bytes may be the adapter's own read buffer, valid only
   * until the caller next calls storage or yields. Never keep or modify the result; copy what
   * must outlive the call.
   */
  getTransient?(key: Uint8Array): Uint8Array | undefined;
  /**
   * Optional: like `put`, but the caller hands `value` over until the write settles, so the
   * adapter may keep a reference (no copy) until then. Once the write is durable the bytes are
   * the caller's again and may be reused for other writes: anything the adapter holds past that
   * point (a pending map, a cache) must be its own copy. After a failed write the caller never
   * reuses them.
   */
  putOwned?(key: Uint8Array, value: Uint8Array): Awaitable<void>;
}

export interface BlobRange {
  offset: number;
  length?: number;
}

export interface BlobInfo {
  key: string;
  size: number;
}

/** Immutable objects: sealed segments, large KV values, index snapshots. */
export interface BlobStore {
  /** Durable before it resolves; replaces any object with the same key atomically. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /**
   * Optional: like `put` with the concatenation of `parts`, written without building it (a sealed
   * segment is a header, the tail's batches and a footer). The parts must not change until it resolves.
   */
  putParts?(key: string, parts: readonly Uint8Array[]): Promise<void>;
  get(key: string, range?: BlobRange): Promise<Uint8Array | undefined>;
  /**
   * Optional: reads `into.length` bytes from `offset` into the caller's `into` rather than a fresh
   * array (a random stream read reads a few KB into one reused buffer). Resolves to the bytes read,
   * fewer at the blob's end (0 from its end on), or undefined if there is no such blob. `into` is
   * the caller's again once it settles; what lies past the bytes read is unspecified.
   */
  readInto?(key: string, offset: number, into: Uint8Array): Promise<number | undefined>;
  head(key: string): Promise<BlobInfo | undefined>;
  /** Keys in bytewise order. */
  list(prefix: string): Promise<BlobInfo[]>;
  delete(key: string): Promise<void>;
}

export interface UnitStorage {
  readonly kv: OrderedKV;
  readonly blobs: BlobStore;
}

/** What a home hands the engine: a way to open each unit's storage. */
export interface StorageProvider {
  /** Unit names look like `tenants`, `kv/<tenant>`, `log/<tenant>/<topic>/<partition>`, `vec/<tenant>/<collection>`. */
  unit(name: string): Awaitable<UnitStorage>;
  /** Units whose names start with `prefix` (used to find a tenant's topics and collections on open). */
  listUnits?(prefix: string): Awaitable<string[]>;
  /** Removes a unit and everything in it (a deleted topic or collection). */
  dropUnit(name: string): Awaitable<void>;
  close(): Awaitable<void>;
}
