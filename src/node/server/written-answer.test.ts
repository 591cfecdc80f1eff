/**
 * A write the server has done is answered as done: a client that half-closes after its request,
 * or sends bytes after a complete request, reads the write's own answer, not nothing or a 400.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRawAnswer, startServerWithTenant, type ServerWithTenant } from '../../../tests/fixtures/server-with-tenant.js';

let running: ServerWithTenant;
let auth: string;

beforeAll(async () => {
  running = await startServerWithTenant('written-answer');
  auth = `Authorization: Bearer ${running.apiKey}\r\n`;
  const headers = { authorization: `Bearer ${running.apiKey}` };
  const topic = await fetch(`${running.server.url}/v1/topics`, { method: 'POST', headers, body: JSON.stringify({ name: 'waiting', partitions: 1 }) });
  const big = await fetch(`${running.server.url}/v1/kv/big`, { method: 'PUT', headers, body: new Uint8Array(4 << 20).fill(97) });
  expect([topic.status, big.status]).toEqual([201, 200]);
});

afterAll(async () => {
  await running.close();
});

/** Writes `text` on a fresh connection, half-closes it when asked, and reads until the server closes. */
function exchange(text: string, halfClose: boolean): Promise<string> {
  const { hostname, port } = new URL(running.server.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let out = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (out += chunk));
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
    socket.write(text);
    if (halfClose) socket.end();
  });
}

async function stored(key: string): Promise<number> {
  const res = await fetch(`${running.server.url}/v1/kv/${key}`, { headers: { authorization: `Bearer ${running.apiKey}` } });
  await res.arrayBuffer();
  return res.status;
}

const host = (): string => `Host: ${new URL(running.server.url).host}\r\n`;

describe('the answer of a write reaches its client', () => {
  it('after the client half-closes its side once the request is sent (direct and hono PUT, DELETE)', async () => {
    // A query other than `?ttl=<digits>` (here an empty one) takes the hono route; the bare path the direct one.
    for (const target of ['/v1/kv/half-a', '/v1/kv/half-b?']) {
      const text = await exchange(`PUT ${target} HTTP/1.1\r\n${host()}${auth}Content-Length: 5\r\n\r\nhello`, true);
      const seen = parseRawAnswer(text);
      expect([target, seen.status, JSON.parse(seen.body).size]).toEqual([target, 200, 5]);
    }
    expect(await stored('half-a')).toBe(200);
    const deleted = parseRawAnswer(await exchange(`DELETE /v1/kv/half-a HTTP/1.1\r\n${host()}${auth}\r\n`, true));
    expect(deleted.status).toBe(204);
    expect(await stored('half-a')).toBe(404);
  });

  it('with pipelined requests before the half-close: each answered in order', async () => {
    const put = (key: string, body: string) => `PUT /v1/kv/${key} HTTP/1.1\r\n${host()}${auth}Content-Length: ${body.length}\r\n\r\n${body}`;
    const text = await exchange(`${put('pipe-1', 'one')}${put('pipe-2?', 'two')}GET /v1/kv/pipe-1 HTTP/1.1\r\n${host()}${auth}\r\n`, true);
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([200, 200, 200]);
    expect(text.endsWith('one')).toBe(true);
  });

  it('when bytes follow a complete request with `Connection: close`: the request is answered, the bytes are ignored (RFC 9112 §9.6)', async () => {
    const text = await exchange(`PUT /v1/kv/closed-extra HTTP/1.1\r\n${host()}${auth}Content-Length: 3\r\nConnection: close\r\n\r\nhelloworld`, false);
    const seen = parseRawAnswer(text);
    expect([seen.status, JSON.parse(seen.body)]).toEqual([200, expect.objectContaining({ key: 'closed-extra', size: 3 })]);
    expect(await stored('closed-extra')).toBe(200);
  });

  it('when bytes node cannot parse follow a complete request: its answer first, then the connection closes', async () => {
    const text = await exchange(`PUT /v1/kv/garbage-after HTTP/1.1\r\n${host()}${auth}Content-Length: 3\r\n\r\nabcG\x01T / HTTP/1.1\r\n\r\n`, false);
    const seen = parseRawAnswer(text);
    expect([seen.status, JSON.parse(seen.body)]).toEqual([200, expect.objectContaining({ key: 'garbage-after', size: 3 })]);
    expect(seen.headers.connection ?? 'close').toBe('close');
  });

  it('when the write is pipelined behind a read still running at the half-close: both answered, in order', async () => {
    // A long-poll (hono), and a 4 MiB GET (direct) whose answer outgrows the socket's buffers: the
    // FIN reaches the server while the read runs and the PUT waits its turn behind it. Cutting
    // the connection for the read dropped the PUT unanswered (and unrun).
    const reads = [`GET /v1/topics/waiting/partitions/0/records?offset=0&max_wait_ms=300 HTTP/1.1\r\n${host()}${auth}\r\n`, `GET /v1/kv/big HTTP/1.1\r\n${host()}${auth}\r\n`];
    for (const [i, read] of reads.entries()) {
      const put = `PUT /v1/kv/behind-${i} HTTP/1.1\r\n${host()}${auth}Content-Length: 6\r\n\r\nbehind`;
      const text = await exchange(`${read}${put}${read}`, true);
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      expect([i, statuses]).toEqual([i, [200, 200, 200]]);
      expect(text.indexOf(`"key":"behind-${i}"`)).toBeGreaterThan(text.indexOf('HTTP/1.1 200 '));
      expect(await stored(`behind-${i}`)).toBe(200);
    }
  });

  it('is never owed for a write pipelined behind a read whose connection the client has reset: the write is not run', async () => {
    const { hostname, port } = new URL(running.server.url);
    const headers = { authorization: `Bearer ${running.apiKey}` };
    expect((await fetch(`${running.server.url}/v1/topics`, { method: 'POST', headers, body: JSON.stringify({ name: 'unheard', partitions: 1 }) })).status).toBe(201);
    // More than loopback's buffers take from a client that reads nothing: its answer stays unfinished.
    expect((await fetch(`${running.server.url}/v1/kv/huge`, { method: 'PUT', headers, body: new Uint8Array(20 << 20).fill(97) })).status).toBe(200);
    const records = JSON.stringify({ records: [{ value: 'nobody reads this answer' }] });
    const socket = connect(Number(port), hostname);
    socket.pause();
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write(
      `GET /v1/kv/huge HTTP/1.1\r\n${host()}${auth}\r\n` +
        `POST /v1/topics/unheard/records HTTP/1.1\r\n${host()}${auth}Content-Length: ${records.length}\r\n\r\n${records}` +
        `PUT /v1/kv/unheard HTTP/1.1\r\n${host()}${auth}Content-Length: 7\r\n\r\nunheard`,
    );
    // While the GET's answer waits on the client and the writes wait their turn behind it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    socket.resetAndDestroy();
    await closed;
    // The writes ran once the reset ended the GET's answer, answering no one (a client that
    // retried its produce after the reset got its records twice).
    await new Promise((resolve) => setTimeout(resolve, 500));
    const topic = (await (await fetch(`${running.server.url}/v1/topics/unheard`, { headers })).json()) as { partition_info: { high_watermark: number }[] };
    expect([topic.partition_info[0]!.high_watermark, await stored('unheard')]).toEqual([0, 404]);
  });
});
