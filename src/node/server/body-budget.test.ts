/**
 * The body budget's rules on a real listener (docs/configuration.md, Request bodies in memory):
 * a held body counts until its answer; one key holds at most half the budget; every key together
 * at most all of it; small bodies and bodiless requests always pass; a body larger than the whole
 * budget (or a chunked one that may grow past it) is 413; and a refusal closes the connection
 * cleanly, unread.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultRequestBodiesBytes } from './body-budget.js';
import { sendWithBody, startServerWithTenant, type ServerWithTenant } from '../../../tests/fixtures/server-with-tenant.js';

const KiB = 1024;
const BUDGET = 1024 * KiB;
let running: ServerWithTenant;
let otherKey: string;
let thirdKey: string;

async function register(email: string): Promise<string> {
  const answer = await fetch(`${running.server.url}/v1/auth/register`, { method: 'POST', body: JSON.stringify({ email }) });
  return ((await answer.json()) as { api_key: string }).api_key;
}

beforeAll(async () => {
  running = await startServerWithTenant('body-budget', {}, { requestBodiesMaxBytes: String(BUDGET) });
  otherKey = await register('other@example.com');
  thirdKey = await register('third@example.com');
});

afterAll(async () => {
  await running.close();
});

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

/** A PUT whose body is sent only in part: it holds its share until `finish`; resolves once the budget holds `heldAfter` bytes. */
async function heldPut(key: string, name: string, size: number, heldAfter: number): Promise<{ finish(): Promise<string> }> {
  const { hostname, port } = new URL(running.server.url);
  const socket: Socket = connect(Number(port), hostname);
  let text = '';
  socket.setEncoding('latin1').on('data', (c: string) => (text += c));
  const ended = new Promise<void>((resolve) => socket.once('end', resolve));
  socket.write(`PUT /v1/kv/${name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`);
  socket.write('a'.repeat(size >> 1));
  for (let i = 0; (await held()) !== heldAfter && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
  return {
    async finish() {
      socket.write('a'.repeat(size - (size >> 1)));
      await ended;
      return text;
    },
  };
}

async function metricValue(name: string): Promise<number> {
  const text = await (await fetch(`${running.server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.slice(name.length + 1));
}

const held = () => metricValue('quartz_request_body_bytes');

describe('the server-wide body budget', () => {
  it('admits bodies within the budget and each key’s half of it, refuses the rest unread with 503, and gives bytes back when answered', async () => {
    const refusedBefore = await metricValue('quartz_request_bodies_refused_total');
    const first = await heldPut(running.apiKey, 'held-1', 400 * KiB, 400 * KiB);
    expect(await held()).toBe(400 * KiB);

    // The same key: 400 + 200 KiB is over its half (512 KiB).
    const sameKey = await sendWithBody(`${running.server.url}/v1/kv/same`, 'PUT', 'b'.repeat(200 * KiB), auth(running.apiKey));
    expect(sameKey.status).toBe(503);
    expect(sameKey.headers['retry-after']).toBe('1');
    expect(sameKey.headers['access-control-allow-origin']).toBe('*'); // a browser client can read it
    expect(JSON.parse(sameKey.body)).toMatchObject({ error: 'unavailable' });

    // Another key fits: 600 KiB in all.
    expect((await sendWithBody(`${running.server.url}/v1/kv/other`, 'PUT', 'c'.repeat(200 * KiB), auth(otherKey))).status).toBe(200);

    // A key holding nothing may take one body past its half; then the budget as a whole is full.
    const second = await heldPut(otherKey, 'held-2', 560 * KiB, 960 * KiB);
    expect(await held()).toBe(960 * KiB);
    const full = await sendWithBody(`${running.server.url}/v1/kv/third`, 'PUT', 'd'.repeat(100 * KiB), auth(thirdKey));
    expect(full.status).toBe(503);
    expect(JSON.parse(full.body).message).toContain('was not read');

    // Small bodies and bodiless requests go on.
    expect((await sendWithBody(`${running.server.url}/v1/kv/small`, 'PUT', 'e'.repeat(32 * KiB), auth(thirdKey))).status).toBe(200);
    expect((await fetch(`${running.server.url}/v1/kv/small`, { headers: auth(thirdKey) })).status).toBe(200);

    // The held bodies finish and are stored; their bytes come back, and the refused were not stored.
    expect(await first.finish()).toMatch(/^HTTP\/1\.1 200 /);
    expect(await second.finish()).toMatch(/^HTTP\/1\.1 200 /);
    expect(await held()).toBe(0);
    expect((await fetch(`${running.server.url}/v1/kv/held-1`, { headers: auth(running.apiKey) })).status).toBe(200);
    expect((await fetch(`${running.server.url}/v1/kv/same`, { headers: auth(running.apiKey) })).status).toBe(404);
    expect((await sendWithBody(`${running.server.url}/v1/kv/same`, 'PUT', 'b'.repeat(200 * KiB), auth(running.apiKey))).status).toBe(200);
    expect(await metricValue('quartz_request_bodies_refused_total')).toBe(refusedBefore + 2);
  });

  it('refuses with 413 a body larger than the whole budget, and a chunked one that may grow past it', async () => {
    const large = await sendWithBody(`${running.server.url}/v1/kv/large`, 'PUT', 'f'.repeat(BUDGET + 1), auth(running.apiKey));
    expect(large.status).toBe(413);
    expect(JSON.parse(large.body)).toMatchObject({ error: 'too_large' });
    const chunked = await sendWithBody(`${running.server.url}/v1/kv/chunked`, 'PUT', 'g'.repeat(10), auth(running.apiKey), { chunked: true, pause: 10 });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body).message).toContain('without a Content-Length');
    expect(await held()).toBe(0);
  });

  it('answers a refused upload’s client, still sending, with its 503 and a clean close, not a reset', async () => {
    const first = await heldPut(otherKey, 'held-3', 600 * KiB, 600 * KiB);
    const { hostname, port } = new URL(running.server.url);
    const socket = connect(Number(port), hostname);
    let text = '';
    socket.setEncoding('latin1').on('data', (c: string) => (text += c));
    const ended = new Promise<string>((resolve) => {
      socket.once('end', () => resolve('end'));
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`));
      setTimeout(() => resolve('still open'), 10_000);
    });
    const size = 900 * KiB;
    socket.write(`PUT /v1/kv/refused HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${thirdKey}\r\nContent-Length: ${size}\r\n\r\n`);
    socket.write('h'.repeat(size));
    expect(await ended).toBe('end');
    expect(text).toMatch(/^HTTP\/1\.1 503 /);
    expect(text.toLowerCase()).toContain('connection: close');
    socket.destroy();
    expect(await first.finish()).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe('defaultRequestBodiesBytes', () => {
  it('is a sixteenth of memory, at least 64 MiB and twice the largest body limit', () => {
    const MiB = 2 ** 20;
    expect(defaultRequestBodiesBytes(16 * 1024 * MiB, 32 * MiB)).toBe(1024 * MiB);
    expect(defaultRequestBodiesBytes(512 * MiB, 32 * MiB)).toBe(64 * MiB);
    expect(defaultRequestBodiesBytes(512 * MiB, 100 * MiB)).toBe(200 * MiB);
  });
});
