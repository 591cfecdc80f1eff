/**
 * Streams over HTTP under concurrency, against a real server on loopback with many client
 * connections (undici): long-polls woken by produces on other connections, and produce bodies at
 * the record-count limit.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PRODUCE_RECORDS } from '../../src/api/record-codec.js';
import { sendWithBody, startServerWithTenant, type ServerWithTenant } from '../fixtures/server-with-tenant.js';

let running: ServerWithTenant;
let agent: Agent;

beforeAll(async () => {
  running = await startServerWithTenant('streams-http');
  agent = new Agent({ connections: 256 });
});

afterAll(async () => {
  await agent.close();
  await running.close();
});

interface Answer {
  status: number;
  body: {
    records: Array<{ offset: number; value: string }>;
    next_offset: number;
    offsets: Array<{ partition: number; offset: number }>;
    partition_info: Array<{ high_watermark: number }>;
  };
}

async function call(path: string, method: 'GET' | 'POST' | 'DELETE' = 'GET', body?: unknown): Promise<Answer> {
  const res = await request(`${running.server.url}${path}`, {
    dispatcher: agent,
    method,
    headers: { authorization: `Bearer ${running.apiKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text === '' ? null : JSON.parse(text) };
}

describe('long-polls woken by produces on other connections', () => {
  it('each consumer sees every record of its partition exactly once, in order, from the offset it asked for', async () => {
    expect((await call('/v1/topics', 'POST', { name: 'follow', partitions: 4 })).status).toBe(201);
    const perPartition = 60;
    // Several consumers per partition, each following the log with long-polls from offset 0.
    const consumers = Array.from({ length: 24 }, async (_, c) => {
      const partition = c % 4;
      const seen: string[] = [];
      let offset = 0;
      while (seen.length < perPartition) {
        const answer = await call(`/v1/topics/follow/partitions/${partition}/records?offset=${offset}&max_wait_ms=20000`);
        expect(answer.status).toBe(200);
        answer.body.records.forEach((r, i) => {
          expect(r.offset).toBe(offset + i);
          seen.push(r.value);
        });
        expect(answer.body.next_offset).toBe(offset + answer.body.records.length);
        offset = answer.body.next_offset;
      }
      return { partition, seen };
    });
    // One record per request from several producers at once, so polls are woken one commit at a time.
    const written: string[][] = [[], [], [], []];
    await Promise.all(
      Array.from({ length: 6 }, async (_, k) => {
        for (let i = 0; i < (4 * perPartition) / 6; i++) {
          const partition = (k + i) % 4;
          const value = `${k}-${i}`;
          const answer = await call('/v1/topics/follow/records', 'POST', { records: [{ value, partition }] });
          expect(answer.status).toBe(200);
          written[partition]![answer.body.offsets[0]!.offset] = value;
        }
      }),
    );
    for (const { partition, seen } of await Promise.all(consumers)) expect(seen).toEqual(written[partition]);
  });
});

describe('max_wait_ms', () => {
  it('of any length of digits is a wait shortened to the cap (a 64-bit "forever"), and a record still ends it', async () => {
    expect((await call('/v1/topics', 'POST', { name: 'forever', partitions: 1 })).status).toBe(201);
    for (const [i, wait] of ['9223372036854775807', '9'.repeat(400), '00000000000000000000001000'].entries()) {
      const poll = call(`/v1/topics/forever/partitions/0/records?offset=${i}&max_wait_ms=${wait}`);
      // The poll is answered by the record, whether it arrives before or after this produce.
      expect((await call('/v1/topics/forever/records', 'POST', { records: [{ value: `r${i}` }] })).status).toBe(200);
      const answer = await poll;
      expect(answer.status).toBe(200);
      expect(answer.body.records.map((r) => r.value)).toEqual([`r${i}`]);
    }
    for (const bad of ['-1', '1e3', '1.5', '0x10', ' 5']) {
      const answer = await call(`/v1/topics/forever/partitions/0/records?offset=0&max_wait_ms=${encodeURIComponent(bad)}`);
      expect(answer.status, bad).toBe(400);
    }
  });
});

describe('a produce request with more records than the limit', () => {
  const tiny = (n: number): string => `{"records":[${Array<string>(n).fill('{"value":""}').join(',')}]}`;

  it(`is 413 too_large past ${MAX_PRODUCE_RECORDS} records, with nothing stored, whether the body comes with a Content-Length or chunked`, async () => {
    expect((await call('/v1/topics', 'POST', { name: 'bulk', partitions: 1 })).status).toBe(201);
    const headers = { authorization: `Bearer ${running.apiKey}`, 'content-type': 'application/json' };
    const over = tiny(MAX_PRODUCE_RECORDS + 1);
    for (const chunked of [false, true]) {
      const answer = await sendWithBody(`${running.server.url}/v1/topics/bulk/records`, 'POST', over, headers, { chunked });
      expect(answer.status).toBe(413);
      expect(JSON.parse(answer.body)).toEqual({ error: 'too_large', message: `records: a request may hold at most ${MAX_PRODUCE_RECORDS} records, got ${MAX_PRODUCE_RECORDS + 1}` });
    }
    expect((await call('/v1/topics/bulk')).body.partition_info[0]!.high_watermark).toBe(0);
    const at = await call('/v1/topics/bulk/records', 'POST', tiny(MAX_PRODUCE_RECORDS));
    expect(at.status).toBe(200);
    expect(at.body.offsets).toHaveLength(MAX_PRODUCE_RECORDS);
    expect((await call('/v1/topics/bulk')).body.partition_info[0]!.high_watermark).toBe(MAX_PRODUCE_RECORDS);
  });
});
