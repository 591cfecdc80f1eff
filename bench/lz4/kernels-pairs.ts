/**
 * A/B of the LZ4 compress kernels of two or more quartz.wasm builds that a loaded machine cannot
 * blur: `node --import tsx bench/lz4/kernels-pairs.ts a.wasm b.wasm [--corpus FILE] [--mb 8]
 * [--block KB] [--runs 15] [--decompress]`.
 * Where `kernels-ab.ts` times each build over the whole corpus in turns (one build's run can fall
 * in a busy second and the other's in a quiet one: the same build read 454 and 589 MB/s in one
 * run at load 12), this times every block by the wall clock with the builds taking turns on that
 * block, and keeps each block's fastest time over the runs: a block that another process
 * preempted in one run is faster in another. At load 12-17 the ratio between two builds moved by
 * 1-2% between runs where kernels-ab's moved by 15%; the absolute MB/s still move with the load,
 * read the ratio. Builds must differ: V8 shares the compiled code of identical modules, so one
 * build given twice trains the branch predictor on each block for its second turn (+50%).
 * Prints each build's MB/s (the sum of the per-block minima), its ratio to the first build, and
 * its compression ratio; checks that every build's blocks decode to the corpus. With --decompress
 * it times the decompress kernels instead, every build decoding the first build's compressed
 * blocks (the same input for all).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import { jsonLogs } from './corpus.js';
import { parseFlags } from '../lib/args.js';

interface Kernels {
  memory: WebAssembly.Memory;
  alloc(size: number): number;
  lz4_compress_bound(n: number): number;
  lz4_compress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
  lz4_decompress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
}

const flags = parseFlags({ values: ['mb', 'corpus', 'block', 'runs'], switches: ['decompress'], positionals: true });
const files = flags.positionals;
const MB = flags.number('mb', 8, 'positive');
const CORPUS = flags.string('corpus');
const BLOCK = flags.number('block', 64, 'positive') * 1024;
const RUNS = flags.number('runs', 15, 'positive');
const DECOMPRESS = flags.has('decompress');
if (files.length < 2 || files.some((f) => !f.endsWith('.wasm'))) {
  console.error('usage: kernels-pairs.ts a.wasm b.wasm [...] [--corpus FILE] [--mb N] [--block KB] [--runs R] [--decompress]');
  process.exit(2);
}
const bytes = files.map((f) => readFileSync(f));
const digests = bytes.map((b) => createHash('sha256').update(b).digest('hex'));
if (new Set(digests).size !== digests.length) {
  console.error('kernels-pairs: two of the builds are the same module; V8 would share their code (see the header)');
  process.exit(2);
}

const data = CORPUS ? new Uint8Array(readFileSync(CORPUS).subarray(0, Math.round(MB * (1 << 20)))) : jsonLogs(Math.round(MB * (1 << 20)));
const blocks = Math.ceil(data.length / BLOCK);

const setups = files.map((file, i) => {
  const w = new WebAssembly.Instance(new WebAssembly.Module(bytes[i]!), {
    env: {
      abort() {
        throw new Error(`${file}: wasm abort`);
      },
    },
  }).exports as unknown as Kernels;
  const cap = w.lz4_compress_bound(BLOCK);
  const src = w.alloc(data.length);
  const dst = w.alloc(cap);
  const back = w.alloc(BLOCK);
  // Room for every block compressed, at a stride of the bound (the --decompress input).
  const packedAll = DECOMPRESS ? w.alloc(blocks * cap) : 0;
  new Uint8Array(w.memory.buffer, src, data.length).set(data);
  return { file, w, cap, src, dst, back, packedAll, best: new Float64Array(blocks).fill(Infinity), packed: 0 };
});

function blockLength(b: number): number {
  return Math.min(BLOCK, data.length - b * BLOCK);
}

/** Compresses block `b` with `s` and checks that it decodes back. */
function roundTrip(s: (typeof setups)[number], b: number): number {
  const n = s.w.lz4_compress_block(s.src + b * BLOCK, blockLength(b), s.dst, s.cap);
  const got = s.w.lz4_decompress_block(s.dst, n, s.back, BLOCK);
  const memory = new Uint8Array(s.w.memory.buffer);
  if (got !== blockLength(b) || Buffer.compare(memory.subarray(s.back, s.back + got), data.subarray(b * BLOCK, b * BLOCK + got)) !== 0) {
    throw new Error(`${s.file}: block ${b} does not round-trip`);
  }
  return n;
}

// Untimed first pass: the round trip, the sizes, and the JIT's tier-up.
for (const s of setups) for (let b = 0; b < blocks; b++) s.packed += roundTrip(s, b);
// The decompress input: the first build's blocks, copied into every build's memory.
const packedSizes = new Int32Array(blocks);
if (DECOMPRESS) {
  const first = setups[0]!;
  for (let b = 0; b < blocks; b++) {
    packedSizes[b] = first.w.lz4_compress_block(first.src + b * BLOCK, blockLength(b), first.dst, first.cap);
    const bytes = new Uint8Array(first.w.memory.buffer, first.dst, packedSizes[b]!).slice();
    for (const s of setups) new Uint8Array(s.w.memory.buffer).set(bytes, s.packedAll + b * s.cap);
  }
  for (const s of setups) {
    for (let b = 0; b < blocks; b++) {
      const got = s.w.lz4_decompress_block(s.packedAll + b * s.cap, packedSizes[b]!, s.back, BLOCK);
      const memory = new Uint8Array(s.w.memory.buffer);
      if (got !== blockLength(b) || Buffer.compare(memory.subarray(s.back, s.back + got), data.subarray(b * BLOCK, b * BLOCK + got)) !== 0) {
        throw new Error(`${s.file}: block ${b} of the first build does not decode`);
      }
    }
  }
}
for (let run = 0; run < RUNS; run++) {
  for (let b = 0; b < blocks; b++) {
    const length = blockLength(b);
    // Who goes first on a block rotates, so neither build always finds it in the cache.
    for (let k = 0; k < setups.length; k++) {
      const s = setups[(run + b + k) % setups.length]!;
      const t0 = performance.now();
      if (DECOMPRESS) s.w.lz4_decompress_block(s.packedAll + b * s.cap, packedSizes[b]!, s.back, BLOCK);
      else s.w.lz4_compress_block(s.src + b * BLOCK, length, s.dst, s.cap);
      const t = performance.now() - t0;
      if (t < s.best[b]!) s.best[b] = t;
    }
  }
}

const total = (s: (typeof setups)[number]) => s.best.reduce((a, t) => a + t, 0);
console.log(
  `kernels pairs: ${CORPUS ?? 'JSON logs'}, ${(data.length / (1 << 20)).toFixed(1)} MiB in ${BLOCK / 1024} KB blocks, ` +
    `fastest of ${RUNS} per block (wall clock), load ${loadavg()[0]!.toFixed(1)}`,
);
const first = total(setups[0]!);
for (const s of setups) {
  const t = total(s);
  console.log(`  ${s.file}: ${DECOMPRESS ? 'decompress' : 'compress'} ${(data.length / 1e3 / t).toFixed(0)} MB/s  ${(first / t).toFixed(3)}× the first  ratio ${(data.length / s.packed).toFixed(4)}`);
}
