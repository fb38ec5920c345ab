import type {
  CircuitBreaker,
  ClusterPolicies,
  ConnectionPolicy,
  HashPolicyRule,
  HealthCheck,
  OutlierDetection,
} from "../../src/model/cluster-policies.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import type { Instance, RegistryState } from "../../src/model/registry.ts";
import type { RuleSet } from "../../src/model/rules.ts";
import { loadBalancing, instance as plainInstance, route, service } from "./builders.ts";

const instance = (partial: Parameters<typeof plainInstance>[0]): Instance => plainInstance({ region: "eu", zone: "a", ...partial });

/**
 * Golden scenario "cluster-policies": every cluster-side rule kind of
 * docs/rules-cluster.md, reviewed against Envoy's documentation:
 *
 * - reviews (HTTP): color routing (mesh-wide default, x-env / color) with
 *   colors feature-x and feature-y (feature-y unhealthy) and an instance whose
 *   color cannot be routed; rule routes (a header match to v2, an 80/20 split)
 *   composed with the colors; the mesh-wide connection and circuit breaker
 *   defaults;
 * - ratings (gRPC): ring_hash with hash policies at every level (destination:
 *   header x-user; source "frontend": header x-session then source IP;
 *   route 20: a cookie and a query parameter);
 * - cart (HTTP/2): least_request with slow start, its own connection policy
 *   (connect/idle timeouts, max requests per connection, HTTP/2 streams),
 *   circuit breakers with a retry budget, outlier detection (5xx, gateway
 *   errors, failure percentage), an HTTP health check;
 * - payments (gRPC): maglev (ring_hash for gRPC), success-rate outlier
 *   detection, a gRPC health check;
 * - chat (HTTP/1.1): random with locality weighting and a panic threshold,
 *   WebSocket (outbound routes and its own sidecar's inbound route), an HTTP
 *   health check with expected statuses;
 * - redis (TCP): a tcp_proxy on local port 6379 split 90/10 between subsets,
 *   a TCP health check with payloads, an idle timeout;
 *   pg (TCP): ring_hash on source IP, a route only for callers from frontend.
 *
 * Views: frontend's sidecar, chat's sidecar (inbound WebSocket), and proxyless
 * frontends as grpc-js-xds and as C-core 1.51 (which gets no RING_HASH).
 */




const lb = loadBalancing;

function hash(partial: Partial<HashPolicyRule> & Pick<HashPolicyRule, "id" | "destination" | "hashOn">): HashPolicyRule {
  return { source: null, routeId: null, position: 0, name: null, cookieTtlMs: null, cookiePath: null, terminal: false, ...partial };
}

function connection(partial: Partial<ConnectionPolicy> & Pick<ConnectionPolicy, "id" | "destination">): ConnectionPolicy {
  return {
    connectTimeoutMs: null,
    idleTimeoutMs: null,
    maxRequestsPerConnection: null,
    http2MaxConcurrentStreams: null,
    websocket: false,
    ...partial,
  };
}

function breaker(partial: Partial<CircuitBreaker> & Pick<CircuitBreaker, "id" | "destination">): CircuitBreaker {
  return { maxConnections: null, maxPendingRequests: null, maxRequests: null, maxRetries: null, retryBudget: null, ...partial };
}

function outliers(partial: Partial<OutlierDetection> & Pick<OutlierDetection, "id" | "destination">): OutlierDetection {
  return {
    consecutive5xx: null,
    consecutiveGatewayErrors: null,
    successRateStdevFactor: null,
    successRateMinimumHosts: null,
    successRateRequestVolume: null,
    failurePercentageThreshold: null,
    failurePercentageMinimumHosts: null,
    failurePercentageRequestVolume: null,
    intervalMs: 10_000,
    baseEjectionTimeMs: 30_000,
    maxEjectionTimeMs: null,
    maxEjectionPercent: 10,
    ...partial,
  };
}

function check(partial: Partial<HealthCheck> & Pick<HealthCheck, "id" | "destination" | "protocol">): HealthCheck {
  return {
    intervalMs: 10_000,
    timeoutMs: 1_000,
    unhealthyThreshold: 3,
    healthyThreshold: 2,
    path: null,
    host: null,
    expectedStatuses: [],
    sendHex: null,
    receiveHex: null,
    grpcServiceName: null,
    ...partial,
  };
}

