import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkImports, instantiateWasmPack, wasmPackGlueFromSource, type WasmPackGlue } from './wasm-pack.js';

// lz4-wasm 0.9.2 is a real wasm-pack --target bundler package from npm, with the older glue
// that imports its own .wasm (Node cannot import it without --experimental-wasm-modules).
const lz4Dir = dirname(createRequire(import.meta.url).resolve('lz4-wasm/package.json'));
const lz4Wasm = new Uint8Array(await readFile(join(lz4Dir, 'lz4_wasm_bg.wasm')));
const lz4GlueSource = await readFile(join(lz4Dir, 'lz4_wasm_bg.js'), 'utf8');

interface Lz4Glue extends WasmPackGlue {
  compress(input: Uint8Array): Uint8Array;
  decompress(input: Uint8Array): Uint8Array;
}

async function error(promise: Promise<unknown> | (() => unknown)): Promise<{ name: string; code: string; message: string; details?: unknown }> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    return err as { name: string; code: string; message: string };
  }
  throw new Error('expected an error');
}

/**
 * A tiny hand-assembled wasm-bindgen-shaped module: it imports `"./tiny_bg.js" "__wbg_hit"`
 * and exports `__wbindgen_start`, which calls that import once.
 */
function tinyModuleBytes(): Uint8Array<ArrayBuffer> {
  const str = (s: string) => [s.length, ...new TextEncoder().encode(s)];
  const section = (id: number, body: number[]) => [id, body.length, ...body];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 0, 0]), // one type: () -> ()
    ...section(2, [1, ...str('./tiny_bg.js'), ...str('__wbg_hit'), 0x00, 0]), // import func type 0
    ...section(3, [1, 0]), // one function of type 0
    ...section(7, [1, ...str('__wbindgen_start'), 0x00, 1]), // export func 1
    ...section(10, [1, 4, 0, 0x10, 0, 0x0b]), // body: call 0; end
  ]);
}

describe('instantiateWasmPack on lz4-wasm from npm', () => {
  it('compresses and decompresses through the package', async () => {
    const glue = await wasmPackGlueFromSource(lz4GlueSource);
    const { glue: lz4 } = await instantiateWasmPack<Lz4Glue>({ wasm: lz4Wasm, glue });
    const text = new TextEncoder().encode('QuartzDB streams QuartzDB streams QuartzDB streams '.repeat(200));
    const packed = lz4.compress(text);
    expect(packed.length).toBeLessThan(text.length / 10);
    expect(lz4.decompress(packed)).toEqual(text);

    const random = crypto.getRandomValues(new Uint8Array(50_000));
    expect(lz4.decompress(lz4.compress(random))).toEqual(random);
    expect(lz4.decompress(lz4.compress(new Uint8Array(0)))).toEqual(new Uint8Array(0));
  });

  it('accepts a compiled Module and a Response as the wasm', async () => {
    const glue = await wasmPackGlueFromSource(lz4GlueSource);
    const fromModule = await instantiateWasmPack<Lz4Glue>({ wasm: new WebAssembly.Module(lz4Wasm), glue });
    const bytes = new TextEncoder().encode('abcabcabcabcabcabc');
    expect(fromModule.glue.decompress(fromModule.glue.compress(bytes))).toEqual(bytes);
    const fromResponse = await instantiateWasmPack<Lz4Glue>({ wasm: new Response(lz4Wasm, { headers: { 'content-type': 'application/wasm' } }), glue });
    expect(fromResponse.glue.decompress(fromResponse.glue.compress(bytes))).toEqual(bytes);
  });

  it('surfaces the package\'s own error for corrupt input', async () => {
    const glue = await wasmPackGlueFromSource(lz4GlueSource);
    const { glue: lz4 } = await instantiateWasmPack<Lz4Glue>({ wasm: lz4Wasm, glue });
    // lz4_flex's size-prepended block: claims 1000 bytes, then a token promising more than is there.
    expect(() => lz4.decompress(new Uint8Array([0xe8, 0x03, 0, 0, 0xf0, 0xff]))).toThrow();
  });

  it('names the exact missing import before instantiating', async () => {
    const glue = await wasmPackGlueFromSource(lz4GlueSource);
    const partial = { __wbg_set_wasm: glue.__wbg_set_wasm };
    const err = await error(instantiateWasmPack({ wasm: lz4Wasm, glue: partial }));
    expect(err.name).toBe('QuartzError');
    expect(err.code).toBe('wasm_load_failed');
    expect(err.message).toBe('cannot resolve import "./lz4_wasm_bg.js" "__wbindgen_string_new"');
    expect(err.details).toEqual({ module: './lz4_wasm_bg.js', name: '__wbindgen_string_new', kind: 'function' });
  });

  it('an old glue namespace without __wbg_set_wasm → UNSUPPORTED_FORMAT pointing at wasmPackGlueFromSource', async () => {
    const glue = { __wbindgen_string_new: () => 0 };
    const err = await error(instantiateWasmPack({ wasm: lz4Wasm, glue }));
    expect(err.code).toBe('unsupported_format');
    expect(err.message).toMatch(/wasmPackGlueFromSource/);
  });
});

