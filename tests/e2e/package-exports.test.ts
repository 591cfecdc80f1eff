/**
 * The package's exports map, resolved by Node itself (a child process, so vite's resolver is
 * not what is tested): each condition of `quartzdb/core` lands on its home's entry, and the
 * Node entry loads the core with no argument from the built package.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt } from './built.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

function node(script: string, conditions: string[] = []): string {
  const args = [...conditions.map((c) => `--conditions=${c}`), '--input-type=module', '-e', script];
  return execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' }).trim();
}

const resolve = (specifier: string, conditions: string[] = []) =>
  node(`console.log(import.meta.resolve(${JSON.stringify(specifier)}))`, conditions).replace(`file://${root}`, '');

describe('package exports', () => {
  beforeAll(() => assertBuilt(['dist/src/node/core.js', 'dist/web/core.js', 'dist/worker/core.js']));

  it('quartzdb/core picks the entry of each home by condition', () => {
    expect(resolve('quartzdb/core')).toBe('dist/src/node/core.js');
    expect(resolve('quartzdb/core', ['workerd'])).toBe('dist/worker/core.js');
    expect(resolve('quartzdb/core', ['browser'])).toBe('dist/web/core.js');
    expect(resolve('quartzdb/browser')).toBe('dist/web/index.js');
    expect(resolve('quartzdb/worker')).toBe('dist/worker/index.js');
    expect(resolve('quartzdb/wasm')).toBe('build/quartz.wasm');
  });

  it('the built Node entry runs init() with no argument', () => {
    const out = node("const q = await import('quartzdb/core'); await q.init(); const w = q.instantiate(); const p = w.alloc(8); w.free(p); console.log(q.isInitialized(), p > 0)");
    expect(out).toBe('true true');
  });
});
