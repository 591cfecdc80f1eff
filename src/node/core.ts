/**
 * quartzdb/core for Node: `init()` with no argument reads the built wasm from the package,
 * and `init(new URL('file:…'))` works although Node's `fetch` cannot read `file:` URLs.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setDefaultSource, setUrlFetcher } from '../core/loader.js';
import { raiseMallocThresholds } from './malloc-thresholds.js';

// This file runs from src/node/ (tsx, vitest) and from dist/src/node/ (the package), so the
// package root is two or three levels up.
const candidates = [new URL('../../build/quartz.wasm', import.meta.url), new URL('../../../build/quartz.wasm', import.meta.url)];

async function readBuiltWasm(): Promise<Uint8Array> {
  for (const url of candidates) {
    try {
      return await readFile(url);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new Error(`build/quartz.wasm is missing (looked at ${candidates.map((u) => fileURLToPath(u)).join(', ')}); run \`npm run build:wasm\``);
}

setDefaultSource(readBuiltWasm);

// Before the first large buffer: lmdb's commits and segment encodes fault far less after it.
raiseMallocThresholds();

setUrlFetcher(async (url) => {
  const parsed = url instanceof URL ? url : new URL(url);
  if (parsed.protocol !== 'file:') return fetch(parsed);
  return new Response(await readFile(parsed), { headers: { 'content-type': 'application/wasm' } });
});

export * from '../core/index.js';
