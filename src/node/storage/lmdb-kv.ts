/**
 * One unit's ordered KV inside the shared lmdb environment: every key is stored behind the
 * unit's 4-byte id, so units never see each other's keys and a unit's keys form one range.
 */
import type { Database } from 'lmdb';
import type { BatchOp, KVEntry, OrderedKV, ScanOptions } from '../../ports/storage.js';
import { checkBatch, checkKey, checkScan, checkValue, compareBytes, prefixEnd } from '../../ports/storage-checks.js';
import { keyOf, mapKeyOf, ownCopy, type Journal, type JournalUnit, type PendingWrite } from './journal.js';
import type { RecordCache, UnitRecords } from './record-cache.js';

export const UNIT_PREFIX_BYTES = 4;

/**
 * A unit key as lmdb's key writer sees it on the hot path: the unit id and the caller's key,
 * written straight into lmdb's own key buffer. lmdb copies keys synchronously inside get / put /
 * remove, so one mutable instance serves every call and no `id ‖ key` Buffer is built per call
 * (a typed-array allocation costs as much as the B-tree lookup).
 */
export interface UnitKey {
  id: number;
  /** The key bytes, or (journal.ts) the same bytes as a latin1 string. */
  key: Uint8Array | string;
}

/**
 * lmdb `keyEncoder` for the hot-path handle on the `data` database: accepts a UnitKey, and plain
 * bytes too (read back as bytes), so its keys are byte-for-byte those of the binary handle.
 */
export const unitKeyEncoder = {
  writeKey(key: UnitKey | Uint8Array, target: Uint8Array, start: number): number {
    if (key instanceof Uint8Array) {
      target.set(key, start);
      return start + key.length;
    }
    const { id, key: k } = key;
    const at = start + UNIT_PREFIX_BYTES;
    const n = k.length;
    // lmdb retries on RangeError with a bigger buffer; plain index writes would drop bytes silently.
    if (at + n > target.length) throw new RangeError('key does not fit in the key buffer');
    target[start] = id >>> 24;
    target[start + 1] = id >>> 16;
    target[start + 2] = id >>> 8;
    target[start + 3] = id;
    if (typeof k === 'string') for (let i = 0; i < n; i++) target[at + i] = k.charCodeAt(i);
    else if (n <= 64) for (let i = 0; i < n; i++) target[at + i] = k[i]!;
    else target.set(k, at);
    return at + n;
  },
  readKey(source: Uint8Array, start: number, end: number): Uint8Array {
    return Uint8Array.prototype.slice.call(source, start, end);
  },
};

/** Open/closed state shared by a unit's KV and blob handles (a dropped unit closes both). */
export interface UnitHandleState {
  readonly name: string;
  readonly id: number;
  dropped: boolean;
  /** Throws STORAGE_CLOSED when the provider is closed or the unit was dropped. */
  check(): void;
}

export function unitPrefix(id: number): Buffer {
  const prefix = Buffer.allocUnsafe(UNIT_PREFIX_BYTES);
  prefix.writeUInt32BE(id, 0);
  return prefix;
}

/** A plain Uint8Array copy: Buffer#slice makes views, which would surprise engine code calling `.slice()`. */
function copy(bytes: Uint8Array, from = 0): Uint8Array {
  return new Uint8Array(bytes.subarray(from));
}

/** Shared by every LmdbKV: filled in and consumed within one synchronous lmdb call. */
const scratch: UnitKey = { id: 0, key: new Uint8Array(0) };

/**
 * Writes go through the journal (journal.ts): acknowledged once in the write-ahead log, and kept in
 * `pending` until the journal's next lmdb batch holds them. Reads look in `pending` first, then in
 * the storage's record cache (record-cache.ts), then in lmdb.
 *
 * The record cache holds only what lmdb holds: a write forgets its keys when it starts, and a read
 * from lmdb is kept only while none of this unit's writes is in flight. A write the journal commits
 * to lmdb directly (a large value) is in neither `pending` nor lmdb until it settles, so a read
 * meanwhile finds the old record, which must not be kept.
 */
export class LmdbKV implements OrderedKV, JournalUnit {
  readonly pending = new Map<string, PendingWrite>();
  private readonly prefix: Buffer;
  /** Exclusive upper bound of this unit's key range. */
  private readonly prefixEnd: Buffer;
  /** This unit's records in the storage's record cache. */
  private readonly kept: UnitRecords;
  /** Writes started and not yet settled. */
  private writing = 0;
  /**
   * The journal's last promise this unit tracked and how many of its writes share it: the writes of
   * one journal group settle together, so they are counted down by one reaction, not one each.
   */
  private tracked: Promise<void> | undefined;
  private trackedCount: { n: number } = { n: 0 };

