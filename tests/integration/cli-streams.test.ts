/**
 * `quartz produce` and `quartz consume` with what a user's data holds: lines that are not UTF-8,
 * values a terminal would act on, and a consumer group that fell behind retention. Against a
 * real server process; the commands run in this process (no node start-up per command).
 */
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/node/cli/program.js';
import { runCli, startServerProcess, tempDir, waitFor, type ServerProcess } from './server-process.js';

let server: ServerProcess;
let env: Record<string, string>;
let apiKey: string;

beforeAll(async () => {
  server = await startServerProcess(['--data', await tempDir('cli-streams-data')]);
  env = { XDG_CONFIG_HOME: await tempDir('cli-streams-home'), QUARTZ_URL: server.url };
  const reg = await runCli(['register', '--email', 'streams@example.com', '-o', 'json', '--save'], env);
  expect(reg.code, reg.stderr).toBe(0);
  apiKey = (JSON.parse(reg.stdout) as { api_key: string }).api_key;
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

/** One command in this process: its stdout and stderr bytes and the error it ended with. */
async function quartz(args: string[], options: { stdin?: Buffer; terminal?: boolean } = {}): Promise<{ out: Buffer; err: string; error: string | undefined }> {
  const stdout = Object.assign(new PassThrough(), { isTTY: options.terminal === true });
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const stdin = new PassThrough();
  stdin.end(options.stdin ?? Buffer.alloc(0));
  const error = await buildProgram({ env, stdout, stderr, stdin })
    .parseAsync(['node', 'quartz', ...args])
    .then(() => undefined, (e: unknown) => (e as Error).message);
  return { out: Buffer.concat(out), err: Buffer.concat(err).toString(), error };
}

async function api(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

describe('quartz produce and consume keep the bytes', () => {
  it('produces every line byte for byte, UTF-8 or not, and consume writes them back to a pipe', async () => {
    expect((await api('POST', '/v1/topics', { name: 'bytes' })).status).toBe(201);
    const lines = [
      Buffer.from('\uFEFFstarts with a byte-order mark'),
      Buffer.from([0x78, 0xff, 0xfe, 0x79]), // not UTF-8: was stored as x\uFFFD\uFFFDy
      Buffer.from('ends with CR LF'),
      Buffer.from([0xed, 0xa0, 0x80]), // an encoded lone surrogate, which UTF-8 cannot hold
      Buffer.from('plain'),
      Buffer.from([0x6c, 0x61, 0x73, 0x74, 0xc3]), // the last line, no newline, cut mid-character
    ];
    const input = Buffer.concat([lines[0]!, Buffer.from('\n'), lines[1]!, Buffer.from('\n\n'), lines[2]!, Buffer.from('\r\n'), lines[3]!, Buffer.from('\n'), lines[4]!, Buffer.from('\n'), lines[5]!]);
    const produced = await quartz(['produce', 'bytes', '--key', 'k', '-o', 'json'], { stdin: input });
    expect(produced.error).toBeUndefined();
    expect(JSON.parse(produced.out.toString())).toEqual({ topic: 'bytes', produced: 6 });

    const json = await quartz(['consume', 'bytes', '-o', 'json']);
    const records = json.out.toString().trim().split('\n').map((l) => JSON.parse(l) as { key: string; value: string; encoding: string });
    const bytesOf = (r: { value: string; encoding: string }) => Buffer.from(r.value, r.encoding === 'base64' ? 'base64' : 'utf8');
    expect(records.map(bytesOf)).toEqual(lines);
    expect(records.map((r) => r.encoding)).toEqual(['utf8', 'base64', 'utf8', 'base64', 'utf8', 'base64']);
    // The key is the same bytes whichever encoding its record took.
    expect(records.map((r) => Buffer.from(r.key, r.encoding === 'base64' ? 'base64' : 'utf8').toString())).toEqual(Array(6).fill('k'));

    // To a pipe, each value's own bytes (a base64 record printed its base64 text).
    const piped = await quartz(['consume', 'bytes']);
    expect(piped.error).toBeUndefined();
    expect(piped.out).toEqual(Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])));
  }, 60_000);

  it('writes no value that is not plain text to a terminal, and says which records it left out', async () => {
    expect((await api('POST', '/v1/topics', { name: 'screen' })).status).toBe(201);
    const answer = await api('POST', '/v1/topics/screen/records', {
      records: [{ value: 'before' }, { value: '\u001b]0;owned\u0007' }, { value: '/w==', encoding: 'base64' }, { value: null }, { value: 'after\ttab' }],
    });
    expect(answer.status).toBe(200);
    const shown = await quartz(['consume', 'screen'], { terminal: true });
    expect(shown.error).toBeUndefined();
    expect(shown.out.toString()).toBe('before\n\nafter\ttab\n');
    expect(shown.err).toBe(
      [
        'quartz: partition 0 offset 1 holds 10 bytes that are not plain text; not written to the terminal (redirect it, or use -o json for base64)',
        'quartz: partition 0 offset 2 holds 1 byte that are not plain text; not written to the terminal (redirect it, or use -o json for base64)',
        '',
      ].join('\n'),
    );
  }, 60_000);
});

describe('quartz consume --group behind retention', () => {
  it('resumes at the log start and commits it, where every run failed with offset_out_of_range', async () => {
    expect((await api('POST', '/v1/topics', { name: 'expiring', segment_ms: 50, retention_ms: 200 })).status).toBe(201);
    expect((await api('POST', '/v1/topics/expiring/records', { records: [{ value: 'a' }, { value: 'b' }, { value: 'c' }] })).status).toBe(200);
    expect((await api('POST', '/v1/groups/late/offsets', { topic: 'expiring', partition: 0, offset: 1 })).status).toBe(204);
    await waitFor(
      async () => {
        const d = (await (await api('GET', '/v1/topics/expiring')).json()) as { partition_info: { log_start_offset: number }[] };
        return d.partition_info[0]!.log_start_offset === 3 ? true : undefined;
      },
      20_000,
      'retention to remove offsets 0-2',
    );
    const empty = await quartz(['consume', 'expiring', '--group', 'late']);
    expect([empty.error, empty.out.toString()]).toEqual([undefined, '']);
    expect(empty.err).toBe("quartz: group 'late' is at offset 1 of partition 0, before its log start 3 (retention removed those records); reading from 3\n");
    const offsets = (await (await api('GET', '/v1/groups/late/offsets?topic=expiring')).json()) as { offsets: { offset: number }[] };
    expect(offsets.offsets[0]!.offset).toBe(3);

    expect((await api('POST', '/v1/topics/expiring/records', { records: [{ value: 'd' }, { value: 'e' }] })).status).toBe(200);
    const next = await quartz(['consume', 'expiring', '--group', 'late']);
    expect([next.error, next.out.toString(), next.err]).toEqual([undefined, 'd\ne\n', '']);
  }, 60_000);
});
