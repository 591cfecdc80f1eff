/**
 * One tenant's key-value store, on the `kv/<tenantId>` unit: keys → bytes with a content type,
 * optional TTL, versions for compare-and-set (the HTTP layer's ETag / If-Match / If-None-Match),
 * prefix listing with an opaque cursor, and values above the 1 MiB entry limit kept in the blob
 * store without the caller noticing.
 *
 * Hot path: get/put answer synchronously when the storage does (memory, lmdb reads) and issue
 * exactly one storage write per put of a small value, so the engine stays close to raw storage.
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { decodeUtf8 } from '../../core/utf8.js';
import { crc32c } from '../../core/hash.js';
import { init, isInitialized } from '../../core/loader.js';
import { hasLoneSurrogate, showValue } from '../../core/show-value.js';
import { MAX_TENANT_ID, isTenantId } from '../tenant-id.js';
import { compareBytes, prefixEnd } from '../../ports/storage-checks.js';
import { MAX_ENTRY_BYTES, type Awaitable, type BatchOp, type BlobStore, type KVEntry, type OrderedKV } from '../../ports/storage.js';
import type { Clock, Scheduler } from '../../ports/clock.js';
import { consoleLogger, type Logger } from '../../ports/logger.js';
import type { EngineContext, UsageRecorder } from '../context.js';
import { HotValues, type HotUnit } from './hot-values.js';
import { KeyCache, slotBytes, type KeyCacheHolder } from './key-cache.js';
import { bytesFromCursor, cursorFromBytes } from '../list-cursor.js';
import {
  BLOB_CRC_BYTES,
  FLAG_BLOB,
  FLAG_BLOB_CRC,
  HEADER_BYTES,
  TAG_DATA,
  TAG_GARBAGE,
  TAG_META,
  TAG_TTL,
  allocBytes,
  allocRecord,
  releaseRecord,
  allocValue,
  bodyOffset,
  checkRecord,
  encodeUtf8,
  isExpired,
  readU64,
  recordBlobCrc,
  recordBlobName,
  recordContentType,
  recordExpiresAt,
  recordFlags,
  recordSize,
  recordVersion,
  tagged,
  ttlKey,
  writeBlobPointer,
  writeHeader,
  writeU64,
} from './kv-record.js';

export const MAX_KV_KEY_BYTES = 512;
export const DEFAULT_MAX_VALUE_BYTES = 25 * 1024 * 1024;
export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
export const MAX_CONTENT_TYPE_BYTES = 255;
export const DEFAULT_LIST_LIMIT = 1000;
export const MAX_LIST_LIMIT = 1000;
/** Ten years: far enough for any cache, near enough that expiry stays a safe integer of ms. */
export const MAX_TTL_SECONDS = 10 * 365 * 24 * 3600;
/** Sizes are stored as u32. */
const MAX_VALUE_LIMIT = 0xffff_ffff;
/** After a failed sweep, try again this much later rather than spinning. */
const SWEEP_RETRY_MS = 60_000;
const SWEEP_PAGE = 256;
/**
 * Rows per scan when counting stored bytes: values up to 1 MiB are read whole, so a page holds at
 * most 64 MiB (pages of 1,024 held a gigabyte for a tenant of 900 KB values: 1.9 GiB RSS).
 */
const STORED_BYTES_PAGE = 64;
/** The count lets other requests run after this many rows or bytes read (~10 ms of the event loop). */
const STORED_BYTES_YIELD_ROWS = 1024;
const STORED_BYTES_YIELD_BYTES = 16 << 20;

export interface KvStoreOptions {
  /** Largest value accepted, in bytes (default 25 MiB). */
  maxValueBytes?: number;
  /**
   * How many keys' metadata (version, size, expiry, content type) to keep in memory, so that a
   * put of a recently written key needs no storage read before its write (default 65,536, about
   * 170 bytes each plus the key; 0 keeps only keys whose writes are in flight).
   */
  cachedKeys?: number;
}

export interface KvPutOptions {
  /** Stored and returned with the value (default application/octet-stream). */
  contentType?: string;
  /** Seconds until the key expires (positive integer). Without it the key never expires. */
  ttl?: number;
  /**
   * Only write if the key exists: at this version, at one of these versions, or (`'*'`) at any
   * (HTTP If-Match).
   */
  ifMatch?: VersionCondition;
  /**
   * Only write unless the key exists: at any version (`'*'`: create only), or at one of these
   * versions (HTTP If-None-Match).
   */
  ifNoneMatch?: '*' | readonly number[];
}

/** A version, several, or `'*'` (any): what `ifMatch` accepts. */
export type VersionCondition = number | readonly number[] | '*';

export interface KvDeleteOptions {
  /** Only delete if the key exists: at this version, at one of these versions, or (`'*'`) at any. */
  ifMatch?: VersionCondition;
}

/** What is known about a key without its value. */
export interface KvMeta {
  contentType: string;
  /** Changes on every write of the key; the HTTP ETag. */
  version: number;
  /** Milliseconds since the epoch, or null when the key never expires. */
  expiresAt: number | null;
  size: number;
}

export interface KvEntry extends KvMeta {
  value: Uint8Array;
}

export interface KvPutResult {
  version: number;
  expiresAt: number | null;
}

export interface KvListOptions {
  prefix?: string;
  /** The `cursor` of the previous page; null or absent for the first. */
  cursor?: string | null;
  /** Keys per page, 1..1000 (default 1000). */
  limit?: number;
}

/** One listed key, named as the HTTP API names it. */
export interface KvListItem {
  key: string;
  size: number;
  content_type: string;
  expires_at: number | null;
}

export interface KvListPage {
  keys: KvListItem[];
  /** Pass back to get the next page; null on the last page. */
  cursor: string | null;
}

const EMPTY = new Uint8Array(0);
/** The default options object, shared rather than allocated per call. */
const NO_OPTIONS: KvPutOptions = Object.freeze({});
const VERSION_KEY = tagged(TAG_META, 'version');
/** How many versions one persisted mark covers: one small extra write per this many puts. */
const VERSION_LEASE = 1_000_000;
const noop = (): void => {};

/**
 * The open store of each unit's ordered KV. A store trusts its slots because it is its unit's only
 * writer; a second store on the same unit would write behind the first one's back.
 */
const owners = new WeakMap<OrderedKV, KvStore>();

function invalid(message: string, details?: Record<string, unknown>): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, message, details === undefined ? undefined : { details });
}

/** Encoded keys up to this many bytes live on the JS heap (V8 keeps typed arrays of up to 64 bytes there). */
const SHORT_KEY_BYTES = 64;

/** 'd' + UTF-8 key, validated: non-empty, well-formed, at most 512 bytes. */
function dataKey(key: unknown): Uint8Array {
  if (typeof key !== 'string') throw invalid('key must be a string');
  if (key.length === 0) throw invalid('key must not be empty');
  if (key.length > MAX_KV_KEY_BYTES) {
    // Every UTF-16 unit takes at least one UTF-8 byte, so this key is over the limit; say by how much.
    const size = encodeUtf8(key).length;
    throw invalid(`key is ${size} bytes; the limit is ${MAX_KV_KEY_BYTES}`, { size, limit: MAX_KV_KEY_BYTES });
  }
  // ASCII keys (the common case) are copied unit by unit into an exact-size buffer; a short one
  // on the JS heap, which is cheaper than a slab piece.
  const ascii = key.length < SHORT_KEY_BYTES ? new Uint8Array(1 + key.length) : allocBytes(1 + key.length);
  ascii[0] = TAG_DATA;
  let i = 0;
  for (; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c > 0x7f) break;
    ascii[i + 1] = c;
  }
  if (i === key.length) return ascii;
  const k = tagged(TAG_DATA, key);
  if (k.length - 1 > MAX_KV_KEY_BYTES) {
    throw invalid(`key is ${k.length - 1} bytes; the limit is ${MAX_KV_KEY_BYTES}`, { size: k.length - 1, limit: MAX_KV_KEY_BYTES });
  }
  // Pure ASCII encodes to one byte per unit and cannot hold a surrogate; only check the rest.
  if (k.length - 1 !== key.length && hasLoneSurrogate(key)) throw invalid(`key ${JSON.stringify(key)} is not well-formed Unicode (lone surrogate)`);
  return k;
}

