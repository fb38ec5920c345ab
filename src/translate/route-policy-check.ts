/**
 * Mesh-level checks for the route-side rules (route extensions and scoped
 * policies): rows that are valid SQL but would be wrong on a proxy, or would
 * silently do nothing. Pure. Runs after checkRules (rule-check.ts), on the
 * routes it accepted; a route whose extensions are wrong is refused here too,
 * and a route-specific policy of a refused or disabled route is refused with it.
 *
 * Accepted policies are indexed per destination and level for translation;
 * accepted extensions are attached to their route (HttpRoute.extensions).
 */
import type { RegistryState, Service } from "../model/registry.ts";
import {
  policyLevel,
  type ActiveRoutePolicies,
  type DestinationPolicies,
  type DropPolicy,
  type FaultPolicy,
  type Leveled,
  type PolicyScope,
  type RateLimitPolicy,
  type RetryPolicyRule,
  type RouteExtensions,
  type RoutePolicies,
  type RoutePolicyKind,
  type TimeoutPolicy,
} from "../model/route-policies.ts";
import type { HeaderMatch, HttpRoute, RuleRejection } from "../model/rules.ts";
import { subsetKey } from "../model/snapshot.ts";
import { StatusCode } from "../gen/envoy/type/v3/http_status_pb.ts";
import { checkRegex, type CheckedRules } from "./rule-check.ts";

/** gRPC status names Envoy (x-envoy-retry-grpc-on) and gRPC clients (gRFC A44) retry on. */
export const GRPC_RETRY_ON: readonly string[] = ["cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"];

const HEADER_NAME = /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/;

const KIND_LABEL: Record<RoutePolicyKind, string> = {
  timeout_policy: "timeout policy",
  retry_policy: "retry policy",
  fault_policy: "fault policy",
  drop_policy: "drop policy",
  rate_limit_policy: "rate limit policy",
};

export interface CheckedRoutePolicies {
  /** The routes still accepted, in the order given, with their extensions attached. */
  readonly httpRoutes: readonly HttpRoute[];
  readonly active: ActiveRoutePolicies;
  readonly rejected: readonly RuleRejection[];
}

/**
 * @param checked what checkRules accepted and refused
 * @param parseRejected rejections from reading the rows (RuleSet.rejected): a
 *   route refused there (for example for a bad extension row) is dropped here
 */
export function checkRoutePolicies(
  registry: RegistryState,
  policies: RoutePolicies | undefined,
  checked: CheckedRules,
  parseRejected: readonly RuleRejection[],
): CheckedRoutePolicies {
  const rejected: RuleRejection[] = [];
  const routeRefusals = new Map<string, string>();
  for (const r of [...parseRejected, ...checked.rejected]) {
    if (r.kind === "http_route" && !routeRefusals.has(r.id)) routeRefusals.set(r.id, r.message);
  }
  const subsetRefusals = new Map<string, string>();
  for (const r of checked.rejected) if (r.kind === "subset") subsetRefusals.set(r.id, r.message);

  // Routes and their extensions.
  const extensionsByRoute = new Map((policies?.routeExtensions ?? []).map((e) => [e.routeId, e]));
  const httpRoutes: HttpRoute[] = [];
  for (const route of checked.httpRoutes) {
    if (routeRefusals.has(route.id)) continue;
    const extensions = extensionsByRoute.get(route.id);
    if (!extensions) {
      httpRoutes.push(route);
      continue;
    }
    const problem = checkRouteExtensions(route, extensions, registry, checked.subsets, subsetRefusals);
    if (problem) {
      const message = `http route ${route.id}: ${problem}`;
      rejected.push({ kind: "http_route", id: route.id, message });
      routeRefusals.set(route.id, message);
    } else {
      httpRoutes.push({ ...route, extensions });
    }
  }
  const routesById = new Map(httpRoutes.map((route) => [route.id, route]));

  // Scoped policies.
  const byDestination = new Map<string, MutableDestinationPolicies>();
  const accept = <T extends PolicyScope>(
    kind: RoutePolicyKind,
    rows: readonly T[] | undefined,
    pick: (d: MutableDestinationPolicies) => MutableLeveled<T>,
    check: (policy: T, service: Service, route: HttpRoute | null) => string | null,
  ): void => {
    for (const policy of rows ?? []) {
      const problem = checkScope(policy, registry, routesById, routeRefusals) ?? checkKind(policy, registry, routesById, check);
      if (problem) {
        rejected.push({ kind, id: policy.id, message: `${KIND_LABEL[kind]} ${policy.id}: ${problem}` });
        continue;
      }
      let destination = byDestination.get(policy.destination);
      if (!destination) byDestination.set(policy.destination, (destination = emptyDestinationPolicies()));
      const leveled = pick(destination);
      const level = policyLevel(policy);
      if (level === "destination") leveled.destination = policy;
      else if (level === "source") leveled.bySource.set(policy.source as string, policy);
      else leveled.byRoute.set(policy.routeId as string, policy);
    }
  };
  accept("timeout_policy", policies?.timeouts, (d) => d.timeouts, checkTimeout);
  accept("retry_policy", policies?.retries, (d) => d.retries, checkRetry);
  accept("fault_policy", policies?.faults, (d) => d.faults, checkFault);
  accept("drop_policy", policies?.drops, (d) => d.drops, () => null);
  accept("rate_limit_policy", policies?.rateLimits, (d) => d.rateLimits, checkRateLimit);

  return { httpRoutes, active: { byDestination }, rejected };
}

