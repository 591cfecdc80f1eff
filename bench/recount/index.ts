/**
 * First request after a crash for a tenant with many small keys: how long `engine.tenant(id)` and
 * one KV GET take when the tenant's usage levels must be counted afresh, and how long (wall and
 * CPU) until the count is done. The crash is what kill -9 leaves for the usage meter: no clean
 * shutdown mark. The data directory is built once and reused.
 *
 *   npm run bench -- recount [keys=1000000] [runs=3] [dir=/tmp/quartz-recount-bench]
 */
import { readdirSync } from 'node:fs';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { openQuartz } from '../../src/node/open-quartz.js';
import { parseFlags } from '../lib/args.js';

const [keysArg, runsArg, dirArg] = parseFlags({ positionals: true }).positionals;
const keys = Number(keysArg ?? 1_000_000);
const runs = Number(runsArg ?? 3);
for (const [name, value] of [['keys', keys], ['runs', runs]] as const) {
  if (!Number.isSafeInteger(value) || value < 1) {
    console.error(`recount: ${name} must be a whole number ≥ 1, got '${name === 'keys' ? keysArg : runsArg}'`);
    process.exit(2);
  }
}
const dir = dirArg ?? `/tmp/quartz-recount-bench-${keys}`;
const enc = new TextEncoder();
const keyOf = (i: number) => `k${String(i).padStart(7, '0')}`;

async function build(): Promise<string> {
  const engine = await openQuartz({ dataDir: dir });
  const { tenant } = await engine.tenants.create({ email: 'bench@example.com' });
  const { kv } = await engine.tenant(tenant.id);
  for (let i = 0; i < keys; i += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, keys - i) }, (_, j) => kv.put(keyOf(i + j), new Uint8Array(10))));
  }
  await engine.close();
  return tenant.id;
}

/** Leaves the meter's state as after kill -9: no clean mark. Returns the (only) tenant's id. */
async function crash(): Promise<string> {
  const storage = await openDiskStorage({ dir });
  const unit = await storage.unit('tenants');
  await unit.kv.delete(enc.encode('m/clean'));
  const rows = await unit.kv.scan({ prefix: enc.encode('g/') });
  await storage.close();
  if (rows.length === 0) {
    console.error(`recount: ${dir} holds files but no tenant; give a new or empty directory, or one this bench built`);
    process.exit(2);
  }
  return new TextDecoder().decode(rows[0]!.key.subarray(2));
}

const ms = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e6;
const cpuMs = (from: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1000;
};

/** Missing or empty: a directory made for the bench (`mktemp -d`) is built in, not read as data. */
function needsBuild(): boolean {
  try {
    return readdirSync(dir).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    console.error(`recount: cannot read ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    process.exit(2);
  }
}

if (needsBuild()) {
  const t = process.hrtime.bigint();
  await build();
  console.log(`built ${keys} keys in ${dir} (${(ms(t) / 1000).toFixed(1)} s)`);
}
for (let run = 1; run <= runs; run++) {
  const id = await crash();
  const engine = await openQuartz({ dataDir: dir });
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const { kv } = await engine.tenant(id);
  const entry = await kv.get(keyOf(keys >> 1));
  const first = ms(t0);
  const firstCpu = cpuMs(c0);
  if (entry?.size !== 10) throw new Error('the GET did not find its key');
  // Older builds count before the tenant is served; newer ones in the background.
  const meter = engine.context.usage as { recounting?: (id: string) => Promise<void> | undefined };
  await meter.recounting?.(id);
  const counted = ms(t0);
  const countedCpu = cpuMs(c0);
  const usage = (await engine.tenants.usage(id)) as { bytes_stored: number };
  await engine.close();
  console.log(
    `run ${run}: first GET after ${first.toFixed(0)} ms (CPU ${firstCpu.toFixed(0)} ms); levels counted after ${counted.toFixed(0)} ms (CPU ${countedCpu.toFixed(0)} ms); bytes_stored ${usage.bytes_stored} (expected ${keys * 18})`,
  );
}
