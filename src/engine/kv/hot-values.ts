/**
 * Entries of recently read small values, shared by every KV store of one engine, so that a hot
 * key's HTTP GET answers from memory: no storage read, no record decode, no copy of the value.
 *
 * NOTE: a GET that reads storage decodes the record and copies the value into a fresh buffer
 * (the caller owns it); on a hot 1 KB key that was ~0.5 µs of the server's ~15 µs per request,
 * and its allocations cost more again in the server (about 2 µs of CPU per GET in all, measured
 * over HTTP). A kept entry is handed out as it is, to readers that promise not to modify it
 * (`KvStore.getShared`).
 *
 * The stores keep it true: a store forgets a key here when it issues a write of that key, and
 * keeps an entry only from a synchronous read of storage with no write of the key in flight.
 * Entries leave first in, first out; `budgetBytes` bounds the value bytes of every entry kept
 * since the oldest one still queued, forgotten or not, so the slabs the copies live in stay
 * within the budget too.
 */
import type { KvEntry } from './kv-store.js';
import { Slab } from './kv-record.js';

/** Value bytes kept by default, for every store of one engine. */
export const DEFAULT_HOT_VALUE_BYTES = 8 << 20;
/** Larger values are read from storage every time: their copy costs little beside their write. */
export const MAX_HOT_VALUE_BYTES = 8 << 10;
/** Bounds the queue (and map entries) for tiny values. */
const MAX_HOT_ENTRIES = 64 << 10;

interface Held {
  readonly unit: HotUnit;
  readonly key: string;
  readonly size: number;
  /** Undefined once forgotten or evicted: the queue keeps no value alive. */
  entry: KvEntry | undefined;
}

/** One store's kept entries by key (its handle on the shared budget). */
export type HotUnit = Map<string, Held>;

export class HotValues {
  private queue: Held[] = [];
  private first = 0;
  /** Value bytes of every entry from `first` on, forgotten ones included (their slab space is not reused before). */
  private bytes = 0;
  // Copies are cut from slabs in the order they are kept and leave in that order: a slab is
  // released soon after its last piece leaves the queue.
  private readonly slab: Slab;

  constructor(readonly budgetBytes = DEFAULT_HOT_VALUE_BYTES) {
    this.slab = new Slab(Math.min(64 << 10, Math.max(budgetBytes, 1)), MAX_HOT_VALUE_BYTES);
  }

  /** A new store's handle. */
  unit(): HotUnit {
    return new Map();
  }

  /** Whether a value of `size` bytes would be kept. */
  fits(size: number): boolean {
    return size <= MAX_HOT_VALUE_BYTES && size <= this.budgetBytes;
  }

  /** Room for the copy of a value about to be kept (see `fits`). */
  alloc(size: number): Uint8Array {
    return this.slab.alloc(size);
  }

  /** The entry kept under `key`: shared, never to be modified. */
  get(unit: HotUnit, key: string): KvEntry | undefined {
    return unit.get(key)?.entry;
  }

  /**
   * Keeps `entry` (whose value came from `alloc`) under `key`, replacing what was kept.
   *
   * @example
   * hot.keep(unit, 'user/42', { value, contentType, version, expiresAt: null, size: value.length });
   */
  keep(unit: HotUnit, key: string, entry: KvEntry): void {
    if (!this.fits(entry.size)) return;
    this.forget(unit, key);
    const held: Held = { unit, key, size: entry.size, entry };
    unit.set(key, held);
    this.queue.push(held);
    this.bytes += held.size;
    while (this.bytes > this.budgetBytes || this.queue.length - this.first > MAX_HOT_ENTRIES) this.evictFirst();
  }

  /** Forgets what is kept under `key`, if anything. */
  forget(unit: HotUnit, key: string): void {
    // Every put calls this; a store with nothing kept (no GETs) skips the lookup.
    if (unit.size === 0) return;
    const held = unit.get(key);
    if (held === undefined) return;
    unit.delete(key);
    held.entry = undefined;
  }

  /** Forgets every entry of a store (it is closing). */
  forgetAll(unit: HotUnit): void {
    for (const held of unit.values()) held.entry = undefined;
    unit.clear();
  }

  /** Value bytes counted against the budget (tests). */
  get size(): number {
    return this.bytes;
  }

  private evictFirst(): void {
    const held = this.queue[this.first++]!;
    this.bytes -= held.size;
    if (held.entry !== undefined) {
      held.unit.delete(held.key);
      held.entry = undefined;
    }
    if (this.first >= 1024 && this.first * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.first);
      this.first = 0;
    }
  }
}
