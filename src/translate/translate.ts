import type { Message } from "@bufbuild/protobuf";
import type { Proxy } from "../model/proxy.ts";
import type { Service } from "../model/registry.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import { inboundAppCluster, outboundEdsCluster } from "./clusters.ts";
import { loadAssignment } from "./endpoints.ts";
import { proxylessApiListener, sidecarInboundListener, sidecarOutboundListener } from "./listeners.ts";
import { inboundRouteConfig, OUTBOUND_HTTP, proxylessRouteConfig } from "./naming.ts";
import type { ResourceSet } from "./resource-types.ts";
import { inboundVirtualHost, routeConfiguration, serviceVirtualHost } from "./routes.ts";
import { selects } from "./rule-check.ts";

/**
 * translate(snapshot, proxy): everything one proxy should have. Pure: the same
 * snapshot and proxy always give equal resources.
 */

/** The services a proxy may call. For now every service in the mesh. */
export function upstreamsOf(snapshot: MeshSnapshot, _proxy: Proxy): Service[] {
  return [...snapshot.registry.services.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function subsetsOf(snapshot: MeshSnapshot, service: string): string[] {
  const names: string[] = [];
  for (const subset of snapshot.subsets.values()) if (subset.service === service) names.push(subset.name);
  return names.sort();
}

/** Clusters and endpoints for calling `services`: one per service and one per subset. */
function upstreamClustersAndEndpoints(
  snapshot: MeshSnapshot,
  services: readonly Service[],
  clusters: Map<string, Message>,
  endpoints: Map<string, Message>,
): void {
  for (const service of services) {
    const whole = outboundEdsCluster(service, null);
    clusters.set(whole.name, whole);
    endpoints.set(whole.name, loadAssignment(whole.name, service.instances));
    for (const subsetName of subsetsOf(snapshot, service.name)) {
      const subset = snapshot.subsets.get(`${service.name}/${subsetName}`);
      if (!subset) continue;
      const cluster = outboundEdsCluster(service, subsetName);
      clusters.set(cluster.name, cluster);
      const members = service.instances.filter((instance) => selects(subset, instance.labels));
      endpoints.set(cluster.name, loadAssignment(cluster.name, members));
    }
  }
}

function rulesFor(snapshot: MeshSnapshot, destination: string) {
  return snapshot.routesByDestination.get(destination) ?? [];
}

export function translateSidecar(snapshot: MeshSnapshot, proxy: Proxy): ResourceSet {
  const clusters = new Map<string, Message>();
  const endpoints = new Map<string, Message>();
  const listeners = new Map<string, Message>();
  const routes = new Map<string, Message>();
  const upstreams = upstreamsOf(snapshot, proxy).filter((service) => service.protocol !== "tcp");
  upstreamClustersAndEndpoints(snapshot, upstreams, clusters, endpoints);

  const outbound = sidecarOutboundListener(proxy.outboundPort);
  listeners.set(outbound.name, outbound);
  routes.set(
    OUTBOUND_HTTP,
    routeConfiguration(
      OUTBOUND_HTTP,
      upstreams.map((service) => serviceVirtualHost(service, rulesFor(snapshot, service.name), proxy.service, "envoy")),
    ),
  );

  const own = snapshot.registry.services.get(proxy.service);
  if (own && proxy.inboundPort !== null && proxy.appPort !== null) {
    const app = inboundAppCluster(own, proxy.appPort);
    clusters.set(app.name, app);
    const routeName = inboundRouteConfig(own.name);
    const inbound = sidecarInboundListener(proxy.inboundPort, routeName);
    listeners.set(inbound.name, inbound);
    routes.set(routeName, routeConfiguration(routeName, [inboundVirtualHost(own)]));
  }
  return { cluster: clusters, endpoint: endpoints, listener: listeners, route: routes };
}

/**
 * Proxyless gRPC clients ask for resources by name, so they get one API listener
 * and route configuration per service; the stream serves only what they request.
 */
export function translateProxyless(snapshot: MeshSnapshot, proxy: Proxy): ResourceSet {
  const clusters = new Map<string, Message>();
  const endpoints = new Map<string, Message>();
  const listeners = new Map<string, Message>();
  const routes = new Map<string, Message>();
  const upstreams = upstreamsOf(snapshot, proxy).filter((service) => service.protocol !== "tcp");
  upstreamClustersAndEndpoints(snapshot, upstreams, clusters, endpoints);
  for (const service of upstreams) {
    const routeName = proxylessRouteConfig(service.name);
    const listener = proxylessApiListener(service.name, routeName);
    listeners.set(listener.name, listener);
    routes.set(routeName, routeConfiguration(routeName, [serviceVirtualHost(service, rulesFor(snapshot, service.name), proxy.service, "grpc")]));
  }
  return { cluster: clusters, endpoint: endpoints, listener: listeners, route: routes };
}

export function translate(snapshot: MeshSnapshot, proxy: Proxy): ResourceSet {
  return proxy.kind === "envoy" ? translateSidecar(snapshot, proxy) : translateProxyless(snapshot, proxy);
}

