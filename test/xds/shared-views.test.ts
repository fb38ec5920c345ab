import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import {
  DeltaDiscoveryRequestSchema,
  DeltaDiscoveryResponseSchema,
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
  type DeltaDiscoveryResponse,
  type DiscoveryResponse,
} from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { RouteConfiguration } from "../../src/gen/envoy/config/route/v3/route_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import { emptyRules, type RuleSet } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { OUTBOUND_HTTP } from "../../src/translate/naming.ts";
import { TYPE_URLS, type ResourceKind } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { mapVersion } from "../../src/xds/encoded-parts.ts";
import { withNonce } from "../../src/xds/encoding.ts";
import { DeltaStream } from "../../src/xds/delta-stream.ts";
import { SotwStream } from "../../src/xds/sotw-stream.ts";
import { XdsMetrics } from "../../src/xds/metrics.ts";
import { httpService, registryOf, route, sidecar } from "../translate/builders.ts";

/**
 * In a mesh that declares no dependencies every caller holds the whole mesh,
 * so callers share what they can: one outbound route configuration for every
 * caller no rule names, and one delta body for views that receive the same
 * change at the same version. Sharing must never cross what differs.
 */
const logger = pino({ level: "silent" });
const registry = registryOf(httpService("web", ["10.0.0.1"]), httpService("shop", ["10.0.0.2"]), httpService("api", ["10.0.0.3"]), httpService("db", ["10.0.0.4"]));
const webToApi = route({ id: "web-to-api", destination: "api", source: "web", headers: [{ name: "x-canary", kind: "exact", value: "1", invert: false }] });

function outbound(rules: RuleSet, proxy: Proxy): RouteConfiguration {
  return translate(buildSnapshot(registry, rules), proxy).route.get(OUTBOUND_HTTP) as RouteConfiguration;
}

describe("callers with the same upstreams and virtual hosts", () => {
  it("share one outbound route configuration, and a caller a rule names gets its own", () => {
    const snapshot = buildSnapshot(registry, { ...emptyRules, httpRoutes: [webToApi] });
    const shop = translate(snapshot, sidecar("shop-1", "shop", 8080)).route.get(OUTBOUND_HTTP) as RouteConfiguration;
    const db = translate(snapshot, sidecar("db-1", "db", 8080)).route.get(OUTBOUND_HTTP) as RouteConfiguration;
    const web = translate(snapshot, sidecar("web-1", "web", 8080)).route.get(OUTBOUND_HTTP) as RouteConfiguration;
    expect(db).toBe(shop);
    expect(web).not.toBe(shop);
    const apiRoutes = (config: RouteConfiguration) => config.virtualHosts.find((host) => host.name.includes("api"))?.routes.length;
    expect(apiRoutes(web)).toBe(2);
    expect(apiRoutes(shop)).toBe(1);
    // The same content as translating each caller in a snapshot of its own.
    expect(shop).toEqual(outbound({ ...emptyRules, httpRoutes: [webToApi] }, sidecar("shop-1", "shop", 8080)));
  });
});

class Client {
  readonly sent: DeltaDiscoveryResponse[] = [];
  readonly stream: DeltaStream;

  constructor(
    cache: ResourceCache,
    readonly proxy: Proxy,
  ) {
    this.stream = new DeltaStream(
      { streamId: 1, proxy, protocol: "delta", connectedAt: "", types: {} },
      cache,
      { write: (body, nonce) => (this.sent.push(fromBinary(DeltaDiscoveryResponseSchema, withNonce(body, nonce))), true), onDrain: () => {} },
      new XdsMetrics(),
      logger,
    );
  }

  request(kind: ResourceKind, subscribe: string[], nonce = ""): void {
    this.stream.handleRequest(
      fromBinary(DeltaDiscoveryRequestSchema, toBinary(DeltaDiscoveryRequestSchema, create(DeltaDiscoveryRequestSchema, { typeUrl: TYPE_URLS[kind], resourceNamesSubscribe: subscribe, responseNonce: nonce }))),
    );
  }

  ackLast(kind: ResourceKind): void {
    this.request(kind, [], this.sent.at(-1)?.nonce ?? "");
  }
}

describe("delta views receiving the same change", () => {
  it("each get the set version of what they then hold, when one shares the other's body and when the versions differ", () => {
    const cache = new ResourceCache(translate, () => [], logger);
    cache.setSnapshot(buildSnapshot(registry, emptyRules));
    // shop and db run their apps on the same port (the same route configurations); api on another.
    const clients = [sidecar("shop-1", "shop", 8080), sidecar("db-1", "db", 8080), sidecar("api-1", "api", 9090)].map((proxy) => new Client(cache, proxy));
    for (const client of clients) {
      const routes = [...cache.viewFor(client.proxy)!.resources.route.keys()];
      client.request("route", routes);
      client.ackLast("route");
    }
    cache.setSnapshot(buildSnapshot(registry, { ...emptyRules, httpRoutes: [route({ id: "to-db", destination: "db", headers: [{ name: "x-beta", kind: "exact", value: "1", invert: false }] })] }));
    for (const client of clients) client.stream.refresh();
    const [shop, db, api] = clients.map((client) => client.sent.at(-1)!);
    for (const [client, response] of [clients[0], clients[1], clients[2]].map((client, i) => [client!, [shop, db, api][i]!] as const)) {
      expect(response.resources.map((resource) => resource.name)).toEqual([OUTBOUND_HTTP]);
      expect(response.systemVersionInfo).toBe(mapVersion(cache.viewFor(client.proxy)!.resources.route));
    }
    expect(db!.systemVersionInfo).toBe(shop!.systemVersionInfo);
    expect(api!.systemVersionInfo).not.toBe(shop!.systemVersionInfo);
    expect(api!.resources[0]!.version).toBe(shop!.resources[0]!.version);
  });
});

