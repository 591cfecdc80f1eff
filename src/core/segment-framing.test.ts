/**
 * frameRun + sealRun, the two halves of encodeBatchRun that a home may run on two threads, give
 * encodeBatchRun's bytes exactly, and frameRun rejects what encodeBatchRun rejects.
 */
import { describe, expect, it } from 'vitest';
import { init } from '../node/core.js';
import { ErrorCode, QuartzError } from './errors.js';
import { seededRandom } from './random-testing.js';
import { RecordSpans, decodeBatchRun, encodeBatchRun, frameRun, readBatchRun, sealRun, type EncodableRecord, type SegmentCodec } from './segment.js';

await init();

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Byte equality without the matcher's per-element walk, which took seconds on these runs. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Records of mixed shapes: compressible and random values, keys, headers, own and default timestamps. */
function records(random: () => number, n: number): EncodableRecord[] {
  const out: EncodableRecord[] = [];
  for (let i = 0; i < n; i++) {
    const len = random() < 0.05 ? 2000 + Math.floor(random() * 6000) : Math.floor(random() * 300);
    const value = new Uint8Array(len);
    const noisy = random() < 0.3;
    for (let j = 0; j < len; j++) value[j] = noisy ? Math.floor(random() * 256) : 0x61 + (j % 7);
    out.push({
      key: random() < 0.3 ? null : utf8(`key-${i}`),
      value: random() < 0.05 ? null : value,
      headers: random() < 0.2 ? [{ key: random() < 0.5 ? 'trace' : 'ünï', value: random() < 0.5 ? null : value.subarray(0, 4) }] : undefined,
      timestamp: random() < 0.5 ? undefined : 1_700_000_000_000 + Math.floor(random() * 10_000),
    });
  }
  return out;
}

