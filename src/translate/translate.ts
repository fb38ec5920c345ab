import type { Message } from "@bufbuild/protobuf";
import type { VirtualHost } from "../gen/envoy/config/route/v3/route_components_pb.ts";
import type { RouteConfiguration } from "../gen/envoy/config/route/v3/route_pb.ts";
import type { Proxy } from "../model/proxy.ts";
import type { Service } from "../model/registry.ts";
import type { Subset } from "../model/rules.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import { clusterDialect, inboundAppCluster, serviceClusterSet, type ClusterDialect } from "./clusters.ts";
import { serviceLoadAssignments } from "./endpoints.ts";
import { proxylessApiListener, sidecarInboundListener, sidecarOutboundListener } from "./listeners.ts";
import { colorCluster, inboundRouteConfig, OUTBOUND_HTTP, outboundCluster, proxylessRouteConfig } from "./naming.ts";
import { acrossSnapshots, acrossSnapshotsByName, acrossSnapshotsForCaller, identities, memoOn, perSnapshot, perSnapshotIn, perSnapshotTable } from "./memo.ts";
import { ComposedMap, TransientMap, type ResourceMap, type ResourceSet } from "./resource-types.ts";
import { inboundRateLimit, inboundVirtualHost, plainInboundVirtualHost, respectsExpectedTimeout, routeConfiguration, serviceVirtualHost, type MatcherDialect } from "./routes.ts";
import { byName } from "../model/order.ts";
import { sameElements } from "../model/share.ts";
import { selects } from "./rule-check.ts";
import { scopedNames, scopedServices } from "./scope.ts";
import { clusterPolicyFor } from "../model/cluster-policies.ts";
import { callerKey, singledOutAnywhere } from "./caller-key.ts";
import { colorOf, colorRoutingFor } from "./cluster-policy-check.ts";
import { decorateInboundVirtualHost, decorateVirtualHost, upgradesInboundWebsocket } from "./cluster-routing.ts";
import { sidecarTcp } from "./tcp.ts";

/**
 * translate(snapshot, proxy): everything one proxy should have. Pure: the same
 * snapshot and proxy always give equal resources.
 */

/**
 * The services a proxy may call: the declared dependencies of its service plus
 * every service their routes can send to (transitively), or every service in the
 * mesh when its service declares none. See scope.ts.
 */
export function upstreamsOf(snapshot: MeshSnapshot, proxy: Proxy): readonly Service[] {
  return scopedServices(snapshot, proxy.service);
}

/** Non-TCP upstreams (the ones with clusters and virtual hosts here), once per scope list, which snapshots share while no scope input changes (scope.ts). */
function httpUpstreams(snapshot: MeshSnapshot, proxy: Proxy): readonly Service[] {
  const scope = upstreamsOf(snapshot, proxy);
  let http = httpUpstreamsByScope.get(scope);
  if (http === undefined) {
    http = scope.filter(isHttp);
    httpUpstreamsByScope.set(scope, http);
  }
  return http;
}

/**
 * httpUpstreams' table, apart from memoOn's: it is read once per view on the
 * route path, where a look-up in memoOn's one table of every memoized owner
 * cost up to 8 µs in a run's first rule changes (docs/benchmarks.md,
 * "Session 26").
 */
const httpUpstreamsByScope = new WeakMap<readonly Service[], readonly Service[]>();

function isHttp(service: Service): boolean {
  return service.protocol !== "tcp";
}

/** A service's subsets sorted by name, and their names; once per set of subsets (snapshots share it while no subset changes). */
interface ServiceSubsets {
  readonly rules: readonly Subset[];
  readonly names: readonly string[];
}

const NO_SUBSETS: ServiceSubsets = { rules: [], names: [] };

function subsetsOf(snapshot: MeshSnapshot, service: string): ServiceSubsets {
  const byService = memoOn(snapshot.subsets, "subsets-by-service", () => {
    const lists = new Map<string, Subset[]>();
    for (const subset of snapshot.subsets.values()) {
      const list = lists.get(subset.service);
      if (list) list.push(subset);
      else lists.set(subset.service, [subset]);
    }
    const map = new Map<string, ServiceSubsets>();
    for (const [name, rules] of lists) {
      rules.sort(byName);
      map.set(name, { rules, names: rules.map((subset) => subset.name) });
    }
    return map;
  });
  return byService.get(service) ?? NO_SUBSETS;
}

