/**
 * `npm run bench -- scale [--scenario tenants|partitions|open|collections] [--n N] [--idle-ms MS] [--max-open-bytes B|none]`:
 * what size costs through the embedded library (`openQuartz`, the Node disk adapter). Each
 * scenario runs in a child process per size, so RSS is its own, at N/4 and at N, and prints the
 * per-unit cost at both sizes and their ratio (≈1: cost grows linearly with N; ≫1: superlinear).
 *
 *   tenants       N tenants (default 2,000), each with a KV key and a one-partition topic.
 *   partitions    one tenant with N/64 topics × 64 partitions (default N = 12,800), and one
 *                 1,024-partition topic: keyed produce spread by murmur2, a consume and a group
 *                 commit on every partition, then deleting it while another topic takes produces.
 *   open          one tenant with N partitions (N/64 topics × 64) and a KV key; restart; the
 *                 tenant's first KV GET, a scrape's `engine.stats()` while its partitions are
 *                 still opening, then its first streams call (a describeTopic); heap,
 *                 open CPU and timers per partition, and idle CPU (`--idle-ms 65000` for a
 *                 whole tick interval).
 *   collections   one tenant with N collections (default 2,000) of 100 vectors × 32 dims, under a
 *                 budget for open collections (`--max-open-bytes`, default 64 MiB; `none` for no
 *                 limit, as before the budget): after the first query of each, the open count and
 *                 bytes, then a second pass over all (each query reopens a collection the budget
 *                 closed when N exceeds it) and the cost of a query to an open one.
 *
 * Figures: setup (create) time per unit, open time after a restart (openQuartz, then the first
 * request to each tenant / collection), heap and RSS per open unit, the engine's live timers,
 * CPU and the longest event-loop stall while idle for `--idle-ms` (default 2,000; 65,000 takes in
 * the partitions' timers, which fire once a minute), and `engine.stats()` (what /metrics asks).
 * Wall times are noisy on a shared machine; CPU per unit is printed beside them.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openQuartz, type Engine } from '../../src/node/index.js';
import type { Scheduler } from '../../src/ports/clock.js';
import { timerScheduler } from '../../src/ports/system-clock.js';
import { parseFlags, refuseFlag } from '../lib/args.js';
import { processCpuMs as cpuMs } from '../lib/cpu.js';
import { collectGarbage as gc, timeAsync as timed } from '../lib/timing.js';

const flags = parseFlags({ values: ['scenario', 'n', 'idle-ms', 'max-open-bytes', 'child'] });
const idleMs = flags.number('idle-ms', 2000);
const maxOpenArg = flags.string('max-open-bytes') ?? String(64 * 2 ** 20);
const maxOpenBytes = maxOpenArg === 'none' ? Infinity : Number(maxOpenArg);
if (!(maxOpenBytes >= 0)) refuseFlag(`--max-open-bytes must be a number of bytes or none, got '${maxOpenArg}'`);
const enc = new TextEncoder();
/** The engine's timers (unref'd, so `process.getActiveResourcesInfo()` does not list them): scheduled and not yet run or cancelled. */
let liveTimers = 0;
/**
 * Timer bursts: engine timers that fire in one event-loop turn run back to back (with their
 * promise jobs), holding the loop. A turn starts at its first timer and ends at the check phase
 * (setImmediate) of that loop iteration; its CPU time is what the burst held the loop for,
 * without the waits of a loaded machine that the loop-delay figure also takes in.
 */
const turns = { open: false, start: 0, tasks: 0, maxCpuMs: 0, maxTasks: 0 };
function noteTimerFired(): void {
  if (!turns.open) {
    turns.open = true;
    turns.start = cpuMs();
    turns.tasks = 0;
    setImmediate(() => {
      turns.open = false;
      turns.maxCpuMs = Math.max(turns.maxCpuMs, cpuMs() - turns.start);
      turns.maxTasks = Math.max(turns.maxTasks, turns.tasks);
    });
  }
  turns.tasks++;
}
const countingScheduler: Scheduler = {
  schedule(delayMs, task) {
    liveTimers++;
    let live = true;
    const end = () => {
      if (live) liveTimers--;
      live = false;
    };
    const cancel = timerScheduler.schedule(delayMs, () => {
      end();
      noteTimerFired();
      return task();
    });
    return () => {
      end();
      cancel();
    };
  },
  hold: timerScheduler.hold?.bind(timerScheduler),
};
const open = (dataDir: string) => openQuartz({ dataDir, encodeThreads: 0, scheduler: countingScheduler, vectors: { maxOpenBytes } });

