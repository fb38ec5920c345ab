import type { Service } from "../model/registry.ts";
import type { HttpRoute, ServiceDependency } from "../model/rules.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import { memoOn } from "./memo.ts";
import { byName, compareText } from "../model/order.ts";

/**
 * Scoping: which upstream services a proxy of a given service receives.
 *
 *  - A service with declared dependencies (mesh.service_dependencies) gets those
 *    services, plus every service that a route it uses can send traffic to
 *    (a split or a subset of another service), followed transitively, so that
 *    every cluster a route names is in the proxy's CDS.
 *  - A service with none declared gets every service in the mesh. That is the
 *    safe default, but each proxy then holds the whole mesh: declare
 *    dependencies on large meshes (see docs/benchmarks.md).
 *
 * Results are memoized per calling service, so thousands of proxies of one
 * service cost one computation, and kept for later snapshots while what they
 * are computed from is equal (scopeTable). A scope is kept as names, not
 * Service objects: an endpoint change replaces services but keeps their names,
 * so the next rule change finds every caller's scope as it was (the same
 * array), and the cache sees an unchanged scope at a glance.
 */

const dependencyMaps = new WeakMap<readonly ServiceDependency[], ReadonlyMap<string, readonly string[]>>();

/**
 * Groups declared dependencies by service; values sorted and deduplicated.
 * Memoized on the list, which the rule source hands over unchanged (the same
 * array) when only the registry changed.
 */
export function dependencyMap(dependencies: readonly ServiceDependency[]): ReadonlyMap<string, readonly string[]> {
  let grouped = dependencyMaps.get(dependencies);
  if (!grouped) {
    grouped = groupDependencies(dependencies);
    dependencyMaps.set(dependencies, grouped);
  }
  return grouped;
}

function groupDependencies(dependencies: readonly ServiceDependency[]): ReadonlyMap<string, readonly string[]> {
  const map = new Map<string, Set<string>>();
  for (const { service, dependsOn } of dependencies) {
    let set = map.get(service);
    if (!set) map.set(service, (set = new Set()));
    set.add(dependsOn);
  }
  const out = new Map<string, readonly string[]>();
  for (const [service, set] of map) out.set(service, [...set].sort(compareText));
  return out;
}

/**
 * Every service a route can send traffic to. Extend this when a route gains
 * another way to name a service (a mirror, a fallback), so scoped proxies get
 * that service's clusters too.
 */
export function routeTargets(route: HttpRoute): string[] {
  const targets = route.destinations.map((destination) => destination.service);
  for (const mirror of route.extensions?.mirrors ?? []) targets.push(mirror.service);
  return targets;
}

/** Every service of the snapshot, sorted by name: once per registry, which snapshots share until a service changes. */
export function allServices(snapshot: MeshSnapshot): readonly Service[] {
  const services = snapshot.registry.services;
  return memoOn(services, "all-services-sorted", () => [...services.values()].sort(byName));
}

/** The last list of every service's name, and the last registry seen with exactly those names. */
let allNames: { services: ReadonlyMap<string, Service>; readonly names: readonly string[] } | null = null;

/**
 * Every service's name, sorted: the same array for registries with the same
 * names (an endpoint change keeps them), so its identity stands for the set of
 * names wherever scopes are kept (scopeTable).
 */
function allServiceNames(snapshot: MeshSnapshot): readonly string[] {
  const services = snapshot.registry.services;
  if (allNames && (allNames.services === services || sameKeys(allNames.services, services))) {
    allNames.services = services;
    return allNames.names;
  }
  allNames = { services, names: allServices(snapshot).map((service) => service.name) };
  return allNames.names;
}

/** The names of the services a proxy of `caller` may call, sorted (see the file comment). */
export function scopedNames(snapshot: MeshSnapshot, caller: string): readonly string[] {
  const declared = snapshot.dependencies?.get(caller);
  if (!declared || declared.length === 0) return allServiceNames(snapshot);
  return scopeOf(snapshot, caller, declared).names;
}

/** The services a proxy of `caller` may call, sorted by name: scopedNames as the snapshot's services. */
export function scopedServices(snapshot: MeshSnapshot, caller: string): readonly Service[] {
  const declared = snapshot.dependencies?.get(caller);
  if (!declared || declared.length === 0) return allServices(snapshot);
  const scope = scopeOf(snapshot, caller, declared);
  const services = snapshot.registry.services;
  if (scope.resolvedIn !== services) {
    scope.resolved = servicesNamed(services, scope.names);
    scope.resolvedIn = services;
  }
  return scope.resolved;
}

/** A caller's scope: its names, and those names as the services of the registry they were last resolved in. */
interface Scope {
  readonly names: readonly string[];
  resolvedIn: ReadonlyMap<string, Service> | null;
  resolved: readonly Service[];
}

function scopeOf(snapshot: MeshSnapshot, caller: string, declared: readonly string[]): Scope {
  const perCaller = scopeTable(snapshot);
  let scope = perCaller.get(caller);
  if (!scope) {
    scope = { names: closure(snapshot, caller, declared), resolvedIn: null, resolved: [] };
    perCaller.set(caller, scope);
  }
  return scope;
}

function servicesNamed(services: ReadonlyMap<string, Service>, names: readonly string[]): Service[] {
  const out: Service[] = [];
  for (const name of names) {
    const service = services.get(name);
    if (service !== undefined) out.push(service);
  }
  return out;
}

