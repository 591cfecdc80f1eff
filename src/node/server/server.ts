/**
 * The Node home's server: opens the data directory, loads the admin key, builds the hono app
 * with prom-client metrics, pino logs, file assets and backups, and listens with node:http:
 * KV GET and PUT, vector query, produce and consume answered directly (./direct.ts), the rest through @hono/node-server. `close()` is the graceful shutdown: stop accepting, answer pending
 * long-polls with what they have, finish in-flight requests, then flush and close the engine.
 */
import type { ServerType } from '@hono/node-server';
import { setMaxListeners } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createApp } from '../../api/app.js';
import { hashKey, resolveServerConfig } from '../../api/config.js';
import type { LoggerPort } from '../../api/ports.js';
import type { Engine } from '../../engine/engine.js';
import { createBackup, releaseBackups } from '../backup/snapshot.js';
import { machineMemory, openQuartz } from '../open-quartz.js';
import { adminKeyFile, adminKeyFromEnv, type AdminKey } from './admin-key.js';
import { packageVersion } from '../package-info.js';
import { unknownVariableMessage, unknownVariables } from '../variables.js';
import { fileAssets } from './assets.js';
import { BodyBudget, defaultRequestBodiesBytes } from './body-budget.js';
import { directFirst } from './direct.js';
import { holdAddress } from './held-address.js';
import { idleBound } from './idle-bound.js';
import { inTurn } from './in-turn.js';
import { closeAfterAnswer, continueWhenRead, EarlyAnswerResponse, lingering } from './early-answer.js';
import { createLogger } from './logger.js';
import { adapterListener, answerClientError, countWrites, endUnlessWriting, refuseConnect, refuseExpectation } from './transport-errors.js';
import { createMetrics } from './metrics.js';
import { keepTickShape } from './tick-shape.js';
import type { ServeSettings } from './settings.js';

/** How long a graceful shutdown may take before connections are cut. */
export const SHUTDOWN_BOUND_MS = 10_000;

export interface RunningServer {
  url: string;
  /** The address the listener bound, numeric (`127.0.0.1`, `::ffff:127.0.0.1`), whatever `host` named it. */
  address: string;
  engine: Engine;
  adminKey: AdminKey;
  logger: LoggerPort;
  /** Graceful shutdown; resolves true when every request finished within the bound. Idempotent. */
  close(reason?: string): Promise<boolean>;
}

/** The listener's timeouts in ms (docs/configuration.md, Timeouts). */
export interface ListenerTimeouts {
  keepAliveMs: number;
  headersMs: number;
  requestMs: number;
  idleMs: number;
}

/**
 * The timeouts for a server whose long-polls wait at most `longPollMaxMs`. None cuts a long-poll
 * (it sends nothing until its wait ends), nor an upload or a download that keeps moving.
 *
 * @example
 * const { idleMs } = listenerTimeouts(30_000); // 120_000
 */
export function listenerTimeouts(longPollMaxMs: number): ListenerTimeouts {
  return {
    // Node closes idle keep-alive sockets after 5 s; a client reusing one just then gets a reset.
    // Outlive the usual 60 s idle timeout of load balancers and clients instead.
    keepAliveMs: 65_000,
    // Over the keep-alive timeout, so an idle connection is closed, never answered 408.
    headersMs: 66_000,
    // The whole request, body included: 25 MiB at ~90 KB/s (node's default, said here).
    requestMs: 300_000,
    // NOTE: node has no bound on a connection that stops moving once its request is in, or mid-body
    // before the request timeout: a client that stops reading a 4 MiB answer held it, and its
    // socket, forever. node restarts this timer on every read and every completed write; idleBound
    // arms it.
    idleMs: Math.max(120_000, longPollMaxMs + 30_000),
  };
}

function setTimeouts(http: Server, longPollMaxMs: number): void {
  const t = listenerTimeouts(longPollMaxMs);
  http.keepAliveTimeout = t.keepAliveMs;
  http.headersTimeout = t.headersMs;
  http.requestTimeout = t.requestMs;
  // The idle bound is armed by the listener (idleBound), only on requests still open once it returns.
  http.timeout = 0;
}

/** The field of node's ServerResponse that closeIdleConnections reads (`socket._httpMessage`). */
interface AttachedAnswer {
  finished: boolean;
}

