import { readFile } from 'node:fs/promises';
import { beforeEach, describe, expect, it, vi } from 'vitest';

const wasmUrl = new URL('../../build/quartz.wasm', import.meta.url);
const wasmBytes = new Uint8Array(await readFile(wasmUrl));

type Loader = typeof import('./loader.js');
type NodeCore = typeof import('../node/core.js');

// Each test gets fresh module state (no cached Module), so every input kind is really compiled.
async function freshLoader(): Promise<Loader> {
  vi.resetModules();
  return import('./loader.js');
}
async function freshNodeCore(): Promise<NodeCore> {
  vi.resetModules();
  return import('../node/core.js');
}

function wasmResponse(bytes: Uint8Array<ArrayBuffer>, type = 'application/wasm'): Response {
  return new Response(bytes, { headers: { 'content-type': type } });
}

/** Proves the module is the real core: a fresh instance allocates, writes and frees. */
function exercise(loader: Loader): void {
  const wasm = loader.instantiate();
  const ptr = wasm.alloc(64);
  expect(ptr).toBeGreaterThan(0);
  new Uint8Array(wasm.memory.buffer, ptr, 64).fill(7);
  expect(new Uint8Array(wasm.memory.buffer, ptr, 64).every((b) => b === 7)).toBe(true);
  wasm.free(ptr);
}

async function rejection(promise: Promise<unknown>): Promise<{ name: string; code: string; message: string }> {
  try {
    await promise;
  } catch (err) {
    return err as { name: string; code: string; message: string };
  }
  throw new Error('expected a rejection');
}

