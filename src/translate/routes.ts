import { createHash } from "node:crypto";
import { create } from "./create.ts";
import type { Any } from "@bufbuild/protobuf/wkt";
import { HeaderValueOption_HeaderAppendAction, HeaderValueOptionSchema } from "../gen/envoy/config/core/v3/base_pb.ts";
import {
  DirectResponseActionSchema,
  HeaderMatcherSchema,
  HedgePolicySchema,
  QueryParameterMatcherSchema,
  RedirectAction_RedirectResponseCode,
  RedirectActionSchema,
  RetryPolicySchema,
  RouteAction_MaxStreamDurationSchema,
  RouteAction_RequestMirrorPolicySchema,
  RouteActionSchema,
  RouteMatchSchema,
  RouteSchema,
  VirtualHostSchema,
  WeightedClusterSchema,
  type DirectResponseAction,
  type HeaderMatcher,
  type QueryParameterMatcher,
  type RedirectAction,
  type RetryPolicy as EnvoyRetryPolicy,
  type Route,
  type RouteAction,
  type RouteMatch,
  type VirtualHost,
} from "../gen/envoy/config/route/v3/route_components_pb.ts";
import { RouteConfigurationSchema, type RouteConfiguration } from "../gen/envoy/config/route/v3/route_pb.ts";
import { HTTPFaultSchema, type FaultAbort } from "../gen/envoy/extensions/filters/http/fault/v3/fault_pb.ts";
import { LocalRateLimitSchema } from "../gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit_pb.ts";
import { StringMatcherSchema, type StringMatcher } from "../gen/envoy/type/matcher/v3/string_pb.ts";
import {
  FractionalPercent_DenominatorType,
  FractionalPercentSchema,
  type FractionalPercent,
} from "../gen/envoy/type/v3/percent_pb.ts";
import type { Service } from "../model/registry.ts";
import {
  resolvePolicy,
  type ActiveRoutePolicies,
  type DestinationPolicies,
  type DirectResponse,
  type DropPolicy,
  type FaultPolicy,
  type HeaderEdit,
  type HeaderEditAction,
  type RateLimitPolicy,
  type Redirect,
  type RedirectCode,
  type RetrySettings,
} from "../model/route-policies.ts";
import type { HeaderMatch, HttpRoute, QueryParamMatch, RetryPolicy, StringMatchKind } from "../model/rules.ts";
import { millis, pack } from "./common.ts";
import { HTTP_FILTER, inboundCluster, outboundCluster, RATE_LIMIT_STAT_PREFIX, serviceDomains } from "./naming.ts";

function stringMatcher(kind: Exclude<StringMatchKind, "present">, value: string): StringMatcher {
  switch (kind) {
    case "exact":
      return create(StringMatcherSchema, { matchPattern: { case: "exact", value } });
    case "prefix":
      return create(StringMatcherSchema, { matchPattern: { case: "prefix", value } });
    case "suffix":
      return create(StringMatcherSchema, { matchPattern: { case: "suffix", value } });
    case "regex":
      return create(StringMatcherSchema, { matchPattern: { case: "safeRegex", value: { regex: value } } });
  }
}

/**
 * Which header-matcher fields to write. Envoy prefers `string_match`; gRPC
 * C-core before 1.55 refuses a route that uses it, and every gRPC version still
 * reads the older per-kind fields, so proxyless clients get those.
 */
export type MatcherDialect = "envoy" | "grpc";

function headerMatcher(match: HeaderMatch, dialect: MatcherDialect): HeaderMatcher {
  const base = { name: match.name, invertMatch: match.invert };
  if (match.kind === "present") {
    return create(HeaderMatcherSchema, { ...base, headerMatchSpecifier: { case: "presentMatch", value: true } });
  }
  const value = match.value ?? "";
  if (dialect === "envoy") {
    return create(HeaderMatcherSchema, {
      ...base,
      headerMatchSpecifier: { case: "stringMatch", value: stringMatcher(match.kind, value) },
    });
  }
  switch (match.kind) {
    case "exact":
      return create(HeaderMatcherSchema, { ...base, headerMatchSpecifier: { case: "exactMatch", value } });
    case "prefix":
      return create(HeaderMatcherSchema, { ...base, headerMatchSpecifier: { case: "prefixMatch", value } });
    case "suffix":
      return create(HeaderMatcherSchema, { ...base, headerMatchSpecifier: { case: "suffixMatch", value } });
    case "regex":
      return create(HeaderMatcherSchema, { ...base, headerMatchSpecifier: { case: "safeRegexMatch", value: { regex: value } } });
  }
}