describe("views over the same parts", () => {
  const noInbound = (id: string, service: string): Proxy => ({ id, service, kind: "envoy", inboundPort: null, appPort: null, outboundPort: 15001, userAgent: "envoy" });

  it("share one target (and its body) when asked one after the other; a view over other parts gets its own", () => {
    const cache = new ResourceCache(translate, () => [], logger);
    cache.setSnapshot(buildSnapshot(registry, emptyRules));
    const shop = cache.viewFor(sidecar("shop-1", "shop", 8080))!;
    const db = cache.viewFor(sidecar("db-1", "db", 8080))!;
    const api = cache.viewFor(sidecar("api-1", "api", 9090))!;
    expect(db.resources.cluster).not.toBe(shop.resources.cluster);
    expect(db.all("cluster")).toBe(shop.all("cluster"));
    const names = [...shop.resources.endpoint.keys()];
    expect(db.named("endpoint", names, "all")).toBe(shop.named("endpoint", names, "all"));
    // Route configurations are each view's own part, so the shared target is found by content.
    const routes = [...shop.resources.route.keys()];
    expect(db.resources.route.parts[0]).not.toBe(shop.resources.route.parts[0]);
    expect(db.named("route", routes, "routes")).toBe(shop.named("route", routes, "routes"));
    // api's app port differs, so does its inbound cluster: its own target, with its own content.
    const apiClusters = api.all("cluster");
    expect(apiClusters).not.toBe(shop.all("cluster"));
    expect([...apiClusters.resources.keys()]).toEqual([...api.resources.cluster.keys()]);
    expect(apiClusters.version).toBe(mapVersion(api.resources.cluster));
  });

  it("still hold a removed cluster back per stream until that stream's routes are ACKed", () => {
    const cache = new ResourceCache(translate, () => [], logger);
    cache.setSnapshot(buildSnapshot(registry, emptyRules));
    const streams = [noInbound("shop-1", "shop"), noInbound("db-1", "db")].map((proxy) => {
      const sent: DiscoveryResponse[] = [];
      const stream = new SotwStream(
        { streamId: 1, proxy, protocol: "sotw", connectedAt: "", types: {} },
        cache,
        { write: (body, nonce) => (sent.push(fromBinary(DiscoveryResponseSchema, withNonce(body, nonce))), true), onDrain: () => {} },
        new XdsMetrics(),
        logger,
      );
      const request = (kind: ResourceKind, names: string[] = [], answered?: DiscoveryResponse) =>
        stream.handleRequest(create(DiscoveryRequestSchema, { typeUrl: TYPE_URLS[kind], resourceNames: names, responseNonce: answered?.nonce ?? "", versionInfo: answered?.versionInfo ?? "" }));
      const ack = (kind: ResourceKind, names: string[] = []) => request(kind, names, [...sent].reverse().find((response) => response.typeUrl === TYPE_URLS[kind]));
      for (const [kind, names] of [["cluster", []], ["listener", []], ["route", [OUTBOUND_HTTP]]] as const) {
        request(kind, [...names]);
        ack(kind, [...names]);
      }
      return { sent, stream, ack };
    });
    const without = registryOf(...[...registry.services.values()].filter((service) => service.name !== "api"));
    cache.setSnapshot(buildSnapshot(without, emptyRules));
    for (const { sent, stream, ack } of streams) {
      const before = sent.length;
      stream.refresh();
      // Routes first (api's virtual host goes); the api cluster must wait for their ACK.
      expect(sent.slice(before).map((response) => response.typeUrl)).toEqual([TYPE_URLS.route]);
      ack("route", [OUTBOUND_HTTP]);
      expect(sent.at(-1)!.typeUrl).toBe(TYPE_URLS.cluster);
      expect(sent.at(-1)!.resources.length).toBe(3);
    }
  });
});

describe("the endpoint index through a rebuild", () => {
  it("stays exact when views over the same parts change differently", () => {
    const cache = new ResourceCache(translate, () => [], logger);
    cache.setSnapshot(buildSnapshot(registry, emptyRules));
    // shop and db declare nothing: each holds every service, over the same parts.
    const [shop, db] = [sidecar("shop-1", "shop", 8080), sidecar("db-1", "db", 8080)];
    // Retained, as a stream retains its view: a rebuild then rebuilds them (and moves them in the index).
    for (const proxy of [shop, db]) cache.retain(proxy);
    expect(cache.viewFor(db)!.resources.endpoint.sameParts(cache.viewFor(shop)!.resources.endpoint)).toBe(true);
    // Now db calls api only and shop calls db only: each view loses other parts.
    cache.setSnapshot(
      buildSnapshot(registry, {
        ...emptyRules,
        dependencies: [
          { service: "db", dependsOn: "api" },
          { service: "shop", dependsOn: "db" },
        ],
      }),
    );
    expect(cache.viewFor(db)!.resources.endpoint.sameParts(cache.viewFor(shop)!.resources.endpoint)).toBe(false);
    expect(cache.indexProblems()).toEqual([]);
    // And back.
    cache.setSnapshot(buildSnapshot(registry, emptyRules));
    expect(cache.indexProblems()).toEqual([]);
  });
});
