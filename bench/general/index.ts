/**
 * `npm run bench -- general [flags]`: the HTTP figures on data and clients the `http` bench was not
 * tuned for. A `quartz serve` process on loopback, and `bench/general/peer.mjs`, a bare hono route on the
 * same stack that answers any request with N constant bytes after reading its body: each shape
 * runs alternated with its bare twin (the same method and request body, an answer of the same
 * size as the shape's), in short rounds, and prints the median over the rounds of req/s, of the
 * server's CPU per answer (/proc: user + kernel) and of both ratios to the twin.
 *
 * Groups (`--only`):
 *   kv-get   GET 1 KB over 10 keys and over `--keys` distinct keys (default 100,000: the record
 *            cache and hot entries hold a small part of them), GET of 100 B, 10 KB, 100 KB,
 *            1 MiB and 2 MiB values (over 1 MiB: the blob store), GET 1 KB of non-ASCII keys
 *   kv-put   PUT of 100 B, 1 KB, 100 KB, 1 KB with `?ttl=3600`, 1 KB under non-ASCII keys (100 keys
 *            each, overwritten in turn), and 1 KB under a new key each time
 *   produce  batches of 1,000 × 1 KB, 1,000 × 10 KB (10 MB bodies), 1,000 × 1 KB as base64, 1 × 100 B, 1 × 1 KB
 *   consume  pages of 1 and of 1,000 records of 1 KB
 *   vector   k=10 queries on `--dims768` × 768-d (10,000) and `--dims128` × 128-d (100,000), then
 *            the latter with an equality filter (1% of the vectors) and a range filter (1%)
 *   conns    KV GET 1 KB over 100 keys with 1, 10, 100 and 1,000 connections, and the server's RSS
 *   clients  wrk and `ab -k` on KV GET 1 KB and 100 KB and KV PUT 1 KB; ab without `-k` (HTTP/1.0,
 *            a new connection per request) on KV GET 1 KB
 * Each shape uses `--connections` (10) but produce and consume (4, as the `http` bench).
 *
 * Flags: --duration S (2) per measured run, after 0.5 s of warm-up; --rounds N (3); --connections N
 * (10); --only a,b; --keys N (100,000); --dims768 N (10,000) and --dims128 N (100,000), 0 skips
 * that collection; --port N (the
 * server on N, the peer on N+1; default: free ports); --no-build.
 */
import autocannon, { type Request as CannonRequest } from 'autocannon';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAb, runWrk, wrkScript, type ClientRun, type ExternalRequest } from '../http/external-clients.js';
import { fourDecimalVector } from '../http/query-vector.js';
import { seededRandom } from '../../src/core/random-testing.js';
import { freePort } from '../../tests/fixtures/free-port.js';
import { parseFlags, refuseFlag } from '../lib/args.js';
import { cpuOfPid } from '../lib/cpu.js';
import { columns } from '../lib/format.js';
import { keepInFlight } from '../lib/load.js';
import { hasCommand, stopProcess, waitForHttp } from '../lib/processes.js';
import { median } from '../lib/quantiles.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HERE = fileURLToPath(new URL('.', import.meta.url));

const GROUPS = ['kv-get', 'kv-put', 'produce', 'consume', 'vector', 'conns', 'clients'] as const;
type Group = (typeof GROUPS)[number];
const flags = parseFlags({ values: ['duration', 'rounds', 'connections', 'only', 'keys', 'dims768', 'dims128', 'port'], switches: ['no-build'] });
const DURATION = flags.number('duration', 2, 'positive');
const ROUNDS = flags.number('rounds', 3, 'positive');
const CONNECTIONS = flags.number('connections', 10, 'positive');
const KEYS = flags.number('keys', 100_000, 'positive');
const N768 = flags.number('dims768', 10_000, 'non-negative');
const N128 = flags.number('dims128', 100_000, 'non-negative');
const STREAM_CONNECTIONS = 4;
const only = flags.string('only')?.split(',');
for (const g of only ?? []) if (!(GROUPS as readonly string[]).includes(g)) refuseFlag(`--only: unknown group '${g}'; use ${GROUPS.join(', ')}`);
const wanted = (g: Group) => only === undefined || only.includes(g);
if (!Number.isInteger(ROUNDS) || !Number.isInteger(KEYS)) refuseFlag('--rounds and --keys must be whole numbers');

