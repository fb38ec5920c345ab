import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { DiscoveryRequestSchema, DiscoveryResponseSchema, type DiscoveryResponse } from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import { RESOURCE_KINDS, TYPE_URLS, type ResourceKind } from "../../src/translate/resource-types.ts";
import type { ResourceCache } from "../../src/xds/cache.ts";
import { XdsMetrics } from "../../src/xds/metrics.ts";
import { decodeDiscoveryRequest } from "../../src/xds/request-decode.ts";
import { SotwStream } from "../../src/xds/sotw-stream.ts";
import { proxyless, sidecar } from "../translate/builders.ts";
import { debugClient, edsNames, Links, logger, type Link, rdsNames, resourceName, routedClusters, sameHeld, seeds, walk, type Held, type WalkClient } from "./envoy-walk.ts";

/**
 * Random walks of a mesh (envoy-walk.ts) served to state-of-the-world ADS
 * clients that behave as Envoy does: CDS and LDS by wildcard, EDS and RDS by
 * the names their clusters and listeners use, every response ACKed (or now and
 * then NACKed), and a request for endpoints (routes) after clusters
 * (listeners) change, whose answer the new ones wait for. After every step
 * each client must hold exactly what its view says for what it subscribes to,
 * with nothing left warming; after every response it applies, no route may
 * point at a cluster it does not hold. The streams share targets and response
 * bodies between views (cache.ts); the walk checks them against the protocol,
 * not against another implementation.
 */

interface TypeState {
  /** The last version accepted ("" before any), and the nonce of the last response received. */
  version: string;
  nonce: string;
  held: Held;
  /** Names subscribed to (EDS and RDS; CDS and LDS are wildcard). */
  names: string[];
  /** Content NACKed and not yet followed by an ACK of this type: the server must not send it again. */
  rejected: Held | null;
  /** How many responses the stream had written when it read the rejection. */
  rejectedAt: number;
  /** Resources changed by a parent response that wait for this type's answer (Envoy's warming). */
  warming: boolean;
  /**
   * Resources were dropped (no longer watched) since the version was accepted:
   * the version no longer says what the client holds, and a new stream that
   * trusts it may leave the client short until the content next changes.
   */
  partial: boolean;
}

/**
 * How a client subscribes. Envoy: CDS and LDS by wildcard ("*", or the legacy
 * empty list), EDS and RDS by the names its clusters and listeners use; a new
 * or changed cluster (listener) waits for its endpoints (routes). gRPC: LDS by
 * the targets it dials, RDS by its listeners' names, CDS by the clusters its
 * routes use, EDS by its clusters' names; every subscribed name waits for its
 * resource.
 */
type Flavour = { readonly kind: "envoy"; readonly legacyWildcard: boolean } | { readonly kind: "grpc"; readonly targets: readonly string[] };

/** Which type's names follow from each type's resources. */
const CHILD: Record<Flavour["kind"], Partial<Record<ResourceKind, ResourceKind>>> = {
  envoy: { cluster: "endpoint", listener: "route" },
  grpc: { listener: "route", route: "cluster", cluster: "endpoint" },
};

/**
 * An Envoy-like (or gRPC-like) client on one SotW ADS stream or, `perType`,
 * on the four single-type services (CDS, EDS, LDS, RDS), each its own stream:
 * the server then cannot order one type's responses after another's, so
 * neither make-before-break nor clusters kept for rejected routes is checked.
 */
class SotwClient implements WalkClient {
  readonly types = Object.fromEntries(
    RESOURCE_KINDS.map((kind): [ResourceKind, TypeState] => [kind, { version: "", nonce: "", held: new Map(), names: [], rejected: null, rejectedAt: 0, warming: false, partial: false }]),
  ) as Record<ResourceKind, TypeState>;
  private readonly links: Links<SotwStream, DiscoveryResponse>;
  /** Types a request was sent for since their last response: a response that changes nothing must answer one. */
  private readonly asked = new Set<ResourceKind>();
  responses = 0;
  /** Has had more than one stream. */
  private reconnected = false;
  /** Reconnected while listeners or routes were rejected, and not accepted new ones since. */
  private routesMayDangle = false;
  /** The walk's step, for messages. */
  step = "connecting";

