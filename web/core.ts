/**
 * quartzdb/core for browsers: `init()` with no argument fetches the wasm next to the package
 * with `compileStreaming`. `new URL(…, import.meta.url)` works with no bundler and with vite,
 * which copies the file into the build; a vite app may also pass its own
 * `import wasmUrl from 'quartzdb/wasm?url'` to `init(wasmUrl)`.
 */
import { setDefaultSource } from '../src/core/loader.js';

// The path is relative to the built file, dist/web/core.js, which is what the package exports.
setDefaultSource(() => new URL('../../build/quartz.wasm', import.meta.url));

export * from '../src/core/index.js';
