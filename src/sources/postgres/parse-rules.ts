/**
 * Rule rows -> RuleSet. Pure. A row whose columns do not fit the model becomes
 * a RuleRejection naming the column and is left out; every other row is
 * unaffected. Mesh-level checks (weights, unknown services) happen later, in
 * translation.
 */
import type { ClusterPolicies } from "../../model/cluster-policies.ts";
import type { RoutePolicies } from "../../model/route-policies.ts";
import type {
  HttpRoute,
  PathMatch,
  RetryPolicy,
  RuleRejection,
  RuleSet,
  ServiceDependency,
  Subset,
  WeightedDestination,
} from "../../model/rules.ts";
import { subsetKey } from "../../model/snapshot.ts";
import { readHeaderMatches, readQueryParamMatches, readStringMap } from "./json-shape.ts";
import { parseDependencies } from "./parse-dependencies.ts";
import { parseRoutePolicies } from "./parse-route-policies.ts";
import { parseClusterPolicies } from "./parse-cluster-policies.ts";
import type { HttpRouteDestinationRow, HttpRouteRow, RoutePatch, RuleRows, SubsetRow } from "./rows.ts";
import { byRowId, compareIds, compareText, findByKey, replaceRuns } from "../../model/order.ts";
import { shareStructure } from "../../model/share.ts";

/**
 * Weight of the implicit destination of a route that has no destination rows:
 * such a route (say, a timeout for /api) sends its traffic to every instance of
 * the route's own destination service.
 */
export const IMPLICIT_DESTINATION_WEIGHT = 100;

export function parseRules(rows: RuleRows): RuleSet {
  return assembleRules(parseRulePieces(rows, null));
}

/**
 * What parseRules builds, one piece per group of rows (each with the
 * rejections of its own rows), so that a caller holding the last pieces can
 * re-parse only the groups whose rows changed (IncrementalRuleParser).
 */
export interface RulePieces {
  readonly subsets: Parsed<readonly Subset[]>;
  readonly httpRoutes: Parsed<readonly HttpRoute[]>;
  readonly routePolicies: Parsed<RoutePolicies> | null;
  readonly clusterPolicies: Parsed<ClusterPolicies> | null;
  readonly dependencies: readonly ServiceDependency[] | null;
}

export interface Parsed<T> {
  readonly value: T;
  readonly rejected: readonly RuleRejection[];
}

/**
 * The pieces of `rows`. With `last` (the pieces of `lastRows`), a piece whose
 * rows are the same arrays as then is taken over as it was, not parsed again;
 * with `routePatch` too (`rows`' route rows are the last ones with the patch's
 * routes replaced, see load-rules.ts), only the patched routes are parsed.
 */
export function parseRulePieces(rows: RuleRows, last: { rows: RuleRows; pieces: RulePieces } | null, routePatch: RoutePatch | null = null): RulePieces {
  const kept = last?.pieces;
  // Whether every named field of `rows` is the same array as the last call's.
  const unchanged = (...fields: (keyof RuleRows)[]): boolean => last !== null && fields.every((field) => rows[field] === last.rows[field]);
  return {
    subsets: kept && unchanged("subsets") ? kept.subsets : parseSubsets(rows.subsets),
    httpRoutes:
      kept && unchanged("httpRoutes", "httpRouteDestinations")
        ? kept.httpRoutes
        : kept && routePatch && patchesLast(routePatch, last.rows)
          ? patchHttpRoutes(kept.httpRoutes, routePatch)
          : parseHttpRoutes(rows.httpRoutes, rows.httpRouteDestinations),
    routePolicies: !rows.routePolicies
      ? null
      : kept && unchanged("routePolicies", "httpRouteDestinations")
        ? kept.routePolicies
        : asParsed(parseRoutePolicies(rows.routePolicies, rows.httpRouteDestinations)),
    clusterPolicies: !rows.clusterPolicies
      ? null
      : kept && unchanged("clusterPolicies")
        ? kept.clusterPolicies
        : asParsed(parseClusterPolicies(rows.clusterPolicies)),
    dependencies: !rows.serviceDependencies
      ? null
      : kept && unchanged("serviceDependencies")
        ? kept.dependencies
        : parseDependencies(rows.serviceDependencies),
  };
}

/** The rule set of `pieces`: their values, and every piece's rejections in one sorted list. */
export function assembleRules(pieces: RulePieces): RuleSet {
  const { subsets, httpRoutes, routePolicies, clusterPolicies, dependencies } = pieces;
  const rejected = [subsets, httpRoutes, routePolicies, clusterPolicies].flatMap((piece) => piece?.rejected ?? []);
  rejected.sort(byRejection);
  return {
    subsets: subsets.value,
    httpRoutes: httpRoutes.value,
    rejected,
    ...(dependencies ? { dependencies } : {}),
    ...(routePolicies ? { routePolicies: routePolicies.value } : {}),
    ...(clusterPolicies ? { clusterPolicies: clusterPolicies.value } : {}),
  };
}

function asParsed<T>({ policies, rejected }: { policies: T; rejected: readonly RuleRejection[] }): Parsed<T> {
  return { value: policies, rejected };
}

function parseSubsets(rows: readonly SubsetRow[]): Parsed<Subset[]> {
  const rejected: RuleRejection[] = [];
  const subsets: Subset[] = [];
  for (const row of rows) {
    const issues: string[] = [];
    const subset = parseSubset(row, issues);
    if (issues.length > 0) rejected.push({ kind: "subset", id: subsetKey(row.service, row.name), message: issues.join("; ") });
    else subsets.push(subset);
  }
  subsets.sort(bySubsetKey);
  return { value: subsets, rejected };
}

