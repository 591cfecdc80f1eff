/**
 * The tenant registry on the `tenants` unit: tenants, their API keys and (through UsageMeter)
 * their usage. API keys are `qz_` + 64 hex, shown once and stored only as SHA-256 hashes; a
 * request is authenticated by hashing the presented key and looking the hash up, so the secret
 * is never compared byte by byte and nothing stored can be replayed as a key.
 *
 * Keys in the unit (UTF-8), beside UsageMeter's u/, g/, m/:
 *   t/<tenantId>            → JSON Tenant
 *   e/<email, lower-cased>  → tenantId (emails are unique)
 *   h/<sha-256 hex>         → JSON { tenant_id, key_id }: the authentication index
 *   k/<tenantId>/<keyId>    → JSON { key_id, hash, created_at }: the tenant's keys
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { showValue } from '../../core/show-value.js';
import type { Clock } from '../../ports/clock.js';
import { prefixEnd } from '../../ports/storage-checks.js';
import type { BatchOp, OrderedKV, StorageProvider } from '../../ports/storage.js';
import type { EngineContext, UsageMetric, UsageRecorder } from '../context.js';
import { refuseUnknownOptions } from '../known-options.js';
import { UsageMeter, type TenantUsage, type UsageFigures, type UsageRow } from './usage-meter.js';

export const DEFAULT_PLAN = 'free';
const API_KEY = /^qz_[0-9a-f]{64}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const PLAN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_EMAIL = 254;
const MAX_BILLING_ID = 255;
/** Printable ASCII, no spaces: the export hands it to Stripe, so whitespace or control characters would bill no one. */
const BILLING_ID = new RegExp(`^[!-~]{1,${MAX_BILLING_ID}}$`);
/** Unknown-key hashes remembered to spare storage lookups when a bad key is retried; bounded. */
const NEGATIVE_CACHE_LIMIT = 10_000;
const DEFAULT_LIST_LIMIT = 100;
const MAX_LIST_LIMIT = 1000;

export interface Tenant {
  id: string;
  email: string;
  plan: string;
  billing_customer_id: string | null;
  /** Milliseconds since the epoch. */
  created_at: number;
  updated_at: number;
}

export interface CreateTenantInput {
  email: string;
  plan?: string;
  billing_customer_id?: string | null;
}

export interface TenantUpdate {
  plan?: string;
  billing_customer_id?: string | null;
}

/** The keys of CreateTenantInput and TenantUpdate (the records make the compiler check the lists are complete). */
const CREATE_TENANT_KEYS = Object.keys({ email: true, plan: true, billing_customer_id: true } satisfies Record<keyof CreateTenantInput, true>);
const TENANT_UPDATE_KEYS = Object.keys({ plan: true, billing_customer_id: true } satisfies Record<keyof TenantUpdate, true>);

/** A freshly issued key: `api_key` is shown to the caller once and never stored. */
export interface IssuedKey {
  key_id: string;
  api_key: string;
}

export interface ApiKeyInfo {
  key_id: string;
  created_at: number;
}

/** Who a request is, once its API key checks out. */
export interface Principal {
  tenant: Tenant;
  key_id: string;
}

interface KeyRecord {
  key_id: string;
  hash: string;
  created_at: number;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();
const key = (s: string) => utf8.encode(s);
const json = (v: unknown) => utf8.encode(JSON.stringify(v));

/**
 * Whether `storage` holds tenant `tenantId`, read without opening the registry: for tools that
 * work on a stopped server's storage.
 *
 * @example
 * if (!(await tenantStored(storage, 't_1'))) throw new Error('no such tenant');
 */
export async function tenantStored(storage: StorageProvider, tenantId: string): Promise<boolean> {
  return (await (await storage.unit('tenants')).kv.get(key(`t/${tenantId}`))) !== undefined;
}

function invalid(message: string): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, message);
}

function parse<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(utf8Decoder.decode(bytes)) as T;
  } catch (cause) {
    throw new QuartzError(ErrorCode.CORRUPT_DATA, `stored ${what} is unreadable`, { cause });
  }
}

