/**
 * `quartz serve` as an operator meets it: SIGHUP (a closed terminal) shuts down as SIGTERM does,
 * a directory that is not QuartzDB's is refused in one line with nothing in it touched, the
 * admin key file stays private under umask 000, and /metrics passes a strict reading of the
 * Prometheus text format however odd the paths clients send.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, cleanEnv, ROOT, readiness, runCli, serversKilledAfterEach, STARTUP_BOUND_MS, tempDir, waitFor } from './server-process.js';

const start = serversKilledAfterEach();

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** The family a sample belongs to: histogram and summary samples carry a suffix. */
function familyOf(name: string, types: Map<string, string>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && (types.get(base) === 'histogram' || types.get(base) === 'summary')) return base;
  }
  return name;
}

/** Label pairs `{a="x",b="y"}` read strictly: only \\, \" and \n escapes; throws on anything else. */
function readLabels(text: string, line: string): Map<string, string> {
  const labels = new Map<string, string>();
  let i = 0;
  while (i < text.length) {
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i))?.[0];
    if (name === undefined || text[i + name.length] !== '=' || text[i + name.length + 1] !== '"') throw new Error(`bad label in: ${line}`);
    i += name.length + 2;
    let value = '';
    for (;;) {
      const ch = text[i++];
      if (ch === undefined) throw new Error(`unterminated label value in: ${line}`);
      if (ch === '"') break;
      if (ch === '\n') throw new Error(`raw newline in a label value: ${line}`);
      if (ch === '\\') {
        const next = text[i++];
        if (next === '\\' || next === '"') value += next;
        else if (next === 'n') value += '\n';
        else throw new Error(`bad escape \\${next} in: ${line}`);
      } else value += ch;
    }
    if (labels.has(name)) throw new Error(`label ${name} twice in: ${line}`);
    labels.set(name, value);
    if (text[i] === ',') i++;
    else if (i !== text.length) throw new Error(`junk after a label in: ${line}`);
  }
  return labels;
}

/**
 * Reads the text exposition format (0.0.4) strictly: at most one HELP and one TYPE per family,
 * before its samples; a family's samples together; no series twice; numbers that parse;
 * histogram buckets cumulative, ending in +Inf equal to _count. Returns the series by name.
 */
