/**
 * The HTTP API v1 conformance suite: runs against any live server given its base URL and admin
 * key, so the Node home, workerd and anything else serving the app are held to the same contract
 * (../shared/DESIGN.md, docs/api.md). Each test makes its own tenants through the admin API.
 * Every answer the suite receives is also held to the server's own `/v1/openapi.json`
 * (openapi-checker.ts): status, Content-Type, headers and JSON body as documented.
 *
 * Usage (one line per home):
 *   apiSuite('node', () => ({ baseUrl: server.url, adminKey }));
 */
import { describe, expect, it } from 'vitest';
import { OpenApiChecker } from './openapi-checker.js';

export interface ApiTarget {
  baseUrl: string;
  adminKey: string;
  /** The server's JSON body limit (default 1 MiB, the app's default). */
  jsonBodyLimit?: number;
  /** True when every route's body limit is `jsonBodyLimit` (KV, records and vectors too), so each body route answers 413 past it. */
  oneBodyLimit?: boolean;
}

interface Tenant {
  id: string;
  key: string;
  key_id: string;
}

const MiB = 1024 * 1024;

export function apiSuite(home: string, target: () => ApiTarget): void {
  const url = (path: string) => target().baseUrl.replace(/\/$/, '') + path;
  const admin = () => ({ authorization: `Bearer ${target().adminKey}` });
  let seq = 0;
  const unique = (what: string) => `${what}-${Date.now().toString(36)}-${(seq++).toString(36)}`;

  let checker: Promise<OpenApiChecker> | undefined;
  const decoder = new TextDecoder();

  /** One request; its answer is read whole and checked against the served OpenAPI document. */
  async function call(method: string, path: string, init: { body?: unknown; raw?: BodyInit; headers?: Record<string, string>; key?: string } = {}) {
    const headers: Record<string, string> = { ...init.headers };
    if (init.key !== undefined) headers.authorization = `Bearer ${init.key}`;
    let body: BodyInit | undefined = init.raw;
    if (init.body !== undefined) {
      body = JSON.stringify(init.body);
      headers['content-type'] ??= 'application/json';
    }
    // A streamed body needs half-duplex fetch.
    const res = await fetch(url(path), { method, headers, body, duplex: 'half' } as RequestInit);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const text = decoder.decode(bytes);
    (await (checker ??= OpenApiChecker.load(target().baseUrl))).assert({ method, target: path, status: res.status, headers: res.headers, body: text });
    let json: any;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, bytes, json };
  }

  async function tenant(plan = 'unlimited', extra: Record<string, unknown> = {}): Promise<Tenant> {
    const res = await call('POST', '/v1/admin/tenants', { body: { email: `${unique('t')}@example.com`, plan, ...extra }, headers: admin() });
    expect(res.status, res.text).toBe(201);
    return { id: res.json.tenant.id, key: res.json.api_key, key_id: res.json.key_id };
  }

  function expectError(res: { status: number; json: any; headers: Headers }, status: number, code: string): void {
    expect(res.status, JSON.stringify(res.json)).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.json.error).toBe(code);
    expect(typeof res.json.message).toBe('string');
    expect(res.json.message.length).toBeGreaterThan(0);
  }

  describe(`HTTP API v1 conformance (${home})`, () => {
    describe('system', () => {
      it('GET /v1/health answers status, version and uptime', async () => {
        const res = await call('GET', '/v1/health');
        expect(res.status).toBe(200);
        expect(res.json.status).toBe('ok');
        expect(typeof res.json.version).toBe('string');
        expect(Number.isInteger(res.json.uptime_s)).toBe(true);
        // A load balancer's or uptime checker's own parameters (a cache buster) are ignored, never a 400 that reads as down.
        for (const query of ['?check=1', '?_=1733616000000', '?x&y=2&x=3', '?%FF=1']) {
          const checked = await call('GET', `/v1/health${query}`);
          expect(checked.status, query).toBe(200);
          expect(checked.json.status).toBe('ok');
        }
      });

      it('GET /v1/openapi.json documents every v1 route and no function stubs', async () => {
        const res = await call('GET', '/v1/openapi.json');
        expect(res.status).toBe(200);
        expect(res.json.openapi).toMatch(/^3\.1/);
        const paths = res.json.paths as Record<string, Record<string, unknown>>;
        const expected: Array<[string, string]> = [
          ['/v1/health', 'get'],
          ['/v1/openapi.json', 'get'],
          ['/v1/auth/register', 'post'],
          ['/v1/kv/{key}', 'put'],
          ['/v1/kv/{key}', 'get'],
          ['/v1/kv/{key}', 'delete'],
          ['/v1/kv', 'get'],
          ['/v1/collections', 'post'],
          ['/v1/collections', 'get'],
          ['/v1/collections/{c}', 'get'],
          ['/v1/collections/{c}', 'delete'],
          ['/v1/collections/{c}/upsert', 'post'],
          ['/v1/collections/{c}/query', 'post'],
          ['/v1/collections/{c}/vectors/{id}', 'get'],
          ['/v1/collections/{c}/vectors', 'get'],
          ['/v1/collections/{c}/vectors/{id}', 'delete'],
          ['/v1/topics', 'post'],
          ['/v1/topics', 'get'],
          ['/v1/topics/{t}', 'get'],
          ['/v1/topics/{t}', 'delete'],
          ['/v1/topics/{t}/records', 'post'],
          ['/v1/topics/{t}/partitions/{p}/records', 'get'],
          ['/v1/groups', 'get'],
          ['/v1/groups/{g}/offsets', 'post'],
          ['/v1/groups/{g}/offsets', 'get'],
          ['/v1/usage', 'get'],
          ['/v1/admin/tenants', 'post'],
          ['/v1/admin/tenants/{id}', 'get'],
          ['/v1/admin/tenants/{id}', 'patch'],
          ['/v1/admin/tenants/{id}/keys', 'get'],
          ['/v1/admin/tenants/{id}/keys', 'post'],
          ['/v1/admin/tenants/{id}/keys/{key_id}', 'delete'],
          ['/v1/admin/usage/export', 'get'],
          ['/v1/admin/backup', 'get'],
        ];
        for (const [path, method] of expected) expect(paths[path]?.[method], `${method} ${path}`).toBeDefined();
        // A path parameter that is not valid percent-encoded UTF-8 is refused with 400 on every route.
        for (const [path, method] of expected) {
          if (path.includes('{')) expect(Object.keys((paths[path]![method] as { responses: object }).responses), `${method} ${path}`).toContain('400');
        }
        expect(Object.keys(paths).filter((p) => p.includes('function') || p.startsWith('/v1/fn'))).toEqual([]);
      });

      it('/docs is an offline Swagger UI page pointing at the document', async () => {
        const res = await call('GET', '/docs');
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/text\/html/);
        expect(res.text).toContain('/docs/swagger-ui-bundle.js');
        expect(res.text).toContain('/docs/swagger-ui.css');
        expect(res.text).not.toMatch(/https?:\/\//);
        const init = await call('GET', '/docs/init.js');
        expect(init.status).toBe(200);
        expect(init.text).toContain('/v1/openapi.json');
      });

      it('unknown routes are 404 JSON, wrong methods 405 with Allow', async () => {
        expectError(await call('GET', '/v1/no-such-thing'), 404, 'not_found');
        expectError(await call('POST', '/no-such-file'), 404, 'not_found');
        expectError(await call('DELETE', '/docs/no-such-asset.js'), 404, 'not_found');
        const wrong = await call('DELETE', '/v1/health');
        expectError(wrong, 405, 'method_not_allowed');
        expect(wrong.headers.get('allow')).toContain('GET');
        const t = await tenant();
        const patchKv = await call('PATCH', '/v1/kv/some/key', { key: t.key, raw: 'x' });
        expectError(patchKv, 405, 'method_not_allowed');
        expect(patchKv.headers.get('allow')).toMatch(/PUT/);
      });

      it('CORS preflight allows the API headers and exposes rate-limit headers and ETag', async () => {
        const res = await fetch(url('/v1/kv/x'), {
          method: 'OPTIONS',
          headers: { origin: 'https://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization,if-match' },
        });
        expect(res.status).toBeLessThan(300);
        expect(res.headers.get('access-control-allow-origin')).toBeTruthy();
        expect(res.headers.get('access-control-allow-methods')).toMatch(/PUT/);
        const get = await call('GET', '/v1/health', { headers: { origin: 'https://app.example' } });
        const exposed = (get.headers.get('access-control-expose-headers') ?? '').toLowerCase();
        for (const h of ['etag', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'retry-after']) expect(exposed).toContain(h);
      });
    });

    describe('auth', () => {
      it('register returns a qz_ key that works', async () => {
        const res = await call('POST', '/v1/auth/register', { body: { email: `${unique('r')}@example.com` } });
        if (res.status === 404) {
          // Registration is off on this server: the error says so.
          expect(res.json.message).toMatch(/registration/);
          return;
        }
        expect(res.status).toBe(201);
        expect(res.json.api_key).toMatch(/^qz_[0-9a-f]{64}$/);
        expect(typeof res.json.user_id).toBe('string');
        expect((await call('GET', '/v1/usage', { key: res.json.api_key })).status).toBe(200);
        // The registered key has an id, so an operator can list and revoke it.
        const keys = await call('GET', `/v1/admin/tenants/${res.json.user_id}/keys`, { headers: admin() });
        expect(keys.json.keys.map((k: any) => k.key_id)).toEqual([res.json.key_id]);
        expect((await call('DELETE', `/v1/admin/tenants/${res.json.user_id}/keys/${res.json.key_id}`, { headers: admin() })).status).toBe(204);
        expectError(await call('GET', '/v1/usage', { key: res.json.api_key }), 401, 'unauthorized');
      });

      it('register accepts JSON sent as form data (curl -d) and names bad fields', async () => {
        const res = await call('POST', '/v1/auth/register', {
          raw: JSON.stringify({ email: `${unique('c')}@example.com` }),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        expect([201, 404]).toContain(res.status);
        if (res.status === 201) expectError(await call('POST', '/v1/auth/register', { body: { email: 42 } }), 400, 'invalid_argument');
      });

      it('missing, malformed, unknown and revoked keys are 401', async () => {
        expectError(await call('GET', '/v1/kv'), 401, 'unauthorized');
        const basic = await call('GET', '/v1/kv', { headers: { authorization: 'Basic abc' } });
        expectError(basic, 401, 'unauthorized');
        expect(basic.json.message, 'a header sent, but not one to read a key from').toMatch(/Authorization header must be "Bearer <key>"/);
        expect((await call('GET', '/v1/kv')).json.message).toMatch(/^missing API key/);
        expectError(await call('GET', '/v1/kv', { key: 'qz_' + '0'.repeat(64) }), 401, 'unauthorized');
        expectError(await call('GET', '/v1/kv', { headers: { 'x-api-key': 'nonsense' } }), 401, 'unauthorized');
        const t = await tenant();
        expect((await call('GET', '/v1/kv', { headers: { 'x-api-key': t.key } })).status).toBe(200);
        const second = await call('POST', `/v1/admin/tenants/${t.id}/keys`, { headers: admin() });
        expect(second.status).toBe(201);
        expect((await call('GET', '/v1/kv', { key: second.json.api_key })).status).toBe(200);
        expect((await call('DELETE', `/v1/admin/tenants/${t.id}/keys/${t.key_id}`, { headers: admin() })).status).toBe(204);
        expectError(await call('GET', '/v1/kv', { key: t.key }), 401, 'unauthorized');
        expect((await call('GET', '/v1/kv', { key: second.json.api_key })).status).toBe(200);
      });

      it('admin routes need the admin key, not a tenant key', async () => {
        const t = await tenant();
        expectError(await call('POST', '/v1/admin/tenants', { body: { email: 'x@example.com' } }), 401, 'unauthorized');
        expectError(await call('POST', '/v1/admin/tenants', { body: { email: 'x@example.com' }, key: t.key }), 401, 'unauthorized');
        expectError(await call('GET', '/v1/admin/usage/export', { key: 'wrong' }), 401, 'unauthorized');
      });
    });

    describe('KV', () => {
      it('put/get keep bytes and content type; keys may contain / raw or encoded', async () => {
        const t = await tenant();
        const put = await call('PUT', '/v1/kv/user/42', { key: t.key, raw: '{"name":"Ada"}', headers: { 'content-type': 'application/json' } });
        expect(put.status).toBe(200);
        expect(put.headers.get('etag')).toMatch(/^"\d+"$/);
        const get = await call('GET', '/v1/kv/user%2F42', { key: t.key });
        expect(get.status).toBe(200);
        expect(get.headers.get('content-type')).toBe('application/json');
        expect(get.headers.get('etag')).toBe(put.headers.get('etag'));
        expect(get.text).toBe('{"name":"Ada"}');
        const bytes = new Uint8Array([0, 1, 2, 255, 254]);
        expect((await call('PUT', '/v1/kv/bin', { key: t.key, raw: bytes })).status).toBe(200);
        const bin = await call('GET', '/v1/kv/bin', { key: t.key });
        expect(bin.headers.get('content-type')).toBe('application/octet-stream');
        expect(bin.bytes).toEqual(bytes);
      });

      it('a key path that is not valid percent-encoded UTF-8 is 400, never stored', async () => {
        const t = await tenant();
        expectError(await call('PUT', '/v1/kv/bad%FF', { key: t.key, raw: 'x' }), 400, 'invalid_argument');
        expectError(await call('GET', '/v1/kv/bad%G1', { key: t.key }), 400, 'invalid_argument');
        expect((await call('GET', '/v1/kv', { key: t.key })).json.keys).toEqual([]);
        expect((await call('PUT', '/v1/kv/100%25', { key: t.key, raw: 'x' })).status).toBe(200);
        expect((await call('GET', '/v1/kv', { key: t.key })).json.keys.map((k: any) => k.key)).toEqual(['100%']);
        // the same rule for a text query parameter: an undecodable one is not taken as literal text
        for (const q of ['prefix=%ED%A0%80', 'prefix=bad%FF', 'cursor=%G1', 'limit=5&prefix=a%E2%82']) {
          expectError(await call('GET', `/v1/kv?${q}`, { key: t.key }), 400, 'invalid_argument');
        }
        expectError(await call('GET', '/v1/collections/none/vectors?cursor=%FF', { key: t.key }), 400, 'invalid_argument');
        expectError(await call('GET', '/v1/groups/g/offsets?topic=%FF', { key: t.key }), 400, 'invalid_argument');
        expect((await call('GET', '/v1/kv?prefix=100%25&limit=5', { key: t.key })).json.keys.map((k: any) => k.key)).toEqual(['100%']);
        // A parameter the route does not take is refused whatever its value.
        expect((await call('GET', '/v1/kv?prefix=100%25&x=%FF', { key: t.key })).json.message).toBe("query: unknown parameter 'x'; known: prefix, cursor, limit");
        expect((await call('GET', '/v1/kv?prefix=1+0', { key: t.key })).status).toBe(200);
      });

      it('GET of a missing key is 404; DELETE is 204 then 404', async () => {
        const t = await tenant();
        expectError(await call('GET', '/v1/kv/missing', { key: t.key }), 404, 'not_found');
        await call('PUT', '/v1/kv/gone', { key: t.key, raw: 'x' });
        expect((await call('DELETE', '/v1/kv/gone', { key: t.key })).status).toBe(204);
        expectError(await call('GET', '/v1/kv/gone', { key: t.key }), 404, 'not_found');
        expectError(await call('DELETE', '/v1/kv/gone', { key: t.key }), 404, 'not_found');
      });

      it('lists by prefix with a cursor and the item shape', async () => {
        const t = await tenant();
        for (const k of ['a/1', 'a/2', 'a/3', 'b/1']) await call('PUT', `/v1/kv/${k}`, { key: t.key, raw: k, headers: { 'content-type': 'text/plain' } });
        await call('PUT', '/v1/kv/a/ttl?ttl=3600', { key: t.key, raw: 'x' });
        const first = await call('GET', '/v1/kv?prefix=a/&limit=2', { key: t.key });
        expect(first.status).toBe(200);
        expect(first.json.keys).toEqual([
          { key: 'a/1', size: 3, content_type: 'text/plain', expires_at: null },
          { key: 'a/2', size: 3, content_type: 'text/plain', expires_at: null },
        ]);
        expect(typeof first.json.cursor).toBe('string');
        const second = await call('GET', `/v1/kv?prefix=a/&limit=2&cursor=${encodeURIComponent(first.json.cursor)}`, { key: t.key });
        expect(second.json.keys.map((k: any) => k.key)).toEqual(['a/3', 'a/ttl']);
        expect(second.json.keys[1].expires_at).toBeGreaterThan(Date.now() + 3000 * 1000);
        expect(second.json.cursor).toBeNull();
        const all = await call('GET', '/v1/kv', { key: t.key });
        expect(all.json.keys.map((k: any) => k.key)).toEqual(['a/1', 'a/2', 'a/3', 'a/ttl', 'b/1']);
        expectError(await call('GET', `/v1/kv?prefix=b/&cursor=${encodeURIComponent(first.json.cursor)}`, { key: t.key }), 400, 'invalid_argument');
        expectError(await call('GET', '/v1/kv?limit=0', { key: t.key }), 400, 'invalid_argument');
        expectError(await call('PUT', '/v1/kv/x?ttl=soon', { key: t.key, raw: 'x' }), 400, 'invalid_argument');
      });

      it('ETag, If-Match (412 on mismatch), If-None-Match: * (create only), 304', async () => {
        const t = await tenant();
        const created = await call('PUT', '/v1/kv/doc', { key: t.key, raw: 'v1', headers: { 'if-none-match': '*' } });
        expect(created.status).toBe(200);
        const etag1 = created.headers.get('etag')!;
        expectError(await call('PUT', '/v1/kv/doc', { key: t.key, raw: 'again', headers: { 'if-none-match': '*' } }), 412, 'precondition_failed');
        const updated = await call('PUT', '/v1/kv/doc', { key: t.key, raw: 'v2', headers: { 'if-match': etag1 } });
        expect(updated.status).toBe(200);
        const etag2 = updated.headers.get('etag')!;
        expect(etag2).not.toBe(etag1);
        expectError(await call('PUT', '/v1/kv/doc', { key: t.key, raw: 'lost update', headers: { 'if-match': etag1 } }), 412, 'precondition_failed');
        expectError(await call('DELETE', '/v1/kv/doc', { key: t.key, headers: { 'if-match': etag1 } }), 412, 'precondition_failed');
        expectError(await call('PUT', '/v1/kv/never', { key: t.key, raw: 'x', headers: { 'if-match': etag2 } }), 412, 'precondition_failed');
        const cached = await call('GET', '/v1/kv/doc', { key: t.key, headers: { 'if-none-match': etag2 } });
        expect(cached.status).toBe(304);
        expect((await call('GET', '/v1/kv/doc', { key: t.key })).text).toBe('v2');
        expect((await call('DELETE', '/v1/kv/doc', { key: t.key, headers: { 'if-match': etag2 } })).status).toBe(204);
      });
    });

    describe('vectors', () => {
      it('collections: create, list, describe, upsert, query, get, list vectors, delete', async () => {
        const t = await tenant();
        const created = await call('POST', '/v1/collections', { key: t.key, body: { name: 'docs', dims: 3, metric: 'cosine' } });
        expect(created.status).toBe(201);
        expect(created.json).toMatchObject({ name: 'docs', dims: 3, metric: 'cosine', count: 0 });
        expectError(await call('POST', '/v1/collections', { key: t.key, body: { name: 'docs', dims: 3, metric: 'cosine' } }), 409, 'already_exists');
        const up = await call('POST', '/v1/collections/docs/upsert', {
          key: t.key,
          body: {
            vectors: [
              { id: 'a', values: [1, 0, 0], metadata: { lang: 'en' } },
              { id: 'b', values: [0, 1, 0], metadata: { lang: 'fr' } },
              { id: 'c', values: [0.9, 0.1, 0], metadata: { lang: 'fr' } },
            ],
          },
        });
        expect(up.status).toBe(200);
        expect(up.json).toEqual({ upserted: 3 });
        const q = await call('POST', '/v1/collections/docs/query', { key: t.key, body: { vector: [1, 0, 0], k: 2, include_metadata: true } });
        expect(q.status).toBe(200);
        expect(q.json.matches.map((m: any) => m.id)).toEqual(['a', 'c']);
        expect(q.json.matches[0].metadata).toEqual({ lang: 'en' });
        const filtered = await call('POST', '/v1/collections/docs/query', { key: t.key, body: { vector: [1, 0, 0], k: 3, filter: { lang: 'fr' } } });
        expect(filtered.json.matches.map((m: any) => m.id)).toEqual(['c', 'b']);
        const byId = await call('POST', '/v1/collections/docs/query', { key: t.key, body: { id: 'b', k: 1, include_values: true } });
        expect(byId.json.matches[0]).toMatchObject({ id: 'b', values: [0, 1, 0] });
        const one = await call('GET', '/v1/collections/docs/vectors/a', { key: t.key });
        expect(one.json).toEqual({ id: 'a', values: [1, 0, 0], metadata: { lang: 'en' } });
        const page = await call('GET', '/v1/collections/docs/vectors?limit=2', { key: t.key });
        expect(page.json.vectors).toHaveLength(2);
        expect(typeof page.json.cursor).toBe('string');
        expect((await call('GET', '/v1/collections', { key: t.key })).json.collections.map((c: any) => c.name)).toEqual(['docs']);
        expect((await call('GET', '/v1/collections/docs', { key: t.key })).json.count).toBe(3);
        expect((await call('DELETE', '/v1/collections/docs/vectors/a', { key: t.key })).status).toBe(204);
        expectError(await call('GET', '/v1/collections/docs/vectors/a', { key: t.key }), 404, 'not_found');
        expect((await call('DELETE', '/v1/collections/docs', { key: t.key })).status).toBe(204);
        expectError(await call('GET', '/v1/collections/docs', { key: t.key }), 404, 'not_found');
      });

      it('wrong types and dimensions are 400 naming the field', async () => {
        const t = await tenant();
        const bad = await call('POST', '/v1/collections', { key: t.key, body: { name: 'v', dims: 'three', metric: 'cosine' } });
        expectError(bad, 400, 'invalid_argument');
        expect(bad.json.message).toMatch(/^dims: /);
        // URLs resolve '.' and '..' as path segments: such a collection could never be named again.
        for (const name of ['.', '..']) expectError(await call('POST', '/v1/collections', { key: t.key, body: { name, dims: 2, metric: 'l2' } }), 400, 'invalid_argument');
        await call('POST', '/v1/collections', { key: t.key, body: { name: 'v', dims: 2, metric: 'l2' } });
        const wrongType = await call('POST', '/v1/collections/v/upsert', { key: t.key, body: { vectors: [{ id: 'a', values: [1, 2] }, { id: 'b', values: [1, 'x'] }] } });
        expectError(wrongType, 400, 'invalid_argument');
        expect(wrongType.json.message).toContain('vectors[1].values[1]: expected number');
        const wrongDims = await call('POST', '/v1/collections/v/upsert', { key: t.key, body: { vectors: [{ id: 'a', values: [1, 2, 3] }] } });
        expectError(wrongDims, 400, 'invalid_argument');
      });
    });

    describe('streams', () => {
      it('concurrent creates of one topic or collection: exactly one 201, the others 409', async () => {
        const t = await tenant();
        for (const [path, body] of [
          ['/v1/topics', (i: number) => ({ name: 'racy', partitions: i + 1 })],
          ['/v1/collections', (i: number) => ({ name: 'racy', dims: i + 1, metric: 'l2' })],
        ] as const) {
          const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => call('POST', path, { key: t.key, body: body(i) })));
          const statuses = answers.map((a) => a.status).sort();
          expect(statuses, path).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
          // What exists is what the one 201 said.
          const won = answers.find((a) => a.status === 201)!.json;
          expect((await call('GET', `${path}/racy`, { key: t.key })).json).toMatchObject(won);
        }
      });

      it('topics: create, list, describe, delete; system names refused', async () => {
        const t = await tenant();
        const created = await call('POST', '/v1/topics', { key: t.key, body: { name: 'orders', partitions: 3, retention_ms: 3_600_000 } });
        expect(created.status).toBe(201);
        expect(created.json).toMatchObject({ name: 'orders', partitions: 3, retention_ms: 3_600_000 });
        expectError(await call('POST', '/v1/topics', { key: t.key, body: { name: 'orders', partitions: 1 } }), 409, 'already_exists');
        expectError(await call('POST', '/v1/topics', { key: t.key, body: { name: '__system', partitions: 1 } }), 400, 'invalid_argument');
        expect((await call('GET', '/v1/topics', { key: t.key })).json.topics.map((x: any) => x.name)).toEqual(['orders']);
        const described = await call('GET', '/v1/topics/orders', { key: t.key });
        expect(described.json.partition_info).toHaveLength(3);
        // A description's settings, compression among them, create the same topic again.
        const { created_at: _at, partition_info: _info, ...settings } = described.json;
        const copy = await call('POST', '/v1/topics', { key: t.key, body: { ...settings, name: 'orders-copy', compression: 'none' } });
        expect(copy.status).toBe(201);
        expect(copy.json).toMatchObject({ ...settings, name: 'orders-copy', compression: 'none' });
        expect((await call('GET', '/v1/topics/orders-copy', { key: t.key })).json.compression).toBe('none');
        expect((await call('DELETE', '/v1/topics/orders-copy', { key: t.key })).status).toBe(204);
        expect((await call('DELETE', '/v1/topics/orders', { key: t.key })).status).toBe(204);
        const gone = await call('GET', '/v1/topics/orders', { key: t.key });
        expectError(gone, 404, 'not_found');
        // docs/api.md's example error body.
        expect(gone.json).toEqual({ error: 'not_found', message: "topic 'orders' does not exist" });
      });

      it('produce and consume with per-record utf8/base64 encoding and headers', async () => {
        const t = await tenant();
        await call('POST', '/v1/topics', { key: t.key, body: { name: 'events', partitions: 1 } });
        const produced = await call('POST', '/v1/topics/events/records', {
          key: t.key,
          body: {
            records: [
              { key: 'user-1', value: '{"n":1}', headers: [{ key: 'source', value: 'web' }] },
              { value: 'AAEC/w==', encoding: 'base64' },
              { key: null, value: null },
            ],
          },
        });
        expect(produced.status).toBe(200);
        expect(produced.json.offsets).toEqual([
          { partition: 0, offset: 0 },
          { partition: 0, offset: 1 },
          { partition: 0, offset: 2 },
        ]);
        const read = await call('GET', '/v1/topics/events/partitions/0/records?offset=0&max_records=10', { key: t.key });
        expect(read.status).toBe(200);
        expect(read.json.next_offset).toBe(3);
        expect(read.json.high_watermark).toBe(3);
        expect(read.json.log_start_offset).toBe(0);
        const [r0, r1, r2] = read.json.records;
        expect(r0).toMatchObject({ offset: 0, key: 'user-1', value: '{"n":1}', headers: [{ key: 'source', value: 'web' }], encoding: 'utf8' });
        expect(typeof r0.timestamp).toBe('number');
        expect(r1).toMatchObject({ offset: 1, key: null, value: 'AAEC/w==', encoding: 'base64' });
        expect(r2).toMatchObject({ offset: 2, key: null, value: null });
        const tail = await call('GET', '/v1/topics/events/partitions/0/records?offset=3', { key: t.key });
        expect(tail.json.records).toEqual([]);
        const beyond = await call('GET', '/v1/topics/events/partitions/0/records?offset=99', { key: t.key });
        expectError(beyond, 400, 'offset_out_of_range');
        // As docs/streams.md shows it.
        expect(beyond.json.message).toBe("offset 99 is out of range for topic 'events' partition 0: valid offsets are 0 to 3");
        expectError(await call('GET', '/v1/topics/events/partitions/5/records', { key: t.key }), 404, 'not_found');
      });

      it('malformed JSON and wrong record types are 400 naming the field', async () => {
        const t = await tenant();
        await call('POST', '/v1/topics', { key: t.key, body: { name: 'bad', partitions: 1 } });
        const malformed = await call('POST', '/v1/topics/bad/records', { key: t.key, raw: '{"records": [', headers: { 'content-type': 'application/json' } });
        expectError(malformed, 400, 'invalid_argument');
        expect(malformed.json.message).toMatch(/JSON/);
        const records = [{ value: 'a' }, { value: 'b' }, { value: 'c' }, { value: 42 }];
        const wrong = await call('POST', '/v1/topics/bad/records', { key: t.key, body: { records } });
        expectError(wrong, 400, 'invalid_argument');
        expect(wrong.json.message).toContain('records[3].value: expected string');
        const b64 = await call('POST', '/v1/topics/bad/records', { key: t.key, body: { records: [{ value: '***', encoding: 'base64' }] } });
        expectError(b64, 400, 'invalid_argument');
        expect(b64.json.message).toContain('records[0].value');
        const topicType = await call('POST', '/v1/topics', { key: t.key, body: { name: 'x', partitions: '3' } });
        expectError(topicType, 400, 'invalid_argument');
        expect(topicType.json.message).toMatch(/^partitions: /);
        // Nothing was appended by the refused batches.
        expect((await call('GET', '/v1/topics/bad', { key: t.key })).json.partition_info[0].high_watermark).toBe(0);
      });

      it('a long-poll with max_wait_ms=10000 returns the record soon after it is produced', async () => {
        const t = await tenant();
        await call('POST', '/v1/topics', { key: t.key, body: { name: 'live', partitions: 1 } });
        // Calls are metered at auth, before the route runs: /v1/usage counting one call more than its
        // own shows the server has taken the poll. (A fixed sleep could end first on a busy machine,
        // and the poll then found the record without waiting for it.)
        const usageCalls = async () => (await call('GET', '/v1/usage', { key: t.key })).json.api_calls as number;
        let own = await usageCalls();
        const started = Date.now();
        const poll = call('GET', '/v1/topics/live/partitions/0/records?offset=0&max_wait_ms=10000', { key: t.key });
        while ((await usageCalls()) < ++own + 1) await new Promise((r) => setTimeout(r, 10));
        const produced = await call('POST', '/v1/topics/live/records', { key: t.key, body: { records: [{ value: 'hello' }] } });
        expect(produced.status).toBe(200);
        const acked = Date.now();
        const res = await poll;
        const returned = Date.now();
        expect(res.status).toBe(200);
        expect(res.json.records.map((r: any) => r.value)).toEqual(['hello']);
        // It answered because the record arrived, not because the wait ran out; and soon after it
        // (typically within 100 ms; the bound leaves room for a loaded 2-core machine).
        expect(returned - started).toBeLessThan(10_000);
        expect(returned - acked).toBeLessThan(3000);
      });

      it('consumer groups: commit, list, offsets with lag', async () => {
        const t = await tenant();
        await call('POST', '/v1/topics', { key: t.key, body: { name: 'jobs', partitions: 2 } });
        await call('POST', '/v1/topics/jobs/records', { key: t.key, body: { records: [0, 1, 2, 3, 4].map((i) => ({ value: `j${i}`, partition: i % 2 })) } });
        expect((await call('POST', '/v1/groups/workers/offsets', { key: t.key, body: { topic: 'jobs', partition: 0, offset: 1, metadata: 'host-7 \u{1F600}' } })).status).toBe(204);
        expect((await call('GET', '/v1/groups', { key: t.key })).json.groups).toEqual(['workers']);
        const offsets = await call('GET', '/v1/groups/workers/offsets?topic=jobs', { key: t.key });
        expect(offsets.status).toBe(200);
        // The metadata comes back as committed (it was stored and never answered).
        expect(offsets.json.offsets).toEqual([
          { topic: 'jobs', partition: 0, offset: 1, metadata: 'host-7 \u{1F600}', high_watermark: 3, lag: 2 },
          { topic: 'jobs', partition: 1, offset: null, metadata: null, high_watermark: 2, lag: null },
        ]);
        expect((await call('POST', '/v1/groups/workers/offsets', { key: t.key, body: { topic: 'jobs', partition: 0, offset: 2 } })).status).toBe(204);
        expect((await call('GET', '/v1/groups/workers/offsets?topic=jobs', { key: t.key })).json.offsets[0]).toMatchObject({ offset: 2, metadata: null });
        const bad = await call('POST', '/v1/groups/workers/offsets', { key: t.key, body: { topic: 'jobs', partition: 0, offset: -1 } });
        expectError(bad, 400, 'invalid_argument');
        expect(bad.json.message).toMatch(/^offset: /);
        expectError(await call('POST', '/v1/groups/workers/offsets', { key: t.key, body: { topic: 'jobs', partition: 0, offset: 99 } }), 400, 'offset_out_of_range');
      });

      it('consumer groups: commits several partitions in one request, all or none', async () => {
        const t = await tenant();
        await call('POST', '/v1/topics', { key: t.key, body: { name: 'jobs', partitions: 3 } });
        await call('POST', '/v1/topics/jobs/records', { key: t.key, body: { records: [0, 1, 2, 3, 4].map((i) => ({ value: `j${i}`, partition: i % 3 })) } });
        const commit = (body: unknown) => call('POST', '/v1/groups/batch/offsets', { key: t.key, body });
        const committed = async () => (await call('GET', '/v1/groups/batch/offsets?topic=jobs', { key: t.key })).json.offsets.map((o: { offset: number | null }) => o.offset);
        const bad = await commit({ topic: 'jobs', offsets: [{ partition: 0, offset: 1 }, { partition: 1, offset: -1 }] });
        expectError(bad, 400, 'invalid_argument');
        expect(bad.json.message).toMatch(/^offsets\[1\]\.offset: /);
        expectError(await commit({ topic: 'jobs', offsets: [{ partition: 0, offset: 1 }, { partition: 1, offset: 9 }] }), 400, 'offset_out_of_range');
        expectError(await commit({ topic: 'jobs', offsets: [{ partition: 0, offset: 1 }, { partition: 5, offset: 0 }] }), 404, 'not_found');
        expectError(await commit({ topic: 'jobs', offsets: [{ partition: 0, offset: 1 }, { partition: 0, offset: 2 }] }), 400, 'invalid_argument');
        expectError(await commit({ topic: 'jobs', offsets: [] }), 400, 'invalid_argument');
        expectError(await commit({ topic: 'jobs', partition: 0, offset: 1, offsets: [{ partition: 1, offset: 1 }] }), 400, 'invalid_argument');
        expectError(await commit({ topic: 'nope', offsets: [{ partition: 0, offset: 0 }] }), 404, 'not_found');
        expect(await committed()).toEqual([null, null, null]);
        expect((await commit({ topic: 'jobs', offsets: [{ partition: 2, offset: 1, metadata: 'm' }, { partition: 0, offset: 2 }] })).status).toBe(204);
        expect(await committed()).toEqual([2, null, 1]);
        expect((await call('GET', '/v1/groups', { key: t.key })).json.groups).toEqual(['batch']);
      });
    });

    describe('unknown fields', () => {
      it('a misspelt field of a create or config body is 400 naming it and the field it resembles; nothing changes', async () => {
        const t = await tenant();
        const refused = async (method: string, path: string, body: unknown, message: string, headers?: Record<string, string>) => {
          const res = await call(method, path, { key: headers === undefined ? t.key : undefined, headers, body });
          expectError(res, 400, 'invalid_argument');
          expect(res.json.message, path).toBe(message);
        };
        await refused('POST', '/v1/topics', { name: 'orders', partitons: 3 }, "body: unknown field 'partitons'; did you mean 'partitions'?");
        await refused('POST', '/v1/topics', { name: 'orders', retentionMs: 60_000 }, "body: unknown field 'retentionMs'; did you mean 'retention_ms'?");
        await refused('POST', '/v1/topics', { name: 'orders', compresion: 'none' }, "body: unknown field 'compresion'; did you mean 'compression'?");
        await refused('POST', '/v1/topics', { name: 'orders', compression: 'zstd' }, 'compression: Invalid option: expected one of "lz4"|"none"');
        expect((await call('GET', '/v1/topics', { key: t.key })).json.topics).toEqual([]);
        await refused('POST', '/v1/collections', { name: 'docs', dims: 3, metric: 'cosine', efConstruction: 400 }, "body: unknown field 'efConstruction'; did you mean 'ef_construction'?");
        await refused('POST', '/v1/collections', { name: 'docs', dims: 3, metric: 'cosine', M: 32 }, "body: unknown field 'M'; did you mean 'm'?");
        expect((await call('GET', '/v1/collections', { key: t.key })).json.collections).toEqual([]);
        expect((await call('POST', '/v1/collections', { key: t.key, body: { name: 'docs', dims: 2, metric: 'l2' } })).status).toBe(201);
        await refused('POST', '/v1/collections/docs/upsert', { vectors: [{ id: 'a', values: [1, 2], metdata: { lang: 'en' } }] }, "vectors[0]: unknown field 'metdata'; did you mean 'metadata'?");
        expect((await call('GET', '/v1/collections/docs', { key: t.key })).json.count).toBe(0);
        await refused('POST', '/v1/collections/docs/query', { vector: [1, 2], k: 1, fliter: { lang: 'en' } }, "body: unknown field 'fliter'; did you mean 'filter'?");
        expect((await call('POST', '/v1/topics', { key: t.key, body: { name: 'jobs', partitions: 2 } })).status).toBe(201);
        await refused('POST', '/v1/topics/jobs/records', { records: [{ value: 'a' }, { value: 'b', partiton: 1 }] }, "records[1]: unknown field 'partiton'; did you mean 'partition'?");
        await refused('POST', '/v1/topics/jobs/records', { records: [{ value: 'aGk=', encodng: 'base64' }] }, "records[0]: unknown field 'encodng'; did you mean 'encoding'?");
        expect((await call('GET', '/v1/topics/jobs', { key: t.key })).json.partition_info.map((p: { high_watermark: number }) => p.high_watermark)).toEqual([0, 0]);
        await refused('POST', '/v1/groups/g/offsets', { topic: 'jobs', partition: 0, offset: 0, metdata: 'm' }, "body: unknown field 'metdata'; did you mean 'metadata'?");
        await refused('POST', '/v1/groups/g/offsets', { topic: 'jobs', offsets: [{ partition: 0, offset: 0 }, { partition: 1, ofset: 0 }] }, "offsets[1]: unknown field 'ofset'; did you mean 'offset'?; offsets[1].offset: expected number, received undefined");
        expect((await call('GET', '/v1/groups', { key: t.key })).json.groups).toEqual([]);
        await refused('PATCH', `/v1/admin/tenants/${t.id}`, { plna: 'free' }, "body: unknown field 'plna'; did you mean 'plan'?", admin());
        expect((await call('GET', `/v1/admin/tenants/${t.id}`, { headers: admin() })).json.plan).toBe('unlimited');
        await refused('POST', '/v1/admin/tenants', { email: `${unique('t')}@example.com`, plan: 'pro', billing_id: 'cus_1' }, "body: unknown field 'billing_id'; known: email, plan, billing_customer_id", admin());
        const register = await call('POST', '/v1/auth/register', { body: { email: `${unique('r')}@example.com`, emial: 'x' } });
        // 404 where registration is turned off.
        if (register.status !== 404) {
          expectError(register, 400, 'invalid_argument');
          expect(register.json.message).toBe("body: unknown field 'emial'; did you mean 'email'?");
        }
      });

      it('the OpenAPI document says which bodies refuse fields they do not know', async () => {
        const schemas = (await call('GET', '/v1/openapi.json')).json.components.schemas;
        for (const name of ['Register', 'CreateTenant', 'UpdateTenant', 'CreateTopic', 'CommitOffset', 'CommitOffsets', 'CreateCollection', 'Upsert', 'Query', 'Produce']) {
          expect(schemas[name].additionalProperties, name).toBe(false);
        }
        expect(schemas.CommitOffsets.properties.offsets.items.additionalProperties).toBe(false);
        expect(schemas.Upsert.properties.vectors.items.additionalProperties).toBe(false);
        expect(schemas.Produce.properties.records.items.additionalProperties).toBe(false);
        expect(schemas.Produce.properties.records.items.properties.headers.items.additionalProperties).toBe(false);
      });
    });

    describe('unknown query parameters', () => {
      it('a misspelt, unknown or repeated query parameter is 400 naming it and the one it resembles; nothing is done', async () => {
        const t = await tenant();
        const refused = async (method: string, path: string, message: string, init: { raw?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
          const res = await call(method, path, { key: init.headers === undefined ? t.key : undefined, ...init });
          expectError(res, 400, 'invalid_argument');
          expect(res.json.message, `${method} ${path}`).toBe(message);
        };
        // KV: a misspelt ttl stored a key that never expires.
        await refused('PUT', '/v1/kv/k?tll=60', "query: unknown parameter 'tll'; did you mean 'ttl'?", { raw: 'v' });
        await refused('PUT', '/v1/kv/k?ttl=60&ttl=5', "query: parameter 'ttl' is given more than once; send it once", { raw: 'v' });
        await refused('PUT', '/v1/kv/k?=60', "query: unknown parameter ''; known: ttl", { raw: 'v' });
        // ttl has no default to fall back on: without a value it is refused, not taken as "never".
        for (const empty of ['ttl', 'ttl=']) expect((await call('PUT', `/v1/kv/k?${empty}`, { key: t.key, raw: 'v' })).json.message).toMatch(/^ttl: expected a whole number of seconds/);
        expectError(await call('GET', '/v1/kv/k', { key: t.key }), 404, 'not_found');
        expect((await call('PUT', '/v1/kv/k', { key: t.key, raw: 'v' })).status).toBe(200);
        await refused('DELETE', '/v1/kv/k?force=1', "query: unknown parameter 'force'; this route takes no query parameters");
        await refused('GET', '/v1/kv/k?x=1&y=2', "query: unknown parameters 'x', 'y'; this route takes no query parameters");
        const head = await call('HEAD', '/v1/kv/k?x=1', { key: t.key });
        expect([head.status, head.text]).toEqual([400, '']);
        expect((await call('GET', '/v1/kv/k', { key: t.key })).text).toBe('v');
        await refused('GET', '/v1/kv?prefx=k', "query: unknown parameter 'prefx'; did you mean 'prefix'?");
        await refused('GET', '/v1/kv?Limit=1', "query: unknown parameter 'Limit'; did you mean 'limit'?");
        await refused('GET', '/v1/kv?limit=1&limit=2', "query: parameter 'limit' is given more than once; send it once");
        // Empty pairs name nothing; a parameter without a value is as if absent (its default).
        expect((await call('GET', '/v1/kv?&limit=1&&', { key: t.key })).json.keys).toHaveLength(1);
        expect((await call('GET', '/v1/kv?limit&prefix=', { key: t.key })).json.keys).toHaveLength(1);
        // A route that takes none: the partitions asked for in the query were not silently dropped.
        await refused('POST', '/v1/topics?partitions=3', "query: unknown parameter 'partitions'; this route takes no query parameters", { body: { name: 'orders' } });
        expect((await call('GET', '/v1/topics', { key: t.key })).json.topics).toEqual([]);
        await refused('GET', '/v1/topics?limt=1', "query: unknown parameter 'limt'; did you mean 'limit'?");
        // Streams: a misspelt offset read from the log start, on the direct route and the long-poll alike.
        expect((await call('POST', '/v1/topics', { key: t.key, body: { name: 'jobs', partitions: 1 } })).status).toBe(201);
        await call('POST', '/v1/topics/jobs/records', { key: t.key, body: { records: [{ value: 'a' }, { value: 'b' }] } });
        for (const wait of ['', 'max_wait_ms=5&']) {
          await refused('GET', `/v1/topics/jobs/partitions/0/records?${wait}ofset=1`, "query: unknown parameter 'ofset'; did you mean 'offset'?");
          await refused('GET', `/v1/topics/jobs/partitions/0/records?${wait}offset=1&offset=0`, "query: parameter 'offset' is given more than once; send it once");
          await refused('GET', `/v1/topics/jobs/partitions/0/records?${wait}max-records=1`, "query: unknown parameter 'max-records'; did you mean 'max_records'?");
          // An empty offset (a script's `?offset=$OFF` with OFF unset) read the whole log again from its start.
          for (const empty of ['offset=', 'offset', 'offset=&max_records=1']) {
            await refused('GET', `/v1/topics/jobs/partitions/0/records?${wait}${empty}`, 'offset: empty; give the first offset to read, or leave offset out to read from the log start');
          }
        }
        expect((await call('GET', '/v1/topics/jobs/partitions/0/records?max_records=&max_bytes=', { key: t.key })).json.records.map((r: { value: string }) => r.value)).toEqual(['a', 'b']);
        expect((await call('GET', '/v1/topics/jobs/partitions/0/records?offset=1&max_records=1', { key: t.key })).json.records.map((r: { value: string }) => r.value)).toEqual(['b']);
        await refused('GET', '/v1/groups/g/offsets?topc=jobs', "query: unknown parameter 'topc'; did you mean 'topic'?");
        await refused('GET', '/v1/collections?cursr=', "query: unknown parameter 'cursr'; did you mean 'cursor'?");
        await refused('GET', '/v1/admin/usage/export?form=2025-01', "query: unknown parameter 'form'; did you mean 'from'?", { headers: admin() });
        // Auth comes first: no key is 401 whatever the query says.
        expectError(await call('GET', '/v1/kv?limt=1'), 401, 'unauthorized');
      });

      it('the docs page, its assets and preflights take any query', async () => {
        expect((await call('GET', '/docs?v=2')).status).toBe(200);
        expect((await call('GET', '/docs/init.js?v=2')).status).toBe(200);
        expect((await call('OPTIONS', '/v1/kv/k?x=1', { headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } })).status).toBe(204);
      });
    });

    describe('list paging', () => {
      /** Every name a listing answers, page by page, `limit` at a time. */
      async function pages(path: string, field: string, key: string, limit: number, between?: (page: number) => Promise<void>): Promise<string[][]> {
        const out: string[][] = [];
        let cursor: string | null = null;
        do {
          const res = await call('GET', `${path}?limit=${limit}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`, { key });
          expect(res.status, res.text).toBe(200);
          out.push(res.json[field].map((x: any) => (typeof x === 'string' ? x : x.name)));
          cursor = res.json.cursor;
          if (cursor !== null) expect(res.json[field]).toHaveLength(limit);
          await between?.(out.length);
        } while (cursor !== null);
        return out;
      }

      it('topics, collections and groups page by name; a cursor continues after its name amid creates and deletes', async () => {
        const t = await tenant();
        const create = {
          topic: (name: string) => call('POST', '/v1/topics', { key: t.key, body: { name, partitions: 1 } }),
          collection: (name: string) => call('POST', '/v1/collections', { key: t.key, body: { name, dims: 2, metric: 'l2' } }),
        };
        for (const [kind, path, field] of [
          ['topic', '/v1/topics', 'topics'],
          ['collection', '/v1/collections', 'collections'],
        ] as const) {
          for (const name of ['e', 'b', 'd', 'a', 'c']) expect((await create[kind](name)).status).toBe(201);
          expect(await pages(path, field, t.key, 2)).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
          const whole = await call('GET', path, { key: t.key });
          expect(whole.json[field].map((x: any) => x.name)).toEqual(['a', 'b', 'c', 'd', 'e']);
          expect(whole.json.cursor).toBeNull();
          // After the first page: its last name and one before it go, a name before the cursor and one after come.
          const seen = await pages(path, field, t.key, 2, async (page) => {
            if (page !== 1) return;
            for (const gone of ['b', 'a']) expect((await call('DELETE', `${path}/${gone}`, { key: t.key })).status).toBe(204);
            for (const name of ['aa', 'f']) expect((await create[kind](name)).status).toBe(201);
          });
          expect(seen).toEqual([['a', 'b'], ['c', 'd'], ['e', 'f']]);
        }
        await call('POST', '/v1/collections/c/upsert', { key: t.key, body: { vectors: [{ id: 'x', values: [1, 2] }] } });
        const counted = await call('GET', '/v1/collections?limit=1&cursor=' + Buffer.from('aa').toString('base64url'), { key: t.key });
        expect(counted.json.collections).toEqual([expect.objectContaining({ name: 'c', count: 1, dims: 2 })]);

        for (const g of ['g3', 'g1', 'g2']) {
          expect((await call('POST', `/v1/groups/${g}/offsets`, { key: t.key, body: { topic: 'c', partition: 0, offset: 0 } })).status).toBe(204);
        }
        expect(await pages('/v1/groups', 'groups', t.key, 2)).toEqual([['g1', 'g2'], ['g3']]);
        expect(await pages('/v1/groups', 'groups', t.key, 1)).toEqual([['g1'], ['g2'], ['g3']]);
      });

      it('only a cursor the server returned is taken: variants, garbage and over-long cursors are 400 naming cursor', async () => {
        const t = await tenant();
        await call('POST', '/v1/topics', { key: t.key, body: { name: 'a', partitions: 1 } });
        await call('POST', '/v1/collections', { key: t.key, body: { name: 'a', dims: 1, metric: 'l2' } });
        await call('POST', '/v1/collections/a/upsert', { key: t.key, body: { vectors: [{ id: 'a', values: [1] }] } });
        await call('POST', '/v1/groups/a/offsets', { key: t.key, body: { topic: 'a', partition: 0, offset: 0 } });
        await call('PUT', '/v1/kv/a', { key: t.key, raw: 'x' });
        // 'YQ' is the cursor after 'a' on every listing; 'YR' and 'YQ==' decode to 'a' too.
        const refused = ['YR', 'YQ=', 'YQ==', 'YQ%3D%3D', '%20YQ', 'YQ%0A', 'Y', 'YQ!', '*', 'Pz8/', '_w', '7aCA', 'Y'.repeat(5000) + 'Q', 'YWJj'.repeat(1000)];
        for (const path of ['/v1/kv', '/v1/topics', '/v1/collections', '/v1/groups', '/v1/collections/a/vectors']) {
          const ok = await call('GET', `${path}?cursor=YQ`, { key: t.key });
          expect(ok.status, `${path} ${ok.text}`).toBe(200);
          expect(ok.json.cursor).toBeNull();
          for (const cursor of refused) {
            const res = await call('GET', `${path}?cursor=${cursor}`, { key: t.key });
            expectError(res, 400, 'invalid_argument');
            expect(res.json.message, `${path}?cursor=${cursor.slice(0, 20)}`).toMatch(/cursor/);
          }
          for (const limit of ['0', '1001', 'x', '-1']) expectError(await call('GET', `${path}?limit=${limit}`, { key: t.key }), 400, 'invalid_argument');
        }
        // A well-formed cursor of a name no topic or collection could have is not one the server made.
        for (const path of ['/v1/topics', '/v1/collections']) expectError(await call('GET', `${path}?cursor=${Buffer.from('a b').toString('base64url')}`, { key: t.key }), 400, 'invalid_argument');
        expectError(await call('GET', `/v1/groups?cursor=${Buffer.from('a\u0001').toString('base64url')}`, { key: t.key }), 400, 'invalid_argument');
      });
    });

    describe('tenant isolation', () => {
      it("another tenant's key, topic, collection and group are 404 (never 403) and never listed", async () => {
        const a = await tenant();
        const b = await tenant();
        await call('PUT', '/v1/kv/secret', { key: a.key, raw: 'a-only' });
        await call('POST', '/v1/topics', { key: a.key, body: { name: 'private', partitions: 1 } });
        await call('POST', '/v1/topics/private/records', { key: a.key, body: { records: [{ value: 'x' }] } });
        await call('POST', '/v1/collections', { key: a.key, body: { name: 'mine', dims: 2, metric: 'l2' } });
        await call('POST', '/v1/collections/mine/upsert', { key: a.key, body: { vectors: [{ id: 'v', values: [1, 2] }] } });
        await call('POST', '/v1/groups/g1/offsets', { key: a.key, body: { topic: 'private', partition: 0, offset: 1 } });

        expectError(await call('GET', '/v1/kv/secret', { key: b.key }), 404, 'not_found');
        expectError(await call('DELETE', '/v1/kv/secret', { key: b.key }), 404, 'not_found');
        expect((await call('GET', '/v1/kv', { key: b.key })).json.keys).toEqual([]);
        expectError(await call('GET', '/v1/topics/private', { key: b.key }), 404, 'not_found');
        expectError(await call('GET', '/v1/topics/private/partitions/0/records?offset=0', { key: b.key }), 404, 'not_found');
        expectError(await call('POST', '/v1/topics/private/records', { key: b.key, body: { records: [{ value: 'y' }] } }), 404, 'not_found');
        expectError(await call('DELETE', '/v1/topics/private', { key: b.key }), 404, 'not_found');
        expect((await call('GET', '/v1/topics', { key: b.key })).json.topics).toEqual([]);
        expectError(await call('GET', '/v1/collections/mine', { key: b.key }), 404, 'not_found');
        expectError(await call('POST', '/v1/collections/mine/query', { key: b.key, body: { vector: [1, 2], k: 1 } }), 404, 'not_found');
        expectError(await call('GET', '/v1/collections/mine/vectors/v', { key: b.key }), 404, 'not_found');
        expect((await call('GET', '/v1/collections', { key: b.key })).json.collections).toEqual([]);
        expect((await call('GET', '/v1/groups', { key: b.key })).json.groups).toEqual([]);
        expectError(await call('GET', '/v1/groups/g1/offsets?topic=private', { key: b.key }), 404, 'not_found');
        const usageB = await call('GET', '/v1/usage', { key: b.key });
        expect(usageB.json.tenant_id).toBe(b.id);
        expect(usageB.json.records_produced).toBe(0);
        // A's data is intact.
        expect((await call('GET', '/v1/kv/secret', { key: a.key })).text).toBe('a-only');
      });
    });

    describe('the OpenAPI document, operation by operation', () => {
      interface Op {
        method: string;
        template: string;
        guard: 'tenant' | 'admin' | undefined;
        body: boolean;
        /** Its documented query parameters, in the document's order. */
        query: string[];
        /** It takes any query parameter and reads none (`x-quartz-query: ignored`). */
        anyQuery: boolean;
      }
      /** Every documented operation, read from the served document. */
      async function operations(): Promise<Op[]> {
        const paths = (await call('GET', '/v1/openapi.json')).json.paths as Record<string, Record<string, { security?: Array<Record<string, unknown>>; requestBody?: unknown; parameters?: Array<{ name: string; in: string }>; 'x-quartz-query'?: string }>>;
        return Object.entries(paths).flatMap(([template, ops]) =>
          Object.entries(ops).map(([method, op]) => {
            const scheme = Object.keys(op.security?.[0] ?? {})[0];
            const query = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
            return { method: method.toUpperCase(), template, guard: scheme === undefined ? undefined : scheme.startsWith('admin') ? 'admin' : 'tenant', body: op.requestBody !== undefined, query, anyQuery: op['x-quartz-query'] === 'ignored' };
          }),
        );
      }
      // Names of nothing that exists (the tenants are new), so each operation answers its own not-found or bad-input case.
      const absent: Record<string, string> = { key: 'sweep/k', c: 'no-coll', id: 'no-id', t: 'no-topic', p: '0', g: 'no-group', key_id: 'key_none' };
      const concrete = (template: string, value: (name: string) => string) => template.replace(/\{([^}]+)\}/g, (_, name: string) => value(name));
      const bodyOf = (op: Op) => (!op.body ? {} : op.template === '/v1/kv/{key}' ? { raw: 'x' } : { body: {} });

      it('each operation answers as documented: without a key, with its key, with an undecodable path parameter, and to HEAD', async () => {
        const t = await tenant();
        for (const op of await operations()) {
          const path = concrete(op.template, (name) => absent[name]!);
          const keyed = op.guard === 'tenant' ? { key: t.key } : op.guard === 'admin' ? { headers: admin() } : {};
          if (op.guard !== undefined) expectError(await call(op.method, path, bodyOf(op)), 401, 'unauthorized');
          await call(op.method, path, { ...keyed, ...bodyOf(op) });
          if (op.template.includes('{')) expectError(await call(op.method, concrete(op.template, () => 'bad%FF'), { ...keyed, ...bodyOf(op) }), 400, 'invalid_argument');
          if (op.method === 'GET') expect((await call('HEAD', path, keyed)).text, `HEAD ${path}`).toBe('');
        }
      });

      it('the document lists exactly the query parameters each operation takes; each refuses any other and takes each it lists', async () => {
        const t = await tenant();
        const ops = await operations();
        const listed = Object.fromEntries(ops.filter((op) => op.query.length > 0).map((op) => [`${op.method} ${op.template}`, op.query]));
        expect(listed).toEqual({
          'PUT /v1/kv/{key}': ['ttl'],
          'GET /v1/kv': ['prefix', 'cursor', 'limit'],
          'GET /v1/collections': ['cursor', 'limit'],
          'GET /v1/collections/{c}/vectors': ['cursor', 'limit', 'include_metadata', 'include_values'],
          'GET /v1/topics': ['cursor', 'limit'],
          'GET /v1/topics/{t}/partitions/{p}/records': ['offset', 'max_records', 'max_bytes', 'max_wait_ms'],
          'GET /v1/groups': ['cursor', 'limit'],
          'GET /v1/groups/{g}/offsets': ['topic'],
          'GET /v1/admin/usage/export': ['from', 'to'],
        });
        expect(ops.filter((op) => op.anyQuery).map((op) => `${op.method} ${op.template}`)).toEqual(['GET /v1/health']);
        for (const op of ops) {
          const path = concrete(op.template, (name) => absent[name]!);
          const keyed = op.guard === 'tenant' ? { key: t.key } : op.guard === 'admin' ? { headers: admin() } : {};
          const res = await call(op.method, `${path}?zz_unknown=1`, { ...keyed, ...bodyOf(op) });
          if (op.anyQuery) {
            expect(String(res.json?.message), `${op.method} ${op.template}`).not.toMatch(/^query:/);
            continue;
          }
          expectError(res, 400, 'invalid_argument');
          expect(res.json.message, `${op.method} ${op.template}`).toMatch(/^query: unknown parameter 'zz_unknown'; (known: |this route takes no query parameters$)/);
          // Each listed one is taken (an empty value is its default; the checker holds the answer to the document).
          for (const name of op.query) {
            const taken = await call(op.method, `${path}?${name}=`, { ...keyed, ...bodyOf(op) });
            expect(String(taken.json?.message), `${op.method} ${op.template}?${name}=`).not.toMatch(/^query:/);
          }
        }
      });

      it('answers with data in them: optional fields and headers, hono and direct paths alike', async () => {
        const t = await tenant();
        const email = `${unique('dup')}@example.com`;
        expect((await call('POST', '/v1/admin/tenants', { headers: admin(), body: { email } })).status).toBe(201);
        expectError(await call('POST', '/v1/admin/tenants', { headers: admin(), body: { email } }), 409, 'already_exists');
        const registered = await call('POST', '/v1/auth/register', { body: { email } });
        expect([404, 409]).toContain(registered.status);
        expect((await call('GET', `/v1/admin/tenants/${t.id}`, { headers: admin() })).json.id).toBe(t.id);
        // KV: a TTL key (X-Expires-At), a chunked PUT and a PUT with another query (both through hono, not the direct route).
        expect((await call('PUT', '/v1/kv/ttl?ttl=60', { key: t.key, raw: 'x', headers: { 'content-type': 'text/plain' } })).status).toBe(200);
        expect(Number((await call('GET', '/v1/kv/ttl', { key: t.key })).headers.get('x-expires-at'))).toBeGreaterThan(Date.now());
        const chunked = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('chunked'));
            controller.close();
          },
        });
        expect((await call('PUT', '/v1/kv/chunked', { key: t.key, raw: chunked })).json.size).toBe(7);
        expect((await call('PUT', '/v1/kv/q?&ttl=60', { key: t.key, raw: 'y' })).status).toBe(200);
        // Vectors: metadata and values in pages and matches.
        await call('POST', '/v1/collections', { key: t.key, body: { name: 'c', dims: 2, metric: 'l2', m: 8, ef_construction: 50 } });
        await call('POST', '/v1/collections/c/upsert', { key: t.key, body: { vectors: [{ id: 'a', values: [1, 2], metadata: { n: 1, tags: ['x'] } }, { id: 'b', values: [2, 1] }] } });
        const page = await call('GET', '/v1/collections/c/vectors?include_metadata=true&include_values=true&limit=1', { key: t.key });
        expect(page.json.vectors[0]).toMatchObject({ id: 'a', values: [1, 2], metadata: { n: 1, tags: ['x'] } });
        const q = await call('POST', '/v1/collections/c/query', { key: t.key, body: { vector: [1, 2], k: 2, include_metadata: true, include_values: true, threshold: 100, ef: 20 } });
        expect(q.json.matches).toHaveLength(2);
        expect((await call('POST', '/v1/collections/c/query', { key: t.key, body: { id: 'a', k: 1, filter: { n: { $gte: 1 } } } })).json.matches).toHaveLength(1);
        // A vector upserted without metadata, read alone and in a page.
        expect((await call('GET', '/v1/collections/c/vectors/b', { key: t.key })).json.id).toBe('b');
        expect((await call('GET', '/v1/collections/c/vectors?include_metadata=true', { key: t.key })).json.vectors).toHaveLength(2);
        // Streams: a chunked produce and a long-poll consume (hono routes), groups without a topic.
        await call('POST', '/v1/topics', { key: t.key, body: { name: 's', partitions: 2, retention_ms: -1, segment_bytes: 4096 } });
        const records = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode(JSON.stringify({ records: [{ key: 'k', value: 'v', headers: [{ key: 'h', value: null }], partition: 1 }] })));
            controller.close();
          },
        });
        expect((await call('POST', '/v1/topics/s/records', { key: t.key, raw: records })).json.offsets).toEqual([{ partition: 1, offset: 0 }]);
        const polled = await call('GET', '/v1/topics/s/partitions/1/records?max_wait_ms=5&max_bytes=100000', { key: t.key });
        expect(polled.json.records[0]).toMatchObject({ key: 'k', value: 'v', headers: [{ key: 'h', value: null }] });
        await call('POST', '/v1/groups/g/offsets', { key: t.key, body: { topic: 's', partition: 1, offset: 1, metadata: 'm' } });
        expect((await call('GET', '/v1/groups/g/offsets', { key: t.key })).json.offsets).toHaveLength(2);
        expect((await call('GET', '/v1/topics/s', { key: t.key })).json.partition_info).toHaveLength(2);
      });

      it('a method a documented path lacks is 405 with Allow naming exactly the documented methods', async () => {
        const t = await tenant();
        const ops = await operations();
        for (const template of new Set(ops.map((op) => op.template))) {
          const documented = ops.filter((op) => op.template === template).map((op) => op.method);
          for (const method of ['GET', 'PUT', 'POST', 'PATCH', 'DELETE'].filter((m) => !documented.includes(m))) {
            expectError(await call(method, concrete(template, (name) => absent[name]!), { key: t.key, raw: method === 'GET' ? undefined : '{}' }), 405, 'method_not_allowed');
          }
          // HEAD comes with GET; without one it is refused like any other method (the checker reads the Allow header).
          if (!documented.includes('GET')) expect((await call('HEAD', concrete(template, (name) => absent[name]!), { key: t.key })).status).toBe(405);
        }
      });

      it('every tenant operation answers 429 as documented, with Retry-After and the rate-limit headers', async () => {
        const t = await tenant('free');
        for (const op of (await operations()).filter((o) => o.guard === 'tenant')) {
          const path = concrete(op.template, (name) => absent[name]!);
          // The bucket refills one token per 600 ms on free: call until it is empty again.
          let res = await call(op.method, path, { key: t.key, ...bodyOf(op) });
          for (let i = 0; i < 2000 && res.status !== 429; i++) res = await call(op.method, path, { key: t.key, ...bodyOf(op) });
          expectError(res, 429, 'rate_limited');
        }
      });

      it('bodies over the JSON limit get a documented answer on every operation that takes a body', async () => {
        const t = await tenant();
        const limit = target().jsonBodyLimit ?? MiB;
        const big = JSON.stringify({ name: 'x'.repeat(limit + 10) });
        for (const op of (await operations()).filter((o) => o.body)) {
          const keyed = op.guard === 'tenant' ? { key: t.key } : op.guard === 'admin' ? { headers: admin() } : {};
          const res = await call(op.method, concrete(op.template, (name) => absent[name]!), { ...keyed, raw: big });
          if (target().oneBodyLimit === true && op.template !== '/v1/auth/register') expectError(res, 413, 'too_large');
        }
      });
    });

    describe('limits and metering', () => {
      it('free plan: rate-limit headers on every response, then 429 with Retry-After', async () => {
        const t = await tenant('free');
        const first = await call('GET', '/v1/kv', { key: t.key });
        expect(first.status).toBe(200);
        const limit = Number(first.headers.get('x-ratelimit-limit'));
        expect(limit).toBeGreaterThan(0);
        expect(Number(first.headers.get('x-ratelimit-remaining'))).toBe(limit - 1);
        expect(Number(first.headers.get('x-ratelimit-reset'))).toBeGreaterThanOrEqual(0);
        // Error responses carry the headers too.
        const missing = await call('GET', '/v1/kv/nope', { key: t.key });
        expect(missing.status).toBe(404);
        expect(missing.headers.get('x-ratelimit-limit')).toBe(String(limit));
        let last = missing;
        // The bucket refills one token per minute/limit (600 ms on free): a slow machine earns a few
        // back while the loop runs, so allow more calls than the limit; an endless refill would need
        // each call to take longer than a refill.
        for (let i = 0; i < limit * 10 && last.status !== 429; i++) last = await call('GET', '/v1/kv', { key: t.key });
        expectError(last, 429, 'rate_limited');
        expect(Number(last.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        expect(last.headers.get('x-ratelimit-remaining')).toBe('0');
        // Unlimited plans carry no rate-limit headers.
        const u = await tenant('unlimited');
        expect((await call('GET', '/v1/kv', { key: u.key })).headers.get('x-ratelimit-limit')).toBeNull();
      });

      it('bodies over the limit are 413, declared or chunked', async () => {
        const t = await tenant();
        const limit = target().jsonBodyLimit ?? MiB;
        const big = JSON.stringify({ name: 'x'.repeat(limit + 10) });
        expectError(await call('POST', '/v1/topics', { key: t.key, raw: big, headers: { 'content-type': 'application/json' } }), 413, 'too_large');
        const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
        let sent = 0;
        const stream = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent > limit + chunk.length) controller.close();
            else {
              sent += chunk.length;
              controller.enqueue(chunk);
            }
          },
        });
        expectError(await call('POST', '/v1/topics', { key: t.key, raw: stream }), 413, 'too_large');
      });

      it('GET /v1/usage counts calls and produced records for the current period', async () => {
        const t = await tenant();
        await call('POST', '/v1/topics', { key: t.key, body: { name: 'm', partitions: 1 } });
        await call('POST', '/v1/topics/m/records', { key: t.key, body: { records: [{ value: 'a' }, { value: 'b' }] } });
        const usage = await call('GET', '/v1/usage', { key: t.key });
        expect(usage.status).toBe(200);
        expect(usage.json.tenant_id).toBe(t.id);
        expect(usage.json.period).toMatch(/^\d{4}-\d{2}$/);
        expect(usage.json.api_calls).toBeGreaterThanOrEqual(2);
        expect(usage.json.records_produced).toBe(2);
      });
    });

    describe('admin', () => {
      it('create with a plan, patch plan and billing id; unknown plans are 400', async () => {
        const t = await tenant('unlimited');
        const patched = await call('PATCH', `/v1/admin/tenants/${t.id}`, { headers: admin(), body: { plan: 'pro', billing_customer_id: 'cus_test' } });
        expect(patched.status).toBe(200);
        expect(patched.json).toMatchObject({ id: t.id, plan: 'pro', billing_customer_id: 'cus_test' });
        expect((await call('GET', '/v1/kv', { key: t.key })).headers.get('x-ratelimit-limit')).not.toBeNull();
        expectError(await call('PATCH', `/v1/admin/tenants/${t.id}`, { headers: admin(), body: { plan: 'platinum' } }), 400, 'invalid_argument');
        expectError(await call('PATCH', '/v1/admin/tenants/t_doesnotexist', { headers: admin(), body: { plan: 'pro' } }), 404, 'not_found');
        expectError(await call('POST', '/v1/admin/tenants', { headers: admin(), body: { email: 'bad' } }), 400, 'invalid_argument');
      });

      it('usage export is JSONL of Stripe meter events for tenants with a billing id', async () => {
        const customer = `cus_${unique('x').replace(/-/g, '')}`;
        const t = await tenant('unlimited', { billing_customer_id: customer });
        await call('GET', '/v1/kv', { key: t.key });
        await call('GET', '/v1/kv', { key: t.key });
        const res = await call('GET', '/v1/admin/usage/export', { headers: admin() });
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/ndjson/);
        const lines = res.text.split('\n').filter((l) => l !== '');
        const events = lines.map((l) => JSON.parse(l));
        const mine = events.filter((e) => e.payload.stripe_customer_id === customer);
        const calls = mine.find((e) => e.event_name === 'quartz_api_calls');
        expect(calls).toBeDefined();
        expect(Number(calls.payload.value)).toBeGreaterThanOrEqual(2);
        expect(typeof calls.payload.value).toBe('string');
        expect(Number.isInteger(calls.timestamp)).toBe(true);
        expect(calls.timestamp).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 300);
        for (const e of events) expect(Object.keys(e).sort()).toEqual(['event_name', 'identifier', 'payload', 'timestamp']);
        expectError(await call('GET', '/v1/admin/usage/export?from=January', { headers: admin() }), 400, 'invalid_argument');
      });

      it('backup streams a snapshot or says 501', async () => {
        const res = await call('GET', '/v1/admin/backup', { headers: admin() });
        expect([200, 501]).toContain(res.status);
        if (res.status === 200) expect(res.bytes.byteLength).toBeGreaterThan(0);
        else expect(res.json.error).toBe('not_implemented');
      });
    });
  });
}
