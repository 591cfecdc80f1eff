/**
 * A/B of the WASM kernels of two or more quartz.wasm builds, for kernel work on a shared machine:
 * `npx tsx bench/lz4/kernels-ab.ts /tmp/before.wasm build/quartz.wasm [--mb 16] [--records] [--corpus FILE]
 * [--block KB] [--api] [--only compress,decompress] [--runs R]`.
 * Each build gets its own instance with the corpus already in its memory; LZ4 block compress
 * and decompress (64 KB blocks of JSON logs, or with --records 512 KB blocks of the segment
 * bench's 1 KB JSON records sections, or with --corpus the first --mb MiB of a file, such as
 * the streams bench's 1 KB records; --block sets the block size in KB),
 * CRC32C over the whole corpus and over 4 KB pieces are timed by process CPU time, the builds
 * taking turns within every run so that load from other processes falls on all alike. Prints
 * the median MB/s of 7 runs and checks that every build round-trips the corpus. With --api, also
 * the block API's path per block: the JS block copied in, the kernel, an owned copy of the result
 * sliced out (what lz4.compressBlock / decompressBlock do), so that a kernel change can be seen
 * through the copies and allocations that surround it. --only times just the named rows (the
 * round trip is still checked), --runs sets the number of runs.
 */
import { readFileSync } from 'node:fs';
import { jsonLogs } from './corpus.js';
import { parseFlags } from '../lib/args.js';
import { median } from '../lib/quantiles.js';
import { cpuSeconds } from '../lib/timing.js';
import { dataset } from './segment-bench.js';
import { init } from '../../src/node/core.js';
import { BATCH_HEADER_SIZE, encodeBatch } from '../../src/core/segment.js';

interface Kernels {
  memory: WebAssembly.Memory;
  alloc(size: number): number;
  lz4_compress_bound(n: number): number;
  lz4_compress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
  lz4_decompress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
  crc32c(crc: number, ptr: number, len: number): number;
}

const flags = parseFlags({ values: ['mb', 'corpus', 'block', 'runs', 'only'], switches: ['records', 'api'], positionals: true });
const files = flags.positionals.filter((a) => a.endsWith('.wasm'));
const MB = flags.number('mb', 16, 'positive');
const RECORDS = flags.has('records');
const CORPUS = flags.string('corpus');
const API = flags.has('api');
const RUNS = flags.number('runs', 7, 'positive');
const ONLY = flags.string('only') === undefined ? undefined : new Set(flags.list('only', []));
if (files.length === 0 || files.length !== flags.positionals.length) {
  console.error('usage: kernels-ab.ts a.wasm [b.wasm ...] [--mb N] [--records | --corpus FILE] [--block KB] [--api] [--only compress,decompress] [--runs R]');
  process.exit(2);
}

/** The records sections of the segment bench's 1 KB JSON batches, back to back. */
async function records(size: number): Promise<Uint8Array> {
  await init();
  const out = new Uint8Array(size);
  const perBatch = 500;
  for (let at = 0, base = 0; at < size; base += perBatch) {
    const batch = encodeBatch(dataset('1kb-json', perBatch, base), { baseOffset: base, codec: 'none' }).subarray(BATCH_HEADER_SIZE);
    out.set(batch.subarray(0, size - at), at);
    at += batch.length;
  }
  return out;
}

const data = CORPUS ? new Uint8Array(readFileSync(CORPUS).subarray(0, MB << 20)) : RECORDS ? await records(MB << 20) : jsonLogs(MB << 20);
const BLOCK = flags.number('block', RECORDS ? 512 : 64, 'positive') * 1024;

const setups = files.map((file) => {
  const w = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(file)), {
    env: {
      abort() {
        throw new Error(`${file}: wasm abort`);
      },
    },
  }).exports as unknown as Kernels;
  const n = data.length;
  const blocks = Math.ceil(n / BLOCK);
  const cap = w.lz4_compress_bound(BLOCK);
  const src = w.alloc(n);
  const dst = w.alloc(blocks * cap);
  const out = w.alloc(n);
  new Uint8Array(w.memory.buffer, src, n).set(data);
  // The API path's two scratch regions, and its results (kept until the next run, as a caller would).
  const scratchIn = w.alloc(cap);
  const scratchOut = w.alloc(cap);
  return { file, w, n, blocks, cap, src, dst, out, sizes: new Int32Array(blocks), scratchIn, scratchOut, packed: [] as Uint8Array[], unpacked: [] as Uint8Array[] };
});
type Setup = (typeof setups)[number];

