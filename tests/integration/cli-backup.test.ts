/**
 * `quartz backup` from a running server (while it keeps taking writes) → `quartz restore` into an
 * empty directory → a server on the restored data answers with the same data: keys, records in
 * sealed segments (blobs) and the log tail, vectors, and the tenant's API key.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, cleanEnv, runCli, startServerProcess, tempDir, waitFor, type ServerProcess } from './server-process.js';

const running: ServerProcess[] = [];
afterAll(async () => {
  await Promise.all(running.map((s) => s.stop('SIGKILL')));
});

interface Page {
  records: { offset: number; value: string }[];
  next_offset: number;
  high_watermark: number;
}

async function readPartition(url: string, headers: Record<string, string>, topic: string, p: number): Promise<Page['records']> {
  const out: Page['records'] = [];
  let offset = 0;
  for (;;) {
    const res = await fetch(`${url}/v1/topics/${topic}/partitions/${p}/records?offset=${offset}&max_records=10000`, { headers });
    expect(res.status).toBe(200);
    const page = (await res.json()) as Page;
    out.push(...page.records);
    offset = page.next_offset;
    if (offset >= page.high_watermark) return out;
  }
}

describe('quartz backup and restore', () => {
  it('restores the same data from a snapshot taken under load', async () => {
    const dir = await tempDir('backup');
    const adminKey = `admin-${crypto.randomUUID()}`;
    const source = await startServerProcess(['--data', join(dir, 'source')], { QUARTZ_ADMIN_KEY: adminKey });
    running.push(source);
    const reg = (await (await fetch(`${source.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'b@example.com' }) })).json()) as { api_key: string };
    const headers = { authorization: `Bearer ${reg.api_key}`, 'content-type': 'application/json' };
    const post = (path: string, body: unknown) => fetch(`${source.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });

    await fetch(`${source.url}/v1/kv/small`, { method: 'PUT', headers: { authorization: headers.authorization, 'content-type': 'text/plain' }, body: 'tiny' });
    const big = new Uint8Array(2 * 1024 * 1024).map((_, i) => (i * 31) & 0xff); // over the inline limit: a blob
    await fetch(`${source.url}/v1/kv/big`, { method: 'PUT', headers: { authorization: headers.authorization }, body: big });
    // Small segments so records land in sealed segments (blobs) as well as in the tail.
    await post('/v1/topics', { name: 'orders', partitions: 2, segment_bytes: 1024 });
    for (let b = 0; b < 20; b++) await post('/v1/topics/orders/records', { records: Array.from({ length: 20 }, (_, i) => ({ value: `order-${b}-${i}`, key: `k${i}` })) });
    await post('/v1/collections', { name: 'docs', dims: 4, metric: 'cosine' });
    await post('/v1/collections/docs/upsert', { vectors: Array.from({ length: 50 }, (_, i) => ({ id: `v${i}`, values: [i, 1, i % 3, 2], metadata: { i } })) });

    // Keep writing while the backup streams: the archive must still be one consistent point in time.
    await post('/v1/topics', { name: 'busy', partitions: 1, segment_bytes: 1024 });
    let writing = true;
    const writer = (async () => {
      for (let n = 0; writing && n < 2000; n++) await post('/v1/topics/busy/records', { records: [{ value: `busy-${n}` }] });
    })();
    const file = join(dir, 'snapshot.qzb');
    const backup = await runCli(['backup', '--file', file, '--url', source.url], { QUARTZ_ADMIN_KEY: adminKey });
    writing = false;
    await writer;
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    expect(backup.stdout).toMatch(/backup written to .*snapshot\.qzb \(\d+ bytes\)/);
    expect((await stat(file)).mode & 0o777, 'the archive is readable by its owner alone').toBe(0o600);

    const restoredDir = join(dir, 'restored');
    const restore = await runCli(['restore', '--file', file, '--data', restoredDir, '-o', 'json'], {});
    expect(restore.stderr).toBe('');
    const summary = JSON.parse(restore.stdout) as { entries: number; blobs: number };
    expect(summary.blobs).toBeGreaterThan(0);
    expect(summary.entries).toBeGreaterThan(0);

    const copy = await startServerProcess(['--data', restoredDir]);
    running.push(copy);
    const h = { authorization: headers.authorization };
    expect(await (await fetch(`${copy.url}/v1/kv/small`, { headers: h })).text()).toBe('tiny');
    // Compared as bytes: toEqual walks a 2 MB array element by element (tens of seconds on a busy machine).
    expect(Buffer.compare(new Uint8Array(await (await fetch(`${copy.url}/v1/kv/big`, { headers: h })).arrayBuffer()), big), 'the big value, byte for byte').toBe(0);
    for (const p of [0, 1]) {
      const want = await readPartition(source.url, h, 'orders', p);
      expect(await readPartition(copy.url, h, 'orders', p)).toEqual(want);
    }
    const busy = await readPartition(copy.url, h, 'busy', 0);
    expect(busy.map((r) => r.offset)).toEqual(busy.map((_, i) => i)); // a prefix, no gaps
    expect(busy.map((r) => r.value)).toEqual(busy.map((_, i) => `busy-${i}`));
    const query = { vector: [3, 1, 0, 2], k: 5, include_metadata: true };
    const [a, b] = await Promise.all(
      [source.url, copy.url].map(async (u) => (await fetch(`${u}/v1/collections/docs/query`, { method: 'POST', headers, body: JSON.stringify(query) })).json()),
    );
    expect(b).toEqual(a);
  }, 180_000);

  it('refuses a non-empty data directory and a damaged archive, in one line each', async () => {
    const dir = await tempDir('restore-bad');
    const archive = join(dir, 'a.qzb');
    await writeFile(join(dir, 'occupied'), 'x');
    await writeFile(archive, 'QZBK');
    const occupied = await runCli(['restore', '--file', archive, '--data', dir], {});
    expect(occupied.code).toBe(1);
    expect(occupied.stderr).toBe(`quartz: data directory ${dir} is not empty; restore only into an empty or new directory\n`);
    const truncated = await runCli(['restore', '--file', archive, '--data', join(dir, 'new')], {});
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toBe(`quartz: backup archive ${archive}: truncated: it ends after 4 bytes, in the header\n`);
    const missing = await runCli(['restore', '--file', join(dir, 'nope.qzb'), '--data', join(dir, 'new2')], {});
    expect(missing.stderr).toMatch(/^quartz: backup file .*nope\.qzb: cannot read it \(ENOENT\)\n$/);
    const notFile = await runCli(['restore', '--file', dir, '--data', join(dir, 'new3')], {});
    expect([notFile.code, notFile.stderr]).toEqual([1, `quartz: backup file ${dir}: cannot read it (not a file)\n`]);
    await expect(readdir(join(dir, 'new3'))).rejects.toThrow(/ENOENT/); // nothing made
    const emptyDir = await runCli(['restore', '--file', archive, '--data', ''], {});
    expect([emptyDir.code, emptyDir.stderr]).toEqual([1, 'quartz: --data must not be empty\n']);
    const emptyFile = await runCli(['backup', '--file', ''], { QUARTZ_ADMIN_KEY: 'any-admin-key-00000000' });
    expect([emptyFile.code, emptyFile.stderr]).toEqual([1, 'quartz: --file must not be empty\n']);
    expect(await readFile(join(dir, 'occupied'), 'utf8')).toBe('x');
  });

  it('needs the admin key', async () => {
    const s = await startServerProcess(['--data', await tempDir('backup-auth')]);
    running.push(s);
    const target = join(await tempDir('bk'), 'x.qzb');
    const none = await runCli(['backup', '--file', target, '--url', s.url], { XDG_CONFIG_HOME: await tempDir('no-config') });
    expect([none.code, none.stderr]).toEqual([1, 'quartz: no admin key; set QUARTZ_ADMIN_KEY or pass --admin-key-file (the server prints where its key file is)\n']);
    const r = await runCli(['backup', '--file', target, '--url', s.url], { QUARTZ_ADMIN_KEY: 'not-the-admin-key-at-all' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^quartz: .*\(401 unauthorized\)\n$/);
    expect(await readdir(dirname(target))).toEqual([]); // no .partial left behind
  });

  it('stops on Ctrl-C or SIGTERM with one line and exit 130, leaving no .partial', async () => {
    const adminKey = 'stop-test-admin-key-0000';
    const s = await startServerProcess(['--data', await tempDir('backup-stop')], { QUARTZ_ADMIN_KEY: adminKey });
    running.push(s);
    const reg = (await (await fetch(`${s.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'i@example.com' }) })).json()) as { api_key: string };
    // ~120 MB of blobs: the download is still running when the signal comes.
    for (let n = 0; n < 40; n++) await fetch(`${s.url}/v1/kv/big${n}`, { method: 'PUT', headers: { authorization: `Bearer ${reg.api_key}` }, body: new Uint8Array(3_000_000).fill(n) });
    const dir = await tempDir('bk-stop');
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const file = join(dir, `${signal}.qzb`);
      const proc = spawn(process.execPath, [BIN, 'backup', '--file', file, '--url', s.url], { env: cleanEnv({ QUARTZ_ADMIN_KEY: adminKey }) });
      let stderr = '';
      proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const closed = new Promise<number | string>((resolve) => proc.once('close', (code, sig) => resolve(code ?? sig ?? -1)));
      await waitFor(async () => ((await stat(`${file}.partial`).catch(() => undefined))?.size ?? 0) > 1_000_000 || undefined, 60_000, 'the download to begin');
      proc.kill(signal);
      expect([await closed, stderr], signal).toEqual([130, `quartz: backup stopped by ${signal}; no archive was written\n`]);
    }
    expect(await readdir(dir)).toEqual([]);
  }, 180_000);

  it('says in one line when it cannot write the archive, and leaves no .partial', async () => {
    const s = await startServerProcess(['--data', await tempDir('backup-write')], { QUARTZ_ADMIN_KEY: 'write-test-admin-key' });
    running.push(s);
    const dir = await tempDir('bk-write');
    await mkdir(join(dir, 'taken'));
    for (const [file, code] of [
      [join(dir, 'no-such-dir', 'x.qzb'), 'ENOENT'],
      [join(dir, 'taken'), 'EISDIR'],
    ] as const) {
      const r = await runCli(['backup', '--file', file, '--url', s.url], { QUARTZ_ADMIN_KEY: 'write-test-admin-key' });
      expect([r.code, r.stderr], file).toEqual([1, `quartz: cannot write ${file} (${code})\n`]);
    }
    expect(await readdir(dir)).toEqual(['taken']);
  });
});
