/**
 * Sorted string arrays in code-unit order (JavaScript's `<`): the binary search that memory
 * storage, unit catalogs, listings and vector id pages share.
 */

/** The index of the first of `sorted` at or above `key`. */
export function lowerBound(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A set of names kept in code-unit order, for listings that page without sorting every name per
 * page. Insert and remove move the array's tail (a memmove, ~10 µs at 100,000 names); a page is a
 * binary search and a slice.
 */
export class SortedNames {
  private readonly names: string[];

  /** @param names any order, repeats allowed; sorted once here. */
  constructor(names: Iterable<string> = []) {
    this.names = [...new Set(names)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  get size(): number {
    return this.names.length;
  }

  add(name: string): void {
    const at = lowerBound(this.names, name);
    if (this.names[at] !== name) this.names.splice(at, 0, name);
  }

  delete(name: string): void {
    const at = lowerBound(this.names, name);
    if (this.names[at] === name) this.names.splice(at, 1);
  }

  clear(): void {
    this.names.length = 0;
  }

  /** Every name, in order (a copy). */
  all(): string[] {
    return this.names.slice();
  }

  /** Up to `count` names after `after` (from the first when undefined), and whether more follow. */
  after(after: string | undefined, count: number): { names: string[]; more: boolean } {
    let from = 0;
    if (after !== undefined) {
      from = lowerBound(this.names, after);
      if (this.names[from] === after) from++;
    }
    return { names: this.names.slice(from, from + count), more: from + count < this.names.length };
  }

  /** The names starting with `prefix`, in code-unit order (contiguous in it). */
  startingWith(prefix: string): string[] {
    const out: string[] = [];
    for (let i = lowerBound(this.names, prefix); i < this.names.length && this.names[i]!.startsWith(prefix); i++) out.push(this.names[i]!);
    return out;
  }
}
