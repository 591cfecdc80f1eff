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
    error?: string;
    records: Array<{ offset: number; value: string }>;
    next_offset: number;
    offsets: Array<{ partition: number; offset: number }>;
    partition_info: Array<{ high_watermark: number; log_start_offset: number; segments: number }>;
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

describe('offsets at the edges of the log, once retention has moved its start', () => {
  it('consume takes log_start_offset to high_watermark, a group commit 0 to high_watermark', async () => {
    // Every produce fills a segment of its own (segment_bytes is the least allowed), and retention,
    // run every segment_ms, deletes segments while what is left is still 1 byte or more: in the
    // end only the last segment stays, and the log starts at its offset.
    expect((await call('/v1/topics', 'POST', { name: 'edges', partitions: 1, segment_bytes: 1024, segment_ms: 100, retention_bytes: 1 })).status).toBe(201);
    const hwm = 4;
    const start = hwm - 1;
    // Random bytes, which LZ4 cannot shrink below a segment's worth.
    const incompressible = () => Buffer.from(crypto.getRandomValues(new Uint8Array(1100))).toString('base64');
    for (let i = 0; i < hwm; i++) expect((await call('/v1/topics/edges/records', 'POST', { records: [{ value: incompressible(), encoding: 'base64' }] })).status).toBe(200);
    let seen = 0;
    for (const end = Date.now() + 20_000; seen !== start && Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      seen = (await call('/v1/topics/edges')).body.partition_info[0]!.log_start_offset;
    }
    expect(seen).toBe(start);
    const read = (offset: number) => call(`/v1/topics/edges/partitions/0/records?offset=${offset}`);
    expect((await read(start)).body.records[0]!.offset).toBe(start);
    expect((await read(hwm)).body.records).toEqual([]);
    for (const outside of [start - 1, hwm + 1]) expect(await read(outside)).toMatchObject({ status: 400, body: { error: 'offset_out_of_range' } });
    // A consumer behind retention can still record where it is; lag counts what retention removed.
    expect((await call('/v1/groups/edges-g/offsets', 'POST', { topic: 'edges', partition: 0, offset: 0 })).status).toBe(204);
    expect((await call('/v1/groups/edges-g/offsets?topic=edges')).body).toMatchObject({ offsets: [{ partition: 0, offset: 0, high_watermark: hwm, lag: hwm }] });
    expect(await call('/v1/groups/edges-g/offsets', 'POST', { topic: 'edges', partition: 0, offset: hwm + 1 })).toMatchObject({ status: 400, body: { error: 'offset_out_of_range' } });
  });
});

describe('rolls by segment_ms on the real clock', () => {
  it('seals a quiet tail into a segment about one tick interval after it is segment_ms old', async () => {
    // segment_ms 200: a tick every 200 ms from the engine's slot timer; nothing else rolls this tail.
    expect((await call('/v1/topics', 'POST', { name: 'by-age', partitions: 1, segment_ms: 200 })).status).toBe(201);
    expect((await call('/v1/topics/by-age/records', 'POST', { records: [{ value: 'old' }] })).status).toBe(200);
    let segments = 0;
    for (const end = Date.now() + 20_000; segments === 0 && Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      segments = (await call('/v1/topics/by-age')).body.partition_info[0]!.segments;
    }
    expect(segments).toBe(1);
    expect((await call('/v1/topics/by-age/partitions/0/records?offset=0')).body.records.map((r) => r.value)).toEqual(['old']);
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
