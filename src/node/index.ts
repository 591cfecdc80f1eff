/**
 * quartzdb (the package root, Node): open a data directory as an engine, plus the core and the
 * Node storage adapters for those who compose their own.
 */
export { openQuartz, nodeCapabilities, type OpenQuartzOptions } from './open-quartz.js';
export { openDiskStorage, DiskStorage, type DiskStorageOptions } from './storage/disk-storage.js';
export { createEngine, Engine, type EngineOptions, type TenantScope } from '../engine/engine.js';
export { DATA_VERSION } from '../engine/data-version.js';
export type { Capabilities, EngineContext, UsageMetric, UsageRecorder } from '../engine/context.js';
export { createMemoryStorage } from '../ports/memory-storage.js';
export { ManualClock } from '../ports/manual-clock.js';
export { systemClock, timerScheduler } from '../ports/system-clock.js';
export * from './core.js';
export { startServer, SHUTDOWN_BOUND_MS, type RunningServer } from './server/server.js';
export { resolveServeSettings, type ServeSettings, type ServeFlags } from './server/settings.js';
export { createBackup } from './backup/snapshot.js';
export { restoreBackup, type RestoreResult } from './backup/restore.js';