interface MutableLeveled<T> {
  destination: T | null;
  readonly bySource: Map<string, T>;
  readonly byRoute: Map<string, T>;
}

interface MutableDestinationPolicies extends DestinationPolicies {
  readonly timeouts: MutableLeveled<TimeoutPolicy>;
  readonly retries: MutableLeveled<RetryPolicyRule>;
  readonly faults: MutableLeveled<FaultPolicy>;
  readonly drops: MutableLeveled<DropPolicy>;
  readonly rateLimits: MutableLeveled<RateLimitPolicy>;
}

function leveled<T>(): MutableLeveled<T> & Leveled<T> {
  return { destination: null, bySource: new Map(), byRoute: new Map() };
}

function emptyDestinationPolicies(): MutableDestinationPolicies {
  return { timeouts: leveled(), retries: leveled(), faults: leveled(), drops: leveled(), rateLimits: leveled() };
}

function checkScope(
  policy: PolicyScope,
  registry: RegistryState,
  routes: ReadonlyMap<string, HttpRoute>,
  routeRefusals: ReadonlyMap<string, string>,
): string | null {
  const service = registry.services.get(policy.destination);
  if (!service) return `destination service "${policy.destination}" is not in the registry`;
  if (service.protocol === "tcp") return `"${service.name}" speaks tcp; HTTP policies do not apply to it`;
  if (policy.source !== null && !registry.services.has(policy.source)) {
    return `source service "${policy.source}" is not in the registry`;
  }
  if (policy.routeId !== null && !routes.has(policy.routeId)) {
    const why = routeRefusals.get(policy.routeId);
    return why ? `its route ${policy.routeId} is refused (${why})` : `its route ${policy.routeId} is disabled`;
  }
  return null;
}

function checkKind<T extends PolicyScope>(
  policy: T,
  registry: RegistryState,
  routes: ReadonlyMap<string, HttpRoute>,
  check: (policy: T, service: Service, route: HttpRoute | null) => string | null,
): string | null {
  const service = registry.services.get(policy.destination) as Service;
  const route = policy.routeId === null ? null : (routes.get(policy.routeId) ?? null);
  return check(policy, service, route);
}

function forwards(route: HttpRoute | null): string | null {
  if (route?.extensions?.redirect) return `its route ${route.id} answers with a redirect and forwards nothing`;
  if (route?.extensions?.directResponse) return `its route ${route.id} answers with a direct response and forwards nothing`;
  return null;
}

function checkTimeout(_policy: TimeoutPolicy, _service: Service, route: HttpRoute | null): string | null {
  if (route && route.timeoutMs !== null) {
    return `route ${route.id} sets timeout_ms itself; keep the timeout in one place (clear mesh.http_routes.timeout_ms or delete this row)`;
  }
  return forwards(route);
}

function checkRetry(policy: RetryPolicyRule, service: Service, route: HttpRoute | null): string | null {
  if (route && route.retry !== null) {
    return `route ${route.id} sets retry_on/retry_attempts itself; keep the retry policy in one place (clear them on the route or delete this row)`;
  }
  const retry = policy.retry;
  const grpcCodes = retry.retryOn.filter((condition) => GRPC_RETRY_ON.includes(condition));
  if (service.protocol === "grpc") {
    if (retry.retriableStatusCodes.length > 0) {
      return `retriable_status_codes are HTTP statuses, but "${service.name}" speaks grpc and fails with gRPC statuses: use retry_on (${GRPC_RETRY_ON.join(", ")})`;
    }
    if (retry.attempts > 0 && grpcCodes.length === 0) {
      return `retry_on {${retry.retryOn.join(",")}} has no gRPC status, but "${service.name}" speaks grpc: its failures are gRPC statuses, which gRPC clients and Envoy retry only when listed (${GRPC_RETRY_ON.join(", ")})`;
    }
  } else if (grpcCodes.length > 0) {
    return `retry_on ${grpcCodes.join(", ")} ${grpcCodes.length === 1 ? "is a gRPC status" : "are gRPC statuses"}, but "${service.name}" speaks ${service.protocol}: use HTTP conditions (5xx, gateway-error, reset, connect-failure, ...) or retriable_status_codes`;
  }
  return forwards(route);
}

