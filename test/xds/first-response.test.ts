import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { DeltaDiscoveryRequestSchema, DeltaDiscoveryResponseSchema, type DeltaDiscoveryResponse } from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import { emptyRules } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { TYPE_URLS, type ResourceKind } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { DeltaStream } from "../../src/xds/delta-stream.ts";
import { withNonce } from "../../src/xds/encoding.ts";
import { XdsMetrics } from "../../src/xds/metrics.ts";
import { decodeDeltaDiscoveryRequest } from "../../src/xds/request-decode.ts";
import { httpService, registryOf, sidecar } from "../translate/builders.ts";

/**
 * A delta stream's first request, read from the wire, takes a shortcut: its
 * names are read once per distinct list of bytes (not once per stream), and a
 * client that holds nothing gets a response computed once for every stream
 * with the same subscription to the same resources. Each scenario runs the
 * same requests through a stream that is handed the decoded names only (the
 * general path) and checks the two answer alike, then and after a change.
 */
const logger = pino({ level: "silent" });
const services = ["web", "shop", "api", "db"];
const registry = (addresses: (service: string) => string[]) => registryOf(...services.map((service) => httpService(service, addresses(service))));
const first = registry((service) => [`10.0.${services.indexOf(service)}.1`]);
// One instance of api moved: an endpoint change.
const moved = registry((service) => [`10.0.${services.indexOf(service)}.${service === "api" ? 9 : 1}`]);

interface Request {
  readonly subscribe?: string[];
  readonly initial?: Record<string, string>;
  readonly nonce?: string;
}

class Client {
  readonly sent: DeltaDiscoveryResponse[] = [];
  readonly bodies: Uint8Array[] = [];
  readonly stream: DeltaStream;

  constructor(
    cache: ResourceCache,
    readonly proxy: Proxy,
    /** Hand the stream the wire decoding (with the names' bytes), or only the names. */
    private readonly wire: boolean,
  ) {
    this.stream = new DeltaStream(
      { streamId: 1, proxy, protocol: "delta", connectedAt: "", types: {} },
      cache,
      {
        write: (body, nonce) => {
          this.bodies.push(body);
          this.sent.push(fromBinary(DeltaDiscoveryResponseSchema, withNonce(body, nonce)));
          return true;
        },
        onDrain: () => {},
      },
      new XdsMetrics(),
      logger,
    );
  }

  request(kind: ResourceKind, { subscribe = [], initial = {}, nonce = "" }: Request): void {
    const bytes = toBinary(
      DeltaDiscoveryRequestSchema,
      create(DeltaDiscoveryRequestSchema, { typeUrl: TYPE_URLS[kind], resourceNamesSubscribe: subscribe, initialResourceVersions: initial, responseNonce: nonce }),
    );
    const decoded = decodeDeltaDiscoveryRequest(bytes).request;
    if (this.wire) expect(decoded.resourceNamesSubscribeBytes).toBeDefined();
    this.stream.handleRequest(
      this.wire
        ? decoded
        : {
            typeUrl: decoded.typeUrl,
            resourceNamesSubscribe: [...decoded.resourceNamesSubscribe],
            resourceNamesUnsubscribe: decoded.resourceNamesUnsubscribe,
            initialResourceVersions: decoded.initialResourceVersions,
            responseNonce: decoded.responseNonce,
            errorDetail: decoded.errorDetail,
          },
    );
  }

  ack(kind: ResourceKind): void {
    this.request(kind, { nonce: this.sent.at(-1)?.nonce ?? "" });
  }
}

/** What a response says, nonce apart. */
function content(response: DeltaDiscoveryResponse | undefined): unknown {
  if (!response) return null;
  return {
    typeUrl: response.typeUrl,
    systemVersionInfo: response.systemVersionInfo,
    resources: response.resources.map((resource) => [resource.name, resource.version]),
    removed: response.removedResources,
  };
}

const endpointNames = (cache: ResourceCache, proxy: Proxy): string[] => [...cache.viewFor(proxy)!.resources.endpoint.keys()];

