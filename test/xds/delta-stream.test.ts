import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { httpService, registryOf } from "../translate/builders.ts";
import { beforeEach, describe, expect, it } from "vitest";
import {
  DeltaDiscoveryRequestSchema,
  DeltaDiscoveryResponseSchema,
  type DeltaDiscoveryResponse,
} from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import { emptyRules } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { TYPE_URLS, type ResourceKind } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { setVersion, withNonce } from "../../src/xds/encoding.ts";
import { DeltaStream } from "../../src/xds/delta-stream.ts";
import { EndpointPeers } from "../../src/xds/endpoint-peers.ts";
import { emptyClusterPolicies } from "../../src/model/cluster-policies.ts";
import { loadBalancing } from "../translate/builders.ts";
import { decodeDeltaDiscoveryRequest } from "../../src/xds/request-decode.ts";
import { XdsMetrics } from "../../src/xds/metrics.ts";
import type { ProxyStatus } from "../../src/xds/proxy-status.ts";

/**
 * Delta (incremental) xDS conformance, driven by a scripted client against one
 * DeltaStream: subscribe, unsubscribe, removal, wildcard, reconnect with
 * initial_resource_versions, NACK, and the make-before-break ordering.
 */
const logger = pino({ level: "silent" });

const sidecar: Proxy = { id: "web-1", service: "web", kind: "envoy", inboundPort: null, appPort: null, outboundPort: 15001, userAgent: "envoy" };

interface RequestOptions {
  subscribe?: string[];
  unsubscribe?: string[];
  nonce?: string;
  error?: string;
  initial?: Record<string, string>;
}

class Client {
  readonly sent: DeltaDiscoveryResponse[] = [];
  readonly status: ProxyStatus;
  readonly stream: DeltaStream;

  /** `kinds`: a single-type service's; `peers`: the server's registry of EDS-only streams; `proxy`: another than the default sidecar. */
  constructor(
    readonly cache: ResourceCache,
    options: { kinds?: readonly ResourceKind[]; peers?: EndpointPeers; proxy?: Proxy } = {},
  ) {
    this.status = { streamId: 1, proxy: options.proxy ?? sidecar, protocol: "delta", connectedAt: "", types: {} };
    this.stream = new DeltaStream(
      this.status,
      cache,
      { write: (body, nonce) => (this.sent.push(fromBinary(DeltaDiscoveryResponseSchema, withNonce(body, nonce))), true), onDrain: () => {} },
      new XdsMetrics(),
      logger,
      options.kinds,
      options.peers,
    );
  }

  request(kind: ResourceKind, options: RequestOptions = {}): void {
    const request = create(DeltaDiscoveryRequestSchema, {
      typeUrl: TYPE_URLS[kind],
      resourceNamesSubscribe: options.subscribe ?? [],
      resourceNamesUnsubscribe: options.unsubscribe ?? [],
      responseNonce: options.nonce ?? "",
      initialResourceVersions: options.initial ?? {},
      errorDetail: options.error ? { code: 3, message: options.error } : undefined,
    });
    // Through the server's wire decoder, or as a plain message.
    this.stream.handleRequest(viaWire ? decodeDeltaDiscoveryRequest(toBinary(DeltaDiscoveryRequestSchema, request)).request : request);
  }

  last(kind?: ResourceKind): DeltaDiscoveryResponse {
    const response = kind ? this.sent.findLast((r) => r.typeUrl === TYPE_URLS[kind]) : this.sent.at(-1);
    if (!response) throw new Error(`nothing sent${kind ? ` for ${kind}` : ""}`);
    return response;
  }

  ack(kind: ResourceKind): void {
    this.request(kind, { nonce: this.last(kind).nonce });
  }

  /** A first request subscribing to `subscribe` (none: a wildcard), and the ACK of its answer. */
  accept(kind: ResourceKind, subscribe?: string[]): void {
    this.request(kind, subscribe ? { subscribe } : {});
    this.ack(kind);
  }

