import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeRaw, parseRawAnswer, startServerWithTenant, type RawAnswer, type ServerWithTenant } from '../../../tests/fixtures/server-with-tenant.js';
import type { RunningServer } from './server.js';

let running: ServerWithTenant;
let server: RunningServer;
let auth: Record<string, string>;

beforeAll(async () => {
  running = await startServerWithTenant('transport-errors');
  server = running.server;
  auth = { authorization: `Bearer ${running.apiKey}` };
});

afterAll(async () => {
  await running.close();
});

async function raw(text: string): Promise<RawAnswer & { json: { error: string; message: string } }> {
  const seen = parseRawAnswer(await exchangeRaw(server.url, text));
  return { ...seen, json: JSON.parse(seen.body) as { error: string; message: string } };
}

const host = (): string => new URL(server.url).host;

describe('requests refused before they reach the app are answered as JSON errors', () => {
  it('a request node cannot parse: 400 invalid_argument naming the fault; a method it does not know: 501', async () => {
    const seen = await raw(`G\x01T /v1/health HTTP/1.1\r\nHost: ${host()}\r\n\r\n`);
    expect(seen.status).toBe(400);
    expect(seen.headers['content-type']).toMatch(/^application\/json/);
    expect(seen.json).toEqual({ error: 'invalid_argument', message: expect.stringMatching(/not valid HTTP\/1\.1: Invalid method/) });
    for (const method of ['FOO', 'get', 'BREW']) {
      const unknown = await raw(`${method} /v1/health HTTP/1.1\r\nHost: ${host()}\r\n\r\n`);
      expect([unknown.status, unknown.json]).toEqual([501, { error: 'not_implemented', message: `the method ${method} is not implemented by this server` }]);
    }

    const twice = await raw(`PUT /v1/kv/k HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello`);
    expect([twice.status, twice.json.error]).toEqual([400, 'invalid_argument']);
  });

  it('HTTP/2 without TLS and CONNECT: 400 and 501, not a silently closed connection', async () => {
    const h2 = await raw('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect(h2.status).toBe(400);
    expect(h2.json).toEqual({ error: 'invalid_argument', message: 'HTTP/2 is not served on this port; use HTTP/1.1' });
    const connect = await raw('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expect([connect.status, connect.json.error]).toEqual([501, 'not_implemented']);
  });

  it('headers over node\'s size limit: 431 too_large; a request target over it alone: 414 too_large', async () => {
    const headers = await raw(`GET /v1/health HTTP/1.1\r\nHost: ${host()}\r\nX-Big: ${'h'.repeat(20_000)}\r\n\r\n`);
    expect([headers.status, headers.json.error]).toEqual([431, 'too_large']);
    const target = await raw(`GET /v1/kv/${'k'.repeat(20_000)} HTTP/1.1\r\nHost: ${host()}\r\n\r\n`);
    expect([target.status, target.json.error]).toEqual([414, 'too_large']);
  });

  it('an HTTP/1.1 request without Host: 400; HTTP/1.0 needs none', async () => {
    const seen = await raw('GET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n');
    expect(seen.status).toBe(400);
    expect(seen.json).toEqual({ error: 'invalid_argument', message: 'an HTTP/1.1 request must carry a Host header' });
    const direct = await raw(`GET /v1/kv/k HTTP/1.1\r\nAuthorization: ${auth.authorization}\r\nConnection: close\r\n\r\n`);
    expect([direct.status, direct.json.error]).toEqual([400, 'invalid_argument']);
    expect(parseRawAnswer(await exchangeRaw(server.url, 'GET /v1/health HTTP/1.0\r\n\r\n')).status).toBe(200);
  });

  it('two Host lines: 400, on direct and hono routes alike (node kept the first and answered)', async () => {
    for (const target of ['/v1/health', '/v1/kv/k']) {
      const seen = await raw(`GET ${target} HTTP/1.1\r\nHost: ${host()}\r\nAuthorization: ${auth.authorization}\r\nhost: evil.example\r\n\r\n`);
      expect(seen.status, target).toBe(400);
      expect(seen.json).toEqual({ error: 'invalid_argument', message: 'a request must carry one Host header, not several' });
    }
  });

  it('an Expect other than 100-continue: 417 as JSON, and the connection closes', async () => {
    const seen = await raw(`PUT /v1/kv/k HTTP/1.1\r\nHost: ${host()}\r\nAuthorization: ${auth.authorization}\r\nExpect: 200-ok\r\nContent-Length: 5\r\n\r\nhello`);
    expect(seen.status).toBe(417);
    expect(seen.headers['content-type']).toMatch(/^application\/json/);
    expect(seen.json).toEqual({ error: 'invalid_argument', message: 'the only Expect this server meets is 100-continue' });
  });

  it('a Host or request target no URL can be built from: 400 invalid_argument', async () => {
    for (const text of [`GET /v1/health HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n`, `GET /v1\\health HTTP/1.1\r\nHost: ${host()}\r\nConnection: close\r\n\r\n`]) {
      const seen = await raw(text);
      expect([seen.status, seen.json.error], text).toEqual([400, 'invalid_argument']);
    }
  });
});

describe('a client that leaves mid-body on a route served through hono', () => {
  const counted = async (route: string, status: number): Promise<number> => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const m = new RegExp(`quartz_http_requests_total\\{route="${route.replace(/[{}.+*]/g, '\\$&')}",method="[A-Z]+",status="${status}"\\} (\\d+)`).exec(text);
    return m === null ? 0 : Number(m[1]);
  };

  it('is answered 400 into the closed socket, not counted and logged as a server failure', async () => {
    for (const [route, path, headers] of [
      ['/v1/topics', '/v1/topics', { 'content-length': '100' }],
      ['/v1/kv/:key{.+}', '/v1/kv/cut', { 'transfer-encoding': 'chunked' }],
    ] as const) {
      const before = await counted(route, 400);
      const req = request(`${server.url}${path}`, { method: path === '/v1/topics' ? 'POST' : 'PUT', headers: { ...auth, ...headers } });
      req.on('error', () => undefined);
      req.write('{"name":');
      await new Promise((resolve) => setTimeout(resolve, 50));
      req.destroy();
      const deadline = Date.now() + 5000;
      while ((await counted(route, 400)) === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await counted(route, 400), path).toBe(before + 1);
      expect(await counted(route, 500), path).toBe(0);
    }
  });
});

/**
 * Sends `head` and part of a body, waits for the server's answer, then half-closes (the body
 * never completes) and returns everything the server sent until it closed.
 */
function answeredThenHalfClosed(head: string): Promise<string> {
  const { hostname, port } = new URL(server.url);
  return new Promise<string>((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let out = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      const first = out === '';
      out += chunk;
      if (first) socket.end();
    });
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
    socket.write(head);
  });
}

describe('a request answered before its body was read, whose client then half-closes', () => {
  it.each([
    ['a direct route, Content-Length', 'PUT /v1/kv/k', 'Content-Length: 100\r\n\r\nhalf'],
    ['a direct route, chunked', 'PUT /v1/kv/k', 'Transfer-Encoding: chunked\r\n\r\n4\r\nhalf\r\n'],
    ['a hono route', 'POST /v1/topics', 'Content-Length: 100\r\n\r\n{"na'],
  ])('gets exactly one answer (%s)', async (_what, line, rest) => {
    const text = await answeredThenHalfClosed(`${line} HTTP/1.1\r\nHost: ${host()}\r\n${rest}`);
    expect([...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))).toEqual([401]);
    expect(text).toContain('"error":"unauthorized"');
  });
});
