/**
 * Where `quartz login` keeps the server URL and API key: $XDG_CONFIG_HOME/quartz/config.json
 * (else ~/.config/quartz/config.json), mode 0600 because it holds a key.
 */
import { mkdir, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { ErrorCode, QuartzError } from '../../core/errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:8787';

const schema = z.object({ url: z.string().url().optional(), api_key: z.string().min(1).optional(), admin_key: z.string().min(1).optional() });
export type UserConfig = z.infer<typeof schema>;

type Env = Record<string, string | undefined>;

export function userConfigPath(env: Env): string {
  const base = env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(env.HOME ?? homedir(), '.config');
  return join(base, 'quartz', 'config.json');
}

/**
 * The saved config; `{}` when there is none. A damaged one (not JSON, or fields of the wrong
 * kind) is an error, or `{}` with `damaged: 'ignore'`, for the commands that replace it.
 *
 * @example
 * const { url, api_key } = await readUserConfig(process.env);
 */
export async function readUserConfig(env: Env, options: { damaged?: 'throw' | 'ignore' } = {}): Promise<UserConfig> {
  const path = userConfigPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    if (code === 'ENOENT') return {};
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `cannot read ${path} (${code ?? message})`);
  }
  let parsed;
  try {
    parsed = schema.safeParse(JSON.parse(text));
  } catch {
    if (options.damaged === 'ignore') return {};
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${path} is not valid JSON; run \`quartz login\` again or delete it`);
  }
  if (!parsed.success) {
    if (options.damaged === 'ignore') return {};
    const issues = parsed.error.issues.map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `${path}: ${issues}; run \`quartz login\` again or fix it`);
  }
  return parsed.data;
}

/**
 * Saves a login's URL and key over the saved ones. The `admin_key` a user added by hand is kept
 * for a login to the same server (it was lost at each login), and dropped for another server,
 * which must never be sent it. A damaged config is replaced.
 *
 * @example
 * const path = await saveLogin(process.env, { url: 'http://127.0.0.1:8787', api_key: 'qz_…' });
 */
export async function saveLogin(env: Env, login: { url: string; api_key: string }): Promise<string> {
  const { admin_key, url } = await readUserConfig(env, { damaged: 'ignore' });
  return writeUserConfig(env, { ...login, ...(admin_key !== undefined && url?.replace(/\/+$/, '') === login.url ? { admin_key } : {}) });
}

/**
 * @example
 * await writeUserConfig(process.env, { url: 'http://127.0.0.1:8787', api_key: 'qz_…' });
 */
export async function writeUserConfig(env: Env, config: UserConfig): Promise<string> {
  const path = userConfigPath(env);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // A new file renamed over the old one: the key is never written into a file with the old
  // file's (perhaps looser) mode, and a reader never sees it half written. Renamed over what a
  // symlink points to (a dotfiles repository's), not over the link, which would then be lost.
  const target = await realpath(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return path;
    throw err;
  });
  const fresh = `${target}.${process.pid}.tmp`;
  await rm(fresh, { force: true });
  await writeFile(fresh, JSON.stringify(config, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  try {
    await rename(fresh, target);
  } catch (err) {
    await rm(fresh, { force: true }); // it holds the key
    throw err;
  }
  return path;
}
