/**
 * `bytes_stored` and `vectors_stored` are levels kept as deltas that the meter persists once a
 * minute: a server killed with kill -9 loses the last deltas. The next start must count the
 * tenant's levels afresh, not carry the loss for ever.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openQuartz } from '../../src/node/open-quartz.js';
import { startServerProcess, tempDir, waitFor, type ServerProcess } from './server-process.js';

const running: ServerProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop('SIGKILL')));
});

async function call(url: string, key: string, method: string, path: string, body?: unknown, raw?: string): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${url}${path}`, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res;
}

interface Usage {
  bytes_stored: number;
  vectors_stored: number;
  recounting: boolean;
}

/** GET /v1/usage once the tenant's bytes are counted afresh (the first request after a crash starts the count). */
async function settledUsage(url: string, key: string): Promise<Usage> {
  return waitFor(
    async () => {
      const usage = (await (await call(url, key, 'GET', '/v1/usage')).json()) as Usage;
      return usage.recounting ? undefined : usage;
    },
    60_000,
    'the usage recount',
  );
}

describe('usage levels after kill -9', () => {
  it('are counted afresh from what the tenant holds, and a clean restart keeps them', async () => {
    const dir = await tempDir('usage-crash');
    const first = await startServerProcess(['--data', dir]);
    running.push(first);
    const reg = await fetch(`${first.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"u@example.com"}' });
    const { api_key: key } = (await reg.json()) as { api_key: string };
    // A flush of the meter now, so the stored level is not simply zero.
    await call(first.url, key, 'PUT', '/v1/kv/early', undefined, 'x'.repeat(100));
    let kvBytes = 'early'.length + 100;
    for (let i = 0; i < 50; i++) {
      await call(first.url, key, 'PUT', `/v1/kv/k${i}`, undefined, 'v'.repeat(10 * i));
      kvBytes += `k${i}`.length + 10 * i;
    }
    await call(first.url, key, 'PUT', '/v1/kv/big', undefined, 'b'.repeat(1_500_000)); // a blob-backed value
    kvBytes += 'big'.length + 1_500_000;
    await call(first.url, key, 'DELETE', '/v1/kv/k3');
    kvBytes -= 'k3'.length + 30;
    await call(first.url, key, 'POST', '/v1/topics', { name: 'orders', partitions: 2 });
    await call(first.url, key, 'POST', '/v1/topics/orders/records', { records: Array.from({ length: 300 }, (_, i) => ({ value: `order ${i}`, partition: i % 2 })) });
    await call(first.url, key, 'POST', '/v1/collections', { name: 'docs', dims: 3, metric: 'cosine' });
    await call(first.url, key, 'POST', '/v1/collections/docs/upsert', { vectors: [1, 2, 3, 4].map((n) => ({ id: `v${n}`, values: [n, 1, 0] })) });
    await call(first.url, key, 'DELETE', '/v1/collections/docs/vectors/v2');
    const before = (await (await call(first.url, key, 'GET', '/v1/usage')).json()) as Usage;
    const topic = (await (await call(first.url, key, 'GET', '/v1/topics/orders')).json()) as { partition_info: { bytes: number }[] };
    const logBytes = topic.partition_info.reduce((sum, p) => sum + p.bytes, 0);
    expect(logBytes).toBeGreaterThan(0);
    expect(before).toMatchObject({ bytes_stored: kvBytes + logBytes, vectors_stored: 3 });

    // Well within the meter's one-minute flush: every delta above is lost.
    first.proc.kill('SIGKILL');
    await first.exited;
    const second = await startServerProcess(['--data', dir]);
    running.push(second);
    const after = await settledUsage(second.url, key);
    expect(after).toMatchObject({ bytes_stored: before.bytes_stored, vectors_stored: 3 });

    // A write after the count still moves the level; a clean stop and start keeps it as it is.
    await call(second.url, key, 'PUT', '/v1/kv/late', undefined, 'l'.repeat(40));
    await second.stop('SIGTERM');
    const third = await startServerProcess(['--data', dir]);
    running.push(third);
    const clean = (await (await call(third.url, key, 'GET', '/v1/usage')).json()) as Usage;
    expect(clean).toMatchObject({ bytes_stored: before.bytes_stored + 'late'.length + 40, vectors_stored: 3, recounting: false });
  });

  it('serve a big tenant at once while its bytes are counted, and a kill -9 during the count leaves them to count again', async () => {
    const dir = await tempDir('usage-recount');
    // Written in this process, which is faster than 200,000 HTTP requests; stopped cleanly.
    const keys = 200_000;
    const engine = await openQuartz({ dataDir: dir });
    const { tenant, api_key: key } = await engine.tenants.create({ email: 'big@example.com' });
    const { kv } = await engine.tenant(tenant.id);
    let bytes = 0;
    for (let i = 0; i < keys; i += 1000) {
      await Promise.all(
        Array.from({ length: 1000 }, (_, j) => {
          const name = `k${String(i + j).padStart(6, '0')}`;
          bytes += name.length + ((i + j) % 20);
          return kv.put(name, new Uint8Array((i + j) % 20));
        }),
      );
    }
    await engine.close();

    // Writes whose deltas a kill -9 loses.
    const first = await startServerProcess(['--data', dir]);
    running.push(first);
    for (let i = 0; i < 20; i++) {
      await call(first.url, key, 'PUT', `/v1/kv/lost${i}`, undefined, 'x'.repeat(1000));
      bytes += `lost${i}`.length + 1000;
    }
    await call(first.url, key, 'DELETE', '/v1/kv/k000007');
    bytes -= 'k000007'.length + 7;
    first.proc.kill('SIGKILL');
    await first.exited;

    const second = await startServerProcess(['--data', dir]);
    running.push(second);
    // The first request opens the tenant, which starts the count; it is answered without waiting for it.
    const value = await call(second.url, key, 'GET', '/v1/kv/k000019');
    expect((await value.arrayBuffer()).byteLength).toBe(19);
    const during = (await (await call(second.url, key, 'GET', '/v1/usage')).json()) as Usage;
    expect(during.recounting).toBe(true);
    second.proc.kill('SIGKILL');
    await second.exited;

    const third = await startServerProcess(['--data', dir]);
    running.push(third);
    expect(await settledUsage(third.url, key)).toMatchObject({ bytes_stored: bytes, recounting: false });
  }, 120_000);
});
