// KV records go back to the shared RecordPool once their write is durable, and the pool hands the
// same slab bytes to later puts. These tests churn many slabs' worth of puts (plain, with a TTL,
// with a TTL dropped) interleaved with reads of the same keys, on the memory and the disk
// adapters, and check every value byte for byte: in flight, settled, held by a reader across later
// puts, and after the disk store is flushed and reopened. Any storage (or store) that keeps a
// record's bytes after it returned to the pool shows up as a value changed under it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../ports/manual-clock.js';
import { createMemoryStorage } from '../../ports/memory-storage.js';
import type { StorageProvider } from '../../ports/storage.js';
import { openDiskStorage } from '../../node/storage/disk-storage.js';
import type { EngineContext } from '../context.js';
import { MemoryUsageRecorder } from '../testing.js';
import { KvStore } from './kv-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function context(storage: StorageProvider, clock: ManualClock): EngineContext {
  return { storage, clock, scheduler: clock, usage: new MemoryUsageRecorder(), capabilities: { compileWasmAtRuntime: true, threads: true, persistentStorage: true } };
}

/** A value that differs in every byte position between keys and rounds, 100 B to ~3.5 KB (pooled sizes). */
function valueOf(key: number, round: number): Uint8Array {
  let x = (key * 2654435761 + round * 40503 + 1) >>> 0;
  const n = 100 + (x % 3400);
  const v = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    v[i] = x >>> 24;
  }
  return v;
}

function sameBytes(got: Uint8Array | undefined, want: Uint8Array): boolean {
  return got !== undefined && Buffer.from(got.buffer, got.byteOffset, got.length).equals(Buffer.from(want.buffer, want.byteOffset, want.length));
}

const KEYS = 40;
const ROUNDS = 40;
/** Keys written once, in one round, with a TTL: nothing later overwrites what storage keeps of them. */
const ONCE_KEYS = 10;

/**
 * Puts every key each round (kind by key and round) and a few keys of its own, reads each back in
 * flight and settled; returns every key's newest value.
 */
async function churn(kv: KvStore): Promise<Map<string, Uint8Array>> {
  const held: { got: Uint8Array; want: Uint8Array }[] = [];
  const last = new Map<string, Uint8Array>();
  for (let round = 0; round < ROUNDS; round++) {
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < ONCE_KEYS; i++) {
      const want = valueOf(KEYS + i, round);
      writes.push(kv.put(`once-${round}-${i}`, want, { ttl: 3600 }));
      last.set(`once-${round}-${i}`, want);
    }
    for (let key = 0; key < KEYS; key++) {
      const want = valueOf(key, round);
      // Plain puts (putOwned), puts with a TTL (batch), and a TTL dropped or changed (batch with deletes).
      const kind = (key + round) % 3;
      const ttl = kind === 0 ? undefined : kind === 1 ? 3600 : 60 + round;
      writes.push(kv.put(`k${key}`, want, ttl === undefined ? {} : { ttl }));
      last.set(`k${key}`, want);
      // Read while in flight: answered from the record the store just wrote.
      const got = await kv.get(`k${key}`);
      expect(sameBytes(got?.value, want), `in flight k${key} round ${round}`).toBe(true);
      if (key % 7 === 0) held.push({ got: got!.value, want });
    }
    await Promise.all(writes);
    for (let key = 0; key < KEYS; key++) {
      const got = await kv.get(`k${key}`);
      const want = last.get(`k${key}`)!;
      expect(sameBytes(got?.value, want), `settled k${key} round ${round}`).toBe(true);
      if (key % 11 === 0) held.push({ got: got!.value, want });
    }
    // Values handed out earlier are the readers' own: later puts reusing slabs never change them.
    for (const h of held) expect(sameBytes(h.got, h.want)).toBe(true);
  }
  return last;
}

describe('KV records returned to the record pool', () => {
  it('never change a value read, in flight or stored, on the memory adapter', async () => {
    const clock = new ManualClock();
    const kv = await KvStore.open(context(createMemoryStorage(), clock), 't1');
    const last = await churn(kv);
    for (const [key, want] of last) expect(sameBytes((await kv.get(key))?.value, want)).toBe(true);
    await kv.close();
  });

  it('never change a value read or what lmdb commits, on the disk adapter, across a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quartz-kv-reuse-'));
    dirs.push(dir);
    const clock = new ManualClock();
    let storage = await openDiskStorage({ dir });
    let kv = await KvStore.open(context(storage, clock), 't1');
    const last = await churn(kv);
    // lmdb applies the journal's pending writes after the records went back to the pool.
    await storage.settle();
    for (const [key, want] of last) expect(sameBytes((await kv.get(key))?.value, want), `after settle ${key}`).toBe(true);
    await kv.close();
    await storage.close();
    storage = await openDiskStorage({ dir });
    kv = await KvStore.open(context(storage, clock), 't1');
    for (const [key, want] of last) expect(sameBytes((await kv.get(key))?.value, want), `reopened ${key}`).toBe(true);
    await kv.close();
    await storage.close();
  });
});
