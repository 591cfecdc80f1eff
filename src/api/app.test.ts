import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import '../node/core.js';
import { QuartzError } from '../core/errors.js';
import type { Engine } from '../engine/engine.js';
import { createTestEngine } from '../engine/testing.js';
import { ManualClock } from '../ports/manual-clock.js';
import { createApp, type AppOptions } from './app.js';
import { hashKey, resolveServerConfig, type ServerConfigInput } from './config.js';
import type { LoggerPort } from './ports.js';
import { meterEvents } from './routes/admin.js';

let clock: ManualClock;
let engine: Engine;

beforeEach(async () => {
  clock = new ManualClock(Date.UTC(2025, 0, 15));
  engine = await createTestEngine({ clock });
});

afterEach(async () => {
  await engine.close();
});

async function appWith(config: Partial<ServerConfigInput> = {}, options: Partial<AppOptions> = {}) {
  const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9', admin_key_hash: await hashKey('admin-key'), ...config }), ...options });
  const call = async (method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) => {
    const res = await app.fetch(new Request(`http://local${path}`, { method, body: init.body, headers: init.headers }));
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: text.startsWith('{') ? JSON.parse(text) : undefined };
  };
  return { app, call };
}

async function tenantKey(plan = 'unlimited'): Promise<{ id: string; key: string }> {
  const { tenant, api_key } = await engine.tenants.create({ email: `${crypto.randomUUID()}@example.com`, plan });
  return { id: tenant.id, key: api_key };
}

