import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient, CliError } from './client.js';

let server: Server | undefined;

afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve));
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
