/**
 * Answers the Node listener gives before any route sees the request (the body budget's 503 and
 * 413, node's parser refusals, CONNECT, an Expect it does not meet) are counted in
 * quartz_http_requests_total as route `early`, as every answer of a route is.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeRaw, startServerWithTenant, type ServerWithTenant } from '../../../tests/fixtures/server-with-tenant.js';

const BUDGET = 1024 * 1024;
let running: ServerWithTenant;

beforeAll(async () => {
  running = await startServerWithTenant('early-metrics', {}, { requestBodiesMaxBytes: String(BUDGET) });
});

afterAll(async () => {
  await running.close();
});

async function early(): Promise<Record<string, number>> {
  const text = await (await fetch(`${running.server.url}/metrics`)).text();
  const seen: Record<string, number> = {};
  for (const m of text.matchAll(/^quartz_http_requests_total\{route="early",method="([^"]*)",status="(\d+)"\} (\d+)$/gm)) seen[`${m[1]} ${m[2]}`] = Number(m[3]);
  return seen;
}

describe('answers given before routing', () => {
  it('are counted by method and status under route `early`', async () => {
    const { url } = running.server;
    const { host, hostname, port } = new URL(url);
    const head = (method: string, path: string, extra: string) => `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${running.apiKey}\r\n${extra}`;
    expect(await early()).toEqual({});

    // Held unread: 700 KiB of the 1 MiB budget, so the next large body does not fit.
    const holder = connect(Number(port), hostname);
    holder.on('error', () => {});
    await new Promise((resolve) => holder.once('connect', resolve));
    holder.write(head('PUT', '/v1/kv/held', `Content-Length: ${700 * 1024}\r\n\r\n`));
    holder.write('x');
    const other = 'Bearer qz_' + '0'.repeat(64); // another holder's share
    const refused = async (length: number) => (await exchangeRaw(url, `PUT /v1/kv/two HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${other}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`)).split(' ')[1];
    let busy: string | undefined;
    for (let i = 0; i < 50 && busy !== '503'; i++) busy = await refused(600 * 1024);
    expect(busy).toBe('503');
    expect(await refused(BUDGET + 1)).toBe('413');
    // The held body arrives whole: its PUT is answered by its route, not here.
    const stored = new Promise<string>((resolve) => holder.once('data', (chunk: Buffer) => resolve(chunk.toString().split(' ')[1]!)));
    holder.write('x'.repeat(700 * 1024 - 1));
    expect(await stored).toBe('200');
    holder.destroy();

    expect((await exchangeRaw(url, `PUT /v1/kv/f HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy`)).split(' ')[1]).toBe('400');
    expect((await exchangeRaw(url, `FOO / HTTP/1.1\r\nHost: ${host}\r\n\r\n`)).split(' ')[1]).toBe('501');
    expect((await exchangeRaw(url, `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n`)).split(' ')[1]).toBe('501');
    expect((await exchangeRaw(url, head('PUT', '/v1/kv/e', 'Expect: something\r\nContent-Length: 1\r\nConnection: close\r\n\r\n'))).split(' ')[1]).toBe('417');

    expect(await early()).toEqual({ 'PUT 503': 1, 'PUT 413': 1, 'unknown 400': 1, 'unknown 501': 1, 'CONNECT 501': 1, 'PUT 417': 1 });
  });

  it('count the refusals of a Host, of a target no URL can be made of, and the * target', async () => {
    const { url } = running.server;
    const { host } = new URL(url);
    const before = await early();
    const status = async (raw: string) => (await exchangeRaw(url, raw)).split(' ')[1];
    expect(await status('GET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n')).toBe('400'); // no Host
    expect(await status(`DELETE /v1/kv/k HTTP/1.1\r\nHost: ${host}\r\nHost: other.example\r\nConnection: close\r\n\r\n`)).toBe('400');
    expect(await status(`PATCH /v1\\topics HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)).toBe('400'); // the adapter's bad URL
    expect(await status(`OPTIONS * HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).toBe('204');
    expect(await status(`HEAD * HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).toBe('400');
    const after = await early();
    const added = Object.fromEntries(Object.entries(after).filter(([k, v]) => v !== (before[k] ?? 0)).map(([k, v]) => [k, v - (before[k] ?? 0)]));
    expect(added).toEqual({ 'GET 400': 1, 'DELETE 400': 1, 'PATCH 400': 1, 'OPTIONS 204': 1, 'HEAD 400': 1 });
  });

  it('count each bad-URL refusal under its own method when requests are pipelined and concurrent', async () => {
    const { url } = running.server;
    const { host } = new URL(url);
    const before = await early();
    const req = (method: string, target: string, last = false) => `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
    // Good and bad requests interleaved on each connection, several connections at once.
    const connections = Array.from({ length: 6 }, () =>
      exchangeRaw(url, req('PATCH', '/v1\\topics') + req('GET', '/v1/health') + req('DELETE', '/v1\\kv') + req('OPTIONS', '/v1/health') + req('PUT', '/x\\y', true)),
    );
    const answers = await Promise.all(connections);
    for (const a of answers) expect(a.match(/HTTP\/1\.1 \d+/g)?.map((l) => l.slice(9))).toEqual(['400', '200', '400', '204', '400']);
    const after = await early();
    const added = Object.fromEntries(Object.entries(after).filter(([k, v]) => v !== (before[k] ?? 0)).map(([k, v]) => [k, v - (before[k] ?? 0)]));
    expect(added).toEqual({ 'PATCH 400': 6, 'DELETE 400': 6, 'PUT 400': 6 });
  });
});
