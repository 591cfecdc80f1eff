/**
 * HTTP semantics a demanding client relies on, against a real server on loopback: HEAD answers
 * with GET's head, `Expect: 100-continue` refused before the body is sent, CORS preflights on
 * paths that exist only, and odd but valid requests (HTTP/1.0, absolute-form targets, chunked
 * bodies) answered as their plain forms.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeRaw, parseRawAnswer, sendWithBody, startServerWithTenant, type ServerWithTenant } from '../fixtures/server-with-tenant.js';

let running: ServerWithTenant;
let auth: string;

beforeAll(async () => {
  // A limited plan, so answers carry the X-RateLimit-* headers too.
  running = await startServerWithTenant('http-semantics', { default_plan: 'pro' });
  auth = `Bearer ${running.apiKey}`;
  const put = (path: string, body: string): Promise<Response> => fetch(`${running.server.url}${path}`, { method: 'PUT', headers: { authorization: auth, 'content-type': 'text/plain' }, body });
  const post = (path: string, body: unknown): Promise<Response> =>
    fetch(`${running.server.url}${path}`, { method: 'POST', headers: { authorization: auth }, body: JSON.stringify(body) });
  expect((await put('/v1/kv/greeting', 'hello, world')).status).toBe(200);
  expect((await post('/v1/topics', { name: 'orders', partitions: 1 })).status).toBe(201);
  expect((await post('/v1/topics/orders/records', { records: [{ value: 'one' }] })).status).toBe(200);
  expect((await post('/v1/collections', { name: 'docs', dims: 2, metric: 'cosine' })).status).toBe(201);
  expect((await post('/v1/collections/docs/upsert', { vectors: [{ id: 'a', values: [1, 0] }] })).status).toBe(200);
});

afterAll(async () => {
  await running.close();
});

/** Headers that differ between two answers to the same request. */
const PER_ANSWER = new Set(['date', 'x-request-id', 'x-ratelimit-remaining', 'x-ratelimit-reset']);

interface Head {
  status: number;
  headers: Record<string, string>;
  bodyBytes: number;
}

