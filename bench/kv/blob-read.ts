/**
 * CPU time of one KvStore.get of a large value (a blob on the Node disk adapter, warm in the page
 * cache): the blob read plus, since blob pointers carry one, its CRC32C check. Not in `npm run
 * bench`: an A/B of this one path, run from two checkouts alternately (see kv.md, Values).
 * Usage: node --expose-gc --import tsx bench/kv/blob-read.ts <value bytes> <reads>
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvStore } from '../../src/engine/kv/kv-store.js';
import { MemoryUsageRecorder } from '../../src/engine/testing.js';
import { init } from '../../src/node/core.js';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { systemClock, timerScheduler } from '../../src/ports/system-clock.js';
import { processCpuUs } from '../lib/cpu.js';

const size = Number(process.argv[2] ?? 4 * 1024 * 1024);
const reads = Number(process.argv[3] ?? 30);
const gc = (globalThis as { gc?: () => void }).gc;
await init();
const dir = mkdtempSync(join(tmpdir(), 'quartz-blob-read-'));
const storage = await openDiskStorage({ dir });
const capabilities = { compileWasmAtRuntime: true, threads: true, persistentStorage: true };
const kv = await KvStore.open({ storage, clock: systemClock, scheduler: timerScheduler, usage: new MemoryUsageRecorder(), capabilities }, 'bench');
await kv.put('big', new Uint8Array(size).map((_, i) => (i * 31) & 0xff));
for (let i = 0; i < 3; i++) await kv.get('big'); // warm-up: page cache, JIT, the WASM core
const perRead: number[] = [];
for (let i = 0; i < reads; i++) {
  // The previous reads' garbage is collected outside the timed part, its background sweep given
  // time to end (process CPU counts every thread): a read is charged its own work.
  gc?.();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const before = processCpuUs();
  const got = await kv.get('big');
  const spentUs = processCpuUs() - before;
  if (got?.value.length !== size) throw new Error(`read back ${got?.value.length} bytes, not ${size}`);
  perRead.push(spentUs / 1000);
}
perRead.sort((a, b) => a - b);
const ms = (v: number) => Number(v.toFixed(2));
console.log(JSON.stringify({ size, reads, gc_between: gc !== undefined, cpu_ms_min: ms(perRead[0]!), cpu_ms_median: ms(perRead[perRead.length >> 1]!) }));
await kv.close();
await storage.close();
rmSync(dir, { recursive: true, force: true });