/**
 * Makes the server's closeIdleConnections (which `http.close()` calls too) spare a connection
 * still writing an answer. NOTE: node counts a connection idle once its request has arrived and
 * its answer is ended (`res.end()`), though the answer may still sit in the socket's buffer and
 * requests pipelined behind it wait their turn: a graceful shutdown destroyed it, and a slow
 * reader of a 20 MiB value read 4 MiB of it, its next request unanswered. An answer stays on its
 * socket (`_httpMessage`) until written, so while it is there the connection is not idle.
 */
function spareAnswersInFlight(http: Server, sockets: Set<Socket>): void {
  const closeIdle = http.closeIdleConnections.bind(http);
  http.closeIdleConnections = () => {
    const writing: AttachedAnswer[] = [];
    for (const socket of sockets) {
      const answer = (socket as Socket & { _httpMessage?: AttachedAnswer | null })._httpMessage;
      if (answer?.finished === true) writing.push(answer);
    }
    // node skips a connection whose answer is not finished: it reads the flag, nothing else.
    for (const answer of writing) answer.finished = false;
    try {
      closeIdle();
    } finally {
      for (const answer of writing) answer.finished = true;
    }
  };
}

/** The `route` label of answers the Node listener gives before routing (see docs/configuration.md, Metrics). */
const EARLY_ROUTE = 'early';

function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/**
 * Starts the server on resolved settings.
 *
 * @example
 * const server = await startServer(await resolveServeSettings({ port: '0' }, process.env), process.env);
 * console.log(server.url);
 * await server.close();
 */