/**
 * Outbound clusters for calling `service`: one for the service, one per subset,
 * and with color routing one per color (and subset), shaped by the cluster-side
 * policies in force (clusters.ts). The same for every proxy of a dialect, so
 * built once per snapshot and dialect.
 */
export function serviceClusters(snapshot: MeshSnapshot, service: Service, dialect: ClusterDialect = "envoy"): ReadonlyMap<string, Message> {
  return perSnapshotIn(snapshot, CLUSTER_TABLES[dialect], service, () => {
    const subsets = subsetsOf(snapshot, service.name).names;
    const policy = clusterPolicyFor(snapshot.clusterPolicies, service.name);
    const colors = snapshot.clusterPolicies?.colors.get(service.name)?.colors ?? [];
    // Reused across snapshots while these inputs are equal (memo.ts: list every input here),
    // as a part whose messages are built per read and not held (TransientMap).
    return acrossSnapshots(service, `clusters|${dialect}`, [subsets, policy, colors], () =>
      new TransientMap(() => serviceClusterSet(service, subsets, policy, colors, dialect)),
    );
  });
}

/**
 * Endpoints (ClusterLoadAssignments) of `service`, keyed like its clusters.
 * Only these resources may depend on a service's instances: when nothing but
 * instances change, the cache recomputes just these (its endpoint fast path)
 * and keeps every other resource as it was.
 */
export function serviceEndpoints(snapshot: MeshSnapshot, service: Service): ReadonlyMap<string, Message> {
  return perSnapshotIn(snapshot, ENDPOINT_TABLE, service, () => {
    const subsetRules = subsetsOf(snapshot, service.name).rules;
    // With color routing, colored instances only serve their color (endpoints.ts).
    const routing = snapshot.clusterPolicies ? colorRoutingFor(snapshot.clusterPolicies, service) : null;
    const colors = snapshot.clusterPolicies?.colors.get(service.name)?.colors ?? [];
    // Reused across snapshots while these inputs are equal (memo.ts: list every input here),
    // as a part whose messages (one per instance) are built per read and not held (TransientMap).
    return acrossSnapshots(service, "endpoints", [subsetRules, routing, colors], () => new TransientMap(() => {
      const subsets = subsetRules.map((subset) => ({
        name: subset.name,
        selects: (instance: Service["instances"][number]) => selects(subset, instance.labels),
      }));
      return serviceLoadAssignments(
        service,
        subsets,
        {
          whole: outboundCluster(service.name, null),
          subset: (subset) => outboundCluster(service.name, subset),
          color: (subset, color) => colorCluster(service.name, subset, color),
        },
        routing ? (instance) => colorOf(instance, routing) : null,
        colors,
      );
    }));
  });
}

/** Per-snapshot memo tables for clusters, per dialect (constant names: see perSnapshotIn). */
const CLUSTER_TABLES: Record<ClusterDialect, string> = { envoy: "clusters|envoy", grpc: "clusters|grpc", "grpc-no-ring-hash": "clusters|grpc-no-ring-hash" };
const ENDPOINT_TABLE = "endpoints";
const VHOST_TABLES: Record<MatcherDialect, string> = { envoy: "vhost|envoy", grpc: "vhost|grpc" };

/**
 * Clusters and endpoints for calling `services` (one per service and one per
 * subset), added as parts: the maps are the shared per-service ones, not copies.
 */
function upstreamClustersAndEndpoints(
  snapshot: MeshSnapshot,
  services: readonly Service[],
  clusters: ResourceMap[],
  endpoints: ResourceMap[],
  dialect: ClusterDialect,
): void {
  // The memo tables once per view, not per upstream: thousands of views times their upstreams.
  const clusterTable = perSnapshotTable<ReadonlyMap<string, Message>>(snapshot, CLUSTER_TABLES[dialect]);
  const endpointTable = perSnapshotTable<ReadonlyMap<string, Message>>(snapshot, ENDPOINT_TABLE);
  for (const service of services) {
    clusters.push(clusterTable.get(service) ?? serviceClusters(snapshot, service, dialect));
    endpoints.push(endpointTable.get(service) ?? serviceEndpoints(snapshot, service));
  }
}

const singletons = new WeakMap<Message, ResourceMap>();

