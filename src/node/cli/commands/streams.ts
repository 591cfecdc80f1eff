/**
 * Stream commands: topic create|ls|describe|rm, produce (lines → records, batched) and consume
 * (one long-polling loop per partition, optional consumer-group commits).
 */
import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import type { Command } from 'commander';
import { CliError, errorOf, namedPath, RateLimited, ServerUnavailable, type ApiClient } from '../client.js';
import { ctxFor, intFlag, listFlags, type CliIo, type Ctx } from '../context.js';
import { StopOnSignal } from '../io.js';
import { counted } from '../output.js';
import { isText } from './data.js';

const EMPTY = Buffer.alloc(0);
const NEWLINE = Buffer.from('\n');
const LF = 0x0a;
const CR = 0x0d;

const topicPath = (topic: string): string => namedPath('/v1/topics', topic, 'the topic name');
const groupPath = (group: string): string => namedPath('/v1/groups', group, 'the group');

interface PartitionInfo {
  partition: number;
  log_start_offset: number;
  high_watermark: number;
  bytes: number;
  segments: number;
}

interface Described {
  name: string;
  partitions: number;
  retention_ms: number;
  partition_info: PartitionInfo[];
}

interface ConsumedRecord {
  offset: number;
  timestamp: number;
  key: string | null;
  value: string | null;
  headers: unknown;
  encoding?: string;
}

interface TopicCreateFlags {
  partitions: string;
  retentionMs?: string;
  retentionBytes?: string;
  segmentBytes?: string;
  segmentMs?: string;
  compression?: string;
}

/** An integer flag that may be -1 (no limit), naming the flag in the error; ranges are the server's. */
function signedIntFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new CliError(`quartz: ${flag} must be an integer, got '${value}'`);
  return Number(value);
}

