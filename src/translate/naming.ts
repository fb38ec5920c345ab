/**
 * The one home for resource names. Every name a proxy sees is built here, so the
 * scheme can be read (and changed) in one place.
 *
 *   cluster / EDS   outbound|<service>            every instance of a service
 *                   outbound|<service>|<subset>   instances matching a subset
 *                   inbound|<service>             the local app behind a sidecar
 *   listener        <service>                     proxyless gRPC API listener (xds:///<service>)
 *                   inbound|<port>                sidecar inbound listener
 *                   outbound|http                 sidecar outbound HTTP listener
 *   route config    <service>                     proxyless route config of a service
 *                   outbound|http                 sidecar outbound routes (one vhost per upstream)
 *                   inbound|<service>             sidecar inbound routes
 */
export function outboundCluster(service: string, subset?: string | null): string {
  return subset ? `outbound|${service}|${subset}` : `outbound|${service}`;
}

export function inboundCluster(service: string): string {
  return `inbound|${service}`;
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

export function inboundRouteConfig(service: string): string {
  return `inbound|${service}`;
}

/** Host header values a virtual host answers to: the bare name and name:port. */
export function serviceDomains(service: string, port: number): string[] {
  return [service, `${service}:${port}`];
}
