/**
 * Clients racing on the same data, checked against what the docs promise: the embedded library
 * (`openQuartz` on a data directory) with many calls in flight at once. The randomized model check
 * drives mostly independent operations; these drive many at the same key, partition, topic or
 * engine. Bounded iterations and seeded choices; nothing asserts on time.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, QuartzError } from '../../src/core/errors.js';
import { seededRandom } from '../../src/core/random-testing.js';
import { createTestEngine } from '../../src/engine/testing.js';
import { ManualClock, openQuartz, type Engine } from '../../src/node/index.js';

const dirs: string[] = [];
const engines: Engine[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function open(): Promise<{ engine: Engine; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'quartz-races-'));
  dirs.push(dir);
  const engine = await openQuartz({ dataDir: dir });
  engines.push(engine);
  return { engine, dir };
}

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));
/** A macrotask turn: library calls may settle in microtasks only, so racing loops yield here. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** What a call settled with: 'ok' or its QuartzError code (anything else is the test's failure). */
function outcome(call: () => unknown): Promise<string> {
  return Promise.resolve()
    .then(call)
    .then(
      () => 'ok',
      (err: unknown) => {
        if (err instanceof QuartzError) return err.code;
        throw err;
      },
    );
}

describe('KV compare-and-set with many clients on one key', () => {
  it('counts exactly: every success is one increment, every refusal a stale version, the final value the number of successes', async () => {
    const { engine } = await open();
    const { kv } = await engine.tenant('t1');
    await kv.put('counter', bytes('0'));
    const versions: number[] = [];
    let refused = 0;
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        for (let i = 0; i < 20; i++) {
          const seen = (await kv.get('counter'))!;
          try {
            const { version } = await kv.put('counter', bytes(String(Number(text(seen.value)) + 1)), { ifMatch: seen.version });
            versions.push(version);
          } catch (err) {
            expect(err).toMatchObject({ code: ErrorCode.PRECONDITION_FAILED });
            // A refusal is legitimate only if the key had moved on from the version read.
            expect((err as QuartzError).details?.current_version).toBeGreaterThan(seen.version);
            refused++;
          }
          if (i % 4 === 0) await turn();
        }
      }),
    );
    const final = (await kv.get('counter'))!;
    expect(Number(text(final.value))).toBe(versions.length);
    expect(versions.length + refused).toBe(240);
    expect(versions.length).toBeGreaterThan(0);
    // Versions of successful writes are distinct and the last one is the key's.
    expect(new Set(versions).size).toBe(versions.length);
    expect(final.version).toBe(Math.max(...versions));
  });

  it('lets exactly one of many create-only puts win', async () => {
    const { engine } = await open();
    const { kv } = await engine.tenant('t1');
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => outcome(() => kv.put('once', bytes(`writer ${i}`), { ifNoneMatch: '*' }))));
    expect(results.filter((r) => r === 'ok')).toHaveLength(1);
    expect(results.filter((r) => r !== 'ok').every((r) => r === ErrorCode.PRECONDITION_FAILED)).toBe(true);
    const winner = results.indexOf('ok');
    expect(text((await kv.get('once'))!.value)).toBe(`writer ${winner}`);
  });

  it('a key expiring under racing writers: If-Match on its last version is 412 for all, create-only lets exactly one in', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const engine = await createTestEngine({ clock });
    engines.push(engine);
    const { kv } = await engine.tenant('t1');
    for (let round = 0; round < 5; round++) {
      const { version } = await kv.put('session', bytes('old'), { ttl: 1 });
      await clock.advance(1000); // expired now, not yet purged
      const matches = await Promise.all(Array.from({ length: 6 }, () => outcome(() => kv.put('session', bytes('stale'), { ifMatch: version }))));
      expect(matches).toEqual(Array(6).fill(ErrorCode.PRECONDITION_FAILED));
      const creates = await Promise.all(Array.from({ length: 6 }, (_, i) => outcome(() => kv.put('session', bytes(`new ${i}`), { ifNoneMatch: '*', ttl: 1 }))));
      expect(creates.filter((r) => r === 'ok')).toHaveLength(1);
      const entry = (await kv.get('session'))!;
      expect(text(entry.value)).toBe(`new ${creates.indexOf('ok')}`);
      expect(entry.version).toBeGreaterThan(version);
      await clock.advance(1000);
    }
  });

  it('a delete and a put racing with the same If-Match: exactly one wins and the key ends as that order left it', async () => {
    const { engine } = await open();
    const { kv } = await engine.tenant('t1');
    for (let round = 0; round < 40; round++) {
      const { version } = await kv.put('k', bytes('before'));
      const racers = round % 2 === 0 ? [() => kv.put('k', bytes('after'), { ifMatch: version }), () => kv.delete('k', { ifMatch: version })] : [() => kv.delete('k', { ifMatch: version }), () => kv.put('k', bytes('after'), { ifMatch: version })];
      const [first, second] = await Promise.all(racers.map(outcome));
      expect([first, second].sort()).toEqual(['ok', ErrorCode.PRECONDITION_FAILED].sort());
      const putWon = (round % 2 === 0 ? first : second) === 'ok';
      const entry = await kv.get('k');
      expect(entry === undefined ? null : text(entry.value)).toBe(putWon ? 'after' : null);
    }
  });

  it('lists by prefix while keys come and go: no key twice, in order, and every key that lived throughout is there', async () => {
    const { engine } = await open();
    const { kv } = await engine.tenant('t1');
    const stable = Array.from({ length: 120 }, (_, i) => `l/${String(i).padStart(3, '0')}`);
    for (const key of stable) await kv.put(key, bytes('x'));
    let writing = true;
    const writer = (async () => {
      const rnd = seededRandom(11);
      while (writing) {
        const key = `${stable[Math.floor(rnd() * stable.length)]!}~${Math.floor(rnd() * 3)}`;
        await (rnd() < 0.5 ? kv.put(key, bytes('y')) : kv.delete(key));
        await turn();
      }
    })();
    for (let pass = 0; pass < 6; pass++) {
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await kv.list({ prefix: 'l/', cursor, limit: 3 + pass * 4 });
        seen.push(...page.keys.map((k) => k.key));
        cursor = page.cursor;
        await turn();
      } while (cursor !== null);
      expect(new Set(seen).size).toBe(seen.length);
      expect([...seen].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))).toEqual(seen);
      expect(stable.filter((k) => !seen.includes(k))).toEqual([]);
    }
    writing = false;
    await writer;
  });
});

