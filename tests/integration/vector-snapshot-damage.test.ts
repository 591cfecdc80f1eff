/**
 * `quartz serve` over a data directory where a vector collection's snapshot blob lost a bit on
 * disk: that collection answers a typed error naming the damage and the way out (delete and
 * create it again), the tenant's other collections and KV keep working, and a delete and create
 * under the name gives a working, empty collection.
 */
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, serversKilledAfterEach, tempDir, waitFor } from './server-process.js';

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

/** A server over `data` with a tenant's key, and calls made with it. */
async function served(data: string, key?: string) {
  const s = await start(['--data', data]);
  if (key === undefined) {
    const reg = await fetch(`${s.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"vec@example.com"}' });
    key = ((await reg.json()) as { api_key: string }).api_key;
  }
  const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  const call = (method: string, path: string, body?: unknown) => fetch(`${s.url}${path}`, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) });
  return {
    s,
    key,
    call,
    create: (name: string) => call('POST', '/v1/collections', { name, dims: DIMS, metric: 'l2', m: 4, ef_construction: 16 }),
    query: (name: string) => call('POST', `/v1/collections/${name}/query`, { vector: Array(DIMS).fill(1), k: 3 }),
  };
}

const vectors = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ id: `v${from + i}`, values: Array.from({ length: DIMS }, (_, j) => ((from + i) * 7 + j) % 5) }));

/** Fills collection `docs` until it checkpoints (its log goes, one snapshot stays) and answers the snapshot's file. */
async function checkpointed(data: string, server: Awaited<ReturnType<typeof served>>): Promise<string> {
  expect((await server.create('docs')).status).toBe(201);
  // 8 MiB of change log (1,100 vectors of 8 KiB) makes the collection checkpoint: its log goes, a snapshot stays.
  for (let from = 0; from < 1100; from += 550) expect((await server.call('POST', '/v1/collections/docs/upsert', { vectors: vectors(from, 550) })).status).toBe(200);
  const snapshots = await waitFor(
    async () => {
      const found = (await filesUnder(join(data, 'blobs'))).filter((f) => f.includes('snap'));
      return found.length === 1 ? found : undefined;
    },
    30_000,
    'the checkpoint of collection docs',
  );
  return snapshots[0]!;
}

async function flipABit(file: string): Promise<void> {
  const bytes = await readFile(file);
  bytes[bytes.length >> 1]! ^= 0x01;
  await writeFile(file, bytes);
}

describe('a damaged vector snapshot over HTTP', () => {
  it('fails its collection alone, with a message naming the damage and the way out', async () => {
    const data = await tempDir('vec-snap-damage');
    dirs.push(data);
    let server = await served(data);
    const snapshot = await checkpointed(data, server);
    expect((await server.create('other')).status).toBe(201);
    expect((await server.call('POST', '/v1/collections/other/upsert', { vectors: vectors(0, 3) })).status).toBe(200);
    expect((await fetch(`${server.s.url}/v1/kv/k`, { method: 'PUT', headers: { authorization: `Bearer ${server.key}` }, body: 'fine' })).status).toBe(200);
    expect(await server.s.stop()).toBe(0);
    await flipABit(snapshot);

    server = await served(data, server.key);
    const { call, create, query } = server;
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

  it('is restored in place from a backup by quartz restore --tenant --collection, the rest of the directory kept as it is now', async () => {
    const data = await tempDir('vec-snap-restore');
    const archiveDir = await tempDir('vec-snap-restore-archive');
    dirs.push(data, archiveDir);
    const archive = join(archiveDir, 'backup.qzb');
    let server = await served(data);
    const snapshot = await checkpointed(data, server);
    const usage = async () => ((await (await server.call('GET', '/v1/usage')).json()) as { tenant_id: string; vectors_stored: number });
    const tenant = (await usage()).tenant_id;
    const backup = await runCli(['backup', '--file', archive, '--url', server.s.url, '--admin-key-file', join(data, 'admin.key')], {});
    expect([backup.code, backup.stderr]).toEqual([0, '']);
    // Vectors upserted after the backup go with the restore: the meter's level must follow them down.
    expect((await server.call('POST', '/v1/collections/docs/upsert', { vectors: vectors(1100, 50) })).status).toBe(200);
    expect((await usage()).vectors_stored).toBe(1150);
    // Written after the backup: a whole-server restore would lose them, this one keeps them.
    expect((await server.create('later')).status).toBe(201);
    expect((await server.call('POST', '/v1/collections/later/upsert', { vectors: vectors(0, 3) })).status).toBe(200);
    expect((await fetch(`${server.s.url}/v1/kv/after`, { method: 'PUT', headers: { authorization: `Bearer ${server.key}` }, body: 'kept' })).status).toBe(200);
    expect(await server.s.stop()).toBe(0);
    await flipABit(snapshot);

    const restore = (...extra: string[]) => runCli(['restore', '--file', archive, '--data', data, ...extra], {});
    // The whole-server restore refuses a directory in use; only the collection can go back in place.
    expect((await restore()).stderr).toMatch(/is not empty; restore only into an empty or new directory/);
    expect(await restore('--tenant', tenant, '--collection', 'nope')).toMatchObject({ code: 1, stderr: `quartz: backup archive ${archive} holds no collection 'nope' of tenant '${tenant}'\n` });
    expect(await restore('--tenant', 't_0000000000000000', '--collection', 'docs')).toMatchObject({ code: 1, stderr: `quartz: tenant 't_0000000000000000' does not exist in ${data}\n` });
    const restored = await restore('--tenant', tenant, '--collection', 'docs', '-o', 'json');
    expect([restored.code, restored.stderr]).toEqual([0, '']);
    expect(JSON.parse(restored.stdout)).toMatchObject({ data, tenant, collection: 'docs', blobs: 1 });

    server = await served(data, server.key);
    const { matches } = (await (await server.query('docs')).json()) as { matches: { id: string }[] };
    expect(matches).toHaveLength(3);
    expect((await (await server.call('GET', '/v1/collections/docs/vectors/v1099')).json()) as { id: string }).toMatchObject({ id: 'v1099' });
    expect((await server.query('later')).status).toBe(200);
    expect(await (await server.call('GET', '/v1/kv/after')).text()).toBe('kept');
    // The levels are counted afresh: the restored vectors and the later ones, not the 50 the backup never had.
    expect((await usage()).vectors_stored).toBe(1103);
  }, 120_000);
});