const registry: RegistryState = {
  services: new Map(
    [
      service("frontend", "http", 80, [instance({ id: "frontend-1", service: "frontend", address: "10.0.0.2", port: 8080, meshPort: 15006 })]),
      service("reviews", "http", 9080, [
        instance({ id: "reviews-1", service: "reviews", address: "10.0.1.1", port: 9080, labels: { version: "v1" } }),
        instance({ id: "reviews-2", service: "reviews", address: "10.0.1.2", port: 9080, labels: { version: "v1" }, zone: "b" }),
        instance({ id: "reviews-3", service: "reviews", address: "10.0.1.3", port: 9080, labels: { version: "v2" } }),
        instance({ id: "reviews-alice", service: "reviews", address: "10.0.9.1", port: 9080, labels: { version: "v1", color: "feature-x" } }),
        instance({ id: "reviews-bob", service: "reviews", address: "10.0.9.2", port: 9080, labels: { version: "v2", color: "feature-y" }, health: "unhealthy" }),
        instance({ id: "reviews-odd", service: "reviews", address: "10.0.9.3", port: 9080, labels: { version: "v1", color: "not a color" } }),
      ]),
      service("ratings", "grpc", 50051, [
        instance({ id: "ratings-1", service: "ratings", address: "10.0.2.1", port: 50051 }),
        instance({ id: "ratings-2", service: "ratings", address: "10.0.2.2", port: 50051 }),
      ]),
      service("cart", "http2", 8443, [
        instance({ id: "cart-1", service: "cart", address: "10.0.3.1", port: 8443, meshPort: 15006 }),
        instance({ id: "cart-2", service: "cart", address: "10.0.3.2", port: 8443, meshPort: 15006, weight: 2 }),
      ]),
      service("payments", "grpc", 50052, [instance({ id: "payments-1", service: "payments", address: "10.0.4.1", port: 50052 })]),
      service("chat", "http", 8000, [
        instance({ id: "chat-1", service: "chat", address: "10.0.5.1", port: 8000, meshPort: 15006 }),
        instance({ id: "chat-2", service: "chat", address: "10.0.5.2", port: 8000, meshPort: 15006, region: "us", zone: "c" }),
      ]),
      service("redis", "tcp", 6379, [
        instance({ id: "redis-1", service: "redis", address: "10.0.6.1", port: 6379, labels: { role: "primary" } }),
        instance({ id: "redis-2", service: "redis", address: "10.0.6.2", port: 6379, labels: { role: "replica" } }),
      ]),
      service("pg", "tcp", 5432, [
        instance({ id: "pg-1", service: "pg", address: "10.0.7.1", port: 5432 }),
        instance({ id: "pg-2", service: "pg", address: "10.0.7.2", port: 5432 }),
      ]),
    ].map((s) => [s.name, s]),
  ),
};

