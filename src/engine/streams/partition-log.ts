/**
 * One partition's log, the only writer of its Storage unit (`log/<tenant>/<topic>/<partition>`).
 *
 * Layout of the unit:
 *   kv  `m`                → JSON `{ logStart }` (written when retention moves the log start)
 *   kv  `s` + u64be(base)  → JSON segment descriptor, one per sealed segment
 *   kv  `t` + u64be(base)  → one produce write of the tail: a run of encoded record batches (the
 *                            segment codec's bytes), each of at most BLOCK_BYTES of records
 *   blob `seg/<base, 20 digits>` → a sealed segment (header + the tail's batches + footer)
 *
 * Produce is group-committed: offsets are assigned and batches encoded as requests arrive (large
 * LZ4 runs framed here and sealed by the home's BatchEncoder when it has one; commits still go in
 * offset order), and one commit makes every request that queued during the previous commit
 * durable: one `kv.batch()`, or one `putOwned` per batch issued together (lmdb commits the writes
 * of one event turn together; storage applies writes in order, so a crash leaves a prefix of them).
 * A roll writes the blobs first (up to SEGMENTS_PER_SEAL at once) and then, in ONE atomic KV
 * batch, records those segments and deletes the tail entries they hold, so a crash at any point
 * leaves each record exactly once (a blob that no descriptor names is an orphan, deleted on open).
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';
import {
  BATCH_HEADER_SIZE,
  SegmentReader,
  SegmentWriter,
  decodeBatch,
  decodeBatchRun,
  encodeBatchRun,
  frameRun,
  sealRun,
  readBatchRun,
  RecordSpans,
  storedUncompressed,
  type BatchHeader,
  type BatchRange,
  type DecodedRecord,
  type EncodableRecord,
  type EncodableRecords,
  type EncodedRun,
  type SegmentCodec,
} from '../../core/segment.js';
import { ownRecordBytes } from '../../core/segment-records.js';
import { showValue } from '../../core/show-value.js';
import type { BatchEncoder } from '../../ports/batch-encoder.js';
import type { Clock, Scheduler } from '../../ports/clock.js';
import { consoleLogger, type Logger } from '../../ports/logger.js';
import { type Awaitable, type BatchOp, type UnitStorage } from '../../ports/storage.js';
import { murmur2 } from './murmur2.js';
import { OWNER_END, type SegmentCache } from './segment-cache.js';
import { TickSlots } from './tick-slots.js';

export interface PartitionConfig {
  retentionMs: number;
  retentionBytes: number;
  segmentBytes: number;
  segmentMs: number;
  /** Codec for new batches; a sealed segment keeps each batch's own. */
  codec: SegmentCodec;
  /** Unsealed bytes past which produce waits for the roll; default `unsealedBound(segmentBytes)`. */
  maxUnsealedBytes?: number;
}

export interface SegmentInfo {
  base: number;
  /** One past the last offset. */
  end: number;
  bytes: number;
  maxTimestamp: number;
  blob: string;
}

/** One tail entry: a run of batches (one produce write), or a single batch written before runs. */
interface TailBatch {
  base: number;
  end: number;
  bytes: Uint8Array;
  baseTimestamp: number;
  maxTimestamp: number;
  /** Bytes of its records decompressed: what the cache charges for the decoded entry. */
  uncompressedSize: number;
  /** Encoded by this process and held since, so sealing need not re-check its CRC; false once read back from storage. */
  encodedHere: boolean;
  /** `bytes` may go back to the buffer pool once sealed (see `recycle`). */
  recyclable: boolean;
  /** Some batch is stored uncompressed: its decoded records would view `bytes` (see `decodableBytes`). */
  holdsUncompressed: boolean;
}

type PutOp = Extract<BatchOp, { type: 'put' }>;

/** A produce write waiting for room under the unsealed bound (see `unsealedBound`). */
interface RoomWaiter {
  records: EncodableRecords;
  rawBytes: number | undefined;
  timestamp: number | undefined;
  resolve: (base: number | Promise<number>) => void;
  reject: (err: unknown) => void;
  cancelTimer: () => void;
}

interface PendingWrite {
  ops: PutOp[];
  batches: TailBatch[];
  bytes: number;
  /** First offset of the write, what `resolve` is called with. */
  base: number;
  /** Its records' raw bytes, counted as unsealed from its admission until it commits or fails. */
  reserved: number;
  /**
   * Set while some of its batches are being sealed by the home's encoder (their `ops` and
   * `batches` entries are filled in then); the write cannot be committed before. Rejects if the
   * encoder failed: the write fails then, with the writes queued behind it.
   */
  sealing: Promise<void> | undefined;
  resolve: (base: number) => void;
  reject: (err: unknown) => void;
}

export interface ReadResult {
  records: DecodedRecord[];
  nextOffset: number;
}

export interface PartitionStats {
  logStartOffset: number;
  highWatermark: number;
  bytes: number;
  segments: number;
}

export interface PartitionHooks {
  /** Bytes stored changed by `delta` (produce, roll, retention). */
  onBytes(delta: number): void;
  /** Where a failing roll or retention is reported; default the console. */
  logger?: Logger;
}

/** Raw bytes per tail entry (a run of batches) stay well under the 1 MiB KV entry limit, LZ4's worst case and batch headers included. */
export const MAX_BATCH_RAW_BYTES = 896 * 1024;
/** A record's fixed overhead inside a batch (varints), for sizing batches before encoding. */
export const RECORD_OVERHEAD = 24;
/**
 * Bytes read from a segment's end to find its footer (20 B per batch): an 8 MiB segment of 16 KiB
 * batches of 100 B records has ~1,450 of them, a 29 KB footer.
 */
const TAIL_GUESS = 64 * 1024;

/**
 * Segments a roll writes at once and records in one KV batch. One at a time, each seal waited for
 * its own blob fsync and KV commit (~0.5 s on a busy disk) and the roll fell behind a fast producer:
 * the tail, held in memory and in the KV, grew by hundreds of megabytes.
 */
const SEGMENTS_PER_SEAL = 4;

/**
 * The unsealed bytes a partition holds at most before produce waits: its tail plus the writes
 * admitted and not yet committed (their records' raw bytes, what an encoder holds while it works on
 * them). Without a bound a producer outran the rolls: 1 KB records uncompressed grew the tail to
 * ~300 MiB (RSS 1.1-1.9 GB) before a seal caught up. Two roll steps' worth: one being sealed while
 * the next fills, so a roll that keeps up never holds the producer back; at least 32 MiB, so that a
 * topic of tiny segments still has room for a pipeline of 1 MB writes and their group commits.
 */
export function unsealedBound(segmentBytes: number): number {
  return Math.max(2 * SEGMENTS_PER_SEAL * segmentBytes, UNSEALED_FLOOR);
}
const UNSEALED_FLOOR = 32 * 1024 * 1024;

/**
 * How long a produce write waits for room before it fails with `unavailable` (nothing stored): a
 * roll that makes no progress for this long (a stalled disk) is not going to within a request's life.
 */
export const ROOM_WAIT_MS = 30_000;

/**
 * Records bytes per batch (Kafka's default producer batch.size): a produce write is stored as a
 * run of batches of at most this size, and a sealed segment holds no larger one (the seal cuts
 * batches written before runs), so a random read of a few records range-reads, checks and
 * decompresses one small batch rather than a producer's whole one. 16 KiB against 4 and 8 KiB:
 * 1-3 µs slower per random read, 5-15% fewer bytes on disk; against 32 KiB: ~8 µs faster, ~5%
 * more bytes (docs/streams.md, "Batches of at most 16 KiB").
 */
export const BLOCK_BYTES = 16 * 1024;

/**
 * A run below the encoder's `minBytes` but of at least this many record bytes (1,000 × 100 B is
 * 124 KB) is still sealed off the engine's thread when at least `BACKLOG_WRITES` writes already
 * wait for a commit, queued or in the commit running: a producer pipeline whose engine thread is
 * the bottleneck, whose commit would wait anyway and whose encoder thread stays busy. In process (64
 * writes of 1,000 × 100 B in flight) that took the engine thread's CPU per record from 525-710 to
 * 345-470 ns, for 3-10% more CPU in all threads (docs/benchmarks.md, "The 100 B row in process").
 * Counting only the queued ones sealed the first ~8 writes of each burst a commit released inline
 * (the queue had just been taken into the commit): counting both took the main thread's CPU per
 * record down by ~50 ns more, the process's unchanged.
 * A few producers (4 HTTP clients, so at most 3 waiting) stay inline: there each hop woke an idle
 * thread and cost the server 10-20% more CPU per request (docs/benchmarks.md, "LZ4 on a worker thread").
 * Only a write that is one run: the rest of a larger write (104 records of a 1,000 × 1 KB write)
 * stays inline, as before, since at 1 KB the encoder thread, not the engine's, bounds the row.
 */
