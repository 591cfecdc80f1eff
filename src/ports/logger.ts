/**
 * The Logger port: where the engine reports what no caller hears about, such as a partition's
 * background roll or retention failing and then succeeding again. Each home passes its own (the
 * Node server its pino logger); without one the engine writes to the console's error stream.
 */
export interface Logger {
  error(message: string, details?: Record<string, unknown>): void;
  info(message: string, details?: Record<string, unknown>): void;
}

/**
 * Both levels on `console.error`: stderr is where a home's diagnostics go, and a library's
 * stdout may carry a program's own output.
 *
 * @example
 * consoleLogger.error("the roll of partition 'log/t1/orders/0' failed", { err });
 */
export const consoleLogger: Logger = {
  error: (message, details) => (details === undefined ? console.error(`quartz: ${message}`) : console.error(`quartz: ${message}`, details)),
  info: (message, details) => (details === undefined ? console.error(`quartz: ${message}`) : console.error(`quartz: ${message}`, details)),
};
