/**
 * Loads the QuartzDB WASM core. The contract mirrors wasm-pack's `--target web` `init()`:
 * the caller passes bytes, a `WebAssembly.Module`, a URL or a `Response` (or a promise of
 * one); the module is compiled once and cached, and instances are made from it cheaply.
 * With no argument, `init()` uses the source the home registered with `setDefaultSource`
 * (Node reads the built file, workerd imports the module, the browser fetches a URL).
 * This file is platform-free: it only uses WebAssembly, fetch and Response.
 */
import { QuartzError, ErrorCode } from './errors.js';

/** Anything `init()` and `compile()` accept directly. */
export type WasmSource = BufferSource | WebAssembly.Module | URL | string | Response;

export type InitInput = WasmSource | PromiseLike<WasmSource>;

/** How a home turns a URL into a `Response`; the default is the global `fetch`. */
export type UrlFetcher = (url: URL | string) => Promise<Response>;

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
let urlFetcher: UrlFetcher | undefined;

/**
 * A home calls this once at import time so that `init()` works with no argument.
 * @example
 * setDefaultSource(() => new URL('../../build/quartz.wasm', import.meta.url));
 */
export function setDefaultSource(source: () => InitInput | Promise<InitInput>): void {
  defaultSource = source;
}

/**
 * A home whose `fetch` cannot read some URLs (Node's has no `file:`) registers its own reader.
 * @example
 * setUrlFetcher(async (url) => new Response(await readFile(url)));
 */
export function setUrlFetcher(fetcher: UrlFetcher): void {
  urlFetcher = fetcher;
}

/**
 * Compiles (once) and caches the core module. Safe to call many times and concurrently:
 * callers that arrive while a compile is in flight share it. A failed load is not cached,
 * so a later call may retry with another input.
 * @example
 * import { init, lz4 } from 'quartzdb/core';
 * await init();
 * const packed = lz4.compressFrame(bytes);
 */
export async function init(input?: InitInput): Promise<WebAssembly.Module> {
  if (cachedModule) return cachedModule;
  if (!pending) {
    const attempt = (async () => {
      let source: WasmSource | undefined;
      try {
        source = await (input ?? (defaultSource ? defaultSource() : undefined));
      } catch (err) {
        throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, `could not get the wasm: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      }
      if (source === undefined) {
        throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, 'init() needs the wasm: no default source is registered in this environment (import quartzdb/core through its package entry, or pass bytes, a Module, a URL or a Response)');
      }
      return compile(source);
    })();
    pending = attempt;
    attempt.then(
      (module) => { cachedModule = module; },
      () => { if (pending === attempt) pending = undefined; },
    );
  }
  return pending;
}

/**
 * Compiles any accepted input to a module without touching the cache (the function runtime
 * and `instantiateWasmPack` reuse it). Every failure is a `QuartzError` WASM_LOAD_FAILED.
 * @example
 * const module = await compile(await fetch('/plugin.wasm'));
 */
export async function compile(source: WasmSource): Promise<WebAssembly.Module> {
  try {
    return await compileUnchecked(source);
  } catch (err) {
    if (err instanceof QuartzError) throw err;
    throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, `could not compile the wasm from ${describe(source)}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
}

async function compileUnchecked(source: WasmSource): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return source;
  if (typeof source === 'string' || source instanceof URL) {
    const response = await (urlFetcher ?? fetch)(source);
    if (!(typeof Response !== 'undefined' && response instanceof Response)) {
      throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, `fetching ${String(source)} did not give a Response`);
    }
    return compileResponse(response, String(source));
  }
  if (typeof Response !== 'undefined' && source instanceof Response) return compileResponse(source, source.url || 'a Response');
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return WebAssembly.compile(source);
  throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, `the wasm source must be bytes, a WebAssembly.Module, a URL or a Response; got ${describe(source)}`);
}

async function compileResponse(response: Response, name: string): Promise<WebAssembly.Module> {
  if (!response.ok) throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, `fetching the wasm from ${name} failed with HTTP ${response.status}`);
  const type = response.headers.get('content-type') ?? '';
  // compileStreaming insists on the application/wasm type; anything else is read whole first.
  if (type.startsWith('application/wasm') && typeof WebAssembly.compileStreaming === 'function') {
    return WebAssembly.compileStreaming(response);
  }
  return WebAssembly.compile(await response.arrayBuffer());
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value instanceof URL) return value.href;
  if (typeof value === 'string') return `'${value}'`;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return `${value.byteLength} bytes`;
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'an object';
  return typeof value;
}

/** True once `init()` has finished. */
export function isInitialized(): boolean {
  return cachedModule !== undefined;
}

/** The cached core module; throws NOT_INITIALIZED before `init()` has finished. */
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

/** Reads an AssemblyScript string (UTF-16, byte length in the 4 bytes before `ptr`). */
function readAsString(memory: WebAssembly.Memory, ptr: number): string {
  const size = memory.buffer.byteLength;
  if (ptr < 4 || ptr > size) return '?';
  const byteLength = new DataView(memory.buffer).getUint32(ptr - 4, true);
  if (ptr + byteLength > size) return '?';
  return new TextDecoder('utf-16le').decode(new Uint8Array(memory.buffer, ptr, byteLength & ~1));
}

/**
 * A fresh instance with its own linear memory, made synchronously from the cached module.
 * Each vector index gets one, so dropping it frees its memory.
 * @example
 * await init();
 * const wasm = instantiate();
 * const ptr = wasm.alloc(64);
 * wasm.free(ptr);
 */
export function instantiate<T extends QuartzExports = QuartzExports>(): T {
  let memory: WebAssembly.Memory | undefined;
  const instance = new WebAssembly.Instance(coreModule(), coreImports(() => memory!));
  const exports = instance.exports as unknown as T;
  memory = exports.memory;
  return exports;
}

let codecInstance: QuartzExports | undefined;

/**
 * The shared instance the stateless codecs (LZ4, hashes, segments) run in.
 * @example
 * await init();
 * const wasm = codecs();
 */
export function codecs<T extends QuartzExports = QuartzExports>(): T {
  codecInstance ??= instantiate();
  return codecInstance as T;
}
