/**
 * What every route and middleware of one app shares: the engine, the resolved config, the ports,
 * and the per-request variables hono carries (request id, tenant, rate-limit outcome).
 */
import type { Engine, TenantScope } from '../engine/engine.js';
import type { Tenant } from '../engine/tenants/tenant-registry.js';
import type { Clock } from '../ports/clock.js';
import type { ServerConfig } from './config.js';
import type { BackupFn, LoggerPort, MetricsPort } from './ports.js';
import type { PrincipalCache } from './principal-cache.js';
import type { BucketStore, TakeResult } from './rate-limit.js';

export interface AppDeps {
  engine: Engine;
  config: ServerConfig;
  logger: LoggerPort;
  metrics: MetricsPort | undefined;
  buckets: BucketStore;
  clock: Clock;
  startedAt: number;
  assets: ((path: string) => Promise<Response | undefined>) | undefined;
  backup: BackupFn | undefined;
  shutdownSignal: AbortSignal | undefined;
  principals: PrincipalCache;
  /** Adds the CORS headers a non-preflight answer to a request from `origin` carries. */
  corsHeaders: (origin: string | undefined, into: Record<string, string>) => void;
}

export interface AppEnv {
  Variables: {
    requestId: string;
    /** Set by tenant auth. */
    tenant: Tenant;
    /** Set by tenant auth on limited plans; the request middleware turns it into headers. */
    rate: TakeResult | undefined;
    /** Long-polls are slow on purpose: not logged as slow requests. */
    longPoll: boolean;
    /** The response already carries the request id, CORS and rate-limit headers (see `plainResponse`). */
    finished: boolean;
    /** The body is produced while it is sent, its length unknown until the end (backup, usage export): HEAD answers without a Content-Length. */
    streamed: boolean;
    /** The methods an OPTIONS request's path answers, for its preflight answer. */
    allowed: string[];
  };
}

/** Scopes already opened, by the engine's (cached) promise for them. */
const openedScopes = new WeakMap<Promise<TenantScope>, TenantScope>();

/**
 * A tenant's services, synchronously once the engine has opened them: the engine hands out the
 * same promise per open scope (a new one after it closes and reopens a tenant), so its settled
 * value can be remembered by that promise. Always `await` the result.
 *
 * @example
 * const { kv } = await scopeOf(deps.engine, c.get('tenant').id);
 */
export function scopeOf(engine: Engine, tenantId: string): TenantScope | Promise<TenantScope> {
  return settledOrPending(engine.tenant(tenantId));
}

/**
 * As `scopeOf`, for requests that use no stream (KV, vectors): answers as soon as the tenant's KV
 * and vectors are open, without waiting for its partitions to open after a restart
 * (`Engine.services`).
 *
 * @example
 * const { kv } = await servicesOf(deps.engine, c.get('tenant').id);
 */
export function servicesOf(engine: Engine, tenantId: string): TenantScope | Promise<TenantScope> {
  return settledOrPending(engine.services(tenantId));
}

function settledOrPending(pending: Promise<TenantScope>): TenantScope | Promise<TenantScope> {
  const scope = openedScopes.get(pending);
  if (scope !== undefined) return scope;
  return pending.then((opened) => {
    openedScopes.set(pending, opened);
    return opened;
  });
}
