import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const glibc = process.platform === 'linux' && (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime !== undefined;

/**
 * A fresh process (glibc's thresholds as at start) writes group commits of large values, as a
 * producer's tail entries are, and counts the page faults of its threads other than the main one
 * (lmdb's writer copies each value into overflow pages it mallocs per commit).
 */
const SCRIPT = `
import { readdirSync, readFileSync } from 'node:fs';
import { openDiskStorage } from ${JSON.stringify(new URL('./storage/disk-storage.ts', import.meta.url).href)};
const faults = () => {
  let n = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    if (tid === String(process.pid)) continue;
    try {
      const stat = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
      n += Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
    } catch {}
  }
  return n;
};
const storage = await openDiskStorage({ dir: process.argv[1] });
// The collection a running process makes sooner or later, made now.
globalThis.gc();
globalThis.gc();
const { kv } = await storage.unit('t');
const value = new Uint8Array(60_000).fill(7);
const ROUNDS = 40;
const GROUP = 32;
let from = 0;
for (let round = 0; round < ROUNDS; round++) {
  if (round === ROUNDS / 2) from = faults();
  const writes = [];
  for (let i = 0; i < GROUP; i++) {
    const key = new Uint8Array([round, i]);
    writes.push(kv.putOwned(key, value));
  }
  await Promise.all(writes);
}
console.log(JSON.stringify({ perCommit: (faults() - from) / (ROUNDS / 2) }));
await storage.close();
`;

describe.skipIf(!glibc)('malloc thresholds (glibc)', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("keeps lmdb's freed overflow pages for the next commit instead of faulting them in again", () => {
    dir = mkdtempSync(join(tmpdir(), 'qz-malloc-'));
    const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', SCRIPT, dir], { encoding: 'utf8', timeout: 60_000 });
    expect(run.stderr).toBe('');
    const { perCommit } = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { perCommit: number };
    // Each commit holds 32 values of 60 KB (1.9 MB, ~470 memory pages); trimmed off the arena after
    // each commit, they faulted in again: 480 per commit without the raised threshold, 0.2 with it.
    expect(perCommit).toBeLessThan(40);
  });
});
