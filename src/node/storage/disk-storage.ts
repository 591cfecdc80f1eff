/**
 * The Node disk home of the Storage port. One lmdb environment holds every unit's ordered KV
 * (keys behind a 4-byte unit id, so dropping a unit is one range delete and opening one costs no
 * lmdb handle); blobs are files under `blobs/<unit id>/`.
 *
 * Ordered-KV writes are acknowledged from a write-ahead log and reach lmdb in batches (journal.ts).
 *
 * Layout of a data directory:
 *   kv.mdb, kv.mdb-lock   the lmdb environment: `units` (name → id), `meta`, `data` (id ‖ key → value)
 *   wal-0, wal-1          the write-ahead log (wal.ts)
 *   blobs/<id>/...        each unit's blobs (see file-blobs.ts)
 *   blobs/tmp/            blobs being written; emptied on open
 *   LOCK                  the pid of the process that has the directory open
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { link, mkdir, readFile, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openLmdb, type Database, type DatabaseOptions, type RootDatabase } from 'lmdb';
import { ErrorCode, QuartzError, isQuartzError } from '../../core/errors.js';
import { lmdbCommit, refuseCommitWithoutRoom, storageFailure, type LmdbCommitted } from './disk-errors.js';
import { init } from '../../core/loader.js';
import '../core.js'; // registers build/quartz.wasm as init()'s default source (the log's CRC32C) and raises glibc's malloc thresholds
import type { BlobStore, StorageProvider, UnitStorage } from '../../ports/storage.js';
import { checkName, checkPrefix, closedError } from '../../ports/storage-checks.js';
import { FileBlobs, ReadHandles, syncDir } from './file-blobs.js';
import { APPLIED_KEY, DEFAULT_APPLY_DELAY_MS, DEFAULT_LOG_FILE_BYTES, Journal, LOG_KEY } from './journal.js';
import { makeDirs } from './make-dirs.js';
import { LmdbKV, unitKeyEncoder, unitPrefix, type UnitHandleState, type UnitKey } from './lmdb-kv.js';
import { DATA_VERSION_KEY, META_UNIT, dataVersionTooNew, parseDataVersion } from '../../engine/data-version.js';
import { RecordCache } from './record-cache.js';
import { UnitNames } from './unit-names.js';
import { HEADER_BYTES, OP_PUT, closeLogFiles, encodeHeader, openLogFiles, recover, writeAtSync, type LogFile, type LogPosition } from './wal.js';

/** Address space reserved for kv.mdb's memory map (not disk, not memory). */
const LMDB_MAP_BYTES = 256 * 2 ** 30;

export interface DiskStorageOptions {
  /** The data directory; created if missing. */
  dir: string;
  /** Size of each of the two write-ahead log files (default 64 MiB); tests make it small. */
  logFileBytes?: number;
  /** How long acknowledged writes wait in the log before a batch moves them into lmdb (default 20 ms); tests make it long. */
  applyDelayMs?: number;
  /**
   * When the write-ahead log is damaged with acknowledged writes behind the damage, open anyway:
   * keep the writes before it, drop those after it (the damaged file is copied aside first) and
   * report what was dropped to `warn`. Without it the open fails with CORRUPT_DATA naming the
   * file, the offset and what would be lost. For one start after damage, not a standing setting.
   */
  dropDamagedLog?: boolean;
  /** Where `dropDamagedLog` reports what it dropped, and replay a damaged header it read past (default: process.emitWarning). */
  warn?: (message: string, details: Record<string, unknown>) => void;
  /**
   * The newest data format version the caller understands (the engine's DATA_VERSION). A directory
   * whose kv.mdb records a newer one is refused with DATA_VERSION_TOO_NEW before anything is
   * replayed or swept: a newer build's log may hold frames this build would take for damage.
   */
  newestDataVersion?: number;
}

