/**
 * `quartz serve` as a real process: startup messages, the admin key file, static pages and
 * metrics, settings precedence (flag > env > file > default), logging levels, and one-line
 * startup errors.
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { bannerOf, BIN, cleanEnv, logLines, ROOT, runCli, serversKilledAfterEach, tempDir, waitFor } from './server-process.js';

const start = serversKilledAfterEach();

async function register(url: string, email = 'ops@example.com'): Promise<Response> {
  return fetch(`${url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email }) });
}

/** Each file under `dir` with its size and modification time. */
async function filesOf(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true })) {
    const st = await stat(join(dir, entry));
    files[entry] = `${st.size} ${st.mtimeMs}`;
  }
  return files;
}

describe('quartz serve', () => {
  it('prints the URL, the docs URL and where the admin key is, and keeps the key file private', async () => {
    const data = await tempDir('serve');
    const s = await start(['--data', data]);
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const keyFile = join(data, 'admin.key');
    // stdout is a pipe here: the banner is a JSON line as the log's are, so every line parses.
    expect(bannerOf(s.stdout())).toMatchObject({ level: 30, service: 'quartz', url: s.url, docs: `${s.url}/docs`, metrics: `${s.url}/metrics`, data_dir: data, admin_key: keyFile, admin_key_generated: true });
    expect(logLines(s.stdout()).length).toBeGreaterThan(0);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);

    const health = await (await fetch(`${s.url}/v1/health`)).json();
    expect(health).toMatchObject({ status: 'ok', version: expect.any(String) });
    const landing = await fetch(`${s.url}/`);
    expect(landing.status).toBe(200);
    expect(await landing.text()).toContain('href="/docs"');
    const docs = await fetch(`${s.url}/docs`);
    expect(await docs.text()).toContain('/docs/swagger-ui-bundle.js');
    const bundle = await fetch(`${s.url}/docs/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get('content-type')).toMatch(/javascript/);
    expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
    expect((await fetch(`${s.url}/docs/..%2F..%2Fpackage.json`)).status).toBe(404);

    // The admin key works on admin routes; a restart keeps the same key.
    const key = (await readFile(keyFile, 'utf8')).trim();
    const exp = await fetch(`${s.url}/v1/admin/usage/export`, { headers: { authorization: `Bearer ${key}` } });
    expect(exp.status).toBe(200);
    expect(await s.stop()).toBe(0);
    const again = await start(['--data', data]);
    expect(bannerOf(again.stdout())).toMatchObject({ admin_key: keyFile, admin_key_generated: false });
  });

  it('exports request and engine metrics in Prometheus text', async () => {
    const s = await start(['--data', await tempDir('metrics')]);
    const { api_key } = (await (await register(s.url)).json()) as { api_key: string };
    const auth = { authorization: `Bearer ${api_key}` };
    await fetch(`${s.url}/v1/topics`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'm', partitions: 1 }) });
    await fetch(`${s.url}/v1/topics/m/records`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ records: [{ value: 'a' }, { value: 'b' }] }) });
    await fetch(`${s.url}/v1/kv/missing`, { headers: auth });
    const res = await fetch(`${s.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/quartz_http_requests_total\{route="\/v1\/topics\/:t\/records",method="POST",status="200"\} 1/);
    expect(text).toMatch(/quartz_http_requests_total\{route="\/v1\/kv\/:key\{\.\+\}",method="GET",status="404"\} 1/);
    expect(text).toMatch(/quartz_http_request_duration_seconds_bucket\{le="[^"]+",route="\/v1\/topics",method="POST",status="201"\}/);
    expect(text).toMatch(/^quartz_tenants 1$/m);
    expect(text).toMatch(/^quartz_records_produced 2$/m);
    expect(text).toMatch(/^quartz_topics 1$/m);
    expect(text).toMatch(/^quartz_partitions 1$/m);
    expect(text).toMatch(/^quartz_segments 0$/m);
    expect(text).toMatch(/^quartz_segment_cache_hit_ratio \d/m);
    expect(text).toMatch(/^quartz_vectors 0$/m);
  });

  it('takes settings from flags over QUARTZ_* over the config file over defaults', async () => {
    const dir = await tempDir('precedence');
    const config = join(dir, 'quartz.json');
    await writeFile(
      config,
      JSON.stringify({
        data_dir: join(dir, 'from-file'),
        default_plan: 'free',
        registration_enabled: false,
        cors_origins: ['https://app.example'],
        log_level: 'debug',
      }),
    );
    // File only: data dir, CORS, log level. Env beats file: registration. Flag beats env: plan.
    const s = await start(['--config', config, '--default-plan', 'pro'], { QUARTZ_DEFAULT_PLAN: 'free', QUARTZ_REGISTRATION: 'true' });
    expect(bannerOf(s.stdout())?.data_dir).toBe(join(dir, 'from-file'));
    const reg = await register(s.url);
    expect(reg.status).toBe(201);
    const { api_key } = (await reg.json()) as { api_key: string };
    const res = await fetch(`${s.url}/v1/kv?limit=1`, { headers: { authorization: `Bearer ${api_key}`, origin: 'https://app.example' } });
    expect(res.headers.get('x-ratelimit-limit')).toBe('10000'); // the pro plan
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    // debug: one log line per request, with its request id.
    // The log line is written before the response, but the server's stdout pipe may reach this
    // process after the response's socket does: wait for it.
    const logged = () =>
      s.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
        .some((l) => l.msg === 'request' && l.route === '/v1/kv' && typeof l.request_id === 'string');
    await waitFor(() => (logged() ? true : undefined), 20_000, 'the request log line');

    // The file's registration_enabled applies when nothing overrides it; defaults fill the rest.
    const t = await start(['--config', config, '--data-dir', join(dir, 'flag-data')]); // --data's other name
    expect(bannerOf(t.stdout())?.data_dir).toBe(join(dir, 'flag-data'));
    expect((await register(t.url)).status).toBe(404); // registration off, from the file
  });

  it('logs no line per request at the default info level', async () => {
    const s = await start(['--data', await tempDir('quiet')]);
    for (let i = 0; i < 3; i++) await fetch(`${s.url}/v1/health`);
    expect(s.stdout()).not.toMatch(/"msg":"request"/);
  });

  it('takes the admin key from QUARTZ_ADMIN_KEY without writing a file', async () => {
    const data = await tempDir('envkey');
    const key = `admin-${crypto.randomUUID()}`;
    const s = await start(['--data', data], { QUARTZ_ADMIN_KEY: key });
    expect(bannerOf(s.stdout())?.admin_key).toBe('the QUARTZ_ADMIN_KEY environment variable');
    await expect(stat(join(data, 'admin.key'))).rejects.toThrow(/ENOENT/);
    expect((await fetch(`${s.url}/v1/admin/usage/export`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect((await fetch(`${s.url}/v1/admin/usage/export`, { headers: { authorization: 'Bearer wrong-key-0000000000' } })).status).toBe(401);
  });

  it('says beyond loopback whether anyone who reaches it can register', async () => {
    // Registration off here: the server listens on every address for the few seconds it runs.
    const s = await start(['--data', await tempDir('beyond'), '--host', '0.0.0.0'], { QUARTZ_REGISTRATION: 'false' });
    // It said "anyone who can reach it can register unless registration is off" with registration off.
    expect(logLines(s.stdout()).filter((l) => l.level === 40).map((l) => l.msg)).toEqual(['listening beyond loopback on 0.0.0.0: registration is off (keys already given and those the admin creates work)']);
    expect(s.stdout()).not.toContain('can register');
    expect((await register(s.url.replace('0.0.0.0', '127.0.0.1'))).status).toBe(404);
  });

  it('knows loopback however it is spelt: the address it bound decides, not the host typed', async () => {
    // Each said "listening beyond loopback … anyone who can reach it can register".
    for (const host of ['::ffff:127.0.0.1', '127.1', 'LOCALHOST']) {
      const s = await start(['--data', await tempDir('loopback'), '--host', host]);
      expect(s.stdout(), host).not.toContain('beyond loopback');
      expect((await fetch(`${s.url}/v1/health`)).status, host).toBe(200);
      expect(await s.stop()).toBe(0);
    }
  });

  it('warns of a port the fetch standard blocks, as a JSON line to a pipe and as text at a terminal', async () => {
    // Any of these may be taken on the machine: the first that starts is enough.
    const ports = [6665, 6666, 6667, 6668, 6669, 6679, 10080];
    const warning = (port: number): string => `port ${port} is one the fetch standard blocks: browsers and node's fetch (the quartz CLI, the /docs page, browser apps) refuse to connect to it, curl does not; pick another --port for them`;
    let piped: Awaited<ReturnType<typeof start>> | undefined;
    let port = 0;
    for (const p of ports) {
      piped = await start(['--data', await tempDir('blocked'), '--port', String(p)]).catch(() => undefined);
      if (piped !== undefined) {
        port = p;
        break;
      }
    }
    expect(piped, 'no blocked port was free').toBeDefined();
    // It started without a word: the CLI then failed against it, and browsers too.
    expect(logLines(piped!.stdout()).filter((l) => l.level === 40).map((l) => l.msg)).toEqual([warning(port)]);
    expect(await piped!.stop()).toBe(0);

    // At a terminal (util-linux `script` gives it one), the banner is for people.
    const data = await tempDir('blocked-tty');
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} serve --port ${port} --data ${JSON.stringify(data)} & echo "pid $!"; wait`;
    const terminal = spawn('script', ['-qfec', command, '/dev/null'], { env: cleanEnv(), cwd: ROOT });
    let out = '';
    terminal.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    try {
      await waitFor(() => (/admin key: [^\n]*\n/.test(out) ? true : undefined), 45_000, 'the banner at a terminal').catch((err: Error) => {
        throw new Error(`${err.message}; the terminal showed: ${JSON.stringify(out)}`);
      });
      const text = out.replaceAll('\r\n', '\n');
      expect(text).toContain(`QuartzDB listening on http://127.0.0.1:${port}\n  API docs:  http://127.0.0.1:${port}/docs\n`);
      expect(text).toContain(`  admin key: ${join(data, 'admin.key')} (generated now)\n  ${warning(port)}\n`);
    } finally {
      const pid = /pid (\d+)/.exec(out)?.[1];
      if (pid !== undefined) process.kill(Number(pid), 'SIGTERM');
      terminal.kill('SIGKILL');
    }
  });

  it('refuses a QUARTZ_ADMIN_KEY no request could present before it creates, locks or replays the data directory', async () => {
    const dir = await tempDir('badenvkey');
    const r = await runCli(['serve', '--port', '0', '--data', join(dir, 'data')], { QUARTZ_ADMIN_KEY: 'short' });
    expect([r.code, r.stderr]).toEqual([1, 'quartz: QUARTZ_ADMIN_KEY must be at least 16 characters\n']);
    expect(await readdir(dir)).toEqual([]);
  });

  it('warns once, naming the nearest known name, of a QUARTZ_* variable it does not read, and starts anyway', async () => {
    // A value no timestamp or port in the log can hold: '9000' was found in a line's `time` once.
    const s = await start(['--data', await tempDir('typo')], { QUARTZ_PROT: '9000x', QUARTZ_URL: 'http://127.0.0.1:1' });
    expect((await fetch(`${s.url}/v1/health`)).status).toBe(200);
    const warnings = s
      .stdout()
      .split('\n')
      .filter((l) => l.includes('"level":40'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(warnings).toEqual([expect.objectContaining({ variable: 'QUARTZ_PROT', nearest: 'QUARTZ_PORT', msg: 'QUARTZ_PROT is not a variable QuartzDB reads; ignored (did you mean QUARTZ_PORT?)' })]);
    expect(s.stdout()).not.toContain('9000x');
  });

  it('fails to start with one clear line and a non-zero code on a bad config file', async () => {
    const dir = await tempDir('bad');
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ port: 'eighty' }));
    const r = await runCli(['serve', '--config', bad], {});
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^quartz: config file ${bad}: port: `));

    // Not JSON, an unknown key, a plan the file's plans lack: one line each, naming the file.
    for (const [content, message] of [
      ['{"port": 8787,', 'not valid JSON'],
      ['{"prot": 8787}', 'Unrecognized key: "prot"'],
      ['{"default_plan": "gold"}', "default_plan: 'gold' is not one of the plans"],
      // Never equal to a browser's Origin header: it allowed no origin, silently.
      ['{"cors_origins": ["https://app.example.com/"]}', "cors_origins.0: 'https://app.example.com/' is not an origin (scheme://host[:port] as browsers send it in Origin): did you mean 'https://app.example.com'?"],
    ] as const) {
      await writeFile(bad, content);
      const r = await runCli(['serve', '--port', '0', '--data', join(dir, 'd'), '--config', bad], {});
      expect(r.code, content).not.toBe(0);
      expect(r.stderr, content).toMatch(new RegExp(`^quartz: config file ${bad}: [^\n]*\n$`));
      expect(r.stderr, content).toContain(message);
    }
  });

  it('fails to start with one clear line when the port or the data directory is taken', async () => {
    const dir = await tempDir('taken');
    const s = await start(['--data', join(dir, 'a')]);
    const port = new URL(s.url).port;
    const clash = await runCli(['serve', '--port', port, '--data', join(dir, 'b')], {});
    expect(clash.code).not.toBe(0);
    expect(clash.stderr).toBe(`quartz: 127.0.0.1:${port} is already in use; pick another --port\n`);
    // The port is checked before the data directory is created, locked or its log replayed.
    expect(await readdir(dir)).toEqual(['a']);
    const used = join(dir, 'used');
    await (await start(['--data', used])).stop('SIGTERM');
    const before = await filesOf(used);
    const clashOnUsed = await runCli(['serve', '--port', port, '--data', used], {});
    expect([clashOnUsed.code, clashOnUsed.stderr]).toEqual([1, `quartz: 127.0.0.1:${port} is already in use; pick another --port\n`]);
    expect(await filesOf(used)).toEqual(before);

    const locked = await runCli(['serve', '--port', '0', '--data', join(dir, 'a')], {});
    expect(locked.code).not.toBe(0);
    expect(locked.stderr).toMatch(/^quartz: data directory .* is in use by process \d+\n$/);

    const plan = await runCli(['serve', '--port', '0', '--data', join(dir, 'c'), '--default-plan', 'gold'], {});
    expect(plan.code).not.toBe(0);
    expect(plan.stderr).toBe("quartz: --default-plan 'gold' is not one of the plans (free, pro, unlimited)\n");
  });

  it('fails to start with one clear line on flags that do not fit', async () => {
    const dir = await tempDir('flags');
    // The same directory spelled two ways is one directory: it starts.
    const spelled = await start(['--data', join(dir, 'h'), '--data-dir', `${join(dir, 'h')}/`]);
    expect(bannerOf(spelled.stdout())?.data_dir).toBe(join(dir, 'h'));
    await spelled.stop('SIGTERM');

    const twoDirs = await runCli(['serve', '--port', '0', '--data', join(dir, 'f'), '--data-dir', join(dir, 'g')], {});
    expect(twoDirs.code).not.toBe(0);
    expect(twoDirs.stderr).toBe('quartz: --data and --data-dir name different directories; give one\n');

    const aFile = join(dir, 'a-file');
    await writeFile(aFile, 'not a directory');
    const fileAsData = await runCli(['serve', '--port', '0', '--data', join(aFile, 'data')], {});
    expect(fileAsData.code).not.toBe(0);
    expect(fileAsData.stderr).toMatch(new RegExp(`^quartz: cannot use data directory ${join(aFile, 'data')}: a part of its path is a file, not a directory \\(ENOTDIR on [^\\n]+\\)\\n$`));

    const host = await runCli(['serve', '--port', '0', '--data', join(dir, 'e'), '--host', 'no-such-host.invalid'], {});
    expect(host.code).not.toBe(0);
    expect(host.stderr).toBe("quartz: cannot listen on 'no-such-host.invalid': no such host\n");
  });

  it('under a low open-file limit, starts or fails with one clear line, never a loader stack trace', async () => {
    const data = await tempDir('serve-emfile');
    // 48 descriptors: loading the CLI's modules, which opens many files at once, runs out.
    const proc = spawn('sh', ['-c', `ulimit -n 48 && exec "${process.execPath}" "${BIN}" serve --port 0 --data "${data}"`], { env: cleanEnv(), cwd: ROOT });
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    proc.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const code = await Promise.race([
      new Promise<number | null>((resolve) => proc.once('close', (c) => resolve(c))),
      waitFor(() => (out.includes('listening on') ? 'started' : undefined), 20_000, 'the banner or an exit'),
    ]);
    proc.kill('SIGKILL');
    if (code === 'started') return;
    expect(code).toBe(1);
    expect(err).toMatch(/^quartz: too many open files while loading \(EMFILE\); raise the limit .*\n$/);
  });
});
