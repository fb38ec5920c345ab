import { compareText } from "../model/order.ts";
import type { RegistryState } from "../model/registry.ts";
import type { HttpRoute, RuleSet } from "../model/rules.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import { checkRules } from "./rule-check.ts";
import { checkRoutePolicies } from "./route-policy-check.ts";
import { checkClusterPolicies } from "./cluster-policy-check.ts";
import { dependencyMap } from "./scope.ts";

/**
 * Routes are matched in this order: routes for a specific calling service before
 * destination-wide ones, then by ascending priority, then by id. Ids are compared
 * numerically when both are numbers (database ids), so route 10 follows route 9.
 */
export function compareRoutes(a: HttpRoute, b: HttpRoute): number {
  const specificity = Number(a.source === null) - Number(b.source === null);
  if (specificity !== 0) return specificity;
  if (a.priority !== b.priority) return a.priority - b.priority;
  const numeric = Number(a.id) - Number(b.id);
  if (!Number.isNaN(numeric) && numeric !== 0) return numeric;
  return compareText(a.id, b.id);
}

/** Joins registry and rules into one immutable snapshot, refusing rules that are wrong for the mesh. */
export function buildSnapshot(registry: RegistryState, rules: RuleSet): MeshSnapshot {
  const checked = checkRules(registry, rules.subsets, rules.httpRoutes);
  const policies = checkRoutePolicies(registry, rules.routePolicies, checked, rules.rejected);
  const routesByDestination = new Map<string, HttpRoute[]>();
  for (const route of [...policies.httpRoutes].sort(compareRoutes)) {
    const list = routesByDestination.get(route.destination) ?? [];
    list.push(route);
    routesByDestination.set(route.destination, list);
  }
  const earlier = [...rules.rejected, ...checked.rejected, ...policies.rejected];
  const cluster = checkClusterPolicies(rules.clusterPolicies, {
    registry,
    routes: policies.httpRoutes,
    rejected: earlier,
    subsets: checked.subsets,
    allRoutes: rules.httpRoutes,
  });
  return {
    registry,
    subsets: checked.subsets,
    routesByDestination,
    rejected: [...earlier, ...cluster.rejected],
    dependencies: dependencyMap(rules.dependencies ?? []),
    routePolicies: policies.active,
    clusterPolicies: cluster.active,
  };
}
