/**
 * Tenant-facing account routes (register, usage) and the admin routes (tenants, keys, the
 * billing export as Stripe meter events, the backup stream).
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';
import type { UsageMetric } from '../../engine/context.js';
import type { Tenant } from '../../engine/tenants/tenant-registry.js';
import type { UsageRow } from '../../engine/tenants/usage-meter.js';
import { readJson } from '../body.js';
import { errorResponse } from '../errors.js';
import type { AppDeps, AppEnv } from '../context.js';
import { adminAuth, tenantAuth } from '../middleware/auth.js';
import type { ApiRouter } from '../router.js';
import {
  CreateTenantBody,
  CreatedTenant,
  ExportQuery,
  IssuedKey,
  KeyList,
  KeyParam,
  RegisterBody,
  RegisterResult,
  Tenant as TenantSchema,
  TenantParam,
  UpdateTenantBody,
  Usage,
} from '../schemas/admin.js';
import { adminSecurity, errorResponses, jsonBody, jsonResponse, tenantSecurity } from '../schemas/common.js';
import { invalid, param, parseWith } from '../validation.js';

const METERED: readonly UsageMetric[] = ['api_calls', 'bytes_stored', 'records_produced', 'vectors_stored', 'function_ms'];

/** One Stripe meter event (https://docs.stripe.com/api/billing/meter-event/create), one JSONL line. */
export interface MeterEvent {
  event_name: string;
  /** Unix seconds. */
  timestamp: number;
  /** Stripe dedupes on it, so re-sending an export does not bill twice. */
  identifier: string;
  payload: { stripe_customer_id: string; value: string };
}

/** The last second of a "YYYY-MM" period (UTC), in ms. */
function periodEnd(period: string): number {
  const [y, m] = period.split('-').map(Number) as [number, number];
  return Date.UTC(y, m, 1) - 1000;
}

/**
 * A usage row as meter events, one per non-zero metric, stamped at the period's end (or now,
 * for the current period, since Stripe refuses future timestamps).
 *
 * @example
 * for (const e of meterEvents(row, 'cus_123', Date.now())) out.push(JSON.stringify(e));
 */
export function meterEvents(row: UsageRow, customerId: string, now: number): MeterEvent[] {
  const timestamp = Math.floor(Math.min(now, periodEnd(row.period)) / 1000);
  const out: MeterEvent[] = [];
  for (const metric of METERED) {
    const value = row[metric];
    if (value === 0) continue;
    out.push({
      event_name: `quartz_${metric}`,
      timestamp,
      identifier: `${row.tenant_id}:${row.period}:${metric}`,
      payload: { stripe_customer_id: customerId, value: String(Math.round(value)) },
    });
  }
  return out;
}

/** The registrations' bucket in the bucket store; tenant buckets are named by tenant ids (`t_…`). */
const REGISTRATIONS_BUCKET = 'registrations';

export function accountRoutes(router: ApiRouter<AppEnv>, deps: AppDeps): void {
  const { engine, config, buckets, clock } = deps;
  const jsonLimit = config.body_limits.json;
  const perMinute = config.registrations_per_minute;

  router.add(
    'post',
    '/v1/auth/register',
    {
      tags: ['Account'],
      summary: 'Register and get an API key',
      description:
        'Open unless the operator turned registration off (then 404 `not_found`). The key is shown once. The whole server takes `registrations_per_minute` of them (default 60): past that, 429 `rate_limited` with `Retry-After`.',
      request: { body: jsonBody(RegisterBody) },
      responses: { '201': jsonResponse(RegisterResult, 'Registered'), ...errorResponses(400, 404, 409, 413, 429) },
    },
    async (c) => {
      if (!config.registration_enabled) throw new QuartzError(ErrorCode.NOT_FOUND, 'registration is turned off on this server; ask its operator for an API key');
      if (perMinute !== null) {
        const rate = await buckets.take(REGISTRATIONS_BUCKET, perMinute, clock.now());
        if (!rate.allowed) {
          // No X-RateLimit-* headers: they describe a tenant's own bucket, and this one is the server's.
          const refused = new QuartzError(ErrorCode.RATE_LIMITED, `this server takes ${perMinute} registrations per minute; retry in ${rate.retryAfterSeconds} s`);
          return errorResponse(refused, { 'retry-after': String(rate.retryAfterSeconds) });
        }
      }
      const { email } = parseWith(RegisterBody, await readJson(c.req.raw, jsonLimit));
      const { tenant, key_id, api_key } = await engine.tenants.create({ email, plan: config.default_plan });
      return c.json({ user_id: tenant.id, key_id, api_key }, 201);
    },
  );

  router.add(
    'get',
    '/v1/usage',
    {
      tags: ['Account'],
      summary: "This tenant's usage for the current period",
      security: tenantSecurity,
      responses: { '200': jsonResponse(Usage, 'Metered figures; counters sum over the period, bytes and vectors are levels') },
    },
    tenantAuth(deps),
    async (c) => {
      const id = c.get('tenant').id;
      // Opening the tenant counts its levels afresh if a crash may have lost their last deltas; the
      // count needs no open partition to begin (they open in the background), nor does this answer.
      await engine.services(id);
      return c.json(await engine.tenants.usage(id));
    },
  );
}

