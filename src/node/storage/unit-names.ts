/**
 * The names of a storage's units, kept sorted so that listing those under a prefix costs a binary
 * search plus the matches, not a pass over every unit: each tenant's open and each topic create
 * lists a prefix, and a server holds units for every tenant, topic partition and collection.
 */
import { compareUtf8 } from '../../ports/storage-checks.js';

export class UnitNames {
  /**
   * Sorted by UTF-16 code units (JavaScript's `<`): a cheap order in which the names under any
   * prefix are contiguous. Listings re-sort their few matches into the port's UTF-8 order.
   */
  private readonly sorted: string[];

  constructor(names: Iterable<string> = []) {
    this.sorted = [...new Set(names)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  get size(): number {
    return this.sorted.length;
  }

  /** Index of the first name not below `name`. */
  private lowerBound(name: string): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sorted[mid]! < name) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  add(name: string): void {
    const at = this.lowerBound(name);
    if (this.sorted[at] !== name) this.sorted.splice(at, 0, name);
  }

  delete(name: string): void {
    const at = this.lowerBound(name);
    if (this.sorted[at] === name) this.sorted.splice(at, 1);
  }

  /**
   * The names starting with `prefix`, in UTF-8 byte order (the Storage port's `listUnits` order).
   *
   * @example
   * new UnitNames(['log/t1/a/0', 'kv/t1', 'log/t2/a/0']).withPrefix('log/t1/'); // ['log/t1/a/0']
   */
  withPrefix(prefix: string): string[] {
    const out: string[] = [];
    for (let i = this.lowerBound(prefix); i < this.sorted.length && this.sorted[i]!.startsWith(prefix); i++) out.push(this.sorted[i]!);
    return out.sort(compareUtf8);
  }
}
