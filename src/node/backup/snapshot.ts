/**
 * A consistent point-in-time backup of a Node data directory, streamed as a QZBK archive
 * (archive.ts). In one synchronous turn it opens an lmdb read transaction and hard-links every
 * blob file into a private directory: no blob can be deleted in between, because the engine
 * deletes a blob only after committing the removal of its last reference, and that needs an
 * event turn. The archive is then streamed from that read transaction and those links, so
 * writes, retention and compaction carry on meanwhile without changing what is sent.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, linkSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import type { Database, RootDatabase } from 'lmdb';
import type { BackupSnapshot } from '../../api/ports.js';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import type { Engine } from '../../engine/engine.js';
import { UsageMeter } from '../../engine/tenants/usage-meter.js';
import { DiskStorage } from '../storage/disk-storage.js';
import { blobKey } from '../storage/file-blobs.js';
import { UNIT_PREFIX_BYTES } from '../storage/lmdb-kv.js';
import { blobFrameBytes, blobFrameHead, crcTrailer, END_BYTES, endFrame, header, HEADER_BYTES, kvFrame, kvFrameBytes } from './archive.js';

const utf8 = new TextEncoder();
/**
 * Entries sized between two event-loop turns while the archive's length is counted: a store of
 * 500k keys took 3 s in one synchronous walk, during which the server answered nothing.
 */
const SLICE_ENTRIES = 2048;

/** Each engine's snapshots still streaming, by their release functions. */
const open = new WeakMap<Engine, Set<() => void>>();

/**
 * Ends every snapshot of `engine` still streaming (their downloads stop short) and frees their
 * read transactions and links: the server calls it before closing the engine's storage.
 *
 * @example
 * releaseBackups(engine);
 * await engine.close();
 */
export function releaseBackups(engine: Engine): void {
  for (const release of [...(open.get(engine) ?? [])]) release();
}

interface LinkedBlob {
  unit: string;
  key: string;
  path: string;
  size: number;
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/** Hard-links one unit's blob files under `into`, returning each with its key and size. */
function linkBlobs(root: string, into: string, unit: string, out: LinkedBlob[]): void {
  const walk = (dir: string, escapedSoFar: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    for (const e of entries) {
      if (e.isDirectory() && e.name.endsWith('~')) {
        walk(join(dir, e.name), escapedSoFar + e.name.slice(0, -1));
      } else if (e.isFile()) {
        const key = blobKey(escapedSoFar + e.name);
        if (key === undefined) continue;
        const path = join(into, String(out.length));
        try {
          linkSync(join(dir, e.name), path);
        } catch (err) {
          if (isMissing(err)) continue; // deleted before the snapshot: unreferenced by it
          throw err;
        }
        out.push({ unit, key, path, size: statSync(path).size });
      }
    }
  };
  walk(root, '');
}

/**
 * Takes the snapshot and returns its archive as a stream with its exact size.
 *
 * @example
 * const app = createApp({ engine, config, backup: (signal) => createBackup(engine, signal) });
 */
export async function createBackup(engine: Engine, signal?: AbortSignal): Promise<BackupSnapshot> {
  const storage = engine.context.storage;
  if (!(storage instanceof DiskStorage)) throw new QuartzError(ErrorCode.NOT_IMPLEMENTED, 'backups need the Node disk storage');
  // The meter persists its counts once a minute: without a flush the snapshot would miss up to a
  // minute of usage (billing figures) that the live server already reports.
  if (engine.context.usage instanceof UsageMeter) await engine.context.usage.flush();
  signal?.throwIfAborted(); // the client left while the meter wrote: no snapshot to take
  // lmdb holds every acknowledged write until `release` (the rest wait in the write-ahead log).
  const { dir, env, units, data, release: resumeAcks } = await storage.backupSource();
  const linkDir = join(dir, 'blobs', 'tmp', `backup-${randomUUID()}`); // tmp/ is swept on open: a crash leaves nothing

  // --- one synchronous turn: the read transaction and the blob links see the same state ---
  let txn: ReturnType<RootDatabase['useReadTransaction']>;
  const names = new Map<number, string>();
  const blobs: LinkedBlob[] = [];
  try {
    mkdirSync(linkDir, { recursive: true });
    txn = env.useReadTransaction();
    try {
      for (const { key, value } of units.getRange({ transaction: txn })) names.set(value, key);
      for (const [id, name] of names) linkBlobs(join(dir, 'blobs', String(id)), linkDir, name, blobs);
    } catch (err) {
      txn.done();
      rmSync(linkDir, { recursive: true, force: true });
      throw err;
    }
  } finally {
    resumeAcks();
  }
  // --- end of the synchronous turn ---

  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    open.get(engine)?.delete(release);
    txn.done();
    rmSync(linkDir, { recursive: true, force: true });
  };
  let active = open.get(engine);
  if (active === undefined) open.set(engine, (active = new Set()));
  active.add(release);
  // Gone while the journal caught up: an abort listener added now would never run.
  if (signal?.aborted === true) {
    release();
    signal.throwIfAborted();
  }
  signal?.addEventListener('abort', release, { once: true });

