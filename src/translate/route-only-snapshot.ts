import { compareIds } from "../model/order.ts";
import type { HttpRoute, RuleRejection, RuleSet } from "../model/rules.ts";
import { sameElements, sameFieldsExcept, shareStructure } from "../model/share.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import { compareRoutes, hasOnlyKnownRuleFields, type BuiltSnapshot, type RuleVerdicts } from "./build-snapshot.ts";
import { checkHttpRoute, routeRejection } from "./rule-check.ts";

/**
 * The snapshot for a rule change that changed routes and nothing else (the
 * usual rule change: a route added, edited or removed), built from the last
 * one at a cost that follows the change rather than the mesh.
 *
 * buildSnapshot checks every route, sorts all of them, groups them by
 * destination and checks every policy again; then the result is structurally
 * shared with the last snapshot. When the registry and every rule but the
 * routes are the same objects as before, and no policy names a route, each
 * check's verdict stands for what did not change:
 *  - a route's own check reads the registry's service names and the subsets'
 *    verdicts, so an unchanged route keeps its verdict (by route object);
 *  - the policies' checks read routes only for rows scoped to a route
 *    (`routeId`) or extending one; without such rows their verdicts and what
 *    they make active stand;
 *  - only the destinations of added or removed routes get a new list.
 * The result equals buildSnapshot's for the same inputs, down to the order of
 * `routesByDestination` (test/translate/route-only-snapshot.test.ts), with
 * every unchanged part the last snapshot's own object.
 */

/** The last build a rebuild starts from. */
export interface LastBuild {
  readonly rules: RuleSet;
  readonly built: BuiltSnapshot;
}

/** The fields a route-only change may change; every other must be the same object. */
const ROUTE_FIELDS = ["httpRoutes", "rejected"];

/**
 * The build for `rules` on the last build's registry, or null when the change
 * is not routes only (then build in full). The caller checks the registry is
 * the last build's.
 */
export function rebuildRoutes(last: LastBuild, rules: RuleSet): BuiltSnapshot | null {
  const routesOnly = hasOnlyKnownRuleFields(rules) && sameFieldsExcept(last.rules, rules, ROUTE_FIELDS);
  if (!routesOnly || !policiesIgnoreRoutes(rules) || refusesListedRoute(rules)) return null;
  const { snapshot, verdicts } = last.built;
  const diff = diffRoutes(last.rules.httpRoutes, rules.httpRoutes);
  const problems = verdicts.routeProblems;
  let newlyRejected = false;
  for (const route of diff.added) {
    let problem = problems.get(route);
    if (problem === undefined) {
      problem = checkHttpRoute(route, snapshot.registry, snapshot.subsets, verdicts.refusedSubsets);
      problems.set(route, problem);
    }
    if (problem !== null) newlyRejected = true;
  }
  // Rejections keep the rule set's order; only re-listed when some route is refused.
  const routeRejections = newlyRejected || verdicts.routeRejections.length > 0 ? rejectionsOf(rules.httpRoutes, problems) : NO_REJECTIONS;
  const routesByDestination = regroup(snapshot.routesByDestination, diff, problems);
  const rejected = shareStructure(snapshot.rejected, [
    ...rules.rejected,
    ...verdicts.subsetRejections,
    ...routeRejections,
    ...verdicts.policyRejections,
    ...verdicts.clusterRejections,
  ]);
  const next: RuleVerdicts = { ...verdicts, routeRejections };
  if (routesByDestination === snapshot.routesByDestination && rejected === snapshot.rejected) return { snapshot, verdicts: next };
  return { snapshot: { ...snapshot, routesByDestination, rejected }, verdicts: next };
}

const NO_REJECTIONS: readonly RuleRejection[] = [];

const ignoresRoutes = new WeakMap<object, boolean>();

/**
 * No policy row names a route (`routeId`; a route's extensions name it too):
 * then no policy verdict reads the routes. Once per policies object, which
 * rule sets share until a policy changes. A new kind of rule that refers to a
 * route must name it `routeId` for this to see it.
 */
function policiesIgnoreRoutes(rules: RuleSet): boolean {
  return noRowNamesARoute(rules.routePolicies) && noRowNamesARoute(rules.clusterPolicies);
}

function noRowNamesARoute(policies: object | undefined): boolean {
  if (!policies) return true;
  let answer = ignoresRoutes.get(policies);
  if (answer === undefined) {
    answer = Object.values(policies).every(
      (rows) => !Array.isArray(rows) || rows.every((row: { routeId?: string | null }) => row.routeId === undefined || row.routeId === null),
    );
    ignoresRoutes.set(policies, answer);
  }
  return answer;
}

/**
 * A parse rejection names a route that is in the rule set (an extension row
 * refused for it): buildSnapshot then drops that route, which this path does
 * not model. Such rejections are rare, so the search is a plain one.
 */
function refusesListedRoute(rules: RuleSet): boolean {
  for (const rejection of rules.rejected) {
    if (rejection.kind === "http_route" && rules.httpRoutes.some((route) => route.id === rejection.id)) return true;
  }
  return false;
}

