/**
 * quartzdb/core for Cloudflare Workers (workerd): the wasm is imported as a module, because
 * workerd refuses to compile wasm bytes at request time. Wrangler (and Miniflare's module
 * rules) turn the `.wasm` import into a `WebAssembly.Module`, so `init()` only caches it.
 */
import { setDefaultSource } from '../src/core/loader.js';
// The path is relative to the built file, dist/worker/core.js, which is what the package exports.
import quartzWasm from '../../build/quartz.wasm';

setDefaultSource(() => quartzWasm);

export * from '../src/core/index.js';