  const nameBytes = new Map<number, Uint8Array>([...names].map(([id, name]) => [id, utf8.encode(name)]));
  const rangeOf = () => (data as Database<Buffer, Buffer>).getRange({ transaction: txn });

  let size = HEADER_BYTES + END_BYTES;
  let frames = 0;
  let sized = 0;
  for (const { key, value } of rangeOf()) {
    if (++sized % SLICE_ENTRIES === 0) {
      await nextTurn();
      // Released meanwhile (client gone, server closing): the transaction is finished.
      if (released) throw signal?.reason ?? new QuartzError(ErrorCode.UNAVAILABLE, 'the server is shutting down; the backup was stopped');
    }
    const name = nameBytes.get(key.readUInt32BE(0));
    if (name === undefined) continue;
    size += kvFrameBytes(name.length, key.length - UNIT_PREFIX_BYTES, value.length);
    frames++;
  }
  for (const b of blobs) {
    size += blobFrameBytes(utf8.encode(b.unit).length, utf8.encode(b.key).length, b.size);
    frames++;
  }


  async function* produce(): AsyncGenerator<Uint8Array> {
    yield header(Date.now());
    let batch: Buffer[] = [];
    let batched = 0;
    const entries = rangeOf()[Symbol.iterator]();
    for (;;) {
      // Released between two pulls (client gone, server closing): the transaction is finished,
      // so check before the iterator touches it again.
      if (released) return;
      const step = entries.next();
      if (step.done === true) break;
      const { key, value } = step.value;
      const name = nameBytes.get(key.readUInt32BE(0));
      if (name === undefined) continue;
      const frame = kvFrame(name, key.subarray(UNIT_PREFIX_BYTES), value);
      batch.push(frame);
      batched += frame.length;
      if (batched >= 256 * 1024) {
        yield Buffer.concat(batch, batched);
        batch = [];
        batched = 0;
        // A loopback client takes each batch at once, so without this the whole store streams in
        // microtasks and every other request waits for the end.
        await nextTurn();
      }
    }
    if (batched > 0) yield Buffer.concat(batch, batched);
    for (const b of blobs) {
      if (released) return;
      const head = blobFrameHead(utf8.encode(b.unit), b.key, b.size);
      let crc = crc32(head);
      yield head;
      let read = 0;
      for await (const chunk of createReadStream(b.path, { highWaterMark: 256 * 1024 })) {
        crc = crc32(chunk as Buffer, crc);
        read += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (read !== b.size) throw new QuartzError(ErrorCode.CORRUPT_DATA, `blob '${b.key}' of unit '${b.unit}' changed size during the backup`);
      yield crcTrailer(crc);
    }
    yield endFrame(frames);
  }

  const it = produce();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await it.next();
        if (next.done) {
          release();
          controller.close();
        } else controller.enqueue(next.value);
      } catch (err) {
        release();
        controller.error(err);
      }
    },
    cancel() {
      release();
    },
  });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return { body, size, filename: `quartz-backup-${stamp}.qzb`, contentType: 'application/vnd.quartzdb.backup' };
}
