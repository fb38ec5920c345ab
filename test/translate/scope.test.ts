import { describe, expect, it } from "vitest";
import type { Proxy } from "../../src/model/proxy.ts";
import type { RegistryState, Service } from "../../src/model/registry.ts";
import type { HttpRoute, RuleSet } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { SnapshotBuilder } from "../../src/translate/incremental-snapshot.ts";
import { scopedNames } from "../../src/translate/scope.ts";
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

describe("upstreamsOf across snapshots", () => {
  const names = (services: readonly Service[]) => services.map((s) => s.name);
  const withRoutes = (httpRoutes: HttpRoute[]): RuleSet => ({ ...rules, httpRoutes });

  it("keeps a caller's scope, the same list, through a route change that sends traffic nowhere new", () => {
    const builder = new SnapshotBuilder();
    const before = builder.build(registry, rules);
    const scope = upstreamsOf(before, proxy("web"));
    // A retry-style change: api's route still splits over api and cache only.
    const after = builder.build(registry, withRoutes([{ ...route("1", "api", ["api", "cache"]), timeoutMs: 500 }, ...rules.httpRoutes.slice(1)]));
    expect(after).not.toBe(before);
    expect(upstreamsOf(after, proxy("web"))).toBe(scope);
  });

  it("widens the scope when a changed route sends to another service, and narrows it back", () => {
    const builder = new SnapshotBuilder();
    const before = builder.build(registry, rules);
    expect(names(upstreamsOf(before, proxy("web")))).toEqual(["api", "audit", "cache", "db"]);
    const split = builder.build(registry, withRoutes([route("1", "api", ["api", "cache", "other"]), ...rules.httpRoutes.slice(1)]));
    expect(names(upstreamsOf(split, proxy("web")))).toEqual(["api", "audit", "cache", "db", "other"]);
    const back = builder.build(registry, rules);
    expect(names(upstreamsOf(back, proxy("web")))).toEqual(["api", "audit", "cache", "db"]);
  });

  it("follows a route's source: a split for another caller leaves this one's scope, one for this caller widens it", () => {
    const builder = new SnapshotBuilder();
    builder.build(registry, rules);
    const forOthers = builder.build(registry, withRoutes([...rules.httpRoutes, route("4", "db", ["web"], "api")]));
    expect(names(upstreamsOf(forOthers, proxy("web")))).toEqual(["api", "audit", "cache", "db"]);
    const forWeb = builder.build(registry, withRoutes([...rules.httpRoutes, route("4", "db", ["web"], "web")]));
    expect(names(upstreamsOf(forWeb, proxy("web")))).toEqual(["api", "audit", "cache", "db", "web"]);
  });

  it("sees a registry change: a service that leaves the mesh leaves the scope", () => {
    const builder = new SnapshotBuilder();
    expect(names(upstreamsOf(builder.build(registry, rules), proxy("web")))).toEqual(["api", "audit", "cache", "db"]);
    const services = new Map(registry.services);
    services.delete("audit");
    const after = builder.build({ services }, rules);
    expect(names(upstreamsOf(after, proxy("web")))).toEqual(["api", "cache", "db"]);
    expect(scopedNames(after, proxy("web").service)).toEqual(["api", "cache", "db"]);
  });

  it("sees a declared dependency that joins the mesh later", () => {
    const builder = new SnapshotBuilder();
    const before = builder.build(registry, rules);
    expect(scopedNames(before, "web")).toEqual(["api", "audit", "cache", "db"]);
    expect(scopedNames(before, "api")).toEqual(["api", "audit", "cache", "db", "other", "web"]);
    const services = new Map(registry.services).set("missing", svc("missing"));
    const after = builder.build({ services }, rules);
    expect(scopedNames(after, "web")).toEqual(["api", "audit", "cache", "db", "missing"]);
    expect(names(upstreamsOf(after, proxy("web")))).toEqual(["api", "audit", "cache", "db", "missing"]);
    // Every service for a caller that declares none, the new one included.
    expect(scopedNames(after, "api")).toEqual(["api", "audit", "cache", "db", "missing", "other", "web"]);
  });

  it("keeps every caller's scope (the same list of names) through an endpoint change, with the changed service's new object", () => {
    const builder = new SnapshotBuilder();
    const before = builder.build(registry, rules);
    const scope = scopedNames(before, "web");
    const everything = scopedNames(before, "api");
    expect(upstreamsOf(before, proxy("web")).find((s) => s.name === "api")).toBe(registry.services.get("api"));
    const moved: Service = { ...svc("api"), instances: [{ ...(svc("api").instances[0] as Service["instances"][number]), address: "10.9.9.9" }] };
    const after = builder.build({ services: new Map(registry.services).set("api", moved) }, rules);
    expect(scopedNames(after, "web")).toBe(scope);
    expect(scopedNames(after, "api")).toBe(everything);
    expect(upstreamsOf(after, proxy("web")).find((s) => s.name === "api")).toBe(after.registry.services.get("api"));
    expect(upstreamsOf(after, proxy("web")).find((s) => s.name === "api")?.instances[0]?.address).toBe("10.9.9.9");
  });
});
