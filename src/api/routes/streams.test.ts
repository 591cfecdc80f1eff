import { Hono } from 'hono';
import { getEventListeners } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import '../../node/core.js';
import { createTestEngine } from '../../engine/testing.js';
import { ManualClock } from '../../ports/manual-clock.js';
import { createApp } from '../app.js';
import { resolveServerConfig } from '../config.js';
import type { ProduceRecord } from '../../engine/streams/stream-store.js';
import { firstQueryValue } from './streams.js';

describe('firstQueryValue', () => {
  it("reads a parameter as hono's c.req.query does", async () => {
    const echo = new Hono().get('/', (c) => c.json(['offset', 'max_records', 'max_wait_ms'].map((name) => c.req.query(name) ?? null)));
    for (const query of [
      '',
      'offset=5',
      'offset=5&offset=6',
      'offset&offset=6',
      'offset=&max_records=3',
      'offsetx=1&offset=2',
      'xoffset=1',
      'max_records=10&offset=1=2',
      '&&offset=7&',
      'max_wait_ms=0&max_wait_ms=50',
      'a=b&max_records',
      'offset=-1&max_records=1.5',
    ]) {
      const viaHono = await (await echo.request(`/?${query}`)).json();
      expect(['offset', 'max_records', 'max_wait_ms'].map((name) => firstQueryValue(query, name) ?? null), query).toEqual(viaHono);
    }
  });
});

describe('the direct produce and consume (app.direct)', () => {
  it('take produce with a Content-Length and consume without a long-poll, answer as fetch does; leave other requests to fetch', async () => {
    const engine = await createTestEngine({ clock: new ManualClock(Date.UTC(2025, 0, 15)) });
    try {
      const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9' }) });
      const { api_key } = await engine.tenants.create({ email: 's@example.com', plan: 'unlimited' });
      const headers: Record<string, string> = { authorization: `Bearer ${api_key}`, 'content-type': 'application/json', host: 'local' };
      const call = async (method: string, path: string, body?: string) => {
        const res = await app.fetch(new Request(`http://local${path}`, { method, body, headers }));
        return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
      };
      const direct = (method: string, target: string, body = '', extra: Record<string, string> = {}) => {
        const bytes = new TextEncoder().encode(body);
        const all: Record<string, string> = { ...headers, ...(method === 'POST' ? { 'content-length': String(bytes.length) } : {}), ...extra };
        return app.direct({ method, header: (name) => all[name], body: async () => bytes }, target);
      };
      const answerOf = async (pending: ReturnType<typeof direct>) => {
        const a = await pending;
        expect(a).toBeDefined();
        return { status: a!.status, body: typeof a!.body === 'string' ? a!.body : new TextDecoder().decode(a!.body!), type: a!.headers['content-type'] };
      };
      for (const name of ['a', 'b']) expect((await call('POST', '/v1/topics', JSON.stringify({ name, partitions: 2 }))).status).toBe(201);

      // Topics a and b take the same records, a directly and b through fetch: the same answers.
      for (const body of [
        JSON.stringify({ records: [{ value: 'one' }, { key: 'k', value: 'two', partition: 1 }, { value: 'aGk=', encoding: 'base64', headers: [{ key: 'h', value: 'x' }] }] }),
        '{"records": [{"value": "n\\u00e9e"}]}',
        '{"records": [',
        '',
        JSON.stringify({ records: [{ key: 'k' }] }),
        JSON.stringify({ records: [{ value: 'x', partition: 7 }] }),
      ]) {
        const viaFetch = await call('POST', '/v1/topics/b/records', body);
        expect(await answerOf(direct('POST', '/v1/topics/a/records', body)), body).toEqual({ ...viaFetch, body: viaFetch.body.replace("topic 'b'", "topic 'a'") });
      }
      expect(await answerOf(direct('POST', '/v1/topics/nope/records', JSON.stringify({ records: [{ value: 'x' }] })))).toEqual(
        await call('POST', '/v1/topics/nope/records', JSON.stringify({ records: [{ value: 'x' }] })),
      );

      for (const target of [
        '/v1/topics/a/partitions/0/records',
        '/v1/topics/a/partitions/0/records?',
        '/v1/topics/a/partitions/0/records?offset=1&max_records=1',
        '/v1/topics/a/partitions/0/records?offset=1&offset=0',
        '/v1/topics/a/partitions/1/records?max_bytes=1',
        '/v1/topics/a/partitions/0/records?max_wait_ms=0',
        '/v1/topics/a/partitions/0/records?max_wait_ms=',
        '/v1/topics/a/partitions/0/records?max_wait_ms=00&max_wait_ms=50',
        '/v1/topics/a/partitions/0/records?offset=x',
        '/v1/topics/a/partitions/0/records?max_records=0',
        '/v1/topics/a/partitions/7/records',
        '/v1/topics/a/partitions/00/records',
        '/v1/topics/nope/partitions/0/records',
      ]) {
        expect(await answerOf(direct('GET', target)), target).toEqual(await call('GET', target));
      }

      for (const [method, target, extra] of [
        ['PUT', '/v1/topics/a/records', {}],
        ['POST', '/v1/topics/%61/records', {}],
        ['POST', '/v1/topics/a/records?x=1', {}],
        ['POST', '/v1/topics/../records', {}],
        ['POST', '/v1/topics/a/records/', {}],
        ['POST', '/v1/topics/a/records', { 'transfer-encoding': 'chunked' }],
        ['POST', '/v1/topics/a/records', { host: 'bad host' }],
        ['GET', '/v1/topics/a/partitions/0/records?max_wait_ms=50', {}],
        ['GET', '/v1/topics/a/partitions/0/records?max_wait_ms=-0', {}],
        ['GET', '/v1/topics/a/partitions/0/records?offset=%31', {}],
        ['GET', '/v1/topics/a/partitions/0/records?offset=1+', {}],
        ['GET', '/v1/topics/a/partitions/x/records', {}],
        ['GET', '/v1/topics/./partitions/0/records', {}],
        ['GET', '/v1/topics/a/partitions/0/records#x', {}],
        ['GET', '/v1/topics/a/partitions/0/records', { host: 'bad host' }],
        ['GET', '/v1/topics/a/records', {}],
      ] as const) {
        expect(direct(method, target, '', extra), `${method} ${target} ${JSON.stringify(extra)}`).toBeUndefined();
      }
    } finally {
      await engine.close();
    }
  });
});

