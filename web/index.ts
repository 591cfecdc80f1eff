/**
 * quartzdb/browser: the browser home. For now it is the core loaded the browser way; the
 * IndexedDB adapters, the Web Worker host and the client API join it in later issues.
 */
export * from './core.js';
