/**
 * Where the block API's time goes beyond its kernel, one step added at a time:
 * `node --expose-gc --import tsx bench/lz4/api-steps.ts [--mb 32] [--runs 9] [--only c:,d:]`
 * (`--only` keeps the rows whose names contain one of its words). Over 64 KB blocks of the JSON-log
 * corpus, as `npm run bench -- lz4` calls them (every result kept until the next run), each row
 * times one pass by process CPU time from a settled heap, the rows taking turns within every run
 * (rotating order); prints the median µs per block, MB/s of uncompressed data and minor page
 * faults per block. The rows use the library's own codec instance, sharing its memory and JIT state.
 */
import { loadavg } from 'node:os';
import { init, lz4 } from '../../src/node/core.js';
import { codecs, type QuartzExports } from '../../src/core/loader.js';
import { scratch, scratchIn, takeOut } from '../../src/core/codec-scratch.js';
import { jsonLogs } from './corpus.js';
import { parseFlags } from '../lib/args.js';
import { median } from '../lib/quantiles.js';
import { cpuSeconds } from '../lib/timing.js';
import { minorPageFaults } from '../lib/cpu.js';

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
  'd: lz4.decompressBlock': () => {
    kept = packed.map((p, b) => lz4.decompressBlock(p, parts[b]!.length));
  },
};
const names = Object.keys(rows).filter((n) => !ONLY || [...ONLY].some((o) => n.includes(o)));
const times = new Map(names.map((n) => [n, [] as number[]]));
const faults = new Map(names.map((n) => [n, [] as number[]]));
for (let r = 0; r <= RUNS; r++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(r + k) % names.length]!;
    let f = 0;
    const t = cpuSeconds(() => {
      f = minorPageFaults();
      rows[name]!();
      f = minorPageFaults() - f;
    });
    kept = [];
    if (r > 0) {
      times.get(name)!.push(t);
      faults.get(name)!.push(f / parts.length);
    }
  }
}
console.log(`api steps: JSON logs, ${SIZE >> 20} MiB in 64 KB blocks, median of ${RUNS} by process CPU, load ${loadavg()[0]!.toFixed(1)}`);
for (const name of names) {
  const t = median(times.get(name)!);
  console.log(`  ${name.padEnd(32)} ${((t / parts.length) * 1e6).toFixed(2).padStart(7)} µs/block  ${(SIZE / 1e6 / t).toFixed(0).padStart(6)} MB/s  ${median(faults.get(name)!).toFixed(1).padStart(5)} faults/block`);
}
