/**
 * Long fuzz runs of the HTTP API against a fresh `quartz serve` (the built dist/: run
 * `npm run build:ts` first). Each seed gets its own server and data directory.
 *
 *   npx tsx tests/fuzz/run.ts --seeds 1,2,3 --cases 20000
 *   npx tsx tests/fuzz/run.ts --seeds 7 --only 1234,1301     # replay cases of a seed
 *   options: --port N (first seed's port, then N+1, …; default any), --max-defects N (per seed,
 *   default 200), --bound-ms N (an answer's bound, default 15000)
 *
 * Prints each defect with its case id (`seed:index`) and the request; exits 1 if any.
 */
import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { runFuzz, startServer, type Defect } from './fuzz.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1' },
    cases: { type: 'string', default: '2000' },
    only: { type: 'string' },
    port: { type: 'string', default: '0' },
    'max-defects': { type: 'string', default: '200' },
    'bound-ms': { type: 'string', default: '15000' },
  },
});

const seeds = values.seeds.split(',').map(Number);
const only = values.only?.split(',').map(Number);
let failed = 0;
for (const [i, seed] of seeds.entries()) {
  const port = Number(values.port) === 0 ? 0 : Number(values.port) + i;
  const server = await startServer(port);
  try {
    let last = Date.now();
    const report = await runFuzz({
      server,
      seed,
      cases: Number(values.cases),
      only,
      boundMs: Number(values['bound-ms']),
      maxDefects: Number(values['max-defects']),
      onDefect: (d) => process.stderr.write(`defect at case ${d.caseId}: ${d.detail}\n  request: ${d.request.slice(0, 2000)}\n`),
      progress: (done, defects) => {
        if (Date.now() - last < 10_000) return;
        last = Date.now();
        process.stderr.write(`seed ${seed}: ${done} cases, ${defects} defects\n`);
      },
    });
    const kinds = new Map<string, Defect[]>();
    for (const d of report.defects) kinds.set(d.kind, [...(kinds.get(d.kind) ?? []), d]);
    console.log(`seed ${seed}: ${report.cases} cases, ${report.requests} requests in ${(report.ms / 1000).toFixed(1)} s; statuses ${JSON.stringify(report.statuses)}; ${report.defects.length} defects`);
    for (const [kind, list] of kinds) {
      console.log(`  ${kind}: ${list.length}`);
      for (const d of list.slice(0, 5)) console.log(`    case ${d.caseId}: ${d.detail}\n      request: ${d.request}`);
    }
    failed += report.defects.length;
  } finally {
    await server.stop();
    await rm(server.dataDir, { recursive: true, force: true });
  }
}
process.exit(failed > 0 ? 1 : 0);