function recordingLogger(): LoggerPort & { lines: Array<{ level: string; obj: Record<string, unknown>; msg: string }> } {
  const lines: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = [];
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => void lines.push({ level, obj, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('createApp', () => {
  it('health reports version and uptime from the engine clock', async () => {
    const { call } = await appWith();
    await clock.advance(5_000);
    expect((await call('GET', '/v1/health')).json).toEqual({ status: 'ok', version: '9.9.9', uptime_s: 5 });
  });

  it('registration can be switched off: 404 with a clear message', async () => {
    const { call } = await appWith({ registration_enabled: false });
    const res = await call('POST', '/v1/auth/register', { body: '{"email":"a@example.com"}' });
    expect(res.status).toBe(404);
    expect(res.json).toEqual({ error: 'not_found', message: expect.stringMatching(/registration is turned off/) });
  });

  it('registration gives the configured default plan', async () => {
    const { call } = await appWith({ default_plan: 'free' });
    const res = await call('POST', '/v1/auth/register', { body: '{"email":"a@example.com"}' });
    expect(res.status).toBe(201);
    expect((await engine.tenants.get(res.json.user_id))?.plan).toBe('free');
    const usage = await call('GET', '/v1/usage', { headers: { 'x-api-key': res.json.api_key } });
    expect(usage.headers.get('x-ratelimit-limit')).toBe('100');
  });

  it('KV GET and PUT, answered with plain header objects, carry the request id, rate-limit and CORS headers', async () => {
    const { call } = await appWith({ cors_origins: ['https://app.example'], plans: { tiny: { requests_per_minute: 10 }, unlimited: { requests_per_minute: null } } });
    const t = await tenantKey('tiny');
    const h = { 'x-api-key': t.key, 'x-request-id': 'req-7', origin: 'https://app.example' };
    const put = await call('PUT', '/v1/kv/a', { headers: { ...h, 'content-type': 'text/plain' }, body: 'hi' });
    const get = await call('GET', '/v1/kv/a', { headers: h });
    for (const [res, remaining] of [[put, '9'], [get, '8']] as const) {
      expect(res.status).toBe(200);
      expect(res.headers.get('x-request-id')).toBe('req-7');
      expect(res.headers.get('x-ratelimit-limit')).toBe('10');
      expect(res.headers.get('x-ratelimit-remaining')).toBe(remaining);
      expect(res.headers.get('x-ratelimit-reset')).not.toBeNull();
      expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
      expect(res.headers.get('access-control-expose-headers')).toContain('ETag');
      expect(res.headers.get('vary')).toBe('Origin');
    }
    expect(put.headers.get('content-type')).toBe('application/json');
    expect(put.json).toMatchObject({ key: 'a', size: 2, content_type: 'text/plain' });
    expect(get.headers.get('content-type')).toBe('text/plain');
    expect(get.headers.get('etag')).toBe(put.headers.get('etag'));
    const stranger = await call('GET', '/v1/kv/a', { headers: { ...h, origin: 'https://evil.example' } });
    expect(stranger.headers.get('access-control-allow-origin')).toBeNull();
    const generated = await call('GET', '/v1/kv/a', { headers: { 'x-api-key': t.key } });
    const again = await call('GET', '/v1/kv/a', { headers: { 'x-api-key': t.key } });
    expect(generated.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._:-]+$/);
    expect(again.headers.get('x-request-id')).not.toBe(generated.headers.get('x-request-id'));
  });

  it('the bucket refills with time: 429 now, allowed again after Retry-After', async () => {
    const { call } = await appWith({ plans: { tiny: { requests_per_minute: 2 }, unlimited: { requests_per_minute: null } } });
    const t = await tenantKey('tiny');
    const h = { authorization: `Bearer ${t.key}` };
    expect((await call('GET', '/v1/kv', { headers: h })).headers.get('x-ratelimit-remaining')).toBe('1');
    expect((await call('GET', '/v1/kv', { headers: h })).status).toBe(200);
    const limited = await call('GET', '/v1/kv', { headers: h });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('30');
    expect(limited.headers.get('x-ratelimit-reset')).toBe('60');
    await clock.advance(30_000);
    expect((await call('GET', '/v1/kv', { headers: h })).status).toBe(200);
  });

  it('meters one api call per authenticated request, not refused ones', async () => {
    const { call } = await appWith({ plans: { one: { requests_per_minute: 1 }, unlimited: { requests_per_minute: null } } });
    const t = await tenantKey('one');
    await call('GET', '/v1/kv', { headers: { 'x-api-key': t.key } });
    expect((await call('GET', '/v1/kv', { headers: { 'x-api-key': t.key } })).status).toBe(429);
    expect((await engine.tenants.usage(t.id)).api_calls).toBe(1);
  });

  it('anything that is not a QuartzError is a 500 with a generic message, logged with the request id', async () => {
    const logger = recordingLogger();
    const { call } = await appWith(
      {},
      {
        logger,
        backup: async () => {
          throw new TypeError('secret internal detail at /srv/data');
        },
      },
    );
    const res = await call('GET', '/v1/admin/backup', { headers: { 'x-api-key': 'admin-key', 'x-request-id': 'req-1' } });
    expect(res.status).toBe(500);
    expect(res.json).toEqual({ error: 'internal', message: 'the server failed to handle this request; the error is logged' });
    expect(res.text).not.toContain('secret');
    expect(res.headers.get('x-request-id')).toBe('req-1');
    expect(logger.lines.some((l) => l.level === 'error' && l.obj.request_id === 'req-1' && l.obj.err instanceof TypeError)).toBe(true);
  });

  it('backup streams what the home provides, 501 without one', async () => {
    const without = await appWith();
    const none = await without.call('GET', '/v1/admin/backup', { headers: { 'x-api-key': 'admin-key' } });
    expect(none.status).toBe(501);
    expect(none.json.error).toBe('not_implemented');
    const { call } = await appWith(
      {},
      { backup: async () => ({ body: new Blob(['archive-bytes']).stream(), size: 13, filename: 'quartz.backup' }) },
    );
    const res = await call('GET', '/v1/admin/backup', { headers: { authorization: 'Bearer admin-key' } });
    expect(res.status).toBe(200);
    expect(res.text).toBe('archive-bytes');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="quartz.backup"');
  });

  it('HEAD of the backup answers its headers and lets the snapshot go (a GET handler\'s body hono drops unread)', async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({ pull: (controller) => controller.enqueue(new Uint8Array(8)), cancel: () => void (cancelled = true) });
    const { call } = await appWith({}, { backup: async () => ({ body, size: 13 }) });
    const res = await call('HEAD', '/v1/admin/backup', { headers: { authorization: 'Bearer admin-key' } });
    expect([res.status, res.headers.get('content-length'), res.text]).toEqual([200, '13', '']);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(cancelled).toBe(true);
  });

  it('admin routes are off (401) when no admin key is configured', async () => {
    const { call } = await appWith({ admin_key_hash: null });
    const res = await call('POST', '/v1/admin/tenants', { body: '{"email":"a@example.com"}', headers: { 'x-api-key': 'anything' } });
    expect(res.status).toBe(401);
    expect(res.json.message).toMatch(/no admin key/);
  });

  it('the shutdown signal ends a pending long-poll with what the log holds', async () => {
    const shutdown = new AbortController();
    const { call } = await appWith({}, { shutdownSignal: shutdown.signal });
    const t = await tenantKey();
    const { streams } = await engine.tenant(t.id);
    await streams.createTopic('t', { partitions: 1 });
    const poll = call('GET', '/v1/topics/t/partitions/0/records?offset=0&max_wait_ms=30000', { headers: { 'x-api-key': t.key } });
    await new Promise((r) => setTimeout(r, 20));
    shutdown.abort();
    const res = await poll;
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ records: [], next_offset: 0, high_watermark: 0, log_start_offset: 0 });
  });

  it('max_wait_ms beyond the cap is shortened to the cap', async () => {
    const { call } = await appWith({ long_poll_max_ms: 50 });
    const t = await tenantKey();
    await (await engine.tenant(t.id)).streams.createTopic('t', { partitions: 1 });
    const poll = call('GET', '/v1/topics/t/partitions/0/records?max_wait_ms=600000', { headers: { 'x-api-key': t.key } });
    // The engine waits on the manual clock: step it 50 ms at a time until the poll answers. A
    // capped wait ends at the first step after it began; a 10-minute one outlasts every step
    // below (at most 100 s of clock). One step after a fixed sleep could come before the poll had
    // begun waiting on a busy machine, and then nothing ever ended it.
    let answered = false;
    void poll.then(() => (answered = true));
    for (const end = Date.now() + 20_000; !answered; ) {
      if (Date.now() > end) throw new Error('the wait was not capped');
      await clock.advance(50);
      await new Promise((r) => setTimeout(r, 10));
    }
    const res = await poll;
    expect(res.status).toBe(200);
    expect(res.json.records).toEqual([]);
  });

  it('reports each request to the metrics port by route pattern, and renders /metrics', async () => {
    const seen: Array<[string, string, number]> = [];
    const { call } = await appWith(
      {},
      { metrics: { observeRequest: (route, method, status) => void seen.push([route, method, status]), render: () => ({ contentType: 'text/plain; version=0.0.4', body: 'x 1\n' }) } },
    );
    const t = await tenantKey();
    await call('GET', '/v1/kv/user/42', { headers: { 'x-api-key': t.key } });
    await call('GET', '/v1/does-not-exist');
    expect(seen).toContainEqual(['/v1/kv/:key{.+}', 'GET', 404]);
    expect(seen).toContainEqual(['unmatched', 'GET', 404]);
    const metrics = await call('GET', '/metrics');
    expect(metrics.text).toBe('x 1\n');
    expect((await (await appWith()).call('GET', '/metrics')).status).toBe(404);
  });

  it('serves the home\'s assets outside /v1, a landing page at / without them', async () => {
    const { call } = await appWith({}, { assets: async (path) => (path === '/docs/swagger-ui.css' ? new Response('css', { headers: { 'content-type': 'text/css' } }) : undefined) });
    expect((await call('GET', '/docs/swagger-ui.css')).text).toBe('css');
    expect((await call('GET', '/docs/missing.js')).status).toBe(404);
    expect((await call('GET', '/')).text).toContain('href="/docs"');
    expect((await call('GET', '/docs')).text).toContain('/docs/swagger-ui-bundle.js');
  });

  it('an unknown path is 404 whatever the method; 405 with Allow is for a known path and a method it lacks', async () => {
    const { call } = await appWith({}, { assets: async (path) => (path === '/docs/swagger-ui.css' ? new Response('css') : undefined) });
    for (const path of ['/nope', '/nope/deeper', '/docs/missing.js', '/docs/', '/favicon.ico', '/v1', '/v1/', '/v1/nope', '/v1/admin/nope', '/metrics']) {
      for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']) {
        const res = await call(method, path);
        expect(res.status, `${method} ${path}`).toBe(404);
        if (method !== 'HEAD') expect(res.json?.error, `${method} ${path}`).toBe('not_found');
      }
    }
    for (const [path, allow] of [
      ['/docs/swagger-ui.css', 'GET, HEAD, OPTIONS'],
      ['/docs', 'GET, HEAD, OPTIONS'],
      ['/', 'GET, HEAD, OPTIONS'],
      ['/v1/health', 'GET, HEAD, OPTIONS'],
      ['/v1/kv', 'GET, HEAD, OPTIONS'],
    ] as const) {
      const res = await call('POST', path);
      expect([res.status, res.json?.error, res.headers.get('allow')], path).toEqual([405, 'method_not_allowed', allow]);
    }
    const metrics = await appWith({}, { metrics: { observeRequest: () => undefined, render: () => ({ contentType: 'text/plain', body: '' }) } });
    expect((await metrics.call('POST', '/metrics')).status).toBe(405);
  });

  it('every documented operation is routed, and every API route is documented', async () => {
    const { app, call } = await appWith();
    const doc = (await call('GET', '/v1/openapi.json')).json as { paths: Record<string, Record<string, unknown>> };
    for (const [path, ops] of Object.entries(doc.paths)) {
      const concrete = path.replace(/\{[^}]+\}/g, 'x');
      for (const method of Object.keys(ops)) {
        const res = await app.fetch(new Request(`http://local${concrete}`, { method: method.toUpperCase() }));
        expect([404, 405].includes(res.status) && (await res.clone().json()).message.startsWith('no route'), `${method} ${path}`).toBe(false);
        expect(res.status, `${method} ${path}`).not.toBe(405);
      }
    }
    expect(Object.keys(doc.paths).length).toBe(24);
  });

  it('documents 507 (a full disk) on every operation that writes, and not on reads but the backup', async () => {
    const { call } = await appWith();
    const doc = (await call('GET', '/v1/openapi.json')).json as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    for (const [path, ops] of Object.entries(doc.paths)) {
      // The backup first moves the logged writes into lmdb, which a full disk refuses.
      for (const [method, op] of Object.entries(ops)) expect('507' in op.responses, `${method} ${path}`).toBe(method !== 'get' || path === '/v1/admin/backup');
    }
  });
});

