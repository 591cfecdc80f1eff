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
    if (hit !== undefined && hit.until > now) return hit.tenant;
    return this.resolve(apiKey, now);
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
  }
}