/** A one-resource part, the same map object for the same message. */
function single(message: Message & { name: string }): ResourceMap {
  let part = singletons.get(message);
  if (!part) singletons.set(message, (part = new Map([[message.name, message]])));
  return part;
}

function rulesFor(snapshot: MeshSnapshot, destination: string) {
  return snapshot.routesByDestination.get(destination) ?? [];
}

/**
 * The virtual host for calls from `proxy` to `service`, shared by every caller
 * that no rule of `service` singles out by source.
 */
function virtualHostFor(snapshot: MeshSnapshot, service: Service, proxy: Proxy, dialect: MatcherDialect): VirtualHost {
  return virtualHostIn(perSnapshotTable(snapshot, VHOST_TABLES[dialect]), snapshot, service, proxy, dialect);
}

/** virtualHostFor with the snapshot's table of virtual hosts by service and caller key, looked up once per view by callers that loop. */
function virtualHostIn(
  table: Map<unknown, Map<string, VirtualHost>>,
  snapshot: MeshSnapshot,
  service: Service,
  proxy: Proxy,
  dialect: MatcherDialect,
): VirtualHost {
  const caller = callerKey(snapshot, service, proxy);
  let byCaller = table.get(service);
  if (byCaller === undefined) table.set(service, (byCaller = new Map()));
  const known = byCaller.get(caller);
  if (known) return known;
  // Reused across snapshots while the service's routes and every other rule-derived input are unchanged.
  const built = acrossSnapshots(service, `vhost|${dialect}|${caller}`, [rulesFor(snapshot, service.name), ...ruleContext(snapshot)], () =>
    decorateVirtualHost(
      snapshot,
      service,
      serviceVirtualHost(service, rulesFor(snapshot, service.name), proxy.service, dialect, snapshot.routePolicies),
      proxy.service,
      dialect,
    ),
  );
  byCaller.set(caller, built);
  return built;
}

/**
 * Every rule-derived field of the snapshot except the ones keyed by what they
 * affect (routes by destination; dependencies and rejections, which no
 * resource reads), as identities: a piece that may read "anything else in the
 * snapshot" lists these as inputs, so any other kind of rule change recomputes
 * it. Snapshots share unchanged fields (SnapshotBuilder), so a route change
 * leaves these identical.
 */
function ruleContext(snapshot: MeshSnapshot): readonly unknown[] {
  return perSnapshot(snapshot, "rule-context", () => {
    const record = snapshot as unknown as Record<string, unknown>;
    const keys = Object.keys(record)
      .filter((key) => !CONTEXT_EXCLUDED.has(key))
      .sort();
    return identities(keys.map((key) => record[key]));
  });
}

const CONTEXT_EXCLUDED = new Set(["registry", "routesByDestination", "dependencies", "rejected"]);

export function translateSidecar(snapshot: MeshSnapshot, proxy: Proxy): ResourceSet {
  const clusters: ResourceMap[] = [];
  const endpoints: ResourceMap[] = [];
  const listeners = new Map<string, Message>();
  const upstreams = httpUpstreams(snapshot, proxy);
  upstreamClustersAndEndpoints(snapshot, upstreams, clusters, endpoints, "envoy");

  // Per-view pieces are reused across snapshots while their inputs are unchanged: those listed in
  // their deps, or, for pieces named by their settings, those spelled out in the name.
  const outbound = acrossSnapshotsByName(`outbound-listener|${proxy.outboundPort}`, () =>
    sidecarOutboundListener(proxy.outboundPort),
  );
  listeners.set(outbound.name, outbound);

  const own = snapshot.registry.services.get(proxy.service);
  if (own && proxy.inboundPort !== null && proxy.appPort !== null) {
    const appPort = proxy.appPort;
    const inboundPort = proxy.inboundPort;
    // Shared by every sidecar with the same app port and protocol.
    const protocol = own.protocol;
    const app = acrossSnapshotsByName(`inbound-cluster|${appPort}|${protocol}`, () => inboundAppCluster({ protocol }, appPort));
    clusters.push(single(app));
    // Named by port, not service: the inbound listener is then the same resource
    // for every service with the same port and options (names are per proxy).
    const routeName = inboundRouteConfig(inboundPort);
    const options = { respectExpectedRqTimeout: respectsExpectedTimeout(own.name, snapshot.routePolicies) };
    const inbound = acrossSnapshotsByName(`inbound-listener|${inboundPort}|${options.respectExpectedRqTimeout}`, () =>
      sidecarInboundListener(inboundPort, routeName, options),
    );
    listeners.set(inbound.name, inbound);
  }

  // Plain TCP services on local ports (tcp.ts).
  const scope = upstreamsOf(snapshot, proxy);
  const tcp = sidecarTcp(snapshot.clusterPolicies, proxy, scope);
  for (const listener of tcp.listeners) listeners.set(listener.name, listener);
  const tcpServices = tcp.services.flatMap((name) => snapshot.registry.services.get(name) ?? []);
  upstreamClustersAndEndpoints(snapshot, tcpServices, clusters, endpoints, "envoy");
  return {
    cluster: new ComposedMap(clusters),
    endpoint: new ComposedMap(endpoints),
    listener: listeners,
    route: sidecarRoutes(snapshot, proxy, upstreams),
    routeReads: routeReads(snapshot, proxy),
    scope: scopedNames(snapshot, proxy.service),
  };
}

