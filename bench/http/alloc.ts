/**
 * JS bytes the server allocates per request, by kind: `node --import tsx bench/http/alloc.ts
 * [--root DIR] [--kinds produce,consume,vector,kv-put,kv-get,mixed] [--duration S] [--connections N]
 * [--server-node-args="…"]`.
 *
 * Each kind runs alone (autocannon, 20 connections by default) on the mixed load's data and
 * bodies, after a warm-up. Over the measured run, the server (server-alloc.mjs preloaded) counts
 * the bytes allocated on its JS heap exactly (in use at the end, less at the start, plus what every
 * GC in between collected) and the bytes its scavenges did not free (copied, what a scavenge's
 * pause mostly pays for); each row divides them by the answers. Unlike latency, these do not move
 * with the machine's load: the same requests allocate the same bytes. Beside them, the sum of the
 * `allocated=` of the server's `--trace-gc-nvp` lines over the run (how session 18 measured it:
 * it counts from the GC before the run, so it is off by up to a young generation's worth), and the
 * CPU per request (all threads, and the main thread alone, from /proc), which does move with the
 * load: compare builds in alternated runs. `--root` names the worktree whose `dist/` serves, so one
 * copy of this script measures two builds. ArrayBuffers' backing stores (outside the JS heap) are
 * not counted.
 */
import autocannon, { type Request as CannonRequest } from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProduceBodies } from './mixed-bodies.js';
import { fourDecimalVector } from './query-vector.js';
import { seededRandom } from '../../src/core/random-testing.js';
import { freePort } from '../../tests/fixtures/free-port.js';
import { parseFlags, refuseFlag } from '../lib/args.js';
import { cpuOfPid, mainThreadCpuOfPid } from '../lib/cpu.js';
import { stopProcess, waitForHttp } from '../lib/processes.js';

const KINDS = ['produce', 'consume', 'vector', 'kv-put', 'kv-get', 'mixed'] as const;
type Kind = (typeof KINDS)[number];

const flags = parseFlags({ values: ['root', 'kinds', 'duration', 'connections', 'server-node-args'], switches: [] });
const ROOT = resolve(flags.string('root') ?? fileURLToPath(new URL('../..', import.meta.url)));
const DURATION = flags.number('duration', 10, 'positive');
const CONNECTIONS = flags.number('connections', 20, 'positive');
const SERVER_NODE_ARGS = flags.string('server-node-args')?.split(' ').filter((a) => a !== '') ?? [];
const kinds = (flags.string('kinds')?.split(',') ?? [...KINDS]) as Kind[];
for (const k of kinds) if (!(KINDS as readonly string[]).includes(k)) refuseFlag(`--kinds: unknown kind '${k}'; use ${KINDS.join(', ')}`);
const WARMUP_S = 3;

/** What server-alloc.mjs counted since its last mark. */
interface AllocMark {
  allocated: number;
  survived: number;
  scavenges: number;
  markCompacts: number;
  pauseUs: number;
}

function allocMark(server: ChildProcess): Promise<AllocMark> {
  return new Promise((done) => {
    const hear = (m: unknown): void => {
      if ((m as { kind?: string }).kind !== 'alloc-mark') return;
      server.off('message', hear);
      done(m as AllocMark);
    };
    server.on('message', hear);
    server.send('alloc-mark');
  });
}

/** The sum of `allocated=` over `--trace-gc-nvp` lines (one per GC). */
function nvpAllocated(text: string): number {
  let sum = 0;
  for (const m of text.matchAll(/\ballocated=(\d+)/g)) sum += Number(m[1]);
  return sum;
}

const padTo = (text: string, size: number): string => (text.length >= size ? text.slice(0, size) : text + '.'.repeat(size - text.length));

async function call(base: string, headers: Record<string, string>, method: string, path: string, body?: string, type = 'application/json'): Promise<unknown> {
  const res = await fetch(base + path, { method, headers: { ...headers, 'content-type': type }, body });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
  return res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
}

