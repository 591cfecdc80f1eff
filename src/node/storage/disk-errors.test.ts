import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { refuseCommitWithoutRoom } from './disk-errors.js';

describe('refuseCommitWithoutRoom', () => {
  it('lets a commit through where the disk has room, and where the file system does not tell its size (procfs, FUSE without statfs: 0 blocks)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quartz-room-'));
    expect(() => refuseCommitWithoutRoom(dir, 10, 1000, 'a test')).not.toThrow();
    expect(() => refuseCommitWithoutRoom('/proc', 10, 1000, 'a test')).not.toThrow();
    await rm(dir, { recursive: true });
  });

  it('refuses a commit larger than any free space as insufficient_storage', () => {
    expect(() => refuseCommitWithoutRoom(tmpdir(), 1, Number.MAX_SAFE_INTEGER / 4, 'a test')).toThrow(expect.objectContaining({ code: ErrorCode.INSUFFICIENT_STORAGE, message: expect.stringContaining('for a test') }));
  });
});
