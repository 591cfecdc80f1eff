/**
 * The cold random read alone, for work on it on a shared machine:
 * `node --expose-gc --import tsx bench/streams/cold-read.ts [--records 2000000] [--reads 30000] [--dir D]`.
 * Makes a log of the streams bench's 100 B records (or reuses the one in `--dir`, made by an
 * earlier run), opens it with a segment cache that holds its footers but no segment, so every
 * consume of 10 records at a random offset is what a read of the 10^7 log mostly is: a footer
 * lookup, a range read of one batch, its CRC32C, LZ4 and walk, the page copied out. Prints the
 * CPU time of the main thread per read (from /proc on Linux: the work itself, steadier under load
 * than wall time or the process's CPU, which counts every thread), the process's CPU and the
 * wall p50/p99. To compare two builds, run it from each in turns on the same `--dir`.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { init } from '../../src/node/core.js';
import { payload } from './payload.js';
import { openStore } from './store.js';
import { parseFlags } from '../lib/args.js';
import { keepInFlight } from '../lib/load.js';
import { mainThreadNs, processCpuUs } from '../lib/cpu.js';
import { quantileOfSorted, sortAscending } from '../lib/quantiles.js';
import { collectGarbage } from '../lib/timing.js';

const flags = parseFlags({ values: ['records', 'reads', 'dir', 'encode-threads'] });
const RECORDS = flags.number('records', 2_000_000, 'positive');
const READS = flags.number('reads', 30_000, 'positive');
const WARM_READS = 3000;
const given = flags.string('dir');
const encodeThreads = flags.string('encode-threads') === undefined ? undefined : flags.number('encode-threads', 0);

async function makeLog(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { streams, close } = await openStore(dir, 1 << 30, encodeThreads);
  await streams.createTopic('t', { segment_bytes: 8 * 1024 * 1024 });
  const batches = Array.from({ length: 8 }, (_, k) => Array.from({ length: 1000 }, (_, i) => ({ value: payload(k * 1000 + i, 100) })));
  let next = 0;
  await keepInFlight(64, RECORDS, 1000, () => streams.produce('t', batches[next++ % batches.length]!));
  await streams.maintain('t');
  const d = streams.describeTopic('t').partition_info[0]!;
  console.log(`made ${d.high_watermark} records in ${d.segments} segments, ${(d.bytes / d.high_watermark).toFixed(1)} B/record`);
  await close();
  await writeFile(join(dir, 'cold-read.done'), '');
}

async function main(): Promise<void> {
  await init();
  const dir = given ?? (await mkdtemp(join(tmpdir(), 'qz-bench-cold-read-')));
  try {
    if (!existsSync(join(dir, 'cold-read.done'))) await makeLog(dir);
    // Room for every footer (~30 KB each), none for an 8 MiB segment: reads stay range reads.
    const { streams, close } = await openStore(dir, 4 * 1024 * 1024, encodeThreads);
    const hwm = streams.describeTopic('t').partition_info[0]!.high_watermark;
    const read = async (offset: number) => {
      const res = await streams.consume('t', 0, offset, { max_records: 10 });
      if (res.records[0]?.offset !== offset) throw new Error(`read at ${offset} returned ${res.records[0]?.offset}`);
    };
    for (let i = 0; i < WARM_READS; i++) await read(Math.floor(Math.random() * hwm)); // footers, JIT
    collectGarbage();
    const times: number[] = [];
    const thread = mainThreadNs();
    const cpu = processCpuUs();
    for (let i = 0; i < READS; i++) {
      const offset = Math.floor(Math.random() * hwm);
      const t = performance.now();
      await read(offset);
      times.push(performance.now() - t);
    }
    const threadUs = (mainThreadNs() - thread) / 1000 / READS;
    const processUs = processCpuUs() - cpu;
    sortAscending(times);
    console.log(
      `cold random read of 10 (${READS} reads): main thread ${threadUs.toFixed(2)} µs CPU/read, process ${(processUs / READS).toFixed(2)} µs, ` +
        `p50 ${(quantileOfSorted(times, 0.5) * 1000).toFixed(1)} µs, p99 ${(quantileOfSorted(times, 0.99) * 1000).toFixed(1)} µs; load ${loadavg()[0]!.toFixed(1)}`,
    );
    await close();
  } finally {
    if (given === undefined) await rm(dir, { recursive: true, force: true });
  }
}

await main();
