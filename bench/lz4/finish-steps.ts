/**
 * What `SegmentWriter.finish` adds to a segment encode: `node --expose-gc --import tsx
 * bench/lz4/finish-steps.ts [--runs 9]`. Encodes the segment table's 50,000 × 1 KB JSON records
 * with LZ4 in batches of 500 (as segment-bench.ts does), each run ending in `finish()` (one fresh
 * array of the whole segment) or, every other run, `finishParts()` (the parts a `writev` takes);
 * prints the median CPU milliseconds of the appends and of each ending, and the minor page faults
 * of `finish()` (its result's first touch; see docs/benchmarks.md, "The block API beyond its kernel").
 */
import { loadavg } from 'node:os';
import { init } from '../../src/node/core.js';
import { SegmentWriter } from '../../src/core/segment.js';
import { dataset } from './segment-bench.js';
import { parseFlags } from '../lib/args.js';
import { median } from '../lib/quantiles.js';
import { minorPageFaults, processCpuMs } from '../lib/cpu.js';

const flags = parseFlags({ values: ['runs'] });
const RUNS = flags.number('runs', 9, 'positive');
const BATCH_RECORDS = 500;

await init();
const records = dataset('1kb-json', 50_000);
const figures = { appends: [] as number[], finish: [] as number[], 'finish faults': [] as number[], finishParts: [] as number[] };
// The last run's segment stays alive while the next is encoded, as segment-bench.ts keeps it.
let kept: unknown;
for (let run = 0; run <= 2 * RUNS; run++) {
  const writer = new SegmentWriter({ baseOffset: 0, codec: 'lz4', createdAt: 0 });
  const c0 = processCpuMs();
  for (let i = 0; i < records.length; i += BATCH_RECORDS) writer.append(records.slice(i, i + BATCH_RECORDS));
  const c1 = processCpuMs();
  const f0 = minorPageFaults();
  const parts = run % 2 === 1;
  kept = parts ? writer.finishParts() : writer.finish();
  const c2 = processCpuMs();
  if (run === 0) continue; // warm-up
  figures.appends.push(c1 - c0);
  if (parts) figures.finishParts.push(c2 - c1);
  else {
    figures.finish.push(c2 - c1);
    figures['finish faults'].push(minorPageFaults() - f0);
  }
}
console.log(
  `finish steps: 50,000 × 1 KB JSON, LZ4, batches of ${BATCH_RECORDS}, median CPU ms (faults: count), load ${loadavg()[0]!.toFixed(1)}: ` +
    Object.entries(figures)
      .map(([name, values]) => `${name} ${median(values).toFixed(1)}`)
      .join(' | '),
);
if (kept === undefined) throw new Error('no segment');
