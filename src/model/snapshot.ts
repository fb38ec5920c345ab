import type { RegistryState } from "./registry.ts";
import type { HttpRoute, RuleRejection, Subset } from "./rules.ts";
import type { ActiveRoutePolicies } from "./route-policies.ts";
import type { ActiveClusterPolicies } from "./cluster-policies.ts";

/**
 * One consistent view of the mesh: registry plus the rules that passed mesh-level
 * checks. Immutable; a change produces a new snapshot.
 */
export interface MeshSnapshot {
  readonly registry: RegistryState;
  /** Keyed by `${service}/${subset}`. */
  readonly subsets: ReadonlyMap<string, Subset>;
  /** Accepted, enabled routes grouped by destination service, already in match order. */
  readonly routesByDestination: ReadonlyMap<string, readonly HttpRoute[]>;
  /** Rules that were refused, with the reason. */
  readonly rejected: readonly RuleRejection[];
  /**
   * Declared dependencies: service -> the services it calls, sorted. A service
   * absent here declared none and may call every service (see upstreamsOf).
   */
  readonly dependencies?: ReadonlyMap<string, readonly string[]>;
  /** Accepted route-side policies (timeouts, retries, faults, drops, rate limits) per destination. */
  readonly routePolicies?: ActiveRoutePolicies;
  /** Accepted cluster-side policies, colors and TCP routes (cluster-policies.ts). */
  readonly clusterPolicies?: ActiveClusterPolicies;
}

export function subsetKey(service: string, subset: string): string {
  return `${service}/${subset}`;
}
