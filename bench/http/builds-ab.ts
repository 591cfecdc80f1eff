/**
 * `node --import tsx bench/http/builds-ab.ts ROOT_A ROOT_B [--rounds 20] [--duration 3] [--port 23010]`:
 * the server CPU a hot KV GET costs in two builds of QuartzDB (two checkouts, each with its own
 * `dist/`, say this worktree and `git worktree add --detach ../base main`), measured side by side
 * on a shared machine.
 *
 * Each build serves its own data (100 keys of 1 KB, as `bench http`'s KV GET reads) and is driven by
 * its own `wrk -t1 -c10` at the same time as the other, so both meet the same machine load. Each
 * server and its wrk are pinned to one core (`taskset`), the two pairs on the two cores, and the
 * cores are swapped every round: without pinning, two runs of one build side by side differed by
 * up to ±30 µs per answer in single rounds at load 10-20 (the scheduler moving the four processes
 * across the cores); pinned, mostly by 1-3 µs. Prints each round's server CPU per answer (/proc) and
 * the median of the rounds' differences. Run it twice with the builds' places swapped: the place
 * itself showed a bias of ~0.5 µs (which build starts first and takes the lower ports).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags, refuseFlag } from '../lib/args.js';
import { cpuOfPid } from '../lib/cpu.js';
import { hasCommand, stopProcess, waitForHttp } from '../lib/processes.js';
import { median } from '../lib/quantiles.js';

const flags = parseFlags({ values: ['rounds', 'duration', 'port'], positionals: true });
const ROUNDS = flags.number('rounds', 20, 'positive');
const DURATION = flags.number('duration', 3, 'positive');
const PORT = flags.number('port', 23010, 'positive');
const [rootA, rootB] = flags.positionals;
if (rootA === undefined || rootB === undefined || flags.positionals.length !== 2) refuseFlag('name the two checkouts to compare: builds-ab.ts ROOT_A ROOT_B');
for (const cmd of ['wrk', 'taskset']) if (!hasCommand(cmd)) refuseFlag(`${cmd} is needed`);

interface Side {
  name: string;
  server: ChildProcess;
  base: string;
  script: string;
  dir: string;
}

async function serve(root: string, port: number): Promise<Side> {
  const dir = mkdtempSync(join(tmpdir(), 'qz-builds-ab-'));
  const log = join(dir, 'server.log');
  const server = spawn(process.execPath, [join(root, 'bin/quartz.js'), 'serve', '--host', '127.0.0.1', '--port', String(port), '--data', join(dir, 'quartz')], {
    stdio: ['ignore', openSync(log, 'a'), openSync(log, 'a')],
    env: { ...process.env, QUARTZ_LOG_LEVEL: 'info' },
  });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/v1/health`, server, `the server of ${root}`, log);
  const reg = (await (await fetch(`${base}/v1/auth/register`, { method: 'POST', body: JSON.stringify({ email: 'ab@example.com' }) })).json()) as { api_key: string };
  const value = 'v'.repeat(1024);
  for (let i = 0; i < 100; i++) {
    const put = await fetch(`${base}/v1/kv/bench/get-${i}`, { method: 'PUT', body: value, headers: { authorization: `Bearer ${reg.api_key}`, 'content-type': 'application/octet-stream' } });
    if (!put.ok) throw new Error(`PUT answered ${put.status}: ${await put.text()}`);
  }
  const script = join(dir, 'get.lua');
  writeFileSync(
    script,
    `local reqs = {}\nlocal i = 0\ninit = function(args)\n  for k = 0, 99 do reqs[k + 1] = wrk.format("GET", "/v1/kv/bench/get-" .. k, { ["Authorization"] = "Bearer ${reg.api_key}" }) end\nend\n` +
      `request = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n`,
  );
  return { name: root, server, base, script, dir };
}

/** One wrk run against `side`, it and the server on `core`; answers and the server's CPU µs. */
function load(side: Side, core: number): Promise<{ answers: number; cpuUs: number }> {
  const pid = side.server.pid!;
  spawnSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' });
  const before = cpuOfPid(pid);
  return new Promise((resolve, reject) => {
    const wrk = spawn('taskset', ['-c', String(core), 'wrk', '-t1', '-c10', `-d${DURATION}s`, '-s', side.script, side.base], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    wrk.stdout.on('data', (d: Buffer) => (out += d.toString()));
    wrk.stderr.on('data', (d: Buffer) => (err += d.toString()));
    wrk.on('close', () => {
      const after = cpuOfPid(pid);
      const answers = Number(/(\d+) requests in/.exec(out)?.[1]);
      // wrk runs its default `GET /` when the script fails to load, and says so only on stderr.
      if (err !== '' || !(answers > 0) || /Non-2xx/.test(out)) reject(new Error(`wrk against ${side.name}: ${err}${out}`));
      else resolve({ answers, cpuUs: after.user + after.sys - before.user - before.sys });
    });
  });
}

const a = await serve(rootA, PORT);
const b = await serve(rootB, PORT + 1);
try {
  const round = async (r: number) => {
    const [ra, rb] = await Promise.all([load(a, r % 2), load(b, 1 - (r % 2))]);
    return { a: ra.cpuUs / ra.answers, b: rb.cpuUs / rb.answers, aRate: ra.answers / DURATION, bRate: rb.answers / DURATION };
  };
  await round(0); // warm-up: both hot, optimized
  const as: number[] = [];
  const bs: number[] = [];
  const diffs: number[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const x = await round(r);
    as.push(x.a);
    bs.push(x.b);
    diffs.push(x.a - x.b);
    const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    console.log(`round ${r}: A ${x.a.toFixed(2)} µs per GET (${x.aRate.toFixed(0)}/s), B ${x.b.toFixed(2)} µs (${x.bRate.toFixed(0)}/s), A - B ${(x.a - x.b).toFixed(2)}, load ${load1}`);
  }
  console.log(`A ${rootA}: median ${median(as).toFixed(2)} µs of server CPU per GET`);
  console.log(`B ${rootB}: median ${median(bs).toFixed(2)} µs`);
  console.log(`A - B: median ${median(diffs).toFixed(2)} µs; A cheaper in ${diffs.filter((d) => d < 0).length} of ${ROUNDS} rounds`);
} finally {
  await Promise.all([stopProcess(a.server), stopProcess(b.server)]);
  for (const side of [a, b]) rmSync(side.dir, { recursive: true, force: true });
}
