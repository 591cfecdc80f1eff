/**
 * kill -9 while large KV values are overwritten: a blob is uploaded, then the record pointing at
 * it (with the blob's CRC32C) is written. A kill anywhere in between must leave each key at its
 * last acknowledged value or the one in flight, read back whole and passing its CRC check, and
 * the next open must delete the blobs no record adopted.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openQuartz } from '../../src/node/open-quartz.js';
import { BLOB_KEYS, blobValue } from './kv-blob-workload.js';
import { killAfter } from './harness.js';
import { parseAcks } from './workload.js';

const ROUNDS = Number(process.env.QUARTZ_CRASH_ROUNDS ?? 5);
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.from(a).equals(Buffer.from(b));

describe('kill -9 between a large value\'s blob and its record', () => {
  it(`leaves each key at its acknowledged value or the one in flight, never a damaged one, across ${ROUNDS} SIGKILLs`, async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-crash-kvblob-'));
    dirs.push(root);
    const dataDir = join(root, 'data');
    const ackFile = join(root, 'acks.jsonl');
    const landed = { acked: 0, inFlight: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      await killAfter(new URL('./kv-blob-child.ts', import.meta.url), [dataDir, ackFile], Math.random() * 600, { ackFile, acks: 2 });
      const acks = parseAcks(await readFile(ackFile, 'utf8').catch(() => ''));
      const engine = await openQuartz({ dataDir });
      try {
        const { kv } = await engine.tenant('blobs');
        for (const key of BLOB_KEYS) {
          const done = acks.filter((a) => a.op === key).reduce((m, a) => Math.max(m, a.n + 1), 0);
          // get() checks the blob against the CRC its pointer carries: a mismatch throws and fails the test.
          const got = (await kv.get(key))?.value;
          if (done > 0 && same(got, blobValue(key, done - 1))) landed.acked++;
          else if (same(got, blobValue(key, done))) landed.inFlight++;
          else expect.fail(`${key}: neither step ${done - 1}'s value (acknowledged) nor step ${done}'s (in flight), but ${got === undefined ? 'nothing' : `${got.length} other bytes`}`);
        }
      } finally {
        await engine.close(); // waits for the clean-up of blobs the kill left unadopted
      }
      // Only the adopted blobs are left: one per key.
      const check = await openQuartz({ dataDir });
      try {
        await check.tenant('blobs');
        const { blobs } = await check.context.storage.unit('kv/blobs');
        expect(await blobs.list(''), 'blobs left: the keys\' current values only').toHaveLength(BLOB_KEYS.length);
      } finally {
        await check.close();
      }
    }
    console.log(`kv blob crash test: ${JSON.stringify(landed)} over ${ROUNDS} SIGKILLs`);
  }, 400_000);
});
