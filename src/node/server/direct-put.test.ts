import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeRaw, parseRawAnswer, sendWithBody, startServerWithTenant, type RawAnswer, type ServerWithTenant } from '../../../tests/fixtures/server-with-tenant.js';
import type { RunningServer } from './server.js';

const LIMIT = 2048;
let running: ServerWithTenant;
let server: RunningServer;
let auth: Record<string, string>;

beforeAll(async () => {
  running = await startServerWithTenant('direct-put', { body_limits: { kv: LIMIT } });
  server = running.server;
  auth = { authorization: `Bearer ${running.apiKey}` };
});

afterAll(async () => {
  await running.close();
});

type Seen = RawAnswer;

/** Versions and expiry times differ from one write to the next: compared by shape. */
function normalized(seen: Seen): Seen {
  const body = seen.body.replace(/\\"\d+\\"/g, '\\"<v>\\"').replace(/"expires_at":\d+/, '"expires_at":<t>');
  const headers = { ...seen.headers };
  if (headers.etag !== undefined) headers.etag = headers.etag.replace(/\d+/, '<v>');
  return { status: seen.status, body, headers };
}

/** A PUT as node's client sends it: with a Content-Length, or with `chunked`, without one. */
async function put(path: string, body: string, headers: Record<string, string>, chunked = false): Promise<Seen> {
  return normalized(await sendWithBody(`${server.url}${path}`, 'PUT', body, headers, { chunked }));
}

/** A PUT whose header lines are written exactly as given (repeated names), which node's client would merge. */
async function putRaw(path: string, lines: Array<[string, string]>, body: string): Promise<Seen> {
  const { host } = new URL(server.url);
  const sent = [...lines, ['Content-Length', String(Buffer.byteLength(body))]].map(([n, v]) => `${n}: ${v}\r\n`).join('');
  return normalized(parseRawAnswer(await exchangeRaw(server.url, `PUT ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n${sent}\r\n${body}`)));
}

async function read(path: string): Promise<{ status: number; type: string | null; expires: string | null; body: string }> {
  const res = await fetch(`${server.url}${path}`, { headers: auth });
  return { status: res.status, type: res.headers.get('content-type'), expires: res.headers.get('x-expires-at'), body: await res.text() };
}

