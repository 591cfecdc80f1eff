import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../core/random-testing.js';
import '../../node/core.js';
import { createTestEngine } from '../../engine/testing.js';
import { ManualClock } from '../../ports/manual-clock.js';
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
});

describe('parseEtags', () => {
  it('reads `*`, strong and weak tags; tags no version can be never match', () => {
    expect(parseEtags(' * ')).toBe('*');
    expect(parseEtags('"12", W/"34", "x", garbage')).toEqual([12, 34]);
    // Past 2^53 a number rounds: "9999999999999999" would be read as 10^16.
    expect(parseEtags('"9999999999999999", "9007199254740991"')).toEqual([9007199254740991]);
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
      expect((await direct('PUT', '/v1/kv/a/b?ttl=0'))?.status).toBe(400);

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
