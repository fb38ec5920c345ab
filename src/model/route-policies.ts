/**
 * Route-side traffic policies: what happens to a request on its way from a
 * caller to a destination service, beyond picking the upstream. Plain immutable
 * data, read from the policy tables (see docs/rules-route.md) and checked in
 * translate/route-policy-check.ts.
 *
 * Two families:
 *
 * - Route extensions belong to one `mesh.http_routes` row: rewrites, header
 *   edits, a redirect or a direct response, request mirrors. Their verdict is
 *   the route's verdict (kind `http_route`).
 * - Policies (timeouts, retries, faults, drops, rate limits) have a scope: a
 *   destination service, optionally narrowed to one calling service (`source`)
 *   or to one route (`routeId`). For a request, the most specific enabled and
 *   accepted row of each kind wins as a whole: route > source > destination.
 */
import type { HeaderMatch, RetryPolicy } from "./rules.ts";

/** The scope of a policy row. At most one of `source` and `routeId` is set. */
export interface PolicyScope {
  /** Database id of the row (its id in mesh.rule_status). */
  readonly id: string;
  /** The service whose traffic the policy governs. */
  readonly destination: string;
  /** Only requests from this calling service; null = every caller. */
  readonly source: string | null;
  /** Only requests matched by this mesh.http_routes row; null = every route. */
  readonly routeId: string | null;
}

export type PolicyLevel = "destination" | "source" | "route";

export function policyLevel(scope: PolicyScope): PolicyLevel {
  if (scope.routeId !== null) return "route";
  return scope.source !== null ? "source" : "destination";
}

/** mesh.timeout_policies */
export interface TimeoutPolicy extends PolicyScope {
  /** The whole request, retries included; 0 = no timeout at all; null = not set (propagation only). */
  readonly timeoutMs: number | null;
  /** Honour the caller's deadline (grpc-timeout, x-envoy-expected-rq-timeout-ms), capped by timeoutMs. */
  readonly propagate: boolean;
}

export interface RetryBackoff {
  readonly baseMs: number;
  /** null = Envoy's and gRPC's default, 10 x base. */
  readonly maxMs: number | null;
}

/** A retry policy with everything Envoy's RetryPolicy offers that Signalbox exposes. */
export interface RetrySettings extends RetryPolicy {
  /** HTTP statuses that are retried (implies Envoy's `retriable-status-codes`). */
  readonly retriableStatusCodes: readonly number[];
  readonly backoff: RetryBackoff | null;
  /** Envoy hedging: on a per-try timeout, send another attempt without cancelling the first. */
  readonly hedgeOnPerTryTimeout: boolean;
}

/** mesh.retry_policies */
export interface RetryPolicyRule extends PolicyScope {
  readonly retry: RetrySettings;
}

export interface FaultDelay {
  readonly ms: number;
  /** 0..100, up to four decimals. */
  readonly percent: number;
}

export interface FaultAbort {
  /** Used for HTTP services (and by gRPC as its HTTP-to-gRPC mapping when grpcStatus is null). */
  readonly httpStatus: number | null;
  /** Used for gRPC services. */
  readonly grpcStatus: number | null;
  readonly percent: number;
}

/** mesh.fault_policies. A row with neither delay nor abort means "no fault here" (it overrides wider rows). */
export interface FaultPolicy extends PolicyScope {
  readonly delay: FaultDelay | null;
  readonly abort: FaultAbort | null;
  /** Only requests carrying all of these headers get the fault; empty = every request. */
  readonly headers: readonly HeaderMatch[];
}

/** mesh.drop_policies: the kill switch. percent 0 means "do not drop here" (it overrides wider rows). */
export interface DropPolicy extends PolicyScope {
  readonly percent: number;
  readonly httpStatus: number;
  readonly grpcStatus: number;
}

/** mesh.rate_limit_policies: a token bucket per Envoy instance. */
export interface RateLimitPolicy extends PolicyScope {
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
  /** HTTP status of a refused request. */
  readonly statusCode: number;
}

export type HeaderEditAction = "set" | "append" | "add_if_absent" | "remove";

/** One row of mesh.http_route_header_edits. */
export interface HeaderEdit {
  readonly direction: "request" | "response";
  readonly action: HeaderEditAction;
  /** Lower-case header name. */
  readonly name: string;
  /** null exactly for "remove". */
  readonly value: string | null;
}

export type RedirectCode = 301 | 302 | 303 | 307 | 308;

/** mesh.http_route_redirects */
export interface Redirect {
  readonly scheme: "http" | "https" | null;
  readonly host: string | null;
  readonly port: number | null;
  /** Replace the whole path. */
  readonly path: string | null;
  /** Replace the matched prefix. */
  readonly prefix: string | null;
  readonly responseCode: RedirectCode;
  readonly stripQuery: boolean;
}

