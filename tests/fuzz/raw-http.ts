/**
 * An HTTP/1.1 client on a raw socket for the fuzzer: it writes requests byte for byte (duplicate
 * headers, lying lengths, bodies cut short or dripped slowly, bytes no client library would send)
 * and reads the answers back with a small parser of its own, so nothing normalizes either side.
 */
import { connect } from 'node:net';

const SLICE = 64 * 1024;

export interface RawResponse {
  status: number;
  /** Header names lower-cased; a repeated header keeps every value. */
  headers: Map<string, string[]>;
  body: Buffer;
}

/** How one connection's bytes go out. */
export interface Delivery {
  /** Written in order; with `gapMs`, each piece after a pause. */
  pieces: Buffer[];
  gapMs?: number;
  /** Shut down the sending side after the last piece (a half-closed socket). */
  halfClose?: boolean;
}

export interface Exchange {
  responses: RawResponse[];
  /** The server closed the connection (rather than this client giving up at the bound). */
  closed: boolean;
  timedOut: boolean;
  /** The socket failed (ECONNRESET, say); the responses read before it are kept. */
  error?: string;
  /** Bytes after the last whole response, when the connection ended inside one. */
  trailing: Buffer;
}

/**
 * Sends `delivery` on a new connection to `port` and reads answers until the server closes it,
 * `expected` answers to requests have been read (then this side closes), or `boundMs` passes.
 * `heads` says which of the pipelined requests are HEAD (their answers have no body).
 */
export function exchange(port: number, delivery: Delivery, options: { expected: number; heads?: boolean[]; boundMs: number }): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    let buffer: Buffer = Buffer.alloc(0);
    const responses: RawResponse[] = [];
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (how: { closed?: boolean; timedOut?: boolean; error?: string }): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      socket.destroy();
      resolve({ responses, closed: how.closed ?? false, timedOut: how.timedOut ?? false, error: how.error, trailing: buffer });
    };
    const drain = (atEnd: boolean): void => {
      for (;;) {
        const head = options.heads?.[responses.length] ?? false;
        const parsed = parseResponse(buffer, head, atEnd);
        if (parsed === undefined) return;
        buffer = buffer.subarray(parsed.used);
        if (parsed.response.status >= 100 && parsed.response.status < 200) continue; // 100 Continue
        responses.push(parsed.response);
        if (responses.length >= options.expected) return finish({});
      }
    };
    socket.on('data', (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      drain(false);
    });
    socket.on('end', () => {
      drain(true);
      finish({ closed: true });
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      drain(true);
      finish({ closed: true, error: e.code ?? e.message });
    });
    timers.push(setTimeout(() => finish({ timedOut: true }), options.boundMs));
    // Large pieces go out in slices, each after the last drained, and the rest is dropped once an
    // answer came (as curl does with an early 413): a client that kept writing would only read
    // a reset.
    const slices: Array<{ bytes: Buffer; pauseBefore: number }> = [];
    for (const [p, piece] of delivery.pieces.entries()) {
      for (let at = 0; at < piece.length || (at === 0 && piece.length === 0); at += SLICE) {
        slices.push({ bytes: piece.subarray(at, at + SLICE), pauseBefore: at === 0 && p > 0 ? (delivery.gapMs ?? 0) : 0 });
        if (piece.length === 0) break;
      }
    }
    let i = 0;
    const writeNext = (): void => {
      if (settled || socket.destroyed) return;
      if (responses.length > 0 && options.expected === 1) return;
      const slice = slices[i++];
      if (slice === undefined) {
        if (delivery.halfClose) socket.end();
        return;
      }
      const write = (): void => {
        if (settled || socket.destroyed) return;
        if (socket.write(slice.bytes)) writeNext();
        else socket.once('drain', writeNext);
      };
      if (slice.pauseBefore > 0) timers.push(setTimeout(write, slice.pauseBefore));
      else write();
    };
    socket.once('connect', writeNext);
  });
}

/**
 * One response at the start of `data`, or undefined when it is not all there yet. `atEnd`: the
 * connection has closed, so a response without a length ends here.
 */
export function parseResponse(data: Buffer, head: boolean, atEnd: boolean): { response: RawResponse; used: number } | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
  if (status === null) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const at = line.indexOf(':');
    const name = line.slice(0, at).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(at + 1).trim()]);
  }
  const code = Number(status[1]);
  const start = end + 4;
  const response = (body: Buffer): RawResponse => ({ status: code, headers, body });
  if (head || code === 204 || code === 304 || (code >= 100 && code < 200)) return { response: response(Buffer.alloc(0)), used: start };
  const chunked = (headers.get('transfer-encoding') ?? []).some((v) => /chunked/i.test(v));
  if (chunked) {
    const parts: Buffer[] = [];
    let at = start;
    for (;;) {
      const lineEnd = data.indexOf('\r\n', at);
      if (lineEnd < 0) return undefined;
      const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size in a response');
      if (size === 0) {
        // trailers (none expected) then the blank line
        const close = data.indexOf('\r\n\r\n', lineEnd);
        if (close < 0) return undefined;
        return { response: response(Buffer.concat(parts)), used: close + 4 };
      }
      if (data.length < lineEnd + 2 + size + 2) return undefined;
      parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
  const length = headers.get('content-length');
  if (length !== undefined) {
    const n = Number(length[0]);
    if (data.length < start + n) return undefined;
    return { response: response(data.subarray(start, start + n)), used: start + n };
  }
  if (!atEnd) return undefined;
  return { response: response(data.subarray(start)), used: data.length };
}
