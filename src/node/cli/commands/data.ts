/**
 * Account and data commands: register, login, usage, kv, collection, vec.
 */
import { open, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { ErrorCode } from '../../../core/errors.js';
import { decodeUtf8 } from '../../../core/utf8.js';
import { CliError, resolveConnection, ApiClient, errorBody, errorOf, namedPath } from '../client.js';
import { ctxFor, intFlag, listFlags, type CliIo } from '../context.js';
import { StopOnSignal, readFirstLine, readSecretLine } from '../io.js';
import { counted } from '../output.js';
import { progressBar, type Progress } from '../progress.js';
import { saveLogin } from '../user-config.js';

const kvPath = (key: string): string => namedPath('/v1/kv', key, 'the key');
const collectionPath = (name: string): string => namedPath('/v1/collections', name, 'the collection name');

export function accountCommands(program: Command, io: CliIo): void {
  program
    .command('register')
    .description('create a tenant on the server and print its API key (shown once)')
    .requiredOption('--email <email>', 'your e-mail address')
    .option('--save', 'also store the URL and key as with `quartz login`')
    .action(async (flags: { email: string; save?: boolean }, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const client = await ctx.client({ damagedConfig: flags.save === true ? 'ignore' : 'throw' });
      const res = await client.json<{ user_id: string; api_key: string }>('/v1/auth/register', { method: 'POST', json: { email: flags.email }, auth: 'none' });
      let saved: string | undefined;
      if (flags.save === true) saved = await saveLogin(io.env, { url: client.conn.url, api_key: res.api_key });
      ctx.out.print({ ...res, saved_to: saved ?? null }, () =>
        [`user id: ${res.user_id}`, `api key: ${res.api_key}`, saved !== undefined ? `saved to ${saved}` : 'keep it: it is shown once (`quartz login --api-key …` stores it)'].join('\n'),
      );
    });

  program
    .command('login')
    .description("check a key against the server and store the URL and key in the user's config dir")
    .option('--api-key <key>', 'the API key (else read from stdin, or QUARTZ_API_KEY)')
    .action(async (flags: { apiKey?: string }, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const globals = cmd.optsWithGlobals<{ url?: string; apiKey?: string; timeout?: string }>();
      let key = flags.apiKey ?? globals.apiKey ?? io.env.QUARTZ_API_KEY;
      if (key === undefined || key === '') {
        const typed = (io.stdin as { isTTY?: boolean }).isTTY === true;
        key = (typed ? await readSecretLine(io.stdin, io.stderr, 'API key (not shown): ') : await readFirstLine(io.stdin)).trim();
      }
      if (key === '') throw new CliError('quartz: no API key given (use --api-key, stdin or QUARTZ_API_KEY)');
      const conn = await resolveConnection({ url: globals.url, apiKey: key, timeout: globals.timeout }, io.env, { damagedConfig: 'ignore' });
      const client = new ApiClient(conn);
      const usage = await client.json<{ tenant_id: string }>('/v1/usage');
      const path = await saveLogin(io.env, { url: conn.url, api_key: key });
      ctx.out.done(`logged in to ${conn.url} as tenant ${usage.tenant_id} (saved to ${path})`, { url: conn.url, tenant_id: usage.tenant_id, saved_to: path });
    });

  program
    .command('usage')
    .description("this tenant's metered usage for the current period")
    .action(async (_flags: unknown, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const usage = await (await ctx.client()).json<Record<string, unknown>>('/v1/usage');
      const rows = Object.entries(usage).map(([metric, value]) => ({ metric, value }));
      ctx.out.table(rows, ['metric', 'value'], usage);
    });
}

export function kvCommands(program: Command, io: CliIo): void {
  const kv = program.command('kv').description('key-value store: get, put, del, ls');

  kv.command('get <key>')
    .description('print a value (raw bytes; --output json gives {key, value, encoding, content_type, etag})')
    .action(async (key: string, _flags: unknown, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const client = await ctx.client();
      const res = await client.request(kvPath(key), { accept: [404] });
      if (res.status === 404) {
        // The API answers a missing key and an unknown route alike (404 not_found): the key's own
        // 404 is one from a server whose API is at this URL. Another (a --url with a wrong path,
        // not a QuartzDB server) says what it is.
        const text = await res.text();
        if (errorBody(text)?.error === ErrorCode.NOT_FOUND && (await client.servesApi())) throw new CliError(`quartz: key '${key}' not found`);
        throw errorOf(res, text);
      }
      const bytes = await client.body(res);
      if (ctx.out.mode === 'json') {
        let value: string;
        let encoding = 'utf8';
        try {
          // ignoreBOM: a leading U+FEFF is part of the value, which the decoder's default would drop.
          value = decodeUtf8(bytes);
        } catch {
          value = Buffer.from(bytes).toString('base64');
          encoding = 'base64';
        }
        ctx.out.print({ key, value, encoding, content_type: res.headers.get('content-type'), etag: res.headers.get('etag') }, () => '');
        return;
      }
      const terminal = (io.stdout as { isTTY?: boolean }).isTTY === true;
      // Raw bytes at a terminal can be escape sequences that rewrite its screen or settings.
      if (terminal && !isText(bytes)) throw new CliError(`quartz: '${key}' holds ${counted(bytes.length, 'byte')} that are not plain text; not written to the terminal (redirect it: \`quartz kv get … > file\`, or use -o json for base64)`);
      io.stdout.write(bytes);
      if (terminal && bytes[bytes.length - 1] !== 0x0a) io.stdout.write('\n');
    });

  kv.command('put <key> [value]')
    .description('store a value given as an argument, from --file, or from stdin')
    .option('--file <path>', 'read the value from a file')
    .option('--ttl <seconds>', 'expire after this many seconds')
    .option('--content-type <type>', 'content type to keep with the value (default: text/plain; charset=utf-8 for a value given as an argument, else application/octet-stream)')
    .action(async (key: string, value: string | undefined, flags: { file?: string; ttl?: string; contentType?: string }, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const path = kvPath(key);
      const ttl = intFlag(flags.ttl, '--ttl', 1);
      if (value !== undefined && flags.file !== undefined) throw new CliError('quartz: give the value as an argument or --file, not both');
      const client = await ctx.client();
      const contentType = flags.contentType ?? (value !== undefined ? 'text/plain; charset=utf-8' : 'application/octet-stream');
      const query = { ttl };
      if (value !== undefined) {
        const body = new TextEncoder().encode(value);
        const res = await client.request(path, { method: 'PUT', body, contentType, query });
        ctx.out.done(`put '${key}' (${counted(body.length, 'byte')})`, { key, size: body.length, etag: res.headers.get('etag') });
        return;
      }
      // A file or stdin is streamed, not read whole first: a value of hundreds of MB took that much
      // memory (and longer) only to be refused as too large.
      const source = flags.file !== undefined ? await openInputFile(flags.file) : { stream: io.stdin as Readable, size: undefined };
      let readError: NodeJS.ErrnoException | undefined;
      source.stream.once('error', (err: NodeJS.ErrnoException) => (readError = err));
      const body = Readable.toWeb(source.stream) as ReadableStream<Uint8Array>;
      let answer: { size: number; etag: string | null };
      try {
        answer = await client.json(path, { method: 'PUT', body, contentLength: source.size, contentType, query });
      } catch (err) {
        if (readError !== undefined) throw new CliError(`quartz: cannot read ${flags.file ?? 'stdin'} (${readError.code ?? readError.message})`);
        throw err;
      } finally {
        // Refused before its end, stdin (or the file) would still be read, and keep the CLI running.
        source.stream.destroy();
      }
      ctx.out.done(`put '${key}' (${counted(answer.size, 'byte')})`, { key, size: answer.size, etag: answer.etag });
    });

  kv.command('del <key>')
    .description('delete a key')
    .action(async (key: string, _flags: unknown, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      await (await ctx.client()).request(kvPath(key), { method: 'DELETE' });
      ctx.out.done(`deleted '${key}'`, { key, deleted: true });
    });

  kv.command('ls')
    .description('list keys, optionally by prefix')
    .option('--prefix <prefix>', 'only keys starting with this')
    .option('--limit <n>', 'at most this many keys', '1000')
    .action(async (flags: { prefix?: string; limit: string }, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const limit = intFlag(flags.limit, '--limit', 1)!;
      const client = await ctx.client();
      const keys: Record<string, unknown>[] = [];
      let cursor: string | null = null;
      do {
        const page: { keys: Record<string, unknown>[]; cursor: string | null } = await client.json('/v1/kv', {
          query: { prefix: flags.prefix, cursor: cursor ?? undefined, limit: Math.min(1000, limit - keys.length) },
        });
        keys.push(...page.keys);
        cursor = page.cursor;
      } while (cursor !== null && keys.length < limit);
      ctx.out.table(keys, ['key', 'size', 'content_type', 'expires_at'], { keys, cursor });
    });
}

export function vectorCommands(program: Command, io: CliIo): void {
  const collection = program.command('collection').description('vector collections: create, ls, rm');
  collection
    .command('create <name>')
    .description('create a collection')
    .requiredOption('--dims <n>', 'vector dimensions')
    .option('--metric <metric>', 'cosine, l2 or dot', 'cosine')
    .action(async (name: string, flags: { dims: string; metric: string }, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const dims = intFlag(flags.dims, '--dims', 1);
      const info = await (await ctx.client()).json<Record<string, unknown>>('/v1/collections', { method: 'POST', json: { name, dims, metric: flags.metric } });
      ctx.out.done(`created collection '${name}' (${dims} dims, ${flags.metric})`, info);
    });
  collection
    .command('ls')
    .description('list collections (every one, a page of --page-size per request)')
    .option('--limit <n>', 'at most this many collections')
    .option('--page-size <n>', 'collections per request (1-1000)', '1000')
    .action(async (flags: { limit?: string; pageSize: string }, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const collections = await (await ctx.client()).listAll<Record<string, unknown>>('/v1/collections', 'collections', listFlags(flags));
      ctx.out.table(collections, ['name', 'dims', 'metric', 'count'], { collections });
    });
  collection
    .command('rm <name>')
    .description('delete a collection and its vectors')
    .action(async (name: string, _flags: unknown, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      await (await ctx.client()).request(collectionPath(name), { method: 'DELETE' });
      ctx.out.done(`deleted collection '${name}'`, { name, deleted: true });
    });

  const vec = program.command('vec').description('vectors: upsert, query');
  vec
    .command('upsert <collection>')
    .description('upsert vectors from a JSON file (an array or {vectors: [...]}) or JSONL (one {id, values, metadata} per line)')
    .requiredOption('--file <path>', 'the JSON or JSONL file ("-" for stdin)')
    .option('--batch <n>', `vectors per request, at most ${MAX_UPSERT_VECTORS} (a request is also kept under the body limit)`, '1000')
    .action(async (name: string, flags: { file: string; batch: string }, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      const path = collectionPath(name); // an empty name is refused before the file is read
      const batchSize = intFlag(flags.batch, '--batch', 1)!;
      if (batchSize > MAX_UPSERT_VECTORS) throw new CliError(`quartz: --batch must be at most ${MAX_UPSERT_VECTORS} (the vectors one upsert request may hold), got ${batchSize}`);
      const client = await ctx.client();
      const subject = flags.file === '-' ? 'stdin' : flags.file;
      const source = flags.file === '-' ? { stream: io.stdin as Readable, size: undefined } : await openInputFile(flags.file);
      const quiet = ctx.out.mode === 'json';
      let upserted = 0;
      const wereUpserted = (): string => `${counted(upserted, 'vector')} ${upserted === 1 ? 'was' : 'were'} upserted`;
      const batches = upsertBatches(client, `${path}/upsert`, batchSize, (n) => {
        upserted += n;
      });
      // Ctrl-C (or SIGTERM) stops reading; what was read is still sent, and the command says how far
      // it got, as produce does (it was killed silent, its progress bar's hidden cursor left hidden).
      // A second signal ends it at once: the handlers are gone.
      const stopped = new AbortController();
      const stop = new StopOnSignal(() => stopped.abort());
      let reached: string;
      try {
        const read = await upsertLines(source, subject, batches, progressBar(io, 'bytes', source.size ?? 0, quiet), stopped.signal);
        reached = `line ${read.lines} of ${subject}`;
        if (read.document !== undefined && !stopped.signal.aborted) {
          const vectors = parseVectors(read.document, subject);
          const bar = progressBar(io, 'vectors', vectors.length, quiet);
          let sent = 0;
          for (; sent < vectors.length && !stopped.signal.aborted; sent++) {
            await batches.add(JSON.stringify(vectors[sent]), `vector ${sent} of ${subject}`);
            if (sent % 100 === 99) bar.update(sent + 1);
          }
          await batches.flush();
          bar.update(sent);
          bar.stop();
          reached = `${sent} of the ${counted(vectors.length, 'vector')} in ${subject}`;
        }
      } catch (err) {
        if (err instanceof CliError && upserted > 0) throw new CliError(`${err.message}; ${wereUpserted()} before it`);
        throw err;
      } finally {
        stop.dispose();
        source.stream.destroy();
      }
      if (stop.by !== undefined) throw new CliError(`quartz: vec upsert stopped by ${stop.by} after ${reached}; ${wereUpserted()}`, 130);
      ctx.out.done(`upserted ${counted(upserted, 'vector')} into '${name}'`, { collection: name, upserted });
    });
  vec
    .command('query <collection>')
    .description('nearest neighbours of a vector (--vector JSON array), a stored id (--id), or a query file')
    .option('--vector <json>', 'the query vector as a JSON array')
    .option('--id <id>', 'query with a stored vector')
    .option('--file <path>', 'a JSON query body ({vector | id, k, filter, ...})')
    .option('-k, --k <n>', 'how many matches (default: the file\'s k, else 10)')
    .option('--filter <json>', 'metadata filter as JSON')
    .option('--threshold <score>', 'keep matches at least this similar (cosine, dot: score ≥ it; l2: distance ≤ it)')
    .option(`--ef <n>`, `search breadth, 1-${MAX_QUERY_EF} (default: the collection's; raised to k when lower)`)
    .option('--include-metadata', 'return metadata')
    .action(async (name: string, flags: { vector?: string; id?: string; file?: string; k?: string; filter?: string; threshold?: string; ef?: string; includeMetadata?: boolean }, cmd: Command) => {
      const ctx = ctxFor(cmd, io);
      let body: Record<string, unknown> = flags.file !== undefined ? (parseJson(await readText(flags.file), flags.file) as Record<string, unknown>) : {};
      if (flags.vector !== undefined) body.vector = parseJson(flags.vector, '--vector');
      if (flags.id !== undefined) body.id = flags.id;
      if (flags.filter !== undefined) body.filter = parseJson(flags.filter, '--filter');
      if (flags.includeMetadata === true) body.include_metadata = true;
      // Flags win over the file, as --vector, --id and --filter do.
      if (flags.k !== undefined) body.k = intFlag(flags.k, '--k', 1);
      if (flags.threshold !== undefined) body.threshold = numberFlag(flags.threshold, '--threshold');
      if (flags.ef !== undefined) {
        const ef = intFlag(flags.ef, '--ef', 1)!;
        if (ef > MAX_QUERY_EF) throw new CliError(`quartz: --ef must be at most ${MAX_QUERY_EF}, got '${flags.ef}'`);
        body.ef = ef;
      }
      body.k ??= 10;
      if (body.vector === undefined && body.id === undefined) throw new CliError('quartz: give --vector, --id or --file');
      const { matches } = await (await ctx.client()).json<{ matches: Record<string, unknown>[] }>(`${collectionPath(name)}/query`, { method: 'POST', json: body });
      ctx.out.table(matches, body.include_metadata === true ? ['id', 'score', 'metadata'] : ['id', 'score'], { matches });
    });
}

/** The largest `ef` a vector query takes (the query schema's bound, docs/vectors.md). */
const MAX_QUERY_EF = 10_000;

/** A decimal number flag (`0.8`, `-1.5`, `1e-3`): refused at once rather than sent as text the server would reject. */
function numberFlag(value: string, flag: string): number {
  if (!/^[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?$/i.test(value) || !Number.isFinite(Number(value))) {
    throw new CliError(`quartz: ${flag} must be a number, got '${value}'`);
  }
  return Number(value);
}

/** Control characters other than tab, newline and carriage return (C0, DEL and C1). */
const CONTROL = /[\u0000-\u0008\u000b-\u000c\u000e-\u001f\u007f-\u009f]/;

/** True for UTF-8 text without control characters: what a terminal shows as it is. */
export function isText(bytes: Uint8Array): boolean {
  try {
    return !CONTROL.test(decodeUtf8(bytes));
  } catch {
    return false;
  }
}

/** A file to stream (a value, vectors); its size when it is a regular file (a pipe or device has none). */
async function openInputFile(path: string): Promise<{ stream: Readable; size: number | undefined }> {
  const cannot = (err: NodeJS.ErrnoException): CliError => new CliError(`quartz: cannot read ${path} (${err.code ?? err.message})`);
  const handle = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    throw cannot(err);
  });
  const info = await handle.stat();
  if (info.isDirectory()) {
    await handle.close();
    throw cannot(Object.assign(new Error('is a directory'), { code: 'EISDIR' }));
  }
  return { stream: handle.createReadStream(), size: info.isFile() ? info.size : undefined };
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError(`quartz: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

function parseJson(text: string, subject: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`quartz: ${subject} is not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Reads vectors line by line and sends JSONL in batches as it goes, so a file of hundreds of MB
 * takes a batch's memory, not the whole file's several times over (and a missing collection is
 * found at the first batch, not after the whole file is parsed). A file whose first line is not
 * a vector object of its own (a JSON array, `{vectors}`, a pretty-printed object) is one JSON
 * document: its text is returned for parseVectors. `stop` ends the read after the line at hand
 * (a line cut short is never sent); the lines read are still sent. `lines`: how many were read.
 */
async function upsertLines(
  source: { stream: Readable; size: number | undefined },
  subject: string,
  batches: UpsertBatches,
  bar: Progress,
  stop: AbortSignal,
): Promise<{ document: string | undefined; lines: number }> {
  let mode: 'jsonl' | 'whole' | undefined;
  const document: string[] = [];
  let lineNo = 0;
  let bytes = 0;
  const lines = createInterface({ input: source.stream, crlfDelay: Infinity });
  // Closed, not the input destroyed: readline's iteration never ends on a destroyed input.
  const close = (): void => lines.close();
  stop.addEventListener('abort', close);
  try {
    for await (const line of lines) {
      // Lines readline had already split are still yielded after close.
      if (stop.aborted) break;
      lineNo++;
      bytes += Buffer.byteLength(line) + 1;
      if (mode === 'whole') {
        document.push(line);
        if (lineNo % 1000 === 0) bar.update(Math.min(bytes, source.size ?? 0));
        continue;
      }
      if (line.trim() === '') continue;
      if (mode === undefined) {
        mode = isVectorLine(line) ? 'jsonl' : 'whole';
        if (mode === 'whole') {
          document.push(line);
          continue;
        }
      }
      const where = `${subject} line ${lineNo}`;
      parseJson(line, where);
      // The line as it came (it is JSON): one vector's part of the request body.
      if (await batches.add(line.trim(), `line ${lineNo} of ${subject}`)) bar.update(Math.min(bytes, source.size ?? 0));
    }
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    if (err instanceof CliError) throw err;
    throw new CliError(`quartz: cannot read ${subject} (${code ?? message})`);
  } finally {
    stop.removeEventListener('abort', close);
    lines.close();
  }
  if (mode === 'jsonl') {
    await batches.flush();
    if (!stop.aborted) bar.update(source.size ?? 0);
  }
  bar.stop();
  return { document: mode === 'jsonl' ? undefined : document.join('\n'), lines: lineNo };
}

/**
 * What one upsert request may hold (docs/vectors.md, docs/configuration.md): 10,000 vectors,
 * and a body of `body_limits.vectors`, 32 MiB unless the server is configured otherwise.
 */
export const MAX_UPSERT_VECTORS = 10_000;
export const MAX_UPSERT_BODY_BYTES = 32 * 2 ** 20;
const UPSERT_ENVELOPE = '{"vectors":[]}'.length;

interface UpsertBatches {
  /** Adds one vector's JSON (`where` names it in errors); true when that sent a batch. */
  add(json: string, where: string): Promise<boolean>;
  /** Sends what is left. */
  flush(): Promise<void>;
}

/**
 * Groups vectors into upsert requests of at most `batchSize`, cut before the body would pass
 * 32 MiB, sent one after another so they land in input order. A server configured with a
 * smaller `body_limits.vectors` answers 413: the batch is sent again in halves (a refused
 * upsert stores nothing, so no vector is written twice) and later batches are cut to the size
 * that passed. A vector refused on its own stops the command, naming it.
 */
function upsertBatches(client: ApiClient, path: string, batchSize: number, upserted: (n: number) => void): UpsertBatches {
  let batch: { json: string; bytes: number; where: string }[] = [];
  let batchBytes = UPSERT_ENVELOPE;
  let budget = MAX_UPSERT_BODY_BYTES;
  const post = async (items: typeof batch): Promise<void> => {
    const body = `{"vectors":[${items.map((v) => v.json).join(',')}]}`;
    const res = await client.request(path, { method: 'POST', body, contentType: 'application/json', accept: [400, 413] });
    if (res.ok) {
      upserted((await client.answer<{ upserted: number }>(res)).upserted);
      return;
    }
    const refused = errorOf(res, new TextDecoder().decode(await client.body(res).catch(() => new Uint8Array(0))));
    // The server names a vector by its place in this request (`vectors[3].values`), which the user
    // cannot find in the file: name its line instead. A refused upsert stores nothing.
    if (res.status === 400) throw new CliError(refused.message.replace(/\bvectors\[(\d+)\](\.)?/g, (all, i: string, dot?: string) => (items[Number(i)] === undefined ? all : `${items[Number(i)]!.where}${dot === undefined ? '' : ': '}`)));
    if (items.length === 1) throw new CliError(refused.message.replace(/^quartz: /, `quartz: ${items[0]!.where}: `));
    budget = Math.min(budget, Math.max(UPSERT_ENVELOPE + items[0]!.bytes, Math.floor(Buffer.byteLength(body) / 2)));
    const half = Math.ceil(items.length / 2);
    await post(items.slice(0, half));
    await post(items.slice(half));
  };
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const items = batch;
    batch = [];
    batchBytes = UPSERT_ENVELOPE;
    await post(items);
  };
  return {
    add: async (json, where) => {
      const bytes = Buffer.byteLength(json) + 1; // and its comma
      let sent = false;
      if (batch.length > 0 && batchBytes + bytes > budget) {
        await flush();
        sent = true;
      }
      batch.push({ json, bytes, where });
      batchBytes += bytes;
      if (batch.length >= batchSize) {
        await flush();
        sent = true;
      }
      return sent;
    },
    flush,
  };
}

/** True when a line is a whole JSON object that is a vector (not `{vectors: [...]}`): the first line of JSONL. */
function isVectorLine(line: string): boolean {
  try {
    const value = JSON.parse(line) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value) && !Array.isArray((value as { vectors?: unknown }).vectors);
  } catch {
    return false;
  }
}

