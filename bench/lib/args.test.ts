import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FlagError, readFlags } from './args.js';

const spec = { values: ['mb', 'runs', 'only'], switches: ['quick'] };

describe('readFlags', () => {
  it('reads values, switches and lists, with fallbacks for what is absent', () => {
    const flags = readFlags(spec, ['--mb', '4', '--quick', '--only', 'a,b']);
    expect(flags.number('mb', 64)).toBe(4);
    expect(flags.number('runs', 5)).toBe(5);
    expect(flags.has('quick')).toBe(true);
    expect(flags.list('only', ['x'])).toEqual(['a', 'b']);
    expect(flags.string('runs')).toBeUndefined();
  });

  it('refuses a flag the bench does not take, naming the ones it does', () => {
    expect(() => readFlags(spec, ['--MB', '4'])).toThrow(new FlagError('unknown flag --MB; flags: --mb, --runs, --only, --quick'));
    expect(() => readFlags(spec, ['--quick-ish'])).toThrow(FlagError);
  });

  it('refuses a value flag with no value, and a bare argument unless positionals are taken', () => {
    expect(() => readFlags(spec, ['--mb'])).toThrow('--mb needs a value');
    expect(() => readFlags(spec, ['--mb', '--quick'])).toThrow('--mb needs a value');
    expect(() => readFlags(spec, ['--quick=yes'])).toThrow('--quick takes no value');
    expect(() => readFlags(spec, ['a.wasm'])).toThrow("unexpected argument 'a.wasm'");
    expect(readFlags({ ...spec, positionals: true }, ['a.wasm', '--quick', 'b.wasm']).positionals).toEqual(['a.wasm', 'b.wasm']);
  });

  it('takes --name=value, whose value may start with -- (node flags passed on)', () => {
    const flags = readFlags(spec, ['--only=--trace-gc --max-semi-space-size=32', '--mb=4']);
    expect(flags.string('only')).toBe('--trace-gc --max-semi-space-size=32');
    expect(flags.number('mb', 64)).toBe(4);
    expect(() => readFlags(spec, ['--MB=4'])).toThrow('unknown flag --MB;');
  });

  it('refuses numbers that are not numbers, negative, or not positive where that is asked', () => {
    expect(() => readFlags(spec, ['--mb', 'four']).number('mb', 64)).toThrow("--mb must be a non-negative number, got 'four'");
    expect(() => readFlags(spec, ['--mb', '-1']).number('mb', 64)).toThrow(FlagError);
    expect(() => readFlags(spec, ['--mb', '0']).number('mb', 64, 'positive')).toThrow("--mb must be a positive number, got '0'");
    expect(readFlags(spec, ['--mb', '0']).number('mb', 64)).toBe(0);
    expect(readFlags(spec, ['--mb', '0.5']).number('mb', 64, 'positive')).toBe(0.5);
  });
});

describe('a bench given a flag it does not take, or a value it cannot use', () => {
  const bench = (...args: string[]) => spawnSync(process.execPath, [fileURLToPath(new URL('../run.mjs', import.meta.url)), 'hnsw', ...args], { encoding: 'utf8', timeout: 60_000 });

  it('stops with one line on stderr and status 2, before any work', () => {
    for (const [args, message] of [
      [['--n', '1000', '--nn', '5'], /^bench: unknown flag --nn; flags: --n, /],
      [['--n', 'many'], /^bench: --n must be a positive number, got 'many'$/],
      [['--metric', 'manhattan'], /^bench: --metric must be one of l2, cosine, dot, got 'manhattan'$/],
    ] as const) {
      const run = bench(...args);
      expect(run.status).toBe(2);
      expect(run.stderr.trim()).toMatch(message);
      expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  });
});