const BACKLOG_MIN_BYTES = 64 * 1024;
const BACKLOG_WRITES = 8;

/**
 * A random read's batch (~5 KB stored at 16 KiB of records) is read into one of a few reused
 * buffers of this size when the blob store can (`readInto`), not into a fresh array: allocating
 * that array cost about as much as the pread itself. Larger batches get an array of their own.
 */
const READ_BUFFER_BYTES = 64 * 1024;
/** Spare read buffers kept across partitions: one per range read in flight at once, up to this. */
const SPARE_READ_BUFFERS = 8;
const spareReadBuffers: ArrayBuffer[] = [];

/** Read ends remembered per partition to tell sequential consumers from random reads. */
const READ_ENDS = 8;

const META_KEY = new Uint8Array([0x6d]); // 'm'
const SEG_PREFIX = 0x73; // 's'
const TAIL_PREFIX = 0x74; // 't'

function offsetKey(prefix: number, offset: number): Uint8Array {
  const key = new Uint8Array(9);
  key[0] = prefix;
  const hi = Math.floor(offset / 0x100000000);
  const lo = offset >>> 0;
  key[1] = hi >>> 24;
  key[2] = hi >>> 16;
  key[3] = hi >>> 8;
  key[4] = hi;
  key[5] = lo >>> 24;
  key[6] = lo >>> 16;
  key[7] = lo >>> 8;
  key[8] = lo;
  return key;
}

