/**
 * `quartz produce` bounds a line by its bytes, as the server bounds a record (896 KiB): a line of
 * multi-byte UTF-8 has fewer characters than bytes, and a bound on characters let one through that
 * the server then refused. Runs the CLI in this process against a real server on loopback.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { buildProgram } from '../../src/node/cli/program.js';
import { startServerWithTenant } from '../fixtures/server-with-tenant.js';

const RECORD_BYTES = 896 * 1024;

async function produce(env: Record<string, string>, input: string): Promise<string | undefined> {
  const stdin = new PassThrough();
  stdin.end(input);
  const io = { env: { XDG_CONFIG_HOME: '/nonexistent-quartz-test', ...env }, stdout: new PassThrough(), stderr: new PassThrough(), stdin };
  return buildProgram(io)
    .parseAsync(['node', 'quartz', 'produce', 't'])
    .then(() => undefined, (err: unknown) => (err as Error).message);
}

/** Produce requests the server answered, any status, from its /metrics. */
async function produceRequests(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^quartz_http_requests_total\{route="\/v1\/topics\/:topic\/records",method="POST",status="\d+"\} (\d+)$/gm)) n += Number(m[1]);
  return n;
}

describe('quartz produce line bound', () => {
  it('counts bytes: a line of multi-byte UTF-8 past 896 KiB is refused before any request, one just under it is produced', async () => {
    const { server, apiKey, close } = await startServerWithTenant('cli-produce-bytes');
    onTestFinished(close);
    const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
    expect((await fetch(`${server.url}/v1/topics`, { method: 'POST', headers, body: JSON.stringify({ name: 't', partitions: 1 }) })).status).toBe(201);
    const env = { QUARTZ_URL: server.url, QUARTZ_API_KEY: apiKey };

    // '€' is 3 bytes: 1.2 MB in 400,000 characters, under a bound of 917,504 characters.
    const over = '€'.repeat(400_000);
    expect(Buffer.byteLength(over)).toBeGreaterThan(RECORD_BYTES);
    expect(await produce(env, `${over}\n`)).toBe('quartz: line 1 of stdin is longer than 896 KiB, more than one record may hold');
    expect(await produceRequests(server.url)).toBe(0);

    const under = '€'.repeat(Math.floor(RECORD_BYTES / 3) - 10);
    expect(await produce(env, `${under}\nnext\n`)).toBeUndefined();
    const page = (await (await fetch(`${server.url}/v1/topics/t/partitions/0/records?offset=0`, { headers })).json()) as { records: { value: string }[] };
    expect(page.records.map((r) => r.value)).toEqual([under, 'next']);
  });
});
