/**
 * A short fixed-seed pass of the HTTP API fuzzer (./fuzz.ts) against a real `quartz serve`
 * process: every answer below 500 with a JSON `{error, message}` on errors, no stack trace, no
 * hang, a refused write changing nothing, and a clean log. Long runs: tests/fuzz/run.ts, or
 * QUARTZ_FUZZ_SEED=7 QUARTZ_FUZZ_CASES=5000 npx vitest run tests/fuzz/api-fuzz.test.ts
 * A failure lists each defect with its case id (`seed:index`): `npx tsx tests/fuzz/run.ts
 * --seeds SEED --only INDEX` replays it.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import '../integration/server-process.js'; // refuses to run against a dist/ that is not built
import { runFuzz, startServer, type Server } from './fuzz.js';

const SEED = Number(process.env.QUARTZ_FUZZ_SEED ?? 18);
const CASES = Number(process.env.QUARTZ_FUZZ_CASES ?? 120);

let server: Server;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
  if (server !== undefined) await rm(server.dataDir, { recursive: true, force: true });
});

it(`answers ${CASES} generated requests (seed ${SEED}) as docs/api.md promises`, async () => {
  const report = await runFuzz({ server, seed: SEED, cases: CASES, maxDefects: 20 });
  const shown = report.defects.map((d) => `case ${d.caseId}: ${d.detail}\n  request: ${d.request}`).join('\n\n');
  expect(shown).toBe('');
  expect(report.cases).toBe(CASES);
  // the cases reached the routes, not only the transport's refusals
  expect(Object.keys(report.statuses).filter((s) => s.startsWith('2')).length).toBeGreaterThan(0);
}, 300_000);
