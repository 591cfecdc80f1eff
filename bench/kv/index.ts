/**
 * `npm run bench -- kv [--keys N] [--scale F] [--reps R] [--cached-keys N]`: in-process KV get/put through the engine (KvStore
 * on the Node disk adapter, metering on) beside raw `lmdb` on the same machine in the same run
 * (and beside the Storage port's lmdb adapter alone, to show which layer costs what),
 * with the same durability (every write on disk before its promise resolves: raw lmdb by its own
 * fsync'd commits, as a user would run it; our adapter by its write-ahead log). Prints
 * ops/s and engine/raw ratios for 100 B and 1 KB values. Target: within 1.5x of raw lmdb.
 *
 * The "ref: get+put" rows compare the engine's put with lmdb (and the adapter) reading the old
 * entry and then writing, which is what a put with metering and compare-and-set must do when it
 * does not know the key. The engine remembers the version, size and expiry of keys it wrote (its
 * key cache, `cachedKeys`, default 65,536 per tenant), so its put of a known key writes without
 * reading; `--cached-keys 0` (or `--keys` above the cache) measures the put of unknown keys.
 *
 * Put workloads:
 *   - concurrent: `inflight` puts issued at once, then awaited together (lmdb groups them into
 *     one fsync'd transaction per event turn), repeated;
 *   - sequential: one awaited put at a time, so one fsync per put (1 in flight).
 *
 * Each side pays for the work its own writes cause, and nothing else. The adapter and the engine
 * acknowledge from their write-ahead log and move the writes into lmdb later, in the background:
 * every timed run starts with the disk storage settled (lmdb holding every earlier write, outside
 * the timing) and the adapter's and engine's runs end by settling it (inside the timing). Without
 * this, one side's deferred lmdb commits ran, and were counted, in whichever side ran next.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { parseFlags } from '../lib/args.js';
import { openEngineKv, openRawLmdb } from './sides.js';
import { grouped, ratio } from '../lib/format.js';
import { collectGarbage, timeAsync } from '../lib/timing.js';

const flags = parseFlags({ values: ['keys', 'scale', 'reps', 'cached-keys'] });
const scale = flags.number('scale', 1, 'positive');
const KEYS = Math.max(100, Math.round(flags.number('keys', 10_000) * scale));
const GETS = Math.max(1000, Math.round(200_000 * scale));
const INFLIGHT = 1000;
const PUT_ROUNDS = Math.max(2, Math.round(20 * scale));
const SEQ_PUTS = Math.max(20, Math.round(200 * scale));
const REPS = Math.max(3, flags.number('reps', 5));
const CACHED_KEYS = flags.string('cached-keys') === undefined ? undefined : flags.number('cached-keys', 0);

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '.data', `kv-${process.pid}`);
rmSync(root, { recursive: true, force: true });
mkdirSync(root, { recursive: true });

const names = Array.from({ length: KEYS }, (_, i) => `user/${String(i).padStart(8, '0')}`);
const order = Array.from({ length: GETS }, (_, i) => (i * 7919) % KEYS); // a fixed stride, not sequential

/** Wall time and process CPU time (all threads, so lmdb's writer counts too) of one run, from a collected heap. */
async function time(fn: () => Promise<void> | void): Promise<{ wallMs: number; cpuMs: number }> {
  collectGarbage();
  return timeAsync(fn);
}

type Run = () => Promise<void> | void;

interface Row {
  workload: string;
  /** Best ops/s (wall clock) per side. */
  raw: number;
  adapter: number;
  engine: number;
  /** Least CPU microseconds per op per side. */
  cpu: { raw: number; adapter: number; engine: number };
}

/**
 * Runs each side REPS times, rotating which goes first, and keeps each side's best run, by wall
 * clock and by CPU time: the machine is shared, and the best run is the least disturbed one.
 * `settle` brings lmdb up to every write the disk storage acknowledged (see the header).
 */
