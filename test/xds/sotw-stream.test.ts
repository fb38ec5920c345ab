import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { httpService, registryOf } from "../translate/builders.ts";
import { beforeEach, describe, expect, it } from "vitest";
import {
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
  type DiscoveryResponse,
} from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import { emptyRules } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { TYPE_URLS, type ResourceKind } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { withNonce } from "../../src/xds/encoding.ts";
import { XdsMetrics } from "../../src/xds/metrics.ts";
import type { ProxyStatus } from "../../src/xds/proxy-status.ts";
import { decodeDiscoveryRequest } from "../../src/xds/request-decode.ts";
import { SotwStream } from "../../src/xds/sotw-stream.ts";

const logger = pino({ level: "silent" });

const sidecar: Proxy = {
  id: "web-1",
  service: "web",
  kind: "envoy",
  inboundPort: null,
  appPort: null,
  outboundPort: 15001,
  userAgent: "envoy",
};

class Harness {
  readonly sent: DiscoveryResponse[] = [];
  readonly cache = new ResourceCache(translate, () => [], logger);
  readonly status: ProxyStatus = { streamId: 1, proxy: sidecar, protocol: "sotw", connectedAt: "", types: {} };
  readonly stream: SotwStream;
  private drained: (() => void) | null = null;

  /** `fullAfter`: the transport is full once that many responses are written (until drain()); `kinds`: a single-type service's. */
  constructor(private readonly options: { fullAfter?: number; kinds?: readonly ResourceKind[] } = {}) {
    this.stream = new SotwStream(
      this.status,
      this.cache,
      {
        write: (body, nonce) => this.sent.push(fromBinary(DiscoveryResponseSchema, withNonce(body, nonce))) !== this.options.fullAfter,
        onDrain: (callback) => void (this.drained = callback),
      },
      new XdsMetrics(),
      logger,
      options.kinds,
    );
  }

  /** The full transport drains. */
  drain(): void {
    const drained = this.drained;
    this.drained = null;
    drained?.();
  }

  setRegistry(state: RegistryState): void {
    this.cache.setSnapshot(buildSnapshot(state, emptyRules));
    this.stream.refresh();
  }

  request(kind: ResourceKind, over: { names?: string[]; nonce?: string; version?: string; error?: string } = {}): void {
    const request = create(DiscoveryRequestSchema, {
      typeUrl: TYPE_URLS[kind],
      resourceNames: over.names ?? [],
      responseNonce: over.nonce ?? "",
      versionInfo: over.version ?? "",
      errorDetail: over.error ? { code: 3, message: over.error } : undefined,
    });
    // Through the server's wire decoder (lazy names and version), or as a plain message.
    this.stream.handleRequest(viaWire ? decodeDiscoveryRequest(toBinary(DiscoveryRequestSchema, request)).request : request);
  }

  /** The last response, or the last of `kind`. */
  last(kind?: ResourceKind): DiscoveryResponse {
    const response = kind ? this.sent.findLast((r) => r.typeUrl === TYPE_URLS[kind]) : this.sent.at(-1);
    if (!response) throw new Error(`nothing sent${kind ? ` for ${kind}` : ""}`);
    return response;
  }

  ack(kind: ResourceKind, names: string[] = []): void {
    const response = this.last(kind);
    this.request(kind, { names, nonce: response.nonce, version: response.versionInfo });
  }

  /** A first request for `names` (none: a wildcard), and the ACK of its answer. */
  accept(kind: ResourceKind, names: string[] = []): void {
    this.request(kind, { names });
    this.ack(kind, names);
  }

  kinds(from = 0): string[] {
    return this.sent.slice(from).map((r) => r.typeUrl.split(".").at(-1) ?? "");
  }
}

function names(response: DiscoveryResponse): string[] {
  return response.resources.map((any) => {
    // Resource names sit in field 1 of Cluster, ClusterLoadAssignment, Listener and RouteConfiguration.
    const bytes = any.value;
    const length = bytes[1] ?? 0;
    return new TextDecoder().decode(bytes.subarray(2, 2 + length));
  });
}

