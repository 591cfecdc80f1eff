import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../core/random-testing.js';
import '../../node/core.js';
import { createTestEngine } from '../../engine/testing.js';
import { ManualClock } from '../../ports/manual-clock.js';
import type { StorageProvider } from '../../ports/storage.js';
import { createApp } from '../app.js';
import { resolveServerConfig } from '../config.js';
import { decimal, etagOf, parseEtags } from './kv.js';

describe('decimal', () => {
  it('writes what String() writes for every integer from 0 to 2^53 - 1', () => {
    const edges = [0, 1, 9, 10, 999_999_999, 1e9, 1e9 + 1, 1e9 + 999, 2e9 - 1, 1_796_539_641_777, 1e15, 2 ** 53 - 1];
    const rand = seededRandom(3);
    const random = Array.from({ length: 2000 }, (_, i) => Math.floor(rand() * 10 ** (1 + (i % 16))));
    for (const n of [...edges, ...random]) expect(decimal(n), String(n)).toBe(String(n));
  });

  it('makes the ETag of a version', () => {
    expect(etagOf(1_796_539_000_042)).toBe('"1796539000042"');
  });

  it('makes each version its own ETag, again and again, versions that share a slot of the kept ETags included', () => {
    // 1,024 slots by the low bits: these pairs share one.
    const versions = [1_796_539_000_042, 1_796_539_000_042 + 1024, 1_796_539_000_042 + 4096, 5, 5 + 1024, 0, 2 ** 53 - 1, 2 ** 53 - 1 - 1024];
    for (let round = 0; round < 3; round++) {
      for (const v of versions) expect(etagOf(v), String(v)).toBe(`"${String(v)}"`);
      for (const v of [...versions].reverse()) expect(etagOf(v), String(v)).toBe(`"${String(v)}"`);
    }
  });
});

describe('parseEtags', () => {
  it('reads `*` and tags; weak tags only for the weak comparison; tags no version can be never match', () => {
    expect(parseEtags(' * ', 'strong')).toBe('*');
    expect(parseEtags('"12", W/"34", "x", garbage', 'weak')).toEqual([12, 34]);
    expect(parseEtags('"12", W/"34", "x", garbage', 'strong')).toEqual([12]);
    expect(parseEtags('W/"34"', 'strong')).toEqual([]);
    // Past 2^53 a number rounds: "9999999999999999" would be read as 10^16.
    expect(parseEtags('"9999999999999999", "9007199254740991"', 'strong')).toEqual([9007199254740991]);
  });

  it('a PUT or DELETE with an If-Match no version can be is 412 precondition_failed, direct or not', async () => {
    const engine = await createTestEngine({ clock: new ManualClock(Date.UTC(2025, 0, 15)) });
    try {
      const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9' }) });
      const { api_key } = await engine.tenants.create({ email: 'e@example.com', plan: 'unlimited' });
      const headers = { authorization: `Bearer ${api_key}`, 'if-match': '"9999999999999999"' };
      await app.fetch(new Request('http://local/v1/kv/k', { method: 'PUT', headers: { authorization: headers.authorization }, body: 'v' }));
      const all: Record<string, string> = { ...headers, host: 'local', 'content-length': '1' };
      const direct = await app.direct({ method: 'PUT', header: (name) => all[name], body: async () => new Uint8Array([120]) }, '/v1/kv/k');
      expect([direct?.status, JSON.parse(direct!.body as string).error]).toEqual([412, 'precondition_failed']);
      for (const method of ['PUT', 'DELETE']) {
        const res = await app.fetch(new Request('http://local/v1/kv/k', { method, headers, body: method === 'PUT' ? 'x' : undefined }));
        expect([res.status, ((await res.json()) as { error: string }).error], method).toEqual([412, 'precondition_failed']);
      }
    } finally {
      await engine.close();
    }
  });
});