type Figures = Record<string, number>;

/** Opens the engine again on `dir`, runs `touch` (the first requests), and measures what staying open costs. */
async function reopenAndMeasure(dir: string, units: number, touch: (e: Engine) => Promise<void>, then?: (e: Engine) => Promise<Figures>): Promise<Figures> {
  const opened = await timed(() => open(dir));
  const engine = opened.value;
  gc();
  const before = process.memoryUsage();
  const first = await timed(() => touch(engine));
  gc();
  const after = process.memoryUsage();
  // What a /metrics scrape asks of the engine (figures over every open tenant).
  const stats = await timed(() => engine.stats());
  // The open's leftovers are collected now, not inside the idle window.
  gc();
  const idleCpu = cpuMs();
  turns.maxCpuMs = turns.maxTasks = 0;
  // The longest the event loop stalled while idle: the partitions' timers fire together once a
  // period (60 s by default), so windows of 61 s or more include that burst.
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  await new Promise((r) => setTimeout(r, idleMs));
  loop.disable();
  const idle = cpuMs() - idleCpu;
  const figures: Figures = {
    open_ms: opened.wallMs,
    first_use_us_per_unit: (first.wallMs * 1000) / units,
    first_use_cpu_us_per_unit: (first.cpuMs * 1000) / units,
    heap_bytes_per_unit: (after.heapUsed - before.heapUsed) / units,
    rss_bytes_per_unit: (after.rss - before.rss) / units,
    rss_mib: after.rss / 2 ** 20,
    timers: liveTimers,
    idle_cpu_pct: (idle / idleMs) * 100,
    idle_loop_delay_max_ms: loop.max / 1e6,
    idle_loop_delay_p99_ms: loop.percentile(99) / 1e6,
    timer_burst_max_tasks: turns.maxTasks,
    timer_burst_max_cpu_ms: turns.maxCpuMs,
    engine_stats_ms: stats.wallMs,
    ...(then === undefined ? {} : await then(engine)),
  };
  const close = await timed(() => engine.close());
  figures.close_ms = close.wallMs;
  return figures;
}

async function tenants(n: number, dir: string): Promise<Figures> {
  const value = enc.encode('value');
  const ids: string[] = [];
  let engine = await open(dir);
  const setup = await timed(async () => {
    for (let i = 0; i < n; i++) {
      const { tenant } = await engine.tenants.create({ email: `user${i}@example.com` });
      ids.push(tenant.id);
      const { kv, streams } = await engine.tenant(tenant.id);
      await kv.put('k', value);
      await streams.createTopic('events');
      await streams.produce('events', [{ value }]);
    }
  });
  await engine.close();
  const figures = await reopenAndMeasure(dir, n, async (e) => {
    engine = e;
    for (const id of ids) {
      const { kv, streams } = await e.tenant(id);
      await kv.get('k');
      await streams.consume('events', 0, 0);
    }
  });
  return { setup_us_per_unit: (setup.wallMs * 1000) / n, setup_cpu_us_per_unit: (setup.cpuMs * 1000) / n, ...figures };
}

