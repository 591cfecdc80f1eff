/**
 * Crash-test child for a topic delete cut between its steps: sets up a topic that two groups
 * committed to (one of them also to a topic that stays), then deletes it and reports ready at
 * the groups-unit batch that drops the groups' offsets, which it holds back forever: the parent
 * SIGKILLs it there, with the catalog entry and the partitions already gone on disk.
 * Usage: topic-delete-child.ts <dataDir>
 */
import { init } from '../../src/node/core.js';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { createTestContext } from '../../src/engine/testing.js';
import { StreamStore } from '../../src/engine/streams/stream-store.js';
import type { StorageProvider, UnitStorage } from '../../src/ports/storage.js';
import { DOOMED, KEPT, TENANT } from './topic-delete-workload.js';

const [dataDir] = process.argv.slice(2) as [string];
await init();
const disk = await openDiskStorage({ dir: dataDir });
let holdGroupBatches = false;
const storage: StorageProvider = new Proxy(disk, {
  get(target, prop) {
    const value = Reflect.get(target, prop, target) as unknown;
    if (prop !== 'unit' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
    return async (name: string): Promise<UnitStorage> => {
      const unit = await target.unit(name);
      if (name !== `groups/${TENANT}`) return unit;
      const kv = new Proxy(unit.kv, {
        get(kvTarget, kvProp) {
          const v = Reflect.get(kvTarget, kvProp, kvTarget) as unknown;
          if (kvProp === 'batch' && holdGroupBatches) {
            return () => {
              process.stdout.write('ready\n');
              return new Promise(() => undefined);
            };
          }
          return typeof v === 'function' ? v.bind(kvTarget) : v;
        },
      });
      return { kv, blobs: unit.blobs };
    };
  },
});
const streams = await StreamStore.open({ ...createTestContext(), storage }, TENANT);
await streams.createTopic(DOOMED, { partitions: 2 });
await streams.createTopic(KEPT);
const value = new TextEncoder().encode('x');
await streams.produce(DOOMED, [{ value, partition: 0 }, { value, partition: 1 }]);
await streams.produce(KEPT, [{ value }]);
await streams.commitOffsets('only-doomed', DOOMED, [{ partition: 0, offset: 1 }, { partition: 1, offset: 1 }]);
await streams.commitOffsets('both', DOOMED, [{ partition: 0, offset: 1 }]);
await streams.commitOffsets('both', KEPT, [{ partition: 0, offset: 1 }]);
holdGroupBatches = true;
await streams.deleteTopic(DOOMED);
process.stderr.write('the delete finished: the groups batch was not held back\n');
