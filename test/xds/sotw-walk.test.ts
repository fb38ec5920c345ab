import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyUnpack, AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Cluster_DiscoveryType, ClusterSchema } from "../../src/gen/envoy/config/cluster/v3/cluster_pb.ts";
import { ClusterLoadAssignmentSchema } from "../../src/gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import { ListenerSchema } from "../../src/gen/envoy/config/listener/v3/listener_pb.ts";
import { RouteConfigurationSchema } from "../../src/gen/envoy/config/route/v3/route_pb.ts";
import { HttpConnectionManagerSchema } from "../../src/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.ts";
import { DiscoveryRequestSchema, DiscoveryResponseSchema, type DiscoveryResponse } from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import type { Service } from "../../src/model/registry.ts";
import type { HttpRoute, RuleSet, ServiceDependency, Subset } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { RESOURCE_KINDS, TYPE_URLS, type ResourceKind } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { withNonce } from "../../src/xds/encoding.ts";
import { XdsMetrics } from "../../src/xds/metrics.ts";
import { decodeDiscoveryRequest } from "../../src/xds/request-decode.ts";
import { SotwStream } from "../../src/xds/sotw-stream.ts";
import { seededRandom } from "../support/seeded-random.ts";
import { instance, registryOf, route, sidecar } from "../translate/builders.ts";

/**
 * Random walks of a mesh (services join and leave, instances move, subsets,
 * traffic splits, timeouts and declared dependencies come and go) served to
 * state-of-the-world ADS clients that behave as Envoy does: CDS and LDS by
 * wildcard, EDS and RDS by the names their clusters and listeners use, every
 * response ACKed (or now and then NACKed), and a request for endpoints (routes)
 * after clusters (listeners) change, whose answer the new ones wait for. After
 * every step each client must hold exactly what its view says for what it
 * subscribes to, with nothing left warming; after every response it applies,
 * no route may point at a cluster it does not hold. The streams share targets
 * and response bodies between views (cache.ts); the walk checks them against
 * the protocol, not against another implementation.
 *
 * To hunt with more seeds: WALK_SEEDS=400 npx vitest run test/xds/sotw-walk.test.ts;
 * to follow one client's exchange on a failing seed: WALK_DEBUG=client-1 (its proxy id).
 */
const debugClient = process.env.WALK_DEBUG;
const seeds = process.env.WALK_SEEDS ? Array.from({ length: Number(process.env.WALK_SEEDS) }, (_, i) => 100 + i) : [1, 2, 3, 4, 5, 6, 7, 8];
const logger = pino({ level: "silent" });
const POOL = ["client", "a", "b", "c", "d", "e", "f"];

/** A resource as a client holds it: the Any's value bytes, by resource name. */
type Held = ReadonlyMap<string, string>;

function resourceName(kind: ResourceKind, any: Any): string {
  switch (kind) {
    case "cluster":
      return fromBinary(ClusterSchema, any.value).name;
    case "endpoint":
      return fromBinary(ClusterLoadAssignmentSchema, any.value).clusterName;
    case "listener":
      return fromBinary(ListenerSchema, any.value).name;
    case "route":
      return fromBinary(RouteConfigurationSchema, any.value).name;
  }
}

/** The EDS service name of each EDS cluster held. */
function edsNames(clusters: Held): string[] {
  const names: string[] = [];
  for (const value of clusters.values()) {
    const cluster = fromBinary(ClusterSchema, Buffer.from(value, "base64"));
    if (cluster.clusterDiscoveryType.case === "type" && cluster.clusterDiscoveryType.value === Cluster_DiscoveryType.EDS) {
      names.push(cluster.edsClusterConfig?.serviceName || cluster.name);
    }
  }
  return names.sort();
}

/** The HTTP connection managers of a listener. */
function managers(value: string) {
  const listener = fromBinary(ListenerSchema, Buffer.from(value, "base64"));
  const out = [];
  for (const chain of [...listener.filterChains, ...(listener.defaultFilterChain ? [listener.defaultFilterChain] : [])]) {
    for (const filter of chain.filters) {
      const any = filter.configType.case === "typedConfig" ? filter.configType.value : undefined;
      const hcm = any ? anyUnpack(any, HttpConnectionManagerSchema) : undefined;
      if (hcm) out.push(hcm);
    }
  }
  return out;
}

/** The route configuration names the listeners held load by RDS. */
function rdsNames(listeners: Held): string[] {
  const names = new Set<string>();
  for (const value of listeners.values()) {
    for (const hcm of managers(value)) if (hcm.routeSpecifier.case === "rds") names.add(hcm.routeSpecifier.value.routeConfigName);
  }
  return [...names].sort();
}

