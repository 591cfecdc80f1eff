/**
 * The HTTP app's settings: plans and their rate limits, the default plan, registration on/off,
 * CORS origins, body limits per route kind, the admin key (as a hash), the long-poll cap and the
 * version. Homes build it from their own sources (flags, env, files, bindings) and pass it to
 * `createApp`; `resolveServerConfig` fills defaults and rejects bad values with a clear message.
 */
import { z } from 'zod';
import { ErrorCode, QuartzError } from '../core/errors.js';
import { formatIssues } from './validation.js';

export interface PlanConfig {
  /** Token-bucket size and refill per minute; null means unlimited (no rate-limit headers). */
  requests_per_minute: number | null;
}

/** Largest request body per route kind, in bytes. */
export interface BodyLimits {
  /** JSON bodies of ordinary routes (topics, collections, admin, groups…). */
  json: number;
  /** `PUT /v1/kv/:key` raw values. */
  kv: number;
  /** `POST /v1/topics/:t/records`. */
  records: number;
  /** `POST /v1/collections/:c/upsert` and `/query`. */
  vectors: number;
}

export interface ServerConfig {
  version: string;
  plans: Record<string, PlanConfig>;
  /** Plan given to `POST /v1/auth/register` and to admin-created tenants without one. */
  default_plan: string;
  registration_enabled: boolean;
  /** Registrations the whole server takes per minute (one token bucket); null: no limit. */
  registrations_per_minute: number | null;
  /** Allowed CORS origins; `['*']` allows any (the API uses bearer keys, never cookies). */
  cors_origins: string[];
  body_limits: BodyLimits;
  /** SHA-256 hex of the admin key (see `hashKey`); null turns the admin routes off (401). */
  admin_key_hash: string | null;
  /** Upper bound on a consume's `max_wait_ms`. */
  long_poll_max_ms: number;
}

export const DEFAULT_PLANS: Record<string, PlanConfig> = {
  free: { requests_per_minute: 100 },
  pro: { requests_per_minute: 10_000 },
  unlimited: { requests_per_minute: null },
};

const MiB = 1024 * 1024;

export const DEFAULT_BODY_LIMITS: BodyLimits = {
  json: 1 * MiB,
  kv: 25 * MiB,
  records: 16 * MiB,
  vectors: 32 * MiB,
};

export const DEFAULT_LONG_POLL_MAX_MS = 30_000;
/** Open registration takes no key, so a flood of it is limited server-wide rather than per tenant. */
export const DEFAULT_REGISTRATIONS_PER_MINUTE = 60;

/**
 * Why `value` can never equal a browser's `Origin` header, or undefined when it can: `*`, `null`
 * (what sandboxed pages and file: URLs send) or a serialized origin, `scheme://host[:port]`. For
 * http and https that is the URL standard's form (lower-case host, no default port, no path);
 * other schemes (`chrome-extension://…`, `capacitor://localhost`) are taken as written, without a
 * path. Origins are compared as exact strings, so `https://app.example.com/` or
 * `app.example.com` in the config allowed nothing, silently: only the browser reported a CORS
 * failure.
 *
 * @example
 * originProblem('https://App.example.com/'); // "... did you mean 'https://app.example.com'?"
 */
export function originProblem(value: string): string | undefined {
  if (value === '*' || value === 'null') return undefined;
  const form = 'scheme://host[:port] as browsers send it in Origin';
  const notOne = `'${value}' is not an origin (${form}, e.g. https://app.example.com)`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return notOne;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return /^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]+$/.test(value) ? undefined : notOne;
  return url.origin === value ? undefined : `'${value}' is not an origin (${form}): did you mean '${url.origin}'?`;
}

const corsOrigin = z.string().superRefine((value, ctx) => {
  const problem = originProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

const planName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be 1-64 lower-case letters, digits, - or _');
const byteLimit = z.number().int().min(1).max(2 ** 32);

/** The config as a homes' file or binding gives it: everything but `version` may be left out. */
export const serverConfigSchema = z
  .object({
    version: z.string().min(1),
    plans: z
      .unknown()
      // A record drops a '__proto__' key silently (JSON.parse makes it an own key): refuse it as the name it is.
      .refine((v) => typeof v !== 'object' || v === null || !Object.hasOwn(v, '__proto__'), { message: "'__proto__' is not a plan name: names must be 1-64 lower-case letters, digits, - or _" })
      .pipe(z.record(planName, z.object({ requests_per_minute: z.number().int().min(1).nullable() }).strict()))
      .optional(),
    default_plan: planName.optional(),
    registration_enabled: z.boolean().optional(),
    registrations_per_minute: z.number().int().min(1).nullable().optional(),
    cors_origins: z.array(corsOrigin).min(1).optional(),
    body_limits: z.object({ json: byteLimit, kv: byteLimit, records: byteLimit, vectors: byteLimit }).partial().strict().optional(),
    admin_key_hash: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits (SHA-256)').nullable().optional(),
    long_poll_max_ms: z.number().int().min(0).max(300_000).optional(),
  })
  .strict();

export type ServerConfigInput = z.input<typeof serverConfigSchema>;

/**
 * Fills defaults and checks the config; throws INVALID_ARGUMENT naming the bad field.
 *
 * @example
 * const config = resolveServerConfig({ version: '0.1.0', default_plan: 'unlimited', admin_key_hash: await hashKey(adminKey) });
 */
export function resolveServerConfig(input: ServerConfigInput): ServerConfig {
  const parsed = serverConfigSchema.safeParse(input);
  if (!parsed.success) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `server config: ${formatIssues(parsed.error.issues)}`);
  const c = parsed.data;
  // Without a prototype, so a plan name such as 'constructor' (a valid name) is found only when
  // configured: `in` and lookups by a tenant's plan must not reach Object.prototype.
  const plans: Record<string, PlanConfig> = Object.assign(Object.create(null) as Record<string, PlanConfig>, c.plans ?? DEFAULT_PLANS);
  const default_plan = c.default_plan ?? 'unlimited';
  if (!(default_plan in plans)) {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `server config: default_plan '${default_plan}' is not one of the plans (${Object.keys(plans).join(', ')})`);
  }
  return {
    version: c.version,
    plans,
    default_plan,
    registration_enabled: c.registration_enabled ?? true,
    registrations_per_minute: c.registrations_per_minute === undefined ? DEFAULT_REGISTRATIONS_PER_MINUTE : c.registrations_per_minute,
    cors_origins: c.cors_origins ?? ['*'],
    body_limits: { ...DEFAULT_BODY_LIMITS, ...c.body_limits },
    admin_key_hash: c.admin_key_hash ?? null,
    long_poll_max_ms: c.long_poll_max_ms ?? DEFAULT_LONG_POLL_MAX_MS,
  };
}

const utf8 = new TextEncoder();

/**
 * SHA-256 of a key's text as lower-case hex: how the admin key is kept in the config.
 *
 * @example
 * const admin_key_hash = await hashKey(process.env.QUARTZ_ADMIN_KEY!);
 */
export async function hashKey(key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', utf8.encode(key)));
  let hex = '';
  for (let i = 0; i < digest.length; i++) hex += digest[i]!.toString(16).padStart(2, '0');
  return hex;
}