/**
 * Refuses a directory whose kv.mdb records a data format newer than `newest`. Reads lmdb alone:
 * a newer build that changes what its log holds records its version in kv.mdb before it writes
 * such frames (docs/format.md), so the check holds before this build reads a frame.
 */
function refuseNewerData(dir: string, catalog: Map<string, number>, fast: Database<Buffer, Buffer>, newest: number): void {
  const metaId = catalog.get(META_UNIT);
  if (metaId === undefined) return;
  const unitKey: UnitKey = { id: metaId, key: DATA_VERSION_KEY };
  const raw = fast.get(unitKey as unknown as Buffer);
  const found = parseDataVersion(raw === undefined ? undefined : new Uint8Array(raw.buffer, raw.byteOffset, raw.length));
  if (found > newest) throw dataVersionTooNew(`data directory ${dir}`, found, newest);
}

/** Directories this process has open (the LOCK file's pid cannot tell two opens in one process apart). */
const openHere = new Set<string>();

/**
 * A process's state letter and start time (clock ticks since boot) from /proc/PID/stat, where
 * Linux has it; undefined elsewhere or when there is no such process.
 */
function procStat(pid: number): { state: string; startTicks: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields count from its last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTicks = fields[19];
  return state !== undefined && startTicks !== undefined ? { state, startTicks } : undefined;
}

/** What the LOCK file says: the pid, and where /proc has it, the process's start time. */
function lockIdentity(): string {
  const start = procStat(process.pid)?.startTicks;
  return start === undefined ? String(process.pid) : `${process.pid} ${start}`;
}

/**
 * Whether the LOCK's owner still runs. A killed server's pid can name an unreaped zombie for a
 * moment (a container's init may reap late), or, after a reboot or a container restart, another
 * process entirely (pids repeat there): neither holds the directory.
 */
function ownerAlive(pid: number, startTicks: string | undefined): boolean {
  const stat = procStat(pid);
  if (stat !== undefined) return stat.state !== 'Z' && stat.state !== 'X' && (startTicks === undefined || stat.startTicks === startTicks);
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Attempts at the LOCK before giving up on a directory other processes keep taking and dropping. */
const LOCK_ATTEMPTS = 50;

/**
 * Takes the data directory for this process. Two processes on one directory would each trust
 * their own in-memory state (unit catalog, partition high watermarks) and corrupt each other.
 * A LOCK left by a killed process names a dead pid (or one now reused) and is taken over.
 *
 * Processes starting together must not both win. The LOCK appears with its content (written to a
 * file of its own, then linked into place), so no starter reads an empty LOCK of a live process
 * and takes it for a dead one's. And only one starter removes a given stale LOCK: the one that
 * claims it by creating `LOCK.stale.<its content>.<k>` (k moves on past claims of starters that
 * died); the others wait and look again. Without both, two of six processes started at once on a
 * directory both opened it, and another failed with a bare EEXIST.
 */
async function lockDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'LOCK');
  if (openHere.has(path)) {
    throw new QuartzError(ErrorCode.PRECONDITION_FAILED, `data directory ${dir} is already open in this process`);
  }
  // Taken before the first await: two opens in this process at once would both pass the check above.
  openHere.add(path);
  try {
    await takeLock(dir, path);
  } catch (err) {
    openHere.delete(path);
    throw err;
  }
  return async () => {
    openHere.delete(path);
    await unlink(path).catch(() => undefined);
  };
}