/** Every cluster a route of the held route configurations (and listeners' inline ones) sends traffic to. */
function routedClusters(routes: Held, listeners: Held): Set<string> {
  const configs = [...routes.values()].map((value) => fromBinary(RouteConfigurationSchema, Buffer.from(value, "base64")));
  for (const value of listeners.values()) {
    for (const hcm of managers(value)) if (hcm.routeSpecifier.case === "routeConfig") configs.push(hcm.routeSpecifier.value);
  }
  const clusters = new Set<string>();
  for (const config of configs) {
    for (const host of config.virtualHosts) {
      for (const each of host.routes) {
        if (each.action.case !== "route") continue;
        const specifier = each.action.value.clusterSpecifier;
        if (specifier.case === "cluster") clusters.add(specifier.value);
        if (specifier.case === "weightedClusters") for (const weighted of specifier.value.clusters) clusters.add(weighted.name);
      }
    }
  }
  return clusters;
}

const sameHeld = (a: Held, b: Held): boolean => a.size === b.size && [...a].every(([name, value]) => b.get(name) === value);

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
}

/** An Envoy-like ADS client on one SotW stream. */
class EnvoyClient {
  readonly types = Object.fromEntries(
    RESOURCE_KINDS.map((kind): [ResourceKind, TypeState] => [kind, { version: "", nonce: "", held: new Map(), names: [], rejected: null, rejectedAt: 0, warming: false }]),
  ) as Record<ResourceKind, TypeState>;
  stream!: SotwStream;
  private readonly inbox: { response: DiscoveryResponse; seq: number }[] = [];
  /** Responses the stream has written: those written before a NACK was read were in flight. */
  private written = 0;
  /** Types a request was sent for since their last response: a response that changes nothing must answer one. */
  private readonly asked = new Set<ResourceKind>();
  responses = 0;
  /** Reconnected while listeners or routes were rejected, and not accepted new ones since. */
  private routesMayDangle = false;
  /** The walk's step, for messages. */
  step = "connecting";

  constructor(
    private readonly cache: ResourceCache,
    readonly proxy: Proxy,
    private readonly rng: () => number,
    private readonly legacyWildcard: boolean,
  ) {
    this.connect();
  }

  /** A new stream; its first requests carry what the client holds (nothing, the first time). */
  connect(): void {
    this.stream?.close();
    this.inbox.length = 0;
    this.asked.clear();
    this.stream = new SotwStream(
      { streamId: 1, proxy: this.proxy, protocol: "sotw", connectedAt: "", types: {} },
      this.cache,
      { write: (body, nonce) => (this.inbox.push({ response: fromBinary(DiscoveryResponseSchema, withNonce(body, nonce)), seq: ++this.written }), true), onDrain: () => {} },
      new XdsMetrics(),
      logger,
    );
    // A new stream knows nothing of what the old one was told was rejected, so
    // it cannot keep clusters that rejected listeners or routes still use.
    this.routesMayDangle ||= this.types.listener.rejected !== null || this.types.route.rejected !== null;
    for (const kind of RESOURCE_KINDS) Object.assign(this.types[kind], { nonce: "", rejected: null });
    const wildcard = this.legacyWildcard ? [] : ["*"];
    this.request("cluster", wildcard);
    this.request("listener", wildcard);
    const { endpoint, route: routes } = this.types;
    if (endpoint.names.length > 0) this.request("endpoint", endpoint.names);
    if (routes.names.length > 0) this.request("route", routes.names);
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
    if (debugClient === this.proxy.id) console.log(`-> ${kind} v${state.version.slice(0, 6)} n${state.nonce} [${names.join(" ")}]${error ? " NACK" : ""}`);
    this.stream.handleRequest(decodeDiscoveryRequest(toBinary(DiscoveryRequestSchema, request)).request);
  }

  /** Applies (or rejects) every response received, in order, answering each as Envoy does. */
  drain(): void {
    for (let next = this.inbox.shift(); next; next = this.inbox.shift()) this.receive(next.response, next.seq);
  }

