/**
 * The peers and servers the benches start as processes of their own (redis-server, nats-server,
 * `quartz serve`): finding or installing them, waiting until they listen, stopping them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../tests/fixtures/free-port.js';

/** Whether `cmd` is on the PATH. */
export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Installs the missing ones of `cmds` with apt-get when running as root (docs/benchmarks.md,
 * "Peers and system tools"); returns those still missing, whose rows the bench then skips.
 */
export function ensureCommands(cmds: readonly string[]): string[] {
  const missing = cmds.filter((c) => !hasCommand(c));
  if (missing.length === 0) return [];
  if (process.getuid?.() === 0 && hasCommand('apt-get')) {
    console.log(`  installing ${missing.join(', ')} with apt-get…`);
    spawnSync('apt-get', ['install', '-y', ...missing], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  const still = missing.filter((c) => !hasCommand(c));
  if (still.length > 0) console.log(`  ${still.join(', ')} missing and not installable here (apt-get as root): ${still.length > 1 ? 'their rows are' : 'its rows are'} skipped`);
  return still;
}

/** Starts `cmd` (its output dropped) and waits until it accepts connections on `port` of 127.0.0.1. */
export async function startListening(cmd: string, args: readonly string[], port: number): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: 'ignore' });
  try {
    await waitForPort(port, child);
  } catch (err) {
    await stopProcess(child);
    throw err;
  }
  return child;
}

/** Resolves once 127.0.0.1:`port` accepts a connection; throws if `child` exits first or 15 s pass. */
export async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ port, host: '127.0.0.1' }, () => {
        s.end();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.spawnfile} did not listen on ${port}`);
}

/**
 * Resolves once `url` answers below 500; throws if `child` exits first or 30 s pass, with the end
 * of its `log` file when given.
 */
export async function waitForHttp(url: string, child: ChildProcess, what: string, log?: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const tail = log !== undefined && existsSync(log) ? `\n${readFileSync(log, 'utf8').slice(-2000)}` : '';
  throw new Error(`${what} did not come up at ${url}${tail}`);
}

/**
 * SIGTERM, then SIGKILL if `child` has not exited within `graceMs`; resolves once it has exited.
 * A peer stops at once; the quartz server is given longer, to finish what it writes at close.
 */
export async function stopProcess(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Runs `use` against `cmd` started on a free loopback port with a fresh data directory (its
 * arguments from `args(port, dir)`), then stops it and removes the directory, whatever `use` did.
 */
export async function withPeer<T>(cmd: string, args: (port: number, dir: string) => string[], use: (port: number) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), `qz-bench-${cmd}-`));
  let child: ChildProcess | undefined;
  try {
    const port = await freePort();
    child = await startListening(cmd, args(port, dir), port);
    return await use(port);
  } finally {
    if (child) await stopProcess(child);
    await rm(dir, { recursive: true, force: true });
  }
}
