/**
 * The BatchEncoder port: where a home seals produce batches off the engine's thread. The engine
 * frames and checks the records itself (`frameRun`, so offsets go only to valid records and in
 * arrival order) and hands the framed run here to be compressed, headed and CRC'd (the core's
 * `sealRun`). Without an encoder (memory adapter, workerd, the browser) the engine seals inline.
 */
import type { FramedRun, SealRunOptions } from '../core/segment.js';

export interface BatchEncoder {
  /** Framed runs of fewer record bytes than this are sealed inline: the hop would cost more than it saves. */
  readonly minBytes: number;
  /**
   * Seals `framed` as `sealRun(framed, options)` does and resolves with the run's bytes, written
   * over the buffer of `framed.sections` when it has room (the caller leaves `BATCH_HEADER_SIZE`
   * bytes per batch after them), else in a fresh one; the caller owns them. Takes that buffer
   * over meanwhile (it may be transferred to another thread). Answers `undefined` when it
   * declines the run: the caller then seals it inline. Rejects when it failed (a thread died, it
   * was closed): the caller's write fails then, since the sections went with it.
   */
  sealRun(framed: FramedRun, options: Omit<SealRunOptions, 'output'>): Promise<Uint8Array> | undefined;
  /** Stops the encoder's threads; runs still in flight reject. */
  close(): Promise<void>;
}
