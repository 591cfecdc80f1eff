import { createMemoryStorage } from '../../src/ports/memory-storage.js';
import { storageConformance } from './storage.suite.js';

storageConformance('memory', {
  persistent: false,
  place: () => {
    const storage = createMemoryStorage();
    return { open: () => storage, destroy: () => undefined };
  },
});