const parts = Array.from({ length: Math.ceil(data.length / BLOCK) }, (_, b) => data.subarray(b * BLOCK, (b + 1) * BLOCK));

const apiOps: Record<string, (s: Setup) => void> = {
  'api compress'(s) {
    s.packed = parts.map((p) => {
      const memory = new Uint8Array(s.w.memory.buffer);
      memory.set(p, s.scratchIn);
      const n = s.w.lz4_compress_block(s.scratchIn, p.length, s.scratchOut, s.cap);
      return memory.slice(s.scratchOut, s.scratchOut + n);
    });
  },
  'api decompress'(s) {
    s.unpacked = s.packed.map((p, b) => {
      const memory = new Uint8Array(s.w.memory.buffer);
      memory.set(p, s.scratchIn);
      const n = s.w.lz4_decompress_block(s.scratchIn, p.length, s.scratchOut, parts[b]!.length);
      return memory.slice(s.scratchOut, s.scratchOut + n);
    });
  },
};

const allOps: Record<string, (s: Setup) => void> = {
  compress(s) {
    for (let b = 0; b < s.blocks; b++) {
      s.sizes[b] = s.w.lz4_compress_block(s.src + b * BLOCK, Math.min(BLOCK, s.n - b * BLOCK), s.dst + b * s.cap, s.cap);
    }
  },
  decompress(s) {
    for (let b = 0; b < s.blocks; b++) {
      const len = Math.min(BLOCK, s.n - b * BLOCK);
      const got = s.w.lz4_decompress_block(s.dst + b * s.cap, s.sizes[b]!, s.out + b * BLOCK, len);
      if (got !== len) throw new Error(`${s.file}: block ${b} decoded to ${got}`);
    }
  },
  crc32c(s) {
    s.w.crc32c(0, s.src, s.n);
  },
  'crc32c 4 KB'(s) {
    for (let at = 0; at < s.n; at += 4096) s.w.crc32c(0, s.src + at, Math.min(4096, s.n - at));
  },
  ...(API ? apiOps : {}),
};
const ops = Object.fromEntries(Object.entries(allOps).filter(([name]) => !ONLY || ONLY.has(name)));


// Decompress (timed or only checked) reads what compress wrote.
if (!('compress' in ops)) setups.forEach((s) => allOps.compress!(s));
const times = setups.map(() => Object.fromEntries(Object.keys(ops).map((k) => [k, [] as number[]])));
for (let run = 0; run <= RUNS; run++) {
  setups.forEach((s, i) => {
    for (const [name, op] of Object.entries(ops)) {
      const t = cpuSeconds(() => op(s));
      if (run > 0) times[i]![name]!.push(t); // run 0 warms up the JIT tiers
    }
  });
}

console.log(`kernels A/B: ${CORPUS ?? (RECORDS ? 'segment-style records' : 'JSON logs')}, ${(data.length / 1048576).toFixed(0)} MiB in ${BLOCK / 1024} KB blocks, median of ${RUNS} runs by CPU time (MB/s)`);
setups.forEach((s, i) => {
  // The round trip is checked even when decompress was not timed.
  if (!('decompress' in ops)) allOps.decompress!(s);
  if (Buffer.compare(Buffer.from(s.w.memory.buffer, s.out, s.n), Buffer.from(data.buffer, data.byteOffset, data.length)) !== 0) {
    throw new Error(`${s.file}: round trip differs`);
  }
  // Only when the API decode ran: `--api --only compress` leaves nothing to compare.
  if ('api decompress' in ops && Buffer.compare(Buffer.concat(s.unpacked), Buffer.from(data.buffer, data.byteOffset, data.length)) !== 0) {
    throw new Error(`${s.file}: API-path round trip differs`);
  }
  const packed = s.sizes.reduce((a, b) => a + b, 0);
  const figures = Object.keys(ops).map((name) => `${name} ${(s.n / 1e6 / median(times[i]![name]!)).toFixed(0)}`);
  console.log(`  ${s.file}: ${figures.join('  ')}  ratio ${(s.n / packed).toFixed(4)}`);
});
