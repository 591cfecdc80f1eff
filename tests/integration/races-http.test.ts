/**
 * Many HTTP clients racing on the same data of one `quartz serve` process over loopback, checked
 * against the documented answers: compare-and-set on one key, create-only, key revocation while
 * the key is in use, usage counting, long-polls when their topic is deleted. Bounded rounds;
 * nothing asserts on time.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, tempDir, type ServerProcess } from './server-process.js';

let server: ServerProcess;
let dir: string;
let url: string;
let adminKey: string;
let tenantId: string;
let apiKey: string;

beforeAll(async () => {
  dir = await tempDir('races-http');
  server = await startServerProcess(['--data', dir]);
  url = server.url;
  adminKey = readFileSync(join(dir, 'admin.key'), 'utf8').trim();
  const answer = await fetch(`${url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'races@example.com' }) });
  ({ user_id: tenantId, api_key: apiKey } = (await answer.json()) as { user_id: string; api_key: string });
});

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const auth = (key = apiKey, more: Record<string, string> = {}) => ({ authorization: `Bearer ${key}`, ...more });
const version = (etag: string | null) => Number(etag!.replaceAll('"', ''));

/** The answer's status and JSON body (null when it has none or it is not JSON). */
async function call(path: string, init: RequestInit = {}): Promise<{ status: number; body: any; etag: string | null }> {
  const answer = await fetch(`${url}${path}`, init);
  const text = await answer.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: answer.status, body, etag: answer.headers.get('etag') };
}

describe('HTTP clients racing on one key', () => {
  it('If-Match counters: every 200 is one increment, every 412 names a newer version, the final value is the count of 200s', async () => {
    await call('/v1/kv/counter', { method: 'PUT', headers: auth(), body: '0' });
    const won: number[] = [];
    let refused = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        for (let i = 0; i < 15; i++) {
          const read = await call('/v1/kv/counter', { headers: auth() });
          const put = await call('/v1/kv/counter', { method: 'PUT', headers: auth(apiKey, { 'if-match': read.etag! }), body: String(Number(read.body) + 1) });
          if (put.status === 200) {
            expect(version(put.etag)).toBeGreaterThan(version(read.etag));
            won.push(version(put.etag));
          } else {
            expect(put).toMatchObject({ status: 412, body: { error: 'precondition_failed' } });
            expect(Number(/is at version (\d+)/.exec(put.body.message)![1])).toBeGreaterThan(version(read.etag));
            refused++;
          }
        }
      }),
    );
    const final = await call('/v1/kv/counter', { headers: auth() });
    expect(Number(final.body)).toBe(won.length);
    expect(won.length + refused).toBe(150);
    expect(new Set(won).size).toBe(won.length);
    expect(version(final.etag)).toBe(Math.max(...won));
  });

  it('If-None-Match: * from many clients at once: exactly one 200, the others 412', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => call('/v1/kv/once', { method: 'PUT', headers: auth(apiKey, { 'if-none-match': '*' }), body: `writer ${i}` })));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    for (const a of answers.filter((x) => x.status !== 200)) expect(a).toMatchObject({ status: 412, body: { error: 'precondition_failed' } });
    const winner = answers.findIndex((a) => a.status === 200);
    expect((await call('/v1/kv/once', { headers: auth() })).body).toBe(`writer ${winner}`);
  });

  it('conditions that hold whatever the other writers do hold: If-Match: *, a list of every version, If-None-Match of a version never issued (small and blob-sized values)', async () => {
    const big = 'b'.repeat(1_100_000); // over the 1 MiB entry limit: the blob upload widens the race
    for (const body of ['small', big]) {
      await call('/v1/kv/exists', { method: 'PUT', headers: auth(), body: 'first' });
      const star = await Promise.all(Array.from({ length: 8 }, () => call('/v1/kv/exists', { method: 'PUT', headers: auth(apiKey, { 'if-match': '*' }), body })));
      expect(star.map((a) => a.status)).toEqual(Array(8).fill(200));
      const neverIssued = await Promise.all(Array.from({ length: 8 }, () => call('/v1/kv/exists', { method: 'PUT', headers: auth(apiKey, { 'if-none-match': '"1"' }), body })));
      expect(neverIssued.map((a) => a.status)).toEqual(Array(8).fill(200));
      // Each writer lists the version it read and any a writer before it may leave: all of them.
      const etags = [...star, ...neverIssued].map((a) => a.etag!).join(', ');
      const listed = await Promise.all(Array.from({ length: 8 }, (_, i) => call('/v1/kv/exists', { method: 'PUT', headers: auth(apiKey, { 'if-match': etags }), body: i === 0 ? body : 'x' })));
      expect(listed.filter((a) => a.status === 200).length).toBeGreaterThanOrEqual(1);
      // A 412 here is only right when the version it names is not in the list (a writer of this round moved the key on).
      for (const a of listed.filter((x) => x.status !== 200)) expect(etags).not.toContain(/is at version (\d+)/.exec((a.body as { message: string }).message)![1]);
      const deletes = await Promise.all(Array.from({ length: 4 }, () => call('/v1/kv/exists', { method: 'DELETE', headers: auth(apiKey, { 'if-match': '*' }) })));
      expect(deletes.map((a) => a.status).sort()).toEqual([204, 412, 412, 412]);
    }
  });
});

