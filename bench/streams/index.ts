/**
 * bench/streams — `npm run bench -- streams [--quick]`
 *
 * Durable produce and consume throughput of the streams engine (in process, Node disk adapter:
 * lmdb + segment files) for 100 B and 1 KB records in batches of 1,000, side by side with the
 * peers a user would pick instead — Redis Streams (XADD pipelined / XREAD via ioredis, in its
 * default config and with AOF `appendfsync always`) and NATS JetStream (file storage, async
 * publish) — and the consume latency at a random offset with 10^4 vs 10^7
 * records in the partition. Peers are installed with apt-get when missing and running as root.
 * A "file floor" row writes the same records to a plain file, one write and one fsync per batch
 * of 1,000, in the same run: the physical ceiling a durable produce is measured against.
 * `--quartz-only` skips the peers (for quick looks while developing); `--latency-only` runs only
 * the consume-latency part; `--produce-only` only the produce rows; `--encode-threads N` sets the
 * worker threads that compress produce batches (0: inline, as on homes without threads).
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { connect, StorageType } from 'nats';
import { StreamStore, type ProduceRecord } from '../../src/engine/streams/stream-store.js';
import { init } from '../../src/node/core.js';
import { payload } from './payload.js';
import { openStore } from './store.js';
import { parseFlags } from '../lib/args.js';
import { mainThreadNs, newThreadsNs, threadTimes } from '../lib/cpu.js';
import { ratio } from '../lib/format.js';
import { keepInFlight } from '../lib/load.js';
import { peakRssMiB, resetPeakRss } from '../lib/memory.js';
import { ensureCommands, hasCommand, withPeer } from '../lib/processes.js';
import { quantileOfSorted, sortAscending } from '../lib/quantiles.js';

const flags = parseFlags({ values: ['encode-threads'], switches: ['quick', 'quartz-only', 'latency-only', 'seal-only', 'produce-only'] });
const quick = flags.has('quick');
const quartzOnly = flags.has('quartz-only');
const latencyOnly = flags.has('latency-only');
const sealOnly = flags.has('seal-only');
const produceOnly = flags.has('produce-only');
/** Worker threads compressing produce batches (undefined: the Node home's default). */
const encodeThreads = flags.string('encode-threads') === undefined ? undefined : flags.number('encode-threads', 0);
const BATCH = 1000;
const IN_FLIGHT = 64;
/** Records per consume call: one batch, like a consumer's usual fetch (Kafka's max.poll.records is 500). */
const CONSUME_PAGE = 1000;
const SIZES = [100, 1000] as const;
/** Records produced per size: enough for a few seconds of work at full scale. */
const PRODUCE_RECORDS: Record<number, number> = quick ? { 100: 200_000, 1000: 50_000 } : { 100: 3_000_000, 1000: 600_000 };
/**
 * Records produced before each produce row is timed (JIT, lmdb maps). 100 B takes 1M: after 300,000
 * V8 was still optimizing the commit and seal paths in the timed part (55 compiles, 2.5 s of compile
 * jobs on its helper threads under load 16; 40 and 0.55 s after 1M), and the main thread's CPU per
 * record was higher in each of seven alternated pairs (docs/benchmarks.md, "The 100 B row in process").
 */
const WARMUP_RECORDS: Record<number, number> = quick ? { 100: 100_000, 1000: 100_000 } : { 100: 1_000_000, 1000: 300_000 };
const REDIS_RECORDS = quick ? 50_000 : 300_000;
/** Redis with an fsync per write is far slower; fewer records keep the run short. */
const REDIS_AOF_RECORDS = quick ? 10_000 : 30_000;
const NATS_RECORDS = quick ? 20_000 : 100_000;
const LATENCY_SIZES = quick ? [10_000, 1_000_000] : [10_000, 10_000_000];
const LATENCY_READS = quick ? 500 : 3000;

