/**
 * Metadata filters for vector queries: a small MongoDB-like language compiled once per query
 * into a predicate over a record's metadata. The collection turns the predicate into an
 * allow-set of internal ids that HnswIndex.search honours exactly.
 *
 * Semantics (also in docs/vectors.md):
 * - `{field: value}` and `{field: {$eq: value}}`: the field equals `value` (string, number or
 *   boolean). When the field holds an array, it matches if any element equals `value`.
 * - `$ne`, `$nin`: the negation of `$eq` / `$in`; they match records where the field is missing.
 * - `$in`, `$nin`: a non-empty array of strings, numbers or booleans.
 * - `$gt`, `$gte`, `$lt`, `$lte`: a finite number; only numeric field values match.
 * - `$exists: boolean`: the field is present (any value, null included) or absent.
 * - `$and`, `$or`: non-empty arrays of filters. Several keys in one object are ANDed.
 * - Field names are dotted paths into nested objects (`author.name`).
 */
import { ErrorCode, QuartzError } from '../../core/errors.js';

export type FilterScalar = string | number | boolean;

export type FieldCondition =
  | FilterScalar
  | {
      $eq?: FilterScalar;
      $ne?: FilterScalar;
      $in?: FilterScalar[];
      $nin?: FilterScalar[];
      $gt?: number;
      $gte?: number;
      $lt?: number;
      $lte?: number;
      $exists?: boolean;
    };

/** A metadata filter as received from a caller (JSON). */
export interface Filter {
  $and?: Filter[];
  $or?: Filter[];
  [field: string]: FieldCondition | Filter[] | undefined;
}

export type Metadata = Record<string, unknown>;
export type Predicate = (metadata: Metadata) => boolean;

/**
 * Which records can match, as far as per-field equality indexes can tell: `eq` is answered by
 * one field's index; `and` by its most selective answerable part; `or` only when every part
 * is answerable; `scan` means the filter must be checked against every record.
 */
export type FilterPlan =
  | { kind: 'eq'; path: string; values: FilterScalar[] }
  | { kind: 'and'; parts: FilterPlan[] }
  | { kind: 'or'; parts: FilterPlan[] }
  | { kind: 'scan' };

export interface CompiledFilter {
  match: Predicate;
  plan: FilterPlan;
  /** The plan's candidates are exactly the matches (the filter is equality tests only), so `match` need not run. */
  exact: boolean;
}

const SCAN: FilterPlan = { kind: 'scan' };

function andPlan(parts: FilterPlan[]): FilterPlan {
  const useful = parts.filter((p) => p.kind !== 'scan');
  if (useful.length === 0) return SCAN;
  return useful.length === 1 ? useful[0]! : { kind: 'and', parts: useful };
}

/** Bounds that keep a hostile filter from costing more than a scan of the collection. */
const MAX_DEPTH = 16;
const MAX_NODES = 1024;
const MAX_IN_VALUES = 10_000;
const MAX_PATH_BYTES = 512;

const FIELD_OPERATORS = new Set(['$eq', '$ne', '$in', '$nin', '$gt', '$gte', '$lt', '$lte', '$exists']);

/** Sentinel for "no value at this path", distinct from a stored `null`. */
const MISSING = Symbol('missing');

