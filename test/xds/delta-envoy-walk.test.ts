import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { DeltaDiscoveryRequestSchema, DeltaDiscoveryResponseSchema, type DeltaDiscoveryResponse } from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import { RESOURCE_KINDS, TYPE_URLS, type ResourceKind } from "../../src/translate/resource-types.ts";
import type { ResourceCache } from "../../src/xds/cache.ts";
import { DeltaStream } from "../../src/xds/delta-stream.ts";
import { EndpointPeers } from "../../src/xds/endpoint-peers.ts";
import { XdsMetrics } from "../../src/xds/metrics.ts";
import { decodeDeltaDiscoveryRequest } from "../../src/xds/request-decode.ts";
import { sidecar } from "../translate/builders.ts";
import { debugClient, edsNames, Links, logger, type Link, rdsNames, resourceName, routedClusters, seeds, walk, type WalkClient } from "./envoy-walk.ts";

/**
 * Random walks of a mesh (envoy-walk.ts) served to delta ADS clients that
 * behave as Envoy does: CDS and LDS by wildcard, EDS and RDS subscribed and
 * unsubscribed by the names their clusters and listeners use, every response
 * ACKed (or now and then NACKed), reconnecting with what they hold as initial
 * versions. New clusters (listeners) wait for an answer about their endpoints
 * (routes); an updated cluster waits for its endpoints again, which Envoy does
 * not re-request in delta, so the server must resend them. After every step
 * each client must hold exactly the view's resources it subscribes to, at the
 * view's versions, with nothing left warming; after every response it
 * applies, no route may point at a cluster it does not hold.
 * delta-walk.test.ts walks the subscription rules themselves (names and the
 * wildcard subscribed and unsubscribed at random).
 */

interface TypeState {
  /** Resources held: the Any's value (base64) and the version, by name. */
  held: Map<string, string>;
  versions: Map<string, string>;
  /** Names subscribed to (EDS and RDS; CDS and LDS are wildcard). */
  names: Set<string>;
  /** Versions rejected by name ("" for a removal rejected), standing until a newer one arrives. */
  rejected: Map<string, string>;
  /** How many responses the stream had written when it read the last rejection. */
  rejectedAt: number;
  /** Names waiting for an answer: subscribed to, or endpoints of clusters that changed. */
  waiting: Set<string>;
  /** How many responses the stream had written when each name was last unsubscribed. */
  unsubscribedAt: Map<string, number>;
  /** Endpoints: names whose cluster came in a response since (accepted or not): the server owes them again. */
  owed: Set<string>;
}

/** The server's registry of EDS-only streams by proxy, one per walk (its cache), as the server has one. */
const peersOf = new WeakMap<ResourceCache, EndpointPeers>();

/**
 * An Envoy-like delta client on one ADS stream or, `perType`, on the four
 * single-type services, each its own stream. Those cannot order one type's
 * responses after another's: neither make-before-break nor clusters kept for
 * rejected routes are expected then. An updated cluster's endpoints are: the
 * CDS stream tells the proxy's EDS stream (endpoint-peers.ts).
 */
class DeltaEnvoyClient implements WalkClient {
  readonly types = Object.fromEntries(
    RESOURCE_KINDS.map((kind): [ResourceKind, TypeState] => [
      kind,
      { held: new Map(), versions: new Map(), names: new Set(), rejected: new Map(), rejectedAt: 0, waiting: new Set(), unsubscribedAt: new Map(), owed: new Set() },
    ]),
  ) as Record<ResourceKind, TypeState>;
  private readonly links: Links<DeltaStream, DeltaDiscoveryResponse>;
  responses = 0;
  step = "connecting";
  /** Reconnected while listeners or routes were rejected, and not accepted new routes since. */
  private routesMayDangle = false;
  /** Clusters the client ever rejected (on any stream): routes accepted since may point at them. */
  private readonly rejectedClusters = new Set<string>();

  constructor(
    private readonly cache: ResourceCache,
    readonly proxy: Proxy,
    private readonly rng: () => number,
    private readonly legacyWildcard: boolean,
    private readonly perType = false,
  ) {
    // The streams share one connection: the client reads responses in the order they were written.
    this.links = new Links(perType, rng, (bytes) => fromBinary(DeltaDiscoveryResponseSchema, bytes), { written: 0 });
    this.connect();
  }

