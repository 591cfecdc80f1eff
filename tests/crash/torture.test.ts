/**
 * Crash torture: a real `quartz serve` on its own data directory, driven over HTTP by concurrent
 * workers that together take every durable path (KV puts and deletes with and without TTL and
 * If-Match, values over 1 MiB in the blob store, produce to multi-partition topics whose tiny
 * segment_bytes and segment_ms keep rolls going, retention by bytes and by time, group commits,
 * vector upserts and deletes, topic and collection creates and deletes, tenant creation), is
 * SIGKILLed at a random moment, or just after a roll or a retention pass was seen, or just after
 * it started; it is sometimes killed again while it recovers, then restarted on the same
 * directory, and everything acknowledged must be there as acknowledged, nothing unanswered half
 * done (torture-model.ts). Many cycles on one directory.
 *
 * The suite runs a short fixed seed. Long runs:
 *   QUARTZ_TORTURE_SEED=7 QUARTZ_TORTURE_CYCLES=60 npx vitest run tests/crash/torture.test.ts
 * (QUARTZ_TORTURE_PORT picks the port; 0, the default, lets the system choose). A failure prints
 * the seed, the cycle, the last ops and the server's output, and keeps the data directory.
 */
import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { Rng } from '../integration/model-check/harness.js';
import { tempDir } from '../integration/server-process.js';
import { openQuartz } from '../../src/node/open-quartz.js';
import { adminKeyOf, expectStatus, Link, OpLog, ServerProc, Unknown, Violation } from './torture-client.js';
import { Committer, KvWorker, Producer, TenantWorker, TopicChurn, TopicModel, VectorWorker, type Ctx } from './torture-model.js';

const SEED = Number(process.env.QUARTZ_TORTURE_SEED ?? 2);
const CYCLES = Number(process.env.QUARTZ_TORTURE_CYCLES ?? 3);
const PORT = Number(process.env.QUARTZ_TORTURE_PORT ?? 0);
/** A start on a loaded 2-core machine has taken 20 s (server-process.ts); recovery adds a log replay. */
const START_BOUND_MS = 90_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const portOf = (url: string) => Number(new URL(url).port);

type KillMoment = 'random' | 'roll' | 'retention' | 'early' | 'shutdown';

interface Outcome {
  /** Wall time spent starting servers, and checking after restarts (a loaded machine's share). */
  startMs: number;
  verifyMs: number;
  kills: number;
  recoveryKills: number;
  ops: number;
  moments: Record<KillMoment, number>;
  stats: Record<string, number>;
}

/** How long the last start took to its banner: recovery kills aim around it. */
let lastStartMs = 1000;
let startMs = 0;

/**
 * Odd seeds run with no room for caches: collections close after each use and reopen by
 * replaying their change log, tenants drop their KV key caches at once, so writes read their keys
 * back from storage (what a restart does) all the time, not only after a kill.
 */
let flags: string[] = [];
const TIGHT = ['--open-collections-max-bytes', '1', '--collection-idle-close-ms', '30', '--kv-key-cache-max-bytes', '1', '--tenant-idle-ms', '30'];

async function startServer(dataDir: string, port: number): Promise<ServerProc> {
  const t0 = Date.now();
  const s = ServerProc.spawn(dataDir, port, flags);
  await s.ready(START_BOUND_MS);
  lastStartMs = Date.now() - t0;
  startMs += lastStartMs;
  return s;
}

/**
 * After a sweep of the expired keys, the tenant's blob store holds its live large values and
 * nothing else: no upload a kill cut short, no value replaced or deleted, is left behind.
 */
async function checkBlobs(dataDir: string, tenant: string): Promise<void> {
  let engine = await openQuartz({ dataDir });
  await (await engine.tenant(tenant)).kv.sweep();
  await engine.close(); // waits for the clean-ups the sweep started
  engine = await openQuartz({ dataDir });
  try {
    const { kv } = await engine.tenant(tenant);
    let large = 0;
    for (let cursor: string | null = null; ; ) {
      const page = await kv.list({ cursor });
      for (const item of page.keys) if (item.size > 1024 * 1024) large++;
      if ((cursor = page.cursor) === null) break;
    }
    const blobs = await (await engine.context.storage.unit(`kv/${tenant}`)).blobs.list('');
    if (blobs.length !== large) throw new Violation(`the KV blob store holds ${blobs.length} blobs for ${large} live large values: ${blobs.map((b) => b.key).join(', ')}`);
  } finally {
    await engine.close();
  }
}

/**
 * After the kills, the recount each crash called for and a clean restart, the tenant's metered
 * levels are what it holds: KV keys and values, stream log bytes, live vectors. A key whose TTL
 * ended counts until the sweep purges it, so the check waits a little for the sweep.
 */