function queryMatcher(match: QueryParamMatch): QueryParameterMatcher {
  return create(QueryParameterMatcherSchema, {
    name: match.name,
    queryParameterMatchSpecifier:
      match.kind === "present"
        ? { case: "presentMatch", value: true }
        : { case: "stringMatch", value: stringMatcher(match.kind, match.value ?? "") },
  });
}

function routeMatch(route: HttpRoute, dialect: MatcherDialect): RouteMatch {
  const headers = route.headers.map((header) => headerMatcher(header, dialect));
  if (route.method) {
    headers.unshift(headerMatcher({ name: ":method", kind: "exact", value: route.method, invert: false }, dialect));
  }
  const path = route.path;
  return create(RouteMatchSchema, {
    pathSpecifier:
      path === null
        ? { case: "prefix", value: "/" }
        : path.kind === "prefix"
          ? { case: "prefix", value: path.value }
          : path.kind === "exact"
            ? { case: "path", value: path.value }
            : { case: "safeRegex", value: { regex: path.value } },
    headers,
    queryParameters: route.queryParams.map(queryMatcher),
  });
}

/** Envoy's FractionalPercent for a percentage with up to four decimals. */
export function fractionalPercent(percent: number): FractionalPercent {
  if (Number.isInteger(percent)) {
    return create(FractionalPercentSchema, { numerator: percent, denominator: FractionalPercent_DenominatorType.HUNDRED });
  }
  return create(FractionalPercentSchema, {
    numerator: Math.round(percent * 10_000),
    denominator: FractionalPercent_DenominatorType.MILLION,
  });
}

function retryPolicy(retry: RetrySettings): EnvoyRetryPolicy {
  const retryOn = [...retry.retryOn];
  if (retry.retriableStatusCodes.length > 0) retryOn.push("retriable-status-codes");
  return create(RetryPolicySchema, {
    retryOn: retryOn.join(","),
    numRetries: retry.attempts,
    perTryTimeout: retry.perTryTimeoutMs === null ? undefined : millis(retry.perTryTimeoutMs),
    retriableStatusCodes: [...retry.retriableStatusCodes],
    retryBackOff: retry.backoff
      ? {
          baseInterval: millis(retry.backoff.baseMs),
          maxInterval: retry.backoff.maxMs === null ? undefined : millis(retry.backoff.maxMs),
        }
      : undefined,
  });
}

/** The inline retry columns of mesh.http_routes, as a full retry policy. */
function inlineRetry(retry: RetryPolicy): RetrySettings {
  return { ...retry, retriableStatusCodes: [], backoff: null, hedgeOnPerTryTimeout: false };
}

/** Who is calling which service, in which dialect, under which policies: what every route of a virtual host shares. */
interface VirtualHostContext {
  readonly service: Service;
  readonly source: string;
  readonly dialect: MatcherDialect;
  readonly policies: DestinationPolicies | undefined;
}

interface EffectiveTimeout {
  readonly timeoutMs: number | null;
  readonly propagate: boolean;
}

/** The policies in force on one route for one caller: the most specific row of each kind. */
interface EffectivePolicies {
  readonly timeout: EffectiveTimeout | null;
  readonly retry: RetrySettings | null;
  readonly fault: FaultPolicy | null;
  readonly drop: DropPolicy | null;
  /** Source- or route-specific only: a destination-wide limit is enforced by the destination's own sidecars. */
  readonly rateLimit: RateLimitPolicy | null;
}

/**
 * Precedence, per kind: route-specific (the route's own timeout/retry columns, or
 * a policy row with its route_id) > source-specific > destination-wide. `route`
 * is null for the default route, which only sees source and destination rows.
 */
