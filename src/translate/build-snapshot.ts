import { compareText } from "../model/order.ts";
import type { RegistryState } from "../model/registry.ts";
import type { HttpRoute, RuleRejection, RuleSet } from "../model/rules.ts";
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

/**
 * The RuleSet fields whose mesh-level checks the shortcuts of SnapshotBuilder
 * know (which read instances, which read routes). A rule set with any other
 * field (a new kind of rule) is always built in full.
 */
const KNOWN_RULE_FIELDS: ReadonlySet<string> = new Set(["subsets", "httpRoutes", "rejected", "dependencies", "routePolicies", "clusterPolicies"]);

/** Whether every field of `rules` is one of KNOWN_RULE_FIELDS. */
export function hasOnlyKnownRuleFields(rules: RuleSet): boolean {
  return Object.keys(rules).every((key) => KNOWN_RULE_FIELDS.has(key));
}

/** Joins registry and rules into one immutable snapshot, refusing rules that are wrong for the mesh. */
export function buildSnapshot(registry: RegistryState, rules: RuleSet): MeshSnapshot {
  return buildSnapshotWithVerdicts(registry, rules).snapshot;
}

/**
 * The verdicts a snapshot was built with, apart, for the routes-only rebuild
 * (route-only-snapshot.ts): which rules each check refused, and each route's
 * own verdict by route object.
 */
export interface RuleVerdicts {
  readonly subsetRejections: readonly RuleRejection[];
  readonly refusedSubsets: ReadonlyMap<string, string>;
  /** The route check's verdict (problem, or null) of every route checked against this registry and these subsets. */
  readonly routeProblems: WeakMap<HttpRoute, string | null>;
  /** The route check's rejections, in the rule set's order. */
  readonly routeRejections: readonly RuleRejection[];
  readonly policyRejections: readonly RuleRejection[];
  readonly clusterRejections: readonly RuleRejection[];
}

export interface BuiltSnapshot {
  readonly snapshot: MeshSnapshot;
  readonly verdicts: RuleVerdicts;
}

export function buildSnapshotWithVerdicts(registry: RegistryState, rules: RuleSet): BuiltSnapshot {
  const routeProblems = new WeakMap<HttpRoute, string | null>();
  const checked = checkRules(registry, rules.subsets, rules.httpRoutes, routeProblems);
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
  const snapshot: MeshSnapshot = {
    registry,
    subsets: checked.subsets,
    routesByDestination,
    rejected: [...earlier, ...cluster.rejected],
    dependencies: dependencyMap(rules.dependencies ?? []),
    routePolicies: policies.active,
    clusterPolicies: cluster.active,
  };
  const verdicts: RuleVerdicts = {
    subsetRejections: checked.rejected.filter((r) => r.kind === "subset"),
    refusedSubsets: checked.refusedSubsets,
    routeProblems,
    routeRejections: checked.rejected.filter((r) => r.kind !== "subset"),
    policyRejections: policies.rejected,
    clusterRejections: cluster.rejected,
  };
  return { snapshot, verdicts };
}