function invalid(message: string): QuartzError {
  return new QuartzError(ErrorCode.INVALID_ARGUMENT, message);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isScalar(value: unknown): value is FilterScalar {
  return typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** Reads a dotted path; arrays are not descended into (a path names object keys only). */
function lookup(metadata: Metadata, path: readonly string[]): unknown {
  let node: unknown = metadata;
  for (const key of path) {
    if (!isPlainObject(node) || !Object.hasOwn(node, key)) return MISSING;
    node = node[key];
  }
  return node;
}

type Getter = (metadata: Metadata) => unknown;

/** A reader for one path, specialised for the common one- and two-segment cases (scans call it per record). */
function getter(segments: readonly string[]): Getter {
  if (segments.length === 1) {
    const [a] = segments as [string];
    return (m) => (Object.hasOwn(m, a) ? m[a] : MISSING);
  }
  if (segments.length === 2) {
    const [a, b] = segments as [string, string];
    return (m) => {
      const node = Object.hasOwn(m, a) ? m[a] : undefined;
      return isPlainObject(node) && Object.hasOwn(node, b) ? node[b] : MISSING;
    };
  }
  return (m) => lookup(m, segments);
}

function equalsAny(fieldValue: unknown, wanted: ReadonlySet<FilterScalar>): boolean {
  if (Array.isArray(fieldValue)) {
    for (const element of fieldValue) if (isScalar(element) && wanted.has(element)) return true;
    return false;
  }
  return isScalar(fieldValue) && wanted.has(fieldValue);
}

function equals(fieldValue: unknown, wanted: FilterScalar): boolean {
  if (Array.isArray(fieldValue)) return fieldValue.includes(wanted);
  return fieldValue === wanted;
}

interface Budget {
  nodes: number;
}

function scalarOperand(path: string, op: string, operand: unknown): FilterScalar {
  if (!isScalar(operand)) {
    throw invalid(`filter on '${path}': ${op} takes a string, number or boolean, got ${describe(operand)}`);
  }
  return operand;
}

function listOperand(path: string, op: string, operand: unknown): Set<FilterScalar> {
  if (!Array.isArray(operand) || operand.length === 0) {
    throw invalid(`filter on '${path}': ${op} takes a non-empty array, got ${describe(operand)}`);
  }
  if (operand.length > MAX_IN_VALUES) {
    throw invalid(`filter on '${path}': ${op} takes at most ${MAX_IN_VALUES} values, got ${operand.length}`);
  }
  const values = new Set<FilterScalar>();
  for (const item of operand) values.add(scalarOperand(path, op, item));
  return values;
}

function numberOperand(path: string, op: string, operand: unknown): number {
  if (typeof operand !== 'number' || !Number.isFinite(operand)) {
    throw invalid(`filter on '${path}': ${op} takes a finite number, got ${describe(operand)}`);
  }
  return operand;
}

function compileField(path: string, condition: unknown, budget: Budget): CompiledFilter {
  if (path.length === 0 || new TextEncoder().encode(path).length > MAX_PATH_BYTES) {
    throw invalid(`filter field names must be 1–${MAX_PATH_BYTES} bytes, got '${path.slice(0, 64)}'`);
  }
  const segments = path.split('.');
  if (segments.some((s) => s.length === 0)) throw invalid(`filter field '${path}' has an empty path segment`);
  const get = getter(segments);
  if (isScalar(condition)) {
    return { match: (m) => equals(get(m), condition), plan: { kind: 'eq', path, values: [condition] }, exact: true };
  }
  if (!isPlainObject(condition)) {
    throw invalid(`filter on '${path}' must be a string, number, boolean or an operator object, got ${describe(condition)}`);
  }
  const ops = Object.keys(condition);
  if (ops.length === 0) throw invalid(`filter on '${path}' has an empty operator object`);
  const parts: Predicate[] = [];
  const plans: FilterPlan[] = [];
  for (const op of ops) {
    budget.nodes += 1;
    const operand = condition[op];
    if (!FIELD_OPERATORS.has(op)) {
      throw invalid(
        op.startsWith('$')
          ? `filter on '${path}': unknown operator '${op}'`
          : `filter on '${path}': nested objects are not filters; use a dotted path like '${path}.${op}'`,
      );
    }
    switch (op) {
      case '$eq': {
        const v = scalarOperand(path, op, operand);
        parts.push((m) => equals(get(m), v));
        plans.push({ kind: 'eq', path, values: [v] });
        break;
      }
      case '$ne': {
        const v = scalarOperand(path, op, operand);
        parts.push((m) => !equals(get(m), v));
        break;
      }
      case '$in': {
        const set = listOperand(path, op, operand);
        parts.push((m) => equalsAny(get(m), set));
        plans.push({ kind: 'eq', path, values: [...set] });
        break;
      }
      case '$nin': {
        const set = listOperand(path, op, operand);
        parts.push((m) => !equalsAny(get(m), set));
        break;
      }
      case '$gt': {
        const n = numberOperand(path, op, operand);
        parts.push((m) => {
          const v = get(m);
          return typeof v === 'number' && v > n;
        });
        break;
      }
      case '$gte': {
        const n = numberOperand(path, op, operand);
        parts.push((m) => {
          const v = get(m);
          return typeof v === 'number' && v >= n;
        });
        break;
      }
      case '$lt': {
        const n = numberOperand(path, op, operand);
        parts.push((m) => {
          const v = get(m);
          return typeof v === 'number' && v < n;
        });
        break;
      }
      case '$lte': {
        const n = numberOperand(path, op, operand);
        parts.push((m) => {
          const v = get(m);
          return typeof v === 'number' && v <= n;
        });
        break;
      }
      case '$exists': {
        if (typeof operand !== 'boolean') throw invalid(`filter on '${path}': $exists takes true or false, got ${describe(operand)}`);
        parts.push(operand ? (m) => get(m) !== MISSING : (m) => get(m) === MISSING);
        break;
      }
    }
  }
  const single = ops.length === 1 && (ops[0] === '$eq' || ops[0] === '$in');
  return { match: allOf(parts), plan: andPlan(plans), exact: single };
}

function allOf(parts: Predicate[]): Predicate {
  if (parts.length === 1) return parts[0]!;
  return (m) => {
    for (const p of parts) if (!p(m)) return false;
    return true;
  };
}

function compileNode(filter: unknown, depth: number, budget: Budget): CompiledFilter {
  if (depth > MAX_DEPTH) throw invalid(`filter is nested deeper than ${MAX_DEPTH} levels`);
  if (!isPlainObject(filter)) throw invalid(`a filter must be a JSON object, got ${describe(filter)}`);
  const keys = Object.keys(filter);
  if (keys.length === 0 && depth > 0) throw invalid('an empty filter object inside $and/$or matches nothing useful; remove it');
  const parts: Predicate[] = [];
  const plans: FilterPlan[] = [];
  let exact = keys.length === 1;
  for (const key of keys) {
    budget.nodes += 1;
    if (budget.nodes > MAX_NODES) throw invalid(`filter has more than ${MAX_NODES} conditions`);
    const value = filter[key];
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(value) || value.length === 0) throw invalid(`filter ${key} takes a non-empty array of filters, got ${describe(value)}`);
      const children = value.map((child) => compileNode(child, depth + 1, budget));
      const matches = children.map((c) => c.match);
      if (key === '$and') {
        parts.push(allOf(matches));
        plans.push(andPlan(children.map((c) => c.plan)));
        exact &&= children.length === 1 && children[0]!.exact;
      } else {
        exact &&= children.every((c) => c.exact);
        parts.push((m) => {
          for (const c of matches) if (c(m)) return true;
          return false;
        });
        plans.push(children.every((c) => c.plan.kind !== 'scan') ? { kind: 'or', parts: children.map((c) => c.plan) } : SCAN);
      }
    } else if (key.startsWith('$')) {
      throw invalid(`filter: unknown top-level operator '${key}' (use $and or $or, or a field name)`);
    } else {
      const field = compileField(key, value, budget);
      parts.push(field.match);
      plans.push(field.plan);
      exact &&= field.exact;
    }
  }
  if (parts.length === 0) return { match: () => true, plan: SCAN, exact: false };
  return { match: allOf(parts), plan: andPlan(plans), exact };
}

/**
 * Validates a filter and compiles it into a predicate over metadata plus a plan for the
 * per-field indexes. An empty filter (`{}`) matches everything. Bad filters raise an
 * INVALID_ARGUMENT QuartzError naming the field.
 * @example
 * const { match } = compileFilter({ genre: { $in: ['jazz', 'soul'] }, year: { $gte: 1960 } });
 * match({ genre: 'jazz', year: 1965 }); // true
 */
export function compileFilter(filter: unknown): CompiledFilter {
  return compileNode(filter, 0, { nodes: 0 });
}

/**
 * The scalars a field holds for equality purposes: the value itself, or a list's scalar
 * elements (what `$eq`/`$in` compare against). Used to maintain per-field indexes.
 */
export function indexableValues(metadata: Metadata, path: string): FilterScalar[] {
  const value = lookup(metadata, path.split('.'));
  if (isScalar(value)) return [value];
  if (Array.isArray(value)) return value.filter(isScalar);
  return [];
}
