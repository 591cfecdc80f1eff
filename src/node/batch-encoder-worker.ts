/**
 * One thread of the Node home's batch encoder (batch-encoder-pool.ts): loads the WASM core from
 * the module it is given and seals the framed produce runs posted to it (the core's `sealRun`),
 * answering each with the run's bytes, transferred rather than copied.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { init } from '../core/loader.js';
import { sealRun, type SegmentCodec } from '../core/segment.js';

/** What the pool posts: a framed run (`FramedRun`'s fields) and its offsets and codec. */
export interface SealRequest {
  id: number;
  sections: Uint8Array;
  layout: number[];
  baseOffset: number;
  codec: SegmentCodec;
}

/** The answer to a `SealRequest`: the run's bytes, or why sealing failed. */
export type SealReply = { id: number; bytes: Uint8Array } | { id: number; error: string };

const port = parentPort!;
await init((workerData as { module: WebAssembly.Module }).module);
port.on('message', (request: SealRequest) => {
  let reply: SealReply;
  try {
    const { sections } = request;
    // Sealed over the sections' own buffer when it has room (sealRun reads them all first), so a run costs no allocation here.
    const room = sections.byteOffset === 0 ? sections.buffer.byteLength : 0;
    const output = (n: number) => (n <= room ? new Uint8Array(sections.buffer, 0, n) : new Uint8Array(n));
    const { bytes } = sealRun({ sections, layout: request.layout }, { baseOffset: request.baseOffset, codec: request.codec, output });
    reply = { id: request.id, bytes };
  } catch (err) {
    port.postMessage({ id: request.id, error: err instanceof Error ? err.message : String(err) } satisfies SealReply);
    return;
  }
  // The bytes are the whole start of their buffer (the sections' or a fresh one), so it can move.
  port.postMessage(reply, [reply.bytes.buffer as ArrayBuffer]);
});
