import { toJson } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { ClusterPolicies, ConnectionPolicy, LoadBalancing } from "../../src/model/cluster-policies.ts";
import { emptyClusterPolicies } from "../../src/model/cluster-policies.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import type { Instance, RegistryState, Service } from "../../src/model/registry.ts";
import type { RuleSet } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { clusterDialect } from "../../src/translate/clusters.ts";
import { SnapshotBuilder } from "../../src/translate/incremental-snapshot.ts";
import { ruleRouteId } from "../../src/translate/naming.ts";
import { SCHEMAS } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { envoyRegistry } from "../../src/validate/pgv.ts";
import { viewKey } from "../../src/xds/node.ts";
import { loadBalancing } from "./builders.ts";

/** Focused checks of the cluster-side translation (the golden scenario "cluster-policies" shows the whole output). */

const registry = envoyRegistry();

function instance(id: string, service: string, labels: Record<string, string> = {}, health: Instance["health"] = "healthy"): Instance {
  return { id, service, address: `10.0.0.${id.length}`, port: 8080, meshPort: null, labels, region: "", zone: "", weight: 1, health };
}

function mesh(services: Service[]): RegistryState {
  return { services: new Map(services.map((s) => [s.name, s])) };
}

const web = (instances: Instance[]): Service => ({ name: "web", protocol: "http", port: 8080, instances });
const db: Service = { name: "db", protocol: "tcp", port: 5432, instances: [instance("db-1", "db")] };

function lb(destination: string | null, algorithm: LoadBalancing["algorithm"], id = "1"): LoadBalancing {
  return loadBalancing({ id, destination, algorithm });
}

function conn(id: string, destination: string | null, set: Partial<ConnectionPolicy>): ConnectionPolicy {
  return { id, destination, connectTimeoutMs: null, idleTimeoutMs: null, maxRequestsPerConnection: null, http2MaxConcurrentStreams: null, websocket: false, ...set };
}

function rules(policies: Partial<ClusterPolicies>): RuleSet {
  return { subsets: [], httpRoutes: [], rejected: [], clusterPolicies: { ...emptyClusterPolicies, ...policies } };
}

const sidecar: Proxy = { id: "c-1", service: "client", kind: "envoy", inboundPort: null, appPort: null, outboundPort: 15001, userAgent: "envoy" };

function clusterJson(resources: ReturnType<typeof translate>, name: string): Record<string, unknown> {
  const message = resources.cluster.get(name);
  if (!message) throw new Error(`no cluster ${name}`);
  return toJson(SCHEMAS.cluster, message, { registry }) as Record<string, unknown>;
}

describe("cluster dialects", () => {
  it.each([
    ["envoy", "envoy", "envoy"],
    ["grpc", "gRPC Node Pure JS/1.14.1", "grpc"],
    ["grpc", "gRPC C-core linux Python/C-core 29.0.0 Python 1.51.1", "grpc-no-ring-hash"],
    ["grpc", "gRPC C-core linux/C-core 28.1.0", "grpc-no-ring-hash"],
    ["grpc", "gRPC C-core linux Python/C-core 30.0.0 Python 1.52.0", "grpc"],
  ] as const)("%s %s -> %s", (kind, userAgent, dialect) => {
    expect(clusterDialect({ kind, userAgent })).toBe(dialect);
  });

  it("gives C-core 1.51 and grpc-js different views (they get different clusters)", () => {
    const base = { ...sidecar, kind: "grpc" as const };
    expect(viewKey({ ...base, userAgent: "gRPC Node Pure JS/1.14.1" })).not.toBe(
      viewKey({ ...base, userAgent: "gRPC C-core linux Python/C-core 29.0.0 Python 1.51.1" }),
    );
  });

  it("never sends proxyless clients an algorithm they refuse", () => {
    for (const algorithm of ["least_request", "random", "maglev", "ring_hash"] as const) {
      const snapshot = buildSnapshot(mesh([web([instance("w1", "web")])]), rules({ loadBalancing: [lb("web", algorithm)] }));
      const js = clusterJson(translate(snapshot, { ...sidecar, kind: "grpc", userAgent: "gRPC Node Pure JS/1.14.1" }), "outbound|web");
      const core = clusterJson(translate(snapshot, { ...sidecar, kind: "grpc", userAgent: "gRPC C-core linux Python/C-core 29.0.0 Python 1.51.1" }), "outbound|web");
      const envoy = clusterJson(translate(snapshot, sidecar), "outbound|web");
      expect(js.lbPolicy ?? "ROUND_ROBIN").toBe(algorithm === "ring_hash" || algorithm === "maglev" ? "RING_HASH" : "ROUND_ROBIN");
      expect(core.lbPolicy ?? "ROUND_ROBIN").toBe("ROUND_ROBIN");
      expect(envoy.lbPolicy).toBe(algorithm.toUpperCase());
    }
  });
});

