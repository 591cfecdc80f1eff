/**
 * How commands print: coloured tables for people, JSON for scripts (`--output json`).
 */
import Table from 'cli-table3';
import pc from 'picocolors';

export type OutputMode = 'table' | 'json';

export interface Out {
  mode: OutputMode;
  /** Prints a value: as JSON, or through `human` for people. */
  print(value: unknown, human: () => string): void;
  /** A table of rows for people; the rows themselves as JSON for scripts. */
  table(rows: Record<string, unknown>[], columns: string[], jsonValue?: unknown): void;
  /** A short confirmation for people; `value` as JSON for scripts. */
  done(message: string, value: unknown): void;
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return pc.dim('-');
  // A key, an id or metadata can hold any character: a table for people shows them escaped, so a
  // line break cannot split a row and the terminal runs no escape sequence (JSON keeps them exact).
  return printable(typeof v === 'object' ? JSON.stringify(v) : String(v), TABLE_UNPRINTABLE);
}

/**
 * @example
 * const out = createOutput('table', (s) => process.stdout.write(s));
 * out.table([{ key: 'a', size: 3 }], ['key', 'size']);
 */
export function createOutput(mode: OutputMode, write: (text: string) => void): Out {
  return {
    mode,
    print(value, human) {
      write(mode === 'json' ? JSON.stringify(value) + '\n' : human() + '\n');
    },
    table(rows, columns, jsonValue) {
      if (mode === 'json') {
        write(JSON.stringify(jsonValue ?? rows) + '\n');
        return;
      }
      if (rows.length === 0) {
        write(pc.dim('(none)') + '\n');
        return;
      }
      const t = new Table({ head: columns.map((c) => pc.bold(pc.cyan(c))), style: { head: [], border: [] } });
      for (const r of rows) t.push(columns.map((c) => cell(r[c])));
      write(t.toString() + '\n');
    },
    done(message, value) {
      write(mode === 'json' ? JSON.stringify(value) + '\n' : `${pc.green('✔')} ${printable(message, TABLE_UNPRINTABLE)}\n`);
    },
  };
}

/**
 * A count with its noun in the right number, for confirmations people read.
 *
 * @example
 * counted(1, 'byte'); // '1 byte'
 * counted(3, 'entry', 'entries'); // '3 entries'
 */
export function counted(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Line breaks and the other control characters but tab (C0, DEL and C1), and the backslash: once
 * `\n` stands for a line break, a typed backslash and `n` must read otherwise (`\\n`), as in JSON.
 */
const UNPRINTABLE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\\]/g;
/** In a table cell (and a confirmation quoting a key) a tab too: it would push the text past the column it is measured for. */
const TABLE_UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\\]/g;

const escaped = (ch: string): string =>
  ch === '\\' ? '\\\\' : ch === '\n' ? '\\n' : ch === '\r' ? '\\r' : ch === '\t' ? '\\t' : `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;

const printable = (text: string, unprintable: RegExp): string => text.replace(unprintable, escaped);

/**
 * An error message as the one line stderr gets: its control characters written as JSON escapes.
 * A message can quote input (a file's bad JSON, a key, a server's text): a line break in it cut
 * the line short, and an escape sequence in it was run by the terminal.
 *
 * @example
 * errorLine("key 'a\nb' not found"); // "key 'a\\nb' not found"
 * errorLine("key 'a\\nb' not found"); // "key 'a\\\\nb' not found"
 */
export function errorLine(message: string): string {
  return printable(message, UNPRINTABLE);
}
