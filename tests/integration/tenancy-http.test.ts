/**
 * Auth headers and the admin routes' input, over real HTTP against the Node listener: which key
 * a request presents when it sends more than one, and what a billing customer id may hold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerWithTenant, type ServerWithTenant } from '../fixtures/server-with-tenant.js';

let ADMIN_KEY: string;
let running: ServerWithTenant;
let url: string;
let keyA: string;
let keyB: string;
let tenantB: string;

async function status(path: string, headers: Record<string, string>): Promise<{ status: number; body: { error?: string; message?: string; tenant_id?: string } }> {
  const res = await fetch(url + path, { headers });
  return { status: res.status, body: (await res.json()) as { error?: string; tenant_id?: string } };
}

beforeAll(async () => {
  running = await startServerWithTenant('tenancy-http');
  ADMIN_KEY = running.server.adminKey.key;
  url = running.server.url;
  keyA = running.apiKey;
  const res = await fetch(`${url}/v1/admin/tenants`, { method: 'POST', headers: { 'x-api-key': ADMIN_KEY }, body: JSON.stringify({ email: 'b@example.com' }) });
  const created = (await res.json()) as { tenant: { id: string }; api_key: string };
  keyB = created.api_key;
  tenantB = created.tenant.id;
});

afterAll(async () => {
  await running?.close();
});

describe('which key a request presents', () => {
  it('refuses two different keys in Authorization and X-API-Key rather than picking one', async () => {
    const both = await status('/v1/usage', { authorization: `Bearer ${keyB}`, 'x-api-key': keyA });
    expect(both.status).toBe(401);
    expect(both.body).toEqual({ error: 'unauthorized', message: expect.stringContaining('different keys') });
    const same = await status('/v1/usage', { authorization: `Bearer ${keyB}`, 'x-api-key': ` ${keyB} ` });
    expect(same.status).toBe(200);
    expect(same.body.tenant_id).toBe(tenantB);
  });

  it('refuses a malformed Authorization header even beside a good X-API-Key', async () => {
    for (const authorization of ['Bearer', 'Basic ' + keyA, `Token ${keyA}`]) {
      const res = await status('/v1/usage', { authorization, 'x-api-key': keyA });
      expect(res.status, authorization).toBe(401);
      expect(res.body.message).toContain('Authorization header must be');
    }
  });

  it('takes either header alone, with the scheme in any case and spaces around the key', async () => {
    const alone: Record<string, string>[] = [{ authorization: `bearer  ${keyA} ` }, { 'x-api-key': `  ${keyA}` }];
    for (const headers of alone) {
      expect((await status('/v1/usage', headers)).status).toBe(200);
    }
    expect((await status('/v1/usage', { authorization: `Bearer ${keyA.toUpperCase()}` })).status).toBe(401);
    expect((await status('/v1/usage', { authorization: `Bearer ${ADMIN_KEY}` })).status).toBe(401);
    expect((await status('/v1/admin/tenants/' + tenantB, { authorization: `Bearer ${keyA}` })).status).toBe(401);
  });
});

describe('billing customer ids', () => {
  const patch = (body: unknown) =>
    fetch(`${url}/v1/admin/tenants/${tenantB}`, { method: 'PATCH', headers: { 'x-api-key': ADMIN_KEY }, body: JSON.stringify(body) });

  it('refuses whitespace and control characters, which would bill no one, and keeps the stored id', async () => {
    expect((await patch({ billing_customer_id: 'cus_B' })).status).toBe(200);
    for (const id of ['  ', 'cus_1\n', 'cus 1', 'cus_\u0000', 'cus_é']) {
      const res = await patch({ billing_customer_id: id });
      expect(res.status, JSON.stringify(id)).toBe(400);
      expect(await res.json()).toEqual({ error: 'invalid_argument', message: expect.stringContaining('billing customer id') });
    }
    const create = await fetch(`${url}/v1/admin/tenants`, { method: 'POST', headers: { 'x-api-key': ADMIN_KEY }, body: JSON.stringify({ email: 'c@example.com', billing_customer_id: ' cus_C' }) });
    expect(create.status).toBe(400);
    const tenant = (await (await fetch(`${url}/v1/admin/tenants/${tenantB}`, { headers: { 'x-api-key': ADMIN_KEY } })).json()) as { billing_customer_id: string };
    expect(tenant.billing_customer_id).toBe('cus_B');
    expect((await patch({ billing_customer_id: null })).status).toBe(200);
  });
});

describe('registration flood', () => {
  const register = (base: string, email: string) =>
    fetch(`${base}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email }) });

  it('takes registrations_per_minute for the whole server, then 429 with Retry-After, and leaves admin creation alone', async () => {
    // The fixture registers one tenant itself: two more fit in a bucket of three.
    const limited = await startServerWithTenant('register-flood', { registrations_per_minute: 3 });
    try {
      const base = limited.server.url;
      expect((await register(base, 'r1@example.com')).status).toBe(201);
      expect((await register(base, 'r2@example.com')).status).toBe(201);
      const refused = await register(base, 'r3@example.com');
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(refused.headers.get('x-ratelimit-limit')).toBeNull();
      expect(await refused.json()).toEqual({ error: 'rate_limited', message: expect.stringContaining('3 registrations per minute') });
      const admin = await fetch(`${base}/v1/admin/tenants`, { method: 'POST', headers: { 'x-api-key': limited.server.adminKey.key }, body: JSON.stringify({ email: 'r3@example.com' }) });
      expect(admin.status).toBe(201);
    } finally {
      await limited.close();
    }
  });

  it('takes any number when registrations_per_minute is null', async () => {
    const open = await startServerWithTenant('register-open', { registrations_per_minute: null });
    try {
      for (let i = 0; i < 70; i++) expect((await register(open.server.url, `o${i}@example.com`)).status).toBe(201);
    } finally {
      await open.close();
    }
  });
});
