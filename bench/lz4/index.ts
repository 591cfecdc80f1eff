/**
 * `npm run bench -- lz4 [--mb N] [--runs R]`: LZ4 compress/decompress throughput and ratio of
 * the QuartzDB WASM codec (block API in 64 KB blocks, and the frame API with 64 KB independent
 * blocks) beside lz4-napi (native), lz4js (pure JS) and the `lz4` CLI's own `-b1 -B4` figures,
 * on a JSON-log corpus and on random bytes (64 MiB each by default). Every figure is the
 * median of R runs of the whole call, boundary copies included, the in-process codecs taking
 * turns within every run (rotating order) so load changes during the bench hit all alike; MB/s = 10^6 bytes of
 * uncompressed data per second (`BENCH_CLOCK=cpu`: per CPU second). Then CRC32C (beside a JS table-driven CRC32C) and xxh32.
 * Targets (issue): decompress ≥ 2500 MB/s and ≥ 1.0× lz4-napi; compress ≥ 650 MB/s and
 * ≥ 0.9× lz4-napi; ratio within 3% of `lz4 -1 -B4`; CRC32C ≥ 2000 MB/s.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { loadavg, cpus } from 'node:os';
import Table from 'cli-table3';
import * as lz4napi from 'lz4-napi';
import { init, lz4, crc32c, xxh32 } from '../../src/node/core.js';
import { jsonLogs, randomBytes } from './corpus.js';
import { lz4CliBench } from './lz4-cli.js';
import { parseFlags } from '../lib/args.js';
import { ratio } from '../lib/format.js';
import { median } from '../lib/quantiles.js';
import { clockSeconds, settleHeap, useCpuClock } from '../lib/timing.js';
import { mainThreadNs, minorPageFaults } from '../lib/cpu.js';

const require = createRequire(import.meta.url);
const lz4js = require('lz4js') as { compress(src: Uint8Array): Uint8Array; decompress(src: Uint8Array): Uint8Array };

const flags = parseFlags({ values: ['mb', 'runs'] });
const SIZE = Math.round(flags.number('mb', 64, 'positive') * (1 << 20));
const RUNS = flags.number('runs', 5, 'positive');
const BLOCK = 65536;
const here = fileURLToPath(new URL('.', import.meta.url));

/**
 * Seconds of one call of `fn` by the BENCH_CLOCK clock (with BENCH_CLOCK=cpu every in-process
 * figure, ours and the peers' alike, is process CPU time; the `lz4` CLI row always reports its own
 * wall-clock figures), from a settled heap (see settleHeap).
 */
function timeOnce(fn: () => void): { seconds: number; faults: number; mainSeconds: number } {
  settleHeap();
  const before = minorPageFaults();
  const main = mainThreadNs();
  const seconds = clockSeconds(fn).seconds;
  return { seconds, faults: minorPageFaults() - before, mainSeconds: (mainThreadNs() - main) / 1e9 };
}

/** One contestant of a timed round: a whole call, and an untimed check of its result. */
interface Side {
  run: () => void;
  /** Runs after every call, outside the timing: checks the result and lets it go. */
  check?: () => void;
  /** Runs before every timed call, outside the timing (and before its forced GCs). */
  before?: () => void;
}

/**
 * One side's figures: median MB/s, median minor page faults per 64 KB of uncompressed data, and
 * median MB/s by the main thread's CPU time alone (without V8's helper threads: concurrent GC).
 */
interface Figures {
  mbs: number;
  faults: number;
  mainMbs: number;
}

/**
 * Median MB/s of each side over RUNS runs, for `bytes` of uncompressed data per call. Within
 * every run each side is called once, the order rotating from run to run, so load from other
 * processes that comes and goes during the bench falls on every side alike instead of on
 * whichever codec happened to be timed at the time.
 */
function interleaved(bytes: number, sides: Side[]): Figures[] {
  for (const s of sides) {
    s.run(); // warm-up: JIT, and memory growth in the wasm instance
    s.check?.();
  }
  const times = sides.map(() => [] as number[]);
  const faults = sides.map(() => [] as number[]);
  const mainTimes = sides.map(() => [] as number[]);
  for (let r = 0; r < RUNS; r++) {
    for (let k = 0; k < sides.length; k++) {
      const i = (r + k) % sides.length;
      sides[i]!.before?.();
      const t = timeOnce(sides[i]!.run);
      times[i]!.push(t.seconds);
      faults[i]!.push((t.faults * BLOCK) / bytes);
      mainTimes[i]!.push(t.mainSeconds);
      sides[i]!.check?.();
    }
  }
  return times.map((t, i) => ({ mbs: bytes / 1e6 / median(t), faults: median(faults[i]!), mainMbs: bytes / 1e6 / median(mainTimes[i]!) }));
}

