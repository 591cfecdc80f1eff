/**
 * Who a presented API key belongs to, remembered for a few seconds. Resolving a key costs a
 * SHA-256 through WebCrypto (a thread-pool hop in Node) on every request; the hot KV routes cannot
 * afford that. Revocations and plan changes made through this app take effect at once (they drop
 * the entries they concern). An entry lives `ttlMs`, but a change made elsewhere shows only once
 * the registry behind it reads it too (it keeps keys and tenants without expiry): see tenants.md.
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
  private readonly entries = new Map<string, { tenant: Tenant; keyId: string; until: number }>();
  /**
   * Lookups under way, by key: the requests that find an entry missing or expired share one.
   * Without this, every request arriving while the lookup ran started its own: at 200
   * connections, each expiry sent ~100-200 SHA-256s to the thread pool the log's writes wait on.
   */
  private readonly resolving = new Map<string, Promise<Tenant | undefined>>();
  /**
   * Changes made while lookups were under way, numbered: the key ids revoked and the tenants
   * changed, each with the number of its latest change. A lookup that began before a change to
   * what it found reads the registry again; the others keep their answer (a revocation used to
   * restart every lookup under way). Emptied whenever no lookup is under way.
   */
  private changes = 0;
  private readonly revokedKeys = new Map<string, number>();
  private readonly changedTenants = new Map<string, number>();

  constructor(
    private readonly registry: TenantRegistry,
    private readonly clock: Clock,
    private readonly ttlMs = DEFAULT_PRINCIPAL_TTL_MS,
  ) {}

  /**
   * The tenant behind `apiKey`, or undefined for an unknown or revoked key (never cached).
   * A cached key answers synchronously, so always `await` the result. `now`: the clock's time, when
   * the caller has just read it.
   *
   * @example
   * const tenant = await principals.tenantFor(key);
   */
  tenantFor(apiKey: string, now = this.clock.now()): Tenant | undefined | Promise<Tenant | undefined> {
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
      if (this.resolving.size === 0) {
        this.revokedKeys.clear();
        this.changedTenants.clear();
      }
    };
    lookup.then(done, done);
    return lookup;
  }

  private async resolve(apiKey: string, now: number): Promise<Tenant | undefined> {
    let began: number;
    let who: Awaited<ReturnType<TenantRegistry['authenticate']>>;
    // The registry may have read the key before a revocation (or plan change) that returned
    // while it ran: what it found is stale, and the requests waiting on it must not get it.
    do {
      began = this.changes;
      who = await this.registry.authenticate(apiKey);
    } while (who !== undefined && ((this.revokedKeys.get(who.key_id) ?? 0) > began || (this.changedTenants.get(who.tenant.id) ?? 0) > began));
    if (who === undefined) {
      this.entries.delete(apiKey);
      return undefined;
    }
    // Only a key new to the map grows it: a renewal that replaced its own entry by clearing the
    // whole map sent every other key in steady use to a lookup its requests wait for.
    if (this.entries.size >= MAX_ENTRIES && !this.entries.has(apiKey)) this.entries.clear();
    this.entries.set(apiKey, { tenant: who.tenant, keyId: who.key_id, until: now + this.ttlMs });
    return who.tenant;
  }

  /**
   * Forgets the revoked keys, after the revocation is stored: no request authenticates with them
   * from the next one on, and every other key stays cached.
   *
   * @example
   * await engine.tenants.revokeKey(tenantId, keyId);
   * principals.revoked([keyId]);
   */
  revoked(keyIds: readonly string[]): void {
    const change = ++this.changes;
    const ids = new Set(keyIds);
    for (const [apiKey, entry] of this.entries) if (ids.has(entry.keyId)) this.entries.delete(apiKey);
    if (this.resolving.size > 0) for (const id of ids) this.revokedKeys.set(id, change);
  }

  /** Forgets one tenant's keys, after a change to the tenant (its plan) is stored. */
  tenantChanged(tenantId: string): void {
    const change = ++this.changes;
    for (const [apiKey, entry] of this.entries) if (entry.tenant.id === tenantId) this.entries.delete(apiKey);
    if (this.resolving.size > 0) this.changedTenants.set(tenantId, change);
  }
}
