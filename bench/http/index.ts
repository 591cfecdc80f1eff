/**
 * `npm run bench -- http [flags]`: the server over HTTP, as users run it — a separate
 * `quartz serve` process on loopback, autocannon as the client — beside its peers in the same run:
 *   - a bare hono route on the same stack (@hono/node-server) answering a constant 1 KB body: the
 *     ceiling for KV GET / PUT (1 KB), vector query (1k × 128-d, k=10; with 4-decimal values, then
 *     the same as f32 values written with ~17 digits, as clients send them), produce and consume;
 *     and the same route reached by a POST carrying KV PUT's 1 KB body or a vector query's body
 *     (read whole, then the constant answer): what those request bodies alone cost the stack;
 *     and the query's body read by a route that then runs only the exact scan the query's
 *     collection needs (1,000 × 128-d, the core's HnswIndex): the least a vector query costs here;
 *   - Redis Streams XADD pipelined from ioredis with `appendonly yes, appendfsync always` (as
 *     durable as our acknowledged produce), started here from Debian's redis-server;
 *   - the issue's reference durable log: a plain hono route appending JSON lines, fsync per request;
 *   - a plain hono route putting each KV PUT body into raw lmdb, each commit fsync'd before the
 *     answer (lmdb's own durable commit: a data flush and a meta flush per group of puts, which is
 *     what our adapter did before its write-ahead log, one flush per group);
 *   - a plain hono route writing each KV PUT body to an O_DSYNC log (a file written through once, then reused as a ring), group-committed: the
 *     least a durable PUT costs on this stack and disk, with nothing to index or recover;
 * then a mixed load (200 connections) reporting errors, p50/p99, server RSS before/after, and
 * checking afterwards that every acknowledged KV write and produced record reads back.
 *
 * Each row also gives the server's CPU time per answered request (user + kernel, from /proc):
 * on a shared machine req/s follows whoever else is running, CPU per request much less so.
 *
 * Flags: --duration S (10) per run, --mixed-duration S (30: the timed part of a mixed round),
 * --mixed-warmup S (2: the mixed load's connections open and run this long before the timed part;
 * its figures also print over every answer, the connections' setup included), --connections N (10) for KV/vector
 * runs, --mixed-connections N (200), --only a,b (bare, kv-get, kv-put, vector, produce, consume,
 * redis, jsonl, mixed), --get-rounds N (5: the bare route alternated with KV GET, then again with
 * the two vector query rows and the scan floor, then again with KV PUT and its two durable reference rows, in N runs each of duration/N, each ratio the median of the rounds'), --cpu-prof (profile the server, print its top functions), --no-build,
 * --mixed-rounds N (1: repeat the mixed load, then print memory after each round and what it is made of, to see whether it keeps growing once the caches are full;
 * with more than one, the server also collects all its garbage after each round, through a preload
 * of the bench's, server-memory.mjs, and its live heap, external memory and RSS are read then),
 * --malloc-stats (with --mixed-rounds: after each round's GC, gdb has the server call glibc's
 * malloc_stats(), so the memory malloc holds free is printed beside what it has in use),
 * --heap-snapshots (the server writes a V8 heap snapshot, which first collects garbage, before the
 * mixed load and after each round; the JS heap is then read right after each one; the files are
 * kept in the data directory for DevTools or a diff), --server-node-args="A B" (node/V8 flags for the
 * server process, e.g. to compare GC settings in alternated runs), --server-timing (the server
 * times its own requests, from `request` to `finish`, and counts its GC pauses (scavenges apart), long turns
 * and each fs.write from issue to callback (the write-ahead log's frames):
 * each mixed kind's server part prints beside its latency; it costs the server a listener per
 * request, a wrapper per fs.write and a 1 ms timer).
 */
import autocannon, { type Request as CannonRequest, type Result } from 'autocannon';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { OffsetRuns, ProduceBodies } from './mixed-bodies.js';
import { summarizeProfile } from './profile.js';
import { fourDecimalVector } from './query-vector.js';
import { seededRandom } from '../../src/core/random-testing.js';
import { freePort } from '../../tests/fixtures/free-port.js';
import { parseFlags, refuseFlag } from '../lib/args.js';
import { columns, ratio as times } from '../lib/format.js';
import { cpuOfPid as cpuOf, mainThreadCpuOfPid } from '../lib/cpu.js';
import { ensureCommands, stopProcess, waitForHttp, withPeer } from '../lib/processes.js';
import { median, quantileOfSorted, sortAscending } from '../lib/quantiles.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HERE = fileURLToPath(new URL('.', import.meta.url));

// ---------------------------------------------------------------------------------------------
// flags

const flags = parseFlags({
  values: ['duration', 'mixed-duration', 'mixed-warmup', 'connections', 'mixed-connections', 'only', 'mixed-rounds', 'get-rounds', 'server-node-args'],
  switches: ['cpu-prof', 'no-build', 'heap-snapshots', 'server-timing', 'malloc-stats'],
});
const num = (name: string, fallback: number) => flags.number(name, fallback, 'positive');
const DURATION = num('duration', 10);
const MIXED_DURATION = num('mixed-duration', 30);
/**
 * Seconds of each mixed round before its timed part. Its first answers carry the client's own
 * start-up: autocannon builds its 200 clients in one synchronous turn (0.5-1.2 ms each here)
 * before any connection is opened, and every connection starts the same cycle at once (200 GETs,
 * then 200 PUTs, then 200 produces). See docs/benchmarks.md, "The first second".
 */
const MIXED_WARMUP = flags.number('mixed-warmup', 2, 'non-negative');
const CONNECTIONS = num('connections', 10);
const MIXED_CONNECTIONS = num('mixed-connections', 200);
const PRODUCERS = 4;
const BATCH = 1000;
const RECORD_BYTES = 100;
const SCENARIOS = ['bare', 'kv-get', 'kv-put', 'vector', 'produce', 'consume', 'redis', 'jsonl', 'mixed'] as const;
const only = flags.string('only')?.split(',');
for (const s of only ?? []) if (!(SCENARIOS as readonly string[]).includes(s)) refuseFlag(`--only: unknown scenario '${s}'; use ${SCENARIOS.join(', ')}`);
const wanted = (s: (typeof SCENARIOS)[number]) => only === undefined || only.includes(s);
const CPU_PROF = flags.has('cpu-prof');
const MIXED_ROUNDS = num('mixed-rounds', 1);
const GET_ROUNDS = num('get-rounds', 5);
/** A round's shortest run: a shorter one answers a handful of requests, or none (a ratio of 0/0), and its 0.5 s warm-ups then make up most of the time. */
const MIN_GET_ROUND_S = 0.5;
if (!Number.isInteger(GET_ROUNDS)) refuseFlag(`--get-rounds must be a whole number of rounds, got ${GET_ROUNDS}`);
if (DURATION / GET_ROUNDS < MIN_GET_ROUND_S) {
  refuseFlag(`--get-rounds ${GET_ROUNDS} splits --duration ${DURATION} into runs of ${DURATION / GET_ROUNDS} s; each must be at least ${MIN_GET_ROUND_S} s (at most ${Math.floor(DURATION / MIN_GET_ROUND_S)} rounds, or a longer --duration)`);
}
const HEAP_SNAPSHOTS = flags.has('heap-snapshots');
/** How long the quartz server (and the peer server) may take to stop on SIGTERM before SIGKILL. */
const SERVER_GRACE_MS = 20_000;
const SERVER_NODE_ARGS = flags.string('server-node-args')?.split(' ').filter((a) => a !== '') ?? [];
/** The server times its own requests (server-timing.mjs), so a mixed round prints each kind's server part beside its latency. */
const SERVER_TIMING = flags.has('server-timing');
/**
 * With more than one mixed round, the server (server-memory.mjs preloaded) collects all its garbage
 * after each round when asked, so the rounds' memory is compared live, not with whatever garbage
 * each left waiting.
 */
const MEMORY_ROUNDS = MIXED_ROUNDS > 1;
/** The server was started with an IPC channel for the preloads above. */
const SERVER_IPC = SERVER_TIMING || MEMORY_ROUNDS;
/** After each round's full GC, glibc's own count of its arenas (gdb attaches and calls malloc_stats()). */
const MALLOC_STATS = flags.has('malloc-stats');
if (MALLOC_STATS && !MEMORY_ROUNDS) refuseFlag('--malloc-stats reads malloc after each mixed round\'s full GC: give it --mixed-rounds 2 or more');
if (MALLOC_STATS && spawnSync('gdb', ['--version']).status !== 0) refuseFlag('--malloc-stats needs gdb (apt-get install gdb)');

// ---------------------------------------------------------------------------------------------
// processes

