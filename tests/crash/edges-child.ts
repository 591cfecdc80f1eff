/**
 * Crash-test child for the writes engine-child.ts leaves out: KV deletes and TTL puts (a sweep
 * purging them, blobs among them), a group's offset commits, a topic whose retention keeps moving
 * its log start while a reader follows it, and a topic created and deleted over and over. Each
 * loop makes one call at a time and appends an ack line once it resolved; the parent SIGKILLs it.
 * Usage: edges-child.ts <dataDir> <ackFile>
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { isQuartzError, ErrorCode } from '../../src/core/errors.js';
import { openQuartz } from '../../src/node/open-quartz.js';
import { parseAcks } from './workload.js';
import { COMMITTED, CYCLED, GROUP, RETAINED, RETAINED_OPTIONS, kvOp, kvValue, recordSeq, recordValue } from './edges-workload.js';

const [dataDir, ackFile] = process.argv.slice(2) as [string, string];
const ack = (line: object) => appendFileSync(ackFile, JSON.stringify(line) + '\n');
const previous = existsSync(ackFile) ? parseAcks(readFileSync(ackFile, 'utf8')) : [];
// Each loop goes on after its last acknowledged step; the unacknowledged step after it is made again.
const next = (op: string) => previous.filter((a) => a.op === op).reduce((m, a) => Math.max(m, a.n + 1), 0);

const engine = await openQuartz({ dataDir });
const { kv, streams } = await engine.tenant('edges');
const topics = () => new Set(streams.listTopics().map((t) => t.name));
if (!topics().has(RETAINED)) await streams.createTopic(RETAINED, RETAINED_OPTIONS);
if (!topics().has(COMMITTED)) await streams.createTopic(COMMITTED);
process.stdout.write('ready\n');

async function kvLoop(): Promise<never> {
  for (let n = next('kv'); ; n++) {
    const op = kvOp(n);
    if (op.kind === 'delete') await kv.delete(op.key);
    else await kv.put(op.key, kvValue(n), op.kind === 'ttl' ? { ttl: 1 } : {});
    ack({ op: 'kv', n, at: Date.now() });
  }
}

async function retainedLoop(): Promise<never> {
  // Continue after the highest sequence number the log holds (an unacknowledged produce may be there).
  let seq = next('ret');
  const p = streams.describeTopic(RETAINED).partition_info[0]!;
  if (p.high_watermark > p.log_start_offset) {
    const last = await streams.consume(RETAINED, 0, p.high_watermark - 1);
    seq = Math.max(seq, recordSeq(last.records[0]!.value!) + 1);
  }
  for (; ; seq += 3) {
    const batch = [seq, seq + 1, seq + 2];
    const { offsets } = await streams.produce(RETAINED, batch.map((n) => ({ value: recordValue(n, 200) })));
    for (let i = 0; i < batch.length; i++) ack({ op: 'ret', n: batch[i], offset: offsets[i]!.offset });
  }
}

/** Reads the retained topic from its log start while retention moves it: a read may only find its offsets gone. */
async function readerLoop(): Promise<never> {
  for (let offset = 0; ; ) {
    try {
      const page = await streams.consume(RETAINED, 0, offset, { max_records: 7, max_wait_ms: 100 });
      for (const r of page.records) {
        if (recordSeq(r.value!) < 0 || r.value!.length !== 200) throw new Error(`record at ${r.offset} is not one the child wrote`);
      }
      offset = page.next_offset;
    } catch (err) {
      if (!isQuartzError(err, ErrorCode.OFFSET_OUT_OF_RANGE)) throw err;
      offset = streams.describeTopic(RETAINED).partition_info[0]!.log_start_offset;
    }
  }
}

async function commitLoop(): Promise<never> {
  for (let n = next('commit'); ; n++) {
    const { offsets } = await streams.produce(COMMITTED, [{ value: recordValue(n) }]);
    await streams.commitOffset(GROUP, COMMITTED, 0, offsets[0]!.offset + 1);
    ack({ op: 'commit', n, offset: offsets[0]!.offset + 1 });
  }
}

async function cycleLoop(): Promise<never> {
  for (let n = next('cycle'); ; n++) {
    // Step 2m creates the topic and writes record m into it; step 2m+1 deletes it.
    if (n % 2 === 0) {
      if (!topics().has(CYCLED)) await streams.createTopic(CYCLED, { partitions: 2 });
      await streams.produce(CYCLED, [{ value: recordValue(n), partition: 1 }]);
    } else if (topics().has(CYCLED)) {
      await streams.deleteTopic(CYCLED);
    }
    ack({ op: 'cycle', n });
  }
}

await Promise.all([kvLoop(), retainedLoop(), readerLoop(), commitLoop(), cycleLoop()]);
