import type { Proxy } from "../../src/model/proxy.ts";
import type { Instance, RegistryState, Service } from "../../src/model/registry.ts";
import type { LoadBalancing } from "../../src/model/cluster-policies.ts";
import type { HttpRoute } from "../../src/model/rules.ts";

/** Builders for golden scenarios: only what a scenario cares about is spelled out. */

export function instance(partial: Partial<Instance> & Pick<Instance, "id" | "service" | "address" | "port">): Instance {
  return { meshPort: null, labels: {}, region: "", zone: "", weight: 1, health: "healthy", ...partial };
}

export function service(name: string, protocol: Service["protocol"], port: number, instances: Instance[]): Service {
  return { name, protocol, port, instances: [...instances].sort((a, b) => (a.id < b.id ? -1 : 1)) };
}

/** A plain HTTP service on port 80 with one healthy instance on :8080 per address, ids <name>-<first>, <name>-<first + 1>, … in address order. */
export function httpService(name: string, addresses: readonly string[], first = 0): Service {
  return {
    name,
    protocol: "http",
    port: 80,
    instances: addresses.map((address, i) => instance({ id: `${name}-${first + i}`, service: name, address, port: 8080 })),
  };
}

export function registryOf(...services: Service[]): RegistryState {
  return { services: new Map(services.map((s) => [s.name, s])) };
}

/** A route; without destinations it sends everything to its destination service. */
export function route(partial: Partial<HttpRoute> & Pick<HttpRoute, "id" | "destination">): HttpRoute {
  return {
    source: null,
    priority: 0,
    path: null,
    method: null,
    headers: [],
    queryParams: [],
    destinations: [{ service: partial.destination, subset: null, weight: 100 }],
    timeoutMs: null,
    retry: null,
    ...partial,
  };
}

/** A sidecar on the usual ports (inbound 15006, outbound 15001) in front of an app on `appPort`. */
export function sidecar(id: string, service: string, appPort: number): Proxy {
  return { id, service, kind: "envoy", inboundPort: 15006, appPort, outboundPort: 15001, userAgent: "envoy" };
}

/** A proxyless gRPC client of `service`, identified by its user agent. */
export function proxyless(id: string, service: string, userAgent: string): Proxy {
  return { id, service, kind: "grpc", inboundPort: null, appPort: null, outboundPort: 15001, userAgent };
}

/** A load_balancing row; what is not given is left to Envoy's defaults. */
export function loadBalancing(partial: Partial<LoadBalancing> & Pick<LoadBalancing, "id" | "destination" | "algorithm">): LoadBalancing {
  return {
    choiceCount: null,
    ringMinSize: null,
    ringMaxSize: null,
    maglevTableSize: null,
    localityWeighted: false,
    panicThresholdPercent: null,
    slowStart: null,
    ...partial,
  };
}
