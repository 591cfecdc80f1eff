/**
 * docs/configuration.md cannot drift from the server: every QUARTZ_* variable the shipped code
 * reads is documented (the server's there and in `quartz serve --help`), and the config file's
 * example is accepted and its key table names every key of the schema.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../cli/program.js';
import { configFileSchema } from './settings.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** The QUARTZ_* names in the shipped sources under `dir` (tests and test helpers left out). */
function variablesIn(dir: string): Set<string> {
  const names = new Set<string>();
  for (const file of readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })) {
    if (!/\.(ts|js|mjs)$/.test(file) || /\.test\.ts$|-testing\.ts$/.test(file)) continue;
    for (const m of read(join(dir, file)).matchAll(/\bQUARTZ_[A-Z0-9_]*[A-Z0-9]\b/g)) names.add(m[0]);
  }
  return names;
}

const documented = (doc: string, name: string) => new RegExp(`\\b${name}\\b`).test(doc);

describe('QUARTZ_* variables', () => {
  it('are each documented in docs/configuration.md or docs/cli.md', () => {
    const docs = read('docs/configuration.md') + read('docs/cli.md');
    const all = new Set([...variablesIn('src'), ...variablesIn('bin'), ...variablesIn('worker'), ...variablesIn('web')]);
    expect(all.size).toBeGreaterThan(0);
    expect([...all].filter((name) => !documented(docs, name))).toEqual([]);
  });

  it("of the server are each in docs/configuration.md and in serve's --help, which names no other", () => {
    const server = [...variablesIn('src/node/server')].sort();
    const configuration = read('docs/configuration.md');
    expect(server.filter((name) => !documented(configuration, name))).toEqual([]);

    let help = '';
    const out = new Writable({ write: (chunk: Buffer, _encoding, done) => ((help += chunk.toString()), done()) });
    const program = buildProgram({ env: {}, stdout: out, stderr: new PassThrough(), stdin: new PassThrough() });
    program.commands.find((c) => c.name() === 'serve')!.outputHelp();
    const listed = [...new Set(help.match(/\bQUARTZ_[A-Z0-9_]*[A-Z0-9]\b/g))].sort();
    expect(listed).toEqual(server);
  });
});

describe('docs/configuration.md config file', () => {
  const doc = read('docs/configuration.md');
  const section = doc.slice(doc.indexOf('## The config file'), doc.indexOf('## The admin key'));

  it('shows an example the server accepts', () => {
    const example = /```json\n([\s\S]*?)```/.exec(section);
    expect(example).not.toBeNull();
    expect(configFileSchema.safeParse(JSON.parse(example![1]!)).error).toBeUndefined();
  });

  it('lists every key of the schema in its key table, and no other', () => {
    const keys = section
      .split('\n')
      // Any padding: a formatter that aligns the table's columns changes nothing here.
      .filter((line) => /^\|\s*`[$a-z_]+`\s*\|/.test(line))
      .map((line) => /`([$a-z_]+)`/.exec(line)![1]!);
    expect(keys.sort()).toEqual(Object.keys(configFileSchema.shape).sort());
  });
});
