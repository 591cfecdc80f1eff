/**
 * kill -9 durability of the whole engine on the Node disk home: a child produces (1 KiB
 * segments: constant rolls), puts KV keys (some big enough for the blob store) and upserts,
 * replaces and deletes vectors (a snapshot every 4 mutations; two collections under a 1-byte open-collection budget, so
 * each upsert closes one and reopens the other), acking each resolved call; we SIGKILL it at random
 * moments, reopen, and check that every acked record, key and vector is there byte-identical (and every acked
 * vector delete or replacement holds, in the records, the index and the metadata filters),
 * offsets are contiguous and no record is duplicated. raw-adapters.test.ts checks the layer below.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openQuartz } from '../../src/node/open-quartz.js';
import { COLLECTION, COLLECTIONS, CRASH_ENGINE_OPTIONS, PARTITIONS, TOPIC, kvKey, kvValue, recordSeq, recordValue, vector, vectorCollection, vectorOp } from './engine-workload.js';
import { killAfter } from './harness.js';
import { parseAcks } from './workload.js';

// Each round starts a child under tsx; on 2 busy cores a round can take several seconds.
const ROUNDS = Number(process.env.QUARTZ_CRASH_ROUNDS ?? 6);
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const same = (a: Uint8Array | null | undefined, b: Uint8Array) => a != null && Buffer.from(a).equals(Buffer.from(b));

describe('kill -9: engine (streams, KV, vectors on lmdb + files)', () => {
  it(`keeps every acknowledged record, key and vector across ${ROUNDS} SIGKILLs`, async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-crash-engine-'));
    dirs.push(root);
    const dataDir = join(root, 'data');
    const ackFile = join(root, 'acks.jsonl');
    const counts = { records: 0, keys: 0, vectors: 0, segments: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      await killAfter(new URL('./engine-child.ts', import.meta.url), [dataDir, ackFile], 300 + Math.random() * 1500, { ackFile, acks: 60 });

      const acks = parseAcks(await readFile(ackFile, 'utf8').catch(() => ''));
      const engine = await openQuartz({ dataDir, ...CRASH_ENGINE_OPTIONS });
      try {
        const { kv, streams, vectors } = await engine.tenant('crash');

        // Streams: read each partition whole; offsets contiguous from the start, every sequence
        // number at most once, every acked record at its acked offset, byte-identical.
        const seen = new Map<number, { partition: number; offset: number }>();
        for (const info of streams.describeTopic(TOPIC).partition_info) {
          expect(info.log_start_offset).toBe(0);
          counts.segments = Math.max(counts.segments, info.segments);
          let offset = 0;
          while (offset < info.high_watermark) {
            const page = await streams.consume(TOPIC, info.partition, offset, { max_records: 1000 });
            expect(page.records.length, `partition ${info.partition} readable at ${offset}`).toBeGreaterThan(0);
            for (const r of page.records) {
              expect(r.offset, `contiguous offsets in partition ${info.partition}`).toBe(offset);
              const seq = recordSeq(r.value!);
              expect(seen.has(seq), `record ${seq} duplicated`).toBe(false);
              expect(same(r.value, recordValue(seq)), `record ${seq} intact`).toBe(true);
              seen.set(seq, { partition: info.partition, offset });
              offset++;
            }
          }
        }
        for (const a of acks.filter((x) => x.op === 'rec')) {
          expect(seen.get(a.n), `acked record ${a.n}`).toEqual({ partition: a.partition, offset: a.offset });
        }
        counts.records = acks.filter((x) => x.op === 'rec').length;

        const kvAcked = acks.filter((x) => x.op === 'kv').map((x) => x.n);
        for (const n of kvAcked) expect(same((await kv.get(kvKey(n)))?.value, kvValue(n)), `acked key ${kvKey(n)}`).toBe(true);
        counts.keys = kvAcked.length;

        // Vector operations run one at a time in order: every acked one is applied, and the one
        // after the last ack may or may not be (its id may be in either state).
        const vecAcked = acks.filter((x) => x.op === 'vec').map((x) => x.n);
        const acked = vecAcked.reduce((m, n) => Math.max(m, n + 1), 0);
        const model = new Map<number, number | undefined>(); // id → the op n whose upsert it holds; undefined: deleted
        for (let n = 0; n < acked; n++) {
          const op = vectorOp(n);
          model.set(op.id, op.kind === 'delete' ? undefined : op.n);
        }
        const inFlight = vectorOp(acked);
        for (const [id, n] of model) {
          const got = await vectors.get(vectorCollection(id), `v${id}`);
          const state = got === undefined ? undefined : got.metadata.n;
          if (id === inFlight.id && state === (inFlight.kind === 'delete' ? undefined : inFlight.n)) continue;
          expect(state, `v${id} after ${acked} acked vector operations`).toBe(n);
          if (n === undefined) continue;
          expect(got?.values, `acked vector v${id}`).toEqual(vector(n));
          // The index and the metadata index agree with the records: the vector's own values find it.
          const { matches } = await vectors.query(vectorCollection(id), { vector: vector(n), k: 1, filter: { n } });
          expect(matches, `v${id} found by its values and metadata`).toEqual([{ id: `v${id}`, score: 0 }]);
        }
        for (const name of COLLECTIONS) {
          const live = [...model].filter(([id, n]) => n !== undefined && vectorCollection(id) === name).length;
          const uncertain = vectorCollection(inFlight.id) === name ? 1 : 0;
          const { count } = await vectors.describeCollection(name);
          expect(Math.abs(count - live), `${name} holds ${count} vectors; the acked operations leave ${live}`).toBeLessThanOrEqual(uncertain);
          let listed = 0;
          for (let cursor: string | null = null; ; ) {
            const page = await vectors.listVectors(name, { cursor, limit: 1000 });
            listed += page.vectors.length;
            if ((cursor = page.cursor) === null) break;
          }
          expect(listed, `${name} lists as many vectors as it counts`).toBe(count);
        }
        counts.vectors = vecAcked.length;
        // The budget holds here as in the child: the reads above closed a collection to open the other.
        if (vecAcked.length >= 2) expect((await engine.stats()).collection_evictions).toBeGreaterThan(0);
        const { blobs } = await engine.context.storage.unit(`vec/crash/${COLLECTION}`);
        if (vecAcked.length >= 8) expect((await blobs.list('')).length, 'vector snapshots were taken').toBeGreaterThan(0);
        expect(streams.describeTopic(TOPIC).partitions).toBe(PARTITIONS);
      } finally {
        await engine.close();
      }
    }
    // The rounds must have done real work, rolled many segments and taken snapshots, or they prove little.
    expect(counts.records).toBeGreaterThan(ROUNDS * 5);
    expect(counts.keys).toBeGreaterThan(ROUNDS);
    expect(counts.vectors).toBeGreaterThan(ROUNDS * 4);
    expect(counts.segments).toBeGreaterThan(3);
    console.log(`engine crash test: ${JSON.stringify(counts)} after ${ROUNDS} SIGKILLs`);
  }, 300_000);
});