async function compare(rows: Row[], workload: string, ops: number, settle: () => Promise<void>, sides: { raw: Run; adapter: Run; engine: Run }) {
  const best = { raw: 0, adapter: 0, engine: 0 };
  const cpu = { raw: Infinity, adapter: Infinity, engine: Infinity };
  const names = ['raw', 'adapter', 'engine'] as const;
  for (let rep = 0; rep < REPS; rep++) {
    for (let j = 0; j < names.length; j++) {
      const side = names[(rep + j) % names.length]!;
      await settle();
      const run = sides[side];
      const t = await time(
        side === 'raw'
          ? run
          : async () => {
              await run();
              await settle();
            },
      );
      best[side] = Math.max(best[side], ops / (t.wallMs / 1000));
      cpu[side] = Math.min(cpu[side], (t.cpuMs * 1000) / ops);
    }
  }
  rows.push({ workload, ...best, cpu });
}

async function main() {
  // The peer: raw lmdb, every commit fsync'd before its promise resolves. It takes what the engine
  // takes: the same key strings (lmdb encodes them itself) and the same value bytes.
  const { env: rawEnv, db: raw } = openRawLmdb(root);

  const storage = await openDiskStorage({ dir: join(root, 'engine') });
  const settle = () => storage.settle();
  const engine = await openEngineKv(storage, CACHED_KEYS === undefined ? {} : { cachedKeys: CACHED_KEYS });
  const kv = engine.kv;
  // The Storage port's lmdb adapter alone, on a unit of its own: what the engine is built on.
  const port = (await storage.unit('bench-port')).kv;
  const portKeys = names.map((n) => new TextEncoder().encode(n));

  const rows: Row[] = [];
  let sink = 0;
  for (const size of [100, 1024]) {
    const value = new Uint8Array(size).fill(0x61);
    const label = size === 100 ? '100 B' : '1 KB';

    // Load every key on every side (this also warms up the JIT and lmdb's pages).
    for (let i = 0; i < KEYS; i += INFLIGHT) {
      const batch: unknown[] = [];
      for (let j = i; j < Math.min(KEYS, i + INFLIGHT); j++) batch.push(raw.put(names[j]!, value), port.put(portKeys[j]!, value), kv.put(names[j]!, value));
      await Promise.all(batch);
    }

    // Concurrent puts: INFLIGHT issued at once, awaited together, PUT_ROUNDS times.
    const concurrent = (put: (i: number) => unknown) => async () => {
      for (let r = 0; r < PUT_ROUNDS; r++) {
        const batch: unknown[] = [];
        for (let i = 0; i < INFLIGHT; i++) batch.push(put((r * INFLIGHT + i) % KEYS));
        await Promise.all(batch);
      }
    };
    await compare(rows, `put ${label}, ${INFLIGHT} in flight`, PUT_ROUNDS * INFLIGHT, settle, {
      raw: concurrent((i) => raw.put(names[i]!, value)),
      adapter: concurrent((i) => port.put(portKeys[i]!, value)),
      engine: concurrent((i) => kv.put(names[i]!, value)),
    });
    // Reference: reading the old entry, then writing, which is the least any put with metering,
    // a TTL index and compare-and-set must do. The engine column repeats the engine's put.
    await compare(rows, `  ref: get+put, ${INFLIGHT} in flight`, PUT_ROUNDS * INFLIGHT, settle, {
      raw: concurrent((i) => {
        sink += raw.get(names[i]!)?.length ?? 0;
        return raw.put(names[i]!, value);
      }),
      adapter: concurrent((i) => {
        sink += (port.get(portKeys[i]!) as Uint8Array | undefined)?.length ?? 0;
        return port.put(portKeys[i]!, value);
      }),
      engine: concurrent((i) => kv.put(names[i]!, value)),
    });

    // Sequential durable puts: one awaited put at a time, one fsync each.
    const sequential = (put: (i: number) => unknown) => async () => {
      for (let i = 0; i < SEQ_PUTS; i++) await put(i % KEYS);
    };
    await compare(rows, `put ${label}, 1 in flight (awaited)`, SEQ_PUTS, settle, {
      raw: sequential((i) => raw.put(names[i]!, value)),
      adapter: sequential((i) => port.put(portKeys[i]!, value)),
      engine: sequential((i) => kv.put(names[i]!, value)),
    });

    // Gets: lmdb and the adapter answer synchronously; the engine is awaited the way a request
    // handler awaits it, and then used synchronously as in-process callers may.
    const rawGets = () => {
      for (let i = 0; i < GETS; i++) sink += raw.get(names[order[i]!]!)!.length;
    };
    const portGets = () => {
      for (let i = 0; i < GETS; i++) sink += (port.get(portKeys[order[i]!]!) as Uint8Array).length;
    };
    await compare(rows, `get ${label} (engine awaited)`, GETS, settle, {
      raw: rawGets,
      adapter: portGets,
      engine: async () => {
        for (let i = 0; i < GETS; i++) sink += (await kv.get(names[order[i]!]!))!.value.length;
      },
    });
    await compare(rows, `get ${label} (engine sync answer)`, GETS, settle, {
      raw: rawGets,
      adapter: portGets,
      engine: () => {
        for (let i = 0; i < GETS; i++) {
          const r = kv.get(names[order[i]!]!);
          if (r instanceof Promise) throw new Error('expected a synchronous answer from lmdb');
          sink += r!.value.length;
        }
      },
    });
  }
  if (sink === 0) throw new Error('nothing read');

  await engine.close();
  await storage.close();
  await rawEnv.close();
  rmSync(root, { recursive: true, force: true });

  console.log(`keys: ${KEYS}${CACHED_KEYS === undefined ? '' : ` (engine key cache: ${CACHED_KEYS})`}; per run: ${GETS} gets, ${PUT_ROUNDS} x ${INFLIGHT} concurrent puts, ${SEQ_PUTS} sequential puts; best of ${REPS} rotating runs per side`);
  console.log('raw = lmdb directly; adapter = the Storage port on lmdb (src/node/storage); engine = KvStore on that adapter');
  const fmt = (n: number) => grouped(n).padStart(12);
  console.log('\nthroughput, best run (ops/s):');
  console.log('workload'.padEnd(38) + 'raw'.padStart(12) + 'adapter'.padStart(12) + 'engine'.padStart(12) + 'raw/engine'.padStart(12) + 'adapter/engine'.padStart(16) + '  target raw/engine <= 1.5x');
  for (const r of rows) {
    const verdict = r.workload.startsWith('  ref') ? '' : r.raw / r.engine <= 1.5 ? '  ok' : '  OVER';
    console.log(r.workload.padEnd(38) + fmt(r.raw) + fmt(r.adapter) + fmt(r.engine) + ratio(r.raw, r.engine).padStart(12) + ratio(r.adapter, r.engine).padStart(16) + verdict);
  }
  // On a shared machine the wall-clock ratio swings with the load (100 B puts: 0.99-6.4x over five runs
  // at load 8-12, while their CPU ratio stayed within 3.0-4.2x);
  // CPU per op moves far less, so the target is judged on it too.
  console.log('\nCPU per op, least of the runs (µs, all threads; robust to other load on the machine):');
  console.log('workload'.padEnd(38) + 'raw'.padStart(12) + 'adapter'.padStart(12) + 'engine'.padStart(12) + 'engine/raw'.padStart(12) + 'engine/adapter'.padStart(16) + '  target engine/raw <= 1.5x');
  const us = (n: number) => n.toFixed(2).padStart(12);
  for (const r of rows) {
    const verdict = r.workload.startsWith('  ref') ? '' : r.cpu.engine / r.cpu.raw <= 1.5 ? '  ok' : '  OVER';
    console.log(r.workload.padEnd(38) + us(r.cpu.raw) + us(r.cpu.adapter) + us(r.cpu.engine) + ratio(r.cpu.engine, r.cpu.raw).padStart(12) + ratio(r.cpu.engine, r.cpu.adapter).padStart(16) + verdict);
  }
}

await main();
