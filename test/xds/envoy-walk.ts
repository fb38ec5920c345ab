import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack, type Any } from "@bufbuild/protobuf/wkt";
import { pino } from "pino";
import { expect } from "vitest";
import { Cluster_DiscoveryType, ClusterSchema } from "../../src/gen/envoy/config/cluster/v3/cluster_pb.ts";
import { ClusterLoadAssignmentSchema } from "../../src/gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import { ListenerSchema } from "../../src/gen/envoy/config/listener/v3/listener_pb.ts";
import { RouteConfigurationSchema } from "../../src/gen/envoy/config/route/v3/route_pb.ts";
import { HttpConnectionManagerSchema } from "../../src/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import type { Service } from "../../src/model/registry.ts";
import { emptyClusterPolicies } from "../../src/model/cluster-policies.ts";
import type { HttpRoute, RuleSet, ServiceDependency, Subset } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { RESOURCE_KINDS, type ResourceKind } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { withNonce } from "../../src/xds/encoding.ts";
import type { ResponseSink } from "../../src/xds/xds-stream.ts";
import { seededRandom } from "../support/seeded-random.ts";
import { instance, loadBalancing as lb, registryOf, route } from "../translate/builders.ts";

/**
 * The mesh random walks of Envoy-like clients share (sotw-walk.test.ts,
 * delta-envoy-walk.test.ts): services join and leave, instances move, subsets,
 * traffic splits, timeouts and declared dependencies come and go; and what a
 * client reads from the resources it holds (the EDS names of its clusters, the
 * RDS names of its listeners, the clusters its routes send traffic to).
 *
 * To hunt with more seeds: WALK_SEEDS=400 npx vitest run test/xds/sotw-walk.test.ts;
 * to replay one: WALK_SEED=n; to follow one client's exchange: WALK_DEBUG=client-1 (its proxy id).
 */
export const logger = pino({ level: "silent" });
export const debugClient = process.env.WALK_DEBUG;
const allSeeds = process.env.WALK_SEEDS ? Array.from({ length: Number(process.env.WALK_SEEDS) }, (_, i) => 100 + i) : [1, 2, 3, 4, 5, 6, 7, 8];
export const seeds = process.env.WALK_SEED ? [Number(process.env.WALK_SEED)] : allSeeds;
const POOL = ["client", "a", "b", "c", "d", "e", "f"];

/** A resource as a client holds it: the Any's value bytes, by resource name. */
export type Held = ReadonlyMap<string, string>;

