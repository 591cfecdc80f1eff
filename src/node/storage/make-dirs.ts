import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * `mkdir -p` that fails instead of spinning: Node's `mkdir(path, { recursive: true })` retries
 * forever where a filesystem answers ENOENT for a directory it will not create (procfs, sysfs).
 * Creates each missing level in turn; a level another process creates meanwhile is fine.
 * `mode` applies to `path` itself when this call creates it (the levels above get the usual one).
 */
export async function makeDirs(path: string, mode?: number): Promise<void> {
  const missing: string[] = [];
  for (let dir = resolve(path); ; ) {
    const info = await stat(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (info) {
      if (!info.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR', path: dir });
      break;
    }
    missing.push(dir);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  const last = missing[0];
  for (const dir of missing.reverse()) {
    await mkdir(dir, dir === last ? mode : undefined).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
}
