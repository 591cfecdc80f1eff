/**
 * The engine-wide bound on the KV key caches of every tenant (see kv-store.ts, Slot): one byte
 * budget for all of them, and the idle release of a tenant's cache. Each store keeps its own
 * running total and adds to this one only where it creates or drops a slot, and stamps each call
 * with a use counter: the put path pays a counter increment, never a clock read or a list move.
 * When the total passes the budget, the least recently used stores drop settled keys first (a
 * key with a write in flight is never dropped); a store unused for the idle time drops them all.
 * A dropped key costs its next put one storage read, never a wrong answer.
 */
import type { Scheduler } from '../../ports/clock.js';
import { checkLimit } from '../limits.js';

export interface KeyCacheOptions {
  /** Bytes of every tenant's key cache together (an estimate per key, see KEY_SLOT_BYTES); Infinity for no bound. Default 128 MiB. */
  maxBytes?: number;
  /** A tenant's store unused this long (ms) lets go of its key cache; 0 never. Default 10 minutes. */
  idleMs?: number;
}

/** What a cached key costs besides its key string: the slot object, its map entry and the shared strings' share. */
export const KEY_SLOT_BYTES = 170;
export const DEFAULT_KEY_CACHE_MAX_BYTES = 128 * 2 ** 20;
export const DEFAULT_TENANT_IDLE_MS = 10 * 60_000;
/** The idle check runs this many times per idle period, so a cache is let go of within 1.25 of it. */
const TICKS_PER_IDLE = 4;

/** The estimate a cached key is counted at, from its creation to its drop. */
export function slotBytes(key: string): number {
  return KEY_SLOT_BYTES + key.length;
}

/** What the budget asks of a KV store. */
export interface KeyCacheHolder {
  /** The budget's use counter at the store's latest call. */
  lastUse: number;
  /** Bytes of its cached keys, as counted by `slotBytes`. */
  cachedBytes: number;
  /** Drops settled keys, oldest first, until `bytes` are freed; returns the keys and bytes dropped. */
  dropKeys(bytes: number, secondChances: boolean): { keys: number; bytes: number };
  /** Drops every settled key and anything else that is only a cache; returns the keys dropped. */
  releaseIdle(): number;
}

export interface KeyCacheStats {
  /** Keys in the KV key caches of every tenant. */
  kv_cached_keys: number;
  /** Their bytes, as the budget counts them. */
  kv_cached_key_bytes: number;
  /** Keys dropped since start to stay within a bound (the engine's budget or a tenant's `cachedKeys`). */
  kv_cached_keys_evicted: number;
  /** Keys dropped since start because their tenant went unused for the idle time. */
  kv_cached_keys_idle_released: number;
}

export class KeyCache {
  readonly maxBytes: number;
  readonly idleMs: number;
  /** Bumped by every call of every store, which keeps the value of its latest call (its `lastUse`): an order of use without a clock read. */
  uses = 0;
  keys = 0;
  bytes = 0;
  /** The total that starts a pass: the budget, or above it while in-flight keys kept a pass from freeing enough. */
  passAt: number;
  /** The last pass left the total over the budget (keys in flight): each settled write group passes again. */
  over = false;
  evicted = 0;
  private idleReleased = 0;
  /** Stores holding cached keys. */
  private readonly holders = new Set<KeyCacheHolder>();
  /** `uses` at each of the last idle ticks, oldest first. */
  private readonly ticks: number[] = [];
  private cancelTick: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly scheduler: Scheduler,
    options: KeyCacheOptions = {},
  ) {
    this.maxBytes = checkLimit(options.maxBytes ?? DEFAULT_KEY_CACHE_MAX_BYTES, 'kv.keyCacheMaxBytes');
    this.idleMs = checkLimit(options.idleMs ?? DEFAULT_TENANT_IDLE_MS, 'tenantIdleMs');
    this.passAt = this.maxBytes;
  }

  /** A store's first cached key. */
  hold(store: KeyCacheHolder): void {
    this.holders.add(store);
    if (this.cancelTick === undefined) this.scheduleTick();
  }

  /** A store holds no cached key any more (dropped, or it closed). */
  letGo(store: KeyCacheHolder): void {
    this.holders.delete(store);
    if (this.holders.size === 0) this.stopTicks();
  }

  /**
   * Brings the total down to 7/8 of the budget (so a pass runs once per many new keys), taking
   * from the least recently used stores first. Called by a store about to add a key, once the
   * total is past `passAt`; that key is not in its map yet, so it is never the one dropped.
   */
  pass(): void {
    const target = this.maxBytes - Math.floor(this.maxBytes / 8);
    const stores = [...this.holders].sort((a, b) => a.lastUse - b.lastUse);
    for (const store of stores) {
      if (this.bytes <= target) break;
      // The most recently used store keeps its hot keys (second chance), as its own bound does.
      const dropped = store.dropKeys(this.bytes - target, store === stores[stores.length - 1]);
      this.evicted += dropped.keys;
    }
    // Keys with writes in flight cannot go: rather than a pass per new key while they are many,
    // the next one waits for their writes to settle (see `over`) or another eighth of the budget.
    this.over = this.bytes > this.maxBytes;
    this.passAt = this.over ? this.bytes + Math.floor(this.maxBytes / 8) : this.maxBytes;
  }

  private tick(): void {
    this.cancelTick = undefined;
    if (this.closed) return;
    this.ticks.push(this.uses);
    if (this.ticks.length > TICKS_PER_IDLE) {
      // A store whose latest call came before the tick one idle period ago has been idle that long.
      const idleBefore = this.ticks.shift()!;
      for (const store of [...this.holders]) {
        if (store.lastUse <= idleBefore) this.idleReleased += store.releaseIdle();
      }
    }
    if (this.holders.size > 0) this.scheduleTick();
  }

  private scheduleTick(): void {
    if (this.idleMs === 0 || this.idleMs === Infinity || this.closed) return;
    this.cancelTick = this.scheduler.schedule(Math.max(1, Math.floor(this.idleMs / TICKS_PER_IDLE)), () => this.tick());
  }

  private stopTicks(): void {
    this.cancelTick?.();
    this.cancelTick = undefined;
    // A restarted count measures idleness from its own ticks, not from before the pause.
    this.ticks.length = 0;
  }

  stats(): KeyCacheStats {
    return { kv_cached_keys: this.keys, kv_cached_key_bytes: this.bytes, kv_cached_keys_evicted: this.evicted, kv_cached_keys_idle_released: this.idleReleased };
  }

  /** Stops the idle ticks; the stores drop their own keys as they close. */
  close(): void {
    this.closed = true;
    this.stopTicks();
  }
}