export async function startServer(settings: ServeSettings, env: Record<string, string | undefined>): Promise<RunningServer> {
  keepTickShape();
  const { port: logger } = createLogger(settings.logLevel);
  for (const unknown of unknownVariables(env)) logger.warn({ variable: unknown.name, nearest: unknown.nearest ?? null }, unknownVariableMessage(unknown));
  const version = packageVersion();
  // Check the app config before touching the data directory, so a bad plan name fails fast.
  const draft = resolveServerConfig({ version, ...settings.app });
  // Likewise a QUARTZ_ADMIN_KEY no request could present: it must not cost a created, locked or replayed directory.
  const envAdminKey = adminKeyFromEnv(env.QUARTZ_ADMIN_KEY);
  // Taken first: a port in use must not cost a created, locked or migrated data directory.
  const held = await holdAddress(settings.host, settings.port);
  const engine = await openQuartz({
    dataDir: settings.dataDir,
    defaultPlan: draft.default_plan,
    dropDamagedLog: settings.dropDamagedLog,
    vectors: { maxOpenBytes: settings.openCollectionsMaxBytes, idleCloseMs: settings.collectionIdleCloseMs },
    kv: { keyCacheMaxBytes: settings.kvKeyCacheMaxBytes },
    tenantIdleMs: settings.tenantIdleMs,
    warn: (message, details) => logger.warn(details, message),
    logger: { error: (message, details) => logger.error(details ?? {}, message), info: (message, details) => logger.info(details ?? {}, message) },
  }).catch((err: unknown) => {
    held.release();
    throw err;
  });
  let server: ServerType;
  const shutdown = new AbortController();
  // Each pending long-poll listens on this signal until it is answered (then it lets go), so more
  // than 10 at once is normal load, not the leak node's MaxListenersExceededWarning suspects.
  setMaxListeners(0, shutdown.signal);
  let adminKey: AdminKey;
  try {
    adminKey = envAdminKey ?? (await adminKeyFile(settings.dataDir));
    const config = { ...draft, admin_key_hash: await hashKey(adminKey.key) };
    const largestBody = Math.max(...Object.values(config.body_limits));
    // Answers the listener gives before any route sees the request: counted too, as route `early`.
    const early = (method: string | undefined, status: number): void => metrics.observeRequest(EARLY_ROUTE, method ?? 'unknown', status, 0);
    const bodies = new BodyBudget({
      maxBytes: settings.requestBodiesMaxBytes ?? defaultRequestBodiesBytes(machineMemory(), largestBody),
      chunkedBytes: largestBody,
      warn: (message, details) => logger.warn(details, message),
      refusedWith: (req, status) => early(req.method, status),
    });
    const metrics = createMetrics(engine, bodies);
    const app = createApp({
      engine,
      config,
      logger,
      metrics,
      assets: fileAssets(),
      shutdownSignal: shutdown.signal,
      backup: (signal) => createBackup(engine, signal),
    });
    server = await new Promise<ServerType>((resolve, reject) => {
      // As @hono/node-server's serve(), with the app's direct routes answered straight from node's request.
      const hono = adapterListener(app.fetch, { hostname: settings.host, logger, early: (req, status) => early(req?.method, status) });
      // Host is checked in directFirst, which answers its absence as JSON (node's check answers a bare 400).
      const listener = idleBound(
        countWrites(inTurn(bodies.guard(directFirst(app.direct, hono, logger, (req, status) => early(req.method, status)), app.corsHeaders))),
        listenerTimeouts(draft.long_poll_max_ms).idleMs,
      );
      const s = createServer({ requireHostHeader: false, ServerResponse: EarlyAnswerResponse }, listener);
      // NOTE: by default node ends a connection as soon as its client half-closes (sends FIN after
      // its request, as `nc -N` or an HTTP/1.0 client may), dropping the answers of requests still
      // running: a PUT stored its value and its client read nothing. Half-open, node answers them
      // and closes after the last; endUnlessWriting still cuts a read at once when no write is left.
      (s as typeof s & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
      s.on('checkContinue', continueWhenRead(listener));
      s.on('clientError', (err: NodeJS.ErrnoException, socket) => {
        const status = answerClientError(err, socket);
        if (status !== undefined) early(undefined, status);
      });
      s.on('connect', (req: IncomingMessage, socket: Duplex) => {
        const status = refuseConnect(req, socket);
        if (status !== undefined) early('CONNECT', status);
      });
      s.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
        refuseExpectation(req, res);
        early(req.method, 417);
      });
      held.release();
      s.listen(held.port, settings.host, () => resolve(s));
      s.once('error', reject);
    });
  } catch (err) {
    held.release();
    await engine.close();
    throw err;
  }
  const address = server.address() as AddressInfo;
  const url = `http://${urlHost(settings.host)}:${address.port}`;
  const http = server as Server;
  const sockets = new Set<Socket>();
  http.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('end', () => endUnlessWriting(socket));
    socket.once('close', () => sockets.delete(socket));
  });
  setTimeouts(http, draft.long_poll_max_ms);
  spareAnswersInFlight(http, sockets);

  let closing: Promise<boolean> | undefined;
  const close = (reason = 'shutdown'): Promise<boolean> =>
    (closing ??= (async () => {
      logger.info({ reason }, 'shutting down');
      for (const socket of sockets) closeAfterAnswer(socket);
      shutdown.abort();
      const stopped = new Promise<void>((resolve) => http.close(() => resolve()));
      // Keep-alive connections go idle after their last response: close them as they do. Node
      // counts a socket that never sent a byte (a browser's preconnect) as busy until the
      // headers timeout, so cut those too: no request of theirs can be lost.
      const closeIdle = (): void => {
        http.closeIdleConnections();
        for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy();
      };
      const idle = setInterval(closeIdle, 50);
      closeIdle();
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([
        stopped.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), SHUTDOWN_BOUND_MS))),
      ]);
      clearTimeout(timer);
      clearInterval(idle);
      // A lingering close (a client still sending a body refused before it was read) has had its
      // answer: cutting it at the bound cuts no request.
      let running = 0;
      for (const socket of sockets) if (!lingering(socket)) running++;
      if (!inTime) {
        if (running > 0) logger.warn({ bound_ms: SHUTDOWN_BOUND_MS, connections: running }, 'requests still running at the shutdown bound; closing their connections');
        else logger.info({ bound_ms: SHUTDOWN_BOUND_MS }, 'clients still sending bodies refused before they were read at the shutdown bound; closing their connections');
        http.closeAllConnections();
      }
      releaseBackups(engine); // a download still running must not read from a closed lmdb
      await engine.close();
      logger.info({}, 'stopped');
      return inTime || running === 0;
    })());

  return { url, address: address.address, engine, adminKey, logger, close };
}
