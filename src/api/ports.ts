/**
 * The ports a home plugs into the HTTP app: metrics and logging. The Node home passes
 * prom-client and pino implementations; the Worker home its own. Both are optional.
 */

/** What the app reports about each request; the home owns the registry and its rendering. */
export interface MetricsPort {
  /** One finished request: `route` is the matched pattern (e.g. `/v1/kv/:key{.+}`), never the raw path. */
  observeRequest(route: string, method: string, status: number, seconds: number): void;
  /** The Prometheus text for `GET /metrics`; without it that route answers 404. */
  render?(): Promise<MetricsText> | MetricsText;
}

export interface MetricsText {
  contentType: string;
  body: string;
}

/** pino's calling convention: structured fields first, then the message. */
export type LogFn = (obj: Record<string, unknown>, msg: string) => void;

export interface LoggerPort {
  /** False when debug lines are dropped anyway, so per-request callers can skip building them. */
  readonly debugEnabled?: boolean;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

/** A consistent snapshot of the data, streamed by `GET /v1/admin/backup`. */
export interface BackupSnapshot {
  body: ReadableStream<Uint8Array>;
  /** Bytes in the archive when known up front (lets clients show progress). */
  size?: number;
  /** Suggested file name for Content-Disposition. */
  filename?: string;
  /** Defaults to application/octet-stream. */
  contentType?: string;
}

/** Takes the snapshot; `signal` aborts when the client goes away. */
export type BackupFn = (signal: AbortSignal) => Promise<BackupSnapshot>;

export const silentLogger: LoggerPort = {
  debugEnabled: false,
  debug() {},
  info() {},
  warn() {},
  error() {},
};
