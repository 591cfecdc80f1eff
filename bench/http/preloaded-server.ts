/**
 * A real `quartz serve` with one of the bench's preloads (server-timing.mjs, server-memory.mjs),
 * which answer questions over the IPC channel: the tests of those preloads share it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../tests/fixtures/free-port.js';
import { stopProcess, waitForHttp } from '../lib/processes.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface PreloadedServer {
  server: ChildProcess;
  base: string;
  /** Sends `question` to the preload and resolves with its next message. */
  ask<T>(question: string): Promise<T>;
  /** Stops the server (SIGTERM, then SIGKILL after 10 s) and removes its data directory. */
  stop(): Promise<void>;
}

export async function startPreloadedServer(preload: string): Promise<PreloadedServer> {
  const dir = mkdtempSync(join(tmpdir(), 'qz-preloaded-'));
  const port = await freePort();
  const server = spawn(process.execPath, [`--import=${fileURLToPath(new URL(preload, import.meta.url))}`, join(ROOT, 'bin/quartz.js'), 'serve', '--host', '127.0.0.1', '--port', String(port), '--data', join(dir, 'q')], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  server.channel?.unref();
  const base = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    await stopProcess(server, 10_000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForHttp(`${base}/v1/health`, server, 'quartz serve');
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    server,
    base,
    ask: <T>(question: string) =>
      new Promise<T>((resolve) => {
        server.once('message', (m) => resolve(m as T));
        server.send(question);
      }),
    stop,
  };
}
