/**
 * The orders the mesh model is sorted in, and comparators for the sorts that
 * run on every change (rows, services, instances).
 *
 * The comparators are module-level functions on purpose, not arrows written at
 * each sort: an arrow is a new closure per call, and V8 keeps a closure's
 * optimized code only while a closure of its kind is alive, so a sort of
 * thousands of rows would run unoptimized and compile its comparator again on
 * every change (translate/memo.ts, perSnapshotTable).
 */

/** Code-unit order: deterministic, independent of locale and database collation. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Database ids are decimal bigints: compared as numbers without BigInt (shorter is smaller). */
export function compareIds(a: string, b: string): number {
  return a.length - b.length || compareText(a, b);
}

export function byName(a: { readonly name: string }, b: { readonly name: string }): number {
  return compareText(a.name, b.name);
}

/** By a text id (an instance id). */
export function byTextId(a: { readonly id: string }, b: { readonly id: string }): number {
  return compareText(a.id, b.id);
}

/** By a database id (a rule row's). */
export function byRowId(a: { readonly id: string }, b: { readonly id: string }): number {
  return compareIds(a.id, b.id);
}

/**
 * `sorted` (ordered by `keyOf` as database ids, rows of one key together) with
 * the rows of each key in `keys` replaced by that key's rows in `fresh` (none:
 * the key's rows are removed). `keys` and `fresh` are in the same order.
 *
 * A change touches a few keys of thousands: the copy and the moves are the
 * engine's (slice, splice), and each key is found by binary search, so no
 * script loop runs over every row on each change.
 */
export function replaceRuns<T>(sorted: readonly T[], keyOf: (row: T) => string, keys: readonly string[], fresh: readonly T[]): T[] {
  const out = sorted.slice();
  let freshEnd = fresh.length;
  // Last key first: splicing there leaves the positions of earlier keys as they were.
  for (let k = keys.length - 1; k >= 0; k--) {
    const key = keys[k]!;
    let freshStart = freshEnd;
    while (freshStart > 0 && keyOf(fresh[freshStart - 1]!) === key) freshStart--;
    const start = firstAtOrAfter(out, keyOf, key);
    let end = start;
    while (end < out.length && keyOf(out[end]!) === key) end++;
    out.splice(start, end - start, ...fresh.slice(freshStart, freshEnd));
    freshEnd = freshStart;
  }
  if (freshEnd !== 0) throw new Error(`replaceRuns: fresh rows of a key not in keys (${keyOf(fresh[freshEnd - 1]!)})`);
  return out;
}

/** The element of `sorted` (ordered by `keyOf` as database ids, keys unique) whose key is `key`, by binary search. */
export function findByKey<T>(sorted: readonly T[], keyOf: (row: T) => string, key: string): T | undefined {
  const at = firstAtOrAfter(sorted, keyOf, key);
  return at < sorted.length && keyOf(sorted[at]!) === key ? sorted[at] : undefined;
}

/** The first index whose key is at or after `key` (compareIds), by binary search. */
function firstAtOrAfter<T>(sorted: readonly T[], keyOf: (row: T) => string, key: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareIds(keyOf(sorted[middle]!), key) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}
