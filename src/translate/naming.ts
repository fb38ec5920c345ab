/**
 * The one home for resource names. Every name a proxy sees is built here, so the
 * scheme can be read (and changed) in one place.
 *
 *   cluster / EDS   outbound|<service>            every instance of a service
 *                   outbound|<service>|<subset>   instances matching a subset
 *                   inbound|<service>             the local app behind a sidecar
 *                   outbound|<service>|color=<c>  color <c>, falling back to baseline (color routing)
 *                   outbound|<service>|<subset>|color=<c>   the same, falling back to the subset
 *   listener        <service>                     proxyless gRPC API listener (xds:///<service>)
 *                   inbound|<port>                sidecar inbound listener
 *                   outbound|http                 sidecar outbound HTTP listener
 *                   outbound|tcp|<port>           sidecar outbound TCP listener (mesh.tcp_routes)
 *   route config    <service>                     proxyless route config of a service
 *                   outbound|http                 sidecar outbound routes (one vhost per upstream)
 *                   inbound|<service>             sidecar inbound routes
 */
export function outboundCluster(service: string, subset?: string | null): string {
  return subset ? `outbound|${service}|${subset}` : `outbound|${service}`;
}

/**
 * The cluster for requests of color `color` to a service (or one subset of it):
 * its endpoints are the instances of that color, then the baseline instances
 * (of the subset) at a lower priority. Subset names are DNS labels, so the
 * "color=" segment never collides with one.
 */
export function colorCluster(service: string, subset: string | null, color: string): string {
  return `${outboundCluster(service, subset)}|color=${color}`;
}

/** The copy of route `routeName` for requests of color `color`. */
export function colorRouteName(routeName: string, color: string): string {
  return `${routeName}|color=${color}`;
}

/**
 * The mesh.http_routes id a route was built from, or null (the default route).
 * The inverse of the `http-route-<id>` names routes.ts gives rule routes (a
 * rule may become several routes, `http-route-<id>/...`).
 */
export function ruleRouteId(routeName: string): string | null {
  return /^http-route-(\d+)(?:$|[/|])/.exec(routeName)?.[1] ?? null;
}

/** Sidecar outbound TCP listener on a local port (mesh.tcp_routes). */
export function tcpListener(port: number): string {
  return `outbound|tcp|${port}`;
}

/** The local app behind a sidecar, named by its port (like the inbound listener, see inboundRouteConfig). */
export function inboundCluster(appPort: number): string {
  return `inbound|app|${appPort}`;
}

export function inboundListener(port: number): string {
  return `inbound|${port}`;
}

export const OUTBOUND_HTTP = "outbound|http";

/** gRPC resolves xds:///<service> to the listener named exactly <service>. */
export function apiListener(service: string): string {
  return service;
}

export function proxylessRouteConfig(service: string): string {
  return service;
}

/**
 * The inbound route configuration of a sidecar, named by its inbound port like
 * the listener: the name is the same for every service (RDS names are per
 * proxy), so sidecars with the same port share one listener resource.
 */
export function inboundRouteConfig(inboundPort: number): string {
  return `inbound|${inboundPort}`;
}

/** Host header values a virtual host answers to: the bare name and name:port. */
export function serviceDomains(service: string, port: number): string[] {
  return [service, `${service}:${port}`];
}

/**
 * HTTP filter instance names in the HTTP connection managers Signalbox builds.
 * A route's typed_per_filter_config is keyed by these, so both sides read them
 * from here. Envoy and gRPC pick the implementation by the config's type URL;
 * the name only identifies the instance (there are two fault filters).
 */
export const HTTP_FILTER = {
  /** The kill switch (mesh.drop_policies): a fault filter that only aborts. */
  drop: "signalbox.drop",
  /** Local rate limits (mesh.rate_limit_policies); Envoy sidecars only. */
  rateLimit: "envoy.filters.http.local_ratelimit",
  /** Fault injection (mesh.fault_policies). */
  fault: "envoy.filters.http.fault",
  router: "envoy.filters.http.router",
} as const;

/** Stat prefix of the local rate limit filter (Envoy stats `http_local_rate_limiter.*`). */
export const RATE_LIMIT_STAT_PREFIX = "http_local_rate_limiter";
