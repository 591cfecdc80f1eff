import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeRaw, sendWithBody, startServerWithTenant, type RawAnswer, type ServerWithTenant } from '../../../tests/fixtures/server-with-tenant.js';
import type { RunningServer } from './server.js';

const LIMIT = 4096;
let running: ServerWithTenant;
let server: RunningServer;
let auth: Record<string, string>;

beforeAll(async () => {
  running = await startServerWithTenant('direct-streams', { body_limits: { records: LIMIT } });
  server = running.server;
  auth = { authorization: `Bearer ${running.apiKey}`, 'content-type': 'application/json' };
  for (const name of ['da', 'db', 'dc']) {
    const res = await fetch(`${server.url}/v1/topics`, { method: 'POST', headers: auth, body: JSON.stringify({ name, partitions: 1 }) });
    expect(res.status).toBe(201);
  }
});

afterAll(async () => {
  await running.close();
});

/** The answer with topic `from`'s name in messages written as `to`'s, to compare answers about two topics. */
function named(answer: RawAnswer, from: string, to: string): RawAnswer {
  return { ...answer, body: answer.body.replaceAll(`'${from}'`, `'${to}'`) };
}

// Topics da, db and dc take the same produce bodies: da directly, db through hono (its name
// percent-encoded) and dc chunked (hono too), so their answers are the same.
describe('a direct produce answers as the hono route does', () => {
  it.each([
    ['records', JSON.stringify({ records: [{ value: 'one' }, { key: 'k', value: 'two', headers: [{ key: 'h', value: 'v' }] }, { value: 'aGk=', encoding: 'base64' }] }), {}],
    ['an escaped value', '{"records": [{"value": "n\\u00e9e \\"q\\""}]}', {}],
    ['a 401', JSON.stringify({ records: [{ value: 'x' }] }), { authorization: 'Bearer nope' }],
    ['a CORS request', JSON.stringify({ records: [{ value: 'x' }] }), { origin: 'https://example.com' }],
    ['invalid JSON', '{"records": [', {}],
    ['an empty body', '', {}],
    ['a field error', JSON.stringify({ records: [{ key: 'k' }] }), {}],
    ['a missing partition', JSON.stringify({ records: [{ value: 'x', partition: 3 }] }), {}],
    ['a 413', JSON.stringify({ records: [{ value: 'x'.repeat(LIMIT) }] }), {}],
    // A repeated field keeps its last value, as JSON.parse does (and the vector query's body).
    ['a repeated records field', '{"records":[{"value":"first"}],"records":[{"value":"second"},{"value":"third"}]}', {}],
    ['a repeated records field, the first one bad', '{"records":[{"key":"k"}],"records":[{"value":"ok"}]}', {}],
    ['a repeated records field, the last one bad', '{"records":[{"value":"ok"}],"records":[{"value":1}]}', {}],
    ['a repeated field in a record', '{"records":[{"value":"a","value":"b","partition":3,"partition":0}]}', {}],
  ])('%s', async (_, body, extra) => {
    const headers = { ...auth, ...extra };
    const direct = await sendWithBody(`${server.url}/v1/topics/da/records`, 'POST', body, headers);
    expect(direct).toEqual(named(await sendWithBody(`${server.url}/v1/topics/d%62/records`, 'POST', body, headers), 'db', 'da'));
    expect(direct).toEqual(named(await sendWithBody(`${server.url}/v1/topics/dc/records`, 'POST', body, headers, { chunked: true }), 'dc', 'da'));
  });

  it('a repeated records field: the last one is produced, by either path', async () => {
    const body = '{"records":[{"value":"first"}],"records":[{"value":"second"},{"value":"third"}]}';
    for (const [topic, path, options] of [['da', 'da', {}], ['db', 'd%62', {}], ['dc', 'dc', { chunked: true }]] as const) {
      const answer = await sendWithBody(`${server.url}/v1/topics/${path}/records`, 'POST', body, auth, options);
      expect(answer.status).toBe(200);
      const offsets = (JSON.parse(answer.body) as { offsets: Array<{ offset: number }> }).offsets;
      expect(offsets).toHaveLength(2);
      const read = await (await fetch(`${server.url}/v1/topics/${topic}/partitions/0/records?offset=${offsets[0]!.offset}`, { headers: auth })).json();
      expect((read as { records: Array<{ value: string }> }).records.map((r) => r.value)).toEqual(['second', 'third']);
    }
  });

  it('a body that arrives in parts', async () => {
    const body = JSON.stringify({ records: [{ value: 'parts' }] });
    const direct = await sendWithBody(`${server.url}/v1/topics/da/records`, 'POST', body, auth, { pause: 50 });
    expect(direct).toEqual(named(await sendWithBody(`${server.url}/v1/topics/d%62/records`, 'POST', body, auth), 'db', 'da'));
    expect((await sendWithBody(`${server.url}/v1/topics/dc/records`, 'POST', body, auth)).status).toBe(200);
  });

  it('counts its requests in the metrics by route', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/quartz_http_requests_total\{[^}]*route="\/v1\/topics\/:t\/records"[^}]*method="POST",status="200"[^}]*\} \d+/);
  });
});

