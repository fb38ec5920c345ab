/**
 * Cluster-side traffic policies: how a caller's proxy treats the upstream
 * service it picked — which instance (load balancing, hashing, colors), how it
 * connects (timeouts, protocol options, WebSocket), when it stops (circuit
 * breakers, outlier detection), how it probes (active health checks) — plus
 * plain TCP services reached on local ports. Plain immutable data, read from
 * the tables of migration 0003 (docs/rules-cluster.md) and checked in
 * translate/cluster-policy-check.ts.
 *
 * A cluster is shared by every caller of a service, so cluster-level settings
 * are destination-wide: a row names one destination, or none (null) to be the
 * mesh-wide default; for a service the destination's row wins as a whole over
 * the default. Hash policies are route-level in Envoy and follow the route-side
 * precedence instead: route-specific > source-specific > destination-wide.
 */
import type { WeightedDestination } from "./rules.ts";

/** A cluster-level row: one destination service, or null for the mesh-wide default. */
export interface DestinationScope {
  /** Database id of the row (its id in mesh.rule_status). */
  readonly id: string;
  readonly destination: string | null;
}

export type LbAlgorithm = "round_robin" | "least_request" | "random" | "ring_hash" | "maglev";

export interface SlowStart {
  readonly windowMs: number;
  /** null = Envoy's default, 1.0 (linear ramp-up). */
  readonly aggression: number | null;
  /** null = Envoy's default, 10%. */
  readonly minWeightPercent: number | null;
}

/** mesh.load_balancing */
export interface LoadBalancing extends DestinationScope {
  readonly algorithm: LbAlgorithm;
  /** least_request only: how many random hosts are compared (Envoy default 2). */
  readonly choiceCount: number | null;
  /** ring_hash only. */
  readonly ringMinSize: number | null;
  readonly ringMaxSize: number | null;
  /** maglev only: a prime below 5000011 (Envoy default 65537). */
  readonly maglevTableSize: number | null;
  /** Weigh localities by their EDS weight (Envoy's locality_weighted_lb_config). */
  readonly localityWeighted: boolean;
  /** Healthy panic threshold, 0..100 (Envoy default 50). */
  readonly panicThresholdPercent: number | null;
  /** round_robin and least_request only. */
  readonly slowStart: SlowStart | null;
}

export type HashOn = "header" | "cookie" | "source_ip" | "query_param";

/** One row of mesh.hash_policies: one entry of a route's hash_policy list. */
export interface HashPolicyRule {
  readonly id: string;
  readonly destination: string;
  readonly source: string | null;
  readonly routeId: string | null;
  /** Order within the scope (then id). */
  readonly position: number;
  readonly hashOn: HashOn;
  /** Header, cookie or query parameter name; null for source_ip. */
  readonly name: string | null;
  /** cookie only: Envoy sets the cookie with this TTL when the request lacks it. */
  readonly cookieTtlMs: number | null;
  readonly cookiePath: string | null;
  /** Stop at this entry when it produced a hash. */
  readonly terminal: boolean;
}

/** mesh.color_routing */
export interface ColorRouting extends DestinationScope {
  /** Request header carrying the color, lower case (default x-env). */
  readonly header: string;
  /** Instance label holding an instance's color (default color). */
  readonly label: string;
}

/** mesh.connection_policies */
export interface ConnectionPolicy extends DestinationScope {
  readonly connectTimeoutMs: number | null;
  /** Upstream connection idle timeout (HTTP) or tcp_proxy idle timeout (TCP); 0 disables it. */
  readonly idleTimeoutMs: number | null;
  readonly maxRequestsPerConnection: number | null;
  /** http2 and grpc services only. */
  readonly http2MaxConcurrentStreams: number | null;
  /** Allow WebSocket upgrades on the routes to this service (HTTP/1.1 services). */
  readonly websocket: boolean;
}

export interface RetryBudget {
  /** Share of active requests that may be retries, 0 < p <= 100 (Envoy default 20). */
  readonly percent: number;
  /** Retries always allowed regardless of the budget (Envoy default 3). */
  readonly minConcurrency: number | null;
}

/** mesh.circuit_breakers: thresholds of the DEFAULT routing priority. */
export interface CircuitBreaker extends DestinationScope {
  readonly maxConnections: number | null;
  readonly maxPendingRequests: number | null;
  readonly maxRequests: number | null;
  readonly maxRetries: number | null;
  readonly retryBudget: RetryBudget | null;
}

