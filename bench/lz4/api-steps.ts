/**
 * Where the block API's time goes beyond its kernel, one step added at a time:
 * `node --expose-gc --import tsx bench/lz4/api-steps.ts [--mb 32] [--runs 9] [--only c:,d:]`
 * (`--only` keeps the rows whose names contain one of its words). Over 64 KB blocks of the JSON-log
 * corpus, as `npm run bench -- lz4` calls them (every result kept until the next run), each row
 * times one pass by process CPU time from a settled heap, the rows taking turns within every run
 * (rotating order); prints the median µs per block, MB/s of uncompressed data and minor page
 * faults per block, the main thread's CPU alone (without V8's GC helper threads) and the main
 * thread's GC pauses (wall clock) inside the pass. The rows use the library's own codec instance,
 * sharing its memory and JIT state.
 */
import { loadavg } from 'node:os';
import { PerformanceObserver, performance, type PerformanceEntry } from 'node:perf_hooks';
import { init, lz4 } from '../../src/node/core.js';
import { codecs, type QuartzExports } from '../../src/core/loader.js';
import { scratch, scratchIn, takeOut } from '../../src/core/codec-scratch.js';
import { jsonLogs } from './corpus.js';
import { parseFlags } from '../lib/args.js';
import { median } from '../lib/quantiles.js';
import { cpuSeconds } from '../lib/timing.js';
import { mainThreadNs, minorPageFaults } from '../lib/cpu.js';

interface Kernels extends QuartzExports {
  lz4_compress_bound(n: number): number;
  lz4_compress_block_accel(src: number, srcLen: number, dst: number, dstCap: number, accel: number): number;
  lz4_decompress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
}

const flags = parseFlags({ values: ['mb', 'runs', 'only'] });
const SIZE = Math.round(flags.number('mb', 32, 'positive') * (1 << 20));
const RUNS = flags.number('runs', 9, 'positive');
const ONLY = flags.string('only') === undefined ? undefined : new Set(flags.list('only', []));
const BLOCK = 65536;

await init();
const data = jsonLogs(SIZE);
const parts = Array.from({ length: Math.ceil(SIZE / BLOCK) }, (_, b) => data.subarray(b * BLOCK, (b + 1) * BLOCK));
const w = codecs<Kernels>();
const cap = w.lz4_compress_bound(BLOCK);
// The corpus in wasm memory (the kernel-alone rows), two scratch regions, and room for every packed block.
const corpus = w.alloc(SIZE);
const inPtr = w.alloc(cap);
const outPtr = w.alloc(cap);
const packedAll = w.alloc(parts.length * cap);
new Uint8Array(w.memory.buffer, corpus, SIZE).set(data);
const mem = () => new Uint8Array(w.memory.buffer);

let kept: Uint8Array[] = [];
const sizes = new Int32Array(parts.length);
const packed = parts.map((p) => lz4.compressBlock(p));