  /**
   * @param db the `data` database with binary keys (scans, batches)
   * @param fast the same database through `unitKeyEncoder` (single-key get / put / delete)
   */
  constructor(
    private readonly db: Database<Buffer, Buffer>,
    private readonly fast: Database<Buffer, Buffer>,
    readonly state: UnitHandleState,
    private readonly journal: Journal,
    private readonly records: RecordCache,
  ) {
    this.prefix = unitPrefix(state.id);
    this.prefixEnd = Buffer.from(prefixEnd(this.prefix)!);
    this.kept = records.unit();
  }

  /** This unit's `key` in the form `fast` takes; valid until the next call. */
  private unitKey(key: Uint8Array): Buffer {
    scratch.id = this.state.id;
    scratch.key = key;
    return scratch as unknown as Buffer;
  }

  private full(key: Uint8Array): Buffer {
    const k = Buffer.allocUnsafe(UNIT_PREFIX_BYTES + key.length);
    // writeUInt32BE stays in JS; Buffer#copy would cross into C++ for 4 bytes on every call.
    k.writeUInt32BE(this.state.id, 0);
    k.set(key, UNIT_PREFIX_BYTES);
    return k;
  }

  get(key: Uint8Array): Uint8Array | undefined {
    this.state.check();
    checkKey(key);
    const mapKey = mapKeyOf(key);
    if (this.pending.size !== 0) {
      const write = this.pending.get(mapKey);
      // A copy: the caller may keep or change what get returns, and lmdb has yet to read this value.
      if (write !== undefined) return write.value?.slice();
    }
    const kept = this.records.get(this.kept, mapKey);
    if (kept !== undefined) return kept.slice();
    const value = this.fast.get(this.unitKey(key));
    if (value === undefined) return undefined;
    // lmdb hands back a fresh Buffer; view it as a plain Uint8Array without copying again.
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.length);
    this.keep(mapKey, bytes);
    return bytes;
  }

  getTransient(key: Uint8Array): Uint8Array | undefined {
    this.state.check();
    checkKey(key);
    const mapKey = mapKeyOf(key);
    if (this.pending.size !== 0) {
      const write = this.pending.get(mapKey);
      if (write !== undefined) return write.value;
    }
    const kept = this.records.get(this.kept, mapKey);
    if (kept !== undefined) return kept;
    // lmdb's own read buffer (shared by every database in the process), with its length set to
    // this value's: no copy and no ArrayBuffer per read. The caller decodes before its next call.
    const bytes = this.fast.getBinaryFast(this.unitKey(key));
    if (bytes === undefined) return undefined;
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    this.keep(mapKey, view);
    return view;
  }

  /** Keeps (a copy of) a record just read from lmdb, unless a write could make it stale (see the class). */
  private keep(mapKey: string, record: Uint8Array): void {
    if (this.writing === 0 && record.length <= this.records.maxRecordBytes) this.records.offer(this.kept, this.state.id, mapKey, record);
  }

  /** Counts a write until `done` settles (the write forgot its keys in the record cache already). */
  private track(done: Promise<void>): Promise<void> {
    this.writing++;
    if (done === this.tracked) {
      this.trackedCount.n++;
      return done;
    }
    const count = { n: 1 };
    this.tracked = done;
    this.trackedCount = count;
    // Registered with the first write of the group, before any caller's own reactions, so the
    // count is down before the callers resume.
    done.then(
      () => {
        this.writing -= count.n;
      },
      () => {
        this.writing -= count.n;
        // The journal has failed: lmdb may hold anything now, so nothing kept is trusted.
        this.records.clear();
      },
    );
    return done;
  }

  /** Checks a write (and its value; null for a delete), forgets its key in the record cache, and returns its pending-map key. */
  private startWrite(key: Uint8Array, value: Uint8Array | null): string {
    this.state.check();
    checkKey(key);
    if (value !== null) checkValue(value);
    const mapKey = mapKeyOf(key);
    this.records.delete(this.kept, mapKey);
    return mapKey;
  }

  put(key: Uint8Array, value: Uint8Array): Promise<void> {
    const mapKey = this.startWrite(key, value);
    // lmdb reads the value later (and reads serve it until then): copy it so the caller may reuse its buffer.
    return this.track(this.journal.put(this, key, mapKey, ownCopy(value)));
  }

  putOwned(key: Uint8Array, value: Uint8Array): Promise<void> {
    const mapKey = this.startWrite(key, value);
    // `value` is ours until the write is durable, the caller's again after (it may reuse it): lmdb
    // may read it until then, and the pending map keeps a copy past that (see Journal#publish).
    return this.track(this.journal.put(this, key, mapKey, value, true));
  }

  delete(key: Uint8Array): Promise<void> {
    const mapKey = this.startWrite(key, null);
    return this.track(this.journal.delete(this, key, mapKey));
  }

  scan(options: ScanOptions): KVEntry[] {
    this.state.check();
    const { prefix, start, end, limit, reverse } = checkScan(options);
    let lo: Buffer = this.prefix;
    let hi: Buffer = this.prefixEnd;
    if (prefix !== undefined) {
      lo = this.full(prefix);
      const after = prefixEnd(prefix);
      if (after !== undefined) hi = this.full(after);
    } else {
      if (start !== undefined) lo = this.full(start);
      if (end !== undefined) hi = this.full(end);
    }
    const out: KVEntry[] = [];
    const max = limit ?? Infinity;
    if (max === 0 || compareBytes(lo, hi) >= 0) return out;
    const pending = this.pendingIn(lo, hi, reverse === true);
    let next = 0;
    /** Emits pending writes ordered before `key` (all that are left when it is undefined); false when full. */
    const emitPendingBefore = (key: string | undefined): boolean => {
      for (; next < pending.length; next++) {
        const w = pending[next]!;
        if (key !== undefined && (reverse ? w.mapKey <= key : w.mapKey >= key)) break;
        if (w.value !== undefined) out.push({ key: keyOf(w), value: w.value.slice() });
        if (out.length >= max) return false;
      }
      return true;
    };
    // Forward: lmdb's start is inclusive and end exclusive, as ours. Reverse: lmdb starts at (and
    // includes) `start` and stops before `end`, so we start at `hi`, skip it if present, and stop below `lo`.
    const range = reverse ? this.db.getRange({ start: hi, end: this.prefix, reverse: true }) : this.db.getRange({ start: lo, end: hi });
    for (const { key, value } of range) {
      if (reverse) {
        if (compareBytes(key, hi) >= 0) continue;
        if (compareBytes(key, lo) < 0) break;
      }
      if (pending.length !== 0) {
        // Pending writes come first in their place; a pending write of this very key replaces it.
        const userKey = key.subarray(UNIT_PREFIX_BYTES);
        const mapKey = mapKeyOf(userKey);
        if (!emitPendingBefore(mapKey)) return out;
        if (next < pending.length && pending[next]!.mapKey === mapKey) {
          const w = pending[next++]!;
          if (w.value === undefined) continue;
          out.push({ key: keyOf(w), value: w.value.slice() });
          if (out.length >= max) return out;
          continue;
        }
      }
      out.push({ key: copy(key, UNIT_PREFIX_BYTES), value: copy(value) });
      if (out.length >= max) return out;
    }
    emitPendingBefore(undefined);
    return out;
  }

  /** This unit's pending writes with full keys in [lo, hi), in scan order. */
  private pendingIn(lo: Buffer, hi: Buffer, reverse: boolean): PendingWrite[] {
    if (this.pending.size === 0) return [];
    const from = mapKeyOf(lo.subarray(UNIT_PREFIX_BYTES));
    // hi may be the next unit's prefix (an unbounded end): then every key is below it.
    const to = compareBytes(hi, this.prefixEnd) >= 0 ? undefined : mapKeyOf(hi.subarray(UNIT_PREFIX_BYTES));
    const inRange: PendingWrite[] = [];
    for (const w of this.pending.values()) if (w.mapKey >= from && (to === undefined || w.mapKey < to)) inRange.push(w);
    inRange.sort((a, b) => (a.mapKey < b.mapKey ? -1 : a.mapKey > b.mapKey ? 1 : 0));
    if (reverse) inRange.reverse();
    return inRange;
  }

  batch(ops: BatchOp[]): Promise<void> {
    this.state.check();
    // Validate and copy up front: a bad op rejects the whole batch before anything is written.
    checkBatch(ops);
    const copied = ops.map((op): BatchOp => (op.type === 'put' ? { type: 'put', key: op.key, value: ownCopy(op.value) } : op));
    // Only a unit with records kept pays for their map keys (a write-only unit keeps none).
    if (this.kept.size !== 0) for (const op of ops) this.records.delete(this.kept, mapKeyOf(op.key));
    return this.track(this.journal.batch(this, copied));
  }
}