async function main(): Promise<void> {
  const cli = join(ROOT, 'bin/quartz.js');
  if (!existsSync(join(ROOT, 'dist/src/node/cli/index.js'))) throw new Error(`${ROOT}/dist is missing: run \`npm run build:ts\` there`);
  const dataDir = await mkdtemp(join(tmpdir(), 'qz-bench-alloc-'));
  const port = await freePort();
  const log = join(dataDir, 'server.log');
  const logFd = openSync(log, 'a');
  const preload = fileURLToPath(new URL('./server-alloc.mjs', import.meta.url));
  const server = spawn(process.execPath, ['--trace-gc-nvp', `--import=${preload}`, ...SERVER_NODE_ARGS, cli, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data', join(dataDir, 'quartz')], {
    cwd: dataDir,
    stdio: ['ignore', logFd, logFd, 'ipc'],
    env: { ...process.env, QUARTZ_LOG_LEVEL: 'warn' },
  });
  server.channel?.unref();
  const base = `http://127.0.0.1:${port}`;
  console.log(`server: ${ROOT} (pid ${server.pid}), ${CONNECTIONS} connections, ${DURATION} s per kind after ${WARMUP_S} s, load ${loadavg()[0]!.toFixed(1)}`);
  try {
    await waitForHttp(`${base}/v1/health`, server, 'quartz server', log);
    // The mixed load's data (bench/http/index.ts): 100 keys of 1 KB, 200,000 records of 100 B, 1,000 vectors of 128-d.
    const reg = (await call(base, {}, 'POST', '/v1/auth/register', JSON.stringify({ email: 'bench@example.com' }))) as { api_key: string };
    const headers = { authorization: `Bearer ${reg.api_key}` };
    const getKeys = Array.from({ length: 100 }, (_, i) => `bench/get-${i}`);
    const value1k = padTo('v'.repeat(7), 1024);
    for (const k of getKeys) await call(base, headers, 'PUT', `/v1/kv/${k}`, value1k, 'application/octet-stream');
    await call(base, headers, 'POST', '/v1/topics', JSON.stringify({ name: 'bench', partitions: 1 }));
    await call(base, headers, 'POST', '/v1/topics', JSON.stringify({ name: 'mixed', partitions: 1 }));
    const seed = JSON.stringify({ records: Array.from({ length: 1000 }, (_, i) => ({ value: padTo(`bench#${i}#`, 100) })) });
    for (let i = 0; i < 200; i++) await call(base, headers, 'POST', '/v1/topics/bench/records', seed);
    // The same random draws in the same order as the mixed load's, so the queries and offsets are its own.
    const rand = seededRandom(42);
    await call(base, headers, 'POST', '/v1/collections', JSON.stringify({ name: 'bench', dims: 128, metric: 'cosine' }));
    for (let b = 0; b < 2; b++) {
      const vectors = Array.from({ length: 500 }, (_, i) => ({ id: `v${b * 500 + i}`, values: fourDecimalVector(rand, 128), metadata: { n: b * 500 + i } }));
      await call(base, headers, 'POST', '/v1/collections/bench/upsert', JSON.stringify({ vectors }));
    }
    const queries = Array.from({ length: 64 }, () => JSON.stringify({ vector: fourDecimalVector(rand, 128), k: 10 }));
    const consumeOffsets = Array.from({ length: 64 }, () => Math.floor(rand() * 199 * 1000));

    const json = { ...headers, 'content-type': 'application/json' };
    const produceBodies = new ProduceBodies(100, 100);
    let batch = 0;
    let putSeq = 0;
    let turn = 0;
    const pick = <T>(list: readonly T[]): T => list[turn++ % list.length]!;
    const requestsOf: Record<Exclude<Kind, 'mixed'>, CannonRequest> = {
      produce: { method: 'POST', setupRequest: (r) => ({ ...r, path: '/v1/topics/mixed/records', headers: json, body: produceBodies.body(`b${batch++}`) }) },
      consume: { method: 'GET', setupRequest: (r) => ({ ...r, path: `/v1/topics/bench/partitions/0/records?offset=${pick(consumeOffsets)}&max_records=100`, headers }) },
      vector: { method: 'POST', setupRequest: (r) => ({ ...r, path: '/v1/collections/bench/query', headers: json, body: pick(queries) }) },
      'kv-put': {
        method: 'PUT',
        setupRequest: (r) => {
          const key = `mixed/${putSeq++}`;
          return { ...r, path: `/v1/kv/${key}`, headers: { ...headers, 'content-type': 'text/plain' }, body: padTo(`${key}|`.repeat(Math.ceil(1024 / (key.length + 1))), 1024) };
        },
      },
      'kv-get': { method: 'GET', setupRequest: (r) => ({ ...r, path: `/v1/kv/${pick(getKeys)}`, headers }) },
    };
    // The mixed load's cycle: each connection sends GET, PUT, produce, consume, query in turn.
    const requests = (kind: Kind): CannonRequest[] =>
      kind === 'mixed' ? [requestsOf['kv-get'], requestsOf['kv-put'], requestsOf.produce, requestsOf.consume, requestsOf.vector] : [requestsOf[kind]];

    console.log('kind          answers  non-2xx  KB alloc/req  (nvp sum)  KB survived/req  scavenges  mark-compacts  GC pause µs/req  CPU µs/req  main thread µs/req');
    for (const kind of kinds) {
      const load = { url: base, connections: CONNECTIONS, requests: requests(kind), timeout: 30 };
      await autocannon({ ...load, duration: WARMUP_S });
      const from = statSync(log).size;
      await allocMark(server);
      const cpu0 = cpuOfPid(server.pid!);
      const main0 = mainThreadCpuOfPid(server.pid!);
      const r = await autocannon({ ...load, duration: DURATION });
      const cpu1 = cpuOfPid(server.pid!);
      const main1 = mainThreadCpuOfPid(server.pid!);
      const alloc = await allocMark(server);
      const nvp = nvpAllocated(readFileSync(log).subarray(from).toString('utf8'));
      const n = Math.max(1, r.requests.total);
      let non2xx = r.errors + r.timeouts;
      for (const [code, s] of Object.entries(r.statusCodeStats)) if (!code.startsWith('2')) non2xx += s.count;
      const us = (a: { user: number; sys: number }, b: { user: number; sys: number }) => (b.user + b.sys - a.user - a.sys) / n;
      console.log(
        [
          kind.padEnd(12),
          String(n).padStart(8),
          String(non2xx).padStart(8),
          (alloc.allocated / n / 1024).toFixed(1).padStart(13),
          `(${(nvp / n / 1024).toFixed(1)})`.padStart(10),
          (alloc.survived / n / 1024).toFixed(2).padStart(16),
          String(alloc.scavenges).padStart(10),
          String(alloc.markCompacts).padStart(14),
          (alloc.pauseUs / n).toFixed(1).padStart(16),
          us(cpu0, cpu1).toFixed(0).padStart(11),
          us(main0, main1).toFixed(0).padStart(19),
        ].join(' '),
      );
    }
    console.log(`load at the end ${loadavg()[0]!.toFixed(1)}`);
  } finally {
    await stopProcess(server, 20_000);
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
