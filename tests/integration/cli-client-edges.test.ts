/**
 * `quartz` client commands, run as users run them (node bin/quartz.js, a real server process on
 * loopback), where a slip of the user's must be one line on stderr and the right exit code: a
 * produce of nothing to a topic that does not exist, a QUARTZ_* variable with a typo.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startServerProcess, tempDir, type ServerProcess } from './server-process.js';

let server: ServerProcess;
let env: Record<string, string>;

beforeAll(async () => {
  server = await startServerProcess(['--data', await tempDir('cli-edges-data')]);
  env = { XDG_CONFIG_HOME: await tempDir('cli-edges-home'), QUARTZ_URL: server.url };
  const reg = await runCli(['register', '--email', 'edges@example.com', '--save'], env);
  expect(reg.code, reg.stderr).toBe(0);
  const created = await runCli(['topic', 'create', 'present'], env);
  expect(created.code, created.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

describe('quartz produce to a topic or partition that does not exist', () => {
  it('fails with the same line and exit code whether the input holds records or none', async () => {
    const missing = "quartz: topic 'nosuchtopic' does not exist (404 not_found); 0 record(s) were produced before it\n";
    for (const input of ['a\n', '', '\n\r\n\n']) {
      const run = await runCli(['produce', 'nosuchtopic'], env, input);
      expect([run.code, run.stdout, run.stderr], JSON.stringify(input)).toEqual([1, '', missing]);
    }
    const noPartition = "quartz: topic 'present' has no partition 3 (404 not_found); 0 record(s) were produced before it\n";
    for (const input of ['a\n', '']) {
      const run = await runCli(['produce', 'present', '--partition', '3'], env, input);
      expect([run.code, run.stdout, run.stderr], JSON.stringify(input)).toEqual([1, '', noPartition]);
    }
    // Nothing to produce to a topic that exists is still no error.
    const none = await runCli(['produce', 'present', '-o', 'json'], env, '');
    expect([none.code, JSON.parse(none.stdout), none.stderr]).toEqual([0, { topic: 'present', produced: 0 }, '']);
  }, 60_000);
});

describe('QUARTZ_* variables the client commands do not read', () => {
  it('are named on stderr, one line each with the nearest known name and never the value, and the command goes on', async () => {
    const run = await runCli(['topic', 'ls', '-o', 'json'], { ...env, QUARTZ_URLL: 'http://secret.example', QUARTZ_API_KYE: 'qz_value_never_shown', QUARTZ_ZZZZZZZZZ: '1', QUARTZ_EMPTY: '' });
    expect(run.code, run.stderr).toBe(0);
    expect((JSON.parse(run.stdout) as { topics: { name: string }[] }).topics.map((t) => t.name)).toEqual(['present']);
    expect(run.stderr).toBe(
      [
        'quartz: QUARTZ_API_KYE is not a variable QuartzDB reads; ignored (did you mean QUARTZ_API_KEY?)',
        'quartz: QUARTZ_URLL is not a variable QuartzDB reads; ignored (did you mean QUARTZ_URL?)',
        'quartz: QUARTZ_ZZZZZZZZZ is not a variable QuartzDB reads; ignored',
        '',
      ].join('\n'),
    );
    // The ones it reads are not named.
    const known = await runCli(['topic', 'ls'], { ...env, QUARTZ_TIMEOUT: '20' });
    expect([known.code, known.stderr]).toEqual([0, '']);
  }, 60_000);
});

describe('values an HTTP header cannot carry', () => {
  it('are one line naming where they came from, never the key, where fetch failed as "cannot reach" the server', async () => {
    const key = await runCli(['kv', 'ls'], { ...env, QUARTZ_API_KEY: 'qz_pasted_with_its_line_break\n' });
    expect([key.code, key.stdout, key.stderr]).toEqual([1, '', 'quartz: the API key from QUARTZ_API_KEY holds a line break, NUL or a character beyond U+00FF, which an HTTP header cannot carry\n']);
    const flag = await runCli(['--api-key', 'qz_€', 'topic', 'ls'], env);
    expect([flag.code, flag.stderr]).toEqual([1, 'quartz: the API key from --api-key holds a line break, NUL or a character beyond U+00FF, which an HTTP header cannot carry\n']);
    const type = await runCli(['kv', 'put', 'k', 'v', '--content-type', 'text/plain\r\nX-Injected: 1'], env);
    expect([type.code, type.stderr]).toEqual([1, 'quartz: the content type holds a line break, NUL or a character beyond U+00FF, which an HTTP header cannot carry\n']);
  }, 60_000);

  it('stop only a command that sends them: register (and its --save, which replaces a damaged saved key) goes on', async () => {
    const home = await tempDir('cli-edges-pasted-home');
    await mkdir(join(home, 'quartz'));
    await writeFile(join(home, 'quartz', 'config.json'), JSON.stringify({ url: server.url, api_key: 'qz_pasted_with_its_line_break\n' }));
    const pasted = { XDG_CONFIG_HOME: home, QUARTZ_URL: server.url, QUARTZ_ADMIN_KEY: 'admin\nkey' };
    const broken = await runCli(['topic', 'ls'], pasted);
    expect([broken.code, broken.stderr]).toEqual([1, 'quartz: the API key from the saved config holds a line break, NUL or a character beyond U+00FF, which an HTTP header cannot carry\n']);
    const plain = await runCli(['register', '--email', 'pasted-plain@example.com'], pasted);
    expect(plain.code, plain.stderr).toBe(0);
    const saved = await runCli(['register', '--email', 'pasted-saved@example.com', '--save'], pasted);
    expect(saved.code, saved.stderr).toBe(0);
    const fixed = await runCli(['topic', 'ls'], pasted);
    expect([fixed.code, fixed.stderr]).toEqual([0, '']);
  }, 60_000);
});

describe('a server URL on a port fetch blocks', () => {
  it('says so, where it asked whether `quartz serve` was running', async () => {
    const run = await runCli(['--url', 'http://127.0.0.1:6000', 'kv', 'ls'], env);
    expect([run.code, run.stderr]).toEqual([1, 'quartz: cannot reach http://127.0.0.1:6000: fetch never connects to port 6000, one of the ports the fetch standard blocks (other protocols\' ports); run the server on another --port\n']);
  }, 60_000);
});
