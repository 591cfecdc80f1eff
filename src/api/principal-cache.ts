/**
 * Who a presented API key belongs to, remembered for a few seconds. Resolving a key costs a
 * SHA-256 through WebCrypto (a thread-pool hop in Node) on every request; the hot KV routes cannot
 * afford that. Revocations and plan changes made through this app clear the cache at once; made
 * anywhere else (another process, another isolate), they take effect within `ttlMs`.
 *
 * NOTE: the map is keyed by the key text. A lookup hashes the string before comparing, so its
 * timing says nothing useful about a stored key; the registry behind it still looks keys up by
 * their SHA-256 only.
 */
import type { Clock } from '../ports/clock.js';
import type { Tenant, TenantRegistry } from '../engine/tenants/tenant-registry.js';

export const DEFAULT_PRINCIPAL_TTL_MS = 5_000;
const MAX_ENTRIES = 10_000;

export class PrincipalCache {
  private readonly entries = new Map<string, { tenant: Tenant; until: number }>();
  /**
   * Lookups under way, by key: the requests that find an entry missing or expired share one.
   * Without this, every request arriving while the lookup ran started its own: at 200
   * connections, each expiry sent ~100-200 SHA-256s to the thread pool the log's writes wait on.
   */
  private readonly resolving = new Map<string, Promise<Tenant | undefined>>();
  /** Bumped by `clear`: a lookup that began before a revocation must not cache what it found. */
  private generation = 0;

  constructor(
    private readonly registry: TenantRegistry,
    private readonly clock: Clock,
    private readonly ttlMs = DEFAULT_PRINCIPAL_TTL_MS,
  ) {}

  /**
   * The tenant behind `apiKey`, or undefined for an unknown or revoked key (never cached).
   * A cached key answers synchronously, so always `await` the result.
   *
   * @example
   * const tenant = await principals.tenantFor(key);
   */
  tenantFor(apiKey: string): Tenant | undefined | Promise<Tenant | undefined> {
    const now = this.clock.now();
    const hit = this.entries.get(apiKey);
    if (hit !== undefined && hit.until > now) {
      // Renewed in the background in the entry's last quarter, so a key in steady use never
      // expires: at expiry every request arriving during the lookup (a SHA-256 queued on the
      // thread pool behind the log's writes) waited for it, at 200 connections a stall of the
      // whole load every 5 s. The renewed entry still counts its TTL from the lookup's start.
      if (hit.until - now <= this.ttlMs / 4 && !this.resolving.has(apiKey)) void this.lookUp(apiKey, now);
      return hit.tenant;
    }
    return this.resolving.get(apiKey) ?? this.lookUp(apiKey, now);
  }

  /** Starts the one lookup of `apiKey` that requests share until it settles. */
  private lookUp(apiKey: string, now: number): Promise<Tenant | undefined> {
    const lookup = this.resolve(apiKey, now);
    this.resolving.set(apiKey, lookup);
    const done = (): void => {
      if (this.resolving.get(apiKey) === lookup) this.resolving.delete(apiKey);
    };
    lookup.then(done, done);
    return lookup;
  }

  private async resolve(apiKey: string, now: number): Promise<Tenant | undefined> {
    const generation = this.generation;
    const who = await this.registry.authenticate(apiKey);
    if (generation !== this.generation) return this.tenantFor(apiKey);
    if (who === undefined) {
      this.entries.delete(apiKey);
      return undefined;
    }
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(apiKey, { tenant: who.tenant, until: now + this.ttlMs });
    return who.tenant;
  }

  /** Forgets everything, after a key revocation or a tenant change. */
  clear(): void {
    this.generation++;
    this.entries.clear();
    // A lookup under way may have read the key before the change: later requests start afresh.
    this.resolving.clear();
  }
}
