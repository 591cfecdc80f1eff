import { describe, expect, it } from 'vitest';
import { CliError } from './client.js';
import { intFlag, outputMode } from './context.js';
import { parseVectors } from './commands/data.js';
import { counted, createOutput } from './output.js';

describe('parseVectors', () => {
  it('reads a JSON array, {vectors}, one object, or JSONL', () => {
    const v = { id: 'a', values: [1, 2] };
    expect(parseVectors(JSON.stringify([v, v]), 'f')).toEqual([v, v]);
    expect(parseVectors(JSON.stringify({ vectors: [v] }), 'f')).toEqual([v]);
    expect(parseVectors(JSON.stringify(v), 'f')).toEqual([v]);
    expect(parseVectors(`${JSON.stringify(v)}\n\n${JSON.stringify(v)}\n`, 'f')).toEqual([v, v]);
  });

  it('names the file and line of bad input', () => {
    expect(() => parseVectors('', 'v.json')).toThrow('quartz: v.json is empty');
    expect(() => parseVectors('42', 'v.json')).toThrow(/v\.json must hold an array of vectors/);
    expect(() => parseVectors('{"id":"a","values":[1]}\n{oops', 'v.jsonl')).toThrow(/v\.jsonl line 2 is not valid JSON/);
  });
});

describe('flags', () => {
  it('parses integers and output modes, naming the flag', () => {
    expect(intFlag(undefined, '--max')).toBeUndefined();
    expect(intFlag('12', '--max', 1)).toBe(12);
    expect(() => intFlag('0', '--max', 1)).toThrow("quartz: --max must be an integer ≥ 1, got '0'");
    expect(() => intFlag('1e3', '--max')).toThrow(CliError);
    expect(() => intFlag('99999999999999999999', '--max')).toThrow(CliError);
    expect(outputMode(undefined)).toBe('table');
    expect(outputMode('json')).toBe('json');
    expect(() => outputMode('xml')).toThrow("quartz: --output must be table or json, got 'xml'");
  });
});

describe('createOutput', () => {
  it('prints tables for people and the JSON value for scripts', () => {
    let text = '';
    const people = createOutput('table', (s) => (text += s));
    people.table([{ key: 'a', size: 1, expires_at: null }], ['key', 'size', 'expires_at']);
    expect(text).toContain('key');
    expect(text).toMatch(/│ a\s+│ 1\s+│/);
    text = '';
    people.table([], ['key']);
    expect(text).toContain('(none)');
    text = '';
    const scripts = createOutput('json', (s) => (text += s));
    scripts.table([{ key: 'a' }], ['key'], { keys: [{ key: 'a' }], cursor: null });
    expect(JSON.parse(text)).toEqual({ keys: [{ key: 'a' }], cursor: null });
    text = '';
    scripts.done('deleted', { deleted: true });
    expect(JSON.parse(text)).toEqual({ deleted: true });
  });
});

describe('counted', () => {
  it('puts the noun in the number of the count', () => {
    expect([counted(0, 'byte'), counted(1, 'byte'), counted(2, 'byte')]).toEqual(['0 bytes', '1 byte', '2 bytes']);
    expect(counted(1, 'entry', 'entries')).toBe('1 entry');
    expect(counted(5, 'entry', 'entries')).toBe('5 entries');
  });
});
