/**
 * Careless and hostile HTTP clients against a real server on loopback: pipelining without reading,
 * compressed bodies, long-polls whose clients vanish. Each is answered cleanly or closed, and
 * leaves no memory, timer or socket behind.
 */
import { Agent, get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeRaw, parseRawAnswer, startServerWithTenant, type ServerWithTenant } from '../fixtures/server-with-tenant.js';
import { listenerTimeouts } from '../../src/node/server/server.js';

let running: ServerWithTenant;
let auth: string;
let port: number;

beforeAll(async () => {
  running = await startServerWithTenant('hostile-clients');
  auth = `Bearer ${running.apiKey}`;
  port = Number(new URL(running.server.url).port);
});

afterAll(async () => {
  await running.close();
});

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${running.server.url}${path}`, { ...init, headers: { authorization: auth, ...(init.headers as Record<string, string>) } });
}

/** Requests counted in the metrics for `route` (all methods and statuses). */
async function handled(route: string): Promise<number> {
  const text = await (await fetch(`${running.server.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith('quartz_http_requests_total{') && line.includes(`route="${route}"`)) total += Number(line.split(' ').pop());
  return total;
}

async function until(probe: () => Promise<boolean> | boolean, what: string, boundMs = 10_000): Promise<void> {
  const end = Date.now() + boundMs;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The long-polls waiting on a partition (the engine's own list: each holds a timer and a socket). */
async function waiters(tenantId: string, topic: string, partition: number): Promise<number> {
  const scope = await running.server.engine.tenant(tenantId);
  const open = (scope.streams as unknown as { topics: Map<string, { logs: Array<{ waiters: Set<unknown> }> }> }).topics.get(topic)!;
  return open.logs[partition]!.waiters.size;
}

describe('a client that pipelines requests and reads no answer', () => {
  it('has one answer built at a time, not one per request; all come once it reads', async () => {
    const value = new Uint8Array(4 << 20).fill(7);
    expect((await api('/v1/kv/big', { method: 'PUT', body: value })).status).toBe(200);
    const route = '/v1/kv/:key{.+}';
    const before = await handled(route);
    const n = 40;
    const socket = connect(port, '127.0.0.1');
    socket.pause();
    const request = `GET /v1/kv/big HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\n\r\n`;
    socket.write(request.repeat(n - 1) + request.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
    await until(async () => (await handled(route)) > before, 'the first answer');
    // Without the turn-taking every request of the write was answered at once (160 MiB queued).
    await new Promise((r) => setTimeout(r, 300));
    expect((await handled(route)) - before).toBeLessThan(5);

    let bytes = 0;
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (text.length < 1000) text += chunk.subarray(0, 200).toString('latin1');
    });
    socket.resume();
    await new Promise((r) => socket.on('close', r));
    expect(text.startsWith('HTTP/1.1 200 OK')).toBe(true);
    expect(bytes).toBeGreaterThan(n * value.length);
    expect(bytes).toBeLessThan(n * (value.length + 1000));
    expect((await handled(route)) - before).toBe(n);
  });

  // RFC 9112 9.3.2: only safe methods may run side by side. Before the turn-taking the GET after
  // the PUT ran while the PUT was still writing, and answered 404.
  it('answers pipelined requests of every kind in order, each seeing the writes before it', async () => {
    const lines = [
      `PUT /v1/kv/p1 HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Length: 2\r\n\r\nv1`,
      `GET /v1/kv?prefix=p HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\n\r\n`,
      `GET /v1/kv/p1 HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\n\r\n`,
      `GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n`,
      `GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    ];
    const text = await exchangeRaw(running.server.url, lines.join(''));
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([200, 200, 200, 404, 200]);
    expect(text).toContain('"key":"p1"');
  });
});

describe('a compressed request body', () => {
  it('is refused with 400, never stored as its compressed bytes; the connection carries on', async () => {
    const gz = `PUT /v1/kv/gz HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello`;
    const chunked = `PUT /v1/kv/gz HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Encoding: br\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`;
    const produce = `POST /v1/topics/none/records HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}`;
    const last = `GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
    const text = await exchangeRaw(running.server.url, gz + chunked + produce + last);
    const answers = text.split(/(?=HTTP\/1\.1 )/);
    expect(answers.map((a) => parseRawAnswer(a).status)).toEqual([400, 400, 400, 200]);
    for (const a of answers.slice(0, 3)) expect(JSON.parse(parseRawAnswer(a).body)).toEqual({ error: 'invalid_argument', message: expect.stringMatching(/Content-Encoding '(gzip|br)' is not supported/) });
    expect((await api('/v1/kv/gz')).status).toBe(404);
    // identity is no coding at all
    expect((await api('/v1/kv/gz', { method: 'PUT', body: 'plain', headers: { 'content-encoding': 'identity' } })).status).toBe(200);
  });
});

describe('long-polls whose clients vanish mid-wait', () => {
  it('free their waiters, timers and sockets', async () => {
    const registered = await fetch(`${running.server.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'long-polls@example.com' }) });
    const { user_id: tenantId, api_key: key } = (await registered.json()) as { user_id: string; api_key: string };
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const topic = await fetch(`${running.server.url}/v1/topics`, { method: 'POST', headers, body: JSON.stringify({ name: 'lp', partitions: 1 }) });
    expect(topic.status).toBe(201);
    const longPolls = '/v1/topics/:t/partitions/:p/records';
    const before = await handled(longPolls);
    const sockets: Socket[] = [];
    for (let i = 0; i < 50; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(`GET /v1/topics/lp/partitions/0/records?offset=0&max_wait_ms=30000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n\r\n`);
      sockets.push(socket);
    }
    await until(async () => (await waiters(tenantId, 'lp', 0)) === 50, 'the long-polls to wait');
    for (const socket of sockets) socket.destroy();
    await until(async () => (await waiters(tenantId, 'lp', 0)) === 0, 'the long-polls to let go');
    await until(async () => (await handled(longPolls)) === before + 50, 'the long-polls to settle');
    const produced = await fetch(`${running.server.url}/v1/topics/lp/records`, { method: 'POST', headers, body: JSON.stringify({ records: [{ value: 'x' }] }) });
    expect(produced.status).toBe(200);
  });
});

describe('the listener timeouts', () => {
  it('are the ones the running server applies (its keep-alive answers announce the 65 s timeout, not the 5 s node defaults to)', async () => {
    const agent = new Agent({ keepAlive: true });
    const keepAlive = await new Promise<string | undefined>((resolve, reject) => {
      get(`${running.server.url}/v1/health`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers['keep-alive'] as string | undefined));
      }).on('error', reject);
    });
    agent.destroy();
    expect(keepAlive).toBe(`timeout=${listenerTimeouts(0).keepAliveMs / 1000}`);
  });


  it('cut stalled connections but no long-poll, and close idle keep-alive connections before answering 408', () => {
    for (const cap of [0, 30_000, 300_000]) {
      const t = listenerTimeouts(cap);
      expect(t.idleMs).toBeGreaterThan(cap + 10_000);
      expect(t.idleMs).toBeLessThanOrEqual(Math.max(120_000, cap + 60_000));
      expect(t.headersMs).toBeGreaterThan(t.keepAliveMs);
      expect(t.requestMs).toBeGreaterThanOrEqual(300_000);
    }
  });
});
