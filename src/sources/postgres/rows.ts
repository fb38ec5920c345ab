/**
 * Rows as the loader selects them (see load.ts), typed the way node-postgres
 * returns them: jsonb parsed, text[] as string[], bigint ids cast to text.
 * JSON columns are `unknown` on purpose: their shape is checked by the parsers.
 */
import type { RoutePolicyRows } from "./load-route-policies.ts";
import type { ClusterPolicyRows } from "./load-cluster-policies.ts";

export interface ServiceRow {
  readonly name: string;
  readonly protocol: string;
  readonly port: number;
}

export interface InstanceRow {
  readonly id: string;
  readonly service: string;
  readonly address: string;
  readonly port: number;
  readonly mesh_port: number | null;
  readonly labels: unknown;
  readonly region: string;
  readonly zone: string;
  readonly weight: number;
  readonly health: string;
}

export interface SubsetRow {
  readonly service: string;
  readonly name: string;
  readonly selector: unknown;
}

export interface HttpRouteRow {
  readonly id: string;
  readonly destination: string;
  readonly source: string | null;
  readonly priority: number;
  readonly path_match: string | null;
  readonly path: string | null;
  readonly method: string | null;
  readonly headers: unknown;
  readonly query_params: unknown;
  readonly timeout_ms: number | null;
  readonly retry_on: readonly string[] | null;
  readonly retry_attempts: number | null;
  readonly per_try_timeout_ms: number | null;
}

export interface HttpRouteDestinationRow {
  readonly route_id: string;
  readonly service: string;
  readonly subset: string | null;
  readonly weight: number;
}

export interface RegistryRows {
  readonly services: readonly ServiceRow[];
  readonly instances: readonly InstanceRow[];
}

export interface ServiceDependencyRow {
  readonly service: string;
  readonly depends_on: string;
}

export interface RuleRows {
  readonly subsets: readonly SubsetRow[];
  readonly httpRoutes: readonly HttpRouteRow[];
  readonly httpRouteDestinations: readonly HttpRouteDestinationRow[];
  /** Enabled rows of mesh.service_dependencies (migration 0002). */
  readonly serviceDependencies?: readonly ServiceDependencyRow[];
  /** Rows of the route-policy tables (migration 0004, load-route-policies.ts). */
  readonly routePolicies?: RoutePolicyRows;
  /** Rows of the cluster-policy tables (migration 0003, load-cluster-policies.ts). */
  readonly clusterPolicies?: ClusterPolicyRows;
}

/**
 * The routes a read took from the route change log (migration 0007), and
 * their current rows: none for a route deleted or disabled.
 */
export interface RoutePatch {
  /** Every route id the log named, sorted as ids (compareIds). */
  readonly ids: readonly string[];
  readonly httpRoutes: readonly HttpRouteRow[];
  readonly httpRouteDestinations: readonly HttpRouteDestinationRow[];
  /** The route rows the patch applies to: the previous read's. */
  readonly base: Pick<RuleRows, "httpRoutes" | "httpRouteDestinations">;
}