/**
 * What every scope of a snapshot is computed from: the names of the registry's
 * services (allServiceNames), the declared dependencies and the graph of
 * onward targets (see onwardGraphKey). Snapshots with the same inputs share
 * one table of scopes.
 */
interface ScopeInputs {
  readonly names: readonly string[];
  readonly dependencies: ReadonlyMap<string, readonly string[]> | undefined;
  readonly onwardGraph: string;
  readonly scopes: Map<string, Scope>;
}

const scopeTables = new WeakMap<MeshSnapshot, Map<string, Scope>>();
/** The inputs of the last table made; only the newest snapshot's matter to the next. */
let lastInputs: ScopeInputs | null = null;

/**
 * The snapshot's table of scopes by caller. A rule change that sends no
 * traffic to another service (most of them: a retry, a timeout, a split over
 * the service's own subsets) leaves every input equal, and so does an
 * endpoint change, so the next snapshot reuses the last one's scopes instead
 * of walking every caller's closure again: the same arrays.
 */
function scopeTable(snapshot: MeshSnapshot): Map<string, Scope> {
  let table = scopeTables.get(snapshot);
  if (table) return table;
  const names = allServiceNames(snapshot);
  const dependencies = snapshot.dependencies;
  const onwardGraph = onwardGraphKey(snapshot);
  const last = lastInputs;
  if (last && last.names === names && last.dependencies === dependencies && last.onwardGraph === onwardGraph) {
    table = last.scopes;
  } else {
    table = new Map();
    lastInputs = { names, dependencies, onwardGraph, scopes: table };
  }
  scopeTables.set(snapshot, table);
  return table;
}

/** Whether two maps have the same keys. */
function sameKeys(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): boolean {
  if (a.size !== b.size) return false;
  for (const key of b.keys()) if (!a.has(key)) return false;
  return true;
}

/**
 * Every (destination, route source, onward target) of the snapshot's routes
 * as one string: equal strings mean every closure walks the same edges.
 * Once per set of routes, which snapshots share until a route changes.
 */
function onwardGraphKey(snapshot: MeshSnapshot): string {
  const routesByDestination = snapshot.routesByDestination;
  return memoOn(routesByDestination, "onward-graph", () => onwardGraph(routesByDestination));
}

// Its own function, not the memo's closure: the closure is new per call and its
// optimized code would not outlive it (memo.ts, perSnapshotTable).
function onwardGraph(routesByDestination: MeshSnapshot["routesByDestination"]): string {
  let graph = "";
  for (const routes of routesByDestination.values()) graph += onwardEdges(routes);
  return graph;
}

const edgesByRoutes = new WeakMap<readonly HttpRoute[], string>();

/**
 * One destination's edges as a JSON array ("" for none), once per list of
 * routes: a route change makes one destination's list anew and leaves the
 * others' lists as they were, so the graph's key costs that one list.
 */
function onwardEdges(routes: readonly HttpRoute[]): string {
  let edges = edgesByRoutes.get(routes);
  if (edges === undefined) {
    const list: (string | null)[] = [];
    for (const route of routes) {
      for (const target of routeTargets(route)) if (target !== route.destination) list.push(route.destination, route.source, target);
    }
    edges = list.length > 0 ? JSON.stringify(list) : "";
    edgesByRoutes.set(routes, edges);
  }
  return edges;
}

function closure(snapshot: MeshSnapshot, caller: string, declared: readonly string[]): string[] {
  const services = snapshot.registry.services;
  const onward = memoOn(snapshot, "onward-targets", () => new Map<string, readonly OnwardTarget[]>());
  const reached = new Set<string>();
  const queue: string[] = [];
  const out: string[] = [];
  for (const name of declared) {
    if (services.has(name) && !reached.has(name)) {
      reached.add(name);
      queue.push(name);
      out.push(name);
    }
  }
  // Declared names arrive sorted (dependencyMap); only names a route adds need a sort.
  let added = false;
  while (queue.length > 0) {
    const targets = onwardTargets(snapshot, onward, queue.pop() as string);
    if (targets === NONE) continue;
    for (const { source, target } of targets) {
      if ((source !== null && source !== caller) || reached.has(target) || !services.has(target)) continue;
      reached.add(target);
      queue.push(target);
      out.push(target);
      added = true;
    }
  }
  if (added) out.sort(compareText);
  return out;
}

interface OnwardTarget {
  /** The route's source service (null: any caller). */
  readonly source: string | null;
  readonly target: string;
}

const NONE: readonly OnwardTarget[] = [];

/**
 * The other services `destination`'s routes can send to, found once per
 * snapshot (`known` is the snapshot's table): most routes split over a
 * service's own subsets, so most destinations have none, and a caller's
 * closure is then its declared list.
 */
function onwardTargets(snapshot: MeshSnapshot, known: Map<string, readonly OnwardTarget[]>, destination: string): readonly OnwardTarget[] {
  let targets = known.get(destination);
  if (targets === undefined) {
    const found: OnwardTarget[] = [];
    for (const route of snapshot.routesByDestination.get(destination) ?? []) {
      for (const target of routeTargets(route)) if (target !== destination) found.push({ source: route.source, target });
    }
    targets = found.length > 0 ? found : NONE;
    known.set(destination, targets);
  }
  return targets;
}
