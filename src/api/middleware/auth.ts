/**
 * Authentication: tenant keys (`Authorization: Bearer` or `X-API-Key`) resolve through the
 * registry, which looks keys up by SHA-256 hash, so no secret is compared byte by byte; the admin
 * key is hashed and compared with the configured hash in constant time. Tenant auth also takes a
 * rate-limit token for the tenant's plan and meters the call.
 */
import type { Context } from 'hono';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import type { Tenant } from '../../engine/tenants/tenant-registry.js';
import { hashKey } from '../config.js';
import type { AppDeps, AppEnv } from '../context.js';
import type { TakeResult } from '../rate-limit.js';
import type { Guard } from './request.js';

/** The request headers by lower-case name, as hono's `c.req.header(name)` reads them. */
export interface HeaderReader {
  header(name: string): string | undefined;
}

/**
 * What tenant auth reads and sets: a hono Context, or the Node home's direct request state
 * (see `RequestPipeline.direct`).
 */
export interface AuthContext {
  req: HeaderReader;
  set: Context<AppEnv>['set'];
}

/** Tenant auth as a guard; it runs on either kind of context. */
export type AuthGuard = (c: AuthContext) => void | Promise<void>;

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * The usual form, "Bearer " and one or more printable ASCII characters other than space. NOTE:
 * V8 runs this as compiled code over the string's bytes, about half the time of a charCodeAt loop.
 */
const PLAIN_BEARER = /^Bearer [!-~]+$/;

/**
 * Keys read from recent Authorization values of the usual form, by value. NOTE: a client sends
 * the same value with every request. Reading it again from the kept key skips the pattern test
 * and the slice, and the principal cache then finds the kept key string by the hash V8 stored on
 * it, where a fresh slice was hashed anew per request (~60 ns per request). Like the principal
 * cache, a lookup hashes the value before comparing it with anything.
 */
const readKeys = new Map<string, string>();
const MAX_READ_KEYS = 1024;

/** The key in an Authorization header's value, or undefined when it holds no Bearer key. */
function bearerKey(auth: string): string | undefined {
  const known = readKeys.get(auth);
  if (known !== undefined) return known;
  // The usual form first: a test, without BEARER's match array.
  if (PLAIN_BEARER.test(auth)) {
    const key = auth.slice(7);
    if (readKeys.size >= MAX_READ_KEYS) readKeys.clear();
    readKeys.set(auth, key);
    return key;
  }
  return BEARER.exec(auth)?.[1];
}

/**
 * The key a request presents, from either header. An Authorization header that holds no Bearer
 * key, or both headers naming different keys, present none: which credential the client meant
 * is unknown, so neither is taken.
 */
export function presentedKey(req: HeaderReader): string | undefined {
  const auth = req.header('authorization');
  const other = req.header('x-api-key')?.trim() || undefined;
  if (auth === undefined) return other;
  const key = bearerKey(auth);
  return other === undefined || other === key ? key : undefined;
}

function unauthorized(message: string): QuartzError {
  return new QuartzError(ErrorCode.UNAUTHORIZED, message);
}

const MISSING = 'missing API key: send "Authorization: Bearer <key>" or "X-API-Key: <key>"';
/** An Authorization header with no key to read: another scheme, no key, or the header sent twice. */
const MALFORMED = 'the Authorization header must be "Bearer <key>" with one key, sent once (or send "X-API-Key: <key>")';

const TWO_KEYS = 'the Authorization and X-API-Key headers name different keys: send one key';

/** Why a request presents no key, told apart from a request that sent no credentials at all. */
function noKey(req: HeaderReader, who: 'API' | 'admin'): QuartzError {
  const auth = req.header('authorization');
  if (auth !== undefined) return unauthorized(bearerKey(auth) === undefined ? MALFORMED : TWO_KEYS);
  return unauthorized(who === 'API' ? MISSING : MISSING.replace('API key', 'admin key'));
}

/** Equal-length strings compared without an early exit. */
export function constantTimeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0);
  return diff === 0;
}

/**
 * Resolves the presented key to its tenant, takes a rate-limit token on limited plans and meters
 * the call. Synchronous while the key is cached and the bucket store is in memory.
 *
 * @example
 * router.add('get', '/v1/usage', doc, tenantAuth(deps), handler);
 */
export function tenantAuth(deps: AppDeps): AuthGuard {
  const { engine, config, buckets, clock } = deps;
  const fallback = config.plans[config.default_plan]!;
  const limited = (tenant: Tenant, rpm: number, rate: TakeResult, c: AuthContext, now: number): void => {
    c.set('rate', rate);
    if (!rate.allowed) {
      throw new QuartzError(
        ErrorCode.RATE_LIMITED,
        `rate limit of ${rpm} requests per minute exceeded (plan '${tenant.plan}'); retry in ${rate.retryAfterSeconds} s`,
      );
    }
    engine.context.usage.add(tenant.id, 'api_calls', 1, now);
  };
  const admit = (c: AuthContext, tenant: Tenant | undefined, now: number): void | Promise<void> => {
    if (tenant === undefined) throw unauthorized('unknown or revoked API key');
    c.set('tenant', tenant);
    // A tenant on a plan the config no longer lists gets the default plan's limits.
    const rpm = (config.plans[tenant.plan] ?? fallback).requests_per_minute;
    if (rpm === null) {
      engine.context.usage.add(tenant.id, 'api_calls', 1, now);
      return;
    }
    const rate = buckets.take(tenant.id, rpm, now);
    if (rate instanceof Promise) return rate.then((r) => limited(tenant, rpm, r, c, clock.now()));
    limited(tenant, rpm, rate, c, now);
  };
  return (c: AuthContext) => {
    const key = presentedKey(c.req);
    if (key === undefined) throw noKey(c.req, 'API');
    // One clock read for the principal cache, the rate limit and the meter (each read costs
    // ~60 ns on a VM's clock); read again after a wait.
    const now = clock.now();
    const tenant = deps.principals.tenantFor(key, now);
    if (tenant instanceof Promise) return tenant.then((t) => admit(c, t, clock.now()));
    return admit(c, tenant, now);
  };
}

/**
 * @example
 * router.add('post', '/v1/admin/tenants', doc, adminAuth(deps), handler);
 */
export function adminAuth(deps: AppDeps): Guard {
  const expected = deps.config.admin_key_hash;
  return async (c) => {
    const key = presentedKey(c.req);
    if (key === undefined) throw noKey(c.req, 'admin');
    if (expected === null) throw unauthorized('admin routes are off: this server has no admin key configured');
    if (!constantTimeEqual(await hashKey(key), expected)) throw unauthorized('wrong admin key');
  };
}
