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

async function readAll(bytes: Uint8Array, chunk = 7): Promise<ArchiveEntry[]> {
  async function* pieces(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk);
  }
  const out: ArchiveEntry[] = [];
  for await (const e of readArchive(pieces(), 'test.qzb')) out.push(e);
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
    const hugeKey = Buffer.concat([header(0), Buffer.of(1, 0, 0, 0xff, 0xff, 0xff, 0xff)]);
    await expect(readAll(hugeKey)).rejects.toThrow(/key length 4294967295 at byte 16 is over/);
  });

  it('refuses a newer archive version as UNSUPPORTED_FORMAT', async () => {
    const newer = archive();
    newer.writeUInt16LE(2, 4);
    await expect(readAll(newer)).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED_FORMAT, message: expect.stringContaining('version 2 is not supported') });
  });
});
