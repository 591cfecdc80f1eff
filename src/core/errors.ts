/**
 * One table of error codes for every layer. The HTTP layer maps a QuartzError to
 * `{error: code, message}` with `status`; WASM return codes map into the same table.
 */
export const ErrorCode = {
  // generic
  INVALID_ARGUMENT: 'invalid_argument',
  NOT_FOUND: 'not_found',
  ALREADY_EXISTS: 'already_exists',
  PRECONDITION_FAILED: 'precondition_failed',
  TOO_LARGE: 'too_large',
  UNAUTHORIZED: 'unauthorized',
  RATE_LIMITED: 'rate_limited',
  NOT_IMPLEMENTED: 'not_implemented',
  METHOD_NOT_ALLOWED: 'method_not_allowed',
  TIMEOUT: 'timeout',
  INSUFFICIENT_STORAGE: 'insufficient_storage',
  UNAVAILABLE: 'unavailable',
  INTERNAL: 'internal',
  // core
  NOT_INITIALIZED: 'not_initialized',
  WASM_LOAD_FAILED: 'wasm_load_failed',
  CORRUPT_DATA: 'corrupt_data',
  CHECKSUM_MISMATCH: 'checksum_mismatch',
  UNSUPPORTED_FORMAT: 'unsupported_format',
  // streams
  OFFSET_OUT_OF_RANGE: 'offset_out_of_range',
  // storage
  STORAGE_CLOSED: 'storage_closed',
  DATA_VERSION_TOO_NEW: 'data_version_too_new',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** HTTP status for each code, so every home answers the same way. */
export const errorStatus: Record<ErrorCode, number> = {
  invalid_argument: 400,
  not_found: 404,
  already_exists: 409,
  precondition_failed: 412,
  too_large: 413,
  unauthorized: 401,
  rate_limited: 429,
  not_implemented: 501,
  method_not_allowed: 405,
  timeout: 504,
  insufficient_storage: 507,
  unavailable: 503,
  internal: 500,
  not_initialized: 500,
  wasm_load_failed: 500,
  corrupt_data: 500,
  checksum_mismatch: 500,
  unsupported_format: 400,
  offset_out_of_range: 400,
  storage_closed: 500,
  data_version_too_new: 500,
};

export class QuartzError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Structured facts about the failure, e.g. the valid offset range. */
  readonly details?: Record<string, unknown>;
  /**
   * The message names only the caller's own data and what to do about it, so the HTTP API shows
   * it even on a 5xx (whose messages it otherwise replaces, as they may name files or internals).
   */
  readonly exposeMessage: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown>; exposeMessage?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'QuartzError';
    this.code = code;
    this.status = errorStatus[code];
    this.details = options?.details;
    this.exposeMessage = options?.exposeMessage === true;
  }
}

export function isQuartzError(err: unknown, code?: ErrorCode): err is QuartzError {
  return err instanceof QuartzError && (code === undefined || err.code === code);
}