function parseExposition(body: string): Map<string, Array<{ labels: Map<string, string>; value: number }>> {
  const help = new Set<string>();
  const types = new Map<string, string>();
  const closed = new Set<string>();
  const seen = new Set<string>();
  const series = new Map<string, Array<{ labels: Map<string, string>; value: number }>>();
  let current: string | undefined;
  const enter = (family: string, line: string): void => {
    if (family === current) return;
    if (closed.has(family)) throw new Error(`family ${family} comes back after another: ${line}`);
    if (current !== undefined) closed.add(current);
    current = family;
  };
  expect(body.endsWith('\n')).toBe(true);
  for (const line of body.split('\n')) {
    if (line === '') continue;
    const comment = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (comment !== null) {
      const [, kind, name, rest] = comment as unknown as [string, string, string, string];
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name: ${line}`);
      enter(name, line);
      if (series.has(name) || [...series.keys()].some((s) => familyOf(s, types) === name)) throw new Error(`${kind} after samples: ${line}`);
      if (kind === 'HELP') {
        if (help.has(name)) throw new Error(`HELP twice: ${line}`);
        help.add(name);
      } else {
        if (types.has(name)) throw new Error(`TYPE twice: ${line}`);
        if (!TYPES.has(rest)) throw new Error(`bad type: ${line}`);
        types.set(name, rest);
      }
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (sample === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText = '', valueText] = sample as unknown as [string, string, string | undefined, string];
    enter(familyOf(name, types), line);
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : valueText === 'NaN' ? NaN : Number(valueText);
    if (!/^(\+Inf|-Inf|NaN|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$/.test(valueText)) throw new Error(`bad value: ${line}`);
    const labels = readLabels(labelText, line);
    const key = `${name}{${[...labels].sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
    if (seen.has(key)) throw new Error(`series twice: ${line}`);
    seen.add(key);
    if (!series.has(name)) series.set(name, []);
    series.get(name)!.push({ labels, value });
  }
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const byLabels = new Map<string, Array<[number, number]>>();
    for (const { labels, value } of series.get(`${family}_bucket`) ?? []) {
      const le = labels.get('le');
      if (le === undefined) throw new Error(`${family}_bucket without le`);
      const rest = JSON.stringify([...labels].filter(([k]) => k !== 'le').sort());
      if (!byLabels.has(rest)) byLabels.set(rest, []);
      byLabels.get(rest)!.push([le === '+Inf' ? Infinity : Number(le), value]);
    }
    const counts = new Map((series.get(`${family}_count`) ?? []).map(({ labels, value }) => [JSON.stringify([...labels].sort()), value]));
    for (const [rest, buckets] of byLabels) {
      for (let i = 1; i < buckets.length; i++) {
        if (!(buckets[i]![0] > buckets[i - 1]![0] && buckets[i]![1] >= buckets[i - 1]![1])) throw new Error(`${family} buckets not cumulative for ${rest}`);
      }
      const last = buckets[buckets.length - 1]!;
      if (last[0] !== Infinity || last[1] !== counts.get(rest)) throw new Error(`${family}: +Inf bucket is not _count for ${rest}`);
    }
  }
  return series;
}

describe('quartz serve, operated', () => {
  it('shuts down gracefully on SIGHUP (a closed terminal), exits 0 and lets go of the data directory', async () => {
    const data = await tempDir('sighup');
    const s = await start(['--data', data]);
    expect((await fetch(`${s.url}/v1/health`)).status).toBe(200);
    s.proc.kill('SIGHUP');
    expect(await s.exited).toBe(0); // 'SIGHUP' (node's default: killed at once) without the handler
    expect(s.stdout()).toMatch(/"reason":"SIGHUP","msg":"shutting down"/);
    expect(s.stdout()).toMatch(/"msg":"stopped"/);
    expect(await readdir(data)).not.toContain('LOCK');
  });

  it('exits when its terminal really closes (SIGHUP, then every write to stdout fails with EIO), letting go of the data directory', async () => {
    const data = await tempDir('hangup');
    // util-linux `script` holds a pseudo-terminal's master side, as a terminal window does, with
    // the server on its other side; SIGKILL closes it, and the kernel hangs the terminal up.
    const command = `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} serve --port 0 --data ${JSON.stringify(data)}`;
    const terminal = spawn('script', ['-qfec', command, '/dev/null'], { env: cleanEnv() });
    let out = '';
    terminal.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    terminal.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await readiness(terminal, /listening on/, () => ({ stdout: out, stderr: '' }), STARTUP_BOUND_MS);
    const server = await waitFor(async () => {
      for (const pid of await readdir('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (argv.includes(data) && argv.includes(BIN) && !argv.startsWith('script')) return Number(pid);
      }
      return undefined;
    }, 10_000, 'the server process');
    terminal.kill('SIGKILL');
    const alive = (): boolean => {
      try {
        process.kill(server, 0);
        return true;
      } catch {
        return false;
      }
    };
    try {
      // The shutdown's "shutting down" line met EIO: pino threw it, and at exit sonic-boom retried
      // the write every 100 ms forever, so the server stopped listening and never exited.
      await waitFor(() => (alive() ? undefined : true), 20_000, 'the server to exit after its terminal closed');
    } finally {
      if (alive()) process.kill(server, 'SIGKILL');
    }
    expect(await readdir(data)).not.toContain('LOCK');
  }, 60_000);

  it('refuses a directory that is not a QuartzDB one in one line, and touches nothing in it', async () => {
    const dir = await tempDir('foreign');
    await mkdir(join(dir, 'blobs', 'photos'), { recursive: true });
    await writeFile(join(dir, 'blobs', 'photos', 'cat.jpg'), 'precious');
    await writeFile(join(dir, 'notes.txt'), 'mine');
    const r = await runCli(['serve', '--port', '0', '--data', dir], {});
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`quartz: data directory ${dir} is not a QuartzDB data directory (it has no kv.mdb) and is not empty ('blobs', 'notes.txt'); name a new or empty directory, or one a QuartzDB server made\n`);
    expect(await readFile(join(dir, 'blobs', 'photos', 'cat.jpg'), 'utf8')).toBe('precious');
    expect((await readdir(dir)).sort()).toEqual(['blobs', 'notes.txt']);
  });

  it('keeps the generated admin key file 0600 under umask 000', async () => {
    const data = await tempDir('umask');
    const proc = spawn('sh', ['-c', 'umask 000 && exec "$0" "$@"', process.execPath, BIN, 'serve', '--port', '0', '--data', data], { env: cleanEnv(), cwd: ROOT });
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    try {
      await readiness(proc, /listening on .*\n/, () => ({ stdout: out, stderr: err }), STARTUP_BOUND_MS);
      expect((await stat(join(data, 'admin.key'))).mode & 0o777).toBe(0o600);
    } finally {
      proc.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('serves /metrics that a strict reader accepts, with one series per route pattern whatever paths clients send', async () => {
    const s = await start(['--data', await tempDir('strict-metrics')]);
    const reg = await fetch(`${s.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'm@example.com' }) });
    const { api_key } = (await reg.json()) as { api_key: string };
    const auth = { authorization: `Bearer ${api_key}` };
    const odd = ['a"b', 'back\\slash', 'new%0Aline', 'quote%22d', 'tab%09', 'é', '%E2%80%AE'];
    for (const [i, name] of odd.entries()) {
      await fetch(`${s.url}/v1/kv/${name}-${i}`, { method: 'PUT', headers: auth, body: 'v' });
      await fetch(`${s.url}/v1/kv/${name}-${i}`, { headers: { ...auth, 'x-request-id': `id"${i}\\` } });
      await fetch(`${s.url}/v1/topics/${name}/partitions/0/records?offset=0`, { headers: auth });
      await fetch(`${s.url}/${name}/${i}`);
      await fetch(`${s.url}/v1/no-such/${name}`, { method: 'DELETE' });
    }
    const first = await fetch(`${s.url}/metrics`);
    expect(first.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const series = parseExposition(await first.text());
    const routes = new Set((series.get('quartz_http_requests_total') ?? []).map(({ labels }) => labels.get('route')));
    expect([...routes].sort()).toEqual(['/v1/auth/register', '/v1/kv/:key{.+}', '/v1/topics/:t/partitions/:p/records', 'static', 'unmatched']);
    // The documented families are all there.
    for (const name of ['quartz_http_request_duration_seconds_bucket', 'quartz_tenants', 'quartz_stored_bytes', 'quartz_open_tenants', 'quartz_kv_cached_keys', 'quartz_process_cpu_seconds_total']) {
      expect(series.has(name), name).toBe(true);
    }
    // A second scrape (counters set again from the engine's totals) reads as strictly.
    await waitFor(async () => (parseExposition(await (await fetch(`${s.url}/metrics`)).text()).has('quartz_tenants') ? true : undefined), 10_000, 'a second scrape');
  });
});