  private receive(response: DiscoveryResponse, seq: number): void {
    this.responses++;
    const kind = RESOURCE_KINDS.find((each) => TYPE_URLS[each] === response.typeUrl);
    if (!kind) throw new Error(`response of unknown type ${response.typeUrl}`);
    const state = this.types[kind];
    const content = new Map(response.resources.map((any) => [resourceName(kind, any), Buffer.from(any.value).toString("base64")]));
    if (debugClient === this.proxy.id) console.log(`<- ${kind} v${response.versionInfo.slice(0, 6)} n${response.nonce} [${[...content.keys()].join(" ")}]`);
    // Content rejected is not sent again, once the stream has read the NACK.
    const afterNack = state.rejected !== null && seq > state.rejectedAt;
    expect(afterNack && sameHeld(state.rejected as Held, content), `${this.step}: ${kind}: sent again the content the client rejected`).toBe(false);
    // A response that changes nothing is only owed to a request (a parent changed, or the names did),
    // or, after a rejection, the content the client went back to.
    if (sameHeld(content, state.held) && state.version !== "" && state.rejected === null) {
      expect(this.asked.has(kind), `${kind}: a response that changes nothing, unasked`).toBe(true);
    }
    this.asked.delete(kind);
    state.nonce = response.nonce;
    state.warming = false;
    const names = kind === "cluster" || kind === "listener" ? (this.legacyWildcard ? [] : ["*"]) : state.names;
    if (this.rng() < 0.05) {
      // Rejected: the client keeps what it had and says so with its last accepted version.
      state.rejected = content;
      state.rejectedAt = this.written;
      this.request(kind, names, "rejected by the walk");
      return;
    }
    const previous = state.held;
    state.held = content;
    state.version = response.versionInfo;
    state.rejected = null;
    if (kind === "route") this.routesMayDangle = false;
    this.checkRoutesResolve(`after a ${kind} response`);
    const child = kind === "cluster" ? "endpoint" : kind === "listener" ? "route" : null;
    if (!child) return this.request(kind, names);
    // Clusters (listeners) that are new or changed wait for their endpoints (routes):
    // the child's names go out again, changed or not, and the parent's ACK, in either order.
    const changed = [...content].some(([name, value]) => previous.get(name) !== value);
    const childNames = kind === "cluster" ? edsNames(content) : rdsNames(content);
    const childState = this.types[child];
    const resubscribe = changed && (childNames.length > 0 || childState.names.length > 0);
    const ackFirst = this.rng() < 0.5;
    if (ackFirst) this.request(kind, names);
    if (resubscribe) {
      childState.names = childNames;
      childState.warming = childNames.length > 0;
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
      const subscribed = kind === "cluster" || kind === "listener" ? null : new Set(state.names);
      for (const [name, resource] of view.resources[kind]) {
        if (subscribed && !subscribed.has(name)) continue;
        expected.set(name, Buffer.from(fromBinary(AnySchema, resource.any).value).toString("base64"));
      }
      const where = `${step}: ${this.proxy.id} ${kind} (rejected: ${RESOURCE_KINDS.filter((each) => this.types[each].rejected !== null).join(",")})`;
      // Clusters that left stay while the listeners or routes that used them are rejected.
      const keepsLeft = kind === "cluster" && (this.types.listener.rejected !== null || this.types.route.rejected !== null);
      const holds = (content: Held) => [...expected].every(([name, value]) => content.get(name) === value) && (keepsLeft || content.size === expected.size);
      // A rejection stands while the view still holds the rejected content: the client keeps what it
      // had, and is not sent it again, even for clusters (listeners) waiting for it, which Envoy
      // activates after its initial fetch timeout.
      if (state.rejected !== null && holds(state.rejected)) continue;
      expect(state.warming, `${where} left warming`).toBe(false);
      const held = keepsLeft ? [...state.held.keys()].filter((name) => expected.has(name)) : [...state.held.keys()];
      expect(held.sort(), where).toEqual([...expected.keys()].sort());
      for (const [name, value] of expected) expect(state.held.get(name), `${where} ${name}`).toBe(value);
    }
  }
}

interface MeshState {
  present: string[];
  moved: number;
  /** Services with v1 and v2 subsets, and the v1 weight of a split route to them (null: no route). */
  subsets: Map<string, number | null>;
  /** Services whose default route has a timeout. */
  timeouts: Set<string>;
  /** The client service's declared dependencies (null: none declared, so it may call every service). */
  dependencies: string[] | null;
}

function serviceOf(name: string, index: number, moved: number): Service {
  const at = (n: number) => `10.${n}.${index}.${1 + ((moved + index) % 3)}`;
  return {
    name,
    protocol: "http",
    port: 80,
    instances: [
      instance({ id: `${name}-0`, service: name, address: at(0), port: 8080, labels: { version: "v1" } }),
      instance({ id: `${name}-1`, service: name, address: at(1), port: 8080, labels: { version: "v2" } }),
    ],
  };
}