function parseHttpRoutes(rows: readonly HttpRouteRow[], destinationRows: readonly HttpRouteDestinationRow[]): Parsed<HttpRoute[]> {
  const rejected: RuleRejection[] = [];
  const destinations = groupDestinations(destinationRows);
  const httpRoutes: HttpRoute[] = [];
  for (const row of rows) {
    const issues: string[] = [];
    const route = parseHttpRoute(row, destinations.get(row.id) ?? [], issues);
    if (issues.length > 0) rejected.push({ kind: "http_route", id: row.id, message: issues.join("; ") });
    else httpRoutes.push(route);
  }
  httpRoutes.sort(byRowId);
  return { value: httpRoutes, rejected };
}

/** Whether `patch` was applied to `lastRows`' route rows, so the last parse of those is its base. */
export function patchesLast(patch: RoutePatch, lastRows: RuleRows): boolean {
  return patch.base.httpRoutes === lastRows.httpRoutes && patch.base.httpRouteDestinations === lastRows.httpRouteDestinations;
}

/**
 * `kept` (the parsed routes of the last rows) with the patch's routes parsed
 * again: what parseHttpRoutes gives for the patched rows. Every other route
 * (and rejection) is the same object as in `kept`, and so is a patched route
 * that parses to what it was (shareStructure): the value is `kept`'s own when
 * no route changed. A route's parse reads its own row and destination rows only.
 */
function patchHttpRoutes(kept: Parsed<readonly HttpRoute[]>, patch: RoutePatch): Parsed<readonly HttpRoute[]> {
  const fresh = parseHttpRoutes(patch.httpRoutes, patch.httpRouteDestinations);
  let changed = fresh.value.length !== patch.ids.filter((id) => findByKey(kept.value, routeIdOf, id) !== undefined).length;
  const routes = fresh.value.map((route) => {
    const before = findByKey(kept.value, routeIdOf, route.id);
    const shared = before ? shareStructure(before, route) : route;
    if (shared !== before) changed = true;
    return shared;
  });
  const patched = new Set(patch.ids);
  const rejected = kept.rejected.filter((rejection) => !patched.has(rejection.id));
  rejected.push(...fresh.rejected);
  return { value: changed ? replaceRuns(kept.value, routeIdOf, patch.ids, routes) : kept.value, rejected };
}

const routeIdOf = (route: HttpRoute): string => route.id;

export function parseSubset(row: SubsetRow, issues: string[]): Subset {
  return { service: row.service, name: row.name, selector: readStringMap(row.selector, "selector", issues) };
}

export function parseHttpRoute(
  row: HttpRouteRow,
  destinationRows: readonly HttpRouteDestinationRow[],
  issues: string[],
): HttpRoute {
  const destinations: WeightedDestination[] =
    destinationRows.length > 0
      ? destinationRows.map((d) => ({ service: d.service, subset: d.subset, weight: d.weight }))
      : [{ service: row.destination, subset: null, weight: IMPLICIT_DESTINATION_WEIGHT }];
  return {
    id: row.id,
    destination: row.destination,
    source: row.source,
    priority: row.priority,
    path: parsePath(row, issues),
    method: row.method,
    headers: readHeaderMatches(row.headers, "headers", issues),
    queryParams: readQueryParamMatches(row.query_params, "query_params", issues),
    destinations,
    timeoutMs: row.timeout_ms,
    retry: parseRetry(row, issues),
  };
}

// The CHECK constraints already guarantee what parsePath and parseRetry test;
// they are repeated so a hand-altered schema cannot produce a half-built rule.

function parsePath(row: HttpRouteRow, issues: string[]): PathMatch | null {
  if (row.path_match === null && row.path === null) return null;
  if (row.path === null) {
    issues.push(`path: required when path_match is set`);
    return null;
  }
  switch (row.path_match) {
    case "prefix":
    case "exact":
    case "regex":
      return { kind: row.path_match, value: row.path };
    default:
      issues.push(`path_match: must be one of prefix, exact, regex, got ${JSON.stringify(row.path_match)}`);
      return null;
  }
}

function parseRetry(row: HttpRouteRow, issues: string[]): RetryPolicy | null {
  if (row.retry_on === null && row.retry_attempts === null) {
    if (row.per_try_timeout_ms !== null) issues.push("per_try_timeout_ms: needs retry_on and retry_attempts");
    return null;
  }
  if (row.retry_on === null || row.retry_attempts === null) {
    issues.push("retry_on, retry_attempts: set both or neither");
    return null;
  }
  return { retryOn: [...row.retry_on], attempts: row.retry_attempts, perTryTimeoutMs: row.per_try_timeout_ms };
}

function groupDestinations(rows: readonly HttpRouteDestinationRow[]): Map<string, HttpRouteDestinationRow[]> {
  const byRoute = new Map<string, HttpRouteDestinationRow[]>();
  for (const row of rows) {
    const list = byRoute.get(row.route_id);
    if (list) list.push(row);
    else byRoute.set(row.route_id, [row]);
  }
  return byRoute;
}

function byRejection(a: RuleRejection, b: RuleRejection): number {
  return compareText(a.kind, b.kind) || compareIds(a.id, b.id);
}

function bySubsetKey(a: Subset, b: Subset): number {
  return compareText(a.service, b.service) || compareText(a.name, b.name);
}
