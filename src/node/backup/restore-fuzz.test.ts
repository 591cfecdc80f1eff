/**
 * Seeded damage to a real backup archive (cut at random bytes, random bytes flipped): a restore
 * either refuses it with a QuartzError and leaves the data directory as it found it (absent, or
 * there and empty), or, for damage the format does not cover (the header's created_at),
 * restores everything.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuartzError } from '../../core/errors.js';
import { seededRandom } from '../../core/random-testing.js';
import { openQuartz } from '../open-quartz.js';
import { HEADER_BYTES } from './archive.js';
import { restoreBackup } from './restore.js';
import { createBackup } from './snapshot.js';

const utf8 = new TextEncoder();
let root: string;
let archive: Uint8Array;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'quartz-restore-fuzz-'));
  const engine = await openQuartz({ dataDir: join(root, 'source'), encodeThreads: 0 });
  try {
    const { tenant } = await engine.tenants.create({ email: 'f@example.com' });
    const { kv, streams } = await engine.tenant(tenant.id);
    for (let i = 0; i < 30; i++) await kv.put(`k${i}`, utf8.encode(`value ${i}`));
    await kv.put('big', new Uint8Array(1_100_000).map((_, i) => i % 253)); // a blob
    await streams.createTopic('t', { partitions: 1, segment_bytes: 1024 });
    for (let b = 0; b < 3; b++) await streams.produce('t', Array.from({ length: 20 }, (_, i) => ({ value: utf8.encode(`r${b}-${i}`) })));
    await streams.maintain('t'); // a segment blob too
    archive = new Uint8Array(await new Response((await createBackup(engine)).body).arrayBuffer());
  } finally {
    await engine.close();
  }
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('restore of a damaged archive', () => {
  it('refuses it with a QuartzError and leaves the data directory as it was, or restores all of it', async () => {
    const random = seededRandom(2024);
    let refused = 0;
    for (let round = 0; round < 24; round++) {
      const damaged = archive.slice();
      let at: number;
      let bytes: Uint8Array;
      if (round % 2 === 0) {
        at = Math.floor(random() * damaged.length);
        bytes = damaged.subarray(0, at);
      } else {
        at = Math.floor(random() * damaged.length);
        damaged[at] ^= 1 << Math.floor(random() * 8);
        bytes = damaged;
      }
      const file = join(root, `damaged-${round}.qzb`);
      await writeFile(file, bytes);
      // Alternately a directory the restore makes and one that is there and empty.
      const dataDir = join(root, `restored-${round}`);
      const existed = round % 4 < 2;
      if (existed) await mkdir(dataDir);
      const subject = `round ${round}: ${round % 2 === 0 ? 'cut at' : 'bit flipped at'} byte ${at} of ${archive.length}`;
      try {
        await restoreBackup({ file, dataDir });
        expect(round % 2 === 1 && at >= 8 && at < HEADER_BYTES, `${subject} was restored`).toBe(true);
      } catch (err) {
        refused++;
        expect(err, subject).toBeInstanceOf(QuartzError);
        if (existed) expect(await readdir(dataDir), subject).toEqual([]);
        else await expect(readdir(dataDir), subject).rejects.toThrow(/ENOENT/);
      }
    }
    expect(refused).toBeGreaterThan(20);
  }, 60_000);
});