describe('produce', () => {
  it('holds no reference to the parsed records while their write waits to be durable, directly or through fetch', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const engine = await createTestEngine({ clock: new ManualClock(Date.UTC(2025, 0, 15)) });
    try {
      const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9' }) });
      const { tenant, api_key } = await engine.tenants.create({ email: 'w@example.com', plan: 'unlimited' });
      const headers: Record<string, string> = { authorization: `Bearer ${api_key}`, 'content-type': 'application/json', host: 'local' };
      expect((await app.fetch(new Request('http://local/v1/topics', { method: 'POST', body: JSON.stringify({ name: 't', partitions: 1 }), headers }))).status).toBe(201);
      // The store's produce, made to wait until released; it keeps only a weak reference to the records.
      const { streams } = await engine.tenant(tenant.id);
      const produce = streams.produce.bind(streams);
      const waiting: Array<{ seen: WeakRef<ProduceRecord[]>; release: () => void }> = [];
      streams.produce = (topic: string, records: ProduceRecord[]) => {
        const seen = new WeakRef(records);
        const written = produce(topic, records);
        return new Promise((resolve) => waiting.push({ seen, release: () => resolve(written) }));
      };
      const body = JSON.stringify({ records: [{ value: 'a' }, { value: 'b' }] });
      const bytes = new TextEncoder().encode(body);
      const all: Record<string, string> = { ...headers, 'content-length': String(bytes.length) };
      for (const send of [
        () => app.direct({ method: 'POST', header: (name) => all[name], body: async () => bytes }, '/v1/topics/t/records'),
        () => app.fetch(new Request('http://local/v1/topics/t/records', { method: 'POST', body, headers })),
      ]) {
        const answer = send();
        while (waiting.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
        const { seen, release } = waiting.pop()!;
        gc();
        expect(seen.deref()).toBeUndefined();
        release();
        expect(((await answer) as { status: number }).status).toBe(200);
      }
    } finally {
      await engine.close();
    }
  });
});

describe('consume with a long-poll', () => {
  /** What the long-lived shutdown signal holds on to: its abort listeners and (node's own bookkeeping) the signals that follow it. */
  function heldBy(signal: AbortSignal): number {
    const dependants = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
    const followers = dependants === undefined ? undefined : (signal as unknown as Record<symbol, Set<unknown> | undefined>)[dependants];
    return getEventListeners(signal, 'abort').length + (followers?.size ?? 0);
  }

  it('leaves nothing behind on the shutdown signal, whether the wait ends, a record comes or the client leaves', async () => {
    const engine = await createTestEngine();
    const shutdown = new AbortController();
    try {
      const app = createApp({ engine, config: resolveServerConfig({ version: '9.9.9' }), shutdownSignal: shutdown.signal });
      const { api_key } = await engine.tenants.create({ email: 'lp@example.com', plan: 'unlimited' });
      const headers = { authorization: `Bearer ${api_key}` };
      await app.fetch(new Request('http://local/v1/topics', { method: 'POST', body: JSON.stringify({ name: 't', partitions: 1 }), headers }));
      const poll = (offset: number, wait: number, signal?: AbortSignal) => app.fetch(new Request(`http://local/v1/topics/t/partitions/0/records?offset=${offset}&max_wait_ms=${wait}`, { headers, signal }));
      for (let i = 0; i < 50; i++) {
        expect((await poll(i, 1)).status).toBe(200); // the wait ends
        const woken = poll(i, 10_000);
        await new Promise((resolve) => setTimeout(resolve, 1));
        await app.fetch(new Request('http://local/v1/topics/t/records', { method: 'POST', body: '{"records":[{"value":"v"}]}', headers }));
        expect(((await (await woken).json()) as { records: unknown[] }).records).toHaveLength(1); // a record comes
        const client = new AbortController();
        const left = poll(i + 1, 10_000, client.signal);
        await new Promise((resolve) => setTimeout(resolve, 1));
        client.abort(); // the client leaves: answered with what the log holds
        expect((await left).status).toBe(200);
      }
      expect(heldBy(shutdown.signal)).toBe(0);
      // Shutdown still ends a pending poll.
      const pending = poll(50, 10_000);
      await new Promise((resolve) => setTimeout(resolve, 1));
      shutdown.abort();
      expect(((await (await pending).json()) as { records: unknown[] }).records).toEqual([]);
    } finally {
      await engine.close();
    }
  });
});
