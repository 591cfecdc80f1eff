import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { blobFrameHead, crcTrailer, endFrame, header, kvFrame, readArchive, type ArchiveEntry } from './archive.js';

const utf8 = new TextEncoder();

function archive(): Buffer {
  const blob = Buffer.from('segment bytes');
  const head = blobFrameHead(utf8.encode('log/t/o/0'), 'seg/00000000000000000000', blob.length);
  return Buffer.concat([
    header(1_700_000_000_000),
    kvFrame(utf8.encode('kv/t'), utf8.encode('k1'), utf8.encode('v1')),
    kvFrame(utf8.encode('kv/t'), new Uint8Array(0), new Uint8Array(0)),
    head,
    blob,
    crcTrailer(crc32(blob, crc32(head))),
    endFrame(3),
  ]);
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

type ReadEntry = ArchiveEntry | { type: 'blob'; unit: string; key: string; bytes: Buffer };

/** Every entry, a blob's chunks gathered into its `bytes`. */
async function readAll(bytes: Uint8Array, chunk = 7): Promise<ReadEntry[]> {
  async function* pieces(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk);
  }
  const out: ReadEntry[] = [];
  for await (const e of readArchive(pieces(), 'test.qzb')) {
    if (e.type === 'kv') out.push(e);
    else {
      const parts: Uint8Array[] = [];
      for await (const part of e.chunks) parts.push(part);
      out.push({ type: 'blob', unit: e.unit, key: e.key, bytes: Buffer.concat(parts) });
    }
  }
  return out;
}

describe('QZBK archive', () => {
  it('reads back what was written, whatever the chunking', async () => {
    for (const chunk of [1, 7, 4096]) {
      const entries = await readAll(archive(), chunk);
      expect(entries).toHaveLength(3);
      expect(entries[0]).toMatchObject({ type: 'kv', unit: 'kv/t' });
      expect(Buffer.from((entries[0] as { value: Uint8Array }).value).toString()).toBe('v1');
      expect((entries[1] as { key: Uint8Array }).key).toHaveLength(0);
      expect(entries[2]).toMatchObject({ type: 'blob', unit: 'log/t/o/0', key: 'seg/00000000000000000000' });
      expect(Buffer.from((entries[2] as { bytes: Uint8Array }).bytes).toString()).toBe('segment bytes');
    }
  });

  it('reports every kind of damage as CORRUPT_DATA naming the archive', async () => {
    const good = archive();
    const flipped = Buffer.from(good);
    flipped[28] = flipped[28]! ^ 0x01; // a key byte of the first frame
    await expect(readAll(flipped)).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA, message: expect.stringMatching(/^backup archive test\.qzb: frame at byte 16 fails its checksum$/) });
    await expect(readAll(good.subarray(0, good.length - 5))).rejects.toThrow(/truncated: it ends after \d+ bytes, in the end frame/);
    await expect(readAll(Buffer.concat([good, Buffer.of(0)]))).rejects.toThrow(/data after the end frame/);
    const badMagic = Buffer.from(good);
    badMagic.write('ZZZZ', 0, 'latin1');
    await expect(readAll(badMagic)).rejects.toThrow(/not a QuartzDB backup \(bad magic\)/);
    const badType = Buffer.from(good);
    badType[16] = 9;
    await expect(readAll(badType)).rejects.toThrow(/unknown frame type 9 at byte 16/);
    const wrongCount = Buffer.concat([good.subarray(0, good.length - 13), endFrame(2)]);
    await expect(readAll(wrongCount)).rejects.toThrow(/end frame says 2 frames, read 3/);
    const notUtf8 = Buffer.concat([header(0), kvFrame(Buffer.of(0xff, 0xfe), utf8.encode('k'), utf8.encode('v')), endFrame(1)]);
    await expect(readAll(notUtf8)).rejects.toThrow(/^backup archive test\.qzb: the unit name of the frame at byte 16 is not UTF-8$/);
    const hugeKey = Buffer.concat([header(0), Buffer.of(1, 0, 0, 0xff, 0xff, 0xff, 0xff)]);
    await expect(readAll(hugeKey)).rejects.toThrow(/key length 4294967295 at byte 16 is over/);
  });

  it('refuses a newer archive version as UNSUPPORTED_FORMAT', async () => {
    const newer = archive();
    newer.writeUInt16LE(2, 4);
    await expect(readAll(newer)).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED_FORMAT, message: expect.stringContaining('version 2 is not supported') });
  });

  it('refuses header flags it does not know as UNSUPPORTED_FORMAT (a later writer may set one to change the frames)', async () => {
    const flagged = archive();
    flagged.writeUInt16LE(1, 6);
    await expect(readAll(flagged)).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED_FORMAT, message: 'backup archive test.qzb: header flags 0x0001 are not supported (this build knows none)' });
  });

  it("hands a blob's bytes on as they are read, not once the whole blob is in memory", async () => {
    const blob = Buffer.alloc(8 * 1024 * 1024, 5);
    const head = blobFrameHead(utf8.encode('vec/t/c'), 'snap/1', blob.length);
    const bytes = Buffer.concat([header(0), head, blob, crcTrailer(crc32(blob, crc32(head))), endFrame(1)]);
    let pulled = 0;
    async function* pieces(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < bytes.length; i += 64 * 1024) {
        const piece = bytes.subarray(i, i + 64 * 1024);
        pulled += piece.length;
        yield piece;
      }
    }
    const seen: number[] = [];
    for await (const e of readArchive(pieces(), 'test.qzb')) {
      if (e.type !== 'blob') continue;
      expect(e.size).toBe(blob.length);
      let got = 0;
      for await (const part of e.chunks) {
        got += part.length;
        seen.push(pulled - got); // bytes read from the source but not yet handed on
      }
      expect(got).toBe(blob.length);
    }
    expect(Math.max(...seen)).toBeLessThan(256 * 1024);
  });

  it("finds a damaged blob by its checksum once its bytes are through, and reads a blob the caller skipped", async () => {
    const good = archive();
    const damaged = Buffer.from(good);
    damaged[good.length - 13 - 4 - 2] ^= 0x01; // a byte of the blob
    await expect(readAll(damaged)).rejects.toThrow(/frame at byte \d+ fails its checksum/);
    const skipped: string[] = [];
    for await (const e of readArchive(once(good), 'test.qzb')) skipped.push(e.type); // never reads e.chunks
    expect(skipped).toEqual(['kv', 'kv', 'blob']);
    await expect((async () => {
      for await (const _ of readArchive(once(damaged), 'test.qzb'));
    })()).rejects.toThrow(/fails its checksum/);
  });
});
