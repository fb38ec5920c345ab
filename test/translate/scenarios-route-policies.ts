import type { Proxy } from "../../src/model/proxy.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import type { PolicyScope, RouteExtensions, RoutePolicies } from "../../src/model/route-policies.ts";
import type { HttpRoute, RuleSet } from "../../src/model/rules.ts";
import { instance, route, service, sidecar } from "./builders.ts";

/**
 * Golden scenario "route-policies": every route-side rule kind of
 * docs/rules-route.md, reviewed against Envoy's documentation:
 *
 * - web (HTTP): a 1%/99% canary; a redirect; a direct response; a route with a
 *   prefix and host rewrite, header edits and a 10% mirror to "shadow";
 * - checkout (gRPC): timeouts, retries with backoff and hedging, faults (one for
 *   header-marked requests only), a kill switch, rate limits, at every level of
 *   precedence (destination < source "frontend" < route).
 *
 * Views: frontend's sidecar and a proxyless frontend (the caller side), web's
 * and checkout's sidecars (the inbound side: destination-wide rate limit,
 * timeout propagation).
 */




function extensions(partial: Partial<RouteExtensions> & Pick<RouteExtensions, "routeId">): RouteExtensions {
  return {
    prefixRewrite: null,
    hostRewrite: null,
    headerEdits: [],
    redirect: null,
    directResponse: null,
    mirrors: [],
    hasDestinationRows: false,
    ...partial,
  };
}

function scope(id: string, destination: string, level: { source?: string; routeId?: string } = {}): PolicyScope {
  return { id, destination, source: level.source ?? null, routeId: level.routeId ?? null };
}

const registry: RegistryState = {
  services: new Map([
    [
      "checkout",
      service("checkout", "grpc", 9090, [
        instance({ id: "checkout-1", service: "checkout", address: "10.0.0.11", port: 9090, meshPort: 15006, labels: { version: "v1" } }),
        instance({ id: "checkout-2", service: "checkout", address: "10.0.0.12", port: 9090, meshPort: 15006, labels: { version: "v2" } }),
      ]),
    ],
    [
      "frontend",
      service("frontend", "http", 80, [instance({ id: "frontend-1", service: "frontend", address: "10.0.0.21", port: 8080, meshPort: 15006 })]),
    ],
    ["shadow", service("shadow", "http", 8080, [instance({ id: "shadow-1", service: "shadow", address: "10.0.0.41", port: 8080 })])],
    [
      "web",
      service("web", "http", 8080, [
        instance({ id: "web-1", service: "web", address: "10.0.0.31", port: 8080, meshPort: 15006, labels: { version: "v1" } }),
        instance({ id: "web-2", service: "web", address: "10.0.0.32", port: 8080, meshPort: 15006, labels: { version: "v2" } }),
      ]),
    ],
  ]),
};

const httpRoutes: HttpRoute[] = [
  // Canary: 1% of web's traffic to v2.
  route({
    id: "10",
    destination: "web",
    priority: 100,
    destinations: [
      { service: "web", subset: "v1", weight: 99 },
      { service: "web", subset: "v2", weight: 1 },
    ],
  }),
  route({ id: "11", destination: "web", priority: 10, path: { kind: "prefix", value: "/old/" } }),
  route({ id: "12", destination: "web", priority: 10, path: { kind: "exact", value: "/healthz" }, method: "GET" }),
  route({ id: "13", destination: "web", priority: 20, path: { kind: "prefix", value: "/api/" } }),
  route({
    id: "14",
    destination: "checkout",
    priority: 10,
    headers: [{ name: "x-canary", kind: "present", invert: false }],
    destinations: [{ service: "checkout", subset: "v2", weight: 100 }],
  }),
  route({ id: "15", destination: "checkout", source: "frontend", priority: 20, path: { kind: "prefix", value: "/shop.Admin/" } }),
];

