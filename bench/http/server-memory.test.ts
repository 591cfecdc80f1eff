import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../tests/fixtures/free-port.js';
import { stopProcess, waitForHttp } from '../lib/processes.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PRELOAD = fileURLToPath(new URL('./server-memory.mjs', import.meta.url));

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

const ask = (server: ChildProcess): Promise<Live> =>
  new Promise((resolve) => {
    server.once('message', (m) => resolve(m as Live));
    server.send('memory');
  });

let server: ChildProcess | undefined;
let dir: string | undefined;
afterEach(async () => {
  if (server !== undefined) await stopProcess(server, 10_000);
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  server = dir = undefined;
});

describe('bench http, several mixed rounds (server-memory.mjs preloaded into a real server)', () => {
  it('collects the garbage of the requests before reading the live heap, and the server still stops on SIGTERM', async () => {
    dir = mkdtempSync(join(tmpdir(), 'qz-server-memory-'));
    const port = await freePort();
    server = spawn(process.execPath, [`--import=${PRELOAD}`, join(ROOT, 'bin/quartz.js'), 'serve', '--host', '127.0.0.1', '--port', String(port), '--data', join(dir, 'q')], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    server.channel?.unref();
    const base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/v1/health`, server, 'quartz serve');
    const first = await ask(server);
    // Garbage: 64 answers of 256 KiB each, none kept by the server once written.
    const big = await fetch(`${base}/v1/auth/register`, { method: 'POST', body: JSON.stringify({ email: 'm@example.com' }) });
    const { api_key } = (await big.json()) as { api_key: string };
    const auth = { authorization: `Bearer ${api_key}` };
    await fetch(`${base}/v1/kv/big`, { method: 'PUT', headers: auth, body: 'x'.repeat(256 * 1024) });
    for (let i = 0; i < 64; i++) await (await fetch(`${base}/v1/kv/big`, { headers: auth })).arrayBuffer();
    const second = await ask(server);
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
