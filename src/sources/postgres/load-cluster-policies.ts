/**
 * Reads the cluster-policy tables of migration 0003, inside the loader's
 * REPEATABLE READ transaction (see load.ts), typed the way node-postgres
 * returns them: bigint ids as text, numeric columns cast to float8.
 */
import type pg from "pg";

interface DestinationRow {
  readonly id: string;
  readonly destination: string | null;
}

export interface LoadBalancingRow extends DestinationRow {
  readonly algorithm: string;
  readonly choice_count: number | null;
  readonly ring_min_size: number | null;
  readonly ring_max_size: number | null;
  readonly maglev_table_size: number | null;
  readonly locality_weighted: boolean;
  readonly panic_threshold_percent: number | null;
  readonly slow_start_window_ms: number | null;
  readonly slow_start_aggression: number | null;
  readonly slow_start_min_weight_percent: number | null;
}

export interface HashPolicyRow {
  readonly id: string;
  readonly destination: string;
  readonly source: string | null;
  readonly route_id: string | null;
  readonly position: number;
  readonly hash_on: string;
  readonly name: string | null;
  readonly cookie_ttl_ms: number | null;
  readonly cookie_path: string | null;
  readonly terminal: boolean;
}

export interface ColorRoutingRow extends DestinationRow {
  readonly header: string;
  readonly label: string;
}

export interface ConnectionPolicyRow extends DestinationRow {
  readonly connect_timeout_ms: number | null;
  readonly idle_timeout_ms: number | null;
  readonly max_requests_per_connection: number | null;
  readonly http2_max_concurrent_streams: number | null;
  readonly websocket: boolean;
}

export interface CircuitBreakerRow extends DestinationRow {
  readonly max_connections: number | null;
  readonly max_pending_requests: number | null;
  readonly max_requests: number | null;
  readonly max_retries: number | null;
  readonly retry_budget_percent: number | null;
  readonly retry_budget_min_concurrency: number | null;
}

export interface OutlierDetectionRow extends DestinationRow {
  readonly consecutive_5xx: number | null;
  readonly consecutive_gateway_errors: number | null;
  readonly success_rate_stdev_factor: number | null;
  readonly success_rate_minimum_hosts: number | null;
  readonly success_rate_request_volume: number | null;
  readonly failure_percentage_threshold: number | null;
  readonly failure_percentage_minimum_hosts: number | null;
  readonly failure_percentage_request_volume: number | null;
  readonly interval_ms: number;
  readonly base_ejection_time_ms: number;
  readonly max_ejection_time_ms: number | null;
  readonly max_ejection_percent: number;
}

export interface HealthCheckRow {
  readonly id: string;
  readonly destination: string;
  readonly protocol: string;
  readonly interval_ms: number;
  readonly timeout_ms: number;
  readonly unhealthy_threshold: number;
  readonly healthy_threshold: number;
  readonly path: string | null;
  readonly host: string | null;
  readonly expected_statuses: readonly number[] | null;
  readonly send_hex: string | null;
  readonly receive_hex: string | null;
  readonly grpc_service_name: string | null;
}

export interface TcpRouteRow {
  readonly id: string;
  readonly destination: string;
  readonly source: string | null;
  readonly local_port: number;
}

export interface TcpRouteDestinationRow {
  readonly route_id: string;
  readonly service: string;
  readonly subset: string | null;
  readonly weight: number;
}

export interface ClusterPolicyRows {
  readonly loadBalancing: readonly LoadBalancingRow[];
  readonly hashPolicies: readonly HashPolicyRow[];
  readonly colorRouting: readonly ColorRoutingRow[];
  readonly connectionPolicies: readonly ConnectionPolicyRow[];
  readonly circuitBreakers: readonly CircuitBreakerRow[];
  readonly outlierDetection: readonly OutlierDetectionRow[];
  readonly healthChecks: readonly HealthCheckRow[];
  readonly tcpRoutes: readonly TcpRouteRow[];
  readonly tcpRouteDestinations: readonly TcpRouteDestinationRow[];
}