/** Median MB/s of `fn` over RUNS runs, for `bytes` of uncompressed data per run. */
function throughput(bytes: number, fn: () => void): number {
  return interleaved(bytes, [{ run: fn }])[0]!.mbs;
}

function same(a: Uint8Array, b: Uint8Array, what: string): void {
  if (Buffer.compare(a, b) !== 0) throw new Error(`${what}: round trip differs`);
}

interface Row {
  name: string;
  compress: number;
  decompress: number;
  ratio: number;
  /** Minor page faults per 64 KB of uncompressed data, compress and decompress (not for the CLI). */
  faults?: [number, number];
}

/** One in-process codec on one corpus; `compress` must have run before `decompress`. */
interface Codec {
  name: string;
  compress: () => void;
  decompress: () => void;
  /** Checks the last decompress result against the corpus and drops it. */
  verify: () => void;
  /** Total compressed bytes of the last compress. */
  packedSize: () => number;
  /**
   * Lets the last compress result go before the next compress, as `verify` does for decompress:
   * kept, it doubled the live results during the next call, where V8 then ran a mark-compact.
   */
  dropPacked: () => void;
}

function chunks(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += BLOCK) out.push(data.subarray(i, i + BLOCK));
  return out;
}

const total = (xs: Uint8Array[]) => xs.reduce((n, p) => n + p.length, 0);

/** Our block API, and beside it the same blocks compressed and decoded into one caller-owned buffer each. */
function oursBlock(data: Uint8Array): { codec: Codec; into: Side; compressInto: Side } {
  const parts = chunks(data);
  let packed: Uint8Array[] = [];
  let back: Uint8Array[] = [];
  const codec: Codec = {
    name: 'quartz wasm, block API (64 KB blocks)',
    compress: () => {
      packed = parts.map((p) => lz4.compressBlock(p));
    },
    decompress: () => {
      back = packed.map((p, i) => lz4.decompressBlock(p, parts[i]!.length));
    },
    verify: () => {
      same(Buffer.concat(back), data, 'quartz block');
      back = [];
    },
    packedSize: () => total(packed),
    dropPacked: () => {
      packed = [];
    },
  };
  // Beside the headline, not in it: the caller reuses one output buffer, so no result allocation.
  const buffer = new Uint8Array(BLOCK);
  let intoSum = 0;
  const into: Side = {
    run: () => {
      for (const p of packed) intoSum += lz4.decompressBlock(p, { into: buffer }).length;
    },
    check: () => {
      if (intoSum !== data.length) throw new Error('quartz block into: decoded length differs');
      intoSum = 0;
    },
  };
  // Room for LZ4's worst case of a 64 KB block (lz4_compress_bound).
  const packedBuffer = new Uint8Array(BLOCK + BLOCK / 255 + 16);
  let packedSum = 0;
  const compressInto: Side = {
    run: () => {
      for (const p of parts) packedSum += lz4.compressBlock(p, { into: packedBuffer }).length;
    },
    check: () => {
      if (packedSum !== total(packed)) throw new Error('quartz block compress into: compressed length differs');
      packedSum = 0;
    },
  };
  return { codec, into, compressInto };
}

/** Figures of the block API writing into one caller-owned buffer (compress, decompress), per corpus. */
const intoFigures = new Map<Uint8Array, [Figures, Figures]>();
/** The block API's owned compress figures, per corpus (for its main-thread figure). */
const ownedCompressFigures = new Map<Uint8Array, Figures>();
/** The owned decompress figures of the block API and of lz4-napi's 64 KB blocks, per corpus (for their main-thread figures). */
const ownedDecompressFigures = new Map<Uint8Array, [Figures, Figures]>();

/**
 * A codec whose compress makes one packed buffer of the whole corpus and whose decompress one
 * buffer back (frames, or lz4-napi's block API on the whole buffer).
 */
function wholeBuffer<P extends Uint8Array>(name: string, data: Uint8Array, compress: () => P, decompress: (packed: P) => Uint8Array): Codec {
  let packed: P | undefined;
  let back: Uint8Array | undefined;
  return {
    name,
    compress: () => {
      packed = compress();
    },
    decompress: () => {
      back = decompress(packed!);
    },
    verify: () => {
      same(back!, data, name);
      back = undefined;
    },
    packedSize: () => packed!.length,
    dropPacked: () => {
      packed = undefined;
    },
  };
}

function oursFrame(data: Uint8Array): Codec {
  return wholeBuffer('quartz wasm, frame API (64K independent, content checksum)', data, () => lz4.compressFrame(data, { blockSize: '64K' }), (frame) => lz4.decompressFrame(frame));
}

