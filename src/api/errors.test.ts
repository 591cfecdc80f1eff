import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../core/errors.js';

describe('docs/api.md error table', () => {
  it('names every ErrorCode exactly once, and no other code', () => {
    const doc = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
    const table = doc.slice(doc.indexOf('| code | status | when |'), doc.indexOf('The table is `ErrorCode`'));
    // The first cell of each row lists its codes in backticks.
    const named = table
      .split('\n')
      .slice(2)
      .flatMap((row) => [...(row.split('|')[1] ?? '').matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!));
    expect(named.slice().sort()).toEqual(Object.values(ErrorCode).sort());
  });
});