const DEFAULT_TYPE_BYTES = encodeUtf8(DEFAULT_CONTENT_TYPE);
let lastTypeString = DEFAULT_CONTENT_TYPE;
let lastTypeBytes = encodeUtf8(DEFAULT_CONTENT_TYPE);

function contentTypeBytes(contentType: unknown): Uint8Array {
  if (contentType === undefined) return DEFAULT_TYPE_BYTES;
  if (contentType === lastTypeString) return lastTypeBytes;
  if (typeof contentType !== 'string' || contentType.length === 0) throw invalid('content type must be a non-empty string');
  if (contentType.length > MAX_CONTENT_TYPE_BYTES) {
    throw invalid(`content type is ${contentType.length} characters; the limit is ${MAX_CONTENT_TYPE_BYTES}`);
  }
  const bytes = new Uint8Array(contentType.length);
  for (let i = 0; i < contentType.length; i++) {
    const c = contentType.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw invalid(`content type ${JSON.stringify(contentType)} must be printable ASCII`);
    bytes[i] = c;
  }
  lastTypeString = contentType;
  lastTypeBytes = bytes;
  return bytes;
}

const isVersion = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * A checked copy of a condition's list: the write checks it steps later (after the key's read,
 * or a large value's upload), and a caller may reuse its array once put() or delete() returned.
 */
function versionList(v: unknown): readonly number[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const copy = v.slice();
  return copy.every(isVersion) ? copy : undefined;
}

function checkIfMatch<T extends VersionCondition | undefined>(v: T): T {
  if (v === undefined || v === '*' || isVersion(v)) return v;
  const list = versionList(v);
  if (list !== undefined) return list as T;
  throw invalid(`ifMatch must be a version number (a non-negative integer), a list of them or '*', got ${showValue(v)}`);
}

function checkIfNoneMatch<T extends '*' | readonly number[] | undefined>(v: T): T {
  if (v === undefined || v === '*') return v;
  const list = versionList(v);
  if (list !== undefined) return list as T;
  throw invalid(`ifNoneMatch only takes '*' or a list of version numbers, got ${showValue(v)}`);
}

/** The versions of a condition as a 412 names them: the first few. */
function shownVersions(versions: readonly number[]): string {
  return versions.length <= 4 ? versions.join(', ') : `${versions.slice(0, 4).join(', ')}, …`;
}

/**
 * Why a write's conditions fail on a key `live` at `version`, or undefined when they hold. Checked
 * in the same synchronous run as the write is issued, so no other write of the key comes between.
 */
function unmetCondition(live: boolean, version: number, ifMatch: VersionCondition | undefined, ifNoneMatch: '*' | readonly number[] | undefined): string | undefined {
  if (ifMatch !== undefined) {
    if (!live) return 'does not exist';
    if (typeof ifMatch === 'number') return version === ifMatch ? undefined : `is at version ${version}, not ${ifMatch}`;
    if (ifMatch !== '*' && !ifMatch.includes(version)) return ifMatch.length === 0 ? `is at version ${version}; the condition lists no version (a weak tag, or a tag that is not a version, matches none)` : `is at version ${version}, not one of ${shownVersions(ifMatch)}`;
    return undefined;
  }
  if (ifNoneMatch === undefined || !live) return undefined;
  if (ifNoneMatch === '*') return `already exists (version ${version})`;
  return ifNoneMatch.includes(version) ? `is at version ${version}, one of ${shownVersions(ifNoneMatch)} it must not be at` : undefined;
}

function preconditionFailed(key: string, message: string, current: number | null): QuartzError {
  return new QuartzError(ErrorCode.PRECONDITION_FAILED, `key '${key}' ${message}`, { details: { key, current_version: current } });
}

/** The key bytes a list cursor holds: only a cursor list could have returned (a key's UTF-8, canonical base64url), else undefined. */
function keyFromCursor(cursor: unknown): Uint8Array | undefined {
  try {
    const bytes = bytesFromCursor(cursor, MAX_KV_KEY_BYTES);
    decodeUtf8(bytes); // throws unless UTF-8, which every key is
    return bytes;
  } catch {
    return undefined;
  }
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** The row of `rows` (in key order) whose key is `k`, if any. */
function findRow(rows: readonly KVEntry[], k: Uint8Array): KVEntry | undefined {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareBytes(rows[mid]!.key, k) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo < rows.length && compareBytes(rows[lo]!.key, k) === 0 ? rows[lo] : undefined;
}

/** Bytes that sort right after `key` and before anything else that starts with it. */
function after(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out.set(key);
  return out;
}

function randomHex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  let s = '';
  for (let i = 0; i < b.length; i++) s += b[i]!.toString(16).padStart(2, '0');
  return s;
}

export const DEFAULT_CACHED_KEYS = 65_536;

/**
 * What the store knows of one key: the newest state its writes gave it, in flight or durable.
 * The store is the only writer of its unit, so a known slot is the truth and a put of that key
 * decides versions, TTL index updates and metering without reading storage first. Slots of keys
 * whose writes are in flight are always kept (reads answer from them); settled ones are a
 * bounded cache.
 */
interface Slot {
  readonly key: string;
  /** Whether the key has a record, live or expired. */
  exists: boolean;
  version: number;
  /** Milliseconds since the epoch, 0 = never. */
  expiresAt: number;
  size: number;
  /** Undefined for a key learned from storage: only head needs it, so it is not decoded for a put. */
  contentType: string | undefined;
  /** The blob holding the value, or undefined when the record holds it. */
  blob: string | undefined;
  /**
   * The newest write's record while it is in flight (reads answer from it); undefined otherwise.
   * Released for reuse once that write is durable (see dropRec).
   */
  rec: Uint8Array | undefined;
  /** The group of the newest write while it is in flight; undefined once it settled. */
  group: WriteGroup | undefined;
  /** Touched since the eviction pass last looked (second chance). */
  used: boolean;
}

/** Writes issued under one storage promise (one lmdb commit). */
interface WriteGroup {
  write: Promise<void>;
  slots: Slot[];
  /** bytes_stored change of the group's writes, metered once they are durable. */
  delta: number;
  /**
   * Records of this group's writes that a later write of the same key replaced in its slot while
   * they were in flight: no read reaches them any more, and they go back to the pool when this
   * group is durable, as the slots' own records do (see dropRec).
   */
  replaced: Uint8Array[] | undefined;
}

/**
 * A count of stored bytes (storedBytes) while writes go on. The scan walks the data keys in
 * order, a page at a time, and answers what the store held when the count started: the bytes it
 * reads, less the metered change of every write it sees. A write sees the count ahead of it when
 * its key sorts after the cursor (the scan reads it later) and behind it otherwise (the meter
 * already has the change; the scan never reads it).
 */
interface BytesCount {
  /** The last data key counted through; undefined until the first page is counted. */
  cursor: Uint8Array | undefined;
  /**
   * Keys ahead of the cursor written since the count began whose page may not show that write:
   * key → its data key and the bytes its newest write leaves (0: deleted). A page counts these
   * instead of what storage shows; a key is dropped once its write settled before a page was read.
   */
  seen: Map<string, { k: Uint8Array; bytes: number }>;
  /**
   * Metered change of the writes the scan sees: those in flight as it began, and those ahead of it
   * since. Taken when they are issued, not once they settle: the count may end before they do.
   */
  ahead: number;
  /** A write failed while counting: whether storage holds it is not known, so the count is void. */
  failed: boolean;
}