function napiBlocks(data: Uint8Array): Codec {
  const parts = chunks(data).map((p) => Buffer.from(p.buffer, p.byteOffset, p.length));
  let packed: Buffer[] = [];
  let back: Buffer[] = [];
  return {
    name: 'lz4-napi, block (64 KB blocks)',
    compress: () => {
      packed = parts.map((p) => lz4napi.compressSync(p));
    },
    decompress: () => {
      back = packed.map((p) => lz4napi.uncompressSync(p));
    },
    verify: () => {
      same(Buffer.concat(back), data, 'lz4-napi blocks');
      back = [];
    },
    packedSize: () => total(packed),
    dropPacked: () => {
      packed = [];
    },
  };
}

function napiWhole(data: Uint8Array): Codec {
  const input = Buffer.from(data.buffer, data.byteOffset, data.length);
  return wholeBuffer('lz4-napi, block (whole buffer)', data, () => lz4napi.compressSync(input), (packed) => lz4napi.uncompressSync(packed));
}

function napiFrame(data: Uint8Array): Codec {
  const input = Buffer.from(data.buffer, data.byteOffset, data.length);
  return wholeBuffer('lz4-napi, frame', data, () => lz4napi.compressFrameSync(input), (packed) => lz4napi.decompressFrameSync(packed));
}

function lz4jsFrame(data: Uint8Array): Codec {
  return wholeBuffer('lz4js (pure JS), frame', data, () => lz4js.compress(data), (packed) => lz4js.decompress(packed));
}

/**
 * The in-process rows of one corpus: every codec's compress is timed in turns with the others,
 * then every codec's decompress (and the `{ into }` decode) likewise.
 */
function inProcessRows(data: Uint8Array): Row[] {
  const block = oursBlock(data);
  const codecs = [block.codec, oursFrame(data), napiBlocks(data), napiWhole(data), napiFrame(data), lz4jsFrame(data)];
  // The owned compress runs first once, so that the `{ into }` side's check has its sizes.
  block.codec.compress();
  const compress = interleaved(data.length, [...codecs.map((c) => ({ run: c.compress, before: c.dropPacked })), block.compressInto]);
  const decoded = interleaved(data.length, [...codecs.map((c) => ({ run: c.decompress, check: c.verify })), block.into]);
  intoFigures.set(data, [compress[codecs.length]!, decoded[codecs.length]!]);
  ownedCompressFigures.set(data, compress[0]!);
  ownedDecompressFigures.set(data, [decoded[0]!, decoded[2]!]);
  return codecs.map((c, i) => ({
    name: c.name,
    compress: compress[i]!.mbs,
    decompress: decoded[i]!.mbs,
    ratio: data.length / c.packedSize(),
    faults: [compress[i]!.faults, decoded[i]!.faults],
  }));
}

/** The CLI's own benchmark, `lz4 -b1 -B4`, as a row. */
function cliBench(data: Uint8Array, name: string): Row | undefined {
  const cli = lz4CliBench(data, `lz4-${name}`);
  return cli && { name: 'lz4 CLI 1.9 -b1 -B4 (native, 64 KB blocks)', ...cli };
}

