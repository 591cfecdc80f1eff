/**
 * Static files for the app's `assets` port: `/docs/*` from the installed swagger-ui-dist (so the
 * docs page works offline) and everything else from the playground build when it exists.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { packageRoot } from '../package-info.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

async function fileResponse(root: string, relative: string): Promise<Response | undefined> {
  const path = resolve(root, '.' + sep + relative);
  // resolve() has removed any '..': anything outside the root is not ours to serve.
  if (path !== root && !path.startsWith(root + sep)) return undefined;
  let info;
  try {
    info = await stat(path);
  } catch {
    return undefined;
  }
  if (!info.isFile()) return undefined;
  const body = Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>;
  return new Response(body, {
    headers: {
      'content-type': TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream',
      'content-length': String(info.size),
      'cache-control': 'public, max-age=300',
    },
  });
}

export interface AssetOptions {
  /** The playground build; `/` serves its index.html when present. */
  playgroundDir?: string;
  /** swagger-ui-dist's directory. */
  swaggerDir?: string;
}

/**
 * The `assets` function for createApp.
 *
 * @example
 * const app = createApp({ engine, config, assets: fileAssets() });
 */
export function fileAssets(options: AssetOptions = {}): (path: string) => Promise<Response | undefined> {
  const swaggerDir = options.swaggerDir ?? dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const playgroundDir = options.playgroundDir ?? join(packageRoot(), 'playground', 'dist');
  return async (path) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return undefined;
    }
    if (decoded.includes('\0')) return undefined;
    if (decoded.startsWith('/docs/')) return fileResponse(swaggerDir, decoded.slice('/docs/'.length));
    return fileResponse(playgroundDir, decoded === '/' ? 'index.html' : decoded.slice(1));
  };
}