/** CRC32C of a large value, by the WASM core (loaded on first use: only large values need it). */
async function blobCrc(value: Uint8Array): Promise<number> {
  if (!isInitialized()) await init();
  return crc32c(value);
}

export class KvStore {
  private readonly kv: OrderedKV;
  private readonly blobs: BlobStore;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly usage: UsageRecorder;
  private readonly logger: Logger;
  private readonly maxValueBytes: number;
  /** Known keys in insertion order: every key with a write in flight, and recently written ones. */
  private readonly slots = new Map<string, Slot>();
  /** Entries of hot keys for `getShared`, under the engine's budget (see hot-values.ts). */
  private readonly hotValues: HotValues;
  private readonly hot: HotUnit;
  private readonly cachedKeys: number;
  /** The engine's bound on every store's key cache, and their idle release. */
  private readonly keyCache: KeyCache;
  /** @internal The key cache's use counter at this store's latest call (see KeyCache.uses). */
  lastUse = 0;
  /** @internal Bytes of `slots` as the key cache counts them (see slotBytes). */
  cachedBytes = 0;
  /** How many slots have a write in flight (those are kept whatever the cache limit). */
  private inflightSlots = 0;
  /** Keys whose current state is being read asynchronously; later writes to them queue behind. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Blob clean-ups and sweeps still running; close() waits for them. */
  private readonly background = new Set<Promise<unknown>>();
  /**
   * Large-value puts between their check and their record's write (the blob is written first,
   * over several awaits): close() lets them finish rather than closing storage under them.
   */
  private readonly blobPuts = new Set<Promise<unknown>>();
  /** The latest group of writes sharing one storage promise. */
  private group: WriteGroup | undefined;
  /** bytes_stored change of the writes in flight: issued, not yet metered. */
  private inflightDelta = 0;
  /** The count of stored bytes running, if any. */
  private count: BytesCount | undefined;
  private lastVersion = 0;
  /** Versions up to this one may be issued without writing a new mark (see reserveVersions). */
  private reservedVersion = 0;
  /** The mark write in flight, if any: a put using a version past the old mark waits for it. */
  private reserving: Promise<void> | undefined;
  /** The clock reading versions use during the current synchronous run, or -1 (see versionClock). */
  private heldNow = -1;
  private sweepAt = Infinity;
  private cancelSweep: (() => void) | undefined;
  private closed = false;

  private constructor(
    readonly tenantId: string,
    kv: OrderedKV,
    blobs: BlobStore,
    ctx: EngineContext,
    maxValueBytes: number,
    cachedKeys: number,
  ) {
    this.kv = kv;
    this.blobs = blobs;
    this.clock = ctx.clock;
    this.scheduler = ctx.scheduler;
    this.usage = ctx.usage;
    this.logger = ctx.logger ?? consoleLogger;
    this.hotValues = ctx.hotValues ?? new HotValues();
    this.hot = this.hotValues.unit();
    // Without the engine's: no bound across stores and no idle release, only `cachedKeys`.
    this.keyCache = ctx.keyCache ?? new KeyCache(ctx.scheduler, { maxBytes: Infinity, idleMs: 0 });
    this.maxValueBytes = maxValueBytes;
    this.cachedKeys = cachedKeys;
  }

  /**
   * Opens a tenant's KV store: finishes any blob clean-up a crash interrupted and arms the TTL sweep.
   *
   * @example
   * const kv = await KvStore.open(ctx, 'tenant-1');
   * await kv.put('user/42', new TextEncoder().encode('{"name":"Ada"}'), { contentType: 'application/json' });
   * const entry = await kv.get('user/42'); // { value, contentType, version, expiresAt, size }
   */
  static async open(ctx: EngineContext, tenantId: string, options: KvStoreOptions = {}): Promise<KvStore> {
    // The engine's rule (tenant-id.ts): tenant ids become unit names.
    if (!isTenantId(tenantId)) {
      throw invalid(`tenant id ${showValue(tenantId)} must be 1-${MAX_TENANT_ID} characters without '/' or control characters`);
    }
    const maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    if (!(Number.isSafeInteger(maxValueBytes) && maxValueBytes >= 0 && maxValueBytes <= MAX_VALUE_LIMIT)) {
      throw invalid(`maxValueBytes must be an integer from 0 to ${MAX_VALUE_LIMIT}, got ${String(maxValueBytes)}`);
    }
    const cachedKeys = options.cachedKeys ?? DEFAULT_CACHED_KEYS;
    if (!(Number.isSafeInteger(cachedKeys) && cachedKeys >= 0)) {
      throw invalid(`cachedKeys must be a non-negative integer, got ${String(cachedKeys)}`);
    }
    const unit = await ctx.storage.unit(`kv/${tenantId}`);
    if (owners.has(unit.kv)) {
      throw new QuartzError(ErrorCode.PRECONDITION_FAILED, `KV store of tenant '${tenantId}' is already open; close it first`);
    }
    const store = new KvStore(tenantId, unit.kv, unit.blobs, ctx, maxValueBytes, cachedKeys);
    owners.set(unit.kv, store);
    try {
      const mark = await unit.kv.get(VERSION_KEY);
      if (mark !== undefined && mark.length === 8) store.lastVersion = store.reservedVersion = readU64(mark, 0);
      await store.collectGarbage();
      await store.armNextSweep();
    } catch (err) {
      store.closed = true;
      store.cancelSweep?.();
      owners.delete(unit.kv);
      throw err;
    }
    return store;
  }

  /**
   * The value of `key` with its metadata, or undefined when the key is missing or expired.
   * Answers synchronously when the storage does and the value is stored inline (and then throws
   * bad-input errors synchronously too), so always `await` it.
   *
   * @example
   * const entry = await kv.get('user/42');
   * if (entry) console.log(entry.contentType, new TextDecoder().decode(entry.value));
   */
  get(key: string): Awaitable<KvEntry | undefined> {
    this.check();
    return this.read(key, this.locks.size === 0 ? undefined : this.locks.get(key), false);
  }

  /**
   * Like `get`, for readers that never modify the entry or its value (the HTTP GET route writes
   * them out as they are): a hot key's entry is kept in memory and shared (see hot-values.ts), so
   * reading it again costs a map lookup, not a storage read and a copy.
   *
   * @example
   * const entry = await kv.getShared('user/42'); // read entry.value; never write to it
   */
  getShared(key: string): Awaitable<KvEntry | undefined> {
    this.check();
    const queued = this.locks.size === 0 ? undefined : this.locks.get(key);
    if (queued === undefined) {
      const kept = this.hotValues.get(this.hot, key);
      if (kept !== undefined) {
        if (kept.expiresAt === null || !this.expiredAt(kept.expiresAt)) return kept;
        this.hotValues.forget(this.hot, key);
      }
    }
    return this.read(key, queued, true);
  }

  /**
   * `get`'s read, after the writes `queued` ahead of it. `shareable`: an entry storage answers at
   * once, with no write of the key in flight, may be kept for `getShared` (and is then shared).
   */
  private read(key: string, queued: Promise<unknown> | undefined, shareable: boolean): Awaitable<KvEntry | undefined> {
    const k = dataKey(key);
    // With no write in flight storage holds every key's newest state: skip the slot lookup.
    const slot = this.inflightSlots === 0 ? undefined : this.slots.get(key);
    if (queued !== undefined) return queued.then(() => this.withCurrent(key, k, (r) => this.entryOf(key, k, r, 0)));
    const rec = this.peek(slot, k, true);
    if (rec instanceof Promise) return rec.then((r) => this.entryOf(key, k, r, 0));
    return this.entryOf(key, k, rec, 0, shareable && slot?.group === undefined);
  }

