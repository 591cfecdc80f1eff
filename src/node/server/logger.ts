/**
 * The app's LoggerPort on pino: one JSON line per event on stdout, request ids in the fields.
 */
import { pino, type Logger } from 'pino';
import type { LoggerPort } from '../../api/ports.js';
import type { LogLevel } from './settings.js';

/**
 * @example
 * const { port, pino } = createLogger('info');
 * port.info({ request_id: 'abc' }, 'slow request');
 */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): { port: LoggerPort; pino: Logger } {
  const log = destination === undefined ? pino({ level, base: { service: 'quartz' } }) : pino({ level, base: { service: 'quartz' } }, destination);
  const port: LoggerPort = {
    debugEnabled: log.isLevelEnabled('debug'),
    debug: (obj, msg) => log.debug(obj, msg),
    info: (obj, msg) => log.info(obj, msg),
    warn: (obj, msg) => log.warn(obj, msg),
    error: (obj, msg) => log.error(obj, msg),
  };
  return { port, pino: log };
}
