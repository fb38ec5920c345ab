import { create } from "./create.ts";
import { ListenerSchema, type Listener } from "../gen/envoy/config/listener/v3/listener_pb.ts";
import { TcpProxySchema, type TcpProxy } from "../gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.ts";
import { clusterPolicyFor, resolveHashPolicies, type ActiveClusterPolicies, type TcpRoute } from "../model/cluster-policies.ts";
import { HashPolicySchema } from "../gen/envoy/type/v3/hash_policy_pb.ts";
import type { Proxy } from "../model/proxy.ts";
import type { Service } from "../model/registry.ts";
import { millis, pack, socketAddress } from "./common.ts";
import { outboundCluster, tcpListener } from "./naming.ts";

/**
 * Plain TCP services on the sidecar (mesh.tcp_routes): the app connects to
 * 127.0.0.1:<local_port>, and a tcp_proxy forwards the connection to the
 * destination's instances, or splits connections by weight between services
 * and subsets. Proxyless gRPC has no TCP. Pure.
 */

const TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy";

/**
 * The TCP routes that apply to a proxy: for each tcp destination it may call,
 * the route for its own service if there is one, else the route for every
 * caller. Ordered by destination, then id.
 */
export function tcpRoutesFor(active: ActiveClusterPolicies | undefined, proxy: Proxy, upstreams: readonly Service[]): TcpRoute[] {
  if (!active || active.tcpRoutes.length === 0) return [];
  const reachable = new Set(upstreams.map((service) => service.name));
  const byDestination = new Map<string, TcpRoute>();
  for (const route of active.tcpRoutes) {
    if (!reachable.has(route.destination)) continue;
    if (route.source !== null && route.source !== proxy.service) continue;
    const current = byDestination.get(route.destination);
    if (!current || (current.source === null && route.source !== null)) byDestination.set(route.destination, route);
  }
  return [...byDestination.values()];
}

function tcpProxy(route: TcpRoute, active: ActiveClusterPolicies, caller: string): TcpProxy {
  const live = route.destinations.filter((destination) => destination.weight > 0);
  const proxy = create(TcpProxySchema, {
    statPrefix: `outbound_tcp_${route.localPort}`,
    clusterSpecifier:
      live.length === 1 && live[0]
        ? { case: "cluster", value: outboundCluster(live[0].service, live[0].subset) }
        : {
            case: "weightedClusters",
            value: {
              clusters: live.map((destination) => ({
                name: outboundCluster(destination.service, destination.subset),
                weight: destination.weight,
              })),
            },
          },
  });
  const idle = clusterPolicyFor(active, route.destination).connection?.idleTimeoutMs ?? null;
  if (idle !== null) proxy.idleTimeout = millis(idle);
  // A TCP connection can only be hashed on its source address (checked in cluster-policy-check.ts).
  const hashed = resolveHashPolicies(active.hashPolicies.get(route.destination), caller, null).some((p) => p.hashOn === "source_ip");
  if (hashed) proxy.hashPolicy = [create(HashPolicySchema, { policySpecifier: { case: "sourceIp", value: {} } })];
  return proxy;
}

function listener(route: TcpRoute, active: ActiveClusterPolicies, caller: string): Listener {
  return create(ListenerSchema, {
    name: tcpListener(route.localPort),
    address: socketAddress("127.0.0.1", route.localPort),
    filterChains: [
      {
        filters: [
          { name: TCP_PROXY_FILTER, configType: { case: "typedConfig", value: pack(TcpProxySchema, tcpProxy(route, active, caller)) } },
        ],
      },
    ],
  });
}

export interface SidecarTcp {
  readonly listeners: readonly Listener[];
  /** Services whose clusters the listeners send to. */
  readonly services: readonly string[];
}

/**
 * Listeners for the TCP routes that apply to a sidecar. A route whose port the
 * sidecar already uses (its outbound HTTP or inbound port, or an earlier TCP
 * route) is left out: Envoy would refuse the whole listener update.
 */
export function sidecarTcp(active: ActiveClusterPolicies | undefined, proxy: Proxy, upstreams: readonly Service[]): SidecarTcp {
  const routes = tcpRoutesFor(active, proxy, upstreams);
  if (!active || routes.length === 0) return { listeners: [], services: [] };
  const taken = new Set<number>([proxy.outboundPort, ...(proxy.inboundPort === null ? [] : [proxy.inboundPort])]);
  const listeners: Listener[] = [];
  const services = new Set<string>();
  for (const route of routes) {
    if (taken.has(route.localPort)) continue;
    taken.add(route.localPort);
    listeners.push(listener(route, active, proxy.service));
    for (const destination of route.destinations) services.add(destination.service);
  }
  return { listeners, services: [...services].sort() };
}
