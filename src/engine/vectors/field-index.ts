/**
 * Per-field equality indexes over a collection's metadata (value → internal ids), built the
 * first time a query filters on a field with `$eq`/`$in` and kept up to date by every upsert
 * and delete after that. bench/vectors measured why: building the allow-set by scanning every
 * record's metadata took most of a selective filtered query's time.
 */
import { indexableValues, type FilterPlan, type FilterScalar, type Metadata } from './filter.js';

/** Fields beyond this many are answered by scanning, so memory stays bounded. */
export const MAX_INDEXED_FIELDS = 16;

type Postings = Map<FilterScalar, Set<number>>;

/** Ids that may match, a superset of the true answer; the caller checks each with the predicate. */
export interface Candidates {
  ids: Iterable<number>;
  size: number;
}

export class FieldIndexes {
  private readonly byPath = new Map<string, Postings>();

  /** Number of fields indexed so far. */
  get size(): number {
    return this.byPath.size;
  }

  add(internal: number, metadata: Metadata): void {
    for (const [path, postings] of this.byPath) {
      for (const value of indexableValues(metadata, path)) {
        let ids = postings.get(value);
        if (ids === undefined) postings.set(value, (ids = new Set()));
        ids.add(internal);
      }
    }
  }

  remove(internal: number, metadata: Metadata): void {
    for (const [path, postings] of this.byPath) {
      for (const value of indexableValues(metadata, path)) {
        const ids = postings.get(value);
        if (ids === undefined) continue;
        ids.delete(internal);
        if (ids.size === 0) postings.delete(value);
      }
    }
  }

  /**
   * Resolves a filter plan to candidate ids, building missing field indexes from `records`
   * (live internal id → metadata). Undefined means "no narrowing: scan everything".
   */
  candidates(plan: FilterPlan, records: () => Iterable<[number, Metadata]>): Candidates | undefined {
    switch (plan.kind) {
      case 'scan':
        return undefined;
      case 'eq': {
        const postings = this.postings(plan.path, records);
        if (postings === undefined) return undefined;
        if (plan.values.length === 1) {
          const ids = postings.get(plan.values[0]!);
          return ids === undefined ? { ids: [], size: 0 } : { ids, size: ids.size };
        }
        const union = new Set<number>();
        for (const v of plan.values) for (const id of postings.get(v) ?? []) union.add(id);
        return { ids: union, size: union.size };
      }
      case 'and': {
        let best: Candidates | undefined;
        for (const part of plan.parts) {
          const c = this.candidates(part, records);
          if (c !== undefined && (best === undefined || c.size < best.size)) best = c;
          if (best?.size === 0) break;
        }
        return best;
      }
      case 'or': {
        const union = new Set<number>();
        for (const part of plan.parts) {
          const c = this.candidates(part, records);
          if (c === undefined) return undefined;
          for (const id of c.ids) union.add(id);
        }
        return { ids: union, size: union.size };
      }
    }
  }

  private postings(path: string, records: () => Iterable<[number, Metadata]>): Postings | undefined {
    let postings = this.byPath.get(path);
    if (postings !== undefined) return postings;
    if (this.byPath.size >= MAX_INDEXED_FIELDS) return undefined;
    postings = new Map();
    for (const [internal, metadata] of records()) {
      for (const value of indexableValues(metadata, path)) {
        let ids = postings.get(value);
        if (ids === undefined) postings.set(value, (ids = new Set()));
        ids.add(internal);
      }
    }
    this.byPath.set(path, postings);
    return postings;
  }
}