describe('streams under racing producers, consumers, rolls, retention and deletes', () => {
  it('producers racing on one partition get contiguous offsets of their own, and a consumer reads each record once, in order', async () => {
    const { engine } = await open();
    const { streams } = await engine.tenant('t1');
    // Tiny segments: rolls seal the tail constantly under the producers.
    await streams.createTopic('p', { partitions: 1, segment_bytes: 1024, segment_ms: 1, retention_ms: -1 });
    const written = new Map<number, string>();
    const rnd = seededRandom(5);
    await Promise.all(
      Array.from({ length: 10 }, async (_, producer) => {
        for (let i = 0; i < 15; i++) {
          const values = Array.from({ length: 1 + Math.floor(rnd() * 6) }, (_, j) => `${producer}/${i}/${j}`);
          const { offsets } = await streams.produce('p', values.map((v) => ({ value: bytes(v), partition: 0 })));
          offsets.forEach(({ offset }, j) => {
            expect(offset).toBe(offsets[0]!.offset + j);
            expect(written.has(offset)).toBe(false);
            written.set(offset, values[j]!);
          });
          await turn();
        }
      }),
    );
    expect([...written.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: written.size }, (_, i) => i));
    let offset = 0;
    const read: string[] = [];
    for (;;) {
      const page = await streams.consume('p', 0, offset, { max_records: 7 });
      if (page.records.length === 0) break;
      page.records.forEach((r, j) => {
        expect(r.offset).toBe(offset + j);
        expect(text(r.value)).toBe(written.get(r.offset));
        read.push(text(r.value)!);
      });
      expect(page.next_offset).toBe(offset + page.records.length);
      offset = page.next_offset;
    }
    expect(read).toEqual([...written.keys()].sort((a, b) => a - b).map((o) => written.get(o)));
  });

  it('consumers following next_offset while rolls and retention run: no record skipped or read twice, out of range only when retention passed the offset', async () => {
    const { engine } = await open();
    const { streams } = await engine.tenant('t1');
    await streams.createTopic('r', { partitions: 1, segment_bytes: 1024, segment_ms: 1, retention_ms: 20 });
    let producing = true;
    const producers = Array.from({ length: 3 }, async (_, producer) => {
      for (let i = 0; i < 120; i++) {
        await streams.produce('r', [{ value: bytes(`${producer}:${i}:${'x'.repeat(40)}`) }, { value: bytes(`${producer}:${i}:end`) }]);
        await turn();
      }
    });
    const consumers = Array.from({ length: 4 }, async (_, c) => {
      let offset = 0;
      let skippedByRetention = 0;
      while (producing || offset < streams.describeTopic('r').partition_info[0]!.high_watermark) {
        try {
          const page = await streams.consume('r', 0, offset, { max_records: 1 + c * 5, max_wait_ms: c % 2 === 0 ? 0 : 5 });
          page.records.forEach((r, j) => expect(r.offset).toBe(offset + j));
          expect(page.next_offset).toBe(offset + page.records.length);
          offset = page.next_offset;
        } catch (err) {
          expect(err).toMatchObject({ code: ErrorCode.OFFSET_OUT_OF_RANGE });
          const range = (err as QuartzError).details as { log_start_offset: number; high_watermark: number };
          expect(range.log_start_offset).toBeGreaterThan(offset);
          skippedByRetention += range.log_start_offset - offset;
          offset = range.log_start_offset;
        }
        await turn();
      }
      return { offset, skippedByRetention };
    });
    await Promise.all(producers);
    producing = false;
    for (const { offset } of await Promise.all(consumers)) expect(offset).toBe(720);
  });

  it('group commits racing on one partition: the last one issued wins, also when it moves the offset back', async () => {
    const { engine } = await open();
    const { streams } = await engine.tenant('t1');
    await streams.createTopic('g');
    await streams.produce('g', Array.from({ length: 60 }, (_, i) => ({ value: bytes(String(i)) })));
    const rnd = seededRandom(3);
    for (let round = 0; round < 5; round++) {
      const offsets = Array.from({ length: 30 }, () => Math.floor(rnd() * 61));
      await Promise.all(offsets.map((offset) => streams.commitOffset('billing', 'g', 0, offset)));
      const [row] = await streams.fetchOffsets('billing', 'g');
      expect(row).toMatchObject({ offset: offsets.at(-1), lag: 60 - offsets.at(-1)! });
    }
  });

  it('a topic delete racing produce, consume, long-polls and commits: each settles ok or not_found, and the name created again is empty', async () => {
    const { engine, dir } = await open();
    const { streams } = await engine.tenant('t1');
    for (let round = 0; round < 4; round++) {
      await streams.createTopic('d', { partitions: 2, segment_bytes: 1024, segment_ms: 5 });
      for (let i = 0; i < 10; i++) await streams.produce('d', [{ value: bytes('old'.repeat(40)), partition: i % 2 }]);
      await streams.commitOffset('g', 'd', 0, 3);
      const calls: Promise<string>[] = [outcome(() => streams.consume('d', 1, 5, { max_wait_ms: 60_000 }))];
      let deleted = false;
      const deleting = streams.deleteTopic('d').then(() => (deleted = true));
      for (let i = 0; !deleted && i < 200; i++) {
        calls.push(outcome(() => streams.produce('d', [{ value: bytes(`late ${i}`), partition: i % 2 }])));
        calls.push(outcome(() => streams.consume('d', 0, 0)));
        calls.push(outcome(() => streams.consume('d', 1, 5, { max_wait_ms: 60_000 })));
        calls.push(outcome(() => streams.commitOffset('g', 'd', 0, 1)));
        await (i % 2 === 0 ? Promise.resolve() : turn());
      }
      await deleting;
      for (const result of await Promise.all(calls)) expect(['ok', ErrorCode.NOT_FOUND]).toContain(result);
      await streams.createTopic('d', { partitions: 2 });
      expect((await streams.consume('d', 0, 0)).records).toEqual([]);
      expect((await streams.consume('d', 1, 0)).records).toEqual([]);
      expect((await streams.fetchOffsets('g', 'd')).map((o) => o.offset)).toEqual([null, null]);
      await streams.deleteTopic('d');
    }
    await engine.close();
    // Nothing of the topics is left on disk: only the storage's own files.
    const files = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
    const left = files.filter((f) => !/^(kv\.mdb|kv\.mdb-lock|wal-\d+)$/.test(f));
    expect(left).toEqual([]);
  });
});

