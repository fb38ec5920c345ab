import { shareStructure } from "../model/share.ts";
import type { Service } from "../model/registry.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";

/**
 * Memoization within one snapshot. Translation runs once per proxy view, and
 * many views share pieces (a service's clusters and endpoints, a virtual host);
 * computing each piece once per snapshot keeps the cost of a full rebuild
 * proportional to the mesh, not to mesh x views, and hands every view the same
 * message objects so the cache encodes each of them once.
 *
 * The rule for `compute`: its result may depend on nothing but the snapshot and
 * what `key` names. A piece that also depends on the calling proxy (say, a rule
 * narrowed to a source service) must put that in its key.
 */
const memos = new WeakMap<object, Map<string, unknown>>();

export function perSnapshot<T>(snapshot: MeshSnapshot, key: string, compute: () => T): T {
  return memoOn(snapshot, key, compute);
}

/**
 * perSnapshot for a family of pieces: `table` names the family (a constant:
 * building key strings per call costs more than the lookup on hot paths) and
 * `key` (a service object, a name) the piece within it.
 */
export function perSnapshotIn<T>(snapshot: MeshSnapshot, table: string, key: unknown, compute: () => T): T {
  const entries = perSnapshotTable<T>(snapshot, table);
  if (entries.has(key)) return entries.get(key) as T;
  const value = compute();
  entries.set(key, value);
  return value;
}

/**
 * The map behind perSnapshotIn, for a path that runs once per view: there the
 * caller looks up and fills the table itself rather than pass a closure. A
 * closure made per call is a new function each time, and V8 keeps a closure's
 * optimized code only while some closure of its kind is alive; the closures of
 * one rule change are garbage by the next, so each change would compile the
 * same code again (tens of milliseconds of background compilation per change;
 * docs/benchmarks.md, "Closures and the rule-change warm-up").
 */
export function perSnapshotTable<T>(snapshot: MeshSnapshot, table: string): Map<unknown, T> {
  return memoOn(snapshot, table, newTable) as Map<unknown, T>;
}

function newTable(): Map<unknown, unknown> {
  return new Map();
}

/**
 * Memoization on any immutable object: `compute` may depend on nothing but
 * `owner` and what `key` names. Memoizing on a part of the snapshot (say, its
 * subsets) lets the result survive snapshots that share that part.
 */
export function memoOn<T>(owner: object, key: string, compute: () => T): T {
  let memo = memos.get(owner);
  if (!memo) memos.set(owner, (memo = new Map()));
  if (memo.has(key)) return memo.get(key) as T;
  const value = compute();
  memo.set(key, value);
  return value;
}

/** Drops what was memoized on `owner` (a snapshot that is being replaced): frees its messages early. */
export function releaseMemo(owner: object): void {
  memos.delete(owner);
}

/**
 * Reuse across snapshots: the value computed for (`owner`, `key`) is returned
 * again as long as `owner` is the same service object and every entry of
 * `deps` is the same (===) as when it was computed. Sources share unchanged
 * parts of the mesh structurally (see model/share.ts), so after a rule change
 * every service the rule does not touch keeps its clusters, endpoints and
 * virtual hosts as the same objects, which the cache has already encoded
 * (clusters and endpoints are parts that build their messages per read:
 * TransientMap in resource-types.ts).
 *
 * The rule for `compute`: it may read nothing but `owner` and `deps`. When you
 * make a piece read something more from the snapshot (a new kind of rule), add
 * that value to its deps, or the piece will not change when it does.
 * test/xds/incremental.test.ts checks this by removing each rule in turn.
 *
 * Held strongly, by service name: a newer object for the service (its
 * instances changed) replaces the name's pieces, so the old ones become
 * ordinary garbage at once. Not a WeakMap keyed by the service objects: that
 * is an ephemeron table, and every endpoint change left one dead entry (with
 * its messages) in it for the next major GC to revisit in its pause
 * (docs/benchmarks.md, "GC pauses under endpoint churn"). Services that leave
 * the mesh are dropped by forgetServicesOutside.
 */
