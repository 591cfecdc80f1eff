import { spawn } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { adminKeyFile, adminKeyFromEnv } from './admin-key.js';

const dir = () => mkdtemp(join(tmpdir(), 'quartz-adminkey-'));

describe('the admin key', () => {
  it('generates a key file readable only by its owner, then reads the same key back', async () => {
    const d = await dir();
    const first = await adminKeyFile(d);
    expect(first.created).toBe(true);
    expect(first.key).toMatch(/^qza_[0-9a-f]{64}$/);
    expect((await stat(join(d, 'admin.key'))).mode & 0o777).toBe(0o600);
    const second = await adminKeyFile(d);
    expect(second).toEqual({ key: first.key, where: join(d, 'admin.key'), created: false });
  });

  it('tightens a key file whose mode was loosened', async () => {
    const d = await dir();
    await adminKeyFile(d);
    await chmod(join(d, 'admin.key'), 0o644);
    await adminKeyFile(d);
    expect((await stat(join(d, 'admin.key'))).mode & 0o777).toBe(0o600);
  });

  it('takes QUARTZ_ADMIN_KEY as it is, and undefined when it is unset or empty', () => {
    expect(adminKeyFromEnv('a-long-enough-admin-key')).toEqual({ key: 'a-long-enough-admin-key', where: 'the QUARTZ_ADMIN_KEY environment variable', created: false });
    expect(adminKeyFromEnv(undefined)).toBeUndefined();
    expect(adminKeyFromEnv('')).toBeUndefined();
    expect(() => adminKeyFromEnv('short')).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringContaining('QUARTZ_ADMIN_KEY') }));
  });

  it('refuses a key no Bearer header can carry (a space, a padded value), without echoing it', async () => {
    const d = await dir();
    for (const key of ['correct horse battery staple', 'a-long-enough-admin-key ', '\ta-long-enough-admin-key', 'a-long-enough-admin-kéy']) {
      let refused: unknown;
      try {
        adminKeyFromEnv(key);
      } catch (err) {
        refused = err;
      }
      expect(refused, JSON.stringify(key)).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringMatching(/^QUARTZ_ADMIN_KEY must be printable ASCII without spaces/) });
      expect((refused as Error).message).not.toContain(key.trim());
    }
    await writeFile(join(d, 'admin.key'), 'two words in a hand-written key\n', { mode: 0o600 });
    await expect(adminKeyFile(d)).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA, message: expect.stringContaining(join(d, 'admin.key')) });
  });

  it('refuses an empty key file, naming it', async () => {
    const d = await dir();
    await writeFile(join(d, 'admin.key'), '\n', { mode: 0o600 });
    await expect(adminKeyFile(d)).rejects.toMatchObject({ code: ErrorCode.CORRUPT_DATA, message: expect.stringContaining(join(d, 'admin.key')) });
    expect(await readFile(join(d, 'admin.key'), 'utf8')).toBe('\n'); // never overwritten
  });

  it('names the key file it cannot read (a directory, say), whose error names no path', async () => {
    const d = await dir();
    await mkdir(join(d, 'admin.key'));
    await expect(adminKeyFile(d)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: `admin key file ${join(d, 'admin.key')}: cannot read it (EISDIR); make it a file the server's user can read, or remove it to generate a new key` });
  });
});

describe('the admin key file, killed while it is written', () => {
  it('is whole or absent after SIGKILLs at random moments of its creation, and the next start takes or makes a key', async () => {
    // The built module, in a process of its own that creates key files as fast as it can until killed.
    const built = join(process.cwd(), 'dist/src/node/server/admin-key.js');
    const script = `const { adminKeyFile } = await import(${JSON.stringify(built)}); const { mkdir } = await import('node:fs/promises'); process.stdout.write('go'); for (let i = 0; ; i++) { const d = process.argv[1] + '/' + i; await mkdir(d); await adminKeyFile(d); }`;
    for (let round = 0; round < 12; round++) {
      const root = await dir();
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, root], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise((resolve) => child.stdout.once('data', resolve));
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 100));
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      const dirs = await readdir(root);
      expect(dirs.length, 'the child created no directory').toBeGreaterThan(0);
      for (const d of dirs) {
        // An empty admin.key (killed between its creation and its write) was refused by every later start.
        const key = await adminKeyFile(join(root, d));
        expect(key.key).toMatch(/^qza_[0-9a-f]{64}$/);
        expect((await readdir(join(root, d))).sort()).toEqual(['admin.key']);
      }
    }
  }, 120_000);
});
