/**
 * `quartz vec upsert` batches against a real server (the Node listener on loopback): a batch is
 * cut before its body passes the default 32 MiB vectors limit, a server configured with a
 * smaller `body_limits.vectors` gets the batch again in halves, and an input with no vectors is
 * refused whether it is an empty file or `[]`.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { buildProgram } from '../../src/node/cli/program.js';
import { startServerWithTenant } from '../fixtures/server-with-tenant.js';

/** One command run in this process: what it wrote to stdout and the error it ended with. */
async function inProcess(args: string[], env: Record<string, string>, input: string): Promise<{ out: string; error: string | undefined }> {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  const stdin = new PassThrough();
  stdin.end(input);
  const io = { env: { XDG_CONFIG_HOME: '/nonexistent-quartz-test', ...env }, stdout, stderr: new PassThrough(), stdin };
  const error = await buildProgram(io)
    .parseAsync(['node', 'quartz', ...args])
    .then(() => undefined, (err: unknown) => (err as Error).message);
  return { out, error };
}

/** Upsert requests the server answered with `status`, from its /metrics. */
async function upserts(url: string, status: number): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('quartz_http_requests_total{') && l.includes('route="/v1/collections/:c/upsert"') && l.includes(`status="${status}"`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function countOf(url: string, apiKey: string, name: string): Promise<number> {
  return ((await (await fetch(`${url}/v1/collections/${name}`, { headers: { authorization: `Bearer ${apiKey}` } })).json()) as { count: number }).count;
}

describe('quartz vec upsert batches', () => {
  it('cuts a batch before its body passes the 32 MiB vectors limit, so no request is refused', async () => {
    const { server, apiKey, close } = await startServerWithTenant('cli-vec-cut');
    onTestFinished(close);
    const env = { QUARTZ_URL: server.url, QUARTZ_API_KEY: apiKey };
    expect((await inProcess(['collection', 'create', 'big', '--dims', '2'], env, '')).error).toBeUndefined();
    // 4,000 vectors with 9 KB of metadata each: 36 MB in one batch of --batch 4000.
    const pad = 'p'.repeat(9000);
    const lines = Array.from({ length: 4000 }, (_, i) => JSON.stringify({ id: `v${i}`, values: [1, i + 1], metadata: { pad } }));
    const r = await inProcess(['vec', 'upsert', 'big', '--file', '-', '--batch', '4000', '-o', 'json'], env, lines.join('\n') + '\n');
    expect(r.error).toBeUndefined();
    expect(JSON.parse(r.out)).toEqual({ collection: 'big', upserted: 4000 });
    expect(await countOf(server.url, apiKey, 'big')).toBe(4000);
    expect(await upserts(server.url, 413)).toBe(0);
    expect(await upserts(server.url, 200)).toBe(2);
  }, 300_000);

  it('sends a batch a server with a smaller vectors body limit refuses (413) again in halves, JSONL and JSON alike, and names a vector too large alone', async () => {
    const { server, apiKey, close } = await startServerWithTenant('cli-vec-limit', { body_limits: { json: 1 << 20, kv: 1 << 20, records: 1 << 20, vectors: 64 * 1024 } });
    onTestFinished(close);
    const env = { QUARTZ_URL: server.url, QUARTZ_API_KEY: apiKey };
    expect((await inProcess(['collection', 'create', 'small', '--dims', '64'], env, '')).error).toBeUndefined();
    const vector = (i: number): { id: string; values: number[] } => ({ id: `v${i}`, values: Array.from({ length: 64 }, (_, j) => Math.sin(i * 64 + j + 1)) });
    // ~1.3 KB a vector: 1,000 of them are 1.3 MB, twenty times the limit.
    const jsonl = Array.from({ length: 1000 }, (_, i) => JSON.stringify(vector(i))).join('\n') + '\n';
    const r = await inProcess(['vec', 'upsert', 'small', '--file', '-', '--batch', '1000', '-o', 'json'], env, jsonl);
    expect(r.error).toBeUndefined();
    expect(JSON.parse(r.out)).toEqual({ collection: 'small', upserted: 1000 });
    const doc = JSON.stringify(Array.from({ length: 500 }, (_, i) => vector(1000 + i)));
    const whole = await inProcess(['vec', 'upsert', 'small', '--file', '-', '--batch', '500', '-o', 'json'], env, doc);
    expect(whole.error).toBeUndefined();
    expect(JSON.parse(whole.out)).toEqual({ collection: 'small', upserted: 500 });
    expect(await countOf(server.url, apiKey, 'small')).toBe(1500);
    const got = (await (await fetch(`${server.url}/v1/collections/small/vectors/v1499`, { headers: { authorization: `Bearer ${apiKey}` } })).json()) as { values: number[] };
    expect(got.values[0]).toBeCloseTo(Math.sin(1499 * 64 + 1), 5);

    // A vector over 64 KiB on its own (its metadata over the 10 KiB rule too, but the body limit answers first).
    const huge = JSON.stringify({ id: 'huge', values: vector(0).values, metadata: Object.fromEntries(Array.from({ length: 8 }, (_, k) => [`k${k}`, 'y'.repeat(9000)])) });
    const tooLarge = await inProcess(['vec', 'upsert', 'small', '--file', '-', '--batch', '100'], env, `${JSON.stringify(vector(3000))}\n${huge}\n`);
    expect(tooLarge.error).toMatch(/^quartz: line 2 of stdin: .*\(413 too_large\); 1 vector was upserted before it$/);
  }, 300_000);

  it('refuses input with no vectors, an empty file and [] alike, before any request', async () => {
    const { server, apiKey, close } = await startServerWithTenant('cli-vec-empty');
    onTestFinished(close);
    const env = { QUARTZ_URL: server.url, QUARTZ_API_KEY: apiKey };
    expect((await inProcess(['collection', 'create', 'e', '--dims', '2'], env, '')).error).toBeUndefined();
    expect((await inProcess(['vec', 'upsert', 'e', '--file', '-'], env, '')).error).toBe('quartz: stdin is empty: it holds no vectors');
    expect((await inProcess(['vec', 'upsert', 'e', '--file', '-'], env, '\n  \n')).error).toBe('quartz: stdin is empty: it holds no vectors');
    expect((await inProcess(['vec', 'upsert', 'e', '--file', '-'], env, '[]')).error).toBe('quartz: stdin holds no vectors');
    expect((await inProcess(['vec', 'upsert', 'e', '--file', '-'], env, '{"vectors": []}')).error).toBe('quartz: stdin holds no vectors');
    expect((await inProcess(['vec', 'upsert', 'e', '--file', '-', '--batch', '10001'], env, '[]')).error).toBe('quartz: --batch must be at most 10000 (the vectors one upsert request may hold), got 10001');
    expect(await upserts(server.url, 200)).toBe(0);
  }, 120_000);

  it('names the line of the file, not the vector\'s place in its batch, when the server refuses a vector', async () => {
    const { server, apiKey, close } = await startServerWithTenant('cli-vec-line');
    onTestFinished(close);
    const env = { QUARTZ_URL: server.url, QUARTZ_API_KEY: apiKey };
    expect((await inProcess(['collection', 'create', 'c', '--dims', '2'], env, '')).error).toBeUndefined();
    // Line 6 is the second vector of the second batch of two: the server named it 'vectors[1]'.
    const jsonl = ['{"id":"a","values":[1,2]}', '{"id":"b","values":[1,3]}', '', '{"id":"c","values":[1,4]}', '', '{"id":"d","values":[1,5],"meta":{"k":1}}', '{"id":"e","values":[1,6]}'].join('\n') + '\n';
    const r = await inProcess(['vec', 'upsert', 'c', '--file', '-', '--batch', '2'], env, jsonl);
    expect(r.error).toBe("quartz: line 6 of stdin: unknown field 'meta'; known: id, values, metadata (400 invalid_argument); 2 vectors were upserted before it");
    expect(await countOf(server.url, apiKey, 'c')).toBe(2);
    // A JSON document's vectors are named by their place in it, counted from 0.
    const doc = JSON.stringify([{ id: 'f', values: [1, 7] }, { id: 'g', values: [1, 8] }, { id: 'h', values: 'x' }]);
    const whole = await inProcess(['vec', 'upsert', 'c', '--file', '-', '--batch', '2'], env, doc);
    expect(whole.error).toMatch(/^quartz: vector 2 of stdin: values: expected array, received string \(400 invalid_argument\); 2 vectors were upserted before it$/);
  }, 120_000);
});
