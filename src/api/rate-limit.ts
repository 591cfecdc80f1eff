/**
 * Per-tenant token buckets. A bucket holds up to the plan's requests-per-minute and refills at
 * that rate continuously; a request takes one token. The store is a port: the memory store
 * serves one process, the Worker home backs it with a Durable Object. `takeToken` is the pure
 * arithmetic both share.
 */
export interface BucketState {
  tokens: number;
  /** When `tokens` was last computed, ms since the epoch. */
  at: number;
}

export interface TakeResult {
  allowed: boolean;
  limit: number;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Seconds until the bucket is full again (X-RateLimit-Reset). */
  resetSeconds: number;
  /** Seconds until one token is available (Retry-After); 0 when allowed. */
  retryAfterSeconds: number;
}

export interface BucketStore {
  /** Takes one token from `key`'s bucket of `capacity` per minute, as of `now`. */
  take(key: string, capacity: number, now: number): TakeResult | Promise<TakeResult>;
}

const MINUTE_MS = 60_000;

/**
 * Refills `state` to `now`, takes a token if there is one, and says what the headers should be.
 * Mutates `state` (a fresh bucket starts full).
 *
 * @example
 * const state = { tokens: 100, at: Date.now() };
 * const { allowed, remaining } = takeToken(state, 100, Date.now());
 */
export function takeToken(state: BucketState, capacity: number, now: number): TakeResult {
  const perMs = capacity / MINUTE_MS;
  const elapsed = Math.max(0, now - state.at);
  // A plan change can lower the capacity below what the bucket holds.
  let tokens = Math.min(capacity, state.tokens + elapsed * perMs);
  const allowed = tokens >= 1;
  if (allowed) tokens -= 1;
  state.tokens = tokens;
  state.at = now;
  return {
    allowed,
    limit: capacity,
    remaining: Math.floor(tokens),
    resetSeconds: Math.ceil((capacity - tokens) / perMs / 1000),
    retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / perMs / 1000)),
  };
}

/** Buckets remembered before full ones are forgotten (a full bucket is the same as none). */
const DEFAULT_MAX_BUCKETS = 100_000;

/**
 * Buckets in this process's memory.
 *
 * @example
 * const buckets = new MemoryBucketStore();
 * const r = buckets.take('t_123', 100, Date.now());
 * if (!r.allowed) return tooManyRequests(r.retryAfterSeconds);
 */
export class MemoryBucketStore implements BucketStore {
  private readonly buckets = new Map<string, BucketState & { capacity: number }>();

  constructor(private readonly maxBuckets = DEFAULT_MAX_BUCKETS) {}

  take(key: string, capacity: number, now: number): TakeResult {
    let state = this.buckets.get(key);
    if (state === undefined) {
      if (this.buckets.size >= this.maxBuckets) this.forgetFull(now);
      state = { tokens: capacity, at: now, capacity };
      this.buckets.set(key, state);
    }
    state.capacity = capacity;
    return takeToken(state, capacity, now);
  }

  /** How many buckets are held (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private forgetFull(now: number): void {
    for (const [key, s] of this.buckets) {
      if (s.tokens + (now - s.at) * (s.capacity / MINUTE_MS) >= s.capacity) this.buckets.delete(key);
    }
    // Every bucket is in use: drop the oldest rather than grow without bound.
    if (this.buckets.size >= this.maxBuckets) this.buckets.delete(this.buckets.keys().next().value!);
  }
}
