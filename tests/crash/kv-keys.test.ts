import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { killAfter } from './harness.js';
import { UNITS, step } from './kv-keys-workload.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('logged KV batches across SIGKILL', () => {
  it('replay to a prefix of the issued batches holding every acknowledged one: binary keys of 1 to 2,048 bytes, 40 units with names up to 1 KB', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-crash-kvkeys-'));
    const ackFile = join(dir, '..', `${dir.split('/').pop()}.acks`);
    // What steps 0..p leave, grown one step at a time.
    const model = new Map<string, string>();
    let applied = -1;
    const applyTo = (p: number) => {
      for (; applied < p; ) {
        const { unit, ops } = step(++applied);
        for (const op of ops) {
          const k = `${unit}|${hex(op.key)}`;
          if (op.type === 'put') model.set(k, hex(op.value));
          else model.delete(k);
        }
      }
    };
    try {
      let next = 0;
      for (let round = 0; round < 4; round++) {
        await rm(ackFile, { force: true });
        await killAfter(new URL('./kv-keys-child.ts', import.meta.url), [dir, String(next), ackFile], Math.random() * 800, { ackFile, acks: 200 });
        let acked = next - 1;
        let issued = next - 1;
        for (const line of (await readFile(ackFile, 'utf8')).split('\n')) {
          const [what, n] = line.split(' ');
          if (what === 'ack') acked = Math.max(acked, Number(n));
          if (what === 'issued') issued = Math.max(issued, Number(n));
        }
        const storage = await openDiskStorage({ dir });
        const found = new Map<string, string>();
        for (const u of UNITS) for (const e of await (await storage.unit(u)).kv.scan({})) found.set(`${u}|${hex(e.key)}`, hex(e.value));
        await storage.close();
        // A crash keeps a prefix of the issued batches, at least up to the last acknowledged one.
        applyTo(acked);
        const same = () => model.size === found.size && [...model].every(([k, v]) => found.get(k) === v);
        while (!same() && applied < issued) applyTo(applied + 1);
        expect(same(), `round ${round}: no prefix from the acknowledged ${acked} to the issued ${issued} matches what was replayed`).toBe(true);
        next = applied + 1;
      }
    } finally {
      await rm(ackFile, { force: true });
      await rm(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
