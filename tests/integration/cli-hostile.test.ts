/**
 * The `quartz` CLI against odd input and odd servers: server URLs that cannot take a path, names
 * no URL can hold, binary values at a terminal, values streamed from stdin, a damaged saved
 * config, answers cut off or not shaped as the API's, and a reader slower than the topic.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { buildProgram } from '../../src/node/cli/program.js';
import { BIN, ROOT, cleanEnv, metric, runCli, startServerProcess, tempDir, waitFor, type ServerProcess } from './server-process.js';

let server: ServerProcess;
let env: Record<string, string>;
let home: string;
let apiKey: string;

beforeAll(async () => {
  server = await startServerProcess(['--data', await tempDir('cli-hostile-data')]);
  home = await tempDir('cli-hostile-home');
  env = { XDG_CONFIG_HOME: home, QUARTZ_URL: server.url };
  const reg = await runCli(['register', '--email', 'hostile@example.com', '-o', 'json', '--save'], env);
  expect(reg.code, reg.stderr).toBe(0);
  apiKey = (JSON.parse(reg.stdout) as { api_key: string }).api_key;
});

afterAll(async () => {
  await server?.stop();
});

const q = (args: string[], input?: string, extra: Record<string, string> = {}) => runCli(args, { ...env, ...extra }, input);

/**
 * One command run in this process (no node start-up per command, which takes seconds on a busy
 * machine), stdout a terminal when `terminal`: what it wrote and the error it ended with.
 */
async function inProcess(args: string[], options: { terminal?: boolean; extra?: Record<string, string> } = {}): Promise<{ out: Buffer; error: string | undefined }> {
  const stdout = Object.assign(new PassThrough(), { isTTY: options.terminal === true });
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  const io = { env: { ...env, ...options.extra }, stdout, stderr: new PassThrough(), stdin: new PassThrough() };
  const error = await buildProgram(io)
    .parseAsync(['node', 'quartz', ...args])
    .then(() => undefined, (err: unknown) => (err as Error).message);
  return { out: Buffer.concat(chunks), error };
}

/** A plain HTTP server answering every request with `listener`, closed after the test. */
async function stubServer(listener: RequestListener): Promise<string> {
  const stub = createHttpServer(listener);
  await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    stub.closeAllConnections();
    await new Promise((resolve) => stub.close(resolve));
  });
  return `http://127.0.0.1:${(stub.address() as AddressInfo).port}`;
}

