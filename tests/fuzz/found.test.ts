/**
 * Defects the HTTP API fuzzer (./fuzz.ts) found, one focused test each, against a real server on
 * loopback: the request as the fuzzer sent it, byte for byte, and what must hold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerWithTenant, type ServerWithTenant } from '../fixtures/server-with-tenant.js';
import { startServerProcess, tempDir, type ServerProcess } from '../integration/server-process.js';
import { exchange } from './raw-http.js';

let running: ServerWithTenant;
let port: number;
let auth: string;

beforeAll(async () => {
  running = await startServerWithTenant('fuzz-found');
  port = Number(new URL(running.server.url).port);
  auth = `Bearer ${running.apiKey}`;
});

afterAll(async () => {
  await running.close();
});

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${running.server.url}${path}`, { ...init, headers: { authorization: auth, ...(init.headers as Record<string, string>) } });
}

/** Samples of quartz_http_requests_total for `route` with `status`, summed over methods. */
async function answered(route: string, status: number): Promise<number> {
  const text = await (await fetch(`${running.server.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('quartz_http_requests_total{') && line.includes(`route="${route}"`) && line.includes(`status="${status}"`)) total += Number(line.split(' ').pop());
  }
  return total;
}

const send = (text: string, options: { halfClose?: boolean; body?: Buffer } = {}) =>
  exchange(port, { pieces: [Buffer.from(text, 'latin1'), ...(options.body ? [options.body] : [])], halfClose: options.halfClose ?? false }, { expected: 1, boundMs: 15_000 });

describe('a write route that takes no body, sent one cut short', () => {
  // Fuzz case 1:84: DELETE /v1/topics/t1 with `Transfer-Encoding: chunked`, the body cut, then FIN.
  // The route acted on the headers and deleted the topic; the client read 400 from the transport.
  it('does nothing and answers 400 (chunked, cut, then FIN)', async () => {
    expect((await api('/v1/kv/kept', { method: 'PUT', body: 'v' })).status).toBe(200);
    const x = await send(`DELETE /v1/kv/kept HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab`, { halfClose: true });
    expect(x.responses.map((r) => r.status)).toEqual([400]);
    expect(JSON.parse(x.responses[0]!.body.toString())).toEqual({ error: 'invalid_argument', message: expect.any(String) });
    expect((await api('/v1/kv/kept')).status).toBe(200);
  });

  it('does nothing and answers 400 (a Content-Length the body never reaches)', async () => {
    const before = ((await (await fetch(`${running.server.url}/v1/admin/tenants/${await tenantId()}/keys`, { headers: { authorization: `Bearer ${running.server.adminKey.key}` } })).json()) as { keys: unknown[] }).keys.length;
    const x = await send(`POST /v1/admin/tenants/${await tenantId()}/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${running.server.adminKey.key}\r\nContent-Length: 10\r\n\r\nab`, { halfClose: true });
    expect(x.responses.map((r) => r.status)).toEqual([400]);
    const after = ((await (await fetch(`${running.server.url}/v1/admin/tenants/${await tenantId()}/keys`, { headers: { authorization: `Bearer ${running.server.adminKey.key}` } })).json()) as { keys: unknown[] }).keys.length;
    expect(after).toBe(before);
  });

  it('still acts once the whole body came, and refuses a body over the JSON limit', async () => {
    expect((await api('/v1/kv/gone', { method: 'PUT', body: 'v' })).status).toBe(200);
    const x = await send(`DELETE /v1/kv/gone HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
    expect(x.responses.map((r) => r.status)).toEqual([204]);
    expect((await api('/v1/kv/gone')).status).toBe(404);
    expect((await api('/v1/kv/big', { method: 'PUT', body: 'v' })).status).toBe(200);
    const big = await api('/v1/kv/big', { method: 'DELETE', body: 'x'.repeat(2 << 20) });
    expect(big.status).toBe(413);
    expect((await api('/v1/kv/big')).status).toBe(200);
  });
});

async function tenantId(): Promise<string> {
  return ((await (await api('/v1/usage')).json()) as { tenant_id: string }).tenant_id;
}

// A server process of its own: in this process the client's writes and the server's reads take
// turns, and the resets below did not happen.
describe('a connection the server closes after an answer, with bytes unread behind it', () => {
  let server: ServerProcess;
  let serverPort: number;
  beforeAll(async () => {
    server = await startServerProcess(['--data', await tempDir('fuzz-linger')]);
    serverPort = Number(new URL(server.url).port);
  });
  afterAll(async () => {
    await server?.stop('SIGKILL');
  });

  // Fuzz case 1:46 and others: a 2 MiB body to a route that reads none, with `Connection: close`.
  // The server answered and destroyed the socket with the body unread: the client, still
  // sending, met EPIPE/ECONNRESET and never read its answer (about one time in three).
  it('lingers, so a client still sending its body reads the answer', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 12; i++) {
      const path = i % 2 === 0 ? '/v1/health' : '/v1/kv/none';
      const head = `GET ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 << 20}\r\nConnection: close\r\n\r\n`;
      const x = await exchange(serverPort, { pieces: [Buffer.from(head), Buffer.alloc(2 << 20, 0x20)] }, { expected: 1, boundMs: 15_000 });
      seen.push(`${x.responses.map((r) => r.status).join(',')}${x.error === undefined ? '' : ` ${x.error}`}`);
    }
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? '200' : '401')));
  });

  // Fuzz case 4:2607: GET /v1/openapi.json (a 130 KB answer) with `Connection: close`, and more
  // bytes after it (RFC 9112 §9.6: ignored). node's parser refuses those bytes once the server's
  // side has ended, and that refusal destroyed the socket with the rest of the answer unsent:
  // the client read ~128 KB of it, or a reset.
  it('sends the whole answer of the request before them', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const after = i % 2 === 0 ? `PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 << 20}\r\n\r\n` : '';
      const text = `GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n${after}`;
      const x = await exchange(serverPort, { pieces: [Buffer.from(text), Buffer.alloc(2 << 20, 0x20)] }, { expected: 1, boundMs: 15_000 });
      const r = x.responses[0];
      seen.push(r === undefined ? `none (${x.error ?? 'closed'}, ${x.trailing.length} bytes)` : `${r.status} ${r.body.length === Number(r.headers.get('content-length')?.[0]) ? 'whole' : 'cut'}`);
    }
    expect(seen).toEqual(Array.from({ length: 6 }, () => '200 whole'));
  });
});

describe('a backup whose client leaves before it began', () => {
  // Fuzz case 2:156: GET /v1/admin/backup, then FIN at once. The snapshot rejected with the
  // request's abort, which was logged as an unhandled error and counted as a 500.
  it('is not a server failure', async () => {
    const before = await answered('/v1/admin/backup', 400);
    for (let i = 0; i < 5; i++) {
      await send(`GET /v1/admin/backup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${running.server.adminKey.key}\r\n\r\n`, { halfClose: true });
    }
    // Each ended one way or the other: a 200 (the snapshot was taken first) or a 400 (client gone).
    const deadline = Date.now() + 10_000;
    while ((await answered('/v1/admin/backup', 200)) + (await answered('/v1/admin/backup', 400)) - before < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await answered('/v1/admin/backup', 500)).toBe(0);
  });
});
