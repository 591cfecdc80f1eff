import { afterEach, describe, expect, it } from 'vitest';
import { stopProcess } from '../lib/processes.js';
import { startPreloadedServer, type PreloadedServer } from './preloaded-server.js';

interface Report {
  seconds: number;
  kinds: Record<string, { count: number; p50: number; max: number }>;
  gc: { count: number; p50: number };
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
    server.send('mark');
    for (const key of ['a', 'b']) await fetch(`${base}/v1/kv/${key}`);
    await fetch(`${base}/v1/kv/c`, { method: 'PUT', body: 'x' });
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
    const stopped = Date.now();
    await stopProcess(server, 10_000);
    expect(server.exitCode).toBe(0); // shut down as without the preload and its IPC channel
    expect(Date.now() - stopped).toBeLessThan(10_000);
  });
});