/** mesh.outlier_detection. A detector is on exactly when its main column is set. */
export interface OutlierDetection extends DestinationScope {
  readonly consecutive5xx: number | null;
  readonly consecutiveGatewayErrors: number | null;
  /** Success-rate ejection: eject below mean - factor x stdev. */
  readonly successRateStdevFactor: number | null;
  readonly successRateMinimumHosts: number | null;
  readonly successRateRequestVolume: number | null;
  /** Failure-percentage ejection: eject above this failure percentage. */
  readonly failurePercentageThreshold: number | null;
  readonly failurePercentageMinimumHosts: number | null;
  readonly failurePercentageRequestVolume: number | null;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionTimeMs: number | null;
  readonly maxEjectionPercent: number;
}

export type HealthCheckProtocol = "http" | "tcp" | "grpc";

/** One row of mesh.health_checks (a destination may have several). */
export interface HealthCheck {
  readonly id: string;
  readonly destination: string;
  readonly protocol: HealthCheckProtocol;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
  /** http only. */
  readonly path: string | null;
  readonly host: string | null;
  /** http only; empty = Envoy's default (200). */
  readonly expectedStatuses: readonly number[];
  /** tcp only: payload to send / expect, hex. */
  readonly sendHex: string | null;
  readonly receiveHex: string | null;
  /** grpc only: the service name asked for in grpc.health.v1.HealthCheckRequest. */
  readonly grpcServiceName: string | null;
}

/** mesh.tcp_routes with its mesh.tcp_route_destinations. */
export interface TcpRoute {
  readonly id: string;
  /** A service of protocol tcp. */
  readonly destination: string;
  /** null = every caller; otherwise only callers of this service (and it wins over the null row). */
  readonly source: string | null;
  /** Loopback port on the caller's sidecar that the app connects to. */
  readonly localPort: number;
  /** No rows = every instance of `destination`. */
  readonly destinations: readonly WeightedDestination[];
}

/** The cluster-side rules as read from the database: enabled rows only, sorted by id. */
export interface ClusterPolicies {
  readonly loadBalancing: readonly LoadBalancing[];
  readonly hashPolicies: readonly HashPolicyRule[];
  readonly colorRouting: readonly ColorRouting[];
  readonly connectionPolicies: readonly ConnectionPolicy[];
  readonly circuitBreakers: readonly CircuitBreaker[];
  readonly outlierDetection: readonly OutlierDetection[];
  readonly healthChecks: readonly HealthCheck[];
  readonly tcpRoutes: readonly TcpRoute[];
}

export const emptyClusterPolicies: ClusterPolicies = {
  loadBalancing: [],
  hashPolicies: [],
  colorRouting: [],
  connectionPolicies: [],
  circuitBreakers: [],
  outlierDetection: [],
  healthChecks: [],
  tcpRoutes: [],
};

/** Kinds in mesh.rule_status for the tables of migration 0003. */
export type ClusterPolicyKind =
  | "load_balancing"
  | "hash_policy"
  | "color_routing"
  | "connection_policy"
  | "circuit_breaker"
  | "outlier_detection"
  | "health_check"
  | "tcp_route";

export const CLUSTER_POLICY_KINDS: Readonly<Record<ClusterPolicyKind, keyof ClusterPolicies>> = {
  load_balancing: "loadBalancing",
  hash_policy: "hashPolicies",
  color_routing: "colorRouting",
  connection_policy: "connectionPolicies",
  circuit_breaker: "circuitBreakers",
  outlier_detection: "outlierDetection",
  health_check: "healthChecks",
  tcp_route: "tcpRoutes",
};

/** Every row, as [kind, id] pairs, for writing verdicts back. */
export function clusterPolicyIds(policies: ClusterPolicies | undefined): [ClusterPolicyKind, string][] {
  if (!policies) return [];
  const ids: [ClusterPolicyKind, string][] = [];
  for (const [kind, key] of Object.entries(CLUSTER_POLICY_KINDS) as [ClusterPolicyKind, keyof ClusterPolicies][]) {
    for (const row of policies[key] as readonly { readonly id: string }[]) ids.push([kind, row.id]);
  }
  return ids;
}

