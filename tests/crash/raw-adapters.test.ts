/**
 * kill -9 durability of the raw Node disk adapters (lmdb + file blobs), run before the engine
 * crash test so a failure points at the right layer: a child writes in a loop and acks each
 * resolved write; we SIGKILL it at random moments, reopen, and check every acked write.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { killAfter } from './harness.js';
import { BULK_PUTS, BULK_VALUE_BYTES, blobSize, deletes, key, kvSize, parseAcks, payload } from './workload.js';

// Each round starts a child under tsx; on 2 busy cores a round can take several seconds.
const ROUNDS = Number(process.env.QUARTZ_CRASH_ROUNDS ?? 6);
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.from(a).equals(Buffer.from(b));

describe('kill -9: raw adapters (lmdb + file blobs)', () => {
  it(`keeps every acknowledged write across ${ROUNDS} SIGKILLs`, async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-crash-raw-'));
    dirs.push(root);
    const dataDir = join(root, 'data');
    const ackFile = join(root, 'acks.jsonl');
    let checked = 0;
    let bulkFrom = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Odd rounds: 256 KiB log files and a batch into lmdb every millisecond, so the kill lands
      // amid file switches and checkpoints (lmdb batches) as often as amid plain logged writes.
      const journal = round % 2 === 1 ? [String(256 * 1024), '1'] : [];
      await killAfter(new URL('./raw-child.ts', import.meta.url), [dataDir, ackFile, ...journal], 150 + Math.random() * 900, { ackFile, acks: 20 });

      const acks = parseAcks(await readFile(ackFile, 'utf8').catch(() => ''));
      const storage = await openDiskStorage({ dir: dataDir });
      try {
        const { kv, blobs } = await storage.unit('raw/crash');
        const kvAcked = new Set(acks.filter((a) => a.op === 'kv').map((a) => a.n));
        // The KV loop is sequential: at most the step after the last ack was in flight at the kill.
        const inFlight = Math.max(-1, ...kvAcked) + 1;
        for (const n of kvAcked) {
          const got = await kv.get(key('k', n));
          const deleter = deletes(n + 5) === n ? n + 5 : undefined;
          if (deleter !== undefined && kvAcked.has(deleter)) expect(got, `k/${n} was deleted`).toBeUndefined();
          else if (deleter !== undefined && deleter === inFlight && got === undefined) continue;
          else expect(same(got, payload('k', n, kvSize(n))), `k/${n} acked and intact`).toBe(true);
          if (n % 3 === 0) expect(same(await kv.get(key('pair', n)), payload('pair', n, 64)), `batch ${n} whole`).toBe(true);
        }
        // Whatever is present (acked or still in flight at the kill) must be whole, never torn.
        for (const { key: k, value } of await kv.scan({})) {
          const [kind, num] = new TextDecoder().decode(k).split('/') as [string, string];
          const n = Number(num);
          const size = kind === 'k' ? kvSize(n) : kind === 'pair' ? 64 : 300;
          expect(same(value, payload(kind, n, size)), `${kind}/${n} intact`).toBe(true);
          if (kind === 'k' && n % 3 === 0) expect(await kv.get(key('pair', n)), `batch ${n} atomic`).toBeDefined();
        }
        for (const n of acks.filter((a) => a.op === 'solo').map((a) => a.n)) {
          expect(same(await kv.get(key('solo', n)), payload('solo', n, 300)), `solo/${n}`).toBe(true);
        }
        // Bulk rounds are checked once, in the round whose child acknowledged them (earlier ones were
        // checked before); what is present from the first unchecked round on must be whole.
        const bulkPresent = new Set<number>();
        for (const { key: k, value } of await (await storage.unit('raw/bulk')).kv.scan({ start: key('bulk', bulkFrom * BULK_PUTS) })) {
          const i = Number(new TextDecoder().decode(k).split('/')[1]);
          if (!same(value, payload('bulk', i, BULK_VALUE_BYTES))) expect.fail(`bulk/${i} torn`);
          bulkPresent.add(i);
        }
        const bulkAcked = acks.filter((a) => a.op === 'bulk' && a.n >= bulkFrom).map((a) => a.n);
        bulkFrom = Math.max(bulkFrom, ...bulkAcked.map((n) => n + 1));
        for (const n of bulkAcked) {
          for (let i = n * BULK_PUTS; i < (n + 1) * BULK_PUTS; i++) {
            if (!bulkPresent.has(i)) expect.fail(`bulk/${i} (round ${n}) acked but missing`);
          }
        }
        const blobAcked = acks.filter((a) => a.op === 'blob').map((a) => a.n);
        for (const n of blobAcked) {
          const name = `seg/${String(n).padStart(8, '0')}`;
          expect(same(await blobs.get(name), payload('b', n, blobSize(n))), `${name} acked and intact`).toBe(true);
        }
        for (const info of await blobs.list('seg/')) {
          const n = Number(info.key.slice(4));
          expect(same(await blobs.get(info.key), payload('b', n, blobSize(n))), `${info.key} never torn`).toBe(true);
        }
        expect(await readdir(join(dataDir, 'blobs', 'tmp'))).toEqual([]);
        checked += kvAcked.size + blobAcked.length + bulkAcked.length;
      } finally {
        await storage.close();
      }
    }
    // The test must have exercised something, or it proves nothing.
    expect(checked).toBeGreaterThan(ROUNDS * 10);
  }, 300_000);
});
