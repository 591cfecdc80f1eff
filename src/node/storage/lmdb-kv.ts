/**
 * One unit's ordered KV inside the shared lmdb environment: every key is stored behind the
 * unit's 4-byte id, so units never see each other's keys and a unit's keys form one range.
 */
import type { Database } from 'lmdb';
import type { BatchOp, KVEntry, OrderedKV, ScanOptions } from '../../ports/storage.js';
import { checkBatch, checkKey, checkScan, checkValue, closedError, compareBytes, prefixEnd } from '../../ports/storage-checks.js';

export const UNIT_PREFIX_BYTES = 4;

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

export class LmdbKV implements OrderedKV {
  private readonly prefix: Buffer;
  /** Exclusive upper bound of this unit's key range. */
  private readonly prefixEnd: Buffer;

  constructor(
    private readonly db: Database<Buffer, Buffer>,
    private readonly state: UnitHandleState,
  ) {
    this.prefix = unitPrefix(state.id);
    this.prefixEnd = Buffer.from(prefixEnd(this.prefix)!);
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
    const value = this.db.get(this.full(key));
    // lmdb hands back a fresh Buffer; view it as a plain Uint8Array without copying again.
    return value === undefined ? undefined : new Uint8Array(value.buffer, value.byteOffset, value.length);
  }

  put(key: Uint8Array, value: Uint8Array): Promise<void> {
    this.state.check();
    checkKey(key);
    checkValue(value);
    // lmdb reads the value's memory later, on its write thread: copy it so the caller may reuse its buffer.
    return this.db.put(this.full(key), Buffer.from(value)) as Promise<unknown> as Promise<void>;
  }

  delete(key: Uint8Array): Promise<void> {
    this.state.check();
    checkKey(key);
    return this.db.remove(this.full(key)) as Promise<unknown> as Promise<void>;
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
    return this.db.transaction(() => {
      for (const op of prepared) {
        if (op.value !== undefined) void this.db.put(op.key, op.value);
        else void this.db.remove(op.key);
      }
    }) as Promise<unknown> as Promise<void>;
  }
}
