/**
 * The streams engine for one tenant: a Kafka-like log of topics → partitions → offsets.
 *
 * Units it owns: `topics/<tenant>` (the topic catalog), `log/<tenant>/<topic>/<partition>`
 * (one PartitionLog each) and `groups/<tenant>` (consumer-group committed offsets). Keys are
 * partitioned exactly like Kafka's default partitioner (murmur2), keyless batches stick to one
 * partition and the next batch moves on.
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { MAX_TIMESTAMP } from '../../core/segment-records.js';
import { hasLoneSurrogate, showValue } from '../../core/show-value.js';
import { MAX_TENANT_ID, isTenantId } from '../tenant-id.js';
import { RecordSpans, type DecodedRecord, type SegmentCodec } from '../../core/segment.js';
import type { BatchOp, UnitStorage } from '../../ports/storage.js';
import type { EngineContext } from '../context.js';
import { partitionForKey } from './murmur2.js';
import { MAX_BATCH_RAW_BYTES, PartitionLog, RECORD_OVERHEAD, headerSize, type PartitionConfig } from './partition-log.js';
import { SegmentCache } from './segment-cache.js';
import { settleLimited, valuesOrThrow } from '../settle-limited.js';
import { badCursor, cursorFromName, nameFromCursor, pageLimit, type PageOptions } from '../list-cursor.js';
import { SortedNames } from '../../ports/sorted-strings.js';
import { refuseUnknownOptions } from '../known-options.js';

export const MAX_PARTITIONS = 1024;
/** Partitions a topic create, delete or open works on at once (see openLogs). */
const PARTITION_OPS_IN_FLIGHT = 32;
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;
const DAY_MS = 24 * 60 * 60 * 1000;

export const TOPIC_DEFAULTS = {
  partitions: 1,
  retention_ms: 7 * DAY_MS,
  /** -1: no size limit. */
  retention_bytes: -1,
  segment_bytes: 8 * 1024 * 1024,
  segment_ms: DAY_MS,
  compression: 'lz4',
} as const;

export interface TopicOptions {
  partitions?: number;
  /** -1 keeps records forever. */
  retention_ms?: number;
  /** -1: no size limit per partition. */
  retention_bytes?: number;
  segment_bytes?: number;
  segment_ms?: number;
  /** Codec of stored batches: 'lz4' (default) or 'none' for data that does not compress. */
  compression?: SegmentCodec;
}

/** Every key of TopicOptions (the record makes the compiler check the list is complete). */
const TOPIC_OPTION_NAMES = Object.keys({
  partitions: true,
  retention_ms: true,
  retention_bytes: true,
  segment_bytes: true,
  segment_ms: true,
  compression: true,
} satisfies Record<keyof TopicOptions, true>);

/** Every key of ProduceRecord. */
const PRODUCE_RECORD_KEYS = Object.keys({ key: true, value: true, headers: true, timestamp: true, partition: true } satisfies Record<keyof ProduceRecord, true>);

/** Every key of ConsumeOptions. */
const CONSUME_OPTION_NAMES = Object.keys({ max_records: true, max_bytes: true, max_wait_ms: true, signal: true } satisfies Record<keyof ConsumeOptions, true>);

/**
 * Refuses a record's key it does not have (a misspelt `partiton` would send the record elsewhere,
 * a `val` store a null value). Runs for every record produced: the names are compared by hand, no
 * list is built, and for-in walks the record's cached key list.
 */
function refuseUnknownRecordKeys(r: object, i: number, topic: string): void {
  for (const k in r) {
    if (k === 'value' || k === 'key' || k === 'headers' || k === 'partition' || k === 'timestamp') continue;
    if (Object.prototype.hasOwnProperty.call(r, k)) refuseUnknownOptions(r, PRODUCE_RECORD_KEYS, where(i, topic), 'field');
  }
}

export interface TopicConfig {
  name: string;
  partitions: number;
  retention_ms: number;
  retention_bytes: number;
  segment_bytes: number;
  segment_ms: number;
  compression: SegmentCodec;
  created_at: number;
}

export interface PartitionDescription {
  partition: number;
  log_start_offset: number;
  high_watermark: number;
  bytes: number;
  segments: number;
}

export interface TopicDescription extends TopicConfig {
  partition_info: PartitionDescription[];
}

export interface ProduceRecord {
  key?: Uint8Array | null;
  value: Uint8Array | null;
  headers?: Array<{ key: string; value: Uint8Array | null }>;
  /** Milliseconds since the epoch; defaults to the engine clock. */
  timestamp?: number;
  /** Explicit partition; otherwise by key (murmur2), else sticky. */
  partition?: number;
}

/**
 * What a produce answers once its records are durable. `offsets` is the plain form (and the only
 * one JSON, spread and structured clone see); `count`, `offsetOf` and `partitionOf` read the same
 * offsets without building an object per record, and `offsetRun` gives them as one run when they
 * went to one partition.
 */
export interface ProduceResult {
  /** One per input record, in input order (built when first read: an object per record). */
  readonly offsets: Array<{ partition: number; offset: number }>;
  /** Records produced. */
  readonly count: number;
  /** Record `i`'s offset (input order, 0 ≤ i < count), without building `offsets`. */
  offsetOf(i: number): number;
  /** Record `i`'s partition (input order, 0 ≤ i < count), without building `offsets`. */
  partitionOf(i: number): number;
}

export interface ConsumeOptions {
  max_records?: number;
  max_bytes?: number;
  /** Long-poll: wait up to this long for a record when `offset` is the high watermark. */
  max_wait_ms?: number;
  /** Cancels a long-poll (shutdown); the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface ConsumeResult {
  records: DecodedRecord[];
  next_offset: number;
  high_watermark: number;
  log_start_offset: number;
}

/** One partition's offset for `commitOffsets`. */
export interface OffsetCommit {
  partition: number;
  /** The next offset the group will read. */
  offset: number;
  metadata?: string;
}

export interface GroupOffset {
  topic: string;
  partition: number;
  /** Committed offset, or null when the group never committed this partition. */
  offset: number | null;
  metadata: string | null;
  high_watermark: number;
  /** high_watermark − committed (null when nothing is committed). */
  lag: number | null;
}

export interface TopicPage {
  topics: TopicConfig[];
  /** Pass back for the next page; null on the last. */
  cursor: string | null;
}

export interface GroupPage {
  groups: string[];
  /** Pass back for the next page; null on the last. */
  cursor: string | null;
}

export interface StreamStoreOptions {
  /**
   * Bytes of sealed segments kept in memory across this tenant's partitions (default 64 MiB),
   * when the context has no shared `segmentCache`. The engine shares one, of this size, across
   * every tenant.
   */
  segmentCacheBytes?: number;
}

export const DEFAULT_SEGMENT_CACHE_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_RECORDS = 500;
const MAX_MAX_RECORDS = 100_000;
const DEFAULT_MAX_BYTES = 1024 * 1024;
const MAX_MAX_BYTES = 64 * 1024 * 1024;
const MAX_WAIT_MS = 5 * 60 * 1000;
const MAX_GROUP_BYTES = 255;
const MAX_METADATA_CHARS = 4096;

const utf8 = new TextEncoder();
// ignoreBOM: a group name may start with U+FEFF, which the decoder's default would drop.
const fromUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });

