// A Worker that loads the built quartzdb/worker entry exactly as wrangler would bundle it
// (the core's .wasm arrives as a CompiledWasm module) and reports what the core computes.
import * as quartz from '../../dist/worker/index.js';

export default {
  async fetch(request) {
    if (new URL(request.url).pathname === '/compile-bytes') {
      // The smallest valid module: workerd refuses to compile any bytes at request time.
      const empty = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
      try {
        await quartz.compile(empty);
        return Response.json({ compiled: true });
      } catch (err) {
        return Response.json({ compiled: false, name: err?.name, code: err?.code, message: err?.message });
      }
    }
    try {
      const module = await quartz.init();
      const wasm = quartz.instantiate();
      const ptr = wasm.alloc(32);
      const bytes = new Uint8Array(wasm.memory.buffer, ptr, 32);
      bytes.fill(9);
      const sum = bytes.reduce((a, b) => a + b, 0);
      wasm.free(ptr);
      const text = new TextEncoder().encode('QuartzDB segments are LZ4 frames. '.repeat(500));
      const packed = quartz.lz4.compressFrame(text);
      const unpacked = quartz.lz4.decompressFrame(packed);
      return Response.json({
        ok: true,
        compiledModule: module instanceof WebAssembly.Module,
        sameModule: (await quartz.init()) === module,
        sum,
        crc32c: quartz.crc32c(new TextEncoder().encode('123456789')),
        lz4Smaller: packed.length < text.length / 10,
        lz4RoundTrip: unpacked.length === text.length && unpacked.every((b, i) => b === text[i]),
      });
    } catch (err) {
      return Response.json({ ok: false, code: err?.code, error: String(err?.stack ?? err) }, { status: 500 });
    }
  },
};
