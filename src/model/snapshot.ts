import type { RegistryState } from "./registry.ts";
import type { HttpRoute, RuleRejection, Subset } from "./rules.ts";

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
}

export function subsetKey(service: string, subset: string): string {
  return `${service}/${subset}`;
}
