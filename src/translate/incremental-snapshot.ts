import type { RegistryState, Service } from "../model/registry.ts";
import type { RateLimitPolicy } from "../model/route-policies.ts";
import type { RuleSet, Subset } from "../model/rules.ts";
import { sameElements, sameFieldsExcept, shareStructure } from "../model/share.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import { buildSnapshotWithVerdicts, hasOnlyKnownRuleFields, type BuiltSnapshot } from "./build-snapshot.ts";
import { rebuildRoutes } from "./route-only-snapshot.ts";
import { colorRoutingFor, colorsOf } from "./cluster-policy-check.ts";
import { checkRateLimit } from "./route-policy-check.ts";
import { checkSubset } from "./rule-check.ts";

/**
 * Builds snapshots so that what did not change keeps its identity, which is
 * what lets the cache take its endpoint fast path and reuse translation across
 * snapshots.
 *
 *  - The registry is structurally shared with the previous one: an unchanged
 *    service is the same object as before, whatever the source delivered.
 *  - Same rules, and only the instances of some services changed (the usual
 *    registry change): only the mesh-level checks that read instances are
 *    re-run, for those services alone (instanceVerdictsUnchanged). When each
 *    gives the same answer against the new instances as against the old ones,
 *    every verdict and every rule-derived field of the previous snapshot
 *    stands, and the result is the previous snapshot with the new registry,
 *    at a cost proportional to the changed services. The cache then sees that
 *    only instances changed and patches endpoints instead of re-translating.
 *  - Only routes changed, on the same registry, and no policy names a route:
 *    the last snapshot with the lists of the destinations whose routes changed
 *    made again (route-only-snapshot.ts), at a cost that follows the change.
 *  - Otherwise (rules changed, services added or removed, or a verdict flips,
 *    such as a subset that now selects no instance) the snapshot is built in
 *    full (buildSnapshot), then each rule-derived field is structurally shared
 *    with the previous snapshot's. A flipped verdict changes clusters or
 *    routes, so the cache re-translates views anyway; the full check costs
 *    little next to that.
 *  - Nothing changed at all: the previous snapshot itself.
 *
 * test/xds/incremental.test.ts compares both paths with buildSnapshot.
 */
export class SnapshotBuilder {
  private last: { readonly registry: RegistryState; readonly rules: RuleSet; readonly built: BuiltSnapshot } | null = null;
  /** How each snapshot was made (which path), for tests. */
  readonly counts = { unchanged: 0, instancesOnly: 0, routesOnly: 0, full: 0 };

  build(registry: RegistryState, rules: RuleSet): MeshSnapshot {
    const last = this.last;
    const shared = last ? shareStructure(last.registry, registry) : registry;
    if (last && shared === last.registry && rules === last.rules) {
      this.counts.unchanged++;
      return last.built.snapshot;
    }
    if (last && rules === last.rules) {
      const changed = instanceOnlyChanges(last.registry, shared);
      if (changed !== null && instanceVerdictsUnchanged(last.registry, shared, rules, last.built.snapshot, changed)) {
        // Every verdict stands (see above), so the verdicts go on with the new registry.
        const snapshot: MeshSnapshot = { ...last.built.snapshot, registry: shared };
        this.last = { registry: shared, rules, built: { snapshot, verdicts: last.built.verdicts } };
        this.counts.instancesOnly++;
        return snapshot;
      }
    }
    if (last && shared === last.registry) {
      const built = rebuildRoutes(last, rules);
      if (built) {
        this.last = { registry: shared, rules, built };
        this.counts.routesOnly++;
        return built.snapshot;
      }
    }
    const fresh = buildSnapshotWithVerdicts(shared, rules);
    const snapshot = last ? shareSnapshot(last.built.snapshot, fresh.snapshot) : fresh.snapshot;
    this.last = { registry: shared, rules, built: { snapshot, verdicts: fresh.verdicts } };
    this.counts.full++;
    return snapshot;
  }
}

/** Per rule set: the rules whose checks read a service's instances, by that service. */
interface InstanceDependents {
  readonly known: boolean;
  readonly subsets: ReadonlyMap<string, readonly Subset[]>;
  readonly rateLimits: ReadonlyMap<string, readonly RateLimitPolicy[]>;
}

const dependentsByRules = new WeakMap<RuleSet, InstanceDependents>();

function instanceDependents(rules: RuleSet): InstanceDependents {
  let dependents = dependentsByRules.get(rules);
  if (dependents) return dependents;
  const subsets = new Map<string, Subset[]>();
  for (const subset of rules.subsets) listIn(subsets, subset.service).push(subset);
  const rateLimits = new Map<string, RateLimitPolicy[]>();
  for (const limit of rules.routePolicies?.rateLimits ?? []) listIn(rateLimits, limit.destination).push(limit);
  dependents = { known: hasOnlyKnownRuleFields(rules), subsets, rateLimits };
  dependentsByRules.set(rules, dependents);
  return dependents;
}

