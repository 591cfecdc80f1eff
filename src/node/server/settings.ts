/**
 * `quartz serve` settings: each one comes from a flag, else a QUARTZ_* environment variable,
 * else the JSON config file (--config / QUARTZ_CONFIG), else its default. The file's schema is
 * documented in docs/configuration.md; a bad file or value is reported in one line naming it.
 */
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import { DEFAULT_PLANS, originProblem, serverConfigSchema } from '../../api/config.js';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { DEFAULT_TENANT_IDLE_MS } from '../../engine/kv/key-cache.js';
import { DEFAULT_IDLE_CLOSE_MS } from '../../engine/vectors/open-collections.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What `quartz serve` runs with, every field resolved. */
export interface ServeSettings {
  host: string;
  port: number;
  dataDir: string;
  logLevel: LogLevel;
  /** Start even with a damaged write-ahead log, dropping the writes behind the damage (see DiskStorageOptions). */
  dropDamagedLog: boolean;
  /** Budget in bytes for open vector collections; undefined leaves the Node home's default (see openQuartz). */
  openCollectionsMaxBytes: number | undefined;
  /** A vector collection unused this long (ms) closes; 0 never. */
  collectionIdleCloseMs: number;
  /** Budget in bytes for every tenant's KV key cache together; undefined leaves the Node home's default (see openQuartz). */
  kvKeyCacheMaxBytes: number | undefined;
  /** A tenant unused this long (ms) lets go of its KV key cache; 0 never. */
  tenantIdleMs: number;
  /** Budget in bytes of request bodies held at once; undefined leaves the default (see defaultRequestBodiesBytes). */
  requestBodiesMaxBytes: number | undefined;
  /** The server config handed to createApp, minus version and admin key (the server adds those). */
  app: z.output<typeof appFields>;
  /** Where each setting came from (flag, env, file or default), for diagnostics and tests. */
  sources: Record<string, 'flag' | 'env' | 'file' | 'default'>;
}

/** Flags as commander parses them (all optional strings). */
export interface ServeFlags {
  host?: string;
  port?: string;
  data?: string;
  config?: string;
  defaultPlan?: string;
  logLevel?: string;
  dropDamagedLog?: boolean;
  openCollectionsMaxBytes?: string;
  collectionIdleCloseMs?: string;
  kvKeyCacheMaxBytes?: string;
  tenantIdleMs?: string;
  requestBodiesMaxBytes?: string;
}

const appFields = serverConfigSchema.omit({ version: true, admin_key_hash: true });

/** The config file: the server's settings plus the app's (plans, limits, CORS, ...). */
export const configFileSchema = appFields
  .extend({
    $schema: z.string().optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(0).max(65535).optional(),
    data_dir: z.string().min(1).optional(),
    log_level: z.enum(LOG_LEVELS).optional(),
    open_collections_max_bytes: z.number().int().min(0).optional(),
    collection_idle_close_ms: z.number().int().min(0).optional(),
    kv_key_cache_max_bytes: z.number().int().min(0).optional(),
    tenant_idle_ms: z.number().int().min(0).optional(),
    request_bodies_max_bytes: z.number().int().min(0).optional(),
  })
  .strict();

export type ConfigFile = z.infer<typeof configFileSchema>;

export const DEFAULTS = { host: '127.0.0.1', port: 8787, dataDir: './.quartz', logLevel: 'info' as LogLevel, defaultPlan: 'unlimited', collectionIdleCloseMs: DEFAULT_IDLE_CLOSE_MS, tenantIdleMs: DEFAULT_TENANT_IDLE_MS };

function bad(message: string): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, message);
}

function issuesLine(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(top level)'}: ${issueText(i)}`).join('; ');
}

/** The issue's message; for a bad record key (a plan name), what is wrong with the key, not just "Invalid key in record". */
function issueText(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_key' && issue.issues.length > 0) return `not a valid name: ${issue.issues[0]!.message}`;
  return issue.message;
}

/**
 * Reads and checks a config file; throws one INVALID_ARGUMENT line naming the file and field.
 *
 * @example
 * const file = await readConfigFile('./quartz.json');
 */
