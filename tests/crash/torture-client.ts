/**
 * The plumbing of the crash torture (torture.test.ts): a `quartz serve` process that can be
 * killed at any moment, an HTTP client that tells a request the kill cut short (its outcome is
 * unknown) from one the server got wrong, and the deterministic contents every write carries, so
 * that a check after a restart recomputes them from a tag instead of keeping them.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN, ROOT, cleanEnv } from '../integration/server-process.js';

/** The server broke a promise: fails the run with the seed and the last ops. */
export class Violation extends Error {}

/** The server was killed under this request: what it did is checked after the restart. */
export class Unknown extends Error {}

export function check(cond: boolean, what: () => string): asserts cond {
  if (!cond) throw new Violation(what());
}

/** FNV-1a of a tag: the seed of its contents. */
export function hashOf(tag: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < tag.length; i++) h = Math.imul(h ^ tag.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** `size` xorshift bytes that only `tag` gives. */
export function bytesOf(tag: string, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let s = hashOf(tag) || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out.writeInt32LE(s | 0, i);
  }
  for (; i < size; i++) out[i] = (s = (s * 31 + i) >>> 0) & 0xff;
  return out;
}

export { OpLog } from '../integration/model-check/harness.js';

/**
 * One `quartz serve` process on the run's data directory. Its JSON log lines at error level or
 * above are kept (a roll or recovery that failed says so there, and nowhere else).
 */
export class ServerProc {
  private out = '';
  private err = '';
  readonly errors: string[] = [];
  readonly exited: Promise<number | string>;
  url = '';

  private constructor(readonly proc: ChildProcessWithoutNullStreams) {
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    let partial = '';
    proc.stdout.setEncoding('utf8').on('data', (s: string) => {
      this.out = (this.out + s).slice(-200_000);
      partial += s;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) if (/"level":(50|60),/.test(line)) this.errors.push(line.slice(0, 2000));
    });
    proc.stderr.setEncoding('utf8').on('data', (s: string) => (this.err = (this.err + s).slice(-50_000)));
  }

  static spawn(dataDir: string, port: number, flags: string[] = []): ServerProc {
    const proc = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data', dataDir, ...flags], { env: cleanEnv(), cwd: ROOT });
    return new ServerProc(proc);
  }

  /** Waits for the banner; the server must start on whatever the last crash left, unaided. */
  async ready(boundMs: number): Promise<void> {
    const end = Date.now() + boundMs;
    let exited: number | string | undefined;
    void this.exited.then((code) => (exited = code));
    for (;;) {
      const m = /"msg":"QuartzDB listening on (http:\/\/[^"]+)"\}\n/.exec(this.out);
      if (m !== null) {
        this.url = m[1]!;
        return;
      }
      if (exited !== undefined || Date.now() > end) {
        if (exited === undefined) await this.kill();
        throw new Violation(`the server did not start (${exited === undefined ? `not ready in ${boundMs / 1000} s` : `exited ${exited}`})\n--- stderr ---\n${this.err.slice(-3000)}\n--- stdout ---\n${this.out.slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await this.exited;
  }

  async term(): Promise<number | string> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    return this.exited;
  }

  tail(): string {
    return `--- stderr ---\n${this.err.slice(-2000)}\n--- last log lines ---\n${this.out.split('\n').slice(-15).join('\n')}`;
  }
}

export async function adminKeyOf(dataDir: string): Promise<string> {
  return (await readFile(join(dataDir, 'admin.key'), 'utf8')).trim();
}

/**
 * The server the workers talk to now. Each incarnation gets its own keep-alive agent, so no
 * request goes out on a socket of a killed process; `stopping` is set before the kill, from when
 * a failed request is a cut-short one rather than a violation.
 */
export class Link {
  agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  stopping = false;
  constructor(public port: number) {}

  renew(port: number): void {
    this.agent.destroy();
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    this.port = port;
    this.stopping = false;
  }
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json(): any;
}

/** A request that must not take longer than this on a loaded 2-core machine: past it, a hang. */
const REQUEST_BOUND_MS = 60_000;

export function request(link: Link, key: string, method: string, path: string, init: { body?: Buffer | object; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}`, ...init.headers };
  let body: Buffer | undefined;
  if (Buffer.isBuffer(init.body)) body = init.body;
  else if (init.body !== undefined) {
    body = Buffer.from(JSON.stringify(init.body));
    headers['content-type'] ??= 'application/json';
  }
  if (body !== undefined) headers['content-length'] = String(body.length);
  const stoppingAtStart = link.stopping;
  return new Promise<Reply>((resolve, reject) => {
    const failed = (err: Error): void => {
      if (stoppingAtStart || link.stopping) reject(new Unknown(`${method} ${path}: ${err.message}`));
      else reject(new Violation(`${method} ${path}: transport failure with the server up: ${err.message}`));
    };
    const req = http.request({ host: '127.0.0.1', port: link.port, method, path, headers, agent: link.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', failed);
      res.on('aborted', () => failed(new Error('answer cut short')));
      res.on('end', () => {
        clearTimeout(timer);
        if (!res.complete) return failed(new Error('answer cut short'));
        const bytes = Buffer.concat(chunks);
        const reply: Reply = {
          status: res.statusCode!,
          headers: res.headers,
          body: bytes,
          json: () => {
            try {
              return JSON.parse(bytes.toString('utf8'));
            } catch {
              throw new Violation(`${method} ${path}: ${res.statusCode} is not JSON: ${bytes.toString('utf8').slice(0, 200)}`);
            }
          },
        };
        if (reply.status >= 500) reject(new Violation(`${method} ${path}: ${reply.status} ${bytes.toString('utf8').slice(0, 300)}`));
        else resolve(reply);
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Violation(`${method} ${path}: no answer within ${REQUEST_BOUND_MS / 1000} s (hang)`));
    }, REQUEST_BOUND_MS);
    req.on('error', (err) => {
      clearTimeout(timer);
      failed(err);
    });
    req.end(body);
  });
}

/** `request`, then the status must be one of `expected`. */
export async function expectStatus(link: Link, key: string, expected: number | readonly number[], method: string, path: string, init: Parameters<typeof request>[4] = {}): Promise<Reply> {
  const r = await request(link, key, method, path, init);
  const ok = typeof expected === 'number' ? r.status === expected : expected.includes(r.status);
  check(ok, () => `${method} ${path}: expected ${String(expected)}, got ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
  return r;
}
