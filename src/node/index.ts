/**
 * quartzdb (the package root, Node): open a data directory as an engine, plus the core and the
 * Node storage adapters for those who compose their own.
 */
export { openQuartz, nodeCapabilities, type OpenQuartzOptions } from './open-quartz.js';
export { openDiskStorage, DiskStorage, type DiskStorageOptions } from './storage/disk-storage.js';
export { createEngine, Engine, type EngineOptions, type TenantScope, type EngineStats } from '../engine/engine.js';
// The services' own types, so a program can name what it passes and gets back.
export type { KvStore, KvStoreOptions, KvPutOptions, KvPutResult, KvDeleteOptions, KvMeta, KvEntry, KvListOptions, KvListItem, KvListPage } from '../engine/kv/kv-store.js';
export type { StreamStore, StreamStoreOptions, TopicOptions, TopicConfig, TopicDescription, PartitionDescription, ProduceRecord, ProduceResult, ConsumeOptions, ConsumeResult, GroupOffset, OffsetCommit } from '../engine/streams/stream-store.js';
export type { VectorStore, VectorStoreOptions, CreateCollectionRequest } from '../engine/vectors/vector-store.js';
export type { CollectionInfo, UpsertVector, VectorRecord, QueryRequest, QueryMatch, ListOptions as VectorListOptions, ListPage as VectorListPage } from '../engine/vectors/collection.js';
export type { Filter, FieldCondition, FilterScalar, Metadata } from '../engine/vectors/filter.js';
export type { Metric } from '../engine/vectors/validate.js';
export type { TenantRegistry, Tenant, CreateTenantInput } from '../engine/tenants/tenant-registry.js';
export type { Clock, Scheduler } from '../ports/clock.js';
export type { StorageProvider } from '../ports/storage.js';
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
