/**
 * The error codes the docs name cannot drift from the error table: every "413 `too_large`" or
 * "| 404 | `not_found` |" in README.md and docs/*.md pairs a code `ErrorCode` has with the status
 * `errorStatus` gives it. The Node listener's own transport answers are the documented exceptions
 * (408 `timeout`, 414 and 431 `too_large`: docs/api.md, Errors).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCode, errorStatus } from '../../src/core/errors.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const codes = new Set<string>(Object.values(ErrorCode));
const transport = new Set(['408 timeout', '414 too_large', '431 too_large']);

describe('error codes in the docs', () => {
  it('are codes of the error table, each with its status', () => {
    const wrong: string[] = [];
    let checked = 0;
    for (const page of pages) {
      const text = readFileSync(join(root, page), 'utf8');
      // "507 `insufficient_storage`", "| 409 | `already_exists` |", "`too_large` (HTTP 413"
      const pairs = [
        ...[...text.matchAll(/\b(\d{3})(?: \|)? `([a-z]+(?:_[a-z]+)*)`/g)].map((m) => [m[1]!, m[2]!]),
        ...[...text.matchAll(/`([a-z]+(?:_[a-z]+)+)` \((?:HTTP )?(\d{3})\b/g)].map((m) => [m[2]!, m[1]!]),
      ];
      for (const [status, code] of pairs) {
        if (!/^[1-5]\d\d$/.test(status!) || transport.has(`${status} ${code}`)) continue;
        checked++;
        if (!codes.has(code!)) wrong.push(`${page}: ${status} \`${code}\` is no error code`);
        else if (errorStatus[code as ErrorCode] !== Number(status)) wrong.push(`${page}: ${status} \`${code}\`, which is ${errorStatus[code as ErrorCode]}`);
      }
    }
    expect(checked).toBeGreaterThan(30);
    expect(wrong).toEqual([]);
  });
});