function effectivePolicies(ctx: VirtualHostContext, route: HttpRoute | null): EffectivePolicies {
  const routeId = route?.id ?? null;
  const policies = ctx.policies;
  const timeout: EffectiveTimeout | null =
    route && route.timeoutMs !== null
      ? { timeoutMs: route.timeoutMs, propagate: false }
      : resolvePolicy(policies?.timeouts, ctx.source, routeId);
  const retry = route?.retry ? inlineRetry(route.retry) : (resolvePolicy(policies?.retries, ctx.source, routeId)?.retry ?? null);
  const limits = policies?.rateLimits;
  const rateLimit = (routeId !== null ? limits?.byRoute.get(routeId) : undefined) ?? limits?.bySource.get(ctx.source) ?? null;
  return {
    timeout,
    retry,
    fault: resolvePolicy(policies?.faults, ctx.source, routeId),
    drop: resolvePolicy(policies?.drops, ctx.source, routeId),
    rateLimit,
  };
}

function hasFault(fault: FaultPolicy | null): fault is FaultPolicy {
  return fault !== null && (fault.delay !== null || fault.abort !== null);
}

/**
 * An abort answers gRPC services with a gRPC status and HTTP services with an
 * HTTP status. (gRPC clients map an HTTP status to a gRPC one, so a gRPC service
 * with only an HTTP status still works.)
 */
function abortStatus(service: Service, httpStatus: number | null, grpcStatus: number | null): FaultAbort["errorType"] {
  if (service.protocol === "grpc" && grpcStatus !== null) return { case: "grpcStatus", value: grpcStatus };
  return { case: "httpStatus", value: httpStatus ?? 503 };
}

/** The fault filter's per-route config; `headers` are left to the route match for gRPC clients (see routesFor). */
function faultConfig(ctx: VirtualHostContext, fault: FaultPolicy, withHeaders: boolean): Any {
  const config = create(HTTPFaultSchema, {
    delay: fault.delay
      ? { faultDelaySecifier: { case: "fixedDelay", value: millis(fault.delay.ms) }, percentage: fractionalPercent(fault.delay.percent) }
      : undefined,
    abort: fault.abort
      ? {
          errorType: abortStatus(ctx.service, fault.abort.httpStatus, fault.abort.grpcStatus),
          percentage: fractionalPercent(fault.abort.percent),
        }
      : undefined,
    headers: withHeaders ? fault.headers.map((header) => headerMatcher(header, ctx.dialect)) : [],
  });
  return pack(HTTPFaultSchema, config);
}

function dropConfig(ctx: VirtualHostContext, drop: DropPolicy): Any {
  return pack(
    HTTPFaultSchema,
    create(HTTPFaultSchema, {
      abort: { errorType: abortStatus(ctx.service, drop.httpStatus, drop.grpcStatus), percentage: fractionalPercent(drop.percent) },
    }),
  );
}

const ALWAYS = { defaultValue: fractionalPercent(100) };

/** A local rate limit that is enabled and enforced for every request of the route. */
export function rateLimitConfig(limit: RateLimitPolicy): Any {
  return pack(
    LocalRateLimitSchema,
    create(LocalRateLimitSchema, {
      statPrefix: RATE_LIMIT_STAT_PREFIX,
      status: { code: limit.statusCode },
      tokenBucket: {
        maxTokens: limit.maxTokens,
        tokensPerFill: limit.tokensPerFill,
        fillInterval: millis(limit.fillIntervalMs),
      },
      filterEnabled: { ...ALWAYS, runtimeKey: `${RATE_LIMIT_STAT_PREFIX}_enabled` },
      filterEnforced: { ...ALWAYS, runtimeKey: `${RATE_LIMIT_STAT_PREFIX}_enforced` },
    }),
  );
}

/**
 * Per-route configs of the caller-side filters. Fault and drop work for Envoy and
 * gRPC clients alike (gRFC A33); rate limits only exist in Envoy. A kind with no
 * effective row (or a row that injects nothing) leaves the filter's empty
 * listener-level config in force, which does nothing.
 */