// `/v1/kv/k/<name>` with a Content-Length is answered directly; `/v1/kv/k%2F<name>` names the same
// key and is decoded by hono, and so is a chunked body.
describe('a direct KV PUT answers as the hono route does', () => {
  it.each([
    ['a value with its content type', '', 'hello', { 'content-type': 'text/x-thing' }],
    ['no content type', '', 'hello', {}],
    ['an empty value', '', '', { 'content-type': 'text/plain' }],
    ['a ttl', '?ttl=60', 'v', {}],
    ['a ttl of 0', '?ttl=0', 'v', {}],
    ['a ttl of 13 digits', '?ttl=1234567890123', 'v', {}],
    ['a 401', '', 'v', { authorization: 'Bearer nope' }],
    ['a CORS request', '', 'v', { origin: 'https://example.com' }],
    ['a 413', '', 'x'.repeat(LIMIT + 1), {}],
    ['a value at the limit', '', 'x'.repeat(LIMIT), {}],
    ['If-Match with an unknown version', '', 'v', { 'if-match': '"1"' }],
    ['If-Match: * on a missing key', '', 'v', { 'if-match': '*' }],
    ['If-Match and If-None-Match together', '', 'v', { 'if-match': '"1"', 'if-none-match': '*' }],
  ])('%s', async (_, query, body, extra) => {
    const headers = { ...auth, ...extra };
    // Names of one length, so that answers differ only where the key is named.
    const name = `case-${Math.random().toString(36).slice(2, 10)}`;
    const as = (seen: Seen, from: string, to: string): Seen => JSON.parse(JSON.stringify(seen).replaceAll(from, to)) as Seen;
    const direct = await put(`/v1/kv/k/${name}-d${query}`, body, headers);
    expect(direct).toEqual(as(await put(`/v1/kv/k%2F${name}-h${query}`, body, headers), `${name}-h`, `${name}-d`));
    expect(direct).toEqual(as(await put(`/v1/kv/k/${name}-c${query}`, body, headers, true), `${name}-c`, `${name}-d`));
    if (direct.status === 200) {
      // Expiry times differ by the milliseconds between the writes: compared by presence.
      const stored = { ...(await read(`/v1/kv/k/${name}-d`)), expires: undefined };
      const other = await read(`/v1/kv/k/${name}-h`);
      expect(stored).toEqual({ ...other, expires: undefined });
      expect((await read(`/v1/kv/k/${name}-d`)).expires === null).toBe(other.expires === null);
      expect(stored.body).toBe(body);
    }
  });

  it('keeps the expiry a ttl sets', async () => {
    await put('/v1/kv/ttl/a?ttl=3600', 'v', auth);
    const { expires } = await read('/v1/kv/ttl/a');
    expect(Number(expires)).toBeGreaterThan(Date.now() + 3500_000);
  });

  it('honours If-Match and If-None-Match: * as the hono route does', async () => {
    for (const path of ['/v1/kv/cond/x', '/v1/kv/cond%2Fy']) {
      const created = await fetch(`${server.url}${path}`, { method: 'PUT', headers: { ...auth, 'if-none-match': '*' }, body: 'one' });
      expect(created.status).toBe(200);
      const etag = created.headers.get('etag')!;
      expect((await fetch(`${server.url}${path}`, { method: 'PUT', headers: { ...auth, 'if-none-match': '*' }, body: 'two' })).status).toBe(412);
      expect((await fetch(`${server.url}${path}`, { method: 'PUT', headers: { ...auth, 'if-match': '"1"' }, body: 'two' })).status).toBe(412);
      const updated = await fetch(`${server.url}${path}`, { method: 'PUT', headers: { ...auth, 'if-match': etag }, body: 'two' });
      expect(updated.status).toBe(200);
      expect(updated.headers.get('etag')).not.toBe(etag);
      const third = await fetch(`${server.url}${path}`, { method: 'PUT', headers: { ...auth, 'if-match': `"0", ${updated.headers.get('etag')}` }, body: 'three' });
      expect(third.status).toBe(200);
      expect((await fetch(`${server.url}${path}`, { method: 'PUT', headers: { ...auth, 'if-none-match': `"0", ${third.headers.get('etag')}` }, body: 'four' })).status).toBe(412);
    }
    expect((await read('/v1/kv/cond/x')).body).toBe('three');
    expect((await read('/v1/kv/cond/y')).body).toBe('three');
  });

  // RFC 9110: If-Match compares strongly (a weak tag never matches), If-None-Match weakly.
  it('refuses an If-Match of a weak tag with 412 on PUT and DELETE, direct or not; If-None-Match takes it', async () => {
    const created = await fetch(`${server.url}/v1/kv/weak/x`, { method: 'PUT', headers: auth, body: 'one' });
    const weak = `W/${created.headers.get('etag')!}`;
    for (const [path, chunked] of [['/v1/kv/weak/x', false], ['/v1/kv/weak%2Fx', false], ['/v1/kv/weak/x', true]] as const) {
      const seen = await put(path, 'two', { ...auth, 'if-match': weak }, chunked);
      expect([seen.status, seen.body], `${path} chunked: ${chunked}`).toEqual([412, expect.stringContaining('a weak tag')]);
      expect((await put(path, 'two', { ...auth, 'if-none-match': weak }, chunked)).status, `${path} chunked: ${chunked}`).toBe(412);
    }
    expect((await fetch(`${server.url}/v1/kv/weak/x`, { method: 'DELETE', headers: { ...auth, 'if-match': weak } })).status).toBe(412);
    expect((await fetch(`${server.url}/v1/kv/weak/x`, { headers: { ...auth, 'if-none-match': weak } })).status).toBe(304);
    expect(await read('/v1/kv/weak/x')).toMatchObject({ status: 200, body: 'one' });
  });

  it('keeps the first of repeated Content-Type lines joined, as fetch does', async () => {
    const lines: Array<[string, string]> = [
      ['Authorization', auth.authorization!],
      ['Content-Type', 'text/a'],
      ['content-type', 'text/b'],
    ];
    const direct = await putRaw('/v1/kv/dup/a', lines, 'v');
    expect(direct).toEqual(JSON.parse(JSON.stringify(await putRaw('/v1/kv/dup%2Fb', lines, 'v')).replaceAll('dup/b', 'dup/a')) as Seen);
    expect((await read('/v1/kv/dup/a')).type).toBe((await read('/v1/kv/dup/b')).type);
  });

  // The body is taken whole when it came with its headers, else as its parts arrive.
  it('takes a body sent with its headers, after them, or in parts', async () => {
    const value = 'b'.repeat(1500);
    const lines: Array<[string, string]> = [['Authorization', auth.authorization!]];
    expect((await putRaw('/v1/kv/body/one-write', lines, value)).status).toBe(200);
    expect((await sendWithBody(`${server.url}/v1/kv/body/parts`, 'PUT', value, auth, { pause: 50 })).status).toBe(200);
    expect((await sendWithBody(`${server.url}/v1/kv/body/empty`, 'PUT', '', auth, { pause: 20 })).status).toBe(200);
    expect((await read('/v1/kv/body/one-write')).body).toBe(value);
    expect((await read('/v1/kv/body/parts')).body).toBe(value);
    expect((await read('/v1/kv/body/empty')).body).toBe('');
  });

  it('answers PUTs sent back to back in one write, each with its own body', async () => {
    const { host } = new URL(server.url);
    const one = (key: string, body: string, close: boolean) =>
      `PUT /v1/kv/piped/${key} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${auth.authorization!}\r\n${close ? 'Connection: close\r\n' : ''}Content-Length: ${body.length}\r\n\r\n${body}`;
    const answers = await exchangeRaw(server.url, one('a', 'first', false) + one('b', 'x'.repeat(700), false) + one('c', 'third', true));
    expect(answers.match(/HTTP\/1\.1 200 OK\r\n/g)).toHaveLength(3);
    expect((await read('/v1/kv/piped/a')).body).toBe('first');
    expect((await read('/v1/kv/piped/b')).body).toBe('x'.repeat(700));
    expect((await read('/v1/kv/piped/c')).body).toBe('third');
  });

  it('counts its requests in the metrics by route', async () => {
    const count = async (): Promise<number> => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const m = /quartz_http_requests_total\{[^}]*method="PUT"[^}]*route="\/v1\/kv\/:key\{\.\+\}"[^}]*status="200"[^}]*\} (\d+)|quartz_http_requests_total\{[^}]*route="\/v1\/kv\/:key\{\.\+\}"[^}]*method="PUT"[^}]*status="200"[^}]*\} (\d+)/.exec(text);
      return m === null ? 0 : Number(m[1] ?? m[2]);
    };
    const before = await count();
    await put('/v1/kv/metrics/a', 'v', auth);
    expect(await count()).toBe(before + 1);
  });
});
