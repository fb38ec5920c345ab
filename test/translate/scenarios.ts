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
];