/** One request with node's client, which reads a HEAD answer as bodiless whatever its length says. */
function send(method: string, path: string, headers: Record<string, string> = {}): Promise<Head> {
  return new Promise((resolve, reject) => {
    const req = request(`${running.server.url}${path}`, { method, headers: { authorization: auth, ...headers } }, (res) => {
      let bodyBytes = 0;
      res.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
      res.on('end', () => {
        const out: Record<string, string> = {};
        for (const [name, value] of Object.entries(res.headers)) if (!PER_ANSWER.has(name)) out[name] = String(value);
        resolve({ status: res.statusCode!, headers: out, bodyBytes });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HEAD', () => {
  const paths = [
    '/v1/health',
    '/v1/openapi.json',
    '/v1/kv/greeting', // a direct route for GET
    '/v1/kv?prefix=',
    '/v1/kv/absent',
    '/v1/topics',
    '/v1/topics/orders',
    '/v1/topics/orders/partitions/0/records?offset=0', // a direct route for GET
    '/v1/collections/docs',
    '/v1/collections/docs/vectors/a',
    '/v1/usage',
    '/docs',
  ];

  it.each(paths)('%s answers with the headers GET sends, Content-Length included, and no body', async (path) => {
    const get = await send('GET', path);
    const head = await send('HEAD', path);
    expect(get.headers['content-length']).toBe(String(get.bodyBytes));
    expect(head).toEqual({ ...get, bodyBytes: 0 });
  });

  it('carries the rate-limit headers of the tenant', async () => {
    const head = await send('HEAD', '/v1/kv/greeting');
    expect(head.headers['x-ratelimit-limit']).toBe('10000');
  });

  it('is bodiless on a raw socket too, so the next answer on the connection is read whole', async () => {
    const text = await exchangeRaw(
      running.server.url,
      `HEAD /v1/kv/greeting HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\n\r\nGET /v1/kv/greeting HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nConnection: close\r\n\r\n`,
    );
    const [head, get] = text.split(/(?=HTTP\/1\.1 )/).map(parseRawAnswer);
    expect(head!.headers['content-length']).toBe('12');
    expect(head!.body).toBe('');
    expect(get!.body).toBe('hello, world');
  });
});

/**
 * Writes `head` on a fresh connection; once the server has sent `sendBodyAfter` (if given), writes
 * `body`. Resolves with everything the server sent until it closed, or until `boundMs` passed.
 */
function converse(head: string, options: { sendBodyAfter?: string; body?: string; boundMs?: number } = {}): Promise<{ text: string; closed: boolean }> {
  const { port, hostname } = new URL(running.server.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let text = '';
    let sent = false;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, options.boundMs ?? 3000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (!sent && options.sendBodyAfter !== undefined && text.includes(options.sendBodyAfter)) {
        sent = true;
        socket.write(options.body ?? '');
      }
    });
    socket.on('end', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    socket.on('error', reject);
    socket.write(head);
  });
}

describe('Expect: 100-continue', () => {
  const expecting = (method: string, path: string, key: string, length: number): string =>
    `${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`;

  it.each([
    ['a bad key', 'PUT', '/v1/kv/upload', 'qz_wrong', 25 << 20, 401],
    ['a body over the route limit', 'PUT', '/v1/kv/upload', '', 30 << 20, 413],
    ['a path that names nothing', 'POST', '/v1/nothing', '', 100, 404],
    ['a method the path lacks', 'PATCH', '/v1/kv/upload', '', 100, 405],
  ])('with %s is answered at once, without 100 Continue, and the connection closes', async (_what, method, path, key, length, status) => {
    const { text, closed } = await converse(expecting(method, path, key || running.apiKey, length));
    expect(text).not.toContain('100 Continue');
    const answer = parseRawAnswer(text);
    expect(answer.status).toBe(status);
    expect(JSON.parse(answer.body)).toHaveProperty('error');
    expect(text).toMatch(/\r\nConnection: close\r\n/i);
    expect(closed).toBe(true);
  });

  it.each([
    ['KV PUT', 'PUT', '/v1/kv/continued', 'continued value'],
    ['produce', 'POST', '/v1/topics/orders/records', JSON.stringify({ records: [{ value: 'two' }] })],
    ['upsert', 'POST', '/v1/collections/docs/upsert', JSON.stringify({ vectors: [{ id: 'b', values: [0, 1] }] })],
    ['create a topic', 'POST', '/v1/topics', JSON.stringify({ name: 'continued', partitions: 1 })],
  ])('on %s gets 100 Continue once the route reads the body, then its answer, and the connection stays', async (_what, method, path, body) => {
    const { text, closed } = await converse(expecting(method, path, running.apiKey, Buffer.byteLength(body)), { sendBodyAfter: '\r\n\r\n', body, boundMs: 1500 });
    expect(text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')).toBe(true);
    const answer = parseRawAnswer(text.slice(text.indexOf('\r\n\r\n') + 4));
    expect(answer.status).toBeLessThan(300);
    expect(text).not.toMatch(/Connection: close/i);
    expect(closed).toBe(false);
  });
});

describe('Expect: 100-continue with the body sent at once', () => {
  it.each([
    ['KV PUT', 'PUT', '/v1/kv/eager', 'eager value'],
    ['produce', 'POST', '/v1/topics/orders/records', JSON.stringify({ records: [{ value: 'eager' }] })],
    ['create a topic', 'POST', '/v1/topics', JSON.stringify({ name: 'eager', partitions: 1 })],
  ])('on %s answers, keeps the connection, and answers the request pipelined behind it', async (_what, method, path, body) => {
    const text = await exchangeRaw(
      running.server.url,
      `${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n${body}` +
        `GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    const answers = text.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '').split(/(?=HTTP\/1\.1 \d{3} )/).map(parseRawAnswer);
    expect(answers.map((a) => a.status)).toEqual([expect.any(Number), 200]);
    expect(answers[0]!.status).toBeLessThan(300);
    expect(text.split(/\r\nConnection: close\r\n/i).length).toBe(2); // only the last answer closes
  });
});

describe('OPTIONS and CORS preflights', () => {
  const preflight = { origin: 'https://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization' };

  it.each([
    ['/v1/kv/some/key', 'PUT, GET, HEAD, DELETE, OPTIONS'],
    ['/v1/topics', 'POST, GET, HEAD, OPTIONS'],
    ['/v1/health', 'GET, HEAD, OPTIONS'],
    ['/docs', 'GET, HEAD, OPTIONS'],
  ])('on %s answer 204 listing the path methods, in Allow and to the browser', async (path, methods) => {
    const answer = await send('OPTIONS', path, preflight);
    expect(answer.status).toBe(204);
    expect(answer.headers.allow).toBe(methods);
    expect(answer.headers['access-control-allow-methods']).toBe(methods.replaceAll(', ', ','));
    expect(answer.headers['access-control-allow-origin']).toBe('*');
  });

  it.each(['/v1/nothing', '/v1/kvx/a', '/no/such/file.js'])('on %s, which names nothing, answer 404 as JSON, preflight or not', async (path) => {
    for (const headers of [preflight, {}]) {
      const answer = await sendWithBody(`${running.server.url}${path}`, 'OPTIONS', '', headers);
      expect(answer.status).toBe(404);
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'not_found' });
    }
  });
});

describe('the request target *', () => {
  it('answers OPTIONS * with the methods of the server, and refuses other methods on it as JSON', async () => {
    const options = parseRawAnswer(await exchangeRaw(running.server.url, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    expect([options.status, options.headers.allow]).toEqual([204, 'GET, HEAD, PUT, POST, PATCH, DELETE, OPTIONS']);
    const get = parseRawAnswer(await exchangeRaw(running.server.url, 'GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    expect([get.status, JSON.parse(get.body).error]).toEqual([400, 'invalid_argument']);
  });
});

describe('odd but valid requests', () => {
  const raw = async (text: string) => {
    const answers = (await exchangeRaw(running.server.url, text)).split(/(?=HTTP\/1\.[01] \d{3} )/);
    return answers.map(parseRawAnswer);
  };

  it('HTTP/1.0, on a direct route and a hono one, gets its answer and the connection closes', async () => {
    const [put] = await raw(`PUT /v1/kv/old-client HTTP/1.0\r\nAuthorization: ${auth}\r\nContent-Length: 3\r\n\r\nabc`);
    expect(put!.status).toBe(200);
    const [get] = await raw(`GET /v1/kv/old-client HTTP/1.0\r\nAuthorization: ${auth}\r\n\r\n`);
    expect([get!.status, get!.body, get!.headers['content-length']]).toEqual([200, 'abc', '3']);
    const [topics] = await raw(`GET /v1/topics HTTP/1.0\r\nAuthorization: ${auth}\r\n\r\n`);
    expect(topics!.status).toBe(200);
  });

  it('an absolute-form target names the same resource as its path', async () => {
    const [get, list] = await raw(
      `GET http://x/v1/kv/greeting HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\n\r\nGET http://x/v1/topics/orders HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nConnection: close\r\n\r\n`,
    );
    expect([get!.status, get!.body]).toEqual([200, 'hello, world']);
    expect(JSON.parse(list!.body)).toMatchObject({ name: 'orders' });
  });

  it('a body on a GET is read past, and the next request on the connection is answered', async () => {
    const [first, second] = await raw(
      `GET /v1/kv/greeting HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Length: 30\r\n\r\nGET /v1/nothing HTTP/1.1\r\n\r\n\r\nGET /v1/topics HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\njunk\r\n0\r\n\r\n`,
    );
    expect([first!.status, first!.body]).toEqual([200, 'hello, world']);
    expect(second!.status).toBe(200);
  });

  it.each([
    ['KV PUT', 'PUT', '/v1/kv/chunked', 'chunked value', 200],
    ['produce', 'POST', '/v1/topics/orders/records', JSON.stringify({ records: [{ value: 'chunked' }] }), 200],
    ['upsert', 'POST', '/v1/collections/docs/upsert', JSON.stringify({ vectors: [{ id: 'c', values: [1, 1] }] }), 200],
    ['query', 'POST', '/v1/collections/docs/query', JSON.stringify({ vector: [1, 0], k: 1 }), 200],
    ['create a topic', 'POST', '/v1/topics', JSON.stringify({ name: 'chunked', partitions: 1 }), 201],
  ])('a chunked body on %s is taken as its plain form', async (_what, method, path, body, status) => {
    const answer = await sendWithBody(`${running.server.url}${path}`, method, body, { authorization: auth }, { chunked: true, pause: 20 });
    expect(answer.status).toBe(status);
  });

  it('KV keys: %2F is a slash, %00 a byte of the key; malformed and overlong encodings are 400, a trailing slash names another path', async () => {
    const put = (key: string): Promise<Head> => send('PUT', `/v1/kv/${key}`, { 'content-length': '0' });
    expect((await put('nul%00byte')).status).toBe(200);
    expect((await send('GET', '/v1/kv/nul%00byte')).status).toBe(200);
    expect((await send('GET', '/v1/kv/nul')).status).toBe(404);
    expect((await put('user%2F42')).status).toBe(200);
    expect((await send('GET', '/v1/kv/user/42')).status).toBe(200);
    for (const bad of ['bad%zz', '%C0%AF', '%ED%A0%80', '%FF']) {
      const answer = await sendWithBody(`${running.server.url}/v1/kv/${bad}`, 'GET', '', { authorization: auth });
      expect([bad, answer.status, JSON.parse(answer.body).error]).toEqual([bad, 400, 'invalid_argument']);
    }
    const slash = await sendWithBody(`${running.server.url}/v1/topics/`, 'GET', '', { authorization: auth });
    expect([slash.status, JSON.parse(slash.body).error]).toEqual([404, 'not_found']);
  });
});