describe("precedence", () => {
  it("a service's own row wins as a whole over the mesh-wide default", () => {
    const snapshot = buildSnapshot(
      mesh([web([instance("w1", "web")]), { ...web([]), name: "api" }]),
      rules({ connectionPolicies: [conn("1", null, { connectTimeoutMs: 1000 }), conn("2", "web", { idleTimeoutMs: 30_000 })] }),
    );
    const resources = translate(snapshot, sidecar);
    expect(clusterJson(resources, "outbound|api").connectTimeout).toBe("1s");
    expect(clusterJson(resources, "outbound|web").connectTimeout).toBe("5s");
  });

  it("hash policies: route-specific > source-specific > destination-wide", () => {
    const hash = (id: string, name: string, scope: { source?: string; routeId?: string } = {}) => ({
      id,
      destination: "web",
      source: scope.source ?? null,
      routeId: scope.routeId ?? null,
      position: 0,
      hashOn: "header" as const,
      name,
      cookieTtlMs: null,
      cookiePath: null,
      terminal: false,
    });
    const set: RuleSet = {
      ...rules({ loadBalancing: [lb("web", "ring_hash")], hashPolicies: [hash("1", "x-all"), hash("2", "x-client", { source: "client" }), hash("3", "x-route", { routeId: "7" })] }),
      httpRoutes: [
        { id: "7", destination: "web", source: null, priority: 0, path: { kind: "prefix", value: "/r" }, method: null, headers: [], queryParams: [], destinations: [{ service: "web", subset: null, weight: 1 }], timeoutMs: null, retry: null },
      ],
    };
    const snapshot = buildSnapshot(mesh([web([instance("w1", "web")]), { ...web([]), name: "client" }, { ...web([]), name: "other" }]), set);
    const headers = (proxy: Proxy) => {
      const rc = toJson(SCHEMAS.route, translate(snapshot, proxy).route.get("outbound|http")!, { registry }) as {
        virtualHosts: { name: string; routes: { name: string; route?: { hashPolicy?: { header: { headerName: string } }[] } }[] }[];
      };
      const vhost = rc.virtualHosts.find((v) => v.name === "web")!;
      return Object.fromEntries(vhost.routes.map((r) => [r.name, r.route?.hashPolicy?.map((h) => h.header.headerName)]));
    };
    expect(headers(sidecar)).toEqual({ "http-route-7": ["x-route"], default: ["x-client"] });
    expect(headers({ ...sidecar, service: "other" })).toEqual({ "http-route-7": ["x-route"], default: ["x-all"] });
  });

  it("reads the rule id back from route names", () => {
    expect(ruleRouteId("http-route-12")).toBe("12");
    expect(ruleRouteId("http-route-12/fault")).toBe("12");
    expect(ruleRouteId("http-route-12|color=x")).toBe("12");
    expect(ruleRouteId("default")).toBeNull();
  });
});

