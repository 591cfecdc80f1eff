/**
 * Segment codec throughput: encode (SegmentWriter.append per produced batch + finish) and decode
 * (SegmentReader.open + readFrom over every record) of 1 KB JSON records and 100 B records, codec
 * none and lz4, median of 5 runs, against the targets of the segment issue (encode of 1 KB JSON
 * with LZ4 ≥ 400 MB/s of payload, decode ≥ 1 GB/s). Payload = key + value bytes. Beside the
 * default decode (a fresh array per LZ4 batch, owned by its records), 'lz4, output' decodes the
 * same segment into recycled memory (DecodeOptions.output), as a consumer done with each page can.
 * `BENCH_SCALE=0.1` (or the `scale` option) shrinks the record counts while developing;
 * `BENCH_CLOCK=cpu` times by process CPU time instead of wall clock.
 */
import { availableParallelism, loadavg } from 'node:os';
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { codecs, init, type QuartzExports } from '../../src/node/core.js';
import { BATCH_HEADER_SIZE, SegmentReader, SegmentWriter, encodeBatch, type DecodeOptions, type SegmentCodec, type SegmentRecord } from '../../src/core/segment.js';
import { seededRandom as rng } from '../../src/core/random-testing.js';
import { columns } from '../lib/format.js';
import { median } from '../lib/quantiles.js';
import { clockSeconds, settleHeap, useCpuClock } from '../lib/timing.js';
import { minorPageFaults } from '../lib/cpu.js';

interface Kernels extends QuartzExports {
  crc32c(crc: number, ptr: number, len: number): number;
  lz4_compress_bound(n: number): number;
  lz4_compress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
  lz4_decompress_block(src: number, srcLen: number, dst: number, dstCap: number): number;
}

const TARGET_ENCODE_MBS = 400;
const TARGET_DECODE_MBS = 1000;
const RUNS = 5;
/** Untimed encodes before each encode block's timed ones (see the timing loop). */
const ENCODE_WARMUPS = 6;
/** Records per produced batch: what one produce call of a busy client carries. */
const BATCH_RECORDS = 500;

const WORDS = ['order', 'created', 'shipped', 'pending', 'alice', 'bob', 'carol', 'widget', 'gadget', 'sprocket', 'eu-west', 'us-east', 'premium', 'basic'];

/** A JSON event of about `size` bytes: repeated field names, varied values, like real logs. */
function jsonRecord(next: () => number, size: number): Uint8Array {
  const pick = () => WORDS[Math.floor(next() * WORDS.length)]!;
  const event: Record<string, unknown> = {
    id: `evt_${Math.floor(next() * 1e12).toString(36)}`,
    type: `${pick()}.${pick()}`,
    ts: 1_700_000_000_000 + Math.floor(next() * 1e9),
    user: { id: Math.floor(next() * 1e6), name: pick(), region: pick(), plan: pick() },
    items: [] as unknown[],
  };
  let text = JSON.stringify(event);
  while (text.length < size - 80) {
    (event.items as unknown[]).push({ sku: `${pick()}-${Math.floor(next() * 1e5)}`, qty: Math.floor(next() * 9) + 1, price: Math.round(next() * 1e4) / 100 });
    text = JSON.stringify(event);
  }
  return new TextEncoder().encode(text.padEnd(size, ' '));
}

/**
 * `count` records of one kind; `seed` varies the content (kernels-ab.ts builds many batches).
 * Their keys and values view one buffer, as records parsed from a produce request's body do: an
 * array buffer of its own per key and value (600,000 of them at 100 B) made every GC of the
 * bench's heap pay to sweep them, 40-55 ms pauses that fell on whichever call was being timed.
 */