function perFilterConfig(ctx: VirtualHostContext, effective: EffectivePolicies, faultHeaders: boolean): Record<string, Any> {
  const configs: Record<string, Any> = {};
  if (effective.drop && effective.drop.percent > 0) configs[HTTP_FILTER.drop] = dropConfig(ctx, effective.drop);
  if (effective.rateLimit && ctx.dialect === "envoy") configs[HTTP_FILTER.rateLimit] = rateLimitConfig(effective.rateLimit);
  if (hasFault(effective.fault)) configs[HTTP_FILTER.fault] = faultConfig(ctx, effective.fault, faultHeaders);
  return configs;
}

/**
 * Where a forwarding route sends traffic, with its timeout and retry policy.
 * The timeout is set both as Envoy's route timeout and as max_stream_duration,
 * which is where proxyless gRPC reads its deadline from; propagation adds
 * grpc_timeout_header_max, so the caller's own deadline (grpc-timeout) applies,
 * capped by the timeout.
 */
function routeAction(ctx: VirtualHostContext, route: HttpRoute | null, effective: EffectivePolicies): RouteAction {
  const live = route ? route.destinations.filter((destination) => destination.weight > 0) : [];
  const action = create(RouteActionSchema, {
    clusterSpecifier:
      route === null
        ? { case: "cluster", value: outboundCluster(ctx.service.name) }
        : live.length === 1 && live[0]
          ? { case: "cluster", value: outboundCluster(live[0].service, live[0].subset) }
          : {
              case: "weightedClusters",
              value: create(WeightedClusterSchema, {
                clusters: live.map((destination) => ({
                  name: outboundCluster(destination.service, destination.subset),
                  weight: destination.weight,
                })),
                // gRPC C-core before 1.55 refuses weights that do not add up to
                // total_weight (100 when unset); Envoy deprecated the field, so
                // only proxyless clients get it.
                totalWeight: ctx.dialect === "grpc" ? live.reduce((sum, d) => sum + d.weight, 0) : undefined,
              }),
            },
  });
  const timeout = effective.timeout;
  if (timeout) {
    const duration = create(RouteAction_MaxStreamDurationSchema);
    if (timeout.timeoutMs !== null) {
      action.timeout = millis(timeout.timeoutMs);
      duration.maxStreamDuration = millis(timeout.timeoutMs);
    } else {
      // Propagation only: the caller's deadline decides, not Envoy's 15 s default.
      action.timeout = millis(0);
    }
    if (timeout.propagate) duration.grpcTimeoutHeaderMax = millis(timeout.timeoutMs ?? 0);
    action.maxStreamDuration = duration;
  }
  const retry = effective.retry;
  // gRPC clients refuse num_retries 0 (the whole route configuration); no policy means the same.
  if (retry && !(ctx.dialect === "grpc" && retry.attempts === 0)) {
    action.retryPolicy = retryPolicy(retry);
    if (retry.hedgeOnPerTryTimeout && ctx.dialect === "envoy") {
      action.hedgePolicy = create(HedgePolicySchema, { hedgeOnPerTryTimeout: true });
    }
  }
  const extensions = route?.extensions;
  if (extensions && ctx.dialect === "envoy") {
    if (extensions.prefixRewrite !== null) action.prefixRewrite = extensions.prefixRewrite;
    if (extensions.hostRewrite !== null) action.hostRewriteSpecifier = { case: "hostRewriteLiteral", value: extensions.hostRewrite };
    action.requestMirrorPolicies = extensions.mirrors.map((mirror) =>
      create(RouteAction_RequestMirrorPolicySchema, {
        cluster: outboundCluster(mirror.service, mirror.subset),
        runtimeFraction: { defaultValue: fractionalPercent(mirror.percent) },
      }),
    );
  }
  return action;
}

const APPEND_ACTION: Record<Exclude<HeaderEditAction, "remove">, HeaderValueOption_HeaderAppendAction> = {
  set: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
  append: HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD,
  add_if_absent: HeaderValueOption_HeaderAppendAction.ADD_IF_ABSENT,
};

/** Header edits (Envoy only: gRPC clients do not edit headers from xDS). */
type HeaderEditFields = Pick<Route, "requestHeadersToAdd" | "requestHeadersToRemove" | "responseHeadersToAdd" | "responseHeadersToRemove">;