describe('helpers', () => {
  it('meterEvents: one Stripe meter event per non-zero metric, stamped at period end or now', () => {
    const row = { tenant_id: 't_1', period: '2024-12', api_calls: 42, bytes_stored: 0, records_produced: 3, vectors_stored: 0, function_ms: 0 };
    const events = meterEvents(row, 'cus_1', Date.UTC(2025, 0, 15));
    expect(events).toEqual([
      { event_name: 'quartz_api_calls', timestamp: Date.UTC(2025, 0, 1) / 1000 - 1, identifier: 't_1:2024-12:api_calls', payload: { stripe_customer_id: 'cus_1', value: '42' } },
      { event_name: 'quartz_records_produced', timestamp: Date.UTC(2025, 0, 1) / 1000 - 1, identifier: 't_1:2024-12:records_produced', payload: { stripe_customer_id: 'cus_1', value: '3' } },
    ]);
    const current = meterEvents({ ...row, period: '2025-01' }, 'cus_1', Date.UTC(2025, 0, 15, 12));
    expect(current[0]!.timestamp).toBe(Date.UTC(2025, 0, 15, 12) / 1000);
  });

  it('resolveServerConfig rejects bad values naming the field', () => {
    expect(() => resolveServerConfig({ version: '1', default_plan: 'gold' })).toThrow(QuartzError);
    expect(() => resolveServerConfig({ version: '1', default_plan: 'gold' })).toThrow(/default_plan 'gold'/);
    expect(() => resolveServerConfig({ version: '1', body_limits: { kv: -1 } })).toThrow(/body_limits\.kv/);
    expect(() => resolveServerConfig({ version: '1', admin_key_hash: 'nope' })).toThrow(/admin_key_hash/);
    expect(() => resolveServerConfig({ version: '1', cors_origins: ['https://app.example.com/'] })).toThrow(/cors_origins\[0\]: 'https:\/\/app\.example\.com\/' is not an origin .*did you mean 'https:\/\/app\.example\.com'\?/);
    expect(resolveServerConfig({ version: '1' })).toMatchObject({ default_plan: 'unlimited', registration_enabled: true, cors_origins: ['*'] });
    // A valid plan name that only Object.prototype has is no configured plan.
    expect(() => resolveServerConfig({ version: '1', default_plan: 'constructor' })).toThrow(/default_plan 'constructor'/);
  });

  it('a plan name only Object.prototype has is not a plan: admin routes refuse it, and a tenant holding it gets the default limits', async () => {
    const { call } = await appWith({ plans: { free: { requests_per_minute: 100 } }, default_plan: 'free' });
    const admin = { authorization: 'Bearer admin-key' };
    const created = await call('POST', '/v1/admin/tenants', { headers: admin, body: '{"email":"p@example.com","plan":"constructor"}' });
    expect(created.status).toBe(400);
    expect(created.json.message).toMatch(/'constructor' is not a configured plan/);
    const { id, key } = await tenantKey('constructor'); // as the engine may hold it (it does not know the plans)
    expect((await call('PATCH', `/v1/admin/tenants/${id}`, { headers: admin, body: '{"plan":"constructor"}' })).status).toBe(400);
    const res = await call('GET', '/v1/usage', { headers: { 'x-api-key': key } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ratelimit-limit')).toBe('100');
  });
});