async function checkUsage(link: Link, key: string): Promise<void> {
  const all = async (path: string, field: string) => {
    const items: any[] = [];
    for (let cursor: string | null = null; ; ) {
      const page = (await expectStatus(link, key, 200, 'GET', `${path}${path.includes('?') ? '&' : '?'}limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`)).json();
      items.push(...(page[field] as unknown[]));
      if ((cursor = page.cursor) === null) return items;
    }
  };
  for (let attempt = 0; ; attempt++) {
    let bytes = 0;
    for (const k of await all('/v1/kv', 'keys')) bytes += Buffer.byteLength(k.key as string) + (k.size as number);
    for (const t of await all('/v1/topics', 'topics')) {
      for (const p of (await expectStatus(link, key, 200, 'GET', `/v1/topics/${t.name as string}`)).json().partition_info as { bytes: number }[]) bytes += p.bytes;
    }
    let vectors = 0;
    for (const c of await all('/v1/collections', 'collections')) vectors += c.count as number;
    const usage = (await expectStatus(link, key, 200, 'GET', '/v1/usage')).json();
    if (usage.bytes_stored === bytes && usage.vectors_stored === vectors) return;
    if (attempt === 5) throw new Violation(`usage ${JSON.stringify(usage)} after the kills, holding ${bytes} bytes and ${vectors} vectors`);
    await sleep(1000);
  }
}