  refresh(): void {
    this.links.refresh();
  }

  close(): void {
    this.links.close();
  }

  /** New streams, as after a lost connection: every stream, or now and then one of a client's single-type streams. */
  connect(): void {
    const lost = this.links.toRenew(this.rng);
    let peers = peersOf.get(this.cache);
    if (!peers) peersOf.set(this.cache, (peers = new EndpointPeers()));
    this.links.renew(lost, (kinds, sink) => new DeltaStream({ streamId: 1, proxy: this.proxy, protocol: "delta", connectedAt: "", types: {} }, this.cache, sink, new XdsMetrics(), logger, kinds, peers));
    const renewed = (kind: ResourceKind) => lost.includes(this.links.of(kind));
    // A new stream knows nothing of the old one's rejections: it cannot keep clusters rejected routes use.
    this.routesMayDangle ||= this.types.listener.rejected.size > 0 || this.types.route.rejected.size > 0;
    for (const kind of RESOURCE_KINDS) if (renewed(kind)) this.types[kind].rejected.clear();
    const wildcard = this.legacyWildcard ? [] : ["*"];
    if (renewed("cluster")) this.request("cluster", { subscribe: wildcard, initial: true });
    if (renewed("listener")) this.request("listener", { subscribe: wildcard, initial: true });
    for (const kind of ["endpoint", "route"] as const) {
      const state = this.types[kind];
      if (state.names.size === 0 || !renewed(kind)) continue;
      // Names held are not sent again at the version held; the rest are answered.
      for (const name of state.names) if (!state.versions.has(name)) state.waiting.add(name);
      this.request(kind, { subscribe: [...state.names], initial: true });
    }
    this.drain();
  }

  private request(kind: ResourceKind, o: { subscribe?: string[]; unsubscribe?: string[]; nonce?: string; error?: string; initial?: boolean }): void {
    const state = this.types[kind];
    const request = create(DeltaDiscoveryRequestSchema, {
      typeUrl: TYPE_URLS[kind],
      resourceNamesSubscribe: o.subscribe ?? [],
      resourceNamesUnsubscribe: o.unsubscribe ?? [],
      responseNonce: o.nonce ?? "",
      initialResourceVersions: o.initial ? Object.fromEntries(state.versions) : {},
      errorDetail: o.error ? { code: 3, message: o.error } : undefined,
    });
    if (debugClient === this.proxy.id) console.log(`-> ${kind} n${o.nonce ?? ""} +[${(o.subscribe ?? []).join(" ")}] -[${(o.unsubscribe ?? []).join(" ")}]${o.error ? " NACK" : ""}${o.initial ? " initial" : ""}`);
    this.links.of(kind).stream?.handleRequest(decodeDeltaDiscoveryRequest(toBinary(DeltaDiscoveryRequestSchema, request)).request);
  }

  /**
   * Reads every response in the order the server wrote them, across the
   * client's streams, as over one HTTP/2 connection: an updated cluster's
   * endpoints, which a single-type EDS stream sends when told by the CDS
   * stream, then arrive after the cluster.
   */
  drain(): void {
    const receive = (response: DeltaDiscoveryResponse, seq: number) => this.receive(response, seq);
    for (;;) {
      let next: Link<DeltaStream, DeltaDiscoveryResponse> | null = null;
      for (const link of this.links.all) {
        const order = link.transport.nextOrder;
        if (order !== null && (next === null || order < (next.transport.nextOrder as number))) next = link;
      }
      next ??= this.links.all.find((link) => !link.transport.idle) ?? null;
      if (next === null) return;
      next.transport.readNext(receive);
    }
  }