function alreadyExists(topic: string): QuartzError {
  return new QuartzError(ErrorCode.ALREADY_EXISTS, `topic '${topic}' already exists`);
}

function invalid(message: string): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, message);
}

function intIn(value: unknown, min: number, max: number, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(`${what} must be an integer from ${min} to ${max}, got ${showValue(value)}`);
  }
  return value;
}

/** An offset that is no integer is bad input; a whole one outside the log is out of range (the caller's check). */
function checkOffsetType(offset: unknown): void {
  if (typeof offset !== 'number' || !Number.isInteger(offset)) throw invalid(`offset must be an integer, got ${showValue(offset)}`);
}

/** Stored JSON that does not parse is damage, reported as such (never a bare SyntaxError). */
function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(fromUtf8.decode(bytes)) as T;
  } catch (cause) {
    throw new QuartzError(ErrorCode.CORRUPT_DATA, `${what} is not valid JSON`, { cause });
  }
}

function checkCompression(value: unknown): SegmentCodec {
  if (value !== 'lz4' && value !== 'none') throw invalid(`compression must be 'lz4' or 'none', got ${showValue(value)}`);
  return value;
}

/** Names a record in an error message (built only on failure: produce is a hot path). */
function where(i: number, topic: string): string {
  return `record ${i} for topic '${topic}'`;
}

/**
 * Validates one record in place and returns its `recordSize`, reading each field once for both (the
 * message is built only on failure). The record goes to the encoder as it is, a missing timestamp
 * filled in there: no copy of each record to add one. The codec checks the fields again as it
 * writes them, since a getter or a resizable buffer may change them between the two reads.
 */
function checkedSize(r: ProduceRecord, i: number, topic: string): number {
  // An array is an object with no record fields: it would be stored as a record with a null value.
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw invalid(`${where(i, topic)} must be an object`);
  refuseUnknownRecordKeys(r, i, topic);
  const key = r.key;
  const value = r.value;
  let size = RECORD_OVERHEAD;
  if (key != null) {
    if (!(key instanceof Uint8Array)) throw invalid(`${where(i, topic)}: key must be bytes or null`);
    size += key.length;
  }
  if (value != null) {
    if (!(value instanceof Uint8Array)) throw invalid(`${where(i, topic)}: value must be bytes or null`);
    size += value.length;
  }
  const timestamp = r.timestamp;
  if (timestamp != null && (!Number.isSafeInteger(timestamp) || timestamp < 0 || timestamp > MAX_TIMESTAMP)) {
    throw invalid(`${where(i, topic)}: timestamp must be a non-negative integer of ms, got ${String(timestamp)}`);
  }
  const headers = r.headers;
  if (headers !== undefined) {
    if (!Array.isArray(headers)) throw invalid(`${where(i, topic)}: headers must be an array`);
    for (const h of headers) {
      if (h === null || typeof h !== 'object') throw invalid(`${where(i, topic)}: each header needs a string key and a bytes or null value`);
      const hk = h.key;
      const hv = h.value;
      if (typeof hk !== 'string' || (hv !== null && !(hv instanceof Uint8Array))) {
        throw invalid(`${where(i, topic)}: each header needs a string key and a bytes or null value`);
      }
      // Stored as UTF-8, which would turn a lone surrogate into U+FFFD: consumers would read another key.
      if (hasLoneSurrogate(hk)) throw invalid(`${where(i, topic)}: header key ${showValue(hk)} is not well-formed Unicode (lone surrogate)`);
      size += headerSize(hk, hv);
    }
  }
  return size;
}

/** A produce whose records all went to one partition got consecutive offsets from `base`. */
export interface OffsetRun {
  partition: number;
  base: number;
  count: number;
}

/**
 * A produce result. Its offsets are kept as each partition's first offset and, when the records
 * went to several partitions, each record's partition: no object per record. A group commit
 * resolves many producers at once: built eagerly, all their offset objects would exist before the
 * first caller runs and survive the next young-generation GC, and a caller that reads them as
 * numbers (`offsetOf`, `offsetRun`, the HTTP answer) needs none. `offsets` is built on first read
 * and kept in a private field. The result used to be a literal with a getter, a builder closure
 * and hidden slots added by `defineProperty`: in the streams bench most of its offset objects
 * then survived scavenges into the old generation; in this class they die young, which took
 * ~100 ns per record off the engine's thread and ~130-180 in all threads (docs/benchmarks.md, "The
 * 100 B row in process"). `offsets` is an own enumerable getter, so JSON, spread and structured
 * clone see a plain `{offsets}`; the rest is private or on the prototype.
 */
class Produced implements ProduceResult {
  readonly #partition: number;
  readonly #base: number;
  readonly #count: number;
  /** Each record's partition when they went to several; then `#bases` holds each partition's first offset. */
  readonly #placement: Uint16Array | undefined;
  readonly #bases: readonly number[] | undefined;
  #offsets: ProduceResult['offsets'] | undefined;
  /** Offset of each record when `#placement` is set, computed when first needed (`offsetOf`, `offsets`). */
  #spread: Float64Array | undefined;
  declare readonly offsets: ProduceResult['offsets'];

  constructor(partition: number, base: number, count: number, placement?: Uint16Array, bases?: readonly number[]) {
    this.#partition = partition;
    this.#base = base;
    this.#count = count;
    this.#placement = placement;
    this.#bases = bases;
    Object.defineProperty(this, 'offsets', OFFSETS);
  }

  get count(): number {
    return this.#count;
  }

