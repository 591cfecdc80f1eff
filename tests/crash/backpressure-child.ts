/**
 * Crash-test child for produce under backpressure on the Node disk home: six producers append to
 * one partition whose rolls cannot keep up, so most writes wait for room before they are admitted.
 * Each resolved append adds an ack line (its first sequence number, count and offset, and how many
 * writes were waiting for room then). The parent SIGKILLs it at a random moment.
 * Usage: backpressure-child.ts <dataDir> <ackFile>
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { PartitionLog } from '../../src/engine/streams/partition-log.js';
import { SegmentCache } from '../../src/engine/streams/segment-cache.js';
import { init } from '../../src/node/core.js';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { systemClock, timerScheduler } from '../../src/ports/system-clock.js';
import { CONFIG, PRODUCERS, RECORDS_PER_WRITE, UNIT, recordSeq, recordValue } from './backpressure-workload.js';
import { parseAcks } from './workload.js';

const [dataDir, ackFile] = process.argv.slice(2) as [string, string];
const ack = (line: object) => appendFileSync(ackFile, JSON.stringify(line) + '\n');

await init();
const storage = await openDiskStorage({ dir: dataDir });
const log = await PartitionLog.open(UNIT, await storage.unit(UNIT), CONFIG, systemClock, timerScheduler, new SegmentCache(8 << 20), { onBytes() {} });

// A write that landed but was not acked before the last kill is in the log: continue after the
// highest sequence number acked or stored, so none is ever produced twice.
const previous = existsSync(ackFile) ? parseAcks(readFileSync(ackFile, 'utf8')) : [];
let seq = previous.reduce((m, a) => Math.max(m, a.n + (a.count as number)), 0);
if (log.highWatermark > 0) {
  const last = await log.read(log.highWatermark - 1, 1, 1 << 20, UNIT);
  for (const r of last.records) seq = Math.max(seq, recordSeq(r.value!) + 1);
}
process.stdout.write('ready\n');

async function produceLoop(): Promise<never> {
  for (;;) {
    const first = seq;
    seq += RECORDS_PER_WRITE;
    const records = Array.from({ length: RECORDS_PER_WRITE }, (_, i) => ({ key: null, value: recordValue(first + i), timestamp: Date.now() }));
    const offset = await log.append(records);
    ack({ op: 'rec', n: first, count: RECORDS_PER_WRITE, offset, waiting: log.writesWaitingForRoom });
  }
}

await Promise.all(Array.from({ length: PRODUCERS }, () => produceLoop()));