async function takeLock(dir: string, path: string): Promise<void> {
  const identity = lockIdentity();
  for (let attempt = 0; attempt < LOCK_ATTEMPTS; attempt++) {
    if (await linkWithContent(dir, path, identity)) {
      await removeDeadLockFiles(dir);
      return;
    }
    const held = await readFile(path, 'utf8').catch(() => undefined);
    if (held === undefined) continue; // released meanwhile
    const owner = lockOwner(held);
    if (owner !== undefined && owner.pid !== process.pid && ownerAlive(owner.pid, owner.startTicks)) {
      throw new QuartzError(ErrorCode.PRECONDITION_FAILED, `data directory ${dir} is in use by process ${owner.pid}`, { details: { pid: owner.pid } });
    }
    const claim = await claimStaleLock(dir, held, identity);
    if (claim === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 2 + attempt)); // another starter is removing it
      continue;
    }
    // Only this claim's holder removes a LOCK that still says `held`, and nobody else changes it.
    if ((await readFile(path, 'utf8').catch(() => undefined)) === held) await unlink(path).catch(() => undefined);
    await unlink(claim).catch(() => undefined);
  }
  throw new QuartzError(ErrorCode.PRECONDITION_FAILED, `data directory ${dir} is being opened by other processes at the same time; try again`);
}

/** The LOCK's pid and, where /proc has it, start time; undefined for content no build writes (a crash between create and write, in builds before the link). */
function lockOwner(text: string): { pid: number; startTicks: string | undefined } | undefined {
  const [pidText = '', startTicks] = text.trim().split(' ');
  const pid = Number(pidText);
  return /^\d+$/.test(pidText) && Number.isSafeInteger(pid) && pid > 0 ? { pid, startTicks } : undefined;
}

/** `LOCK.new.<writer's pid>.<12 hex>`: the file `linkWithContent` writes, then links into place. */
const LOCK_TEMP_NAME = /^LOCK\.new\.([1-9]\d*)\.[0-9a-f]{12}$/;
/** `LOCK.stale.<the stale LOCK's content as a tag>.<k>`: a claim (see `claimStaleLock`). */
const LOCK_CLAIM_NAME = /^LOCK\.stale\.[0-9A-Za-z_]{1,64}\.\d+$/;

/** Whether `name` is one the LOCK's takers write: any other `LOCK.*` is someone else's file. */
function isLockWorkFile(name: string): boolean {
  return LOCK_TEMP_NAME.test(name) || LOCK_CLAIM_NAME.test(name);
}

/** Creates `path` holding `content`, or returns false if it exists: never an empty file others can read. */
async function linkWithContent(dir: string, path: string, content: string): Promise<boolean> {
  const temp = join(dir, `LOCK.new.${process.pid}.${randomBytes(6).toString('hex')}`);
  await writeFile(temp, content, { flag: 'wx' });
  try {
    await link(temp, path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    // link(2): EPERM where the filesystem has no hard links (FAT, exFAT, some FUSE and SMB mounts).
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
      throw new QuartzError(ErrorCode.PRECONDITION_FAILED, `data directory ${dir} is on a filesystem without hard links (link: ${code}), which its LOCK needs; put it on a local filesystem such as ext4, xfs, btrfs or APFS`, { cause: err });
    }
    throw err;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/** The claim file that lets this process remove the stale LOCK `held`, or undefined while a live process holds that claim. */
async function claimStaleLock(dir: string, held: string, identity: string): Promise<string | undefined> {
  const tag = held.trim().replace(/[^0-9A-Za-z]/g, '_').slice(0, 64) || 'empty';
  for (let k = 0; ; k++) {
    const claim = join(dir, `LOCK.stale.${tag}.${k}`);
    if (await linkWithContent(dir, claim, identity)) return claim;
    const owner = lockOwner(await readFile(claim, 'utf8').catch(() => ''));
    if (owner !== undefined && ownerAlive(owner.pid, owner.startTicks)) return undefined;
  }
}

/**
 * Claim and temp files left by starters that died, by their exact names: a file of the user's own
 * named `LOCK.something` is left alone whatever it holds. A live starter's are its own to remove.
 * A temp file names its writer's pid, so one left empty by a writer killed between creating and
 * writing it goes too (while that pid runs, the writer may be at that very step); a claim is
 * linked into place with its content, so one whose content names no process is not ours.
 */
async function removeDeadLockFiles(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!isLockWorkFile(name)) continue;
    const text = await readFile(join(dir, name), 'utf8').catch(() => undefined);
    if (text === undefined) continue; // removed meanwhile
    const writer = LOCK_TEMP_NAME.exec(name)?.[1];
    const owner = text === '' && writer !== undefined ? { pid: Number(writer), startTicks: undefined } : lockOwner(text);
    if (owner !== undefined && !ownerAlive(owner.pid, owner.startTicks)) await unlink(join(dir, name)).catch(() => undefined);
  }
}

