/**
 * A bytes-bounded LRU of sealed segments, segment footers and decoded tail batches, shared by every partition of a
 * StreamStore. Entries are loaded once even when many readers ask at the same time (the
 * promise is cached), and a failed load is forgotten so the next read retries.
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { showValue } from '../../core/show-value.js';

interface Entry<T> {
  value: Promise<T>;
  bytes: number;
}

/**
 * Ends the owner part of a key (`${owner}${OWNER_END}${rest}`): a partition's name, which holds no
 * control character. The cache indexes keys by owner, so forgetting a partition's or a segment's
 * entries costs their number, not a pass over the whole cache (a topic delete closes 1,024
 * partitions; each pass over tens of thousands of entries held the event loop for seconds).
 */
export const OWNER_END = '\u0000';

function ownerOf(key: string): string | undefined {
  const end = key.indexOf(OWNER_END);
  return end < 0 ? undefined : key.slice(0, end);
}

export class SegmentCache {
  // Map iteration order is insertion order: re-inserting on a hit makes the first key the LRU.
  private readonly entries = new Map<string, Entry<unknown>>();
  /** Keys by owner (see OWNER_END); keys without one are only in `entries`. */
  private readonly owners = new Map<string, Set<string>>();
  private used = 0;
  /** Lookups answered from the cache / that had to load (for the home's metrics). */
  hits = 0;
  misses = 0;

  constructor(readonly maxBytes: number) {
    // NaN would compare false against every size and let the cache grow without bound.
    if (!(Number.isSafeInteger(maxBytes) && maxBytes >= 0)) {
      throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `segmentCacheBytes must be a whole number of bytes, 0 or more, got ${showValue(maxBytes)}`);
    }
  }

  /** Bytes currently held. */
  get size(): number {
    return this.used;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /**
   * The cached value for `key`, or the result of `load()` (whose byte cost `sizeOf` reports),
   * evicting least-recently-used entries to stay within `maxBytes`.
   *
   * @example
   * const reader = await cache.get('log/t/orders/0\u0000seg/0', () => loadSegment(), (r) => r.byteLength);
   */
  get<T>(key: string, load: () => Promise<T>, sizeOf: (value: T) => number): Promise<T> {
    const hit = this.entries.get(key) as Entry<T> | undefined;
    if (hit !== undefined) {
      this.hits++;
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.value;
    }
    this.misses++;
    const entry: Entry<T> = { value: load(), bytes: 0 };
    this.insert(key, entry);
    entry.value.then(
      (value) => {
        if (this.entries.get(key) !== entry) return;
        entry.bytes = sizeOf(value);
        this.used += entry.bytes;
        this.evict();
      },
      () => {
        if (this.entries.get(key) === entry) this.remove(key, entry);
      },
    );
    return entry.value;
  }

  /** The cached value for `key` (counted as a hit), or undefined (counted as a miss). */
  lookup<T>(key: string): Promise<T> | undefined {
    const hit = this.entries.get(key) as Entry<T> | undefined;
    if (hit === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(key);
    this.entries.set(key, hit);
    return hit.value;
  }

  /**
   * Keeps `value` under `key` only if its `bytes` fit in free room: nothing is evicted for it.
   * @example
   * cache.offer(`${segment}|@${base}`, records, decodedBytes(records));
   */
  offer<T>(key: string, value: T, bytes: number): void {
    if (this.entries.has(key) || this.used + bytes > this.maxBytes) return;
    this.insert(key, { value: Promise.resolve(value), bytes });
    this.used += bytes;
  }

  /** Forgets the entry of `key`, if any (a tail batch once sealed). */
  delete(key: string): void {
    const entry = this.entries.get(key);
    if (entry !== undefined) this.remove(key, entry);
  }

  /**
   * Forgets every entry whose key starts with `prefix` (a deleted segment or topic). A prefix that
   * includes its owner (see OWNER_END) looks at that owner's entries only.
   */
  dropPrefix(prefix: string): void {
    const owner = ownerOf(prefix);
    const keys = owner === undefined ? this.entries.keys() : this.owners.get(owner)?.values();
    if (keys === undefined) return;
    for (const key of [...keys]) {
      if (key.startsWith(prefix)) this.remove(key, this.entries.get(key)!);
    }
  }

  private insert(key: string, entry: Entry<unknown>): void {
    this.entries.set(key, entry);
    const owner = ownerOf(key);
    if (owner === undefined) return;
    let keys = this.owners.get(owner);
    if (keys === undefined) this.owners.set(owner, (keys = new Set()));
    keys.add(key);
  }

  private remove(key: string, entry: Entry<unknown>): void {
    this.entries.delete(key);
    this.used -= entry.bytes;
    const owner = ownerOf(key);
    if (owner === undefined) return;
    const keys = this.owners.get(owner);
    keys?.delete(key);
    if (keys?.size === 0) this.owners.delete(owner);
  }

  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.used <= this.maxBytes) break;
      // entries still loading have bytes = 0 and cost nothing yet
      if (entry.bytes === 0) continue;
      this.remove(key, entry);
    }
  }
}
