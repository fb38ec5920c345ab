import { create } from "@bufbuild/protobuf";
import {
  HeaderMatcherSchema,
  QueryParameterMatcherSchema,
  RetryPolicySchema,
  RouteAction_MaxStreamDurationSchema,
  RouteActionSchema,
  RouteMatchSchema,
  RouteSchema,
  VirtualHostSchema,
  WeightedClusterSchema,
  type HeaderMatcher,
  type QueryParameterMatcher,
  type RetryPolicy as EnvoyRetryPolicy,
  type Route,
  type RouteAction,
  type RouteMatch,
  type VirtualHost,
} from "../gen/envoy/config/route/v3/route_components_pb.ts";
import { RouteConfigurationSchema, type RouteConfiguration } from "../gen/envoy/config/route/v3/route_pb.ts";
import { StringMatcherSchema, type StringMatcher } from "../gen/envoy/type/matcher/v3/string_pb.ts";
import type { Service } from "../model/registry.ts";
import type { HeaderMatch, HttpRoute, QueryParamMatch, RetryPolicy, StringMatchKind } from "../model/rules.ts";
import { millis } from "./common.ts";
import { inboundCluster, outboundCluster, serviceDomains } from "./naming.ts";

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

function retryPolicy(retry: RetryPolicy): EnvoyRetryPolicy {
  return create(RetryPolicySchema, {
    retryOn: retry.retryOn.join(","),
    numRetries: retry.attempts,
    perTryTimeout: retry.perTryTimeoutMs === null ? undefined : millis(retry.perTryTimeoutMs),
  });
}

/**
 * The action of a rule route. The timeout is set both as Envoy's route timeout and
 * as max_stream_duration, which is where proxyless gRPC reads its deadline from.
 */
function routeAction(route: HttpRoute): RouteAction {
  const live = route.destinations.filter((destination) => destination.weight > 0);
  const action = create(RouteActionSchema, {
    clusterSpecifier:
      live.length === 1 && live[0]
        ? { case: "cluster", value: outboundCluster(live[0].service, live[0].subset) }
        : {
            case: "weightedClusters",
            value: create(WeightedClusterSchema, {
              clusters: live.map((destination) => ({
                name: outboundCluster(destination.service, destination.subset),
                weight: destination.weight,
              })),
            }),
          },
  });
  if (route.timeoutMs !== null) {
    action.timeout = millis(route.timeoutMs);
    action.maxStreamDuration = create(RouteAction_MaxStreamDurationSchema, { maxStreamDuration: millis(route.timeoutMs) });
  }
  if (route.retry) action.retryPolicy = retryPolicy(route.retry);
  return action;
}

function ruleRoute(route: HttpRoute, dialect: MatcherDialect): Route {
  return create(RouteSchema, {
    name: `http-route-${route.id}`,
    match: routeMatch(route, dialect),
    action: { case: "route", value: routeAction(route) },
  });
}

/** Last in every virtual host: anything no rule matched goes to the whole service. */
function defaultRoute(clusterName: string): Route {
  return create(RouteSchema, {
    name: "default",
    match: { pathSpecifier: { case: "prefix", value: "/" } },
    action: { case: "route", value: { clusterSpecifier: { case: "cluster", value: clusterName } } },
  });
}

/** The virtual host for calls to `service`, with the rules that apply to callers from `source`. */
export function serviceVirtualHost(
  service: Service,
  rules: readonly HttpRoute[],
  source: string,
  dialect: MatcherDialect,
): VirtualHost {
  const applicable = rules.filter((rule) => rule.source === null || rule.source === source);
  return create(VirtualHostSchema, {
    name: service.name,
    domains: serviceDomains(service.name, service.port),
    routes: [...applicable.map((rule) => ruleRoute(rule, dialect)), defaultRoute(outboundCluster(service.name))],
  });
}

export function routeConfiguration(name: string, virtualHosts: VirtualHost[]): RouteConfiguration {
  return create(RouteConfigurationSchema, { name, virtualHosts });
}

/** Inbound: everything that reached the sidecar goes to the local app. */
export function inboundVirtualHost(service: Service): VirtualHost {
  return create(VirtualHostSchema, {
    name: "inbound",
    domains: ["*"],
    routes: [defaultRoute(inboundCluster(service.name))],
  });
}
