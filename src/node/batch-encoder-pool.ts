/**
 * The Node home's BatchEncoder (src/ports/batch-encoder.ts): worker threads that each load the
 * WASM core and seal framed produce runs (LZ4, batch headers, CRC32C), so compression runs on
 * the other cores while the main thread frames records, commits and serves requests. Threads
 * start on first use and do not keep the process alive while idle.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ErrorCode, QuartzError } from '../core/errors.js';
import { coreModule } from '../core/loader.js';
import type { FramedRun, SealRunOptions } from '../core/segment.js';
import type { BatchEncoder } from '../ports/batch-encoder.js';
import type { SealReply, SealRequest } from './batch-encoder-worker.js';

export interface BatchEncoderPoolOptions {
  /**
   * Worker threads, at least 1; default one per available core but one (at most 4): the engine's
   * thread keeps a core for framing, commits and requests. On 2 cores, 2 threads sealed no faster
   * than 1 and took more CPU per record (1 KB records at load 7: 4.2-5.2 against 4.1-4.2 µs).
   */
  threads?: number;
  /** Runs of fewer record bytes are sealed inline; default MIN_BYTES. */
  minBytes?: number;
}

/**
 * A run below this is sealed inline. Sealing on a thread costs the process ~10-20% more CPU than
 * inline (the bytes cross cores three times: framed, sealed, copied out), which pays where LZ4 is
 * most of the engine thread's work: runs of 1 KB records (~880 KB). A produce of 1,000 × 100 B
 * (124 KB), where the request's JSON dominates, went from 1.3-1.6 to 1.7-2.2 ms of server CPU per
 * request over HTTP and its throughput down, so such runs stay inline.
 */
export const MIN_BYTES = 256 * 1024;

interface Pending {
  resolve: (bytes: Uint8Array) => void;
  reject: (err: unknown) => void;
}

/**
 * The worker's entry. Sources run by tsx or vitest (a `.ts` module URL) have no built worker
 * file beside them: the thread then registers tsx's loader before importing the `.ts` one.
 */
function startWorker(module: WebAssembly.Module): Worker {
  const options = { workerData: { module } };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./batch-encoder-worker.js', import.meta.url), options);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const entry = JSON.stringify(new URL('./batch-encoder-worker.ts', import.meta.url).href);
  return new Worker(`import(${tsx}).then((api) => { api.register(); return import(${entry}); });`, { ...options, eval: true });
}

class EncoderThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** Set once the thread exited: it takes no more runs. */
  dead = false;

  constructor(module: WebAssembly.Module) {
    this.worker = startWorker(module);
    this.worker.unref(); // an idle pool never holds the process open; `seal` refs a thread while it has runs
    this.worker.on('message', (reply: SealReply) => this.settle(reply));
    this.worker.on('error', () => {}); // 'exit' follows, which fails what is in flight
    this.worker.on('exit', (code) => {
      this.dead = true;
      const err = new QuartzError(ErrorCode.INTERNAL, `a batch encoder thread exited (code ${code})`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
  }

  get queued(): number {
    return this.pending.size;
  }

  /** Posts the run (throwing, with nothing left waiting for an answer, if node refuses the message). */
  seal(framed: FramedRun, options: Omit<SealRunOptions, 'output'>): Promise<Uint8Array> {
    const id = this.nextId++;
    const request: SealRequest = { id, sections: framed.sections, layout: framed.layout, baseOffset: options.baseOffset, codec: options.codec };
    // The sections are the run's own array (frameRun's), so its buffer moves rather than being copied.
    this.worker.postMessage(request, [framed.sections.buffer as ArrayBuffer]);
    if (this.pending.size === 0) this.worker.ref();
    return new Promise<Uint8Array>((resolve, reject) => void this.pending.set(id, { resolve, reject }));
  }

  private settle(reply: SealReply): void {
    const p = this.pending.get(reply.id);
    if (p === undefined) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker.unref();
    if ('bytes' in reply) p.resolve(reply.bytes);
    else p.reject(new QuartzError(ErrorCode.INTERNAL, `a batch encoder thread failed: ${reply.error}`));
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

/**
 * Worker threads sealing produce runs for the engine (`EngineOptions.batchEncoder`).
 *
 * @example
 * const engine = await createEngine({ storage, capabilities: nodeCapabilities, batchEncoder: new BatchEncoderPool() });
 */
export class BatchEncoderPool implements BatchEncoder {
  readonly minBytes: number;
  /** Threads it may start; lowered to those it has once node refuses to start one. */
  private size: number;
  private threads: EncoderThread[] = [];
  private closed = false;

  constructor(options: BatchEncoderPoolOptions = {}) {
    this.size = Math.max(1, options.threads ?? Math.min(4, availableParallelism() - 1));
    this.minBytes = options.minBytes ?? MIN_BYTES;
  }

  sealRun(framed: FramedRun, options: Omit<SealRunOptions, 'output'>): Promise<Uint8Array> | undefined {
    // A run whose buffer was moved away already (detached: it reads as empty) would reach the
    // thread as a message it cannot read and never be answered: declined, it fails inline.
    if (this.closed || framed.sections.length === 0) return undefined;
    let best: EncoderThread | undefined;
    for (const t of this.threads) if (!t.dead && (best === undefined || t.queued < best.queued)) best = t;
    // Threads start as they are needed: one more while every one has work, up to `size`.
    if ((best === undefined || best.queued > 0) && this.threads.length < this.size) {
      try {
        const started = new EncoderThread(coreModule());
        this.threads.push(started);
        best = started;
      } catch {
        // Node refused a thread (none left, resource limits, a permission model without workers):
        // the pool keeps those it has, and with none the runs are declined and sealed inline,
        // rather than every large produce failing.
        this.size = this.threads.length;
      }
    }
    // A thread that exited is not replaced (what killed it may again): once all have, runs are sealed inline.
    try {
      return best?.seal(framed, options);
    } catch {
      return undefined; // node refused the message, so the buffer did not move: sealed inline
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads;
    this.threads = [];
    await Promise.all(threads.map((t) => t.terminate()));
  }
}