// ---------------------------------------------------------------------------------------------
// measuring

interface Measured {
  reqPerSec: number;
  /** Server CPU per answer, µs. */
  cpu: number;
  p99: number;
  errors: number;
  /** Answers of any status: a run with none (a short run of large bodies, 1,000 connections still connecting) has no figures. */
  answered: number;
}

interface Shape {
  group: Group;
  name: string;
  /** What autocannon sends (each request once in turn, or built by its `setupRequest`). */
  requests: CannonRequest[];
  /** One request of the shape, sent once to learn the answer's size and type for the bare twin. */
  probe: ExternalRequest;
  connections?: number;
}

interface Outcome {
  shape: string;
  group: Group;
  connections: number;
  shapeRuns: Measured[];
  bareRuns: Measured[];
  answerBytes: number;
  note?: string;
}

const outcomes: Outcome[] = [];

function okOf(stats: Record<string, { count: number }>): number {
  let ok = 0;
  for (const [code, s] of Object.entries(stats)) if (code.startsWith('2')) ok += s.count;
  return ok;
}

async function cannon(url: string, pid: number, requests: CannonRequest[], connections: number, seconds: number): Promise<Measured> {
  const c0 = cpuOfPid(pid);
  const r = await autocannon({ url, connections, duration: seconds, timeout: 30, requests });
  const c1 = cpuOfPid(pid);
  const ok = okOf(r.statusCodeStats);
  return { reqPerSec: ok / r.duration, cpu: (c1.user + c1.sys - c0.user - c0.sys) / Math.max(1, r.requests.total), p99: r.latency.p99, errors: r.requests.total - ok, answered: r.requests.total };
}

function external(run: () => ClientRun, pid: number): Measured {
  const c0 = cpuOfPid(pid);
  const r = run();
  const c1 = cpuOfPid(pid);
  return { reqPerSec: r.ok / r.elapsed, cpu: (c1.user + c1.sys - c0.user - c0.sys) / Math.max(1, r.answered), p99: r.p99, errors: r.answered - r.ok, answered: r.answered };
}

/** The shape's probe answered once: its body's size and content type, for the bare twin. */
async function probeAnswer(base: string, p: ExternalRequest): Promise<{ bytes: number; type: string }> {
  const res = await fetch(base + p.path, { method: p.method, headers: p.headers, body: p.body });
  const body = new Uint8Array(await res.arrayBuffer());
  if (res.status >= 300) throw new Error(`probe ${p.method} ${p.path} → ${res.status} ${new TextDecoder().decode(body.slice(0, 300))}`);
  return { bytes: body.length, type: (res.headers.get('content-type') ?? 'application/octet-stream').split(';')[0]! };
}

/** The bare twin of a request: the same method and body, answered with `bytes` bytes of `type`. */
function twin(p: ExternalRequest, answer: { bytes: number; type: string }): ExternalRequest {
  const headers: Record<string, string> = p.headers['content-type'] === undefined ? {} : { 'content-type': p.headers['content-type'] };
  return { method: p.method, path: `/bytes?n=${answer.bytes}&type=${encodeURIComponent(answer.type)}`, headers, ...(p.body === undefined ? {} : { body: p.body }) };
}