  private receive(response: DeltaDiscoveryResponse, seq: number): void {
    this.responses++;
    const kind = RESOURCE_KINDS.find((each) => TYPE_URLS[each] === response.typeUrl);
    if (!kind) throw new Error(`response of unknown type ${response.typeUrl}`);
    const state = this.types[kind];
    const wildcard = kind === "cluster" || kind === "listener";
    if (debugClient === this.proxy.id) {
      console.log(`<- ${kind} n${response.nonce} [${response.resources.map((r) => `${r.name}@${r.version.slice(0, 4)}`).join(" ")}] removed [${response.removedResources.join(" ")}]`);
    }
    expect(response.resources.length + response.removedResources.length, `${this.step}: a ${kind} response with nothing in it`).toBeGreaterThan(0);
    for (const resource of response.resources) {
      // A version rejected is not sent again once the stream has read the NACK, unless the name is owed an answer.
      const owed = state.waiting.has(resource.name) || state.owed.has(resource.name);
      const again = seq > state.rejectedAt && state.rejected.get(resource.name) === resource.version && !owed;
      expect(again, `${this.step}: ${this.proxy.id} ${kind} ${resource.name} sent again at the version the client rejected`).toBe(false);
    }
    for (const name of response.removedResources) {
      // (Or unsubscribed after the stream wrote the response.)
      const news = wildcard || state.held.has(name) || state.names.has(name) || seq <= (state.unsubscribedAt.get(name) ?? 0);
      expect(news, `${this.step}: ${this.proxy.id} ${kind} removal of ${name}, neither held nor subscribed`).toBe(true);
    }
    const answered = [...response.resources.map((resource) => resource.name), ...response.removedResources];
    // Answered, even if rejected: Envoy finishes warming a cluster on a rejected update too.
    for (const name of answered) state.waiting.delete(name);
    for (const name of answered) state.owed.delete(name);
    // A cluster sent again (updated) owes its endpoints again, whether the client takes it or not.
    if (kind === "cluster") for (const resource of response.resources) this.types.endpoint.owed.add(resource.name);
    if (this.rng() < 0.05) {
      // Rejected: the client keeps what it had, removals included.
      for (const resource of response.resources) state.rejected.set(resource.name, resource.version);
      if (kind === "cluster") for (const resource of response.resources) this.rejectedClusters.add(resource.name);
      for (const name of response.removedResources) state.rejected.set(name, "");
      state.rejectedAt = this.links.of(kind).transport.written;
      this.request(kind, { nonce: response.nonce, error: "rejected by the walk" });
      return;
    }
    const previous = new Map(state.held);
    for (const resource of response.resources) {
      if (!resource.resource) throw new Error(`${kind} ${resource.name} without a resource`);
      expect(resourceName(kind, resource.resource), `${kind} resource named as its content`).toBe(resource.name);
      state.held.set(resource.name, Buffer.from(resource.resource.value).toString("base64"));
      state.versions.set(resource.name, resource.version);
      state.rejected.delete(resource.name);
    }
    for (const name of response.removedResources) {
      state.held.delete(name);
      state.versions.delete(name);
      state.rejected.delete(name);
    }
    if (kind === "route") this.routesMayDangle = false;
    this.checkRoutesResolve(`after a ${kind} response`);
    const ackFirst = this.rng() < 0.5;
    if (ackFirst) this.request(kind, { nonce: response.nonce });
    if (kind === "cluster" || kind === "listener") this.resubscribe(kind, previous);
    if (!ackFirst) this.request(kind, { nonce: response.nonce });
  }

  /** Clusters (listeners) changed: subscribe to the endpoints (routes) new ones use, drop what none uses. */
  private resubscribe(kind: "cluster" | "listener", previous: ReadonlyMap<string, string>): void {
    const child = kind === "cluster" ? "endpoint" : "route";
    const parent = this.types[kind];
    const state = this.types[child];
    const wanted = new Set(kind === "cluster" ? edsNames(parent.held) : rdsNames(parent.held));
    const subscribe = [...wanted].filter((name) => !state.names.has(name));
    const unsubscribe = [...state.names].filter((name) => !wanted.has(name));
    for (const name of subscribe) {
      state.names.add(name);
      state.waiting.add(name);
    }
    for (const name of unsubscribe) {
      state.unsubscribedAt.set(name, this.links.of(child).transport.written);
      state.names.delete(name);
      state.held.delete(name);
      state.versions.delete(name);
      state.waiting.delete(name);
      state.rejected.delete(name);
    }
    if (kind === "cluster") {
      // An updated cluster is re-created and waits for its endpoints, which Envoy does not ask for again.
      const updated = [...parent.held].filter(([name, value]) => previous.has(name) && previous.get(name) !== value).map(([name]) => name);
      for (const name of edsNames(new Map(updated.map((name) => [name, parent.held.get(name) as string])))) if (state.names.has(name)) state.waiting.add(name);
    }
    if (subscribe.length > 0 || unsubscribe.length > 0) this.request(child, { subscribe, unsubscribe });
  }

