import { clone } from "@bufbuild/protobuf";
import { create } from "./create.ts";
import {
  HeaderMatcherSchema,
  RouteAction_HashPolicySchema,
  RouteAction_UpgradeConfigSchema,
  RouteSchema,
  WeightedClusterSchema,
  type HeaderMatcher,
  type Route,
  type RouteAction,
  type RouteAction_HashPolicy,
  type VirtualHost,
} from "../gen/envoy/config/route/v3/route_components_pb.ts";
import {
  clusterPolicyFor,
  resolveHashPolicies,
  type HashPolicyRule,
  type ServiceColors,
} from "../model/cluster-policies.ts";
import type { Service } from "../model/registry.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import { millis } from "./common.ts";
import { perSnapshot } from "./memo.ts";
import { colorCluster, colorRouteName, outboundCluster, ruleRouteId } from "./naming.ts";
import type { MatcherDialect } from "./routes.ts";

/**
 * The cluster side's part of a service's virtual host, applied to the routes
 * routes.ts built (so each side keeps to its own file):
 *
 * - hash policies (mesh.hash_policies) on every route that forwards, for
 *   ring_hash / maglev: route-specific > source-specific > destination-wide;
 * - WebSocket upgrades (mesh.connection_policies.websocket), Envoy only;
 * - color routing (mesh.color_routing): in front of every forwarding route, one
 *   copy per color that exists, matching `<header>: <color>` on top of the
 *   route's own conditions and sending to the color clusters instead. The copies
 *   compose with the rule routes: a colored request is matched by the same rules
 *   in the same order, with the same timeouts, retries and faults, and only the
 *   instances it lands on differ.
 */

/** The service and subset of every whole-service and subset cluster of services with colors. */
interface ClusterOrigin {
  readonly service: string;
  readonly subset: string | null;
  readonly colors: ServiceColors;
}

function colorOrigins(snapshot: MeshSnapshot): ReadonlyMap<string, ClusterOrigin> {
  return perSnapshot(snapshot, "color-origins", () => {
    const origins = new Map<string, ClusterOrigin>();
    for (const [service, colors] of snapshot.clusterPolicies?.colors ?? []) {
      origins.set(outboundCluster(service, null), { service, subset: null, colors });
    }
    for (const subset of snapshot.subsets.values()) {
      const colors = snapshot.clusterPolicies?.colors.get(subset.service);
      if (colors) origins.set(outboundCluster(subset.service, subset.name), { service: subset.service, subset: subset.name, colors });
    }
    return origins;
  });
}

function hashPolicy(rule: HashPolicyRule, dialect: MatcherDialect): RouteAction_HashPolicy | null {
  const terminal = rule.terminal;
  switch (rule.hashOn) {
    case "header":
      return create(RouteAction_HashPolicySchema, {
        policySpecifier: { case: "header", value: { headerName: rule.name ?? "" } },
        terminal,
      });
    case "source_ip":
      // gRPC has no source address to hash; its equivalent is the client channel.
      return dialect === "envoy"
        ? create(RouteAction_HashPolicySchema, { policySpecifier: { case: "connectionProperties", value: { sourceIp: true } }, terminal })
        : create(RouteAction_HashPolicySchema, { policySpecifier: { case: "filterState", value: { key: "io.grpc.channel_id" } }, terminal });
    case "cookie":
      if (dialect !== "envoy") return null; // gRPC clients ignore cookies
      return create(RouteAction_HashPolicySchema, {
        policySpecifier: {
          case: "cookie",
          value: {
            name: rule.name ?? "",
            ...(rule.cookieTtlMs !== null ? { ttl: millis(rule.cookieTtlMs) } : {}),
            ...(rule.cookiePath !== null ? { path: rule.cookiePath } : {}),
          },
        },
        terminal,
      });
    case "query_param":
      if (dialect !== "envoy") return null; // gRPC has no query string
      return create(RouteAction_HashPolicySchema, { policySpecifier: { case: "queryParameter", value: { name: rule.name ?? "" } }, terminal });
  }
}

/** Envoy proxies the upgrade on this route even where its connection manager lists none. */
function websocketUpgrade() {
  return create(RouteAction_UpgradeConfigSchema, { upgradeType: "websocket" });
}