function line(o: Outcome): string[] {
  const med = (ms: Measured[], pick: (m: Measured) => number) => median(ms.map(pick));
  const unanswered = [...o.shapeRuns, ...o.bareRuns].filter((m) => m.answered === 0).length;
  if (unanswered > 0) {
    const note = `${unanswered} run(s) got no answer: a longer --duration`;
    return [o.shape, String(o.connections), fmtBytes(o.answerBytes), '-', '-', '-', '-', '-', '-', '-', String(o.shapeRuns.reduce((n, m) => n + m.errors, 0)), o.note === undefined ? note : `${o.note}; ${note}`];
  }
  const ratios = o.shapeRuns.map((m, i) => m.reqPerSec / o.bareRuns[i]!.reqPerSec);
  const cpuRatios = o.shapeRuns.map((m, i) => o.bareRuns[i]!.cpu / m.cpu);
  const sorted = [...ratios].sort((a, b) => a - b);
  const errors = o.shapeRuns.reduce((n, m) => n + m.errors, 0);
  return [
    o.shape,
    String(o.connections),
    fmtBytes(o.answerBytes),
    fmt(med(o.shapeRuns, (m) => m.reqPerSec)),
    med(o.shapeRuns, (m) => m.cpu).toFixed(0),
    med(o.shapeRuns, (m) => m.p99).toFixed(1),
    fmt(med(o.bareRuns, (m) => m.reqPerSec)),
    med(o.bareRuns, (m) => m.cpu).toFixed(0),
    `${median(ratios).toFixed(2)}× (${sorted[0]!.toFixed(2)}-${sorted.at(-1)!.toFixed(2)})`,
    `${median(cpuRatios).toFixed(2)}×`,
    String(errors),
    o.note ?? '',
  ];
}

const HEADER = ['shape', 'conns', 'answer', 'req/s', 'CPU µs', 'p99 ms', 'bare req/s', 'bare CPU µs', 'ratio (range)', 'CPU ratio', 'errors', 'note'];

function fmt(n: number): string {
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(n >= 100 ? 0 : 1);
}

function fmtBytes(n: number): string {
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Runs `side` and `bare` alternated for ROUNDS rounds (the first turns each round), after a warm-up of each. */
async function alternate(name: string, side: () => Promise<Measured>, bare: () => Promise<Measured>, warm: () => Promise<void>): Promise<{ shapeRuns: Measured[]; bareRuns: Measured[] }> {
  await warm();
  const shapeRuns: Measured[] = [];
  const bareRuns: Measured[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) {
      shapeRuns.push(await side());
      bareRuns.push(await bare());
    } else {
      bareRuns.push(await bare());
      shapeRuns.push(await side());
    }
    const s = shapeRuns.at(-1)!;
    const b = bareRuns.at(-1)!;
    console.log(`  ${name} round ${round + 1} (load ${loadavg()[0]!.toFixed(1)}): ${fmt(s.reqPerSec)} req/s, ${s.cpu.toFixed(0)} µs | bare ${fmt(b.reqPerSec)} req/s, ${b.cpu.toFixed(0)} µs | ratio ${(s.reqPerSec / b.reqPerSec).toFixed(2)}, CPU ratio ${(b.cpu / s.cpu).toFixed(2)}${s.errors > 0 ? `, ERRORS ${s.errors}` : ''}`);
  }
  return { shapeRuns, bareRuns };
}

// ---------------------------------------------------------------------------------------------
// data

class Api {
  constructor(
    readonly base: string,
    readonly headers: Record<string, string>,
  ) {}

  async call(method: string, path: string, body?: string, type = 'application/json'): Promise<unknown> {
    const res = await fetch(this.base + path, { method, headers: { ...this.headers, 'content-type': type }, body });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
    return res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
  }
}

function valueOf(size: number, seed: string): string {
  return `${seed}|`.padEnd(size, '.').slice(0, size);
}

