/**
 * The Node disk home of the Storage port. One lmdb environment holds every unit's ordered KV
 * (keys behind a 4-byte unit id, so dropping a unit is one range delete and opening one costs no
 * lmdb handle); blobs are files under `blobs/<unit id>/`.
 *
 * Layout of a data directory:
 *   kv.mdb, kv.mdb-lock   the lmdb environment: `units` (name → id), `meta`, `data` (id ‖ key → value)
 *   blobs/<id>/...        each unit's blobs (see file-blobs.ts)
 *   blobs/tmp/            blobs being written; emptied on open
 *   LOCK                  the pid of the process that has the directory open
 */
import { mkdir, open as openFile, readFile, readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openLmdb, type Database, type DatabaseOptions, type RootDatabase } from 'lmdb';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import type { StorageProvider, UnitStorage } from '../../ports/storage.js';
import { checkName, checkPrefix, closedError, compareUtf8 } from '../../ports/storage-checks.js';
import { FileBlobs, ReadHandles, syncDir } from './file-blobs.js';
import { LmdbKV, unitKeyEncoder, unitPrefix, type UnitHandleState } from './lmdb-kv.js';

/** Address space reserved for kv.mdb's memory map (not disk, not memory). */
const LMDB_MAP_BYTES = 256 * 2 ** 30;

export interface DiskStorageOptions {
  /** The data directory; created if missing. */
  dir: string;
}

/** Directories this process has open (the LOCK file's pid cannot tell two opens in one process apart). */
const openHere = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the data directory for this process. Two processes on one directory would each trust
 * their own in-memory state (unit catalog, partition high watermarks) and corrupt each other.
 * A LOCK left by a killed process names a dead pid and is taken over.
 */
async function lockDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'LOCK');
  if (openHere.has(path)) {
    throw new QuartzError(ErrorCode.PRECONDITION_FAILED, `data directory ${dir} is already open in this process`);
  }
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await openFile(path, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new QuartzError(ErrorCode.PRECONDITION_FAILED, `data directory ${dir} is in use by process ${owner}`, { details: { pid: owner } });
      }
      await unlink(path).catch(() => undefined); // stale: its process is gone
    }
  }
  openHere.add(path);
  return async () => {
    openHere.delete(path);
    await unlink(path).catch(() => undefined);
  };
}

interface OpenUnit {
  state: UnitHandleState;
  storage: UnitStorage;
}

export class DiskStorage implements StorageProvider {
  private closed = false;
  private readonly open = new Map<string, OpenUnit>();
  private readonly creating = new Map<string, Promise<OpenUnit>>();
  /** Open blob read handles, shared by every unit so the fd count stays bounded. */
  private readonly handles = new ReadHandles();

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
  ) {}

  static async open(options: DiskStorageOptions): Promise<DiskStorage> {
    const dir = options.dir;
    await mkdir(join(dir, 'blobs', 'tmp'), { recursive: true });
    const unlock = await lockDir(dir);
    try {
      return await DiskStorage.openLocked(dir, unlock);
    } catch (err) {
      await unlock();
      throw err;
    }
  }

  private static async openLocked(dir: string, unlock: () => Promise<void>): Promise<DiskStorage> {
    // Durability: lmdb's default `overlappingSync` resolves a write's promise at commit and
    // fsyncs afterwards (only `db.flushed` waits for the disk). We turn it off so every put /
    // remove / transaction promise resolves only after its commit is fsync'd; `noSync` and
    // `noMetaSync` stay off (never skip the flush); `commitDelay: 0` commits on the next turn;
    // `eventTurnBatching` (on) groups writes of one event turn into one fsync'd transaction.
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
    const storage = new DiskStorage(dir, env, units, meta, data, fast, catalog, unlock);
    await storage.sweep();
    return storage;
  }

  /** Removes what a crash can leave behind: half-written temp blobs and blob dirs of dropped units. */
  private async sweep(): Promise<void> {
    await rm(join(this.dir, 'blobs', 'tmp'), { recursive: true, force: true });
    await mkdir(join(this.dir, 'blobs', 'tmp'), { recursive: true });
    const live = new Set([...this.catalog.values()].map(String));
    for (const name of await readdir(join(this.dir, 'blobs'))) {
      if (name !== 'tmp' && !live.has(name)) await rm(join(this.dir, 'blobs', name), { recursive: true, force: true });
    }
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
    const storage: UnitStorage = {
      kv: new LmdbKV(this.data, this.fast, state),
      blobs: new FileBlobs(join(this.dir, 'blobs', String(id)), join(this.dir, 'blobs', 'tmp'), state, this.handles),
    };
    const unit = { state, storage };
    this.open.set(name, unit);
    return unit;
  }

  unit(name: string): UnitStorage | Promise<UnitStorage> {
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
    await this.env.transaction(() => {
      id = (this.meta.get('next_unit_id') ?? 1) as number;
      void this.meta.put('next_unit_id', id + 1);
      void this.units.put(name, id);
    });
    this.check();
    this.catalog.set(name, id);
    return this.handle(name, id);
  }

  listUnits(prefix: string): string[] {
    this.check();
    checkPrefix(prefix, 'unit prefix');
    return [...this.catalog.keys()].filter((n) => n.startsWith(prefix)).sort(compareUtf8);
  }

  async dropUnit(name: string): Promise<void> {
    this.check();
    checkName(name, 'unit name');
    await this.creating.get(name);
    const id = this.catalog.get(name);
    if (id === undefined) return;
    const unit = this.open.get(name);
    if (unit !== undefined) unit.state.dropped = true;
    this.open.delete(name);
    this.catalog.delete(name);
    const start = unitPrefix(id);
    const end = unitPrefix(id + 1);
    // The catalog entry and every key go in one transaction: after a crash the unit is either
    // whole or gone. Its blob dir is removed afterwards; `sweep` finishes the job after a crash.
    await this.env.transaction(() => {
      void this.units.remove(name);
      // Collect first: deleting under a live cursor is not something to rely on.
      const keys = [...this.data.getKeys({ start, end })];
      for (const key of keys) void this.data.remove(key);
    });
    this.handles.evictUnder(join(this.dir, 'blobs', String(id)));
    await rm(join(this.dir, 'blobs', String(id)), { recursive: true, force: true });
    await syncDir(join(this.dir, 'blobs'));
  }

  /** The lmdb handles and directory, for the consistent backup snapshot (src/node/backup/snapshot.ts). */
  backupSource(): { dir: string; env: RootDatabase; units: Database<number, string>; data: Database<Buffer, Buffer> } {
    this.check();
    return { dir: this.dir, env: this.env, units: this.units, data: this.data };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handles.closeAll();
    await this.env.close();
    await this.unlock();
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
