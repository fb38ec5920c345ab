/**
 * Cluster-policy rows -> ClusterPolicies. Pure. The CHECK constraints of
 * migration 0003 already guarantee the shapes tested here; they are repeated
 * for enumerations so a hand-altered schema cannot produce a half-built rule
 * (such a row becomes a RuleRejection naming the column). Mesh-level checks
 * happen later, in translate/cluster-policy-check.ts.
 */
import type {
  ClusterPolicies,
  HashOn,
  HealthCheckProtocol,
  LbAlgorithm,
  TcpRoute,
} from "../../model/cluster-policies.ts";
import type { RuleRejection, WeightedDestination } from "../../model/rules.ts";
import type { ClusterPolicyRows, TcpRouteDestinationRow } from "./load-cluster-policies.ts";

const ALGORITHMS: readonly LbAlgorithm[] = ["round_robin", "least_request", "random", "ring_hash", "maglev"];
const HASH_ON: readonly HashOn[] = ["header", "cookie", "source_ip", "query_param"];
const HEALTH_CHECK_PROTOCOLS: readonly HealthCheckProtocol[] = ["http", "tcp", "grpc"];

/** Weight of the implicit destination of a TCP route without destination rows. */
export const IMPLICIT_TCP_DESTINATION_WEIGHT = 100;

export interface ParsedClusterPolicies {
  readonly policies: ClusterPolicies;
  readonly rejected: readonly RuleRejection[];
}

function known<T extends string>(values: readonly T[], value: string): T | undefined {
  return values.find((v) => v === value);
}

function unknownValue(column: string, value: string, values: readonly string[]): string {
  return `${column}: must be one of ${values.join(", ")}, got ${JSON.stringify(value)}`;
}

export function parseClusterPolicies(rows: ClusterPolicyRows): ParsedClusterPolicies {
  const rejected: RuleRejection[] = [];

  const loadBalancing = rows.loadBalancing.flatMap((row) => {
    const algorithm = known(ALGORITHMS, row.algorithm);
    if (!algorithm) {
      rejected.push({ kind: "load_balancing", id: row.id, message: unknownValue("algorithm", row.algorithm, ALGORITHMS) });
      return [];
    }
    return [
      {
        id: row.id,
        destination: row.destination,
        algorithm,
        choiceCount: row.choice_count,
        ringMinSize: row.ring_min_size,
        ringMaxSize: row.ring_max_size,
        maglevTableSize: row.maglev_table_size,
        localityWeighted: row.locality_weighted,
        panicThresholdPercent: row.panic_threshold_percent,
        slowStart:
          row.slow_start_window_ms === null
            ? null
            : {
                windowMs: row.slow_start_window_ms,
                aggression: row.slow_start_aggression,
                minWeightPercent: row.slow_start_min_weight_percent,
              },
      },
    ];
  });

  const hashPolicies = rows.hashPolicies.flatMap((row) => {
    const hashOn = known(HASH_ON, row.hash_on);
    if (!hashOn) {
      rejected.push({ kind: "hash_policy", id: row.id, message: unknownValue("hash_on", row.hash_on, HASH_ON) });
      return [];
    }
    return [
      {
        id: row.id,
        destination: row.destination,
        source: row.source,
        routeId: row.route_id,
        position: row.position,
        hashOn,
        name: row.name,
        cookieTtlMs: row.cookie_ttl_ms,
        cookiePath: row.cookie_path,
        terminal: row.terminal,
      },
    ];
  });

  const colorRouting = rows.colorRouting.map((row) => ({
    id: row.id,
    destination: row.destination,
    header: row.header,
    label: row.label,
  }));

  const connectionPolicies = rows.connectionPolicies.map((row) => ({
    id: row.id,
    destination: row.destination,
    connectTimeoutMs: row.connect_timeout_ms,
    idleTimeoutMs: row.idle_timeout_ms,
    maxRequestsPerConnection: row.max_requests_per_connection,
    http2MaxConcurrentStreams: row.http2_max_concurrent_streams,
    websocket: row.websocket,
  }));

  const circuitBreakers = rows.circuitBreakers.map((row) => ({
    id: row.id,
    destination: row.destination,
    maxConnections: row.max_connections,
    maxPendingRequests: row.max_pending_requests,
    maxRequests: row.max_requests,
    maxRetries: row.max_retries,
    retryBudget:
      row.retry_budget_percent === null
        ? null
        : { percent: row.retry_budget_percent, minConcurrency: row.retry_budget_min_concurrency },
  }));

  const outlierDetection = rows.outlierDetection.map((row) => ({
    id: row.id,
    destination: row.destination,
    consecutive5xx: row.consecutive_5xx,
    consecutiveGatewayErrors: row.consecutive_gateway_errors,
    successRateStdevFactor: row.success_rate_stdev_factor,
    successRateMinimumHosts: row.success_rate_minimum_hosts,
    successRateRequestVolume: row.success_rate_request_volume,
    failurePercentageThreshold: row.failure_percentage_threshold,
    failurePercentageMinimumHosts: row.failure_percentage_minimum_hosts,
    failurePercentageRequestVolume: row.failure_percentage_request_volume,
    intervalMs: row.interval_ms,
    baseEjectionTimeMs: row.base_ejection_time_ms,
    maxEjectionTimeMs: row.max_ejection_time_ms,
    maxEjectionPercent: row.max_ejection_percent,
  }));

  const healthChecks = rows.healthChecks.flatMap((row) => {
    const protocol = known(HEALTH_CHECK_PROTOCOLS, row.protocol);
    if (!protocol) {
      rejected.push({ kind: "health_check", id: row.id, message: unknownValue("protocol", row.protocol, HEALTH_CHECK_PROTOCOLS) });
      return [];
    }
    return [
      {
        id: row.id,
        destination: row.destination,
        protocol,
        intervalMs: row.interval_ms,
        timeoutMs: row.timeout_ms,
        unhealthyThreshold: row.unhealthy_threshold,
        healthyThreshold: row.healthy_threshold,
        path: row.path,
        host: row.host,
        expectedStatuses: [...(row.expected_statuses ?? [])],
        sendHex: row.send_hex,
        receiveHex: row.receive_hex,
        grpcServiceName: row.grpc_service_name,
      },
    ];
  });

  const destinations = groupDestinations(rows.tcpRouteDestinations);
  const tcpRoutes: TcpRoute[] = rows.tcpRoutes.map((row) => {
    const own = destinations.get(row.id);
    const list: WeightedDestination[] = own
      ? own.map((d) => ({ service: d.service, subset: d.subset, weight: d.weight }))
      : [{ service: row.destination, subset: null, weight: IMPLICIT_TCP_DESTINATION_WEIGHT }];
    return { id: row.id, destination: row.destination, source: row.source, localPort: row.local_port, destinations: list };
  });

  return {
    policies: {
      loadBalancing,
      hashPolicies,
      colorRouting,
      connectionPolicies,
      circuitBreakers,
      outlierDetection,
      healthChecks,
      tcpRoutes,
    },
    rejected,
  };
}

function groupDestinations(rows: readonly TcpRouteDestinationRow[]): Map<string, TcpRouteDestinationRow[]> {
  const byRoute = new Map<string, TcpRouteDestinationRow[]>();
  for (const row of rows) {
    const list = byRoute.get(row.route_id);
    if (list) list.push(row);
    else byRoute.set(row.route_id, [row]);
  }
  return byRoute;
}