function checkHeaders(headers: readonly HeaderMatch[]): string | null {
  for (const header of headers) {
    if (!HEADER_NAME.test(header.name)) return `header name ${JSON.stringify(header.name)} is not a valid HTTP header name`;
    if (header.kind === "regex") {
      const problem = checkRegex(header.value ?? "");
      if (problem) return `header "${header.name}" regex is invalid: ${problem}`;
    }
  }
  return null;
}

function checkFault(policy: FaultPolicy, service: Service, route: HttpRoute | null): string | null {
  const abort = policy.abort;
  if (abort && service.protocol !== "grpc" && abort.httpStatus === null) {
    return `abort_grpc_status only applies to gRPC services, and "${service.name}" speaks ${service.protocol}: set abort_http_status`;
  }
  return checkHeaders(policy.headers) ?? forwards(route);
}

/** Exported for SnapshotBuilder's instance-only path: the one route-side check that reads instances. */
export function checkRateLimit(policy: RateLimitPolicy, service: Service): string | null {
  if (!(policy.statusCode in StatusCode)) {
    return `status_code ${policy.statusCode} is not an HTTP status Envoy can send (envoy.type.v3.StatusCode); use 429 or 503`;
  }
  if (policy.source === null && policy.routeId === null && service.instances.length > 0 && service.instances.every((i) => i.meshPort === null)) {
    return `no instance of "${service.name}" runs a sidecar (mesh_port is null), so nothing would enforce a destination-wide rate limit: give its instances a mesh_port, or narrow the limit to a source or a route (enforced by the callers' sidecars)`;
  }
  return null;
}

function checkRouteExtensions(
  route: HttpRoute,
  extensions: RouteExtensions,
  registry: RegistryState,
  acceptedSubsets: ReadonlyMap<string, unknown>,
  subsetRefusals: ReadonlyMap<string, string>,
): string | null {
  const service = registry.services.get(route.destination);
  const { redirect, directResponse } = extensions;
  const answer = redirect ? "a redirect" : directResponse ? "a direct response" : null;
  if (redirect && directResponse) return "has both a redirect and a direct response; keep one of them";
  if (answer) {
    if (service?.protocol === "grpc") {
      return `${answer} cannot answer gRPC calls, and "${route.destination}" speaks grpc; refuse calls with a drop policy (mesh.drop_policies) instead`;
    }
    if (extensions.hasDestinationRows) {
      return `has ${answer} and rows in mesh.http_route_destinations; ${answer} sends nothing upstream, so delete one or the other`;
    }
    if (extensions.prefixRewrite !== null || extensions.hostRewrite !== null) {
      return `has ${answer} and a rewrite; rewrites only apply to routes that forward requests`;
    }
    if (extensions.mirrors.length > 0) return `has ${answer} and mirrors; only routes that forward requests can mirror them`;
    if (route.timeoutMs !== null || route.retry !== null) {
      return `has ${answer} and a timeout or retry policy; those only apply to routes that forward requests`;
    }
  }
  if (route.path?.kind === "regex") {
    if (extensions.prefixRewrite !== null) {
      return "a prefix rewrite needs a prefix or exact path match, but the route matches a regex";
    }
    if (redirect?.prefix) return "a redirect prefix needs a prefix or exact path match, but the route matches a regex";
  }
  for (const mirror of extensions.mirrors) {
    const target = registry.services.get(mirror.service);
    if (!target) return `mirror service "${mirror.service}" is not in the registry`;
    if (target.protocol === "tcp") return `mirror service "${mirror.service}" speaks tcp and cannot receive HTTP requests`;
    if (mirror.subset !== null) {
      const key = subsetKey(mirror.service, mirror.subset);
      if (!acceptedSubsets.has(key)) {
        const why = subsetRefusals.get(key);
        return why ? `mirror subset "${key}" is refused: ${why}` : `mirror subset "${key}" is not defined (or disabled) in mesh.subsets`;
      }
    }
  }
  return null;
}
