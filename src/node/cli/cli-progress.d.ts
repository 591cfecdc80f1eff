// NOTE: cli-progress ships no types; this declares the small part the CLI uses.
declare module 'cli-progress' {
  interface Options {
    stream?: NodeJS.WritableStream;
    format?: string;
    hideCursor?: boolean;
  }
  export class SingleBar {
    constructor(options: Options, preset?: object);
    start(total: number, start: number): void;
    update(value: number): void;
    stop(): void;
  }
  export const Presets: { shades_classic: object };
  const cliProgress: { SingleBar: typeof SingleBar; Presets: typeof Presets };
  export default cliProgress;
}
