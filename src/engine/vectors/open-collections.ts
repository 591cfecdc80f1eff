/**
 * The engine-wide bound on open vector collections. Each open collection holds a wasm instance
 * whose memory never shrinks plus its ids, metadata and values in the JS heap; this keeps the
 * collections of every tenant in one least-recently-used list and asks the least recently used
 * to close when their bytes pass the budget, or when one has gone unused for the idle time.
 * Closing is the store's job (VectorStore.evict): it refuses while the collection has an
 * operation in flight, and the next use reopens it.
 */
import type { Clock, Scheduler } from '../../ports/clock.js';
import { checkLimit } from '../limits.js';

export interface OpenCollectionsOptions {
  /** Bytes of open collections (wasm memory plus an estimate of their JS heap) to stay within. Default 256 MiB. */
  maxOpenBytes?: number;
  /** A collection unused this long (ms) closes; 0 never. Default 10 minutes. */
  idleCloseMs?: number;
}

export const DEFAULT_IDLE_CLOSE_MS = 10 * 60_000;
/** The engine's default budget; the Node home sizes its own from the machine (see docs/vectors.md). */
export const DEFAULT_MAX_OPEN_BYTES = 256 * 2 ** 20;

/** One open collection as the budget sees it; the store owns it and keeps it in its own map. */
export class Resident {
  /** Neighbours in the LRU list: `older` towards the least recently used. */
  older: Resident | undefined;
  newer: Resident | undefined;
  listed = false;
  bytes = 0;
  lastUsed = 0;

  constructor(
    /** Closes the collection unless it is busy; true if it began to close. */
    readonly evict: () => boolean,
    /** Its current size in bytes. */
    readonly measure: () => number,
  ) {}
}

export interface OpenCollectionsStats {
  open_collections: number;
  open_collection_bytes: number;
  /** Collections closed since start to stay within the byte budget. */
  collection_evictions: number;
  /** Collections closed since start for going unused for the idle time. */
  collection_idle_closes: number;
}

export class OpenCollections {
  readonly maxBytes: number;
  readonly idleCloseMs: number;
  private oldest: Resident | undefined;
  private newest: Resident | undefined;
  private count = 0;
  private total = 0;
  private evictions = 0;
  private idleCloses = 0;
  private cancelSweep: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    options: OpenCollectionsOptions = {},
  ) {
    this.maxBytes = checkLimit(options.maxOpenBytes ?? DEFAULT_MAX_OPEN_BYTES, 'vectors.maxOpenBytes');
    this.idleCloseMs = checkLimit(options.idleCloseMs ?? DEFAULT_IDLE_CLOSE_MS, 'vectors.idleCloseMs');
  }

  /** Lists a collection that just opened as the most recently used, then keeps within the budget. */
  add(r: Resident): void {
    if (this.closed || r.listed) return;
    r.listed = true;
    r.bytes = r.measure();
    this.total += r.bytes;
    this.count++;
    this.link(r);
    if (this.cancelSweep === undefined) this.scheduleSweep(this.idleCloseMs);
    this.settle();
  }

  /** Takes a collection out (it closed, or is being deleted); not counted as an eviction. */
  remove(r: Resident): void {
    if (!r.listed) return;
    this.unlink(r);
    r.listed = false;
    this.total -= r.bytes;
    this.count--;
    if (this.count === 0) this.stopSweep();
  }

  /** Marks a use: the collection becomes the most recently used. Cheap: the query path calls it. */
  touch(r: Resident): void {
    r.lastUsed = this.clock.now();
    if (this.newest === r || !r.listed) return;
    this.unlink(r);
    this.link(r);
  }

  /** After an operation that may have grown the collection: re-measures it and keeps within the budget. */
  used(r: Resident): void {
    if (!r.listed) return;
    this.touch(r);
    const bytes = r.measure();
    this.total += bytes - r.bytes;
    r.bytes = bytes;
    this.settle();
  }

  /**
   * Closes least recently used collections until the open ones fit the budget. Busy ones are
   * passed over (the release of their operation settles again), and the most recently used one
   * always stays, so a collection larger than the whole budget still serves its users rather
   * than reopening for every call.
   */
  settle(): void {
    let r = this.oldest;
    while (this.total > this.maxBytes && r !== undefined && r !== this.newest) {
      const next = r.newer;
      if (r.evict()) {
        this.remove(r);
        this.evictions++;
      }
      r = next;
    }
  }

  private sweep(): void {
    this.cancelSweep = undefined;
    if (this.closed) return;
    const now = this.clock.now();
    let r = this.oldest;
    // The list is in order of last use, so the expired ones come first.
    while (r !== undefined && r.lastUsed + this.idleCloseMs <= now) {
      const next = r.newer;
      if (r.evict()) {
        this.remove(r);
        this.idleCloses++;
      }
      r = next;
    }
    if (this.count === 0) return;
    // Next when the oldest left expires; a busy expired one is looked at again a full period later.
    const wait = r === undefined ? this.idleCloseMs : r.lastUsed + this.idleCloseMs - now;
    this.scheduleSweep(Math.max(wait, Math.min(this.idleCloseMs, 1000)));
  }

  private scheduleSweep(delayMs: number): void {
    if (this.idleCloseMs === 0 || this.idleCloseMs === Infinity || this.closed) return;
    this.cancelSweep = this.scheduler.schedule(delayMs, () => this.sweep());
  }

  private stopSweep(): void {
    this.cancelSweep?.();
    this.cancelSweep = undefined;
  }

  private link(r: Resident): void {
    r.older = this.newest;
    r.newer = undefined;
    if (this.newest !== undefined) this.newest.newer = r;
    else this.oldest = r;
    this.newest = r;
  }

  private unlink(r: Resident): void {
    if (r.older !== undefined) r.older.newer = r.newer;
    else this.oldest = r.newer;
    if (r.newer !== undefined) r.newer.older = r.older;
    else this.newest = r.older;
    r.older = r.newer = undefined;
  }

  stats(): OpenCollectionsStats {
    return { open_collections: this.count, open_collection_bytes: this.total, collection_evictions: this.evictions, collection_idle_closes: this.idleCloses };
  }

  /** Stops the idle sweep; the stores close their own collections. */
  close(): void {
    this.closed = true;
    this.stopSweep();
  }
}
