/**
 * docs/format.md's byte tables cannot drift from the bytes: a segment written by SegmentWriter
 * (two batches, one stored as is, one LZ4) and an HNSW snapshot are read back field by field at
 * the offsets, sizes and types the tables give, and each field must hold what the writer was
 * told to write; so is the write-ahead log a Node data directory writes for one put. The tables must also tile their structure: each row starts where the one before
 * ends, and the whole is the size its heading states.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { crc32c } from '../../src/core/hash.js';
import { HnswIndex } from '../../src/core/hnsw.js';
import { lz4 } from '../../src/core/lz4.js';
import { SegmentWriter } from '../../src/core/segment.js';
import { init } from '../../src/node/core.js';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';

const doc = readFileSync(new URL('../../docs/format.md', import.meta.url), 'utf8');

interface Row {
  offset: string;
  size: string;
  type: string;
  meaning: string;
}

/** The rows of the first table after the heading that starts with `heading` (then after the line that starts with `after`). */
function table(heading: string, after?: string): Row[] {
  const start = doc.search(new RegExp(`^#+ ${heading.replace(/[()[\]]/g, '\\$&')}`, 'm'));
  expect(start, `docs/format.md has a heading '${heading}'`).toBeGreaterThanOrEqual(0);
  const from = after === undefined ? start : doc.indexOf(`\n${after}`, start);
  expect(from, `docs/format.md has '${after}' under '${heading}'`).toBeGreaterThanOrEqual(0);
  const lines = doc.slice(from).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows = lines.slice(first, first + lines.slice(first).findIndex((l) => !l.startsWith('|')));
  const header = rows[0]!.split('|').map((c) => c.trim());
  const column = (name: string) => header.indexOf(name);
  return rows.slice(2).map((row) => {
    const cells = row.split('|').map((c) => c.trim());
    return { offset: cells[column('offset')] ?? '', size: cells[column('size')]!, type: cells[column('type')]!, meaning: cells[column('meaning')]! };
  });
}

/** '32 + 8n', '8·n', '4' → a number, for a structure of `n` entries. */
function evaluate(expression: string, n: number): number {
  const text = expression.replace(/·/g, '*').replace(/(\d)n\b/g, '$1*n').replace(/\bn\b/g, String(n));
  expect(text, `'${expression}' is arithmetic`).toMatch(/^[\d\s+*()-]+$/);
  return Function(`return (${text});`)() as number;
}

/** The value of a field of type `type` (as the tables spell it) at `at`. */
function read(bytes: Uint8Array, at: number, size: number, type: string): number | bigint | string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (type) {
    case 'u8':
      return view.getUint8(at);
    case 'u16':
      return view.getUint16(at, true);
    case 'i16':
      return view.getInt16(at, true);
    case 'u32':
      return view.getUint32(at, true);
    case 'i32':
      return view.getInt32(at, true);
    case 'u64':
      return view.getBigUint64(at, true);
    case 'i64':
      return view.getBigInt64(at, true);
    case 'bytes':
      return new TextDecoder('latin1').decode(bytes.subarray(at, at + size));
    default:
      throw new Error(`docs/format.md: field type '${type}' has no reader here`);
  }
}

/**
 * Reads the fixed rows of `rows` from `bytes` at `base` and returns each field by the first words
 * of its meaning; checks that the rows tile `[base, base + total)`.
 */
