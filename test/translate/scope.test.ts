import { describe, expect, it } from "vitest";
import type { Proxy } from "../../src/model/proxy.ts";
import type { RegistryState, Service } from "../../src/model/registry.ts";
import type { HttpRoute, RuleSet } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { translate, upstreamsOf } from "../../src/translate/translate.ts";

/** Scoping: a proxy gets its declared upstreams plus what their routes send to; everything when none are declared. */
function svc(name: string): Service {
  return {
    name,
    protocol: "http",
    port: 80,
    instances: [{ id: `${name}-1`, service: name, address: "10.0.0.1", port: 8080, meshPort: null, labels: { version: "v1" }, region: "", zone: "", weight: 1, health: "healthy" }],
  };
}

const registry: RegistryState = { services: new Map(["web", "api", "db", "cache", "audit", "other"].map((n) => [n, svc(n)])) };

function route(id: string, destination: string, targets: string[], source: string | null = null): HttpRoute {
  return {
    id,
    destination,
    source,
    priority: 0,
    path: null,
    method: null,
    headers: [],
    queryParams: [],
    destinations: targets.map((service) => ({ service, subset: null, weight: 1 })),
    timeoutMs: null,
    retry: null,
  };
}

const rules: RuleSet = {
  subsets: [],
  httpRoutes: [route("1", "api", ["api", "cache"]), route("2", "cache", ["audit"]), route("3", "db", ["other"], "someone-else")],
  rejected: [],
  dependencies: [
    { service: "web", dependsOn: "api" },
    { service: "web", dependsOn: "db" },
    { service: "web", dependsOn: "missing" },
  ],
};

const proxy = (service: string): Proxy => ({ id: `${service}-1`, service, kind: "envoy", inboundPort: null, appPort: null, outboundPort: 15001, userAgent: "envoy" });

describe("upstreamsOf", () => {
  const snapshot = buildSnapshot(registry, rules);

  it("gives declared dependencies plus the services their routes send to, transitively; ignores unknown names and routes for other callers", () => {
    expect(upstreamsOf(snapshot, proxy("web")).map((s) => s.name)).toEqual(["api", "audit", "cache", "db"]);
  });

  it("gives every service to a proxy whose service declares no dependency", () => {
    expect(upstreamsOf(snapshot, proxy("api")).map((s) => s.name)).toEqual(["api", "audit", "cache", "db", "other", "web"]);
  });

  it("scopes clusters, endpoints and virtual hosts; a route never names a cluster the proxy lacks", () => {
    const resources = translate(snapshot, proxy("web"));
    expect([...resources.cluster.keys()].sort()).toEqual(["outbound|api", "outbound|audit", "outbound|cache", "outbound|db"]);
    expect([...resources.endpoint.keys()].sort()).toEqual(["outbound|api", "outbound|audit", "outbound|cache", "outbound|db"]);
    const routes = JSON.stringify(resources.route.get("outbound|http"));
    expect(routes).not.toContain("outbound|other");
    expect(routes).not.toContain("outbound|web");
  });
});