export function dataset(kind: '1kb-json' | '100b', count: number, seed = 0): SegmentRecord[] {
  const next = rng((kind === '1kb-json' ? 1 : 2) + seed);
  const out: SegmentRecord[] = new Array(count);
  const key = (i: number) => new TextEncoder().encode(`user-${i % 1000}`);
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const value = kind === '1kb-json' ? jsonRecord(next, 1024) : jsonRecord(next, 100).subarray(0, 100);
    out[i] = { key: key(i), value, timestamp: 1_700_000_000_000 + i, headers: i % 10 === 0 ? [{ key: 'trace', value: key(i) }] : undefined };
    bytes += out[i]!.key!.length + value.length + (out[i]!.headers?.[0]!.value!.length ?? 0);
  }
  const body = new Uint8Array(bytes);
  let at = 0;
  const packed = (b: Uint8Array) => {
    body.set(b, at);
    return body.subarray(at, (at += b.length));
  };
  for (const r of out) {
    r.key = packed(r.key!);
    r.value = packed(r.value!);
    for (const h of r.headers ?? []) h.value = packed(h.value!);
  }
  return out;
}

function encode(records: SegmentRecord[], codec: SegmentCodec): Uint8Array {
  const w = new SegmentWriter({ baseOffset: 0, codec, createdAt: 0 });
  for (let i = 0; i < records.length; i += BATCH_RECORDS) w.append(records.slice(i, i + BATCH_RECORDS));
  return w.finish();
}

/**
 * A decode `output` (DecodeOptions) handing out `slots` recycled buffers in turn: a consumer that
 * is done with a page before it reads the next. A page of BATCH_RECORDS × 4 records spans at
 * most 5 batches, so 8 slots never hand out memory that records of the current page (or the
 * reader's kept last batch) still use.
 */
function recycled(slots: number): (length: number) => Uint8Array {
  const buffers: Uint8Array[] = [];
  let next = 0;
  return (length) => {
    const i = next;
    next = (next + 1) % slots;
    let b = buffers[i];
    if (b === undefined || b.length < length) buffers[i] = b = new Uint8Array(length);
    return b.subarray(0, length);
  };
}

function decode(segment: Uint8Array, count: number, options?: DecodeOptions): number {
  const r = SegmentReader.open(segment, options);
  let got = 0;
  let bytes = 0;
  // Paged reads, as a consumer does, touching every value so nothing is optimised away.
  for (let offset = r.baseOffset; offset < r.nextOffset; ) {
    const page = r.readFrom(offset, BATCH_RECORDS * 4);
    for (const rec of page) bytes += rec.value!.length;
    got += page.length;
    offset = page[page.length - 1]!.offset + 1;
  }
  if (got !== count) throw new Error(`decoded ${got} of ${count} records`);
  return bytes;
}

interface Section {
  src: number;
  len: number;
  dst: number;
  cap: number;
  packed: number;
  out: number;
}

/**
 * The floor under the codec: only the WASM kernels (LZ4 block + CRC32C over the stored bytes) on
 * the same records sections, already in WASM memory. codec ÷ kernels shows what framing costs.
 */
function kernelSections(records: SegmentRecord[]): Section[] {
  const w = codecs<Kernels>();
  const sections: Section[] = [];
  for (let i = 0; i < records.length; i += BATCH_RECORDS) {
    const plain = encodeBatch(records.slice(i, i + BATCH_RECORDS), { baseOffset: i, codec: 'none' });
    const len = plain.length - BATCH_HEADER_SIZE;
    const cap = w.lz4_compress_bound(len);
    const src = w.alloc(len);
    const dst = w.alloc(cap);
    const out = w.alloc(len);
    new Uint8Array(w.memory.buffer, src, len).set(plain.subarray(BATCH_HEADER_SIZE));
    sections.push({ src, len, dst, cap, packed: 0, out });
  }
  return sections;
}

function kernelsEncode(sections: Section[]): void {
  const w = codecs<Kernels>();
  for (const s of sections) {
    s.packed = w.lz4_compress_block(s.src, s.len, s.dst, s.cap);
    w.crc32c(0, s.dst, s.packed);
  }
}

function kernelsDecode(sections: Section[]): void {
  const w = codecs<Kernels>();
  for (const s of sections) {
    w.crc32c(0, s.dst, s.packed);
    w.lz4_decompress_block(s.dst, s.packed, s.out, s.len);
  }
}

