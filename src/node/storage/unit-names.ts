/**
 * The names of a storage's units, kept sorted so that listing those under a prefix costs a binary
 * search plus the matches, not a pass over every unit: each tenant's open and each topic create
 * lists a prefix, and a server holds units for every tenant, topic partition and collection.
 */
import { SortedNames } from '../../ports/sorted-strings.js';
import { compareUtf8 } from '../../ports/storage-checks.js';

export class UnitNames extends SortedNames {
  /**
   * The names starting with `prefix`, in UTF-8 byte order (the Storage port's `listUnits` order):
   * kept in code-unit order, in which the names under any prefix are contiguous, and the few
   * matches sorted again.
   *
   * @example
   * new UnitNames(['log/t1/a/0', 'kv/t1', 'log/t2/a/0']).withPrefix('log/t1/'); // ['log/t1/a/0']
   */
  withPrefix(prefix: string): string[] {
    return this.startingWith(prefix).sort(compareUtf8);
  }
}