export function topicCommands(program: Command, io: CliIo): void {
  const topic = program.command('topic').description('stream topics: create, ls, describe, rm');
  topic
    .command('create <name>')
    .description('create a topic')
    .option('--partitions <n>', 'number of partitions', '1')
    .option('--retention-ms <ms>', 'how long records are kept (-1 forever)')
    .option('--retention-bytes <n>', 'size kept per partition (-1 no limit)')
    .option('--segment-bytes <n>', 'tail bytes sealed into one segment')
    .option('--segment-ms <ms>', 'age at which a quiet tail is sealed')
    .option('--compression <codec>', 'how sealed segments are compressed: lz4 or none')
    .action(async (name: string, flags: TopicCreateFlags, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const partitions = intFlag(flags.partitions, '--partitions', 1);
      const retention_ms = signedIntFlag(flags.retentionMs, '--retention-ms');
      const retention_bytes = signedIntFlag(flags.retentionBytes, '--retention-bytes');
      const segment_bytes = intFlag(flags.segmentBytes, '--segment-bytes', 1);
      const segment_ms = intFlag(flags.segmentMs, '--segment-ms', 1);
      const { compression } = flags;
      if (compression !== undefined && compression !== 'lz4' && compression !== 'none') {
        throw new CliError(`quartz: --compression must be lz4 or none, got '${compression}'`);
      }
      // Unset flags stay out of the body (JSON drops undefined): the server's defaults apply.
      const body = { name, partitions, retention_ms, retention_bytes, segment_bytes, segment_ms, compression };
      const created = await (await ctx.client()).json<{ partitions: number }>('/v1/topics', { method: 'POST', json: body });
      ctx.out.done(`created topic '${name}' with ${counted(created.partitions, 'partition')}`, created);
    });
  topic
    .command('ls')
    .description('list topics (every one, a page of --page-size per request)')
    .option('--limit <n>', 'at most this many topics')
    .option('--page-size <n>', 'topics per request (1-1000)', '1000')
    .action(async (flags: { limit?: string; pageSize: string }, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const topics = await (await ctx.client()).listAll<Record<string, unknown>>('/v1/topics', 'topics', listFlags(flags));
      ctx.out.table(topics, ['name', 'partitions', 'retention_ms'], { topics });
    });
  topic
    .command('describe <name>')
    .description("a topic's config and each partition's offsets, bytes and segments")
    .action(async (name: string, _f: unknown, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const d = await (await ctx.client()).json<Described>(topicPath(name));
      if (ctx.out.mode === 'json') return ctx.out.print(d, () => '');
      io.stdout.write(`topic ${d.name}: ${counted(d.partitions, 'partition')}, retention_ms ${d.retention_ms}\n`);
      ctx.out.table(d.partition_info as unknown as Record<string, unknown>[], ['partition', 'log_start_offset', 'high_watermark', 'bytes', 'segments']);
    });
  topic
    .command('rm <name>')
    .description('delete a topic and its records')
    .action(async (name: string, _f: unknown, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      await (await ctx.client()).request(topicPath(name), { method: 'DELETE' });
      ctx.out.done(`deleted topic '${name}'`, { name, deleted: true });
    });

  program
    .command('produce <topic>')
    .description('send each line of stdin (or --file) as one record; lines are batched')
    .option('--file <path>', 'read lines from a file (e.g. data.jsonl)')
    .option('--key <key>', 'key for every record (records with one key share a partition)')
    .option('--partition <n>', 'write to this partition')
    .option('--batch <n>', 'records per request (at most 100000; fewer when they would pass 16 MiB)', '500')
    .option('--linger-ms <ms>', 'send a partial batch this long after its first line', '50')
    .action(async (name: string, flags: { file?: string; key?: string; partition?: string; batch: string; lingerMs: string }, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      topicPath(name); // an empty name is refused before stdin is read
      const partition = intFlag(flags.partition, '--partition');
      const batchSize = intFlag(flags.batch, '--batch', 1)!;
      if (batchSize > MAX_PRODUCE_RECORDS) throw new CliError(`quartz: --batch must be at most ${MAX_PRODUCE_RECORDS}, the most records one produce request may hold, got '${flags.batch}'`);
      const linger = intFlag(flags.lingerMs, '--linger-ms')!;
      const client = await ctx.client();
      const produced = await produceLines(client, name, flags.file !== undefined ? createReadStream(flags.file) : io.stdin, { key: flags.key, partition, batchSize, linger }, flags.file);
      ctx.out.done(`produced ${counted(produced, 'record')} to '${name}'`, { topic: name, produced });
    });

  program
    .command('consume <topic>')
    .description('print records, one per line (--output json: one JSON object per line)')
    .option('--from-beginning', 'start at the log start')
    .option('--partition <n>', 'only this partition (default: all)')
    .option('--offset <n>', 'start at this offset')
    .option('--follow', 'keep waiting for new records, through server restarts for up to --timeout each (Ctrl-C to stop)')
    .option('--group <id>', 'start at, and commit, this consumer group offsets')
    .option('--max <n>', 'stop after this many records')
    .addHelpText(
      'after',
      '\nStart: --offset, else the group\'s committed offset, else --from-beginning, else the end of the log with --follow\n(only new records) or the log start without it.',
    )
    .action(async (name: string, flags: ConsumeFlags, cmd: Command) => {
      await consume(ctxFor(cmd, io), name, flags);
    });
}

/**
 * What one produce request may hold (docs/streams.md): 100,000 records, and a body of
 * `body_limits.records`, 16 MiB unless the server is configured otherwise. Batches are cut to
 * stay within both; a server configured lower answers 413, and then the batch is sent again in
 * halves (a refused request stores nothing) and later batches are cut to the size that passed.
 */
export const MAX_PRODUCE_RECORDS = 100_000;
export const MAX_PRODUCE_BODY_BYTES = 16 * 2 ** 20;

/** One line as a record, serialised once: its JSON in the request body and where it came from. */
interface Line {
  json: string;
  bytes: number;
  number: number;
}

const ENVELOPE = '{"records":[]}'.length;

/**
 * The longest line produce reads, in bytes: a record (key, value, headers) may be at most 896 KiB,
 * so a longer line can never be one, and reading on for its newline held all of it (a file with
 * no newline, read whole) in memory.
 */