function exactHeader(name: string, value: string, dialect: MatcherDialect): HeaderMatcher {
  // Same dialect rule as routes.ts: string_match for Envoy, exact_match for gRPC (C-core < 1.55).
  return dialect === "envoy"
    ? create(HeaderMatcherSchema, { name, headerMatchSpecifier: { case: "stringMatch", value: { matchPattern: { case: "exact", value } } } })
    : create(HeaderMatcherSchema, { name, headerMatchSpecifier: { case: "exactMatch", value } });
}

/** The colored copy of a forwarding route, or null when none of its clusters has that color. */
function coloredRoute(
  route: Route,
  action: RouteAction,
  color: string,
  header: string,
  origins: ReadonlyMap<string, ClusterOrigin>,
  dialect: MatcherDialect,
): Route | null {
  const recolor = (name: string): string | null => {
    const origin = origins.get(name);
    return origin && origin.colors.colors.includes(color) ? colorCluster(origin.service, origin.subset, color) : null;
  };
  const specifier = action.clusterSpecifier;
  let recolored: RouteAction["clusterSpecifier"] | null = null;
  if (specifier.case === "cluster") {
    const name = recolor(specifier.value);
    if (name) recolored = { case: "cluster", value: name };
  } else if (specifier.case === "weightedClusters") {
    const weighted = clone(WeightedClusterSchema, specifier.value);
    let any = false;
    for (const cluster of weighted.clusters) {
      const name = recolor(cluster.name);
      if (name) {
        cluster.name = name;
        any = true;
      }
    }
    if (any) recolored = { case: "weightedClusters", value: weighted };
  }
  if (!recolored) return null;
  const copy = clone(RouteSchema, route);
  copy.name = colorRouteName(route.name, color);
  if (copy.match) copy.match.headers.push(exactHeader(header, color, dialect));
  if (copy.action.case === "route") copy.action.value.clusterSpecifier = recolored;
  return copy;
}

/** The routes of `vhost` with the cluster side's additions (see the file comment). */
export function decorateVirtualHost(
  snapshot: MeshSnapshot,
  service: Service,
  vhost: VirtualHost,
  source: string,
  dialect: MatcherDialect,
): VirtualHost {
  const active = snapshot.clusterPolicies;
  if (!active) return vhost;
  const leveled = active.hashPolicies.get(service.name);
  const websocket = dialect === "envoy" && service.protocol === "http" && (clusterPolicyFor(active, service.name).connection?.websocket ?? false);
  const colors = active.colors.get(service.name);
  if (!leveled && !websocket && !colors) return vhost;

  const origins = colors ? colorOrigins(snapshot) : new Map<string, ClusterOrigin>();
  const routes: Route[] = [];
  for (const original of vhost.routes) {
    if (original.action.case !== "route") {
      routes.push(original);
      continue;
    }
    const route = clone(RouteSchema, original);
    const action = route.action.value as RouteAction;
    const entries = resolveHashPolicies(leveled, source, ruleRouteId(route.name));
    const hash = entries.map((entry) => hashPolicy(entry, dialect)).filter((entry) => entry !== null);
    if (hash.length > 0) action.hashPolicy = hash;
    if (websocket) action.upgradeConfigs = [websocketUpgrade()];
    for (const color of colors?.colors ?? []) {
      const copy = coloredRoute(route, action, color, colors?.header ?? "", origins, dialect);
      if (copy) routes.push(copy);
    }
    routes.push(route);
  }
  return { ...vhost, routes };
}

/** Whether the inbound routes of `service` allow websocket upgrades (its connection policy). */
export function upgradesInboundWebsocket(snapshot: MeshSnapshot, service: Service): boolean {
  return service.protocol === "http" && (clusterPolicyFor(snapshot.clusterPolicies, service.name).connection?.websocket ?? false);
}

/** The inbound side of WebSocket: the sidecar in front of the app must let the upgrade through too. */
export function decorateInboundVirtualHost(snapshot: MeshSnapshot, service: Service, vhost: VirtualHost): VirtualHost {
  if (!upgradesInboundWebsocket(snapshot, service)) return vhost;
  const routes = vhost.routes.map((original) => {
    if (original.action.case !== "route") return original;
    const route = clone(RouteSchema, original);
    (route.action.value as RouteAction).upgradeConfigs = [websocketUpgrade()];
    return route;
  });
  return { ...vhost, routes };
}
