/**
 * quartzdb/worker: the Worker home. For now it is the core loaded the workerd way; the Durable
 * Object classes, R2/KV adapters and the fetch handler join it in later issues.
 */
export * from './core.js';