  constructor(
    private readonly cache: ResourceCache,
    readonly proxy: Proxy,
    private readonly rng: () => number,
    private readonly flavour: Flavour,
    private readonly perType = false,
  ) {
    this.links = new Links(perType, rng, (bytes) => fromBinary(DiscoveryResponseSchema, bytes));
    if (flavour.kind === "grpc") this.types.listener.names = [...flavour.targets].sort();
    this.connect();
  }

  private wildcard(kind: ResourceKind): boolean {
    return this.flavour.kind === "envoy" && (kind === "cluster" || kind === "listener");
  }

  /** What the client lists for `kind`. */
  private namesOf(kind: ResourceKind): string[] {
    if (!this.wildcard(kind)) return this.types[kind].names;
    return this.flavour.kind === "envoy" && this.flavour.legacyWildcard ? [] : ["*"];
  }

  refresh(): void {
    this.links.refresh();
  }

  close(): void {
    this.links.close();
  }

  /**
   * New streams, as after a lost connection: every stream, or now and then
   * one of a client's single-type streams. Their first requests carry what the
   * client holds (nothing, the first time).
   */
  connect(): void {
    this.reconnected ||= this.links.opened;
    const lost = this.links.toRenew(this.rng);
    this.links.renew(lost, (kinds, sink) => new SotwStream({ streamId: 1, proxy: this.proxy, protocol: "sotw", connectedAt: "", types: {} }, this.cache, sink, new XdsMetrics(), logger, kinds));
    // A new stream knows nothing of what the old one was told was rejected, so
    // it cannot keep clusters that rejected listeners or routes still use.
    this.routesMayDangle ||= this.types.listener.rejected !== null || this.types.route.rejected !== null;

    const order: readonly ResourceKind[] = this.flavour.kind === "envoy" ? ["cluster", "listener", "endpoint", "route"] : ["listener", "route", "cluster", "endpoint"];
    const renewed = order.filter((kind) => lost.includes(this.links.of(kind)));
    for (const kind of renewed) {
      Object.assign(this.types[kind], { nonce: "", rejected: null });
      this.asked.delete(kind);
    }
    for (const kind of renewed) if (this.wildcard(kind) || this.types[kind].names.length > 0) this.request(kind, this.namesOf(kind));
    this.drain();
  }

  private request(kind: ResourceKind, names: string[], error?: string): void {
    const state = this.types[kind];
    const request = create(DiscoveryRequestSchema, {
      typeUrl: TYPE_URLS[kind],
      versionInfo: state.version,
      resourceNames: names,
      responseNonce: state.nonce,
      errorDetail: error ? { code: 3, message: error } : undefined,
    });
    if (!error) this.asked.add(kind);
    if (debugClient === this.proxy.id) console.log(`-> ${kind} v${state.version.slice(0, 10)} n${state.nonce} [${names.join(" ")}]${error ? " NACK" : ""}`);
    this.links.of(kind).stream?.handleRequest(decodeDiscoveryRequest(toBinary(DiscoveryRequestSchema, request)).request);
  }

  /** Applies (or rejects) every response received, in order per stream, answering each as Envoy does; streams are read in turn. */
  drain(): void {
    for (;;) {
      const busy = this.links.all.filter((link) => !link.transport.idle);
      if (busy.length === 0) return;
      const link = (busy.length === 1 ? busy[0] : busy[Math.floor(this.rng() * busy.length)]) as Link<SotwStream, DiscoveryResponse>;
      link.transport.drain((response, seq) => this.receive(response, seq));
    }
  }