describe('the direct KV PUT (app.direct)', () => {
  it('takes a PUT with a Content-Length and a plain key or ?ttl=, answers as fetch does; leaves other requests to fetch', async () => {
    const engine = await createTestEngine({ clock: new ManualClock(Date.UTC(2025, 0, 15)) });
    try {
      const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9' }) });
      const { api_key } = await engine.tenants.create({ email: 'p@example.com', plan: 'unlimited' });
      const headers: Record<string, string> = { authorization: `Bearer ${api_key}`, 'content-type': 'text/plain', host: 'local' };
      const body = new TextEncoder().encode('hello');
      const direct = (method: string, target: string, extra: Record<string, string> = {}) => {
        const all: Record<string, string> = { ...headers, 'content-length': String(body.length), ...extra };
        return app.direct({ method, header: (name) => all[name], body: async () => body }, target);
      };

      const answer = await direct('PUT', '/v1/kv/a/b?ttl=60');
      expect(answer?.status).toBe(200);
      const etag = answer!.headers.etag!;
      expect(JSON.parse(answer!.body as string)).toEqual({ key: 'a/b', size: 5, content_type: 'text/plain', etag, expires_at: Date.UTC(2025, 0, 15) + 60_000 });
      const viaFetch = await app.fetch(new Request('http://local/v1/kv/a/b', { headers }));
      expect(viaFetch.headers.get('etag')).toBe(etag);
      expect(viaFetch.headers.get('x-expires-at')).toBe(String(Date.UTC(2025, 0, 15) + 60_000));
      expect(await viaFetch.text()).toBe('hello');
      expect((await direct('PUT', '/v1/kv/a/b', { 'if-none-match': '*' }))?.status).toBe(412);
      expect((await direct('PUT', '/v1/kv/a/b', { 'if-match': etag }))?.status).toBe(200);
      // Every bad ttl, direct or through fetch, gets one message naming the whole range.
      for (const ttl of ['0', '315360001', '1.5']) {
        const message = `ttl: expected a whole number of seconds from 1 to 315360000, got "${ttl}"`;
        const refused = await direct('PUT', `/v1/kv/a/b?ttl=${ttl}`);
        if (refused !== undefined) expect([refused.status, JSON.parse(refused.body as string).message]).toEqual([400, message]);
        const viaFetch = await app.fetch(new Request(`http://local/v1/kv/a/b?ttl=${ttl}`, { method: 'PUT', headers, body: 'x' }));
        expect([viaFetch.status, ((await viaFetch.json()) as { message: string }).message]).toEqual([400, message]);
      }

      for (const [method, target, extra] of [
        ['POST', '/v1/kv/a/b', {}],
        ['PUT', '/v1/kv/a%2Fb', {}],
        ['PUT', '/v1/kv/a/b?ttl=', {}],
        ['PUT', '/v1/kv/a/b?ttl=5&x=1', {}],
        ['PUT', '/v1/kv/a/b?x=1', {}],
        ['PUT', '/v1/kv/a/../b', {}],
        ['PUT', '/v1/kv/', {}],
        ['PUT', '/v1/kv/a/b', { 'transfer-encoding': 'chunked' }],
        ['PUT', '/v1/kv/a/b', { host: 'bad host' }],
      ] as const) {
        expect(direct(method, target, extra), `${method} ${target} ${JSON.stringify(extra)}`).toBeUndefined();
      }
    } finally {
      await engine.close();
    }
  });
});

describe('KV keys with line breaks', () => {
  it('are routed like any other key: PUT, GET, DELETE, and POST is 405 (found by the model check: they were 404 no route)', async () => {
    const engine = await createTestEngine({ clock: new ManualClock(Date.UTC(2025, 0, 15)) });
    try {
      const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9' }) });
      const { api_key } = await engine.tenants.create({ email: 'lb@example.com', plan: 'unlimited' });
      const authorization = `Bearer ${api_key}`;
      const call = (method: string, path: string, body?: string) => app.fetch(new Request(`http://local${path}`, { method, headers: { authorization }, body }));
      for (const key of ['a\nb', '\r', 'dir/line\r\nend', '\u2028\u0085']) {
        const path = `/v1/kv/${encodeURIComponent(key)}`;
        expect((await call('PUT', path, 'v')).status, JSON.stringify(key)).toBe(200);
        expect(await (await call('GET', path)).text()).toBe('v');
        expect((await call('POST', path)).status).toBe(405);
      }
      const listed = (await (await call('GET', '/v1/kv')).json()) as { keys: { key: string }[] };
      expect(listed.keys.map((k) => k.key)).toEqual(['\r', 'a\nb', 'dir/line\r\nend', '\u2028\u0085']);
      expect((await call('DELETE', `/v1/kv/${encodeURIComponent('a\nb')}`)).status).toBe(204);
    } finally {
      await engine.close();
    }
  });
});

