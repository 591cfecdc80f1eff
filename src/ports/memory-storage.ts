/**
 * The memory home of the Storage port: every unit in plain JS maps. Platform-free, answers
 * synchronously, copies bytes in and out so callers can never alias stored data. Used by tests
 * and by any home that wants a throwaway engine; nothing outlives the process.
 */
import { lowerBound } from './sorted-strings.js';
import type { BatchOp, BlobInfo, BlobRange, BlobStore, KVEntry, OrderedKV, ScanOptions, StorageProvider, UnitStorage } from './storage.js';
import {
  checkBatch,
  checkBlob,
  checkReadTarget,
  checkKey,
  checkName,
  checkPrefix,
  checkRange,
  checkScan,
  checkValue,
  closedError,
  compareUtf8,
  prefixEnd,
} from './storage-checks.js';

/** Bytes as a string of char codes 0..255: JS string order on it is bytewise order. */
function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

function fromLatin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

class MemoryUnit {
  readonly values = new Map<string, Uint8Array>();
  readonly sorted: string[] = [];
  readonly blobs = new Map<string, Uint8Array>();
  closed = false;

  constructor(
    readonly name: string,
    private readonly provider: MemoryStorage,
  ) {}

  check(): void {
    if (this.provider.closed) throw closedError('memory storage');
    if (this.closed) throw closedError(`unit '${this.name}' (dropped)`);
  }

  set(k: string, value: Uint8Array): void {
    if (!this.values.has(k)) this.sorted.splice(lowerBound(this.sorted, k), 0, k);
    this.values.set(k, value.slice());
  }

  remove(k: string): void {
    if (!this.values.delete(k)) return;
    this.sorted.splice(lowerBound(this.sorted, k), 1);
  }
}

class MemoryKV implements OrderedKV {
  constructor(private readonly unit: MemoryUnit) {}

  get(key: Uint8Array): Uint8Array | undefined {
    this.unit.check();
    checkKey(key);
    return this.unit.values.get(latin1(key))?.slice();
  }

  put(key: Uint8Array, value: Uint8Array): void {
    this.unit.check();
    checkKey(key);
    checkValue(value);
    this.unit.set(latin1(key), value);
  }

  delete(key: Uint8Array): void {
    this.unit.check();
    checkKey(key);
    this.unit.remove(latin1(key));
  }

  scan(options: ScanOptions): KVEntry[] {
    this.unit.check();
    const { prefix, start, end, limit, reverse } = checkScan(options);
    let lo: string | undefined;
    let hi: string | undefined;
    if (prefix !== undefined) {
      lo = latin1(prefix);
      const after = prefixEnd(prefix);
      hi = after === undefined ? undefined : latin1(after);
    } else {
      lo = start === undefined ? undefined : latin1(start);
      hi = end === undefined ? undefined : latin1(end);
    }
    const sorted = this.unit.sorted;
    const from = lo === undefined ? 0 : lowerBound(sorted, lo);
    const to = hi === undefined ? sorted.length : lowerBound(sorted, hi);
    const out: KVEntry[] = [];
    const max = limit ?? Infinity;
    for (let n = 0; n < to - from && out.length < max; n++) {
      const k = sorted[reverse ? to - 1 - n : from + n]!;
      out.push({ key: fromLatin1(k), value: this.unit.values.get(k)!.slice() });
    }
    return out;
  }

  batch(ops: BatchOp[]): void {
    this.unit.check();
    // Validate everything first so a bad op leaves the unit untouched (atomicity).
    checkBatch(ops);
    for (const op of ops) {
      if (op.type === 'put') this.unit.set(latin1(op.key), op.value);
      else this.unit.remove(latin1(op.key));
    }
  }
}

class MemoryBlobs implements BlobStore {
  constructor(private readonly unit: MemoryUnit) {}

  async put(key: string, bytes: Uint8Array): Promise<void> {
    this.unit.check();
    checkName(key, 'blob key');
    checkBlob(bytes);
    this.unit.blobs.set(key, bytes.slice());
  }

  async get(key: string, range?: BlobRange): Promise<Uint8Array | undefined> {
    this.unit.check();
    checkName(key, 'blob key');
    const { offset, length } = checkRange(range);
    const bytes = this.unit.blobs.get(key);
    if (bytes === undefined) return undefined;
    return bytes.slice(offset, length === undefined ? undefined : offset + length);
  }

  async readInto(key: string, offset: number, into: Uint8Array): Promise<number | undefined> {
    this.unit.check();
    checkName(key, 'blob key');
    checkReadTarget(into);
    checkRange({ offset, length: into.length });
    const bytes = this.unit.blobs.get(key);
    if (bytes === undefined) return undefined;
    const part = bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + into.length, bytes.length));
    into.set(part);
    return part.length;
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    this.unit.check();
    checkName(key, 'blob key');
    const bytes = this.unit.blobs.get(key);
    return bytes === undefined ? undefined : { key, size: bytes.length };
  }

  async list(prefix: string): Promise<BlobInfo[]> {
    this.unit.check();
    checkPrefix(prefix, 'blob prefix');
    const out: BlobInfo[] = [];
    for (const [key, bytes] of this.unit.blobs) if (key.startsWith(prefix)) out.push({ key, size: bytes.length });
    return out.sort((a, b) => compareUtf8(a.key, b.key));
  }

  async delete(key: string): Promise<void> {
    this.unit.check();
    checkName(key, 'blob key');
    this.unit.blobs.delete(key);
  }
}

/** A StorageProvider held in memory. `unit()` creates a unit on first use; `dropUnit` closes its handles. */
export class MemoryStorage implements StorageProvider {
  closed = false;
  private readonly units = new Map<string, { unit: MemoryUnit; storage: UnitStorage }>();

  unit(name: string): UnitStorage {
    if (this.closed) throw closedError('memory storage');
    checkName(name, 'unit name');
    let entry = this.units.get(name);
    if (entry === undefined) {
      const unit = new MemoryUnit(name, this);
      entry = { unit, storage: { kv: new MemoryKV(unit), blobs: new MemoryBlobs(unit) } };
      this.units.set(name, entry);
    }
    return entry.storage;
  }

  listUnits(prefix: string): string[] {
    if (this.closed) throw closedError('memory storage');
    checkPrefix(prefix, 'unit prefix');
    return [...this.units.keys()].filter((name) => name.startsWith(prefix)).sort(compareUtf8);
  }

  dropUnit(name: string): void {
    if (this.closed) throw closedError('memory storage');
    checkName(name, 'unit name');
    const entry = this.units.get(name);
    if (entry === undefined) return;
    entry.unit.closed = true;
    this.units.delete(name);
  }

  close(): void {
    this.closed = true;
  }
}

/**
 * A fresh, empty in-memory StorageProvider.
 *
 * @example
 * const storage = createMemoryStorage();
 * const { kv } = storage.unit('kv/t1');
 * kv.put(new TextEncoder().encode('a'), new Uint8Array([1]));
 */
export function createMemoryStorage(): MemoryStorage {
  return new MemoryStorage();
}
