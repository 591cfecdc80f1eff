import { afterEach, describe, expect, it } from 'vitest';
import { stopProcess } from '../lib/processes.js';
import { startPreloadedServer, type PreloadedServer } from './preloaded-server.js';

interface Live {
  kind: string;
  gcMs: number;
  heapUsed: number;
  heapCommitted: number;
  external: number;
  arrayBuffers: number;
  rss: number;
  anon: number;
}

let running: PreloadedServer | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

describe('bench http, several mixed rounds (server-memory.mjs preloaded into a real server)', () => {
  it('collects the garbage of the requests before reading the live heap, and the server still stops on SIGTERM', async () => {
    running = await startPreloadedServer('./server-memory.mjs');
    const { server, base } = running;
    const ask = () => running!.ask<Live>('memory');
    const first = await ask();
    // Garbage: 64 answers of 256 KiB each, none kept by the server once written.
    const big = await fetch(`${base}/v1/auth/register`, { method: 'POST', body: JSON.stringify({ email: 'm@example.com' }) });
    const { api_key } = (await big.json()) as { api_key: string };
    const auth = { authorization: `Bearer ${api_key}` };
    await fetch(`${base}/v1/kv/big`, { method: 'PUT', headers: auth, body: 'x'.repeat(256 * 1024) });
    for (let i = 0; i < 64; i++) await (await fetch(`${base}/v1/kv/big`, { headers: auth })).arrayBuffer();
    const second = await ask();
    expect(second.kind).toBe('memory');
    expect(second.gcMs).toBeGreaterThan(0);
    expect(second.heapUsed).toBeGreaterThan(0);
    expect(second.heapUsed).toBeLessThanOrEqual(second.heapCommitted);
    expect(second.arrayBuffers).toBeLessThanOrEqual(second.external);
    expect(second.anon).toBeGreaterThan(0);
    expect(second.rss).toBeGreaterThanOrEqual(second.anon);
    // 16 MiB of answers went through; after the collection, far less than that is left.
    expect(second.external - first.external).toBeLessThan(4 * 2 ** 20);
    const stopped = Date.now();
    await stopProcess(server, 10_000);
    expect(server.exitCode).toBe(0);
    expect(Date.now() - stopped).toBeLessThan(10_000);
  });
});