  /** Everything this client holds per kind: name -> version, applying every response. */
  holdings(kind: ResourceKind): Map<string, string> {
    const held = new Map<string, string>();
    for (const response of this.sent.filter((r) => r.typeUrl === TYPE_URLS[kind])) {
      for (const resource of response.resources) held.set(resource.name, resource.version);
      for (const name of response.removedResources) held.delete(name);
    }
    return held;
  }

  kinds(from = 0): string[] {
    return this.sent.slice(from).map((r) => r.typeUrl.split(".").at(-1) ?? "");
  }
}

const names = (response: DeltaDiscoveryResponse) => response.resources.map((r) => r.name);

/** Whether the client sends requests through decodeDeltaDiscoveryRequest. */
let viaWire = false;

describe.each([
  ["as messages", false],
  ["through the wire decoder", true],
])("DeltaStream, requests %s", (_how, wire) => {
  let cache: ResourceCache;
  let c: Client;
  const set = (state: RegistryState) => {
    cache.setSnapshot(buildSnapshot(state, emptyRules));
    c.stream.refresh();
  };

  beforeEach(() => {
    viaWire = wire;
    cache = new ResourceCache(translate, () => [], logger);
    c = new Client(cache);
    cache.setSnapshot(buildSnapshot(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"])), emptyRules));
  });

  it("treats a first CDS request naming nothing as a (legacy) wildcard and sends every cluster with its version", () => {
    c.request("cluster");
    const response = c.last();
    expect(response.typeUrl).toBe(TYPE_URLS.cluster);
    expect(names(response)).toEqual(["outbound|api", "outbound|db"]);
    expect(response.resources.every((r) => r.version.length > 10 && r.resource?.typeUrl === TYPE_URLS.cluster)).toBe(true);
    expect(response.removedResources).toEqual([]);
    c.ack("cluster");
    expect(c.sent).toHaveLength(1);
    expect(c.status.types.cluster?.state).toBe("acked");
  });

  it('accepts an explicit "*" wildcard', () => {
    c.request("listener", { subscribe: ["*"] });
    expect(names(c.last())).toEqual(["outbound|http"]);
  });

  it("sends only subscribed endpoints, then only what changed", () => {
    c.request("endpoint", { subscribe: ["outbound|api"] });
    expect(names(c.last())).toEqual(["outbound|api"]);
    c.ack("endpoint");
    c.request("endpoint", { subscribe: ["outbound|db"] });
    expect(names(c.last())).toEqual(["outbound|db"]);
    c.ack("endpoint");
    const count = c.sent.length;
    set(registryOf(httpService("api", ["10.0.0.9"]), httpService("db", ["10.0.0.2"])));
    expect(c.sent).toHaveLength(count + 1);
    expect(names(c.last())).toEqual(["outbound|api"]);
  });

  it("after changes sent on the fast path, still knows what the client holds when its subscription changes", () => {
    c.accept("endpoint", ["outbound|api", "outbound|db"]);
    set(registryOf(httpService("api", ["10.0.0.7"]), httpService("db", ["10.0.0.2"])));
    c.ack("endpoint");
    set(registryOf(httpService("api", ["10.0.0.8"]), httpService("db", ["10.0.0.2"])));
    c.ack("endpoint");
    expect(names(c.last())).toEqual(["outbound|api"]);
    // A new name is answered alone: api and db are already held at their current versions.
    c.request("endpoint", { subscribe: ["outbound|nope"] });
    expect(names(c.last())).toEqual([]);
    expect(c.last().removedResources).toEqual(["outbound|nope"]);
    c.ack("endpoint");
    set(registryOf(httpService("api", ["10.0.0.8"]), httpService("db", ["10.0.0.3"])));
    expect(names(c.last())).toEqual(["outbound|db"]);
    expect(c.holdings("endpoint")).toEqual(new Map([...cache.viewFor(sidecar)!.resources.endpoint].map(([name, r]) => [name, r.version])));
  });

  it("gives a response the version of what the client then holds, on the fast path as on the full comparison", () => {
    const held = () => setVersion(cache.viewFor(sidecar)!.resources.endpoint.values());
    c.request("endpoint", { subscribe: ["outbound|api", "outbound|db"] });
    expect(c.last().systemVersionInfo).toBe(held());
    c.ack("endpoint");
    set(registryOf(httpService("api", ["10.0.0.7"]), httpService("db", ["10.0.0.2"])));
    expect(names(c.last())).toEqual(["outbound|api"]);
    expect(c.last().systemVersionInfo).toBe(held());
    expect(c.status.types.endpoint?.sentVersion).toBe(held());
  });

  it("answers a subscription to a resource that does not exist in removed_resources", () => {
    c.request("endpoint", { subscribe: ["outbound|nope"] });
    expect(c.last().resources).toEqual([]);
    expect(c.last().removedResources).toEqual(["outbound|nope"]);
  });

  it("answers a re-subscription to a resource the client already has (it may have forgotten it)", () => {
    c.accept("endpoint", ["outbound|api"]);
    c.request("endpoint", { subscribe: ["outbound|api"] });
    expect(names(c.last())).toEqual(["outbound|api"]);
  });

  it("stops sending an unsubscribed resource, without a response", () => {
    c.accept("endpoint", ["outbound|api", "outbound|db"]);
    const count = c.sent.length;
    c.request("endpoint", { unsubscribe: ["outbound|api"] });
    expect(c.sent).toHaveLength(count);
    set(registryOf(httpService("api", ["10.0.0.9"]), httpService("db", ["10.0.0.2"])));
    expect(c.sent).toHaveLength(count);
  });

  it("under a wildcard, answers an unsubscribed name with the resource when the wildcard still covers it", () => {
    c.accept("cluster", ["*", "outbound|api"]);
    c.request("cluster", { unsubscribe: ["outbound|api"] });
    expect(names(c.last())).toEqual(["outbound|api"]);
  });

  it("reports removed resources, and removes clusters only after listeners and routes are ACKed", () => {
    c.accept("cluster");
    c.accept("endpoint", ["outbound|api", "outbound|db"]);
    c.accept("listener");
    c.accept("route", ["outbound|http"]);
    const before = c.sent.length;
    set(registryOf(httpService("api", ["10.0.0.1"])));
    // db's endpoints and virtual host go now; its cluster waits for the route ACK.
    expect(c.kinds(before)).toEqual(["ClusterLoadAssignment", "RouteConfiguration"]);
    expect(c.last("endpoint").removedResources).toEqual(["outbound|db"]);
    expect(c.holdings("cluster").has("outbound|db")).toBe(true);
    c.ack("route");
    expect(c.last().typeUrl).toBe(TYPE_URLS.cluster);
    expect(c.last().removedResources).toEqual(["outbound|db"]);
    expect([...c.holdings("cluster").keys()]).toEqual(["outbound|api"]);
  });

  /** db leaves the mesh, and the client rejects the routes that stopped using it. */
  const rejectRoutesWithoutDb = (): void => {
    c.accept("cluster");
    c.accept("listener");
    c.accept("route", ["outbound|http"]);
    set(registryOf(httpService("api", ["10.0.0.1"])));
    c.request("route", { nonce: c.last("route").nonce, error: "route rejected" });
  };

  it("keeps a removed cluster while the routes that stopped using it are rejected (the proxy still runs the old ones)", () => {
    rejectRoutesWithoutDb();
    // Another generation that changes nothing the routes hold: db's cluster still stays.
    set(registryOf(httpService("api", ["10.0.0.9"])));
    expect(c.holdings("cluster").has("outbound|db")).toBe(true);
    // Once routes without db are ACKed, db goes.
    set(registryOf(httpService("api", ["10.0.0.9"]), httpService("web", ["10.0.0.7"])));
    c.ack("route");
    expect(c.last().typeUrl).toBe(TYPE_URLS.cluster);
    expect([...c.holdings("cluster").keys()].sort()).toEqual(["outbound|api", "outbound|web"]);
  });

  it("keeps that cluster after an ACK of other routes: the rejected one is still the old one", () => {
    rejectRoutesWithoutDb();
    // The client subscribes to another route configuration and ACKs its answer.
    c.accept("route", ["inbound|15006"]);
    set(registryOf(httpService("api", ["10.0.0.9"])));
    expect(c.holdings("cluster").has("outbound|db")).toBe(true);
    // Unsubscribing the rejected configuration, it no longer runs it: db goes.
    c.request("route", { unsubscribe: ["outbound|http"] });
    set(registryOf(httpService("api", ["10.0.0.9"]), httpService("web", ["10.0.0.7"])));
    expect([...c.holdings("cluster").keys()].sort()).toEqual(["outbound|api", "outbound|web"]);
  });

  it("on reconnect resends the endpoints of clusters updated in the first CDS response, in answer to the first EDS request", () => {
    c.accept("cluster");
    c.accept("endpoint", ["outbound|api", "outbound|db"]);
    const clusters = Object.fromEntries(c.holdings("cluster"));
    const endpoints = Object.fromEntries(c.holdings("endpoint"));
    // api turns gRPC while the client is away: its cluster changes, its endpoints do not.
    const grpcApi = { ...httpService("api", ["10.0.0.1"]), protocol: "grpc" as const };
    cache.setSnapshot(buildSnapshot(registryOf(grpcApi, httpService("db", ["10.0.0.2"])), emptyRules));
    const again = new Client(cache);
    again.request("cluster", { initial: clusters });
    expect(names(again.last())).toEqual(["outbound|api"]);
    // Envoy re-creates api and waits for its endpoints, though it holds them at this version.
    again.request("endpoint", { subscribe: ["outbound|api", "outbound|db"], initial: endpoints });
    expect(again.last().typeUrl).toBe(TYPE_URLS.endpoint);
    expect(names(again.last())).toEqual(["outbound|api"]);
    expect(again.last().resources[0]?.version).toBe(endpoints["outbound|api"]);
  });

  it("pushes in make-before-break order: clusters, endpoints, listeners, routes", () => {
    c.accept("cluster");
    c.accept("endpoint", ["outbound|api", "outbound|db"]);
    c.accept("listener");
    c.accept("route", ["outbound|http"]);
    const before = c.sent.length;
    set(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"]), httpService("cache", ["10.0.0.3"])));
    expect(c.kinds(before)).toEqual(["Cluster", "RouteConfiguration"]);
    expect(names(c.last("cluster"))).toEqual(["outbound|cache"]);
  });

  it("resends a changed cluster's endpoints (Envoy waits for them) even when they did not change", () => {
    c.accept("cluster");
    c.accept("endpoint", ["outbound|api", "outbound|db"]);
    const before = c.sent.length;
    set(registryOf({ ...httpService("api", ["10.0.0.1"]), protocol: "grpc" }, httpService("db", ["10.0.0.2"])));
    expect(c.kinds(before)).toEqual(["Cluster", "ClusterLoadAssignment"]);
    expect(names(c.last("cluster"))).toEqual(["outbound|api"]);
    expect(names(c.last("endpoint"))).toEqual(["outbound|api"]);
  });

  it("on reconnect does not resend what the client already has, and reports what is gone", () => {
    c.request("cluster");
    const held = Object.fromEntries(c.holdings("cluster"));
    const again = new Client(cache);
    again.request("cluster", { initial: held });
    expect(again.sent).toHaveLength(0);
    // Nothing was sent, but the proxy's status still counts what it holds.
    expect(again.status.types.cluster?.resourceCount).toBe(Object.keys(held).length);
    expect(Object.keys(held).length).toBeGreaterThan(0);

    const stale = new Client(cache);
    stale.request("cluster", { initial: { ...held, "outbound|gone": "v0", "outbound|api": "old" } });
    expect(names(stale.last())).toEqual(["outbound|api"]);
    expect(stale.last().removedResources).toEqual(["outbound|gone"]);
  });

  it("on reconnect with named resources answers only those that differ", () => {
    c.request("endpoint", { subscribe: ["outbound|api", "outbound|db"] });
    const held = Object.fromEntries(c.holdings("endpoint"));
    const again = new Client(cache);
    again.request("endpoint", { subscribe: ["outbound|api", "outbound|db"], initial: { ...held, "outbound|db": "old" } });
    expect(names(again.last())).toEqual(["outbound|db"]);
  });

  it("on NACK records the error, keeps the proxy on what it accepted, and never resends the rejected versions", () => {
    c.accept("cluster");
    set(registryOf(httpService("api", ["10.0.0.1"]), { ...httpService("db", ["10.0.0.2"]), protocol: "grpc" }));
    const rejected = c.last("cluster");
    expect(names(rejected)).toEqual(["outbound|db"]);
    c.request("cluster", { nonce: rejected.nonce, error: "cluster outbound|db: invalid" });
    expect(c.status.types.cluster).toMatchObject({ state: "nacked", lastError: { message: "cluster outbound|db: invalid" } });
    const count = c.sent.length;
    // Same content again (a new snapshot that changes nothing for db): not resent.
    set(registryOf(httpService("api", ["10.0.0.1"]), { ...httpService("db", ["10.0.0.2"]), protocol: "grpc" }));
    expect(c.sent).toHaveLength(count);
    // New content is sent.
    set(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"])));
    expect(c.sent.length).toBeGreaterThan(count);
    expect(names(c.last("cluster"))).toEqual(["outbound|db"]);
  });

  it("honours a subscription change whatever the nonce, and ignores an ACK for an unknown nonce", () => {
    c.request("endpoint", { subscribe: ["outbound|api"] });
    c.request("endpoint", { nonce: "999" });
    expect(c.status.types.endpoint?.state).toBe("pending");
    c.request("endpoint", { nonce: "999", subscribe: ["outbound|db"] });
    expect(names(c.last())).toEqual(["outbound|db"]);
  });

  it("refuses a type it does not serve", () => {
    expect(() => c.stream.handleRequest(create(DeltaDiscoveryRequestSchema, { typeUrl: "type.googleapis.com/envoy.Nope" }))).toThrow(
      /unsupported resource type/,
    );
  });
});

describe("DeltaStream, single-type services", () => {
  it("a proxy's CDS-only stream that updates a cluster has its EDS-only stream resend the endpoints, which Envoy waits for without asking", () => {
    const registry = registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"]));
    const leastRequest = (on: boolean) => ({
      ...emptyRules,
      clusterPolicies: { ...emptyClusterPolicies, loadBalancing: on ? [loadBalancing({ id: "lb", destination: "api", algorithm: "least_request" })] : [] },
    });
    const cache = new ResourceCache(translate, () => [], logger);
    cache.setSnapshot(buildSnapshot(registry, leastRequest(false)));
    const peers = new EndpointPeers();
    const cds = new Client(cache, { kinds: ["cluster"], peers });
    const eds = new Client(cache, { kinds: ["endpoint"], peers });
    const otherProxy = new Client(cache, { kinds: ["endpoint"], peers, proxy: { ...sidecar, id: "web-2" } });
    const clients = [cds, eds, otherProxy];
    cds.accept("cluster");
    for (const client of [eds, otherProxy]) client.accept("endpoint", ["outbound|api", "outbound|db"]);
    const change = (on: boolean) => {
      cache.setSnapshot(buildSnapshot(registry, leastRequest(on)));
      for (const client of clients) client.stream.refresh();
    };
    const counts = () => clients.map((client) => client.sent.length);

    const before = counts();
    change(true);
    // The api cluster changed, its endpoints did not; they go again to this proxy's EDS stream only.
    expect(names(cds.last("cluster"))).toEqual(["outbound|api"]);
    expect(counts()).toEqual([before[0]! + 1, before[1]! + 1, before[2]]);
    expect(names(eds.last("endpoint"))).toEqual(["outbound|api"]);
    eds.ack("endpoint");
    cds.ack("cluster");

    // A closed EDS stream is no longer told, nor kept.
    expect(peers.size).toBe(2);
    eds.stream.close();
    expect(peers.size).toBe(1);
    const after = counts();
    change(false);
    expect(counts()).toEqual([after[0]! + 1, after[1], after[2]]);
  });
});