function batchOf(size: number, from = 0): ProduceRecord[] {
  return Array.from({ length: BATCH }, (_, i) => ({ value: payload(from + i, size) }));
}

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(0)}k` : n.toFixed(0);
}

interface Row {
  what: string;
  recPerSec: number;
  mbPerSec: number;
  note?: string;
}
const rows: Row[] = [];

/**
 * CPU time (all threads) per record since `from`: steadier than wall time on a shared machine.
 * The kernel's share is shown apart: page faults on fresh buffers and write/fsync land there.
 */
/**
 * With `threads` (the threads known when the store opened and their times when the timing began),
 * also the main thread's share and, where /proc lists threads, the batch encoder's threads' and the
 * rest's (the libuv pool's lmdb commits and file writes, V8's GC and compiler helpers).
 */
function cpuNote(from: NodeJS.CpuUsage, records: number, threads?: { known: Map<string, number>; from: Map<string, number>; main: number }): string {
  const used = process.cpuUsage(from);
  const ns = (us: number) => ((us * 1000) / records).toFixed(0);
  let note = `CPU ${ns(used.user + used.system)} ns/rec, sys ${ns(used.system)}`;
  if (threads === undefined) return note;
  const main = mainThreadNs() - threads.main;
  note += `, main thread ${(main / records).toFixed(0)}`;
  const to = threadTimes();
  if (to.size === 0) return note;
  const encoder = newThreadsNs(threads.known, threads.from, to);
  const rest = (used.user + used.system) * 1000 - main - encoder;
  // RSS as the row ends: glibc's thresholds (src/node/malloc-thresholds.ts) trade memory for page faults.
  return `${note}, encoder threads ${(encoder / records).toFixed(0)}, other threads ${(rest / records).toFixed(0)}, RSS ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MiB`;
}

function report(what: string, records: number, bytes: number, seconds: number, note?: string): Row {
  const row = { what, recPerSec: records / seconds, mbPerSec: bytes / seconds / 1e6, note };
  rows.push(row);
  console.log(`  ${what.padEnd(56)} ${fmt(row.recPerSec).padStart(7)} rec/s ${row.mbPerSec.toFixed(1).padStart(7)} MB/s${note ? `  (${note})` : ''}`);
  return row;
}

// --- Quartz -------------------------------------------------------------------------------

/** Produces `total` records with IN_FLIGHT batches outstanding; returns seconds. */
async function produceAll(streams: StreamStore, topic: string, batches: ProduceRecord[][], total: number): Promise<number> {
  let next = 0;
  const start = performance.now();
  await keepInFlight(IN_FLIGHT, total, BATCH, async () => {
    const batch = batches[next++ % batches.length]!;
    // read the offsets, as a client does (the peers' clients parse one reply per record too), in
    // the form that costs the most: `offsets`' object per record, not `offsetOf`'s numbers
    const { offsets } = await streams.produce(topic, batch);
    if (offsets.length !== batch.length) throw new Error(`produce answered ${offsets.length} offsets for ${batch.length} records`);
  });
  return (performance.now() - start) / 1000;
}

async function consumeAll(streams: StreamStore, topic: string): Promise<{ records: number; seconds: number }> {
  const hwm = streams.describeTopic(topic).partition_info[0]!.high_watermark;
  let offset = 0;
  let records = 0;
  const start = performance.now();
  while (offset < hwm) {
    const res = await streams.consume(topic, 0, offset, { max_records: CONSUME_PAGE, max_bytes: 64 * 1024 * 1024 });
    records += res.records.length;
    offset = res.next_offset;
  }
  return { records, seconds: (performance.now() - start) / 1000 };
}

async function quartzThroughput(): Promise<Map<string, Row>> {
  const out = new Map<string, Row>();
  const dir = await mkdtemp(join(tmpdir(), 'qz-bench-streams-'));
  try {
    const { streams, close } = await openStore(dir, undefined, encodeThreads);
    const known = threadTimes();
    // the default (LZ4 batches) for both sizes, and 1 KB once more uncompressed: LZ4 block
    // compression is what bounds 1 KB produce, and a topic can opt out of it
    const variants: Array<[number, 'lz4' | 'none']> = [[100, 'lz4'], [1000, 'lz4'], [1000, 'none']];
    for (const [size, compression] of variants) {
      const topic = `t${size}-${compression}`;
      const tag = compression === 'lz4' ? '' : ' compression none';
      await streams.createTopic(topic, { segment_bytes: 8 * 1024 * 1024, compression });
      const batches = Array.from({ length: 8 }, (_, k) => batchOf(size, k * BATCH));
      await produceAll(streams, topic, batches, WARMUP_RECORDS[size]!);
      const total = PRODUCE_RECORDS[size]!;
      // The peak covers the timed produce: a producer that outruns the rolls shows here, where the
      // RSS as the row ends may already have fallen back.
      const peakReset = resetPeakRss();
      let cpu = process.cpuUsage();
      // The main thread's share apart: LZ4 runs on worker threads (the Node home's batch encoder).
      const threads = { known, from: threadTimes(), main: mainThreadNs() };
      const seconds = await produceAll(streams, topic, batches, total);
      const note = `${cpuNote(cpu, total, threads)}${peakReset ? `, peak RSS ${peakRssMiB().toFixed(0)} MiB` : ''}`;
      // Sealed so consume reads segments, and so the next row's RSS does not count a tail the
      // rolls left behind (up to the partition's unsealed bound: 64 MiB at 8 MiB segments).
      await streams.maintain(topic);
      globalThis.gc?.();
      const sealedRss = `${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MiB with the tail sealed`;
      out.set(`produce ${size}${tag}`, report(`quartz produce ${size} B${tag} (durable, 1 partition)`, total, total * size, seconds, `${note} (${sealedRss})`));
      if (produceOnly) continue;
      cpu = process.cpuUsage();
      const cold = await consumeAll(streams, topic);
      report(`quartz consume ${size} B${tag} (segments from disk)`, cold.records, cold.records * size, cold.seconds, cpuNote(cpu, cold.records));
      cpu = process.cpuUsage();
      const warm = await consumeAll(streams, topic);
      out.set(`consume ${size}${tag}`, report(`quartz consume ${size} B${tag} (cached segments)`, warm.records, warm.records * size, warm.seconds, cpuNote(cpu, warm.records)));
    }
    await close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

/**
 * The physical ceiling: the same records (uncompressed) to a plain file with one write per
 * batch of 1,000 and an fsync after each, one batch at a time. Quartz overlaps batches (group
 * commit) and compresses, so it can pass this floor; the ratio shows how close to the disk it is.
 */
async function fileFloor(): Promise<Map<number, Row>> {
  const out = new Map<number, Row>();
  const dir = await mkdtemp(join(tmpdir(), 'qz-bench-floor-'));
  try {
    for (const size of SIZES) {
      const bytes = new Uint8Array(BATCH * size);
      for (let i = 0; i < BATCH; i++) bytes.set(payload(i, size), i * size);
      const fd = openSync(join(dir, `floor-${size}`), 'w');
      try {
        const total = PRODUCE_RECORDS[size]!;
        const start = performance.now();
        for (let sent = 0; sent < total; sent += BATCH) {
          writeSync(fd, bytes);
          fsyncSync(fd);
        }
        out.set(size, report(`file floor ${size} B (write + fsync per 1,000 records)`, total, total * size, (performance.now() - start) / 1000));
      } finally {
        closeSync(fd);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

/**
 * What sealing costs: CPU per record of one roll of a tail of producer batches into a segment,
 * and the bytes per record before (the tail's batches, as produced) and after (the segment the
 * seal wrote, its smaller batches and their index included), so the compression given up by
 * cutting batches shows beside the producer's own ratio.
 */
async function sealCost(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'qz-bench-streams-seal-'));
  try {
    const { streams, close } = await openStore(dir, undefined, encodeThreads);
    for (const size of SIZES) {
      const topic = `seal${size}`;
      const total = (quick ? 20_000_000 : 100_000_000) / size;
      // one segment for the whole tail, and no roll before the measured one
      await streams.createTopic(topic, { segment_bytes: 1024 * 1024 * 1024 });
      const batches = Array.from({ length: 8 }, (_, k) => batchOf(size, k * BATCH));
      await produceAll(streams, topic, batches, total);
      const before = streams.describeTopic(topic).partition_info[0]!.bytes;
      const cpu = process.cpuUsage();
      await streams.maintain(topic);
      const note = cpuNote(cpu, total);
      const after = streams.describeTopic(topic).partition_info[0]!;
      if (after.segments !== 1) throw new Error(`the seal wrote ${after.segments} segments, expected 1`);
      console.log(`  seal ${String(size).padStart(4)} B × ${fmt(total)}: ${note}; bytes/record ${(before / total).toFixed(1)} in the tail, ${(after.bytes / total).toFixed(1)} sealed (${(after.bytes / before).toFixed(3)}×)`);
    }
    await close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Random-offset consume latency (10 records) for each log size, same cache budget and path. */
async function latencyVsSize(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'qz-bench-streams-lat-'));
  try {
    let { streams, close } = await openStore(dir, undefined, encodeThreads);
    const batches = Array.from({ length: 8 }, (_, k) => batchOf(100, k * BATCH));
    for (const n of LATENCY_SIZES) {
      await streams.createTopic(`n${n}`, { segment_bytes: 8 * 1024 * 1024 });
      await produceAll(streams, `n${n}`, batches, n);
      await streams.maintain(`n${n}`);
    }
    await close();
    // reopen: both logs start with cold caches and the same 64 MiB segment-cache budget
    ({ streams, close } = await openStore(dir, 64 * 1024 * 1024, encodeThreads));
    const medians: number[] = [];
    for (const n of LATENCY_SIZES) {
      const topic = `n${n}`;
      const times: number[] = [];
      let cpu = process.cpuUsage();
      let thread = mainThreadNs();
      for (let i = 0; i < LATENCY_READS + 200; i++) {
        if (i === 200) {
          cpu = process.cpuUsage();
          thread = mainThreadNs();
        }
        const offset = Math.floor(Math.random() * n);
        const t = performance.now();
        const res = await streams.consume(topic, 0, offset, { max_records: 10 });
        const dt = performance.now() - t;
        if (res.records[0]?.offset !== offset) throw new Error(`read at ${offset} returned ${res.records[0]?.offset}`);
        if (i >= 200) times.push(dt);
      }
      // CPU per read (all threads, GC included): what the code costs, apart from the machine's load.
      // The main thread's share apart: the reads themselves; over these first few thousand reads
      // after opening, helper threads mostly compile and collect what the warm-up left.
      const threadPerRead = (mainThreadNs() - thread) / 1000 / LATENCY_READS;
      const used = process.cpuUsage(cpu);
      const cpuPerRead = (used.user + used.system) / LATENCY_READS;
      sortAscending(times);
      const p50 = quantileOfSorted(times, 0.5);
      const p99 = quantileOfSorted(times, 0.99);
      medians.push(p50);
      const d = streams.describeTopic(topic).partition_info[0]!;
      console.log(
        `  random-offset consume, ${fmt(n).padStart(5)} records (${String(d.segments).padStart(4)} segments): p50 ${(p50 * 1000).toFixed(0).padStart(5)} µs  p99 ${(p99 * 1000).toFixed(0).padStart(6)} µs  CPU ${cpuPerRead.toFixed(1).padStart(6)} µs/read (main thread ${threadPerRead.toFixed(1)})`,
      );
    }
    console.log(`  ratio p50 at ${fmt(LATENCY_SIZES[1]!)} / ${fmt(LATENCY_SIZES[0]!)}: ${ratio(medians[1]!, medians[0]!)} (target ≤ 2×)`);
    await close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// --- peers ----------------------------------------------------------------------------------

async function redisRun(redis: Redis, label: string, out: Map<string, Row>, suffix: string, records: number): Promise<void> {
  for (const size of SIZES) {
    const key = `s${size}`;
    const values = Array.from({ length: BATCH }, (_, i) => Buffer.from(payload(i, size)));
    const send = () => {
      const p = redis.pipeline();
      for (const v of values) p.xadd(key, '*', 'v', v);
      return p.exec();
    };
    await send(); // warm-up
    await redis.del(key);
    const start = performance.now();
    // a few pipelines in flight, like our IN_FLIGHT batches
    const sent = await keepInFlight(4, records, BATCH, send);
    const seconds = (performance.now() - start) / 1000;
    out.set(`produce ${size}${suffix}`, report(`redis XADD ${size} B (pipelined, ${label})`, sent, sent * size, seconds));
    let last = '0-0';
    let got = 0;
    const rstart = performance.now();
    for (;;) {
      const res = (await redis.xreadBuffer('COUNT', 10_000, 'STREAMS', key, last)) as Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
      const entries = res?.[0]?.[1];
      if (!entries || entries.length === 0) break;
      got += entries.length;
      last = entries[entries.length - 1]![0].toString();
    }
    out.set(`consume ${size}${suffix}`, report(`redis XREAD ${size} B (${label})`, got, got * size, (performance.now() - rstart) / 1000));
    await redis.del(key);
  }
}

/**
 * Redis twice: its default configuration (what people run; not durable: no AOF, no fsync) and
 * with `appendonly yes, appendfsync always` (acknowledged = fsync'd, like our produce).
 */
async function redisThroughput(): Promise<Map<string, Row>> {
  const out = new Map<string, Row>();
  if (!hasCommand('redis-server')) return out;
  const configs: Array<[string, string[], string, number]> = [
    ['default config, no fsync', ['--save', '', '--appendonly', 'no'], '', REDIS_RECORDS],
    ['AOF fsync always', ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always'], ' aof', REDIS_AOF_RECORDS],
  ];
  for (const [label, args, suffix, records] of configs) {
    try {
      await withPeer('redis-server', (port, dir) => ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no', ...args], async (port) => {
        const redis = new Redis({ port, host: '127.0.0.1' });
        await redisRun(redis, label, out, suffix, records);
        redis.disconnect();
      });
    } catch (err) {
      console.log(`  redis (${label}) skipped: ${(err as Error).message}`);
    }
  }
  return out;
}

async function natsThroughput(): Promise<Map<string, Row>> {
  const out = new Map<string, Row>();
  if (!hasCommand('nats-server')) return out;
  try {
    await withPeer('nats-server', (port, dir) => ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], async (port) => {
      const nc = await connect({ servers: `127.0.0.1:${port}` });
      const jsm = await nc.jetstreamManager();
      const js = nc.jetstream();
      for (const size of SIZES) {
        const subject = `s${size}`;
        await jsm.streams.add({ name: `S${size}`, subjects: [subject], storage: StorageType.File });
        const values = Array.from({ length: BATCH }, (_, i) => payload(i, size));
        const start = performance.now();
        // batches of 1,000 async publishes, each batch awaited, several batches in flight
        const sent = await keepInFlight(4, NATS_RECORDS, BATCH, () => Promise.all(values.map((v) => js.publish(subject, v))));
        const seconds = (performance.now() - start) / 1000;
        out.set(`produce ${size}`, report(`nats JetStream publish ${size} B (file storage)`, sent, sent * size, seconds));
      }
      await nc.close();
    });
  } catch (err) {
    console.log(`  nats skipped: ${(err as Error).message}`);
  }
  return out;
}

// --- main -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  await init();
  console.log(`streams bench${quick ? ' (quick)' : ''}: batches of ${BATCH}, ${IN_FLIGHT} produce batches in flight, consume pages of ${CONSUME_PAGE}`);
  // the figures depend on what else runs: print the machine's load beside them
  console.log(`machine: ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  if (!latencyOnly && !sealOnly) await throughputAndRatios();
  if (produceOnly) return;
  if (!latencyOnly) {
    console.log('\nseal (a tail of producer batches of 1,000 rolled into one segment)');
    await sealCost();
  }
  if (sealOnly) return;
  console.log('\nconsume latency against log size (100 B records, max_records 10)');
  await latencyVsSize();
  console.log(`\nload average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
}

async function throughputAndRatios(): Promise<void> {
  console.log('\nthroughput');
  const quartz = await quartzThroughput();
  const floor = await fileFloor();
  if (!quartzOnly) ensureCommands(['redis-server', 'nats-server']);
  const redis = quartzOnly ? new Map<string, Row>() : await redisThroughput();
  const nats = quartzOnly ? new Map<string, Row>() : await natsThroughput();

  console.log('\nratios (quartz / peer, same run)');
  for (const [size, tag] of [[100, ''], [1000, ''], [1000, ' compression none']] as const) {
    for (const op of ['produce', 'consume'] as const) {
      const q = quartz.get(`${op} ${size}${tag}`);
      if (q === undefined) continue; // --produce-only
      const parts = [`${op} ${size} B${tag}:`.padEnd(34)];
      const r = redis.get(`${op} ${size}`);
      const ra = redis.get(`${op} ${size} aof`);
      const n = nats.get(`${op} ${size}`);
      if (r) parts.push(`${ratio(q.recPerSec, r.recPerSec, 1)} redis`);
      if (ra) parts.push(`${ratio(q.recPerSec, ra.recPerSec, 1)} redis-aof-always`);
      if (n) parts.push(`${ratio(q.recPerSec, n.recPerSec, 1)} nats`);
      const f = op === 'produce' ? floor.get(size) : undefined;
      if (f) parts.push(`${ratio(q.recPerSec, f.recPerSec)} file floor`);
      if (!r && !n && !f) parts.push('no peer ran');
      console.log(`  ${parts.join('  ')}`);
    }
  }
  console.log('  targets: produce ≥ 2M rec/s (100 B), ≥ 500 MB/s (1 KB), ≥ 5× redis XADD; consume ≥ 3M rec/s (100 B, cached)');
}

await main();