export function resourceName(kind: ResourceKind, any: Any): string {
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
export function edsNames(clusters: Held): string[] {
  const names: string[] = [];
  for (const value of clusters.values()) {
    const cluster = fromBinary(ClusterSchema, Buffer.from(value, "base64"));
    if (cluster.clusterDiscoveryType.case === "type" && cluster.clusterDiscoveryType.value === Cluster_DiscoveryType.EDS) {
      names.push(cluster.edsClusterConfig?.serviceName || cluster.name);
    }
  }
  return names.sort();
}

/** The HTTP connection managers of a listener (an API listener's, for gRPC clients). */
function managers(value: string) {
  const listener = fromBinary(ListenerSchema, Buffer.from(value, "base64"));
  const out = [];
  const api = listener.apiListener?.apiListener;
  const apiManager = api ? anyUnpack(api, HttpConnectionManagerSchema) : undefined;
  if (apiManager) out.push(apiManager);
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
export function rdsNames(listeners: Held): string[] {
  const names = new Set<string>();
  for (const value of listeners.values()) {
    for (const hcm of managers(value)) if (hcm.routeSpecifier.case === "rds") names.add(hcm.routeSpecifier.value.routeConfigName);
  }
  return [...names].sort();
}

/** Every cluster a route of the held route configurations (and listeners' inline ones) sends traffic to. */
export function routedClusters(routes: Held, listeners: Held): Set<string> {
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

export const sameHeld = (a: Held, b: Held): boolean => a.size === b.size && [...a].every(([name, value]) => b.get(name) === value);

/**
 * A client's end of its stream's transport: the responses the stream wrote,
 * numbered, read in order; now and then full, so the stream waits for it to
 * drain (a slow proxy).
 */
export class Transport<R> {
  private readonly inbox: { readonly response: R; readonly seq: number; readonly order: number }[] = [];
  private drained: (() => void) | null = null;
  /** Responses written so far: one written before the client's NACK was read was in flight. */
  written = 0;

  constructor(
    private readonly rng: () => number,
    private readonly decode: (bytes: Uint8Array) => R,
    /** Shared by the transports of one connection: numbers responses in the order they were written to any of them. */
    private readonly connection: { written: number } = { written: 0 },
  ) {}

  /** When the next response to read was written, on the connection's count; null when there is none. */
  get nextOrder(): number | null {
    return this.inbox[0]?.order ?? null;
  }

  /** Reads one response or, with none left, lets a stream that waited for the transport write again. */
  readNext(receive: (response: R, seq: number) => void): void {
    const next = this.inbox.shift();
    if (next) return receive(next.response, next.seq);
    const drained = this.drained;
    this.drained = null;
    drained?.();
  }

  /** A new stream: nothing of the old one's is left to read. */
  sink(): ResponseSink {
    this.inbox.length = 0;
    this.drained = null;
    return {
      write: (body, nonce) => (this.inbox.push({ response: this.decode(withNonce(body, nonce)), seq: ++this.written, order: ++this.connection.written }), this.rng() >= 0.1),
      onDrain: (callback) => void (this.drained = callback),
    };
  }

  /** Nothing left to read, and no stream waiting for the transport to drain. */
  get idle(): boolean {
    return this.inbox.length === 0 && this.drained === null;
  }

  /** Reads every response; once all is read the transport drains, and a stream that waited writes what it held back. */
  drain(receive: (response: R, seq: number) => void): void {
    while (!this.idle) this.readNext(receive);
  }
}

/** One of a client's streams and its transport: ADS carries every kind, a single-type service one. */
export interface Link<S, R> {
  readonly kinds: readonly ResourceKind[];
  readonly transport: Transport<R>;
  stream: S | null;
}

/** A client's streams: one ADS stream for every kind or, `perType`, one per kind (the single-type services). */
export class Links<S extends { refresh(): void; close(): void }, R> {
  readonly all: readonly Link<S, R>[];
  private readonly byKind: Record<ResourceKind, Link<S, R>>;

  /** `connection`: shared by the transports when the streams share one connection (Transport). */
  constructor(perType: boolean, rng: () => number, decode: (bytes: Uint8Array) => R, connection?: { written: number }) {
    this.all = (perType ? RESOURCE_KINDS.map((kind) => [kind]) : [RESOURCE_KINDS]).map((kinds) => ({ kinds, transport: new Transport(rng, decode, connection), stream: null }));
    this.byKind = Object.fromEntries(RESOURCE_KINDS.map((kind) => [kind, this.all.find((link) => link.kinds.includes(kind)) as Link<S, R>])) as Record<ResourceKind, Link<S, R>>;
  }

  /** The link that carries `kind`. */
  of(kind: ResourceKind): Link<S, R> {
    return this.byKind[kind];
  }

  /** Whether any stream was opened yet. */
  get opened(): boolean {
    return this.all.some((link) => link.stream !== null);
  }

  /** The links a (re)connect renews: every one the first time and over ADS; else now and then one alone, as if only its connection was lost. */
  toRenew(rng: () => number): readonly Link<S, R>[] {
    if (!this.opened || this.all.length === 1 || rng() < 0.5) return this.all;
    return [this.all[Math.floor(rng() * this.all.length)] as Link<S, R>];
  }

  /** Closes `links`' streams and opens new ones on their transports (emptied, as a new connection's). */
  renew(links: readonly Link<S, R>[], open: (kinds: readonly ResourceKind[], sink: ResponseSink) => S): void {
    for (const link of links) {
      link.stream?.close();
      link.stream = open(link.kinds, link.transport.sink());
    }
  }

  refresh(): void {
    for (const link of this.all) link.stream?.refresh();
  }

  close(): void {
    for (const link of this.all) link.stream?.close();
  }
}

/** A client of the walk: one proxy's stream and what it holds. */
export interface WalkClient {
  readonly proxy: Proxy;
  /** The walk's step, for messages. */
  step: string;
  responses: number;
  /** The cache changed: the stream pushes. */
  refresh(): void;
  /** Reads (and answers) every response received. */
  drain(): void;
  /** A new stream, as after a lost connection. */
  connect(): void;
  /** The stream ends and the proxy goes. */
  close(): void;
  /** Holds exactly what the protocol says, given the view. */
  check(step: string): void;
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
  /** Services balanced by least request: their clusters change in place (same names, new content). */
  leastRequest: Set<string>;
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
  const loadBalancing = [...mesh.leastRequest].map((destination) => lb({ id: `lb-${destination}`, destination, algorithm: "least_request" }));
  const rules: RuleSet = { subsets, httpRoutes: routes, rejected: [], dependencies, clusterPolicies: { ...emptyClusterPolicies, loadBalancing } };
  return buildSnapshot(registryOf(...mesh.present.map((name) => serviceOf(name, POOL.indexOf(name), mesh.moved))), rules);
}

/**
 * `clientsOf` makes the clients connected throughout; `spawn` (optional) a
 * client that connects partway, for `proxy` of `service`, and leaves again:
 * first requests then meet streams of the same view (and of others) that
 * connected long before.
 */
export function walk(
  seed: number,
  steps: number,
  clientsOf: (cache: ResourceCache, rng: () => number) => WalkClient[],
  spawn?: (cache: ResourceCache, rng: () => number, id: string, service: string) => WalkClient,
): void {
  const rng = seededRandom(seed);
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;
  const cache = new ResourceCache(translate, () => [], logger);
  const mesh: MeshState = { present: POOL.slice(0, 4), moved: 0, subsets: new Map(), timeouts: new Set(), dependencies: null, leastRequest: new Set() };
  cache.setSnapshot(meshSnapshot(mesh));
  const clients = clientsOf(cache, rng);
  const lasting = clients.length;
  const spawned: WalkClient[] = [];
  let spawnedEver = 0;
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
      } else if (change < 0.92) {
        // A service's clusters change in place: Envoy re-creates them and waits for their endpoints.
        const service = pick(POOL);
        if (mesh.leastRequest.has(service)) mesh.leastRequest.delete(service);
        else mesh.leastRequest.add(service);
      } else {
        // The client service declares (other) dependencies, or none: its scope grows or shrinks.
        mesh.dependencies = rng() < 0.3 ? null : POOL.filter((service) => service !== "client" && rng() < 0.5);
      }
      what = `mesh ${JSON.stringify({ ...mesh, subsets: [...mesh.subsets], timeouts: [...mesh.timeouts], leastRequest: [...mesh.leastRequest] })}`;
      for (const client of clients) client.step = `step ${step} (${what}), seed ${seed}`;
      if (debugClient) console.log(`== step ${step} ${what}`);
      cache.setSnapshot(meshSnapshot(mesh));
      for (const client of clients) client.refresh();
      // Streams write at once; clients read in turn, as they would on their own connections.
      for (const client of clients) client.drain();
    } else if (spawn && op < 0.9) {
      // A proxy connects (of a service that may not exist yet), or one that did leaves.
      if (spawned.length > 0 && rng() < 0.4) {
        const gone = spawned.splice(Math.floor(rng() * spawned.length), 1)[0] as WalkClient;
        clients.splice(clients.indexOf(gone), 1);
        gone.close();
        what = `${gone.proxy.id} leaves`;
      } else {
        const service = pick(POOL);
        const client = spawn(cache, rng, `${service}-s${++spawnedEver}`, service);
        spawned.push(client);
        clients.push(client);
        what = `${client.proxy.id} connects`;
      }
    } else {
      const client = pick(clients);
      what = `reconnect ${client.proxy.id}`;
      client.step = `step ${step} (${what}), seed ${seed}`;
      if (debugClient) console.log(`== step ${step} ${what}`);
      client.connect();
    }
    check(`step ${step} (${what})`);
  }
  for (const client of clients.slice(0, lasting)) expect(client.responses).toBeGreaterThan(steps / 5);
  if (spawn) expect(spawnedEver, "proxies that connected partway").toBeGreaterThan(0);
}

