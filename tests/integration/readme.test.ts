/**
 * README.md cannot drift: its quick start runs as a newcomer would type it, in a fresh directory
 * standing in for the checkout, against `quartz serve` started there with its defaults (data in
 * `./.quartz`): the banner it shows, the curl lines, and every line of the CLI block, through
 * bash, with `quartz` the checkout's `bin/quartz.js`. Only the port differs (0, not 8787), and the
 * `KEY=qz_…` placeholder takes the key the register line printed.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bannerOf, BIN, cleanEnv, readiness, ROOT, STARTUP_BOUND_MS, tempDir } from './server-process.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const fence = (lang: string): string[] => [...readme.matchAll(new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, 'gm'))].map((m) => m[1]!);
const shBlocks = fence('sh');
const banner = /^```\n(QuartzDB listening[\s\S]*?)^```$/m.exec(readme)?.[1];
const curlBlock = shBlocks.find((b) => b.includes('curl'))!;
const cliBlock = shBlocks.find((b) => b.includes('quartz register'))!;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Whether it was still running when interrupted. */
  interrupted: boolean;
}

/** Runs one line of shell in `cwd`, with `quartz` defined as the checkout's CLI. */
function bash(line: string, cwd: string, env: Record<string, string>, interruptAfterMs?: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const script = `quartz() { "${process.execPath}" "${BIN}" "$@"; }\nset -o pipefail\n${line}\n`;
    const proc = spawn('bash', ['-c', script], { cwd, env: cleanEnv(env), detached: interruptAfterMs !== undefined });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    proc.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    // Ctrl-C reaches the whole foreground job: the process group.
    let interrupted = false;
    const interrupt =
      interruptAfterMs === undefined
        ? undefined
        : setTimeout(() => {
            interrupted = true;
            process.kill(-proc.pid!, 'SIGINT');
          }, interruptAfterMs);
    const limit = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${line} did not finish in 40 s\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 40_000);
    proc.once('error', reject);
    proc.once('close', (code, signal) => {
      clearTimeout(limit);
      clearTimeout(interrupt);
      resolve({ code, signal, stdout, stderr, interrupted });
    });
  });
}

describe('README.md quick start', () => {
  let server: ReturnType<typeof spawn> | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    server?.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs as written: the banner, the curl lines and every CLI line', { timeout: 240_000 }, async () => {
    expect(banner).toBeDefined();
    expect(curlBlock).toBeDefined();
    expect(cliBlock).toBeDefined();
    dir = await tempDir('readme');
    const env = { XDG_CONFIG_HOME: join(dir, 'config') };
    const proc = spawn(process.execPath, [BIN, 'serve', '--port', '0'], { cwd: dir, env: cleanEnv(env) });
    server = proc;
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    proc.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const [, url, port] = await readiness(proc, /"msg":"QuartzDB listening on (http:\/\/127\.0\.0\.1:(\d+))"\}\n/, () => ({ stdout: out, stderr: err }), STARTUP_BOUND_MS);
    // stdout is a pipe here, so the banner is its JSON line: the README's lines (a terminal's) hold its facts.
    const shown = bannerOf(out)!;
    expect(out).toBe(JSON.stringify(shown) + '\n');
    const people = [`QuartzDB listening on ${shown.url}`, `  API docs:  ${shown.docs}`, `  metrics:   ${shown.metrics}`, `  data:      ${shown.data_dir}`, `  admin key: ${shown.admin_key}${shown.admin_key_generated === true ? ' (generated now)' : ''}`];
    expect(people.join('\n') + '\n').toBe(banner!.replaceAll(':8787', `:${port}`));
    expect((await stat(join(dir, '.quartz'))).mode & 0o777).toBe(0o700);

    // The curl lines, one at a time; the placeholder line takes the key the register line printed.
    let key = '';
    let last: Run | undefined;
    for (const line of curlBlock.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'))) {
      if (line.startsWith('KEY=')) {
        key = (JSON.parse(last!.stdout) as { api_key: string }).api_key;
        continue;
      }
      last = await bash(line.replaceAll('localhost:8787', `127.0.0.1:${port}`), dir, { ...env, KEY: key });
      expect(last.code, `${line}\n${last.stderr}`).toBe(0);
    }
    expect(key).toMatch(/^qz_[0-9a-f]{64}$/);
    expect(last!.stdout).toBe('hello');

    // The CLI lines in order; the last one follows until Ctrl-C.
    const cliEnv = { ...env, QUARTZ_URL: url! };
    const lines = cliBlock.split('\n').filter((l) => l.trim() !== '');
    const outputs: string[] = [];
    for (const line of lines) {
      const follows = line.includes('--follow');
      const run = await bash(line, dir, cliEnv, follows ? 5_000 : undefined);
      if (follows) {
        // It waits until Ctrl-C; on a loaded machine the Ctrl-C may come before node heeds it.
        expect(run.interrupted, `${line}\n${run.stderr}`).toBe(true);
        if (run.signal !== 'SIGINT') expect(run.code, `${line}\n${run.stderr}`).toBe(0);
      } else expect(run.code, `${line}\n${run.stderr}`).toBe(0);
      expect(run.stderr, line).toBe('');
      outputs.push(run.stdout);
    }
    const said = (command: string): string => outputs[lines.findIndex((l) => l.startsWith(command))]!;
    expect(said('quartz kv put greeting hello')).toMatch(/hello$/);
    expect(said('seq 1 100 | quartz produce orders')).toContain('produced 100 records');
    expect(said('quartz consume orders --from-beginning --max 5').trim().split('\n')).toHaveLength(5);
    expect(said('quartz vec query docs')).toMatch(/│ a +│ 1 +│/);
    expect((await stat(join(dir, 'snapshot.qzb'))).size).toBeGreaterThan(0);
    expect((await stat(join(dir, 'restored', 'kv.mdb'))).isFile()).toBe(true);
    expect(JSON.parse(await readFile(join(dir, 'config', 'quartz', 'config.json'), 'utf8'))).toMatchObject({ url: url });
  });
});