async function partitions(n: number, dir: string): Promise<Figures> {
  const topics = Math.max(1, Math.round(n / 64));
  let engine = await open(dir);
  let { streams } = await engine.tenant('t1');
  const setup = await timed(async () => {
    for (let t = 0; t < topics; t++) await streams.createTopic(`topic-${t}`, { partitions: 64 });
  });
  const big = await timed(() => streams.createTopic('big', { partitions: 1024 }));
  // Keyed produce: 100 records per request, keys spread over the 1,024 partitions by murmur2.
  const records = Array.from({ length: 100 }, (_, i) => ({ key: enc.encode(`user-${i}`), value: enc.encode('x'.repeat(100)) }));
  const produceRounds = 200;
  const produce = await timed(async () => {
    for (let r = 0; r < produceRounds; r++) {
      for (const rec of records) rec.key = enc.encode(`user-${r}-${rec.value.length}-${Math.random()}`);
      await streams.produce('big', records);
    }
  });
  const nextOffsets: number[] = [];
  const consume = await timed(async () => {
    for (let p = 0; p < 1024; p++) {
      const res = await streams.consume('big', p, 0, { max_records: 1000 });
      nextOffsets.push(res.next_offset);
      await streams.commitOffset('g1', 'big', p, res.next_offset);
    }
  });
  // Committing alone, one call per partition as a consumer of each partition would (each one a
  // durable write it waits for).
  const commits = await timed(async () => {
    for (let p = 0; p < 1024; p++) await streams.commitOffset('g2', 'big', p, nextOffsets[p]!);
  });
  // The same 1,024 commits in one commitOffsets call (one durable write).
  const batchCommit = await timed(() => streams.commitOffsets('g3', 'big', nextOffsets.map((offset, partition) => ({ partition, offset }))));
  const fetch = await timed(() => streams.fetchOffsets('g1', 'big'));
  // Delete the big topic while another topic takes produces: how long the delete takes, and how
  // slow the produces beside it get.
  let produced = 0;
  let slowest = 0;
  let deleting = true;
  const beside = (async () => {
    while (deleting) {
      const t = performance.now();
      await streams.produce('topic-0', [{ value: enc.encode('beside') }]);
      slowest = Math.max(slowest, performance.now() - t);
      produced++;
    }
  })();
  const del = await timed(() => streams.deleteTopic('big'));
  deleting = false;
  await beside;
  await engine.close();
  const units = topics * 64;
  const figures = await reopenAndMeasure(dir, units, async (e) => {
    engine = e;
    ({ streams } = await e.tenant('t1'));
  });
  return {
    setup_us_per_unit: (setup.wallMs * 1000) / units,
    setup_cpu_us_per_unit: (setup.cpuMs * 1000) / units,
    create_1024_ms: big.wallMs,
    keyed_produce_us_per_record: (produce.wallMs * 1000) / (produceRounds * records.length),
    consume_and_commit_us_per_partition: (consume.wallMs * 1000) / 1024,
    commit_us_per_partition: (commits.wallMs * 1000) / 1024,
    commit_cpu_us_per_partition: (commits.cpuMs * 1000) / 1024,
    one_call_commit_us_per_partition: (batchCommit.wallMs * 1000) / 1024,
    one_call_commit_cpu_us_per_partition: (batchCommit.cpuMs * 1000) / 1024,
    fetch_offsets_1024_ms: fetch.wallMs,
    delete_1024_ms: del.wallMs,
    produces_during_delete: produced,
    slowest_produce_during_delete_ms: slowest,
    ...figures,
  };
}

async function open_(n: number, dir: string): Promise<Figures> {
  const topics = Math.max(1, Math.round(n / 64));
  let engine = await open(dir);
  const { kv, streams } = await engine.tenant('t1');
  await kv.put('k', enc.encode('value'));
  const setup = await timed(async () => {
    for (let t = 0; t < topics; t++) await streams.createTopic(`topic-${t}`, { partitions: 64 });
  });
  await engine.close();
  const units = topics * 64;
  let kvFirst = { wallMs: 0, cpuMs: 0 };
  let statsOpening = { wallMs: 0, cpuMs: 0 };
  const figures = await reopenAndMeasure(dir, units, async (e) => {
    engine = e;
    // The first request after a restart is a KV GET (as the HTTP API serves one): what it waits for.
    kvFirst = await timed(async () => {
      const scope = await e.services('t1');
      if ((await scope.kv.get('k')) === undefined) throw new Error('the KV key is gone');
    });
    // A scrape that comes while the partitions open: what it waits for.
    statsOpening = await timed(() => e.stats());
    // Then every partition, opened, as a streams request waits for them.
    const { streams } = await e.tenant('t1');
    if (streams.describeTopic('topic-0').partitions !== 64) throw new Error('topic-0 lost partitions');
  });
  return { setup_cpu_us_per_unit: (setup.cpuMs * 1000) / units, kv_first_get_ms: kvFirst.wallMs, kv_first_get_cpu_ms: kvFirst.cpuMs, stats_while_opening_ms: statsOpening.wallMs, stats_while_opening_cpu_ms: statsOpening.cpuMs, ...figures };
}