describe('HTTP clients racing on tenants and usage', () => {
  it('a key revoked while requests with it are in flight answers 401 to every request sent after the 204', async () => {
    for (let round = 0; round < 8; round++) {
      const issued = await call(`/v1/admin/tenants/${tenantId}/keys`, { method: 'POST', headers: auth(adminKey) });
      const key = issued.body.api_key as string;
      // A cold key: these resolve it while the revocation runs.
      const inFlight = Array.from({ length: 10 + round }, () => call('/v1/usage', { headers: auth(key) }));
      const revoked = await call(`/v1/admin/tenants/${tenantId}/keys/${issued.body.key_id}`, { method: 'DELETE', headers: auth(adminKey) });
      expect(revoked.status).toBe(204);
      for (const answer of await Promise.all(inFlight)) expect([200, 401]).toContain(answer.status);
      for (const answer of await Promise.all(Array.from({ length: 5 }, () => call('/v1/usage', { headers: auth(key) })))) {
        expect(answer).toMatchObject({ status: 401, body: { error: 'unauthorized' } });
      }
    }
  });

  it('counts every concurrent request in api_calls', async () => {
    const before = (await call('/v1/usage', { headers: auth() })).body.api_calls as number;
    await Promise.all(Array.from({ length: 16 }, async () => {
      for (let i = 0; i < 25; i++) await call('/v1/kv/counter', { headers: auth() });
    }));
    const after = (await call('/v1/usage', { headers: auth() })).body.api_calls as number;
    // 400 reads and the first usage call (a call is counted before it is answered).
    expect(after - before).toBe(401);
  });
});

describe('HTTP clients racing on a topic', () => {
  it('long-polls waiting on a topic that is deleted answer 404 not_found, and the name created again is empty', async () => {
    const json = auth(apiKey, { 'content-type': 'application/json' });
    for (let round = 0; round < 3; round++) {
      expect((await call('/v1/topics', { method: 'POST', headers: json, body: JSON.stringify({ name: 'gone', partitions: 2 }) })).status).toBe(201);
      await call('/v1/topics/gone/records', { method: 'POST', headers: json, body: JSON.stringify({ records: [{ value: 'old', partition: 0 }, { value: 'old', partition: 1 }] }) });
      const polls = Array.from({ length: 6 }, (_, i) => call(`/v1/topics/gone/partitions/${i % 2}/records?offset=1&max_wait_ms=300000`, { headers: auth() }));
      // Time for the polls to start waiting; one that arrives after the delete gets the same 404.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await call('/v1/topics/gone', { method: 'DELETE', headers: auth() })).status).toBe(204);
      for (const answer of await Promise.all(polls)) expect(answer).toMatchObject({ status: 404, body: { error: 'not_found' } });
      expect((await call('/v1/topics', { method: 'POST', headers: json, body: JSON.stringify({ name: 'gone', partitions: 2 }) })).status).toBe(201);
      for (const p of [0, 1]) expect((await call(`/v1/topics/gone/partitions/${p}/records?offset=0`, { headers: auth() })).body.records).toEqual([]);
      expect((await call('/v1/topics/gone', { method: 'DELETE', headers: auth() })).status).toBe(204);
    }
  });
});

describe('HTTP clients racing on a vector collection', () => {
  it('upserts, queries and listings racing its delete answer 200 or 404 (never 503 or a failed listing), and the name created again is empty', async () => {
    const json = auth(apiKey, { 'content-type': 'application/json' });
    for (let round = 0; round < 3; round++) {
      expect((await call('/v1/collections', { method: 'POST', headers: json, body: JSON.stringify({ name: 'docs', dims: 2, metric: 'l2' }) })).status).toBe(201);
      await call('/v1/collections/docs/upsert', { method: 'POST', headers: json, body: JSON.stringify({ vectors: [{ id: 'old', values: [1, 2] }] }) });
      const racing: Promise<{ status: number; body: any }>[] = [];
      for (let i = 0; i < 12; i++) {
        racing.push(call('/v1/collections/docs/upsert', { method: 'POST', headers: json, body: JSON.stringify({ vectors: [{ id: `late-${i}`, values: [1, i] }] }) }));
        racing.push(call('/v1/collections/docs/query', { method: 'POST', headers: json, body: JSON.stringify({ vector: [1, 2], k: 5 }) }));
      }
      const listings = Array.from({ length: 6 }, () => call('/v1/collections', { headers: auth() }));
      expect((await call('/v1/collections/docs', { method: 'DELETE', headers: auth() })).status).toBe(204);
      for (const answer of await Promise.all(racing)) {
        if (answer.status !== 200) expect(answer).toMatchObject({ status: 404, body: { error: 'not_found' } });
      }
      for (const listing of await Promise.all(listings)) expect(listing.status).toBe(200);
      expect((await call('/v1/collections', { method: 'POST', headers: json, body: JSON.stringify({ name: 'docs', dims: 2, metric: 'l2' }) })).status).toBe(201);
      expect((await call('/v1/collections/docs/query', { method: 'POST', headers: json, body: JSON.stringify({ vector: [1, 2], k: 100 }) })).body.matches).toEqual([]);
      expect((await call('/v1/collections/docs', { method: 'DELETE', headers: auth() })).status).toBe(204);
    }
  });
});