const routePolicies: RoutePolicies = {
  routeExtensions: [
    extensions({ routeId: "10", hasDestinationRows: true }),
    extensions({
      routeId: "11",
      redirect: { scheme: "https", host: "www.example.com", port: null, path: null, prefix: "/new/", responseCode: 308, stripQuery: false },
    }),
    extensions({
      routeId: "12",
      directResponse: { status: 200, body: "ok\n" },
      headerEdits: [{ direction: "response", action: "set", name: "cache-control", value: "no-store" }],
    }),
    extensions({
      routeId: "13",
      prefixRewrite: "/v2/api/",
      hostRewrite: "api.internal",
      headerEdits: [
        { direction: "request", action: "set", name: "x-mesh", value: "signalbox" },
        { direction: "request", action: "append", name: "x-forwarded-tags", value: "api" },
        { direction: "request", action: "add_if_absent", name: "x-request-class", value: "standard" },
        { direction: "request", action: "remove", name: "x-debug", value: null },
        { direction: "response", action: "set", name: "x-served-by", value: "web" },
        { direction: "response", action: "remove", name: "x-powered-by", value: null },
      ],
      mirrors: [{ service: "shadow", subset: null, percent: 10 }],
    }),
  ],
  timeouts: [
    { ...scope("1", "checkout"), timeoutMs: 3000, propagate: true },
    { ...scope("2", "checkout", { source: "frontend" }), timeoutMs: 1500, propagate: false },
    // Streaming-friendly: no timeout at all on web's /api/.
    { ...scope("3", "web", { routeId: "13" }), timeoutMs: 0, propagate: false },
  ],
  retries: [
    {
      ...scope("1", "checkout"),
      retry: {
        retryOn: ["unavailable", "cancelled"],
        attempts: 3,
        perTryTimeoutMs: null,
        retriableStatusCodes: [],
        backoff: { baseMs: 25, maxMs: 250 },
        hedgeOnPerTryTimeout: false,
      },
    },
    {
      ...scope("2", "checkout", { routeId: "14" }),
      retry: {
        retryOn: ["unavailable"],
        attempts: 2,
        perTryTimeoutMs: 300,
        retriableStatusCodes: [],
        backoff: null,
        hedgeOnPerTryTimeout: true,
      },
    },
    {
      ...scope("3", "web"),
      retry: {
        retryOn: ["5xx", "reset"],
        attempts: 2,
        perTryTimeoutMs: 500,
        retriableStatusCodes: [503, 504],
        backoff: { baseMs: 50, maxMs: null },
        hedgeOnPerTryTimeout: false,
      },
    },
  ],
  faults: [
    { ...scope("1", "checkout"), delay: null, abort: { httpStatus: null, grpcStatus: 14, percent: 0.5 }, headers: [] },
    {
      ...scope("2", "checkout", { routeId: "14" }),
      delay: { ms: 100, percent: 10 },
      abort: null,
      headers: [{ name: "x-fault", kind: "exact", value: "delay", invert: false }],
    },
    { ...scope("3", "web", { source: "frontend" }), delay: null, abort: { httpStatus: 503, grpcStatus: null, percent: 25 }, headers: [] },
  ],
  drops: [
    { ...scope("1", "web"), percent: 2.5, httpStatus: 503, grpcStatus: 14 },
    // frontend is exempt from a kill switch on checkout: percent 0 overrides.
    { ...scope("2", "checkout"), percent: 100, httpStatus: 503, grpcStatus: 14 },
    { ...scope("3", "checkout", { source: "frontend" }), percent: 0, httpStatus: 503, grpcStatus: 14 },
  ],
  rateLimits: [
    // Enforced by web's own sidecars (inbound): 100 requests/s per instance.
    { ...scope("1", "web"), maxTokens: 100, tokensPerFill: 100, fillIntervalMs: 1000, statusCode: 429 },
    // Enforced by frontend's sidecars (outbound), per frontend instance.
    { ...scope("2", "checkout", { source: "frontend" }), maxTokens: 50, tokensPerFill: 50, fillIntervalMs: 1000, statusCode: 429 },
    { ...scope("3", "web", { routeId: "13" }), maxTokens: 20, tokensPerFill: 10, fillIntervalMs: 500, statusCode: 503 },
  ],
};

const rules: RuleSet = {
  subsets: [
    { service: "checkout", name: "v1", selector: { version: "v1" } },
    { service: "checkout", name: "v2", selector: { version: "v2" } },
    { service: "web", name: "v1", selector: { version: "v1" } },
    { service: "web", name: "v2", selector: { version: "v2" } },
  ],
  httpRoutes,
  rejected: [],
  routePolicies,
};

export const routePoliciesScenario = {
  name: "route-policies",
  registry,
  rules,
  proxies: {
    "frontend-sidecar": sidecar("frontend-1", "frontend", 8080),
    "frontend-proxyless": {
      id: "frontend-grpc-1",
      service: "frontend",
      kind: "grpc",
      inboundPort: null,
      appPort: null,
      outboundPort: 15001,
      userAgent: "gRPC Node Pure JS",
    },
    "web-sidecar": sidecar("web-1", "web", 8080),
    "checkout-sidecar": sidecar("checkout-1", "checkout", 9090),
  } satisfies Record<string, Proxy>,
};
