import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KNOWN_VARIABLES, unknownVariableMessage, unknownVariables } from './variables.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('unknownVariables', () => {
  it('names the QUARTZ_* variables QuartzDB does not read, with the known name a slip away', () => {
    const env = { QUARTZ_PROT: '9000', QUARTZ_PORT: '1', QUARTZ_DATA_DIR: '/d', QUARTZ_LOGLEVEL: 'debug', QUARTZ_ZZZZZZZZZZZZ: 'x', QUARTZ_EMPTY: '', HOME: '/root', quartz_port: '2' };
    expect(unknownVariables(env)).toEqual([
      { name: 'QUARTZ_DATA_DIR', nearest: 'QUARTZ_DATA' },
      { name: 'QUARTZ_LOGLEVEL', nearest: 'QUARTZ_LOG_LEVEL' },
      { name: 'QUARTZ_PROT', nearest: 'QUARTZ_PORT' },
      { name: 'QUARTZ_ZZZZZZZZZZZZ', nearest: undefined },
    ]);
    expect(unknownVariableMessage({ name: 'QUARTZ_PROT', nearest: 'QUARTZ_PORT' })).toBe('QUARTZ_PROT is not a variable QuartzDB reads; ignored (did you mean QUARTZ_PORT?)');
    expect(unknownVariableMessage({ name: 'QUARTZ_Z', nearest: undefined })).toBe('QUARTZ_Z is not a variable QuartzDB reads; ignored');
  });

  it('knows every QUARTZ_* variable the shipped code names, and no other', () => {
    const named = new Set<string>();
    for (const dir of ['src', 'bin', 'worker', 'web']) {
      for (const file of readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })) {
        if (!/\.(ts|js|mjs)$/.test(file) || /\.test\.ts$|-testing\.ts$/.test(file) || join(dir, file) === join('src', 'node', 'variables.ts')) continue;
        for (const m of readFileSync(join(root, dir, file), 'utf8').matchAll(/\bQUARTZ_[A-Z0-9_]*[A-Z0-9]\b/g)) named.add(m[0]);
      }
    }
    expect([...KNOWN_VARIABLES].sort()).toEqual([...named].sort());
  });
});
