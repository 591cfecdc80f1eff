// A Worker that loads the built quartzdb/worker entry exactly as wrangler would bundle it
// (the core's .wasm arrives as a CompiledWasm module) and reports what the core computes.
import * as quartz from '../../dist/worker/index.js';

export default {
  async fetch() {
    try {
      const module = await quartz.init();
      const wasm = quartz.instantiate();
      const ptr = wasm.alloc(32);
      const bytes = new Uint8Array(wasm.memory.buffer, ptr, 32);
      bytes.fill(9);
      const sum = bytes.reduce((a, b) => a + b, 0);
      wasm.free(ptr);
      return Response.json({
        ok: true,
        compiledModule: module instanceof WebAssembly.Module,
        sameModule: (await quartz.init()) === module,
        sum,
      });
    } catch (err) {
      return Response.json({ ok: false, code: err?.code, error: String(err?.stack ?? err) }, { status: 500 });
    }
  },
};
