import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { openDiskStorage } from './disk-storage.js';

/** A real FAT filesystem (no hard links) through FUSE: needs root, mkfs.vfat, fusefat and /dev/fuse. */
const canMountFat =
  process.platform === 'linux' &&
  process.getuid?.() === 0 &&
  spawnSync('sh', ['-c', 'command -v mkfs.vfat && command -v fusefat && command -v fusermount && test -c /dev/fuse']).status === 0;

describe.skipIf(!canMountFat)('data directory on a filesystem without hard links', () => {
  let base: string;
  let mnt: string;
  let mounted = false;

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'quartz-fat-'));
    const image = join(base, 'fat.img');
    mnt = join(base, 'mnt');
    await mkdir(mnt);
    spawnSync('truncate', ['-s', '32M', image]);
    expect(spawnSync('mkfs.vfat', [image]).status).toBe(0);
    const mount = spawnSync('fusefat', ['-o', 'rw+', image, mnt]);
    mounted = mount.status === 0;
    expect(mounted, String(mount.stderr)).toBe(true);
  });

  afterAll(async () => {
    if (mounted) spawnSync('fusermount', ['-u', mnt]);
    await rm(base, { recursive: true, force: true });
  });

  it('is refused with a clear error naming the missing hard links, leaving no LOCK files', async () => {
    const dir = join(mnt, 'data');
    const err = await openDiskStorage({ dir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: ErrorCode.PRECONDITION_FAILED });
    expect((err as Error).message).toMatch(/filesystem without hard links \(link: EPERM\)/);
    expect((await readdir(dir)).filter((name) => name.startsWith('LOCK'))).toEqual([]);
  });
});