/**
 * A data directory this process creates is its user's alone: kv.mdb and the log hold every
 * tenant's data and keys, which the usual umask (022) would leave readable by every local user.
 * An existing directory keeps the mode its operator gave it.
 */
export const PRIVATE_DIR_MODE = 0o700;

/** What a first start can leave before kv.mdb exists (a crash, or an admin.key put there first), and a mount point's lost+found. */
const BEFORE_FIRST_OPEN = new Set(['LOCK', 'admin.key', 'kv.mdb-lock', 'wal-0', 'wal-1', 'lost+found']);

/**
 * Refuses a directory that is neither new, empty, nor a QuartzDB data directory: opening one
 * adopts it, and the sweep below deletes what it finds under `blobs/` (someone's own files, when
 * --data names the wrong directory). A data directory is one with a kv.mdb; before kv.mdb, a
 * first start has made only `blobs/tmp` (empty) and the files above.
 */
async function refuseForeignDir(dir: string): Promise<void> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException): string[] => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  if (names.includes('kv.mdb')) return;
  // LOCK.new.* and LOCK.stale.*: what starters racing for the LOCK leave if they die (see lockDir).
  const foreign = names.filter((name) => !BEFORE_FIRST_OPEN.has(name) && !isLockWorkFile(name));
  if (foreign.includes('blobs')) {
    const blobs = await readdir(join(dir, 'blobs')).catch(() => ['?']);
    const tmp = blobs.length === 1 && blobs[0] === 'tmp' ? await readdir(join(dir, 'blobs', 'tmp')).catch(() => ['?']) : ['?'];
    if (blobs.length === 0 || tmp.length === 0) foreign.splice(foreign.indexOf('blobs'), 1);
  }
  if (foreign.length === 0) return;
  const shown = foreign.sort().slice(0, 3).map((name) => `'${name}'`).join(', ') + (foreign.length > 3 ? `, and ${foreign.length - 3} more` : '');
  throw new QuartzError(
    ErrorCode.INVALID_ARGUMENT,
    `data directory ${dir} is not a QuartzDB data directory (it has no kv.mdb) and is not empty (${shown}); name a new or empty directory, or one a QuartzDB server made`,
    { details: { found: foreign.length } },
  );
}

/**
 * Removes what a crash can leave behind: half-written temp blobs and blob dirs of dropped units.
 * Returns the blob directories of live units (see FileBlobs' `rootDirs`).
 */
async function sweep(dir: string, catalog: Map<string, number>): Promise<Set<string>> {
  await rm(join(dir, 'blobs', 'tmp'), { recursive: true, force: true });
  await mkdir(join(dir, 'blobs', 'tmp'), { recursive: true });
  const live = new Set([...catalog.values()].map(String));
  const rootDirs = new Set<string>();
  for (const name of await readdir(join(dir, 'blobs'))) {
    if (name === 'tmp') continue;
    if (live.has(name)) rootDirs.add(join(dir, 'blobs', name));
    else await rm(join(dir, 'blobs', name), { recursive: true, force: true });
  }
  return rootDirs;
}

/** A unit as this home opens it: its blobs can also be written from a stream (`putStream`). */
export interface DiskUnit extends UnitStorage {
  // Named by its shape, not FileBlobs: the published types must not reach lmdb's declarations.
  readonly blobs: BlobStore & { putStream(key: string, source: AsyncIterable<Uint8Array>): Promise<void> };
}

interface OpenUnit {
  state: UnitHandleState;
  storage: DiskUnit;
}