  private receive(response: DiscoveryResponse, seq: number): void {
    this.responses++;
    const kind = RESOURCE_KINDS.find((each) => TYPE_URLS[each] === response.typeUrl);
    if (!kind) throw new Error(`response of unknown type ${response.typeUrl}`);
    const state = this.types[kind];
    const content = new Map(response.resources.map((any) => [resourceName(kind, any), Buffer.from(any.value).toString("base64")]));
    if (debugClient === this.proxy.id) console.log(`<- ${kind} v${response.versionInfo.slice(0, 10)} n${response.nonce} [${[...content.keys()].join(" ")}]`);
    // Content rejected is not sent again, once the stream has read the NACK.
    const afterNack = state.rejected !== null && seq > state.rejectedAt;
    expect(afterNack && sameHeld(state.rejected as Held, content), `${this.step}: ${this.proxy.id} ${kind}: sent again the content the client rejected`).toBe(false);
    // A response that changes nothing is only owed to a request (a parent changed, or the names did),
    // or, after a rejection, the content the client went back to.
    if (sameHeld(content, state.held) && state.version !== "" && state.rejected === null) {
      expect(this.asked.has(kind), `${kind}: a response that changes nothing, unasked`).toBe(true);
    }
    this.asked.delete(kind);
    state.nonce = response.nonce;
    state.warming = false;
    const names = this.namesOf(kind);
    // (A client rejects content, so never what it already runs.)
    if (this.rng() < 0.05 && !sameHeld(content, state.held)) {
      // Rejected: the client keeps what it had and says so with its last accepted version.
      state.rejected = content;
      state.rejectedAt = this.links.of(kind).transport.written;
      this.request(kind, names, "rejected by the walk");
      return;
    }
    const previous = state.held;
    // gRPC: clusters its routes still use must not go (it cannot keep them as Envoy does).
    const inUse = kind === "cluster" ? [...routedClusters(this.types.route.held, this.types.listener.held)].filter((name) => previous.has(name)) : [];
    state.held = content;
    state.version = response.versionInfo;
    state.rejected = null;
    state.partial = false;
    if (kind === "route") this.routesMayDangle = false;
    if (this.perType) {
      // No order across streams: routes may point at clusters not yet (or no longer) held.
    } else if (this.flavour.kind === "envoy") this.checkRoutesResolve(`after a ${kind} response`);
    else if (this.types.route.rejected === null && this.types.listener.rejected === null && !this.routesMayDangle) {
      for (const name of inUse) expect(content.has(name), `${this.step}: ${this.proxy.id}: cluster ${name} dropped while its routes use it`).toBe(true);
    }
    const child = CHILD[this.flavour.kind][kind];
    if (!child) return this.request(kind, names);
    // Clusters (listeners) that are new or changed wait for their endpoints (routes):
    // the child's names go out again, changed or not, and the parent's ACK, in either order.
    // Names no cluster (listener) uses any more are dropped.
    const changed = [...content].some(([name, value]) => previous.get(name) !== value);
    const childNames =
      child === "endpoint" ? edsNames(content) : child === "route" ? rdsNames(content) : [...routedClusters(content, this.types.listener.held)].sort();
    const childState = this.types[child];
    const namesChanged = childNames.join("\n") !== childState.names.join("\n");
    const resubscribe = namesChanged || (changed && childNames.length > 0);
    const ackFirst = this.rng() < 0.5;
    if (ackFirst) this.request(kind, names);
    if (resubscribe) {
      childState.names = childNames;
      childState.warming ||= this.flavour.kind === "envoy" && changed && childNames.length > 0;
      // What no cluster (listener) watches any more is forgotten.
      const watched = new Map([...childState.held].filter(([name]) => childNames.includes(name)));
      childState.partial ||= watched.size < childState.held.size;
      childState.held = watched;
      this.request(child, childNames);
    }
    if (!ackFirst) this.request(kind, names);
  }

  /** Make-before-break: no route held points at a cluster not held (unless a rejection left the client behind). */
  checkRoutesResolve(when: string): void {
    // Clusters the client rejected may be what new routes point at.
    if (this.types.cluster.rejected !== null || this.routesMayDangle) return;
    const { cluster, route: routes, listener } = this.types;
    for (const name of routedClusters(routes.held, listener.held)) {
      expect(cluster.held.has(name), `${this.step}: ${this.proxy.id} ${when}: a route points at cluster ${name}, not held (rejected: ${RESOURCE_KINDS.filter((each) => this.types[each].rejected !== null).join(",")})`).toBe(true);
    }
  }

