import { createWriteStream, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { DATA_VERSION } from '../../engine/data-version.js';
import type { Engine } from '../../engine/engine.js';
import { createTestEngine } from '../../engine/testing.js';
import type { UsageMeter } from '../../engine/tenants/usage-meter.js';
import { openQuartz } from '../open-quartz.js';
import { blobFrameHead, crcTrailer, endFrame, header, kvFrame } from './archive.js';
import { restoreBackup } from './restore.js';
import { createBackup, releaseBackups } from './snapshot.js';

const open: Engine[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()));
});

async function engineAt(dir: string): Promise<Engine> {
  const e = await openQuartz({ dataDir: dir });
  open.push(e);
  return e;
}

const utf8 = new TextEncoder();

describe('createBackup / restoreBackup', () => {
  it('round-trips keys, blobs and logs, and the snapshot ignores writes made after it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const engine = await engineAt(join(root, 'source'));
    const { tenant } = await engine.tenants.create({ email: 's@example.com' });
    const { kv, streams } = await engine.tenant(tenant.id);
    const big = new Uint8Array(1_500_000).map((_, i) => i % 251);
    await kv.put('small', utf8.encode('v'));
    await kv.put('big', big); // stored as a blob
    await streams.createTopic('t', { partitions: 1, segment_bytes: 1024 });
    for (let b = 0; b < 5; b++) await streams.produce('t', Array.from({ length: 20 }, (_, i) => ({ value: utf8.encode(`r${b}-${i}-${'y'.repeat(30)}`) })));

    // Seal the tail now so the archive holds a segment blob (the background roll after a produce
    // may take seconds on a busy disk; a 5 s poll for it could run out).
    await streams.maintain('t');
    const sealed = streams.describeTopic('t').partition_info[0]!.segments;
    expect(sealed).toBeGreaterThan(0);
    const snap = await createBackup(engine);
    // After the snapshot: a new key, a changed key and more records — none may appear in it.
    await kv.put('later', utf8.encode('x'));
    await kv.put('small', utf8.encode('changed'));
    await streams.produce('t', [{ value: utf8.encode('after') }]);

    const file = join(root, 'b.qzb');
    await pipeline(Readable.fromWeb(snap.body as never), createWriteStream(file));
    expect((await readdir(join(root, 'source', 'blobs', 'tmp'))).filter((n) => n.startsWith('backup-'))).toEqual([]);

    const result = await restoreBackup({ file, dataDir: join(root, 'restored') });
    expect(result.bytes).toBe(snap.size);
    expect(result.blobs).toBe(1 + sealed); // the big value and each sealed segment
    const copy = await engineAt(join(root, 'restored'));
    expect((await copy.tenants.get(tenant.id))?.email).toBe('s@example.com');
    const restored = await copy.tenant(tenant.id);
    expect(new TextDecoder().decode((await restored.kv.get('small'))!.value)).toBe('v');
    // Compared as bytes: toEqual walks a 1.5 MB array element by element (40+ s on a busy machine).
    expect(Buffer.compare((await restored.kv.get('big'))!.value, big), 'the big value, byte for byte').toBe(0);
    expect(await restored.kv.get('later')).toBeUndefined();
    const page = await restored.streams.consume('t', 0, 0, { max_records: 1000 });
    expect(page.records).toHaveLength(100);
    expect(page.high_watermark).toBe(100);
  });

  it('holds the usage counted up to the snapshot, not only what the meter had persisted', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const engine = await engineAt(join(root, 'source'));
    const { tenant } = await engine.tenants.create({ email: 'u@example.com' });
    await (await engine.tenant(tenant.id)).kv.put('k', utf8.encode('value'));
    engine.context.usage.add(tenant.id, 'api_calls', 7);
    // A new data directory's first open of a tenant counts its levels, in the background: done before the snapshot.
    await (engine.context.usage as UsageMeter).recounting(tenant.id);
    const counted = await engine.tenants.usage(tenant.id);
    expect(counted).toMatchObject({ api_calls: 7, bytes_stored: 6 });

    const snap = await createBackup(engine); // well within the meter's one-minute flush interval
    const file = join(root, 'u.qzb');
    await pipeline(Readable.fromWeb(snap.body as never), createWriteStream(file));
    await restoreBackup({ file, dataDir: join(root, 'restored') });
    const copy = await engineAt(join(root, 'restored'));
    expect(await copy.tenants.usage(tenant.id, counted.period)).toEqual(counted);
  });

  it('leaves the data directory as it found it when the archive is damaged', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const engine = await engineAt(join(root, 'source'));
    const { tenant } = await engine.tenants.create({ email: 'd@example.com' });
    const { kv } = await engine.tenant(tenant.id);
    for (let i = 0; i < 50; i++) await kv.put(`k${i}`, utf8.encode(`value ${i}`));
    await kv.put('big', new Uint8Array(1_200_000)); // a blob, last in the archive
    const snap = await createBackup(engine);
    const bytes = new Uint8Array(await new Response(snap.body).arrayBuffer());
    const file = join(root, 'cut.qzb');
    await writeFile(file, bytes.subarray(0, bytes.length - 100_000)); // cut inside the blob

    const fresh = join(root, 'fresh');
    await expect(restoreBackup({ file, dataDir: fresh })).rejects.toThrow(/truncated/);
    await expect(readdir(fresh)).rejects.toThrow(/ENOENT/); // made by the restore, so removed
    const empty = join(root, 'empty');
    await mkdir(empty);
    await expect(restoreBackup({ file, dataDir: empty })).rejects.toThrow(/truncated/);
    expect(await readdir(empty)).toEqual([]); // there before: kept, and empty again
    await writeFile(file, bytes);
    await expect(restoreBackup({ file, dataDir: empty })).resolves.toMatchObject({ entries: expect.any(Number), blobs: 1 });
  });

  it('leaves the data directory as it found it when the restore is stopped (Ctrl-C)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const engine = await engineAt(join(root, 'source'));
    const { tenant } = await engine.tenants.create({ email: 'c@example.com' });
    const { kv } = await engine.tenant(tenant.id);
    for (let i = 0; i < 4; i++) await kv.put(`big${i}`, new Uint8Array(1_200_000).fill(i));
    const snap = await createBackup(engine);
    const file = join(root, 'all.qzb');
    await writeFile(file, new Uint8Array(await new Response(snap.body).arrayBuffer()));

    const stop = new AbortController();
    const reason = new Error('stopped');
    const empty = join(root, 'empty');
    await mkdir(empty);
    const stopped = restoreBackup({ file, dataDir: empty, signal: stop.signal, onProgress: () => stop.abort(reason) });
    await expect(stopped).rejects.toBe(reason);
    expect(await readdir(empty)).toEqual([]);
    const fresh = join(root, 'fresh');
    await expect(restoreBackup({ file, dataDir: fresh, signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    await expect(readdir(fresh)).rejects.toThrow(/ENOENT/);
  });

  it('stops inside a large blob when told to, not once the whole blob is written', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const blob = Buffer.alloc(32 * 1024 * 1024, 3);
    const head = blobFrameHead(utf8.encode('vec/t/c'), 'snap/1', blob.length);
    const file = join(root, 'one-big-blob.qzb');
    await writeFile(file, Buffer.concat([header(0), head, blob, crcTrailer(crc32(blob, crc32(head))), endFrame(1)]));
    const stop = new AbortController();
    const reason = new Error('stopped');
    let read = 0;
    const dataDir = join(root, 'fresh');
    const stopped = restoreBackup({
      file,
      dataDir,
      signal: stop.signal,
      onProgress: (bytes) => {
        read = bytes;
        if (bytes >= 4 * 1024 * 1024) stop.abort(reason); // well inside the blob
      },
    });
    await expect(stopped).rejects.toBe(reason);
    expect(read, 'bytes of the archive read before the restore stopped').toBeLessThan(blob.length / 2);
    await expect(readdir(dataDir)).rejects.toThrow(/ENOENT/);
  });

  it('releases its links when the download is cancelled', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const engine = await engineAt(join(root, 'd'));
    const { tenant } = await engine.tenants.create({ email: 'c@example.com' });
    await (await engine.tenant(tenant.id)).kv.put('big', new Uint8Array(1_200_000));
    const snap = await createBackup(engine);
    expect((await readdir(join(root, 'd', 'blobs', 'tmp'))).some((n) => n.startsWith('backup-'))).toBe(true);
    await snap.body.cancel();
    expect((await readdir(join(root, 'd', 'blobs', 'tmp'))).filter((n) => n.startsWith('backup-'))).toEqual([]);
  });

  it('takes nothing, and holds nothing, for a request that was gone before the snapshot was taken', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const engine = await engineAt(join(root, 'd'));
    const { tenant } = await engine.tenants.create({ email: 'g@example.com' });
    await (await engine.tenant(tenant.id)).kv.put('big', new Uint8Array(1_200_000));
    const links = async () => (await readdir(join(root, 'd', 'blobs', 'tmp'))).filter((n) => n.startsWith('backup-'));
    const gone = new Error('client gone');
    await expect(createBackup(engine, AbortSignal.abort(gone))).rejects.toBe(gone);
    expect(await links()).toEqual([]);
    // Gone while the usage meter flushes, before the read transaction opens.
    const leaving = new AbortController();
    const taking = createBackup(engine, leaving.signal);
    leaving.abort(gone);
    await expect(taking).rejects.toBe(gone);
    expect(await links()).toEqual([]);
  });

  it('stops a running download short when the server releases its backups before closing', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const engine = await engineAt(join(root, 'd'));
    const { tenant } = await engine.tenants.create({ email: 'r@example.com' });
    const { kv } = await engine.tenant(tenant.id);
    await Promise.all(Array.from({ length: 400 }, (_, i) => kv.put(`k${i}`, new Uint8Array(2000).fill(i & 0xff))));
    const snap = await createBackup(engine);
    const reader = snap.body.getReader();
    let got = (await reader.read()).value!.length;
    got += (await reader.read()).value!.length; // the header, then the first batch of frames
    releaseBackups(engine);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      got += value.length;
    }
    expect(got).toBeLessThan(snap.size!);
    expect((await readdir(join(root, 'd', 'blobs', 'tmp'))).filter((n) => n.startsWith('backup-'))).toEqual([]);
    await engine.close(); // and the storage closes cleanly afterwards
  });

  it('refuses, naming the archive, an entry no unit can take, instead of counting it restored and dropping it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const cases: [string, Uint8Array, RegExp][] = [
      ['empty-unit', kvFrame(new Uint8Array(0), utf8.encode('k'), utf8.encode('v')), /unit name must be a non-empty string/],
      ['empty-blob-key', Buffer.concat([blobFrameHead(utf8.encode('kv/t'), '', 1), Buffer.of(7), crcTrailer(crc32(Buffer.of(7), crc32(blobFrameHead(utf8.encode('kv/t'), '', 1))))]), /blob key must be a non-empty string/],
    ];
    for (const [name, frame, message] of cases) {
      const file = join(root, `${name}.qzb`);
      await writeFile(file, Buffer.concat([header(0), frame, endFrame(1)]));
      const dataDir = join(root, name);
      await expect(restoreBackup({ file, dataDir }), name).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA, message: expect.stringMatching(new RegExp(`^backup archive ${file}: ${message.source}`)) });
      await expect(readdir(dataDir), name).rejects.toThrow(/ENOENT/);
    }
  });

  it('refuses an archive of a data format newer than this build as soon as it reads the version, before restoring the rest', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const file = join(root, 'newer.qzb');
    const frames = [kvFrame(utf8.encode('meta'), utf8.encode('data_version'), utf8.encode(String(DATA_VERSION + 1))), kvFrame(utf8.encode('kv/t'), utf8.encode('k'), utf8.encode('v'))];
    await writeFile(file, Buffer.concat([header(0), ...frames, endFrame(frames.length)]));
    const dataDir = join(root, 'fresh');
    await expect(restoreBackup({ file, dataDir })).rejects.toMatchObject({
      code: ErrorCode.DATA_VERSION_TOO_NEW,
      message: expect.stringContaining(`backup archive ${file}`),
    });
    await expect(readdir(dataDir)).rejects.toThrow(/ENOENT/);
  });

  it('gives the event loop turns while it sizes and streams many entries, so the server goes on answering', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const engine = await engineAt(join(root, 'd'));
    const { tenant } = await engine.tenants.create({ email: 'l@example.com' });
    const { kv } = await engine.tenant(tenant.id);
    const value = new Uint8Array(100);
    for (let i = 0; i < 30_000; i += 3000) await Promise.all(Array.from({ length: 3000 }, (_, j) => kv.put(`key-${i + j}`, value)));
    // The links are made in the snapshot's synchronous turn, just before it sizes the archive: the
    // turns seen while they exist and createBackup has not resolved are turns given while sizing.
    const tmp = join(root, 'd', 'blobs', 'tmp');
    let resolved = false;
    let whileSizing = 0;
    let whileStreaming = 0;
    let streaming = false;
    let ticking = true;
    const tick = (): void => {
      if (!ticking) return;
      if (streaming) whileStreaming++;
      else if (!resolved && readdirSync(tmp).some((n) => n.startsWith('backup-'))) whileSizing++;
      setImmediate(tick);
    };
    setImmediate(tick);
    const snap = await createBackup(engine);
    resolved = true;
    streaming = true;
    let bytes = 0;
    const reader = snap.body.getReader();
    for (;;) {
      const { done, value } = await reader.read(); // as fast as a loopback client reads
      if (done) break;
      bytes += value.length;
    }
    ticking = false;
    expect(bytes).toBe(snap.size);
    // One turn at least per slice of entries sized and per batch of frames sent (~3.8 MB here).
    expect(whileSizing, 'turns while the archive was sized').toBeGreaterThanOrEqual(10);
    expect(whileStreaming, 'turns while it streamed').toBeGreaterThanOrEqual(10);
  }, 60_000);

  it('stops sizing the archive when the server releases its backups, and the storage closes cleanly', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-snapshot-'));
    const engine = await engineAt(join(root, 'd'));
    const { tenant } = await engine.tenants.create({ email: 'z@example.com' });
    const { kv } = await engine.tenant(tenant.id);
    await Promise.all(Array.from({ length: 10_000 }, (_, i) => kv.put(`key-${i}`, new Uint8Array(10))));
    const tmp = join(root, 'd', 'blobs', 'tmp');
    const watch = (): void => {
      if (readdirSync(tmp).some((n) => n.startsWith('backup-'))) releaseBackups(engine); // sizing has begun
      else setImmediate(watch);
    };
    setImmediate(watch);
    await expect(createBackup(engine)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, message: expect.stringMatching(/shutting down/) });
    expect(readdirSync(tmp).filter((n) => n.startsWith('backup-'))).toEqual([]);
    await engine.close();
  });

  it('says backups need the disk storage', async () => {
    const engine = await createTestEngine();
    open.push(engine);
    await expect(createBackup(engine)).rejects.toMatchObject({ code: ErrorCode.NOT_IMPLEMENTED });
  });
});
