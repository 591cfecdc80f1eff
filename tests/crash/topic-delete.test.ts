/**
 * kill -9 in the middle of a topic delete: after the catalog entry and the partitions are gone,
 * before the groups' committed offsets for the topic are dropped. The reopen must finish the
 * drop: no group listed for the deleted topic alone, and a topic created again under the name
 * inherits neither records nor offsets.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/node/core.js';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { createTestContext } from '../../src/engine/testing.js';
import { StreamStore } from '../../src/engine/streams/stream-store.js';
import { killAfter } from './harness.js';
import { DOOMED, KEPT, TENANT } from './topic-delete-workload.js';

const dirs: string[] = [];
beforeAll(async () => {
  await init();
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function reopen(dataDir: string) {
  const storage = await openDiskStorage({ dir: dataDir });
  const streams = await StreamStore.open({ ...createTestContext(), storage }, TENANT);
  return { storage, streams };
}

describe('kill -9: topic delete between the catalog and the group offsets', () => {
  it('drops the deleted topic’s group offsets on the next open', async () => {
    const root = await mkdtemp(join(tmpdir(), 'quartz-crash-topic-delete-'));
    dirs.push(root);
    const dataDir = join(root, 'data');
    // The child reports ready only once it holds back the groups' batch of the delete.
    await killAfter(new URL('./topic-delete-child.ts', import.meta.url), [dataDir], 0);

    const a = await reopen(dataDir);
    try {
      expect(a.streams.listTopics().map((t) => t.name)).toEqual([KEPT]);
      expect(await a.streams.listGroups()).toEqual(['both']);
      expect((await a.streams.listGroupsPage({})).groups).toEqual(['both']);
      expect((await a.streams.fetchOffsets('both')).map((r) => [r.topic, r.offset])).toEqual([[KEPT, 1]]);
      await a.streams.createTopic(DOOMED, { partitions: 2 });
      expect(a.streams.describeTopic(DOOMED).partition_info.map((p) => p.high_watermark)).toEqual([0, 0]);
      expect((await a.streams.fetchOffsets('only-doomed', DOOMED)).map((r) => r.offset)).toEqual([null, null]);
      expect((await a.streams.fetchOffsets('both', DOOMED)).map((r) => r.offset)).toEqual([null, null]);
      expect(await a.streams.listGroups()).toEqual(['both']);
    } finally {
      await a.streams.close();
      await a.storage.close();
    }
  });
});
