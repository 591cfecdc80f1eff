/**
 * The app's LoggerPort on pino: one JSON line per event on stdout, request ids in the fields.
 */
import { writeSync } from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LoggerPort } from '../../api/ports.js';
import type { LogLevel } from './settings.js';

/**
 * stdout as pino's default writes it (sonic-boom, asynchronous, flushed at exit), except that a
 * stdout that can no longer be written ends the logging, not the server. NOTE: a closed terminal
 * answers every write with EIO; pino lets every error but EPIPE through, uncaught, and at exit
 * sonic-boom's flush retries a failing write every 100 ms without end, so a `quartz serve`
 * whose terminal closed (SIGHUP starts its graceful shutdown, which logs) stopped listening and
 * never exited, holding the data directory's LOCK.
 */
function stdoutDestination(): DestinationStream {
  const out = pino.destination({ dest: 1, sync: false });
  const silence = (): void => {
    out.write = () => true;
    out.flushSync = () => {};
    out.end = () => {};
  };
  out.on('error', silence);
  const flushSync = out.flushSync.bind(out);
  out.flushSync = () => {
    // The exit's flush may come before the failed write's error does: ask the descriptor first.
    try {
      writeSync(1, '');
    } catch {
      silence();
      return;
    }
    flushSync();
  };
  return out;
}

/**
 * @example
 * const { port, pino } = createLogger('info');
 * port.info({ request_id: 'abc' }, 'slow request');
 */
export function createLogger(level: LogLevel, destination: DestinationStream | NodeJS.WritableStream = stdoutDestination()): { port: LoggerPort; pino: Logger } {
  const log = pino({ level, base: { service: 'quartz' } }, destination);
  const port: LoggerPort = {
    debugEnabled: log.isLevelEnabled('debug'),
    debug: (obj, msg) => log.debug(obj, msg),
    info: (obj, msg) => log.info(obj, msg),
    warn: (obj, msg) => log.warn(obj, msg),
    error: (obj, msg) => log.error(obj, msg),
  };
  return { port, pino: log };
}