/** A figure from the server's Prometheus metrics (default: V8 heap in use, after a GC it chose), if exported. */
async function serverMetric(base: string, metric = 'nodejs_heap_size_used_bytes'): Promise<number | undefined> {
  try {
    const text = await (await fetchOnceMore(`${base}/metrics`)).text();
    const m = new RegExp(`^\\w*${metric}(?:\\{[^}]*\\})? (\\d+(?:\\.\\d+)?(?:e\\+\\d+)?)$`, 'm').exec(text);
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Resident set size of a process in bytes (Linux /proc). */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? 0 : Number(m[1]) * 1024;
}

/**
 * Proportional set size in bytes (Linux /proc smaps_rollup), split into anonymous (JS heap,
 * ArrayBuffers, malloc) and file-backed (lmdb's map of kv.mdb, code): lmdb keeps its earlier,
 * smaller maps of kv.mdb when it grows the map, so RSS counts a page of kv.mdb once per map that
 * touched it; PSS counts it once. The file-backed part follows the data stored, and the kernel
 * reclaims it under pressure.
 */
function pssOf(pid: number): { anon: number; file: number } {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(rollup)?.[1] ?? 0) * 1024;
  return { anon: kb('Pss_Anon'), file: kb('Pss_File') };
}

/**
 * Asks the server (started with --heapsnapshot-signal=SIGUSR2) for a heap snapshot and waits for
 * the file: V8 collects garbage before writing one, so the heap read right after it is the live
 * heap, not whatever the last GC happened to leave.
 */
async function heapSnapshot(pid: number, dir: string, base: string, label: string): Promise<number | undefined> {
  const snapshots = () => readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot'));
  const before = snapshots().length;
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 120_000;
  // The file appears when writing starts; the server answers HTTP again once it is finished.
  while (snapshots().length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const heap = await serverMetric(base);
  const external = await serverMetric(base, 'nodejs_external_memory_bytes');
  // What V8 has committed for its heap (used + free pages it keeps): part of anonymous RSS.
  const committed = await serverMetric(base, 'nodejs_heap_size_total_bytes');
  const file = snapshots().sort().at(-1);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  const pss = pssOf(pid);
  const mb = (n: number | undefined) => (n === undefined ? '?' : (n / 2 ** 20).toFixed(1));
  console.log(
    `    heap snapshot (${label}): ${file === undefined ? 'none written' : join(dir, file)}\n` +
      `      after GC: JS heap used ${mb(heap)} MiB (committed ${mb(committed)}), external (ArrayBuffers, WASM memories) ${mb(external)} MiB; ` +
      `RSS ${kb('VmRSS').toFixed(0)} MiB = anonymous ${kb('RssAnon').toFixed(0)} + file-backed (lmdb map, code) ${kb('RssFile').toFixed(0)} + shared ${kb('RssShmem').toFixed(0)}; ` +
      `PSS anonymous ${mb(pss.anon)} + file-backed ${mb(pss.file)} MiB`,
  );
  return heap;
}

// ---------------------------------------------------------------------------------------------
// measuring

interface Row {
  name: string;
  reqPerSec: number;
  recordsPerSec?: number;
  p50?: number;
  p99?: number;
  errors: number;
  /** Server CPU time per answered request, in microseconds: steadier than req/s on a shared machine. */
  cpuPerReq?: number;
  note?: string;
}

const rows = new Map<string, Row>();

function failures(r: Result): number {
  let bad = r.errors + r.timeouts;
  for (const [code, s] of Object.entries(r.statusCodeStats)) if (!code.startsWith('2') && code !== '304') bad += s.count;
  return bad;
}

function okCount(r: Result): number {
  let ok = 0;
  for (const [code, s] of Object.entries(r.statusCodeStats)) if (code.startsWith('2')) ok += s.count;
  return ok;
}

interface CannonOptions {
  url: string;
  pid: number;
  connections: number;
  requests: CannonRequest[];
  recordsPerRequest?: number;
  duration?: number;
  /** Warm up until the server's JIT has settled (see `settle`). */
  settle?: boolean;
}

/** One measured run's figures: the row, and what the client paid. */
interface Measured {
  row: Row;
  /** The client's CPU per answer, µs (it shares the cores with the server). */
  clientPerReq: number;
  bytesPerReq: number;
  sysPerReq: number;
  /** The server's CPU over the run's wall time, in cores: under ~0.9 its req/s is not its ceiling (the machine's other load or the client set it). */
  serverCores: number;
}

/** autocannon's options for a run of `opts` (its duration left to the caller). */
function loadOf(opts: CannonOptions): { url: string; connections: number; requests: CannonRequest[]; timeout: number } {
  return { url: opts.url, connections: opts.connections, requests: opts.requests, timeout: 30 };
}

/** A run whose result is dropped; with the options' `settle`, then until the server's JIT has settled. */
async function warmUp(opts: CannonOptions, seconds: number): Promise<void> {
  await autocannon({ ...loadOf(opts), duration: seconds });
  if (opts.settle === true) await settle(loadOf(opts), opts.pid);
}

/** A warm-up of `warmup` seconds, then the measured run; req/s counts 2xx answers only. */
async function measure(name: string, opts: CannonOptions, duration: number, warmup: number): Promise<Measured> {
  await warmUp(opts, warmup);
  const base = loadOf(opts);
  const cpu0 = cpuOf(opts.pid);
  const client0 = process.cpuUsage();
  const r = await autocannon({ ...base, duration });
  const cpu1 = cpuOf(opts.pid);
  const client = process.cpuUsage(client0);
  const answered = Math.max(1, r.requests.total);
  // The client shares the cores with the server: what it pays per answer (its bytes, its header
  // lines) moves req/s too, so a row's wall-clock ratio is not the servers' alone.
  const clientPerReq = (client.user + client.system) / answered;
  const cpuPerReq = (cpu1.user + cpu1.sys - cpu0.user - cpu0.sys) / answered;
  const reqPerSec = okCount(r) / r.duration;
  const row: Row = { name, reqPerSec, p50: r.latency.p50, p99: r.latency.p99, errors: failures(r), cpuPerReq };
  if (opts.recordsPerRequest !== undefined) row.recordsPerSec = reqPerSec * opts.recordsPerRequest;
  const serverCores = (cpu1.user + cpu1.sys - cpu0.user - cpu0.sys) / (r.duration * 1e6);
  return { row, clientPerReq, bytesPerReq: r.throughput.total / answered, sysPerReq: (cpu1.sys - cpu0.sys) / answered, serverCores };
}

/** A warm-up, then the measured run, printed. */
async function cannon(name: string, opts: CannonOptions): Promise<Row> {
  const duration = opts.duration ?? DURATION;
  const { row, clientPerReq, bytesPerReq, sysPerReq } = await measure(name, opts, duration, Math.min(2, Math.max(1, duration / 5)));
  console.log(`  ${name}: ${fmt(row.reqPerSec)} req/s${row.recordsPerSec ? `, ${fmt(row.recordsPerSec)} records/s` : ''}, p50 ${row.p50} ms, p99 ${row.p99} ms, errors ${row.errors}, server CPU ${row.cpuPerReq!.toFixed(0)} µs/req (${sysPerReq.toFixed(0)} in the kernel), client CPU ${clientPerReq.toFixed(0)} µs and ${bytesPerReq.toFixed(0)} B read per answer`);
  return row;
}

/** Per row compared with the bare route in alternated rounds: each round's ratios to that round's bare run, of req/s and of server CPU per request (see `alternated`). */
const roundRatios = new Map<string, { reqPerSec: number[]; cpu: number[] }>();

/** A side of `alternated`: its row's key in `rows`, and its load. */
type Side = CannonOptions & { key: string; name: string };

/**
 * The bare route and the rows compared with it in `rounds` short runs each, alternated (the
 * order turns by one side each round: bare first in round 1, then each other side first in turn),
 * with the same connections, durations and warm-ups on every side: each round's ratio compares
 * neighbouring runs. NOTE: on the shared 2-core machine a run lands in one of two modes (the
 * server costs ~25 µs per bare answer in one, ~45 in the other, likely whether client and server
 * share a core), so one bare run and one GET run gave ratios from 0.54 to 2.43 on one build, and
 * the vector query's row, measured a minute after the bare one, read 0.40× and 0.65× in two sessions; the median of
 * several alternated rounds is steadier. The rows are the medians of the rounds' figures, each
 * ratio the median of the rounds' ratios (kept in `roundRatios` under the other side's key).
 */
async function alternated(bare: Side, others: Side[], rounds: number): Promise<Row[]> {
  const duration = DURATION / rounds;
  const all = [bare, ...others];
  // The JIT warmed once per side, as a single run's warm-up does; each run then has a short warm-up
  // of its own (new connections, caches the other server's run left cold).
  for (const side of all) await warmUp(side, Math.min(2, Math.max(1, DURATION / 5)));
  const measured: Measured[][] = all.map(() => []);
  const fixed = (n: number) => n.toFixed(0);
  for (let round = 0; round < rounds; round++) {
    const order = all.map((_, i) => (i + round) % all.length);
    const load = loadavg()[0]!;
    // Settled once above; each run's own short warm-up does not settle again.
    for (const i of order) measured[i]!.push(await measure(all[i]!.name, { ...all[i]!, settle: false }, duration, 0.5));
    const last = measured.map((ms) => ms.at(-1)!);
    const line = (m: Measured) => `${fmt(m.row.reqPerSec)} req/s, server ${fixed(m.row.cpuPerReq!)} µs (${fixed(m.sysPerReq)} kernel, ${m.serverCores.toFixed(2)} cores), client ${fixed(m.clientPerReq)} µs`;
    const b = last[0]!;
    const rest = others.map((o, i) => `${o.key} ${line(last[i + 1]!)}, ratio ${(last[i + 1]!.row.reqPerSec / b.row.reqPerSec).toFixed(2)}, CPU ratio ${(b.row.cpuPerReq! / last[i + 1]!.row.cpuPerReq!).toFixed(2)}`);
    console.log(`  round ${round + 1} of ${rounds} (${all[order[0]!]!.key} first, load ${load.toFixed(1)}): bare ${line(b)} | ${rest.join(' | ')}`);
  }
  others.forEach((o, i) => {
    const ms = measured[i + 1]!;
    roundRatios.set(o.key, {
      reqPerSec: ms.map((m, r) => m.row.reqPerSec / measured[0]![r]!.row.reqPerSec),
      cpu: ms.map((m, r) => measured[0]![r]!.row.cpuPerReq! / m.row.cpuPerReq!),
    });
  });
  const summary = (ms: Measured[], name: string): Row => {
    const of = (pick: (m: Measured) => number) => median(ms.map(pick));
    const row: Row = { name, reqPerSec: of((m) => m.row.reqPerSec), p50: of((m) => m.row.p50!), p99: of((m) => m.row.p99!), errors: ms.reduce((n, m) => n + m.row.errors, 0), cpuPerReq: of((m) => m.row.cpuPerReq!) };
    console.log(`  ${name}, median of ${rounds} rounds: ${fmt(row.reqPerSec)} req/s, server CPU ${fixed(row.cpuPerReq!)} µs/req (${fixed(of((m) => m.sysPerReq))} in the kernel, ${of((m) => m.serverCores).toFixed(2)} cores busy), client CPU ${fixed(of((m) => m.clientPerReq))} µs and ${fixed(of((m) => m.bytesPerReq))} B read per answer, errors ${row.errors}`);
    return row;
  };
  return all.map((side, i) => summary(measured[i]!, side.name));
}

/** Longest a settling warm-up goes on, in seconds. */
const SETTLE_MAX_S = 15;

/**
 * Runs the load on in 1 s steps until a step in which the server's threads other than its main
 * one (V8's optimizing compiler, GC helpers) used under a tenth of its CPU. NOTE: for a route's
 * first run on a loaded machine, V8 goes on compiling it for seconds after the usual warm-up
 * (a fresh server's first vector queries at load 10-12: those threads at 30-40% of its CPU for
 * 3-5 s, the CPU per query 5-7× the steady one), which the measured run would otherwise count.
 * The bare route's first run on its fresh peer process has the same tail, so every row a ratio
 * compares it with settles too. Only for loads that run no threads of their own (reads and the
 * bare routes; not produce, whose encoder threads are never idle, nor lmdb's writes).
 */
async function settle(base: ReturnType<typeof loadOf>, pid: number): Promise<void> {
  for (let s = 0; s < SETTLE_MAX_S; s++) {
    const all0 = cpuOf(pid);
    const main0 = mainThreadCpuOfPid(pid);
    await autocannon({ ...base, duration: 1 });
    const all1 = cpuOf(pid);
    const main1 = mainThreadCpuOfPid(pid);
    const all = all1.user + all1.sys - all0.user - all0.sys;
    const others = all - (main1.user + main1.sys - main0.user - main0.sys);
    if (others < all / 10) {
      if (s > 0) console.log(`  (warm-up went on ${s + 1} s more, until the server's compiler threads settled)`);
      return;
    }
  }
  console.log(`  (the server's other threads still used over a tenth of its CPU after ${SETTLE_MAX_S} s more warm-up; measuring anyway)`);
}

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(n >= 100 ? 0 : 1);
}

