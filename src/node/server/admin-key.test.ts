import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { loadAdminKey } from './admin-key.js';

const dir = () => mkdtemp(join(tmpdir(), 'quartz-adminkey-'));

describe('loadAdminKey', () => {
  it('generates a key file readable only by its owner, then reads the same key back', async () => {
    const d = await dir();
    const first = await loadAdminKey(d, undefined);
    expect(first.created).toBe(true);
    expect(first.key).toMatch(/^qza_[0-9a-f]{64}$/);
    expect((await stat(join(d, 'admin.key'))).mode & 0o777).toBe(0o600);
    const second = await loadAdminKey(d, undefined);
    expect(second).toEqual({ key: first.key, where: join(d, 'admin.key'), created: false });
  });

  it('tightens a key file whose mode was loosened', async () => {
    const d = await dir();
    await loadAdminKey(d, undefined);
    await chmod(join(d, 'admin.key'), 0o644);
    await loadAdminKey(d, undefined);
    expect((await stat(join(d, 'admin.key'))).mode & 0o777).toBe(0o600);
  });

  it('prefers QUARTZ_ADMIN_KEY and writes no file', async () => {
    const d = await dir();
    const k = await loadAdminKey(d, 'a-long-enough-admin-key');
    expect(k).toEqual({ key: 'a-long-enough-admin-key', where: 'the QUARTZ_ADMIN_KEY environment variable', created: false });
    await expect(stat(join(d, 'admin.key'))).rejects.toThrow(/ENOENT/);
    await expect(loadAdminKey(d, 'short')).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringContaining('QUARTZ_ADMIN_KEY') });
  });

  it('refuses a key no Bearer header can carry (a space, a padded value), without echoing it', async () => {
    const d = await dir();
    for (const key of ['correct horse battery staple', 'a-long-enough-admin-key ', '\ta-long-enough-admin-key', 'a-long-enough-admin-kéy']) {
      const refused = loadAdminKey(d, key);
      await expect(refused, JSON.stringify(key)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringMatching(/^QUARTZ_ADMIN_KEY must be printable ASCII without spaces/) });
      await expect(refused).rejects.not.toMatchObject({ message: expect.stringContaining(key.trim()) });
    }
    await writeFile(join(d, 'admin.key'), 'two words in a hand-written key\n', { mode: 0o600 });
    await expect(loadAdminKey(d, undefined)).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA, message: expect.stringContaining(join(d, 'admin.key')) });
  });

  it('refuses an empty key file, naming it', async () => {
    const d = await dir();
    await writeFile(join(d, 'admin.key'), '\n', { mode: 0o600 });
    await expect(loadAdminKey(d, undefined)).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA, message: expect.stringContaining(join(d, 'admin.key')) });
    expect(await readFile(join(d, 'admin.key'), 'utf8')).toBe('\n'); // never overwritten
  });
});
