import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDiskStorage } from '../../src/node/storage/disk-storage.js';
import { storageConformance } from './storage.suite.js';

storageConformance('node disk (lmdb + files)', {
  persistent: true,
  place: async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-storage-'));
    return { open: () => openDiskStorage({ dir }), destroy: () => rm(dir, { recursive: true, force: true }) };
  },
});
