/**
 * Mesh-level checks for the cluster-side rules (migration 0003): rows that are
 * valid SQL but wrong for the mesh, or that would silently do nothing. Pure.
 * Runs after the route checks, on the routes they accepted (hash policies can
 * name a route). Accepted rows are indexed for translation
 * (ActiveClusterPolicies); the colors of every service with color routing in
 * force are derived here from its instances.
 */
import {
  COLOR_VALUE,
  noServiceClusterPolicy,
  type ActiveClusterPolicies,
  type CircuitBreaker,
  type ClusterPolicies,
  type ClusterPolicyKind,
  type ColorRouting,
  type ConnectionPolicy,
  type HashPolicyRule,
  type HealthCheck,
  type LeveledHashPolicies,
  type LoadBalancing,
  type OutlierDetection,
  type ServiceClusterPolicy,
  type ServiceColors,
  type TcpRoute,
} from "../model/cluster-policies.ts";
import { DEFAULT_OUTBOUND_PORT } from "../model/proxy.ts";
import type { Instance, RegistryState, Service } from "../model/registry.ts";
import type { HttpRoute, RuleRejection, Subset } from "../model/rules.ts";
import { subsetKey } from "../model/snapshot.ts";
import { compareIds, compareText } from "../model/order.ts";

const KIND_LABEL: Record<ClusterPolicyKind, string> = {
  load_balancing: "load balancing",
  hash_policy: "hash policy",
  color_routing: "color routing",
  connection_policy: "connection policy",
  circuit_breaker: "circuit breaker",
  outlier_detection: "outlier detection",
  health_check: "health check",
  tcp_route: "tcp route",
};

export interface CheckedClusterPolicies {
  readonly active: ActiveClusterPolicies;
  readonly rejected: readonly RuleRejection[];
}

