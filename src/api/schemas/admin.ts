/** Tenants, keys, usage and the system routes' shapes. */
import { z } from '@hono/zod-openapi';
import { strictBody } from './common.js';

export const RegisterBody = strictBody({ email: z.string().min(3).max(254).openapi({ example: 'ada@example.com' }) }).openapi('Register');
export const RegisterResult = z
  .object({
    user_id: z.string(),
    key_id: z.string().openapi({ description: 'Names the key for revocation' }),
    api_key: z.string().openapi({ description: 'qz_ + 64 hex; shown once' }),
  })
  .openapi('Registered');

export const Tenant = z
  .object({
    id: z.string(),
    email: z.string(),
    plan: z.string(),
    billing_customer_id: z.string().nullable(),
    created_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .openapi('Tenant');

export const CreateTenantBody = strictBody({
  email: z.string().min(3).max(254),
  plan: z.string().optional().openapi({ description: 'A configured plan (default: the default plan)' }),
  billing_customer_id: z.string().min(1).max(255).nullable().optional().openapi({ description: 'Stripe customer id, e.g. cus_123: printable ASCII without spaces' }),
}).openapi('CreateTenant');

export const CreatedTenant = z.object({ tenant: Tenant, key_id: z.string(), api_key: z.string() }).openapi('CreatedTenant');

export const UpdateTenantBody = strictBody({
  plan: z.string().optional(),
  billing_customer_id: z.string().min(1).max(255).nullable().optional().openapi({ description: 'Stripe customer id, e.g. cus_123: printable ASCII without spaces' }),
}).openapi('UpdateTenant');

export const TenantParam = z.object({ id: z.string() });
export const KeyParam = z.object({ id: z.string(), key_id: z.string() });
export const IssuedKey = z.object({ key_id: z.string(), api_key: z.string() }).openapi('IssuedKey');
export const KeyList = z
  .object({ keys: z.array(z.object({ key_id: z.string(), created_at: z.number().int() })) })
  .openapi('KeyList');

export const ExportQuery = z.object({
  from: z.string().optional().openapi({ description: 'First period, YYYY-MM' }),
  to: z.string().optional().openapi({ description: 'Last period, YYYY-MM' }),
});

export const Usage = z
  .object({
    tenant_id: z.string(),
    period: z.string().openapi({ example: '2025-01' }),
    api_calls: z.number(),
    bytes_stored: z.number(),
    records_produced: z.number(),
    vectors_stored: z.number(),
    function_ms: z.number(),
    recounting: z.boolean().openapi({
      description: "True while bytes_stored is being counted afresh after a crash; until then it is the level stored before the crash plus the changes since",
    }),
  })
  .openapi('Usage');

export const Health = z
  .object({ status: z.literal('ok'), version: z.string(), uptime_s: z.number().int().openapi({ description: 'Whole seconds since the app started' }) })
  .openapi('Health');
