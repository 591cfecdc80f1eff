/**
 * The HTTP API fuzzer: runs generated cases (generate.ts) against a real `quartz serve` process
 * and holds every answer to what docs/api.md promises a client sending odd input: a status
 * below 500 (501 only for methods HTTP does not define here), a JSON `{error, message}` on every
 * 4xx, no stack trace, an answer within a bound, the tenant's data unchanged by a refused write,
 * and a process that stays up with no error in its log.
 *
 * Long runs: `npx tsx tests/fuzz/run.ts --seeds 1,2,3 --cases 20000` (see run.ts); the suite runs
 * a short fixed-seed pass (api-fuzz.test.ts).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bytesOf, caseAt, isStandardMethod, isWrite, operationsOf, type Case, type Operation } from './generate.js';
import { exchange, type Exchange, type RawResponse } from './raw-http.js';
import { World } from './world.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The server's settings for fuzzing: small limits (so over-limit bodies are cheap), short long-polls. */
export const FUZZ_CONFIG = {
  log_level: 'info',
  default_plan: 'unlimited',
  registrations_per_minute: null,
  plans: { free: { requests_per_minute: 100 }, unlimited: { requests_per_minute: null } },
  body_limits: { json: 65536, kv: 1048576, records: 1048576, vectors: 1048576 },
  long_poll_max_ms: 200,
};

export interface Server {
  url: string;
  port: number;
  adminKey: string;
  dataDir: string;
  proc: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  alive(): boolean;
  stop(): Promise<void>;
}

