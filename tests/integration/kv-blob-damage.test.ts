/**
 * `quartz serve` over a data directory where a large KV value's blob file lost a bit on disk: the
 * GET is a 500 `checksum_mismatch` JSON error (the key named in the server's log, not in the
 * answer), never the damaged bytes, and the other keys still serve.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serversKilledAfterEach, tempDir, waitFor } from './server-process.js';

const start = serversKilledAfterEach();

/** Regular files under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) found.push(...(await filesUnder(join(dir, e.name))));
    else found.push(join(dir, e.name));
  }
  return found;
}

describe('a damaged large KV value over HTTP', () => {
  it('is a 500 checksum_mismatch, never other bytes', async () => {
    const data = await tempDir('kv-blob-damage');
    const big = Buffer.alloc(2_000_000, 0).map((_, i) => (i * 11) & 0xff);
    let s = await start(['--data', data]);
    const reg = await fetch(`${s.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"blob@example.com"}' });
    const { api_key: key } = (await reg.json()) as { api_key: string };
    const auth = { authorization: `Bearer ${key}` };
    expect((await fetch(`${s.url}/v1/kv/big%2Fone`, { method: 'PUT', headers: auth, body: big })).status).toBe(200);
    expect((await fetch(`${s.url}/v1/kv/small`, { method: 'PUT', headers: auth, body: 'fine' })).status).toBe(200);
    expect(await s.stop()).toBe(0);

    const blobs = (await filesUnder(join(data, 'blobs'))).filter((f) => !f.includes(`${join(data, 'blobs', 'tmp')}`));
    const damaged = [];
    for (const file of blobs) if ((await readFile(file)).length === big.length) damaged.push(file);
    expect(damaged).toHaveLength(1);
    const bytes = await readFile(damaged[0]!);
    bytes[1_000_000]! ^= 0x01;
    await writeFile(damaged[0]!, bytes);

    s = await start(['--data', data]);
    const res = await fetch(`${s.url}/v1/kv/big%2Fone`, { headers: auth });
    expect(res.status).toBe(500);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('checksum_mismatch');
    // The log line is written asynchronously and may reach the pipe after the answer.
    const logged = "value blob of key 'big/one' fails its CRC32C check";
    await waitFor(() => (`${s.stdout()}${s.stderr()}`.includes(logged) ? true : undefined), 10_000, 'the damage in the server log');
    expect(await (await fetch(`${s.url}/v1/kv/small`, { headers: auth })).text()).toBe('fine');
    // The listing and the key's metadata do not read the blob: they still answer.
    const list = (await (await fetch(`${s.url}/v1/kv?prefix=big`, { headers: auth })).json()) as { keys: { key: string; size: number }[] };
    expect(list.keys).toEqual([expect.objectContaining({ key: 'big/one', size: big.length })]);
  });
});