export class DiskStorage implements StorageProvider {
  private closed = false;
  private readonly open = new Map<string, OpenUnit>();
  private readonly creating = new Map<string, Promise<OpenUnit>>();
  /** Open blob read handles, shared by every unit so the fd count stays bounded. */
  private readonly handles = new ReadHandles();
  /** Hot small records of every unit (see record-cache.ts). */
  private readonly records = new RecordCache();
  /** The catalog's names, sorted for `listUnits`. */
  private readonly names: UnitNames;

  private constructor(
    private readonly dir: string,
    private readonly env: RootDatabase,
    private readonly units: Database<number, string>,
    private readonly meta: Database<number, string>,
    private readonly data: Database<Buffer, Buffer>,
    private readonly fast: Database<Buffer, Buffer>,
    /** name → id for every live unit; small, so kept in memory for listUnits and sync unit(). */
    private readonly catalog: Map<string, number>,
    private readonly unlock: () => Promise<void>,
    private readonly journal: Journal,
    /** Blob directories of units that may exist (see FileBlobs' `rootDirs`). */
    private readonly blobRoots: Set<string>,
  ) {
    this.names = new UnitNames(catalog.keys());
  }

  static async open(options: DiskStorageOptions): Promise<DiskStorage> {
    const dir = options.dir;
    try {
      await refuseForeignDir(dir);
      await makeDirs(dir, PRIVATE_DIR_MODE);
      await makeDirs(join(dir, 'blobs', 'tmp'));
      const unlock = await lockDir(dir);
      try {
        await init();
        return await DiskStorage.openLocked(dir, unlock, options);
      } catch (err) {
        await unlock();
        throw err;
      }
    } catch (err) {
      const failure = storageFailure(err, 'opening it', dir);
      if (isQuartzError(failure, ErrorCode.INSUFFICIENT_STORAGE)) {
        throw new QuartzError(failure.code, `cannot open data directory ${dir}: no space left on its disk; free some space and start again (nothing was lost)`, { cause: failure.cause });
      }
      throw err;
    }
  }

  private static async openLocked(dir: string, unlock: () => Promise<void>, options: DiskStorageOptions): Promise<DiskStorage> {
    const logFileBytes = options.logFileBytes ?? DEFAULT_LOG_FILE_BYTES;
    const applyDelayMs = options.applyDelayMs ?? DEFAULT_APPLY_DELAY_MS;
    // Durability: every lmdb commit is fsync'd before its promise resolves (overlappingSync,
    // noSync and noMetaSync off), so lmdb's file is whole after a power loss by LMDB's own design
    // and the journal's batches (and the log position they record) are on disk when they resolve.
    // Ordered-KV writes are acknowledged earlier, from the write-ahead log; see docs/architecture.md.
    // pageSize 8192 raises lmdb's key limit to 4026 bytes: MAX_KEY_BYTES plus our unit prefix.
    // mapSize: address space only (the file grows with the data, and lmdb grows the map past it
    // if ever needed). Starting small, lmdb doubled the map as kv.mdb grew and kept every
    // earlier map alive, so RSS counted a page of kv.mdb once per map that had touched it.
    const env = openLmdb({
      mapSize: LMDB_MAP_BYTES,
      path: join(dir, 'kv.mdb'),
      overlappingSync: false,
      noSync: false,
      noMetaSync: false,
      commitDelay: 0,
      eventTurnBatching: true,
      pageSize: 8192,
      maxDbs: 4,
    });
    const units = env.openDB<number, string>('units', { keyEncoding: 'ordered-binary', encoding: 'msgpack' });
    const meta = env.openDB<number, string>('meta', { keyEncoding: 'ordered-binary', encoding: 'msgpack' });
    const data = env.openDB<Buffer, Buffer>('data', { keyEncoding: 'binary', encoding: 'binary' });
    // The same database again, keyed by (unit id, key) pairs for single-key calls (see UnitKey).
    const fast = env.openDB<Buffer, Buffer>('data', { keyEncoder: unitKeyEncoder, encoding: 'binary' } as DatabaseOptions);
    const catalog = new Map<string, number>();
    for (const { key, value } of units.getRange({})) catalog.set(key, value);
    let files: LogFile[] | undefined;
    try {
      if (options.newestDataVersion !== undefined) refuseNewerData(dir, catalog, fast, options.newestDataVersion);
      // First, so what a crash (or a full disk) left in blobs/tmp is freed before replay needs room.
      const blobRoots = await sweep(dir, catalog);
      // 0 in a directory from before the log key: its frames have the plain CRC (see wal.ts).
      const storedKey = (meta.get(LOG_KEY) as unknown as number | undefined) ?? 0;
      files = openLogFiles(dir, storedKey);
      const { epoch, logKey } = await DiskStorage.replay(dir, env, meta, data, files, storedKey, new Set(catalog.values()), options);
      const journal = new Journal({ dir, env, meta: meta as Database<unknown, string>, fast, files, epoch, logKey, fileBytes: logFileBytes, applyDelayMs });
      return new DiskStorage(dir, env, units, meta, data, fast, catalog, unlock, journal, blobRoots);
    } catch (err) {
      if (files !== undefined) closeLogFiles(files);
      await env.close();
      throw err;
    }
  }

