import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, QuartzError } from '../core/errors.js';
import { BATCH_HEADER_SIZE, frameRun, sealRun, type EncodableRecord, type FramedRun } from '../core/segment.js';
import { BatchEncoderPool } from './batch-encoder-pool.js';
import { init } from './core.js';

beforeAll(async () => {
  await init();
});

const enc = new TextEncoder();

function records(seed: number, n = 300): EncodableRecord[] {
  return Array.from({ length: n }, (_, i) => ({ key: null, value: enc.encode(`{"run":${seed},"i":${i},"note":"${'word '.repeat(i % 40)}"}`), timestamp: 1_700_000_000_000 + i }));
}

/** A framed run in a buffer with room to be sealed in place, as the partition log frames one. */
function framed(seed: number): FramedRun {
  return frameRun(records(seed), { blockBytes: 4096, output: (n, batches) => new Uint8Array(new ArrayBuffer(n + batches * BATCH_HEADER_SIZE), 0, n) });
}

describe('BatchEncoderPool', () => {
  it('seals runs on its threads to the bytes sealed inline, in the buffer it was given', async () => {
    const pool = new BatchEncoderPool({ threads: 2 });
    try {
      const runs = Array.from({ length: 12 }, (_, i) => framed(i));
      const expected = runs.map((r, i) => sealRun({ sections: r.sections.slice(), layout: r.layout }, { baseOffset: i * 1000, codec: 'lz4' }).bytes);
      const capacities = runs.map((r) => r.sections.buffer.byteLength);
      const sealed = await Promise.all(runs.map((r, i) => pool.sealRun(r, { baseOffset: i * 1000, codec: 'lz4' })!));
      sealed.forEach((bytes, i) => {
        expect(Buffer.compare(bytes, expected[i]!), `run ${i}`).toBe(0);
        expect(bytes.byteOffset).toBe(0);
        expect(bytes.buffer.byteLength).toBe(capacities[i]); // the sections' own buffer, back
        expect(runs[i]!.sections.buffer.byteLength).toBe(0); // moved, not copied
      });
      // a run without room is sealed into a fresh buffer
      const tight = frameRun(records(99), { blockBytes: 4096 });
      const expectedTight = sealRun({ sections: tight.sections.slice(), layout: tight.layout }, { baseOffset: 5, codec: 'lz4' }).bytes;
      expect(Buffer.compare((await pool.sealRun(tight, { baseOffset: 5, codec: 'lz4' }))!, expectedTight)).toBe(0);
    } finally {
      await pool.close();
    }
  });

  it('rejects a run its thread cannot seal, with a typed error', async () => {
    const pool = new BatchEncoderPool({ threads: 1 });
    try {
      const run = framed(1);
      const broken = { sections: run.sections.subarray(0, 10), layout: run.layout };
      await expect(pool.sealRun(broken, { baseOffset: 0, codec: 'lz4' })).rejects.toMatchObject({ code: ErrorCode.INTERNAL });
    } finally {
      await pool.close();
    }
  });

  it('on close, fails the runs in flight (a thread that exits does the same) and declines new ones', async () => {
    const pool = new BatchEncoderPool({ threads: 2 });
    const settling = Promise.allSettled(Array.from({ length: 20 }, (_, i) => pool.sealRun(framed(i), { baseOffset: 0, codec: 'lz4' })!));
    await pool.close();
    const settled = await settling;
    expect(settled.some((s) => s.status === 'rejected')).toBe(true);
    for (const s of settled) if (s.status === 'rejected') expect(s.reason).toBeInstanceOf(QuartzError);
    expect(pool.sealRun(framed(0), { baseOffset: 0, codec: 'lz4' })).toBeUndefined();
  });

  it('declines a run whose buffer was moved away already, rather than posting one no thread answers', async () => {
    const pool = new BatchEncoderPool({ threads: 1 });
    try {
      const run = framed(1);
      structuredClone(run.sections.buffer, { transfer: [run.sections.buffer as ArrayBuffer] });
      expect(pool.sealRun(run, { baseOffset: 0, codec: 'lz4' })).toBeUndefined();
      expect((await pool.sealRun(framed(2), { baseOffset: 0, codec: 'lz4' }))!.length).toBeGreaterThan(0); // still sealing
    } finally {
      await pool.close();
    }
  });

  it('does not keep a process alive once its runs are done, even unclosed', () => {
    const script = `
      import { init } from './src/node/core.ts';
      import { frameRun } from './src/core/segment.ts';
      import { BatchEncoderPool } from './src/node/batch-encoder-pool.ts';
      await init();
      const pool = new BatchEncoderPool({ threads: 2 });
      const records = Array.from({ length: 100 }, (_, i) => ({ key: null, value: new Uint8Array(500).fill(i), timestamp: 1 }));
      const bytes = await pool.sealRun(frameRun(records, { blockBytes: 4096 }), { baseOffset: 0, codec: 'lz4' });
      console.log('sealed', bytes.length > 0);
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(child.stderr).toBe('');
    expect(child.stdout.trim()).toBe('sealed true');
    expect(child.status).toBe(0); // not killed by the timeout
  });
});
