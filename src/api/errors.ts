/**
 * Every error leaves the app as `{error, message}` JSON with its status: a QuartzError keeps its
 * code, anything else becomes a 500 with a generic message and its cause logged, never a stack.
 */
import { ErrorCode, QuartzError, isQuartzError } from '../core/errors.js';
import type { LoggerPort } from './ports.js';

export interface ErrorBody {
  error: string;
  message: string;
}

/**
 * The Content-Type of every JSON answer, success or error. No `charset`: JSON text is UTF-8 and
 * application/json defines no parameters (RFC 8259 §8.1 and §11).
 */
export const JSON_TYPE = 'application/json';

/**
 * The text of an error answer's body, for answers built without a Response (the direct routes,
 * and the Node server's answers to requests that never reach the app).
 */
export function errorJson(code: string, message: string): string {
  const body: ErrorBody = { error: code, message };
  return JSON.stringify(body);
}

/**
 * The JSON error response for `code` and `message` (status from the error table).
 *
 * @example
 * return errorResponse(new QuartzError(ErrorCode.NOT_FOUND, "key 'a' does not exist"));
 */
export function errorResponse(err: QuartzError, headers?: Record<string, string>): Response {
  return new Response(errorJson(err.code, err.message), { status: err.status, headers: { ...errorHeaders(err), ...headers } });
}

/** Seconds a client is asked to wait before retrying an `unavailable` answer. */
export const UNAVAILABLE_RETRY_S = 1;

/**
 * The headers of an error answer: its type, and `Retry-After` on a 503 (RFC 9110 §15.6.4).
 *
 * @example
 * const headers = errorHeaders(new QuartzError(ErrorCode.UNAVAILABLE, 'busy')); // content-type, retry-after
 */
export function errorHeaders(err: QuartzError): Record<string, string> {
  return err.code === ErrorCode.UNAVAILABLE ? { 'content-type': JSON_TYPE, 'retry-after': String(UNAVAILABLE_RETRY_S) } : { 'content-type': JSON_TYPE };
}

/** errno names of a process (EMFILE) or system (ENFILE) out of file descriptors; lmdb gives the number (Linux, macOS: 24 and 23). */
const OUT_OF_DESCRIPTORS = new Set<unknown>(['EMFILE', 'ENFILE', 24, 23]);

/** The errno name when `err`, or an error it was caused by, is a shortage of file descriptors. */
function descriptorShortage(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (OUT_OF_DESCRIPTORS.has(code)) return code === 23 || code === 'ENFILE' ? 'ENFILE' : 'EMFILE';
    if (/too many open files/i.test(e.message)) return /in system/i.test(e.message) ? 'ENFILE' : 'EMFILE';
  }
  return undefined;
}

/** When the descriptor warning was last logged: once a second at most, however many requests meet it. */
let descriptorWarnedAt = -Infinity;
const DESCRIPTOR_WARN_EVERY_MS = 1000;

function warnOutOfDescriptors(logger: LoggerPort, requestId: string | undefined, errno: string, err: unknown): void {
  const now = Date.now();
  if (now - descriptorWarnedAt < DESCRIPTOR_WARN_EVERY_MS) return;
  descriptorWarnedAt = now;
  const limit =
    errno === 'ENFILE'
      ? 'the system is out of file descriptors (ENFILE): raise fs.file-max (sysctl) or close other programs'
      : 'the server ran out of file descriptors (EMFILE): raise its limit (`ulimit -n 65536` before starting it, LimitNOFILE=65536 in its systemd unit, --ulimit nofile=65536 for docker)';
  logger.error({ request_id: requestId, err }, `${limit}; requests meeting it are answered 503 with Retry-After`);
}

/**
 * The error a client is shown for anything thrown by a route; unexpected errors are logged with
 * the request id.
 *
 * @example
 * const shown = exposedError(err, logger, requestId); // then answer shown.status with its code and message
 */
export function exposedError(err: unknown, logger: LoggerPort, requestId: string | undefined): QuartzError {
  if (isQuartzError(err) && (err.code !== ErrorCode.INTERNAL || descriptorShortage(err.cause) === undefined)) {
    if (err.status >= 500) logger.error({ request_id: requestId, code: err.code, err }, err.message);
    // Internal failures keep their code but not their detail, which may name files or internals.
    return err.status >= 500 && !err.exposeMessage && err.code !== ErrorCode.NOT_IMPLEMENTED && err.code !== ErrorCode.TIMEOUT && err.code !== ErrorCode.INSUFFICIENT_STORAGE && err.code !== ErrorCode.UNAVAILABLE
      ? new QuartzError(err.code, 'the server failed to handle this request; the error is logged')
      : err;
  }
  const errno = descriptorShortage(err);
  if (errno !== undefined) {
    // Descriptors come back as connections and files close: the same request can succeed shortly.
    warnOutOfDescriptors(logger, requestId, errno, err);
    return new QuartzError(ErrorCode.UNAVAILABLE, 'the server has too many files and connections open just now; retry shortly');
  }
  logger.error({ request_id: requestId, err }, 'unhandled error in a route');
  return new QuartzError(ErrorCode.INTERNAL, 'the server failed to handle this request; the error is logged');
}

/**
 * Maps anything thrown by a route to a response (see `exposedError`).
 *
 * @example
 * app.onError((err, c) => toErrorResponse(err, logger, c.get('requestId')));
 */
export function toErrorResponse(err: unknown, logger: LoggerPort, requestId: string | undefined): Response {
  return errorResponse(exposedError(err, logger, requestId));
}