  /** What the client must hold of `kind` given its view (and what a standing rejection kept). */
  check(step: string): void {
    const view = this.cache.viewFor(this.proxy);
    if (!view) throw new Error("no view");
    for (const kind of RESOURCE_KINDS) {
      const state = this.types[kind];
      const expected = new Map<string, string>();
      const subscribed = this.wildcard(kind) ? null : new Set(state.names);
      for (const [name, resource] of view.resources[kind]) {
        if (subscribed && !subscribed.has(name)) continue;
        expected.set(name, Buffer.from(fromBinary(AnySchema, resource.any).value).toString("base64"));
      }
      const where = `${step}: ${this.proxy.id} ${kind} (rejected: ${RESOURCE_KINDS.filter((each) => this.types[each].rejected !== null).join(",")})`;
      // Clusters that left stay while the listeners or routes that used them are rejected.
      const keepsLeft = !this.perType && kind === "cluster" && (this.types.listener.rejected !== null || this.types.route.rejected !== null);
      const holds = (content: Held) => [...expected].every(([name, value]) => content.get(name) === value) && (keepsLeft || content.size === expected.size);
      // A rejection stands while the view still holds the rejected content: the client keeps what it
      // had, and is not sent it again, even for clusters (listeners) waiting for it, which Envoy
      // activates after its initial fetch timeout.
      if (state.rejected !== null && holds(state.rejected)) continue;
      expect(state.warming, `${where} left warming`).toBe(false);
      if (state.partial && this.reconnected) {
        // What it holds is current; what it dropped and subscribed to again may be missing.
        for (const [name, value] of state.held) expect(value, `${where} ${name}`).toBe(expected.get(name));
        continue;
      }
      const held = keepsLeft ? [...state.held.keys()].filter((name) => expected.has(name)) : [...state.held.keys()];
      expect(held.sort(), where).toEqual([...expected.keys()].sort());
      for (const [name, value] of expected) expect(state.held.get(name), `${where} ${name}`).toBe(value);
    }
  }
}

describe("SotW streams on a random walk", () => {
  for (const seed of seeds) {
    it(`hold exactly what the protocol says after every step (seed ${seed})`, () =>
      walk(seed, 150, (cache, rng) => [
        // Two proxies of one service (one view, shared targets), one legacy-wildcard; and one of another service.
        new SotwClient(cache, sidecar("client-1", "client", 8080), rng, { kind: "envoy", legacyWildcard: false }),
        new SotwClient(cache, sidecar("client-2", "client", 8080), rng, { kind: "envoy", legacyWildcard: true }),
        new SotwClient(cache, sidecar("a-1", "a", 8080), rng, { kind: "envoy", legacyWildcard: false }),
        // Proxyless gRPC, dialing services that come and go.
        new SotwClient(cache, proxyless("grpc-1", "client", "grpc-node-js/1.12.0"), rng, { kind: "grpc", targets: ["a", "c", "f"] }),
      ], (cache, rng, id, service) =>
        // Sidecars of either wildcard, or gRPC clients dialing a few services.
        rng() < 0.7
          ? new SotwClient(cache, sidecar(id, service, 8080), rng, { kind: "envoy", legacyWildcard: rng() < 0.5 })
          : new SotwClient(cache, proxyless(id, service, "grpc-node-js/1.12.0"), rng, { kind: "grpc", targets: ["a", "b", "c", "d", "e", "f", "client"].filter(() => rng() < 0.4) }),
      ));
  }
});

describe("SotW single-type streams (CDS, EDS, LDS, RDS) on a random walk", () => {
  for (const seed of seeds) {
    it(`hold exactly what the protocol says after every step (seed ${seed})`, () =>
      walk(seed, 150, (cache, rng) => [
        new SotwClient(cache, sidecar("client-1", "client", 8080), rng, { kind: "envoy", legacyWildcard: false }, true),
        new SotwClient(cache, sidecar("client-2", "client", 8080), rng, { kind: "envoy", legacyWildcard: true }, true),
        new SotwClient(cache, sidecar("a-1", "a", 8080), rng, { kind: "envoy", legacyWildcard: false }, true),
        // Beside an ADS client of the same service, whose streams share the view.
        new SotwClient(cache, sidecar("client-3", "client", 8080), rng, { kind: "envoy", legacyWildcard: false }),
      ], (cache, rng, id, service) => new SotwClient(cache, sidecar(id, service, 8080), rng, { kind: "envoy", legacyWildcard: rng() < 0.5 }, true)));
  }
});
