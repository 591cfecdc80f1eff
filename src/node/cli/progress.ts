/**
 * Progress bars on stderr (cli-progress) for long work; silent when stderr is not a terminal
 * or the output is JSON, so scripts and logs get no control characters.
 */
import cliProgress from 'cli-progress';
import type { CliIo } from './context.js';

export interface Progress {
  update(done: number): void;
  stop(): void;
}

/**
 * @example
 * const bar = progressBar(io, 'bytes', total, false);
 * bar.update(n);
 * bar.stop();
 */
export function progressBar(io: CliIo, unit: string, total: number, quiet: boolean): Progress {
  const tty = (io.stderr as { isTTY?: boolean }).isTTY === true;
  if (quiet || !tty || total <= 0) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { stream: io.stderr, format: `{bar} {percentage}% | {value}/{total} ${unit} | {eta_formatted}`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return { update: (done) => bar.update(done), stop: () => bar.stop() };
}
