/**
 * Block decompress with an owned result, on several kinds of data and block sizes, beside
 * lz4-napi: `node --expose-gc --import tsx bench/lz4/owned-decode.ts [--mb 32] [--runs 7]
 * [--blocks 64,4096] [--corpora json,text,source,binary,repetitive,random]`.
 * For each corpus (the five above and random bytes) and block size (KB) it times, by process CPU time in turns within every run:
 * `lz4.decompressBlock(packed, size)` (a fresh array per block, all kept until the run ends,
 * as a caller would keep them), the same blocks decoded `{ into }` one reused buffer (the kernel
 * and the copies without an owned result), and `lz4-napi`'s `uncompressSync` (a fresh Buffer
 * per block) of its own compressed blocks. The `lz4` CLI's `-b1` decode (native, wall clock, its
 * own compressor's blocks of the same size) is printed beside them for the kernel's sake.
 * Prints median MB/s (10^6 bytes of decoded data per CPU second), ours ÷ lz4-napi, and the minor
 * page faults per block of the two sides that allocate (median; Linux).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import * as lz4napi from 'lz4-napi';
import { init, lz4 } from '../../src/node/core.js';
import { jsonLogs, randomBytes, text } from './corpus.js';
import { lz4CliBench } from './lz4-cli.js';
import { parseFlags, refuseFlag } from '../lib/args.js';
import { ratio } from '../lib/format.js';
import { median } from '../lib/quantiles.js';
import { cpuSeconds } from '../lib/timing.js';
import { minorPageFaults } from '../lib/cpu.js';

const flags = parseFlags({ values: ['mb', 'runs', 'blocks', 'corpora'] });
const SIZE = Math.round(flags.number('mb', 32, 'positive') * (1 << 20));
const RUNS = flags.number('runs', 7, 'positive');
const BLOCKS = flags.list('blocks', ['64', '4096']).map((kb) => Number(kb) * 1024);
const require = createRequire(import.meta.url);

/** `bytes` repeated to `SIZE`. */
function repeatTo(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIZE);
  for (let at = 0; at < SIZE; at += bytes.length) out.set(bytes.subarray(0, SIZE - at), at);
  return out;
}

/** One JSON answer over and over, a byte changed every 4,099: ratios above 100, long matches. */
function repetitive(): Uint8Array {
  const line = new TextEncoder().encode('{"status":"ok","count":0,"items":[],"next":null}\n');
  const out = new Uint8Array(SIZE);
  for (let i = 0; i < SIZE; i++) out[i] = line[i % line.length]! ^ (i % 4099 === 0 ? 1 : 0);
  return out;
}

const CORPORA: Record<string, () => Uint8Array> = {
  json: () => jsonLogs(SIZE),
  text: () => text(SIZE),
  source: () => repeatTo(readFileSync(require.resolve('typescript/lib/typescript.js'))),
  // The node executable past its first 8 MiB: machine code and data tables.
  binary: () => repeatTo(readFileSync(process.execPath).subarray(8 << 20)),
  repetitive,
  // Incompressible: each block is one run of literals.
  random: () => randomBytes(SIZE),
};
const chosen = flags.list('corpora', Object.keys(CORPORA));
for (const name of chosen) if (!(name in CORPORA)) refuseFlag(`--corpora: unknown corpus '${name}'; known: ${Object.keys(CORPORA).join(', ')}`);

await init();
console.log(`owned decode: ${(SIZE / (1 << 20)).toFixed(0)} MiB per corpus, median of ${RUNS} runs by CPU time (MB/s), node ${process.version}, load average ${loadavg()[0]!.toFixed(1)}`);
console.log('corpus        block    ratio     owned   { into }   lz4-napi   owned ÷ napi   faults/block owned, napi   lz4 CLI decode (wall)');
for (const name of chosen) {
  const data = CORPORA[name]!();
  for (const block of BLOCKS) {
    const parts: Uint8Array[] = [];
    for (let at = 0; at < data.length; at += block) parts.push(data.subarray(at, at + block));
    const packed = parts.map((p) => lz4.compressBlock(p));
    const napiPacked = parts.map((p) => lz4napi.compressSync(Buffer.from(p.buffer, p.byteOffset, p.length)));
    let kept: Uint8Array[] = [];
    const buffer = new Uint8Array(block);
    const sides: (() => void)[] = [
      () => {
        kept = packed.map((p, i) => lz4.decompressBlock(p, parts[i]!.length));
      },
      () => {
        for (const p of packed) lz4.decompressBlock(p, { into: buffer });
      },
      () => {
        kept = napiPacked.map((p) => lz4napi.uncompressSync(p));
      },
    ];
    const times = sides.map(() => [] as number[]);
    const faults = sides.map(() => [] as number[]);
    for (let run = 0; run <= RUNS; run++) {
      for (let k = 0; k < sides.length; k++) {
        const i = (run + k) % sides.length;
        const before = minorPageFaults();
        const t = cpuSeconds(sides[i]!);
        if (run > 0) faults[i]!.push((minorPageFaults() - before) / parts.length);
        if (i !== 1 && kept.some((out, b) => Buffer.compare(out, parts[b]!) !== 0)) throw new Error(`${name}: side ${i} decoded wrong bytes`);
        kept = [];
        if (run > 0) times[i]!.push(t); // run 0 warms up the JIT tiers and the wasm memory
      }
    }
    const [owned, into, napi] = times.map((t) => data.length / 1e6 / median(t)) as [number, number, number];
    const [ownedFaults, , napiFaults] = faults.map((f) => median(f).toFixed(1));
    const packRatio = data.length / packed.reduce((n, p) => n + p.length, 0);
    const cli = lz4CliBench(data, `owned-decode-${name}`, block)?.decompress;
    console.log(
      `${name.padEnd(12)} ${`${block >> 10} KB`.padStart(7)} ${packRatio.toFixed(2).padStart(8)} ${owned.toFixed(0).padStart(9)} ${into.toFixed(0).padStart(10)} ${napi.toFixed(0).padStart(10)} ${ratio(owned, napi).padStart(14)} ${`${ownedFaults}, ${napiFaults}`.padStart(26)} ${cli === undefined ? '' : cli.toFixed(0).padStart(23)}`,
    );
  }
}
