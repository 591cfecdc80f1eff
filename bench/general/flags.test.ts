import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BENCH = fileURLToPath(new URL('./index.ts', import.meta.url));

/** The flags are read before any build or server: a refused one exits 2 at once. */
function run(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', BENCH, '--no-build', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('bench general flags', () => {
  it('refuses an unknown group, and a count of rounds or keys that is not whole', () => {
    expect(run('--only', 'kv-get,kv-gets')).toMatchObject({ status: 2, stderr: "bench: --only: unknown group 'kv-gets'; use kv-get, kv-put, produce, consume, vector, conns, clients\n" });
    expect(run('--rounds', '1.5')).toMatchObject({ status: 2, stderr: expect.stringContaining('--rounds and --keys must be whole numbers') });
    expect(run('--dims768', '-1')).toMatchObject({ status: 2 });
  });
});
