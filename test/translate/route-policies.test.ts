import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { HTTPFaultSchema } from "../../src/gen/envoy/extensions/filters/http/fault/v3/fault_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import type { Instance, RegistryState } from "../../src/model/registry.ts";
import type { FaultPolicy, RoutePolicies } from "../../src/model/route-policies.ts";
import type { HttpRoute, RuleSet } from "../../src/model/rules.ts";
import type { Route } from "../../src/gen/envoy/config/route/v3/route_components_pb.ts";
import type { RouteConfiguration } from "../../src/gen/envoy/config/route/v3/route_pb.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { SnapshotBuilder } from "../../src/translate/incremental-snapshot.ts";
import { HTTP_FILTER } from "../../src/translate/naming.ts";
import { translate } from "../../src/translate/translate.ts";

/**
 * Pure checks of route-policy precedence and of the per-dialect choices in
 * routes.ts (the golden scenario "route-policies" shows the full output).
 */
function instance(id: string, service: string, meshPort: number | null): Instance {
  return { id, service, address: "10.0.0.1", port: 8080, meshPort, labels: {}, region: "", zone: "", weight: 1, health: "healthy" };
}

function registry(meshPort: number | null = 15006): RegistryState {
  return {
    services: new Map([
      ["api", { name: "api", protocol: "grpc", port: 9090, instances: [instance("api-1", "api", meshPort)] }],
      ["web", { name: "web", protocol: "http", port: 80, instances: [instance("web-1", "web", 15006)] }],
    ]),
  };
}

const none: RoutePolicies = { timeouts: [], retries: [], faults: [], drops: [], rateLimits: [], routeExtensions: [] };

const route = (id: string, headers: HttpRoute["headers"] = []): HttpRoute => ({
  id,
  destination: "api",
  source: null,
  priority: 0,
  path: null,
  method: null,
  headers,
  queryParams: [],
  destinations: [{ service: "api", subset: null, weight: 100 }],
  timeoutMs: null,
  retry: null,
});

const fault = (id: string, scope: { source?: string; routeId?: string }, grpcStatus: number | null, headers: FaultPolicy["headers"] = []): FaultPolicy => ({
  id,
  destination: "api",
  source: scope.source ?? null,
  routeId: scope.routeId ?? null,
  delay: null,
  abort: grpcStatus === null ? null : { httpStatus: null, grpcStatus, percent: 100 },
  headers,
});

const proxy = (kind: Proxy["kind"], service = "web"): Proxy => ({
  id: `${service}-${kind}`,
  service,
  kind,
  inboundPort: kind === "envoy" ? 15006 : null,
  appPort: kind === "envoy" ? 8080 : null,
  outboundPort: 15001,
  userAgent: kind,
});

function apiRoutes(rules: RuleSet, caller: Proxy): Route[] {
  const resources = translate(buildSnapshot(registry(), rules), caller);
  const config = resources.route.get(caller.kind === "envoy" ? "outbound|http" : "api") as RouteConfiguration;
  return config.virtualHosts.find((vhost) => vhost.name === "api")?.routes ?? [];
}

/** The gRPC status a route's fault config aborts with, if any. */
function abortOf(r: Route | undefined): number | undefined {
  const any = r?.typedPerFilterConfig[HTTP_FILTER.fault];
  const config = any ? anyUnpack(any, HTTPFaultSchema) : undefined;
  return config?.abort?.errorType.case === "grpcStatus" ? config.abort.errorType.value : undefined;
}