export async function readConfigFile(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw bad(`config file ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let json: unknown;
  try {
    // Editors on Windows save UTF-8 with a byte order mark, which JSON.parse refuses with an error
    // quoting an invisible character; RFC 8259 §8.1 lets a parser ignore it, as the API's bodies do.
    json = JSON.parse(text.startsWith('\uFEFF') ? text.slice(1) : text);
  } catch (err) {
    throw bad(`config file ${path}: not valid JSON (${(err as Error).message})`);
  }
  const parsed = configFileSchema.safeParse(json);
  if (!parsed.success) throw bad(`config file ${path}: ${issuesLine(parsed.error.issues)}`);
  return parsed.data;
}

function parsePort(value: string, subject: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw bad(`${subject} must be a port number 0-65535, got '${value}'`);
  return Number(value);
}

function parseBool(value: string, subject: string): boolean {
  if (/^(1|true|on|yes)$/i.test(value)) return true;
  if (/^(0|false|off|no)$/i.test(value)) return false;
  throw bad(`${subject} must be true or false, got '${value}'`);
}

/** A comma-separated list; like the file's `cors_origins`, it must name at least one origin, and only origins. */
function parseOrigins(value: string, subject: string): string[] {
  const origins = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (origins.length === 0) throw bad(`${subject} must name at least one origin (comma-separated), got '${value}'`);
  for (const origin of origins) {
    const problem = originProblem(origin);
    if (problem !== undefined) throw bad(`${subject}: ${problem}`);
  }
  return origins;
}

function parseCount(value: string, subject: string): number {
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) throw bad(`${subject} must be a whole number, got '${value}'`);
  return Number(value);
}

function parseLevel(value: string, subject: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) throw bad(`${subject} must be one of ${LOG_LEVELS.join(', ')}, got '${value}'`);
  return value as LogLevel;
}

type Env = Record<string, string | undefined>;

/**
 * Resolves every setting: flag > QUARTZ_* env > config file > default.
 *
 * @example
 * const settings = await resolveServeSettings({ port: '9000' }, process.env);
 */
export async function resolveServeSettings(flags: ServeFlags, env: Env): Promise<ServeSettings> {
  const configPath = flags.config ?? nonEmpty(env.QUARTZ_CONFIG);
  const file: ConfigFile = configPath !== undefined ? await readConfigFile(configPath) : {};
  const sources: ServeSettings['sources'] = {};

  function pick<T>(name: string, flag: string | undefined, envName: string, fromFile: T | undefined, parse: (v: string, subject: string) => T, fallback: T): T {
    if (flag !== undefined) {
      // An empty --host would listen on every interface, an empty --data in the working directory.
      if (flag === '') throw bad(`--${name} must not be empty`);
      sources[name] = 'flag';
      return parse(flag, `--${name}`);
    }
    const e = nonEmpty(env[envName]);
    if (e !== undefined) {
      sources[name] = 'env';
      return parse(e, envName);
    }
    if (fromFile !== undefined) {
      sources[name] = 'file';
      return fromFile;
    }
    sources[name] = 'default';
    return fallback;
  }
  const text = (v: string) => v;

  const host = pick('host', flags.host, 'QUARTZ_HOST', file.host, text, DEFAULTS.host);
  const port = pick('port', flags.port, 'QUARTZ_PORT', file.port, parsePort, DEFAULTS.port);
  const dataDir = pick('data', flags.data, 'QUARTZ_DATA', file.data_dir, text, DEFAULTS.dataDir);
  const logLevel = pick('log-level', flags.logLevel, 'QUARTZ_LOG_LEVEL', file.log_level, parseLevel, DEFAULTS.logLevel);
  // A flag or the environment only, not the config file: it is for one start after damage, and a
  // standing setting would drop writes silently the next time.
  // (commander gives a flag without a value as `true`.)
  const dropDamagedLog = pick('drop-damaged-log', flags.dropDamagedLog === true ? 'true' : undefined, 'QUARTZ_DROP_DAMAGED_LOG', undefined, parseBool, false);
  const openCollectionsMaxBytes = pick<number | undefined>(
    'open-collections-max-bytes',
    flags.openCollectionsMaxBytes,
    'QUARTZ_OPEN_COLLECTIONS_MAX_BYTES',
    file.open_collections_max_bytes,
    parseCount,
    undefined,
  );
  const collectionIdleCloseMs = pick('collection-idle-close-ms', flags.collectionIdleCloseMs, 'QUARTZ_COLLECTION_IDLE_CLOSE_MS', file.collection_idle_close_ms, parseCount, DEFAULTS.collectionIdleCloseMs);
  const kvKeyCacheMaxBytes = pick<number | undefined>(
    'kv-key-cache-max-bytes',
    flags.kvKeyCacheMaxBytes,
    'QUARTZ_KV_KEY_CACHE_MAX_BYTES',
    file.kv_key_cache_max_bytes,
    parseCount,
    undefined,
  );
  const tenantIdleMs = pick('tenant-idle-ms', flags.tenantIdleMs, 'QUARTZ_TENANT_IDLE_MS', file.tenant_idle_ms, parseCount, DEFAULTS.tenantIdleMs);
  const requestBodiesMaxBytes = pick<number | undefined>(
    'request-bodies-max-bytes',
    flags.requestBodiesMaxBytes,
    'QUARTZ_REQUEST_BODIES_MAX_BYTES',
    file.request_bodies_max_bytes,
    parseCount,
    undefined,
  );
  const default_plan = pick('default-plan', flags.defaultPlan, 'QUARTZ_DEFAULT_PLAN', file.default_plan, text, DEFAULTS.defaultPlan);
  const plans = file.plans ?? DEFAULT_PLANS;
  if (!Object.hasOwn(plans, default_plan)) throw bad(unknownPlan(default_plan, sources['default-plan']!, configPath, Object.keys(plans)));
  const registration_enabled = pick('registration', undefined, 'QUARTZ_REGISTRATION', file.registration_enabled, parseBool, true);
  const cors_origins = pick(
    'cors-origins',
    undefined,
    'QUARTZ_CORS_ORIGINS',
    file.cors_origins,
    parseOrigins,
    ['*'],
  );
  const app = {
    plans: file.plans,
    default_plan,
    registration_enabled,
    registrations_per_minute: file.registrations_per_minute,
    cors_origins,
    body_limits: file.body_limits,
    long_poll_max_ms: file.long_poll_max_ms,
  };
  return { host, port, dataDir, logLevel, dropDamagedLog, openCollectionsMaxBytes, collectionIdleCloseMs, kvKeyCacheMaxBytes, tenantIdleMs, requestBodiesMaxBytes, app, sources };
}

/** Names where the bad default plan came from, so the user knows what to change. */
function unknownPlan(plan: string, source: ServeSettings['sources'][string], configPath: string | undefined, names: string[]): string {
  const among = `is not one of the plans (${names.join(', ')})`;
  if (source === 'flag') return `--default-plan '${plan}' ${among}`;
  if (source === 'env') return `QUARTZ_DEFAULT_PLAN '${plan}' ${among}`;
  if (source === 'file') return `config file ${configPath}: default_plan: '${plan}' ${among}`;
  return `config file ${configPath}: plans: the default plan '${plan}' is not among them (${names.join(', ')}); add it or set default_plan`;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

/**
 * True when a listening socket's address (numeric, as `server.address()` gives it) is one only
 * this machine can reach: 127.0.0.0/8, ::1, or 127.0.0.0/8 mapped into IPv6 (`::ffff:127.0.0.1`).
 * Asked of the address bound, not of the `--host` typed, every spelling of it agrees: `127.1`,
 * `LOCALHOST`, `0:0:0:0:0:0:0:1`, or a host name that resolves to loopback.
 *
 * @example
 * isLoopback('::ffff:127.0.0.1'); // true
 * isLoopback('0.0.0.0'); // false
 */
export function isLoopback(address: string): boolean {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  if (isIPv4(bare)) return bare.startsWith('127.');
  if (!isIPv6(bare)) return false;
  // The URL parser writes an IPv6 address one way: `::ffff:127.0.0.1` becomes `::ffff:7f00:1`.
  const canonical = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  return canonical === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(canonical);
}