/** Status, body and headers (but the per-request ones) of a GET. */
async function seen(path: string, extra: Record<string, string> = {}): Promise<RawAnswer> {
  const res = await fetch(`${server.url}${path}`, { headers: { ...auth, ...extra } });
  const headers: Record<string, string> = {};
  res.headers.forEach((value, name) => {
    if (name !== 'date' && name !== 'x-request-id') headers[name] = value;
  });
  return { status: res.status, body: await res.text(), headers };
}

/** The head of the answer to a raw GET, line by line as sent, with the per-request values blanked. */
async function rawHead(path: string, version: '1.0' | '1.1'): Promise<string[]> {
  const { host } = new URL(server.url);
  const text = await exchangeRaw(server.url, `GET ${path} HTTP/${version}\r\nHost: ${host}\r\nConnection: close\r\nAuthorization: ${auth.authorization}\r\n\r\n`);
  return text
    .slice(0, text.indexOf('\r\n\r\n'))
    .split('\r\n')
    .map((line) => line.replace(/^(date|x-request-id): .*$/i, '$1: …'));
}

// `/v1/topics/da/…` is answered directly; `/v1/topics/d%61/…` names the same topic and is decoded by hono.
describe('a direct consume answers as the hono route does', () => {
  it.each([
    ['the log from its start', ''],
    ['an offset and a page size', '?offset=1&max_records=2'],
    ['the first of repeated parameters', '?offset=2&offset=0&max_records=1&max_records=9'],
    ['max_bytes', '?max_bytes=1'],
    ['no wait', '?max_wait_ms=0'],
    ['past the end', '?offset=1000'],
    ['a bad offset', '?offset=x'],
    ['a bad page size', '?max_records=0'],
  ])('%s', async (_, query) => {
    expect(await seen(`/v1/topics/da/partitions/0/records${query}`)).toEqual(await seen(`/v1/topics/d%61/partitions/0/records${query}`));
  });

  it.each([
    ['a 401', { authorization: 'Bearer nope' }],
    ['a CORS request', { origin: 'https://example.com' }],
  ])('%s', async (_, extra) => {
    expect(await seen('/v1/topics/da/partitions/0/records', extra)).toEqual(await seen('/v1/topics/d%61/partitions/0/records', extra));
  });

  it('a missing topic or partition', async () => {
    expect(await seen('/v1/topics/nope/partitions/0/records')).toEqual(await seen('/v1/topics/n%6Fpe/partitions/0/records'));
    expect(await seen('/v1/topics/da/partitions/4/records')).toEqual(await seen('/v1/topics/d%61/partitions/4/records'));
  });

  it.each(['1.1', '1.0'] as const)('with the same head, line for line, over HTTP/%s', async (version) => {
    const direct = await rawHead('/v1/topics/da/partitions/0/records?max_records=1', version);
    expect(direct).toEqual(await rawHead('/v1/topics/d%61/partitions/0/records?max_records=1', version));
    expect(direct.filter((line) => /^content-length: \d+$/i.test(line))).toHaveLength(1);
  });

  it('a long-poll still waits for a record', async () => {
    const read = (await (await fetch(`${server.url}/v1/topics/da/partitions/0/records?max_records=100000`, { headers: auth })).json()) as { next_offset: number };
    const waiting = fetch(`${server.url}/v1/topics/da/partitions/0/records?offset=${read.next_offset}&max_wait_ms=5000`, { headers: auth });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await sendWithBody(`${server.url}/v1/topics/da/records`, 'POST', JSON.stringify({ records: [{ value: 'late' }] }), auth);
    const page = (await (await waiting).json()) as { records: Array<{ value: string }> };
    expect(page.records.map((r) => r.value)).toEqual(['late']);
  });
});
