import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendWithBody, startServerWithTenant, type RawAnswer, type ServerWithTenant } from '../../../tests/fixtures/server-with-tenant.js';
import type { RunningServer } from './server.js';

const LIMIT = 2048;
let running: ServerWithTenant;
let server: RunningServer;
let auth: Record<string, string>;

beforeAll(async () => {
  running = await startServerWithTenant('direct-query', { body_limits: { vectors: LIMIT } });
  server = running.server;
  auth = { authorization: `Bearer ${running.apiKey}`, 'content-type': 'application/json' };
  const post = (path: string, body: unknown) => fetch(`${server.url}${path}`, { method: 'POST', headers: auth, body: JSON.stringify(body) });
  expect((await post('/v1/collections', { name: 'docs', dims: 4, metric: 'cosine' })).status).toBe(201);
  const vectors = Array.from({ length: 20 }, (_, i) => ({ id: `v${i}`, values: [i % 3, (i * 7) % 5, 1, -i / 10], metadata: { n: i, even: i % 2 === 0 } }));
  expect((await post('/v1/collections/docs/upsert', { vectors })).status).toBe(200);
});

afterAll(async () => {
  await running.close();
});

/** A POST to this server through sendWithBody (see there for `chunked` and `pause`). */
function post(path: string, body: string, headers: Record<string, string>, chunked = false, pause = 0): Promise<RawAnswer> {
  return sendWithBody(`${server.url}${path}`, 'POST', body, headers, { chunked, pause });
}

// `/v1/collections/docs/query` with a Content-Length is answered directly; `/v1/collections/d%6Fcs/query`
// names the same collection and is decoded by hono.
describe('a direct vector query answers as the hono route does', () => {
  const query = JSON.stringify({ vector: [1, 0.5, 1, -0.25], k: 5 });
  it.each([
    ['matches', query, {}],
    ['metadata, values, filter, threshold, ef', JSON.stringify({ vector: [0, 1, 1, 0], k: 3, include_metadata: true, include_values: true, filter: { even: true }, threshold: 0.1, ef: 20 }), {}],
    ['a query by id', JSON.stringify({ id: 'v3', k: 2 }), {}],
    ['an unknown id', JSON.stringify({ id: 'nope', k: 2 }), {}],
    ['a 401', query, { authorization: 'Bearer nope' }],
    ['a CORS request', query, { origin: 'https://example.com' }],
    ['invalid JSON', '{"vector": [1, 2', {}],
    ['an empty body', '', {}],
    ['a field error', JSON.stringify({ vector: [1, 2, 3, 4], k: 0 }), {}],
    ['wrong dimensions', JSON.stringify({ vector: [1, 2, 3], k: 1 }), {}],
    ['a value f32 cannot hold', JSON.stringify({ vector: [1, 2, 3, 1e39], k: 1 }), {}],
    ['a 413', JSON.stringify({ vector: [1, 2, 3, 4], k: 1, pad: 'x'.repeat(LIMIT) }), {}],
  ])('%s', async (_, body, extra) => {
    const headers = { ...auth, ...extra };
    const direct = await post('/v1/collections/docs/query', body, headers);
    expect(direct).toEqual(await post('/v1/collections/d%6Fcs/query', body, headers));
    expect(direct).toEqual(await post('/v1/collections/docs/query', body, headers, true));
  });

  it('a body that arrives in parts', async () => {
    expect(await post('/v1/collections/docs/query', query, auth, false, 50)).toEqual(await post('/v1/collections/docs/query', query, auth));
  });

  it('an unknown collection', async () => {
    expect(await post('/v1/collections/nope/query', query, auth)).toEqual(await post('/v1/collections/n%6Fpe/query', query, auth));
  });

  it('settles a request whose client leaves mid-body (answered 400 into the closed socket, counted)', async () => {
    const answered = async (): Promise<number> => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const m = /quartz_http_requests_total\{[^}]*route="\/v1\/collections\/:c\/query"[^}]*status="400"[^}]*\} (\d+)/.exec(text);
      return m === null ? 0 : Number(m[1]);
    };
    for (const wait of [0, 50]) {
      const before = await answered();
      const req = request(`${server.url}/v1/collections/docs/query`, { method: 'POST', headers: { ...auth, 'content-length': String(query.length) } });
      req.on('error', () => undefined);
      // Leave only once the head and the first bytes are out: the request is connected lazily, and on
      // a busy machine a timer could fire first, so the server saw no request at all.
      await new Promise((resolve) => req.write(query.slice(0, 10), resolve));
      await new Promise((resolve) => setTimeout(resolve, wait));
      req.destroy();
      const deadline = Date.now() + 5000;
      while ((await answered()) === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await answered(), `client gone after ${wait} ms`).toBe(before + 1);
    }
  });

  it('counts its requests in the metrics by route', async () => {
    await post('/v1/collections/docs/query', query, auth);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/quartz_http_requests_total\{[^}]*route="\/v1\/collections\/:c\/query"[^}]*status="200"[^}]*\} \d+/);
  });
});