/** mesh.http_route_direct_responses */
export interface DirectResponse {
  readonly status: number;
  readonly body: string | null;
}

/** One row of mesh.http_route_mirrors: a shadow copy of a share of the route's requests. */
export interface Mirror {
  readonly service: string;
  readonly subset: string | null;
  readonly percent: number;
}

/** Everything the route-extension tables add to one mesh.http_routes row. */
export interface RouteExtensions {
  readonly routeId: string;
  /** mesh.http_route_rewrites */
  readonly prefixRewrite: string | null;
  readonly hostRewrite: string | null;
  readonly headerEdits: readonly HeaderEdit[];
  readonly redirect: Redirect | null;
  readonly directResponse: DirectResponse | null;
  readonly mirrors: readonly Mirror[];
  /** Whether the route has rows in mesh.http_route_destinations (a redirect or direct response must not). */
  readonly hasDestinationRows: boolean;
}

/** The route-side rules as read from the database: enabled rows only, sorted by id. */
export interface RoutePolicies {
  readonly timeouts: readonly TimeoutPolicy[];
  readonly retries: readonly RetryPolicyRule[];
  readonly faults: readonly FaultPolicy[];
  readonly drops: readonly DropPolicy[];
  readonly rateLimits: readonly RateLimitPolicy[];
  /** One entry per route that has any extension row, sorted by route id. */
  readonly routeExtensions: readonly RouteExtensions[];
}

export const emptyRoutePolicies: RoutePolicies = {
  timeouts: [],
  retries: [],
  faults: [],
  drops: [],
  rateLimits: [],
  routeExtensions: [],
};

/** Kinds in mesh.rule_status for the policy tables (route extensions report as `http_route`). */
export type RoutePolicyKind = "timeout_policy" | "retry_policy" | "fault_policy" | "drop_policy" | "rate_limit_policy";

export const ROUTE_POLICY_KINDS: Readonly<Record<RoutePolicyKind, keyof Omit<RoutePolicies, "routeExtensions">>> = {
  timeout_policy: "timeouts",
  retry_policy: "retries",
  fault_policy: "faults",
  drop_policy: "drops",
  rate_limit_policy: "rateLimits",
};

/** Every policy row, as [kind, id] pairs, for writing verdicts back. */
export function routePolicyIds(policies: RoutePolicies | undefined): [RoutePolicyKind, string][] {
  if (!policies) return [];
  const ids: [RoutePolicyKind, string][] = [];
  for (const [kind, key] of Object.entries(ROUTE_POLICY_KINDS) as [RoutePolicyKind, keyof RoutePolicies][]) {
    for (const row of policies[key] as readonly PolicyScope[]) ids.push([kind, row.id]);
  }
  return ids;
}

/** Accepted rows of one kind for one destination, by level. */
export interface Leveled<T> {
  readonly destination: T | null;
  readonly bySource: ReadonlyMap<string, T>;
  readonly byRoute: ReadonlyMap<string, T>;
}

export interface DestinationPolicies {
  readonly timeouts: Leveled<TimeoutPolicy>;
  readonly retries: Leveled<RetryPolicyRule>;
  readonly faults: Leveled<FaultPolicy>;
  readonly drops: Leveled<DropPolicy>;
  readonly rateLimits: Leveled<RateLimitPolicy>;
}

/**
 * What translation reads: accepted policies per destination service. (Accepted
 * route extensions travel on their route, as HttpRoute.extensions.)
 */
export interface ActiveRoutePolicies {
  readonly byDestination: ReadonlyMap<string, DestinationPolicies>;
}

export const noActiveRoutePolicies: ActiveRoutePolicies = { byDestination: new Map() };

/** Calls `visit` for each caller (source) some accepted policy of a destination names, so that caller's routes differ from others'. */
export function forEachPolicySource(active: ActiveRoutePolicies | undefined, visit: (destination: string, source: string) => void): void {
  if (!active) return;
  for (const [destination, policies] of active.byDestination) {
    for (const leveled of [policies.timeouts, policies.retries, policies.faults, policies.drops, policies.rateLimits]) {
      for (const source of leveled.bySource.keys()) visit(destination, source);
    }
  }
}

/**
 * The row that applies to a request from `source` matched by route `routeId`
 * (null for the default route): route-specific, else source-specific, else
 * destination-wide, else none.
 */
export function resolvePolicy<T>(leveled: Leveled<T> | undefined, source: string, routeId: string | null): T | null {
  if (!leveled) return null;
  if (routeId !== null) {
    const byRoute = leveled.byRoute.get(routeId);
    if (byRoute) return byRoute;
  }
  return leveled.bySource.get(source) ?? leveled.destination;
}