function meshSnapshot(mesh: MeshState) {
  const subsets: Subset[] = [];
  const routes: HttpRoute[] = [];
  for (const [service, weight] of mesh.subsets) {
    subsets.push({ service, name: "v1", selector: { version: "v1" } }, { service, name: "v2", selector: { version: "v2" } });
    if (weight !== null) {
      routes.push(
        route({
          id: `split-${service}`,
          destination: service,
          destinations: [
            { service, subset: "v1", weight },
            { service, subset: "v2", weight: 100 - weight },
          ],
          timeoutMs: mesh.timeouts.has(service) ? 1500 : null,
        }),
      );
    }
  }
  for (const service of mesh.timeouts) {
    if (mesh.subsets.get(service) == null) routes.push(route({ id: `timeout-${service}`, destination: service, timeoutMs: 2500 }));
  }
  const dependencies: ServiceDependency[] = (mesh.dependencies ?? []).map((dependsOn) => ({ service: "client", dependsOn }));
  const rules: RuleSet = { subsets, httpRoutes: routes, rejected: [], dependencies };
  return buildSnapshot(registryOf(...mesh.present.map((name) => serviceOf(name, POOL.indexOf(name), mesh.moved))), rules);
}

function walk(seed: number, steps: number): void {
  const rng = seededRandom(seed);
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;
  const cache = new ResourceCache(translate, () => [], logger);
  const mesh: MeshState = { present: POOL.slice(0, 4), moved: 0, subsets: new Map(), timeouts: new Set(), dependencies: null };
  cache.setSnapshot(meshSnapshot(mesh));
  // Two proxies of one service (one view, shared targets), one legacy-wildcard; and one of another service.
  const clients = [
    new EnvoyClient(cache, sidecar("client-1", "client", 8080), rng, false),
    new EnvoyClient(cache, sidecar("client-2", "client", 8080), rng, true),
    new EnvoyClient(cache, sidecar("a-1", "a", 8080), rng, false),
  ];
  const check = (step: string) => {
    expect(cache.indexProblems(), step).toEqual([]);
    for (const client of clients) client.check(`${step}, seed ${seed}`);
  };
  check("connected");

  for (let step = 0; step < steps; step++) {
    const op = rng();
    let what: string;
    if (op < 0.85) {
      const change = rng();
      const absent = POOL.filter((service) => !mesh.present.includes(service));
      const removable = mesh.present.filter((service) => service !== "client" && service !== "a");
      if (change < 0.15 && absent.length > 0) mesh.present = [...mesh.present, pick(absent)];
      else if (change < 0.25 && removable.length > 0) {
        const gone = pick(removable);
        mesh.present = mesh.present.filter((service) => service !== gone);
      } else if (change < 0.4) mesh.moved++;
      else if (change < 0.55) {
        // Subsets (and with them a split route) come or go.
        const service = pick(POOL);
        if (mesh.subsets.has(service)) mesh.subsets.delete(service);
        else mesh.subsets.set(service, null);
      } else if (change < 0.7) {
        // A split between the subsets appears, changes weight, or goes (routes and clusters both move).
        const service = pick(POOL);
        const weight = mesh.subsets.get(service);
        mesh.subsets.set(service, weight === undefined || rng() < 0.3 ? null : 10 * Math.floor(1 + rng() * 9));
      } else if (change < 0.85) {
        // A route-only change: a timeout on a service's route.
        const service = pick(POOL);
        if (mesh.timeouts.has(service)) mesh.timeouts.delete(service);
        else mesh.timeouts.add(service);
      } else {
        // The client service declares (other) dependencies, or none: its scope grows or shrinks.
        mesh.dependencies = rng() < 0.3 ? null : POOL.filter((service) => service !== "client" && rng() < 0.5);
      }
      what = `mesh ${JSON.stringify({ ...mesh, subsets: [...mesh.subsets], timeouts: [...mesh.timeouts] })}`;
      for (const client of clients) client.step = `step ${step} (${what}), seed ${seed}`;
      if (debugClient) console.log(`== step ${step} ${what}`);
      cache.setSnapshot(meshSnapshot(mesh));
      for (const client of clients) client.stream.refresh();
      // Streams write at once; clients read in turn, as they would on their own connections.
      for (const client of clients) client.drain();
    } else {
      const client = pick(clients);
      what = `reconnect ${client.proxy.id}`;
      client.step = `step ${step} (${what}), seed ${seed}`;
      if (debugClient) console.log(`== step ${step} ${what}`);
      client.connect();
    }
    check(`step ${step} (${what})`);
  }
  for (const client of clients) expect(client.responses).toBeGreaterThan(steps / 4);
}

describe("SotW streams on a random walk", () => {
  for (const seed of seeds) {
    it(`hold exactly what the protocol says after every step (seed ${seed})`, () => walk(seed, 150));
  }
});
