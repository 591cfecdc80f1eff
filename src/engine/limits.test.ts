/**
 * The engine's bound-like settings share one rule (src/engine/limits.ts): a whole number from 0
 * to MAX_SAFE_INTEGER, or Infinity. Checked through createEngine, as a library user sets them.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../core/errors.js';
import { init } from '../node/core.js';
import { createMemoryStorage } from '../ports/memory-storage.js';
import { createEngine, type EngineOptions } from './engine.js';
import { TEST_CAPABILITIES } from './testing.js';

beforeAll(async () => {
  await init();
});

const SETTINGS: Array<[name: string, options: (value: number) => Partial<EngineOptions>]> = [
  ['kv.keyCacheMaxBytes', (v) => ({ kv: { keyCacheMaxBytes: v } })],
  ['tenantIdleMs', (v) => ({ tenantIdleMs: v })],
  ['vectors.maxOpenBytes', (v) => ({ vectors: { maxOpenBytes: v } })],
  ['vectors.idleCloseMs', (v) => ({ vectors: { idleCloseMs: v } })],
];

const open = (options: Partial<EngineOptions>) => createEngine({ storage: createMemoryStorage(), capabilities: TEST_CAPABILITIES, ...options });

describe.each(SETTINGS)('%s', (name, options) => {
  it.each([0, 1, 4096, Number.MAX_SAFE_INTEGER, Infinity])('takes %s', async (value) => {
    const engine = await open(options(value));
    // The engine works under it: a key cached, a collection opened and queried.
    const { kv, vectors } = await engine.tenant('t1');
    await kv.put('k', new TextEncoder().encode('v'));
    expect((await kv.get('k'))?.size).toBe(1);
    await vectors.createCollection({ name: 'c', dims: 2, metric: 'l2' });
    await vectors.upsert('c', [{ id: 'a', values: [1, 0] }]);
    expect((await vectors.query('c', { vector: [1, 0], k: 1 })).matches.map((m) => m.id)).toEqual(['a']);
    await engine.close();
  });

  it.each([-1, -Infinity, Number.NaN, 1.5, 0.25, 2 ** 53, 1e300, '1', true, {}])('refuses %s, naming the setting', async (value) => {
    await expect(open(options(value as number))).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
      message: expect.stringContaining(`${name} must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, or Infinity`),
    });
  });
});