function listIn<T>(map: Map<string, T[]>, key: string): T[] {
  let list = map.get(key);
  if (!list) map.set(key, (list = []));
  return list;
}

/**
 * Whether every mesh-level verdict of `rules` is the same against the new
 * instances of `changed` (services whose instances, and nothing else, changed
 * since `before`) as against their old ones, so that `snapshot` (built from
 * `before` and `rules`) holds for the new registry too, registry aside.
 *
 * The checks that read instances (the others read service names and protocols,
 * which an instance-only change leaves alone):
 *  - a subset must select an instance of its service (rule-check.ts); every
 *    verdict downstream of a subset's (routes, mirrors, TCP routes naming it)
 *    follows from it;
 *  - a destination-wide rate limit needs an instance with a sidecar
 *    (route-policy-check.ts);
 *  - the colors of a service with color routing in force are derived from its
 *    instances (cluster-policy-check.ts, ActiveClusterPolicies.colors).
 * Each is re-run for the changed services only, against old and new instances.
 */
export function instanceVerdictsUnchanged(
  before: RegistryState,
  after: RegistryState,
  rules: RuleSet,
  snapshot: MeshSnapshot,
  changed: readonly Service[],
): boolean {
  const dependents = instanceDependents(rules);
  if (!dependents.known || !snapshot.clusterPolicies) return false;
  for (const service of changed) {
    const old = before.services.get(service.name);
    if (!old) return false;
    for (const subset of dependents.subsets.get(service.name) ?? []) {
      if (checkSubset(subset, before) !== checkSubset(subset, after)) return false;
    }
    for (const limit of dependents.rateLimits.get(service.name) ?? []) {
      if (checkRateLimit(limit, old) !== checkRateLimit(limit, service)) return false;
    }
    const routing = colorRoutingFor(snapshot.clusterPolicies, service);
    if (routing && !sameElements(colorsOf(old, routing), colorsOf(service, routing))) return false;
  }
  return true;
}

/**
 * `fresh` with every field equal to `previous`'s replaced by it; when all but
 * the registry are equal, `previous` with the new registry (so every
 * rule-derived field is the same object as before).
 */
function shareSnapshot(previous: MeshSnapshot, fresh: MeshSnapshot): MeshSnapshot {
  const before = previous as unknown as Record<string, unknown>;
  const after = fresh as unknown as Record<string, unknown>;
  const keys = Object.keys(after);
  let same = Object.keys(before).length === keys.length;
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    if (key === "registry") {
      out[key] = after[key];
      continue;
    }
    const value = shareStructure(before[key], after[key]);
    if (value !== before[key] || !Object.hasOwn(before, key)) same = false;
    out[key] = value;
  }
  if (same) return previous.registry === fresh.registry ? previous : { ...previous, registry: fresh.registry };
  return out as unknown as MeshSnapshot;
}

/**
 * The services whose instances (and nothing else) differ between two
 * registries, by identity; null when services were added or removed or
 * something other than instances changed. Expects structurally shared inputs.
 */
export function instanceOnlyChanges(before: RegistryState, after: RegistryState): readonly Service[] | null {
  if (before === after) return [];
  // SnapshotBuilder and then the cache ask about the same pair: walk the services once.
  if (lastPair?.before === before && lastPair.after === after) return lastPair.changed;
  const changed = findInstanceOnlyChanges(before, after);
  lastPair = { before, after, changed };
  return changed;
}

/**
 * The last pair asked about. One entry, held strongly: a WeakMap from `after`
 * to a value holding `before` would chain every registry ever seen to the
 * newest one (each is the key of the entry that holds its predecessor), and
 * keep them all alive.
 */
let lastPair: { readonly before: RegistryState; readonly after: RegistryState; readonly changed: readonly Service[] | null } | null = null;

function findInstanceOnlyChanges(before: RegistryState, after: RegistryState): Service[] | null {
  if (before.services.size !== after.services.size) return null;
  const changed: Service[] = [];
  let other = false;
  // forEach, not for-of over entries: this runs on every registry change and
  // must not allocate an entry per service.
  after.services.forEach((service, name) => {
    if (other) return;
    const old = before.services.get(name);
    if (old === service) return;
    if (!old || !sameShape(old, service)) other = true;
    else changed.push(service);
  });
  return other ? null : changed;
}

/** Every field but `instances` is identical (after structural sharing). */
function sameShape(a: Service, b: Service): boolean {
  return sameFieldsExcept(a, b, INSTANCES);
}

const INSTANCES = ["instances"];