/** Whether the harness sends requests through decodeDiscoveryRequest. */
let viaWire = false;

describe.each([
  ["as messages", false],
  ["through the wire decoder", true],
])("SotwStream, requests %s", (_how, wire) => {
  let h: Harness;
  beforeEach(() => {
    viaWire = wire;
    h = new Harness();
    h.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"])));
  });

  it("answers a wildcard CDS request with every cluster and does not resend on ACK", () => {
    h.request("cluster");
    expect(names(h.last())).toEqual(["outbound|api", "outbound|db"]);
    h.ack("cluster");
    expect(h.sent).toHaveLength(1);
    expect(h.status.types.cluster?.state).toBe("acked");
  });

  it("answers named EDS requests with only the named resources", () => {
    h.request("endpoint", { names: ["outbound|db"] });
    expect(names(h.last())).toEqual(["outbound|db"]);
  });

  it("uses the same content-hash version for the same content, across streams", () => {
    h.request("cluster");
    const other = new Harness();
    other.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"])));
    other.request("cluster");
    expect(other.last().versionInfo).toBe(h.last().versionInfo);
    expect(other.last().nonce).toBe(h.last().nonce); // nonces are per stream: both start at 1
  });

  it("does not re-push a reconnecting client that already has the current version", () => {
    h.request("cluster");
    const version = h.last().versionInfo;
    const again = new Harness();
    again.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"])));
    again.request("cluster", { version });
    expect(again.sent).toHaveLength(0);
    expect(again.status.types.cluster?.ackedVersion).toBe(version);
  });

  it("pushes in make-before-break order: clusters, endpoints, listeners, routes", () => {
    h.accept("cluster");
    h.request("endpoint", { names: ["outbound|api", "outbound|db"] });
    h.accept("listener");
    h.request("route", { names: ["outbound|http"] });
    const before = h.sent.length;
    h.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"]), httpService("cache", ["10.0.0.3"])));
    expect(h.kinds(before)).toEqual(["Cluster", "RouteConfiguration"]);
    h.setRegistry(registryOf(httpService("api", ["10.0.0.9"]), httpService("db", ["10.0.0.2"]), httpService("cache", ["10.0.0.4"])));
    expect(h.kinds(before + 2)).toEqual(["ClusterLoadAssignment"]);
  });

  it("keeps a removed cluster until the routes that stopped using it are ACKed", () => {
    h.accept("cluster");
    h.accept("listener");
    h.accept("route", ["outbound|http"]);
    const before = h.sent.length;
    h.setRegistry(registryOf(httpService("api", ["10.0.0.1"])));
    // Routes change (db's virtual host goes); CDS is not allowed to drop db yet.
    const pushed = h.sent.slice(before);
    expect(pushed.map((r) => r.typeUrl)).toEqual([TYPE_URLS.route]);
    h.ack("route", ["outbound|http"]);
    expect(names(h.last())).toEqual(["outbound|api"]);
    expect(h.last().typeUrl).toBe(TYPE_URLS.cluster);
  });

  it("answers Envoy's EDS re-request after a cluster changed, even when endpoints did not", () => {
    h.accept("cluster");
    h.accept("endpoint", ["outbound|api", "outbound|db"]);
    const before = h.sent.length;
    // A new service: CDS changes (new cluster), api/db endpoints unchanged.
    h.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"]), httpService("x", ["10.0.0.5"])));
    expect(h.kinds(before)).toEqual(["Cluster"]);
    h.ack("cluster");
    // Envoy re-subscribes with the same nonce it last ACKed; it must get an answer.
    const eds = h.last("endpoint");
    h.request("endpoint", { names: ["outbound|api", "outbound|db", "outbound|x"], nonce: eds?.nonce, version: eds?.versionInfo });
    expect(h.last().typeUrl).toBe(TYPE_URLS.endpoint);
    expect(names(h.last())).toEqual(["outbound|api", "outbound|db", "outbound|x"]);
  });

  it("answers an EDS request for the same names after the clusters changed (Envoy re-creates them and waits), and only then", () => {
    h.accept("cluster");
    h.accept("endpoint", ["outbound|api", "outbound|db"]);
    const eds = () => h.last("endpoint");
    const first = eds();
    // The same request again with nothing changed: no answer.
    const quiet = h.sent.length;
    h.request("endpoint", { names: ["outbound|api", "outbound|db"], nonce: first?.nonce, version: first?.versionInfo });
    expect(h.sent.length).toBe(quiet);
    // A cluster joins; the client re-requests the endpoints it had, unchanged: they are sent again.
    h.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"]), httpService("x", ["10.0.0.5"])));
    h.ack("cluster");
    h.request("endpoint", { names: ["outbound|api", "outbound|db"], nonce: first?.nonce, version: first?.versionInfo });
    expect(eds()).not.toBe(first);
    expect(names(eds()!)).toEqual(["outbound|api", "outbound|db"]);
    expect(eds()!.versionInfo).toBe(first?.versionInfo);
  });

  it("on NACK records the error, keeps the accepted version, and never resends the rejected content", () => {
    h.accept("cluster");
    const accepted = h.last().versionInfo;
    h.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"]), httpService("bad", ["10.0.0.3"])));
    const rejected = h.last();
    h.request("cluster", { nonce: rejected.nonce, version: accepted, error: "cluster bad: invalid" });
    expect(h.status.types.cluster).toMatchObject({
      state: "nacked",
      ackedVersion: accepted,
      lastError: { version: rejected.versionInfo, message: "cluster bad: invalid" },
    });
    const count = h.sent.length;
    // The same content again (a new snapshot generation that changes nothing) is not resent.
    h.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"]), httpService("bad", ["10.0.0.3"])));
    expect(h.sent).toHaveLength(count);
    // New content is sent.
    h.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"])));
    expect(h.sent).toHaveLength(count + 1);
  });

  it("keeps a removed cluster while the routes that stopped using it are rejected (the proxy still runs the old ones)", () => {
    h.accept("cluster");
    h.accept("listener");
    h.accept("route", ["outbound|http"]);
    const accepted = h.last().versionInfo;
    h.setRegistry(registryOf(httpService("api", ["10.0.0.1"])));
    const routes = h.last();
    expect(routes.typeUrl).toBe(TYPE_URLS.route);
    h.request("route", { names: ["outbound|http"], nonce: routes.nonce, version: accepted, error: "route rejected" });
    // Another generation that does not change the clusters still keeps db: its old routes point at it.
    h.setRegistry(registryOf(httpService("api", ["10.0.0.9"])));
    const clusters = h.last("cluster");
    expect(names(clusters!)).toEqual(["outbound|api", "outbound|db"]);
    // Once routes without db are ACKed, db goes.
    h.setRegistry(registryOf(httpService("api", ["10.0.0.9"]), httpService("web", ["10.0.0.7"])));
    h.ack("route", ["outbound|http"]);
    expect(h.last().typeUrl).toBe(TYPE_URLS.cluster);
    expect(names(h.last())).toEqual(["outbound|api", "outbound|web"]);
  });

  it("keeps a rejection standing when the next request still carries the version the client kept", () => {
    h.accept("cluster");
    h.accept("endpoint", ["outbound|api", "outbound|db"]);
    const accepted = h.last().versionInfo;
    h.setRegistry(registryOf(httpService("api", ["10.0.0.8"]), httpService("db", ["10.0.0.2"])));
    const rejected = h.last();
    expect(rejected.typeUrl).toBe(TYPE_URLS.endpoint);
    h.request("endpoint", { names: ["outbound|api", "outbound|db"], nonce: rejected.nonce, version: accepted, error: "bad endpoint" });
    // A cluster joins; Envoy re-creates its clusters and asks for the same endpoints again, still at
    // the version it kept. That is no ACK: the rejected endpoints are not sent again.
    h.setRegistry(registryOf(httpService("api", ["10.0.0.8"]), httpService("db", ["10.0.0.2"]), httpService("x", ["10.0.0.5"])));
    h.ack("cluster");
    const count = h.sent.length;
    h.request("endpoint", { names: ["outbound|api", "outbound|db"], nonce: rejected.nonce, version: accepted });
    expect(h.sent).toHaveLength(count);
    expect(h.status.types.endpoint).toMatchObject({ state: "nacked", ackedVersion: accepted });
  });

  it("answers the EDS re-request after clusters change from what the client accepted, though not from what it rejected", () => {
    h.accept("cluster");
    h.accept("endpoint", ["outbound|api", "outbound|db"]);
    const accepted = h.last("cluster").versionInfo;
    const eds = h.last();
    // api turns gRPC (its cluster changes) and x joins; the client rejects those clusters.
    const grpcApi = { ...httpService("api", ["10.0.0.1"]), protocol: "grpc" as const };
    h.setRegistry(registryOf(grpcApi, httpService("db", ["10.0.0.2"]), httpService("x", ["10.0.0.5"])));
    h.request("cluster", { nonce: h.last().nonce, version: accepted, error: "x rejected" });
    // x leaves. Against what was sent that only removes x; the client, running the old api,
    // sees api changed, re-creates it and asks for the same endpoints again.
    h.setRegistry(registryOf(grpcApi, httpService("db", ["10.0.0.2"])));
    expect(h.last().typeUrl).toBe(TYPE_URLS.cluster);
    h.ack("cluster");
    const count = h.sent.length;
    h.request("endpoint", { names: ["outbound|api", "outbound|db"], nonce: eds.nonce, version: eds.versionInfo });
    expect(h.sent).toHaveLength(count + 1);
    expect(h.last().typeUrl).toBe(TYPE_URLS.endpoint);
  });

  it("answers a reconnecting client's first EDS request when its first CDS response changed clusters, though it holds those endpoints", () => {
    h.accept("cluster");
    h.accept("endpoint", ["outbound|api", "outbound|db"]);
    const clusters = h.last("cluster").versionInfo;
    const endpoints = h.last().versionInfo;
    // A new stream: clusters changed while the client was away (x joined), endpoints of api and db did not.
    const again = new Harness();
    again.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"]), httpService("x", ["10.0.0.5"])));
    again.request("cluster", { version: clusters });
    expect(again.kinds()).toEqual(["Cluster"]);
    // Envoy re-creates the changed clusters and waits for their endpoints.
    again.request("endpoint", { names: ["outbound|api", "outbound|db"], version: endpoints });
    expect(again.kinds()).toEqual(["Cluster", "ClusterLoadAssignment"]);
    expect(again.last().versionInfo).toBe(endpoints);
  });

  it("answers a reconnected client's second first request (new names, before it read the first answer) though it reports their version", () => {
    h.accept("cluster");
    h.accept("endpoint", ["outbound|api", "outbound|db"]);
    const both = h.last().versionInfo;
    // On a new stream the client, which since dropped db, asks for api with the version it kept
    // (that of api and db), then, before reading the answer, for api and db again.
    const again = new Harness();
    again.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"])));
    again.request("endpoint", { names: ["outbound|api"], version: both });
    expect(names(again.last())).toEqual(["outbound|api"]);
    again.request("endpoint", { names: ["outbound|api", "outbound|db"], version: both });
    expect(again.sent).toHaveLength(2);
    expect(names(again.last())).toEqual(["outbound|api", "outbound|db"]);
  });

  it("answers an EDS re-request that arrived while the transport was full once it drains", () => {
    const full = new Harness({ fullAfter: 3 });
    full.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"])));
    full.accept("cluster");
    full.accept("endpoint", ["outbound|api", "outbound|db"]);
    const eds = full.last();
    // A cluster joins; writing its CDS response fills the transport.
    full.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"]), httpService("x", ["10.0.0.5"])));
    expect(full.kinds(2)).toEqual(["Cluster"]);
    full.ack("cluster");
    full.request("endpoint", { names: ["outbound|api", "outbound|db"], nonce: eds.nonce, version: eds.versionInfo });
    expect(full.sent).toHaveLength(3);
    full.drain();
    expect(full.kinds(3)).toEqual(["ClusterLoadAssignment"]);
  });

  it("answers a single-type EDS (RDS) stream's repeated request, which Envoy sends when a cluster (listener) changed on its other stream", () => {
    for (const [kind, names] of [["endpoint", ["outbound|api", "outbound|db"]], ["route", ["outbound|http"]]] as const) {
      const single = new Harness({ kinds: [kind] });
      single.setRegistry(registryOf(httpService("api", ["10.0.0.1"]), httpService("db", ["10.0.0.2"])));
      single.accept(kind, [...names]);
      const first = single.last(kind);
      expect(first.resources.length, kind).toBeGreaterThan(0);
      // The request it already sent, again: the stream cannot see the parent change, so it answers.
      single.request(kind, { names: [...names], nonce: first.nonce, version: first.versionInfo });
      expect(single.sent, kind).toHaveLength(2);
      expect(single.last(kind).resources, kind).toEqual(first.resources);
      // The answer's ACK is no repeat: nothing more.
      single.ack(kind, [...names]);
      expect(single.sent, kind).toHaveLength(2);
    }
    // An ADS stream sees its clusters: the same repeated request gets nothing (above); nor does a CDS-only stream's.
    const clusters = new Harness({ kinds: ["cluster"] });
    clusters.setRegistry(registryOf(httpService("api", ["10.0.0.1"])));
    clusters.accept("cluster");
    clusters.ack("cluster");
    expect(clusters.sent).toHaveLength(1);
  });

  it("answers a single-type EDS stream's repeated first request after a reconnect whose first one claimed the current version", () => {
    const before = new Harness({ kinds: ["endpoint"] });
    before.setRegistry(registryOf(httpService("api", ["10.0.0.1"])));
    before.accept("endpoint", ["outbound|api"]);
    const held = before.last("endpoint").versionInfo;
    // A new stream: the proxy holds the current endpoints and says so; nothing to send.
    const single = new Harness({ kinds: ["endpoint"] });
    single.setRegistry(registryOf(httpService("api", ["10.0.0.1"])));
    single.request("endpoint", { names: ["outbound|api"], version: held });
    expect(single.sent).toHaveLength(0);
    // Its cluster changed on the CDS stream: the same request again, which the cluster waits on.
    single.request("endpoint", { names: ["outbound|api"], version: held });
    expect(single.sent).toHaveLength(1);
    expect(single.last("endpoint").versionInfo).toBe(held);
  });

  it("does not resend rejected endpoints on a single-type EDS stream's repeated request", () => {
    const single = new Harness({ kinds: ["endpoint"] });
    single.setRegistry(registryOf(httpService("api", ["10.0.0.1"])));
    single.accept("endpoint", ["outbound|api"]);
    const accepted = single.last("endpoint");
    single.setRegistry(registryOf(httpService("api", ["10.0.0.9"])));
    const rejected = single.last("endpoint");
    single.request("endpoint", { names: ["outbound|api"], nonce: rejected.nonce, version: accepted.versionInfo, error: "bad endpoints" });
    // The proxy asks again with the version it kept: the rejected content is not what it gets.
    single.request("endpoint", { names: ["outbound|api"], nonce: rejected.nonce, version: accepted.versionInfo });
    expect(single.sent).toHaveLength(2);
  });

  it("ignores requests with a stale nonce", () => {
    h.request("cluster");
    const first = h.last();
    h.setRegistry(registryOf(httpService("api", ["10.0.0.1"])));
    const count = h.sent.length;
    h.request("cluster", { nonce: first.nonce, version: first.versionInfo, error: "late NACK of an old response" });
    expect(h.sent).toHaveLength(count);
    expect(h.status.types.cluster?.state).toBe("pending");
  });

  it("refuses a type it does not serve with a clear error", () => {
    expect(() =>
      h.stream.handleRequest(create(DiscoveryRequestSchema, { typeUrl: "type.googleapis.com/envoy.Nope" })),
    ).toThrow(/unsupported resource type "type.googleapis.com\/envoy.Nope"/);
  });
});