  private checkRoutesResolve(when: string): void {
    if (this.perType || this.types.cluster.rejected.size > 0 || this.routesMayDangle) return;
    const { cluster, route: routes, listener } = this.types;
    for (const name of routedClusters(routes.held, listener.held)) {
      if (this.rejectedClusters.has(name)) continue;
      expect(cluster.held.has(name), `${this.step}: ${this.proxy.id} ${when}: a route points at cluster ${name}, not held`).toBe(true);
    }
  }

  check(step: string): void {
    const view = this.cache.viewFor(this.proxy);
    if (!view) throw new Error("no view");
    for (const kind of RESOURCE_KINDS) {
      const state = this.types[kind];
      const where = `${step}: ${this.proxy.id} ${kind}`;
      expect([...state.waiting], `${where}: left waiting`).toEqual([]);
      const wildcard = kind === "cluster" || kind === "listener";
      const expected = new Map<string, string>();
      for (const [name, resource] of view.resources[kind]) if (wildcard || state.names.has(name)) expected.set(name, resource.version);
      const names = new Set([...expected.keys(), ...state.versions.keys()]);
      // Clusters that left stay while the listeners or routes that used them are rejected.
      const keepsLeft = !this.perType && kind === "cluster" && (this.types.listener.rejected.size > 0 || this.types.route.rejected.size > 0);
      for (const name of names) {
        const want = expected.get(name);
        const rejected = state.rejected.get(name);
        // A standing rejection of what the view still says: the client keeps what it had.
        if (rejected !== undefined && rejected === (want ?? "")) continue;
        if (want === undefined && keepsLeft) continue;
        expect(state.versions.get(name), `${where} ${name}`).toBe(want);
        if (want !== undefined) {
          const resource = view.resources[kind].get(name);
          expect(state.held.get(name), `${where} ${name} content`).toBe(Buffer.from(fromBinary(AnySchema, resource!.any).value).toString("base64"));
        }
      }
    }
  }
}

describe("delta streams to Envoy-like clients on a random walk", () => {
  for (const seed of seeds) {
    it(`hold exactly what the protocol says after every step (seed ${seed})`, () =>
      walk(seed, 150, (cache, rng) => [
        new DeltaEnvoyClient(cache, sidecar("client-1", "client", 8080), rng, false),
        new DeltaEnvoyClient(cache, sidecar("client-2", "client", 8080), rng, true),
        new DeltaEnvoyClient(cache, sidecar("a-1", "a", 8080), rng, false),
      ], (cache, rng, id, service) => new DeltaEnvoyClient(cache, sidecar(id, service, 8080), rng, rng() < 0.5)));
  }
});

describe("delta single-type streams (CDS, EDS, LDS, RDS) to Envoy-like clients on a random walk", () => {
  for (const seed of seeds) {
    it(`hold exactly what the protocol says after every step (seed ${seed})`, () =>
      walk(seed, 150, (cache, rng) => [
        new DeltaEnvoyClient(cache, sidecar("client-1", "client", 8080), rng, false, true),
        new DeltaEnvoyClient(cache, sidecar("client-2", "client", 8080), rng, true, true),
        new DeltaEnvoyClient(cache, sidecar("a-1", "a", 8080), rng, false, true),
        // Beside an ADS client of the same service, whose streams share the view.
        new DeltaEnvoyClient(cache, sidecar("client-3", "client", 8080), rng, false),
      ], (cache, rng, id, service) => new DeltaEnvoyClient(cache, sidecar(id, service, 8080), rng, rng() < 0.5, true)));
  }
});