describe('KV keys of every kind through the routes (seeded)', () => {
  it('reach their own value, and only it: PUT, GET, HEAD, POST 405, listing, another tenant 404, DELETE; one byte past 512 is 400', async () => {
    const engine = await createTestEngine({ clock: new ManualClock(Date.UTC(2025, 0, 15)) });
    try {
      const routes = new Set<string>();
      const metrics = { observeRequest: (route: string) => void routes.add(route) };
      const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9' }), metrics });
      const own = `Bearer ${(await engine.tenants.create({ email: 'keys@example.com', plan: 'unlimited' })).api_key}`;
      const other = `Bearer ${(await engine.tenants.create({ email: 'other@example.com', plan: 'unlimited' })).api_key}`;
      const call = (method: string, key: string, authorization = own, body?: string) =>
        app.fetch(new Request(`http://local/v1/kv/${encodeURIComponent(key)}`, { method, headers: { authorization }, body }));
      // Route-like pieces, escapes, line breaks, BOM, noncharacters and astral characters, anywhere in a key.
      const pieces = ['a', 'Z9', '/', '//', '.', '..', '%', '%2F', '?', '#', '&', '+', ' ', '\t', '\u0000', '\u007f', '\n', '\r\n', '\u0085', '\u2028', '\u2029', '\uFEFF', '\uFFFE', 'é', '中', '😀', '\u{10FFFF}', 'v1/kv/', '/streams/t/records', '/../', 'records', 'query'];
      const rand = seededRandom(29);
      const keys = new Set<string>(['\uFEFF', 'end\uFEFF', 'é'.repeat(256), '中'.repeat(170) + 'ab', '😀'.repeat(128), `a${'😀'.repeat(127)}bcd`]);
      while (keys.size < 70) {
        let key = '';
        for (let n = 1 + Math.floor(rand() * 5); n > 0; n--) key += pieces[Math.floor(rand() * pieces.length)];
        // '.' and '..' alone are dot segments the URL resolves before any route sees them.
        if (key !== '.' && key !== '..') keys.add(key);
      }
      for (const key of keys) {
        const what = JSON.stringify(key);
        const put = await call('PUT', key, own, `v:${key}`);
        expect(put.status, what).toBe(200);
        expect(((await put.json()) as { key: string }).key, what).toBe(key);
        expect(await (await call('GET', key)).text(), what).toBe(`v:${key}`);
        expect((await call('HEAD', key)).status, what).toBe(200);
        const post = await call('POST', key);
        expect([post.status, post.headers.get('allow')], what).toEqual([405, 'PUT, GET, HEAD, DELETE, OPTIONS']);
        const foreign = await call('GET', key, other);
        expect([foreign.status, ((await foreign.json()) as { message: string }).message], what).toEqual([404, `key '${key}' does not exist`]);
      }
      // Every request above was the key route's, under its written name (metrics, logs); POST's 405 the unmatched handler's.
      expect(routes).toEqual(new Set(['/v1/kv/:key{.+}', 'unmatched']));
      const listed = (await (await app.fetch(new Request('http://local/v1/kv?limit=1000', { headers: { authorization: own } }))).json()) as { keys: { key: string }[] };
      expect(new Set(listed.keys.map((k) => k.key))).toEqual(keys);
      for (const key of ['é'.repeat(256) + 'a', '😀'.repeat(128) + 'a', '中'.repeat(171)]) {
        const res = await call('PUT', key, own, 'v');
        expect([res.status, ((await res.json()) as { error: string }).error]).toEqual([400, 'invalid_argument']);
      }
      for (const key of keys) expect((await call('DELETE', key)).status, JSON.stringify(key)).toBe(204);
      expect((await call('GET', [...keys][0]!)).status).toBe(404);
    } finally {
      await engine.close();
    }
  });
});

describe('KV requests while the tenant’s partitions open', () => {
  it('answers a GET, a PUT and GET /v1/usage before the partitions of its tenant have opened; a streams request waits for them', async () => {
    const engine = await createTestEngine({ clock: new ManualClock(Date.UTC(2025, 0, 15)) });
    let release = (): void => {};
    try {
      const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9' }) });
      const { tenant, api_key } = await engine.tenants.create({ email: 'k@example.com', plan: 'unlimited' });
      const auth = { authorization: `Bearer ${api_key}` };
      const call = (method: string, path: string, body?: string) => app.fetch(new Request(`http://local${path}`, { method, headers: auth, body }));
      expect((await call('PUT', '/v1/kv/k', 'v')).status).toBe(200);
      expect((await call('POST', '/v1/topics', JSON.stringify({ name: 'orders', partitions: 8 }))).status).toBe(201);
      // as after a restart: the tenant opens again on its next request, its partitions held up
      await engine.closeTenant(tenant.id);
      const gate = new Promise<void>((resolve) => (release = resolve));
      const storage = engine.context.storage;
      const unit = storage.unit.bind(storage);
      (storage as StorageProvider).unit = async (name: string) => {
        if (name.startsWith(`log/${tenant.id}/`)) await gate;
        return unit(name);
      };
      let described = false;
      const describing = Promise.resolve(call('GET', '/v1/topics/orders')).then((res) => {
        described = true;
        return res;
      });
      const got = await call('GET', '/v1/kv/k');
      expect([got.status, await got.text()]).toEqual([200, 'v']);
      expect((await call('PUT', '/v1/kv/k2', 'w')).status).toBe(200);
      // usage is the meter's, not the partitions': it answers too
      const usage = await Promise.race([call('GET', '/v1/usage'), new Promise<undefined>((resolve) => setTimeout(resolve, 2000))]);
      expect(usage?.status, 'GET /v1/usage waited for the partitions').toBe(200);
      expect(described).toBe(false);
      release();
      const res = await describing;
      expect(res.status).toBe(200);
      expect(((await res.json()) as { partition_info: unknown[] }).partition_info).toHaveLength(8);
    } finally {
      release(); // the engine's close waits for partitions opening
      await engine.close();
    }
  });
});