/** What differs between two route lists, by object. */
interface RouteDiff {
  /** Routes of the last list that are not in the new one (an edited route's old object). */
  readonly removed: readonly HttpRoute[];
  /** Routes of the new list that were not in the last one. */
  readonly added: readonly HttpRoute[];
}

/**
 * The routes only one list holds. Both lists come in id order from the
 * parser, so a walk of the two side by side finds them; a list in another
 * order can only make the walk report a route as removed and added again,
 * which costs a regrouping, never a missed change.
 */
function diffRoutes(before: readonly HttpRoute[], after: readonly HttpRoute[]): RouteDiff {
  const removed: HttpRoute[] = [];
  const added: HttpRoute[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length && j < after.length) {
    const a = before[i]!;
    const b = after[j]!;
    if (a === b) {
      i++;
      j++;
      continue;
    }
    const order = compareIds(a.id, b.id);
    if (order <= 0) removed.push(before[i++]!);
    if (order >= 0) added.push(after[j++]!);
  }
  while (i < before.length) removed.push(before[i++]!);
  while (j < after.length) added.push(after[j++]!);
  return { removed, added };
}

function rejectionsOf(routes: readonly HttpRoute[], problems: WeakMap<HttpRoute, string | null>): RuleRejection[] {
  const rejections: RuleRejection[] = [];
  for (const route of routes) {
    const problem = problems.get(route);
    if (problem) rejections.push(routeRejection(route, problem));
  }
  return rejections;
}

type RoutesByDestination = MeshSnapshot["routesByDestination"];

/**
 * `last` with the lists of the destinations the diff touches made again, in
 * buildSnapshot's order: each list by compareRoutes, and the destinations by
 * their first route (buildSnapshot groups routes it has sorted, so a
 * destination comes where its first route does).
 */
function regroup(last: RoutesByDestination, diff: RouteDiff, problems: WeakMap<HttpRoute, string | null>): RoutesByDestination {
  const lists = new Map<string, HttpRoute[]>();
  // By id: the snapshot's lists may hold an equal copy of a rule set's route
  // (structural sharing with an older snapshot), not the route itself.
  const gone = new Set(diff.removed.map((route) => route.id));
  const taken = new Map<string, HttpRoute>();
  for (const route of [...diff.removed, ...diff.added]) {
    if (lists.has(route.destination)) continue;
    const kept: HttpRoute[] = [];
    for (const listed of last.get(route.destination) ?? []) {
      if (gone.has(listed.id)) taken.set(listed.id, listed);
      else kept.push(listed);
    }
    lists.set(route.destination, kept);
  }
  // A route that comes back equal to what the snapshot listed (moved in the
  // rule set, or made again by a source that does not share structure) is
  // listed as that object, as structural sharing would.
  for (const route of diff.added) {
    if (problems.get(route) !== null) continue;
    const before = taken.get(route.id);
    lists.get(route.destination)!.push(before ? shareStructure(before, route) : route);
  }
  const made = new Map<string, readonly HttpRoute[]>();
  for (const [destination, list] of lists) {
    list.sort(compareRoutes);
    if (!sameElements(last.get(destination) ?? [], list)) made.set(destination, list);
  }
  if (made.size === 0) return last;
  return inOrder(last, made) ?? reordered(last, made);
}

/**
 * The last map with the new lists set in place, when that keeps
 * buildSnapshot's order: no destination comes or goes, and each changed
 * list's first route still sorts between its neighbours' first routes. Null
 * otherwise. Copying a map and setting a few keys keeps their positions.
 */
function inOrder(last: RoutesByDestination, lists: ReadonlyMap<string, readonly HttpRoute[]>): RoutesByDestination | null {
  const keys = [...last.keys()];
  const firstOf = (destination: string): HttpRoute => (lists.get(destination) ?? last.get(destination)!)[0]!;
  for (const [destination, list] of lists) {
    if (list.length === 0 || !last.has(destination)) return null;
    const at = keys.indexOf(destination);
    if (at > 0 && compareRoutes(firstOf(keys[at - 1]!), list[0]!) >= 0) return null;
    if (at < keys.length - 1 && compareRoutes(list[0]!, firstOf(keys[at + 1]!)) >= 0) return null;
  }
  const next = new Map(last);
  for (const [destination, list] of lists) next.set(destination, list);
  return next;
}

/** The map built again in buildSnapshot's order of destinations (a destination came, went or moved). */
function reordered(last: RoutesByDestination, lists: ReadonlyMap<string, readonly HttpRoute[]>): RoutesByDestination {
  const entries: [string, readonly HttpRoute[]][] = [];
  for (const [destination, list] of last) if (!lists.has(destination)) entries.push([destination, list]);
  for (const [destination, list] of lists) if (list.length > 0) entries.push([destination, list]);
  entries.sort((a, b) => compareRoutes(a[1][0]!, b[1][0]!));
  return new Map(entries);
}