type Reused = { readonly deps: readonly unknown[]; readonly value: unknown };
const reused = new Map<string, { readonly owner: Service; readonly pieces: Map<string, Reused> }>();
const reusedByName = new Map<string, unknown>();
const reusedByCaller = new Map<string, Map<string, Reused>>();

export function acrossSnapshots<T>(owner: Service, key: string, deps: readonly unknown[], compute: () => T): T {
  let held = reused.get(owner.name);
  if (held?.owner !== owner) reused.set(owner.name, (held = { owner, pieces: new Map() }));
  return reuseIn(held.pieces, key, deps, compute);
}

/**
 * Drops the reused pieces of services not in `services` (the mesh after a full
 * rebuild), as owners and as callers.
 */
export function forgetServicesOutside(services: ReadonlyMap<string, Service>): void {
  for (const name of reused.keys()) if (!services.has(name)) reused.delete(name);
  for (const name of reusedByCaller.keys()) if (!services.has(name)) reusedByCaller.delete(name);
}

/**
 * Reuse across snapshots of pieces that their name alone determines (ports, a
 * protocol, an option spelled out in it) rather than owned by a service:
 * shared by every view with the same settings, and never dropped (there are as
 * many as distinct settings). The name must spell out everything `compute`
 * reads.
 *
 * No deps to compare: the per-view callers' deps were short lists of port
 * numbers, arrays of another elements kind than every other piece's deps, and
 * sameDeps, inlined into the callers on the route path, was deoptimized the
 * first time the other kind reached it (docs/benchmarks.md, "Session 26").
 */
export function acrossSnapshotsByName<T>(name: string, compute: () => T): T {
  let value = reusedByName.get(name) as T | undefined;
  if (value === undefined) {
    value = compute();
    reusedByName.set(name, value);
  }
  return value;
}

/**
 * acrossSnapshots for pieces of one calling service's views (say, its outbound
 * route configuration), by the caller's name: a proxy may name a service the
 * registry does not have yet. Dropped with the service (forgetServicesOutside).
 */
export function acrossSnapshotsForCaller<T, I>(caller: string, key: string, deps: readonly unknown[], compute: (input: I) => T, input: I): T {
  let pieces = reusedByCaller.get(caller);
  if (!pieces) reusedByCaller.set(caller, (pieces = new Map()));
  return reuseIn(pieces, key, deps, compute, input);
}

/**
 * `compute(input)`: callers on a per-view path pass a module-level function
 * and its input rather than a closure made per call (see perSnapshotTable).
 */
function reuseIn<T, I = undefined>(
  memo: Map<string, Reused>,
  key: string,
  deps: readonly unknown[],
  compute: (input: I) => T,
  input?: I,
): T {
  const entry = memo.get(key);
  if (entry && sameDeps(entry.deps, deps)) return entry.value as T;
  const value = compute(input as I);
  memo.set(key, { deps, value });
  return value;
}

/**
 * A deps list of `values`, each compared by identity (a large value that is
 * shared when unchanged) rather than structurally. Built by a loop, not map():
 * map() run from optimized code returns a holey array, of another hidden
 * class than the packed arrays every other deps list is, and sameDeps
 * (inlined into the callers on the route path) was deoptimized each time the
 * other kind first reached it (docs/benchmarks.md, "Session 26").
 */
export function identities(values: readonly unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const value of values) out.push(new Identity(value));
  return out;
}

class Identity {
  constructor(readonly value: unknown) {}
}

/** Deps compare structurally (cheap: they are small, and usually the same objects), or by identity when wrapped. */
function sameDeps(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x instanceof Identity || y instanceof Identity) {
      if (!(x instanceof Identity && y instanceof Identity && x.value === y.value)) return false;
    } else if (shareStructure(x, y) !== x) return false;
  }
  return true;
}
