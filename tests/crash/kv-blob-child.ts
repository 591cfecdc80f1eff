/**
 * Crash-test child for large KV values: each loop overwrites one key with values over 1 MiB
 * (a blob upload, then the pointer record that carries the blob's CRC32C), one put at a time,
 * and appends an ack line once the put resolved; the parent SIGKILLs it.
 * Usage: kv-blob-child.ts <dataDir> <ackFile>
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { openQuartz } from '../../src/node/open-quartz.js';
import { parseAcks } from './workload.js';
import { BLOB_KEYS, blobValue } from './kv-blob-workload.js';

const [dataDir, ackFile] = process.argv.slice(2) as [string, string];
const ack = (line: object) => appendFileSync(ackFile, JSON.stringify(line) + '\n');
const previous = existsSync(ackFile) ? parseAcks(readFileSync(ackFile, 'utf8')) : [];
// Each loop goes on after its last acknowledged step; the unacknowledged step after it is made again.
const next = (op: string) => previous.filter((a) => a.op === op).reduce((m, a) => Math.max(m, a.n + 1), 0);

const engine = await openQuartz({ dataDir });
const { kv } = await engine.tenant('blobs');
process.stdout.write('ready\n');

async function putLoop(key: string): Promise<never> {
  for (let n = next(key); ; n++) {
    await kv.put(key, blobValue(key, n));
    ack({ op: key, n });
  }
}

await Promise.all(BLOB_KEYS.map(putLoop));
