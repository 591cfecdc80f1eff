/**
 * The admin key: QUARTZ_ADMIN_KEY when set, else `<data dir>/admin.key`, generated on first
 * start with mode 0600 so only the server's user can read it.
 */
import { randomBytes } from 'node:crypto';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, QuartzError } from '../../core/errors.js';

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
 * Reads or creates the admin key.
 *
 * @example
 * const { key, where } = await loadAdminKey('./.quartz', process.env.QUARTZ_ADMIN_KEY);
 */
export async function loadAdminKey(dataDir: string, fromEnv: string | undefined): Promise<AdminKey> {
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fromEnv.length < 16) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, 'QUARTZ_ADMIN_KEY must be at least 16 characters');
    if (!PRESENTABLE.test(fromEnv)) throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `QUARTZ_ADMIN_KEY ${UNPRESENTABLE}`);
    return { key: fromEnv, where: 'the QUARTZ_ADMIN_KEY environment variable', created: false };
  }
  const path = join(dataDir, ADMIN_KEY_FILE);
  const key = `qza_${randomBytes(32).toString('hex')}`;
  try {
    // 'wx': never overwrite a key another start wrote.
    await writeFile(path, key + '\n', { mode: 0o600, flag: 'wx' });
    return { key, where: path, created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // A copied or restored key file may have lost its mode: tighten it.
  if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600);
  const existing = (await readFile(path, 'utf8')).trim();
  if (existing.length < 16) throw new QuartzError(ErrorCode.CORRUPT_DATA, `admin key file ${path} is empty or too short; delete it to generate a new key`);
  if (!PRESENTABLE.test(existing)) throw new QuartzError(ErrorCode.CORRUPT_DATA, `admin key file ${path}: the key ${UNPRESENTABLE}; fix it or delete the file to generate a new key`);
  return { key: existing, where: path, created: false };
}
