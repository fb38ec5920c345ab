import type { Proxy } from "../../src/model/proxy.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import type { RuleSet } from "../../src/model/rules.ts";
import { routePoliciesScenario } from "./scenarios-route-policies.ts";
import { clusterPoliciesScenario } from "./scenarios-cluster-policies.ts";
import { instance, route, service } from "./builders.ts";

/** Scenarios for golden-file tests: a registry and rules in, Envoy resources out. */




export interface Scenario {
  readonly name: string;
  readonly registry: RegistryState;
  readonly rules: RuleSet;
  readonly proxies: Record<string, Proxy>;
}

const shopRegistry: RegistryState = {
  services: new Map([
    [
      "checkout",
      service("checkout", "grpc", 9090, [
        instance({ id: "checkout-1", service: "checkout", address: "10.0.0.11", port: 9090, labels: { version: "v1" }, zone: "a", region: "eu" }),
        instance({ id: "checkout-2", service: "checkout", address: "10.0.0.12", port: 9090, labels: { version: "v1" }, zone: "b", region: "eu", health: "unhealthy" }),
        instance({ id: "checkout-3", service: "checkout", address: "10.0.0.13", port: 9090, meshPort: 15006, labels: { version: "v2", canary: "" }, zone: "a", region: "eu", weight: 3 }),
      ]),
    ],
    [
      "frontend",
      service("frontend", "http", 80, [
        instance({ id: "frontend-1", service: "frontend", address: "10.0.0.21", port: 8080, meshPort: 15006 }),
      ]),
    ],
  ]),
};

const shopRules: RuleSet = {
  subsets: [
    { service: "checkout", name: "v1", selector: { version: "v1" } },
    { service: "checkout", name: "v2", selector: { version: "v2" } },
  ],
  httpRoutes: [
    route({
      id: "1",
      destination: "checkout",
      priority: 10,
      headers: [{ name: "x-canary", kind: "exact", value: "true", invert: false }],
      destinations: [{ service: "checkout", subset: "v2", weight: 1 }],
    }),
    route({
      id: "2",
      destination: "checkout",
      priority: 20,
      path: { kind: "prefix", value: "/shop.Checkout/" },
      destinations: [
        { service: "checkout", subset: "v1", weight: 80 },
        { service: "checkout", subset: "v2", weight: 20 },
      ],
      timeoutMs: 2500,
      retry: { retryOn: ["unavailable", "5xx"], attempts: 2, perTryTimeoutMs: 800 },
    }),
    route({
      id: "3",
      destination: "checkout",
      source: "frontend",
      priority: 50,
      method: "POST",
      path: { kind: "regex", value: "^/admin/.*" },
      queryParams: [{ name: "debug", kind: "present" }],
      destinations: [{ service: "checkout", subset: "v1", weight: 1 }],
    }),
  ],
  rejected: [],
};

/**
 * Declared dependencies: each sidecar gets only what its service calls (and
 * what those services' routes send to), so a rule for one service leaves the
 * sidecars that do not call it untouched.
 */
const scopedScenario: Scenario = {
  name: "scoped",
  registry: {
    services: new Map([
      ["web", service("web", "http", 80, [instance({ id: "web-1", service: "web", address: "10.1.0.1", port: 8080 })])],
      ["api", service("api", "http", 80, [instance({ id: "api-1", service: "api", address: "10.1.0.2", port: 8080, labels: { version: "v1" } })])],
      ["billing", service("billing", "grpc", 9090, [instance({ id: "billing-1", service: "billing", address: "10.1.0.3", port: 9090 })])],
      ["ledger", service("ledger", "grpc", 9090, [instance({ id: "ledger-1", service: "ledger", address: "10.1.0.4", port: 9090 })])],
    ]),
  },
  rules: {
    subsets: [{ service: "api", name: "v1", selector: { version: "v1" } }],
    httpRoutes: [
      route({ id: "1", destination: "api", destinations: [{ service: "api", subset: "v1", weight: 1 }] }),
      // billing's route also sends to ledger: whoever calls billing gets ledger too.
      route({ id: "2", destination: "billing", destinations: [{ service: "billing", subset: null, weight: 9 }, { service: "ledger", subset: null, weight: 1 }] }),
    ],
    rejected: [],
    dependencies: [
      { service: "web", dependsOn: "api" },
      { service: "api", dependsOn: "billing" },
      { service: "ledger", dependsOn: "api" },
    ],
  },
  proxies: {
    "web-sidecar": { id: "web-1", service: "web", kind: "envoy", inboundPort: 15006, appPort: 8080, outboundPort: 15001, userAgent: "envoy" },
    "api-sidecar": { id: "api-1", service: "api", kind: "envoy", inboundPort: 15006, appPort: 8080, outboundPort: 15001, userAgent: "envoy" },
    "billing-proxyless": { id: "billing-grpc-1", service: "billing", kind: "grpc", inboundPort: null, appPort: null, outboundPort: 15001, userAgent: "gRPC Node Pure JS" },
  },
};

export const scenarios: Scenario[] = [
  {
    name: "shop",
    registry: shopRegistry,
    rules: shopRules,
    proxies: {
      "frontend-sidecar": {
        id: "frontend-1",
        service: "frontend",
        kind: "envoy",
        inboundPort: 15006,
        appPort: 8080,
        outboundPort: 15001,
        userAgent: "envoy",
      },
      "frontend-proxyless": {
        id: "frontend-grpc-1",
        service: "frontend",
        kind: "grpc",
        inboundPort: null,
        appPort: null,
        outboundPort: 15001,
        userAgent: "gRPC Node Pure JS",
      },
    },
  },
  routePoliciesScenario,
  clusterPoliciesScenario,
  scopedScenario,
];