  /**
   * Puts into lmdb the logged writes it does not hold yet (a crash came before their batch),
   * skipping units dropped since, and moves lmdb's log position to a new epoch, above every record
   * in the files: one fsync'd transaction. Returns that epoch, where the journal starts writing,
   * and the log key it writes with (made and stored in that transaction if the directory has none).
   */
  private static async replay(
    dir: string,
    env: RootDatabase,
    meta: Database<number, string>,
    data: Database<Buffer, Buffer>,
    files: LogFile[],
    storedKey: number,
    live: Set<number>,
    options: DiskStorageOptions,
  ): Promise<{ epoch: number; logKey: number }> {
    const stored = meta.get(APPLIED_KEY) as unknown as [number, number] | undefined;
    const applied: LogPosition = stored === undefined ? { epoch: 0, offset: HEADER_BYTES } : { epoch: stored[0], offset: stored[1] };
    const { records, maxEpoch, damage } = recover(files, applied, storedKey);
    const warn = options.warn ?? ((message: string) => process.emitWarning(message, 'QuartzWarning'));
    for (const file of files) {
      // Nothing lost, but a header does not change after it is written: worth an operator's look.
      if (file.headerDamaged && file.epoch !== 0) {
        warn(`write-ahead log ${join(dir, file.name)}: its header is damaged (or was torn by a crash while written); its frames were read by their own epoch (${file.epoch}), nothing was lost`, { file: file.name, epoch: file.epoch });
      }
    }
    if (damage !== undefined) {
      // Nothing is written before this: refused, the directory stays as it was, and a later start
      // (with the opt-in, or after restoring the file) sees the same log.
      const where = `write-ahead log ${join(dir, damage.file)} is damaged at byte ${damage.offset} (${damage.reason})`;
      // All but the last few (those in flight at a crash) were acknowledged.
      const lost = `${damage.frames} later ${damage.frames === 1 ? 'frame' : 'frames'} (${damage.records} ${damage.records === 1 ? 'write' : 'writes'}, acknowledged ones among them)`;
      if (options.dropDamagedLog !== true) {
        throw new QuartzError(
          ErrorCode.CORRUPT_DATA,
          `${where}: ${lost} would be lost; the data directory is left as it is. To start anyway with every write before the damage and none after it, start once with --drop-damaged-log (QUARTZ_DROP_DAMAGED_LOG=1; openQuartz: dropDamagedLog)`,
          { details: { ...damage } },
        );
      }
      const kept = `${damage.file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      copyFileSync(join(dir, damage.file), join(dir, kept));
      await syncDir(dir);
      warn(`${where}: started anyway: dropped ${lost}, kept every write before it (${records.length} replayed from the log); the damaged file is copied to ${join(dir, kept)}`, { ...damage, copy: kept });
    }
    const epoch = maxEpoch + 1;
    // Never 0 (the plain CRC). Every frame of `epoch` on is written with it, and replay reads no
    // frame below lmdb's epoch, so the key in lmdb always matches the frames replay reads.
    let logKey = storedKey;
    while (logKey === 0) logKey = randomBytes(4).readUInt32LE(0);
    let keys = 2;
    let bytes = 0;
    for (const { ops } of records) {
      keys += ops.length;
      for (const op of ops) bytes += op.key.length + (op.value?.length ?? 0);
    }
    refuseCommitWithoutRoom(dir, keys, bytes, 'replaying the write-ahead log into kv.mdb (the data is intact)');
    const replayed = (env as unknown as { batch(writes: () => void): Promise<boolean> }).batch(() => {
      for (const { ops } of records) {
        for (const op of ops) {
          if (!live.has(Buffer.from(op.key.buffer, op.key.byteOffset, 4).readUInt32BE(0))) continue;
          if (op.type === OP_PUT) void data.put(Buffer.from(op.key), Buffer.from(op.value!));
          else void data.remove(Buffer.from(op.key));
        }
      }
      void (meta as Database<unknown, string>).put(APPLIED_KEY, [epoch, HEADER_BYTES]);
      if (logKey !== storedKey) void (meta as Database<unknown, string>).put(LOG_KEY, logKey);
    });
    await lmdbCommit(env as unknown as LmdbCommitted, replayed, 'replaying the write-ahead log into kv.mdb (the data is intact)', dir);
    // A damaged header is rewritten with the epoch its frames carry (all it holds), so it is
    // reported once, not at every start until the writer reuses the file.
    for (const file of files) if (file.headerDamaged && file.epoch !== 0) writeAtSync(file.fd, encodeHeader(file.epoch), 0);
    return { epoch, logKey };
  }

  private check(): void {
    if (this.closed) throw closedError(`disk storage at ${this.dir}`);
  }

  private handle(name: string, id: number): OpenUnit {
    const provider = this;
    const state: UnitHandleState = {
      name,
      id,
      dropped: false,
      check() {
        if (provider.closed) throw closedError(`disk storage at ${provider.dir}`);
        if (this.dropped) throw closedError(`unit '${name}' (dropped)`);
      },
    };
    const storage: DiskUnit = {
      kv: new LmdbKV(this.data, this.fast, state, this.journal, this.records),
      blobs: new FileBlobs(join(this.dir, 'blobs', String(id)), join(this.dir, 'blobs', 'tmp'), state, this.handles, this.blobRoots),
    };
    const unit = { state, storage };
    this.open.set(name, unit);
    return unit;
  }

  unit(name: string): DiskUnit | Promise<DiskUnit> {
    this.check();
    checkName(name, 'unit name');
    const known = this.open.get(name);
    if (known !== undefined) return known.storage;
    const id = this.catalog.get(name);
    if (id !== undefined) return this.handle(name, id).storage;
    let pending = this.creating.get(name);
    if (pending === undefined) {
      pending = this.create(name).finally(() => this.creating.delete(name));
      this.creating.set(name, pending);
    }
    return pending.then((u) => u.storage);
  }

  /** Assigns a new unit id (never reused, so stale data can never reappear under a new unit). */
  private async create(name: string): Promise<OpenUnit> {
    let id = 0;
    refuseCommitWithoutRoom(this.dir, 3, 0, `a new storage unit '${name}'`);
    await lmdbCommit(
      this.env as unknown as LmdbCommitted,
      this.env.transaction(() => {
        id = (this.meta.get('next_unit_id') ?? 1) as number;
        void this.meta.put('next_unit_id', id + 1);
        void this.units.put(name, id);
      }),
      `a new storage unit '${name}'`,
      this.dir,
    );
    this.check();
    this.catalog.set(name, id);
    this.names.add(name);
    return this.handle(name, id);
  }

  listUnits(prefix: string): string[] {
    this.check();
    checkPrefix(prefix, 'unit prefix');
    return this.names.withPrefix(prefix);
  }

  async dropUnit(name: string): Promise<void> {
    this.check();
    checkName(name, 'unit name');
    await this.creating.get(name);
    const id = this.catalog.get(name);
    if (id === undefined) return;
    // Before the unit is marked dropped: a refused drop leaves it as it was.
    refuseCommitWithoutRoom(this.dir, 256, 0, `dropping storage unit '${name}'`);
    const unit = this.open.get(name);
    if (unit !== undefined) unit.state.dropped = true;
    this.open.delete(name);
    this.catalog.delete(name);
    this.names.delete(name);
    const start = unitPrefix(id);
    const end = unitPrefix(id + 1);
    // The catalog entry and every key go in one transaction: after a crash the unit is either
    // whole or gone. Its blob dir is removed afterwards; `sweep` finishes the job after a crash.
    await lmdbCommit(
      this.env as unknown as LmdbCommitted,
      this.env.transaction(() => {
        void this.units.remove(name);
        // Collect first: deleting under a live cursor is not something to rely on.
        const keys = [...this.data.getKeys({ start, end })];
        for (const key of keys) void this.data.remove(key);
      }),
      `dropping storage unit '${name}'`,
      this.dir,
    );
    // Its kept records can never be read again (its handle refuses every call, and unit ids are
    // not reused), so they are left to age out of the record cache: clearing the cache here emptied
    // every tenant's hot records whenever anyone deleted a topic or a collection.
    const blobDir = join(this.dir, 'blobs', String(id));
    this.handles.evictUnder(blobDir);
    this.blobRoots.delete(blobDir);
    // Most units never write a blob (a partition before its first roll, a KV without large
    // values): then there is nothing to remove and no directory entry to make durable, and a
    // topic delete does not queue a thousand rm + fsync calls ahead of other writes.
    const hadBlobs = await stat(blobDir).then(
      () => true,
      (err: NodeJS.ErrnoException) => err.code !== 'ENOENT',
    );
    if (!hadBlobs) return;
    await rm(blobDir, { recursive: true, force: true });
    await syncDir(join(this.dir, 'blobs'));
  }

  /**
   * The lmdb handles and directory, for the consistent backup snapshot (src/node/backup/snapshot.ts).
   * lmdb holds every acknowledged write and no new write is acknowledged until `release` is called:
   * take the read transaction before that.
   * @internal Left out of the published types: lmdb's own ESM declaration file fails to compile
   * without skipLibCheck, so no public type may lead to it.
   */
  async backupSource(): Promise<{ dir: string; env: RootDatabase; units: Database<number, string>; data: Database<Buffer, Buffer>; release: () => void }> {
    this.check();
    const release = await this.journal.hold();
    return { dir: this.dir, env: this.env, units: this.units, data: this.data, release };
  }

  /** Resolves once lmdb itself holds every write acknowledged so far (tests; the log is enough for durability). */
  async settle(): Promise<void> {
    this.check();
    (await this.journal.hold())();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handles.closeAll();
    try {
      // May fail (a full disk refusing the last lmdb batch): the log keeps those writes for the
      // next open, and the directory is let go all the same.
      await this.journal.close();
    } finally {
      await this.env.close();
      await this.unlock();
    }
  }
}

/**
 * Opens (creating if needed) a data directory as a StorageProvider on lmdb + files.
 *
 * @example
 * const storage = await openDiskStorage({ dir: './.quartz' });
 * const { kv } = await storage.unit('kv/t1');
 * await kv.put(new TextEncoder().encode('k'), new Uint8Array([1])); // fsync'd when this resolves
 * await storage.close();
 */
export function openDiskStorage(options: DiskStorageOptions): Promise<DiskStorage> {
  return DiskStorage.open(options);
}