// ---------------------------------------------------------------------------------------------
// data

function padTo(text: string, size: number): string {
  return text.length >= size ? text.slice(0, size) : text + '.'.repeat(size - text.length);
}

/** One produce body: `count` records of RECORD_BYTES-byte values, each naming its batch and index. */
function produceBody(batch: string, count: number): string {
  const records = new Array<{ value: string }>(count);
  for (let i = 0; i < count; i++) records[i] = { value: padTo(`${batch}#${i}#`, RECORD_BYTES) };
  return JSON.stringify({ records });
}

/** The value a mixed-load PUT writes under `key`: recomputable, so reads can be checked. */
function kvValueFor(key: string): string {
  return padTo(`${key}|`.repeat(Math.ceil(1024 / (key.length + 1))), 1024);
}

/**
 * fetch, retried once when a reused connection turns out closed (undici's `UND_ERR_SOCKET`, "other
 * side closed"). NOTE: the server closes a keep-alive connection after 65 s idle and tells the
 * client so (Keep-Alive: timeout=65); undici lets go of it a second before, by a timer of its own
 * loop. The checks after each mixed round reuse connections the previous round's checks left idle
 * for about that long, and at load 20-27 the bench's loop ran that timer late: a round's check
 * failed with "fetch failed" (the server logged no error and stopped cleanly after it). Only GETs
 * come through here, which are safe to send again.
 */
async function fetchOnceMore(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw err;
    return fetch(url, init);
  }
}

class Api {
  constructor(
    readonly base: string,
    readonly headers: Record<string, string>,
  ) {}

  async call(method: string, path: string, body?: unknown, raw?: string): Promise<unknown> {
    const res = await (method === 'GET' ? fetchOnceMore : fetch)(this.base + path, {
      method,
      headers: { ...this.headers, 'content-type': raw !== undefined ? 'application/octet-stream' : 'application/json' },
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
    return text.length > 0 && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
  }
}

// ---------------------------------------------------------------------------------------------
// peers

async function redisXadd(seconds: number): Promise<Row | undefined> {
  if (ensureCommands(['redis-server']).length > 0) return undefined;
  const args = (port: number, dir: string) => ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'];
  return withPeer('redis-server', args, async (port) => {
    const clients = Array.from({ length: PRODUCERS }, () => new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 3 }));
    // Connection errors surface through the awaited calls below; without a listener ioredis
    // would also print them.
    for (const c of clients) c.on('error', () => undefined);
    for (const c of clients) await c.connect();
    const values = Array.from({ length: BATCH }, (_, i) => padTo(`redis#${i}#`, RECORD_BYTES));
    const latencies: number[] = [];
    const run = async (ms: number, measure: boolean): Promise<number> => {
      const end = performance.now() + ms;
      let sent = 0;
      await Promise.all(
        clients.map(async (c) => {
          while (performance.now() < end) {
            const p = c.pipeline();
            for (const v of values) p.xadd('bench', '*', 'v', v);
            const t0 = performance.now();
            const out = await p.exec();
            if (measure) latencies.push(performance.now() - t0);
            if (out === null || out.some(([err]) => err !== null)) throw new Error('redis XADD failed');
            sent += BATCH;
          }
        }),
      );
      return sent;
    };
    await run(Math.min(2000, seconds * 200), false);
    const t0 = performance.now();
    const sent = await run(seconds * 1000, true);
    const elapsed = (performance.now() - t0) / 1000;
    sortAscending(latencies);
    const pct = (q: number) => Math.round(quantileOfSorted(latencies, q));
    for (const c of clients) c.disconnect();
    const row: Row = { name: `redis XADD ${BATCH}×${RECORD_BYTES} B pipelined, AOF fsync always (${PRODUCERS} clients)`, reqPerSec: sent / BATCH / elapsed, recordsPerSec: sent / elapsed, p50: pct(0.5), p99: pct(0.99), errors: 0, note: 'per pipeline' };
    console.log(`  ${row.name}: ${fmt(row.recordsPerSec!)} records/s, p50 ${row.p50} ms, p99 ${row.p99} ms per pipeline`);
    return row;
  });
}

// ---------------------------------------------------------------------------------------------
// the mixed load

interface MixedOutcome {
  /** Its p50 and p99 are over the answers to requests sent after the warm-up (compared with the target). */
  row: Row;
  /** The same figures over every answer, the warm-up's included (the connections' setup with it). */
  every: { reqPerSec: number; p50: number; p99: number; cpuPerReq: number };
  fiveXX: number;
  rss: { idle: number; warm: number; end: number; settled: number; peak: number };
  /** PSS split before the load and 2 s after it. */
  pss: { idle: { anon: number; file: number }; settled: { anon: number; file: number } };
  /** The server's V8 heap in use (from /metrics), undefined when it exports none. */
  heap: { before?: number; after?: number };
  /**
   * 2 s after the load, from /metrics: what V8 has committed for its heap, external memory
   * (ArrayBuffers, WASM memories) and the KV key cache's keys, so anonymous memory can be
   * accounted for and the end of the warm-up seen (the key cache is the last cache to fill).
   */
  settled: { heapCommitted?: number; external?: number; cachedKeys?: number };
  /** After those, the server's full GC (multi-round runs only): what is live. */
  live?: LiveMemory;
  lostKv: number;
  checkedKv: number;
  lostRecords: number;
  checkedRecords: number;
}

