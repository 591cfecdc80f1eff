/**
 * Randomized model-based test of the real server process: several concurrent clients run random
 * KV, stream and vector operations over HTTP, and every answer is checked against an in-memory
 * model of what must hold. Rounds end quietly, with `kill -9` at a random moment (requests in
 * flight), or with SIGTERM; after each, the server restarts on the same data directory and
 * everything acknowledged must be there, nothing unacknowledged half done, and another tenant
 * must see none of it.
 *
 * A few seconds by default. Long runs: QUARTZ_MODEL_OPS=20000 QUARTZ_MODEL_SEED=7 npx vitest run
 * tests/integration/model-check.test.ts (also QUARTZ_MODEL_CLIENTS, up to 9; QUARTZ_MODEL_KEEP,
 * the ops a failure shows; QUARTZ_MODEL_KILL=0, no kill -9, so usage is checked to the end). A failure prints the seed, the last ops and the kept data directory.
 */
import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { Api, OpLog, Rng, Unknown, Violation, type Target } from './model-check/harness.js';
import { GarbageClient } from './model-check/garbage.js';
import { KvClient, listAll, SharedCounters, SharedRegisters } from './model-check/kv.js';
import { SharedTopics, StreamClient } from './model-check/streams.js';
import { VectorClient } from './model-check/vectors.js';
import { startServerProcess, tempDir, type ServerProcess } from './server-process.js';

const OPS = Number(process.env.QUARTZ_MODEL_OPS ?? 500);
const SEED = Number(process.env.QUARTZ_MODEL_SEED ?? 1);
/** At most 9: each client's KV prefix is `m<digit>/`. */
const CLIENTS = Math.min(9, Number(process.env.QUARTZ_MODEL_CLIENTS ?? 4));
const OPS_PER_ROUND = 150;
const KEEP_OPS = Number(process.env.QUARTZ_MODEL_KEEP ?? 60);
/** QUARTZ_MODEL_KILL=0: rounds end quiet or with SIGTERM only, so usage is checked throughout. */
const KILL = process.env.QUARTZ_MODEL_KILL !== '0';

type RoundEnd = 'quiet' | 'kill' | 'term';

interface Client {
  id: number;
  rng: Rng;
  kv: KvClient;
  streams: StreamClient;
  vectors: VectorClient;
}

