/**
 * A BatchEncoderPool whose threads cannot start (node refuses `new Worker`: no threads left,
 * resource limits, a permission model without --allow-worker) declines its runs, so the engine
 * seals them inline and produces go on, rather than every large produce failing.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { frameRun } from '../core/segment.js';
import { createTestContext } from '../engine/testing.js';
import { StreamStore } from '../engine/streams/stream-store.js';
import { BatchEncoderPool } from './batch-encoder-pool.js';
import { init } from './core.js';

const started = vi.hoisted(() => ({ attempts: 0 }));

vi.mock('node:worker_threads', async (original) => {
  const real = await original<typeof import('node:worker_threads')>();
  class RefusedWorker {
    constructor() {
      started.attempts++;
      throw Object.assign(new Error('Worker initialization failure: EAGAIN'), { code: 'ERR_WORKER_INIT_FAILED' });
    }
  }
  return { ...real, Worker: RefusedWorker };
});

beforeAll(async () => {
  await init();
});

describe('a BatchEncoderPool whose threads cannot start', () => {
  it('declines its runs (sealed inline then), and stops trying to start threads', async () => {
    const pool = new BatchEncoderPool({ threads: 2, minBytes: 1024 });
    const records = Array.from({ length: 50 }, (_, i) => ({ key: null, value: new Uint8Array(100).fill(i), timestamp: 1 }));
    expect(pool.sealRun(frameRun(records), { baseOffset: 0, codec: 'lz4' })).toBeUndefined();
    expect(pool.sealRun(frameRun(records), { baseOffset: 0, codec: 'lz4' })).toBeUndefined();
    expect(started.attempts).toBe(1);

    const ctx = { ...createTestContext(), batchEncoder: new BatchEncoderPool({ threads: 1, minBytes: 1024 }) };
    const streams = await StreamStore.open(ctx, 't1');
    await streams.createTopic('t');
    const produced = await streams.produce('t', Array.from({ length: 100 }, () => ({ value: new Uint8Array(200).fill(7) })));
    expect(produced.offsets[99]).toEqual({ partition: 0, offset: 99 });
    expect((await streams.consume('t', 0, 0, { max_records: 1000 })).records).toHaveLength(100);
    await streams.close();
    await pool.close();
  });
});
