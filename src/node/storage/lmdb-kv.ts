/**
 * One unit's ordered KV inside the shared lmdb environment: every key is stored behind the
 * unit's 4-byte id, so units never see each other's keys and a unit's keys form one range.
 */
import type { Database } from 'lmdb';
import type { BatchOp, KVEntry, OrderedKV, ScanOptions } from '../../ports/storage.js';
import { checkBatch, checkKey, checkScan, checkValue, closedError, compareBytes, prefixEnd } from '../../ports/storage-checks.js';

export const UNIT_PREFIX_BYTES = 4;

/**
 * A unit key as lmdb's key writer sees it on the hot path: the unit id and the caller's key,
 * written straight into lmdb's own key buffer. lmdb copies keys synchronously inside get / put /
 * remove, so one mutable instance serves every call and no `id ‖ key` Buffer is built per call
 * (a typed-array allocation costs as much as the B-tree lookup).
 */
export interface UnitKey {
  id: number;
  key: Uint8Array;
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
    if (n <= 64) for (let i = 0; i < n; i++) target[at + i] = k[i]!;
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

/** lmdb's `batch`, which its typings leave out (lmdb 3.x, write.js). */
interface LmdbBatch {
  batch(writes: () => void): Promise<boolean>;
}

/** Shared by every LmdbKV: filled in and consumed within one synchronous lmdb call. */
const scratch: UnitKey = { id: 0, key: new Uint8Array(0) };

export class LmdbKV implements OrderedKV {
  private readonly prefix: Buffer;
  /** Exclusive upper bound of this unit's key range. */
  private readonly prefixEnd: Buffer;

  /**
   * @param db the `data` database with binary keys (scans, batches)
   * @param fast the same database through `unitKeyEncoder` (single-key get / put / delete)
   */
  constructor(
    private readonly db: Database<Buffer, Buffer>,
    private readonly fast: Database<Buffer, Buffer>,
    private readonly state: UnitHandleState,
  ) {
    this.prefix = unitPrefix(state.id);
    this.prefixEnd = Buffer.from(prefixEnd(this.prefix)!);
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
    const value = this.fast.get(this.unitKey(key));
    // lmdb hands back a fresh Buffer; view it as a plain Uint8Array without copying again.
    return value === undefined ? undefined : new Uint8Array(value.buffer, value.byteOffset, value.length);
  }

  getTransient(key: Uint8Array): Uint8Array | undefined {
    this.state.check();
    checkKey(key);
    // lmdb's own read buffer (shared by every database in the process), with its length set to
    // this value's: no copy and no ArrayBuffer per read. The caller decodes before its next call.
    const bytes = this.fast.getBinaryFast(this.unitKey(key));
    return bytes === undefined ? undefined : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  put(key: Uint8Array, value: Uint8Array): Promise<void> {
    this.state.check();
    checkKey(key);
    checkValue(value);
    // lmdb reads the value's memory later, on its write thread: copy it so the caller may reuse its buffer.
    return this.fast.put(this.unitKey(key), Buffer.from(value)) as Promise<unknown> as Promise<void>;
  }

  putOwned(key: Uint8Array, value: Uint8Array): Promise<void> {
    this.state.check();
    checkKey(key);
    checkValue(value);
    // The caller never writes to `value` again, and lmdb holds a reference to it until the write
    // resolves, so its memory is both stable and alive while the write thread reads it.
    return this.fast.put(this.unitKey(key), value as Buffer) as Promise<unknown> as Promise<void>;
  }

  delete(key: Uint8Array): Promise<void> {
    this.state.check();
    checkKey(key);
    return this.fast.remove(this.unitKey(key)) as Promise<unknown> as Promise<void>;
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
    // Forward: lmdb's start is inclusive and end exclusive, as ours. Reverse: lmdb starts at (and
    // includes) `start` and stops before `end`, so we start at `hi`, skip it if present, and stop below `lo`.
    const range = reverse ? this.db.getRange({ start: hi, end: this.prefix, reverse: true }) : this.db.getRange({ start: lo, end: hi });
    for (const { key, value } of range) {
      if (reverse) {
        if (compareBytes(key, hi) >= 0) continue;
        if (compareBytes(key, lo) < 0) break;
      }
      out.push({ key: copy(key, UNIT_PREFIX_BYTES), value: copy(value) });
      if (out.length >= max) break;
    }
    return out;
  }

  batch(ops: BatchOp[]): Promise<void> {
    this.state.check();
    // Validate and copy up front: a bad op rejects the whole batch before anything is written.
    checkBatch(ops);
    const prepared = ops.map((op) => (op.type === 'put' ? { key: this.full(op.key), value: Buffer.from(op.value) } : { key: this.full(op.key) }));
    // NOTE: not `db.transaction(cb)`: lmdb runs that callback on the main thread while its write
    // thread holds the transaction open, so under load every commit (and every write queued behind
    // it) waits for a turn of a busy event loop. `batch(cb)` runs the callback now and queues its
    // writes as one block that lmdb commits in a single transaction (its typings: writes are in
    // the same transaction "if explicitly batched together (with transaction, batch, ifVersion)").
    // The promise still resolves only once that commit is fsync'd (overlappingSync is off).
    return (this.db as unknown as LmdbBatch).batch(() => {
      for (const op of prepared) {
        if (op.value !== undefined) void this.db.put(op.key, op.value);
        else void this.db.remove(op.key);
      }
    }) as Promise<unknown> as Promise<void>;
  }
}
