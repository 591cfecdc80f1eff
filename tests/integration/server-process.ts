/**
 * Helpers for the server and CLI suites: run `node bin/quartz.js …` as users do (the compiled
 * dist/, which `npm test` builds first), with a private config dir and no QUARTZ_* leaking in.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'quartz.js');

if (!existsSync(join(ROOT, 'dist', 'src', 'node', 'cli', 'index.js'))) {
  throw new Error('dist/ is not built: run `npm run build:ts` (npm test does) before these suites');
}

export function cleanEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('QUARTZ_')) env[k] = v;
  env.NO_COLOR = '1';
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `quartz-${prefix}-`));
}

export interface ServerProcess {
  proc: ChildProcessWithoutNullStreams;
  url: string;
  /** Everything the process has written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * How long a server may take to print its banner. It takes 1-2 s on an idle machine; a 2-core CI
 * machine at load ~20 has taken over 20 s. Kept under vitest's 60 s hook timeout, so a start that
 * fails is reported by this harness, with the server's output, rather than as a bare hook timeout.
 */
export const STARTUP_BOUND_MS = 45_000;

/**
 * Resolves with the first match of `ready` in the process's stdout; rejects, killing the
 * process, if it exits first or `boundMs` passes, with its stderr and stdout in the message.
 * `output` gives what the process has written so far.
 */
export function readiness(proc: ChildProcessWithoutNullStreams, ready: RegExp, output: () => { stdout: string; stderr: string }, boundMs: number): Promise<RegExpExecArray> {
  const started = Date.now();
  const shown = (): string => {
    const { stdout, stderr } = output();
    return `\n--- stderr ---\n${stderr || '(empty)'}\n--- stdout ---\n${stdout || '(empty)'}`;
  };
  return new Promise<RegExpExecArray>((resolve, reject) => {
    const stop = (): void => {
      clearTimeout(timer);
      proc.stdout.off('data', check);
      proc.off('close', onExit);
    };
    const timer = setTimeout(() => {
      stop();
      proc.kill('SIGKILL'); // not left running past the test that gave up on it
      reject(new Error(`server was not ready within ${boundMs / 1000} s (pid ${proc.pid})${shown()}`));
    }, boundMs);
    const check = (): void => {
      const m = ready.exec(output().stdout);
      if (m === null) return;
      stop();
      resolve(m);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      stop();
      reject(new Error(`server exited (${code ?? signal}) after ${Date.now() - started} ms, before it was ready${shown()}`));
    };
    proc.stdout.on('data', check);
    // 'close', not 'exit': by then the process's output has been read in full.
    proc.once('close', onExit);
    check();
  });
}

/** Starts `quartz serve --port 0 …` and waits for its banner (the URL through the admin key line). */
export async function startServerProcess(args: string[], env: Record<string, string | undefined> = {}): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--port', '0', ...args], { env: cleanEnv(env), cwd: ROOT });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  proc.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  // Not a terminal: the banner is one JSON line (with its warnings after it, in the same write).
  const [, url] = await readiness(proc, /"msg":"QuartzDB listening on (http:\/\/[^"]+)"\}\n/, () => ({ stdout: out, stderr: err }), STARTUP_BOUND_MS);
  return {
    proc,
    url: url!,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop: (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** Every JSON line a server process wrote to stdout so far (the banner and the log), parsed. */
export function logLines(stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The banner's line (`QuartzDB listening on …`), as written to stdout that is not a terminal. */
export function bannerOf(stdout: string): Record<string, unknown> | undefined {
  return logLines(stdout).find((l) => typeof l.msg === 'string' && l.msg.startsWith('QuartzDB listening on '));
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one CLI command to completion, feeding `input` to its stdin. */
export function runCli(args: string[], env: Record<string, string | undefined>, input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, ...args], { env: cleanEnv(env), cwd: ROOT });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    proc.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`quartz ${args.join(' ')} did not finish in 30 s\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 30_000);
    proc.once('error', reject);
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    proc.stdin.end(input ?? '');
  });
}

/** Polls `probe` until it returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * The value of one Prometheus sample in the server's /metrics (0 while it is absent): for tests
 * that wait until the server has seen a request instead of sleeping.
 * @example
 * const calls = await metric(s.url, 'quartz_api_calls');
 */
export async function metric(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}

/**
 * A `start` for one test file: each server it starts is SIGKILLed after the test that started it.
 *
 * @example
 * const start = serversKilledAfterEach();
 * const server = await start(['--port', '0']);
 */
export function serversKilledAfterEach(): (args: string[], env?: Record<string, string>) => Promise<ServerProcess> {
  const running: ServerProcess[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.stop('SIGKILL')));
  });
  return async (args, env = {}) => {
    const s = await startServerProcess(args, env);
    running.push(s);
    return s;
  };
}