describe("a delta stream's first request read from the wire", () => {
  const web = sidecar("web-1", "web", 8080);
  const scenarios: [string, ResourceKind, (cache: ResourceCache) => Request][] = [
    ["every endpoint of the view", "endpoint", (cache) => ({ subscribe: endpointNames(cache, web) })],
    ["names in another order, repeated, and one that does not exist", "endpoint", (cache) => ({ subscribe: ["outbound|80||nope", ...endpointNames(cache, web).reverse(), endpointNames(cache, web)[0]!] })],
    ["some of the view's endpoints", "endpoint", (cache) => ({ subscribe: endpointNames(cache, web).slice(1) })],
    ['"*" and a name', "cluster", (cache) => ({ subscribe: ["*", [...cache.viewFor(web)!.resources.cluster.keys()][0]!, "outbound|80||nope"] })],
    ["a reconnect that holds some endpoints already", "endpoint", (cache) => {
      const view = cache.viewFor(web)!.resources.endpoint;
      const [held] = [...view.values()];
      return { subscribe: [...view.keys()], initial: { [held!.name]: held!.version, "outbound|80||gone": "v0" } };
    }],
  ];

  for (const [name, kind, requestOf] of scenarios) {
    it(`answers as the general path does: ${name}`, () => {
      const cache = new ResourceCache(translate, () => [], logger);
      cache.setSnapshot(buildSnapshot(first, emptyRules));
      const request = requestOf(cache);
      const [wire, plain] = [true, false].map((fromWire) => new Client(cache, web, fromWire)) as [Client, Client];
      for (const client of [wire, plain]) {
        client.request(kind, request);
        client.ack(kind);
      }
      expect(wire.sent.length).toBe(1);
      expect(content(wire.sent[0])).toEqual(content(plain.sent[0]));
      expect(wire.sent[0]!.resources.length + wire.sent[0]!.removedResources.length).toBeGreaterThan(0);
      // What each stream recorded the client to hold is the same too: the next change reaches both alike.
      cache.setSnapshot(buildSnapshot(moved, emptyRules));
      for (const client of [wire, plain]) client.stream.refresh();
      expect(wire.sent.length).toBe(plain.sent.length);
      expect(content(wire.sent.at(-1))).toEqual(content(plain.sent.at(-1)));
    });
  }

  it("shares one response among streams of views over the same parts, and not with a view over other parts", () => {
    const cache = new ResourceCache(translate, () => [], logger);
    cache.setSnapshot(buildSnapshot(first, emptyRules));
    // With no dependencies declared, every view holds every service's endpoints.
    const names = endpointNames(cache, web);
    const [a, b] = [web, sidecar("web-2", "web", 8080)].map((proxy) => new Client(cache, proxy, true)) as [Client, Client];
    a.request("endpoint", { subscribe: names });
    b.request("endpoint", { subscribe: names });
    expect(b.bodies[0]).toBe(a.bodies[0]);
    // A list of as many bytes that differs in one character is read as itself.
    const other = [...names.slice(0, -1), `${names.at(-1)!.slice(0, -1)}~`];
    const [c, plainC] = [true, false].map((fromWire) => new Client(cache, sidecar("web-3", "web", 8080), fromWire)) as [Client, Client];
    c.request("endpoint", { subscribe: other });
    plainC.request("endpoint", { subscribe: other });
    expect(content(c.sent[0])).toEqual(content(plainC.sent[0]));
    expect(c.sent[0]!.removedResources).toEqual([other.at(-1)]);

    // After an endpoint change a new view (db's, first asked now) is over other parts than web's view was.
    cache.setSnapshot(buildSnapshot(moved, emptyRules));
    const db = new Client(cache, sidecar("db-1", "db", 8080), true);
    const plain = new Client(cache, sidecar("db-2", "db", 8080), false);
    db.request("endpoint", { subscribe: names });
    plain.request("endpoint", { subscribe: names });
    expect(db.bodies[0]).not.toBe(a.bodies[0]);
    expect(content(db.sent[0])).toEqual(content(plain.sent[0]));
    expect(content(db.sent[0])).not.toEqual(content(a.sent[0]));
  });
});
