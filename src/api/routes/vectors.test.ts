import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import '../../node/core.js';
import type { Engine } from '../../engine/engine.js';
import { createTestEngine } from '../../engine/testing.js';
import { ManualClock } from '../../ports/manual-clock.js';
import { createApp } from '../app.js';
import { hashKey, resolveServerConfig } from '../config.js';
import { parseQueryBody, QueryBody } from '../schemas/vectors.js';
import { queryResultJson } from './vectors.js';
import { parseWith } from '../validation.js';
import { seededRandom } from '../../core/hnsw-testing.js';

let engine: Engine;

beforeEach(async () => {
  const clock = new ManualClock(Date.UTC(2025, 0, 15));
  engine = await createTestEngine({ clock });
});

afterEach(async () => {
  await engine.close();
});

describe('POST /v1/collections/:c/query', () => {
  it('writes metadata and values exactly as JSON.stringify writes the library answer', async () => {
    const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9', default_plan: 'unlimited' }) });
    const { tenant, api_key } = await engine.tenants.create({ email: 'meta@example.com', plan: 'unlimited' });
    const h = { authorization: `Bearer ${api_key}`, 'content-type': 'application/json' };
    const call = (path: string, body: string) => app.fetch(new Request(`http://local${path}`, { method: 'POST', body, headers: h }));
    expect((await call('/v1/collections', JSON.stringify({ name: 'docs', dims: 3, metric: 'cosine' }))).status).toBe(201);
    // Integer keys (which objects order first), a "__proto__" key, -0, escapes, nesting.
    const metadata = '{"b":1,"2":"two","__proto__":{"x":[1e-7,-0]},"s":"q\\"\\\\\\u0001é","n":null,"deep":{"a":[{"b":true}]}}';
    const upsert = `{"vectors":[{"id":"a","values":[0.1,0.2,0.3],"metadata":${metadata}},{"id":"b","values":[-1,2.5,1e-3],"metadata":{"t":"x"}}]}`;
    expect((await call('/v1/collections/docs/upsert', upsert)).status).toBe(200);
    const query = { vector: [0.3, 0.1, 0.2], k: 2, include_metadata: true, include_values: true };
    const res = await call('/v1/collections/docs/query', JSON.stringify(query));
    expect(res.status).toBe(200);
    const library = (await engine.tenant(tenant.id)).vectors.query('docs', query);
    expect(await res.text()).toBe(JSON.stringify(await library));
  });

  it('stores a "__proto__" metadata key as a key, not as the prototype of a copy (which dropped it)', async () => {
    const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9', default_plan: 'unlimited' }) });
    const { api_key } = await engine.tenants.create({ email: 'proto@example.com', plan: 'unlimited' });
    const h = { authorization: `Bearer ${api_key}`, 'content-type': 'application/json' };
    const call = (path: string, body?: string) => app.fetch(new Request(`http://local${path}`, { method: body === undefined ? 'GET' : 'POST', body, headers: h }));
    expect((await call('/v1/collections', JSON.stringify({ name: 'docs', dims: 2, metric: 'dot' }))).status).toBe(201);
    const metadata = '{"__proto__":{"admin":true},"constructor":1}';
    expect((await call('/v1/collections/docs/upsert', `{"vectors":[{"id":"p","values":[1,2],"metadata":${metadata}}]}`)).status).toBe(200);
    const stored = await (await call('/v1/collections/docs/vectors/p')).text();
    expect(stored).toBe(`{"id":"p","values":[1,2],"metadata":${metadata}}`);
    // Nothing reads the key as an inherited property either.
    const filtered = await call('/v1/collections/docs/query', JSON.stringify({ vector: [1, 2], k: 1, filter: { admin: true } }));
    expect(await filtered.json()).toEqual({ matches: [] });
  });

  it('answers a query whose filter the fast pass reads exactly as one the general path reads (an escape in a field name sends it there), errors and depth limit included', async () => {
    const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9', default_plan: 'unlimited' }) });
    const { api_key } = await engine.tenants.create({ email: 'filters@example.com', plan: 'unlimited' });
    const h = { authorization: `Bearer ${api_key}`, 'content-type': 'application/json' };
    const call = async (path: string, body: string) => {
      const res = await app.fetch(new Request(`http://local${path}`, { method: 'POST', body, headers: h }));
      return { status: res.status, body: await res.text() };
    };
    expect((await call('/v1/collections', JSON.stringify({ name: 'docs', dims: 2, metric: 'l2' }))).status).toBe(201);
    const vectors = Array.from({ length: 20 }, (_, i) => ({ id: `v${i}`, values: [i, -i], metadata: { n: i, s: i % 2 ? '}]"' : 'x', tags: [`t${i % 3}`] } }));
    expect((await call('/v1/collections/docs/upsert', JSON.stringify({ vectors }))).status).toBe(200);
    const nested = (levels: number) => `${'{"$and":['.repeat(levels)}{"n":{"$gte":3}}${']}'.repeat(levels)}`;
    const filters = [
      '{}',
      '{"n":{"$lt":7}}',
      '{"s":"}]\""}',
      '{"s":{"$in":["x","}]\""]},"n":{"$gt":-1e400}}',
      '{"tags":"t1","n":{"$lte":1e400}}',
      '{"n":1,"n":{"$gte":15}}',
      '{"__proto__":{"$eq":1}}',
      '{"n":{"$bogus":1}}',
      '{"$or":[]}',
      '{"$and":[{}]}',
      nested(15),
      nested(16),
      nested(17),
      nested(40),
    ];
    let answered = 0;
    for (const filter of filters) {
      // Five spaces for the five characters the escape adds, so JSON.parse names the same positions.
      const fast = await call('/v1/collections/docs/query', `{"vector":[1,2],"k":5,     "include_metadata":true,"filter":${filter}}`);
      const general = await call('/v1/collections/docs/query', `{"vector":[1,2],"k":5,"include_metadat\\u0061":true,"filter":${filter}}`);
      expect(fast, filter).toEqual(general);
      if (fast.status === 200) answered++;
    }
    // Some filters are answered, and the others refused (the depth limit among them).
    expect(answered).toBeGreaterThan(5);
    expect(answered).toBeLessThan(filters.length);
  });

  it('answers with a plain header object that still carries the request id, rate-limit and CORS headers', async () => {
    const config = resolveServerConfig({
      version: '9.9.9',
      admin_key_hash: await hashKey('admin-key'),
      cors_origins: ['https://app.example'],
      plans: { tiny: { requests_per_minute: 10 }, unlimited: { requests_per_minute: null } },
    });
    const app = createApp({ engine, config });
    const { api_key } = await engine.tenants.create({ email: 'q@example.com', plan: 'tiny' });
    const h = { 'x-api-key': api_key, 'x-request-id': 'req-9', origin: 'https://app.example', 'content-type': 'application/json' };
    const call = (path: string, body: unknown, headers: Record<string, string> = h) =>
      app.fetch(new Request(`http://local${path}`, { method: 'POST', body: JSON.stringify(body), headers }));
    expect((await call('/v1/collections', { name: 'docs', dims: 2, metric: 'l2' })).status).toBe(201);
    const upsert = { vectors: [{ id: 'a', values: [0, 0], metadata: { n: 1 } }, { id: 'b', values: [3, 4] }] };
    expect((await call('/v1/collections/docs/upsert', upsert)).status).toBe(200);

    const res = await call('/v1/collections/docs/query', { vector: [0, 1], k: 2, include_metadata: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('x-request-id')).toBe('req-9');
    expect(res.headers.get('x-ratelimit-limit')).toBe('10');
    expect(res.headers.get('x-ratelimit-remaining')).toBe('7');
    expect(res.headers.get('x-ratelimit-reset')).not.toBeNull();
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('vary')).toBe('Origin');
    const { matches } = (await res.json()) as { matches: Array<{ id: string; score: number; metadata?: unknown }> };
    expect(matches.map((m) => m.id)).toEqual(['a', 'b']);
    expect(matches[0]!.score).toBeCloseTo(1, 6);
    expect(matches[1]!.score).toBeCloseTo(Math.sqrt(9 + 9), 5);
    expect(matches[0]!.metadata).toEqual({ n: 1 });

    const stranger = await call('/v1/collections/docs/query', { vector: [0, 1], k: 1 }, { ...h, origin: 'https://evil.example' });
    expect(stranger.status).toBe(200);
    expect(stranger.headers.get('access-control-allow-origin')).toBeNull();
    // Errors still go through the error handler, field named.
    const bad = await call('/v1/collections/docs/query', { vector: [0, 1], k: 0 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/^k: /);
  });
});

describe('the direct vector query (app.direct)', () => {
  it('takes a POST query with a Content-Length and answers as fetch does; leaves other requests to fetch', async () => {
    const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9' }) });
    const { api_key } = await engine.tenants.create({ email: 'd@example.com', plan: 'unlimited' });
    const headers: Record<string, string> = { authorization: `Bearer ${api_key}`, 'content-type': 'application/json', host: 'local' };
    const call = (path: string, body: string) => app.fetch(new Request(`http://local${path}`, { method: 'POST', body, headers }));
    expect((await call('/v1/collections', JSON.stringify({ name: 'docs', dims: 2, metric: 'l2' }))).status).toBe(201);
    expect((await call('/v1/collections/docs/upsert', JSON.stringify({ vectors: [{ id: 'a', values: [0, 0] }, { id: 'b', values: [3, 4] }] }))).status).toBe(200);

    const body = JSON.stringify({ vector: [0, 1], k: 2 });
    const direct = (method: string, target: string, extra: Record<string, string> = {}) => {
      const all: Record<string, string> = { ...headers, 'content-length': String(body.length), ...extra };
      return app.direct({ method, header: (name) => all[name], body: async () => new TextEncoder().encode(body) }, target);
    };
    const answer = await direct('POST', '/v1/collections/docs/query');
    expect(answer).toBeDefined();
    const viaFetch = await call('/v1/collections/docs/query', body);
    expect(answer!.status).toBe(200);
    expect(answer!.body).toBe(await viaFetch.text());
    expect(answer!.headers['content-type']).toBe(viaFetch.headers.get('content-type'));
    expect(((await direct('POST', '/v1/collections/nope/query')) as { status: number }).status).toBe(404);

    for (const [method, target, extra] of [
      ['GET', '/v1/collections/docs/query', {}],
      ['POST', '/v1/collections/d%6Fcs/query', {}],
      ['POST', '/v1/collections/docs/query?x=1', {}],
      ['POST', '/v1/collections/../query', {}],
      ['POST', '/v1/collections/docs/query/', {}],
      ['POST', '/v1/collections/docs/upsert', {}],
      ['POST', '/v1/collections/docs/query', { 'transfer-encoding': 'chunked' }],
      ['POST', '/v1/collections/docs/query', { host: 'bad host' }],
    ] as const) {
      expect(direct(method, target, extra), `${method} ${target} ${JSON.stringify(extra)}`).toBeUndefined();
    }
  });
});

describe('parseQueryBody', () => {
  /** The outcome of a parser: its data, or its error message. */
  function outcome(parse: () => unknown): unknown {
    try {
      return { data: parse() };
    } catch (err) {
      return { error: (err as Error).message, code: (err as { code?: string }).code };
    }
  }
  const same = (value: unknown) => expect(outcome(() => parseQueryBody(value))).toEqual(outcome(() => parseWith(QueryBody, value)));

  it('gives the same result and the same field-named messages as the zod schema', () => {
    const cases: unknown[] = [
      null, [], 'x', 3, true, {}, { k: 1 }, { k: '1' }, { k: 0.5 }, { k: 0 }, { k: -0 }, { k: -0.5 }, { k: 1001 }, { k: 1000.5 }, { k: null },
      { k: 1e300 }, { k: -1e300 }, { k: 2 ** 53 + 2 }, { vector: [1, 2], k: 10, extra: 5 }, { k: 1, vector: 'x' }, { k: 1, vector: [1, 'a', null, 3, {}, [], true] },
      { k: 1, vector: {} }, { k: 1, vector: null }, { k: 1, vector: [] }, { k: 1, id: 3 }, { k: 1, id: '' }, { k: 1, id: 'a' }, { k: 1, threshold: 'x' },
      { k: 1, threshold: -2.5 }, { k: 1, filter: [] }, { k: 1, filter: 'x' }, { k: 1, filter: null }, { k: 1, filter: { a: { $in: [1] } } },
      { k: 1, include_metadata: 1 }, { k: 1, include_values: 'true' }, { k: 1, include_metadata: false, include_values: true }, { k: 1, ef: 0 },
      { k: 1, ef: 10001 }, { k: 1, ef: 1.5 }, { k: 1, ef: '5' }, { k: 1, ef: 10_000 }, { vector: 'x', id: 1, k: 'a', ef: 'b', filter: 2 },
      { vector: [1, 2, 3], id: 'a', k: 1000, threshold: 0.5, filter: {}, include_metadata: true, include_values: false, ef: 1 },
      // What JSON.parse makes of 1e400 and -1e400.
      { k: 1, vector: [Infinity, -Infinity] }, { k: Infinity }, { k: 1, threshold: -Infinity }, { k: 1, ef: Infinity }, { k: NaN, vector: [NaN] },
    ];
    for (const value of cases) same(value);
  });

  it('agrees with the zod schema on random bodies', () => {
    const rand = seededRandom(11);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const scalars = [undefined, null, true, false, 0, -0, 1, 7, 1000, 1001, 10_000, 10_001, 0.5, -3, 1e300, '', 's', '5', [], {}, [1, 'x'], { a: 1 }];
    const fields = ['vector', 'id', 'k', 'threshold', 'filter', 'include_metadata', 'include_values', 'ef', 'other'];
    for (let i = 0; i < 2000; i++) {
      const body: Record<string, unknown> = {};
      for (const field of fields) {
        if (rand() < 0.4) continue;
        body[field] = field === 'vector' && rand() < 0.5 ? Array.from({ length: Math.floor(rand() * 6) }, () => (rand() < 0.8 ? rand() - 0.5 : pick(scalars))) : pick(scalars);
      }
      // JSON has no undefined: go through it, as the route does.
      same(JSON.parse(JSON.stringify(body)));
    }
  });
});

describe('queryResultJson', () => {
  it('writes what JSON.stringify writes, for every match shape', () => {
    const results = [
      { matches: [] },
      { matches: [{ id: 'a', score: 0.5 }] },
      { matches: [{ id: 'quote " back \\ slash', score: -0 }, { id: 'ünï\u2028cödé 🙂', score: 1e-7 }, { id: 'x', score: 3.4028234663852886e38 }] },
      { matches: [{ id: 'ctl \u0000\u001f\t\n', score: 1 }, { id: 'del \u007f', score: 1.5 }, { id: 'lone \ud800 surrogate \udc00', score: 2 }, { id: ' ~!#$%&()*+,-./09:;<=>?@AZ[]^_`az{|}', score: 3 }, { id: '', score: 4 }, { id: 'back\\slash', score: 5 }, { id: 'quote"', score: 6 }] },
      { matches: [{ id: 'big', score: Infinity }, { id: 'small', score: -Infinity }, { id: 'nan', score: NaN }] },
      { matches: [{ id: 'm', score: 0.25, metadata: { n: 1, s: 'x"y', nested: { a: [1, null, true] } }, values: [0.1, -2, 3e-8] }, { id: 'v', score: 1, values: [] }] },
    ];
    for (const result of results) expect(queryResultJson(result)).toBe(JSON.stringify(result));
  });
});
