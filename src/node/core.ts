/** quartzdb/core for Node: `init()` with no argument reads the built wasm from the package. */
import { readFile } from 'node:fs/promises';
import { setDefaultSource } from '../core/loader.js';

setDefaultSource(() => readFile(new URL('../../../build/quartz.wasm', import.meta.url)));

export * from '../core/index.js';
