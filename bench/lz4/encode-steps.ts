/**
 * Where the segment table's 1 KB LZ4 encode row spends its time: `node --expose-gc --import tsx
 * bench/lz4/encode-steps.ts [--runs 9] [--kind 1kb-json|100b]`. Over the table's records in its
 * batches of 500, each step adds one stage to the one before, as `SegmentWriter.append` and
 * `finish` do them: the batch slices the bench makes; the records checked and written into wasm
 * memory (`encodeRecords`); + LZ4 of each batch; + CRC32C of the stored bytes; + a copy out
 * into reused memory (the writer's staging); then the writer itself (`append` of every batch,
 * then `finish`, timed apart). Beside them the kernels alone (LZ4 + CRC32C on the same sections,
 * already in wasm memory). Steps run in a rotating order; each prints its median process CPU
 * ms and minor page faults per run, and the whole encode is split by whether `finish` faulted
 * (its fresh result's pages: see docs/benchmarks.md, "The segment encode row, step by step").
 */
import { loadavg } from 'node:os';
import { codecs, init, type QuartzExports } from '../../src/node/core.js';
import { BATCH_HEADER_SIZE, SegmentWriter, encodeBatch, type SegmentRecord } from '../../src/core/segment.js';
import { encodeRecords, type RecordsRoom } from '../../src/core/segment-records.js';
import { memoryView } from '../../src/core/codec-scratch.js';
import { dataset } from './segment-bench.js';
import { parseFlags } from '../lib/args.js';
import { median } from '../lib/quantiles.js';
import { minorPageFaults, processCpuMs } from '../lib/cpu.js';

interface Kernels extends QuartzExports {
  crc32c(crc: number, ptr: number, len: number): number;
  lz4_compress_bound(n: number): number;
  lz4_compress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
}

const flags = parseFlags({ values: ['runs', 'kind'] });
const RUNS = flags.number('runs', 9, 'positive');
const kind = (flags.string('kind') ?? '1kb-json') as '1kb-json' | '100b';
const BATCH_RECORDS = 500;

await init();
const w = codecs<Kernels>();
const records = dataset(kind, kind === '1kb-json' ? 50_000 : 300_000);
let payload = 0;
for (const r of records) payload += r.key!.length + r.value!.length;

// One region for the steps that stop short of the writer: records at `src`, LZ4 block at `dst`.
const SECTION_CAP = 4 << 20;
const src = w.alloc(SECTION_CAP);
const dst = w.alloc(w.lz4_compress_bound(SECTION_CAP));

function batches(): SegmentRecord[][] {
  const out: SegmentRecord[][] = [];
  for (let i = 0; i < records.length; i += BATCH_RECORDS) out.push(records.slice(i, i + BATCH_RECORDS));
  return out;
}

/** Where `partial` copies each batch out when asked: reused, as the writer's staging chunks are. */
const staging = new Uint8Array(32 << 20);

/** Stages 1-4: records written into wasm memory, then (lz4) compressed, then (crc) checksummed, then (copy) copied out. */
function partial(lz4: boolean, crc: boolean, copy = false): number {
  let sink = 0;
  let at = 0;
  for (const batch of batches()) {
    const room: RecordsRoom = { buf: memoryView(w), pos: src, end: src + SECTION_CAP };
    const layout = encodeRecords(batch, undefined, room, () => {
      throw new Error('section larger than the bench region');
    });
    if (!lz4) continue;
    const n = w.lz4_compress_block(src, layout.size, dst + BATCH_HEADER_SIZE, w.lz4_compress_bound(layout.size));
    if (crc) sink ^= w.crc32c(0, dst + 8, n + BATCH_HEADER_SIZE - 8);
    if (copy) {
      staging.set(new Uint8Array(w.memory.buffer, dst, n + BATCH_HEADER_SIZE), at);
      at += n + BATCH_HEADER_SIZE;
    }
  }
  return sink;
}

const sections: { ptr: number; len: number }[] = [];
for (let i = 0; i < records.length; i += BATCH_RECORDS) {
  const plain = encodeBatch(records.slice(i, i + BATCH_RECORDS), { baseOffset: i, codec: 'none' });
  const len = plain.length - BATCH_HEADER_SIZE;
  const ptr = w.alloc(len);
  new Uint8Array(w.memory.buffer, ptr, len).set(plain.subarray(BATCH_HEADER_SIZE));
  sections.push({ ptr, len });
}

let kept: unknown;
/** The writer's two calls are timed apart: `finish` is bimodal on its result's page faults. */
let finishMs = 0;
let finishFaults = 0;
const steps: Record<string, () => unknown> = {
  'slices': () => batches().length,
  'records → wasm': () => partial(false, false),
  '+ lz4': () => partial(true, false),
  '+ crc32c': () => partial(true, true),
  '+ staging copy': () => partial(true, true, true),
  'writer: appends': () => {
    const writer = new SegmentWriter({ baseOffset: 0, codec: 'lz4', createdAt: 0 });
    for (const batch of batches()) writer.append(batch);
    const f0 = minorPageFaults();
    const c0 = processCpuMs();
    kept = writer.finish(); // kept until the next, as segment-bench.ts keeps its segment
    finishMs = processCpuMs() - c0;
    finishFaults = minorPageFaults() - f0;
    return 0;
  },
  'kernels alone': () => {
    let sink = 0;
    for (const s of sections) {
      const n = w.lz4_compress_block(s.ptr, s.len, dst + BATCH_HEADER_SIZE, w.lz4_compress_bound(s.len));
      sink ^= w.crc32c(0, dst + 8, n + BATCH_HEADER_SIZE - 8);
    }
    return sink;
  },
};

const names = Object.keys(steps);
const cpu = new Map<string, number[]>([...names, 'writer: finish'].map((n) => [n, []]));
const faults = new Map<string, number[]>([...names, 'writer: finish'].map((n) => [n, []]));
/** Encodes (appends + finish) whose finish faulted and those whose did not, ms of CPU each. */
const faulting: number[] = [];
const clean: number[] = [];
for (let run = 0; run <= RUNS; run++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(k + run) % names.length]!;
    const f0 = minorPageFaults();
    const c0 = processCpuMs();
    steps[name]!();
    let ms = processCpuMs() - c0;
    let f = minorPageFaults() - f0;
    if (run === 0) continue; // warm-up
    if (name === 'writer: appends') {
      (finishFaults > 1000 ? faulting : clean).push(ms);
      ms -= finishMs;
      f -= finishFaults;
      cpu.get('writer: finish')!.push(finishMs);
      faults.get('writer: finish')!.push(finishFaults);
    }
    cpu.get(name)!.push(ms);
    faults.get(name)!.push(f);
  }
}
console.log(`encode steps: ${records.length} × ${kind}, batches of ${BATCH_RECORDS}, ${(payload / 1e6).toFixed(1)} MB payload, median of ${RUNS}, process CPU, load ${loadavg()[0]!.toFixed(1)}`);
for (const name of cpu.keys()) {
  const ms = median(cpu.get(name)!);
  console.log(`  ${name.padEnd(24)} ${ms.toFixed(1).padStart(7)} ms  ${(payload / 1e3 / ms).toFixed(0).padStart(6)} MB/s  faults ${median(faults.get(name)!).toFixed(0)}`);
}
const mbs = (list: number[]) => (list.length === 0 ? '-' : `${(payload / 1e3 / median(list)).toFixed(0)} MB/s`);
console.log(`  whole encode: ${clean.length} runs whose finish did not fault ${mbs(clean)}, ${faulting.length} whose finish faulted ${mbs(faulting)} (medians)`);
if (kept === undefined) throw new Error('no segment');