describe('init() input kinds', () => {
  let loader: Loader;
  beforeEach(async () => {
    loader = await freshLoader();
  });

  it('accepts bytes (Uint8Array and ArrayBuffer)', async () => {
    expect(loader.isInitialized()).toBe(false);
    await loader.init(wasmBytes);
    expect(loader.isInitialized()).toBe(true);
    exercise(loader);
    const again = await freshLoader();
    await again.init(wasmBytes.slice().buffer);
    exercise(again);
  });

  it('accepts a compiled WebAssembly.Module and caches that very module', async () => {
    const module = new WebAssembly.Module(wasmBytes);
    expect(await loader.init(module)).toBe(module);
    exercise(loader);
  });

  it('accepts a Response, streaming or not', async () => {
    await loader.init(wasmResponse(wasmBytes));
    exercise(loader);
    const plain = await freshLoader();
    await plain.init(wasmResponse(wasmBytes, 'application/octet-stream'));
    exercise(plain);
  });

  it('accepts a promise of any input', async () => {
    await loader.init(Promise.resolve(wasmResponse(wasmBytes)));
    exercise(loader);
    const bytes = await freshLoader();
    await bytes.init(Promise.resolve(wasmBytes));
    exercise(bytes);
  });

  it('fetches an http URL through fetch', async () => {
    const fetchSpy = vi.fn(async () => wasmResponse(wasmBytes));
    vi.stubGlobal('fetch', fetchSpy);
    try {
      await loader.init('http://127.0.0.1:9/quartz.wasm');
      expect(fetchSpy).toHaveBeenCalledWith('http://127.0.0.1:9/quartz.wasm');
      exercise(loader);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('returns the cached module to every later call, ignoring their input', async () => {
    const first = await loader.init(wasmBytes);
    expect(await loader.init(new Uint8Array([1, 2, 3]))).toBe(first);
    expect(await loader.init()).toBe(first);
  });
});

describe('init() concurrency', () => {
  it('two concurrent inits compile once and get the same module', async () => {
    const loader = await freshLoader();
    const compileSpy = vi.spyOn(WebAssembly, 'compile');
    try {
      const [a, b] = await Promise.all([loader.init(wasmBytes), loader.init(wasmBytes)]);
      expect(a).toBe(b);
      expect(compileSpy).toHaveBeenCalledTimes(1);
    } finally {
      compileSpy.mockRestore();
    }
  });

  it('a failed load is not cached: the next call can succeed', async () => {
    const loader = await freshLoader();
    await expect(loader.init(new Uint8Array([0, 1, 2, 3]))).rejects.toMatchObject({ code: 'wasm_load_failed' });
    expect(loader.isInitialized()).toBe(false);
    await loader.init(wasmBytes);
    exercise(loader);
  });
});

describe('init() bad input', () => {
  it('garbage bytes → QuartzError WASM_LOAD_FAILED', async () => {
    const loader = await freshLoader();
    const err = await rejection(loader.init(new TextEncoder().encode('definitely not wasm')));
    expect(err.name).toBe('QuartzError');
    expect(err.code).toBe('wasm_load_failed');
    expect(err.message).toMatch(/could not compile the wasm from 19 bytes/);
  });

  it('a 404 Response → WASM_LOAD_FAILED naming the status', async () => {
    const loader = await freshLoader();
    const err = await rejection(loader.init(new Response('no such file', { status: 404 })));
    expect(err.code).toBe('wasm_load_failed');
    expect(err.message).toMatch(/HTTP 404/);
  });

  it('a value of the wrong kind → WASM_LOAD_FAILED naming what it got', async () => {
    const loader = await freshLoader();
    const err = await rejection(loader.init(42 as unknown as Uint8Array));
    expect(err.code).toBe('wasm_load_failed');
    expect(err.message).toMatch(/must be bytes, a WebAssembly.Module, a URL or a Response; got number/);
  });

  it('a rejected promise → WASM_LOAD_FAILED', async () => {
    const loader = await freshLoader();
    const err = await rejection(loader.init(Promise.reject(new Error('network down'))));
    expect(err.code).toBe('wasm_load_failed');
    expect(err.message).toMatch(/network down/);
  });

  it('no argument and no registered home → WASM_LOAD_FAILED that says how to fix it', async () => {
    const loader = await freshLoader();
    const err = await rejection(loader.init());
    expect(err.code).toBe('wasm_load_failed');
    expect(err.message).toMatch(/no default source is registered/);
  });

  it('instantiate() before init() → NOT_INITIALIZED', async () => {
    const loader = await freshLoader();
    expect(() => loader.instantiate()).toThrow(expect.objectContaining({ code: 'not_initialized' }));
  });
});

describe('the Node home', () => {
  it('init() with no argument reads the built wasm', async () => {
    const core = await freshNodeCore();
    await core.init();
    const wasm = core.instantiate();
    const ptr = wasm.alloc(16);
    expect(ptr).toBeGreaterThan(0);
    wasm.free(ptr);
  });

  it('init() with no argument, then the real codecs run: CRC32C and an LZ4 frame round trip', async () => {
    const core = await freshNodeCore();
    await core.init();
    expect(core.crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    const text = new TextEncoder().encode('QuartzDB segments are LZ4 frames. '.repeat(500));
    const packed = core.lz4.compressFrame(text);
    expect(packed.length).toBeLessThan(text.length / 10);
    expect(core.lz4.decompressFrame(packed)).toEqual(text);
  });

  it('init(file URL) → Response: reads the file although Node fetch has no file: support', async () => {
    const core = await freshNodeCore();
    await core.init(wasmUrl);
    expect(core.isInitialized()).toBe(true);
    expect(core.codecs()).toBe(core.codecs());
  });

  it('init(missing file URL) → WASM_LOAD_FAILED naming the file', async () => {
    const core = await freshNodeCore();
    const err = await rejection(core.init(new URL('./no-such.wasm', wasmUrl)));
    expect(err.code).toBe('wasm_load_failed');
    expect(err.message).toMatch(/no-such\.wasm/);
  });

  it('instances are independent: each has its own memory', async () => {
    const core = await freshNodeCore();
    await core.init();
    const a = core.instantiate();
    const b = core.instantiate();
    expect(a.memory).not.toBe(b.memory);
    const pa = a.alloc(8);
    new Uint8Array(a.memory.buffer, pa, 8).fill(1);
    const pb = b.alloc(8);
    expect(new Uint8Array(b.memory.buffer, pb, 8).some((x) => x === 1)).toBe(false);
  });
});