/** Wall-clock windows of the timed calls, to attribute garbage-collection pauses to them. */
const windows: { label: string; start: number; end: number }[] = [];
/**
 * Seconds of one call by the BENCH_CLOCK clock (CPU time includes GC threads). Unlike the lz4
 * table's calls, these start without forced GCs: see docs/benchmarks.md, the segment table.
 */
function time(fn: () => void, label = ''): number {
  const { seconds, start, end } = clockSeconds(fn);
  windows.push({ label, start, end });
  return seconds;
}

/**
 * Main-thread GC pause share of the windows labelled `label`: which part of a figure is the
 * collector (often paying for garbage of the phase timed before) rather than the codec.
 */
function gcShare(entries: readonly PerformanceEntry[], label: string): number {
  let paused = 0;
  let total = 0;
  for (const w of windows) {
    if (w.label !== label) continue;
    total += w.end - w.start;
    for (const e of entries) if (e.startTime >= w.start && e.startTime < w.end) paused += Math.min(e.duration, w.end - e.startTime);
  }
  return total === 0 ? 0 : paused / total;
}

/** Prints the segment codec table. */
export async function segmentBench(options: { scale?: number } = {}): Promise<void> {
  await init();
  const scale = options.scale ?? Number(process.env.BENCH_SCALE ?? 1);
  const rows: string[][] = [];
  const gcEntries: PerformanceEntry[] = [];
  const observer = new PerformanceObserver((list) => gcEntries.push(...list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  windows.length = 0;
  for (const [kind, full] of [['1kb-json', 50_000], ['100b', 300_000]] as const) {
    const count = Math.max(BATCH_RECORDS, Math.round(full * scale));
    const records = dataset(kind, count);
    let payload = 0;
    for (const r of records) payload += r.key!.length + r.value!.length;
    const mb = payload / 1e6;
    // The codecs and the kernels are timed in turn within each run, so that load from other
    // processes on a shared machine falls on all of them alike and the ratios stay meaningful.
    // 'lz4, output': the lz4 segment decoded into recycled memory (DecodeOptions.output), beside
    // the default that gives every batch a fresh array; decode only, its encode is lz4's.
    const variants = ['none', 'lz4', 'lz4, output', 'kernels'] as const;
    const segments = new Map<string, Uint8Array>();
    const sections = kernelSections(records);
    const enc = new Map<string, number[]>(variants.map((v) => [v, []]));
    const dec = new Map<string, number[]>(variants.map((v) => [v, []]));
    /** Minor page faults of each encode: `finish`'s fresh result faults on every page in some runs and none in others. */
    const encFaults = new Map<string, number[]>(variants.map((v) => [v, []]));
    const output = recycled(8);
    // Every encode run first, then every decode run: a decode timed right after an encode paid
    // for the encode's garbage (the discarded segment of the run before set off a full GC in it),
    // where a consumer's reads follow each other. The `none` encodes run in a block of their own
    // before the others: each leaves ~24 MB of staging beyond what writers keep (its 52 MB
    // segment needs it) for the next GCs to free, and the LZ4 encode timed after it then took its
    // result from pages glibc had not mapped yet (4,210 faults, +50 ms) in 1-4 of 5 runs; see
    // docs/benchmarks.md, session 19. Two forced GCs start each block (outside the timing):
    // without them the `none` block's last staging was still being freed as the LZ4 block's
    // timed runs began. Then warm-ups: they compile and grow glibc's heap back to what a writer
    // whose caller keeps the previous segment needs, its results and those the next full GC
    // frees (with 3, the first timed LZ4 encode still faulted in 4 tables of 4; with 6, 7 encodes
    // of 40 did, 0-2 per table).
    const blocks = [
      { phase: 'encode', variants: ['none'], warmups: ENCODE_WARMUPS },
      { phase: 'encode', variants: ['lz4', 'kernels'], warmups: ENCODE_WARMUPS },
      { phase: 'decode', variants, warmups: 1 },
    ] as const;
    for (const { phase, variants: timed, warmups } of blocks) {
      // The block before's garbage is collected here, before the warm-ups, rather than in them.
      settleHeap();
      for (let run = 0; run < warmups + RUNS; run++) {
        const kept = run >= warmups;
        for (const v of timed) {
          const f0 = minorPageFaults();
          const t =
            phase === 'encode'
              ? v === 'kernels'
                ? time(() => kernelsEncode(sections), kept ? `${kind} ${v} encode` : '')
                : time(() => segments.set(v, encode(records, v as SegmentCodec)), kept ? `${kind} ${v} encode` : '')
              : time(
                  () => (v === 'kernels' ? kernelsDecode(sections) : v === 'lz4, output' ? decode(segments.get('lz4')!, count, { output }) : decode(segments.get(v)!, count)),
                  kept ? `${kind} ${v}` : '',
                );
          if (kept) (phase === 'encode' ? enc : dec).get(v)!.push(t);
          if (kept && phase === 'encode') encFaults.get(v)!.push(minorPageFaults() - f0);
          // Node delivers GC entries from the event loop: without a turn of it, the entries of
          // runs with no full GC were lost and "dec GC" read 0%.
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    }
    const e = (v: string) => median(enc.get(v)!);
    const d = (v: string) => median(dec.get(v)!);
    for (const v of variants) {
      const decodeOnly = v === 'lz4, output';
      const note =
        v === 'lz4' && kind === '1kb-json'
          ? `vs target (400/1000 MB/s): enc ${(mb / e(v) / TARGET_ENCODE_MBS).toFixed(2)}× dec ${(mb / d(v) / TARGET_DECODE_MBS).toFixed(2)}×`
          : decodeOnly && kind === '1kb-json'
            ? `vs target (1000 MB/s): dec ${(mb / d(v) / TARGET_DECODE_MBS).toFixed(2)}×`
            : v === 'kernels'
              ? `lz4 codec/kernels: enc ${(e(v) / e('lz4')).toFixed(2)}× dec ${(d(v) / d('lz4')).toFixed(2)}×`
              : '';
      rows.push([
        kind,
        v,
        String(count),
        v === 'kernels' || decodeOnly ? '' : (segments.get(v)!.length / payload).toFixed(3),
        decodeOnly ? '' : (mb / e(v)).toFixed(0),
        decodeOnly ? '' : (count / e(v) / 1e6).toFixed(2),
        decodeOnly ? '' : median(encFaults.get(v)!).toFixed(0),
        decodeOnly ? '' : `${kind} ${v} encode`, // the window labels: replaced by GC shares once the observer has delivered
        (mb / d(v)).toFixed(0),
        (count / d(v) / 1e6).toFixed(2),
        `${kind} ${v}`,
        note,
      ]);
    }
    const w = codecs<Kernels>();
    for (const s of sections) [s.src, s.dst, s.out].forEach((p) => w.free(p));
  }
  // GC entries are delivered asynchronously: let the observer catch up before reading them.
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();
  const share = (label: string) => (label === '' ? '' : `${(100 * gcShare(gcEntries, label)).toFixed(0)}%`);
  for (const r of rows) [r[7], r[10]] = [share(r[7]!), share(r[10]!)];
  const head = ['records', 'codec', 'count', 'size/payload', 'enc MB/s', 'enc Mrec/s', 'enc faults', 'enc GC', 'dec MB/s', 'dec Mrec/s', 'dec GC', 'ratio'];
  console.log(
    `\nsegment codec (median of 5, ${useCpuClock ? 'CPU' : 'wall-clock'} time, load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores; ` +
      'MB/s of key+value payload; "kernels" = LZ4 block + CRC32C alone on the same bytes; ' +
      '"enc faults" = median minor page faults per encode; "enc GC" / "dec GC" = share of encode / decode wall time spent in main-thread GC pauses)',
  );
  for (const line of columns(head, rows)) console.log(line);
}

// Runs on its own too: `npx tsx bench/lz4/segment-bench.ts`.
if (import.meta.url === `file://${process.argv[1]}`) await segmentBench();
