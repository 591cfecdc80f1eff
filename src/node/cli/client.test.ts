import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient, CliError, retryAfterMs } from './client.js';

let server: Server | undefined;

afterEach(async () => {
  // A test that started no server must not wait for one to close.
  if (server !== undefined) await new Promise((resolve) => server!.close(resolve));
  server = undefined;
});

/** A server that answers each GET with `answer(cursor, limit)` as JSON; the client on it. */
async function clientOn(answer: (cursor: string | null, limit: number) => unknown): Promise<{ client: ApiClient; requests: () => number }> {
  let requests = 0;
  server = createServer((req, res) => {
    requests++;
    const url = new URL(req.url!, 'http://x');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(answer(url.searchParams.get('cursor'), Number(url.searchParams.get('limit')))));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { client: new ApiClient({ url: `http://127.0.0.1:${port}`, apiKey: 'qz_test', adminKey: undefined }), requests: () => requests };
}

describe('ApiClient.listAll', () => {
  it('gives at most --limit items from a server that ignores limit (one from before listings paged)', async () => {
    const { client } = await clientOn(() => ({ topics: [{ name: 'a' }, { name: 'b' }, { name: 'c' }] }));
    expect(await client.listAll('/v1/topics', 'topics', { limit: 2 })).toEqual([{ name: 'a' }, { name: 'b' }]);
    expect(await client.listAll('/v1/topics', 'topics')).toHaveLength(3);
  });

  it('stops with an error, rather than asking for ever, when a server answers a cursor it answered before', async () => {
    const { client, requests } = await clientOn((cursor) => ({ topics: [{ name: cursor ?? 'first' }], cursor: cursor === 'b' ? 'a' : cursor === null ? 'a' : 'b' }));
    const listed = client.listAll('/v1/topics', 'topics');
    await expect(listed).rejects.toBeInstanceOf(CliError);
    await expect(listed).rejects.toThrow(/answered a cursor it had answered before/);
    expect(requests()).toBe(3);
  });

  it('follows cursors to the last page, empty pages included (their items deleted meanwhile)', async () => {
    const pages: Record<string, unknown> = { first: { topics: [{ name: 'a' }], cursor: 'YQ' }, YQ: { topics: [], cursor: 'Yg' }, Yg: { topics: [{ name: 'c' }], cursor: null } };
    const { client } = await clientOn((cursor) => pages[cursor ?? 'first']);
    expect(await client.listAll('/v1/topics', 'topics', { pageSize: 1 })).toEqual([{ name: 'a' }, { name: 'c' }]);
  });
});

describe('retryAfterMs', () => {
  it('reads delay-seconds and HTTP dates, and nothing else as a date', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(retryAfterMs('3', 1000, now)).toBe(3000);
    expect(retryAfterMs(' 0 ', 1000, now)).toBe(0);
    expect(retryAfterMs(null, 1000, now)).toBe(1000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:30 GMT', 1000, now)).toBe(30_000);
    expect(retryAfterMs('Wednesday, 21-Oct-15 07:28:30 GMT', 1000, now)).toBe(30_000);
    expect(retryAfterMs('Wed Oct 21 07:28:30 2015', 1000, now)).toBe(30_000);
    expect(retryAfterMs('Tue, 20 Oct 2015 07:28:00 GMT', 1000, now)).toBe(0);
    // V8's Date.parse took each for a day of 2001: a wait of 0, asked again at once without end.
    for (const garbage of ['-5', '1.5', '0.5', '12abc', 'soon', '', '1e3']) expect(retryAfterMs(garbage, 1000, now), garbage).toBe(1000);
  });
});