async function register(url: string, email: string): Promise<string> {
  const res = await fetch(`${url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email }) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { api_key: string }).api_key;
}

async function runModel(seed: number, ops: number): Promise<{ ops: number; kills: number; terms: number }> {
  const rng = new Rng(seed);
  const log = new OpLog(KEEP_OPS);
  const data = await tempDir('model');
  let server: ServerProcess = await startServerProcess(['--data', data]);
  const target: Target = { url: server.url, stopping: false };
  let kills = 0;
  let terms = 0;
  let keepData = false;
  try {
    const mainKey = await register(server.url, 'model@example.com');
    const otherKey = await register(server.url, 'other@example.com');
    const api = new Api(target, mainKey, log);
    const other = new Api(target, otherKey, log);
    const garbage = new GarbageClient(new Rng(seed + 0x9e3779b9), new Api(target, await register(server.url, 'garbage@example.com'), log), log);
    await garbage.setup();
    const counters = new SharedCounters(3);
    const registers = new SharedRegisters(2);
    const shared = new SharedTopics();
    await shared.setup(api);
    const clients: Client[] = Array.from({ length: CLIENTS }, (_, id) => {
      const r = new Rng(seed * 1000 + id + 1);
      return { id, rng: r, kv: new KvClient(id, r, api, other, log), streams: new StreamClient(id, r, api, other, log), vectors: new VectorClient(id, r, api, other, log) };
    });

    /**
     * The tenant's metered levels against what it holds: KV keys and values plus stream log bytes,
     * and live vectors. Only until the first kill -9: the meter persists once a minute, and a
     * crash may lose that minute's changes (docs/tenants.md). A key whose expiry has passed counts
     * until the sweep purges it, so those may or may not count.
     */
    const checkUsage = async (attempt = 0): Promise<void> => {
      const t0 = Date.now();
      const listed = await listAll(api, '', 1000);
      let streamBytes = 0;
      const perTopic: string[] = [];
      for (const { name } of (await api.expect(200, 'GET', '/v1/topics')).json.topics as { name: string }[]) {
        const infos = (await api.expect(200, 'GET', `/v1/topics/${name}`)).json.partition_info as { bytes: number; segments: number }[];
        for (const info of infos) streamBytes += info.bytes;
        perTopic.push(`${name}: ${infos.map((i) => `${i.bytes}B/${i.segments}seg`).join(' ')}`);
      }
      let vectors = 0;
      for (const c of (await api.expect(200, 'GET', '/v1/collections')).json.collections as { count: number }[]) vectors += c.count;
      const usage = (await api.expect(200, 'GET', '/v1/usage')).json;
      const t1 = Date.now();
      // A listed key that expires before the usage answer may have been swept from it meanwhile.
      let kvBytes = 0;
      let expiring = 0;
      for (const e of listed) {
        const bytes = Buffer.byteLength(e.key) + e.size;
        if (e.expires_at === null || e.expires_at > t1) kvBytes += bytes;
        else expiring += bytes;
      }
      for (const c of clients) expiring += c.kv.bytesExpiredBefore(t0, listed);
      const least = kvBytes + streamBytes;
      log.add(`usage: bytes_stored ${usage.bytes_stored} (kv ${kvBytes} + streams ${streamBytes}, + up to ${expiring} expiring), vectors_stored ${usage.vectors_stored} (${vectors})`);
      if (usage.bytes_stored < least || usage.bytes_stored > least + expiring || usage.vectors_stored !== vectors) {
        const what = `usage ${JSON.stringify(usage)}: bytes_stored should be ${least}${expiring > 0 ? `-${least + expiring}` : ''} (kv ${kvBytes}, streams ${streamBytes}: ${perTopic.join('; ')}), vectors_stored ${vectors}`;
        log.add(what);
        if (attempt < 2) {
          await new Promise((resolve) => setTimeout(resolve, 1000));
          return checkUsage(attempt + 1);
        }
        throw new Violation(what);
      }
    };

    const verifyAll = async (): Promise<void> => {
      for (const c of clients) {
        await c.kv.verify();
        await c.streams.verify();
        await c.vectors.verify();
      }
      await counters.verify(api, log);
      await registers.verify(api, log);
      await shared.verify(api, rng, log);
      // Tenancy: the other tenant's own listings are empty.
      const kv = (await other.expect(200, 'GET', '/v1/kv')).json;
      const topics = (await other.expect(200, 'GET', '/v1/topics')).json;
      const collections = (await other.expect(200, 'GET', '/v1/collections')).json;
      const groups = (await other.expect(200, 'GET', '/v1/groups')).json;
      if (kills === 0) await checkUsage();
      if (kv.keys.length + topics.topics.length + collections.collections.length + groups.groups.length !== 0) {
        throw new Violation(`the other tenant sees data: ${JSON.stringify({ kv, topics, collections, groups }).slice(0, 300)}`);
      }
    };

    let done = 0;
    for (let round = 0; done < ops; round++) {
      // The first rounds cover each ending once; then kill -9 is the likeliest, being the hardest.
      // The first rounds cover each ending once (kill -9 last: usage is checked until then); then
      // kill -9 is the likeliest, being the hardest.
      let end: RoundEnd = round < 3 ? (['quiet', 'term', 'kill'] as const)[round]! : rng.pick(['quiet', 'kill', 'kill', 'term'] as const);
      if (end === 'kill' && !KILL) end = 'term';
      const budget = Math.min(OPS_PER_ROUND, ops - done);
      const stopAt = end === 'quiet' ? Infinity : rng.int(Math.floor(budget / 4), budget - 1);
      log.add(`--- round ${round}: ${budget} ops, ends ${end}${end === 'quiet' ? '' : ` after op ${stopAt}`}`);
      let started = 0;
      let stopped: Promise<number | string> | undefined;
      const stopServer = (): void => {
        target.stopping = true;
        log.add(`--- ${end === 'kill' ? 'kill -9' : 'SIGTERM'} with requests in flight`);
        stopped = server.stop(end === 'kill' ? 'SIGKILL' : 'SIGTERM');
      };
      const worker = async (c: Client): Promise<void> => {
        while (started < budget && !target.stopping) {
          if (started++ === stopAt) stopServer();
          const r = c.rng.int(0, 99);
          try {
            if (r < 6) await garbage.op();
            else if (r < 30) await c.kv.op();
            else if (r < 33) await counters.increment(api, c.rng, log, c.id);
            else if (r < 36) await registers.op(api, c.rng, log, c.id);
            else if (r < 58) await c.streams.op();
            else if (r < 70) await shared.op(api, c.rng, log, c.id);
            else await c.vectors.op();
          } catch (err) {
            if (err instanceof Unknown) return; // the server went away under this request: checked after the restart
            throw err;
          }
        }
      };
      await Promise.all(clients.map(worker));
      done += started;
      if (stopped !== undefined) {
        const code = await stopped;
        if (end === 'term' && code !== 0) throw new Violation(`SIGTERM: the server exited with ${code}\n${server.stdout().slice(-2000)}`);
        if (end === 'kill') kills++;
        else terms++;
        server = await startServerProcess(['--data', data]);
        target.url = server.url;
        target.stopping = false;
        for (const c of clients) {
          for (const part of [c.kv, c.streams, c.vectors]) {
            const pending = part.inflight;
            part.inflight = undefined;
            if (pending !== undefined) {
              log.add(`c${c.id} recovering an unanswered request`);
              await pending();
            }
          }
        }
      } else for (const c of clients) expect([c.kv.inflight, c.streams.inflight, c.vectors.inflight]).toEqual([undefined, undefined, undefined]);
      await verifyAll();
    }
    return { ops: done, kills, terms };
  } catch (err) {
    if (err instanceof Violation || err instanceof Unknown) {
      // The server logs JSON lines to stdout; a 500's cause is among its errors.
      const errors = server.stdout().split('\n').filter((line) => /"level":(50|60),/.test(line)).slice(-5).join('\n');
      const tail = `${errors}\n${server.stderr().slice(-3000)}`;
      keepData = true;
      throw new Error(`model check failed, seed ${seed} (QUARTZ_MODEL_SEED=${seed}): ${err.message}\n--- last ${KEEP_OPS} ops ---\n${log.tail()}\n--- server errors and stderr ---\n${tail}\n--- data directory (kept) ---\n${data}`);
    }
    throw err;
  } finally {
    await server.stop('SIGKILL');
    if (!keepData) await rm(data, { recursive: true, force: true });
  }
}

describe('the server against a model, with kill -9 and SIGTERM', () => {
  it(`holds for ${OPS} random ops from ${CLIENTS} clients (seed ${SEED})`, { timeout: 120_000 + OPS * 200 }, async () => {
    const { ops, kills, terms } = await runModel(SEED, OPS);
    console.log(`model check seed ${SEED}: ${ops} ops, ${kills} kill -9 rounds, ${terms} SIGTERM rounds`);
    if (KILL) expect(kills).toBeGreaterThan(0);
    expect(terms).toBeGreaterThan(0);
  });
});
