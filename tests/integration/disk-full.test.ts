/**
 * `quartz serve` on a disk that fills up (a small tmpfs; needs root, skipped otherwise): writes
 * that cannot be stored answer 507 `insufficient_storage`, the server keeps serving reads and
 * stays up, and takes writes again once space is freed.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from './server-process.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('tests/integration/disk-full.test.ts: skipped, mounting a tmpfs needs root');

describe.skipIf(!isRoot)('quartz serve on a full disk', () => {
  let mnt = '';
  let server: ServerProcess | undefined;
  beforeAll(async () => {
    mnt = await mkdtemp(join(tmpdir(), 'quartz-full-serve-'));
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mnt]);
    if (mounted.status !== 0) throw new Error(`mount tmpfs: ${mounted.stderr.toString()}`);
  });
  afterAll(async () => {
    await server?.stop('SIGKILL');
    spawnSync('umount', ['--lazy', mnt]);
    await rmdir(mnt);
  });

  it('answers 507 for writes it cannot store, serves reads, stays up, and writes again once space is freed', async () => {
    server = await startServerProcess(['--data', join(mnt, 'data')]);
    const url = server.url;
    const reg = await fetch(`${url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"full@example.com"}' });
    const { api_key: key } = (await reg.json()) as { api_key: string };
    const auth = { authorization: `Bearer ${key}` };
    const put = (name: string, body: Uint8Array<ArrayBuffer> | string) => fetch(`${url}/v1/kv/${name}`, { method: 'PUT', headers: auth, body });
    const big = new Uint8Array(1_500_000).fill(9); // blob-backed
    expect((await put('first', big)).status).toBe(200);
    expect((await put('small', 'kept')).status).toBe(200);

    let refused: Response | undefined;
    for (let i = 0; i < 40 && refused === undefined; i++) {
      const res = await put(`big${i}`, big);
      if (res.status !== 200) refused = res;
    }
    expect(refused?.status).toBe(507);
    expect(await refused!.json()).toMatchObject({ error: 'insufficient_storage', message: expect.stringContaining('no space left') });
    // Small writes fill what the write-ahead log has, then are refused the same way.
    // 32 at a time: thousands of them one by one took over a minute on a loaded machine.
    let smallRefused: Response | undefined;
    for (let i = 0; i < 20_000 && smallRefused === undefined; i += 32) {
      const answers = await Promise.all(Array.from({ length: 32 }, (_, j) => put(`s${i + j}`, 'x'.repeat(1000))));
      smallRefused = answers.find((res) => res.status !== 200);
      await Promise.all(answers.filter((res) => res !== smallRefused).map((res) => res.arrayBuffer()));
    }
    expect(smallRefused?.status).toBe(507);
    const produced = await fetch(`${url}/v1/topics`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"name":"t"}' });
    expect([201, 507]).toContain(produced.status);

    expect(new Uint8Array(await (await fetch(`${url}/v1/kv/first`, { headers: auth })).arrayBuffer())).toEqual(big);
    expect(await (await fetch(`${url}/v1/kv/small`, { headers: auth })).text()).toBe('kept');

    for (let i = 0; i < 40; i++) await fetch(`${url}/v1/kv/big${i}`, { method: 'DELETE', headers: auth });
    expect((await put('after', big)).status).toBe(200);
    expect((await put('after-small', 'ok')).status).toBe(200);
    expect(server.proc.exitCode).toBeNull();
    // Nothing acknowledged is lost across a restart either.
    await server.stop('SIGKILL');
    server = await startServerProcess(['--data', join(mnt, 'data')]);
    expect(new Uint8Array(await (await fetch(`${server.url}/v1/kv/after`, { headers: auth })).arrayBuffer())).toEqual(big);
    expect(await (await fetch(`${server.url}/v1/kv/after-small`, { headers: auth })).text()).toBe('ok');
    await rm(join(mnt, 'data'), { recursive: true, force: true });
  }, 180_000);
});
