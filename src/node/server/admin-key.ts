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
  try {
    // 'wx': never overwrite a key another start wrote.
    await writeFile(path, key + '\n', { mode: 0o600, flag: 'wx' });
    return { key, where: path, created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
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
