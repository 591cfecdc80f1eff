import { afterEach, describe, expect, it } from 'vitest';
import { stopProcess } from '../lib/processes.js';
import { startPreloadedServer, type PreloadedServer } from './preloaded-server.js';

interface Report {
  seconds: number;
  kinds: Record<string, { count: number; p50: number; max: number }>;
  gc: { count: number; p50: number };
  scavenges: { count: number };
  newSpaceBytes: number;
  fileWrites: { count: number; p50: number };
}

let running: PreloadedServer | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

describe('bench http --server-timing (server-timing.mjs preloaded into a real server)', () => {
  it('counts each kind of request since the mark, and the server still stops on SIGTERM', async () => {
    running = await startPreloadedServer('./server-timing.mjs');
    const { server, base } = running;
    const ask = () => running!.ask<Report>('report');
    // Before the mark: not counted after it. Unauthenticated requests are timed all the same.
    await fetch(`${base}/v1/kv/before`);
    const registered = await fetch(`${base}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"t@example.com"}' });
    const { api_key } = (await registered.json()) as { api_key: string };
    server.send('mark');
    for (const key of ['a', 'b']) await fetch(`${base}/v1/kv/${key}`);
    // Acknowledged once its frame is on disk: the write-ahead log's fs.write, timed.
    const put = await fetch(`${base}/v1/kv/c`, { method: 'PUT', headers: { authorization: `Bearer ${api_key}` }, body: 'x' });
    expect(put.status).toBe(200);
    await fetch(`${base}/v1/topics/t/records`, { method: 'POST', body: '{"records":[]}' });
    await fetch(`${base}/v1/topics/t/partitions/0/records?offset=0`);
    await fetch(`${base}/v1/collections/c/query`, { method: 'POST', body: '{}' });
    const report = await ask();
    expect(Object.fromEntries(Object.entries(report.kinds).map(([kind, f]) => [kind, f.count]))).toEqual({
      'kv get': 2,
      'kv put': 1,
      produce: 1,
      consume: 1,
      'vector query': 1,
    });
    expect(report.kinds['kv get']!.p50).toBeGreaterThan(0);
    expect(report.seconds).toBeGreaterThan(0);
    expect(Number.isFinite(report.gc.p50)).toBe(true);
    expect(report.scavenges.count).toBeLessThanOrEqual(report.gc.count);
    expect(report.newSpaceBytes).toBeGreaterThan(0);
    expect(report.fileWrites.count).toBeGreaterThanOrEqual(1);
    expect(report.fileWrites.p50).toBeGreaterThan(0);
    const stopped = Date.now();
    await stopProcess(server, 10_000);
    expect(server.exitCode).toBe(0); // shut down as without the preload and its IPC channel
    expect(Date.now() - stopped).toBeLessThan(10_000);
  });
});
