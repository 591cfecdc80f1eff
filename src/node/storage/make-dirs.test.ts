import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeDirs } from './make-dirs.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('makeDirs', () => {
  it('creates every missing level, and again is a no-op', async () => {
    const base = await mkdtemp(join(tmpdir(), 'quartz-mkdirs-'));
    dirs.push(base);
    const deep = join(base, 'a', 'b', 'c');
    await makeDirs(deep);
    expect((await stat(deep)).isDirectory()).toBe(true);
    await makeDirs(deep);
    await Promise.all([makeDirs(join(deep, 'd')), makeDirs(join(deep, 'd', 'e'))]);
    expect((await stat(join(deep, 'd', 'e'))).isDirectory()).toBe(true);
  });

  it('fails on a file in the path', async () => {
    const base = await mkdtemp(join(tmpdir(), 'quartz-mkdirs-'));
    dirs.push(base);
    await writeFile(join(base, 'file'), 'x');
    await expect(makeDirs(join(base, 'file'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(makeDirs(join(base, 'file', 'sub'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  // Node's recursive mkdir spins forever here: procfs answers ENOENT to mkdir.
  it.runIf(existsSync('/proc/self'))('fails, rather than spinning, where the filesystem will not create a directory', async () => {
    await expect(makeDirs('/proc/quartz-no-such/dir')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