function fields(rows: Row[], bytes: Uint8Array, base: number, total: number, n = 0): Map<string, number | bigint | string> {
  const out = new Map<string, number | bigint | string>();
  let next = 0;
  for (const row of rows) {
    const offset = evaluate(row.offset, n);
    expect(offset, `row '${row.meaning}' starts where the row before it ends`).toBe(next);
    const size = evaluate(row.size, n);
    next = offset + size;
    const name = row.meaning.split(/[:;(,]/)[0]!.replace(/\*\*/g, '').trim();
    if (!/[·n]/.test(row.size) || n === 0) out.set(name, read(bytes, base + offset, size, row.type));
    else out.set(name, Buffer.from(bytes.subarray(base + offset, base + offset + size)).toString('hex'));
  }
  expect(next, 'the rows add up to the size the heading states').toBe(total);
  return out;
}

const u32 = (...values: number[]) => Buffer.from(new Uint32Array(values).buffer).toString('hex');
const i64 = (...values: number[]) => Buffer.from(new BigInt64Array(values.map(BigInt)).buffer).toString('hex');

beforeAll(async () => {
  await init();
});

describe('docs/format.md, segment format v1', () => {
  const utf8 = (s: string) => new TextEncoder().encode(s);
  const createdAt = 1_700_000_000_123;
  const t0 = 1_700_000_000_000;
  const batch0 = [
    { key: utf8('k'), value: utf8('hello'), headers: [{ key: 'h', value: utf8('v') }], timestamp: t0 },
    { key: null, value: null, headers: [{ key: 'n', value: null }], timestamp: t0 - 10 },
  ];
  const batch1 = [{ key: utf8(''), value: utf8('x'.repeat(500)), timestamp: t0 + 500 }];

  function segment(): Uint8Array {
    const none = new SegmentWriter({ baseOffset: 1000, codec: 'none', createdAt });
    none.append(batch0);
    // The second batch LZ4-compressed: written on its own, then copied in as it is.
    const lz4Writer = new SegmentWriter({ baseOffset: 1002, codec: 'lz4', createdAt });
    lz4Writer.append(batch1);
    const second = lz4Writer.finish();
    const length = new DataView(second.buffer, second.byteOffset).getUint32(32, true);
    none.appendBatch(second.subarray(32, 32 + length));
    return none.finish();
  }

  it('header, batches, records, footer and trailer are where the tables say, holding what was written', () => {
    const seg = segment();
    const header = fields(table('Header (32 bytes'), seg, 0, 32);
    expect([...header]).toEqual([
      ['magic `STRM`', 'STRM'],
      ['format version = `1`', 1],
      ['flags', 0],
      ['base offset', 1000n],
      ['created-at', BigInt(createdAt)],
      ['record count', 3],
      ['CRC32C of bytes [0', crc32c(seg.subarray(0, 28))],
    ]);

    const batchRows = table('Record batch');
    const variable = batchRows.pop()!;
    expect(variable).toMatchObject({ offset: '60', size: 'length − 60', type: 'bytes' });
    const positions: number[] = [];
    let at = 32;
    const sections: Uint8Array[] = [];
    for (const [k, records] of [batch0, batch1].entries()) {
      positions.push(at);
      const batch = fields(batchRows, seg, at, 60);
      const length = batch.get('batch length') as number;
      const stored = seg.subarray(at + 60, at + length);
      const uncompressed = batch.get('uncompressed size') as number;
      expect([...batch]).toEqual([
        ['batch length', length],
        ['CRC32C of bytes [8', crc32c(seg.subarray(at + 8, at + length))],
        ['attributes', k === 0 ? 0 : 1],
        ['producer epoch', -1],
        ['last offset delta', records.length - 1],
        ['base offset', BigInt(1000 + 2 * k)],
        ['base timestamp', BigInt(records[0]!.timestamp)],
        ['max timestamp', BigInt(Math.max(...records.map((r) => r.timestamp)))],
        ['producer id', -1n],
        ['base sequence', -1],
        ['record count', records.length],
        ['uncompressed size', uncompressed],
      ]);
      sections.push(k === 0 ? stored : lz4.decompressBlock(stored, uncompressed));
      expect(sections[k]!.length).toBe(uncompressed);
      at += length;
    }
    expect(sections[1]!.length, 'the LZ4 batch is smaller stored').toBeGreaterThan(seg.length - at);

    // The records section, field by field in the table's order.
    expect(table('Record (inside').map((r) => r.meaning.length > 0 && r.type)).toEqual([
      'varint', 'zigzag varint', 'varint', 'bytes', 'varint', 'bytes', 'varint', 'varint', 'bytes', 'varint', 'bytes',
    ]);
    const decoded = sections.map((section) => parseRecords(section));
    expect(decoded).toEqual([
      [
        { offsetDelta: 0, timestampDelta: 0, key: 'k', value: 'hello', headers: [['h', 'v']] },
        { offsetDelta: 1, timestampDelta: -10, key: null, value: null, headers: [['n', null]] },
      ],
      [{ offsetDelta: 0, timestampDelta: 0, key: '', value: 'x'.repeat(500), headers: [] }],
    ]);

    // Trailer, then the footer where the trailer points.
    const trailer = fields(table('Trailer (20 bytes'), seg, seg.length - 20, 20);
    const footerAt = trailer.get('footer position') as number;
    const footerLength = trailer.get('footer length') as number;
    expect(footerAt).toBe(at);
    expect(footerAt + footerLength + 20).toBe(seg.length);
    expect([...trailer]).toEqual([
      ['footer position', footerAt],
      ['footer length', footerLength],
      ['format version = `1`', 1],
      ['reserved', 0],
      ['CRC32C of trailer bytes [0', crc32c(seg.subarray(seg.length - 20, seg.length - 8))],
      ['magic `STRM`', 'STRM'],
    ]);
    const n = 2;
    expect(footerLength).toBe(36 + 20 * n);
    const footer = fields(table('Footer'), seg, footerAt, footerLength, n);
    expect([...footer]).toEqual([
      ['magic `SIDX`', 'SIDX'],
      ['n', n],
      ['base offset', 1000n],
      ['next offset', 1003n],
      ['max timestamp of the segment', BigInt(t0 + 500)],
      ['offset index', u32(0, positions[0]!, 2, positions[1]!)],
      ['time index', i64(t0) + u32(0) + i64(t0 + 500) + u32(2)],
      ['CRC32C of footer bytes [0', crc32c(seg.subarray(footerAt, footerAt + 32 + 20 * n))],
    ]);
  });
});

interface ParsedRecord {
  offsetDelta: number;
  timestampDelta: number;
  key: string | null;
  value: string | null;
  headers: [string, string | null][];
}

/** The records of a section, read as the Record table lays them out. */
function parseRecords(section: Uint8Array): ParsedRecord[] {
  let p = 0;
  const varint = () => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = section[p++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  };
  const zigzag = () => {
    const v = varint();
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
  };
  const text = (length: number) => new TextDecoder().decode(section.subarray(p, (p += length)));
  const nullable = () => {
    const length = varint();
    return length === 0 ? null : text(length - 1);
  };
  const records: ParsedRecord[] = [];
  while (p < section.length) {
    const offsetDelta = varint();
    const timestampDelta = zigzag();
    const key = nullable();
    const value = nullable();
    const headers: [string, string | null][] = [];
    for (let count = varint(); count > 0; count--) {
      const name = text(varint());
      headers.push([name, nullable()]);
    }
    records.push({ offsetDelta, timestampDelta, key, value, headers });
  }
  expect(p, 'the section ends exactly after the last record').toBe(section.length);
  return records;
}

describe('docs/format.md, HNSW index snapshot', () => {
  it('header, node records, free list and checksum are where the tables say', () => {
    const index = new HnswIndex({ dims: 3, metric: 'cosine', M: 4, efConstruction: 8 });
    index.add(7, [1, 0, 0]);
    index.add(8, [0, 1, 0]);
    index.add(9, [0, 0, 1]);
    index.delete(8);
    const snap = index.serialize();
    const header = fields(table('Header (48 bytes'), snap, 0, 48);
    const slots = header.get('slots `s`') as number;
    const freeLength = header.get('free-list length `f`') as number;
    expect([...header].map(([name, value]) => [name, typeof value === 'bigint' ? 'u64' : value])).toEqual([
      ['magic `QHNS`', 'QHNS'],
      ['format version = `1`', 1],
      ['metric', 1],
      ['reserved', 0],
      ['dims', 3],
      ['M', 4],
      ['efConstruction', 8],
      ['slots `s`', 3],
      ['live vectors', 2],
      ['entry point slot', header.get('entry point slot')],
      ['top level', header.get('top level')],
      ['state of the level generator', 'u64'],
      ['free-list length `f`', 1],
    ]);

    // Node records: the fixed head by the table, then links per level, then the vector.
    const nodeRows = table('Node record');
    expect(nodeRows.map((r) => [r.offset, r.size, r.type])).toEqual([
      ['0', '4', 'u32'],
      ['4', '2', 'u16'],
      ['6', '2', 'u16'],
      ['8', '—', '—'],
      ['…', '4·dims', 'f32[]'],
    ]);
    const view = new DataView(snap.buffer, snap.byteOffset, snap.byteLength);
    let at = 48;
    const nodes: { id: number; deleted: boolean; vector: number[] }[] = [];
    for (let s = 0; s < slots; s++) {
      const node = fields(nodeRows.slice(0, 3), snap, at, 8);
      const level = node.get('level L') as number;
      at += 8;
      for (let l = 0; l <= level; l++) at += 4 + 4 * view.getUint32(at, true);
      const vector = [0, 1, 2].map((i) => Math.round(view.getFloat32(at + 4 * i, true) * 1000) / 1000);
      at += 12;
      nodes.push({ id: node.get('id') as number, deleted: (node.get('flags') as number) === 1, vector });
    }
    expect(nodes).toEqual([
      { id: 7, deleted: false, vector: [1, 0, 0] },
      { id: 8, deleted: true, vector: [0, 1, 0] },
      { id: 9, deleted: false, vector: [0, 0, 1] },
    ]);
    expect(table('Free list and checksum').map((r) => [r.size, r.type])).toEqual([
      ['4·f', 'u32[]'],
      ['4', 'u32'],
    ]);
    expect(freeLength).toBe(1);
    expect(view.getUint32(at, true), 'the free list holds the deleted slot').toBe(1);
    expect(view.getUint32(at + 4, true)).toBe(crc32c(snap.subarray(0, at + 4)));
    expect(at + 8).toBe(snap.length);
    index.dispose();
  });
});

describe('docs/format.md, write-ahead log', () => {
  it('file header, frame and record are where the tables say, for one put', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quartz-format-doc-'));
    try {
      const storage = await openDiskStorage({ dir: join(dir, 'data') });
      const unit = await storage.unit('x');
      await unit.kv.put(new TextEncoder().encode('k'), new TextEncoder().encode('value'));
      await storage.close();
      const log = new Uint8Array(readFileSync(join(dir, 'data', 'wal-0')));

      const header = fields(table('Write-ahead log', 'File header'), log, 0, 16);
      const epoch = header.get('epoch') as number;
      expect([...header]).toEqual([
        ['magic `QZWL`', 0x4c575a51],
        ['version', 1],
        ['reserved', 0],
        ['epoch', epoch],
        ['CRC32C of bytes 0–11', crc32c(log.subarray(0, 12))],
      ]);
      expect(log.subarray(16, 4096).every((b) => b === 0), 'the rest of the first page is zero').toBe(true);

      // The frame: its fixed head, then a body of L bytes (the log key is what the epoch field is xor'd with).
      const frameRows = table('Write-ahead log', 'Frames follow');
      const frame = fields(frameRows.slice(0, 3), log, 4096, 12);
      const length = frame.get('body length L') as number;
      const key = ((frame.get('epoch') as number) ^ epoch) >>> 0;
      expect(key, 'a directory has a nonzero log key').not.toBe(0);
      expect(frame.get('CRC32C of bytes 8 to 12 + L')).toBe((crc32c(log.subarray(4096 + 8, 4096 + 12 + length)) ^ key) >>> 0);
      expect(frameRows[3]).toMatchObject({ offset: '12', size: 'L' });

      const recordRows = table('Write-ahead log', 'A record is one put');
      const record = fields(recordRows.slice(0, 2), log, 4096 + 12, 8);
      expect([...record]).toEqual([
        ['length of the rest of the record', length - 4],
        ['op count', 1],
      ]);
      expect(recordRows[2]!.meaning).toBe('ops: type u8 (1 put, 2 delete), key length u16, value length u32 (puts only), key, value');
      // One put: type 1, key length u16, value length u32, the key (unit id u32 BE ‖ 'k'), the value.
      const at = 4096 + 12 + 8;
      const view = new DataView(log.buffer, log.byteOffset + at);
      expect([view.getUint8(0), view.getUint16(1, true), view.getUint32(3, true)]).toEqual([1, 5, 5]);
      expect(new TextDecoder().decode(log.subarray(at + 7 + 4, at + 7 + 5 + 5))).toBe('kvalue');
      expect(at + 7 + 5 + 5).toBe(4096 + 12 + length);
      // The clean close sealed the file where the log ended: an empty frame of the epoch.
      const seal = fields(frameRows.slice(0, 3), log, 4096 + 12 + length, 12);
      expect([seal.get('body length L'), ((seal.get('epoch') as number) ^ key) >>> 0]).toEqual([0, epoch]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