  offsetOf(i: number): number {
    this.#check(i);
    if (this.#placement === undefined) return this.#base + i;
    return (this.#spread ??= this.#spreadOffsets())[i]!;
  }

  partitionOf(i: number): number {
    this.#check(i);
    return this.#placement === undefined ? this.#partition : this.#placement[i]!;
  }

  /** The offsets as one run, when the records went to one partition (see `offsetRun`). */
  run(): OffsetRun | undefined {
    return this.#placement === undefined && this.#count > 0 ? { partition: this.#partition, base: this.#base, count: this.#count } : undefined;
  }

  static offsetsOf(result: Produced): ProduceResult['offsets'] {
    return (result.#offsets ??= result.#build());
  }

  #check(i: number): void {
    if (Number.isInteger(i) && i >= 0 && i < this.#count) return;
    // "from 0 to -1" would name no index at all
    throw invalid(this.#count === 0 ? `this produce result holds no records, so there is no record ${showValue(i)}` : `a record index must be an integer from 0 to ${this.#count - 1}, got ${showValue(i)}`);
  }

  /** Each partition's records got consecutive offsets in input order. */
  #spreadOffsets(): Float64Array {
    const placement = this.#placement!;
    const next = this.#bases!.slice();
    const out = new Float64Array(this.#count);
    for (let i = 0; i < out.length; i++) out[i] = next[placement[i]!]!++;
    return out;
  }

  #build(): ProduceResult['offsets'] {
    const count = this.#count;
    const offsets = new Array<{ partition: number; offset: number }>(count);
    const placement = this.#placement;
    if (placement === undefined) {
      const partition = this.#partition;
      const base = this.#base;
      for (let i = 0; i < count; i++) offsets[i] = { partition, offset: base + i };
      return offsets;
    }
    const spread = (this.#spread ??= this.#spreadOffsets());
    for (let i = 0; i < count; i++) offsets[i] = { partition: placement[i]!, offset: spread[i]! };
    return offsets;
  }
}

/** `offsets`' own property on every result: one getter shared by all. */
const OFFSETS: PropertyDescriptor = {
  get(this: Produced) {
    return Produced.offsetsOf(this);
  },
  enumerable: true,
};

/**
 * The offsets of a produce result as one run of consecutive offsets in one partition, when they
 * are: an answer can then be written without building an object per record.
 *
 * @example
 * const run = offsetRun(await streams.produce('orders', records)); // { partition: 0, base: 42, count: 100 }
 */
export function offsetRun(result: Pick<ProduceResult, 'offsets'>): OffsetRun | undefined {
  return result instanceof Produced ? result.run() : undefined;
}

/** Each partition's records of `spans` (placed by `placement`), in input order; no entry for a partition without any. */
function spansByPartition(spans: RecordSpans, placement: Uint16Array, partitions: number): RecordSpans[] {
  const counts = new Int32Array(partitions);
  for (let i = 0; i < spans.length; i++) counts[placement[i]!]!++;
  const parts: Int32Array[] = [];
  for (let p = 0; p < partitions; p++) if (counts[p]! > 0) parts[p] = new Int32Array(counts[p]! * 4);
  const at = new Int32Array(partitions);
  const from = spans.spans;
  for (let i = 0; i < spans.length; i++) {
    const p = placement[i]!;
    const part = parts[p]!;
    let k = at[p]!;
    for (let j = i * 4; j < i * 4 + 4; j++) part[k++] = from[j]!;
    at[p] = k;
  }
  const out: RecordSpans[] = [];
  parts.forEach((part, p) => void (out[p] = new RecordSpans(spans.bytes, part)));
  return out;
}

/** Duck-typed, so a signal from another realm (a vm context, a polyfill) is accepted too. */
function isAbortSignal(value: unknown): value is AbortSignal {
  const s = value as AbortSignal;
  return typeof s === 'object' && typeof s.aborted === 'boolean' && typeof s.addEventListener === 'function' && typeof s.removeEventListener === 'function';
}

interface OpenTopic {
  config: TopicConfig;
  logs: PartitionLog[];
  /** Partition the next keyless batch goes to. */
  sticky: number;
  /** Its partitions' sealed segments and bytes as `logTotals` last summed them. */
  summed: { segments: number; bytes: number };
  /** Whether its partitions' byte changes reach the usage meter: not once it is deleted (see deleteTopic). */
  metering: { on: boolean };
}

/**
 * A topic delete's mark in the groups unit (`d` NUL topic), written before the catalog entry goes
 * and removed with the groups' offsets for it: the open after a crash in between finishes the drop.
 */
function deletingKey(topic: string): Uint8Array {
  return utf8.encode(`d\u0000${topic}`);
}

function groupKey(kind: 'g' | 'o', group: string, topic?: string, partition?: number): Uint8Array {
  const parts = [kind, group];
  if (topic !== undefined) parts.push(topic);
  const head = utf8.encode(parts.join('\u0000') + (topic !== undefined ? '\u0000' : ''));
  if (partition === undefined) return head;
  const key = new Uint8Array(head.length + 4);
  key.set(head);
  new DataView(key.buffer).setUint32(head.length, partition);
  return key;
}

export class StreamStore {
  private readonly topics = new Map<string, OpenTopic>();
  /** Partitions, sealed segments and log bytes over `topics`, as of the last `logTotals` for those in `changedTopics`. */
  private partitionCount = 0;
  private segmentCount = 0;
  private logBytes = 0;
  /** Topics whose partitions' segments or bytes changed since `logTotals` last summed them. */
  private readonly changedTopics = new Set<string>();
  /** The names of `topics`, in order, so a page of the listing is a slice. */
  private readonly names = new SortedNames();
  private closed = false;
  /**
   * Set while the partitions open after the catalog was read (`openCatalog`), and left set to the
   * failure if one failed: every call waits for it, and the figures that answer synchronously
   * (describeTopic, listTopics, logTotals) refuse until it is done.
   */
  private opening: Promise<void> | undefined;
  /**
   * Topic creates and deletes, one at a time: each checks the catalog, then awaits storage before
   * it changes the map, so two at once would both find a name free (both creates "succeed", the
   * later replacing the earlier's open logs) or a create would drop units a delete is dropping.
   */
  private topicChanges: Promise<unknown> = Promise.resolve();
  /** Group commits whose write is under way: a drop of a topic's offsets waits for them (see dropGroupOffsets). */
  private readonly groupCommits = new Set<Promise<void>>();
  /** Set while a topic's committed offsets are dropped: group commits wait for it. */
  private groupDrop: Promise<void> | undefined;

  private constructor(
    private readonly ctx: EngineContext,
    readonly tenantId: string,
    private readonly catalog: UnitStorage,
    private readonly groups: UnitStorage,
    private readonly cache: SegmentCache,
  ) {}

  /**
   * Opens a tenant's streams: loads the topic catalog and opens every partition log (each joins
   * its roll/retention tick slot). The WASM core must be initialised (`await init()`).
   *
   * @example
   * const streams = await StreamStore.open(ctx, 'tenant-1');
   * await streams.createTopic('orders', { partitions: 3 });
   * const { offsets } = await streams.produce('orders', [{ key: utf8('k'), value: utf8('v') }]);
   */
  static async open(ctx: EngineContext, tenantId: string, options: StreamStoreOptions = {}): Promise<StreamStore> {
    const store = await StreamStore.openCatalog(ctx, tenantId, options);
    await store.ready();
    return store;
  }

  /**
   * Loads the topic catalog and starts opening the partition logs, without waiting for them: a
   * tenant with thousands of partitions takes ~60 µs of CPU each to open, which its KV requests
   * need not wait for. Every call waits for them; `ready()` tells when they are open.
   *
   * @example
   * const streams = await StreamStore.openCatalog(ctx, 'tenant-1');
   * await streams.ready(); // before describeTopic, listTopics or logTotals
   */
  static async openCatalog(ctx: EngineContext, tenantId: string, options: StreamStoreOptions = {}): Promise<StreamStore> {
    // The engine's rule (tenant-id.ts): tenant ids become unit names.
    if (!isTenantId(tenantId)) {
      throw invalid(`tenant id must be 1-${MAX_TENANT_ID} characters without '/' or control characters, got ${showValue(tenantId)}`);
    }
    const catalog = await ctx.storage.unit(`topics/${tenantId}`);
    const groups = await ctx.storage.unit(`groups/${tenantId}`);
    const store = new StreamStore(ctx, tenantId, catalog, groups, ctx.segmentCache ?? new SegmentCache(options.segmentCacheBytes ?? DEFAULT_SEGMENT_CACHE_BYTES));
    const configs = (await catalog.kv.scan({ prefix: new Uint8Array(0) })).map((entry) =>
      parseJson<TopicConfig>(entry.value, `tenant '${tenantId}': topic catalog entry '${fromUtf8.decode(entry.key)}'`),
    );
    await store.finishDeletes(new Set(configs.map((c) => c.name)));
    const opening = store.openTopics(configs);
    store.opening = opening;
    // A failure stays in `opening` for every call to report; this only marks it handled.
    opening.then(() => {
      if (store.opening === opening) store.opening = undefined;
    }, () => undefined);
    return store;
  }

  /** Resolves once every partition is open; rejects with what failed if one could not open. */
  ready(): Promise<void> {
    return this.opening ?? Promise.resolve();
  }

  /**
   * Drops the groups' offsets of topics whose delete a crash cut short after their catalog entry
   * went; a mark whose topic is still in the catalog is of a delete that never happened.
   */
  private async finishDeletes(catalogued: Set<string>): Promise<void> {
    const prefix = deletingKey('');
    for (const e of await this.groups.kv.scan({ prefix })) {
      const name = fromUtf8.decode(e.key.subarray(prefix.length));
      if (catalogued.has(name)) await this.groups.kv.delete(e.key);
      else await this.dropGroupOffsets(name, true);
    }
  }

  private async openTopics(configs: TopicConfig[]): Promise<void> {
    try {
      for (const config of configs) {
        const metering = { on: true };
        const logs = await this.openLogs(config, metering);
        if (this.closed) {
          await Promise.all(logs.map((log) => log.close()));
          return;
        }
        this.addTopic(config, logs, metering);
        this.names.add(config.name);
      }
    } catch (err) {
      // The topics opened before the failure would keep their partitions ticking.
      await this.closeTopics();
      throw err;
    }
  }

  private unitName(topic: string, partition: number): string {
    return `log/${this.tenantId}/${topic}/${partition}`;
  }

  private partitionConfig(c: TopicConfig): PartitionConfig {
    return { retentionMs: c.retention_ms, retentionBytes: c.retention_bytes, segmentBytes: c.segment_bytes, segmentMs: c.segment_ms, codec: c.compression ?? TOPIC_DEFAULTS.compression };
  }

  /**
   * Opens a topic's partitions together (PARTITION_OPS_IN_FLIGHT at a time), not one after
   * another: a storage adapter can then batch the units' creation (the Node disk adapter commits
   * concurrent unit creates in one lmdb transaction, so a 1,024-partition topic costs a few dozen
   * fsyncs instead of 1,024).
   */
  private async openLogs(config: TopicConfig, metering: { on: boolean }): Promise<PartitionLog[]> {
    const hooks = {
      logger: this.ctx.logger,
      onBytes: (delta: number) => {
        if (!metering.on) return;
        this.ctx.usage.add(this.tenantId, 'bytes_stored', delta);
        // Every change of a partition's segments or bytes reports here (append, roll, retention).
        this.changedTopics.add(config.name);
      },
    };
    const partitionConfig = this.partitionConfig(config);
    const opened = await settleLimited(Array.from({ length: config.partitions }, (_, p) => this.unitName(config.name, p)), PARTITION_OPS_IN_FLIGHT, async (name) =>
      PartitionLog.open(name, await this.ctx.storage.unit(name), partitionConfig, this.ctx.clock, this.ctx.scheduler, this.cache, hooks, this.ctx.batchEncoder),
    );
    if (opened.some((o) => o.status === 'rejected')) {
      // Close the partitions that did open, so no timer outlives a topic that failed to open.
      await Promise.allSettled(opened.map((o) => (o.status === 'fulfilled' ? o.value.close() : undefined)));
    }
    return valuesOrThrow(opened);
  }

  private checkOpen(): void {
    if (this.closed) throw new QuartzError(ErrorCode.STORAGE_CLOSED, `streams of tenant '${this.tenantId}' are closed`);
    if (this.opening !== undefined) {
      throw new QuartzError(ErrorCode.UNAVAILABLE, `the partitions of tenant '${this.tenantId}' are still opening: await streams.ready() first`);
    }
  }

  private topic(name: string): OpenTopic {
    this.checkOpen();
    if (typeof name !== 'string') throw invalid(`topic name must be a string, got ${typeof name}`);
    const topic = this.topics.get(name);
    if (topic === undefined) throw new QuartzError(ErrorCode.NOT_FOUND, `topic '${name}' does not exist`);
    return topic;
  }

  private log(topic: OpenTopic, partition: number): PartitionLog {
    // Not a partition number at all is the caller's mistake, not a missing partition: '0' read "has no partition 0".
    if (typeof partition !== 'number' || !Number.isInteger(partition) || partition < 0) {
      throw invalid(`partition must be a non-negative integer, got ${showValue(partition)}`);
    }
    if (partition >= topic.logs.length) {
      throw new QuartzError(ErrorCode.NOT_FOUND, `topic '${topic.config.name}' has no partition ${String(partition)}`, {
        details: { partitions: topic.logs.length },
      });
    }
    return topic.logs[partition]!;
  }

  /**
   * Creates a topic. Names starting with `__` are reserved for the system (`{ system: true }`).
   *
   * @example
   * await streams.createTopic('orders', { partitions: 6, retention_ms: 86_400_000 });
   */
  async createTopic(name: string, options: TopicOptions = {}, opts: { system?: boolean } = {}): Promise<TopicConfig> {
    if (this.opening !== undefined) await this.opening;
    this.checkOpen();
    options ??= {}; // JavaScript callers pass null for "no options"
    opts ??= {};
    if (typeof name !== 'string' || !TOPIC_NAME.test(name) || name === '.' || name === '..') {
      throw invalid(`topic name must be 1-249 characters of A-Z a-z 0-9 . _ - (and not '.' or '..'), got ${showValue(name)}`);
    }
    if (name.startsWith('__') && opts.system !== true) {
      throw invalid(`topic name '${name}' is reserved: names starting with '__' belong to the system`);
    }
    if (typeof options !== 'object') throw invalid(`createTopic options must be an object, got ${showValue(options)}`);
    refuseUnknownOptions(options, TOPIC_OPTION_NAMES, `topic '${name}'`);
    // Decided now, as a delete is: a create queued while the topic exists would otherwise run after
    // a delete called later had taken the name out, and that delete's drop would then remove the
    // new topic's catalog entry and partitions.
    if (this.topics.has(name)) throw alreadyExists(name);
    return this.oneTopicChangeAtATime(() => this.create(name, options));
  }

  private oneTopicChangeAtATime<T>(change: () => Promise<T>): Promise<T> {
    const run = this.topicChanges.then(change);
    this.topicChanges = run.catch(() => undefined);
    return run;
  }

  private async create(name: string, options: TopicOptions): Promise<TopicConfig> {
    this.checkOpen();
    if (this.topics.has(name)) throw alreadyExists(name);
    const config: TopicConfig = {
      name,
      partitions: intIn(options.partitions ?? TOPIC_DEFAULTS.partitions, 1, MAX_PARTITIONS, 'partitions'),
      retention_ms: intIn(options.retention_ms ?? TOPIC_DEFAULTS.retention_ms, -1, Number.MAX_SAFE_INTEGER, 'retention_ms'),
      retention_bytes: intIn(options.retention_bytes ?? TOPIC_DEFAULTS.retention_bytes, -1, Number.MAX_SAFE_INTEGER, 'retention_bytes'),
      segment_bytes: intIn(options.segment_bytes ?? TOPIC_DEFAULTS.segment_bytes, 1024, 1024 * 1024 * 1024, 'segment_bytes'),
      segment_ms: intIn(options.segment_ms ?? TOPIC_DEFAULTS.segment_ms, 1, Number.MAX_SAFE_INTEGER, 'segment_ms'),
      compression: checkCompression(options.compression ?? TOPIC_DEFAULTS.compression),
      created_at: this.ctx.clock.now(),
    };
    // A delete that crashed after removing the catalog entry must not leak old records or the
    // groups' committed offsets into the new topic.
    await this.dropPartitionUnits(name, MAX_PARTITIONS);
    await this.dropGroupOffsets(name);
    await this.catalog.kv.put(utf8.encode(name), utf8.encode(JSON.stringify(config)));
    const metering = { on: true };
    this.addTopic(config, await this.openLogs(config, metering), metering);
    this.names.add(name);
    return config;
  }

  private async dropPartitionUnits(name: string, upTo: number): Promise<void> {
    const storage = this.ctx.storage;
    const units = storage.listUnits !== undefined ? await storage.listUnits(`log/${this.tenantId}/${name}/`) : Array.from({ length: upTo }, (_, p) => this.unitName(name, p));
    // Together, so the adapter can batch them (as in openLogs); settled, so the next topic change
    // never starts while some drops still run.
    valuesOrThrow(await settleLimited(units, PARTITION_OPS_IN_FLIGHT, (unit) => storage.dropUnit(unit)));
  }

  /**
   * Every topic's config, sorted by name (see listTopicsPage for a page at a time).
   *
   * @example
   * streams.listTopics().map((t) => t.name); // ['audit', 'orders']
   */
  listTopics(): TopicConfig[] {
    this.checkOpen();
    return this.names.all().map((name) => ({ ...this.topics.get(name)!.config }));
  }

  /**
   * One page of topic configs in name order; pass `cursor` back for the next. A page continues
   * after the last name of the one before, so a topic that exists throughout a listing is listed
   * exactly once, whatever is created or deleted meanwhile.
   *
   * @example
   * let page = streams.listTopicsPage({ limit: 100 });
   * while (page.cursor !== null) page = streams.listTopicsPage({ cursor: page.cursor, limit: 100 });
   */
  listTopicsPage(options: PageOptions = {}): TopicPage {
    this.checkOpen();
    options ??= {}; // JavaScript callers pass null for "no options"
    const limit = pageLimit(options.limit);
    let after: string | undefined;
    if (options.cursor !== undefined && options.cursor !== null) {
      after = nameFromCursor(options.cursor, 249);
      if (!TOPIC_NAME.test(after)) throw badCursor();
    }
    const { names, more } = this.names.after(after, limit);
    return { topics: names.map((name) => ({ ...this.topics.get(name)!.config })), cursor: more ? cursorFromName(names[names.length - 1]!) : null };
  }

  /** The segment cache's lookups and size, for the home's metrics (the engine's shared cache: every tenant's). */
  cacheStats(): { hits: number; misses: number; bytes: number } {
    return { hits: this.cache.hits, misses: this.cache.misses, bytes: this.cache.size };
  }

  /**
   * Topics, partitions, sealed segments and log bytes summed over the tenant's topics, as
   * describeTopic would give them, for the engine's stats and usage levels. Kept as running
   * totals: a call sums again only the partitions of topics that changed since the last one, so a
   * scrape of an idle tenant with 20,000 topics costs microseconds, not a walk of every partition.
   *
   * @example
   * const { partitions, bytes } = streams.logTotals();
   */
  logTotals(): { topics: number; partitions: number; segments: number; bytes: number } {
    this.checkOpen();
    // Only the topics that changed since the last call are summed again.
    for (const name of this.changedTopics) {
      const topic = this.topics.get(name);
      if (topic === undefined) continue; // deleted: taken off the totals then
      let segments = 0;
      let bytes = 0;
      for (const log of topic.logs) {
        segments += log.segmentCount;
        bytes += log.storedBytes;
      }
      this.segmentCount += segments - topic.summed.segments;
      this.logBytes += bytes - topic.summed.bytes;
      topic.summed = { segments, bytes };
    }
    this.changedTopics.clear();
    return { topics: this.topics.size, partitions: this.partitionCount, segments: this.segmentCount, bytes: this.logBytes };
  }

  private addTopic(config: TopicConfig, logs: PartitionLog[], metering: { on: boolean }): void {
    this.topics.set(config.name, { config, logs, sticky: 0, summed: { segments: 0, bytes: 0 }, metering });
    this.partitionCount += logs.length;
    this.changedTopics.add(config.name);
  }

  /**
   * A topic's config and, per partition, log start, high watermark, bytes and segment count.
   *
   * @example
   * const { partition_info } = streams.describeTopic('orders');
   */
  describeTopic(name: string): TopicDescription {
    const topic = this.topic(name);
    return {
      ...topic.config,
      partition_info: topic.logs.map((log, partition) => {
        const s = log.stats();
        return { partition, log_start_offset: s.logStartOffset, high_watermark: s.highWatermark, bytes: s.bytes, segments: s.segments };
      }),
    };
  }

  /**
   * Deletes a topic, its partitions' data and the groups' committed offsets for it.
   *
   * @example
   * await streams.deleteTopic('orders');
   */
  async deleteTopic(name: string): Promise<void> {
    if (this.opening !== undefined) await this.opening;
    // Gone for producers and consumers at once; the storage work waits its turn after any create or delete in flight.
    const topic = this.topic(name);
    this.topics.delete(name);
    this.names.delete(name);
    this.partitionCount -= topic.logs.length;
    this.segmentCount -= topic.summed.segments;
    this.logBytes -= topic.summed.bytes;
    // Metered out in the turn it leaves the logs' totals, and its partitions meter nothing more (a
    // roll under way ends during close): a usage recount reads those totals and the meter's level
    // in one turn, and one starting in between counted the topic's bytes out twice. A drop that
    // fails after the catalog entry is gone leaves units no topic names (a create of the name
    // drops them), which a recount does not count either.
    topic.metering.on = false;
    const freed = topic.logs.reduce((sum, log) => sum + log.storedBytes, 0);
    if (freed > 0) this.ctx.usage.add(this.tenantId, 'bytes_stored', -freed);
    return this.oneTopicChangeAtATime(() => this.drop(name, topic, freed));
  }

  private async drop(name: string, topic: OpenTopic, freed: number): Promise<void> {
    try {
      await this.groups.kv.put(deletingKey(name), new Uint8Array(0));
      await this.catalog.kv.delete(utf8.encode(name));
    } catch (err) {
      // The topic is back on the next open: so are its bytes (as they stood at the delete).
      if (freed > 0) this.ctx.usage.add(this.tenantId, 'bytes_stored', freed);
      throw err;
    }
    valuesOrThrow(await settleLimited(topic.logs, PARTITION_OPS_IN_FLIGHT, (log) => log.close()));
    await this.dropPartitionUnits(name, topic.config.partitions);
    await this.dropGroupOffsets(name, true);
  }

  /**
   * Every group's committed offsets for topic `name`, and the listing's entry of each group left
   * with none (a group is listed while it has committed offsets; so is the entry of a group that
   * earlier builds left behind with none). Group commits wait for it, and it for those under way:
   * a commit landing between its scans and its write would lose its group's entry. `marked`: a
   * delete's mark (deletingKey) goes in the same batch.
   */
  private dropGroupOffsets(name: string, marked = false): Promise<void> {
    const drop = (async () => {
      await Promise.allSettled(this.groupCommits);
      const ops: BatchOp[] = marked ? [{ type: 'delete', key: deletingKey(name) }] : [];
      const kept = new Set<string>();
      for (const e of await this.groups.kv.scan({ prefix: utf8.encode('o') })) {
        const [, group, topic] = fromUtf8.decode(e.key.subarray(0, e.key.length - 4)).split('\u0000');
        if (topic === name) ops.push({ type: 'delete', key: e.key });
        else kept.add(group!);
      }
      const prefix = utf8.encode('g\u0000');
      for (const e of await this.groups.kv.scan({ prefix })) {
        if (!kept.has(fromUtf8.decode(e.key.subarray(prefix.length)))) ops.push({ type: 'delete', key: e.key });
      }
      if (ops.length > 0) await this.groups.kv.batch(ops);
    })();
    const settled = drop.then(
      () => undefined,
      () => undefined,
    );
    this.groupDrop = settled;
    void settled.then(() => {
      if (this.groupDrop === settled) this.groupDrop = undefined;
    });
    return drop;
  }

  /**
   * Appends records and resolves with their offsets once durable. Partition: the record's
   * own, else Kafka's murmur2 of the key, else one sticky partition for the whole batch.
   *
   * @example
   * const { offsets } = await streams.produce('orders', [{ key: utf8('user-1'), value: utf8('{"n":1}') }]);
   */
  produce(topicName: string, records: ProduceRecord[] | RecordSpans): Promise<ProduceResult> {
    if (this.opening !== undefined) return this.opening.then(() => this.produce(topicName, records));
    try {
      return this.startProduce(topicName, records);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Validates, places and encodes synchronously, then returns a promise that holds only the
   * placements: the records are garbage as soon as they are encoded, so 64 batches waiting on
   * one commit do not carry 64,000 record objects through every young-generation GC.
   */
  private startProduce(topicName: string, records: ProduceRecord[] | RecordSpans): Promise<ProduceResult> {
    const topic = this.topic(topicName);
    const spans = records instanceof RecordSpans ? records : undefined;
    if (spans === undefined && !Array.isArray(records)) throw invalid(`records for topic '${topicName}' must be an array or RecordSpans`);
    const count = records.length;
    if (count === 0) return Promise.resolve(new Produced(-1, -1, 0));
    const n = topic.logs.length;
    const now = this.ctx.clock.now();
    // Partition per record, and each partition's raw bytes, filled in only once a batch turns out to span partitions.
    let placement: Uint16Array | undefined;
    let rawBytes: number[] | undefined;
    let first = -1;
    let raw = 0;
    let usedSticky = false;
    for (let i = 0; i < count; i++) {
      let size: number;
      let p: number;
      if (spans !== undefined) {
        // Spans were checked against their bytes when made; they have no partition of their own.
        const keyLength = spans.keyLength(i);
        size = RECORD_OVERHEAD + Math.max(0, keyLength) + Math.max(0, spans.valueLength(i));
        if (keyLength >= 0) p = n === 1 ? 0 : partitionForKey(spans.bytes, n, spans.spans[i * 4]!, spans.spans[i * 4 + 1]!);
        else {
          p = topic.sticky % n;
          usedSticky = true;
        }
      } else {
        const r = (records as ProduceRecord[])[i]!;
        size = checkedSize(r, i, topicName);
        // Read once: a getter answering another partition after the check would place the record in none.
        const partition = r.partition;
        if (partition !== undefined) {
          this.log(topic, partition);
          p = partition;
        } else if (r.key != null) {
          p = n === 1 ? 0 : partitionForKey(r.key, n);
        } else {
          p = topic.sticky % n;
          usedSticky = true;
        }
      }
      if (size > MAX_BATCH_RAW_BYTES) {
        throw new QuartzError(ErrorCode.TOO_LARGE, `${where(i, topicName)} is ${size} bytes; a record may be at most ${MAX_BATCH_RAW_BYTES} bytes`);
      }
      if (first === -1) first = p;
      else if (placement !== undefined) placement[i] = p;
      else if (p !== first) {
        placement = new Uint16Array(count).fill(first, 0, i);
        placement[i] = p;
        rawBytes = new Array<number>(n).fill(0);
        rawBytes[first] = raw;
      }
      if (rawBytes === undefined) raw += size;
      else rawBytes[p]! += size;
    }
    if (usedSticky) topic.sticky = (topic.sticky + 1) % n;
    const done = (): void => this.ctx.usage.add(this.tenantId, 'records_produced', count);
    if (placement === undefined) {
      const partition = first;
      return topic.logs[partition]!.append(records, raw, now).then((base) => {
        done();
        return new Produced(partition, base, count);
      });
    }
    return this.appendSpread(topic, records, placement, rawBytes!, now).then((bases) => {
      done();
      return new Produced(-1, -1, count, placement, bases);
    });
  }

  /**
   * Appends records bound for several partitions (`rawBytes`: each partition's sum of their
   * `recordSize`); resolves with each partition's first offset.
   */
  private appendSpread(topic: OpenTopic, recs: ProduceRecord[] | RecordSpans, placement: Uint16Array, rawBytes: readonly number[], now: number): Promise<number[]> {
    const perPartition: Array<ProduceRecord[] | RecordSpans> = recs instanceof RecordSpans ? spansByPartition(recs, placement, topic.logs.length) : [];
    if (!(recs instanceof RecordSpans)) {
      for (let i = 0; i < recs.length; i++) {
        const p = placement[i]!;
        ((perPartition[p] ??= []) as ProduceRecord[]).push(recs[i]!);
      }
    }
    const bases: number[] = [];
    const writes: Promise<void>[] = [];
    perPartition.forEach((list, p) => {
      writes.push(topic.logs[p]!.append(list, rawBytes[p], now).then((base) => void (bases[p] = base)));
    });
    return Promise.all(writes).then(() => bases);
  }

  /**
   * Reads records from `(topic, partition, offset)`. At the high watermark with `max_wait_ms`
   * it long-polls: it returns as soon as a record is committed, or empty after the wait.
   * Records' keys, values and header values view shared memory (the segment cache): read them,
   * copy them, but never write to them, or later reads of those offsets see the change.
   *
   * @example
   * const res = await streams.consume('orders', 0, 0, { max_records: 100, max_wait_ms: 1000 });
   * for (const r of res.records) handle(r.offset, r.value);
   */
  async consume(topicName: string, partition: number, offset: number, options: ConsumeOptions = {}): Promise<ConsumeResult> {
    if (this.opening !== undefined) await this.opening;
    const topic = this.topic(topicName);
    const log = this.log(topic, partition);
    options ??= {}; // JavaScript callers pass null for "no options"
    // The message is built only for a key that is not known: consume is a hot path.
    for (const k in options) if (!CONSUME_OPTION_NAMES.includes(k)) refuseUnknownOptions(options, CONSUME_OPTION_NAMES, `consume of topic '${topicName}'`);
    const signal = options.signal;
    // Checked before a long-poll registers anything: a waiter left behind by a failed addEventListener
    // would call removeEventListener on the bad value when it fires, and throw outside any caller.
    if (signal != null && !isAbortSignal(signal)) throw invalid(`signal must be an AbortSignal, got ${showValue(signal)}`);
    const maxRecords = intIn(options.max_records ?? DEFAULT_MAX_RECORDS, 1, MAX_MAX_RECORDS, 'max_records');
    const maxBytes = intIn(options.max_bytes ?? DEFAULT_MAX_BYTES, 1, MAX_MAX_BYTES, 'max_bytes');
    const maxWait = intIn(options.max_wait_ms ?? 0, 0, MAX_WAIT_MS, 'max_wait_ms');
    const subject = `topic '${topicName}' partition ${partition}`;
    checkOffsetType(offset);
    log.checkOffset(offset, subject);
    if (offset === log.highWatermark && maxWait > 0) {
      const release = this.ctx.scheduler.hold?.();
      try {
        await log.waitFor(offset, maxWait, signal ?? undefined);
      } finally {
        release?.();
      }
      this.checkOpen();
      if (this.topics.get(topicName) !== topic) throw new QuartzError(ErrorCode.NOT_FOUND, `topic '${topicName}' was deleted`);
    }
    const { records, nextOffset } = await log.read(offset, maxRecords, maxBytes, subject);
    return { records, next_offset: nextOffset, high_watermark: log.highWatermark, log_start_offset: log.logStartOffset };
  }

  /**
   * The first offset whose timestamp is at or after `timestamp` (the high watermark if none).
   *
   * @example
   * const from = await streams.offsetForTimestamp('orders', 0, Date.now() - 3_600_000);
   */
  async offsetForTimestamp(topicName: string, partition: number, timestamp: number): Promise<number> {
    if (this.opening !== undefined) await this.opening;
    const log = this.log(this.topic(topicName), partition);
    if (typeof timestamp !== 'number' || !Number.isFinite(timestamp)) throw invalid(`timestamp must be a number of ms, got ${String(timestamp)}`);
    return log.offsetForTime(timestamp);
  }

  /**
   * Seals every partition's tail and applies retention now (what the timers do).
   *
   * @example
   * await streams.maintain('orders'); // e.g. before a backup, or in tests
   */
  async maintain(topicName: string): Promise<void> {
    if (this.opening !== undefined) await this.opening;
    for (const log of this.topic(topicName).logs) {
      await log.roll();
      await log.applyRetention();
    }
  }

  private checkGroup(group: string): void {
    // A lone surrogate would be stored as U+FFFD: two groups would share their committed offsets.
    if (typeof group !== 'string' || group.length === 0 || utf8.encode(group).length > MAX_GROUP_BYTES || /[\u0000-\u001f]/.test(group) || hasLoneSurrogate(group)) {
      throw invalid(`group id must be 1-${MAX_GROUP_BYTES} bytes of well-formed Unicode without control characters, got ${showValue(group)}`);
    }
  }

  /**
   * Commits a consumer group's offset (the next offset to read) for one partition.
   *
   * @example
   * await streams.commitOffset('billing', 'orders', 0, res.next_offset);
   */
  async commitOffset(group: string, topicName: string, partition: number, offset: number, metadata?: string): Promise<void> {
    await this.commitOffsets(group, topicName, [{ partition, offset, metadata }]);
  }

  /**
   * Commits a consumer group's offsets for several partitions of one topic: all of them or, if
   * any is invalid, none. One durable write however many partitions, where committing them one
   * call at a time waits for a write each.
   *
   * @example
   * await streams.commitOffsets('billing', 'orders', [{ partition: 0, offset: 120 }, { partition: 1, offset: 98 }]);
   */
  async commitOffsets(group: string, topicName: string, offsets: ReadonlyArray<OffsetCommit>): Promise<void> {
    if (this.opening !== undefined) await this.opening;
    this.checkGroup(group);
    const topic = this.topic(topicName);
    if (!Array.isArray(offsets) || offsets.length === 0) throw invalid('offsets must be a non-empty array of {partition, offset, metadata?}');
    const now = this.ctx.clock.now();
    const seen = new Set<number>();
    const ops: BatchOp[] = [{ type: 'put', key: groupKey('g', group), value: new Uint8Array(0) }];
    for (const entry of offsets) {
      if (typeof entry !== 'object' || entry === null) throw invalid(`each offset to commit must be {partition, offset, metadata?}, got ${showValue(entry)}`);
      const { partition, offset, metadata } = entry;
      const log = this.log(topic, partition);
      if (seen.has(partition)) throw invalid(`partition ${partition} appears more than once among the offsets to commit`);
      seen.add(partition);
      checkOffsetType(offset);
      if (!Number.isSafeInteger(offset) || offset < 0 || offset > log.highWatermark) {
        throw new QuartzError(
          ErrorCode.OFFSET_OUT_OF_RANGE,
          `cannot commit offset ${String(offset)} for topic '${topicName}' partition ${partition}: it must be 0 to ${log.highWatermark}`,
          { details: { offset, log_start_offset: log.logStartOffset, high_watermark: log.highWatermark } },
        );
      }
      if (metadata !== undefined && (typeof metadata !== 'string' || metadata.length > MAX_METADATA_CHARS)) {
        throw invalid(`offset metadata must be a string of at most ${MAX_METADATA_CHARS} characters`);
      }
      const value = { offset, metadata: metadata ?? null, committed_at: now };
      ops.push({ type: 'put', key: groupKey('o', group, topicName, partition), value: utf8.encode(JSON.stringify(value)) });
    }
    while (this.groupDrop !== undefined) await this.groupDrop;
    // The topic may have been deleted while this waited (and created again): its offsets must not come back.
    if (this.topic(topicName) !== topic) throw new QuartzError(ErrorCode.NOT_FOUND, `topic '${topicName}' does not exist`);
    const write = Promise.resolve(this.groups.kv.batch(ops));
    this.groupCommits.add(write);
    try {
      await write;
    } finally {
      this.groupCommits.delete(write);
    }
  }

  /**
   * A group's committed offsets with lag, for every partition of `topic` (or of every topic
   * the group committed to).
   *
   * @example
   * const rows = await streams.fetchOffsets('billing', 'orders'); // [{partition, offset, lag, …}]
   */
  async fetchOffsets(group: string, topicName?: string): Promise<GroupOffset[]> {
    if (this.opening !== undefined) await this.opening;
    this.checkGroup(group);
    this.checkOpen();
    if (topicName !== undefined && typeof topicName !== 'string') throw invalid(`topic name must be a string, got ${showValue(topicName)}`);
    const committed = new Map<string, { offset: number; metadata: string | null }>();
    const prefix = topicName === undefined ? utf8.encode(`o\u0000${group}\u0000`) : groupKey('o', group, topicName);
    for (const e of await this.groups.kv.scan({ prefix })) {
      const head = fromUtf8.decode(e.key.subarray(0, e.key.length - 4)).split('\u0000');
      const p = new DataView(e.key.buffer, e.key.byteOffset + e.key.length - 4, 4).getUint32(0);
      committed.set(`${head[2]}\u0000${p}`, parseJson<{ offset: number; metadata: string | null }>(e.value, `group '${group}': committed offset of '${head[2]}' partition ${p}`));
    }
    const topicNames = topicName !== undefined ? [topicName] : [...new Set([...committed.keys()].map((k) => k.split('\u0000')[0]!))].sort();
    const rows: GroupOffset[] = [];
    for (const name of topicNames) {
      const topic = topicName !== undefined ? this.topic(name) : this.topics.get(name);
      if (topic === undefined) continue;
      topic.logs.forEach((log, partition) => {
        const c = committed.get(`${name}\u0000${partition}`);
        const hwm = log.highWatermark;
        rows.push({
          topic: name,
          partition,
          offset: c?.offset ?? null,
          metadata: c?.metadata ?? null,
          high_watermark: hwm,
          lag: c === undefined ? null : Math.max(0, hwm - c.offset),
        });
      });
    }
    return rows;
  }

  /**
   * Groups that have committed at least one offset, sorted.
   *
   * @example
   * await streams.listGroups(); // ['billing', 'search-indexer']
   */
  async listGroups(): Promise<string[]> {
    if (this.opening !== undefined) await this.opening;
    this.checkOpen();
    const prefix = utf8.encode('g\u0000');
    return (await this.groups.kv.scan({ prefix })).map((e) => fromUtf8.decode(e.key.subarray(prefix.length)));
  }

  /**
   * One page of groups in byte order of their UTF-8 ids; pass `cursor` back for the next. Read
   * from storage a page at a time, continuing after the last id returned.
   *
   * @example
   * const { groups, cursor } = await streams.listGroupsPage({ limit: 100 });
   */
  async listGroupsPage(options: PageOptions = {}): Promise<GroupPage> {
    if (this.opening !== undefined) await this.opening;
    this.checkOpen();
    options ??= {}; // JavaScript callers pass null for "no options"
    const limit = pageLimit(options.limit);
    const prefix = utf8.encode('g\u0000');
    let start = prefix;
    if (options.cursor !== undefined && options.cursor !== null) {
      const group = nameFromCursor(options.cursor, MAX_GROUP_BYTES);
      try {
        this.checkGroup(group);
      } catch {
        throw badCursor();
      }
      // The least key above the group's own: its key with a 0 byte added.
      const key = groupKey('g', group);
      start = new Uint8Array(key.length + 1);
      start.set(key);
    }
    const rows = await this.groups.kv.scan({ start, end: utf8.encode('g\u0001'), limit: limit + 1 });
    const groups = rows.slice(0, limit).map((e) => fromUtf8.decode(e.key.subarray(prefix.length)));
    return { groups, cursor: rows.length > limit ? cursorFromName(groups[groups.length - 1]!) : null };
  }

  /**
   * Stops timers, wakes long-polls (they reject with STORAGE_CLOSED) and lets in-flight
   * commits finish.
   *
   * @example
   * await streams.close();
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A create or delete under way finishes first (queued ones see `closed` and refuse): a create cut
    // short reported storage_closed with its topic already in the catalog, and its logs left open.
    await this.topicChanges;
    // Partitions still opening are closed as they open (see openTopics).
    await this.opening?.catch(() => undefined);
    await this.closeTopics();
  }

  private async closeTopics(): Promise<void> {
    for (const topic of this.topics.values()) for (const log of topic.logs) await log.close();
    this.topics.clear();
    this.names.clear();
  }
}