export interface ClusterCheckContext {
  readonly registry: RegistryState;
  /** Routes accepted by the route checks (hash policies may name one). */
  readonly routes: readonly HttpRoute[];
  /** Every rejection so far (to say why a route or subset a row depends on is refused). */
  readonly rejected: readonly RuleRejection[];
  /** Accepted subsets, keyed by `${service}/${name}`. */
  readonly subsets: ReadonlyMap<string, Subset>;
  /** Every enabled route as read (to tell a refused route from a disabled one). */
  readonly allRoutes: readonly HttpRoute[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export function checkClusterPolicies(policies: ClusterPolicies | undefined, ctx: ClusterCheckContext): CheckedClusterPolicies {
  const rejected: RuleRejection[] = [];
  const reject = (kind: ClusterPolicyKind, id: string, problem: string): void => {
    rejected.push({ kind, id, message: `${KIND_LABEL[kind]} ${id}: ${problem}` });
  };
  const { registry } = ctx;
  const defaults: Mutable<ServiceClusterPolicy> = { ...noServiceClusterPolicy, healthChecks: [] };
  const byDestination = new Map<string, Mutable<Partial<ServiceClusterPolicy>>>();
  const own = (service: string): Mutable<Partial<ServiceClusterPolicy>> => {
    let entry = byDestination.get(service);
    if (!entry) byDestination.set(service, (entry = {}));
    return entry;
  };

  /** Destination-wide rows: check, then file under the destination or as the default. */
  const destinationWide = <K extends "loadBalancing" | "connection" | "circuitBreaker" | "outlierDetection" | "colorRouting">(
    kind: ClusterPolicyKind,
    rows: readonly (ServiceClusterPolicy[K] & { readonly id: string; readonly destination: string | null })[],
    key: K,
    /** `service` is null for the mesh-wide default (checks of the row alone). */
    check: (row: NonNullable<ServiceClusterPolicy[K]>, service: Service | null) => string | null,
  ): void => {
    for (const row of rows) {
      const service = row.destination === null ? null : registry.services.get(row.destination);
      const problem =
        service === undefined
          ? `destination service "${row.destination}" is not in the registry`
          : check(row as NonNullable<ServiceClusterPolicy[K]>, service);
      if (problem) reject(kind, row.id, problem);
      else if (row.destination === null) (defaults as Record<K, unknown>)[key] = row;
      else (own(row.destination) as Record<K, unknown>)[key] = row;
    }
  };

  destinationWide("load_balancing", policies?.loadBalancing ?? [], "loadBalancing", checkLoadBalancing);
  destinationWide("connection_policy", policies?.connectionPolicies ?? [], "connection", checkConnection);
  destinationWide("circuit_breaker", policies?.circuitBreakers ?? [], "circuitBreaker", checkCircuitBreaker);
  destinationWide("outlier_detection", policies?.outlierDetection ?? [], "outlierDetection", checkOutlierDetection);
  destinationWide("color_routing", policies?.colorRouting ?? [], "colorRouting", checkColorRouting);

  for (const check of policies?.healthChecks ?? []) {
    const service = registry.services.get(check.destination);
    const problem = service ? checkHealthCheck(check, service) : `destination service "${check.destination}" is not in the registry`;
    if (problem) {
      reject("health_check", check.id, problem);
      continue;
    }
    const entry = own(check.destination);
    entry.healthChecks = [...(entry.healthChecks ?? []), check];
  }

  const algorithmOf = (service: string): LoadBalancing["algorithm"] =>
    (byDestination.get(service)?.loadBalancing ?? defaults.loadBalancing)?.algorithm ?? "round_robin";

  // Hash policies, after load balancing: they only matter for consistent hashing.
  const routeRefusals = new Map<string, string>();
  for (const r of ctx.rejected) if (r.kind === "http_route" && !routeRefusals.has(r.id)) routeRefusals.set(r.id, r.message);
  const acceptedRoutes = new Map(ctx.routes.map((route) => [route.id, route]));
  const readRoutes = new Map(ctx.allRoutes.map((route) => [route.id, route]));
  const hashPolicies = new Map<string, { destination: HashPolicyRule[]; bySource: Map<string, HashPolicyRule[]>; byRoute: Map<string, HashPolicyRule[]> }>();
  for (const policy of policies?.hashPolicies ?? []) {
    const problem = checkHashPolicy(policy, registry, algorithmOf(policy.destination), acceptedRoutes, readRoutes, routeRefusals);
    if (problem) {
      reject("hash_policy", policy.id, problem);
      continue;
    }
    let leveled = hashPolicies.get(policy.destination);
    if (!leveled) hashPolicies.set(policy.destination, (leveled = { destination: [], bySource: new Map(), byRoute: new Map() }));
    const list =
      policy.routeId !== null
        ? listIn(leveled.byRoute, policy.routeId)
        : policy.source !== null
          ? listIn(leveled.bySource, policy.source)
          : leveled.destination;
    list.push(policy);
  }
  const byPosition = (a: HashPolicyRule, b: HashPolicyRule): number => a.position - b.position || compareIds(a.id, b.id);
  const sortedHash = new Map<string, LeveledHashPolicies>();
  for (const [destination, leveled] of hashPolicies) {
    leveled.destination.sort(byPosition);
    for (const list of leveled.bySource.values()) list.sort(byPosition);
    for (const list of leveled.byRoute.values()) list.sort(byPosition);
    sortedHash.set(destination, leveled);
  }

  // TCP routes.
  const subsetRefusals = new Map<string, string>();
  for (const r of ctx.rejected) if (r.kind === "subset") subsetRefusals.set(r.id, r.message);
  const tcpRoutes: TcpRoute[] = [];
  for (const route of policies?.tcpRoutes ?? []) {
    const problem = checkTcpRoute(route, registry, ctx.subsets, subsetRefusals) ?? portConflict(route, tcpRoutes);
    if (problem) reject("tcp_route", route.id, problem);
    else tcpRoutes.push(route);
  }
  tcpRoutes.sort(byTcpRoute);

  const active: ActiveClusterPolicies = {
    defaults,
    byDestination,
    hashPolicies: sortedHash,
    colors: new Map(),
    tcpRoutes,
  };
  return { active: { ...active, colors: serviceColorsOf(registry, active) }, rejected };
}

function listIn<T>(map: Map<string, T[]>, key: string): T[] {
  let list = map.get(key);
  if (!list) map.set(key, (list = []));
  return list;
}

// --- per kind ----------------------------------------------------------------

function checkLoadBalancing(_row: LoadBalancing, _service: Service | null): string | null {
  return null;
}

function checkConnection(row: ConnectionPolicy, service: Service | null): string | null {
  if (!service) return null; // the mesh-wide default applies each setting only where it means something
  if (row.websocket && service.protocol !== "http") {
    return `websocket needs an HTTP/1.1 service, but "${service.name}" speaks ${service.protocol}`;
  }
  if (row.http2MaxConcurrentStreams !== null && service.protocol !== "http2" && service.protocol !== "grpc") {
    return `http2_max_concurrent_streams applies to http2 and grpc services, but "${service.name}" speaks ${service.protocol}`;
  }
  if (row.maxRequestsPerConnection !== null && service.protocol === "tcp") {
    return `max_requests_per_connection counts HTTP requests, but "${service.name}" speaks tcp`;
  }
  return null;
}

function checkCircuitBreaker(_row: CircuitBreaker, _service: Service | null): string | null {
  return null;
}

function checkOutlierDetection(row: OutlierDetection, _service: Service | null): string | null {
  if (row.maxEjectionPercent === 0) {
    return "max_ejection_percent 0 lets no instance be ejected, so the detectors would do nothing; disable the row instead";
  }
  return null;
}

function checkColorRouting(_row: ColorRouting, service: Service | null): string | null {
  if (service?.protocol === "tcp") return `color routing matches a request header, but "${service.name}" speaks tcp`;
  return null;
}

function checkHealthCheck(check: HealthCheck, service: Service): string | null {
  if (check.protocol !== "tcp" && service.protocol === "tcp") {
    return `"${service.name}" speaks tcp; use a tcp health check`;
  }
  if (check.protocol === "grpc" && service.protocol !== "grpc") {
    return `a grpc health check calls grpc.health.v1.Health/Check, but "${service.name}" speaks ${service.protocol}`;
  }
  return null;
}

function checkHashPolicy(
  policy: HashPolicyRule,
  registry: RegistryState,
  algorithm: LoadBalancing["algorithm"],
  acceptedRoutes: ReadonlyMap<string, HttpRoute>,
  readRoutes: ReadonlyMap<string, HttpRoute>,
  routeRefusals: ReadonlyMap<string, string>,
): string | null {
  const service = registry.services.get(policy.destination);
  if (!service) return `destination service "${policy.destination}" is not in the registry`;
  if (policy.source !== null && !registry.services.has(policy.source)) {
    return `source service "${policy.source}" is not in the registry`;
  }
  if (policy.routeId !== null) {
    const route = readRoutes.get(policy.routeId);
    if (!route) return `its route ${policy.routeId} is disabled`;
    if (route.destination !== policy.destination) {
      return `its route ${policy.routeId} governs "${route.destination}", not "${policy.destination}"`;
    }
    if (!acceptedRoutes.has(policy.routeId)) {
      const why = routeRefusals.get(policy.routeId);
      return why ? `its route ${policy.routeId} is refused (${why})` : `its route ${policy.routeId} is refused`;
    }
  }
  if (algorithm !== "ring_hash" && algorithm !== "maglev") {
    return `hash policies only matter to ring_hash and maglev, but "${service.name}" is balanced with ${algorithm} (set mesh.load_balancing.algorithm)`;
  }
  if (service.protocol === "tcp" && policy.hashOn !== "source_ip") {
    return `"${service.name}" speaks tcp: a TCP connection can only be hashed on source_ip`;
  }
  if (service.protocol === "tcp" && policy.routeId !== null) {
    return `"${service.name}" speaks tcp: HTTP routes do not apply to it`;
  }
  return null;
}

function checkTcpRoute(
  route: TcpRoute,
  registry: RegistryState,
  subsets: ReadonlyMap<string, Subset>,
  subsetRefusals: ReadonlyMap<string, string>,
): string | null {
  const service = registry.services.get(route.destination);
  if (!service) return `destination service "${route.destination}" is not in the registry`;
  if (service.protocol !== "tcp") {
    return `"${service.name}" speaks ${service.protocol}; TCP routes are for tcp services (route HTTP with mesh.http_routes)`;
  }
  if (route.source !== null && !registry.services.has(route.source)) {
    return `source service "${route.source}" is not in the registry`;
  }
  if (route.localPort === DEFAULT_OUTBOUND_PORT) {
    return `local_port ${route.localPort} is the sidecar's outbound HTTP port`;
  }
  const total = route.destinations.reduce((sum, d) => sum + d.weight, 0);
  if (total <= 0) return "destination weights sum to 0; at least one weight must be positive";
  for (const destination of route.destinations) {
    const target = registry.services.get(destination.service);
    if (!target) return `destination "${destination.service}" is not in the registry`;
    if (target.protocol !== "tcp") return `destination "${target.name}" speaks ${target.protocol}, not tcp`;
    if (destination.subset !== null && destination.weight > 0) {
      const key = subsetKey(destination.service, destination.subset);
      if (!subsets.has(key)) {
        const why = subsetRefusals.get(key);
        return why ? `subset "${key}" is refused: ${why}` : `subset "${key}" is not defined in mesh.subsets`;
      }
    }
  }
  return null;
}

/** Two routes for different destinations cannot share a local port when one caller could get both. */
function portConflict(route: TcpRoute, accepted: readonly TcpRoute[]): string | null {
  for (const other of accepted) {
    if (other.localPort !== route.localPort || other.destination === route.destination) continue;
    const overlap = other.source === null || route.source === null || other.source === route.source;
    if (!overlap) continue;
    const callers = route.source ?? other.source;
    return `local_port ${route.localPort} is already taken by tcp route ${other.id} (destination "${other.destination}") for ${callers === null ? "every caller" : `callers from "${callers}"`}`;
  }
  return null;
}

// --- colors ------------------------------------------------------------------

/** An instance's color under `routing`: "" for baseline instances (label absent or empty). */
export function colorOf(instance: Instance, routing: ColorRouting): string {
  return instance.labels[routing.label] ?? "";
}

/** The routable colors of `service` under `routing`, sorted; empty when none. */
export function colorsOf(service: Service, routing: ColorRouting): string[] {
  const colors = new Set<string>();
  for (const instance of service.instances) {
    const color = colorOf(instance, routing);
    if (color !== "" && COLOR_VALUE.test(color)) colors.add(color);
  }
  return [...colors].sort(compareText);
}

/** The color routing in force for `service` (its own row, else the mesh-wide default), or null. */
export function colorRoutingFor(active: ActiveClusterPolicies, service: Service): ColorRouting | null {
  if (service.protocol === "tcp") return null;
  return active.byDestination.get(service.name)?.colorRouting ?? active.defaults.colorRouting;
}

function serviceColorsOf(registry: RegistryState, active: ActiveClusterPolicies): Map<string, ServiceColors> {
  const colors = new Map<string, ServiceColors>();
  for (const service of registry.services.values()) {
    const routing = colorRoutingFor(active, service);
    if (!routing) continue;
    const list = colorsOf(service, routing);
    if (list.length > 0) colors.set(service.name, { header: routing.header, label: routing.label, colors: list });
  }
  return colors;
}

function byTcpRoute(a: TcpRoute, b: TcpRoute): number {
  return compareText(a.destination, b.destination) || compareIds(a.id, b.id);
}