describe('instantiateWasmPack wiring', () => {
  it('supplies the glue as the import object, calls __wbg_set_wasm, then __wbindgen_start', async () => {
    const calls: string[] = [];
    let bound: WebAssembly.Exports | undefined;
    const glue = {
      __wbg_set_wasm(exports: WebAssembly.Exports) {
        bound = exports;
        calls.push('set');
      },
      __wbg_hit() {
        calls.push('hit');
      },
    };
    const { instance } = await instantiateWasmPack({ wasm: tinyModuleBytes(), glue });
    expect(calls).toEqual(['set', 'hit']);
    expect(bound).toBe(instance.exports);
  });

  it('honours an explicit glueSpecifier and extra import modules', async () => {
    const module = new WebAssembly.Module(tinyModuleBytes());
    let hits = 0;
    const glue = { __wbg_set_wasm() {}, __wbg_hit: () => hits++ };
    await instantiateWasmPack({ wasm: module, glue, glueSpecifier: './tiny_bg.js' });
    expect(hits).toBe(1);
    const err = await error(instantiateWasmPack({ wasm: module, glue, glueSpecifier: './other_bg.js' }));
    expect(err.message).toBe('cannot resolve import "./tiny_bg.js" "__wbg_hit"');
    // A module supplied in `imports` is the caller's, not the glue.
    await instantiateWasmPack({ wasm: module, glue: { __wbg_set_wasm() {} }, imports: { './tiny_bg.js': { __wbg_hit: () => hits++ } } });
    expect(hits).toBe(2);
  });

  it('rejects bad arguments with typed errors', async () => {
    expect((await error(instantiateWasmPack(undefined as never))).code).toBe('invalid_argument');
    expect((await error(instantiateWasmPack({ wasm: lz4Wasm, glue: null as never }))).code).toBe('invalid_argument');
    expect((await error(instantiateWasmPack({ wasm: new Uint8Array([9, 9, 9]), glue: {} }))).code).toBe('wasm_load_failed');
  });
});

describe('checkImports', () => {
  const module = new WebAssembly.Module(tinyModuleBytes());

  it('passes when every import is supplied with the right kind', () => {
    expect(() => checkImports(module, { './tiny_bg.js': { __wbg_hit: () => {} } })).not.toThrow();
  });

  it('names an import of the wrong kind and says what it got', async () => {
    const err = await error(() => checkImports(module, { './tiny_bg.js': { __wbg_hit: 3 } }));
    expect(err.message).toBe('cannot resolve import "./tiny_bg.js" "__wbg_hit" (a function is needed, got number)');
  });
});

describe('wasmPackGlueFromSource', () => {
  it('keeps newer glue that already exports __wbg_set_wasm', async () => {
    const glue = await wasmPackGlueFromSource('let wasm;\nexport function __wbg_set_wasm(v) { wasm = v; }\nexport function answer() { return wasm.answer(); }');
    (glue.__wbg_set_wasm as (v: unknown) => void)({ answer: () => 42 });
    expect((glue.answer as () => number)()).toBe(42);
  });

  it('refuses text that is not wasm-bindgen glue', async () => {
    const err = await error(wasmPackGlueFromSource('export const x = 1;'));
    expect(err.code).toBe('unsupported_format');
  });

  it('refuses glue with imports it cannot resolve from text, naming them', async () => {
    const err = await error(wasmPackGlueFromSource("import * as wasm from './a_bg.wasm';\nimport { f } from './snippets/x.js';\nexport const y = f;"));
    expect(err.code).toBe('unsupported_format');
    expect(err.message).toMatch(/'\.\/snippets\/x\.js'/);
  });

  it('reports a syntax error in the glue as WASM_LOAD_FAILED', async () => {
    const err = await error(wasmPackGlueFromSource('export function __wbg_set_wasm(v) { (((('));
    expect(err.code).toBe('wasm_load_failed');
  });

  it('rejects a non-string', async () => {
    expect((await error(wasmPackGlueFromSource(7 as never))).code).toBe('invalid_argument');
  });
});