export async function runTorture(seed: number, cycles: number): Promise<Outcome> {
  const rng = new Rng(seed);
  startMs = 0;
  flags = seed % 2 === 1 ? TIGHT : [];
  const log = new OpLog(80);
  const dataDir = await tempDir('torture');
  // The very first start killed part way (the data directory, its version mark and the admin key
  // being made) must leave a directory the next start takes as its own.
  let firstKills = 0;
  for (let again = rng.int(0, 2); again > 0; again--, firstKills++) {
    const s = ServerProc.spawn(dataDir, PORT === 0 ? 0 : PORT, flags);
    await sleep(rng.int(300, 3000));
    await s.kill();
  }
  let server = await startServer(dataDir, PORT);
  const link = new Link(portOf(server.url));
  const adminKey = await adminKeyOf(dataDir);
  const outcome: Outcome = { startMs: 0, verifyMs: 0, kills: 0, recoveryKills: firstKills, ops: 0, moments: { random: 0, roll: 0, retention: 0, early: 0, shutdown: 0 }, stats: {} };
  let cycle = -1;
  let keep = false;
  const errorsSeen = (s: ServerProc, when: string) => {
    if (s.errors.length > 0) throw new Violation(`the server logged errors ${when}:\n${s.errors.slice(-5).join('\n')}`);
  };
  try {
    const made = (await expectStatus(link, adminKey, 201, 'POST', '/v1/admin/tenants', { body: { email: `torture-${seed}@torture.test` } })).json();
    const ctx: Ctx = { link, key: made.api_key as string, log, rng, seed, stats: outcome.stats, maxVersion: 0 };
    const stable = [
      new TopicModel({ name: 'rolls', partitions: 3, segment_bytes: 1024, segment_ms: 25 }),
      new TopicModel({ name: 'bytes', partitions: 2, segment_bytes: 2048, segment_ms: 40, retention_bytes: 6144, compression: 'none' }),
      new TopicModel({ name: 'aging', partitions: 2, segment_bytes: 4096, segment_ms: 60, retention_ms: 1500 }),
    ];
    for (const t of stable) await expectStatus(link, ctx.key, 201, 'POST', '/v1/topics', { body: t.config });
    const kv = [0, 1, 2].map((id) => new KvWorker(ctx, id));
    const producers = ['a', 'b'].map((id) => new Producer(ctx, id, () => stable));
    const committer = new Committer(ctx, ['ga', 'gb'], () => stable);
    const churn = new TopicChurn(ctx, ['churn-0', 'churn-1']);
    const vectors = new VectorWorker(ctx, ['vc', 'cc-0', 'cc-1'], new Set(['cc-0', 'cc-1']));
    // Never deleted, so its change log grows across cycles and every restart replays all of it
    // (a checkpoint comes every 1000 writes, which a run of this pace does not reach).
    const hotVectors = new VectorWorker(ctx, ['vhot'], new Set());
    const tenants = new TenantWorker(ctx, adminKey);

    const verifyAll = async () => {
      const t0 = Date.now();
      for (const w of kv) await w.verify();
      for (const t of stable) await t.verify(ctx);
      await committer.verify(stable);
      await churn.verify();
      await vectors.verify();
      await hotVectors.verify();
      await tenants.verify();
      outcome.verifyMs += Date.now() - t0;
      outcome.startMs = startMs;
    };

    /** Runs every worker until the kill; a violation stops them all (the server is killed) and fails the run. */
    const workload = async (): Promise<{ failure?: unknown }> => {
      let failure: unknown;
      const loop = async (op: () => Promise<void>, pauseMs = 0) => {
        while (!link.stopping) {
          try {
            await op();
            outcome.ops++;
          } catch (err) {
            if (err instanceof Unknown) return;
            failure ??= err;
            link.stopping = true;
            void server.kill();
            return;
          }
          if (pauseMs > 0) await sleep(pauseMs);
        }
      };
      await Promise.all([
        ...kv.map((w) => loop(() => w.op())),
        ...producers.map((p) => loop(() => p.op())),
        loop(() => committer.op()),
        loop(() => churn.op()),
        loop(() => vectors.op()),
        loop(() => hotVectors.op()),
        loop(() => tenants.op(), 400),
      ]);
      return { failure };
    };

    /** Waits until a roll (a segment more) or a retention pass (a log start moved) is seen, then a little. */
    const watch = async (what: 'roll' | 'retention') => {
      const topic = what === 'roll' ? 'rolls' : 'bytes';
      const sample = async () => {
        const info = (await expectStatus(link, ctx.key, 200, 'GET', `/v1/topics/${topic}`)).json().partition_info as { segments: number; log_start_offset: number }[];
        return info.reduce((n, p) => n + (what === 'roll' ? p.segments : p.log_start_offset), 0);
      };
      const first = await sample();
      const end = Date.now() + 8000;
      while (!link.stopping && Date.now() < end && (await sample()) === first) await sleep(5);
      await sleep(rng.int(0, 25));
    };

    for (cycle = 0; cycle < cycles; cycle++) {
      const moment = rng.pick(['random', 'random', 'random', 'roll', 'retention', 'early', 'shutdown'] as const);
      log.add(`--- cycle ${cycle}: kill ${moment}`);
      const running = workload();
      try {
        if (moment === 'early') await sleep(rng.int(0, 150));
        else if (moment === 'random' || moment === 'shutdown') await sleep(rng.int(150, 3000));
        else await watch(moment);
      } catch (err) {
        if (!(err instanceof Unknown)) throw err;
      }
      link.stopping = true;
      if (moment === 'shutdown') {
        // Killed amid a graceful stop: requests draining, the log being sealed, units closing.
        server.proc.kill('SIGTERM');
        await Promise.race([server.exited, sleep(rng.int(0, 400))]);
      }
      await server.kill();
      const { failure } = await running;
      if (failure !== undefined) throw failure;
      errorsSeen(server, 'before the kill');
      outcome.kills++;
      outcome.moments[moment]++;

      // Sometimes killed again while it recovers: in the second half of a start (its data
      // directory opening, its log replaying) or just after it.
      for (let again = rng.chance(0.35) ? rng.int(1, 2) : 0; again > 0; again--) {
        const s = ServerProc.spawn(dataDir, portOf(server.url), flags);
        await sleep(rng.int(lastStartMs / 2, lastStartMs * 1.2));
        await s.kill();
        errorsSeen(s, 'while recovering');
        outcome.recoveryKills++;
        log.add('--- killed while recovering');
      }
      server = await startServer(dataDir, portOf(server.url));
      link.renew(portOf(server.url));
      await verifyAll();
      errorsSeen(server, 'after the restart');
    }

    // A clean stop and start after all that: the same data, no repair.
    link.stopping = true;
    const code = await server.term();
    if (code !== 0) throw new Violation(`SIGTERM: exit ${code}\n${server.tail()}`);
    server = await startServer(dataDir, portOf(server.url));
    link.renew(portOf(server.url));
    await verifyAll();
    await checkUsage(link, ctx.key);
    errorsSeen(server, 'after a clean restart');
    link.stopping = true;
    await server.term();
    await checkBlobs(dataDir, made.tenant.id as string);
    return outcome;
  } catch (err) {
    keep = true;
    const what = err instanceof Error ? (err.stack ?? err.message) : String(err);
    throw new Error(`crash torture failed, seed ${seed} (QUARTZ_TORTURE_SEED=${seed}), cycle ${cycle}: ${what}\n--- last ops ---\n${log.tail()}\n${server.tail()}\n--- data directory (kept) ---\n${dataDir}`);
  } finally {
    link.stopping = true;
    await server.kill();
    link.agent.destroy();
    if (!keep) await rm(dataDir, { recursive: true, force: true });
  }
}

describe('crash torture: kill -9 under a mixed HTTP load', () => {
  it(`keeps every acknowledged write over ${CYCLES} kills (seed ${SEED})`, { timeout: 60_000 + CYCLES * 60_000 }, async () => {
    const outcome = await runTorture(SEED, CYCLES);
    console.log(`crash torture seed ${SEED}${SEED % 2 === 1 ? ' (no cache room)' : ''}: ${JSON.stringify(outcome)}`);
    expect(outcome.kills).toBe(CYCLES);
    expect(outcome.stats.records_checked ?? 0).toBeGreaterThan(0);
    expect(outcome.stats.kv_puts ?? 0).toBeGreaterThan(0);
  });
});
