/**
 * docs/cli.md cannot drift from the parser: every command the CLI has is in its Commands table
 * with every option it takes, and the page names no command or option that does not exist.
 */
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from './program.js';

const doc = readFileSync(new URL('../../../docs/cli.md', import.meta.url), 'utf8');

function program(): Command {
  const io = { env: {}, stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() };
  return buildProgram(io);
}

/** Every runnable command by its full name ('kv get'), with each option's spellings (['--k', '-k']). */
function parserCommands(): Map<string, string[][]> {
  const found = new Map<string, string[][]>();
  const walk = (cmd: Command, prefix: string) => {
    for (const sub of cmd.commands) {
      const name = `${prefix}${sub.name()}`;
      if (sub.commands.length > 0) walk(sub, `${name} `);
      else found.set(name, sub.options.map((o) => [o.long, o.short].filter((f): f is string => f !== undefined)));
    }
  };
  walk(program(), '');
  return found;
}

/** The rows of the markdown table that follows `heading`, as their first cell's `code` spans. */
function firstCells(heading: string): string[][] {
  const start = doc.indexOf(heading);
  expect(start, `docs/cli.md has a '${heading}' section`).toBeGreaterThanOrEqual(0);
  const lines = doc.slice(start).split('\n');
  const table = lines.slice(lines.findIndex((l) => l.startsWith('|')));
  const rows = table.slice(0, table.findIndex((l) => !l.startsWith('|'))).slice(2);
  // `\|` inside a cell is an escaped pipe (`--data\|--data-dir`), not a cell boundary.
  return rows.map((row) => [...(row.split(/(?<!\\)\|/)[1] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/\\\|/g, '|')));
}

/** 'kv put KEY [VALUE] [--file F]' → the command name: its leading lower-case words. */
function commandName(span: string): string {
  return span.split(' ').filter((w, i, all) => /^[a-z]+$/.test(w) && all.slice(0, i).every((p) => /^[a-z]+$/.test(p))).join(' ');
}

describe('docs/cli.md', () => {
  const commands = parserCommands();

  it('lists every command and only those, each with exactly its options', () => {
    const documented = new Map<string, string[]>();
    for (const spans of firstCells('## Commands')) {
      for (const span of spans) documented.set(commandName(span), [...span.matchAll(/(?<![\w-])(--?[a-z][a-z-]*)/g)].map((m) => m[1]!));
    }
    expect([...documented.keys()].sort()).toEqual([...commands.keys()].filter((c) => c !== 'help').sort());
    for (const [name, options] of commands) {
      if (name === 'help') continue;
      const inDoc = documented.get(name)!;
      // An option is documented by any one of its spellings (`-k N` for `-k, --k`); --help goes without saying.
      const expected = options.filter((spellings) => !spellings.includes('--help'));
      expect({ name, missing: expected.filter((spellings) => !spellings.some((s) => inDoc.includes(s))).map((s) => s[0]) }).toEqual({ name, missing: [] });
      expect({ name, unknown: inDoc.filter((o) => !expected.some((spellings) => spellings.includes(o))) }).toEqual({ name, unknown: [] });
    }
  });

  it('names only existing commands in its -o json table', () => {
    for (const spans of firstCells('What `-o json` prints')) {
      for (const span of spans) expect(commands.has(commandName(span)), `'${span}' is a command`).toBe(true);
    }
  });

  it('documents every global option', () => {
    for (const option of program().options) {
      if (option.long === '--help') continue;
      expect(new RegExp(`(?<![\\w-])${option.long}(?![\\w-])`).test(doc), `docs/cli.md mentions ${option.long}`).toBe(true);
    }
  });
});
