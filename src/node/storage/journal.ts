/**
 * Durable writes for the Node disk storage: every ordered-KV write whose values are up to 16 KiB
 * (and that takes up to 1 MiB in all) is a record in the write-ahead log (wal.ts), acknowledged once that record, and every record
 * before it, is on disk (one flush per group of writes, a few groups in flight at once). lmdb receives the writes afterwards, in batches every 20 ms, each one fsync'd
 * transaction that also stores how far into the log it reaches. Until its batch is in lmdb, a
 * write is served from its unit's pending map (see LmdbKV), so reads see every acknowledged
 * write. Larger writes skip the log (see `direct`).
 *
 * Order is the log's order everywhere: groups are published (pending map, apply queue) in the
 * order they were logged, batches reach lmdb in that order, and replay on open re-applies the
 * records lmdb does not hold yet. Puts and deletes carry whole values, so applying a record lmdb
 * already holds changes nothing (replay is idempotent).
 */
import type { Database, RootDatabase } from 'lmdb';
import type { BatchOp } from '../../ports/storage.js';
import { ErrorCode, QuartzError, isQuartzError } from '../../core/errors.js';
import { lmdbCommitFailure, refuseCommitWithoutRoom, storageFailure, type LmdbCommitted } from './disk-errors.js';
import type { UnitKey } from './lmdb-kv.js';
import {
  FRAME_HEAD,
  HEADER_BYTES,
  SEAL_BYTES,
  closeLogFiles,
  deleteBytes,
  encodeDelete,
  encodeHeader,
  encodePut,
  encodeRecord,
  putBytes,
  recordBytes,
  recordLength,
  seal,
  stampFrame,
  writeAt,
  writeAtSync,
  WRITES_IN_FLIGHT,
  type LogFile,
  type LogPosition,
} from './wal.js';

/** How long published writes wait for the next lmdb batch: few lmdb flushes beside the log's. */
export const DEFAULT_APPLY_DELAY_MS = 20;
/** How long a batch that lmdb could not commit for want of disk space waits before it is tried again. */
const NO_SPACE_RETRY_MS = 1000;
/** ...or this many bytes, whichever comes first. */
const APPLY_BYTES = 8 << 20;
/** Default size of one log file; the log takes two. */
export const DEFAULT_LOG_FILE_BYTES = 64 << 20;
/**
 * A log file grows by this many zeroed bytes at a time, ahead of the records. A write that
 * extends a file must also make its new size durable (a journal commit of the filesystem, shared
 * with every other process's fsyncs); a write into bytes already there flushes only itself.
 */
const GROW_BYTES = 2 << 20;
/**
 * Records with a value above this size skip the log (see `direct`). Measured with `bench streams`:
 * produced 1 KB records (sealed batches of 16-64 KiB compressed) cost ~25% more CPU per record
 * when logged (CRC32C at ~0.6 ns/byte and a second write of every byte) than before the log; not
 * logged, about the same. So values up to 16 KiB (most KV values) are logged, and larger ones
 * (stream batches, KV values up to 1 MiB) take lmdb's own fsync'd commit.
 */
const DIRECT_VALUE_BYTES = 16 << 10;
/**
 * Records of small values or deletes are logged up to this size. A roll's batch (thousands of
 * tail deletes, ~100 KB per segment) taken directly held every later write behind its lmdb
 * commit: 40-70 ms stalls under the mixed HTTP load, where logging it costs ~0.1 ms of CRC.
 */
const DIRECT_RECORD_BYTES = 1 << 20;
let zeros: Buffer | undefined;
/**
 * A group that gathers this much skips the log (counting its records' bytes and BULK_RECORD_BYTES
 * per record): its writes go to lmdb directly, in one fsync'd batch, as large writes do (see
 * `direct`). Logging costs per byte (a copy, its CRC32C, the log write) and per record (pending
 * map entries until the next checkpoint, their lookups, their own puts there); lmdb's commit
 * costs a second flush per group and takes longer to land than a frame. Measured on the adapter
 * (CPU per put, groups of N puts issued together): equal at ~256 x 100 B and ~64 x 1 KB (~75 KB
 * counted this way), logging much cheaper below (16 x 100 B: 10-13 vs 31 µs) and with twice the
 * throughput at 64 x 1 KB; above it, going direct saves ~40% (1,000 x 100 B: 2.3 -> 1.5 µs;
 * 256 x 1 KB: 6.2-7.7 -> 4.0-4.2 µs). So the line sits well above the CPU crossover. Per record,
 * not per op: a roll's batch of thousands of tail deletes (~100 KB, one record) stays logged,
 * since its lmdb commit held every later write for 40-70 ms under the mixed HTTP load.
 *
 * BULK_RECORD_BYTES is what makes both crossovers count alike: 256 x (132 + w) = 64 x (1,056 + w)
 * (a 100 B and a 1 KB put's records) gives w = 176, ~79 KB. The line then sits ~3.3x above the
 * crossover at either size (851 x 100 B, 213 x 1 KB). At 128 it sat 3.9x above at 100 B, and a
 * thousand small puts in flight (values up to ~50 B through the engine, ~100 B on the adapter)
 * were logged at ~1.5x the CPU per put of going direct (engine, 16 B: 3.4 vs 2.0-2.3 µs).
 */
