/**
 * Versioned data: the `meta` unit records the data format version. Opening an engine refuses a
 * newer format (DATA_VERSION_TOO_NEW) and upgrades an older one by running the numbered
 * migrations in order, recording each version as it completes so an interrupted upgrade
 * resumes where it stopped. Platform-free: it talks only to the Storage port.
 */
import { ErrorCode, QuartzError } from '../core/errors.js';
import type { StorageProvider } from '../ports/storage.js';

export const META_UNIT = 'meta';
/** The `meta` unit's key holding the version, as decimal text. */
export const DATA_VERSION_KEY = new TextEncoder().encode('data_version');

export interface Migration {
  /** The version this migration produces; migrations are numbered 1, 2, 3, ... */
  version: number;
  description: string;
  /** Must tolerate being re-run after a crash part-way through it. */
  up(storage: StorageProvider): Promise<void>;
}

/** Every migration, in order. The last one's version is the format this code writes. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'initial format: units tenants, kv/, topics/, log/, groups/, collections/, vec/',
    // Nothing to convert: version 1 is the first recorded format.
    up: async () => undefined,
  },
  {
    version: 2,
    description: 'the Node disk adapter may hold acknowledged writes in its write-ahead log (wal-0, wal-1) that lmdb has not received yet',
    // Nothing to convert: the number exists so that a build without the log refuses the
    // directory instead of opening lmdb alone and missing the writes still in the log.
    up: async () => undefined,
  },
];

export const DATA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

function encode(version: number): Uint8Array {
  return new TextEncoder().encode(String(version));
}

/** The recorded version, or 0 for data that predates versioning (or a fresh store). */
export async function readDataVersion(storage: StorageProvider): Promise<number> {
  const { kv } = await storage.unit(META_UNIT);
  return parseDataVersion(await kv.get(DATA_VERSION_KEY));
}

/** The version in a stored version record; 0 for none. */
export function parseDataVersion(raw: Uint8Array | undefined): number {
  if (raw === undefined) return 0;
  const text = new TextDecoder().decode(raw);
  const version = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(version)) {
    throw new QuartzError(ErrorCode.CORRUPT_DATA, `the data format version record is unreadable: ${JSON.stringify(text.slice(0, 40))}`);
  }
  return version;
}

export interface DataVersionResult {
  /** The version found before opening (0: none recorded). */
  from: number;
  /** The version now recorded. */
  to: number;
  /** Versions whose migrations ran, in order. */
  applied: number[];
}

/** The refusal of a store in a format newer than `supported`. */
export function dataVersionTooNew(where: string, found: number, supported: number): QuartzError {
  return new QuartzError(
    ErrorCode.DATA_VERSION_TOO_NEW,
    `${where} is in format version ${found}, newer than this QuartzDB supports (${supported}); upgrade QuartzDB to open it`,
    { details: { found, supported } },
  );
}

/**
 * Brings the store to the newest format, or refuses a store written by a newer QuartzDB.
 *
 * @example
 * const { from, to } = await ensureDataVersion(storage, { where: 'data directory ./.quartz' });
 */
export async function ensureDataVersion(
  storage: StorageProvider,
  options: { migrations?: readonly Migration[]; where?: string } = {},
): Promise<DataVersionResult> {
  const migrations = options.migrations ?? MIGRATIONS;
  const where = options.where ?? 'the data';
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new QuartzError(ErrorCode.INTERNAL, `migration #${i} is numbered ${m.version}; migrations must be numbered 1, 2, 3, ... in order`);
    }
  });
  const latest = migrations.length;
  const from = await readDataVersion(storage);
  if (from > latest) throw dataVersionTooNew(where, from, latest);
  const { kv } = await storage.unit(META_UNIT);
  const applied: number[] = [];
  for (const m of migrations.slice(from)) {
    try {
      await m.up(storage);
    } catch (err) {
      throw new QuartzError(ErrorCode.INTERNAL, `migrating ${where} to format version ${m.version} (${m.description}) failed`, { cause: err });
    }
    await kv.put(DATA_VERSION_KEY, encode(m.version));
    applied.push(m.version);
  }
  return { from, to: latest, applied };
}