const clusterPolicies: ClusterPolicies = {
  loadBalancing: [
    lb({ id: "1", destination: "ratings", algorithm: "ring_hash", ringMinSize: 1024, ringMaxSize: 65536 }),
    lb({ id: "2", destination: "cart", algorithm: "least_request", choiceCount: 3, slowStart: { windowMs: 30_000, aggression: 1.5, minWeightPercent: 10 } }),
    lb({ id: "3", destination: "payments", algorithm: "maglev", maglevTableSize: 65537 }),
    lb({ id: "4", destination: "chat", algorithm: "random", localityWeighted: true, panicThresholdPercent: 25 }),
    lb({ id: "5", destination: "pg", algorithm: "ring_hash" }),
  ],
  hashPolicies: [
    hash({ id: "1", destination: "ratings", hashOn: "header", name: "x-user" }),
    hash({ id: "2", destination: "ratings", source: "frontend", hashOn: "header", name: "x-session", terminal: true }),
    hash({ id: "3", destination: "ratings", source: "frontend", hashOn: "source_ip", position: 1 }),
    hash({ id: "4", destination: "ratings", routeId: "20", hashOn: "cookie", name: "sid", cookieTtlMs: 3_600_000, cookiePath: "/" }),
    hash({ id: "5", destination: "ratings", routeId: "20", hashOn: "query_param", name: "user", position: 1 }),
    hash({ id: "6", destination: "pg", hashOn: "source_ip" }),
  ],
  colorRouting: [{ id: "1", destination: null, header: "x-env", label: "color" }],
  connectionPolicies: [
    connection({ id: "1", destination: null, connectTimeoutMs: 2_000 }),
    connection({ id: "2", destination: "cart", connectTimeoutMs: 250, idleTimeoutMs: 60_000, maxRequestsPerConnection: 1_000, http2MaxConcurrentStreams: 100 }),
    connection({ id: "3", destination: "chat", websocket: true }),
    connection({ id: "4", destination: "redis", idleTimeoutMs: 300_000 }),
  ],
  circuitBreakers: [
    breaker({ id: "1", destination: null, maxRequests: 1_000 }),
    breaker({ id: "2", destination: "cart", maxConnections: 100, maxPendingRequests: 50, maxRequests: 200, retryBudget: { percent: 25, minConcurrency: 5 } }),
  ],
  outlierDetection: [
    outliers({
      id: "1",
      destination: "cart",
      consecutive5xx: 5,
      consecutiveGatewayErrors: 3,
      failurePercentageThreshold: 50,
      failurePercentageMinimumHosts: 2,
      failurePercentageRequestVolume: 20,
      intervalMs: 5_000,
      maxEjectionTimeMs: 300_000,
      maxEjectionPercent: 50,
    }),
    outliers({ id: "2", destination: "payments", successRateStdevFactor: 1.9, successRateMinimumHosts: 3, successRateRequestVolume: 50 }),
  ],
  healthChecks: [
    check({ id: "1", destination: "cart", protocol: "http", path: "/healthz", host: "cart.internal", intervalMs: 5_000 }),
    check({ id: "2", destination: "payments", protocol: "grpc", grpcServiceName: "payments.v1.Payments" }),
    check({ id: "3", destination: "chat", protocol: "http", path: "/ready", expectedStatuses: [200, 201, 202, 204] }),
    check({ id: "4", destination: "redis", protocol: "tcp", sendHex: "50494e470d0a", receiveHex: "2b504f4e47" }),
  ],
  tcpRoutes: [
    {
      id: "1",
      destination: "redis",
      source: null,
      localPort: 6379,
      destinations: [
        { service: "redis", subset: "primary", weight: 90 },
        { service: "redis", subset: "replica", weight: 10 },
      ],
    },
    { id: "2", destination: "pg", source: "frontend", localPort: 5432, destinations: [{ service: "pg", subset: null, weight: 100 }] },
  ],
};

const rules: RuleSet = {
  subsets: [
    { service: "reviews", name: "v1", selector: { version: "v1" } },
    { service: "reviews", name: "v2", selector: { version: "v2" } },
    { service: "redis", name: "primary", selector: { role: "primary" } },
    { service: "redis", name: "replica", selector: { role: "replica" } },
  ],
  httpRoutes: [
    route({
      id: "10",
      destination: "reviews",
      priority: 10,
      headers: [{ name: "x-user", kind: "exact", value: "jason", invert: false }],
      destinations: [{ service: "reviews", subset: "v2", weight: 100 }],
    }),
    route({
      id: "11",
      destination: "reviews",
      priority: 20,
      destinations: [
        { service: "reviews", subset: "v1", weight: 80 },
        { service: "reviews", subset: "v2", weight: 20 },
      ],
    }),
    route({ id: "20", destination: "ratings", path: { kind: "prefix", value: "/ratings.Ratings/Top" } }),
  ],
  rejected: [],
  clusterPolicies,
};

const frontend = (partial: Partial<Proxy>): Proxy => ({
  id: "frontend-1",
  service: "frontend",
  kind: "envoy",
  inboundPort: 15006,
  appPort: 8080,
  outboundPort: 15001,
  userAgent: "envoy",
  ...partial,
});

export const clusterPoliciesScenario = {
  name: "cluster-policies",
  registry,
  rules,
  proxies: {
    "frontend-sidecar": frontend({}),
    "chat-sidecar": frontend({ id: "chat-1", service: "chat", appPort: 8000 }),
    "frontend-grpc-js": frontend({ id: "frontend-grpc-js", kind: "grpc", inboundPort: null, appPort: null, userAgent: "gRPC Node Pure JS/1.14.1" }),
    "frontend-c-core-1.51": frontend({
      id: "frontend-c-core",
      kind: "grpc",
      inboundPort: null,
      appPort: null,
      userAgent: "gRPC C-core linux Python/C-core 29.0.0 Python 1.51.1",
    }),
  },
};