const rows: Record<string, () => void> = {
  'c: kernel, corpus in wasm': () => {
    for (let b = 0; b < parts.length; b++) sizes[b] = w.lz4_compress_block_accel(corpus + b * BLOCK, parts[b]!.length, packedAll + b * cap, cap, 1);
  },
  'c: copy in': () => {
    const m = mem();
    for (const p of parts) m.set(p, inPtr);
  },
  'c: copy in + kernel': () => {
    const m = mem();
    for (let b = 0; b < parts.length; b++) {
      m.set(parts[b]!, inPtr);
      sizes[b] = w.lz4_compress_block_accel(inPtr, parts[b]!.length, outPtr, cap, 1);
    }
  },
  'c: copy in + kernel + slice': () => {
    const m = mem();
    kept = parts.map((p) => {
      m.set(p, inPtr);
      const n = w.lz4_compress_block_accel(inPtr, p.length, outPtr, cap, 1);
      return m.slice(outPtr, outPtr + n);
    });
  },
  'c: new arrays only': () => {
    kept = packed.map((p) => new Uint8Array(p.length));
  },
  'c: lz4.compressBlock': () => {
    kept = parts.map((p) => lz4.compressBlock(p));
  },
  'd: copy in + kernel': () => {
    const m = mem();
    for (let b = 0; b < packed.length; b++) {
      m.set(packed[b]!, inPtr);
      w.lz4_decompress_block(inPtr, packed[b]!.length, outPtr, BLOCK);
    }
  },
  'd: copy in + kernel + slice': () => {
    const m = mem();
    kept = packed.map((p) => {
      m.set(p, inPtr);
      const n = w.lz4_decompress_block(inPtr, p.length, outPtr, BLOCK);
      return m.slice(outPtr, outPtr + n);
    });
  },
  'd: scratch + kernel + takeOut': () => {
    kept = packed.map((p) => {
      const src = scratchIn(w, 0, p);
      const dst = scratch(w, 1, BLOCK);
      const n = w.lz4_decompress_block(src, p.length, dst, BLOCK);
      return takeOut(w, dst, n);
    });
  },
  'd: scratch + kernel': () => {
    for (const p of packed) {
      const src = scratchIn(w, 0, p);
      const dst = scratch(w, 1, BLOCK);
      w.lz4_decompress_block(src, p.length, dst, BLOCK);
    }
  },
  // The owned result's parts alone: an exact-size array (zero-filled by V8), then the copy into it.
  'd: new Uint8Array only': () => {
    kept = packed.map((_, b) => new Uint8Array(parts[b]!.length));
  },
  'd: copy in + kernel + new + set': () => {
    const m = mem();
    kept = packed.map((p) => {
      m.set(p, inPtr);
      const n = w.lz4_decompress_block(inPtr, p.length, outPtr, BLOCK);
      const out = new Uint8Array(n);
      out.set(m.subarray(outPtr, outPtr + n));
      return out;
    });
  },
  // ArrayBuffer.prototype.slice allocates without V8's zero-fill (then copies).
  'd: copy in + kernel + buffer slice': () => {
    const m = mem();
    kept = packed.map((p) => {
      m.set(p, inPtr);
      const n = w.lz4_decompress_block(inPtr, p.length, outPtr, BLOCK);
      return new Uint8Array(m.buffer.slice(outPtr, outPtr + n));
    });
  },
  'd: lz4.decompressBlock': () => {
    kept = packed.map((p, b) => lz4.decompressBlock(p, parts[b]!.length));
  },
};
const names = Object.keys(rows).filter((n) => !ONLY || [...ONLY].some((o) => n.includes(o)));
const times = new Map(names.map((n) => [n, [] as number[]]));
const mainTimes = new Map(names.map((n) => [n, [] as number[]]));
const gcTimes = new Map(names.map((n) => [n, [] as number[]]));
const faults = new Map(names.map((n) => [n, [] as number[]]));
// GC pauses on the main thread inside each timed pass (entries reach the observer through the event loop).
const gcEntries: PerformanceEntry[] = [];
new PerformanceObserver((list) => gcEntries.push(...list.getEntries())).observe({ entryTypes: ['gc'] });
for (let r = 0; r <= RUNS; r++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(r + k) % names.length]!;
    let f = 0;
    let main = 0;
    let start = 0;
    let end = 0;
    const t = cpuSeconds(() => {
      f = minorPageFaults();
      main = mainThreadNs();
      start = performance.now();
      rows[name]!();
      end = performance.now();
      main = mainThreadNs() - main;
      f = minorPageFaults() - f;
    });
    kept = [];
    // Node delivers a pass's GC entries a turn or two of the loop later.
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 1));
    const gc = gcEntries.filter((e) => e.startTime >= start && e.startTime < end).reduce((sum, e) => sum + e.duration, 0);
    gcEntries.length = 0;
    if (r > 0) {
      times.get(name)!.push(t);
      mainTimes.get(name)!.push(main / 1e9);
      gcTimes.get(name)!.push(gc / 1e3);
      faults.get(name)!.push(f / parts.length);
    }
  }
}
const perBlock = (seconds: number) => ((seconds / parts.length) * 1e6).toFixed(2).padStart(7);
console.log(`api steps: JSON logs, ${SIZE >> 20} MiB in 64 KB blocks, median of ${RUNS} by process CPU, load ${loadavg()[0]!.toFixed(1)}`);
console.log(`  ${'step'.padEnd(34)} µs/block   MB/s  main thread µs  GC pauses µs (wall)  faults/block`);
for (const name of names) {
  const t = median(times.get(name)!);
  console.log(
    `  ${name.padEnd(34)} ${perBlock(t)} ${(SIZE / 1e6 / t).toFixed(0).padStart(6)}  ${perBlock(median(mainTimes.get(name)!))}         ${perBlock(median(gcTimes.get(name)!))}            ${median(faults.get(name)!).toFixed(1).padStart(5)}`,
  );
}