// Across rounds: every round's puts and batches are new, and the record check reads the whole topic.
let putSeq = 0;
/** The server's stdout and stderr (where glibc's malloc_stats() writes). */
let serverLog = '';
let batchSeq = 0;
const produceBodies = new ProduceBodies(100, RECORD_BYTES);

async function mixedLoad(api: Api, server: ChildProcess, getKeys: string[], queries: string[], consumeOffsets: number[]): Promise<MixedOutcome> {
  const serverPid = server.pid!;
  if (batchSeq === 0) await api.call('POST', '/v1/topics', { name: 'mixed', partitions: 1 });
  const acked: string[] = [];
  const ackedOffsets = new OffsetRuns();
  const pick = <T>(list: T[], i: number) => list[i % list.length]!;
  const headers = api.headers;
  let turn = 0;
  // Per-kind latency: one request in flight per connection, so the connection's context holds
  // the send time of the request whose response comes next. Kept twice: over every answer, and
  // over the answers to requests sent after the warm-up.
  const latencies = new Map<string, { every: number[]; timed: number[] }>();
  const every: number[] = [];
  const afterWarmup: number[] = [];
  // Each connection's first request is built when autocannon builds its client, all 200 in one
  // turn before any connection opens; a request sent before the first answer arrived is one of them.
  const firstAnswers: number[] = [];
  let firstAnswerAt = Infinity;
  // And per second of the run, all kinds together: where in the round the tail sits (the
  // first seconds of a fresh server, a seal, a GC) is what tells warm-up from a steady cost.
  const bySecond: number[][] = [];
  let startedAt = Infinity;
  const warmupMs = MIXED_WARMUP * 1000;
  // Answers so far, and what they stood at when the warm-up ended: the timed part's req/s and
  // server CPU per request are counted from there, as its latencies are.
  let answers = 0;
  let okAnswers = 0;
  let atWarmupEnd: { at: number; cpu: { user: number; sys: number }; answers: number; okAnswers: number } | undefined;
  const timed = (kind: string, req: CannonRequest): CannonRequest => {
    const lists = { every: [] as number[], timed: [] as number[] };
    latencies.set(kind, lists);
    return {
      ...req,
      setupRequest: (r, context) => {
        context.sentAt = performance.now();
        if (startedAt === Infinity) startedAt = context.sentAt as number;
        return req.setupRequest!(r, context);
      },
      onResponse: (status, body, context, h) => {
        const now = performance.now();
        const sentAt = context.sentAt as number;
        const latency = now - sentAt;
        answers++;
        if (status >= 200 && status < 300) okAnswers++;
        if (firstAnswerAt === Infinity) firstAnswerAt = now;
        if (sentAt < firstAnswerAt) firstAnswers.push(latency);
        lists.every.push(latency);
        every.push(latency);
        if (sentAt - startedAt >= warmupMs) {
          lists.timed.push(latency);
          afterWarmup.push(latency);
        }
        (bySecond[Math.floor((now - startedAt) / 1000)] ??= []).push(latency);
        req.onResponse?.(status, body, context, h);
      },
    };
  };
  const requests: CannonRequest[] = [
    timed('kv get', { method: 'GET', setupRequest: (r) => ({ ...r, path: `/v1/kv/${pick(getKeys, turn++)}`, headers }) }),
    timed('kv put', {
      method: 'PUT',
      setupRequest: (r, context) => {
        const key = `mixed/${putSeq++}`;
        context.key = key;
        return { ...r, path: `/v1/kv/${key}`, headers: { ...headers, 'content-type': 'text/plain' }, body: kvValueFor(key) };
      },
      // The key sent, not the answer parsed: the read-back after the run checks what the server holds.
      onResponse: (status, _body, context) => {
        if (status === 200) acked.push(context.key as string);
      },
    }),
    timed('produce 100', {
      method: 'POST',
      setupRequest: (r) => ({ ...r, path: '/v1/topics/mixed/records', headers: { ...headers, 'content-type': 'application/json' }, body: produceBodies.body(`b${batchSeq++}`) }),
      onResponse: (status, body) => {
        if (status === 200) ackedOffsets.addAnswer(body);
      },
    }),
    timed('consume 100', {
      method: 'GET',
      setupRequest: (r) => ({ ...r, path: `/v1/topics/bench/partitions/0/records?offset=${pick(consumeOffsets, turn++)}&max_records=100`, headers }),
    }),
    timed('vector query', {
      method: 'POST',
      setupRequest: (r) => ({ ...r, path: '/v1/collections/bench/query', headers: { ...headers, 'content-type': 'application/json' }, body: pick(queries, turn++) }),
    }),
  ];

  const idle = rssOf(serverPid);
  const idlePss = pssOf(serverPid);
  const heapBefore = await serverMetric(api.base);
  const samples: number[] = [];
  const sampler = setInterval(() => samples.push(rssOf(serverPid)), 1000);
  const cpu0 = cpuOf(serverPid);
  const client0 = process.cpuUsage();
  // The client's own event-loop delay: a response waiting here counts in every latency below,
  // though the server has answered it (both processes share the machine's cores).
  const clientDelay = monitorEventLoopDelay({ resolution: 1 });
  clientDelay.enable();
  // And its GC pauses, which delay every answer waiting in it.
  const clientGc = { count: 0, ms: 0, max: 0 };
  const gcWatch = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      clientGc.count++;
      clientGc.ms += e.duration;
      clientGc.max = Math.max(clientGc.max, e.duration);
    }
  });
  gcWatch.observe({ entryTypes: ['gc'] });
  const warmupEnds = setTimeout(() => {
    atWarmupEnd = { at: performance.now(), cpu: cpuOf(serverPid), answers, okAnswers };
    if (SERVER_TIMING) server.send('mark');
  }, warmupMs);
  if (SERVER_TIMING && warmupMs === 0) server.send('mark');
  const run = autocannon({ url: api.base, connections: MIXED_CONNECTIONS, duration: MIXED_WARMUP + MIXED_DURATION, requests, timeout: 30 });
  const r = await run;
  const cpu1 = cpuOf(serverPid);
  const endedAt = performance.now();
  const serverTiming = SERVER_TIMING ? await serverTimingReport(server) : undefined;
  clearTimeout(warmupEnds);
  const timedFrom = atWarmupEnd ?? { at: endedAt, cpu: cpu1, answers, okAnswers };
  const client = process.cpuUsage(client0);
  clientDelay.disable();
  gcWatch.disconnect();
  // Busy fractions of one core: a client near 1.0 (or a server far below it) means the load,
  // not the server, sets the pace.
  console.log(
    `    CPU: server ${((cpu1.user + cpu1.sys - cpu0.user - cpu0.sys) / 1e6 / r.duration).toFixed(2)} cores, this client ${((client.user + client.system) / 1e6 / r.duration).toFixed(2)} cores; ` +
      `client event-loop delay p50 ${(clientDelay.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(clientDelay.percentile(99) / 1e6).toFixed(1)} ms, max ${(clientDelay.max / 1e6).toFixed(1)} ms; ` +
      `client GC ${clientGc.count} pauses, ${(clientGc.ms / 10 / r.duration).toFixed(1)}% of the run, max ${clientGc.max.toFixed(0)} ms; client CPU ${((client.user + client.system) / Math.max(1, r.requests.total)).toFixed(0)} µs/answer`,
  );
  clearInterval(sampler);
  const end = rssOf(serverPid);
  await new Promise((res) => setTimeout(res, 2000));
  const settled = rssOf(serverPid);
  const settledPss = pssOf(serverPid);
  const heapAfter = await serverMetric(api.base);
  const settledFigures = {
    heapCommitted: await serverMetric(api.base, 'nodejs_heap_size_total_bytes'),
    external: await serverMetric(api.base, 'nodejs_external_memory_bytes'),
    cachedKeys: await serverMetric(api.base, 'quartz_kv_cached_keys'),
  };
  const live = MEMORY_ROUNDS ? await liveMemory(server) : undefined;
  if (live !== undefined && MALLOC_STATS) live.malloc = mallocStats(serverPid, serverLog);
  const at = (list: number[], q: number) => (list.length === 0 ? NaN : quantileOfSorted(list, q));
  const warm = MIXED_WARMUP > 0 ? ` (every answer, the ${MIXED_WARMUP} s warm-up's included: p50 %, p99 %)` : '';
  for (const [kind, lists] of latencies) {
    sortAscending(lists.every);
    sortAscending(lists.timed);
    const both = warm.replace('%', at(lists.every, 0.5).toFixed(1)).replace('%', at(lists.every, 0.99).toFixed(1));
    const own = serverTiming?.kinds[kind.replace(/ 100$/, '')];
    const inServer = own === undefined ? '' : `; in the server p50 ${own.p50.toFixed(1)} ms, p99 ${own.p99.toFixed(1)} ms`;
    console.log(`    ${kind.padEnd(13)} ${String(lists.timed.length).padStart(7)} answers, p50 ${at(lists.timed, 0.5).toFixed(1)} ms, p99 ${at(lists.timed, 0.99).toFixed(1)} ms${inServer}${both}`);
  }
  if (serverTiming !== undefined) {
    const { gc, scavenges, newSpaceBytes, fileWrites, longTurns, seconds } = serverTiming;
    console.log(
      `    server (timed part, ${seconds.toFixed(0)} s): GC ${gc.count} pauses, ${(gc.sum / 10 / seconds).toFixed(1)}% of the time, p50 ${gc.p50.toFixed(1)} ms, p99 ${gc.p99.toFixed(1)} ms, max ${gc.max.toFixed(0)} ms; ` +
        `scavenges ${scavenges.count} (p50 ${scavenges.p50.toFixed(1)} ms, p99 ${scavenges.p99.toFixed(1)} ms; new space ${(newSpaceBytes / 2 ** 20).toFixed(0)} MiB at the end, both semi-spaces); ` +
        `turns over 10 ms ${longTurns.count} (p50 ${longTurns.p50.toFixed(0)} ms, max ${longTurns.max.toFixed(0)} ms); ` +
        `fs.write issue → callback ${fileWrites.count} (p50 ${fileWrites.p50.toFixed(1)} ms, p99 ${fileWrites.p99.toFixed(1)} ms)`,
    );
  }
  sortAscending(firstAnswers);
  console.log(`    each connection's first answer (${firstAnswers.length}; its client built, connected, then answered): p50 ${at(firstAnswers, 0.5).toFixed(0)} ms, p99 ${at(firstAnswers, 0.99).toFixed(0)} ms, max ${at(firstAnswers, 1).toFixed(0)} ms`);
  // By when answered: a warm-up request answered late (a connection's first) counts after the brackets.
  console.log(`    p99 per second, by when answered (ms${MIXED_WARMUP > 0 ? ", the warm-up's seconds in brackets" : ''}): ${perSecondP99(bySecond, MIXED_WARMUP)}`);
  sortAscending(every);
  sortAscending(afterWarmup);
  const ms = (x: number) => Math.round(x * 10) / 10;
  // Memory's warm-up: the first third of the run (JIT, caches, buffers reaching their working size).
  const warmRss = samples[Math.max(0, Math.floor(samples.length / 3) - 1)] ?? idle;
  let fiveXX = 0;
  for (const [code, s] of Object.entries(r.statusCodeStats)) if (code.startsWith('5')) fiveXX += s.count;
  const row: Row = {
    name: `mixed: kv get/put, produce 100, consume 100, vector query (${MIXED_CONNECTIONS} conns, ${MIXED_DURATION} s${MIXED_WARMUP > 0 ? ` after a ${MIXED_WARMUP} s warm-up` : ''})`,
    reqPerSec: (okAnswers - timedFrom.okAnswers) / ((endedAt - timedFrom.at) / 1000),
    p50: ms(at(afterWarmup, 0.5)),
    p99: ms(at(afterWarmup, 0.99)),
    errors: failures(r),
    cpuPerReq: (cpu1.user + cpu1.sys - timedFrom.cpu.user - timedFrom.cpu.sys) / Math.max(1, answers - timedFrom.answers),
  };
  const everyFigures = {
    reqPerSec: okCount(r) / r.duration,
    p50: ms(at(every, 0.5)),
    p99: ms(at(every, 0.99)),
    cpuPerReq: (cpu1.user + cpu1.sys - cpu0.user - cpu0.sys) / Math.max(1, r.requests.total),
  };
  const everyNote = MIXED_WARMUP > 0 ? ` (every answer, the warm-up's included: ${fmt(everyFigures.reqPerSec)} req/s, p50 ${everyFigures.p50} ms, p99 ${everyFigures.p99} ms, server CPU ${everyFigures.cpuPerReq.toFixed(0)} µs/req)` : '';
  console.log(`  ${row.name}: ${fmt(row.reqPerSec)} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms${everyNote}, errors ${row.errors} (5xx ${fiveXX}, status ${JSON.stringify(r.statusCodeStats)})`);

  // Every acknowledged KV write reads back with the bytes sent.
  let lostKv = 0;
  for (let i = 0; i < acked.length; i += 32) {
    const slice = acked.slice(i, i + 32);
    await Promise.all(
      slice.map(async (key) => {
        const res = await fetchOnceMore(`${api.base}/v1/kv/${key}`, { headers });
        const text = await res.text();
        if (res.status !== 200 || text !== kvValueFor(key)) lostKv++;
      }),
    );
  }
  // Every acknowledged record is at its offset, with its batch's other records and its own index.
  let hw = 0;
  const batchOf = new Int32Array(ackedOffsets.max() + 1).fill(-1);
  const indexOf = new Int32Array(batchOf.length).fill(-1);
  for (let offset = 0; offset < batchOf.length; ) {
    const page = (await api.call('GET', `/v1/topics/mixed/partitions/0/records?offset=${offset}&max_records=10000`)) as {
      records: Array<{ offset: number; value: string }>;
      next_offset: number;
      high_watermark: number;
    };
    hw = page.high_watermark;
    for (const rec of page.records) {
      const m = /^b(\d+)#(\d+)#/.exec(rec.value);
      if (m !== null && rec.offset < batchOf.length) {
        batchOf[rec.offset] = Number(m[1]);
        indexOf[rec.offset] = Number(m[2]);
      }
    }
    if (page.records.length === 0 || page.next_offset <= offset) break;
    offset = page.next_offset;
  }
  let lostRecords = 0;
  let checkedRecords = 0;
  for (let run = 0; run < ackedOffsets.runs; run++) {
    const offsets = ackedOffsets.run(run);
    const batch = batchOf[offsets[0]!];
    offsets.forEach((o, i) => {
      checkedRecords++;
      if (o >= hw || batchOf[o] === -1 || batchOf[o] !== batch || indexOf[o] !== i) lostRecords++;
    });
  }
  return {
    row,
    every: everyFigures,
    fiveXX,
    rss: { idle, warm: warmRss, end, settled, peak: Math.max(idle, ...samples, end) },
    pss: { idle: idlePss, settled: settledPss },
    heap: { before: heapBefore, after: heapAfter },
    settled: settledFigures,
    live,
    lostKv,
    checkedKv: acked.length,
    lostRecords,
    checkedRecords,
  };
}

