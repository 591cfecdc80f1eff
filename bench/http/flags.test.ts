import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BENCH = fileURLToPath(new URL('./index.ts', import.meta.url));
const CLIENTS = fileURLToPath(new URL('./clients.ts', import.meta.url));

/** The bench's flags are read before any build or server: a refused one exits 2 at once. */
function run(...args: string[]): { status: number | null; stderr: string } {
  return runScript(BENCH, ...args);
}

function runScript(script: string, ...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, '--no-build', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('bench http flags', () => {
  it('refuses --get-rounds that is not a whole number, or that splits --duration into runs under 0.5 s', () => {
    expect(run('--get-rounds', '0')).toMatchObject({ status: 2, stderr: expect.stringContaining('--get-rounds must be a positive number') });
    expect(run('--get-rounds', '2.5')).toMatchObject({ status: 2, stderr: "bench: --get-rounds must be a whole number of rounds, got 2.5\n" });
    expect(run('--get-rounds', '1000000')).toMatchObject({
      status: 2,
      stderr: 'bench: --get-rounds 1000000 splits --duration 10 into runs of 0.00001 s; each must be at least 0.5 s (at most 20 rounds, or a longer --duration)\n',
    });
    expect(run('--duration', '4', '--get-rounds', '9')).toMatchObject({ status: 2, stderr: expect.stringContaining('at most 8 rounds') });
  });

  it('refuses --malloc-stats without the several mixed rounds whose full GCs it reads after', () => {
    expect(run('--malloc-stats')).toMatchObject({ status: 2, stderr: "bench: --malloc-stats reads malloc after each mixed round's full GC: give it --mixed-rounds 2 or more\n" });
  });

  it('clients.ts refuses an unknown client, and more wrk threads than connections', () => {
    expect(runScript(CLIENTS, '--clients', 'autocannon,curl')).toMatchObject({ status: 2, stderr: "bench: --clients: unknown client 'curl'; use autocannon, wrk, ab\n" });
    expect(runScript(CLIENTS, '--threads', '4', '--connections', '2')).toMatchObject({ status: 2, stderr: expect.stringContaining('--threads 4 exceeds --connections 2') });
  });
});
