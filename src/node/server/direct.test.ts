import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeRaw, parseRawAnswer, startServerWithTenant, type ServerWithTenant } from '../../../tests/fixtures/server-with-tenant.js';
import type { RunningServer } from './server.js';

let running: ServerWithTenant;
let server: RunningServer;
let auth: Record<string, string>;

beforeAll(async () => {
  running = await startServerWithTenant('direct');
  server = running.server;
  auth = { authorization: `Bearer ${running.apiKey}` };
  const put = await fetch(`${server.url}/v1/kv/a/b`, { method: 'PUT', headers: { ...auth, 'content-type': 'text/x-thing' }, body: 'hello' });
  expect(put.status).toBe(200);
});

afterAll(async () => {
  await running.close();
});

/** Status, body and headers but the per-request ones. */
async function seen(path: string, headers: Record<string, string>): Promise<{ status: number; body: string; headers: Record<string, string> }> {
  const res = await fetch(`${server.url}${path}`, { headers });
  const out: Record<string, string> = {};
  res.headers.forEach((value, name) => {
    if (name !== 'date' && name !== 'x-request-id') out[name] = value;
  });
  return { status: res.status, body: await res.text(), headers: out };
}

/**
 * The same as `seen`, for a request whose header lines are written exactly as given (repeated
 * names, any case), which fetch would merge or normalize before sending.
 */
async function seenRaw(path: string, lines: Array<[string, string]>): Promise<{ status: number; body: string; headers: Record<string, string> }> {
  return parseRawAnswer(await rawGet(path, '1.1', lines));
}

/** Everything the server sends back to a GET written byte for byte, on a connection it closes. */
function rawGet(path: string, version: '1.0' | '1.1', lines: Array<[string, string]>): Promise<string> {
  const { host } = new URL(server.url);
  return exchangeRaw(server.url, `GET ${path} HTTP/${version}\r\nHost: ${host}\r\nConnection: close\r\n${lines.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`);
}

/** The head of the answer to a raw GET, line by line as sent, with the per-request values blanked. */
async function rawHead(path: string, version: '1.0' | '1.1'): Promise<string[]> {
  const text = await rawGet(path, version, [['Authorization', auth.authorization]]);
  return text
    .slice(0, text.indexOf('\r\n\r\n'))
    .split('\r\n')
    .map((line) => line.replace(/^(date|x-request-id): .*$/i, '$1: …'));
}

// `/v1/kv/a/b` is answered directly; `/v1/kv/a%2Fb` names the same key and is decoded by hono.
describe('a direct KV GET answers as the hono route does', () => {
  it.each([
    ['a value', {}],
    ['a 304', { 'if-none-match': '*' }],
    ['a 401', { authorization: 'Bearer nope' }],
    ['a CORS request', { origin: 'https://example.com' }],
  ])('%s', async (_, extra) => {
    const headers = { ...auth, ...extra };
    expect(await seen('/v1/kv/a/b', headers)).toEqual(await seen('/v1/kv/a%2Fb', headers));
  });

  it.each([
    ['repeated If-None-Match lines', [['If-None-Match', '"0"'], ['if-none-match', ' <etag> ']]],
    ['repeated Origin lines', [['Origin', 'https://a.example'], ['ORIGIN', 'https://b.example']]],
    ['repeated Authorization lines', [['AUTHORIZATION', 'Bearer x'], ['Authorization', 'Bearer y']]],
    ['a key in X-API-Key, upper case', [['X-API-KEY', '<key>']]],
    ['an empty X-API-Key beside no Authorization', [['x-api-key', '']]],
  ] as Array<[string, Array<[string, string]>]>)('%s', async (_, lines) => {
    const key = auth.authorization!.slice('Bearer '.length);
    const etag = (await fetch(`${server.url}/v1/kv/a/b`, { headers: auth })).headers.get('etag')!;
    const withAuth: Array<[string, string]> = lines.some(([n]) => /^(authorization|x-api-key)$/i.test(n)) ? [] : [['Authorization', auth.authorization!]];
    const sent = [...withAuth, ...lines.map(([n, v]): [string, string] => [n, v.replace('<key>', key).replace('<etag>', etag)])];
    const direct = await seenRaw('/v1/kv/a/b', sent);
    expect(direct).toEqual(await seenRaw('/v1/kv/a%2Fb', sent));
    expect(direct.status).not.toBe(0);
  });

  it.each(['1.1', '1.0'] as const)('with the same head, line for line, over HTTP/%s', async (version) => {
    const direct = await rawHead('/v1/kv/a/b', version);
    expect(direct).toEqual(await rawHead('/v1/kv/a%2Fb', version));
    expect(direct.filter((line) => /^content-length: 5$/i.test(line))).toHaveLength(1);
  });

  it('a missing key', async () => {
    expect(await seen('/v1/kv/nope', auth)).toEqual(await seen('/v1/kv/n%6Fpe', auth));
  });

  it('keeps the client request id, or makes one', async () => {
    const mine = await fetch(`${server.url}/v1/kv/a/b`, { headers: { ...auth, 'x-request-id': 'req-42' } });
    expect(mine.headers.get('x-request-id')).toBe('req-42');
    const made = await fetch(`${server.url}/v1/kv/a/b`, { headers: { ...auth, 'x-request-id': 'bad id!' } });
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
  });

  it('counts its requests in the metrics by route', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/quartz_http_requests_total\{[^}]*route="\/v1\/kv\/:key\{\.\+\}"[^}]*status="200"[^}]*\} \d+/);
  });
});

