/**
 * Loads the QuartzDB WASM core. The contract mirrors wasm-pack's `--target web` `init()`:
 * the caller passes bytes, a `WebAssembly.Module`, a URL or a `Response` (or a promise of
 * one); the module is compiled once and cached, and instances are made from it cheaply.
 * With no argument, `init()` uses the source the home registered with `setDefaultSource`
 * (Node reads the built file, workerd imports the module, the browser fetches a URL).
 * This file is platform-free: it only uses WebAssembly, fetch and Response.
 */
import { QuartzError, ErrorCode } from './errors.js';

export type InitInput =
  | BufferSource
  | WebAssembly.Module
  | URL
  | string
  | Response
  | PromiseLike<BufferSource | WebAssembly.Module | Response | URL | string>;

/** The exports every quartz.wasm instance has; feature files add their own. */
export interface QuartzExports {
  readonly memory: WebAssembly.Memory;
  alloc(size: number): number;
  free(ptr: number): void;
  readonly [name: string]: unknown;
}

let cachedModule: WebAssembly.Module | undefined;
let pending: Promise<WebAssembly.Module> | undefined;
let defaultSource: (() => InitInput | Promise<InitInput>) | undefined;

/** A home calls this once at import time so that `init()` works with no argument. */
export function setDefaultSource(source: () => InitInput | Promise<InitInput>): void {
  defaultSource = source;
}

/**
 * Compiles (once) and caches the core module. Safe to call many times and concurrently.
 * @example
 * import { init, lz4 } from 'quartzdb/core';
 * await init();
 * const packed = lz4.compressFrame(bytes);
 */
export async function init(input?: InitInput): Promise<WebAssembly.Module> {
  if (cachedModule) return cachedModule;
  if (!pending) {
    pending = (async () => {
      const source = input ?? (defaultSource ? await defaultSource() : undefined);
      if (source === undefined) {
        throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, 'init() needs the wasm: no default source is registered in this environment');
      }
      return compile(await source);
    })();
  }
  try {
    cachedModule = await pending;
    return cachedModule;
  } catch (err) {
    pending = undefined;
    throw err instanceof QuartzError ? err : new QuartzError(ErrorCode.WASM_LOAD_FAILED, `could not load the QuartzDB core: ${(err as Error).message}`, { cause: err });
  }
}

/** Compiles any accepted input to a module without touching the cache (the function runtime reuses it). */
export async function compile(source: Exclude<InitInput, PromiseLike<unknown>> | BufferSource | WebAssembly.Module | Response | URL | string): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return source;
  if (typeof source === 'string' || source instanceof URL) {
    return compile(await fetch(source));
  }
  if (typeof Response !== 'undefined' && source instanceof Response) {
    if (!source.ok) throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, `fetching the wasm failed with HTTP ${source.status}`);
    const type = source.headers.get('content-type') ?? '';
    if (type.startsWith('application/wasm') && typeof WebAssembly.compileStreaming === 'function') {
      return WebAssembly.compileStreaming(source);
    }
    return WebAssembly.compile(await source.arrayBuffer());
  }
  return WebAssembly.compile(source as BufferSource);
}

/** Sets the module directly (e.g. a home that already has a compiled `WebAssembly.Module`). */
export function isInitialized(): boolean {
  return cachedModule !== undefined;
}

export function coreModule(): WebAssembly.Module {
  if (!cachedModule) throw new QuartzError(ErrorCode.NOT_INITIALIZED, 'the QuartzDB core is not initialised: await init() first');
  return cachedModule;
}

/** Imports the AssemblyScript runtime needs: `env.abort` is only reached on a bug or out-of-memory. */
function coreImports(getMemory: () => WebAssembly.Memory): WebAssembly.Imports {
  return {
    env: {
      abort(msgPtr: number, filePtr: number, line: number, column: number) {
        const read = (ptr: number) => readAsString(getMemory(), ptr);
        throw new QuartzError(ErrorCode.INTERNAL, `wasm abort: ${read(msgPtr)} at ${read(filePtr)}:${line}:${column}`);
      },
    },
  };
}

function readAsString(memory: WebAssembly.Memory, ptr: number): string {
  if (!ptr) return '';
  const view = new DataView(memory.buffer);
  const byteLength = view.getUint32(ptr - 4, true);
  return new TextDecoder('utf-16le').decode(new Uint8Array(memory.buffer, ptr, byteLength));
}

/**
 * A fresh instance with its own linear memory, made synchronously from the cached module.
 * Each vector index gets one, so dropping it frees its memory.
 */
export function instantiate<T extends QuartzExports = QuartzExports>(): T {
  let memory: WebAssembly.Memory | undefined;
  const instance = new WebAssembly.Instance(coreModule(), coreImports(() => memory!));
  const exports = instance.exports as unknown as T;
  memory = exports.memory;
  return exports;
}

let codecInstance: QuartzExports | undefined;

/** The shared instance the stateless codecs (LZ4, hashes, segments) run in. */
export function codecs<T extends QuartzExports = QuartzExports>(): T {
  codecInstance ??= instantiate();
  return codecInstance as T;
}