describe('frameRun + sealRun', () => {
  it('give encodeBatchRun’s bytes and headers, one batch or a run, both codecs', () => {
    const random = seededRandom(7);
    for (let round = 0; round < 60; round++) {
      const recs = records(random, 1 + Math.floor(random() * 400));
      const codec: SegmentCodec = random() < 0.7 ? 'lz4' : 'none';
      const blockBytes = random() < 0.2 ? undefined : 512 + Math.floor(random() * 16_384);
      const timestamp = 1_699_999_000_000 + round;
      const baseOffset = Math.floor(random() * 1e12);
      const baseSequence = random() < 0.5 ? undefined : 0x7fffffff - Math.floor(random() * 100);
      const expected = encodeBatchRun(recs, { baseOffset, codec, timestamp, blockBytes, baseSequence, producerId: 9, producerEpoch: 2 });
      const framed = frameRun(recs, { timestamp, blockBytes });
      const sealed = sealRun(framed, { baseOffset, codec, baseSequence, producerId: 9, producerEpoch: 2 });
      expect(sameBytes(sealed.bytes, expected.bytes), `round ${round}`).toBe(true);
      expect(sealed.batches).toEqual(expected.batches);
      expect(readBatchRun(sealed.bytes)).toHaveLength(expected.batches.length);
    }
  });

  it('write into the caller’s arrays when given `output`', () => {
    const recs = records(seededRandom(3), 300);
    const expected = encodeBatchRun(recs, { baseOffset: 5, codec: 'lz4', timestamp: 1, blockBytes: 4096 });
    const framed = frameRun(recs, { timestamp: 1, blockBytes: 4096, output: (n) => new Uint8Array(new ArrayBuffer(n + 100), 50, n) });
    expect(framed.sections.byteOffset).toBe(50);
    const sealed = sealRun(framed, { baseOffset: 5, codec: 'lz4', output: (n) => new Uint8Array(new ArrayBuffer(n + 8), 8, n) });
    expect(sealed.bytes.byteOffset).toBe(8);
    expect(sameBytes(sealed.bytes, expected.bytes)).toBe(true);
  });

  it('reject bad records while framing, as encodeBatchRun does', () => {
    const bad: unknown[] = [[], [{ value: 'text', timestamp: 1 }], [{ value: null }], [{ value: null, timestamp: 1, headers: [{ key: 3 }] }]];
    for (const recs of bad) {
      const inline = (() => {
        try {
          encodeBatchRun(recs as EncodableRecord[], { baseOffset: 0, codec: 'lz4', blockBytes: 1024 });
        } catch (err) {
          return err;
        }
      })();
      expect(inline).toBeInstanceOf(QuartzError);
      expect(() => frameRun(recs as EncodableRecord[], { blockBytes: 1024 })).toThrow((inline as QuartzError).message);
    }
  });

  it('frame a record whose field grows between reads (a getter) as read, or refuse it with a typed error, never a RangeError', () => {
    for (const growAfter of [1, 2, 3]) {
      let reads = 0;
      const growing = {
        timestamp: 1,
        get value() {
          // small while the run is cut (and sized), large from read `growAfter + 1` on
          return new Uint8Array(++reads > growAfter ? 5000 : 10);
        },
      };
      const recs = [{ value: utf8('a'), timestamp: 1 }, growing];
      try {
        const framed = frameRun(recs, { blockBytes: 4096, output: (n) => new Uint8Array(n) });
        const [, got] = decodeBatchRun(sealRun(framed, { baseOffset: 0, codec: 'lz4' }).bytes);
        expect([10, 5000], `growAfter ${growAfter}`).toContain(got!.value!.length);
      } catch (err) {
        expect(err, `growAfter ${growAfter}`).toBeInstanceOf(QuartzError);
      }
    }
  });

  it('sealRun refuses a layout that does not match its sections', () => {
    const framed = frameRun([{ value: utf8('abc'), timestamp: 1 }]);
    const short = { sections: framed.sections.subarray(0, 2), layout: framed.layout };
    expect(() => sealRun(short, { baseOffset: 0, codec: 'lz4' })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    expect(() => sealRun({ sections: framed.sections, layout: [] }, { baseOffset: 0, codec: 'lz4' })).toThrow(QuartzError);
  });
});

/** Records as spans of one random byte array, and the same records as objects with views of it. */
function spansAndRecords(random: () => number, n: number): { spans: RecordSpans; records: EncodableRecord[] } {
  const bytes = Uint8Array.from({ length: 20_000 }, () => Math.floor(random() * 256));
  const spans = new Int32Array(n * 4);
  const records: EncodableRecord[] = [];
  const field = (k: number, nullable: number, longest: number): Uint8Array | null => {
    if (random() < nullable) {
      spans[k] = -1;
      spans[k + 1] = Math.floor(random() * 100); // an end beside a null start is not read
      return null;
    }
    const length = Math.floor(random() * longest);
    const start = Math.floor(random() * (bytes.length - length));
    spans[k] = start;
    spans[k + 1] = start + length;
    return bytes.subarray(start, start + length);
  };
  for (let i = 0; i < n; i++) {
    const key = field(i * 4, 0.3, 40);
    // Past 256 bytes a field is copied with `set`; below, byte by byte.
    const value = field(i * 4 + 2, 0.05, random() < 0.1 ? 3000 : 300);
    records.push(random() < 0.5 && key === null ? { value } : { key, value });
  }
  return { spans: new RecordSpans(bytes, spans), records };
}

describe('RecordSpans', () => {
  it('encode to the bytes of the record objects they describe: one batch or a run, both codecs, whole or framed', () => {
    const random = seededRandom(19);
    for (let round = 0; round < 60; round++) {
      const { spans, records: recs } = spansAndRecords(random, 1 + Math.floor(random() * 300));
      const codec: SegmentCodec = random() < 0.7 ? 'lz4' : 'none';
      const blockBytes = random() < 0.2 ? undefined : 512 + Math.floor(random() * 16_384);
      const options = { baseOffset: Math.floor(random() * 1e12), codec, timestamp: 1_699_999_000_000 + round, blockBytes };
      const expected = encodeBatchRun(recs, options);
      const fromSpans = encodeBatchRun(spans, options);
      expect(sameBytes(fromSpans.bytes, expected.bytes), `round ${round}`).toBe(true);
      expect(fromSpans.batches).toEqual(expected.batches);
      const framed = frameRun(spans, { timestamp: options.timestamp, blockBytes });
      expect(framed.layout).toEqual(frameRun(recs, { timestamp: options.timestamp, blockBytes }).layout);
      expect(sameBytes(sealRun(framed, options).bytes, expected.bytes), `round ${round}, framed`).toBe(true);
      const decoded = decodeBatchRun(fromSpans.bytes);
      const same = (a: Uint8Array | null | undefined, b: Uint8Array | null | undefined) => (a == null ? b == null : b != null && sameBytes(a, b));
      expect(decoded.every((r, i) => same(r.key, recs[i]!.key) && same(r.value, recs[i]!.value))).toBe(true);
    }
  });

  it('refuse spans outside their bytes, and records without a timestamp to give them', () => {
    const bytes = utf8('abcdef');
    const refused = (spans: Int32Array) => {
      try {
        new RecordSpans(bytes, spans);
      } catch (err) {
        return err instanceof QuartzError && err.code === ErrorCode.INVALID_ARGUMENT ? err.message : `not invalid_argument: ${String(err)}`;
      }
      return 'accepted';
    };
    expect(refused(Int32Array.of(0, 2, 2, 6))).toBe('accepted');
    expect(refused(Int32Array.of(-1, 99, 6, 6))).toBe('accepted');
    expect(refused(Int32Array.of(0, 7, 0, 1))).toMatch(/record 0's key span \[0, 7\) is not within the 6 bytes/);
    expect(refused(Int32Array.of(-1, 0, 0, 1, 0, 1, 3, 2))).toMatch(/record 1's value span \[3, 2\)/);
    expect(refused(Int32Array.of(-2, 0, 0, 1))).toMatch(/record 0's key span/);
    expect(refused(Int32Array.of(0, 1, 0))).toMatch(/four numbers per record/);
    expect(() => encodeBatchRun(new RecordSpans(bytes, Int32Array.of(0, 1, 1, 2)), { baseOffset: 0, codec: 'none' })).toThrow(/timestamp must be an integer/);
    // Spans changed after they were checked are checked again as they are written.
    const spans = Int32Array.of(0, 1, 1, 2);
    const records = new RecordSpans(bytes, spans);
    spans[3] = 60;
    expect(() => encodeBatchRun(records, { baseOffset: 0, codec: 'none', timestamp: 1 })).toThrow(/the records changed while they were written/);
  });
});
