/**
 * Crash-test child for the write-ahead log: lmdb never receives a batch (the apply delay is an
 * hour), so every acknowledged write lives only in the log when the parent SIGKILLs it. Writes a
 * key to unit `raw/gone` and drops that unit, then WAL_OPS operations on `raw/wal` (see
 * `walOp`), each awaited on its own (one log frame each), then prints `ready` and waits.
 * Usage: wal-child.ts <dataDir>
 */
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { key, payload } from './workload.js';
import { WAL_OPS, walOp } from './wal-workload.js';

const [dataDir] = process.argv.slice(2) as [string];
const storage = await openDiskStorage({ dir: dataDir, applyDelayMs: 3_600_000 });
const gone = await storage.unit('raw/gone');
await gone.kv.put(key('gone', 0), payload('gone', 0, 10));
await storage.dropUnit('raw/gone');
const { kv } = await storage.unit('raw/wal');
for (let n = 0; n < WAL_OPS; n++) {
  const ops = walOp(n);
  if (ops.length === 1 && ops[0]!.type === 'put') await kv.put(ops[0]!.key, ops[0]!.value);
  else await kv.batch(ops);
}
process.stdout.write('ready\n');
setInterval(() => undefined, 1000);