/** What a service's clusters get: the accepted rows in force for it (its own, else the mesh-wide default). */
export interface ServiceClusterPolicy {
  readonly loadBalancing: LoadBalancing | null;
  readonly connection: ConnectionPolicy | null;
  readonly circuitBreaker: CircuitBreaker | null;
  readonly outlierDetection: OutlierDetection | null;
  readonly healthChecks: readonly HealthCheck[];
  readonly colorRouting: ColorRouting | null;
}

export const noServiceClusterPolicy: ServiceClusterPolicy = {
  loadBalancing: null,
  connection: null,
  circuitBreaker: null,
  outlierDetection: null,
  healthChecks: [],
  colorRouting: null,
};

/** Accepted hash policies of one destination, by level; each level is a list in position order. */
export interface LeveledHashPolicies {
  readonly destination: readonly HashPolicyRule[];
  readonly bySource: ReadonlyMap<string, readonly HashPolicyRule[]>;
  readonly byRoute: ReadonlyMap<string, readonly HashPolicyRule[]>;
}

/** The colors of one service with color routing in force. */
export interface ServiceColors {
  readonly header: string;
  readonly label: string;
  /** Colors that instances carry and that can be routed, sorted. */
  readonly colors: readonly string[];
}

/** What translation reads (MeshSnapshot.clusterPolicies). */
export interface ActiveClusterPolicies {
  /** Mesh-wide defaults (accepted rows with destination null). */
  readonly defaults: ServiceClusterPolicy;
  /** Accepted destination-specific rows, by service. */
  readonly byDestination: ReadonlyMap<string, Partial<ServiceClusterPolicy>>;
  readonly hashPolicies: ReadonlyMap<string, LeveledHashPolicies>;
  /**
   * Services with color routing in force and at least one routable color.
   * Derived from instances: SnapshotBuilder rebuilds when it would change.
   */
  readonly colors: ReadonlyMap<string, ServiceColors>;
  /** Accepted TCP routes, by destination then id. */
  readonly tcpRoutes: readonly TcpRoute[];
}

export const noActiveClusterPolicies: ActiveClusterPolicies = {
  defaults: noServiceClusterPolicy,
  byDestination: new Map(),
  hashPolicies: new Map(),
  colors: new Map(),
  tcpRoutes: [],
};

/** The policy in force for `service`: each kind from its own row, else the mesh-wide default. */
export function clusterPolicyFor(active: ActiveClusterPolicies | undefined, service: string): ServiceClusterPolicy {
  if (!active) return noServiceClusterPolicy;
  const own = active.byDestination.get(service);
  if (!own) return active.defaults;
  return {
    loadBalancing: own.loadBalancing ?? active.defaults.loadBalancing,
    connection: own.connection ?? active.defaults.connection,
    circuitBreaker: own.circuitBreaker ?? active.defaults.circuitBreaker,
    outlierDetection: own.outlierDetection ?? active.defaults.outlierDetection,
    healthChecks: own.healthChecks ?? active.defaults.healthChecks,
    colorRouting: own.colorRouting ?? active.defaults.colorRouting,
  };
}

/**
 * The hash policy entries for a request from `source` matched by route
 * `routeId` (null for the default route): the route's rows, else the source's,
 * else the destination-wide ones.
 */
export function resolveHashPolicies(
  leveled: LeveledHashPolicies | undefined,
  source: string,
  routeId: string | null,
): readonly HashPolicyRule[] {
  if (!leveled) return [];
  if (routeId !== null) {
    const byRoute = leveled.byRoute.get(routeId);
    if (byRoute) return byRoute;
  }
  return leveled.bySource.get(source) ?? leveled.destination;
}

/** Calls `visit` for each caller (source) a hash policy of a destination names, so that caller's routes differ from others'. */
export function forEachClusterPolicySource(active: ActiveClusterPolicies | undefined, visit: (destination: string, source: string) => void): void {
  if (!active) return;
  for (const [destination, leveled] of active.hashPolicies) for (const source of leveled.bySource.keys()) visit(destination, source);
}

/**
 * A color value usable in a cluster name and a header match: letters, digits,
 * '.', '_' and '-', at most 63 characters. Instances whose color label holds
 * anything else are kept out of baseline traffic but get no route.
 */
export const COLOR_VALUE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