const QUERIES = {
  loadBalancing: `SELECT id::text AS id, destination, algorithm, choice_count, ring_min_size, ring_max_size,
       maglev_table_size, locality_weighted, panic_threshold_percent::float8 AS panic_threshold_percent,
       slow_start_window_ms, slow_start_aggression,
       slow_start_min_weight_percent::float8 AS slow_start_min_weight_percent
  FROM mesh.load_balancing WHERE enabled ORDER BY id`,
  hashPolicies: `SELECT p.id::text AS id, p.destination, p.source, p.route_id::text AS route_id, p.position, p.hash_on,
       p.name, p.cookie_ttl_ms, p.cookie_path, p.terminal
  FROM mesh.hash_policies p
 WHERE p.enabled ORDER BY p.id`,
  colorRouting: `SELECT id::text AS id, destination, header, label FROM mesh.color_routing WHERE enabled ORDER BY id`,
  connectionPolicies: `SELECT id::text AS id, destination, connect_timeout_ms, idle_timeout_ms, max_requests_per_connection,
       http2_max_concurrent_streams, websocket
  FROM mesh.connection_policies WHERE enabled ORDER BY id`,
  circuitBreakers: `SELECT id::text AS id, destination, max_connections, max_pending_requests, max_requests, max_retries,
       retry_budget_percent::float8 AS retry_budget_percent, retry_budget_min_concurrency
  FROM mesh.circuit_breakers WHERE enabled ORDER BY id`,
  outlierDetection: `SELECT id::text AS id, destination, consecutive_5xx, consecutive_gateway_errors,
       success_rate_stdev_factor::float8 AS success_rate_stdev_factor, success_rate_minimum_hosts,
       success_rate_request_volume, failure_percentage_threshold, failure_percentage_minimum_hosts,
       failure_percentage_request_volume, interval_ms, base_ejection_time_ms, max_ejection_time_ms, max_ejection_percent
  FROM mesh.outlier_detection WHERE enabled ORDER BY id`,
  healthChecks: `SELECT id::text AS id, destination, protocol, interval_ms, timeout_ms, unhealthy_threshold, healthy_threshold,
       path, host, expected_statuses, send_hex, receive_hex, grpc_service_name
  FROM mesh.health_checks WHERE enabled ORDER BY id`,
  tcpRoutes: `SELECT id::text AS id, destination, source, local_port FROM mesh.tcp_routes WHERE enabled ORDER BY id`,
  // Destination order is the authors' insertion order (by id) within a route.
  tcpRouteDestinations: `SELECT d.route_id::text AS route_id, d.service, d.subset, d.weight
  FROM mesh.tcp_route_destinations d JOIN mesh.tcp_routes r ON r.id = d.route_id
 WHERE r.enabled ORDER BY d.route_id, d.id`,
} as const;

export async function loadClusterPolicyRows(client: pg.ClientBase): Promise<ClusterPolicyRows> {
  const rows = async <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => (await client.query<T>(sql)).rows;
  return {
    loadBalancing: await rows<LoadBalancingRow>(QUERIES.loadBalancing),
    hashPolicies: await rows<HashPolicyRow>(QUERIES.hashPolicies),
    colorRouting: await rows<ColorRoutingRow>(QUERIES.colorRouting),
    connectionPolicies: await rows<ConnectionPolicyRow>(QUERIES.connectionPolicies),
    circuitBreakers: await rows<CircuitBreakerRow>(QUERIES.circuitBreakers),
    outlierDetection: await rows<OutlierDetectionRow>(QUERIES.outlierDetection),
    healthChecks: await rows<HealthCheckRow>(QUERIES.healthChecks),
    tcpRoutes: await rows<TcpRouteRow>(QUERIES.tcpRoutes),
    tcpRouteDestinations: await rows<TcpRouteDestinationRow>(QUERIES.tcpRouteDestinations),
  };
}