function keyOffset(key: Uint8Array): number {
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  return view.getUint32(1) * 0x100000000 + view.getUint32(5);
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Encoded batches below this size are plain arrays: pooling them would waste most of a class. */
const POOL_MIN = 16 * 1024;
/**
 * Spare bytes the pool keeps across all partitions: what one roll step gives back (up to
 * SEGMENTS_PER_SEAL segments of 8 MiB by default), so its buffers are reused rather than dropped.
 */
const POOL_RETAIN = 64 * 1024 * 1024;
/**
 * Buffers of sealed tail batches, by capacity, reused to encode new batches: a fresh array per
 * produced batch cost an allocation, its zeroing and page faults, and off-heap churn that sets
 * off full GCs.
 */
const spareBuffers = new Map<number, ArrayBuffer[]>();
/** PartitionLog instances made in this process (see `cacheOwner`). */
let openedLogs = 0;
let spareBytes = 0;

/** Capacity for `length` bytes: rounded up to an eighth of its octave, so at most 1/8 is unused. */
function capacityFor(length: number): number {
  const step = 2 ** Math.max(0, 28 - Math.clz32(length));
  return Math.ceil(length / step) * step;
}

function takeBuffer(length: number): Uint8Array {
  if (length < POOL_MIN) return new Uint8Array(length);
  const capacity = capacityFor(length);
  const spare = spareBuffers.get(capacity)?.pop();
  if (spare === undefined) return new Uint8Array(new ArrayBuffer(capacity), 0, length);
  spareBytes -= capacity;
  return new Uint8Array(spare, 0, length);
}

/**
 * Gives the buffer of a sealed batch back to the pool. Only for batches that nothing can still
 * read: decoded only from a copy when stored uncompressed (`decodableBytes`; LZ4 decompresses into
 * arrays of its own), so no consumer holds a view of these bytes; committed through `putOwned`
 * (the adapter lets go once the write is durable); written into a segment blob (`putParts` lets go
 * once written) and dropped from the tail.
 */
function recycle(bytes: Uint8Array): void {
  if (bytes.buffer.byteLength === capacityFor(bytes.length)) giveBack(bytes.buffer as ArrayBuffer);
}

/** Puts a buffer that nothing else holds into the pool, if it is of a pool size. */
function giveBack(buffer: ArrayBuffer): void {
  const capacity = buffer.byteLength;
  if (spareBytes + capacity > POOL_RETAIN || capacity < POOL_MIN || capacity !== capacityFor(capacity)) return;
  let list = spareBuffers.get(capacity);
  if (list === undefined) spareBuffers.set(capacity, (list = []));
  list.push(buffer);
  spareBytes += capacity;
}

/**
 * A run's framed records go into a pooled buffer with room to be sealed in place (`sealRun`:
 * at most a batch header more per batch), so the encoder allocates nothing.
 */
function frameBuffer(length: number, batches: number): Uint8Array {
  return takeBuffer(length + batches * BATCH_HEADER_SIZE).subarray(0, length);
}

function blobName(base: number): string {
  return `seg/${String(base).padStart(20, '0')}`;
}

/**
 * Raw size of a record for batch sizing and max_bytes accounting. NOTE: an indexed loop, not
 * for-of: a read measures every record it answers, and for-of over each one's headers (the shared
 * empty array, most often) allocated an iterator per record where V8 did not optimize it away,
 * ~90 bytes of garbage per record read.
 */
export function recordSize(r: EncodableRecord): number {
  let n = RECORD_OVERHEAD + (r.key?.length ?? 0) + (r.value?.length ?? 0);
  const headers = r.headers;
  if (headers) for (let j = 0; j < headers.length; j++) n += headerSize(headers[j]!.key, headers[j]!.value);
  return n;
}

/** `recordSize` of record `i` of `records`. */
function recordSizeAt(records: EncodableRecords, i: number): number {
  if (!(records instanceof RecordSpans)) return recordSize(records[i]!);
  return RECORD_OVERHEAD + Math.max(0, records.keyLength(i)) + Math.max(0, records.valueLength(i));
}

/** A header's share of `recordSize`: a caller that reads the header's fields anyway adds this. */
export function headerSize(key: string, value: Uint8Array | null | undefined): number {
  return key.length * 3 + (value?.length ?? 0) + 4;
}

/**
 * Refuses a chunk whose encoded records take more than a tail entry may hold. The chunk was sized
 * from the records' fields as the caller read them; the codec reads them again, and a getter may
 * answer more the second time (10 B, then 900 KiB). Checked once per chunk, on the encoded size:
 * an honest chunk encodes within its measured size, never above the limit.
 */
function refuseGrown(encodedRaw: number, partition: string): void {
  if (encodedRaw > MAX_BATCH_RAW_BYTES) {
    throw new QuartzError(
      ErrorCode.TOO_LARGE,
      `partition ${partition}: the records encode to ${encodedRaw} bytes, more than the ${MAX_BATCH_RAW_BYTES} a record or a batch may take (they changed after they were checked)`,
    );
  }
}

/** Index of the last element whose `base` is <= offset (-1 if none). */
/** How many once-decoded batch keys a partition remembers before it starts over. */
const DECODED_ONCE_KEYS = 4096;

/** What the cache charges for a decoded batch: objects and views of its records (~200 B each). */
const DECODED_RECORD_OVERHEAD = 200;

/** Cache cost of decoded records that view a decompressed section: their bytes and their objects. */
function decodedBytes(records: readonly DecodedRecord[]): number {
  let bytes = 0;
  for (const r of records) bytes += recordSize(r) + DECODED_RECORD_OVERHEAD;
  return bytes;
}

/** What the engine needs of a tail entry's run of batches. */
function summarize(run: readonly BatchHeader[]): { baseOffset: number; nextOffset: number; baseTimestamp: number; maxTimestamp: number; uncompressedSize: number; allLz4: boolean } {
  let maxTimestamp = -Infinity;
  let uncompressedSize = 0;
  let allLz4 = true;
  for (const h of run) {
    if (h.maxTimestamp > maxTimestamp) maxTimestamp = h.maxTimestamp;
    uncompressedSize += h.uncompressedSize;
    if (h.codec !== 'lz4') allLz4 = false;
  }
  return { baseOffset: run[0]!.baseOffset, nextOffset: run[run.length - 1]!.nextOffset, baseTimestamp: run[0]!.baseTimestamp, maxTimestamp, uncompressedSize, allLz4 };
}

/** The headers of a run an encoder sealed, checked to hold offsets `base` to `end` - 1. */
function sealedRun(bytes: Uint8Array, base: number, end: number): BatchHeader[] {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new QuartzError(ErrorCode.INTERNAL, 'the batch encoder answered no bytes');
  const run = readBatchRun(bytes, 'sealed run');
  if (run[0]!.baseOffset !== base || run[run.length - 1]!.nextOffset !== end) {
    throw new QuartzError(ErrorCode.INTERNAL, `the batch encoder sealed offsets ${run[0]!.baseOffset} to ${run[run.length - 1]!.nextOffset - 1}, not ${base} to ${end - 1}`);
  }
  return run;
}

/** Damaged stored bytes (a CRC that fails, a batch or segment that does not parse), as opposed to a failing call. */
function isDamage(err: unknown): boolean {
  return err instanceof QuartzError && (err.code === ErrorCode.CHECKSUM_MISMATCH || err.code === ErrorCode.CORRUPT_DATA);
}

/**
 * The bytes to decode a tail entry's records from. An uncompressed batch's records view the bytes
 * they are decoded from, and a recyclable entry's buffer goes back to the pool once sealed, to be
 * overwritten by a later produce while a consumer may still hold those records: such an entry is
 * decoded from a copy. Before, an entry with any uncompressed batch (a `compression: none` topic,
 * or LZ4 that did not shrink a batch) was never recycled, and every produce write took a fresh
 * ~1 MB buffer (docs/benchmarks.md, "Uncompressed tail entries recycled").
 */
function decodableBytes(entry: TailBatch, bytes: Uint8Array): Uint8Array {
  return entry.recyclable && entry.holdsUncompressed ? bytes.slice() : bytes;
}

/** The records of the one batch of a tail entry's run that holds `offset`, decoded alone. */
function tailBatchAt(entry: TailBatch, offset: number): DecodedRecord[] {
  const subject = `tail entry at offset ${entry.base}`;
  const run = readBatchRun(entry.bytes, subject);
  let at = 0;
  let i = 0;
  while (i + 1 < run.length && run[i + 1]!.baseOffset <= offset) at += run[i++]!.length;
  return decodeBatchRun(decodableBytes(entry, entry.bytes.subarray(at, at + run[i]!.length)), `${subject}, batch ${i}`);
}

/** The records of `runs[k]` from `bounds[2k]` to `bounds[2k + 1]`, for every k, in one array of `count`. */
function gather(runs: DecodedRecord[][], bounds: number[], count: number): DecodedRecord[] {
  if (runs.length === 1) return runs[0]!.slice(bounds[0], bounds[1]);
  const out = new Array<DecodedRecord>(count);
  let n = 0;
  for (let k = 0; k < runs.length; k++) {
    const run = runs[k]!;
    for (let i = bounds[2 * k]!; i < bounds[2 * k + 1]!; i++) out[n++] = run[i]!;
  }
  return out;
}

function floorIndex(items: ReadonlyArray<{ base: number }>, offset: number): number {
  let lo = 0;
  let hi = items.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (items[mid]!.base <= offset) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

export class PartitionLog {
  private logStart = 0;
  private hwm = 0;
  /** Next offset handed to a produce request (ahead of `hwm` while commits are in flight). */
  private assigned = 0;
  private readonly segments: SegmentInfo[] = [];
  private readonly tail: TailBatch[] = [];
  private tailBytes = 0;
  private segmentBytesTotal = 0;
  private queue: PendingWrite[] = [];
  /** Raw bytes of the writes admitted and not yet committed (see `unsealedBound`). */
  private reservedBytes = 0;
  /** The most `unsealedBytes` has been since open. */
  private unsealedPeakBytes = 0;
  private readonly unsealedLimit: number;
  /** Writes waiting for room, in arrival order: admitted in that order, so offsets follow it. */
  private roomWaiters: RoomWaiter[] = [];
  /** Writes of the group whose storage commit is running (0 between commits). */
  private inCommit = 0;
  private committing = false;
  private commitRun: Promise<void> = Promise.resolve();
  /** Set while the tail is re-read after a failed commit; appends wait for it. */
  private recovering: Promise<void> | undefined;
  /** Set when that re-read failed too: the log refuses writes until reopened. */
  private broken: unknown;
  private maintenance: Promise<void> = Promise.resolve();
  private rollQueued = false;
  private waiters = new Set<() => void>();
  /** Takes this partition out of its tick slot (see `TickSlots`). */
  private stopTicks: (() => void) | undefined;
  /** The tick running, if one is: the next slot wake-up passes this partition over meanwhile. */
  private ticking: Promise<void> | undefined;
  /** Whether the last tick failed, so a run of failures is logged once (see `noteTickOutcome`). */
  private tickFailing = false;
  /** Whether the last roll triggered by `segment_bytes` failed (see `noteSizeRollOutcome`). */
  private sizeRollFailing = false;
  /**
   * Where recent reads of this partition ended: a read starting at one of them is sequential.
   * Several, so that consumers taking turns on one partition still count as sequential (and
   * get whole segments) rather than falling back to a range read per batch.
   */
  private readonly readEnds = new Array<number>(READ_ENDS).fill(-1);
  private readEndNext = 0;
  /** Segments that have served a random (range) read; see `promote`. */
  private readonly rangeRead = new WeakSet<SegmentInfo>();
  /** Cache keys of segments read lately (see `segmentKey`). */
  private readonly segmentKeys = new WeakMap<SegmentInfo, { segment: string; footer: string }>();
  /** Batches of hot segments decoded once by a random read (see `decodedBatch`). */
  private readonly decodedOnce = new Set<string>();
  private closed = false;
  /**
   * Owns this instance's cache keys: the name plus a number no other instance has. A read still
   * running when the partition closes (its topic deleted) can load old segments into the cache
   * after close dropped its keys; a partition opened later under the same name (the topic created
   * again) names its segments alike, and must never be served those.
   */
  private readonly cacheOwner: string;

  private constructor(
    readonly name: string,
    private readonly unit: UnitStorage,
    private readonly config: PartitionConfig,
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    private readonly cache: SegmentCache,
    private readonly hooks: PartitionHooks,
    private readonly encoder: BatchEncoder | undefined,
  ) {
    this.cacheOwner = `${name}#${++openedLogs}`;
    // Never below two segments: a roll by size needs one whole in the tail to make room.
    this.unsealedLimit = Math.max(config.maxUnsealedBytes ?? unsealedBound(config.segmentBytes), 2 * config.segmentBytes);
  }

  /**
   * Opens a partition's unit: loads the segment list and the tail, deletes orphan blobs left by
   * a roll that crashed before its KV batch, and joins its roll/retention tick slot (`TickSlots`).
   * With an `encoder`, large produce writes are sealed (compressed, CRC'd) by it rather than inline.
   *
   * @example
   * const log = await PartitionLog.open('log/t1/orders/0', await storage.unit('log/t1/orders/0'), config, clock, clock, cache, { onBytes() {} });
   */
  static async open(
    name: string,
    unit: UnitStorage,
    config: PartitionConfig,
    clock: Clock,
    scheduler: Scheduler,
    cache: SegmentCache,
    hooks: PartitionHooks,
    encoder?: BatchEncoder,
  ): Promise<PartitionLog> {
    const log = new PartitionLog(name, unit, config, clock, scheduler, cache, hooks, encoder);
    await log.load();
    // The phase is a hash of the name, so a partition keeps its phase across restarts.
    log.stopTicks = TickSlots.of(clock, scheduler).add(log, log.tickInterval(), murmur2(utf8.encode(name)) >>> 0);
    return log;
  }

  private corrupt(what: string, cause?: unknown): QuartzError {
    return new QuartzError(ErrorCode.CORRUPT_DATA, `partition ${this.name}: ${what}`, cause === undefined ? undefined : { cause });
  }

  private parse<T>(bytes: Uint8Array, what: string): T {
    try {
      return JSON.parse(fromUtf8.decode(bytes)) as T;
    } catch (cause) {
      throw this.corrupt(`${what} is not valid JSON`, cause);
    }
  }

  private async load(): Promise<void> {
    const meta = await this.unit.kv.get(META_KEY);
    if (meta !== undefined) this.logStart = this.parse<{ logStart: number }>(meta, 'the log-start record').logStart;
    let expected: number | undefined;
    for (const entry of await this.unit.kv.scan({ prefix: new Uint8Array([SEG_PREFIX]) })) {
      const info = this.parse<SegmentInfo>(entry.value, `segment descriptor ${keyOffset(entry.key)}`);
      if (expected !== undefined && info.base !== expected) throw this.corrupt(`segment ${info.blob} starts at ${info.base}, expected ${expected}`);
      expected = info.end;
      this.segments.push(info);
      this.segmentBytesTotal += info.bytes;
    }
    expected = await this.loadTail(expected);
    if (meta === undefined) this.logStart = this.segments[0]?.base ?? this.tail[0]?.base ?? 0;
    this.hwm = Math.max(this.logStart, expected ?? 0);
    this.assigned = this.hwm;
    const known = new Set(this.segments.map((s) => s.blob));
    for (const blob of await this.unit.blobs.list('seg/')) {
      if (!known.has(blob.key)) await this.unit.blobs.delete(blob.key);
    }
  }

  /** Reads the tail entries (after the last segment's end, `expected`); returns the tail's end. */
  private async loadTail(expected: number | undefined): Promise<number | undefined> {
    const entries = await this.unit.kv.scan({ prefix: new Uint8Array([TAIL_PREFIX]) });
    // swapped in without an await in between, so a concurrent read never sees a half-built tail
    this.tail.length = 0;
    this.tailBytes = 0;
    for (const entry of entries) {
      let run;
      try {
        run = readBatchRun(entry.value);
      } catch (cause) {
        throw this.corrupt(`tail batch at offset ${keyOffset(entry.key)} is unreadable`, cause);
      }
      const header = summarize(run);
      const base = header.baseOffset;
      // The roll's atomic batch keeps tail and segments contiguous; anything else is damage.
      if (base !== keyOffset(entry.key) || (expected !== undefined && base !== expected)) {
        throw this.corrupt(`tail batch at key offset ${keyOffset(entry.key)} holds offset ${base}, expected ${expected ?? keyOffset(entry.key)}`);
      }
      expected = header.nextOffset;
      this.tail.push({
        base,
        end: header.nextOffset,
        bytes: entry.value,
        baseTimestamp: header.baseTimestamp,
        maxTimestamp: header.maxTimestamp,
        uncompressedSize: header.uncompressedSize,
        encodedHere: false,
        recyclable: false,
        holdsUncompressed: !header.allLz4,
      });
      this.tailBytes += entry.value.length;
    }
    return expected;
  }

  /**
   * After a failed commit the storage may or may not hold that batch (an error can come after
   * the write landed), so the tail is re-read before any new offset is handed out; otherwise a
   * retry could reuse offsets of entries that did land.
   */
  private async recover(): Promise<void> {
    const before = this.tailBytes;
    const end = await this.loadTail(this.segments[this.segments.length - 1]?.end ?? this.tail[0]?.base);
    this.hwm = Math.max(this.logStart, end ?? this.hwm);
    this.assigned = this.hwm;
    this.hooks.onBytes(this.tailBytes - before);
    this.wake();
  }

  get highWatermark(): number {
    return this.hwm;
  }

  get logStartOffset(): number {
    return this.logStart;
  }

  /** Bytes of the log, sealed segments and tail (as `stats().bytes`, without building the object). */
  get storedBytes(): number {
    return this.segmentBytesTotal + this.tailBytes;
  }

  /** Bytes not yet in a segment: the tail, and the raw bytes of writes admitted and not yet committed. */
  get unsealedBytes(): number {
    return this.tailBytes + this.reservedBytes;
  }

  /** The most `unsealedBytes` has been since open: at most the bound plus one write. */
  get unsealedPeak(): number {
    return this.unsealedPeakBytes;
  }

  /** Produce writes waiting for the roll to make room. */
  get writesWaitingForRoom(): number {
    return this.roomWaiters.length;
  }

  /** Sealed segments (as `stats().segments`). */
  get segmentCount(): number {
    return this.segments.length;
  }

  stats(): PartitionStats {
    return {
      logStartOffset: this.logStart,
      highWatermark: this.hwm,
      bytes: this.segmentBytesTotal + this.tailBytes,
      segments: this.segments.length,
    };
  }

  /**
   * Appends records; resolves with the first assigned offset once they are durable. Records
   * are split into batches under the KV entry limit; every record must already fit one batch.
   * `rawBytes` (the sum of `recordSize`) lets a caller that measured the records skip a pass.
   * Records without a timestamp get `timestamp`, as encoded (they are invalid without one).
   */
  append(records: EncodableRecords, rawBytes?: number, timestamp?: number): Promise<number> {
    this.checkOpen();
    if (this.broken !== undefined) {
      return Promise.reject(
        new QuartzError(ErrorCode.INTERNAL, `partition ${this.name} is unavailable after a storage failure; reopen it`, { cause: this.broken }),
      );
    }
    if (this.recovering !== undefined) return this.recovering.then(() => this.append(records, rawBytes, timestamp));
    // Behind the writes already waiting, whatever the room: they came first, and take offsets first.
    if (this.roomWaiters.length > 0 || !this.hasRoom()) return this.waitForRoom(records, rawBytes, timestamp);
    return this.enqueue(records, rawBytes, timestamp);
  }

  private hasRoom(): boolean {
    return this.tailBytes + this.reservedBytes < this.unsealedLimit;
  }

  private notePeak(): void {
    const unsealed = this.tailBytes + this.reservedBytes;
    if (unsealed > this.unsealedPeakBytes) this.unsealedPeakBytes = unsealed;
  }

  /**
   * Holds a write until the roll has sealed enough of the tail (`admit`), so that a producer faster
   * than the rolls sees latency rather than the partition's memory growing. Fails after
   * ROOM_WAIT_MS, or at once if the roll it waits for fails; nothing is stored then.
   */
  private waitForRoom(records: EncodableRecords, rawBytes: number | undefined, timestamp: number | undefined): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const waiter: RoomWaiter = { records, rawBytes, timestamp, resolve, reject, cancelTimer: () => {} };
      waiter.cancelTimer = this.scheduler.schedule(ROOM_WAIT_MS, () => {
        const at = this.roomWaiters.indexOf(waiter);
        if (at < 0) return;
        this.roomWaiters.splice(at, 1);
        reject(
          new QuartzError(
            ErrorCode.UNAVAILABLE,
            `partition ${this.name}: produce waited ${ROOM_WAIT_MS / 1000} s for the roll to seal its tail (${this.unsealedBytes} bytes unsealed, bound ${this.unsealedLimit}); nothing was stored, retry later`,
            { exposeMessage: true },
          ),
        );
      });
      this.roomWaiters.push(waiter);
      // A roll is queued after each commit past segment_bytes; after a failed one, none may be.
      if (this.tailBytes >= this.config.segmentBytes) this.requestRoll();
    });
  }

  /** Admits the waiting writes, in order, while there is room (after a seal, a commit or a failure). */
  private admit(): void {
    while (this.roomWaiters.length > 0 && this.recovering === undefined && (this.broken !== undefined || this.hasRoom())) {
      const w = this.roomWaiters.shift()!;
      w.cancelTimer();
      if (this.broken !== undefined) {
        w.reject(new QuartzError(ErrorCode.INTERNAL, `partition ${this.name} is unavailable after a storage failure; reopen it`, { cause: this.broken }));
        continue;
      }
      try {
        w.resolve(this.enqueue(w.records, w.rawBytes, w.timestamp));
      } catch (err) {
        w.reject(err);
      }
    }
  }

  /** Fails the writes still waiting for room: the roll they waited for failed, or the log closed. */
  private failWaiters(err: unknown): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) {
      w.cancelTimer();
      w.reject(err);
    }
  }

  /**
   * Encodes and queues for the next commit. Kept apart from `append` so that no closure
   * waiting in the queue captures `records`: they are garbage once encoded, instead of
   * surviving every young-generation GC until their commit lands.
   */
  private enqueue(records: EncodableRecords, rawBytes: number | undefined, timestamp: number | undefined): Promise<number> {
    const base = this.assigned;
    if (records.length === 0) return Promise.resolve(base);
    const ops: PutOp[] = [];
    const batches: TailBatch[] = [];
    let bytes = 0;
    let reserved = 0;
    let start = 0;
    let sealing: Promise<void>[] | undefined;
    // Recycled only where the adapter offers putOwned, whose contract says when it lets go of them.
    const output = this.unit.kv.putOwned !== undefined ? takeBuffer : undefined;
    const codec = this.config.codec;
    // Only LZ4 is worth a hop: sealing an uncompressed run is a copy and a CRC.
    const encoder = codec === 'lz4' ? this.encoder : undefined;
    while (start < records.length) {
      let end = start;
      let raw = 0;
      if (start === 0 && rawBytes !== undefined && rawBytes <= MAX_BATCH_RAW_BYTES) {
        end = records.length; // the caller measured the whole batch: it fits one entry
        raw = rawBytes;
      } else {
        while (end < records.length && (end === start || raw + recordSizeAt(records, end) <= MAX_BATCH_RAW_BYTES)) {
          raw += recordSizeAt(records, end);
          end++;
        }
      }
      reserved += raw;
      const chunk = start === 0 && end === records.length ? records : records.slice(start, end);
      const baseOffset = base + start;
      const backlogHop = raw >= BACKLOG_MIN_BYTES && this.queue.length + this.inCommit >= BACKLOG_WRITES && start === 0 && end === records.length;
      if (encoder === undefined || (raw < encoder.minBytes && !backlogHop)) {
        const run = encodeBatchRun(chunk, { baseOffset, codec, timestamp, output, blockBytes: BLOCK_BYTES });
        let encodedRaw = 0;
        for (const h of run.batches) encodedRaw += h.uncompressedSize;
        refuseGrown(encodedRaw, this.name);
        bytes += this.addBatch(ops, batches, ops.length, baseOffset, base + end, run, output !== undefined);
        start = end;
        continue;
      }
      // Framed here, so bad records throw now, before any offset is handed out.
      const framed = frameRun(chunk, { timestamp, blockBytes: BLOCK_BYTES, output: frameBuffer });
      if (framed.sections.length > MAX_BATCH_RAW_BYTES) {
        giveBack(framed.sections.buffer as ArrayBuffer);
        refuseGrown(framed.sections.length, this.name);
      }
      const sealed = encoder.sealRun(framed, { baseOffset, codec });
      if (sealed === undefined) {
        const run = sealRun(framed, { baseOffset, codec, output });
        giveBack(framed.sections.buffer as ArrayBuffer);
        bytes += this.addBatch(ops, batches, ops.length, baseOffset, base + end, run, output !== undefined);
      } else {
        const at = ops.length;
        ops.push(undefined!);
        batches.push(undefined!);
        // Nothing here keeps the records (garbage once framed, not carried through young-generation
        // GCs while the run is away), so if the encoder fails, the write fails.
        const landed = sealed.then(
          (encoded) => {
            const run = sealedRun(encoded, baseOffset, base + end);
            // Copied out of the frame buffer, which has room for the uncompressed records, into one of its size.
            const tight = output === undefined ? new Uint8Array(encoded.length) : output(encoded.length);
            tight.set(encoded);
            giveBack(encoded.buffer as ArrayBuffer);
            write.bytes += this.addBatch(ops, batches, at, baseOffset, base + end, { bytes: tight, batches: run }, output !== undefined);
          },
          (cause: unknown) => {
            throw cause instanceof QuartzError ? cause : new QuartzError(ErrorCode.INTERNAL, `partition ${this.name}: sealing a produce batch failed`, { cause });
          },
        );
        landed.catch(() => {}); // reported through `write.sealing`; this one may be dropped with a failed write
        (sealing ??= []).push(landed);
      }
      start = end;
    }
    this.assigned = base + records.length;
    let write!: PendingWrite;
    const done = new Promise<number>((resolve, reject) => {
      write = { ops, batches, bytes, base, reserved, resolve, reject, sealing: undefined };
    });
    this.reservedBytes += reserved;
    this.notePeak();
    if (sealing !== undefined) {
      const all = sealing.length === 1 ? sealing[0]! : Promise.all(sealing).then(() => undefined);
      write.sealing = all.then(() => void (write.sealing = undefined));
      write.sealing.catch(() => {}); // the commit loop awaits it while the write is first, or the write failed already
    }
    this.queue.push(write);
    if (!this.committing) this.commitRun = this.commitLoop();
    return done;
  }

  /** Puts an encoded run at `ops[at]` and `batches[at]`; returns its size. */
  private addBatch(ops: PutOp[], batches: TailBatch[], at: number, base: number, end: number, run: EncodedRun, pooled: boolean): number {
    const encoded = run.bytes;
    const header = summarize(run.batches);
    ops[at] = { type: 'put', key: offsetKey(TAIL_PREFIX, base), value: encoded };
    batches[at] = {
      base,
      end,
      bytes: encoded,
      baseTimestamp: header.baseTimestamp,
      maxTimestamp: header.maxTimestamp,
      uncompressedSize: header.uncompressedSize,
      encodedHere: true,
      recyclable: pooled && encoded.length >= POOL_MIN,
      holdsUncompressed: !header.allLz4,
    };
    return encoded.length;
  }

  private async commitLoop(): Promise<void> {
    this.committing = true;
    /** Writes in the commit that just landed: their producers are about to queue again. */
    let released = 0;
    /** The group that just landed, acknowledged once the next group's writes have started. */
    let landed: PendingWrite[] = [];
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0]!;
        if (head.sealing !== undefined) {
          // Commits go in offset order, so the first write waits for its encoder; what landed
          // before is acknowledged meanwhile.
          this.acknowledge(landed);
          landed = [];
          try {
            await head.sealing;
          } catch (err) {
            await this.failQueued([], err);
          }
          continue;
        }
        // Commit about half of the writes in play (queued + just released), so producers fall
        // into two alternating halves: one half encodes while the other half's commit is on
        // disk. Taking the whole queue locks into a 1-write commit alternating with one of all
        // the others, which runs encoding and disk one after the other (measured: c1, c63, c1…).
        // Only writes whose batches are all sealed can go.
        const half = Math.min(this.queue.length, Math.ceil((this.queue.length + released) / 2));
        let take = 1;
        while (take < half && this.queue[take]!.sealing === undefined) take++;
        const group = take === this.queue.length ? this.queue : this.queue.slice(0, take);
        this.queue = take === this.queue.length ? [] : this.queue.slice(take);
        const commit = this.commitGroup(group);
        this.inCommit = group.length;
        // Acknowledged after the next group's writes started, not before: woken first, their
        // producers encoded their next batches (synchronously, tens of milliseconds) before the
        // storage got to start those writes, and the disk idled meanwhile.
        this.acknowledge(landed);
        landed = [];
        try {
          await commit;
        } catch (err) {
          this.inCommit = 0;
          await this.failQueued(group, err);
          continue;
        }
        this.inCommit = 0;
        let bytes = 0;
        for (const w of group) {
          for (const b of w.batches) this.tail.push(b);
          bytes += w.bytes;
          this.reservedBytes -= w.reserved;
        }
        this.tailBytes += bytes;
        this.notePeak();
        this.hwm = group[group.length - 1]!.batches[group[group.length - 1]!.batches.length - 1]!.end;
        this.hooks.onBytes(bytes);
        landed = group;
        released = group.length;
        this.wake();
        if (this.tailBytes >= this.config.segmentBytes) this.requestRoll();
        // A write's encoded bytes can be fewer than the raw bytes it reserved (LZ4).
        this.admit();
      }
    } finally {
      this.committing = false;
      this.acknowledge(landed);
    }
  }

  /**
   * A commit of `group` failed (or the queue's first write could not be sealed): requests queued
   * behind carry offsets that follow the failed ones, so they fail too, and new ones wait until
   * the tail is re-read from storage.
   */
  private async failQueued(group: PendingWrite[], err: unknown): Promise<void> {
    const failed = group.concat(this.queue);
    this.queue = [];
    for (const w of failed) {
      this.reservedBytes -= w.reserved;
      w.reject(err);
    }
    this.recovering = this.runMaintenance(() => this.recover()).then(
      () => undefined,
      (cause: unknown) => void (this.broken = cause),
    );
    await this.recovering;
    this.recovering = undefined;
    this.admit();
  }

  private acknowledge(writes: PendingWrite[]): void {
    for (const w of writes) w.resolve(w.base);
  }

  /**
   * Writes a group's tail entries. An adapter that can keep the caller's bytes (`putOwned`) gets
   * one put per batch, issued in one synchronous loop (lmdb commits the writes of one event turn
   * together): skipping `batch`'s defensive copy saves a copy of every byte produced. The entries
   * need not land atomically: storage applies them in order, so a crash keeps a prefix of the
   * tail (contiguous offsets), and none is acknowledged before all are durable.
   */
  private async commitGroup(group: PendingWrite[]): Promise<void> {
    const kv = this.unit.kv;
    if (kv.putOwned === undefined) return kv.batch(group.length === 1 ? group[0]!.ops : group.flatMap((w) => w.ops));
    const writes: Awaitable<void>[] = [];
    for (const w of group) for (const op of w.ops) writes.push(kv.putOwned(op.key, op.value));
    if (writes.length === 1) return writes[0];
    // Every write settles before a failure is reported, so the tail re-read that follows a failure
    // never races a write still in flight.
    const settled = await Promise.allSettled(writes);
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
  }

  private wake(): void {
    if (this.waiters.size === 0) return;
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const w of waiters) w();
  }

  /**
   * Resolves once the high watermark passes `offset`, `maxWaitMs` elapses (on the engine's
   * scheduler) or the log closes; rejects with the signal's reason when `signal` aborts.
   */
  waitFor(offset: number, maxWaitMs: number, signal?: AbortSignal): Promise<void> {
    if (this.hwm > offset || maxWaitMs <= 0 || this.closed) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        this.waiters.delete(done);
        cancelTimer();
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.waiters.delete(done);
        cancelTimer();
        reject(signal!.reason);
      };
      const cancelTimer = this.scheduler.schedule(maxWaitMs, done);
      this.waiters.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new QuartzError(ErrorCode.NOT_FOUND, `partition ${this.name} is closed`);
  }

  /** Throws OFFSET_OUT_OF_RANGE unless `logStart <= offset <= hwm`. */
  checkOffset(offset: number, subject: string): void {
    if (!Number.isSafeInteger(offset) || offset < this.logStart || offset > this.hwm) {
      throw new QuartzError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `offset ${showValue(offset)} is out of range for ${subject}: valid offsets are ${this.logStart} to ${this.hwm}`,
        { details: { offset, log_start_offset: this.logStart, high_watermark: this.hwm } },
      );
    }
  }

  /**
   * Up to `maxRecords` records from `offset` (at least one when any exist, even beyond
   * `maxBytes`, so a large record never blocks a consumer).
   */
  async read(offset: number, maxRecords: number, maxBytes: number, subject: string): Promise<ReadResult> {
    this.checkOffset(offset, subject);
    /**
     * The page as runs of decoded batches: `runs[k]`'s records from `bounds[2k]` to `bounds[2k + 1]`,
     * gathered into one array of the page's size at the end (pushed one by one, a page of 100
     * grew its array four times).
     */
    const runs: DecodedRecord[][] = [];
    const bounds: number[] = [];
    let count = 0;
    let cur = offset;
    let bytes = 0;
    const sequential = this.readEnds.includes(offset);
    /** The segment the previous step of this read used: one read counts once towards `promote`. */
    let visited: SegmentInfo | undefined;
    while (count < maxRecords && bytes < maxBytes && cur < this.hwm) {
      const tailFirst = this.tail[0]?.base ?? this.hwm;
      let got: DecodedRecord[];
      let sourceEnd: number;
      if (cur >= tailFirst) {
        const batch = this.tail[floorIndex(this.tail, cur)]!;
        try {
          got = await this.decodeTail(batch);
        } catch (err) {
          if (!isDamage(err)) throw err;
          // A tail entry is a run of batches, each with its own CRC: when a later one is damaged,
          // the batch at `cur` alone may still be intact. When it is not, the page ends at the
          // damage (the records before it are answered, the next read reports it).
          try {
            got = tailBatchAt(batch, cur);
          } catch (again) {
            if (count > 0 && isDamage(again)) break;
            throw again;
          }
        }
        sourceEnd = batch.end;
      } else {
        const i = floorIndex(this.segments, cur);
        const seg = this.segments[i];
        if (seg === undefined || cur >= seg.end) {
          // retention removed this range while we were reading
          if (count > 0) break;
          this.checkOffset(cur, subject);
          throw new QuartzError(ErrorCode.INTERNAL, `partition ${this.name}: offset ${cur} has no segment`);
        }
        const want = maxRecords - count;
        // Random reads stay on range reads, also when they cross a batch boundary: loading the
        // whole segment (and reading ahead the next) for a few records costs megabytes of I/O
        // and evicts other segments, so random reads would slow down as the log outgrows the
        // cache. A read that wants a quarter of the segment anyway takes it whole.
        const small = !sequential && want * 4 < seg.end - seg.base;
        const whole = !small || (seg !== visited && this.promote(seg));
        visited = seg;
        try {
          got = await this.readSegment(seg, cur, want, whole, small);
        } catch (err) {
          if (!isDamage(err)) throw err;
          // A step can span several batches: when a later one is damaged, the batch at `cur` alone
          // may still be intact. When it is not, the page ends at the damage, or (when the page
          // starts there) fails with it, naming the segment.
          try {
            got = await this.batchAt(seg, cur, want);
          } catch (again) {
            if (count > 0 && isDamage(again)) break;
            throw again;
          }
        }
        sourceEnd = seg.end;
        if (sequential) this.readAhead(i + 1);
      }
      let advanced = false;
      // Offsets ascend: start at the first record at or after `cur` (a page deep in a batch).
      let lo = 0;
      for (let hi = got.length; lo < hi; ) {
        const mid = (lo + hi) >>> 1;
        if (got[mid]!.offset < cur) lo = mid + 1;
        else hi = mid;
      }
      let stop = lo;
      for (; stop < got.length; stop++, count++) {
        const r = got[stop]!;
        if (count >= maxRecords || (bytes >= maxBytes && count > 0)) break;
        const size = recordSize(r);
        if (count > 0 && bytes + size > maxBytes) {
          bytes = maxBytes;
          break;
        }
        bytes += size;
        cur = r.offset + 1;
        advanced = true;
      }
      if (stop > lo) {
        runs.push(got);
        bounds.push(lo, stop);
      }
      if (!advanced) {
        if (count >= maxRecords || bytes >= maxBytes) break;
        // never loop in place, whatever the data says
        if (sourceEnd <= cur) throw this.corrupt(`no record at offset ${cur} below the high watermark ${this.hwm}`);
        cur = sourceEnd;
      }
    }
    const k = this.readEnds.indexOf(offset);
    this.readEnds[k >= 0 ? k : this.readEndNext++ % READ_ENDS] = cur;
    return { records: gather(runs, bounds, count), nextOffset: cur };
  }

  /**
   * The records of a tail batch, decoded once and kept in the segment cache while they are read:
   * consumers near the head page through the same batches (a batch of 1,000 records read 100 at
   * a time was decompressed, CRC-checked and parsed whole for every page). Dropped when sealed.
   */
  private decodeTail(batch: TailBatch): Promise<DecodedRecord[]> {
    return this.cache.get(
      this.tailKey(batch),
      async () => decodeBatchRun(decodableBytes(batch, batch.bytes), `tail entry at offset ${batch.base}`),
      // The decompressed bytes the records view, plus their objects and views.
      (records) => batch.uncompressedSize + records.length * DECODED_RECORD_OVERHEAD,
    );
  }

  private tailKey(batch: TailBatch): string {
    return `${this.cacheOwner}${OWNER_END}tail/${batch.base}`;
  }

  /** The segment's cache key, made once: a read built (and the cache hashed) a fresh string for it each time. */
  private segmentKey(seg: SegmentInfo): string {
    return this.keysOf(seg).segment;
  }

  private keysOf(seg: SegmentInfo): { segment: string; footer: string } {
    let keys = this.segmentKeys.get(seg);
    if (keys === undefined) {
      const segment = `${this.cacheOwner}${OWNER_END}${seg.blob}`;
      keys = { segment, footer: `${segment}|footer` };
      this.segmentKeys.set(seg, keys);
    }
    return keys;
  }

  /** Up to `max` records from `offset`, from the one batch of `seg` that holds it, by a range read. */
  private async batchAt(seg: SegmentInfo, offset: number, max: number): Promise<DecodedRecord[]> {
    const footer = await this.footer(seg);
    return this.readRange(seg, this.guard(seg, () => footer.batchRange(offset)), offset, max);
  }

  /** Records of `seg` from `offset`: the whole segment when `whole` or cached, else one batch by range read. */
  /** `small`: a random read of less than a quarter of the segment. */
  private async readSegment(seg: SegmentInfo, offset: number, max: number, whole: boolean, small: boolean): Promise<DecodedRecord[]> {
    const key = this.segmentKey(seg);
    if (whole || this.cache.has(key)) {
      const reader = await this.cache.get(key, () => this.loadSegment(seg), (r) => r.byteLength);
      if (small) return this.decodedBatch(seg, reader, offset, max);
      return this.guard(seg, () => reader.readFrom(offset, max));
    }
    const footer = await this.footer(seg);
    return this.readRange(seg, this.guard(seg, () => footer.batchRange(offset)), offset, max);
  }

  /**
   * The records of the batch holding `offset` in a segment the cache holds whole, decoded once and
   * kept in the cache while random readers come back to it. A reader keeps only its last decoded
   * batch, which serves a sequential reader paging through a batch; random reads across a hot
   * segment's batches would otherwise decompress, check and parse a whole batch (1,000 records)
   * for every page. As with `promote`, a batch is kept from its second decode on and only in free
   * cache room: random readers of a log larger than the cache never evict segments for it. A
   * decode that keeps nothing builds only the `max` records asked for from `offset`.
   */
  private decodedBatch(seg: SegmentInfo, reader: SegmentReader, offset: number, max: number): DecodedRecord[] | Promise<DecodedRecord[]> {
    const range = this.guard(seg, () => reader.batchRange(offset));
    const key = `${this.segmentKey(seg)}|@${range.baseOffset}`;
    const cached = this.cache.lookup<DecodedRecord[]>(key);
    if (cached !== undefined) return cached;
    // Kept from its second decode on, as `promote` does for segments: random readers of a log
    // larger than the cache rarely come back to a batch, and would only fill the heap with records.
    const second = this.decodedOnce.delete(key);
    // Offsets are dense (the writer leaves no gaps): the batch's least cost in the cache. Without
    // room for that, building all its records for `offer` to refuse them is wasted work.
    const leastBytes = (range.nextOffset - range.baseOffset) * (RECORD_OVERHEAD + DECODED_RECORD_OVERHEAD);
    if (second && this.cache.size + leastBytes <= this.cache.maxBytes) {
      const records = this.guard(seg, () => reader.readFrom(range.baseOffset, range.nextOffset - range.baseOffset));
      this.cache.offer(key, records, decodedBytes(records));
      return records;
    }
    if (!second) {
      if (this.decodedOnce.size >= DECODED_ONCE_KEYS) this.decodedOnce.clear();
      this.decodedOnce.add(key);
    }
    return this.guard(seg, () => reader.readWindow(offset, max));
  }

  /**
   * Whether a random read should load `seg` whole: on its second random read, and only into
   * free cache room. A small, hot log is then served from memory, while random readers of a log
   * larger than the cache never evict anything (the first read of a segment is always a range
   * read: most segments of a large log are read once in a long while).
   */
  private promote(seg: SegmentInfo): boolean {
    if (!this.rangeRead.has(seg)) {
      this.rangeRead.add(seg);
      return false;
    }
    return this.cache.size + seg.bytes <= this.cache.maxBytes;
  }

  private footer(seg: SegmentInfo): Promise<SegmentReader> {
    return this.cache.get(this.keysOf(seg).footer, () => this.loadFooter(seg), (r) => r.footerBytes);
  }

  /**
   * One batch of a sealed segment by a blob range read, CRC-checked by the decoder: all of its
   * records, or only up to `max` from `from` on (its CRC is still checked whole; see `DecodeOptions.from`).
   */
  private async readRange(seg: SegmentInfo, range: BatchRange, from?: number, max?: number): Promise<DecodedRecord[]> {
    const blobs = this.unit.blobs;
    if (blobs.readInto === undefined || range.length > READ_BUFFER_BYTES) {
      const bytes = await blobs.get(seg.blob, { offset: range.offset, length: range.length });
      if (bytes === undefined || bytes.length !== range.length) throw this.missing(seg);
      return this.guard(seg, () => decodeBatch(bytes, range, { from, maxRecords: max }).records);
    }
    const buffer = spareReadBuffers.pop() ?? new ArrayBuffer(READ_BUFFER_BYTES);
    try {
      const bytes = new Uint8Array(buffer, 0, range.length);
      if ((await blobs.readInto(seg.blob, range.offset, bytes)) !== range.length) throw this.missing(seg);
      const records = this.guard(seg, () => decodeBatch(bytes, range, { from, maxRecords: max }).records);
      // An uncompressed batch's records view the bytes they were decoded from, which go back to the pool.
      if (storedUncompressed(bytes)) ownRecordBytes(records);
      return records;
    } finally {
      if (spareReadBuffers.length < SPARE_READ_BUFFERS) spareReadBuffers.push(buffer);
    }
  }

  private guard<T>(seg: SegmentInfo, fn: () => T): T {
    try {
      return fn();
    } catch (cause) {
      if (cause instanceof QuartzError) {
        throw new QuartzError(cause.code, `partition ${this.name}, segment ${seg.blob}: ${cause.message}`, { cause, details: cause.details });
      }
      throw cause;
    }
  }

  /** A blob read came back short: retention deleted it meanwhile, or the blob is damaged. */
  private missing(seg: SegmentInfo): QuartzError {
    if (!this.segments.includes(seg)) {
      return new QuartzError(ErrorCode.OFFSET_OUT_OF_RANGE, `offsets ${seg.base} to ${seg.end - 1} of partition ${this.name} were deleted by retention`, {
        details: { log_start_offset: this.logStart, high_watermark: this.hwm },
      });
    }
    return new QuartzError(ErrorCode.CORRUPT_DATA, `partition ${this.name}: segment blob ${seg.blob} is missing or shorter than recorded`);
  }

  private async loadSegment(seg: SegmentInfo): Promise<SegmentReader> {
    const bytes = await this.unit.blobs.get(seg.blob);
    if (bytes === undefined && !this.segments.includes(seg)) throw this.missing(seg);
    if (bytes === undefined || bytes.length !== seg.bytes) {
      throw new QuartzError(
        ErrorCode.CORRUPT_DATA,
        `partition ${this.name}: segment blob ${seg.blob} is ${bytes === undefined ? 'missing' : `${bytes.length} bytes, expected ${seg.bytes}`}`,
      );
    }
    const reader = this.guard(seg, () => SegmentReader.open(bytes));
    if (reader.droppedBytes > 0 || reader.baseOffset !== seg.base || reader.nextOffset !== seg.end) {
      throw new QuartzError(ErrorCode.CORRUPT_DATA, `partition ${this.name}: segment blob ${seg.blob} is torn (${reader.droppedBytes} bytes unreadable)`);
    }
    return reader;
  }

  private async loadFooter(seg: SegmentInfo): Promise<SegmentReader> {
    const size = seg.bytes;
    let tailLength = Math.min(size, TAIL_GUESS);
    for (;;) {
      const bytes = await this.unit.blobs.get(seg.blob, { offset: size - tailLength, length: tailLength });
      if (bytes === undefined || bytes.length !== tailLength) throw this.missing(seg);
      const opened = this.guard(seg, () => SegmentReader.openTail(bytes, { size }));
      if (opened.needBytes !== undefined && opened.needBytes > tailLength && opened.needBytes <= size) {
        tailLength = opened.needBytes;
        continue;
      }
      if (opened.reader === undefined || opened.reader.baseOffset !== seg.base || opened.reader.nextOffset !== seg.end) {
        throw new QuartzError(ErrorCode.CORRUPT_DATA, `partition ${this.name}: segment blob ${seg.blob} has a footer that does not match its descriptor`);
      }
      return opened.reader;
    }
  }

  private readAhead(index: number): void {
    if (this.closed) return;
    const next = this.segments[index];
    if (next === undefined) return;
    const key = this.segmentKey(next);
    if (this.cache.has(key)) return;
    // A failed read-ahead is retried (and reported) by the read that needs it.
    this.cache.get(key, () => this.loadSegment(next), (r) => r.byteLength).catch(() => {});
  }

  /** The first offset whose timestamp is >= `timestamp`, or the high watermark if none. */
  async offsetForTime(timestamp: number): Promise<number> {
    // Segments are in offset order; the first whose max timestamp reaches `timestamp` holds
    // the answer, found through its footer's time index and one batch read.
    for (const seg of this.segments) {
      if (seg.maxTimestamp < timestamp) continue;
      const footer = await this.footer(seg);
      const range = this.guard(seg, () => footer.batchRangeByTime(timestamp));
      if (range === null) continue;
      for (const r of await this.readRange(seg, range)) if (r.timestamp >= timestamp) return Math.max(r.offset, this.logStart);
    }
    for (const batch of this.tail) {
      if (batch.maxTimestamp < timestamp) continue;
      for (const r of decodeBatchRun(batch.bytes, `tail entry at offset ${batch.base}`)) if (r.timestamp >= timestamp) return r.offset;
    }
    return this.hwm;
  }

  private requestRoll(): void {
    if (this.rollQueued) return;
    this.rollQueued = true;
    this.runMaintenance(async () => {
      this.rollQueued = false;
      let failure: { err: unknown } | undefined;
      // No caller waits for this roll: unlogged, a full disk left the tail growing in silence.
      // The next commit past segment_bytes retries it.
      await this.rollNow(false).catch((err: unknown) => void (failure = { err }));
      this.noteSizeRollOutcome(failure);
      if (failure !== undefined && this.roomWaiters.length > 0) this.failWaiters(this.rollFailed(failure.err));
    });
  }

  /** What a write waiting for room learns when the roll it waited for failed: the roll's code where it has one. */
  private rollFailed(cause: unknown): QuartzError {
    const code = cause instanceof QuartzError ? cause.code : ErrorCode.UNAVAILABLE;
    const why = cause instanceof Error ? cause.message : String(cause);
    return new QuartzError(
      code,
      `partition ${this.name}: produce waited for the roll to seal its tail (${this.unsealedBytes} bytes unsealed, bound ${this.unsealedLimit}) and the roll failed (${why}); nothing was stored, retry later`,
      { cause },
    );
  }

  private runMaintenance(task: () => Promise<void>): Promise<void> {
    const run = this.maintenance.then(() => (this.closed ? undefined : task()));
    // A failed roll or retention pass leaves the log as it was; the next tick retries.
    this.maintenance = run.catch(() => {});
    return run;
  }

  /**
   * Seals the committed tail into segment blobs of at most `segment_bytes` each (a larger batch
   * gets one of its own). Safe against a crash at any step: each blob is written first, then one
   * atomic KV batch records the segment and deletes the tail entries it holds.
   */
  roll(): Promise<void> {
    return this.runMaintenance(() => this.rollNow(true));
  }

  /**
   * Seals what the tail holds now from its start, in segments of at most `segment_bytes`: all of
   * it when `all`, else while a full segment's worth remains (batches committed meanwhile wait for
   * the next roll, so retention can run in between). A roll may start long after the tail reached
   * `segment_bytes` (one group commit can add tens of megabytes, and a roll waits for the previous
   * one), and sealing all of it at once made segments of ten times the configured size.
   */
  private async rollNow(all: boolean): Promise<void> {
    // Commits only append to the tail, and recovery (which reloads it) is maintenance too, so it
    // never runs during a roll: the first `left` batches (`leftBytes`) stay those held at the start.
    let left = this.tail.length;
    let leftBytes = this.tailBytes;
    /** Index in the tail of the next segment's first batch (sealed batches leave the tail). */
    let at = 0;
    let step: TailBatch[][] = [];
    while (left > 0 && (all || leftBytes >= this.config.segmentBytes)) {
      let count = 1;
      let size = this.tail[at]!.bytes.length;
      while (count < left && size + this.tail[at + count]!.bytes.length <= this.config.segmentBytes) {
        size += this.tail[at + count]!.bytes.length;
        count++;
      }
      step.push(this.tail.slice(at, at + count));
      at += count;
      left -= count;
      leftBytes -= size;
      if (step.length === SEGMENTS_PER_SEAL) {
        await this.seal(step);
        step = [];
        at = 0;
      }
    }
    if (step.length > 0) await this.seal(step);
  }

  /**
   * Seals `segments` (each a run of batches; together the first of the tail) into one segment
   * blob each, written concurrently, then records them all and trims the tail in one KV batch.
   */
  private async seal(segments: TailBatch[][]): Promise<void> {
    const written = await Promise.allSettled(segments.map((batches) => this.writeSegment(batches)));
    // Every write has settled, so a retry never races one still in flight under the same name.
    for (const r of written) if (r.status === 'rejected') throw r.reason;
    const infos = written.map((r) => (r as PromiseFulfilledResult<SegmentInfo>).value);
    const ops: BatchOp[] = [];
    segments.forEach((batches, i) => {
      ops.push({ type: 'put', key: offsetKey(SEG_PREFIX, infos[i]!.base), value: utf8.encode(JSON.stringify(infos[i])) });
      for (const b of batches) ops.push({ type: 'delete', key: offsetKey(TAIL_PREFIX, b.base) });
    });
    await this.unit.kv.batch(ops);
    segments.forEach((batches, i) => {
      const info = infos[i]!;
      let oldBytes = 0;
      for (const b of batches) oldBytes += b.bytes.length;
      this.tail.splice(0, batches.length);
      for (const b of batches) {
        this.cache.delete(this.tailKey(b));
        if (b.recyclable) recycle(b.bytes);
      }
      this.tailBytes -= oldBytes;
      this.segments.push(info);
      this.segmentBytesTotal += info.bytes;
      this.hooks.onBytes(info.bytes - oldBytes);
    });
    this.admit();
  }

  /** Writes `batches` as one segment blob; returns its descriptor (not yet recorded). */
  private async writeSegment(batches: TailBatch[]): Promise<SegmentInfo> {
    const base = batches[0]!.base;
    const writer = new SegmentWriter({ baseOffset: base, createdAt: this.clock.now() });
    let maxTimestamp = -Infinity;
    for (const b of batches) {
      // Batches of runs go in as they are; a larger batch written before runs is cut.
      let at = 0;
      for (const h of readBatchRun(b.bytes)) writer.appendBatch(b.bytes.subarray(at, (at += h.length)), { verified: b.encodedHere, blockBytes: BLOCK_BYTES });
      if (b.maxTimestamp > maxTimestamp) maxTimestamp = b.maxTimestamp;
    }
    const end = batches[batches.length - 1]!.end;
    const blobs = this.unit.blobs;
    let bytes: number;
    if (blobs.putParts !== undefined) {
      // The tail's batches go to the file as they are (writev), not copied into one segment array.
      const parts = writer.finishParts();
      bytes = 0;
      for (const p of parts) bytes += p.length;
      await blobs.putParts(blobName(base), parts);
    } else {
      const blob = writer.finish();
      bytes = blob.length;
      await blobs.put(blobName(base), blob);
    }
    return { base, end, bytes, maxTimestamp, blob: blobName(base) };
  }

  /** Deletes whole sealed segments older than retention_ms or beyond retention_bytes; moves the log start. */
  applyRetention(): Promise<void> {
    return this.runMaintenance(() => this.retainNow());
  }

  private async retainNow(): Promise<void> {
    const now = this.clock.now();
    let total = this.segmentBytesTotal + this.tailBytes;
    let drop = 0;
    while (drop < this.segments.length) {
      const seg = this.segments[drop]!;
      if (!this.retentionDrops(seg, now, total)) break;
      total -= seg.bytes;
      drop++;
    }
    if (drop === 0) return;
    const victims = this.segments.slice(0, drop);
    const newStart = victims[victims.length - 1]!.end;
    const ops: BatchOp[] = [{ type: 'put', key: META_KEY, value: utf8.encode(JSON.stringify({ logStart: newStart })) }];
    for (const seg of victims) ops.push({ type: 'delete', key: offsetKey(SEG_PREFIX, seg.base) });
    await this.unit.kv.batch(ops);
    this.segments.splice(0, drop);
    this.logStart = Math.max(this.logStart, newStart);
    let freed = 0;
    for (const seg of victims) {
      freed += seg.bytes;
      this.segmentBytesTotal -= seg.bytes;
      this.cache.dropPrefix(this.segmentKey(seg));
    }
    this.hooks.onBytes(-freed);
    // After the KV batch these blobs are orphans; if deleting one fails, open() removes it.
    for (const seg of victims) await this.unit.blobs.delete(seg.blob).catch(() => {});
  }

  /** Whether retention deletes `seg`, the oldest segment left, when the partition holds `total` bytes with it. */
  private retentionDrops(seg: SegmentInfo, now: number, total: number): boolean {
    const { retentionMs, retentionBytes } = this.config;
    return (retentionMs >= 0 && seg.maxTimestamp < now - retentionMs) || (retentionBytes >= 0 && total - seg.bytes >= retentionBytes);
  }

  /** How often this partition ticks: min(60 s, segment_ms, retention_ms), at least 10 ms. */
  private tickInterval(): number {
    const { segmentMs, retentionMs } = this.config;
    let ms = 60_000;
    if (segmentMs > 0) ms = Math.min(ms, segmentMs);
    if (retentionMs > 0) ms = Math.min(ms, retentionMs);
    return Math.max(10, ms);
  }

  /**
   * Periodic maintenance, from this partition's tick slot: a time-based roll, then retention.
   * Checks first, without a promise, whether either is due, as almost every tick of an idle
   * partition finds nothing to do. A tick still running when the slot comes round again (a slow
   * disk) is not doubled: that wake-up passes this partition over.
   */
  tick(): Promise<void> | undefined {
    if (this.closed || this.ticking !== undefined) return undefined;
    const first = this.tail[0];
    const now = this.clock.now();
    // Retention only deletes sealed segments, so a quiet tail is sealed once it is older than
    // retention_ms too (not only segment_ms), else it would outlive its retention.
    const { segmentMs, retentionMs } = this.config;
    const rollAge = retentionMs > 0 ? Math.min(segmentMs, retentionMs) : segmentMs;
    const rollDue = first !== undefined && now - Math.min(first.baseTimestamp, now) >= rollAge;
    const oldest = this.segments[0];
    if (!rollDue && (oldest === undefined || !this.retentionDrops(oldest, now, this.segmentBytesTotal + this.tailBytes))) return undefined;
    const run = (async () => {
      let failure: { err: unknown } | undefined;
      // Retention still runs after a failed roll: it frees space, which a full disk needs.
      if (rollDue) await this.roll().catch((err: unknown) => void (failure = { err }));
      await this.applyRetention().catch((err: unknown) => void (failure ??= { err }));
      this.noteTickOutcome(failure);
    })();
    this.ticking = run.finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  /**
   * Logs a tick that failed (a full disk) when the failures start and when they end, not every
   * tick: the log is left as it was and each tick retries, so once an interval would flood the
   * log, and saying nothing hid a partition that no longer rolled or kept its retention.
   */
  private noteTickOutcome(failure: { err: unknown } | undefined): void {
    const logger = this.hooks.logger ?? consoleLogger;
    if (failure !== undefined && !this.tickFailing && !this.closed) {
      logger.error(`the roll or retention of partition '${this.name}' failed; it is retried every tick and logged again once it succeeds`, { partition: this.name, err: failure.err });
    } else if (failure === undefined && this.tickFailing) {
      logger.info(`the roll and retention of partition '${this.name}' succeed again`, { partition: this.name });
    }
    this.tickFailing = failure !== undefined;
  }

  /**
   * Logs a roll triggered by `segment_bytes` that failed, as `noteTickOutcome` does a tick: once
   * when the failures start, once when a roll succeeds again. A streak of its own, so a tick's
   * retention that succeeds meanwhile does not end it.
   */
  private noteSizeRollOutcome(failure: { err: unknown } | undefined): void {
    const logger = this.hooks.logger ?? consoleLogger;
    if (failure !== undefined && !this.sizeRollFailing && !this.closed) {
      logger.error(`the roll of partition '${this.name}' (its tail reached segment_bytes) failed; it is retried after each produce and logged again once it succeeds`, { partition: this.name, err: failure.err });
    } else if (failure === undefined && this.sizeRollFailing) {
      logger.info(`the rolls of partition '${this.name}' by segment_bytes succeed again`, { partition: this.name });
    }
    this.sizeRollFailing = failure !== undefined;
  }

  /** Leaves its tick slot and wakes long-polls; pending commits still finish. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.stopTicks?.();
    this.closed = true;
    this.failWaiters(new QuartzError(ErrorCode.NOT_FOUND, `partition ${this.name} is closed`));
    while (this.committing) await this.commitRun;
    await this.maintenance;
    this.wake();
    this.cache.dropPrefix(`${this.cacheOwner}${OWNER_END}`);
  }
}