/** The p99 of each second's answers, by when they were answered; `-` for a second without any; the first `warmupS` seconds in brackets. */
function perSecondP99(bySecond: number[][], warmupS: number): string {
  const out: string[] = [];
  for (let i = 0; i < bySecond.length; i++) {
    const list = bySecond[i];
    if (list === undefined || list.length === 0) {
      out.push('-');
      continue;
    }
    sortAscending(list);
    out.push(quantileOfSorted(list, 0.99).toFixed(0));
  }
  const warm = Math.min(out.length, Math.ceil(warmupS));
  return warm === 0 ? out.join(' ') : `[${out.slice(0, warm).join(' ')}] ${out.slice(warm).join(' ')}`;
}

/** What server-memory.mjs reads right after its full GC, in bytes (RSS and anonymous from /proc/self/status). */
interface LiveMemory {
  gcMs: number;
  heapUsed: number;
  heapCommitted: number;
  external: number;
  arrayBuffers: number;
  rss: number;
  anon: number;
  malloc?: MallocStats;
}

/** glibc's malloc_stats(), in bytes: its main arena, and all arenas with the mmap'd chunks. */
interface MallocStats {
  mainSystem: number;
  mainInUse: number;
  arenas: number;
  totalSystem: number;
  totalInUse: number;
}

/**
 * Has the server call malloc_stats() (gdb attached for a moment; glibc writes to the process's
 * stderr, the server's log here) and reads what it wrote.
 */
