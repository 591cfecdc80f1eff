/**
 * The admin key: QUARTZ_ADMIN_KEY when set, else `<data dir>/admin.key`, generated on first
 * start with mode 0600 so only the server's user can read it.
 */
import { randomBytes } from 'node:crypto';
import { chmod, link, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, QuartzError } from '../../core/errors.js';
import { syncDir } from '../storage/file-blobs.js';

export interface AdminKey {
  key: string;
  /** The file it lives in, or the variable it came from. */
  where: string;
  /** True when this start generated it. */
  created: boolean;
}

export const ADMIN_KEY_FILE = 'admin.key';

/**
 * What `Authorization: Bearer <key>` carries: printable ASCII, no spaces. A key with a space (or a
 * padded env file's trailing blank) would be accepted here and then match no request, locking
 * the operator out of every admin route.
 */
const PRESENTABLE = /^[!-~]+$/;
/** Said without the key itself: error lines end up in logs. */
const UNPRESENTABLE = 'must be printable ASCII without spaces (what an Authorization: Bearer header can carry)';

/**
 * The admin key QUARTZ_ADMIN_KEY gives, undefined when it is unset or empty; throws when it is
 * set to a key no request could present. Needs no data directory, so a server checks it before
 * opening one.
 *
 * @example
 * const fromEnv = adminKeyFromEnv(process.env.QUARTZ_ADMIN_KEY);
 */
export function adminKeyFromEnv(value: string | undefined): AdminKey | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length < 16) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, 'QUARTZ_ADMIN_KEY must be at least 16 characters');
  if (!PRESENTABLE.test(value)) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `QUARTZ_ADMIN_KEY ${UNPRESENTABLE}`);
  return { key: value, where: 'the QUARTZ_ADMIN_KEY environment variable', created: false };
}

/**
 * Reads `<data dir>/admin.key`, or creates it with a new key.
 *
 * @example
 * const { key, where } = await adminKeyFile('./.quartz');
 */
export async function adminKeyFile(dataDir: string): Promise<AdminKey> {
  const path = join(dataDir, ADMIN_KEY_FILE);
  const key = `qza_${randomBytes(32).toString('hex')}`;
  if (await createWhole(dataDir, path, key + '\n')) return { key, where: path, created: true };
  let existing: string;
  try {
    // A copied or restored key file may have lost its mode: tighten it.
    if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600);
    existing = (await readFile(path, 'utf8')).trim();
  } catch (err) {
    // Some of these errors (EISDIR from a read) name no path: say which file.
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `admin key file ${path}: cannot read it (${code}); make it a file the server's user can read, or remove it to generate a new key`);
  }
  if (existing.length < 16) throw new QuartzError(ErrorCode.CORRUPT_DATA, `admin key file ${path} is empty or too short; delete it to generate a new key`);
  if (!PRESENTABLE.test(existing)) throw new QuartzError(ErrorCode.CORRUPT_DATA, `admin key file ${path}: the key ${UNPRESENTABLE}; fix it or delete the file to generate a new key`);
  return { key: existing, where: path, created: false };
}

/** `admin.key.new.<12 hex>`: a key written aside, linked into place once whole. */
const KEY_TEMP_NAME = /^admin\.key\.new\.[0-9a-f]{12}$/;

/**
 * Creates `path` holding `content`, durably, or returns false if it exists (another start's key is
 * never overwritten). Written aside, fsync'd, then linked into place: written in place, a start
 * killed between the file's creation and its write, or a power cut before its blocks reached the
 * disk, left an empty admin.key that every later start refused. The data directory's LOCK is held,
 * so a temp file found here is one a killed start left behind: removed (it holds a key no one saw).
 */
async function createWhole(dataDir: string, path: string, content: string): Promise<boolean> {
  for (const name of await readdir(dataDir)) if (KEY_TEMP_NAME.test(name)) await unlink(join(dataDir, name)).catch(() => undefined);
  // Any answer but "missing" is the existing key's to explain (see adminKeyFile's messages).
  const missing = await stat(path).then(
    () => false,
    (err: NodeJS.ErrnoException) => err.code === 'ENOENT',
  );
  if (!missing) return false;
  const temp = join(dataDir, `${ADMIN_KEY_FILE}.new.${randomBytes(6).toString('hex')}`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(temp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  await syncDir(dataDir);
  return true;
}
