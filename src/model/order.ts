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
