/**
 * The `quartz` CLI driven as a user would: spawned processes against a real server — register,
 * login, kv, topics, produce from stdin, consume --follow, consumer groups, vectors, --output
 * json, and one-line errors with non-zero exit codes.
 */
import { spawn } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { BIN, ROOT, cleanEnv, metric, runCli, startServerProcess, tempDir, waitFor, type ServerProcess } from './server-process.js';
import { freePort } from '../fixtures/free-port.js';

let server: ServerProcess;
let env: Record<string, string>;
let home: string;

beforeAll(async () => {
  server = await startServerProcess(['--data', await tempDir('cli-data')]);
  home = await tempDir('cli-home');
  // Only the config dir: the URL and key must come from `quartz login`.
  env = { XDG_CONFIG_HOME: home };
});

afterAll(async () => {
  await server?.stop();
});

const q = (args: string[], input?: string, extra: Record<string, string> = {}) => runCli(args, { ...env, ...extra }, input);

function ok(r: { code: number | null; stderr: string }): void {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
}

describe('quartz CLI end to end', () => {
  it('registers, logs in and stores the config privately', async () => {
    const reg = await q(['register', '--email', 'cli@example.com', '--output', 'json', '--url', server.url]);
    ok(reg);
    const { api_key, user_id } = JSON.parse(reg.stdout) as { api_key: string; user_id: string };
    expect(api_key).toMatch(/^qz_[0-9a-f]{64}$/);

    // The key on stdin, as `echo $KEY | quartz login` would.
    const login = await q(['login', '--url', server.url], `${api_key}\n`);
    ok(login);
    expect(login.stdout).toContain(`logged in to ${server.url} as tenant ${user_id}`);
    const path = join(home, 'quartz', 'config.json');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ url: server.url, api_key });

    const bad = await q(['login', '--url', server.url, '--api-key', `qz_${'0'.repeat(64)}`]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^quartz: .+\(401 unauthorized\)\n$/);
  });

  it('puts, gets, lists and deletes keys', async () => {
    ok(await q(['kv', 'put', 'user/42', 'hello world']));
    ok(await q(['kv', 'put', 'user/43'], 'from stdin'));
    const got = await q(['kv', 'get', 'user/42']);
    ok(got);
    expect(got.stdout).toBe('hello world');
    expect((await q(['kv', 'get', 'user/43'])).stdout).toBe('from stdin');
    // An argument is text unless --content-type says otherwise, even when it names the stdin default.
    const json = async (k: string) => JSON.parse((await q(['kv', 'get', k, '-o', 'json'])).stdout) as { content_type: string; encoding: string; value: string };
    expect(await json('user/42')).toMatchObject({ content_type: 'text/plain; charset=utf-8', encoding: 'utf8' });
    expect(await json('user/43')).toMatchObject({ content_type: 'application/octet-stream' });
    // A value's leading U+FEFF is part of it, as any other character.
    ok(await q(['kv', 'put', 'bom'], '\uFEFFhi'));
    expect(await json('bom')).toMatchObject({ value: '\uFEFFhi', encoding: 'utf8' });
    ok(await q(['kv', 'del', 'bom']));
    ok(await q(['kv', 'put', 'raw', 'abc', '--content-type', 'application/octet-stream']));
    expect(await json('raw')).toMatchObject({ content_type: 'application/octet-stream' });
    ok(await q(['kv', 'del', 'raw']));
    const ls = await q(['kv', 'ls', '--prefix', 'user/', '-o', 'json']);
    ok(ls);
    expect((JSON.parse(ls.stdout) as { keys: { key: string }[] }).keys.map((k) => k.key)).toEqual(['user/42', 'user/43']);
    const table = await q(['kv', 'ls']);
    expect(table.stdout).toContain('user/42');
    expect(table.stdout).toContain('┌');
    ok(await q(['kv', 'del', 'user/43']));
    const gone = await q(['kv', 'get', 'user/43']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe("quartz: key 'user/43' not found\n");
  }, 180_000);

  it('creates a topic with every setting the create body takes', async () => {
    const flags = ['--partitions', '3', '--retention-ms', '-1', '--retention-bytes', '1048576', '--segment-bytes', '65536', '--segment-ms', '60000', '--compression', 'none'];
    ok(await q(['topic', 'create', 'tuned', ...flags]));
    const described = JSON.parse((await q(['topic', 'describe', 'tuned', '-o', 'json'])).stdout) as Record<string, unknown>;
    expect(described).toMatchObject({ partitions: 3, retention_ms: -1, retention_bytes: 1048576, segment_bytes: 65536, segment_ms: 60000, compression: 'none' });
    ok(await q(['topic', 'rm', 'tuned'])); // the tests after this one list every topic
  });

  it('creates a topic, produces from stdin, follows and commits group offsets', async () => {
    ok(await q(['topic', 'create', 'events', '--partitions', '2']));
    const produced = await q(['produce', 'events', '--output', 'json'], 'one\ntwo\nthree\n');
    ok(produced);
    expect(JSON.parse(produced.stdout)).toEqual({ topic: 'events', produced: 3 });
    const all = await q(['consume', 'events', '--from-beginning']);
    ok(all);
    expect(all.stdout.split('\n').filter(Boolean).sort()).toEqual(['one', 'three', 'two']);

    const described = await q(['topic', 'describe', 'events', '-o', 'json']);
    const d = JSON.parse(described.stdout) as { partition_info: { high_watermark: number }[] };
    expect(d.partition_info.reduce((a, p) => a + p.high_watermark, 0)).toBe(3);

    // consume --follow: read its stdout until the new records arrive, then stop it.
    const describeCalls = () => metric(server.url, 'quartz_http_requests_total{route="/v1/topics/:t",method="GET",status="200"}');
    const describesBefore = await describeCalls();
    const follower = spawn(process.execPath, [BIN, 'consume', 'events', '--follow', '--partition', '0', '-o', 'json'], { env: cleanEnv(env), cwd: ROOT });
    let out = '';
    follower.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    const followerExit = new Promise<number | null>((r) => follower.once('exit', (code) => r(code)));
    onTestFinished(() => void follower.kill('SIGKILL')); // it follows forever if the test fails first
    // It starts at the end of the log as its describe call found it: produce only once that call
    // is answered (a fixed sleep could end first on a busy machine, and it then missed the records).
    await waitFor(async () => ((await describeCalls()) > describesBefore ? true : undefined), 20_000, 'the follower to find the end of the log');
    ok(await q(['produce', 'events', '--partition', '0'], 'live-1\nlive-2\n'));
    const lines = await waitFor(() => {
      const l = out.split('\n').filter(Boolean);
      return l.length >= 2 ? l : undefined;
    }, 15_000, 'the followed records');
    const records = lines.map((l) => JSON.parse(l) as { value: string; partition: number; offset: number });
    expect(records.map((r) => r.value)).toEqual(['live-1', 'live-2']);
    expect(records.every((r) => r.partition === 0)).toBe(true);
    follower.kill('SIGINT');
    expect(await followerExit).toBe(0);

    // A group reads some, commits, and the next run continues after them.
    const first = await q(['consume', 'events', '--group', 'g1', '--partition', '0', '--max', '2', '--from-beginning']);
    ok(first);
    const rest = await q(['consume', 'events', '--group', 'g1', '--partition', '0']);
    ok(rest);
    const p0 = (await q(['consume', 'events', '--partition', '0', '--from-beginning'])).stdout.split('\n').filter(Boolean);
    expect([...first.stdout.split('\n').filter(Boolean), ...rest.stdout.split('\n').filter(Boolean)]).toEqual(p0);
    expect(first.stdout.split('\n').filter(Boolean)).toHaveLength(2);
    const again = await q(['consume', 'events', '--group', 'g1', '--partition', '0']);
    expect(again.stdout).toBe('');
    // A group over every partition: the loops' commits go together, and the next run has nothing left.
    ok(await q(['produce', 'events', '--partition', '1'], 'p1-a\np1-b\n'));
    const whole = await q(['consume', 'events', '--group', 'g2']);
    ok(whole);
    expect(whole.stdout.split('\n').filter(Boolean)).toHaveLength(7);
    expect((await q(['consume', 'events', '--group', 'g2'])).stdout).toBe('');
    // A server from before the several-partition commit (its body schema wants `partition`): the
    // CLI commits one partition a request there, and the next run has nothing left either.
    const older = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.method === 'POST' && req.url?.endsWith('/offsets') && 'offsets' in (JSON.parse(body.toString()) as object)) {
          res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid_argument","message":"partition: Invalid input: expected number, received undefined"}');
          return;
        }
        const headers = Object.fromEntries(Object.entries(req.headers).filter(([n]) => n === 'authorization' || n === 'content-type')) as Record<string, string>;
        void fetch(`${server.url}${req.url}`, { method: req.method, headers, body: body.length > 0 ? body : undefined }).then(async (answer) => {
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(Buffer.from(await answer.arrayBuffer()));
        });
      });
    });
    await new Promise<void>((resolve) => older.listen(0, '127.0.0.1', resolve));
    try {
      const olderUrl = { QUARTZ_URL: `http://127.0.0.1:${(older.address() as AddressInfo).port}` };
      const viaOlder = await q(['consume', 'events', '--group', 'g3'], undefined, olderUrl);
      ok(viaOlder);
      expect(viaOlder.stdout.split('\n').filter(Boolean)).toHaveLength(7);
      expect((await q(['consume', 'events', '--group', 'g3'], undefined, olderUrl)).stdout).toBe('');
    } finally {
      older.closeAllConnections();
      await new Promise((resolve) => older.close(resolve));
    }

    const topics = await q(['topic', 'ls', '-o', 'json']);
    expect((JSON.parse(topics.stdout) as { topics: { name: string }[] }).topics.map((t) => t.name)).toEqual(['events']);
    ok(await q(['topic', 'rm', 'events']));
    const missing = await q(['consume', 'events']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^quartz: .*events.*\(404 not_found\)\n$/);
  }, 180_000);

  it('stops produce at Ctrl-C once the lines it read are sent, and says after which line', async () => {
    // A tenant of its own: the tests after this one count the logged-in tenant's topics and usage.
    const reg = await q(['register', '--email', 'interrupted@example.com', '-o', 'json', '--url', server.url]);
    ok(reg);
    const own = { QUARTZ_URL: server.url, QUARTZ_API_KEY: (JSON.parse(reg.stdout) as { api_key: string }).api_key };
    ok(await q(['topic', 'create', 'interrupted'], undefined, own));
    const watermark = async (): Promise<number> => (JSON.parse((await q(['topic', 'describe', 'interrupted', '-o', 'json'], undefined, own)).stdout) as { partition_info: { high_watermark: number }[] }).partition_info[0]!.high_watermark;
    // Batches of 2 that never linger out: line 3 waits in the CLI for more lines or the end.
    const producer = spawn(process.execPath, [BIN, 'produce', 'interrupted', '--batch', '2', '--linger-ms', '600000'], { env: cleanEnv({ ...env, ...own }), cwd: ROOT });
    let stderr = '';
    producer.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exit = new Promise<[number | null, NodeJS.Signals | null]>((r) => producer.once('exit', (code, signal) => r([code, signal])));
    onTestFinished(() => void producer.kill('SIGKILL'));
    producer.stdin.write('one\ntwo\nthree\n');
    await waitFor(async () => ((await watermark()) === 2 ? true : undefined), 20_000, 'the first batch');
    producer.kill('SIGINT');
    // It ended at once, killed by the signal, saying nothing, and 'three' was never sent.
    expect(await exit).toEqual([130, null]);
    expect(stderr).toBe('quartz: produce stopped by SIGINT after line 3 of stdin; 3 record(s) were produced\n');
    expect(await watermark()).toBe(3);
  }, 120_000);

  it('creates a collection, upserts from JSONL and queries', async () => {
    ok(await q(['collection', 'create', 'docs', '--dims', '3', '--metric', 'cosine']));
    const file = join(home, 'vectors.jsonl');
    await writeFile(file, ['{"id":"a","values":[1,0,0],"metadata":{"tag":"x"}}', '{"id":"b","values":[0,1,0]}', '{"id":"c","values":[0,0,1]}'].join('\n') + '\n');
    const up = await q(['vec', 'upsert', 'docs', '--file', file, '-o', 'json']);
    ok(up);
    expect(JSON.parse(up.stdout)).toEqual({ collection: 'docs', upserted: 3 });
    const res = await q(['vec', 'query', 'docs', '--vector', '[0.9,0.1,0]', '-k', '2', '--include-metadata', '-o', 'json']);
    ok(res);
    const { matches } = JSON.parse(res.stdout) as { matches: { id: string; metadata?: unknown }[] };
    expect(matches.map((m) => m.id)).toEqual(['a', 'b']);
    expect(matches[0]!.metadata).toEqual({ tag: 'x' });
    // -k wins over the query file's k, as the other flags do; the file's k over the default.
    const queryFile = join(home, 'query.json');
    await writeFile(queryFile, JSON.stringify({ vector: [0.9, 0.1, 0], k: 1 }));
    const count = async (args: string[]) => (JSON.parse((await q(['vec', 'query', 'docs', '--file', queryFile, '-o', 'json', ...args])).stdout) as { matches: unknown[] }).matches.length;
    expect(await count(['-k', '3'])).toBe(3);
    expect(await count([])).toBe(1);
    // --threshold and --ef reach the query as the API's threshold and ef (flags over the file's).
    const ids = async (args: string[]) => (JSON.parse((await q(['vec', 'query', 'docs', '--vector', '[0.9,0.1,0]', '-k', '3', '-o', 'json', ...args])).stdout) as { matches: { id: string }[] }).matches.map((m) => m.id);
    expect(await ids(['--threshold', '0.5'])).toEqual(['a']);
    expect(await ids(['--threshold', '-1e-3'])).toEqual(['a', 'b', 'c']);
    expect(await ids(['--ef', '1'])).toEqual(['a', 'b', 'c']);
    expect(await ids(['--ef', '10000', '--threshold', '.05'])).toEqual(['a', 'b']);
    for (const [flag, value, message] of [
      ['--threshold', 'high', "quartz: --threshold must be a number, got 'high'\n"],
      ['--threshold', 'Infinity', "quartz: --threshold must be a number, got 'Infinity'\n"],
      ['--threshold', '0x10', "quartz: --threshold must be a number, got '0x10'\n"],
      ['--ef', '0', "quartz: --ef must be an integer ≥ 1, got '0'\n"],
      ['--ef', '1.5', "quartz: --ef must be an integer ≥ 1, got '1.5'\n"],
      ['--ef', '10001', "quartz: --ef must be at most 10000, got '10001'\n"],
    ] as const) {
      const bad = await q(['vec', 'query', 'docs', '--vector', '[0.9,0.1,0]', flag, value]);
      expect([bad.code, bad.stderr], `${flag} ${value}`).toEqual([1, message]);
    }
    const ls = await q(['collection', 'ls', '-o', 'json']);
    expect(JSON.parse(ls.stdout)).toMatchObject({ collections: [{ name: 'docs', dims: 3, count: 3 }] });
    ok(await q(['collection', 'rm', 'docs']));
  }, 180_000);

  it('topic ls and collection ls follow cursors across pages; --limit and --page-size', async () => {
    const { api_key } = JSON.parse(await readFile(join(home, 'quartz', 'config.json'), 'utf8')) as { api_key: string };
    const create = (path: string, body: unknown) =>
      fetch(`${server.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${api_key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => expect(r.status).toBe(201));
    // One more than the API's largest page, so the default page size takes two requests.
    const names = Array.from({ length: 1001 }, (_, i) => `t${String(i).padStart(4, '0')}`);
    for (let i = 0; i < names.length; i += 16) await Promise.all(names.slice(i, i + 16).map((name) => create('/v1/topics', { name, partitions: 1 })));
    const listed = async (args: string[]) => {
      const r = await q([...args, '-o', 'json']);
      ok(r);
      return (JSON.parse(r.stdout) as Record<string, { name: string }[]>)[args[0] === 'topic' ? 'topics' : 'collections']!.map((x) => x.name);
    };
    expect(await listed(['topic', 'ls'])).toEqual(names);
    expect(await listed(['topic', 'ls', '--page-size', '300'])).toEqual(names);
    expect(await listed(['topic', 'ls', '--limit', '5', '--page-size', '2'])).toEqual(names.slice(0, 5));
    const table = await q(['topic', 'ls', '--page-size', '7']);
    ok(table);
    expect(table.stdout.split('\n').filter((line) => /\bt\d{4}\b/.test(line))).toHaveLength(1001);
    for (const name of ['c', 'a', 'e', 'b', 'd']) await create('/v1/collections', { name, dims: 2, metric: 'l2' });
    expect(await listed(['collection', 'ls', '--page-size', '2'])).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await listed(['collection', 'ls', '--limit', '3', '--page-size', '1'])).toEqual(['a', 'b', 'c']);
    const bad = await q(['topic', 'ls', '--page-size', '1001']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^quartz: --page-size must be at most 1000/);
  }, 180_000);

  it('shows usage as a table and as JSON', async () => {
    const usage = await q(['usage', '-o', 'json']);
    ok(usage);
    expect(JSON.parse(usage.stdout)).toMatchObject({ api_calls: expect.any(Number), records_produced: 7 });
    expect((await q(['usage'])).stdout).toContain('records_produced');
  });

  it('fails in one line with a non-zero code when the server cannot answer', async () => {
    const closed = await freePort();
    const unreachable = await q(['kv', 'ls'], undefined, { QUARTZ_URL: `http://127.0.0.1:${closed}` });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toBe(`quartz: cannot reach http://127.0.0.1:${closed} (connection refused) — is \`quartz serve\` running?\n`);
    const noKey = await runCli(['kv', 'ls'], { XDG_CONFIG_HOME: await tempDir('empty-home'), QUARTZ_URL: server.url });
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toMatch(/^quartz: no API key; run `quartz register`/);
  });

  it('fails in one line with a non-zero code on bad flags and input', async () => {
    const badFlag = await q(['topic', 'create', 't', '--partitions', 'many']);
    expect(badFlag.code).toBe(1);
    expect(badFlag.stderr).toBe("quartz: --partitions must be an integer ≥ 1, got 'many'\n");
    const badCodec = await q(['topic', 'create', 't', '--compression', 'zstd']);
    expect([badCodec.code, badCodec.stderr]).toEqual([1, "quartz: --compression must be lz4 or none, got 'zstd'\n"]);
    const badRetention = await q(['topic', 'create', 't', '--retention-bytes', '1e6']);
    expect([badRetention.code, badRetention.stderr]).toEqual([1, "quartz: --retention-bytes must be an integer, got '1e6'\n"]);
    const outOfRange = await q(['topic', 'create', 't', '--segment-bytes', '10']);
    expect(outOfRange.code).toBe(1);
    expect(outOfRange.stderr).toMatch(/^quartz: .*segment_bytes.*\(400 invalid_argument\)\n$/);
    const noTopic = await q(['produce', 'nowhere'], 'a\nb\n');
    expect(noTopic.code).toBe(1);
    expect(noTopic.stderr).toMatch(/^quartz: .*nowhere.*\(404 not_found\); 0 record\(s\) were produced before it\n$/);
    const noFile = await q(['produce', 'nowhere', '--file', join(home, 'no-such-file.txt')]);
    expect([noFile.code, noFile.stderr]).toEqual([1, `quartz: cannot read ${join(home, 'no-such-file.txt')} (ENOENT)\n`]);
    const badOutput = await q(['usage', '-o', 'yaml']);
    expect(badOutput.stderr).toBe("quartz: --output must be table or json, got 'yaml'\n");
  });

  it('fails in one line on an answer that is not from the API', async () => {
    // A 404 that is not the key's own (a --url path in front of the API) is not reported as a missing key.
    const wrongPath = await q(['kv', 'get', 'user/42'], undefined, { QUARTZ_URL: `${server.url}/not-quartz` });
    expect(wrongPath.code).toBe(1);
    expect(wrongPath.stderr).toBe('quartz: no route for /not-quartz/v1/kv/user%2F42 (404 not_found)\n');
    const html = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>a web server</html>'));
    await new Promise<void>((resolve) => html.listen(0, '127.0.0.1', resolve));
    try {
      const notJson = await q(['usage'], undefined, { QUARTZ_URL: `http://127.0.0.1:${(html.address() as AddressInfo).port}` });
      expect(notJson.code).toBe(1);
      expect(notJson.stderr).toMatch(/^quartz: http:\/\/127\.0\.0\.1:\d+ answered 200 with something other than JSON \(text\/html\); is it a QuartzDB server\?\n$/);
    } finally {
      html.closeAllConnections();
      await new Promise((resolve) => html.close(resolve));
    }
    // A missing key is told by the answer's status and code, not its wording: a server whose API
    // words its 404 otherwise still gets "not found"; one whose /v1 is not an API (everything 404
    // not_found, health too) gets its own answer.
    const api = (health: boolean) =>
      createHttpServer((req, res) => {
        const body = req.url === '/v1/health' && health ? '{"status":"ok"}' : '{"error":"not_found","message":"nothing called that here"}';
        res.writeHead(body.startsWith('{"status"') ? 200 : 404, { 'content-type': 'application/json' }).end(body);
      });
    for (const health of [true, false]) {
      const fake = api(health);
      await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
      try {
        const missing = await q(['kv', 'get', 'k'], undefined, { QUARTZ_URL: `http://127.0.0.1:${(fake.address() as AddressInfo).port}` });
        expect(missing.code).toBe(1);
        expect(missing.stderr).toBe(health ? "quartz: key 'k' not found\n" : 'quartz: nothing called that here (404 not_found)\n');
      } finally {
        fake.closeAllConnections();
        await new Promise((resolve) => fake.close(resolve));
      }
    }
  });

  it('refuses empty names in one line before any request', async () => {
    // An empty key has no URL (`/v1/kv/` names no key): refused before any request, stdin unread.
    for (const args of [['kv', 'get', ''], ['kv', 'put', ''], ['kv', 'del', '']]) {
      const empty = await q(args);
      expect([empty.code, empty.stderr], args.join(' ')).toEqual([1, 'quartz: the key must not be empty\n']);
    }
    for (const args of [['collection', 'rm', ''], ['vec', 'upsert', '', '--file', '-'], ['vec', 'query', '', '--id', 'a']]) {
      const empty = await q(args);
      expect([empty.code, empty.stderr], args.join(' ')).toEqual([1, 'quartz: the collection name must not be empty\n']);
    }
    for (const args of [['consume', ''], ['produce', ''], ['topic', 'describe', ''], ['topic', 'rm', '']]) {
      const empty = await q(args);
      expect([empty.code, empty.stderr], args.join(' ')).toEqual([1, 'quartz: the topic name must not be empty\n']);
    }
    const unknown = await q(['frobnicate']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
  });

  it('has --help on every command', async () => {
    for (const args of [[], ['serve'], ['kv'], ['kv', 'put'], ['consume'], ['produce'], ['vec', 'query'], ['backup'], ['restore']]) {
      const r = await q([...args, '--help']);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^Usage: quartz/);
    }
    const serve = await q(['serve', '--help']);
    expect(serve.stdout).toContain('--default-plan');
    expect(serve.stdout).not.toContain('--kafka-port');
  }, 180_000);
});