function hex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += bytes[i]!.toString(16).padStart(2, '0');
  return s;
}

function randomHex(bytes: number): string {
  return hex(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** SHA-256 of the key's text, as hex. */
async function hashKey(apiKey: string): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', utf8.encode(apiKey))));
}

function checkEmail(email: unknown): string {
  if (typeof email !== 'string' || !EMAIL.test(email) || email.length > MAX_EMAIL) {
    throw invalid(`email ${showValue(email)} is not a valid address`);
  }
  return email;
}

function checkPlan(plan: unknown): string {
  if (typeof plan !== 'string' || !PLAN.test(plan)) {
    throw invalid(`plan ${showValue(plan)} must be 1-64 lower-case letters, digits, '-' or '_'`);
  }
  return plan;
}

function checkBillingId(id: unknown): string | null {
  if (id === null || id === undefined) return null;
  if (typeof id !== 'string' || !BILLING_ID.test(id)) {
    throw invalid(`billing customer id ${showValue(id)} must be 1-${MAX_BILLING_ID} printable ASCII characters without spaces (a Stripe customer id, cus_…), or null`);
  }
  return id;
}

function checkId(id: unknown, what: string): string {
  if (typeof id !== 'string' || !ID.test(id)) throw invalid(`${what} ${showValue(id)} is not a valid id`);
  return id;
}

function notFound(tenantId: string): QuartzError {
  return new QuartzError(ErrorCode.NOT_FOUND, `tenant '${tenantId}' does not exist`);
}

export class TenantRegistry implements UsageRecorder {
  private readonly tenants = new Map<string, Tenant>();
  private readonly byHash = new Map<string, { tenantId: string; keyId: string }>();
  private readonly unknownHashes = new Set<string>();
  /** Registry writes run one at a time, so uniqueness checks and their writes cannot interleave. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Tenants registered, once counted (see `count`); creates add to it. */
  private counted: number | undefined;

  private constructor(
    private readonly kv: OrderedKV,
    private readonly clock: Clock,
    /** The meter every engine unit reports to (ctx.usage when that is a UsageMeter). */
    readonly meter: UsageMeter,
    private readonly ownsMeter: boolean,
    private readonly defaultPlan: string,
  ) {}

  /**
   * Opens the registry. When `ctx.usage` is a UsageMeter the registry reports from it; otherwise
   * it opens its own on the same unit (then pass `registry` as the context's usage recorder).
   *
   * @example
   * const usage = await UsageMeter.open({ storage, clock, scheduler });
   * const ctx = { storage, clock, scheduler, usage, capabilities };
   * const tenants = await TenantRegistry.open(ctx);
   * const { tenant, api_key } = await tenants.create({ email: 'ada@example.com', plan: 'pro' });
   */
  static async open(ctx: EngineContext, options: { defaultPlan?: string } = {}): Promise<TenantRegistry> {
    const defaultPlan = checkPlan(options.defaultPlan ?? DEFAULT_PLAN);
    const unit = await ctx.storage.unit('tenants');
    const shared = ctx.usage instanceof UsageMeter;
    const meter = shared ? (ctx.usage as UsageMeter) : await UsageMeter.open({ storage: ctx.storage, clock: ctx.clock, scheduler: ctx.scheduler, logger: ctx.logger });
    return new TenantRegistry(unit.kv, ctx.clock, meter, !shared, defaultPlan);
  }

  /**
   * Creates a tenant and its first API key. The key is in the answer only; store it now.
   *
   * @example
   * const { tenant, key_id, api_key } = await tenants.create({ email: 'ada@example.com' });
   */
  create(input: CreateTenantInput): Promise<{ tenant: Tenant } & IssuedKey> {
    return this.exclusive(async () => {
      if (input === null || typeof input !== 'object') throw invalid('tenant input must be an object');
      refuseUnknownOptions(input, CREATE_TENANT_KEYS, 'tenant');
      const email = checkEmail(input.email);
      const plan = checkPlan(input.plan ?? this.defaultPlan);
      const billing = checkBillingId(input.billing_customer_id);
      const emailKey = key(`e/${email.toLowerCase()}`);
      if ((await this.kv.get(emailKey)) !== undefined) {
        throw new QuartzError(ErrorCode.ALREADY_EXISTS, `a tenant with email '${email}' already exists`);
      }
      let id: string;
      do id = `t_${randomHex(8)}`;
      while ((await this.kv.get(key(`t/${id}`))) !== undefined);
      const now = this.clock.now();
      const tenant: Tenant = { id, email, plan, billing_customer_id: billing, created_at: now, updated_at: now };
      const issued = await this.newKey(id);
      await this.kv.batch([
        { type: 'put', key: key(`t/${id}`), value: json(tenant) },
        { type: 'put', key: emailKey, value: utf8.encode(id) },
        ...issued.ops,
      ]);
      this.tenants.set(id, tenant);
      if (this.counted !== undefined) this.counted++;
      this.remember(issued.hash, id, issued.key_id);
      return { tenant: { ...tenant }, key_id: issued.key_id, api_key: issued.api_key };
    });
  }

  /**
   * A tenant by id, or undefined.
   *
   * @example
   * const tenant = await tenants.get('t_0123456789abcdef');
   */
  async get(tenantId: string): Promise<Tenant | undefined> {
    this.check();
    if (typeof tenantId !== 'string' || !ID.test(tenantId)) return undefined;
    const t = await this.load(tenantId);
    return t === undefined ? undefined : { ...t };
  }

  /**
   * How many tenants are registered: counted from storage on the first call, then kept as tenants
   * are created (none is ever removed), so a metrics scrape reads nothing.
   *
   * @example
   * const registered = await tenants.count();
   */
  async count(): Promise<number> {
    this.check();
    if (this.counted !== undefined) return this.counted;
    // In the write queue, so no create lands between the scan and the count being kept.
    return this.exclusive(async () => {
      if (this.counted === undefined) {
        let n = 0;
        let start = key('t/');
        const end = prefixEnd(key('t/'))!;
        for (;;) {
          const rows = await this.kv.scan({ start, end, limit: MAX_LIST_LIMIT });
          n += rows.length;
          if (rows.length < MAX_LIST_LIMIT) break;
          const last = rows[rows.length - 1]!.key;
          start = new Uint8Array(last.length + 1);
          start.set(last);
        }
        this.counted = n;
      }
      return this.counted;
    });
  }

  /**
   * A page of tenants in id order.
   *
   * @example
   * const { tenants: page, cursor } = await tenants.list({ limit: 50 });
   */
  async list(options: { cursor?: string | null; limit?: number } = {}): Promise<{ tenants: Tenant[]; cursor: string | null }> {
    this.check();
    const { cursor, limit = DEFAULT_LIST_LIMIT } = options ?? {}; // null: no options
    if (!(Number.isSafeInteger(limit) && limit >= 1 && limit <= MAX_LIST_LIMIT)) {
      throw invalid(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}, got ${String(limit)}`);
    }
    let start = key('t/');
    if (cursor !== undefined && cursor !== null) {
      const after = key(`t/${checkId(cursor, 'cursor')}`);
      start = new Uint8Array(after.length + 1);
      start.set(after);
    }
    const rows = await this.kv.scan({ start, end: prefixEnd(key('t/'))!, limit: limit + 1 });
    const tenants = rows.slice(0, limit).map((r) => parse<Tenant>(r.value, 'tenant'));
    return { tenants, cursor: rows.length > limit ? tenants[tenants.length - 1]!.id : null };
  }

  /**
   * Changes a tenant's plan and/or billing customer id.
   *
   * @example
   * await tenants.update(id, { plan: 'pro', billing_customer_id: 'cus_123' });
   */
  update(tenantId: string, changes: TenantUpdate): Promise<Tenant> {
    return this.exclusive(async () => {
      if (changes === null || typeof changes !== 'object') throw invalid('tenant update must be an object');
      refuseUnknownOptions(changes, TENANT_UPDATE_KEYS, 'tenant update');
      const current = await this.require(tenantId);
      const next: Tenant = { ...current, updated_at: this.clock.now() };
      if (changes.plan !== undefined) next.plan = checkPlan(changes.plan);
      if (changes.billing_customer_id !== undefined) next.billing_customer_id = checkBillingId(changes.billing_customer_id);
      await this.kv.put(key(`t/${tenantId}`), json(next));
      this.tenants.set(tenantId, next);
      return { ...next };
    });
  }

  /**
   * The tenant and key behind a presented API key, or undefined when it is unknown or revoked.
   * Repeat lookups are answered from memory.
   *
   * @example
   * const who = await tenants.authenticate(request.headers.get('x-api-key') ?? '');
   * if (!who) return new Response('unauthorized', { status: 401 });
   */
  async authenticate(apiKey: string): Promise<Principal | undefined> {
    this.check();
    if (typeof apiKey !== 'string' || !API_KEY.test(apiKey)) return undefined;
    const hash = await hashKey(apiKey);
    let hit = this.byHash.get(hash);
    if (hit === undefined) {
      if (this.unknownHashes.has(hash)) return undefined;
      const stored = await this.kv.get(key(`h/${hash}`));
      if (stored === undefined) {
        if (this.unknownHashes.size >= NEGATIVE_CACHE_LIMIT) this.unknownHashes.clear();
        this.unknownHashes.add(hash);
        return undefined;
      }
      const ref = parse<{ tenant_id: string; key_id: string }>(stored, 'key index entry');
      hit = { tenantId: ref.tenant_id, keyId: ref.key_id };
      this.byHash.set(hash, hit);
    }
    const tenant = await this.load(hit.tenantId);
    if (tenant === undefined) return undefined;
    return { tenant: { ...tenant }, key_id: hit.keyId };
  }

  /**
   * Issues an extra API key for a tenant (its other keys keep working).
   *
   * @example
   * const { key_id, api_key } = await tenants.createKey(id);
   */
  createKey(tenantId: string): Promise<IssuedKey> {
    return this.exclusive(async () => {
      await this.require(tenantId);
      const issued = await this.newKey(tenantId);
      await this.kv.batch(issued.ops);
      this.remember(issued.hash, tenantId, issued.key_id);
      return { key_id: issued.key_id, api_key: issued.api_key };
    });
  }

  /**
   * Issues a new key and, unless `keepOld`, revokes every other key of the tenant in the same write.
   *
   * @example
   * const { api_key, revoked } = await tenants.rotateKey(id); // old keys stop working now
   */
  rotateKey(tenantId: string, options: { keepOld?: boolean } = {}): Promise<IssuedKey & { revoked: string[] }> {
    return this.exclusive(async () => {
      await this.require(tenantId);
      const old = options?.keepOld === true ? [] : await this.keyRecords(tenantId); // null: no options
      const issued = await this.newKey(tenantId);
      const ops: BatchOp[] = [...issued.ops];
      for (const rec of old) ops.push(...this.revokeOps(tenantId, rec));
      await this.kv.batch(ops);
      for (const rec of old) this.forget(rec.hash);
      this.remember(issued.hash, tenantId, issued.key_id);
      return { key_id: issued.key_id, api_key: issued.api_key, revoked: old.map((r) => r.key_id) };
    });
  }

  /**
   * Revokes one key; requests with it fail from now on.
   *
   * @example
   * await tenants.revokeKey(id, 'key_0123456789ab');
   */
  revokeKey(tenantId: string, keyId: string): Promise<void> {
    return this.exclusive(async () => {
      await this.require(tenantId);
      checkId(keyId, 'key id');
      const stored = await this.kv.get(key(`k/${tenantId}/${keyId}`));
      if (stored === undefined) throw new QuartzError(ErrorCode.NOT_FOUND, `tenant '${tenantId}' has no key '${keyId}'`);
      const rec = parse<KeyRecord>(stored, 'key record');
      await this.kv.batch(this.revokeOps(tenantId, rec));
      this.forget(rec.hash);
    });
  }

  /**
   * A tenant's live keys (ids and creation times; the keys themselves are not kept).
   *
   * @example
   * const keys = await tenants.listKeys(id); // [{ key_id, created_at }]
   */
  async listKeys(tenantId: string): Promise<ApiKeyInfo[]> {
    this.check();
    await this.require(tenantId);
    return (await this.keyRecords(tenantId)).map((r) => ({ key_id: r.key_id, created_at: r.created_at }));
  }

  /**
   * Counts usage for a tenant (delegates to the meter, so the registry can serve as ctx.usage).
   *
   * @example
   * tenants.add(tenant.id, 'api_calls', 1);
   */
  add(tenantId: string, metric: UsageMetric, delta: number): void {
    this.meter.add(tenantId, metric, delta);
  }

  /**
   * A tenant's usage for a period ("YYYY-MM", default the current one).
   *
   * @example
   * const { api_calls, bytes_stored } = await tenants.usage(id);
   */
  usage(tenantId: string, period?: string): Promise<TenantUsage> {
    return this.meter.usage(tenantId, period);
  }

  /**
   * Every tenant's usage for one period summed (see UsageMeter.totals), for the metrics.
   *
   * @example
   * const { api_calls } = await tenants.usageTotals('2025-01');
   */
  usageTotals(period: string): Promise<UsageFigures> {
    return this.meter.totals(period);
  }

  /**
   * Every tenant's usage rows for a range of periods, for the billing export.
   *
   * @example
   * for await (const row of tenants.exportUsage({ from: '2025-01' })) out.write(JSON.stringify(row) + '\n');
   */
  exportUsage(range: { from?: string; to?: string } = {}): AsyncGenerator<UsageRow> {
    return this.meter.export(range ?? {}); // null: the whole range
  }

  /**
   * Waits for pending registry writes and, when the registry opened its own meter, flushes and closes it.
   *
   * @example
   * await tenants.close();
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    if (this.ownsMeter) await this.meter.close();
  }

  private check(): void {
    if (this.closed) throw new QuartzError(ErrorCode.STORAGE_CLOSED, 'tenant registry is closed');
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    try {
      this.check();
    } catch (err) {
      return Promise.reject(err);
    }
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async load(tenantId: string): Promise<Tenant | undefined> {
    let t = this.tenants.get(tenantId);
    if (t === undefined) {
      const stored = await this.kv.get(key(`t/${tenantId}`));
      if (stored === undefined) return undefined;
      t = parse<Tenant>(stored, `tenant '${tenantId}'`);
      this.tenants.set(tenantId, t);
    }
    return t;
  }

  private async require(tenantId: string): Promise<Tenant> {
    checkId(tenantId, 'tenant id');
    const t = await this.load(tenantId);
    if (t === undefined) throw notFound(tenantId);
    return t;
  }

  private async newKey(tenantId: string): Promise<IssuedKey & { hash: string; ops: BatchOp[] }> {
    const apiKey = `qz_${randomHex(32)}`;
    const hash = await hashKey(apiKey);
    const keyId = `key_${randomHex(6)}`;
    const rec: KeyRecord = { key_id: keyId, hash, created_at: this.clock.now() };
    return {
      key_id: keyId,
      api_key: apiKey,
      hash,
      ops: [
        { type: 'put', key: key(`h/${hash}`), value: json({ tenant_id: tenantId, key_id: keyId }) },
        { type: 'put', key: key(`k/${tenantId}/${keyId}`), value: json(rec) },
      ],
    };
  }

  private revokeOps(tenantId: string, rec: KeyRecord): BatchOp[] {
    return [
      { type: 'delete', key: key(`h/${rec.hash}`) },
      { type: 'delete', key: key(`k/${tenantId}/${rec.key_id}`) },
    ];
  }

  private async keyRecords(tenantId: string): Promise<KeyRecord[]> {
    const rows = await this.kv.scan({ prefix: key(`k/${tenantId}/`) });
    return rows.map((r) => parse<KeyRecord>(r.value, 'key record'));
  }

  private remember(hash: string, tenantId: string, keyId: string): void {
    this.unknownHashes.delete(hash);
    this.byHash.set(hash, { tenantId, keyId });
  }

  private forget(hash: string): void {
    this.byHash.delete(hash);
  }
}