export function adminRoutes(router: ApiRouter<AppEnv>, deps: AppDeps): void {
  const { engine, config, clock } = deps;
  const auth = adminAuth(deps);
  const tags = ['Admin'];
  const jsonLimit = config.body_limits.json;
  const checkPlan = (plan: string | undefined): void => {
    if (plan !== undefined && !(plan in config.plans)) throw invalid(`plan: '${plan}' is not a configured plan (${Object.keys(config.plans).join(', ')})`);
  };

  router.add(
    'post',
    '/v1/admin/tenants',
    {
      tags,
      summary: 'Create a tenant with a plan',
      security: adminSecurity,
      request: { body: jsonBody(CreateTenantBody) },
      responses: { '201': jsonResponse(CreatedTenant, 'The tenant and its first API key (shown once)'), ...errorResponses(400, 409, 413) },
    },
    auth,
    async (c) => {
      const body = parseWith(CreateTenantBody, await readJson(c.req.raw, jsonLimit));
      checkPlan(body.plan);
      const created = await engine.tenants.create({ email: body.email, plan: body.plan ?? config.default_plan, billing_customer_id: body.billing_customer_id });
      return c.json(created, 201);
    },
  );

  router.add(
    'get',
    '/v1/admin/tenants/:id',
    {
      tags,
      summary: 'Read a tenant',
      security: adminSecurity,
      request: { params: TenantParam },
      responses: { '200': jsonResponse(TenantSchema, 'The tenant'), ...errorResponses(400, 404) },
    },
    auth,
    async (c) => {
      const id = param(c, 'id');
      const tenant = await engine.tenants.get(id);
      if (tenant === undefined) throw new QuartzError(ErrorCode.NOT_FOUND, `tenant '${id}' does not exist`);
      return c.json(tenant);
    },
  );

  router.add(
    'patch',
    '/v1/admin/tenants/:id',
    {
      tags,
      summary: "Change a tenant's plan or billing customer id",
      security: adminSecurity,
      request: { params: TenantParam, body: jsonBody(UpdateTenantBody) },
      responses: { '200': jsonResponse(TenantSchema, 'The updated tenant'), ...errorResponses(400, 404, 413) },
    },
    auth,
    async (c) => {
      const body = parseWith(UpdateTenantBody, await readJson(c.req.raw, jsonLimit));
      checkPlan(body.plan);
      const updated = await engine.tenants.update(param(c, 'id'), body);
      deps.principals.tenantChanged(updated.id); // the new plan applies from the next request
      return c.json(updated);
    },
  );

  router.add(
    'get',
    '/v1/admin/tenants/:id/keys',
    {
      tags,
      summary: "List a tenant's API keys (ids only; keys are never stored)",
      security: adminSecurity,
      request: { params: TenantParam },
      responses: { '200': jsonResponse(KeyList, 'The live keys'), ...errorResponses(400, 404) },
    },
    auth,
    async (c) => c.json({ keys: await engine.tenants.listKeys(param(c, 'id')) }),
  );

  router.add(
    'post',
    '/v1/admin/tenants/:id/keys',
    {
      tags,
      summary: 'Issue another API key',
      security: adminSecurity,
      request: { params: TenantParam },
      responses: { '201': jsonResponse(IssuedKey, 'The new key (shown once)'), ...errorResponses(400, 404) },
    },
    auth,
    async (c) => c.json(await engine.tenants.createKey(param(c, 'id')), 201),
  );

  router.add(
    'delete',
    '/v1/admin/tenants/:id/keys/:key_id',
    {
      tags,
      summary: 'Revoke an API key',
      security: adminSecurity,
      request: { params: KeyParam },
      responses: { '204': { description: 'Revoked' }, ...errorResponses(400, 404) },
    },
    auth,
    async (c) => {
      await engine.tenants.revokeKey(param(c, 'id'), param(c, 'key_id'));
      deps.principals.revoked([param(c, 'key_id')]); // the revoked key fails from the next request
      return c.body(null, 204);
    },
  );

  router.add(
    'get',
    '/v1/admin/usage/export',
    {
      tags,
      summary: 'Usage as Stripe meter events (JSONL)',
      description:
        'One line per tenant, period and non-zero metric, for tenants with a billing customer id: `{"event_name":"quartz_<metric>","timestamp":<unix s>,"identifier":…,"payload":{"stripe_customer_id":…,"value":"<n>"}}`. Periods are YYYY-MM.',
      security: adminSecurity,
      request: { query: ExportQuery },
      responses: { '200': { description: 'JSONL', content: { 'application/x-ndjson': { schema: { type: 'string' } } } }, ...errorResponses(400) },
    },
    auth,
    async (c) => {
      const rows = engine.tenants.exportUsage({ from: c.req.query('from') || undefined, to: c.req.query('to') || undefined });
      // Pull the first row now, so a bad range is a 400 rather than a broken stream.
      let first = await rows.next();
      const tenants = new Map<string, Tenant | undefined>();
      const now = clock.now();
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          let out = '';
          while (!first.done && out.length < 64 * 1024) {
            const row = first.value;
            if (!tenants.has(row.tenant_id)) tenants.set(row.tenant_id, await engine.tenants.get(row.tenant_id));
            const customer = tenants.get(row.tenant_id)?.billing_customer_id;
            if (customer) for (const e of meterEvents(row, customer, now)) out += JSON.stringify(e) + '\n';
            first = await rows.next();
          }
          if (out !== '') controller.enqueue(encoder.encode(out));
          if (first.done) controller.close();
        },
        async cancel() {
          await rows.return(undefined);
        },
      });
      c.set('streamed', true);
      return c.body(body, 200, { 'content-type': 'application/x-ndjson' });
    },
  );

  router.add(
    'get',
    '/v1/admin/backup',
    {
      tags,
      summary: 'A consistent snapshot of all data, streamed',
      description:
        "The archive format is the home's (see docs/configuration.md); `quartz restore` reads it. 501 where the home has no backup; 507 when the disk is too full to bring the store up to every acknowledged write first.",
      security: adminSecurity,
      responses: {
        '200': {
          description: "The archive, offered as a file download; the Node home's type is `application/vnd.quartzdb.backup`",
          headers: { 'Content-Disposition': { description: 'attachment; filename="…" (when the home names the file)', schema: { type: 'string' } } },
          content: { 'application/vnd.quartzdb.backup': { schema: { type: 'string', format: 'binary' } }, 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
        },
        ...errorResponses(501, 507),
      },
    },
    auth,
    async (c) => {
      if (deps.backup === undefined) throw new QuartzError(ErrorCode.NOT_IMPLEMENTED, 'backups are not available in this home');
      const signal = c.req.raw.signal;
      const snap = await deps.backup(signal).catch((err: unknown) => {
        // The client left before the snapshot was taken (its request's signal, which the backup
        // rejects with): its doing, answered to nobody, so a 400 as for a body cut short, not a
        // logged 500. NOTE: it was logged as an unhandled error and counted as a server failure.
        if (signal.aborted && err === signal.reason) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, 'the client closed the connection before the backup began', { cause: err });
        throw err;
      });
      const headers: Record<string, string> = { 'content-type': snap.contentType ?? 'application/octet-stream' };
      if (snap.size !== undefined) headers['content-length'] = String(snap.size);
      else c.set('streamed', true);
      if (snap.filename !== undefined) headers['content-disposition'] = `attachment; filename="${snap.filename.replace(/["\\\r\n]/g, '_')}"`;
      return c.body(snap.body, 200, headers);
    },
  );
}
