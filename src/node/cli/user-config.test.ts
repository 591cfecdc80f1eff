import { chmod, link, lstat, mkdir, mkdtemp, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readUserConfig, userConfigPath, writeUserConfig } from './user-config.js';

describe('writeUserConfig', () => {
  it('replaces a looser config file with a new one of mode 0600 instead of writing the key into it', async () => {
    const env = { XDG_CONFIG_HOME: await mkdtemp(join(tmpdir(), 'quartz-user-config-')) };
    const path = userConfigPath(env);
    expect(path).toBe(join(env.XDG_CONFIG_HOME, 'quartz', 'config.json'));
    await mkdir(join(env.XDG_CONFIG_HOME, 'quartz'));
    await writeFile(path, '{"url":"http://old.example"}\n');
    await chmod(path, 0o644);
    // A second name for the old file: it must keep the old text, i.e. the key never went into it.
    const old = `${path}.old`;
    await link(path, old);

    const config = { url: 'http://127.0.0.1:8787', api_key: `qz_${'a'.repeat(64)}` };
    await writeUserConfig(env, config);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readUserConfig(env)).toEqual(config);
    expect(await readFile(old, 'utf8')).toBe('{"url":"http://old.example"}\n');
    expect((await readdir(join(env.XDG_CONFIG_HOME, 'quartz'))).sort()).toEqual(['config.json', 'config.json.old']);
  });

  it('writes through a symlinked config file (kept in a dotfiles directory), keeping the link', async () => {
    const env = { XDG_CONFIG_HOME: await mkdtemp(join(tmpdir(), 'quartz-user-config-')) };
    const path = userConfigPath(env);
    const dotfiles = join(env.XDG_CONFIG_HOME, 'dotfiles');
    await mkdir(dotfiles);
    await mkdir(join(env.XDG_CONFIG_HOME, 'quartz'));
    const real = join(dotfiles, 'quartz.json');
    await writeFile(real, '{"url":"http://old.example"}\n');
    await chmod(real, 0o644);
    await symlink(real, path);

    const config = { url: 'http://127.0.0.1:8787', api_key: `qz_${'b'.repeat(64)}` };
    await writeUserConfig(env, config);
    expect((await lstat(path)).isSymbolicLink()).toBe(true);
    expect(JSON.parse(await readFile(real, 'utf8'))).toEqual(config);
    expect((await stat(real)).mode & 0o777).toBe(0o600);
    expect(await readdir(dotfiles)).toEqual(['quartz.json']);
  });
});