describe("color routing", () => {
  const routing = { colorRouting: [{ id: "1", destination: null, header: "x-env", label: "color" }] };

  it("keeps colored instances out of baseline clusters, and only routes colors that exist", () => {
    const snapshot = buildSnapshot(
      mesh([web([instance("w1", "web"), instance("w-alice", "web", { color: "alice" }), instance("w-odd", "web", { color: "a b" }), instance("w-empty", "web", { color: "" })])]),
      rules(routing),
    );
    const resources = translate(snapshot, sidecar);
    expect([...resources.cluster.keys()].filter((n) => n.startsWith("outbound|web")).sort()).toEqual(["outbound|web", "outbound|web|color=alice"]);
    const baseline = toJson(SCHEMAS.endpoint, resources.endpoint.get("outbound|web")!, { registry }) as { endpoints: { lbEndpoints: unknown[] }[] };
    expect(baseline.endpoints.flatMap((e) => e.lbEndpoints)).toHaveLength(2); // w1 and w-empty ("" is no color)
  });

  it("a new color arriving with an instance change rebuilds the rule-derived parts", () => {
    const builder = new SnapshotBuilder();
    const set = rules(routing);
    const first = builder.build(mesh([web([instance("w1", "web")])]), set);
    expect(first.clusterPolicies?.colors.size).toBe(0);
    const second = builder.build(mesh([web([instance("w1", "web"), instance("w-bob", "web", { color: "bob" })])]), set);
    expect(second.clusterPolicies?.colors.get("web")?.colors).toEqual(["bob"]);
    expect(translate(second, sidecar).cluster.has("outbound|web|color=bob")).toBe(true);
    // Same colors, only health changed: the rule-derived parts are reused.
    const third = builder.build(mesh([web([instance("w1", "web"), instance("w-bob", "web", { color: "bob" }, "unhealthy")])]), set);
    expect(third.clusterPolicies).toBe(second.clusterPolicies);
  });
});

describe("TCP routes", () => {
  it("leaves out a route whose local port the sidecar already uses", () => {
    const snapshot = buildSnapshot(
      mesh([db, web([])]),
      rules({ tcpRoutes: [{ id: "1", destination: "db", source: null, localPort: 15006, destinations: [{ service: "db", subset: null, weight: 1 }] }] }),
    );
    expect(snapshot.rejected).toEqual([]);
    expect(translate(snapshot, sidecar).listener.has("outbound|tcp|15006")).toBe(true);
    expect(translate(snapshot, { ...sidecar, inboundPort: 15006, appPort: 8080 }).listener.has("outbound|tcp|15006")).toBe(false);
  });

  it("sends a source-specific route to its caller instead of the every-caller one", () => {
    const route = (id: string, source: string | null, localPort: number) => ({ id, destination: "db", source, localPort, destinations: [{ service: "db", subset: null, weight: 1 }] });
    const snapshot = buildSnapshot(mesh([db, { ...web([]), name: "client" }]), rules({ tcpRoutes: [route("1", null, 5432), route("2", "client", 6432)] }));
    const mine = [...translate(snapshot, sidecar).listener.keys()].filter((n) => n.includes("tcp"));
    const others = [...translate(snapshot, { ...sidecar, service: "other" }).listener.keys()].filter((n) => n.includes("tcp"));
    expect(mine).toEqual(["outbound|tcp|6432"]);
    expect(others).toEqual(["outbound|tcp|5432"]);
  });
});

describe("WebSocket", () => {
  it("the mesh-wide default allows upgrades on HTTP/1.1 services only", () => {
    const grpcService: Service = { name: "rpc", protocol: "grpc", port: 50051, instances: [] };
    const snapshot = buildSnapshot(mesh([web([]), grpcService]), rules({ connectionPolicies: [conn("1", null, { websocket: true })] }));
    const rc = toJson(SCHEMAS.route, translate(snapshot, sidecar).route.get("outbound|http")!, { registry }) as {
      virtualHosts: { name: string; routes: { route?: { upgradeConfigs?: unknown[] } }[] }[];
    };
    const upgrades = Object.fromEntries(rc.virtualHosts.map((v) => [v.name, v.routes[0]?.route?.upgradeConfigs ?? null]));
    expect(upgrades).toEqual({ rpc: null, web: [{ upgradeType: "websocket" }] });
  });
});