async function collections(n: number, dir: string): Promise<Figures> {
  const dims = 32;
  const rand = ((s: number) => () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32))(1);
  const vectors = Array.from({ length: 100 }, (_, i) => ({ id: `v${i}`, values: Array.from({ length: dims }, rand) }));
  let engine = await open(dir);
  let store = (await engine.tenant('t1')).vectors;
  const setup = await timed(async () => {
    for (let c = 0; c < n; c++) {
      await store.createCollection({ name: `c${c}`, dims, metric: 'cosine' });
      await store.upsert(`c${c}`, vectors);
    }
  });
  await engine.close();
  let list = 0;
  const figures = await reopenAndMeasure(dir, n, async (e) => {
    engine = e;
    store = (await e.tenant('t1')).vectors;
    const l = await timed(() => store.listCollections());
    list = l.wallMs;
    for (let c = 0; c < n; c++) await store.query(`c${c}`, { vector: vectors[c % 100]!.values, k: 5 });
  }, async (e) => {
    const stats = await e.stats();
    const open = { open_collections: stats.open_collections, open_collection_mib: stats.open_collection_bytes / 2 ** 20, evictions: stats.collection_evictions };
    // Then again in the same order: under a budget smaller than N, the least recently used is
    // always the next one asked for, so each query there opens a collection the budget closed.
    const evictionsBefore = stats.collection_evictions;
    // First, so the garbage of the reopens below does not weigh on it.
    const hotQueries = 20_000;
    gc();
    const hot = await timed(async () => {
      for (let i = 0; i < hotQueries; i++) await store.query(`c${n - 1}`, { vector: vectors[i % 100]!.values, k: 5 });
    });
    const again = await timed(async () => {
      for (let c = 0; c < n; c++) await store.query(`c${c}`, { vector: vectors[c % 100]!.values, k: 5 });
    });
    const reopened = (await e.stats()).collection_evictions - evictionsBefore;
    return {
      ...open,
      second_pass_reopened: reopened,
      second_pass_us_per_unit: (again.wallMs * 1000) / n,
      second_pass_cpu_us_per_unit: (again.cpuMs * 1000) / n,
      open_query_cpu_us: (hot.cpuMs * 1000) / hotQueries,
    };
  });
  return { setup_us_per_unit: (setup.wallMs * 1000) / n, setup_cpu_us_per_unit: (setup.cpuMs * 1000) / n, list_unopened_ms: list, ...figures };
}

const SCENARIOS = { tenants: [tenants, 2000], partitions: [partitions, 12_800], open: [open_, 12_800], collections: [collections, 2000] } as const;
type Scenario = keyof typeof SCENARIOS;

const child = flags.string('child') as Scenario | undefined;
if (child !== undefined) {
  const dir = mkdtempSync(join(tmpdir(), 'quartz-scale-'));
  try {
    const figures = await SCENARIOS[child][0](flags.number('n', NaN, 'positive'), dir);
    process.stdout.write(JSON.stringify(figures));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} else {
  const self = fileURLToPath(import.meta.url);
  const chosen = flags.list('scenario', Object.keys(SCENARIOS)) as Scenario[];
  for (const scenario of chosen) if (!(scenario in SCENARIOS)) refuseFlag(`unknown scenario '${scenario}'; one of ${Object.keys(SCENARIOS).join(', ')}`);
  for (const scenario of chosen) {
    const n = flags.number('n', SCENARIOS[scenario][1], 'positive');
    const sizes = [Math.max(1, Math.round(n / 4)), n];
    const runs: Figures[] = [];
    for (const size of sizes) {
      const run = spawnSync(process.execPath, ['--import', 'tsx', '--expose-gc', self, '--child', scenario, '--n', String(size), '--idle-ms', String(idleMs), '--max-open-bytes', maxOpenArg], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 20,
      });
      if (run.status !== 0) throw new Error(`scenario ${scenario} at N=${size} failed (exit ${run.status})`);
      runs.push(JSON.parse(run.stdout) as Figures);
    }
    console.log(`\n${scenario}: N = ${sizes[0]} and ${sizes[1]} (units: ${scenario === 'partitions' || scenario === 'open' ? 'partitions' : scenario}); ratio = per-unit cost at N / at N/4`);
    console.log(`${'figure'.padEnd(38)}${`N=${sizes[0]}`.padStart(14)}${`N=${sizes[1]}`.padStart(14)}${'ratio'.padStart(8)}`);
    for (const key of Object.keys(runs[1]!)) {
      const [a, b] = [runs[0]![key]!, runs[1]![key]!];
      const perUnit = key.includes('per_unit');
      const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
      console.log(`${key.padEnd(38)}${fmt(a).padStart(14)}${fmt(b).padStart(14)}${perUnit && a > 0 ? (b / a).toFixed(2).padStart(8) : ''}`);
    }
  }
}
