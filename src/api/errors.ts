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
  return new Response(errorJson(err.code, err.message), { status: err.status, headers: { 'content-type': JSON_TYPE, ...headers } });
}

/**
 * The error a client is shown for anything thrown by a route; unexpected errors are logged with
 * the request id.
 *
 * @example
 * const shown = exposedError(err, logger, requestId); // then answer shown.status with its code and message
 */
export function exposedError(err: unknown, logger: LoggerPort, requestId: string | undefined): QuartzError {
  if (isQuartzError(err)) {
    if (err.status >= 500) logger.error({ request_id: requestId, code: err.code, err }, err.message);
    // Internal failures keep their code but not their detail, which may name files or internals.
    return err.status >= 500 && err.code !== ErrorCode.NOT_IMPLEMENTED && err.code !== ErrorCode.TIMEOUT && err.code !== ErrorCode.INSUFFICIENT_STORAGE
      ? new QuartzError(err.code, 'the server failed to handle this request; the error is logged')
      : err;
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
