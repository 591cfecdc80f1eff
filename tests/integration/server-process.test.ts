/**
 * The harness's wait for a server's readiness: a process that never gets ready, or dies first,
 * fails the wait with what it wrote to stderr, and is not left running.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { readiness } from './server-process.js';

function child(script: string) {
  const proc = spawn(process.execPath, ['-e', script]);
  const seen = { stdout: '', stderr: '' };
  proc.stdout.setEncoding('utf8').on('data', (s: string) => (seen.stdout += s));
  proc.stderr.setEncoding('utf8').on('data', (s: string) => (seen.stderr += s));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return { proc, output: () => seen, exited };
}

describe('readiness', () => {
  it('resolves on the ready line, however it arrives in chunks', async () => {
    const c = child("process.stdout.write('listening on http://x:1\\n'); setTimeout(() => process.stdout.write('admin key: k\\n'), 50); setTimeout(() => {}, 5000);");
    const m = await readiness(c.proc, /listening on (\S+)[^]*admin key: .*\n/, c.output, 10_000);
    expect(m[1]).toBe('http://x:1');
    c.proc.kill();
    await c.exited;
  });

  it('a process still not ready at the bound: killed, and the error shows its stderr', async () => {
    const c = child("console.error('opening the data directory is slow'); setInterval(() => {}, 1000);");
    await new Promise((resolve) => c.proc.stderr.once('data', resolve));
    await expect(readiness(c.proc, /ready/, c.output, 300)).rejects.toThrow(/not ready within 0\.3 s[^]*stderr ---\nopening the data directory is slow/);
    await c.exited; // killed, not left running
  });

  it('a process that exits first: the error shows its exit code and stderr', async () => {
    const c = child("console.error('quartz: bad --port'); process.exit(1);");
    await expect(readiness(c.proc, /ready/, c.output, 10_000)).rejects.toThrow(/exited \(1\)[^]*quartz: bad --port/);
  });
});
