/**
 * `node --import tsx bench/http/clients.ts [flags]`: issue 5's HTTP ratios measured by three
 * clients in the same session, against the very servers and data `npm run bench -- http` uses
 * (a `quartz serve` process with 100 keys of 1 KB and the 1k × 128-d collection, and peers.mjs's
 * bare hono route): autocannon (JavaScript, the http bench's client), wrk (C, requests written by
 * a Lua script) and `ab -k` (C, one fixed request per run). All three keep one request in flight
 * per connection (no pipelining) on keep-alive connections.
 *
 * Each round runs every target (bare GET, KV GET, KV PUT, vector query) with every client, the
 * order of targets and of clients turning from round to round; a ratio compares a target with the
 * bare route run by the same client in the same round, and the printed ratio is the median of the
 * rounds'. Each run prints req/s, p50/p99, the server's CPU per answer (/proc) and the client's.
 * wrk and ab run as child processes, timed with /usr/bin/time (10 ms resolution).
 *
 * ab sends one request per run: KV GET one key, KV PUT one key, the vector query one body (the
 * others send the bench's 100 keys and 64 query bodies in turn).
 *
 * Flags: --duration S (4) per measured run, each after a 1 s warm-up with the same client;
 * --rounds N (3); --connections N (10); --threads N (2, wrk's); --clients a,b (autocannon,wrk,ab);
 * --port N (the server on N, the peer route on N+1; default: free ports); --no-build.
 */
import autocannon, { type Request as CannonRequest, type Result } from 'autocannon';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAb as runAbOf, runWrk as runWrkOf, wrkScript, type ClientRun } from './external-clients.js';
import { fourDecimalVector } from './query-vector.js';
import { seededRandom } from '../../src/core/random-testing.js';
import { freePort } from '../../tests/fixtures/free-port.js';
import { parseFlags, refuseFlag } from '../lib/args.js';
import { cpuOfPid as cpuOf } from '../lib/cpu.js';
import { hasCommand, stopProcess, waitForHttp } from '../lib/processes.js';
import { median } from '../lib/quantiles.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HERE = fileURLToPath(new URL('.', import.meta.url));

const flags = parseFlags({ values: ['duration', 'rounds', 'connections', 'threads', 'clients', 'port'], switches: ['no-build'] });
const DURATION = flags.number('duration', 4, 'positive');
const ROUNDS = flags.number('rounds', 3, 'positive');
const CONNECTIONS = flags.number('connections', 10, 'positive');
const THREADS = flags.number('threads', 2, 'positive');
const CLIENTS = ['autocannon', 'wrk', 'ab'] as const;
type ClientName = (typeof CLIENTS)[number];
const chosen = (flags.string('clients')?.split(',') ?? [...CLIENTS]) as ClientName[];
for (const c of chosen) if (!(CLIENTS as readonly string[]).includes(c)) refuseFlag(`--clients: unknown client '${c}'; use ${CLIENTS.join(', ')}`);
if (!Number.isInteger(DURATION) || !Number.isInteger(ROUNDS)) refuseFlag('--duration and --rounds must be whole numbers');
if (THREADS > CONNECTIONS) refuseFlag(`--threads ${THREADS} exceeds --connections ${CONNECTIONS} (wrk gives each thread its own connections)`);
const clients = chosen.filter((c) => {
  if (c === 'autocannon' || hasCommand(c)) return true;
  console.log(`${c} is not installed: its runs are skipped`);
  return false;
});
if (clients.length > 1 && !hasCommand('/usr/bin/time')) refuseFlag('/usr/bin/time is needed to time wrk and ab');