/** A sidecar's route configurations: outbound over its HTTP upstreams, and inbound when it has an inbound port. */
function sidecarRoutes(snapshot: MeshSnapshot, proxy: Proxy, upstreams: readonly Service[]): Map<string, Message> {
  const routes = new Map<string, Message>();
  // Once per view: no closure here (see perSnapshotTable).
  const outboundByCaller = perSnapshotTable<RouteConfiguration>(snapshot, "outbound-routes");
  let outbound = outboundByCaller.get(proxy.service);
  if (outbound === undefined) outboundByCaller.set(proxy.service, (outbound = outboundRoutes(snapshot, proxy, upstreams)));
  routes.set(OUTBOUND_HTTP, outbound);
  const own = snapshot.registry.services.get(proxy.service);
  if (own && proxy.inboundPort !== null && proxy.appPort !== null) {
    routes.set(inboundRouteConfig(proxy.inboundPort), inboundRoutes(snapshot, own, proxy.inboundPort, proxy.appPort));
  }
  return routes;
}

/**
 * The inbound route configuration of `own` on these ports. Without an inbound
 * policy of its own (a destination rate limit, websocket upgrades) it is the
 * same for every service, so it is built (and encoded) once per port pair
 * rather than once per service.
 */
function inboundRoutes(snapshot: MeshSnapshot, own: Service, inboundPort: number, appPort: number): RouteConfiguration {
  const routeName = inboundRouteConfig(inboundPort);
  if (inboundRateLimit(own.name, snapshot.routePolicies) === null && !upgradesInboundWebsocket(snapshot, own)) {
    return acrossSnapshotsByName(`inbound-routes|${inboundPort}|${appPort}`, () =>
      routeConfiguration(routeName, [plainInboundVirtualHost(appPort)]),
    );
  }
  return acrossSnapshots(own, `inbound-routes|${inboundPort}|${appPort}`, ruleContext(snapshot), () =>
    routeConfiguration(routeName, [decorateInboundVirtualHost(snapshot, own, inboundVirtualHost(own, appPort, snapshot.routePolicies))]),
  );
}

/**
 * The outbound route configuration of `proxy`'s service: a virtual host per
 * HTTP upstream, kept while they are the same. Callers with the same virtual
 * hosts share one: every caller that declared no dependencies has the same
 * upstream list, and unless some upstream's rules single it out, the same
 * virtual hosts, so a large mesh's whole-mesh configuration is built (and
 * encoded) once rather than once per caller.
 */
function outboundRoutes(snapshot: MeshSnapshot, proxy: Proxy, upstreams: readonly Service[]): RouteConfiguration {
  // By upstream list: the configurations built for callers with that list, and their virtual hosts.
  const byUpstreams = perSnapshotTable<SharedOutbound[]>(snapshot, "outbound-routes-by-upstreams");
  let built = byUpstreams.get(upstreams);
  if (built === undefined) byUpstreams.set(upstreams, (built = []));
  // A caller that no rule or policy names gets every upstream's shared ("*") virtual host.
  const plain = !singledOutAnywhere(snapshot, proxy.service);
  if (plain) for (const each of built) if (each.plain) return each.routes;
  const vhosts: VirtualHost[] = [];
  const table = perSnapshotTable<Map<string, VirtualHost>>(snapshot, VHOST_TABLES.envoy);
  for (const service of upstreams) vhosts.push(virtualHostIn(table, snapshot, service, proxy, "envoy"));
  for (const each of built) if (sameElements(each.vhosts, vhosts)) return each.routes;
  const routes = acrossSnapshotsForCaller(proxy.service, "outbound-routes", identities(vhosts), outboundRouteConfiguration, vhosts);
  built.push({ vhosts, routes, plain });
  return routes;
}

