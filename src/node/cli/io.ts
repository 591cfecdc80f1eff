/** Small stream helpers for the CLI. */
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';

/**
 * The first line of a stream (without its newline), or everything if it has none; stops reading
 * at the newline so a person typing at a terminal need not send end-of-file.
 *
 * @example
 * const key = await readFirstLine(process.stdin);
 */
export async function readFirstLine(stream: NodeJS.ReadableStream): Promise<string> {
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  try {
    for await (const line of rl) return line;
    return '';
  } finally {
    rl.close();
  }
}

/**
 * Reads one line typed at a terminal without echoing it (an API key), after `prompt` on
 * `output`. Ctrl-C gives an empty line.
 *
 * @example
 * const key = await readSecretLine(process.stdin, process.stderr, 'API key: ');
 */
export async function readSecretLine(input: NodeJS.ReadableStream, output: NodeJS.WritableStream, prompt: string): Promise<string> {
  output.write(prompt);
  // readline echoes what is typed to its output: give it one that shows nothing.
  const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
  const rl = createInterface({ input, output: silent, terminal: true });
  rl.on('SIGINT', () => rl.close());
  try {
    for await (const line of rl) return line;
    return '';
  } finally {
    rl.close();
    output.write('\n');
  }
}

/**
 * Turns the first Ctrl-C (SIGINT) or SIGTERM into a request to stop, so a command can finish
 * what it started and say how far it got. The handlers are then gone, so a second signal ends
 * the process at once. `dispose` once the command is done.
 *
 * @example
 * const stop = new StopOnSignal(() => input.destroy());
 * try { ... if (stop.by !== undefined) break; ... } finally { stop.dispose(); }
 */
export class StopOnSignal {
  /** The signal that asked to stop, once one has. */
  by: NodeJS.Signals | undefined;

  constructor(private readonly onStop: () => void) {
    process.once('SIGINT', this.#received);
    process.once('SIGTERM', this.#received);
  }

  dispose(): void {
    process.off('SIGINT', this.#received);
    process.off('SIGTERM', this.#received);
  }

  readonly #received = (signal: NodeJS.Signals): void => {
    this.dispose();
    this.by = signal;
    this.onStop();
  };
}