const BULK_BYTES = 256 << 10;
const BULK_RECORD_BYTES = 176;
const noop = (): void => {};

/** The `meta` key holding the log position lmdb's contents reach ([epoch, offset]). */
export const APPLIED_KEY = 'wal_applied';
/** The `meta` key holding the log key (wal.ts): set once, by the first open that finds none. */
export const LOG_KEY = 'wal_key';

/** A unit as the journal sees it: its id, whether it was dropped, and its pending writes. */
export interface JournalUnit {
  readonly state: { readonly id: number; readonly dropped: boolean };
  /** latin1 key → the newest write of that key not yet in lmdb. */
  readonly pending: Map<string, PendingWrite>;
}

/** One put (value set) or delete (value undefined) waiting for lmdb. */
export interface PendingWrite {
  unit: JournalUnit;
  /** The key as a latin1 string (see mapKeyOf): the pending map's key, ordered bytewise. */
  mapKey: string;
  value: Uint8Array | undefined;
}

/** The key of the pending map: latin1 keeps one char per byte, so strings compare as the bytes do. */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }).latin1Slice;
export function mapKeyOf(key: Uint8Array): string {
  return latin1Slice.call(key, 0, key.length);
}

/**
 * A copy of a caller's value that the caller cannot reach, for the pending map and lmdb to hold
 * until the write is applied. Below 4 KiB Node's Buffer pool serves it instead of an ArrayBuffer
 * of its own (`value.slice()`): 100-240 ns instead of 330-570 ns for 100 B-1 KB. Viewed as a plain
 * Uint8Array, so that `.slice()` on it (reads of pending writes) still copies: Buffer#slice aliases.
 */
