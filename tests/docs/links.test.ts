/**
 * The links between the docs cannot go dead: every relative link in README.md and docs/*.md names
 * a file of the checkout, and every `#anchor` one of the target page's headings (as GitHub
 * spells a heading's anchor). Headings renamed or pages moved fail here, not in a reader's browser.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** The page without its fenced code blocks (a `# comment` in a shell block is no heading). */
const prose = (page: string) => readFileSync(join(root, page), 'utf8').replace(/^```[\s\S]*?^```$/gm, '');

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(page: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of prose(page).matchAll(/^#{1,6}\s+(.*)$/gm)) {
    const slug = m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

describe('links between the docs', () => {
  it('each name an existing page and heading', () => {
    const dead: string[] = [];
    let checked = 0;
    for (const page of pages) {
      for (const m of prose(page).matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1]!;
        if (/^[a-z]+:/.test(link)) continue;
        checked++;
        const [path, anchor] = link.split('#');
        const target = path ? join(dirname(page), path) : page;
        if (!existsSync(join(root, target))) dead.push(`${page}: ${link} (no such file)`);
        else if (anchor !== undefined && target.endsWith('.md') && !anchors(target).has(anchor)) dead.push(`${page}: ${link} (no such heading)`);
      }
    }
    expect(checked).toBeGreaterThan(20);
    expect(dead).toEqual([]);
  });
});
