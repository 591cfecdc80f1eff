import { beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../node/core.js';
import { isQuartzError } from '../../core/errors.js';
import { MAX_ENTRY_BYTES } from '../../ports/storage.js';
import {
  LOG_DELETE,
  LOG_UPSERT,
  decodeLogChunk,
  decodeSnapshot,
  encodeLogChunks,
  encodeSnapshot,
  logKey,
  parseLogKey,
  type UpsertRecord,
} from './codec.js';

const enc = new TextEncoder();

beforeAll(async () => {
  await init();
});

function record(i: number, dims: number): UpsertRecord {
  const id = `doc-${i}-é`;
  const values = Float32Array.from({ length: dims }, (_, d) => Math.sin(i * 31 + d));
  return { internalId: i, id, idBytes: enc.encode(id), metadataJson: enc.encode(JSON.stringify({ i })), values };
}

describe('change-log codec', () => {
  it('round-trips upserts and deletes', () => {
    const records = Array.from({ length: 20 }, (_, i) => record(i, 7));
    const chunks = encodeLogChunks({ kind: LOG_UPSERT, records });
    expect(chunks).toHaveLength(1);
    const back = decodeLogChunk(chunks[0]!, 7);
    expect(back.kind).toBe(LOG_UPSERT);
    expect(back.records.map((r) => r.id)).toEqual(records.map((r) => r.id));
    const first = back.records[0] as UpsertRecord;
    expect(Array.from(first.values)).toEqual(Array.from(records[0]!.values));
    expect(new TextDecoder().decode(first.metadataJson)).toBe('{"i":0}');

    const del = encodeLogChunks({ kind: LOG_DELETE, records: [{ internalId: 9, id: 'x', idBytes: enc.encode('x') }] });
    expect(decodeLogChunk(del[0]!, 7)).toEqual({ kind: LOG_DELETE, records: [{ internalId: 9, id: 'x', idBytes: enc.encode('x') }] });
  });

  it('splits a large mutation into chunks under the entry limit, keeping order', () => {
    const dims = 4096;
    const records = Array.from({ length: 200 }, (_, i) => record(i, dims)); // ~3.2 MiB of floats
    const chunks = encodeLogChunks({ kind: LOG_UPSERT, records });
    expect(chunks.length).toBeGreaterThan(3);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
    const ids = chunks.flatMap((c) => decodeLogChunk(c, dims).records.map((r) => r.internalId));
    expect(ids).toEqual(records.map((r) => r.internalId));
  });

  it('reports truncated, unknown or trailing bytes as CORRUPT_DATA', () => {
    const [chunk] = encodeLogChunks({ kind: LOG_UPSERT, records: [record(1, 4)] });
    for (const bytes of [chunk!.subarray(0, chunk!.length - 1), new Uint8Array([9, 1, 0, 0, 0, 0, 0, 0]), new Uint8Array([...chunk!, 0])]) {
      let caught: unknown;
      try {
        decodeLogChunk(bytes, 4);
      } catch (err) {
        caught = err;
      }
      expect(isQuartzError(caught, 'corrupt_data')).toBe(true);
    }
    expect(() => decodeLogChunk(new Uint8Array([1, 7, 0, 0, 0, 0, 0, 0]), 4)).toThrow(/version 7/);
  });

  it('keys sort by sequence then chunk', () => {
    const keys = [logKey(2, 0), logKey(1, 1), logKey(256, 0), logKey(1, 0)];
    const sorted = [...keys].sort((a, b) => Buffer.compare(a, b)).map(parseLogKey);
    expect(sorted).toEqual([
      { seq: 1, chunk: 0 },
      { seq: 1, chunk: 1 },
      { seq: 2, chunk: 0 },
      { seq: 256, chunk: 0 },
    ]);
  });
});

describe('snapshot codec', () => {
  const contents = {
    dims: 3,
    metric: 'l2' as const,
    seq: 2 ** 40 + 5,
    records: [1, 5, 2].map((i) => {
      const r = record(i, 3);
      return { internalId: r.internalId, id: r.id, metadataJson: r.metadataJson, values: r.values };
    }),
    index: new Uint8Array([1, 2, 3, 4, 5]),
  };

  it('round-trips', () => {
    expect(decodeSnapshot(encodeSnapshot(contents))).toEqual(contents);
  });

  it('detects any flipped bit with its CRC and refuses foreign bytes', () => {
    const bytes = encodeSnapshot(contents);
    for (const at of [4, 20, 40, bytes.length - 6, bytes.length - 1]) {
      const bad = bytes.slice();
      bad[at]! ^= 0x10;
      expect(() => decodeSnapshot(bad)).toThrow(/CRC-32C/);
    }
    expect(() => decodeSnapshot(new Uint8Array(10))).toThrow(/too short/);
    expect(() => decodeSnapshot(new Uint8Array(100))).toThrow(/QVSN magic/);
  });

  it('checksums snapshots larger than one CRC piece end to end', () => {
    const index = new Uint8Array(9 * 1024 * 1024);
    for (let i = 0; i < index.length; i++) index[i] = (i * 7) & 0xff;
    const bytes = encodeSnapshot({ ...contents, index });
    // Buffer.compare: a deep toEqual over 9 MiB would take most of a minute.
    expect(Buffer.compare(decodeSnapshot(bytes).index, index)).toBe(0);
    const bad = bytes.slice();
    bad[8 * 1024 * 1024 + 3]! ^= 0x01;
    expect(() => decodeSnapshot(bad)).toThrow(/CRC-32C/);
  });
});
