/**
 * kill -9 durability of the writes tests/crash/engine.test.ts does not make: KV deletes and TTL
 * puts (with the sweep purging expired keys, large values among them), a consumer group's offset
 * commits, a topic whose retention keeps moving its log start while a reader follows it, and a
 * topic created and deleted over and over. A child runs them all (edges-child.ts), acking each
 * resolved call; we SIGKILL it at random moments, reopen, and check every acknowledged effect.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode, isQuartzError } from '../../src/core/errors.js';
import { openQuartz } from '../../src/node/open-quartz.js';
import type { KvStore } from '../../src/engine/kv/kv-store.js';
import type { StreamStore } from '../../src/engine/streams/stream-store.js';
import { COMMITTED, CYCLED, GROUP, RETAINED, kvOp, kvValue, recordSeq, recordValue } from './edges-workload.js';
import { killAfter } from './harness.js';
import { parseAcks, type Ack } from './workload.js';

const ROUNDS = Number(process.env.QUARTZ_CRASH_ROUNDS ?? 5);
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const same = (a: Uint8Array | null | undefined, b: Uint8Array) => a != null && Buffer.from(a).equals(Buffer.from(b));
const last = (acks: Ack[], op: string) => acks.filter((a) => a.op === op).reduce<Ack | undefined>((m, a) => (m === undefined || a.n > m.n ? a : m), undefined);

/** Every acked KV step holds; only the step after the last ack may have landed or not. */
async function checkKv(kv: KvStore, acks: Ack[]): Promise<{ live: number; ttlChecked: number }> {
  const kvAcks = acks.filter((a) => a.op === 'kv');
  const done = kvAcks.reduce((m, a) => Math.max(m, a.n + 1), 0);
  let live = 0;
  let ttlChecked = 0;
  // Which step's value each k/ key holds after the acked steps (undefined: deleted), and the step in flight.
  const model = new Map<string, number | undefined>();
  for (let n = 0; n < done; n++) {
    const op = kvOp(n);
    if (op.kind === 'put') model.set(op.key, n);
    else if (op.kind === 'delete') model.set(op.key, undefined);
    else {
      const at = kvAcks.find((a) => a.n === n)?.at as number | undefined;
      // Expires a second after its put, which came before its ack: past that, it is gone.
      if (at !== undefined && Date.now() > at + 1000) {
        expect(await kv.get(op.key), `${op.key} expired`).toBeUndefined();
        ttlChecked++;
      }
    }
  }
  const inFlight = kvOp(done);
  for (const [key, n] of model) {
    const got = await kv.get(key);
    if (key === inFlight.key) {
      // Either state: as acked, or with the step in flight applied whole.
      const after = inFlight.kind === 'delete' ? undefined : done;
      if (got === undefined ? after === undefined : after !== undefined && same(got.value, kvValue(after))) continue;
    }
    if (n === undefined) expect(got, `${key} was deleted`).toBeUndefined();
    else expect(same(got?.value, kvValue(n)), `${key} holds step ${n}'s value`).toBe(true);
  }
  for (let cursor: string | null = null; ; ) {
    const page = await kv.list({ prefix: 'k/', cursor });
    live += page.keys.length;
    if ((cursor = page.cursor) === null) break;
  }
  return { live, ttlChecked };
}

/**
 * The retained log reads whole from its start (retention goes on in this engine too, so a read may
 * find its offsets gone and start again from the new start); every acked record at or after the
 * start is at its offset.
 */
async function checkRetained(streams: StreamStore, acks: Ack[]): Promise<number> {
  const read = new Map<number, number>(); // offset → sequence number
  const start = () => streams.describeTopic(RETAINED).partition_info[0]!;
  const { high_watermark } = start();
  for (let offset = start().log_start_offset; offset < high_watermark; ) {
    try {
      const page = await streams.consume(RETAINED, 0, offset, { max_records: 500 });
      expect(page.records.length, `retained readable at ${offset}`).toBeGreaterThan(0);
      for (const r of page.records) {
        expect(r.offset).toBe(offset++);
        const seq = recordSeq(r.value!);
        expect(same(r.value, recordValue(seq, 200)), `retained record at ${r.offset} intact`).toBe(true);
        read.set(r.offset, seq);
      }
    } catch (err) {
      if (!isQuartzError(err, ErrorCode.OFFSET_OUT_OF_RANGE)) throw err;
      offset = start().log_start_offset;
    }
  }
  const logStart = start().log_start_offset;
  for (const a of acks.filter((x) => x.op === 'ret')) {
    const offset = a.offset as number;
    if (offset < logStart) continue;
    expect(offset, `acked record ${a.n} below the high watermark`).toBeLessThan(high_watermark);
    expect(read.get(offset), `acked record ${a.n} at offset ${offset}`).toBe(a.n);
  }
  return logStart;
}

