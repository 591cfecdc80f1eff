/** Issues the steps of kv-keys-workload.ts from argv[3] on, up to 48 in flight, noting each issue and acknowledgement. */
import { openSync, writeSync } from 'node:fs';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import type { OrderedKV } from '../../src/ports/storage.js';
import { UNITS, step } from './kv-keys-workload.js';

const [dir, from, ackFile] = process.argv.slice(2) as [string, string, string];
const acks = openSync(ackFile, 'a');
const storage = await openDiskStorage({ dir });
const kvs = new Map<string, OrderedKV>();
for (const u of UNITS) kvs.set(u, (await storage.unit(u)).kv);
process.stdout.write('ready\n');
let inFlight = 0;
for (let s = Number(from); ; s++) {
  while (inFlight >= 48) await new Promise((r) => setImmediate(r));
  const { unit, ops } = step(s);
  writeSync(acks, `issued ${s}\n`);
  inFlight++;
  void Promise.resolve(kvs.get(unit)!.batch(ops)).then(
    () => {
      inFlight--;
      writeSync(acks, `ack ${s}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`step ${s} failed: ${String(err)}\n`);
      process.exit(3);
    },
  );
  if (s % 8 === 0) await new Promise((r) => setImmediate(r));
}