describe("route policy precedence", () => {
  const rules = (faults: FaultPolicy[], routes: HttpRoute[] = []): RuleSet => ({
    subsets: [],
    httpRoutes: routes,
    rejected: [],
    routePolicies: { ...none, faults },
  });

  it("destination-wide applies to every caller and route", () => {
    const routes = apiRoutes(rules([fault("1", {}, 10)], [route("7")]), proxy("envoy"));
    expect(routes.map(abortOf)).toEqual([10, 10]);
  });

  it("source-specific beats destination-wide, for that caller only", () => {
    const set = rules([fault("1", {}, 10), fault("2", { source: "web" }, 11)]);
    expect(apiRoutes(set, proxy("envoy", "web")).map(abortOf)).toEqual([11]);
    expect(apiRoutes(set, proxy("envoy", "api")).map(abortOf)).toEqual([10]);
  });

  it("route-specific beats both, on its route only; a row without a fault switches faults off", () => {
    const set = rules([fault("1", {}, 10), fault("2", { source: "web" }, null), fault("3", { routeId: "7" }, 12)], [route("7")]);
    expect(apiRoutes(set, proxy("envoy")).map(abortOf)).toEqual([12, undefined]);
  });

  it("gRPC clients get header-marked faults as a route of their own; Envoy gets HTTPFault.headers", () => {
    const marked = fault("1", {}, 10, [{ name: "x-chaos", kind: "exact", value: "on", invert: false }]);
    const grpc = apiRoutes(rules([marked]), proxy("grpc"));
    expect(grpc.map((r) => [r.name.replace(/#.*/, ""), r.match?.headers.map((h) => h.name), abortOf(r)])).toEqual([
      ["default/fault", ["x-chaos"], 10],
      ["default", [], undefined],
    ]);
    const envoy = apiRoutes(rules([marked]), proxy("envoy"));
    expect(envoy.map((r) => [r.name, r.match?.headers.length, abortOf(r)])).toEqual([["default", 0, 10]]);
  });

  it("gRPC route names carry a digest of their filter configs, so any change renames the route", () => {
    const names = [10, 11].map((status) => apiRoutes(rules([fault("1", {}, status)]), proxy("grpc"))[0]?.name);
    expect(names[0]).toMatch(/^default#[0-9a-f]{12}$/);
    expect(names[1]).toMatch(/^default#[0-9a-f]{12}$/);
    expect(names[0]).not.toBe(names[1]);
    expect(apiRoutes(rules([]), proxy("grpc"))[0]?.name).toBe("default");
  });

  it("num_retries 0 is no retry policy for gRPC clients (they refuse 0) and an explicit 0 for Envoy", () => {
    const set: RuleSet = {
      subsets: [],
      httpRoutes: [],
      rejected: [],
      routePolicies: {
        ...none,
        retries: [
          {
            id: "1",
            destination: "api",
            source: null,
            routeId: null,
            retry: { retryOn: [], attempts: 0, perTryTimeoutMs: null, retriableStatusCodes: [], backoff: null, hedgeOnPerTryTimeout: false },
          },
        ],
      },
    };
    const action = (r: Route | undefined) => (r?.action.case === "route" ? r.action.value : undefined);
    expect(action(apiRoutes(set, proxy("grpc"))[0])?.retryPolicy).toBeUndefined();
    expect(action(apiRoutes(set, proxy("envoy"))[0])?.retryPolicy?.numRetries).toBe(0);
  });
});

describe("the instance-only fast path of SnapshotBuilder", () => {
  it("re-checks a destination-wide rate limit when instances gain or lose their sidecar", () => {
    const rules: RuleSet = {
      subsets: [],
      httpRoutes: [],
      rejected: [],
      routePolicies: {
        ...none,
        rateLimits: [{ id: "1", destination: "api", source: null, routeId: null, maxTokens: 5, tokensPerFill: 5, fillIntervalMs: 1000, statusCode: 429 }],
      },
    };
    const builder = new SnapshotBuilder();
    const without = builder.build(registry(null), rules);
    expect(without.rejected.map((r) => r.kind)).toEqual(["rate_limit_policy"]);
    const withSidecar = builder.build(registry(15006), rules);
    expect(withSidecar.rejected).toEqual([]);
    expect(withSidecar.routePolicies?.byDestination.get("api")?.rateLimits.destination?.id).toBe("1");
    const again = builder.build(registry(null), rules);
    expect(again.rejected.map((r) => r.kind)).toEqual(["rate_limit_policy"]);
  });
});