async function checkCommits(streams: StreamStore, acks: Ack[]): Promise<void> {
  const acked = last(acks, 'commit');
  const [p] = await streams.fetchOffsets(GROUP, COMMITTED);
  if (acked === undefined) return;
  expect(p!.offset, 'the last acknowledged commit (or a later one) holds').toBeGreaterThanOrEqual(acked.offset as number);
  expect(p!.offset!).toBeLessThanOrEqual(p!.high_watermark);
}

/** The cycled topic holds only the current generation's record(s), never an older one's. */
async function checkCycle(streams: StreamStore, acks: Ack[]): Promise<void> {
  const acked = last(acks, 'cycle');
  const exists = streams.listTopics().some((t) => t.name === CYCLED);
  if (acked === undefined) return;
  const inFlight = acked.n + 1;
  if (acked.n % 2 === 1 && !exists) return; // deleted, as acknowledged
  if (acked.n % 2 === 0 && !exists) {
    expect(inFlight % 2, 'topic gone only by the delete in flight').toBe(1);
    return;
  }
  const generation = acked.n % 2 === 0 ? acked.n : inFlight;
  const info = streams.describeTopic(CYCLED).partition_info;
  expect(info[0]!.high_watermark, 'partition 0 of the cycled topic is empty').toBe(0);
  if (acked.n % 2 === 0) expect(info[1]!.high_watermark, `the record of generation ${generation} is there`).toBeGreaterThan(0);
  const page = await streams.consume(CYCLED, 1, 0, { max_records: 100 });
  for (const r of page.records) expect(recordSeq(r.value!), 'a record of the current generation only').toBe(generation);
}

describe('kill -9: deletes, TTL purges, group commits, retention and topic delete/create', () => {
  it(`keeps every acknowledged effect across ${ROUNDS} SIGKILLs`, async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-crash-edges-'));
    dirs.push(root);
    const dataDir = join(root, 'data');
    const ackFile = join(root, 'acks.jsonl');
    const seen = { logStart: 0, ttlChecked: 0, commits: 0, cycles: 0, kv: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      await killAfter(new URL('./edges-child.ts', import.meta.url), [dataDir, ackFile], 300 + Math.random() * 1500, { ackFile, acks: 60 });
      const acks = parseAcks(await readFile(ackFile, 'utf8').catch(() => ''));
      const engine = await openQuartz({ dataDir });
      try {
        const { kv, streams } = await engine.tenant('edges');
        const { ttlChecked } = await checkKv(kv, acks);
        seen.ttlChecked = Math.max(seen.ttlChecked, ttlChecked);
        seen.logStart = Math.max(seen.logStart, await checkRetained(streams, acks));
        await checkCommits(streams, acks);
        await checkCycle(streams, acks);
      } finally {
        await engine.close();
      }
      seen.commits = acks.filter((a) => a.op === 'commit').length;
      seen.cycles = acks.filter((a) => a.op === 'cycle').length;
      seen.kv = acks.filter((a) => a.op === 'kv').length;
    }

    // Once every TTL has passed and the sweep ran, the blob store holds the live large values and nothing else.
    const acks = parseAcks(await readFile(ackFile, 'utf8'));
    const lastTtl = Math.max(0, ...acks.filter((a) => a.op === 'kv').map((a) => a.at as number));
    await new Promise((r) => setTimeout(r, Math.max(0, lastTtl + 1100 - Date.now())));
    let engine = await openQuartz({ dataDir });
    let { kv } = await engine.tenant('edges');
    await kv.sweep();
    await engine.close(); // waits for the blob clean-ups the sweep started
    engine = await openQuartz({ dataDir });
    try {
      ({ kv } = await engine.tenant('edges'));
      const { live } = await checkKv(kv, acks);
      expect(live).toBeGreaterThan(0);
      let large = 0;
      for (let cursor: string | null = null; ; ) {
        const page = await kv.list({ cursor });
        for (const item of page.keys) {
          expect(item.key.startsWith('k/'), `${item.key}: only undeleted puts are left`).toBe(true);
          if (item.size > 1024 * 1024) large++;
        }
        if ((cursor = page.cursor) === null) break;
      }
      const { blobs } = await engine.context.storage.unit('kv/edges');
      expect(large, 'large values are left to check the blob store against').toBeGreaterThan(0);
      expect((await blobs.list('')).length, 'blobs left: the live large values only').toBe(large);
    } finally {
      await engine.close();
    }
    expect(seen.logStart, 'retention moved the log start').toBeGreaterThan(0);
    expect(seen.commits).toBeGreaterThan(ROUNDS);
    expect(seen.cycles).toBeGreaterThan(ROUNDS);
    expect(seen.kv).toBeGreaterThan(ROUNDS * 3);
    console.log(`edges crash test: ${JSON.stringify(seen)} after ${ROUNDS} SIGKILLs`);
  }, 400_000);
});
