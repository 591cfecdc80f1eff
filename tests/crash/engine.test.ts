/**
 * kill -9 durability of the whole engine on the Node disk home: a child produces (1 KiB
 * segments: constant rolls), puts KV keys (some big enough for the blob store) and upserts
 * vectors (a snapshot every 4 mutations; two collections under a 1-byte open-collection budget, so
 * each upsert closes one and reopens the other), acking each resolved call; we SIGKILL it at random
 * moments, reopen, and check that every acked record, key and vector is there byte-identical,
 * offsets are contiguous and no record is duplicated. raw-adapters.test.ts checks the layer below.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openQuartz } from '../../src/node/open-quartz.js';
import { COLLECTION, COLLECTIONS, CRASH_ENGINE_OPTIONS, PARTITIONS, TOPIC, kvKey, kvValue, recordSeq, recordValue, vector } from './engine-workload.js';
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

        const vecAcked = acks.filter((x) => x.op === 'vec').map((x) => x.n);
        for (const n of vecAcked) {
          const got = await vectors.get(COLLECTIONS[n % 2]!, `v${n}`);
          expect(got?.values, `acked vector v${n}`).toEqual(vector(n));
          expect(got?.metadata).toEqual({ n });
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
