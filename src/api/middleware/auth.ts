/**
 * Authentication: tenant keys (`Authorization: Bearer` or `X-API-Key`) resolve through the
 * registry, which looks keys up by SHA-256 hash, so no secret is compared byte by byte; the admin
 * key is hashed and compared with the configured hash in constant time. Tenant auth also takes a
 * rate-limit token for the tenant's plan and meters the call.
 */
import type { MiddlewareHandler } from 'hono';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { hashKey } from '../config.js';
import type { AppDeps, AppEnv } from '../context.js';

/** The key a request presents, from either header. */
export function presentedKey(headers: Headers): string | undefined {
  const auth = headers.get('authorization');
  if (auth !== null) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m !== null) return m[1];
  }
  return headers.get('x-api-key')?.trim() || undefined;
}

function unauthorized(message: string): QuartzError {
  return new QuartzError(ErrorCode.UNAUTHORIZED, message);
}

const MISSING = 'missing API key: send "Authorization: Bearer <key>" or "X-API-Key: <key>"';

/** Equal-length strings compared without an early exit. */
export function constantTimeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0);
  return diff === 0;
}

/**
 * @example
 * router.add('get', '/v1/usage', doc, tenantAuth(deps), handler);
 */
export function tenantAuth(deps: AppDeps): MiddlewareHandler<AppEnv> {
  const { engine, config, buckets, clock } = deps;
  const fallback = config.plans[config.default_plan]!;
  return async (c, next) => {
    const key = presentedKey(c.req.raw.headers);
    if (key === undefined) throw unauthorized(MISSING);
    const tenant = await deps.principals.tenantFor(key);
    if (tenant === undefined) throw unauthorized('unknown or revoked API key');
    c.set('tenant', tenant);
    // A tenant on a plan the config no longer lists gets the default plan's limits.
    const rpm = (config.plans[tenant.plan] ?? fallback).requests_per_minute;
    if (rpm !== null) {
      const rate = await buckets.take(tenant.id, rpm, clock.now());
      c.set('rate', rate);
      if (!rate.allowed) {
        throw new QuartzError(
          ErrorCode.RATE_LIMITED,
          `rate limit of ${rpm} requests per minute exceeded (plan '${tenant.plan}'); retry in ${rate.retryAfterSeconds} s`,
        );
      }
    }
    engine.context.usage.add(tenant.id, 'api_calls', 1);
    await next();
  };
}

/**
 * @example
 * router.add('post', '/v1/admin/tenants', doc, adminAuth(deps), handler);
 */
export function adminAuth(deps: AppDeps): MiddlewareHandler<AppEnv> {
  const expected = deps.config.admin_key_hash;
  return async (c, next) => {
    const key = presentedKey(c.req.raw.headers);
    if (key === undefined) throw unauthorized(MISSING.replace('API key', 'admin key'));
    if (expected === null) throw unauthorized('admin routes are off: this server has no admin key configured');
    if (!constantTimeEqual(await hashKey(key), expected)) throw unauthorized('wrong admin key');
    await next();
  };
}
