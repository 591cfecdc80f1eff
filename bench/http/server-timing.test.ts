import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../tests/fixtures/free-port.js';
import { stopProcess, waitForHttp } from '../lib/processes.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PRELOAD = fileURLToPath(new URL('./server-timing.mjs', import.meta.url));

interface Report {
  seconds: number;
  kinds: Record<string, { count: number; p50: number; max: number }>;
  gc: { count: number; p50: number };
}

const ask = (server: ChildProcess): Promise<Report> =>
  new Promise((resolve) => {
    server.once('message', (m) => resolve(m as Report));
    server.send('report');
  });

let server: ChildProcess | undefined;
let dir: string | undefined;
afterEach(async () => {
  if (server !== undefined) await stopProcess(server, 10_000);
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  server = dir = undefined;
});

describe('bench http --server-timing (server-timing.mjs preloaded into a real server)', () => {
  it('counts each kind of request since the mark, and the server still stops on SIGTERM', async () => {
    dir = mkdtempSync(join(tmpdir(), 'qz-server-timing-'));
    const port = await freePort();
    server = spawn(process.execPath, [`--import=${PRELOAD}`, join(ROOT, 'bin/quartz.js'), 'serve', '--host', '127.0.0.1', '--port', String(port), '--data', join(dir, 'q')], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    server.channel?.unref();
    const base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/v1/health`, server, 'quartz serve');
    // Before the mark: not counted after it. Unauthenticated requests are timed all the same.
    await fetch(`${base}/v1/kv/before`);
    server.send('mark');
    for (const key of ['a', 'b']) await fetch(`${base}/v1/kv/${key}`);
    await fetch(`${base}/v1/kv/c`, { method: 'PUT', body: 'x' });
    await fetch(`${base}/v1/topics/t/records`, { method: 'POST', body: '{"records":[]}' });
    await fetch(`${base}/v1/topics/t/partitions/0/records?offset=0`);
    await fetch(`${base}/v1/collections/c/query`, { method: 'POST', body: '{}' });
    const report = await ask(server);
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