function headerEdits(edits: readonly HeaderEdit[]): HeaderEditFields {
  const add = (direction: HeaderEdit["direction"]) =>
    edits
      .filter((edit) => edit.direction === direction && edit.action !== "remove")
      .map((edit) =>
        create(HeaderValueOptionSchema, {
          header: { key: edit.name, value: edit.value ?? "" },
          appendAction: APPEND_ACTION[edit.action as Exclude<HeaderEditAction, "remove">],
        }),
      );
  const remove = (direction: HeaderEdit["direction"]) =>
    edits.filter((edit) => edit.direction === direction && edit.action === "remove").map((edit) => edit.name);
  return {
    requestHeadersToAdd: add("request"),
    requestHeadersToRemove: remove("request"),
    responseHeadersToAdd: add("response"),
    responseHeadersToRemove: remove("response"),
  };
}

const REDIRECT_CODE: Record<RedirectCode, RedirectAction_RedirectResponseCode> = {
  301: RedirectAction_RedirectResponseCode.MOVED_PERMANENTLY,
  302: RedirectAction_RedirectResponseCode.FOUND,
  303: RedirectAction_RedirectResponseCode.SEE_OTHER,
  307: RedirectAction_RedirectResponseCode.TEMPORARY_REDIRECT,
  308: RedirectAction_RedirectResponseCode.PERMANENT_REDIRECT,
};

function redirectAction(redirect: Redirect): RedirectAction {
  return create(RedirectActionSchema, {
    schemeRewriteSpecifier: redirect.scheme === null ? { case: undefined } : { case: "schemeRedirect", value: redirect.scheme },
    hostRedirect: redirect.host ?? "",
    portRedirect: redirect.port ?? 0,
    pathRewriteSpecifier:
      redirect.path !== null
        ? { case: "pathRedirect", value: redirect.path }
        : redirect.prefix !== null
          ? { case: "prefixRewrite", value: redirect.prefix }
          : { case: undefined },
    responseCode: REDIRECT_CODE[redirect.responseCode],
    stripQuery: redirect.stripQuery,
  });
}

function directResponseAction(direct: DirectResponse): DirectResponseAction {
  return create(DirectResponseActionSchema, {
    status: direct.status,
    body: direct.body === null ? undefined : { specifier: { case: "inlineString", value: direct.body } },
  });
}

/** What a route does: forward (the usual), redirect, or answer directly. */
function action(ctx: VirtualHostContext, route: HttpRoute | null, effective: EffectivePolicies): Route["action"] {
  const extensions = route?.extensions;
  if (extensions?.redirect) return { case: "redirect", value: redirectAction(extensions.redirect) };
  if (extensions?.directResponse) return { case: "directResponse", value: directResponseAction(extensions.directResponse) };
  return { case: "route", value: routeAction(ctx, route, effective) };
}

/**
 * gRPC clients get the route name suffixed with a digest of its per-filter
 * configs. grpc-js-xds 1.14 decides whether a new RouteConfiguration differs
 * from its cached one by walking only the cached one's fields, so an entry added
 * to a map (typed_per_filter_config: {} -> {fault}) or bytes appended to an Any
 * go unnoticed and the update is dropped after being ACKed. A changed name is
 * always noticed. (Envoy compares whole resources and gets plain names.)
 */
function withConfigDigest(name: string, configs: Record<string, Any>): string {
  const keys = Object.keys(configs);
  if (keys.length === 0) return name;
  const hash = createHash("sha256");
  for (const key of keys.sort()) {
    const config = configs[key] as Any;
    hash.update(key).update("\u0000").update(config.typeUrl).update("\u0000").update(config.value).update("\u0000");
  }
  return `${name}#${hash.digest("hex").slice(0, 12)}`;
}

/**
 * The Envoy routes for one rule route (or, with `route` null, the default route).
 * Usually one. None for gRPC clients when the route redirects or answers
 * directly: gRPC cannot follow those and refuses a route configuration that has
 * them (rule checks refuse them for gRPC services, so only HTTP services'
 * proxyless views lose them). Two for gRPC clients when the fault is limited to
 * header-marked requests: gRPC clients ignore HTTPFault.headers, so the marked
 * requests get a route of their own (the same match plus those headers) that
 * carries the fault, in front of the unmarked one.
 */