describe('quartz CLI against hostile input', () => {
  it('refuses a server URL that cannot take a path, before any request', async () => {
    await q(['kv', 'put', 'k', 'the value']);
    // `http://h?x=1` + `/v1/kv/k` asked for `/` with a query: the landing page was printed as the value, exit 0.
    const query = await q(['kv', 'get', 'k'], undefined, { QUARTZ_URL: `${server.url}?x=1` });
    expect([query.code, query.stdout, query.stderr]).toEqual([1, '', `quartz: the server URL must not have a query or fragment ('?' or '#'), got '${server.url}?x=1'\n`]);
    for (const [url, line] of [
      [`${server.url}/#top`, `quartz: the server URL must not have a query or fragment ('?' or '#'), got '${server.url}/#top'`],
      [server.url.replace('http://', 'http://me:secret@'), 'quartz: the server URL must not hold a user name or password; give the API key with --api-key or QUARTZ_API_KEY'],
      ['http://[::1', "quartz: the server URL 'http://[::1' is not a valid URL"],
    ]) {
      const r = await inProcess(['kv', 'get', 'k'], { extra: { QUARTZ_URL: url! } });
      expect([r.out.length, r.error], url).toEqual([0, line]);
    }
    // A trailing slash is still fine.
    const slash = await q(['kv', 'get', 'k'], undefined, { QUARTZ_URL: `${server.url}/` });
    expect([slash.code, slash.stdout]).toEqual([0, 'the value']);
  }, 180_000);

  it("refuses '.' and '..' as names: a URL resolves them, so the request reached another route", async () => {
    // `kv get ..` asked for /v1/ and said the key was not found; `kv del .` reported 'no route'.
    const spawned = await q(['kv', 'get', '..']);
    expect([spawned.code, spawned.stderr]).toEqual([1, "quartz: the key cannot be '..': a URL resolves it as a path segment, so no request can name it\n"]);
    for (const name of ['.', '..']) {
      const refused = (what: string) => `quartz: ${what} cannot be '${name}': a URL resolves it as a path segment, so no request can name it`;
      const cases: Array<[string[], string]> = [
        [['kv', 'get', name], 'the key'],
        [['kv', 'put', name, 'v'], 'the key'],
        [['kv', 'del', name], 'the key'],
        [['topic', 'describe', name], 'the topic name'],
        [['topic', 'rm', name], 'the topic name'],
        [['consume', name], 'the topic name'],
        [['collection', 'rm', name], 'the collection name'],
        [['vec', 'query', name, '--id', 'a'], 'the collection name'],
        [['consume', 'no-such-topic', '--group', name], 'the group'],
      ];
      for (const [args, what] of cases) expect((await inProcess(args)).error, args.join(' ')).toBe(refused(what));
    }
  }, 180_000);

  it('does not write a binary value to a terminal, and writes it whole to a pipe', async () => {
    const file = join(home, 'value.bin');
    const bytes = Buffer.from([0x1b, 0x5d, 0x30, 0x3b, 0x70, 0x77, 0x6e, 0x07, 0x00, 0xff, 0xfe, 0x0a]);
    await writeFile(file, bytes);
    const put = await q(['kv', 'put', 'bin', '--file', file, '-o', 'json']);
    expect(put.code, put.stderr).toBe(0);
    expect(JSON.parse(put.stdout)).toMatchObject({ key: 'bin', size: bytes.length });
    // Valid UTF-8 with an escape sequence (it sets a terminal's title) is not plain text either.
    await q(['kv', 'put', 'esc', '\u001b]0;pwned\u0007ok']);

    const atTerminal = (key: string) => inProcess(['kv', 'get', key], { terminal: true });
    for (const key of ['bin', 'esc']) {
      const { out, error } = await atTerminal(key);
      expect(out.length, key).toBe(0);
      expect(error).toBe(`quartz: '${key}' holds 12 bytes that are not plain text; not written to the terminal (redirect it: \`quartz kv get … > file\`, or use -o json for base64)`);
    }
    await q(['kv', 'put', 'text', 'héllo\tworld']);
    expect((await atTerminal('text')).out.toString()).toBe('héllo\tworld\n');

    // To a pipe (or a file) the bytes go as they are.
    const piped = await new Promise<Buffer>((resolve) => {
      const proc = spawn(process.execPath, [BIN, 'kv', 'get', 'bin'], { env: cleanEnv(env), cwd: ROOT });
      const chunks: Buffer[] = [];
      proc.stdout.on('data', (c: Buffer) => chunks.push(c));
      proc.once('close', () => resolve(Buffer.concat(chunks)));
    });
    expect(piped.equals(bytes)).toBe(true);
    const dir = await q(['kv', 'put', 'k', '--file', home]);
    expect([dir.code, dir.stderr]).toEqual([1, `quartz: cannot read ${home} (EISDIR)\n`]);
  }, 180_000);

  it('streams a value from stdin: a too-large one is refused before stdin ends', async () => {
    const proc = spawn(process.execPath, [BIN, 'kv', 'put', 'huge'], { env: cleanEnv(env), cwd: ROOT });
    onTestFinished(() => void proc.kill('SIGKILL'));
    let stderr = '';
    proc.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.stdin.on('error', () => undefined); // the CLI stops reading once refused
    // More than the server's 25 MiB limit, and stdin is never closed: the whole value was read
    // into memory before anything was sent, so the CLI waited for ever (a 300 MB file took 1 GB).
    const chunk = Buffer.alloc(1 << 20, 0x61);
    for (let i = 0; i < 27 && proc.exitCode === null; i++) {
      if (!proc.stdin.write(chunk)) await Promise.race([once(proc.stdin, 'drain').catch(() => undefined), exited]);
    }
    const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 30_000))]);
    expect([code, stderr]).toEqual([1, 'quartz: request body is larger than 26214400 bytes (413 too_large)\n']);
    // A value that fits goes whole.
    const fits = await q(['kv', 'put', 'streamed', '-o', 'json'], 'x'.repeat(100_000));
    expect(JSON.parse(fits.stdout)).toMatchObject({ key: 'streamed', size: 100_000 });
    expect((await q(['kv', 'get', 'streamed'])).stdout).toBe('x'.repeat(100_000));
  }, 180_000);

  it('login replaces a damaged config, and keeps a hand-added admin_key for the same server only', async () => {
    const own = await tempDir('cli-hostile-login');
    const path = join(own, 'quartz', 'config.json');
    await mkdir(join(own, 'quartz'));
    await writeFile(path, '{"url": "http://127.0.0.1:1", "api_key": ');
    const damaged = await runCli(['usage'], { XDG_CONFIG_HOME: own });
    expect([damaged.code, damaged.stderr]).toEqual([1, `quartz: ${path} is not valid JSON; run \`quartz login\` again or delete it\n`]);
    // The error says to log in again: that must work.
    const login = await runCli(['login', '--url', server.url, '--api-key', apiKey], { XDG_CONFIG_HOME: own });
    expect([login.code, login.stderr]).toEqual([0, '']);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ url: server.url, api_key: apiKey });

    await writeFile(path, JSON.stringify({ url: `${server.url}/`, api_key: apiKey, admin_key: 'the-admin-key' }));
    expect((await runCli(['login', '--url', server.url, '--api-key', apiKey], { XDG_CONFIG_HOME: own })).code).toBe(0);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ url: server.url, api_key: apiKey, admin_key: 'the-admin-key' });
    // Another server must never be sent this one's admin key.
    const other = server.url.replace('127.0.0.1', 'localhost');
    expect((await runCli(['login', '--url', other, '--api-key', apiKey], { XDG_CONFIG_HOME: own })).code).toBe(0);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ url: other, api_key: apiKey });

    await writeFile(path, '[]');
    const save = await runCli(['register', '--email', 'again@example.com', '--save', '--url', server.url, '-o', 'json'], { XDG_CONFIG_HOME: own });
    expect([save.code, save.stderr]).toEqual([0, '']);
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ url: server.url, api_key: (JSON.parse(save.stdout) as { api_key: string }).api_key });
    await writeFile(path, '[]');
    const wrongShape = await runCli(['usage'], { XDG_CONFIG_HOME: own });
    expect(wrongShape.stderr).toBe(`quartz: ${path}: Invalid input: expected object, received array; run \`quartz login\` again or fix it\n`);
  }, 180_000);

  it('says so in one line when an answer is cut off, is not an object, or has a message of several lines', async () => {
    const cut = await stubServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000', etag: '"1"' });
      res.write('{"keys":[{"key":"a"');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    // It was 'quartz: terminated'.
    const spawned = await q(['kv', 'get', 'k'], undefined, { QUARTZ_URL: cut });
    expect([spawned.code, spawned.stdout, spawned.stderr]).toEqual([1, '', `quartz: the connection to ${cut} ended before the whole answer arrived (other side closed)\n`]);
    for (const args of [['kv', 'ls'], ['usage']]) {
      const r = await inProcess(args, { extra: { QUARTZ_URL: cut } });
      expect([r.out.length, r.error], args.join(' ')).toEqual([0, `quartz: the connection to ${cut} ended before the whole answer arrived (other side closed)`]);
    }
    // These were TypeErrors: "Cannot read properties of null (reading 'keys')".
    const nullish = await stubServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('null'));
    for (const args of [['kv', 'ls'], ['usage'], ['topic', 'ls'], ['consume', 't']]) {
      const r = await inProcess(args, { extra: { QUARTZ_URL: nullish } });
      expect(r.error, args.join(' ')).toBe(`quartz: ${nullish} answered 200 with JSON that is not an object; is it a QuartzDB server?`);
    }
    const lines = await stubServer((_req, res) => res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"internal","message":"it broke:\\n  at the disk"}'));
    // The line was cut at the message's newline, and with it the status: 'quartz: it broke:'.
    const r = await q(['usage'], undefined, { QUARTZ_URL: lines });
    expect([r.code, r.stderr]).toEqual([1, 'quartz: it broke: at the disk (500 internal)\n']);
  }, 180_000);

  it('writes an error that quotes input as one line, its control characters escaped', async () => {
    // The line was cut at the key's newline ("quartz: key 'a"), and the terminal ran the escape
    // sequence of the other key (the rest of the screen turned red).
    const newline = await q(['kv', 'get', 'a\nb']);
    expect([newline.code, newline.stderr]).toEqual([1, "quartz: key 'a\\nb' not found\n"]);
    const escape = await q(['kv', 'get', 'a\u001b[31mred\u0085']);
    expect([escape.code, escape.stderr]).toEqual([1, "quartz: key 'a\\u001b[31mred\\u0085' not found\n"]);
    // A typed backslash and n printed as the line break above did: 'a\nb' for both keys.
    const typed = await q(['kv', 'get', 'a\\nb']);
    expect([typed.code, typed.stderr]).toEqual([1, "quartz: key 'a\\\\nb' not found\n"]);
    // commander's own usage errors quote the argument as typed: the terminal cleared its screen.
    const option = await q(['kv', 'get', '--\u001b[2Jx\nfake']);
    expect(option.code).toBe(1);
    expect(option.stderr.split('\n')[0]).toBe("error: unknown option '--\\u001b[2Jx\\nfake'");
    expect(option.stderr).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    const command = await q(['kv', 'gte\u009b2J']);
    expect(command.stderr.split('\n')[0]).toBe("error: unknown command 'gte\\u009b2J'");
    // commander's suggestion keeps its own line.
    expect((await q(['kv', 'gte'])).stderr.split('\n').slice(0, 2)).toEqual(["error: unknown command 'gte'", '(Did you mean get?)']);
    const dir = await tempDir('cli-hostile-lines');
    const doc = join(dir, 'doc.json');
    await writeFile(doc, '[{"id":"a","values":[1,2,3]},\n oops]\n');
    const esc = join(dir, 'esc.jsonl');
    await writeFile(esc, '\u001b[2J\u001b[31mevil\n');
    // V8 words a JSON error; the line must hold it whole, with no control character.
    for (const [file, quoted] of [[doc, 'oops]'], [esc, '\\u001b[2J\\u001b[31mevil']] as const) {
      const r = await q(['vec', 'upsert', 'no-such-collection', '--file', file]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^quartz: [^\n]*\n$/);
      expect(r.stderr).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
      expect(r.stderr).toContain(quoted);
    }
    // An array is one document: its error, where it said "doc.json line 1 is not valid JSON (Unexpected end of JSON input)".
    const array = await q(['vec', 'upsert', 'no-such-collection', '--file', doc]);
    expect(array.stderr.startsWith(`quartz: ${doc} is not valid JSON (`), array.stderr).toBe(true);
  }, 180_000);

  it('shows control characters of keys, ids and metadata escaped in tables and confirmations, and exact in --output json', async () => {
    // Raw, `kv ls` set the terminal's title, split a row at the newline and cleared the screen.
    const key = 'tbl/\u001b]0;pwned\u0007\n\t\u009b2J';
    const shown = 'tbl/\\u001b]0;pwned\\u0007\\n\\t\\u009b2J';
    // What picocolors adds, when the test runner's terminal has colour, is not under test.
    const text = (out: Buffer): string => out.toString().replace(/\u001b\[\d+m/g, '');
    const put = await inProcess(['kv', 'put', key, 'v'], { terminal: true });
    expect([put.error, text(put.out)]).toEqual([undefined, `✔ put '${shown}' (1 byte)\n`]);
    const table = text((await inProcess(['kv', 'ls', '--prefix', 'tbl/'], { terminal: true })).out);
    expect(table).toContain(shown);
    expect(table).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    const json = await inProcess(['kv', 'ls', '--prefix', 'tbl/', '-o', 'json'], { terminal: true });
    expect((JSON.parse(json.out.toString()) as { keys: { key: string }[] }).keys.map((k) => k.key)).toEqual([key]);

    const collection = await inProcess(['collection', 'create', 'tbl', '--dims', '2'], { terminal: true });
    expect(collection.error).toBeUndefined();
    const file = join(await tempDir('cli-hostile-table'), 'v.jsonl');
    await writeFile(file, JSON.stringify({ id: 'a\u001b[2J', values: [1, 0], metadata: { note: 'x\u009b31m' } }) + '\n');
    expect((await inProcess(['vec', 'upsert', 'tbl', '--file', file])).error).toBeUndefined();
    const matches = text((await inProcess(['vec', 'query', 'tbl', '--vector', '[1,0]', '--include-metadata'], { terminal: true })).out);
    expect(matches).toContain('a\\u001b[2J');
    expect(matches).toContain('x\\u009b31m');
    expect(matches).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  }, 180_000);

  it('produce stopped by Ctrl-C while its last batch is on the way waits for the answer and says how far it got', async () => {
    // A server that holds the produce request until the test lets it answer.
    let arrived!: () => void;
    const requested = new Promise<void>((resolve) => (arrived = resolve));
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const held = await stubServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (s: string) => (body += s));
      req.on('end', () => {
        const records = (JSON.parse(body) as { records: unknown[] }).records;
        arrived();
        void answered.then(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ offsets: records.map((_r, offset) => ({ partition: 0, offset })) })));
      });
    });
    const proc = spawn(process.execPath, [BIN, 'produce', 't'], { env: cleanEnv({ ...env, QUARTZ_URL: held, QUARTZ_API_KEY: apiKey }), cwd: ROOT });
    onTestFinished(() => void proc.kill('SIGKILL'));
    let stderr = '';
    proc.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => proc.once('exit', (code, signal) => resolve([code, signal])));
    // The whole input is read; only the answer is awaited when Ctrl-C comes.
    proc.stdin.end('one\ntwo\n');
    await requested;
    proc.kill('SIGINT');
    // Not a timing assertion: the signal is handled before the answer it must wait for.
    await new Promise((resolve) => setTimeout(resolve, 500));
    answer();
    // It was killed by the signal, saying nothing, though both records were stored.
    expect(await exited).toEqual([130, null]);
    expect(stderr).toBe('quartz: produce stopped by SIGINT after line 2 of stdin; 2 record(s) were produced\n');
  }, 180_000);

  it('vec upsert sends JSONL batch by batch as it reads: a missing collection is found before the input ends', async () => {
    const proc = spawn(process.execPath, [BIN, 'vec', 'upsert', 'no-such-collection', '--file', '-', '--batch', '2'], { env: cleanEnv(env), cwd: ROOT });
    onTestFinished(() => void proc.kill('SIGKILL'));
    let stderr = '';
    proc.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.stdin.on('error', () => undefined);
    // stdin stays open: the whole input was read and parsed before the first request.
    proc.stdin.write('{"id":"a","values":[1,0]}\n{"id":"b","values":[0,1]}\n{"id":"c","values":[1,1]}\n');
    const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 30_000))]);
    expect([code, stderr]).toEqual([1, "quartz: collection 'no-such-collection' does not exist (404 not_found)\n"]);

    expect((await q(['collection', 'create', 'lines', '--dims', '2'])).code).toBe(0);
    const bad = await q(['vec', 'upsert', 'lines', '--file', '-', '--batch', '2'], '{"id":"a","values":[1,0]}\n\n{"id":"b","values":[0,1]}\n{oops\n');
    expect([bad.code, bad.stderr]).toEqual([1, "quartz: stdin line 4 is not valid JSON (Expected property name or '}' in JSON at position 1); 2 vectors were upserted before it\n"]);
    // One JSON document over several lines is still read whole.
    const whole = await q(['vec', 'upsert', 'lines', '--file', '-', '-o', 'json'], '{\n  "vectors": [\n    {"id": "c", "values": [1, 1]}\n  ]\n}\n');
    expect([whole.code, JSON.parse(whole.stdout)]).toEqual([0, { collection: 'lines', upserted: 1 }]);
    const listed = JSON.parse((await q(['collection', 'ls', '-o', 'json'])).stdout) as { collections: { name: string; count: number }[] };
    expect(listed.collections.find((c) => c.name === 'lines')?.count).toBe(3);
  }, 180_000);

  it('vec upsert stopped by Ctrl-C sends the lines it read, none cut short, and says how far it got', async () => {
    expect((await q(['collection', 'create', 'stopped', '--dims', '2'])).code).toBe(0);
    const count = async (): Promise<number> => {
      const res = await fetch(`${server.url}/v1/collections/stopped`, { headers: { authorization: `Bearer ${apiKey}` } });
      return ((await res.json()) as { count: number }).count;
    };
    const proc = spawn(process.execPath, [BIN, 'vec', 'upsert', 'stopped', '--file', '-', '--batch', '2'], { env: cleanEnv(env), cwd: ROOT });
    onTestFinished(() => void proc.kill('SIGKILL'));
    let stderr = '';
    proc.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => proc.once('exit', (code, signal) => resolve([code, signal])));
    proc.stdin.on('error', () => undefined);
    // A batch of two goes at once; the third line waits for a fourth, which is cut short.
    proc.stdin.write('{"id":"a","values":[1,0]}\n{"id":"b","values":[0,1]}\n{"id":"c","values":[1,1]}\n{"id":"d","val');
    await waitFor(async () => ((await count()) === 2 ? true : undefined), 30_000, 'the first batch');
    proc.kill('SIGINT');
    // It was killed by the signal, saying nothing. The signal may come before the CLI has the first
    // batch's answer, and so before it reads line 3: either way the line named and the count are exact.
    expect(await exited).toEqual([130, null]);
    const [, line, upserted] = /^quartz: vec upsert stopped by SIGINT after line (\d) of stdin; (\d) vectors were upserted\n$/.exec(stderr) ?? [];
    expect(['2 2', '3 3'], stderr).toContain(`${line} ${upserted}`);
    expect(await count()).toBe(Number(upserted));
  }, 180_000);

  it('consume reads no further ahead than its reader: the next page waits for stdout to drain', async () => {
    expect((await q(['topic', 'create', 'wide'])).code).toBe(0);
    const value = 'v'.repeat(1000);
    const produced = await q(['produce', 'wide', '-o', 'json'], `${value}\n`.repeat(2000));
    expect(JSON.parse(produced.stdout)).toEqual({ topic: 'wide', produced: 2000 });
    const pages = () => metric(server.url, 'quartz_http_requests_total{route="/v1/topics/:t/partitions/:p/records",method="GET",status="200"}');
    const before = await pages();
    // stdout is not read: after the first page (500 kB) the pipe is full.
    const proc = spawn(process.execPath, [BIN, 'consume', 'wide', '--from-beginning'], { env: cleanEnv(env), cwd: ROOT });
    onTestFinished(() => void proc.kill('SIGKILL'));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    await waitFor(async () => ((await pages()) > before ? true : undefined), 20_000, 'the first page');
    // Without waiting it asked for all four pages at once and held them in memory.
    const asked = await waitFor(async () => ((await pages()) - before >= 3 ? 'read ahead' : undefined), 3_000, 'more pages').catch(() => 'waited');
    expect(asked).toBe('waited');
    let lines = 0;
    proc.stdout.setEncoding('utf8').on('data', (s: string) => (lines += s.split('\n').length - 1));
    expect(await exited).toBe(0);
    expect(lines).toBe(2000);
  }, 180_000);
});