/** JSON (array or {vectors}) or JSONL, told apart by trying JSON first. */
export function parseVectors(text: string, subject: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === '') throw new CliError(`quartz: ${subject} is empty: it holds no vectors`);
  try {
    const whole = JSON.parse(trimmed) as unknown;
    // `[]` is refused as an empty file is: an upsert of nothing is a wrong file more often than not.
    const list = Array.isArray(whole) ? whole : whole !== null && typeof whole === 'object' && Array.isArray((whole as { vectors?: unknown }).vectors) ? (whole as { vectors: unknown[] }).vectors : undefined;
    if (list !== undefined) {
      if (list.length === 0) throw new CliError(`quartz: ${subject} holds no vectors`);
      return list;
    }
    if (whole !== null && typeof whole === 'object') return [whole];
    throw new CliError(`quartz: ${subject} must hold an array of vectors, {vectors: [...]}, or one vector per line`);
  } catch (err) {
    if (err instanceof CliError) throw err;
    // No line of JSONL starts an array: this is one document, and its own error says where it broke
    // (read as lines, it was "line 1 is not valid JSON (Unexpected end of JSON input)").
    if (trimmed.startsWith('[')) throw new CliError(`quartz: ${subject} is not valid JSON (${(err as Error).message})`);
  }
  return trimmed.split('\n').flatMap((line, i) => (line.trim() === '' ? [] : [parseJson(line, `${subject} line ${i + 1}`)]));
}