const MAX_LINE_BYTES = 896 * 1024;

/**
 * The lines of `input` (ending in \n or \r\n) as bytes with their numbers, refusing one too long
 * to be a record. Bytes, not text: decoding replaced bytes that are not UTF-8 with U+FFFD, so
 * such a line was stored changed.
 */
async function* numberedLines(input: NodeJS.ReadableStream, subject: string): AsyncGenerator<{ bytes: Buffer; number: number }> {
  let pending: Buffer = EMPTY;
  let number = 0;
  const line = (bytes: Buffer) => ({ bytes: bytes[bytes.length - 1] === CR ? bytes.subarray(0, -1) : bytes, number: ++number });
  try {
    for await (const chunk of input as AsyncIterable<Buffer | string>) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      pending = pending.length === 0 ? bytes : Buffer.concat([pending, bytes]);
      let start = 0;
      for (let end = pending.indexOf(LF); end !== -1; end = pending.indexOf(LF, start)) {
        if (end - start > MAX_LINE_BYTES) break;
        yield line(pending.subarray(start, end));
        start = end + 1;
      }
      pending = pending.subarray(start);
      const newline = pending.indexOf(LF);
      if ((newline === -1 ? pending.length : newline) > MAX_LINE_BYTES) {
        throw new CliError(`quartz: line ${number + 1} of ${subject} is longer than 896 KiB, more than one record may hold`);
      }
    }
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`quartz: cannot read ${subject} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (pending.length > 0) yield line(pending);
}

async function produceLines(
  client: ApiClient,
  topic: string,
  input: NodeJS.ReadableStream,
  o: { key?: string; partition?: number; batchSize: number; linger: number },
  file: string | undefined,
): Promise<number> {
  const subject = file ?? 'stdin';
  const keyBase64 = o.key === undefined ? undefined : Buffer.from(o.key).toString('base64');
  const path = `${topicPath(topic)}/records`;
  let produced = 0;
  let batch: Line[] = [];
  let batchBytes = ENVELOPE;
  let budget = MAX_PRODUCE_BODY_BYTES;
  let chain: Promise<void> = Promise.resolve();
  let failure: unknown;
  let timer: NodeJS.Timeout | undefined;
  let posted = false;
  /** The batches sent and not yet answered: reading waits while more than a few are. */
  const inFlight: Promise<void>[] = [];
  let lastLine = 0;
  // Ctrl-C stops reading; the lines read so far are still sent, so the line it names is where a
  // rerun starts. It ended the process at once, saying nothing: a rerun could not tell which
  // lines were stored. A second Ctrl-C or SIGTERM (the handlers are gone) ends it without waiting.
  const post = async (lines: Line[]): Promise<void> => {
    const body = `{"records":[${lines.map((l) => l.json).join(',')}]}`;
    const res = await client.request(path, { method: 'POST', body, contentType: 'application/json', accept: [413] });
    if (res.status !== 413) {
      produced += (await client.answer<{ offsets: unknown[] }>(res)).offsets.length;
      return;
    }
    const refused = errorOf(res, new TextDecoder().decode(await client.body(res).catch(() => new Uint8Array(0))));
    if (lines.length === 1) throw new CliError(refused.message.replace(/^quartz: /, `quartz: line ${lines[0]!.number} of ${subject}: `));
    budget = Math.min(budget, Math.max(ENVELOPE + lines[0]!.bytes, Math.floor(Buffer.byteLength(body) / 2)));
    const half = Math.ceil(lines.length / 2);
    await post(lines.slice(0, half));
    await post(lines.slice(half));
  };
  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (batch.length === 0) return;
    const lines = batch;
    posted = true;
    batch = [];
    batchBytes = ENVELOPE;
    chain = chain.then(async () => {
      if (failure !== undefined) return;
      try {
        await post(lines);
      } catch (err) {
        failure = err;
        // Ends the read loop now, not at the next line (a `tail -f` may send none for hours).
        (input as { destroy?: () => void }).destroy?.();
      }
    });
    inFlight.push(chain);
  };
  // Listened for until the last batch is answered: a Ctrl-C while the last batches were sent
  // (the input read to its end) ended the process at once, saying nothing.
  const stop = new StopOnSignal(() => (input as { destroy?: () => void }).destroy?.());
  try {
    try {
      for await (const { bytes: line, number } of numberedLines(input, subject)) {
        if (failure !== undefined || stop.by !== undefined) break;
        lastLine = number;
        if (line.length === 0) continue;
        // A line that is not UTF-8 goes as base64, which applies to the record's key too.
        const json = isUtf8(line)
          ? JSON.stringify({ value: line.toString('utf8'), key: o.key, partition: o.partition })
          : JSON.stringify({ value: line.toString('base64'), key: keyBase64, partition: o.partition, encoding: 'base64' });
        const bytes = Buffer.byteLength(json) + 1;
        if (batch.length > 0 && batchBytes + bytes > budget) flush();
        batch.push({ json, bytes, number });
        batchBytes += bytes;
        if (batch.length >= o.batchSize) flush();
        else if (timer === undefined) timer = setTimeout(flush, o.linger);
        // Backpressure: a few batches in flight at most.
        while (inFlight.length > 4) await inFlight.shift();
      }
      flush();
    } catch (err) {
      // Input that cannot be read at all (a --file that does not exist) is the whole story.
      if (stop.by === undefined && inFlight.length === 0 && batch.length === 0 && failure === undefined) throw err;
      // The lines before a bad one (too long, unreadable input) are produced first.
      clearTimeout(timer);
      flush();
      await chain;
      // The input closed by Ctrl-C ends the read as its end would.
      if (stop.by === undefined) failure ??= err;
    }
    await chain;
    // Input without a record sends no produce request, yet a topic that does not exist (or a
    // --partition it lacks) is as wrong with it: `printf '' | quartz produce typo` reported success.
    if (!posted && failure === undefined && stop.by === undefined) failure = await produceTarget(client, topic, o.partition).catch((err: unknown) => err);
    if (failure !== undefined) {
      if (failure instanceof CliError) throw new CliError(`${failure.message}; ${produced} record(s) were produced before it`);
      throw failure;
    }
    if (stop.by !== undefined) throw new CliError(`quartz: produce stopped by ${stop.by} after line ${lastLine} of ${subject}; ${produced} record(s) were produced`, 130);
    return produced;
  } finally {
    stop.dispose();
  }
}

/** Fails as a produce request to `topic` (and `partition`) would: the topic, and the partition, must exist. */
async function produceTarget(client: ApiClient, topic: string, partition: number | undefined): Promise<undefined> {
  const { partitions } = await client.json<{ partitions: number }>(topicPath(topic));
  if (partition !== undefined && partition >= partitions) throw new CliError(`quartz: topic '${topic}' has no partition ${partition} (404 not_found)`);
  return undefined;
}

/**
 * Commits the partition loops' offsets together: one request carries every partition's latest
 * offset that is waiting when it starts (one durable write on the server), while the loops'
 * commits during that request wait for the next one. One request per partition page made a
 * consumer of many partitions wait for a server write each.
 */
function groupCommitter(client: ApiClient, group: string, topic: string): (partition: number, offset: number) => Promise<void> {
  const path = `${groupPath(group)}/offsets`;
  let waiting = new Map<number, number>();
  let previous: Promise<void> = Promise.resolve();
  let next: Promise<void> | undefined;
  // A server from before the several-partition form answers it 400 (no `partition`): then one
  // request a partition, the form every server takes (a real fault is answered there the same).
  let onePerRequest = false;
  const commitEach = async (offsets: Array<{ partition: number; offset: number }>): Promise<void> => {
    for (const { partition, offset } of offsets) await client.request(path, { method: 'POST', json: { topic, partition, offset } });
  };
  return (partition, offset) => {
    waiting.set(partition, offset);
    if (next === undefined) {
      next = previous.then(async () => {
        const offsets = [...waiting].map(([p, o]) => ({ partition: p, offset: o }));
        waiting = new Map();
        next = undefined;
        if (onePerRequest || offsets.length === 1) return commitEach(offsets);
        const res = await client.request(path, { method: 'POST', json: { topic, offsets }, accept: [400] });
        if (res.status !== 400) return;
        await res.body?.cancel();
        onePerRequest = true;
        await commitEach(offsets);
      });
      previous = next.catch(() => {});
    }
    return next;
  };
}

interface ConsumeFlags {
  fromBeginning?: boolean;
  partition?: string;
  offset?: string;
  follow?: boolean;
  group?: string;
  max?: string;
}

async function consume(ctx: Ctx, topic: string, flags: ConsumeFlags): Promise<void> {
  const client = await ctx.client();
  const max = intFlag(flags.max, '--max', 1);
  const only = intFlag(flags.partition, '--partition');
  const startAt = intFlag(flags.offset, '--offset');
  if (flags.group !== undefined) groupPath(flags.group); // a group no URL can name is refused before any request
  const limits = rateLimitWaits(ctx.io.stderr);
  // Heeded from the first request: a Ctrl-C while a 429 is waited out before the loops ends the
  // command as one during them does (it used to kill the process by the signal).
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await consumeUntilStopped(ctx, client, topic, flags, { max, only, startAt, limits, stop });
  } finally {
    stop.abort();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

interface ConsumeRun {
  max: number | undefined;
  only: number | undefined;
  startAt: number | undefined;
  limits: RateLimitWaits;
  stop: AbortController;
}

async function consumeUntilStopped(ctx: Ctx, client: ApiClient, topic: string, flags: ConsumeFlags, { max, only, startAt, limits, stop }: ConsumeRun): Promise<void> {
  /** Before the loops too: a --follow started while the tenant's limit is spent waits, not fails; undefined once stopped. */
  const patiently = async <T>(request: () => Promise<T>): Promise<T | undefined> => {
    for (;;) {
      try {
        const answer = await request();
        limits.answered();
        return answer;
      } catch (err) {
        if (flags.follow !== true || !(err instanceof RateLimited)) throw err;
        await limits.wait(err, stop.signal);
        if (stop.signal.aborted) return undefined;
      }
    }
  };
  const described = await patiently(() => client.json<Described>(topicPath(topic)));
  if (described === undefined) return;
  const partitions = only === undefined ? described.partition_info : described.partition_info.filter((p) => p.partition === only);
  if (partitions.length === 0) throw new CliError(`quartz: topic '${topic}' has no partition ${only} (it has ${described.partitions})`);

  let committed = new Map<number, number | null>();
  if (flags.group !== undefined) {
    const res = await patiently(() => client.json<{ offsets: { topic: string; partition: number; offset: number | null }[] }>(`${groupPath(flags.group!)}/offsets`, { query: { topic } }));
    if (res === undefined) return;
    committed = new Map(res.offsets.filter((o) => o.topic === topic).map((o) => [o.partition, o.offset]));
  }
  /** Where a partition's loop starts; `reset` when the group's offset fell behind retention. */
  const start = (p: PartitionInfo): { offset: number; reset: boolean } => {
    if (startAt !== undefined) return { offset: startAt, reset: false };
    const c = committed.get(p.partition);
    // Below the log start every read is offset_out_of_range, so each run of the command failed
    // the same way: resume where the log now starts, as Kafka's auto.offset.reset=earliest does.
    if (c !== undefined && c !== null && c < p.log_start_offset) {
      ctx.io.stderr.write(`quartz: group '${flags.group}' is at offset ${c} of partition ${p.partition}, before its log start ${p.log_start_offset} (retention removed those records); reading from ${p.log_start_offset}\n`);
      return { offset: p.log_start_offset, reset: true };
    }
    if (c !== undefined && c !== null) return { offset: c, reset: false };
    return { offset: flags.fromBeginning === true || flags.follow !== true ? p.log_start_offset : p.high_watermark, reset: false };
  };

  let printed = 0;
  const terminal = (ctx.io.stdout as { isTTY?: boolean }).isTTY === true;
  /** False when stdout's buffer is full (a slow reader on the pipe): the loops wait for it to drain. */
  const print = (partition: number, r: ConsumedRecord): boolean => {
    if (ctx.out.mode === 'json') return ctx.io.stdout.write(JSON.stringify({ topic, partition, ...r }) + '\n');
    // The value's own bytes: a base64 record's printed as its text read back as something else.
    const value = r.value === null ? EMPTY : r.encoding === 'base64' ? Buffer.from(r.value, 'base64') : Buffer.from(r.value);
    // Raw bytes at a terminal can be escape sequences that rewrite its screen or settings (as kv get).
    if (terminal && !isText(value)) {
      ctx.io.stderr.write(`quartz: partition ${partition} offset ${r.offset} holds ${counted(value.length, 'byte')} that are not plain text; not written to the terminal (redirect it, or use -o json for base64)\n`);
      return true;
    }
    return ctx.io.stdout.write(Buffer.concat([value, NEWLINE]));
  };
  let drained: Promise<void> | undefined;
  const stdoutDrained = (): Promise<void> =>
    (drained ??= new Promise<void>((resolve) => {
      const done = (): void => {
        ctx.io.stdout.off('drain', done);
        stop.signal.removeEventListener('abort', done);
        drained = undefined;
        resolve();
      };
      ctx.io.stdout.on('drain', done);
      stop.signal.addEventListener('abort', done);
    }));

  const commit = flags.group === undefined ? undefined : groupCommitter(client, flags.group, topic);
  // A long-poll: the server holds the answer this long when there is nothing new.
  const wait = flags.follow === true ? 10_000 : 0;
  const attempt = flags.follow === true ? riding(client, ctx.io.stderr, stop.signal, limits) : once(stop.signal);
  const loop = async (p: PartitionInfo): Promise<void> => {
    const first = start(p);
    let offset = first.offset;
    // A group moved past retention's gap records its new place even when no record follows.
    let moved = commit !== undefined && first.reset;
    while (!stop.signal.aborted) {
      // Asked again from `offset` after a failure: the first record not printed yet.
      const page = await attempt(() =>
        client.json<{ records: ConsumedRecord[]; next_offset: number; high_watermark: number }>(`${topicPath(topic)}/partitions/${p.partition}/records`, {
          query: { offset, max_records: 500, max_wait_ms: wait },
          serverWaitMs: wait,
          signal: stop.signal,
        }),
        true,
      );
      if (page === undefined) return;
      let next = page.next_offset;
      let full = false;
      for (const r of page.records) {
        if (max !== undefined && printed >= max) {
          next = r.offset;
          stop.abort();
          break;
        }
        full = !print(p.partition, r) || full;
        printed++;
      }
      // A whole topic read faster than the pipe takes it was held in memory: the next page waits.
      if (full && !stop.signal.aborted) await stdoutDrained();
      if (max !== undefined && printed >= max) stop.abort();
      if (commit !== undefined && (next !== offset || moved)) await attempt(() => commit(p.partition, next), false);
      moved = false;
      offset = next;
      if (flags.follow !== true && offset >= page.high_watermark) return;
    }
  };
  await Promise.all(partitions.map(loop));
}

/**
 * Runs a request of the consume loop: its answer, or undefined when the command was stopped
 * (Ctrl-C, --max) and the request is `stoppable` (a read: its failure then is the stop's doing). A
 * commit is not: the records it covers were printed, so its failure is reported whatever happens.
 */
type Attempt = <T>(request: () => Promise<T>, stoppable: boolean) => Promise<T | undefined>;

/** Without --follow: a failure ends the command. */
function once(stopped: AbortSignal): Attempt {
  return async (request, stoppable) => {
    try {
      return await request();
    } catch (err) {
      if (stoppable && stopped.aborted) return undefined;
      throw err;
    }
  };
}

const RETRY_FIRST_MS = 100;
const RETRY_MOST_MS = 5_000;
/** The longest a 429's Retry-After is taken at its word: a plan refills within a minute. */
const MOST_RETRY_AFTER_MS = 60_000;
/** The shortest: a Retry-After of 0 or a date gone by, from a server still refusing, asked again at once without end. */
const LEAST_RETRY_AFTER_MS = 1_000;

/**
 * With --follow: a server that cannot be reached or stops answering (a restart, a dropped
 * connection) is asked again, backing off from 0.1 s to 5 s, for as long as `--timeout` allows
 * (0: until stopped), with one line on stderr when it is lost and one when it answers again.
 * A 429 is asked again after its Retry-After, however long the rate limit lasts.
 * The partitions' loops share the outage: its clock starts at the first failure of any. Once the
 * command is stopped nothing is asked again.
 */
function riding(client: ApiClient, stderr: NodeJS.WritableStream, stopped: AbortSignal, limits: RateLimitWaits): Attempt {
  const boundMs = client.conn.timeoutMs ?? 0;
  let lostAt: number | undefined;
  return async (request, stoppable) => {
    let delay = RETRY_FIRST_MS;
    for (;;) {
      // An answer to a request sent before the loss was noticed (a long-poll the stopping server
      // answered) says nothing about the server now.
      const sentDuring = lostAt;
      let failure: ServerUnavailable;
      try {
        const answer = await request();
        if (lostAt !== undefined && sentDuring === lostAt) {
          lostAt = undefined;
          stderr.write(`quartz: ${client.conn.url} answers again; going on from the first record not printed\n`);
        }
        limits.answered();
        return answer;
      } catch (err) {
        if (stoppable && stopped.aborted) return undefined;
        if (err instanceof RateLimited && !stopped.aborted) {
          await limits.wait(err, stopped);
          if (stopped.aborted) {
            if (stoppable) return undefined;
            throw err;
          }
          continue;
        }
        if (!(err instanceof ServerUnavailable) || stopped.aborted) throw err;
        failure = err;
      }
      const now = Date.now();
      if (lostAt === undefined) {
        lostAt = now;
        stderr.write(`quartz: lost the server: ${failure.message.replace(/^quartz: /, '')}; trying again ${boundMs === 0 ? 'until it answers (Ctrl-C to stop)' : `for up to ${boundMs / 1000} s (--timeout)`}\n`);
      } else if (boundMs !== 0 && now - lostAt >= boundMs) {
        throw new CliError(`${failure.message}; gave up after trying again for ${boundMs / 1000} s (--timeout)`);
      }
      await pause(boundMs === 0 ? delay : Math.min(delay, Math.max(0, lostAt + boundMs - now)), stopped);
      if (stopped.aborted) {
        if (stoppable) return undefined;
        throw failure;
      }
      delay = Math.min(delay * 2, RETRY_MOST_MS);
    }
  };
}

interface RateLimitWaits {
  /** Waits what the 429 asks (at most a minute), or less when `stopped` aborts. */
  wait(err: RateLimited, stopped?: AbortSignal): Promise<void>;
  /** A request got through: the next 429 is a new spell, said again. */
  answered(): void;
}

/**
 * With --follow, a 429 is waited out: the server is there and says when to ask again, so it is
 * no outage and --timeout does not bound it. One line on stderr per spell of 429s, not one per
 * partition's retry.
 */
function rateLimitWaits(stderr: NodeJS.WritableStream): RateLimitWaits {
  let limited = false;
  return {
    wait: async (err, stopped) => {
      const ms = Math.min(Math.max(err.retryAfterMs, LEAST_RETRY_AFTER_MS), MOST_RETRY_AFTER_MS);
      // The wait taken, not the header's: '1e+23 s' for a minute's wait misled.
      if (!limited) stderr.write(`${err.message}; asking again when Retry-After says (${ms / 1000} s), for as long as it lasts\n`);
      limited = true;
      await pause(ms, stopped);
    },
    answered: () => {
      limited = false;
    },
  };
}

/** Waits `ms`, or less when `stopped` aborts. */
function pause(ms: number, stopped?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      stopped?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    stopped?.addEventListener('abort', done, { once: true });
  });
}
