/**
 * Loads wasm-pack / wasm-bindgen `--target bundler` packages without Node flags or bundler
 * plugins. Such a package's `.wasm` imports its own `<name>_bg.js` glue, and the glue calls
 * back into the wasm; a bundler wires the two together, here we do it by hand: the glue's
 * namespace is the import object, then `__wbg_set_wasm(exports)` and `__wbindgen_start()`.
 * The function runtime reuses `checkImports` for user modules. Platform-free.
 */
import { QuartzError, ErrorCode } from './errors.js';
import { compile, type WasmSource } from './loader.js';

/** A `_bg.js` glue module namespace: its exports are the functions the wasm imports. */
export type WasmPackGlue = Readonly<Record<string, unknown>>;

export interface WasmPackInput {
  /** The package's `_bg.wasm`: bytes, a compiled Module, a URL or a Response. */
  wasm: WasmSource;
  /** The package's `_bg.js` namespace (`import * as glue from 'pkg/pkg_bg.js'`). */
  glue: WasmPackGlue;
  /** The module name the wasm imports the glue under; found from the wasm when omitted. */
  glueSpecifier?: string;
  /** Further import modules the wasm needs (rare: snippets, WASI). */
  imports?: WebAssembly.Imports;
}

export interface WasmPackInstance<G extends WasmPackGlue = WasmPackGlue> {
  /** The glue, now bound to this instance: call the package's functions on it. */
  readonly glue: G;
  readonly instance: WebAssembly.Instance;
  readonly module: WebAssembly.Module;
}

/**
 * Instantiates a wasm-pack `--target bundler` package. The glue namespace is a singleton, so
 * a second instantiation with the same glue re-points it at the new instance.
 * @example
 * import * as glue from 'my-pkg/my_pkg_bg.js';
 * const { glue: pkg } = await instantiateWasmPack({ wasm: await fetch(wasmUrl), glue });
 * pkg.greet('edge');
 */
export async function instantiateWasmPack<G extends WasmPackGlue = WasmPackGlue>(input: WasmPackInput): Promise<WasmPackInstance<G>> {
  if (input === null || typeof input !== 'object' || input.glue === null || typeof input.glue !== 'object') {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, 'instantiateWasmPack needs { wasm, glue } where glue is the package\'s _bg.js module namespace');
  }
  const module = await compile(input.wasm);
  const specifier = input.glueSpecifier ?? findGlueSpecifier(module, input.imports);
  const imports: WebAssembly.Imports = { ...input.imports };
  if (specifier !== undefined) imports[specifier] = input.glue as WebAssembly.ModuleImports;
  checkImports(module, imports);

  const setWasm = input.glue.__wbg_set_wasm;
  if (typeof setWasm !== 'function') {
    throw new QuartzError(
      ErrorCode.UNSUPPORTED_FORMAT,
      'the wasm-pack glue has no __wbg_set_wasm export: it is an older glue that imports its .wasm itself; load it with wasmPackGlueFromSource(source)',
    );
  }
  let instance: WebAssembly.Instance;
  try {
    instance = await WebAssembly.instantiate(module, imports);
  } catch (err) {
    throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, `instantiating the wasm-pack module failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  setWasm(instance.exports);
  const start = instance.exports.__wbindgen_start;
  if (typeof start === 'function') start();
  return { glue: input.glue as G, instance, module };
}

/**
 * Throws `cannot resolve import "m" "n"` (WASM_LOAD_FAILED) for the first import of `module`
 * that `imports` does not supply with the right kind, before any instantiation is tried.
 * @example
 * checkImports(module, { env: { log: () => {} } });
 */
export function checkImports(module: WebAssembly.Module, imports: WebAssembly.Imports): void {
  for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
    const value = (imports[from] as Record<string, unknown> | undefined)?.[name];
    if (!importFits(kind, value)) {
      const why = value === undefined ? '' : ` (a ${kind} is needed, got ${typeof value})`;
      throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, `cannot resolve import "${from}" "${name}"${why}`, { details: { module: from, name, kind } });
    }
  }
}

function importFits(kind: WebAssembly.ImportExportKind | string, value: unknown): boolean {
  switch (kind) {
    case 'function':
      return typeof value === 'function';
    case 'memory':
      return value instanceof WebAssembly.Memory;
    case 'table':
      return value instanceof WebAssembly.Table;
    case 'global':
      return typeof value === 'number' || typeof value === 'bigint' || value instanceof WebAssembly.Global;
    default:
      return value !== undefined;
  }
}

/** wasm-bindgen names the glue module `./<name>_bg.js`; other import modules are the caller's. */
function findGlueSpecifier(module: WebAssembly.Module, extra: WebAssembly.Imports | undefined): string | undefined {
  const names = new Set(WebAssembly.Module.imports(module).map((i) => i.module).filter((m) => !(extra && m in extra)));
  const glue = [...names].filter((m) => m.endsWith('_bg.js'));
  if (glue.length > 1) {
    throw new QuartzError(ErrorCode.INVALID_ARGUMENT, `the wasm imports several glue modules (${glue.join(', ')}); pass glueSpecifier`);
  }
  return glue[0];
}

const wasmImportLine = /^\s*import\s*\*\s*as\s+wasm\s+from\s*(['"])[^'"]+\.wasm\1\s*;?[ \t]*$/m;
const otherImport = /^\s*import\s[^;]*?from\s*(['"])([^'"]+)\1|^\s*import\s*(['"])([^'"]+)\3/m;

/**
 * Makes a glue namespace from the source text of a `_bg.js`. Older wasm-bindgen glue starts
 * with `import * as wasm from './x_bg.wasm'`, which no runtime can import without a bundler
 * plugin or Node flag; that line becomes the settable binding newer wasm-bindgen emits
 * (`let wasm; export function __wbg_set_wasm(v) { wasm = v; }`) and the result is imported
 * from a `data:` URL. Needs a runtime that imports `data:` modules (Node, browsers; not
 * workerd, which forbids code generation: bundle the glue there).
 * @example
 * const glue = await wasmPackGlueFromSource(await (await fetch(glueUrl)).text());
 * const { glue: lz4 } = await instantiateWasmPack({ wasm: await fetch(wasmUrl), glue });
 */
export async function wasmPackGlueFromSource(source: string): Promise<WasmPackGlue> {
  if (typeof source !== 'string') throw new QuartzError(ErrorCode.INVALID_ARGUMENT, 'wasmPackGlueFromSource needs the _bg.js source text');
  let text = source;
  if (wasmImportLine.test(text)) {
    text = text.replace(wasmImportLine, 'let wasm;\nexport function __wbg_set_wasm(val) { wasm = val; }');
  } else if (!/export\s+function\s+__wbg_set_wasm\b/.test(text)) {
    throw new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, 'this does not look like wasm-bindgen bundler glue: no `import * as wasm from "…wasm"` line and no __wbg_set_wasm export');
  }
  const leftover = otherImport.exec(text);
  if (leftover) {
    const specifier = leftover[2] ?? leftover[4];
    throw new QuartzError(ErrorCode.UNSUPPORTED_FORMAT, `the glue imports '${specifier}', which cannot be resolved from source text; import the glue module itself instead`);
  }
  const url = `data:text/javascript;charset=utf-8,${encodeURIComponent(text)}`;
  try {
    return (await import(/* @vite-ignore */ url)) as WasmPackGlue;
  } catch (err) {
    throw new QuartzError(ErrorCode.WASM_LOAD_FAILED, `could not import the glue source: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
}