function routesFor(ctx: VirtualHostContext, route: HttpRoute | null): Route[] {
  const extensions = route?.extensions;
  if (ctx.dialect === "grpc" && (extensions?.redirect || extensions?.directResponse)) return [];
  const effective = effectivePolicies(ctx, route);
  const name = route ? `http-route-${route.id}` : "default";
  const match = route ? routeMatch(route, ctx.dialect) : create(RouteMatchSchema, { pathSpecifier: { case: "prefix", value: "/" } });
  const edits: Partial<HeaderEditFields> = extensions && ctx.dialect === "envoy" ? headerEdits(extensions.headerEdits) : {};
  const build = (routeName: string, routeMatch: RouteMatch, policies: EffectivePolicies, faultHeaders: boolean) => {
    const configs = perFilterConfig(ctx, policies, faultHeaders);
    return create(RouteSchema, {
      name: ctx.dialect === "grpc" ? withConfigDigest(routeName, configs) : routeName,
      match: routeMatch,
      action: action(ctx, route, policies),
      typedPerFilterConfig: configs,
      ...edits,
    });
  };
  const fault = effective.fault;
  if (ctx.dialect === "grpc" && hasFault(fault) && fault.headers.length > 0) {
    const marked = create(RouteMatchSchema, {
      ...match,
      headers: [...match.headers, ...fault.headers.map((header) => headerMatcher(header, ctx.dialect))],
    });
    return [build(`${name}/fault`, marked, effective, false), build(name, match, { ...effective, fault: null }, false)];
  }
  return [build(name, match, effective, true)];
}

/**
 * The virtual host for calls to `service`, with the rules that apply to callers
 * from `source` and the policies (route-policies.ts) in force for them.
 */
export function serviceVirtualHost(
  service: Service,
  rules: readonly HttpRoute[],
  source: string,
  dialect: MatcherDialect,
  policies?: ActiveRoutePolicies,
): VirtualHost {
  const ctx: VirtualHostContext = { service, source, dialect, policies: policies?.byDestination.get(service.name) };
  const applicable = rules.filter((rule) => rule.source === null || rule.source === source);
  return create(VirtualHostSchema, {
    name: service.name,
    domains: serviceDomains(service.name, service.port),
    routes: [...applicable.flatMap((rule) => routesFor(ctx, rule)), ...routesFor(ctx, null)],
  });
}

export function routeConfiguration(name: string, virtualHosts: VirtualHost[]): RouteConfiguration {
  return create(RouteConfigurationSchema, { name, virtualHosts });
}

/**
 * Inbound: everything that reached the sidecar goes to the local app, through
 * the service's destination-wide rate limit (a token bucket per instance).
 */
export function inboundVirtualHost(service: Service, appPort: number, policies?: ActiveRoutePolicies): VirtualHost {
  return inboundVirtualHostWith(appPort, inboundRateLimit(service.name, policies));
}

/** The inbound virtual host of a service without a destination rate limit: the same for every such service. */
export function plainInboundVirtualHost(appPort: number): VirtualHost {
  return inboundVirtualHostWith(appPort, null);
}

function inboundVirtualHostWith(appPort: number, limit: RateLimitPolicy | null): VirtualHost {
  return create(VirtualHostSchema, {
    name: "inbound",
    domains: ["*"],
    routes: [
      create(RouteSchema, {
        name: "default",
        match: { pathSpecifier: { case: "prefix", value: "/" } },
        action: { case: "route", value: { clusterSpecifier: { case: "cluster", value: inboundCluster(appPort) } } },
        typedPerFilterConfig: limit ? { [HTTP_FILTER.rateLimit]: rateLimitConfig(limit) } : {},
      }),
    ],
  });
}

/** The destination-wide rate limit of `service`, enforced on its inbound route; null when none. */
export function inboundRateLimit(service: string, policies?: ActiveRoutePolicies): RateLimitPolicy | null {
  return policies?.byDestination.get(service)?.rateLimits.destination ?? null;
}

/** Whether the inbound router of `service` honours x-envoy-expected-rq-timeout-ms (its destination-wide timeout policy propagates). */
export function respectsExpectedTimeout(service: string, policies?: ActiveRoutePolicies): boolean {
  return policies?.byDestination.get(service)?.timeouts.destination?.propagate ?? false;
}