describe('closing the engine with calls in flight', () => {
  it('settles every call, issued before or during close, with its result or storage_closed; a waiting long-poll rejects storage_closed', async () => {
    for (let round = 0; round < 3; round++) {
      const { engine } = await open();
      const { kv, streams, vectors } = await engine.tenant('t1');
      await streams.createTopic('p', { partitions: 1, segment_bytes: 1024, segment_ms: 1 });
      await streams.createTopic('quiet');
      await vectors.createCollection({ name: 'v', dims: 2, metric: 'l2' });
      const names: string[] = [];
      const calls: Promise<string>[] = [];
      const call = (name: string, fn: () => unknown) => {
        names.push(name);
        calls.push(outcome(fn));
      };
      const issue = () => {
        call('kv.put', () => kv.put('a', bytes('x')));
        call('kv.put large', () => kv.put('b', new Uint8Array(2 * 1024 * 1024)));
        call('kv.get', () => kv.get('a'));
        call('kv.list', () => kv.list({}));
        call('kv.delete', () => kv.delete('a'));
        call('produce', () => streams.produce('p', [{ value: bytes('y') }]));
        call('consume', () => streams.consume('p', 0, 0));
        call('commit', () => streams.commitOffset('g', 'p', 0, 0));
        call('createTopic', () => streams.createTopic(`t${calls.length}`));
        call('upsert', () => vectors.upsert('v', [{ id: 'a', values: [1, 2] }]));
        call('query', () => vectors.query('v', { vector: [1, 2], k: 1 }));
        call('another tenant', async () => (await engine.tenant(`other${calls.length}`)).kv.put('z', bytes('1')));
      };
      const waiting = outcome(() => streams.consume('quiet', 0, 0, { max_wait_ms: 300_000 }));
      issue();
      for (let i = 0; i < round; i++) await turn();
      const closing = engine.close();
      issue();
      const results = await Promise.all(calls);
      await closing;
      results.forEach((result, i) => expect([names[i], result]).toEqual([names[i], expect.stringMatching(/^(ok|storage_closed)$/)]));
      expect(await waiting).toBe(ErrorCode.STORAGE_CLOSED);
    }
  });
});
