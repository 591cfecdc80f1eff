/** The `lz4` CLI's own benchmark, as the lz4 benches print it beside their rows. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const dataDir = join(fileURLToPath(new URL('.', import.meta.url)), '..', '.data');

/** The CLI's block-size ids (`-B4` … `-B7`) by block size in bytes. */
const BLOCK_IDS: Record<number, number> = { 65536: 4, 262144: 5, 1048576: 6, 4194304: 7 };

/**
 * `lz4 -b1 -B<id> -i1` on `data` (written to bench/.data/`file`.bin): its compress and decode
 * MB/s (wall clock, converted from its MiB-based figures to 10^6 bytes) and its ratio; undefined
 * when the CLI is missing, prints nothing we can read, or has no id for `blockBytes`.
 */
export function lz4CliBench(data: Uint8Array, file: string, blockBytes = 65536): { compress: number; decompress: number; ratio: number } | undefined {
  const id = BLOCK_IDS[blockBytes];
  if (id === undefined) return undefined;
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, `${file}.bin`);
  writeFileSync(path, data);
  const run = spawnSync('lz4', ['-b1', `-B${id}`, '-i1', path], { encoding: 'utf8' });
  // "… : N -> M (ratio), C MB/s, D MB/s", the last such line being the final figure.
  const all = [...`${run.stdout}\n${run.stderr}`.matchAll(/(\d+)\s*->\s*(\d+)\s*\(([\d.]+)\),\s*([\d.]+)\s*MB\/s\s*,\s*([\d.]+)\s*MB\/s/g)];
  const m = all[all.length - 1];
  if (!m) return undefined;
  const mib = (1 << 20) / 1e6;
  return { compress: Number(m[4]) * mib, decompress: Number(m[5]) * mib, ratio: Number(m[1]) / Number(m[2]) };
}
