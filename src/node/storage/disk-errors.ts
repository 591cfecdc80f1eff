/**
 * File system and lmdb failures as the errors callers act on: a full disk is
 * `insufficient_storage` (HTTP 507), so a client learns its write was not stored and can retry
 * once an operator frees space, instead of an opaque 500.
 */
import { statfsSync } from 'node:fs';
import { constants } from 'node:os';
import { ErrorCode, QuartzError, isQuartzError } from '../../core/errors.js';

/** Node names errno values (`code: 'ENOSPC'`); lmdb-js reports the number (`code: 28`). */
const NO_SPACE = new Set<string | number>(['ENOSPC', 'EDQUOT', constants.errno.ENOSPC, constants.errno.EDQUOT]);

/** Whether `err` says the file system (or the user's quota) has no room left. */
export function isNoSpace(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if ((typeof code === 'string' || typeof code === 'number') && NO_SPACE.has(code)) return true;
  // lmdb-js also puts the strerror text in the message ("No space left on device: ...").
  return err instanceof Error && /no space left on device|quota exceeded/i.test(err.message);
}

/** Below this much free space, an EIO from lmdb is taken for a full disk (see `storageFailure`). */
const LOW_SPACE_BYTES = 64 << 20;

function isIoError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'EIO' || code === constants.errno.EIO;
}

/** Free space on the disk of `dir`; Infinity when the file system does not tell (a FUSE one without statfs reports 0 blocks in all). */
function freeBytes(dir: string): number {
  try {
    const stats = statfsSync(dir);
    return stats.blocks === 0 ? Infinity : stats.bavail * stats.bsize;
  } catch {
    return Infinity;
  }
}

/**
 * `err`, or the `insufficient_storage` QuartzError it means (the file system's error as its cause).
 * `dir`, where given, is the data directory of an lmdb write: LMDB reports a short page write as
 * EIO, not ENOSPC (mdb.c, mdb_page_flush), and a disk filling up mid-write is what cuts one short,
 * so an EIO with almost no free space left is taken for a full disk.
 *
 * @example
 * try { await writeAt(fd, buf, 0, n, pos); } catch (err) { throw storageFailure(err, 'the write-ahead log'); }
 */
export function storageFailure(err: unknown, what: string, dir?: string): unknown {
  if (isQuartzError(err)) return err;
  if (!isNoSpace(err) && !(dir !== undefined && isIoError(err) && freeBytes(dir) < LOW_SPACE_BYTES)) return err;
  return new QuartzError(ErrorCode.INSUFFICIENT_STORAGE, `no space left on the server's disk for ${what}: it was not stored; retry once space is freed`, { cause: err });
}

/**
 * What one written key may cost an lmdb commit besides twice its bytes: a share of the pages it
 * dirties (a page is 4 KiB; keys written together share most of theirs).
 */
const KEY_BYTES = 512;
/** Room kept beyond a commit's estimate (see `refuseCommitWithoutRoom`). */
const COMMIT_SLACK_BYTES = 1 << 20;

/**
 * Throws `insufficient_storage` when the disk of `dir` has less free space than an lmdb commit of
 * `keys` writes carrying `bytes` of keys and values may need: an estimate (twice the bytes, 512
 * bytes a key, 1 MiB besides), since what lmdb writes depends on the pages the keys fall in.
 *
 * NOTE: lmdb must not meet a full disk itself. lmdb-js 3.5's mdb.c (mdb_page_flush) formats the
 * error of a failed page write with sprintf into a malloc(100) buffer; the text runs past 100
 * bytes for a data file past ~100 MB, a write of a few large pages, or (it reads iov entries it
 * never set) by chance, and overruns the heap: "malloc(): invalid next size", the process aborts
 * (a full disk under KV puts of 300 KB values did so within seconds). A commit refused here
 * changes nothing and is retried as one lmdb refused; a commit needing more than the estimate,
 * or a disk filled by another process between this check and lmdb's write, still reaches lmdb's
 * error path (where the overrun depends on the text's length).
 *
 * @example
 * refuseCommitWithoutRoom(dir, ops.length, bytes, 'a new unit');
 */
export function refuseCommitWithoutRoom(dir: string, keys: number, bytes: number, what: string): void {
  const needed = 2 * bytes + keys * KEY_BYTES + COMMIT_SLACK_BYTES;
  if (freeBytes(dir) >= needed) return;
  throw new QuartzError(ErrorCode.INSUFFICIENT_STORAGE, `no space left on the server's disk for ${what}: it was not stored; retry once space is freed`);
}

/** The part of an lmdb environment a failed commit needs (`committed` is a thenable of the last commit). */
export interface LmdbCommitted {
  committed: PromiseLike<unknown>;
}

const ignore = (): void => {};

/**
 * The reason behind a failed lmdb commit. Call it from the failed commit's rejection handler, in the
 * same turn. lmdb-js rejects a failed commit's writes with a generic "Commit failed" error whose
 * `commitError` is a second, rejected promise holding the cause.
 *
 * NOTE: lmdb-js 3.x with `eventTurnBatching` also rejects a promise of its own for the event
 * turn's batch (write.js, writeBatchStart) that nothing observes; both would be unhandled
 * rejections, which end the process. `env.committed` leads to that promise while the failed
 * commit is the latest, so a handler is put on it here.
 */
export async function lmdbCommitFailure(err: unknown, env: LmdbCommitted): Promise<unknown> {
  env.committed.then(undefined, ignore);
  const inner = (err as { commitError?: Promise<unknown> } | null)?.commitError;
  if (inner === undefined || typeof inner.then !== 'function') return err;
  return inner.then(
    () => err,
    (cause: unknown) => cause,
  );
}

/**
 * Awaits an lmdb commit; a failure becomes `storageFailure` of its cause.
 *
 * @example
 * await lmdbCommit(env, env.transaction(() => { void db.put(k, v); }), 'a new unit', dir);
 */
export async function lmdbCommit<T>(env: LmdbCommitted, commit: Promise<T>, what: string, dir: string): Promise<T> {
  try {
    return await commit;
  } catch (err) {
    throw storageFailure(await lmdbCommitFailure(err, env), what, dir);
  }
}
