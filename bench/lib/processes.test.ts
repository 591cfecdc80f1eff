import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { describe, expect, it } from 'vitest';
import { stopProcess, waitForPort, withPeer } from './processes.js';

const listen = (port: number) => `require('node:net').createServer((s) => s.end()).listen(${port}, '127.0.0.1')`;

const connects = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' }, () => {
      s.end();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

describe('peer processes', () => {
  it('withPeer starts the peer, waits until it listens, and stops it and removes its directory after', async () => {
    let dir = '';
    let port = 0;
    await withPeer('node', (p, d) => ((dir = d), (port = p), ['-e', listen(p)]), async (p) => {
      expect(existsSync(dir)).toBe(true);
      expect(await connects(p)).toBe(true);
    });
    expect(existsSync(dir)).toBe(false);
    expect(await connects(port)).toBe(false);
  });

  it('withPeer removes the directory and stops the peer when the work throws', async () => {
    let dir = '';
    let port = 0;
    await expect(
      withPeer('node', (p, d) => ((dir = d), (port = p), ['-e', listen(p)]), async () => {
        throw new Error('the work failed');
      }),
    ).rejects.toThrow('the work failed');
    expect(existsSync(dir)).toBe(false);
    expect(await connects(port)).toBe(false);
  });

  it('waitForPort reports a peer that exits instead of listening', async () => {
    const child = spawn(process.execPath, ['-e', 'process.exit(3)']);
    await expect(waitForPort(1, child)).rejects.toThrow(/exited with 3/);
  });

  it('stopProcess kills a process that ignores SIGTERM once the grace period is over', async () => {
    const child = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000); console.log('ready')"]);
    await new Promise((r) => child.stdout.once('data', r));
    await stopProcess(child, 200);
    expect(child.signalCode).toBe('SIGKILL');
  });
});
