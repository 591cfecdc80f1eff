/**
 * `quartz serve` on a data directory whose write-ahead log was damaged after a kill -9: a flipped
 * byte in an early frame that lmdb had not received, with acknowledged frames behind it. The
 * server refuses to start with one line naming the file, the offset and what would be lost, and a
 * non-zero exit; with --drop-damaged-log it starts, logs what it dropped, and serves every write
 * before the damage.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { APPLIED_KEY, LOG_KEY } from '../../src/node/storage/journal.js';
import { HEADER_BYTES, WAL_FILES, WRITES_IN_FLIGHT } from '../../src/node/storage/wal.js';
import { runCli, serversKilledAfterEach, tempDir } from './server-process.js';

const start = serversKilledAfterEach();

/** lmdb's log position (what it holds of the log) and the log key. */
async function appliedPosition(data: string): Promise<{ position: [number, number]; logKey: number }> {
  const env = openLmdb({ path: join(data, 'kv.mdb'), pageSize: 8192, maxDbs: 4 });
  try {
    const meta = env.openDB<unknown, string>('meta', { keyEncoding: 'ordered-binary', encoding: 'msgpack' });
    return { position: meta.get(APPLIED_KEY) as [number, number], logKey: meta.get(LOG_KEY) as number };
  } finally {
    await env.close();
  }
}

/** The file holding `epoch` and the start offsets of its frames from `offset` on. */
async function framesAfter(data: string, { position: [epoch, offset], logKey }: { position: [number, number]; logKey: number }): Promise<{ name: string; starts: number[]; ends: number[] } | undefined> {
  for (const name of WAL_FILES) {
    const bytes = await readFile(join(data, name));
    if (bytes.length < HEADER_BYTES || bytes.readUInt32LE(8) !== epoch) continue;
    const starts: number[] = [];
    const ends: number[] = [];
    // A frame's epoch field holds the epoch xor the log key.
    for (let p = offset; p + 12 <= bytes.length && bytes.readUInt32LE(p + 8) === (epoch ^ logKey) >>> 0 && bytes.readUInt32LE(p) > 0; p += 12 + bytes.readUInt32LE(p)) {
      starts.push(p);
      ends.push(p + 12 + bytes.readUInt32LE(p));
    }
    return { name, starts, ends };
  }
  return undefined;
}

describe('quartz serve after its write-ahead log was damaged', () => {
  it('refuses to start in one line with a non-zero exit; with --drop-damaged-log starts, logs the loss and serves the writes before it', async () => {
    const data = await tempDir('waldamage');
    let key = '';
    let written = 0;
    let damaged: { name: string; starts: number[]; ends: number[] } | undefined;
    // lmdb takes the log's writes every 20 ms: kill -9 right after a run of acknowledged PUTs
    // leaves the last few only in the log. Tried again if it left too few frames there (on a
    // loaded machine each PUT's round trip is slow, so lmdb often catches up before the kill).
    for (let attempt = 0; attempt < 20 && damaged === undefined; attempt++) {
      const s = await start(['--data', data]);
      if (key === '') {
        const reg = await fetch(`${s.url}/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"wal@example.com"}' });
        key = ((await reg.json()) as { api_key: string }).api_key;
      }
      for (let i = 0; i < 60; i++, written++) {
        const res = await fetch(`${s.url}/v1/kv/k${written}`, { method: 'PUT', headers: { authorization: `Bearer ${key}` }, body: `value ${written}` });
        expect(res.status).toBe(200);
      }
      await s.stop('SIGKILL');
      const log = await framesAfter(data, await appliedPosition(data));
      if (log !== undefined && log.starts.length > WRITES_IN_FLIGHT) damaged = log;
    }
    expect(damaged, 'a kill -9 left more than WRITES_IN_FLIGHT frames that lmdb did not hold').toBeDefined();
    const { name, starts, ends } = damaged!;
    const bytes = await readFile(join(data, name));
    bytes[Math.floor((starts[0]! + 12 + ends[0]!) / 2)]! ^= 0x40;
    await writeFile(join(data, name), bytes);

    const refused = await runCli(['serve', '--port', '0', '--data', data], {});
    expect(refused.code).not.toBe(0);
    expect(refused.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
    expect(refused.stderr).toMatch(
      new RegExp(`^quartz: write-ahead log ${join(data, name)} is damaged at byte ${starts[0]} \\(its CRC32C does not match; \\d+ whole frames follow, [^)]*\\): ${starts.length - 1} later frames \\(\\d+ writes, acknowledged ones among them\\) would be lost; .*--drop-damaged-log`),
    );

    const s = await start(['--data', data, '--drop-damaged-log']);
    const warning = s
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; file?: string; offset?: number; frames?: number })
      .find((l) => l.msg.includes('started anyway'));
    expect(warning).toMatchObject({ file: name, offset: starts[0], frames: starts.length - 1 });
    // The writes kept are every PUT up to some point, none after it.
    const present: boolean[] = [];
    for (let i = 0; i < written; i++) present.push((await fetch(`${s.url}/v1/kv/k${i}`, { headers: { authorization: `Bearer ${key}` } })).status === 200);
    const kept = present.indexOf(false);
    expect(kept).toBeGreaterThan(0);
    expect(present.slice(kept).every((p) => !p)).toBe(true);
    expect(await (await fetch(`${s.url}/v1/kv/k${kept - 1}`, { headers: { authorization: `Bearer ${key}` } })).text()).toBe(`value ${kept - 1}`);
  }, 240_000);
});
