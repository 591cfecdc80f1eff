import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from './server.js';
import { resolveServeSettings } from './settings.js';

let dir: string;
let server: RunningServer;
let auth: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'quartz-direct-'));
  const env = { QUARTZ_LOG_LEVEL: 'error' };
  server = await startServer(await resolveServeSettings({ port: '0', data: dir, host: '127.0.0.1' }, env), env);
  const reg = (await (await fetch(`${server.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"d@example.com"}' })).json()) as { api_key: string };
  auth = { authorization: `Bearer ${reg.api_key}` };
  const put = await fetch(`${server.url}/v1/kv/a/b`, { method: 'PUT', headers: { ...auth, 'content-type': 'text/x-thing' }, body: 'hello' });
  expect(put.status).toBe(200);
});

afterAll(async () => {
  await server.close('test done');
  rmSync(dir, { recursive: true, force: true });
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