interface Req {
  method: 'GET' | 'PUT' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

interface Target {
  name: string;
  url: string;
  pid: number;
  requests: Req[];
}

interface Run {
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  /** Server CPU per answer, µs. */
  server: number;
  /** Client CPU per answer, µs. */
  client: number;
  /** Bytes read per answer: the same target must read alike by every client. */
  bytes: number;
}

// ---------------------------------------------------------------------------------------------
// the clients

async function runAutocannon(t: Target, seconds: number): Promise<ClientRun> {
  const c0 = process.cpuUsage();
  const r: Result = await autocannon({ url: t.url, connections: CONNECTIONS, duration: seconds, timeout: 30, requests: t.requests as CannonRequest[] });
  const c = process.cpuUsage(c0);
  let ok = 0;
  for (const [code, s] of Object.entries(r.statusCodeStats)) if (code.startsWith('2')) ok += s.count;
  return { answered: r.requests.total, ok, elapsed: r.duration, p50: r.latency.p50, p99: r.latency.p99, clientUs: c.user + c.system, bytesRead: r.throughput.total };
}

function runWrk(t: Target, seconds: number, script: string): ClientRun {
  return runWrkOf(t.url, { threads: THREADS, connections: CONNECTIONS, seconds, script });
}

function runAb(t: Target, seconds: number, dir: string): ClientRun {
  return runAbOf(t.url, t.requests[0]!, { connections: CONNECTIONS, seconds, dir, keepAlive: true });
}

async function measure(client: ClientName, t: Target, dir: string, scripts: Map<string, string>): Promise<Run> {
  const go = async (seconds: number) => {
    if (client === 'autocannon') return runAutocannon(t, seconds);
    if (client === 'wrk') return runWrk(t, seconds, scripts.get(t.name)!);
    return runAb(t, seconds, dir);
  };
  await go(1);
  const s0 = cpuOf(t.pid);
  const r = await go(DURATION);
  const s1 = cpuOf(t.pid);
  const answered = Math.max(1, r.answered);
  return { reqPerSec: r.ok / r.elapsed, p50: r.p50, p99: r.p99, errors: r.answered - r.ok, server: (s1.user + s1.sys - s0.user - s0.sys) / answered, client: r.clientUs / answered, bytes: r.bytesRead / answered };
}

// ---------------------------------------------------------------------------------------------
// main

async function api(base: string, headers: Record<string, string>, method: string, path: string, body?: string, type = 'application/json'): Promise<unknown> {
  const res = await fetch(base + path, { method, headers: { ...headers, 'content-type': type }, body });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
  return res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
}

async function main(): Promise<void> {
  if (!flags.has('no-build')) spawnSync('npm', ['run', 'build:ts'], { cwd: ROOT, stdio: 'ignore' });
  const dir = await mkdtemp(join(tmpdir(), 'qz-bench-clients-'));
  // --port N: the server on N, the peer on N+1 (on a shared machine, ports set aside for this run).
  const port = flags.string('port') !== undefined ? flags.number('port', 0, 'positive') : await freePort();
  const peerPort = flags.string('port') !== undefined ? port + 1 : await freePort();
  const logFd = openSync(join(dir, 'server.log'), 'a');
  // Started as bench/http/index.ts starts them.
  const server = spawn(process.execPath, [join(ROOT, 'bin/quartz.js'), 'serve', '--host', '127.0.0.1', '--port', String(port), '--data', join(dir, 'quartz')], { cwd: dir, stdio: ['ignore', logFd, logFd], env: { ...process.env, QUARTZ_LOG_LEVEL: 'info' } });
  const peers = spawn(process.execPath, [join(HERE, 'peers.mjs'), '--port', String(peerPort), '--dir', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  const peerBase = `http://127.0.0.1:${peerPort}`;
  // Stopped or timed out from outside (a test's spawnSync timeout, ^C): the servers must not outlive the run.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      server.kill('SIGKILL');
      peers.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
    });
  }
  try {
    if (!existsSync(join(ROOT, 'dist/src/node/cli/index.js'))) throw new Error('dist/ is missing: run `npm run build:ts`');
    await waitForHttp(`${base}/v1/health`, server, 'quartz server', join(dir, 'server.log'));
    await waitForHttp(`${peerBase}/bare`, peers, 'peer server');
    // The http bench's data: 100 keys of 1 KB, a 1k × 128-d cosine collection, 64 query bodies.
    const reg = (await api(base, {}, 'POST', '/v1/auth/register', JSON.stringify({ email: 'bench@example.com' }))) as { api_key: string };
    const auth = { authorization: `Bearer ${reg.api_key}` };
    const keys = Array.from({ length: 100 }, (_, i) => `bench/get-${i}`);
    const value1k = 'v'.repeat(7).padEnd(1024, '.');
    for (const k of keys) await api(base, auth, 'PUT', `/v1/kv/${k}`, value1k, 'application/octet-stream');
    const rand = seededRandom(42);
    await api(base, auth, 'POST', '/v1/collections', JSON.stringify({ name: 'bench', dims: 128, metric: 'cosine' }));
    for (let b = 0; b < 2; b++) {
      const vectors = Array.from({ length: 500 }, (_, i) => ({ id: `v${b * 500 + i}`, values: fourDecimalVector(rand, 128), metadata: { n: b * 500 + i } }));
      await api(base, auth, 'POST', '/v1/collections/bench/upsert', JSON.stringify({ vectors }));
    }
    const queries = Array.from({ length: 64 }, () => JSON.stringify({ vector: fourDecimalVector(rand, 128), k: 10 }));
    const probe = (await api(base, auth, 'POST', '/v1/collections/bench/query', queries[0])) as { matches: unknown[] };
    if (probe.matches.length !== 10) throw new Error(`vector query returned ${probe.matches.length} matches`);

    const targets: Target[] = [
      { name: 'bare GET 1 KB', url: peerBase, pid: peers.pid!, requests: keys.map(() => ({ method: 'GET', path: '/bare', headers: {} })) },
      { name: 'KV GET 1 KB', url: base, pid: server.pid!, requests: keys.map((k) => ({ method: 'GET', path: `/v1/kv/${k}`, headers: auth })) },
      { name: 'KV PUT 1 KB', url: base, pid: server.pid!, requests: keys.map((_, i) => ({ method: 'PUT', path: `/v1/kv/bench/put-${i}`, headers: { ...auth, 'content-type': 'application/octet-stream' }, body: value1k })) },
      { name: 'vector query', url: base, pid: server.pid!, requests: queries.map((q) => ({ method: 'POST', path: '/v1/collections/bench/query', headers: { ...auth, 'content-type': 'application/json' }, body: q })) },
    ];
    const scripts = new Map(targets.map((t) => [t.name, wrkScript(t.name, t.requests, dir)]));
    console.log(`${ROUNDS} rounds; each run ${DURATION} s after 1 s with the same client; ${CONNECTIONS} connections (wrk: ${THREADS} threads); clients ${clients.join(', ')}`);
    // JIT warm-up of every route before any measured run.
    for (const t of targets) await runAutocannon(t, 3);

    const runs = new Map<string, Run[]>();
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      const clientOrder = clients.map((_, i) => clients[(i + round) % clients.length]!);
      for (const client of clientOrder) {
        for (const t of order) {
          const r = await measure(client, t, dir, scripts);
          const key = `${client}|${t.name}`;
          (runs.get(key) ?? runs.set(key, []).get(key)!).push(r);
          console.log(`  round ${round + 1} ${client.padEnd(10)} ${t.name.padEnd(13)} ${r.reqPerSec.toFixed(0).padStart(6)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, errors ${r.errors}, server ${r.server.toFixed(0)} µs, client ${r.client.toFixed(0)} µs, ${r.bytes.toFixed(0)} B read per answer`);
        }
      }
    }
    const targetOf: Record<string, number> = { 'KV GET 1 KB': 0.8, 'KV PUT 1 KB': 0.5, 'vector query': 0.5 };
    console.log('\nmedian over the rounds; ratio = target / bare GET by the same client in the same round (median, range); CPU ratio = bare / target server CPU per answer');
    for (const client of clients) {
      const bare = runs.get(`${client}|bare GET 1 KB`)!;
      for (const t of targets) {
        const rs = runs.get(`${client}|${t.name}`)!;
        const med = (pick: (r: Run) => number) => median(rs.map(pick));
        let note = '';
        if (t.name in targetOf) {
          const ratios = rs.map((r, i) => r.reqPerSec / bare[i]!.reqPerSec).sort((a, b) => a - b);
          const cpu = rs.map((r, i) => bare[i]!.server / r.server);
          const x = median(ratios);
          note = ` | ratio ${x.toFixed(2)} (${ratios[0]!.toFixed(2)}-${ratios.at(-1)!.toFixed(2)}; target ≥ ${targetOf[t.name]}: ${x >= targetOf[t.name]! ? 'met' : 'MISSED'}), CPU ratio ${median(cpu).toFixed(2)}`;
        }
        console.log(`  ${client.padEnd(10)} ${t.name.padEnd(13)} ${med((r) => r.reqPerSec).toFixed(0).padStart(6)} req/s, p50 ${med((r) => r.p50).toFixed(2)} ms, p99 ${med((r) => r.p99).toFixed(2)} ms, server ${med((r) => r.server).toFixed(0)} µs, client ${med((r) => r.client).toFixed(0)} µs, ${med((r) => r.bytes).toFixed(0)} B${note}`);
      }
    }
  } finally {
    await stopProcess(peers, 20_000);
    await stopProcess(server, 20_000);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