export function ownCopy(value: Uint8Array): Uint8Array {
  const bytes = Buffer.allocUnsafe(value.length);
  bytes.set(value);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** The key bytes of a pending write (a fresh copy). */
export function keyOf(write: PendingWrite): Uint8Array {
  const key = new Uint8Array(write.mapKey.length);
  for (let i = 0; i < key.length; i++) key[i] = write.mapKey.charCodeAt(i);
  return key;
}

/** A write too large for the log (see `Journal.direct`). */
interface DirectWrite {
  writes: PendingWrite[];
  resolve: () => void;
  reject: (err: unknown) => void;
  /** A bulk group's small writes (see BULK_BYTES), not a large write. */
  bulk?: true;
  /** At least the keys' and values' bytes (for the free-space check before lmdb commits them). */
  bytes: number;
}

/**
 * Writes acknowledged together: the records gathered in `bytes[FRAME_HEAD, used)`, logged as one
 * frame, then any writes too large for the log issued right after them (see `direct`), which the
 * journal applies to lmdb before it logs anything issued after those.
 */
interface Group {
  writes: PendingWrite[];
  /** Writes whose values are their callers' (putOwned): copied when published (see `publish`). */
  borrowed: PendingWrite[];
  bytes: Buffer | undefined;
  used: number;
  /** Record bytes of its writes, logged or not (see DirectWrite.bytes). */
  recordBytes: number;
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
  direct: DirectWrite[];
  /** Where the log ends once this group is written. */
  end: LogPosition | undefined;
  /** Records gathered (a put, a delete or a batch each). */
  records: number;
  /** The group grew past BULK_BYTES: its writes skip the log and go to lmdb directly. */
  bulk: boolean;
}

function newGroup(): Group {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A write's caller may not await it (a fire-and-forget delete); its failure is still reported to
  // whoever does, and must not crash the process as an unhandled rejection.
  promise.catch(() => undefined);
  return { writes: [], borrowed: [], bytes: undefined, used: FRAME_HEAD, recordBytes: 0, promise, resolve, reject, direct: [], end: undefined, records: 0, bulk: false };
}

/** A group's frame being written at `start`; outcome WRITTEN once on disk, else the error. */
interface Flight {
  group: Group;
  start: number;
  outcome: unknown;
}
const WRITTEN = Symbol('written');

/** lmdb's `batch`, which its typings leave out (lmdb 3.x, write.js): the writes `apply` makes, in one transaction. */
interface LmdbBatch {
  batch(apply: () => void): Promise<boolean>;
}

/** Scratch for lmdb's key encoder (see unitKeyEncoder): consumed within each put / remove call. */
const scratch: UnitKey = { id: 0, key: '' };

export interface JournalOptions {
  /** The data directory (its free space tells a full disk from other failures). */
  dir: string;
  env: RootDatabase;
  meta: Database<unknown, string>;
  /** The `data` database through unitKeyEncoder. */
  fast: Database<Buffer, Buffer>;
  files: LogFile[];
  /** The epoch the writer starts (above every epoch in the files). */
  epoch: number;
  /** The log key its frames are written with (wal.ts). */
  logKey: number;
  fileBytes: number;
  applyDelayMs: number;
}

export class Journal {
  private readonly dir: string;
  private readonly env: RootDatabase;
  private readonly meta: Database<unknown, string>;
  private readonly fast: Database<Buffer, Buffer>;
  private readonly files: LogFile[];
  private readonly fileBytes: number;
  private readonly applyDelayMs: number;
  private readonly logKey: number;
  /** Records larger than this, or with a value larger than maxValue, skip the log (see `direct`). */
  private readonly maxRecord: number;
  private readonly maxValue: number;

  /** The file written now, its epoch, and where the next record goes. */
  private current = 0;
  private epoch: number;
  private position = HEADER_BYTES;
  /** The epoch held by the other file, whose records lmdb must hold before it is overwritten. */
  private otherEpochEnd: LogPosition | undefined;

  /** Records being gathered for the next write (after room for their frame's head), and their writes. */
  private buf: Buffer = Buffer.allocUnsafe(1 << 20);
  private used = FRAME_HEAD;
  private group = newGroup();
  /** Gathering buffers the pump has finished with. */
  private spares: Buffer[] = [];
  /** Groups closed by a large write, waiting for the pump, oldest first. */
  private closedGroups: Group[] = [];
  private writing = false;
  /** Group writes on their way to the log, in log order. */
  private inFlight: Flight[] = [];
  /** A write failed: nothing more is issued until every write in flight has finished (see rewind). */
  private stalled = false;
  /** Frames may be on disk after the position: seal the file there before writing on (see rewind). */
  private mustSwitch = false;
  /** Resolves the pump's wait for a write to finish or a write slot to be used. */
  private wake: (() => void) | undefined;
  /** The current file's next GROW_BYTES of zeros, written ahead of the frames (see growAhead). */
  private growing: Promise<void> | undefined;

  /** Published writes not yet in lmdb, in log order (a group's writes at a time), and the log position they reach. */
  private queue: PendingWrite[][] = [];
  private queueBytes = 0;
  /** Log bytes of writes put back in the queue after a refused batch (not counted toward APPLY_BYTES). */
  private requeuedBytes = 0;
  private queueDirect: DirectWrite[] = [];
  private published: LogPosition;
  private applying: Promise<void> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** lmdb holds every record up to here. */
  private applied: LogPosition;
  /** While held, the pump publishes nothing (backup snapshots); `unheld` resolves on release. */
  private holds = 0;
  private unheld: Promise<void> | undefined;
  private release: (() => void) | undefined;
  private failure: unknown;
  /** The last lmdb batch failed for want of disk space: the next one waits NO_SPACE_RETRY_MS. */
  private retryLater = false;
  private closed = false;

  constructor(options: JournalOptions) {
    this.dir = options.dir;
    this.env = options.env;
    this.meta = options.meta;
    this.fast = options.fast;
    this.files = options.files;
    this.fileBytes = options.fileBytes;
    this.applyDelayMs = options.applyDelayMs;
    this.logKey = options.logKey;
    this.maxRecord = Math.min(DIRECT_RECORD_BYTES, Math.floor((options.fileBytes - HEADER_BYTES) / 4));
    this.maxValue = Math.min(DIRECT_VALUE_BYTES, this.maxRecord);
    this.epoch = options.epoch;
    this.current = options.files[0]!.epoch <= options.files[1]!.epoch ? 0 : 1;
    this.applied = this.published = { epoch: options.epoch, offset: HEADER_BYTES };
    // The file the writer starts in gets its header now; the other holds only replayed epochs.
    const first = this.files[this.current]!;
    writeAtSync(first.fd, encodeHeader(this.epoch), 0);
    first.size = Math.max(first.size, HEADER_BYTES);
  }

  private check(): void {
    if (this.failure !== undefined) {
      throw new QuartzError(ErrorCode.INTERNAL, 'disk storage stopped writing after a write-ahead log failure', { cause: this.failure });
    }
  }

  private reserve(bytes: number): void {
    if (this.used + bytes <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.used + bytes) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.buf.copy(bigger, 0, 0, this.used);
    this.buf = bigger;
  }

  private queued(unit: JournalUnit, mapKey: string, value: Uint8Array | undefined): PendingWrite {
    const write: PendingWrite = { unit, mapKey, value };
    this.group.writes.push(write);
    return write;
  }

  /** Counts a record just gathered (see BULK_BYTES) and starts the pump. */
  private gathered(): void {
    const group = this.group;
    group.records++;
    if (!group.bulk && this.used + group.records * BULK_RECORD_BYTES >= BULK_BYTES) {
      // Its records are not logged after all: drop what was gathered for its frame.
      group.bulk = true;
      this.used = FRAME_HEAD;
    }
    this.kick();
  }

  /**
   * Starts the pump, or wakes it when a write slot is free, in a promise job: the writes issued
   * before that job runs (a synchronous run of them, or the promise jobs already queued, such as
   * the handlers of the request bodies read together in a check phase) share the frame. NOTE: it
   * used to wait for the next check phase, which under load came after a whole poll phase of
   * other requests (milliseconds) with the disk idle.
   */
  private kick(): void {
    if (!this.writing) {
      this.writing = true;
      queueMicrotask(() => void this.pump());
    } else if (this.wake !== undefined && this.inFlight.length < WRITES_IN_FLIGHT) {
      const wake = this.wake;
      this.wake = undefined;
      queueMicrotask(wake);
    }
  }

  /**
   * `mapKey` is mapKeyOf(key), which the caller has made already. `borrowed`: `value` stays the
   * caller's, who may reuse it once the write is durable (putOwned); the journal copies it then if
   * it still needs it.
   */
  put(unit: JournalUnit, key: Uint8Array, mapKey: string, value: Uint8Array, borrowed = false): Promise<void> {
    this.check();
    const bytes = putBytes(key, value);
    if (value.length > this.maxValue || bytes > this.maxRecord) return this.direct(unit, [{ type: 'put', key, value }]);
    this.group.recordBytes += bytes;
    if (!this.group.bulk) {
      this.reserve(bytes);
      this.used = encodePut(this.buf, this.used, unit.state.id, key, value);
    }
    const write = this.queued(unit, mapKey, value);
    if (borrowed && !this.group.bulk) this.group.borrowed.push(write);
    this.gathered();
    return this.group.promise;
  }

  delete(unit: JournalUnit, key: Uint8Array, mapKey: string): Promise<void> {
    this.check();
    const bytes = deleteBytes(key);
    this.group.recordBytes += bytes;
    if (!this.group.bulk) {
      this.reserve(bytes);
      this.used = encodeDelete(this.buf, this.used, unit.state.id, key);
    }
    this.queued(unit, mapKey, undefined);
    this.gathered();
    return this.group.promise;
  }

  /** `ops` are checked and their values stable (copied or owned). One record: all or nothing. */
  batch(unit: JournalUnit, ops: BatchOp[]): Promise<void> {
    this.check();
    // Nothing to log (a record of no ops reads as a seal); still resolves after earlier writes.
    if (ops.length === 0) return this.group.writes.length > 0 ? this.group.promise : Promise.resolve();
    const bytes = recordBytes(ops);
    if (bytes > this.maxRecord || ops.some((op) => op.type === 'put' && op.value.length > this.maxValue)) return this.direct(unit, ops);
    this.group.recordBytes += bytes;
    if (!this.group.bulk) {
      this.reserve(bytes);
      this.used = encodeRecord(this.buf, this.used, unit.state.id, ops);
    }
    for (const op of ops) this.queued(unit, mapKeyOf(op.key), op.type === 'put' ? op.value : undefined);
    this.gathered();
    return this.group.promise;
  }

  /**
   * A large write skips the log: checksumming it and writing its bytes twice costs more than
   * lmdb's two flushes for a write this size (a sealed stream batch, up to 1 MiB). It closes the
   * gathering group; once that group is published, the write goes to lmdb with the published
   * writes, in one fsync'd batch that records the log position it follows, and resolves when that
   * commits. Nothing issued after it is logged before then, so a crash keeps a prefix of the
   * writes in the order they were issued, and replay (which starts after that position) never
   * re-applies an older record over it.
   */
  private direct(unit: JournalUnit, ops: BatchOp[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let bytes = 0;
      const writes = ops.map((op) => {
        bytes += op.key.length + (op.type === 'put' ? op.value.length : 0);
        return { unit, mapKey: mapKeyOf(op.key), value: op.type === 'put' ? op.value : undefined };
      });
      // Large writes issued one after another (a produce group's sealed batches) share one lmdb batch.
      const last = this.closedGroups.at(-1);
      const group = last !== undefined && this.group.writes.length === 0 ? last : this.closeGroup();
      group.direct.push({ writes, resolve, reject, bytes });
      // Large writes come in runs issued together (a produce group's batches, in one synchronous
      // loop): the pump's promise job still gathers the run, and it reaches lmdb before the
      // callers' next work. Started after the event turn, it waited for whatever that work was
      // (producers encoding their next batches, tens of milliseconds), and the disk idled meanwhile.
      this.kick();
    });
  }

  /** Hands the gathering group to the pump (in order) and starts a new one. */
  private closeGroup(): Group {
    const group = this.group;
    group.bytes = this.buf;
    group.used = this.used;
    this.closedGroups.push(group);
    this.group = newGroup();
    this.buf = this.spares.pop() ?? Buffer.allocUnsafe(1 << 20);
    this.used = FRAME_HEAD;
    return group;
  }

  /**
   * Writes gathered groups to the log, one O_DSYNC write each, up to WRITES_IN_FLIGHT at once at
   * consecutive positions, and publishes them strictly in log order: a group is acknowledged only
   * once it and every group before it are on disk (replay stops at the first torn frame, so a
   * later frame on disk behind a torn one is never replayed). A group that spans a file switch,
   * grows the file, or carries a large write goes alone, once nothing else is in flight.
   */
  private async pump(): Promise<void> {
    for (;;) {
      const head = this.inFlight[0];
      if (head !== undefined && head.outcome !== undefined) {
        if (head.outcome === WRITTEN) {
          while (this.unheld !== undefined) await this.unheld;
          this.inFlight.shift();
          this.recycle(head.group.bytes!);
          this.publish(head.group);
          continue;
        }
        // A failed write rejects every group behind it, written or not, once none is in flight.
        if (this.inFlight.every((f) => f.outcome !== undefined)) {
          this.rewind(head);
          continue;
        }
      } else if (this.inFlight.length < WRITES_IN_FLIGHT && !this.stalled) {
        if (this.closedGroups.length === 0 && this.group.writes.length > 0) this.closeGroup();
        const group = this.closedGroups[0];
        if (group !== undefined && group.direct.length === 0 && !group.bulk && this.fits(group.used)) {
          this.closedGroups.shift();
          this.issue(group);
          continue;
        }
        if (group !== undefined && this.inFlight.length === 0 && this.growing === undefined) {
          this.closedGroups.shift();
          await this.writeAlone(group);
          continue;
        }
      }
      if (this.inFlight.length === 0 && this.closedGroups.length === 0 && this.group.writes.length === 0) break;
      // Woken by a write finishing (frame or growth), or by new writes while a write slot is free.
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    this.writing = false;
  }

  /** Whether a frame of `bytes` goes at the current position without a file switch or growth. */
  private fits(bytes: number): boolean {
    const end = this.position + bytes;
    return !this.mustSwitch && end <= this.fileBytes - SEAL_BYTES && end <= this.files[this.current]!.size;
  }

  /** Starts the write of `group`'s frame at the current position. */
  private issue(group: Group): void {
    const bytes = group.bytes!;
    const start = this.position;
    stampFrame(bytes, 0, group.used, this.epoch, this.logKey);
    this.position += group.used;
    group.end = { epoch: this.epoch, offset: this.position };
    const flight: Flight = { group, start, outcome: undefined };
    this.inFlight.push(flight);
    writeAt(this.files[this.current]!.fd, bytes, 0, group.used, start).then(
      () => this.landed(flight, WRITTEN),
      (err: unknown) => {
        this.stalled = true;
        this.landed(flight, err);
      },
    );
    this.growAhead();
  }

  private landed(flight: Flight, outcome: unknown): void {
    flight.outcome = outcome;
    this.wakePump();
  }

  private wakePump(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /**
   * Once the frames come within half a step of the current file's end, extends it by the next
   * GROW_BYTES of zeros beside the frame writes (past every frame, so they never overlap). Grown
   * only when a frame reached the end, the file stopped every write for the time the zeros and the
   * new size took to reach the disk (7-25 ms for 2 MiB here) about every 2,000 1 KB writes until
   * both files had their full size. A failed growth is left to `grow`, which retries it in line.
   */
  private growAhead(): void {
    const file = this.files[this.current]!;
    if (this.growing !== undefined || file.size >= this.fileBytes || this.position + GROW_BYTES / 2 < file.size) return;
    zeros ??= Buffer.alloc(GROW_BYTES);
    const target = Math.min(this.fileBytes, file.size + GROW_BYTES);
    this.growing = writeAt(file.fd, zeros, 0, target - file.size, file.size).then(
      () => {
        file.size = Math.max(file.size, target);
      },
      () => undefined,
    );
    void this.growing.then(() => {
      this.growing = undefined;
      this.wakePump();
    });
  }

  /**
   * After a failed write: rejects it and every group written behind it (not acknowledged, never
   * published), and moves the log back to where it started, so the next frame overwrites whatever
   * part of it reached the file (a full disk may have room again later). Frames written behind it
   * may be on disk whole; the next write seals the file there first and goes on in the next one,
   * so no later frame can ever read as continuing the log.
   */
  private rewind(failed: Flight): void {
    const err = storageFailure(failed.outcome, 'this write');
    for (const { group } of this.inFlight) {
      group.reject(err);
      this.recycle(group.bytes!);
    }
    if (this.inFlight.length > 1) this.mustSwitch = true;
    this.inFlight = [];
    this.position = failed.start;
    this.stalled = false;
  }

  /** Writes `group` with nothing else in flight (a file switch, growth, a large write), then publishes it. */
  private async writeAlone(group: Group): Promise<void> {
    const bytes = group.bytes!;
    if (group.bulk) {
      // Its writes go to lmdb ahead of any large writes issued after them, and are acknowledged
      // once that batch commits (not when the group is published: it has no frame).
      group.direct.unshift({ writes: group.writes, resolve: group.resolve, reject: group.reject, bulk: true, bytes: group.recordBytes });
      group.writes = [];
      group.borrowed = [];
      group.resolve = noop;
      group.reject = noop;
    }
    try {
      if (this.mustSwitch) {
        await this.nextFile();
        this.mustSwitch = false;
      }
      // A group of large writes alone has no frame to write (and no await, see `direct`).
      group.end = group.used > FRAME_HEAD ? await this.writeRecords(bytes, group.used) : { epoch: this.epoch, offset: this.position };
    } catch (cause) {
      // Not acknowledged and never published: the next frame overwrites whatever part of this
      // one reached the file.
      const err = storageFailure(cause, 'this write');
      group.reject(err);
      for (const d of group.direct) d.reject(err);
      this.recycle(bytes);
      return;
    }
    this.recycle(bytes);
    while (this.unheld !== undefined) await this.unheld;
    this.publish(group);
    if (group.direct.length > 0) {
      for (const d of group.direct) this.queue.push(d.writes);
      this.queueDirect.push(...group.direct);
      await this.applyNow().catch(() => undefined);
    }
  }

  private recycle(bytes: Buffer): void {
    // Keep a gathering buffer of a usual size per write slot; a big batch should not pin its buffer.
    if (bytes.length <= 4 << 20 && this.spares.length <= WRITES_IN_FLIGHT) this.spares.push(bytes);
  }

  /** Writes the records in bytes[FRAME_HEAD, end) as one frame (two if the file fills up); returns where the log ends. */
  private async writeRecords(bytes: Buffer, end: number): Promise<LogPosition> {
    let from = 0; // the frame head goes here, its records follow
    while (from + FRAME_HEAD < end) {
      // Whole records that fit before the room kept for this file's seal.
      const room = this.fileBytes - SEAL_BYTES - this.position;
      let to = from + FRAME_HEAD;
      while (to < end && to + recordLength(bytes, to) - from <= room) to += recordLength(bytes, to);
      if (to === from + FRAME_HEAD) {
        await this.nextFile();
        continue;
      }
      stampFrame(bytes, from, to, this.epoch, this.logKey);
      const file = this.files[this.current]!;
      if (this.position + (to - from) > file.size) await this.grow(file, this.position + (to - from));
      await writeAt(file.fd, bytes, from, to, this.position);
      this.position += to - from;
      // The rest goes to the next file: its frame head overwrites the tail just written.
      from = to - FRAME_HEAD;
    }
    return { epoch: this.epoch, offset: this.position };
  }

  /** Extends `file` with zeros to at least `end` (a whole GROW_BYTES step, within the file size). */
  private async grow(file: LogFile, end: number): Promise<void> {
    zeros ??= Buffer.alloc(GROW_BYTES);
    const target = Math.min(Math.max(this.fileBytes, end), Math.max(end, file.size + GROW_BYTES));
    for (let at = file.size; at < target; at += GROW_BYTES) await writeAt(file.fd, zeros, 0, Math.min(GROW_BYTES, target - at), at);
    file.size = Math.max(file.size, target);
  }

  /**
   * Seals the current file and starts the next epoch in the other one, once lmdb holds every
   * record the other one has (overwriting it drops them from the log).
   */
  private async nextFile(): Promise<void> {
    while (this.otherEpochEnd !== undefined && !this.reached(this.otherEpochEnd)) await this.applyNow();
    const sealed = this.files[this.current]!;
    await writeAt(sealed.fd, seal(this.epoch, this.logKey), 0, SEAL_BYTES, this.position);
    sealed.size = Math.max(sealed.size, this.position + SEAL_BYTES);
    // The next header is on disk before the writer moves: if it fails, the writer stays at the
    // seal (the next frame overwrites it, or a switch is tried again), never in a file whose
    // header names another epoch than its frames.
    const next = this.files[1 - this.current]!;
    const head = encodeHeader(this.epoch + 1);
    await writeAt(next.fd, head, 0, head.length, 0);
    next.size = Math.max(next.size, HEADER_BYTES);
    this.otherEpochEnd = { epoch: this.epoch, offset: this.position };
    this.current = 1 - this.current;
    this.epoch += 1;
    this.position = HEADER_BYTES;
  }

  private reached(position: LogPosition): boolean {
    return this.applied.epoch > position.epoch || (this.applied.epoch === position.epoch && this.applied.offset >= position.offset);
  }

  private publish(group: Group): void {
    for (const w of group.writes) if (!w.unit.state.dropped) w.unit.pending.set(w.mapKey, w);
    // Published writes wait in the pending maps for lmdb, past the durability a putOwned caller
    // waits for before reusing its bytes: they keep copies. A write that a later one of its group
    // replaced in the map is never read again (reads and lmdb's batch go through the map's newest
    // write), so its bytes are not copied: clients writing the same keys in turn replaced about two
    // in three. (A bulk group's or large write's borrowed value is in lmdb, and let go, when its
    // write resolves.)
    for (const w of group.borrowed) if (w.unit.pending.get(w.mapKey) === w) w.value = ownCopy(w.value!);
    // A dropped unit's writes are skipped when applied; the group's log bytes measure the rest.
    if (group.writes.length > 0) {
      this.queue.push(group.writes);
      this.queueBytes += group.used;
    }
    this.published = group.end!;
    // A group carrying a large write is applied by the pump at once; others wait for the timer.
    if (group.direct.length === 0) {
      if (this.queueBytes >= APPLY_BYTES) void this.applyNow().catch(() => undefined);
      else if (this.timer === undefined && this.applying === undefined) this.startTimer();
    }
    group.resolve();
  }

  /** Moves every published write into lmdb in one fsync'd transaction (waits for one in flight first). */
  private async applyNow(): Promise<void> {
    while (this.applying !== undefined) await this.applying;
    // After lmdb refused a batch for good, a later batch would move `wal_applied` past the
    // refused writes and replay would skip them: they all wait for the next open's replay.
    this.check();
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.queue.length === 0 && this.queueDirect.length === 0) return;
    const writes = this.queue;
    const direct = this.queueDirect;
    const reaches = this.published;
    const loggedBytes = this.queueBytes + this.requeuedBytes;
    this.requeuedBytes = 0;
    this.queue = [];
    this.queueDirect = [];
    this.queueBytes = 0;
    // Large writes are not in the pending maps (see `direct`): always applied.
    const large = direct.length === 0 ? undefined : new Set(direct.map((d) => d.writes));
    const apply = () => {
      for (const group of writes) {
        const logged = large === undefined || !large.has(group);
        for (const w of group) {
          if (w.unit.state.dropped) continue; // its range was deleted; the log's copy is skipped on replay too
          // A later logged write of the key is published (in this batch, or in the log past
          // `reaches`, so replayed after a crash): lmdb need not take this one too (a hot key
          // written many times in 20 ms is put once). Reads find the later write in the pending map.
          // NOTE: it must be skipped: a borrowed value replaced within its group was not copied
          // when published (see `publish`), and its bytes may be the caller's again.
          if (logged && w.unit.pending.get(w.mapKey) !== w) continue;
          scratch.id = w.unit.state.id;
          scratch.key = w.mapKey;
          const key = scratch as unknown as Buffer;
          if (w.value !== undefined) void this.fast.put(key, w.value as Buffer);
          else void this.fast.remove(key);
        }
      }
      void this.meta.put(APPLIED_KEY, [reaches.epoch, reaches.offset]);
    };
    // Without large writes, an async transaction: lmdb's writer thread opens it and `apply` runs in
    // it (on this thread, once the event loop gets to it), each put a direct native write; then the
    // writer commits it, fsync'd. A `batch` encodes every put as an instruction for the writer
    // thread: ~0.2-0.4 µs more CPU per small write, but the writer starts at once and copies the
    // values itself. So large writes (stream batches of ~1 MiB, whose callers wait for this commit)
    // take a batch: their copy into lmdb's pages leaves this thread, and the commit does not wait
    // for this thread to finish what it is doing (a produce group's next batches to encode).
    // A bulk group of small writes takes the transaction too: in a batch lmdb-js links a
    // resolution object per write into one list, and the writes' objects outlived young-generation
    // GCs (1 KB puts, 1,000 in flight: ~0.6 MB promoted per scavenge against 0.1-0.16 MB, in some
    // runs 18-21 full GCs in 3 s instead of 2, and 5.6-6.3 instead of 2.8-3.3 µs CPU per put).
    let done: Promise<unknown>;
    try {
      let keys = 1;
      for (const group of writes) keys += group.length;
      // Bytes counted as the writes came: walking them here instead, cold in the cache, cost ~0.5-1 µs
      // a put in `bench kv` (1,000 in flight). A logged write's log bytes hold its key and value.
      let bytes = loggedBytes;
      for (const d of direct) bytes += d.bytes;
      // Refused as lmdb refuses a commit on a full disk (below), without lmdb meeting the disk.
      refuseCommitWithoutRoom(this.dir, keys, bytes, 'this write');
      done = direct.some((d) => d.bulk !== true) ? (this.env as unknown as LmdbBatch).batch(apply) : (this.env.transaction(apply) as Promise<unknown>);
    } catch (err) {
      done = Promise.reject(err);
    }
    this.applying = done.then(
      () => {
        for (const group of writes) {
          // Direct writes never entered the pending maps.
          if (large !== undefined && large.has(group)) continue;
          for (const w of group) if (w.unit.pending.get(w.mapKey) === w) w.unit.pending.delete(w.mapKey);
        }
        if (this.applied.epoch < reaches.epoch || this.applied.offset < reaches.offset) this.applied = reaches;
        for (const d of direct) d.resolve();
      },
      async (failed: unknown) => {
        const err = storageFailure(await lmdbCommitFailure(failed, this.env as unknown as LmdbCommitted), 'this write', this.dir);
        for (const d of direct) d.reject(err);
        if (isQuartzError(err, ErrorCode.INSUFFICIENT_STORAGE)) {
          // A full disk: the failed transaction changed nothing, and its logged writes are still
          // durable in the log and read from the pending maps. They go back in front of the queue
          // and are retried (less often) until the disk has room; meanwhile the log takes writes
          // until it must switch files, which needs them in lmdb (`nextFile`).
          const logged = large === undefined ? writes : writes.filter((group) => !large.has(group));
          this.queue = logged.concat(this.queue);
          this.requeuedBytes += loggedBytes;
          this.retryLater = true;
        } else {
          this.fail(err);
        }
        throw err;
      },
    );
    try {
      await this.applying;
      this.retryLater = false;
    } finally {
      this.applying = undefined;
      if (this.queue.length > 0 && this.timer === undefined && !this.closed && this.failure === undefined) this.startTimer();
    }
  }

  private startTimer(): void {
    // unref: writes left for the timer are already durable in the log, so they need not keep the process up.
    const delay = this.retryLater ? NO_SPACE_RETRY_MS : this.applyDelayMs;
    this.timer = setTimeout(() => void this.applyNow().catch(() => undefined), delay).unref();
  }

  /**
   * lmdb refused a batch of acknowledged writes: they stay in the log (replayed on the next open)
   * and in the pending maps (still read), and the journal takes no more writes.
   */
  private fail(err: unknown): void {
    if (this.failure === undefined) this.failure = err;
  }

  /** Resolves when every write issued so far is published (durable in the log). */
  private async logged(): Promise<void> {
    if (this.group.writes.length > 0) await this.group.promise.catch(() => undefined);
    while (this.writing) await new Promise((resolve) => setImmediate(resolve));
  }

  /**
   * Holds back acknowledgements, then brings lmdb up to every write acknowledged so far; returns
   * the release. Between the two, lmdb alone holds every acknowledged write (backup snapshots).
   */
  async hold(): Promise<() => void> {
    if (this.holds++ === 0) this.unheld = new Promise((resolve) => (this.release = resolve));
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (--this.holds === 0) {
        const resume = this.release!;
        this.unheld = undefined;
        this.release = undefined;
        resume();
      }
    };
    try {
      await this.applyNow();
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  /** Logs what is gathered, moves everything into lmdb, and closes the log files. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.logged();
      await this.applyNow();
      // lmdb holds every record: a seal says the log ends here, so the next open does not search
      // the rest of the file for frames behind a damaged one (~15 ms per 64 MiB). Without it (a
      // crash, or this write failing) the next open searches: slower, never wrong.
      await writeAt(this.files[this.current]!.fd, seal(this.epoch, this.logKey), 0, SEAL_BYTES, this.position).catch(noop);
    } finally {
      this.closed = true;
      // Not with a write in flight: its fd could be reused by the time it runs.
      await this.growing;
      if (this.timer !== undefined) clearTimeout(this.timer);
      closeLogFiles(this.files);
    }
  }
}