  /**
   * Metadata of `key` (content type, version, expiry, size) without reading its value.
   *
   * @example
   * const meta = await kv.head('user/42'); // e.g. to answer If-None-Match without the body
   */
  head(key: string): Awaitable<KvMeta | undefined> {
    this.check();
    const k = dataKey(key);
    const slot = this.slots.get(key);
    const queued = this.locks.size === 0 ? undefined : this.locks.get(key);
    if (queued !== undefined) return queued.then(() => this.withCurrent(key, k, (r) => this.metaOf(key, r)));
    if (slot !== undefined) {
      if (!slot.exists || (slot.expiresAt !== 0 && slot.expiresAt <= this.clock.now())) return undefined;
      // Everything head answers is in the slot: no storage read.
      if (slot.contentType !== undefined) {
        return { contentType: slot.contentType, version: slot.version, expiresAt: slot.expiresAt === 0 ? null : slot.expiresAt, size: slot.size };
      }
    }
    const rec = this.peek(slot, k, true);
    if (rec instanceof Promise) return rec.then((r) => this.metaOf(key, r));
    return this.metaOf(key, rec);
  }

  /**
   * Stores `value` under `key`. Values above the 1 MiB storage entry limit go to the blob store.
   * Throws PRECONDITION_FAILED when `ifMatch` / `ifNoneMatch` do not hold.
   *
   * @example
   * const { version } = await kv.put('session/abc', bytes, { ttl: 3600, contentType: 'text/plain' });
   * await kv.put('session/abc', newer, { ifMatch: version }); // fails if someone wrote in between
   */
  put(key: string, value: Uint8Array, options: KvPutOptions = NO_OPTIONS): Promise<KvPutResult> {
    try {
      // Promise.resolve of a promise is that promise: free on the durable path.
      // `?? NO_OPTIONS`: JavaScript callers pass null for "no options".
      return Promise.resolve(this.putNow(key, value, options ?? NO_OPTIONS));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private putNow(key: string, value: Uint8Array, options: KvPutOptions): Awaitable<KvPutResult> {
    this.check();
    const k = dataKey(key);
    // No URL can carry a key that is a whole '.' or '..' segment (clients resolve them away), so
    // such a key could be written here and never reached over HTTP; Workers KV refuses them too.
    if (k.length <= 3 && (key === '.' || key === '..')) throw invalid(`key '${key}' is not allowed: URLs cannot carry a '.' or '..' path segment`);
    if (!(value instanceof Uint8Array)) throw invalid(`value of key '${key}' must be bytes (a Uint8Array)`);
    if (value.length > this.maxValueBytes) {
      throw new QuartzError(ErrorCode.TOO_LARGE, `value of key '${key}' is ${value.length} bytes; the limit is ${this.maxValueBytes}`, {
        details: { key, size: value.length, limit: this.maxValueBytes },
      });
    }
    const type = contentTypeBytes(options.contentType);
    const { ttl } = options;
    const ifMatch = checkIfMatch(options.ifMatch);
    const ifNoneMatch = checkIfNoneMatch(options.ifNoneMatch);
    if (ifNoneMatch !== undefined && ifMatch !== undefined) throw invalid('ifMatch and ifNoneMatch cannot be combined');
    let expiresAt = 0;
    if (ttl !== undefined) {
      if (!(Number.isSafeInteger(ttl) && ttl > 0 && ttl <= MAX_TTL_SECONDS)) {
        throw invalid(`ttl must be a whole number of seconds from 1 to ${MAX_TTL_SECONDS}, got ${String(ttl)}`);
      }
      expiresAt = this.clock.now() + ttl * 1000;
    }

    // contentTypeBytes left an equal string in lastTypeString: the key cache keeps that one, so
    // puts with the same type share one string instead of each slot holding its request's copy.
    const contentType = options.contentType === undefined ? DEFAULT_CONTENT_TYPE : lastTypeString;
    if (HEADER_BYTES + type.length + value.length <= MAX_ENTRY_BYTES) {
      const rec = allocRecord(type, value.length);
      rec.set(value, HEADER_BYTES + type.length);
      // A key nobody is reading asynchronously, known or readable synchronously: no closure, straight on.
      if (this.locks.size === 0 || !this.locks.has(key)) {
        const slot = this.slots.get(key) ?? (this.kv.getTransient !== undefined ? this.learn(key, this.kv.getTransient(k)) : undefined);
        if (slot !== undefined) {
          slot.used = true;
          return this.commitPut(slot, k, rec, type, contentType, value.length, expiresAt, ifMatch, ifNoneMatch, undefined);
        }
      }
      return this.mutate(key, k, (slot) => this.commitPut(slot, k, rec, type, contentType, value.length, expiresAt, ifMatch, ifNoneMatch, undefined));
    }
    // The blob is written after an await: a copy now, so a caller that reuses its buffer once put()
    // returns does not change what is stored (a copy costs little beside a blob write and its fsync).
    // Not value.slice(): a Node Buffer's slice is a view.
    const put = this.putBlob(key, k, new Uint8Array(value), type, contentType, expiresAt, ifMatch, ifNoneMatch);
    this.blobPuts.add(put);
    const settled = () => void this.blobPuts.delete(put);
    put.then(settled, settled);
    return put;
  }

  /**
   * Deletes `key`; true when a live key was there. With `ifMatch`, only deletes that version.
   *
   * @example
   * const existed = await kv.delete('session/abc');
   */
  delete(key: string, options: KvDeleteOptions = {}): Promise<boolean> {
    try {
      return Promise.resolve(this.deleteNow(key, options ?? {}));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private deleteNow(key: string, options: KvDeleteOptions): Awaitable<boolean> {
    this.check();
    const k = dataKey(key);
    const ifMatch = checkIfMatch(options.ifMatch);
    return this.mutate(key, k, (slot) => {
      const live = slot.exists && !this.expiredAt(slot.expiresAt);
      const unmet = unmetCondition(live, slot.version, ifMatch, undefined);
      if (unmet !== undefined) throw preconditionFailed(key, unmet, live ? slot.version : null);
      if (!slot.exists) return false;
      const done = this.remove(slot, k);
      return done instanceof Promise ? done.then(() => live) : live;
    });
  }

  /**
   * One page of live keys in byte order, optionally under a prefix. Keys written after a page
   * was returned show up on a later page if they sort after its cursor; none repeat. Listing
   * reads storage, so it shows writes whose promises have resolved.
   *
   * @example
   * let cursor: string | null = null;
   * do {
   *   const page = await kv.list({ prefix: 'user/', cursor, limit: 100 });
   *   for (const item of page.keys) console.log(item.key, item.size);
   *   cursor = page.cursor;
   * } while (cursor !== null);
   */
  async list(options: KvListOptions = {}): Promise<KvListPage> {
    this.check();
    const { prefix = '', cursor, limit = DEFAULT_LIST_LIMIT } = options ?? {};
    if (typeof prefix !== 'string') throw invalid('prefix must be a string');
    // UTF-8 would turn the lone surrogate into U+FFFD and list the keys that really hold one.
    if (hasLoneSurrogate(prefix)) throw invalid(`prefix ${showValue(prefix)} is not well-formed Unicode (lone surrogate)`);
    if (!(Number.isSafeInteger(limit) && limit >= 1 && limit <= MAX_LIST_LIMIT)) {
      throw invalid(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}, got ${String(limit)}`);
    }
    const base = tagged(TAG_DATA, prefix);
    if (base.length - 1 > MAX_KV_KEY_BYTES) throw invalid(`prefix is ${base.length - 1} bytes; the limit is ${MAX_KV_KEY_BYTES}`);
    let start = base;
    if (cursor !== undefined && cursor !== null) {
      const last = keyFromCursor(cursor);
      if (last === undefined) throw invalid('cursor is not valid; pass back the cursor of a previous page');
      const resume = new Uint8Array(1 + last.length);
      resume[0] = TAG_DATA;
      resume.set(last, 1);
      if (!startsWith(resume, base)) throw invalid(`cursor does not belong to a listing of prefix '${prefix}'`);
      start = after(resume);
    }
    const end = prefixEnd(base)!; // base starts with 'd', so an end always exists
    const now = this.clock.now();
    const keys: KvListItem[] = [];
    let lastKey: Uint8Array | undefined;
    // Fetch one more live key than asked for, to know whether another page exists.
    for (;;) {
      const want = limit + 1 - keys.length;
      const rows = await this.kv.scan({ start, end, limit: want });
      for (const row of rows) {
        const key = decodeUtf8(row.key.subarray(1));
        checkRecord(row.value, key);
        if (isExpired(row.value, now)) continue;
        if (keys.length === limit) return { keys, cursor: cursorFromBytes(lastKey!.subarray(1)) };
        const expires = recordExpiresAt(row.value);
        keys.push({ key, size: recordSize(row.value), content_type: recordContentType(row.value), expires_at: expires === 0 ? null : expires });
        lastKey = row.key;
      }
      if (rows.length < want) return { keys, cursor: null };
      start = after(rows[rows.length - 1]!.key);
    }
  }

  /**
   * What this store added to `bytes_stored` at the moment of the call, counted from storage: keys
   * plus values of every stored record, expired ones not yet purged included, as the writes meter
   * them. One scan of the store (on disk, ~4 µs of CPU per key) that lets requests run between its
   * pages: writes made meanwhile are told apart by where the scan stands (see BytesCount). Undefined
   * when a write failed during the count (storage may or may not hold it): count again. One count
   * at a time; closing the store stops it (STORAGE_CLOSED). The engine runs it only to repair
   * levels after a crash.
   *
   * @example
   * const bytes = await kv.storedBytes();
   */
  storedBytes(): Promise<number | undefined> {
    try {
      this.check();
      if (this.count !== undefined) throw new QuartzError(ErrorCode.PRECONDITION_FAILED, `stored bytes of tenant '${this.tenantId}' are being counted already`);
    } catch (err) {
      return Promise.reject(err);
    }
    // Writes in flight now settle (and are metered) after this moment: the scan must see them all,
    // and their metered change counts as ahead of it.
    const count: BytesCount = { cursor: undefined, seen: new Map(), ahead: this.inflightDelta, failed: false };
    for (const slot of this.slots.values()) {
      if (slot.group === undefined) continue;
      const k = dataKey(slot.key);
      count.seen.set(slot.key, { k, bytes: slot.exists ? k.length - 1 + slot.size : 0 });
    }
    this.count = count;
    const task = this.countBytes(count).finally(() => {
      if (this.count === count) this.count = undefined;
    });
    this.background.add(task);
    const forget = () => void this.background.delete(task);
    task.then(forget, forget);
    return task;
  }

  private async countBytes(count: BytesCount): Promise<number | undefined> {
    let total = 0;
    let start: Uint8Array = Uint8Array.of(TAG_DATA);
    const end = prefixEnd(start)!;
    let rowsRead = 0;
    let bytesRead = 0;
    for (;;) {
      this.check();
      // A write settled by now shows in the page read next: only those still in flight need counting by hand.
      for (const [key] of count.seen) if (this.slots.get(key)?.group === undefined) count.seen.delete(key);
      const rows = await this.kv.scan({ start, end, limit: STORED_BYTES_PAGE });
      // From here to the cursor's move, one synchronous run: no write comes between.
      const last = rows.length < STORED_BYTES_PAGE ? undefined : rows[rows.length - 1]!.key;
      for (const row of rows) {
        total += row.key.length - 1 + recordSize(row.value);
        bytesRead += row.value.length;
      }
      for (const [key, seen] of count.seen) {
        if (compareBytes(seen.k, start) < 0 || (last !== undefined && compareBytes(seen.k, last) > 0)) continue;
        // The page may or may not show this key's newest write (it was in flight): count that write's bytes.
        const row = findRow(rows, seen.k);
        if (row !== undefined) total -= row.key.length - 1 + recordSize(row.value);
        total += seen.bytes;
        count.seen.delete(key);
      }
      if (last === undefined) return count.failed ? undefined : total - count.ahead;
      count.cursor = last;
      start = after(last);
      rowsRead += rows.length;
      // A disk scan answers synchronously: let other requests run now and then. Not after every
      // page: a timer turn per 64 rows cost 1.5-2x the CPU of the count itself.
      if (rowsRead >= STORED_BYTES_YIELD_ROWS || bytesRead >= STORED_BYTES_YIELD_BYTES) {
        rowsRead = 0;
        bytesRead = 0;
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    }
  }

  /** A write of `slot` (its fields already say what the write leaves) was issued: where does the count running stand? */
  private countWrite(count: BytesCount, slot: Slot, k: Uint8Array): boolean {
    if (count.cursor !== undefined && compareBytes(k, count.cursor) <= 0) return false;
    count.seen.set(slot.key, { k, bytes: slot.exists ? k.length - 1 + slot.size : 0 });
    return true;
  }

  /**
   * Purges expired keys now (the scheduled sweep calls this) and returns how many it removed.
   *
   * @example
   * await kv.sweep();
   */
  async sweep(): Promise<number> {
    // Not a use: a tenant whose keys only expire still goes idle.
    this.checkOpen();
    const now = this.clock.now();
    const end = new Uint8Array(9);
    end[0] = TAG_TTL;
    writeU64(end, 1, now + 1);
    let purged = 0;
    for (;;) {
      const rows = await this.kv.scan({ start: Uint8Array.of(TAG_TTL), end, limit: SWEEP_PAGE });
      for (const row of rows) {
        const expiresAt = readU64(row.key, 1);
        const k = new Uint8Array(row.key.length - 8);
        k[0] = TAG_DATA;
        k.set(row.key.subarray(9), 1);
        const key = decodeUtf8(k.subarray(1));
        const removed = await this.mutate(key, k, (slot) => {
          if (slot.exists && slot.expiresAt === expiresAt && expiresAt <= now) {
            const done = this.remove(slot, k);
            return done instanceof Promise ? done.then(() => true) : true;
          }
          // The index entry outlived its record (it was rewritten); drop just the entry.
          const done = this.kv.delete(row.key);
          return done instanceof Promise ? done.then(() => false) : false;
        });
        if (removed) purged++;
      }
      if (rows.length < SWEEP_PAGE) return purged;
    }
  }

  /**
   * Stops the TTL sweep, lets puts already accepted finish, waits for background clean-up and
   * records the version high-water mark.
   *
   * @example
   * await kv.close();
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hotValues.forgetAll(this.hot);
    this.cancelSweep?.();
    this.cancelSweep = undefined;
    await Promise.allSettled([...this.blobPuts]);
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
    await Promise.allSettled([...this.locks.values()]);
    const mark = new Uint8Array(8);
    writeU64(mark, 0, this.lastVersion);
    // Out of the engine's key cache: the slots of a closed store are never read again.
    this.forgot(this.slots.size, this.cachedBytes);
    this.slots.clear();
    try {
      await this.kv.put(VERSION_KEY, mark);
    } finally {
      // Only now: a store opened earlier would read the mark before it is written.
      owners.delete(this.kv);
    }
  }

  /** Every caller's entry: refuses after close, and stamps the call as this store's latest use. */
  private check(): void {
    this.checkOpen();
    this.lastUse = ++this.keyCache.uses;
  }

  private checkOpen(): void {
    if (this.closed) throw new QuartzError(ErrorCode.STORAGE_CLOSED, `KV store of tenant '${this.tenantId}' is closed`);
  }

  /** The newest record of a key: an in-flight write's if there is one, else what storage holds. */
  private current(key: string, k: Uint8Array): Awaitable<Uint8Array | undefined> {
    return this.peek(this.slots.get(key), k, false);
  }

  /**
   * `use` of the current record: at once when it is at hand, never after an await, since an
   * in-flight record goes back to the pool (and to the next put) as soon as its write settles.
   */
  private withCurrent<R>(key: string, k: Uint8Array, use: (rec: Uint8Array | undefined) => Awaitable<R>): Awaitable<R> {
    const rec = this.current(key, k);
    return rec instanceof Promise ? rec.then(use) : use(rec);
  }

  /**
   * Like `current`. With `transient`, for callers that decode a synchronous answer at once,
   * storage may hand out its transient read buffer (no copy); an asynchronous answer is always
   * the caller's own.
   */
  private peek(slot: Slot | undefined, k: Uint8Array, transient: boolean): Awaitable<Uint8Array | undefined> {
    if (slot !== undefined) {
      // In flight: the write's record, or nothing for a delete. Settled and absent: nothing to read.
      if (slot.group !== undefined) return slot.rec;
      if (!slot.exists) return undefined;
    }
    return transient && this.kv.getTransient !== undefined ? this.kv.getTransient(k) : this.kv.get(k);
  }

  /** What is known of a key: its slot, or else its stored record read and remembered as one. */
  private stateOf(key: string, k: Uint8Array): Awaitable<Slot> {
    const slot = this.slots.get(key);
    if (slot !== undefined) {
      slot.used = true;
      return slot;
    }
    const rec = this.kv.getTransient !== undefined ? this.kv.getTransient(k) : this.kv.get(k);
    // Writers of this key queue behind an asynchronous read (see mutate), so it is still the newest state.
    if (rec instanceof Promise) return rec.then((r) => this.slots.get(key) ?? this.learn(key, r));
    return this.learn(key, rec);
  }

  /** Remembers `key` as stored: `rec` (maybe storage's transient buffer) is decoded here and not kept. */
  private learn(key: string, rec: Uint8Array | undefined): Slot {
    const slot: Slot = { key, exists: false, version: 0, expiresAt: 0, size: 0, contentType: undefined, blob: undefined, rec: undefined, group: undefined, used: false };
    if (rec !== undefined) {
      checkRecord(rec, key);
      slot.exists = true;
      slot.version = recordVersion(rec);
      slot.expiresAt = recordExpiresAt(rec);
      slot.size = recordSize(rec);
      if ((recordFlags(rec) & FLAG_BLOB) !== 0) slot.blob = recordBlobName(rec, key);
    }
    // Trimmed before it joins: the caller is about to write through it, and a slot dropped now
    // would leave that write in flight unseen by reads.
    this.trim();
    const cache = this.keyCache;
    const bytes = slotBytes(key);
    if (this.cachedBytes === 0) cache.hold(this);
    this.cachedBytes += bytes;
    cache.bytes += bytes;
    cache.keys++;
    if (cache.bytes > cache.passAt) cache.pass();
    this.slots.set(key, slot);
    return slot;
  }

  /**
   * Keeps at most `cachedKeys` settled slots: drops them oldest first, down to 7/8 of the limit so
   * a pass runs once per many writes; a slot touched since the last pass goes to the back instead
   * (second chance, so hot keys stay). Slots with a write in flight are never dropped.
   */
  private trim(): void {
    const settled = this.slots.size - this.inflightSlots;
    if (settled <= this.cachedKeys) return;
    const excess = settled - (this.cachedKeys - (this.cachedKeys >> 3));
    // Second chances per pass are bounded, so a pass over a cache of only hot keys stays short.
    this.keyCache.evicted += this.dropSettled(excess, Infinity, 2 * excess).keys;
  }

  /**
   * Drops settled slots, oldest first, until `maxKeys` of them or `maxBytes` are gone; up to
   * `chances` slots touched since the last pass go to the back instead (second chance). Slots with
   * a write in flight stay, and so do those of a key being read for a write (locked): the write
   * goes through that slot once the read is back.
   */
  private dropSettled(maxKeys: number, maxBytes: number, chances: number): { keys: number; bytes: number } {
    let keys = 0;
    let bytes = 0;
    const locked = this.locks.size > 0;
    for (const slot of this.slots.values()) {
      if (keys >= maxKeys || bytes >= maxBytes) break;
      if (slot.group !== undefined || (locked && this.locks.has(slot.key))) continue;
      this.slots.delete(slot.key);
      if (slot.used && chances-- > 0) {
        // Re-appended, so this loop meets it once more, unused then.
        slot.used = false;
        this.slots.set(slot.key, slot);
      } else {
        keys++;
        bytes += slotBytes(slot.key);
      }
    }
    this.forgot(keys, bytes);
    return { keys, bytes };
  }

  /** Takes dropped slots out of the key cache's totals. */
  private forgot(keys: number, bytes: number): void {
    if (keys === 0) return;
    const cache = this.keyCache;
    this.cachedBytes -= bytes;
    cache.bytes -= bytes;
    cache.keys -= keys;
    if (this.cachedBytes === 0) cache.letGo(this);
  }

  /** @internal The key cache's budget asks for room: settled keys go, oldest first (see KeyCache.pass). */
  dropKeys(bytes: number, secondChances: boolean): { keys: number; bytes: number } {
    return this.dropSettled(Infinity, bytes, secondChances ? this.slots.size : 0);
  }

  /**
   * @internal The tenant went unused for the idle time: every settled key and the hot entries go.
   * Nothing else changes: the next call reads what it needs from storage again.
   */
  releaseIdle(): number {
    this.hotValues.forgetAll(this.hot);
    return this.dropSettled(Infinity, Infinity, 0).keys;
  }

  /**
   * Runs a read-modify-write on one key. `apply` gets the key's slot, decides, and issues its
   * write before returning, so with a synchronous read nothing can slip in between. When the
   * read is asynchronous the key is locked until `apply` has issued its write.
   */
  private mutate<R>(key: string, k: Uint8Array, apply: (slot: Slot) => Awaitable<R>): Awaitable<R> {
    const queued = this.locks.get(key);
    if (queued === undefined) {
      const slot = this.stateOf(key, k);
      if (!(slot instanceof Promise)) return apply(slot);
      // Wrap the result so the lock opens once the write is issued, not once it is durable.
      const issued = slot.then((s) => ({ result: apply(s) }));
      this.hold(key, issued);
      return issued.then((r) => r.result);
    }
    // The writer ahead of us has issued its write (the lock opens then), so its slot is current.
    const issued = queued.then(async () => ({ result: apply(await this.stateOf(key, k)) }));
    this.hold(key, issued);
    return issued.then((r) => r.result);
  }

  private hold(key: string, issued: Promise<unknown>): void {
    const lock = issued.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(key, lock);
    void lock.then(() => {
      if (this.locks.get(key) === lock) this.locks.delete(key);
    });
  }

  /**
   * Keeps `slot` (whose fields already describe the write) in flight until `write` is durable and
   * answers `result` then (one promise per write); meters it once durable. lmdb hands every write
   * of one commit the same promise, so writes that share a promise are settled together: one
   * handler, one meter call per commit, not per write.
   */
  private track<R>(slot: Slot, k: Uint8Array, write: Awaitable<void>, delta: number, result: R): Awaitable<R> {
    const count = this.count;
    const ahead = count !== undefined && this.countWrite(count, slot, k);
    if (!(write instanceof Promise)) {
      if (delta !== 0) this.usage.add(this.tenantId, 'bytes_stored', delta);
      if (ahead) count!.ahead += delta;
      if (slot.group !== undefined) {
        slot.group = undefined;
        this.inflightSlots--;
      }
      this.dropRec(slot, true);
      this.trim();
      return result;
    }
    let group = this.group;
    if (group === undefined || group.write !== write) {
      const g: WriteGroup = (group = this.group = { write, slots: [], delta: 0, replaced: undefined });
      // Registered before the writers' own handlers, so a writer that resumes sees its write settled.
      write
        .then(
          () => this.settle(g, true),
          () => this.settle(g, false),
        )
        .catch((err: unknown) => {
          // Only a broken usage recorder lands here; the writes themselves are settled.
          this.logger.error(`metering KV writes of tenant '${this.tenantId}' failed`, { tenant: this.tenantId, err });
        });
    }
    if (slot.group === undefined) this.inflightSlots++;
    slot.group = group;
    group.slots.push(slot);
    group.delta += delta;
    this.inflightDelta += delta;
    if (ahead) count!.ahead += delta;
    return write.then(() => result);
  }

  private settle(group: WriteGroup, durable: boolean): void {
    if (this.group === group) this.group = undefined;
    if (durable && group.replaced !== undefined) for (const rec of group.replaced) releaseRecord(rec);
    for (const slot of group.slots) {
      // A later write of the key is still in flight: the slot is that write's now.
      if (slot.group !== group) continue;
      slot.group = undefined;
      this.dropRec(slot, durable);
      this.inflightSlots--;
      // A failed write left storage as it was: forget what it claimed, so the key is read again.
      if (!durable && this.slots.get(slot.key) === slot) {
        this.slots.delete(slot.key);
        this.forgot(1, slotBytes(slot.key));
      }
    }
    this.inflightDelta -= group.delta;
    if (durable && group.delta !== 0) this.usage.add(this.tenantId, 'bytes_stored', group.delta);
    if (!durable && this.count !== undefined) this.count.failed = true;
    this.trim();
    // Keys in flight held the engine's key caches over their budget: these ones may go now.
    if (this.keyCache.over) this.keyCache.pass();
  }

  /**
   * Forgets the in-flight record of `slot`'s settled write. Once durable, storage has let go of
   * it (putOwned's contract; put and batch copy what they keep), and reads only ever copied from
   * it: it goes back for reuse. After a failure storage may still hold it, so it is left to the
   * garbage collector. Records of batches (puts with a TTL, large values) go back too: left to the
   * collector, each put with a TTL took fresh ArrayBuffer bytes, which count toward V8's full-GC
   * trigger (benchmarks.md).
   */
  private dropRec(slot: Slot, durable: boolean): void {
    if (durable && slot.rec !== undefined) releaseRecord(slot.rec);
    slot.rec = undefined;
  }

  /**
   * A new write of `slot`'s key is issued: the record of the write in flight before it (storage
   * may hold it until that write is durable) goes back with that write's group. Ten clients
   * writing the same keys in turn replaced about two writes in three before they settled, and
   * each such record kept its 64 KiB slab out of the pool: a fresh slab every ~60 puts.
   */
  private replaceRec(slot: Slot): void {
    if (slot.rec !== undefined && slot.group !== undefined) (slot.group.replaced ??= []).push(slot.rec);
  }

  private nextVersion(slot: Slot): number {
    // Versions follow the clock so a key deleted and re-created never reuses an old ETag.
    let v = Math.max(this.lastVersion + 1, this.versionClock());
    if (slot.exists) v = Math.max(v, slot.version + 1);
    this.lastVersion = v;
    if (v > this.reservedVersion) this.reserveVersions(v);
    return v;
  }

  /**
   * Persists a version mark VERSION_LEASE ahead of `v`. Writes faster than 1,000 a second run the
   * versions ahead of the clock; after a crash (no mark from close) a store reopened at clock time
   * would issue some again, and a stale ETag of a deleted key could match its new incarnation.
   * Until the mark is durable, puts acknowledge only with it (see `reserving`).
   */
  private reserveVersions(v: number): void {
    this.reservedVersion = v + VERSION_LEASE;
    const mark = new Uint8Array(8);
    writeU64(mark, 0, this.reservedVersion);
    const written = Promise.resolve(this.kv.put(VERSION_KEY, mark)).then(
      () => {
        if (this.reserving === written) this.reserving = undefined;
      },
      (err: unknown) => {
        if (this.reserving === written) this.reserving = undefined;
        this.reservedVersion = 0; // reserve again on the next write
        throw err;
      },
    );
    this.reserving = written;
  }

  /**
   * Writes the record `rec` (body in place, header filled in here) for a put whose preconditions
   * hold against `slot`, and updates the slot. `adopt` names a freshly uploaded blob that `rec` points to.
   */
  private commitPut(
    slot: Slot,
    k: Uint8Array,
    rec: Uint8Array,
    type: Uint8Array,
    contentType: string,
    size: number,
    expiresAt: number,
    ifMatch: VersionCondition | undefined,
    ifNoneMatch: '*' | readonly number[] | undefined,
    adopt: string | undefined,
  ): Awaitable<KvPutResult> {
    const key = slot.key;
    const live = slot.exists && !this.expiredAt(slot.expiresAt);
    const unmet = ifMatch === undefined && ifNoneMatch === undefined ? undefined : unmetCondition(live, slot.version, ifMatch, ifNoneMatch);
    if (unmet !== undefined) throw preconditionFailed(key, unmet, live ? slot.version : null);
    const version = this.nextVersion(slot);
    writeHeader(rec, adopt === undefined ? 0 : FLAG_BLOB | FLAG_BLOB_CRC, type, version, expiresAt, size);
    const keyBytes = k.length - 1;
    let delta = keyBytes + size;
    let oldExpires = 0;
    let oldBlob: string | undefined;
    if (slot.exists) {
      delta -= keyBytes + slot.size;
      oldExpires = slot.expiresAt;
      oldBlob = slot.blob;
    }
    let write: Awaitable<void>;
    if (oldExpires === 0 && expiresAt === 0 && adopt === undefined && oldBlob === undefined) {
      // `rec` is this put's own and never written again, so storage may keep it instead of copying.
      write = this.kv.putOwned !== undefined ? this.kv.putOwned(k, rec) : this.kv.put(k, rec);
    } else {
      const ops: BatchOp[] = [{ type: 'put', key: k, value: rec }];
      if (adopt !== undefined) ops.push({ type: 'delete', key: tagged(TAG_GARBAGE, adopt) });
      if (expiresAt !== 0) ops.push({ type: 'put', key: ttlKey(expiresAt, k), value: EMPTY });
      if (oldExpires !== 0 && oldExpires !== expiresAt) ops.push({ type: 'delete', key: ttlKey(oldExpires, k) });
      if (oldBlob !== undefined) ops.push({ type: 'put', key: tagged(TAG_GARBAGE, oldBlob), value: EMPTY });
      write = this.kv.batch(ops);
    }
    if (this.reserving !== undefined) write = Promise.all([write, this.reserving]).then(noop);
    // The write is issued (a synchronous throw above leaves the slot as it was): the slot is its state now.
    this.hotValues.forget(this.hot, key);
    slot.exists = true;
    slot.version = version;
    slot.expiresAt = expiresAt;
    slot.size = size;
    slot.contentType = contentType;
    slot.blob = adopt;
    this.replaceRec(slot);
    slot.rec = rec;
    if (expiresAt !== 0 && expiresAt < this.sweepAt) this.armSweep(expiresAt);
    const result: KvPutResult = { version, expiresAt: expiresAt === 0 ? null : expiresAt };
    const durable = this.track(slot, k, write, delta, result);
    if (oldBlob !== undefined) {
      const blob = oldBlob;
      if (durable instanceof Promise) return durable.then((r) => (this.discardBlob(blob), r));
      this.discardBlob(blob);
    }
    return durable;
  }

  /** Deletes a key's stored record (live or expired) and everything hanging off it. */
  private remove(slot: Slot, k: Uint8Array): Awaitable<void> {
    const ops: BatchOp[] = [{ type: 'delete', key: k }];
    if (slot.expiresAt !== 0) ops.push({ type: 'delete', key: ttlKey(slot.expiresAt, k) });
    const blob = slot.blob;
    if (blob !== undefined) ops.push({ type: 'put', key: tagged(TAG_GARBAGE, blob), value: EMPTY });
    const delta = -(k.length - 1 + slot.size);
    const write = ops.length === 1 ? this.kv.delete(k) : this.kv.batch(ops);
    this.hotValues.forget(this.hot, slot.key);
    slot.exists = false;
    slot.expiresAt = 0;
    slot.size = 0;
    slot.blob = undefined;
    this.replaceRec(slot);
    slot.rec = undefined;
    const durable = this.track(slot, k, write, delta, undefined);
    if (blob === undefined) return durable;
    if (durable instanceof Promise) return durable.then(() => this.discardBlob(blob));
    this.discardBlob(blob);
  }

  /** Large values: upload the blob under a garbage marker, then adopt it in the record's write. */
  private putBlob(
    key: string,
    k: Uint8Array,
    value: Uint8Array,
    type: Uint8Array,
    contentType: string,
    expiresAt: number,
    ifMatch: VersionCondition | undefined,
    ifNoneMatch: '*' | readonly number[] | undefined,
  ): Promise<KvPutResult> {
    const name = `v/${randomHex(16)}`;
    const nameBytes = encodeUtf8(name);
    const rec = allocRecord(type, BLOB_CRC_BYTES + nameBytes.length);
    const written = (async () => {
      await this.kv.put(tagged(TAG_GARBAGE, name), EMPTY);
      // The CRC of the very bytes handed to the blob store, so damage at rest reads as an error,
      // never as the value. The record is written only after this block, under the key's lock.
      writeBlobPointer(rec, type.length, await blobCrc(value), nameBytes);
      await this.blobs.put(name, value);
    })();
    let writeFailed = false;
    let writeError: unknown;
    // Attached before the lock below, so the flag is set by the time the lock opens.
    written.catch((err: unknown) => {
      writeFailed = true;
      writeError = err;
    });
    // The key is held from the call on, as an inline value's write holds it: calls on the key made
    // after this put (a delete, another put, a read) wait for its blob and apply after it, in call
    // order. Taking its place only once the blob was written let a delete called next apply first,
    // and the large value outlived it.
    const ahead = this.locks.get(key);
    this.hold(key, ahead === undefined ? written : ahead.then(() => written));
    let adopted = false;
    const committed = this.mutate(key, k, (slot) => {
      if (writeFailed) throw writeError;
      const r = this.commitPut(slot, k, rec, type, contentType, value.length, expiresAt, ifMatch, ifNoneMatch, name);
      adopted = true;
      return r;
    });
    return (async () => {
      try {
        return await committed;
      } finally {
        if (!adopted) {
          await written.catch(() => undefined);
          this.discardBlob(name);
        }
      }
    })();
  }


  /** Deletes a blob whose garbage marker is already durable, then the marker. Runs in the background. */
  private discardBlob(name: string): void {
    const task = (async () => {
      await this.blobs.delete(name);
      await this.kv.delete(tagged(TAG_GARBAGE, name));
    })().catch(() => {
      // The marker stays, so the next open retries the clean-up.
    });
    this.background.add(task);
    void task.then(() => this.background.delete(task));
  }

  /** Finishes clean-ups a crash interrupted: every marked blob is unreferenced by construction. */
  private async collectGarbage(): Promise<void> {
    for (;;) {
      const rows = await this.kv.scan({ prefix: Uint8Array.of(TAG_GARBAGE), limit: SWEEP_PAGE });
      for (const row of rows) {
        await this.blobs.delete(decodeUtf8(row.key.subarray(1)));
        await this.kv.delete(row.key);
      }
      if (rows.length < SWEEP_PAGE) return;
    }
  }

  /** `rec` may be storage's transient buffer: everything is decoded or copied before any await. */
  /** `keep`: the entry of an inline value may be kept for `getShared` (and is then shared). */
  private entryOf(key: string, k: Uint8Array, rec: Uint8Array | undefined, attempt: number, keep = false): Awaitable<KvEntry | undefined> {
    if (rec === undefined) return undefined;
    checkRecord(rec, key);
    if (this.expired(rec)) return undefined;
    const expires = recordExpiresAt(rec);
    const size = recordSize(rec);
    const contentType = recordContentType(rec);
    const version = recordVersion(rec);
    if ((recordFlags(rec) & FLAG_BLOB) === 0) {
      // A copy: the caller owns its value (or shares it, kept), and `rec` is storage's buffer or an in-flight record.
      const kept = keep && this.hotValues.fits(size);
      const value = kept ? this.hotValues.alloc(size) : allocValue(size);
      value.set(rec.subarray(bodyOffset(rec)));
      const entry: KvEntry = { value, contentType, version, expiresAt: expires === 0 ? null : expires, size };
      if (kept) this.hotValues.keep(this.hot, key, entry);
      return entry;
    }
    const name = recordBlobName(rec, key);
    const crc = recordBlobCrc(rec);
    return this.blobs.get(name).then(async (value): Promise<KvEntry | undefined> => {
      if (value !== undefined && value.length === size) {
        // Blob names are never reused and a blob is whole once adopted, so a mismatch is damage, not a race.
        if (crc !== undefined && (await blobCrc(value)) !== crc) {
          throw new QuartzError(ErrorCode.CHECKSUM_MISMATCH, `value blob of key '${key}' fails its CRC32C check (damaged storage)`);
        }
        return { value, contentType, version, expiresAt: expires === 0 ? null : expires, size };
      }
      // A concurrent overwrite or delete may have retired this blob between the two reads: read again.
      if (attempt < 3) return this.withCurrent(key, k, (r) => this.entryOf(key, k, r, attempt + 1));
      throw new QuartzError(ErrorCode.CORRUPT_DATA, `value blob of key '${key}' is missing or truncated`);
    });
  }

  private metaOf(key: string, rec: Uint8Array | undefined): KvMeta | undefined {
    if (rec === undefined) return undefined;
    checkRecord(rec, key);
    if (this.expired(rec)) return undefined;
    const expires = recordExpiresAt(rec);
    return { contentType: recordContentType(rec), version: recordVersion(rec), expiresAt: expires === 0 ? null : expires, size: recordSize(rec) };
  }

  /** Expired records are invisible at once; the clock is only read for records that can expire. */
  private expired(rec: Uint8Array): boolean {
    return this.expiredAt(recordExpiresAt(rec));
  }

  /**
   * The clock as versions see it: read once per synchronous run of writes and held until the next
   * microtask. A clock read costs as much as a small put's own work; within one run the versions
   * still grow by the `lastVersion + 1` rule. TTLs and expiry always read the clock itself.
   */
  private versionClock(): number {
    if (this.heldNow < 0) {
      this.heldNow = this.clock.now();
      queueMicrotask(this.releaseNow);
    }
    return this.heldNow;
  }

  private readonly releaseNow = (): void => {
    this.heldNow = -1;
  };

  private expiredAt(at: number): boolean {
    return at !== 0 && at <= this.clock.now();
  }

  private armSweep(at: number): void {
    if (this.closed) return;
    this.cancelSweep?.();
    this.sweepAt = at;
    this.cancelSweep = this.scheduler.schedule(Math.max(0, at - this.clock.now()), () => this.runSweep());
  }

  private async armNextSweep(): Promise<void> {
    const first = await this.kv.scan({ prefix: Uint8Array.of(TAG_TTL), limit: 1 });
    if (first.length > 0) this.armSweep(readU64(first[0]!.key, 1));
  }

  private runSweep(): Promise<void> {
    this.sweepAt = Infinity;
    this.cancelSweep = undefined;
    if (this.closed) return Promise.resolve();
    const task = this.sweep()
      .then(() => this.armNextSweep())
      .catch(() => {
        // Expired keys are already invisible; a failed purge only delays reclaiming space.
        if (!this.closed && this.sweepAt === Infinity) this.armSweep(this.clock.now() + SWEEP_RETRY_MS);
      });
    this.background.add(task);
    void task.then(() => this.background.delete(task));
    return task;
  }
}
