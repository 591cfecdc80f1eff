/**
 * Where the installed package lives and its version, found from this file's own location
 * (src/node/ when run from source, dist/src/node/ when built).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory holding quartzdb's package.json.
 *
 * @example
 * const swaggerless = join(packageRoot(), 'playground', 'dist');
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'quartz.js'))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`cannot find the quartzdb package root above ${fileURLToPath(import.meta.url)}`);
}

/**
 * The package's version, shown by /v1/health and `quartz --version`.
 *
 * @example
 * console.log(packageVersion()); // '0.1.0'
 */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}