/** One table for every corpus; each corpus's rows are compared with its first (ours) row. */
function printTable(sections: [string, Row[]][]): void {
  const table = new Table({
    head: ['codec', 'compress MB/s', 'ours ÷ it', 'decompress MB/s', 'ours ÷ it', 'ratio', 'ours ÷ it', 'page faults / 64 KB (c, d)'],
    colAligns: ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
  });
  for (const [title, rows] of sections) {
    const ours = rows[0]!;
    table.push([{ colSpan: 8, content: title }]);
    for (const r of rows) {
      table.push([
        r.name,
        r.compress.toFixed(0),
        ratio(ours.compress, r.compress),
        r.decompress.toFixed(0),
        ratio(ours.decompress, r.decompress),
        r.ratio.toFixed(3),
        (ours.ratio / r.ratio).toFixed(3),
        r.faults ? `${r.faults[0].toFixed(1)}, ${r.faults[1].toFixed(1)}` : '',
      ]);
    }
  }
  console.log(table.toString());
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function crc32cJs(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

await init();
console.log(
  `LZ4 bench: ${(SIZE / (1 << 20)).toFixed(1)} MiB per corpus, median of ${RUNS} runs, node ${process.version}, ` +
    `${useCpuClock ? 'CPU time (the CLI row: wall clock)' : 'wall clock'}, load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores (figures shrink as it rises)`,
);
const corpora: [string, Uint8Array][] = [
  ['JSON logs', jsonLogs(SIZE)],
  ['random bytes', randomBytes(SIZE)],
];
const results: Record<string, Row[]> = {};
for (const [name, data] of corpora) {
  const rows = inProcessRows(data);
  const cli = cliBench(data, name.replace(/\W+/g, '-'));
  if (cli) rows.push(cli);
  results[name] = rows;
}
printTable(corpora.map(([name, data]) => [`${name}, ${(data.length / (1 << 20)).toFixed(0)} MiB`, results[name]!]));

const json = results['JSON logs']!;
const [block, , napiBlock, napiBuf] = json;
const cli = json.find((r) => r.name.startsWith('lz4 CLI'));
console.log('\nTargets on JSON logs (quartz block API):');
console.log(`  decompress ${block!.decompress.toFixed(0)} MB/s (target ≥ 2500); vs lz4-napi ${ratio(block!.decompress, napiBlock!.decompress)} (64 KB blocks), ${ratio(block!.decompress, napiBuf!.decompress)} (whole buffer) (target ≥ 1.0×)`);
console.log(`  compress   ${block!.compress.toFixed(0)} MB/s (target ≥ 650); vs lz4-napi ${ratio(block!.compress, napiBlock!.compress)} (64 KB blocks), ${ratio(block!.compress, napiBuf!.compress)} (whole buffer) (target ≥ 0.9×)`);
const [compressInto, into] = intoFigures.get(corpora[0]![1])!;
const owned = ownedCompressFigures.get(corpora[0]![1])!;
// Kept results are external memory that sets off V8's concurrent GC: its helper threads' share shows here.
console.log(`  compress by the main thread's CPU alone (no GC helper threads): owned ${owned.mainMbs.toFixed(0)} MB/s, { into } ${compressInto.mainMbs.toFixed(0)} MB/s`);
const [ownedDecode, napiDecode] = ownedDecompressFigures.get(corpora[0]![1])!;
// 64 MiB of fresh results per call cross V8's 64 MiB external-memory limit: the GC that starts runs partly on helper threads.
console.log(`  decompress by the main thread's CPU alone (no GC helper threads): owned ${ownedDecode.mainMbs.toFixed(0)} MB/s, lz4-napi ${napiDecode.mainMbs.toFixed(0)} MB/s (64 KB blocks), { into } ${into.mainMbs.toFixed(0)} MB/s`);
console.log(`  decompress into a caller-owned buffer ({ into }, no result allocated): ${into.mbs.toFixed(0)} MB/s (${into.faults.toFixed(1)} page faults / 64 KB); vs lz4-napi ${ratio(into.mbs, napiBlock!.decompress)} (64 KB blocks, which allocates its results)`);
console.log(`  compress into a caller-owned buffer ({ into }, no result allocated): ${compressInto.mbs.toFixed(0)} MB/s (${compressInto.faults.toFixed(1)} page faults / 64 KB); vs lz4-napi ${ratio(compressInto.mbs, napiBlock!.compress)}`);
if (cli) {
  const worse = (1 - block!.ratio / cli.ratio) * 100;
  console.log(`  ratio      ${block!.ratio.toFixed(3)} vs lz4 -1 -B4 ${cli.ratio.toFixed(3)}: ${Math.abs(worse).toFixed(2)}% ${worse > 0 ? 'worse' : 'better'} (target ≤ 3% worse)`);
}

const data = corpora[0]![1];
let sink = 0;
const crcRows = new Table({ head: ['checksum', 'MB/s', 'vs JS CRC32C'], colAligns: ['left', 'right', 'right'] });
const jsSize = Math.min(data.length, 16 << 20);
const jsCrc = throughput(jsSize, () => {
  sink ^= crc32cJs(data.subarray(0, jsSize));
});
const wasmCrc = throughput(data.length, () => {
  sink ^= crc32c(data);
});
const wasmXxh = throughput(data.length, () => {
  sink ^= xxh32(data);
});
if (crc32cJs(data.subarray(0, 1 << 20)) !== crc32c(data.subarray(0, 1 << 20))) throw new Error('crc32c mismatch');
crcRows.push(['quartz wasm crc32c (slicing-by-16)', wasmCrc.toFixed(0), ratio(wasmCrc, jsCrc)]);
crcRows.push(['JS table-driven crc32c', jsCrc.toFixed(0), '1.00×']);
crcRows.push(['quartz wasm xxh32', wasmXxh.toFixed(0), '']);
console.log('\nChecksums (JSON logs, whole call incl. copy into wasm memory; target CRC32C ≥ 2000 MB/s)');
console.log(crcRows.toString());
if (sink === 0.5) console.log(sink);

// The segment codec is measured in a process of its own: here the heap still holds both corpora
// and every codec's leftovers, and its decode figures measured that heap (35-55% GC, fresh pages
// for each decoded batch) rather than the codec.
const segmentBench = join(here, 'segment-bench.ts');
const segmentRun = spawnSync(process.execPath, [...process.execArgv, segmentBench], { stdio: 'inherit' });
if (segmentRun.status !== 0) throw new Error(`segment bench exited with ${segmentRun.status ?? segmentRun.signal}`);
