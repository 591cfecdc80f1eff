/**
 * wrk and ab as `bench/http/clients.ts` and `bench/general` run them: child processes timed with
 * /usr/bin/time (10 ms resolution) for their own CPU, their printed totals parsed.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ExternalRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface ClientRun {
  answered: number;
  ok: number;
  elapsed: number;
  p50: number;
  p99: number;
  clientUs: number;
  bytesRead: number;
}

/** Lua long strings with a level no body contains (as a table key, written `[ [=[k]=] ]`: `[[=[` would lex as a long string). */
function luaString(s: string): string {
  let eq = '=';
  while (s.includes(`]${eq}]`)) eq += '=';
  return `[${eq}[${s}]${eq}]`;
}

/** Writes `dir/name.lua`, a wrk script sending `requests` in turn, each formatted once per thread at start; returns its path. */
export function wrkScript(name: string, requests: readonly ExternalRequest[], dir: string): string {
  const file = join(dir, `${name.replace(/\W+/g, '-')}.lua`);
  const entries = requests.map((r) => {
    const headers = Object.entries(r.headers).map(([k, v]) => `[ ${luaString(k)} ] = ${luaString(v)}`).join(',');
    return `wrk.format(${luaString(r.method)},${luaString(r.path)},{${headers}},${r.body === undefined ? 'nil' : luaString(r.body)})`;
  });
  writeFileSync(file, `local reqs = {}\nlocal i = 0\ninit = function(args)\n  reqs = {\n${entries.join(',\n')}\n  }\nend\nrequest = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n`);
  return file;
}

const UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1000, m: 60_000 };

function timed(cmd: string, args: string[], seconds: number): { out: string; clientUs: number } {
  const r = spawnSync('/usr/bin/time', ['-f', 'client-cpu %U %S', cmd, ...args], { encoding: 'utf8', timeout: (seconds + 60) * 1000 });
  const m = /client-cpu ([\d.]+) ([\d.]+)/.exec(r.stderr);
  const rest = r.stderr.replace(/client-cpu .*\n?/, '').trim();
  // wrk prints a script error and then runs its default request (GET /): never count that.
  if (r.status !== 0 || m === null || rest !== '') throw new Error(`${cmd} failed (${r.status}): ${r.stderr.slice(0, 500)}${r.stdout.slice(0, 500)}`);
  return { out: r.stdout, clientUs: (Number(m[1]) + Number(m[2])) * 1e6 };
}

/** wrk with `threads` threads and `connections` keep-alive connections for `seconds`, sending what `script` (from `wrkScript`) says. */
export function runWrk(url: string, opts: { threads: number; connections: number; seconds: number; script: string }): ClientRun {
  const { out, clientUs } = timed('wrk', ['-t', String(opts.threads), '-c', String(opts.connections), '-d', `${Math.max(1, Math.round(opts.seconds))}s`, '--timeout', '30s', '--latency', '-s', opts.script, url], opts.seconds);
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)([KMG]?B) read/.exec(out);
  const pct = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(out);
    return m === null ? NaN : Number(m[1]) * UNIT_MS[m[2]!]!;
  };
  if (total === null) throw new Error(`wrk printed no totals:\n${out}`);
  const bad = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + [...out.matchAll(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/g)].reduce((n, m) => n + Number(m[1]) + Number(m[2]) + Number(m[3]) + Number(m[4]), 0);
  const answered = Number(total[1]);
  return { answered, ok: answered - bad, elapsed: (Number(total[2]) * UNIT_MS[total[3]!]!) / 1000, p50: pct('50'), p99: pct('99'), clientUs, bytesRead: Number(total[4]) * ({ B: 1, KB: 1024, MB: 2 ** 20, GB: 2 ** 30 } as Record<string, number>)[total[5]!]! };
}

/**
 * ab sending the one request `r` on `connections` connections for `seconds`: with `keepAlive`,
 * `ab -k` (HTTP/1.0 with `Connection: Keep-Alive`); without, a new connection per request (HTTP/1.0's default).
 */
export function runAb(url: string, r: ExternalRequest, opts: { connections: number; seconds: number; dir: string; keepAlive: boolean }): ClientRun {
  const args = [...(opts.keepAlive ? ['-k'] : []), '-q', '-c', String(opts.connections), '-t', String(opts.seconds), '-n', '100000000'];
  for (const [k, v] of Object.entries(r.headers)) if (k !== 'content-type') args.push('-H', `${k}: ${v}`);
  if (r.body !== undefined) {
    const file = join(opts.dir, 'ab-body');
    writeFileSync(file, r.body);
    args.push(r.method === 'PUT' ? '-u' : '-p', file, '-T', r.headers['content-type']!);
  }
  args.push(url + r.path);
  const { out, clientUs } = timed('ab', args, opts.seconds);
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  const answered = num(/Complete requests:\s+(\d+)/);
  const bad = num(/Failed requests:\s+(\d+)/) + Number(/Non-2xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  return { answered, ok: answered - bad, elapsed: num(/Time taken for tests:\s+([\d.]+)/), p50: num(/^\s+50%\s+(\d+)/m), p99: num(/^\s+99%\s+(\d+)/m), clientUs, bytesRead: num(/Total transferred:\s+(\d+)/) };
}
