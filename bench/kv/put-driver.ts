/**
 * One side of `bench kv`'s put rows alone in a process of its own, for profiling and A/B runs of
 * two checkouts on a shared machine:
 * `node --expose-gc --import tsx bench/kv/put-driver.ts [--side raw|adapter|engine] [--size B]
 * [--inflight N] [--seconds S] [--keys N] [--ttl S]`.
 *
 * The sides are `bench kv`'s (raw lmdb with every commit fsync'd, the Storage port's adapter, the
 * engine's KvStore on it), opened the same way. It puts every key once (in order, 1,000 at a
 * time), keeps putting for a second of warm-up, then times `--seconds` of rounds of `--inflight`
 * puts issued at once and awaited together, cycling through the keys in order; the adapter's and
 * engine's timing ends once lmdb holds their writes. It prints, per put: CPU of the main thread and
 * of every other thread (lmdb's writer and the libuv pool's commits, V8's helpers), from
 * /proc/self/task; the wall time of issuing the puts (each round's synchronous part: the side's own
 * call path before any commit; least and median round, the least being the least disturbed on a
 * shared machine); the write syscalls and the bytes sent to storage (/proc/self/io: lmdb's page
 * writes, the log's frames); and the full GCs in the timed part. `--ttl` gives the engine's puts a
 * TTL (a put with a TTL is a batch: the record and its TTL index entry). Linux only.
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { parseFlags } from '../lib/args.js';
import { openEngineKv, openRawLmdb } from './sides.js';
import { collectGarbage } from '../lib/timing.js';
import { threadTimes } from '../lib/cpu.js';

const SIDES = ['raw', 'adapter', 'engine'] as const;
type Side = (typeof SIDES)[number];

const flags = parseFlags({ values: ['side', 'size', 'inflight', 'seconds', 'keys', 'ttl'] });
const side = (flags.string('side') ?? 'engine') as Side;
if (!SIDES.includes(side)) {
  console.error(`put-driver: --side must be one of ${SIDES.join(', ')}, got '${side}'`);
  process.exit(2);
}
const size = flags.number('size', 100);
const inflight = Math.max(1, Math.round(flags.number('inflight', 1000, 'positive')));
const seconds = flags.number('seconds', 3, 'positive');
const keys = Math.max(1, Math.round(flags.number('keys', 10_000, 'positive')));
const ttl = flags.string('ttl') === undefined ? undefined : Math.round(flags.number('ttl', 0, 'positive'));
if (ttl !== undefined && side !== 'engine') {
  console.error('put-driver: --ttl is for --side engine');
  process.exit(2);
}
const LOAD_GROUP = 1000;

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '.data', `kv-put-driver-${process.pid}`);
rmSync(root, { recursive: true, force: true });
mkdirSync(root, { recursive: true });
const names = Array.from({ length: keys }, (_, i) => `user/${String(i).padStart(8, '0')}`);
const value = new Uint8Array(size).fill(0x61);

/** The side's put of key `i`, how to bring lmdb up to its writes, and how to close it. */
async function openSide(): Promise<{ put: (i: number) => unknown; settle: () => Promise<void>; close: () => Promise<void> }> {
  if (side === 'raw') {
    const { env, db } = openRawLmdb(root);
    return { put: (i) => db.put(names[i]!, value), settle: async () => {}, close: () => env.close() };
  }
  const storage = await openDiskStorage({ dir: join(root, 'quartz') });
  const settle = () => storage.settle();
  if (side === 'adapter') {
    const port = (await storage.unit('bench-port')).kv;
    const portKeys = names.map((n) => new TextEncoder().encode(n));
    return { put: (i) => port.put(portKeys[i]!, value), settle, close: () => storage.close() };
  }
  const engine = await openEngineKv(storage);
  const kv = engine.kv;
  return {
    put: ttl === undefined ? (i) => kv.put(names[i]!, value) : (i) => kv.put(names[i]!, value, { ttl }),
    settle,
    close: async () => {
      await engine.close();
      await storage.close();
    },
  };
}

/** Write syscalls and bytes sent to storage by this process so far (/proc/self/io). */
function io(): { calls: number; bytes: number } {
  const fields = new Map(
    readFileSync('/proc/self/io', 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split(': ') as [string, string]),
  );
  return { calls: Number(fields.get('syscw')), bytes: Number(fields.get('write_bytes')) };
}

const { put, settle, close } = await openSide();
let next = 0;
/** Wall time of each timed round's synchronous part (the puts' issue), per put. */
const issueUs: number[] = [];
let timing = false;
async function round(n: number): Promise<void> {
  const batch: unknown[] = [];
  const issued = performance.now();
  for (let i = 0; i < n; i++) batch.push(put(next++ % keys));
  if (timing) issueUs.push(((performance.now() - issued) * 1000) / n);
  await Promise.all(batch);
}
for (let i = 0; i < keys; i += LOAD_GROUP) await round(Math.min(LOAD_GROUP, keys - i));
const warmUntil = performance.now() + 1000;
while (performance.now() < warmUntil) await round(inflight);
await settle();
collectGarbage();

let fullGcs = 0;
const gcs = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if ((entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) fullGcs++;
});
gcs.observe({ entryTypes: ['gc'] });
const mainTid = String(process.pid);
const ioBefore = io();
const before = threadTimes();
const start = performance.now();
let puts = 0;
timing = true;
while (performance.now() - start < seconds * 1000) {
  await round(inflight);
  puts += inflight;
}
await settle();
const wallMs = performance.now() - start;
const after = threadTimes();
const ioAfter = io();
// GC entries reach the observer through the event loop.
await new Promise((resolve) => setImmediate(resolve));
gcs.disconnect();
let mainNs = 0;
let otherNs = 0;
for (const [tid, ns] of after) {
  const spent = ns - (before.get(tid) ?? 0);
  if (tid === mainTid) mainNs += spent;
  else otherNs += spent;
}
await close();
rmSync(root, { recursive: true, force: true });

const us = (ns: number) => (ns / 1000 / puts).toFixed(2);
// The least round is the one least disturbed by other processes: the issue's own cost.
issueUs.sort((a, b) => a - b);
console.log(
  `${side}, ${size} B${ttl === undefined ? '' : `, ttl ${ttl} s`}, ${inflight} in flight, ${keys} keys: ${puts} puts, ${Math.round(puts / (wallMs / 1000))}/s; ` +
    `CPU µs/put main ${us(mainNs)} other ${us(otherNs)} total ${us(mainNs + otherNs)}; ` +
    `issue µs/put least ${issueUs[0]!.toFixed(2)} median ${issueUs[issueUs.length >> 1]!.toFixed(2)}; ` +
    `write calls/put ${((ioAfter.calls - ioBefore.calls) / puts).toFixed(3)}, bytes written/put ${Math.round((ioAfter.bytes - ioBefore.bytes) / puts)}; full GCs ${fullGcs}`,
);