async function timedSetup<T>(what: string, work: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const out = await work();
  console.log(`  setup: ${what} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return out;
}

/** Puts `count` keys named by `keyOf`, 32 in flight. */
async function putKeys(api: Api, count: number, keyOf: (i: number) => string, value: string): Promise<void> {
  let next = 0;
  await keepInFlight(32, count, 1, () => api.call('PUT', `/v1/kv/${keyOf(next++)}`, value, 'application/octet-stream'));
}

/** Upserts `count` vectors of `dims` in batches, 2 in flight; metadata `category` (100 values) and `rank` (0-99). */
async function upsertVectors(api: Api, collection: string, count: number, dims: number, rand: () => number): Promise<void> {
  await api.call('POST', '/v1/collections', JSON.stringify({ name: collection, dims, metric: 'cosine' }));
  const batch = Math.max(1, Math.floor(250_000 / dims));
  let next = 0;
  await keepInFlight(2, count, batch, () => {
    const from = next;
    next = Math.min(count, next + batch);
    const vectors = [];
    for (let i = from; i < next; i++) vectors.push({ id: `v${i}`, values: fourDecimalVector(rand, dims), metadata: { category: `c${i % 100}`, rank: i % 100 } });
    return api.call('POST', `/v1/collections/${collection}/upsert`, JSON.stringify({ vectors }));
  });
}

// ---------------------------------------------------------------------------------------------
// main

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]) / 1024;
}

async function main(): Promise<void> {
  if (!flags.has('no-build')) spawnSync('npm', ['run', 'build:ts'], { cwd: ROOT, stdio: 'ignore' });
  if (!existsSync(join(ROOT, 'dist/src/node/cli/index.js'))) throw new Error('dist/ is missing: run `npm run build:ts` (or drop --no-build)');
  const dir = await mkdtemp(join(tmpdir(), 'qz-bench-general-'));
  const port = flags.string('port') !== undefined ? flags.number('port', 0, 'positive') : await freePort();
  const peerPort = flags.string('port') !== undefined ? port + 1 : await freePort();
  const logFile = join(dir, 'server.log');
  const server: ChildProcess = spawn(process.execPath, [join(ROOT, 'bin/quartz.js'), 'serve', '--host', '127.0.0.1', '--port', String(port), '--data', join(dir, 'quartz')], { cwd: dir, stdio: ['ignore', openSync(logFile, 'a'), openSync(logFile, 'a')], env: { ...process.env, QUARTZ_LOG_LEVEL: 'info' } });
  const peer: ChildProcess = spawn(process.execPath, [join(HERE, 'peer.mjs'), '--port', String(peerPort)], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      server.kill('SIGKILL');
      peer.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
    });
  }
  const base = `http://127.0.0.1:${port}`;
  const peerBase = `http://127.0.0.1:${peerPort}`;
  const pid = server.pid!;
  const peerPid = peer.pid!;
  let failed = false;
  console.log(`general: ${ROUNDS} alternated rounds of ${DURATION} s per shape and its bare twin, ${CONNECTIONS} connections (produce/consume ${STREAM_CONNECTIONS}); server pid ${pid}`);
  try {
    await waitForHttp(`${base}/v1/health`, server, 'quartz server', logFile);
    await waitForHttp(`${peerBase}/bytes?n=1`, peer, 'peer server');
    const reg = (await new Api(base, {}).call('POST', '/v1/auth/register', JSON.stringify({ email: 'general@example.com' }))) as { api_key: string };
    const auth = { authorization: `Bearer ${reg.api_key}` };
    const api = new Api(base, auth);
    const octet = { ...auth, 'content-type': 'application/octet-stream' };
    const json = { ...auth, 'content-type': 'application/json' };
    const shapes: Shape[] = [];
    const get = (path: string): ExternalRequest => ({ method: 'GET', path, headers: auth });
    const cycle = (paths: string[]): CannonRequest[] => paths.map((p) => get(p));
    const rand = seededRandom(7);

    // Non-ASCII keys: CJK, Cyrillic, an emoji and an accented letter, percent-encoded as clients send them.
    const unicodeKey = (i: number) => encodeURIComponent(`日本/ключ-${i}-é-🔑`);
    const value1k = valueOf(1024, 'general');
    if (wanted('kv-get') || wanted('conns') || wanted('clients')) {
      await timedSetup('100 keys of 1 KB', () => putKeys(api, 100, (i) => `hot/k${i}`, value1k));
    }
    if (wanted('kv-get')) {
      await timedSetup(`${KEYS} keys of 1 KB`, () => putKeys(api, KEYS, (i) => `many/k${i}`, value1k));
      await timedSetup('10 non-ASCII keys of 1 KB', () => putKeys(api, 10, unicodeKey, value1k));
      const sizes = [100, 10 * 1024, 100 * 1024, 2 ** 20, 2 * 2 ** 20];
      for (const size of sizes) await timedSetup(`10 keys of ${fmtBytes(size)}`, () => putKeys(api, 10, (i) => `size${size}/k${i}`, valueOf(size, `s${size}`)));
      shapes.push({ group: 'kv-get', name: 'KV GET 1 KB, 10 keys', requests: cycle(Array.from({ length: 10 }, (_, i) => `/v1/kv/hot/k${i}`)), probe: get('/v1/kv/hot/k0') });
      // A stride coprime with KEYS walks every key before any repeats, in an order no cache anticipates.
      let turn = 0;
      const stride = 7919 % KEYS === 0 ? 1 : 7919;
      shapes.push({
        group: 'kv-get',
        name: `KV GET 1 KB, ${KEYS} keys`,
        requests: [{ method: 'GET', headers: auth, setupRequest: (r) => ({ ...r, path: `/v1/kv/many/k${(turn++ * stride) % KEYS}` }) }],
        probe: get('/v1/kv/many/k0'),
      });
      for (const size of sizes) shapes.push({ group: 'kv-get', name: `KV GET ${fmtBytes(size)}, 10 keys`, requests: cycle(Array.from({ length: 10 }, (_, i) => `/v1/kv/size${size}/k${i}`)), probe: get(`/v1/kv/size${size}/k0`) });
      shapes.push({ group: 'kv-get', name: 'KV GET 1 KB, 10 non-ASCII keys', requests: cycle(Array.from({ length: 10 }, (_, i) => `/v1/kv/${unicodeKey(i)}`)), probe: get(`/v1/kv/${unicodeKey(0)}`) });
    }
    if (wanted('kv-put')) {
      const put = (name: string, size: number, keyOf: (i: number) => string, query = '') => {
        const body = valueOf(size, name);
        const requests = Array.from({ length: 100 }, (_, i) => ({ method: 'PUT', path: `/v1/kv/${keyOf(i)}${query}`, headers: octet, body }));
        shapes.push({ group: 'kv-put', name, requests, probe: requests[0]! });
      };
      put('KV PUT 100 B', 100, (i) => `put100/k${i}`);
      put('KV PUT 1 KB', 1024, (i) => `put1k/k${i}`);
      put('KV PUT 100 KB', 100 * 1024, (i) => `put100k/k${i}`);
      put('KV PUT 1 KB, ?ttl=3600', 1024, (i) => `putttl/k${i}`, '?ttl=3600');
      put('KV PUT 1 KB, non-ASCII keys', 1024, (i) => encodeURIComponent(`put/日本/ключ-${i}-🔑`));
      // Every request a key never written before: the store has no entry and no cached state for it.
      let fresh = 0;
      const body = valueOf(1024, 'fresh');
      shapes.push({
        group: 'kv-put',
        name: 'KV PUT 1 KB, a new key each',
        requests: [{ method: 'PUT', headers: octet, body, setupRequest: (r) => ({ ...r, path: `/v1/kv/fresh/k${fresh++}` }) }],
        probe: { method: 'PUT', path: '/v1/kv/fresh/probe', headers: octet, body },
      });
    }
    if (wanted('produce') || wanted('consume')) {
      await api.call('POST', '/v1/topics', JSON.stringify({ name: 'produce', partitions: 1 }));
      await api.call('POST', '/v1/topics', JSON.stringify({ name: 'consume', partitions: 1 }));
    }
    if (wanted('produce')) {
      const produce = (name: string, count: number, size: number, base64 = false) => {
        const records = Array.from({ length: count }, (_, i) => {
          const value = valueOf(size, `${name}#${i}`);
          return base64 ? { value: Buffer.from(value).toString('base64'), encoding: 'base64' } : { value };
        });
        const request = { method: 'POST', path: '/v1/topics/produce/records', headers: json, body: JSON.stringify({ records }) };
        shapes.push({ group: 'produce', name, requests: [request], probe: request, connections: STREAM_CONNECTIONS });
      };
      produce('produce 1,000 × 1 KB', 1000, 1024);
      produce('produce 1,000 × 10 KB', 1000, 10 * 1024);
      produce('produce 1,000 × 1 KB, base64', 1000, 1024, true);
      produce('produce 1 × 100 B', 1, 100);
      produce('produce 1 × 1 KB', 1, 1024);
    }
    if (wanted('consume')) {
      const body = JSON.stringify({ records: Array.from({ length: 1000 }, (_, i) => ({ value: valueOf(1024, `c${i}`) })) });
      await timedSetup('100,000 records of 1 KB', async () => {
        for (let b = 0; b < 100; b++) await api.call('POST', '/v1/topics/consume/records', body);
      });
      const offsets = Array.from({ length: 64 }, () => Math.floor(rand() * 99_000));
      for (const page of [1, 1000]) {
        const requests = offsets.map((o) => get(`/v1/topics/consume/partitions/0/records?offset=${o}&max_records=${page}`));
        shapes.push({ group: 'consume', name: `consume pages of ${page} × 1 KB`, requests, probe: requests[0]!, connections: STREAM_CONNECTIONS });
      }
    }
    if (wanted('vector')) {
      if (N768 > 0) await timedSetup(`${N768} × 768-d vectors`, () => upsertVectors(api, 'd768', N768, 768, rand));
      if (N128 > 0) await timedSetup(`${N128} × 128-d vectors`, () => upsertVectors(api, 'd128', N128, 128, rand));
      const query = (name: string, collection: string, dims: number, extra: Record<string, unknown> = {}) => {
        const requests = Array.from({ length: 32 }, () => ({ method: 'POST', path: `/v1/collections/${collection}/query`, headers: json, body: JSON.stringify({ vector: fourDecimalVector(rand, dims), k: 10, ...extra }) }));
        shapes.push({ group: 'vector', name, requests, probe: requests[0]! });
      };
      if (N768 > 0) query(`vector query k=10, ${N768} × 768-d`, 'd768', 768);
      if (N128 > 0) {
        query(`vector query k=10, ${N128} × 128-d`, 'd128', 128);
        query(`vector query k=10, ${N128} × 128-d, filter category = c7 (1%)`, 'd128', 128, { filter: { category: 'c7' } });
        query(`vector query k=10, ${N128} × 128-d, filter rank < 1 (1%)`, 'd128', 128, { filter: { rank: { $lt: 1 } } });
      }
    }

    for (const shape of shapes) {
      const answer = await probeAnswer(base, shape.probe);
      const bare = [twin(shape.probe, answer) as CannonRequest];
      const connections = shape.connections ?? CONNECTIONS;
      const runs = await alternate(
        shape.name,
        () => cannon(base, pid, shape.requests, connections, DURATION),
        () => cannon(peerBase, peerPid, bare, connections, DURATION),
        async () => {
          await cannon(base, pid, shape.requests, connections, 1);
          await cannon(peerBase, peerPid, bare, connections, 1);
        },
      );
      outcomes.push({ shape: shape.name, group: shape.group, connections, answerBytes: answer.bytes, ...runs });
    }

    const hot = (i: number) => `/v1/kv/hot/k${i % 100}`;
    if (wanted('conns')) {
      const requests = cycle(Array.from({ length: 100 }, (_, i) => hot(i)));
      const answer = await probeAnswer(base, get(hot(0)));
      const bare = [twin(get(hot(0)), answer) as CannonRequest];
      for (const connections of [1, 10, 100, 1000]) {
        const before = rssMiB(pid);
        const runs = await alternate(
          `KV GET 1 KB, ${connections} conns`,
          () => cannon(base, pid, requests, connections, DURATION),
          () => cannon(peerBase, peerPid, bare, connections, DURATION),
          async () => {
            await cannon(base, pid, requests, connections, 1);
            await cannon(peerBase, peerPid, bare, connections, 1);
          },
        );
        outcomes.push({ shape: `KV GET 1 KB, 100 keys`, group: 'conns', connections, answerBytes: answer.bytes, ...runs, note: `server RSS ${before.toFixed(0)} → ${rssMiB(pid).toFixed(0)} MiB` });
      }
    }

    if (wanted('clients')) {
      await timedSetup('10 keys of 100 KB', () => putKeys(api, 10, (i) => `c100k/k${i}`, valueOf(100 * 1024, 'c100k')));
      const targets: Array<{ name: string; requests: ExternalRequest[] }> = [
        { name: 'KV GET 1 KB, 100 keys', requests: Array.from({ length: 100 }, (_, i) => get(hot(i))) },
        { name: 'KV GET 100 KB, 10 keys', requests: Array.from({ length: 10 }, (_, i) => get(`/v1/kv/c100k/k${i}`)) },
        { name: 'KV PUT 1 KB, 100 keys', requests: Array.from({ length: 100 }, (_, i) => ({ method: 'PUT', path: `/v1/kv/cput/k${i}`, headers: octet, body: value1k })) },
      ];
      const clients: Array<{ name: string; run: (url: string, requests: ExternalRequest[], label: string) => ClientRun; targets: typeof targets }> = [];
      if (hasCommand('wrk')) {
        clients.push({ name: 'wrk', targets, run: (url, requests, label) => runWrk(url, { threads: 2, connections: CONNECTIONS, seconds: DURATION, script: wrkScript(label, requests, dir) }) });
      } else console.log('  wrk is not installed: its rows are skipped');
      if (hasCommand('ab')) {
        clients.push({ name: 'ab -k', targets, run: (url, requests) => runAb(url, requests[0]!, { connections: CONNECTIONS, seconds: DURATION, dir, keepAlive: true }) });
        clients.push({ name: 'ab, HTTP/1.0 no keep-alive', targets: targets.slice(0, 1), run: (url, requests) => runAb(url, requests[0]!, { connections: CONNECTIONS, seconds: DURATION, dir, keepAlive: false }) });
      } else console.log('  ab is not installed: its rows are skipped');
      for (const client of clients) {
        for (const t of client.targets) {
          const answer = await probeAnswer(base, t.requests[0]!);
          const bare = [twin(t.requests[0]!, answer)];
          const label = `${client.name}: ${t.name}`;
          const runs = await alternate(
            label,
            async () => external(() => client.run(base, t.requests, `${label} quartz`), pid),
            async () => external(() => client.run(peerBase, bare, `${label} bare`), peerPid),
            async () => {
              await cannon(base, pid, t.requests as CannonRequest[], CONNECTIONS, 1);
              await cannon(peerBase, peerPid, bare as CannonRequest[], CONNECTIONS, 1);
            },
          );
          outcomes.push({ shape: label, group: 'clients', connections: CONNECTIONS, answerBytes: answer.bytes, ...runs });
        }
      }
    }
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await stopProcess(peer, 5_000);
    await stopProcess(server, 20_000);
    // A failed run keeps the server's log and data for a look at what went wrong.
    if (failed) console.error(`server log and data kept in ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
  console.log(`\nmedians of ${ROUNDS} alternated rounds of ${DURATION} s; ratio = the shape's req/s / its bare twin's in the same round; CPU ratio = the twin's server CPU per answer / the shape's`);
  console.log(columns(HEADER, outcomes.map(line), { left: [0, HEADER.length - 1], rule: true }).join('\n'));
}

await main();