/** Starts `node bin/quartz.js serve` (the built dist/) on `port` (0: any) with FUZZ_CONFIG. */
export async function startServer(port = 0): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), 'quartz-fuzz-'));
  const config = join(dataDir, '..', `${dataDir.split('/').pop()}.json`);
  writeFileSync(config, JSON.stringify(FUZZ_CONFIG));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('QUARTZ_')) env[k] = v;
  const proc = spawn(process.execPath, [join(ROOT, 'bin/quartz.js'), 'serve', '--port', String(port), '--host', '127.0.0.1', '--data', dataDir, '--config', config], { env, cwd: ROOT });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  proc.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`quartz serve did not start in 45 s\n${err}\n${out}`)), 45_000);
    const check = (): void => {
      const m = /"msg":"QuartzDB listening on (http:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`quartz serve exited (${code}) before it was ready\n${err}\n${out}`));
    });
  });
  const adminKey = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
  return {
    url,
    port: Number(new URL(url).port),
    adminKey,
    dataDir,
    proc,
    stdout: () => out,
    stderr: () => err,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

export interface Defect {
  caseId: string;
  kind: string;
  detail: string;
  /** The request, enough to replay it by hand. */
  request: string;
}

/** Text that only a leaked stack trace or internal path would put in an answer. */
const STACK = /\bat [^\s(]+ \([^)]*:\d+:\d+\)|node:internal|\/node_modules\/|file:\/\/\/|\.[jt]s:\d+:\d+/;
/** An engine error's own words in an error message: a bug reached the client rather than a code. */
const RAW_ERROR = /\b(TypeError|RangeError|SyntaxError|ReferenceError)\b|Cannot read propert|is not a function|undefined is not|Maximum call stack/;
const ERROR_STATUSES = new Set([400, 401, 404, 405, 408, 409, 412, 413, 414, 417, 429, 431, 501, 503]);

export function describeCase(c: Case): string {
  const show = (b: Buffer): string => (b.length > 300 ? `${JSON.stringify(b.subarray(0, 300).toString('latin1'))}…(${b.length} bytes)` : JSON.stringify(b.toString('latin1')));
  if (c.delivery === 'raw') return `raw ${show(c.raw!)}`;
  if (c.delivery === 'pipeline') return c.pipeline!.map(describeCase).join('\n  then ');
  const headers = c.headers.map(([n, v]) => `${n}: ${v.length > 80 ? `${v.slice(0, 80)}…(${v.length})` : v}`).join(' | ');
  const target = c.target.length > 200 ? `${c.target.slice(0, 200)}…(${c.target.length})` : c.target;
  return `${c.method} ${JSON.stringify(target)} [${headers}] body ${show(c.body)} delivery ${c.delivery} — ${c.labels.join('; ')}`;
}

/** A KV value comes back with the type it was stored with, which the fuzz may have lied about. */
const isKvValue = (target: string): boolean => /^\/v1\/kv\/[^?]/.test(target);

function checkResponse(r: RawResponse, method: string, target: string, defects: string[]): void {
  const body = r.body.toString('utf8');
  if (r.status >= 500 && !(r.status === 501 && !isStandardMethod(method))) defects.push(`status ${r.status}: ${body.slice(0, 300)}`);
  if (STACK.test(body)) defects.push(`stack-like text in the answer: ${body.slice(0, 300)}`);
  if (/root:.*:0:0:/.test(body) || /"name":\s*"quartzdb"/.test(body)) defects.push('a file outside the served assets came back');
  if (r.status >= 400) {
    if (!ERROR_STATUSES.has(r.status)) defects.push(`undocumented error status ${r.status}`);
    if (method === 'HEAD') return;
    const type = r.headers.get('content-type')?.[0];
    if (type !== 'application/json') defects.push(`error answer with Content-Type ${type}`);
    try {
      const json = JSON.parse(body) as Record<string, unknown>;
      if (RAW_ERROR.test(body)) defects.push(`a JavaScript error's text in the answer: ${body.slice(0, 300)}`);
      if (typeof json.error !== 'string' || typeof json.message !== 'string' || json.message === '') defects.push(`error body is not {error, message}: ${body.slice(0, 300)}`);
      else if (Object.keys(json).length !== 2) defects.push(`error body has more than {error, message}: ${body.slice(0, 300)}`);
    } catch {
      defects.push(`error body is not JSON: ${JSON.stringify(body.slice(0, 300))}`);
    }
  } else if (r.status >= 200 && r.headers.get('content-type')?.[0] === 'application/json' && method !== 'HEAD' && !isKvValue(target)) {
    try {
      JSON.parse(body);
    } catch {
      defects.push(`2xx JSON answer does not parse: ${JSON.stringify(body.slice(0, 200))}`);
    }
  }
}

/** The defects of one exchange, given what the case allowed. */
export function judge(c: Case, x: Exchange, elapsedMs: number, boundMs: number): string[] {
  const defects: string[] = [];
  if (x.timedOut) defects.push(`no end within ${boundMs} ms (answers read: ${x.responses.length})`);
  if (c.delivery === 'pipeline') {
    for (const [i, r] of x.responses.entries()) checkResponse(r, c.pipeline![i]!.method, c.pipeline![i]!.target, defects);
    return defects;
  }
  const method = c.delivery === 'raw' ? (/^([A-Za-z-]+) /.exec(c.raw!.toString('latin1'))?.[1] ?? '') : c.method;
  const target = c.delivery === 'raw' ? (/^\S+ (\S+)/.exec(c.raw!.toString('latin1'))?.[1] ?? '') : c.target;
  for (const r of x.responses) checkResponse(r, method, target, defects);
  const answer = x.responses[0];
  if (answer === undefined && !x.timedOut) {
    // Only a client that stopped sending may go unanswered: a read dropped at its half-close
    // (docs/api.md, Half-closed connections), or bytes that are no request at all.
    const mayGoUnanswered = c.delivery === 'raw' || ((c.delivery === 'half-close' || c.delivery === 'chunked-cut' || c.delivery === 'length-cut') && !isWrite(c.method));
    if (!mayGoUnanswered) defects.push(`connection closed without an answer${x.error ? ` (${x.error})` : ''}`);
  }
  if ((c.delivery === 'chunked-cut' || c.delivery === 'length-cut') && answer !== undefined && answer.status < 400 && isWrite(c.method)) {
    defects.push(`a body cut short was taken: ${answer.status}`);
  }
  void elapsedMs;
  return defects;
}

export interface FuzzOptions {
  server: Server;
  seed: number;
  cases: number;
  /** Only these case indexes (a replay). */
  only?: number[];
  boundMs?: number;
  /** Called after each case, for progress. */
  progress?: (done: number, defects: number) => void;
  /** Called with each defect as it is found (a long run shows them before it ends). */
  onDefect?: (d: Defect) => void;
  /** Stop after this many defects. */
  maxDefects?: number;
}

export interface FuzzReport {
  cases: number;
  requests: number;
  statuses: Record<string, number>;
  defects: Defect[];
  ms: number;
}

/** Runs `cases` cases of `seed` against `server`; answers every defect found. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const { server, seed } = options;
  const boundMs = options.boundMs ?? 15_000;
  const started = Date.now();
  const doc = (await (await fetch(`${server.url}/v1/openapi.json`)).json()) as Parameters<typeof operationsOf>[0];
  const ops: Operation[] = operationsOf(doc);
  const world = new World(server.url, server.adminKey);
  const names = await world.setup();
  const defects: Defect[] = [];
  const statuses: Record<string, number> = {};
  let requests = 0;
  let known = await world.fingerprint();
  const indexes = options.only ?? Array.from({ length: options.cases }, (_, i) => i);
  let done = 0;
  let logRead = server.stdout().length;
  let errRead = server.stderr().length;
  for (const index of indexes) {
    const { c, rng } = caseAt(seed, index, ops, names);
    const delivery = bytesOf(c, rng);
    const writes = c.delivery === 'pipeline' ? c.pipeline!.some((p) => isWrite(p.method)) : c.delivery === 'raw' ? /^(PUT|POST|PATCH|DELETE) /.test(c.raw!.toString('latin1')) : isWrite(c.method);
    const expected = c.delivery === 'pipeline' ? c.pipeline!.length : 1;
    const heads = c.delivery === 'pipeline' ? c.pipeline!.map((p) => p.method === 'HEAD') : [c.method === 'HEAD' || (c.delivery === 'raw' && c.raw!.toString('latin1').startsWith('HEAD '))];
    const t0 = Date.now();
    const x = await exchange(server.port, delivery, { expected, heads, boundMs: boundMs + (delivery.gapMs * delivery.pieces.length) });
    const elapsed = Date.now() - t0;
    requests += expected;
    for (const r of x.responses) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    const found = judge(c, x, elapsed, boundMs);
    if (!server.alive()) found.push(`the server process exited: ${server.stderr().slice(-2000)}`);
    const succeeded = x.responses.some((r) => r.status < 400);
    if (writes && server.alive()) {
      const now = await world.fingerprint();
      if (!succeeded && x.responses.length > 0 && now !== known) found.push(`a refused write changed stored data:\n    before ${diffHint(known, now)}`);
      if (succeeded || now !== known) {
        if (index % 50 === 0) await world.cleanup();
        else await world.restore();
        known = await world.fingerprint();
      }
    }
    // pino writes asynchronously: a line can land one case late, which the report says
    found.push(...logDefects(server.stdout().slice(logRead), server.stderr().slice(errRead), 'this case or the one before').map((d) => `${d.kind}: ${d.detail}`));
    logRead = server.stdout().lastIndexOf('\n') + 1;
    errRead = server.stderr().length;
    for (const f of found) {
      const d = { caseId: c.id, kind: f.split(':')[0]!, detail: `${f}\n    answers: ${x.responses.map((r) => `${r.status} ${r.body.subarray(0, 200).toString('utf8')}`).join(' | ')}`, request: describeCase(c) };
      defects.push(d);
      options.onDefect?.(d);
    }
    done++;
    options.progress?.(done, defects.length);
    if (!server.alive() || defects.length >= (options.maxDefects ?? Infinity)) break;
  }
  defects.push(...logDefects(server.stdout().slice(logRead), server.stderr().slice(errRead), 'after the last case'));
  return { cases: done, requests, statuses, defects, ms: Date.now() - started };
}

/** Lines of the server's log at `error` or above, lines that are not JSON, anything on stderr. */
function logDefects(stdout: string, stderr: string, when: string): Defect[] {
  const out: Defect[] = [];
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    if (line === '') continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      out.push({ caseId: '-', kind: 'log line is not JSON', detail: `(${when}) ${line.slice(0, 500)}`, request: '' });
      continue;
    }
    if (typeof entry.level === 'number' && entry.level >= 50) out.push({ caseId: '-', kind: 'error in the server log', detail: `(${when}) ${line.slice(0, 1500)}`, request: '' });
  }
  if (stderr.trim() !== '') out.push({ caseId: '-', kind: 'server stderr', detail: `(${when}) ${stderr.slice(0, 2000)}`, request: '' });
  return out;
}

/** Where two fingerprints first differ, with some context. */
function diffHint(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `${a.slice(Math.max(0, i - 120), i + 200)}\n    after  ${b.slice(Math.max(0, i - 120), i + 200)}`;
}