interface SharedOutbound {
  readonly vhosts: readonly VirtualHost[];
  readonly routes: RouteConfiguration;
  /** Built for a caller that no rule or policy names: every such caller with these upstreams gets it. */
  readonly plain: boolean;
}

function outboundRouteConfiguration(vhosts: VirtualHost[]): RouteConfiguration {
  return routeConfiguration(OUTBOUND_HTTP, vhosts);
}

/**
 * The services whose routes a view of `proxy` reads: those in its scope (the
 * scope closure, the virtual hosts and caller keys read only theirs) and its
 * own. Nothing else in translation reads routesByDestination.
 */
function routeReads(snapshot: MeshSnapshot, proxy: Proxy): ReadonlySet<string> {
  return perSnapshotIn(snapshot, "route-reads", proxy.service, () => new Set([proxy.service, ...scopedNames(snapshot, proxy.service)]));
}

/**
 * Proxyless gRPC clients ask for resources by name, so they get one API listener
 * and route configuration per service; the stream serves only what they request.
 */
export function translateProxyless(snapshot: MeshSnapshot, proxy: Proxy): ResourceSet {
  const clusters: ResourceMap[] = [];
  const endpoints: ResourceMap[] = [];
  const listeners = new Map<string, Message>();
  const upstreams = httpUpstreams(snapshot, proxy);
  upstreamClustersAndEndpoints(snapshot, upstreams, clusters, endpoints, clusterDialect(proxy));
  for (const service of upstreams) {
    const listener = perSnapshot(snapshot, `api-listener|${service.name}`, () => proxylessApiListener(service.name, proxylessRouteConfig(service.name)));
    listeners.set(listener.name, listener);
  }
  return {
    cluster: new ComposedMap(clusters),
    endpoint: new ComposedMap(endpoints),
    listener: listeners,
    route: proxylessRoutes(snapshot, proxy, upstreams),
    routeReads: routeReads(snapshot, proxy),
    scope: scopedNames(snapshot, proxy.service),
  };
}

/** A proxyless client's route configurations: one per upstream, named like its API listener. */
function proxylessRoutes(snapshot: MeshSnapshot, proxy: Proxy, upstreams: readonly Service[]): Map<string, Message> {
  const routes = new Map<string, Message>();
  for (const service of upstreams) {
    const routeName = proxylessRouteConfig(service.name);
    const vhost = virtualHostFor(snapshot, service, proxy, "grpc");
    routes.set(
      routeName,
      perSnapshot(snapshot, `api-routes|${service.name}|${callerKey(snapshot, service, proxy)}`, () => routeConfiguration(routeName, [vhost])),
    );
  }
  return routes;
}

export function translate(snapshot: MeshSnapshot, proxy: Proxy): ResourceSet {
  return proxy.kind === "envoy" ? translateSidecar(snapshot, proxy) : translateProxyless(snapshot, proxy);
}

/**
 * A view's route configurations alone, for a snapshot that differs from the
 * one before only in routes (the cache's route-only path). `scope` is
 * ResourceSet.scope as the view's other kinds were last brought up to date
 * with. Routes reach those kinds only through the scope (a split adds a
 * service, scope.ts), and the registry is unchanged: when the scope still
 * names exactly the same services, the clusters, endpoints and listeners are
 * what they were, and this equals translate(snapshot, proxy).route. Returns
 * null when the scope differs: the whole view must be translated.
 */
export function translateRoutes(snapshot: MeshSnapshot, proxy: Proxy, scope: readonly string[]): ResourceMap | null {
  const names = scopedNames(snapshot, proxy.service);
  if (names !== scope && !sameElements(names, scope)) return null;
  const upstreams = httpUpstreams(snapshot, proxy);
  return proxy.kind === "envoy" ? sidecarRoutes(snapshot, proxy, upstreams) : proxylessRoutes(snapshot, proxy, upstreams);
}

