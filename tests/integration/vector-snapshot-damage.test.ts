/**
 * `quartz serve` over a data directory where a vector collection's snapshot blob lost a bit on
 * disk: that collection answers a typed error naming the damage and the way out (delete and
 * create it again), the tenant's other collections and KV keep working, and a delete and create
 * under the name gives a working, empty collection.
 */
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { serversKilledAfterEach, tempDir, waitFor } from './server-process.js';

const start = serversKilledAfterEach();
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** Regular files under `dir`, recursively, but those being written (in `tmp`, which a running server renames from). */
async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name === 'tmp') continue;
    if (e.isDirectory()) found.push(...(await filesUnder(join(dir, e.name))));
    else found.push(join(dir, e.name));
  }
  return found;
}

const DIMS = 2048;

describe('a damaged vector snapshot over HTTP', () => {
  it('fails its collection alone, with a message naming the damage and the way out', async () => {
    const data = await tempDir('vec-snap-damage');
    dirs.push(data);
    let s = await start(['--data', data]);
    const reg = await fetch(`${s.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"vec@example.com"}' });
    const { api_key: key } = (await reg.json()) as { api_key: string };
    const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const call = (method: string, path: string, body?: unknown) => fetch(`${s.url}${path}`, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) });
    const create = (name: string) => call('POST', '/v1/collections', { name, dims: DIMS, metric: 'l2', m: 4, ef_construction: 16 });
    const vectors = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ id: `v${from + i}`, values: Array.from({ length: DIMS }, (_, j) => ((from + i) * 7 + j) % 5) }));
    const query = (name: string) => call('POST', `/v1/collections/${name}/query`, { vector: Array(DIMS).fill(1), k: 3 });
    expect((await create('docs')).status).toBe(201);
    expect((await create('other')).status).toBe(201);
    // 8 MiB of change log (1,100 vectors of 8 KiB) makes the collection checkpoint: its log goes, a snapshot stays.
    for (let from = 0; from < 1100; from += 550) expect((await call('POST', '/v1/collections/docs/upsert', { vectors: vectors(from, 550) })).status).toBe(200);
    expect((await call('POST', '/v1/collections/other/upsert', { vectors: vectors(0, 3) })).status).toBe(200);
    expect((await fetch(`${s.url}/v1/kv/k`, { method: 'PUT', headers: { authorization: auth.authorization }, body: 'fine' })).status).toBe(200);
    const snapshots = await waitFor(
      async () => {
        const found = (await filesUnder(join(data, 'blobs'))).filter((f) => f.includes('snap'));
        return found.length === 1 ? found : undefined;
      },
      30_000,
      'the checkpoint of collection docs',
    );
    expect(await s.stop()).toBe(0);

    const bytes = await readFile(snapshots[0]!);
    bytes[bytes.length >> 1]! ^= 0x01;
    await writeFile(snapshots[0]!, bytes);

    s = await start(['--data', data]);
    for (const res of [await query('docs'), await call('POST', '/v1/collections/docs/upsert', { vectors: vectors(0, 1) }), await call('GET', '/v1/collections/docs/vectors/v1')]) {
      expect(res.status).toBe(500);
      const body = (await res.json()) as { error: string; message: string };
      expect(body.error).toBe('checksum_mismatch');
      expect(body.message).toMatch(/^collection 'docs' is damaged and cannot be opened \(.*snap.*CRC-32C.*\); its vectors cannot be read: delete the collection and create it again/);
    }
    // The rest of the tenant is untouched, the damaged collection's listing entry included.
    expect((await query('other')).status).toBe(200);
    expect(await (await call('GET', '/v1/kv/k')).text()).toBe('fine');
    const listed = (await (await call('GET', '/v1/collections')).json()) as { collections: { name: string; count: number }[] };
    expect(listed.collections.map((c) => `${c.name}=${c.count}`)).toEqual(['docs=1100', 'other=3']);

    // The way out the message gives.
    expect((await call('DELETE', '/v1/collections/docs')).status).toBe(204);
    expect((await create('docs')).status).toBe(201);
    expect((await call('POST', '/v1/collections/docs/upsert', { vectors: vectors(0, 2) })).status).toBe(200);
    const { matches } = (await (await query('docs')).json()) as { matches: { id: string }[] };
    expect(matches.map((m) => m.id).sort()).toEqual(['v0', 'v1']);
  });
});
