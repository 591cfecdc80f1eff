/**
 * Crash-test child for the raw adapters (lmdb KV + file blobs): writes in a loop and appends an
 * ack line (O_APPEND, one write per line) only after each write's promise resolved. The parent
 * SIGKILLs it at a random moment. Usage: raw-child.ts <dataDir> <ackFile> [logFileBytes applyDelayMs]
 * (small log files and a short delay keep the journal switching files and moving writes into
 * lmdb all the time, so the kill lands mid-checkpoint).
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { BULK_PUTS, BULK_VALUE_BYTES, blobSize, deletes, key, kvSize, parseAcks, payload } from './workload.js';

const [dataDir, ackFile, logFileBytes, applyDelayMs] = process.argv.slice(2) as [string, string, string | undefined, string | undefined];
const ack = (line: object) => appendFileSync(ackFile, JSON.stringify(line) + '\n');

const previous = existsSync(ackFile) ? parseAcks(readFileSync(ackFile, 'utf8')) : [];
const next = (op: string) => previous.filter((a) => a.op === op).reduce((m, a) => Math.max(m, a.n + 1), 0);

const storage = await openDiskStorage({
  dir: dataDir,
  ...(logFileBytes === undefined ? {} : { logFileBytes: Number(logFileBytes) }),
  ...(applyDelayMs === undefined ? {} : { applyDelayMs: Number(applyDelayMs) }),
});
const unit = await storage.unit('raw/crash');
// Bulk puts get a unit of their own so the parent can check just the latest rounds' (they share the journal).
const bulkUnit = await storage.unit('raw/bulk');
process.stdout.write('ready\n');

async function kvLoop(): Promise<never> {
  // Numbering continues across rounds; an unacknowledged n from the killed round is simply redone.
  for (let n = next('kv'); ; n++) {
    const del = deletes(n);
    if (n % 3 === 0) {
      const ops: Parameters<typeof unit.kv.batch>[0] = [{ type: 'put', key: key('k', n), value: payload('k', n, kvSize(n)) }];
      if (del !== undefined) ops.push({ type: 'delete', key: key('k', del) });
      ops.push({ type: 'put', key: key('pair', n), value: payload('pair', n, 64) });
      await unit.kv.batch(ops);
    } else {
      await unit.kv.put(key('k', n), payload('k', n, kvSize(n)));
      if (del !== undefined) await unit.kv.delete(key('k', del));
    }
    ack({ op: 'kv', n });
  }
}

async function blobLoop(): Promise<never> {
  for (let n = next('blob'); ; n++) {
    await unit.blobs.put(`seg/${String(n).padStart(8, '0')}`, payload('b', n, blobSize(n)));
    ack({ op: 'blob', n });
  }
}

await Promise.all([kvLoop(), kvLoop2(), bulkLoop(), blobLoop()]);

/** A second writer in the same event turns, so lmdb batches several writers into one transaction. */
async function kvLoop2(): Promise<never> {
  for (let n = next('solo'); ; n++) {
    await unit.kv.put(key('solo', n), payload('solo', n, 300));
    ack({ op: 'solo', n });
  }
}

/**
 * Many small puts issued at once, acknowledged together: a group that large skips the write-ahead
 * log and goes to lmdb in one commit (journal.ts BULK_BYTES), with the other loops' writes of that turn.
 */
async function bulkLoop(): Promise<never> {
  for (let n = next('bulk'); ; n++) {
    const puts: unknown[] = [];
    for (let i = n * BULK_PUTS; i < (n + 1) * BULK_PUTS; i++) puts.push(bulkUnit.kv.put(key('bulk', i), payload('bulk', i, BULK_VALUE_BYTES)));
    await Promise.all(puts);
    ack({ op: 'bulk', n });
  }
}