function mallocStats(pid: number, log: string): MallocStats | undefined {
  const from = readFileSync(log).length;
  const r = spawnSync('gdb', ['-p', String(pid), '-batch', '-ex', 'call (void)malloc_stats()'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) return undefined;
  const text = readFileSync(log).subarray(from).toString('utf8');
  const pairs = [...text.matchAll(/system bytes\s*=\s*(\d+)\s*\n\s*in use bytes\s*=\s*(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
  const arenas = [...text.matchAll(/^Arena \d+:/gm)].length;
  // One pair per arena, Arena 0 (the main one) first, then the total with mmap'd chunks.
  if (pairs.length !== arenas + 1 || arenas === 0) return undefined;
  return { mainSystem: pairs[0]![0], mainInUse: pairs[0]![1], arenas, totalSystem: pairs.at(-1)![0], totalInUse: pairs.at(-1)![1] };
}

/** Has the server (server-memory.mjs preloaded) collect all its garbage, then read its memory. */
function liveMemory(server: ChildProcess): Promise<LiveMemory> {
  return new Promise((resolve) => {
    const hear = (m: unknown): void => {
      if ((m as { kind?: string }).kind !== 'memory') return;
      server.off('message', hear);
      resolve(m as LiveMemory);
    };
    server.on('message', hear);
    server.send('memory');
  });
}

interface TimingFigures {
  count: number;
  sum: number;
  p50: number;
  p99: number;
  max: number;
}

/** What server-timing.mjs counted since its mark: each kind's time from `request` to `finish`, GC pauses, scavenges, the new space's size, long turns, fs.write's issue to callback. */
function serverTimingReport(server: ChildProcess): Promise<{ seconds: number; kinds: Record<string, TimingFigures>; gc: TimingFigures; scavenges: TimingFigures; newSpaceBytes: number; fileWrites: TimingFigures; longTurns: TimingFigures }> {
  return new Promise((resolve) => {
    server.once('message', (report) => resolve(report as never));
    server.send('report');
  });
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<void> {
  if (!flags.has('no-build')) {
    console.log('building dist/ (npm run build:ts), as `npm install` does…');
    const b = spawnSync('npm', ['run', 'build:ts'], { cwd: ROOT, stdio: 'ignore' });
    if (b.status !== 0) console.log('  tsc reported errors (emitted anyway); continuing with what dist/ holds');
  }
  const cli = join(ROOT, 'dist/src/node/cli/index.js');
  const dataDir = await mkdtemp(join(tmpdir(), 'qz-bench-http-'));
  const profDir = join(dataDir, 'prof');
  const port = await freePort();
  const peerPort = await freePort();
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build it with \`npm run build:ts\` (or drop --no-build)`);
  const serverArgs = [join(ROOT, 'bin/quartz.js'), 'serve', '--host', '127.0.0.1', '--port', String(port), '--data', join(dataDir, 'quartz')];
  const nodeArgs = [
    ...(CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', profDir] : []),
    ...(HEAP_SNAPSHOTS ? ['--heapsnapshot-signal=SIGUSR2'] : []),
    ...(SERVER_TIMING ? [`--import=${join(HERE, 'server-timing.mjs')}`] : []),
    ...(MEMORY_ROUNDS ? [`--import=${join(HERE, 'server-memory.mjs')}`] : []),
    ...SERVER_NODE_ARGS,
  ];
  const log = join(dataDir, 'server.log');
  serverLog = log;
  const logFd = openSync(log, 'a');
  const server = spawn(process.execPath, [...nodeArgs, ...serverArgs], { cwd: dataDir, stdio: ['ignore', logFd, logFd, ...(SERVER_IPC ? ['ipc' as const] : [])], env: { ...process.env, QUARTZ_LOG_LEVEL: 'info' } });
  if (SERVER_IPC) server.channel?.unref();
  const peers = spawn(process.execPath, [join(HERE, 'peers.mjs'), '--port', String(peerPort), '--dir', dataDir], { stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  const peerBase = `http://127.0.0.1:${peerPort}`;
  console.log(`server: node ${[...SERVER_NODE_ARGS, ...serverArgs].map((a) => a.replace(ROOT, '')).join(' ')} (pid ${server.pid})`);
  console.log(`runs: ${DURATION} s each (+ warm-up), KV/vector ${CONNECTIONS} connections, produce/consume ${PRODUCERS}, mixed ${MIXED_CONNECTIONS} for ${MIXED_DURATION} s after a ${MIXED_WARMUP} s warm-up`);
  let mixed: MixedOutcome | undefined;
  try {
    await waitForHttp(`${base}/v1/health`, server, 'quartz server', log);
    await waitForHttp(`${peerBase}/bare`, peers, 'peer server');

    // Setup: a tenant, 100 KV keys of 1 KB, a seeded topic, a 1k × 128-d collection.
    const reg = (await new Api(base, {}).call('POST', '/v1/auth/register', { email: 'bench@example.com' })) as { api_key: string };
    const headers = { authorization: `Bearer ${reg.api_key}` };
    const api = new Api(base, headers);
    const getKeys = Array.from({ length: 100 }, (_, i) => `bench/get-${i}`);
    const value1k = padTo('v'.repeat(7), 1024);
    for (const k of getKeys) await api.call('PUT', `/v1/kv/${k}`, undefined, value1k);
    await api.call('POST', '/v1/topics', { name: 'bench', partitions: 1 });
    const body = produceBody('bench', BATCH);
    const seedBatches = 200;
    for (let i = 0; i < seedBatches; i++) await api.call('POST', '/v1/topics/bench/records', undefined, body);
    const rand = seededRandom(42);
    await api.call('POST', '/v1/collections', { name: 'bench', dims: 128, metric: 'cosine' });
    for (let b = 0; b < 2; b++) {
      const vectors = Array.from({ length: 500 }, (_, i) => ({ id: `v${b * 500 + i}`, values: fourDecimalVector(rand, 128), metadata: { n: b * 500 + i } }));
      await api.call('POST', '/v1/collections/bench/upsert', { vectors });
    }
    const queries = Array.from({ length: 64 }, () => JSON.stringify({ vector: fourDecimalVector(rand, 128), k: 10 }));
    const probe = (await api.call('POST', '/v1/collections/bench/query', undefined, queries[0])) as { matches: unknown[] };
    if (probe.matches.length !== 10) throw new Error(`vector query returned ${probe.matches.length} matches, expected 10`);
    const consumeOffsets = Array.from({ length: 64 }, () => Math.floor(rand() * (seedBatches - 1) * BATCH));
    const probeConsume = (await api.call('GET', `/v1/topics/bench/partitions/0/records?offset=${consumeOffsets[0]}&max_records=${BATCH}`)) as { records: unknown[] };
    if (probeConsume.records.length !== BATCH) throw new Error(`consume returned ${probeConsume.records.length} records, expected ${BATCH}`);
    console.log(`setup done: 100 keys, ${seedBatches * BATCH} records, 1000 vectors; server RSS ${(rssOf(server.pid!) / 2 ** 20).toFixed(0)} MiB\n`);

    const json = { ...headers, 'content-type': 'application/json' };
    // As many requests as KV GET's list: autocannon deep-clones its context each time it wraps
    // around the list (~0.16 µs), which a list of one did at every request, on the bare side only.
    const bareReq: CannonRequest[] = getKeys.map(() => ({ method: 'GET', path: '/bare' }));
    const bareRun = { key: 'bare', name: `bare hono route, 1 KB (${CONNECTIONS} conns)`, url: peerBase, pid: peers.pid!, connections: CONNECTIONS, requests: bareReq, settle: true };
    const getRun = { key: 'kv-get', name: `KV GET 1 KB (${CONNECTIONS} conns)`, url: base, pid: server.pid!, connections: CONNECTIONS, requests: getKeys.map((k): CannonRequest => ({ method: 'GET', path: `/v1/kv/${k}`, headers })), settle: true };
    const vectorRun = { key: 'vector', name: `vector query 1k × 128-d, k=10 (${CONNECTIONS} conns)`, url: base, pid: server.pid!, connections: CONNECTIONS, requests: queries.map((q): CannonRequest => ({ method: 'POST', path: '/v1/collections/bench/query', headers: json, body: q })), settle: true };
    // The same queries as clients mostly send them: f32 values, which JSON.stringify and Python's json write with ~17 digits.
    const f32Queries = queries.map((q): CannonRequest => {
      const body = JSON.parse(q) as { vector: number[]; k: number };
      return { method: 'POST', path: '/v1/collections/bench/query', headers: json, body: JSON.stringify({ ...body, vector: body.vector.map(Math.fround) }) };
    });
    const f32Run = { key: 'vector-f32', name: `vector query, 17-digit f32 values (${CONNECTIONS} conns)`, url: base, pid: server.pid!, connections: CONNECTIONS, requests: f32Queries, settle: true };
    // The floor of a vector query on this stack runs in the vector rows' rounds, so that the query
    // and its floor are compared with the same mode's bare route (a row a minute later met the other).
    const scanBodies = queries.map((q): CannonRequest => ({ method: 'POST', path: '/scan', headers: { 'content-type': 'application/json' }, body: q }));
    const scanRun = { key: 'bare-scan', name: `ref: bare route, POST a query body + the exact scan alone (${CONNECTIONS} conns)`, url: peerBase, pid: peers.pid!, connections: CONNECTIONS, requests: scanBodies, settle: true };
    // The rows with a target against the bare route run alternated with it in short rounds, each
    // ratio compared within a round: the machine's other load and its mode move req/s from one
    // minute to the next. The bare row is the first alternation's; a later one prints its own.
    const compared = [...(wanted('kv-get') ? [getRun] : []), ...(wanted('vector') ? [vectorRun, f32Run, ...(wanted('bare') ? [scanRun] : [])] : [])];
    if (wanted('bare') && compared.length > 0) {
      const groups = [compared.filter((s) => s.key === 'kv-get'), compared.filter((s) => s.key !== 'kv-get')].filter((g) => g.length > 0);
      for (const group of groups) {
        console.log(`  bare route, ${group.map((s) => s.key).join(', ')}: ${GET_ROUNDS} alternated rounds of ${(DURATION / GET_ROUNDS).toFixed(1)} s each`);
        const [bareRow, ...others] = await alternated(bareRun, group, GET_ROUNDS);
        if (!rows.has('bare')) rows.set('bare', bareRow!);
        else rows.set(`bare-${group[0]!.key}`, { ...bareRow!, name: `bare hono route, 1 KB, alternated with ${group[0]!.key} (${CONNECTIONS} conns)` });
        group.forEach((s, i) => rows.set(s.key, others[i]!));
      }
    } else if (wanted('bare')) rows.set('bare', await cannon(bareRun.name, bareRun));
    else for (const s of compared) rows.set(s.key, await cannon(s.name, s));
    if (wanted('bare')) {
      rows.set('bare4', await cannon(`bare hono route, 1 KB (${PRODUCERS} conns)`, { url: peerBase, pid: peers.pid!, connections: PRODUCERS, requests: bareReq, settle: true }));
      // The same route reached by the request shapes of KV PUT and the vector query: what their
      // bodies alone cost the stack (reference rows, not the issue's ceiling).
      const octet = { 'content-type': 'application/octet-stream' };
      rows.set('bare-put', await cannon(`ref: bare route, POST 1 KB body (${CONNECTIONS} conns)`, { url: peerBase, pid: peers.pid!, connections: CONNECTIONS, requests: [{ method: 'POST', path: '/bare', headers: octet, body: value1k }] }));
      const queryBodies = queries.map((q): CannonRequest => ({ method: 'POST', path: '/bare', headers: { 'content-type': 'application/json' }, body: q }));
      rows.set('bare-query', await cannon(`ref: bare route, POST a query body (${CONNECTIONS} conns)`, { url: peerBase, pid: peers.pid!, connections: CONNECTIONS, requests: queryBodies, settle: true }));
      if (!rows.has('bare-scan')) rows.set('bare-scan', await cannon(scanRun.name, scanRun));
    }
    if (wanted('kv-put')) {
      const putHeaders = { ...headers, 'content-type': 'application/octet-stream' };
      const requests = Array.from({ length: 100 }, (_, i): CannonRequest => ({ method: 'PUT', path: `/v1/kv/bench/put-${i}`, headers: putHeaders, body: value1k }));
      const lmdbRequests = Array.from({ length: 100 }, (_, i): CannonRequest => ({ method: 'PUT', path: `/lmdb/put-${i}`, headers: { 'content-type': 'application/octet-stream' }, body: value1k }));
      const logRequests = Array.from({ length: 100 }, (_, i): CannonRequest => ({ method: 'PUT', path: `/log/put-${i}`, headers: { 'content-type': 'application/octet-stream' }, body: value1k }));
      // No settling warm-up for these: the thread pool's log writes and lmdb's writer never go idle.
      const putSides: Side[] = [
        { key: 'kv-put', name: `KV PUT 1 KB (${CONNECTIONS} conns)`, url: base, pid: server.pid!, connections: CONNECTIONS, requests },
        { key: 'lmdb-put', name: `ref: hono + raw lmdb put, fsync'd (${CONNECTIONS} conns)`, url: peerBase, pid: peers.pid!, connections: CONNECTIONS, requests: lmdbRequests },
        { key: 'log-put', name: `ref: hono + O_DSYNC log write, group commit (${CONNECTIONS} conns)`, url: peerBase, pid: peers.pid!, connections: CONNECTIONS, requests: logRequests },
      ];
      if (wanted('bare')) {
        // Alternated with the bare route as the GET and vector rows are: a PUT row measured minutes
        // after the bare one may meet the machine's other mode (see `alternated`).
        console.log(`  bare route, ${putSides.map((s) => s.key).join(', ')}: ${GET_ROUNDS} alternated rounds of ${(DURATION / GET_ROUNDS).toFixed(1)} s each`);
        const [bareRow, ...others] = await alternated(bareRun, putSides, GET_ROUNDS);
        rows.set('bare-kv-put', { ...bareRow!, name: `bare hono route, 1 KB, alternated with kv-put (${CONNECTIONS} conns)` });
        putSides.forEach((s, i) => rows.set(s.key, others[i]!));
      } else for (const s of putSides) rows.set(s.key, await cannon(s.name, s));
    }
    if (wanted('produce')) {
      const requests: CannonRequest[] = [{ method: 'POST', path: '/v1/topics/bench/records', headers: json, body }];
      rows.set('produce', await cannon(`produce ${BATCH}×${RECORD_BYTES} B, durable (${PRODUCERS} clients)`, { url: base, pid: server.pid!, connections: PRODUCERS, requests, recordsPerRequest: BATCH }));
    }
    if (wanted('consume')) {
      const requests = consumeOffsets.map((o): CannonRequest => ({ method: 'GET', path: `/v1/topics/bench/partitions/0/records?offset=${o}&max_records=${BATCH}`, headers }));
      rows.set('consume', await cannon(`consume ${BATCH}×${RECORD_BYTES} B (${PRODUCERS} clients)`, { url: base, pid: server.pid!, connections: PRODUCERS, requests, recordsPerRequest: BATCH }));
    }
    if (wanted('jsonl')) {
      const requests: CannonRequest[] = [{ method: 'POST', path: '/append', headers: { 'content-type': 'application/json' }, body }];
      rows.set('jsonl', await cannon(`ref: hono + JSON lines, fsync per request (${PRODUCERS} clients)`, { url: peerBase, pid: peers.pid!, connections: PRODUCERS, requests, recordsPerRequest: BATCH }));
    }
    if (wanted('redis')) {
      const r = await redisXadd(DURATION);
      if (r !== undefined) rows.set('redis', r);
    }
    if (wanted('mixed')) {
      if (HEAP_SNAPSHOTS) await heapSnapshot(server.pid!, dataDir, base, 'before the mixed load');
      const rounds: MixedOutcome[] = [];
      for (let round = 1; round <= MIXED_ROUNDS; round++) {
        if (MIXED_ROUNDS > 1) console.log(`  mixed round ${round} of ${MIXED_ROUNDS}`);
        mixed = await mixedLoad(api, server, getKeys, queries, consumeOffsets);
        rounds.push(mixed);
        if (MIXED_ROUNDS > 1) printTable(mixed);
        if (HEAP_SNAPSHOTS) await heapSnapshot(server.pid!, dataDir, base, `after round ${round}`);
      }
      if (rounds.length > 1) printRounds(rounds);
    }
  } finally {
    await stopProcess(peers, SERVER_GRACE_MS);
    await stopProcess(server, SERVER_GRACE_MS);
  }
  if (CPU_PROF) {
    const files = existsSync(profDir) ? readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')) : [];
    if (files.length === 0) console.log('\nno CPU profile was written (did the server exit cleanly?)');
    for (const f of files) {
      console.log(`\nserver CPU profile ${join(profDir, f)} — top self time:`);
      console.log(summarizeProfile(readFileSync(join(profDir, f), 'utf8'), 30, ROOT));
    }
  }
  if (MIXED_ROUNDS === 1) printTable(mixed);
  if (HEAP_SNAPSHOTS) console.log(`\nheap snapshots kept in ${dataDir}`);
  if (!CPU_PROF && !HEAP_SNAPSHOTS) await rm(dataDir, { recursive: true, force: true });
}

/**
 * Memory after each round, 2 s after its load stops. The warm-up lasts until the caches are full
 * (the KV key cache last: it fills at the rate of new keys), so "flat after warm-up" compares the
 * rounds after that. File-backed pages are the lmdb map (the kernel's page cache of kv.mdb, which
 * grows with the data stored and is reclaimable), so the growth figures are of anonymous memory,
 * the process's own: V8's heap, external memory (ArrayBuffers, WASM memories, mostly in malloc's
 * arenas), malloc's free memory it has not returned, code, stacks. The V8 and external figures are
 * what V8 counts, not resident pages (a committed page need not be touched yet), so they do not
 * sum to the anonymous figure; without a GC they include garbage.
 */
function printRounds(rounds: MixedOutcome[]): void {
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  const series = (pick: (o: MixedOutcome) => number | undefined) => rounds.map((o) => (pick(o) === undefined ? '?' : mib(pick(o)!))).join(' → ');
  const anon = rounds.map((o) => o.pss.settled.anon);
  const growth = (from: number, to: number) => `${(((to - from) / from) * 100).toFixed(0)}%`;
  const last = anon.length - 1;
  console.log(`\nmixed: memory after each of ${rounds.length} rounds (MiB, 2 s after the load)`);
  console.log(`  RSS             ${series((o) => o.rss.settled)}`);
  console.log(`  file (lmdb)     ${series((o) => o.pss.settled.file)}`);
  const sinceRound2 = rounds.length > 2 ? `round 2 → ${rounds.length}: ${growth(anon[1]!, anon[last]!)}; ` : '';
  console.log(`  anonymous       ${series((o) => o.pss.settled.anon)}  (${sinceRound2}last round: ${growth(anon[last - 1]!, anon[last]!)})`);
  console.log(`    V8 heap committed ${series((o) => o.settled.heapCommitted)} (used ${series((o) => o.heap.after)}, garbage included)`);
  console.log(`    external          ${series((o) => o.settled.external)}`);
  console.log(`  KV key cache keys ${rounds.map((o) => o.settled.cachedKeys ?? '?').join(' → ')}`);
  if (rounds.every((o) => o.live !== undefined)) {
    const live = (pick: (l: LiveMemory) => number) => rounds.map((o) => mib(pick(o.live!))).join(' → ');
    console.log(`  then, after a full GC in the server (${rounds.map((o) => o.live!.gcMs.toFixed(0)).join(', ')} ms):`);
    console.log(`    JS heap live      ${live((l) => l.heapUsed)} (committed ${live((l) => l.heapCommitted)})`);
    console.log(`    external          ${live((l) => l.external)} (of which ArrayBuffers ${live((l) => l.arrayBuffers)})`);
    console.log(`    anonymous RSS     ${live((l) => l.anon)}`);
    console.log(`    RSS               ${live((l) => l.rss)}`);
    if (rounds.every((o) => o.live!.malloc !== undefined)) {
      const m = (pick: (s: MallocStats) => number) => rounds.map((o) => mib(pick(o.live!.malloc!))).join(' → ');
      console.log(`    malloc, main arena    ${m((s) => s.mainSystem)} (in use ${m((s) => s.mainInUse)}, free ${m((s) => s.mainSystem - s.mainInUse)})`);
      console.log(`    malloc, all ${rounds.at(-1)!.live!.malloc!.arenas} arenas + mmap'd ${m((s) => s.totalSystem)} (in use ${m((s) => s.totalInUse)})`);
    }
  }
}

function printTable(mixed: MixedOutcome | undefined): void {
  const ratio = (a: Row | undefined, b: Row | undefined, key: 'reqPerSec' | 'recordsPerSec', target: number, peer: string): string => {
    if (a === undefined || b === undefined) return '';
    const x = (a[key] ?? 0) / (b[key] ?? 1);
    return `${x.toFixed(2)}× ${peer} (target ≥ ${target}×: ${x >= target ? 'met' : 'MISSED'})`;
  };
  // A row alternated with the bare route: the median of its rounds' ratios; else one run's against the bare row.
  const roundsOrRatio = (key: string, target: number): string => {
    const r = roundRatios.get(key);
    if (r === undefined) return ratio(rows.get(key), rows.get('bare'), 'reqPerSec', target, 'bare');
    const x = median(r.reqPerSec);
    const sorted = sortAscending([...r.reqPerSec]);
    return `${x.toFixed(2)}× bare, median of ${r.reqPerSec.length} alternated rounds (${sorted[0]!.toFixed(2)}-${sorted.at(-1)!.toFixed(2)}; CPU ratio ${median(r.cpu).toFixed(2)}) (target ≥ ${target}×: ${x >= target ? 'met' : 'MISSED'})`;
  };
  const bare = rows.get('bare');
  const bare4 = rows.get('bare4');
  const notes = new Map<string, string>([
    ['kv-get', roundsOrRatio('kv-get', 0.8)],
    ['kv-put', roundsOrRatio('kv-put', 0.5)],
    ['vector', roundsOrRatio('vector', 0.5)],
    ['vector-f32', roundsOrRatio('vector-f32', 0.5)],
    ['produce', ratio(rows.get('produce'), rows.get('redis'), 'recordsPerSec', 2, 'redis')],
    ['consume', bare4 && rows.get('consume') ? `${times(rows.get('consume')!.reqPerSec, bare4.reqPerSec)} bare (${PRODUCERS} conns)` : ''],
    ['bare-put', rows.get('kv-put') && rows.get('bare-put') ? `KV PUT is ${times(rows.get('kv-put')!.reqPerSec, rows.get('bare-put')!.reqPerSec)} this` : ''],
    ['bare-query', rows.get('vector') && rows.get('bare-query') ? `vector query is ${times(rows.get('vector')!.reqPerSec, rows.get('bare-query')!.reqPerSec)} this` : ''],
    ['bare-scan', rows.get('vector') && rows.get('bare-scan') ? `vector query is ${times(rows.get('vector')!.reqPerSec, rows.get('bare-scan')!.reqPerSec)} this; this is ${roundRatios.has('bare-scan') ? `${median(roundRatios.get('bare-scan')!.reqPerSec).toFixed(2)}× bare, median of the vector rows' rounds (CPU ratio ${median(roundRatios.get('bare-scan')!.cpu).toFixed(2)})` : `${times(rows.get('bare-scan')!.reqPerSec, (bare?.reqPerSec ?? NaN))} bare`}` : ''],
    ['lmdb-put', rows.get('kv-put') && rows.get('lmdb-put') ? `KV PUT is ${times(rows.get('kv-put')!.reqPerSec, rows.get('lmdb-put')!.reqPerSec)} this (lmdb's own durable commit)` : ''],
    ['log-put', rows.get('kv-put') && rows.get('log-put') ? `KV PUT is ${times(rows.get('kv-put')!.reqPerSec, rows.get('log-put')!.reqPerSec)} this; this is ${roundRatios.has('log-put') ? `${median(roundRatios.get('log-put')!.reqPerSec).toFixed(2)}× bare, median of the PUT rows' rounds (CPU ratio ${median(roundRatios.get('log-put')!.cpu).toFixed(2)})` : `${times(rows.get('log-put')!.reqPerSec, (bare?.reqPerSec ?? NaN))} bare`}` : ''],
    ['jsonl', rows.get('produce') && rows.get('jsonl') ? `produce is ${times(rows.get('produce')!.recordsPerSec!, rows.get('jsonl')!.recordsPerSec!)} this` : ''],
  ]);
  const header = ['run', 'req/s', 'records/s', 'p50 ms', 'p99 ms', 'errors', 'CPU µs/req', 'ratio'];
  const table: string[][] = [];
  for (const [key, r] of rows) {
    table.push([r.name, fmt(r.reqPerSec), r.recordsPerSec === undefined ? '' : fmt(r.recordsPerSec), String(r.p50 ?? ''), String(r.p99 ?? ''), String(r.errors), r.cpuPerReq === undefined ? '' : r.cpuPerReq.toFixed(0), notes.get(key) ?? r.note ?? '']);
  }
  if (mixed !== undefined) {
    const m = mixed.row;
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)}`;
    const grow = (mixed.rss.end - mixed.rss.warm) / mixed.rss.warm;
    table.push([
      m.name,
      fmt(m.reqPerSec),
      '',
      String(m.p50),
      String(m.p99),
      String(m.errors),
      m.cpuPerReq!.toFixed(0),
      `5xx ${mixed.fiveXX}; p99 ${m.p99! < 50 ? '< 50 ms: met' : '≥ 50 ms: MISSED'}` +
        (MIXED_WARMUP > 0 ? ` (after the ${MIXED_WARMUP} s warm-up; over every answer, the connections' setup included: ${fmt(mixed.every.reqPerSec)} req/s, p50 ${mixed.every.p50} ms, p99 ${mixed.every.p99} ms, CPU ${mixed.every.cpuPerReq.toFixed(0)} µs/req)` : ''),
    ]);
    table.push([
      '  mixed: server RSS MiB idle → warm → end → +2 s (peak)',
      '',
      '',
      '',
      '',
      '',
      '',
      `${mib(mixed.rss.idle)} → ${mib(mixed.rss.warm)} → ${mib(mixed.rss.end)} → ${mib(mixed.rss.settled)} (${mib(mixed.rss.peak)}); ${(grow * 100).toFixed(0)}% after warm-up` +
        `; PSS idle → +2 s: anonymous ${mib(mixed.pss.idle.anon)} → ${mib(mixed.pss.settled.anon)}, file-backed (lmdb map) ${mib(mixed.pss.idle.file)} → ${mib(mixed.pss.settled.file)}` +
        (mixed.heap.before !== undefined && mixed.heap.after !== undefined ? `; JS heap used ${mib(mixed.heap.before)} → ${mib(mixed.heap.after)}` : ''),
    ]);
    table.push([
      '  mixed: lost writes (checked after the run)',
      '',
      '',
      '',
      '',
      String(mixed.lostKv + mixed.lostRecords),
      '',
      `KV ${mixed.lostKv}/${mixed.checkedKv} acked puts, records ${mixed.lostRecords}/${mixed.checkedRecords} acked`,
    ]);
  }
  console.log('\n' + columns(header, table, { left: [0, header.length - 1], rule: true }).join('\n'));
  console.log(
    `\ntargets: produce ≥ 2× redis (records/s); KV GET ≥ 0.8×, PUT ≥ 0.5×, vector query ≥ 0.5× the bare route; mixed: 0 5xx, 0 lost writes, p99 < 50 ms, RSS flat after warm-up`,
  );
}

await main();
