/**
 * Recently read small records of every unit of one disk storage, kept in memory so that a hot
 * key's read skips lmdb. A read through lmdb is a native call that renews lmdb's read transaction
 * once per event turn and arms a timer to reset it; on the KV GET route that cost ~2 µs CPU per
 * request in the server, more than the rest of the read.
 *
 * The cache only ever holds what lmdb holds: `LmdbKV` forgets a key when a write of it starts, and
 * fills the cache only while none of its unit's writes is in flight (see lmdb-kv.ts). Entries go
 * first in, first out once the byte budget is spent; a read does not reorder them, so a hit costs
 * one map lookup.
 */

/** The byte budget shared by every unit of one storage. */
export const DEFAULT_RECORD_CACHE_BYTES = 16 << 20;
/** Larger records are read from lmdb every time: their copy costs more than the lookup saves. */
export const MAX_CACHED_RECORD_BYTES = 8 << 10;

export class RecordCache {
  private readonly entries = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(
    readonly maxBytes = DEFAULT_RECORD_CACHE_BYTES,
    readonly maxRecordBytes = MAX_CACHED_RECORD_BYTES,
  ) {}

  /** The record kept under `key` (the caller must not write to it), or undefined. */
  get(key: string): Uint8Array | undefined {
    return this.entries.get(key);
  }

  /**
   * Keeps `record` under `key`, which must not be kept already; the cache takes `record` over.
   * Records above `maxRecordBytes` are not kept.
   *
   * @example
   * cache.add(`${unitId}:${mapKey}`, bytes.slice());
   */
  add(key: string, record: Uint8Array): void {
    if (record.length > this.maxRecordBytes) return;
    this.entries.set(key, record);
    this.bytes += record.length;
    while (this.bytes > this.maxBytes) {
      const oldest = this.entries.keys().next().value!;
      this.bytes -= this.entries.get(oldest)!.length;
      this.entries.delete(oldest);
    }
  }

  delete(key: string): void {
    const record = this.entries.get(key);
    if (record === undefined) return;
    this.bytes -= record.length;
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  /** Bytes of records kept (tests, metrics). */
  get size(): number {
    return this.bytes;
  }
}
