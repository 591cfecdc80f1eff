/**
 * Crash-test child for the whole engine on the Node disk home: produces records (tiny segments,
 * so rolls happen constantly; every tenth write large enough for the worker threads that compress
 * them), puts KV keys and upserts, replaces and deletes vectors (a snapshot every few mutations; two
 * collections taken in turn, one open at a time) in concurrent loops, appending an ack line only after each call resolved. The parent SIGKILLs it at a random
 * moment. Usage: engine-child.ts <dataDir> <ackFile>
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { openQuartz } from '../../src/node/open-quartz.js';
import { parseAcks } from './workload.js';
import { CRASH_ENGINE_OPTIONS, PARTITIONS, TOPIC, TOPIC_OPTIONS, COLLECTIONS, DIMS, kvKey, kvValue, recordSeq, recordValue, vector, vectorCollection, vectorOp } from './engine-workload.js';

const [dataDir, ackFile] = process.argv.slice(2) as [string, string];
const ack = (line: object) => appendFileSync(ackFile, JSON.stringify(line) + '\n');
const previous = existsSync(ackFile) ? parseAcks(readFileSync(ackFile, 'utf8')) : [];
const next = (op: string) => previous.filter((a) => a.op === op).reduce((m, a) => Math.max(m, a.n + 1), 0);

const engine = await openQuartz({ dataDir, ...CRASH_ENGINE_OPTIONS });
const { kv, streams, vectors } = await engine.tenant('crash');
if (!streams.listTopics().some((t) => t.name === TOPIC)) await streams.createTopic(TOPIC, TOPIC_OPTIONS);
for (const name of COLLECTIONS) {
  if (!(await vectors.listCollections()).some((c) => c.name === name)) await vectors.createCollection({ name, dims: DIMS, metric: 'l2' });
}

// A produce that was written but not acked before the last kill is in the log: continue after
// the highest sequence number the log holds, so no sequence number is ever produced twice.
let seq = next('rec');
for (const p of streams.describeTopic(TOPIC).partition_info) {
  if (p.high_watermark > p.log_start_offset) {
    const last = await streams.consume(TOPIC, p.partition, p.high_watermark - 1);
    for (const r of last.records) seq = Math.max(seq, recordSeq(r.value!) + 1);
  }
}
process.stdout.write('ready\n');

async function produceLoop(): Promise<never> {
  for (let round = 0; ; round++) {
    // Every tenth write is large (~270 KB), so a worker thread seals it (the batch encoder's minBytes is 256 KiB).
    const count = round % 10 === 9 ? 1200 : 1 + (seq % 3);
    const batch = Array.from({ length: count }, (_, i) => seq + i);
    seq += count;
    const partition = batch[0]! % PARTITIONS;
    const { offsets } = await streams.produce(
      TOPIC,
      batch.map((n) => ({ value: recordValue(n), partition })),
    );
    batch.forEach((n, i) => ack({ op: 'rec', n, partition: offsets[i]!.partition, offset: offsets[i]!.offset }));
  }
}

async function kvLoop(): Promise<never> {
  for (let n = next('kv'); ; n++) {
    await kv.put(kvKey(n), kvValue(n));
    ack({ op: 'kv', n });
  }
}

async function vectorLoop(): Promise<never> {
  for (let n = next('vec'); ; n++) {
    const op = vectorOp(n);
    const name = vectorCollection(op.id);
    if (op.kind === 'delete') await vectors.deleteVectors(name, [`v${op.id}`]);
    else await vectors.upsert(name, [{ id: `v${op.id}`, values: vector(op.n), metadata: { n: op.n } }]);
    ack({ op: 'vec', n });
  }
}

await Promise.all([produceLoop(), produceLoop(), kvLoop(), vectorLoop()]);
