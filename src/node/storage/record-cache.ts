/**
 * Recently read small records of every unit of one disk storage, kept in memory so that a hot
 * key's read skips lmdb. A read through lmdb is a native call that renews lmdb's read transaction
 * once per event turn and arms a timer to reset it; on the KV GET route that cost ~2 µs CPU per
 * request in the server, more than the rest of the read.
 *
 * The cache only ever holds what lmdb holds: `LmdbKV` forgets a key when a write of it starts, and
 * fills the cache only while none of its unit's writes is in flight (see lmdb-kv.ts).
 *
 * NOTE: records are copied into one ring buffer, first in first out, rather than each into an
 * array of its own: a fresh ArrayBuffer per kept record made a read that misses (a sweep over more
 * keys than fit) ~4x dearer than lmdb alone, through allocation and the GCs its external memory
 * triggers. A read does not reorder entries, so a hit costs one map lookup and a view. A record is
 * kept only when it is offered a second time while its key's hash slot still remembers it: keys read
 * once (a sweep, a scan-like workload) then cost a hash, not a copy and a map entry.
 */

/** The ring's size, shared by every unit of one storage; allocated on the first record kept. */
export const DEFAULT_RECORD_CACHE_BYTES = 16 << 20;
/** Larger records are read from lmdb every time: their copy costs more than the lookup saves. */
export const MAX_CACHED_RECORD_BYTES = 8 << 10;
/** Bounds the map and queue for tiny records (each entry costs ~100 bytes beside its record). */
export const MAX_CACHED_RECORDS = 64 << 10;
const SEEN_SLOTS = 1 << 12;

interface Entry {
  readonly unit: UnitRecords;
  readonly key: string;
  readonly at: number;
  readonly length: number;
}

/** One unit's kept records by key (its handle on the cache: no unit-and-key string per read). */
export type UnitRecords = Map<string, Entry>;

export class RecordCache {
  /** Every entry written and not yet evicted, oldest first, including deleted ones (their room is not reused before). */
  private queue: Entry[] = [];
  private first = 0;
  private ring: Uint8Array | undefined;
  /** Hashes of keys offered once, by their low bits (see `offer`). */
  private readonly seen = new Int32Array(SEEN_SLOTS);
  private head = 0;
  private bytes = 0;

  constructor(
    readonly ringBytes = DEFAULT_RECORD_CACHE_BYTES,
    readonly maxRecordBytes = MAX_CACHED_RECORD_BYTES,
    readonly maxRecords = MAX_CACHED_RECORDS,
  ) {}

  /** A new unit's records (unit ids are never reused, so one handle per unit). */
  unit(): UnitRecords {
    return new Map();
  }

  /** The record kept under `key`, valid until the next `add` (read it at once; never write to it), or undefined. */
  get(unit: UnitRecords, key: string): Uint8Array | undefined {
    const e = unit.get(key);
    return e === undefined ? undefined : new Uint8Array(this.ring!.buffer, e.at, e.length);
  }

  /**
   * Keeps a copy of `record` under `key` (replacing what was kept). Records above
   * `maxRecordBytes` are not kept.
   *
   * @example
   * cache.add(unit, mapKey, bytesJustRead);
   */
  add(unit: UnitRecords, key: string, record: Uint8Array): void {
    const n = record.length;
    if (n > this.maxRecordBytes || n > this.ringBytes) return;
    this.delete(unit, key);
    this.ring ??= new Uint8Array(this.ringBytes);
    if (this.head + n > this.ringBytes) {
      // The end of the ring is too short: drop what lies there (the oldest) and start over at 0.
      this.evictWhile((e) => e.at >= this.head);
      this.head = 0;
    }
    const end = this.head + n;
    this.evictWhile((e) => e.at >= this.head && e.at < end);
    while (this.queue.length - this.first >= this.maxRecords) this.evictFirst();
    this.ring.set(record, this.head);
    const entry: Entry = { unit, key, at: this.head, length: n };
    unit.set(key, entry);
    this.queue.push(entry);
    this.head = end;
    this.bytes += n;
  }

  /**
   * Keeps `record` (see `add`) if `key` was offered before and no other key offered since took
   * its slot; otherwise remembers `key` for next time.
   *
   * @example
   * cache.offer(unit, mapKey, bytesJustRead);
   */
  offer(unit: UnitRecords, unitId: number, key: string, record: Uint8Array): void {
    if (record.length > this.maxRecordBytes) return;
    // FNV-1a over the unit id and the key's UTF-16 units.
    let h = Math.imul(0x811c9dc5 ^ unitId, 0x01000193);
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    const slot = h & (SEEN_SLOTS - 1);
    if (this.seen[slot] === h) this.add(unit, key, record);
    else this.seen[slot] = h;
  }

  delete(unit: UnitRecords, key: string): void {
    // Every write calls this; a unit with nothing kept (a write-only one) skips hashing the key.
    if (unit.size === 0) return;
    const e = unit.get(key);
    if (e === undefined) return;
    this.bytes -= e.length;
    unit.delete(key);
  }

  /** Forgets every record (of every unit whose handle came from here). */
  clear(): void {
    for (const e of this.queue.slice(this.first)) e.unit.delete(e.key);
    this.queue = [];
    this.first = 0;
    this.head = 0;
    this.bytes = 0;
  }

  /** Bytes of the records kept (tests, metrics). */
  get size(): number {
    return this.bytes;
  }

  private evictWhile(test: (e: Entry) => boolean): void {
    while (this.first < this.queue.length && test(this.queue[this.first]!)) this.evictFirst();
  }

  private evictFirst(): void {
    const e = this.queue[this.first++]!;
    if (e.unit.get(e.key) === e) {
      e.unit.delete(e.key);
      this.bytes -= e.length;
    }
    if (this.first >= 1024 && this.first * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.first);
      this.first = 0;
    }
  }
}
