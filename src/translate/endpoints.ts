import { create } from "./create.ts";
import { HealthStatus } from "../gen/envoy/config/core/v3/health_check_pb.ts";
import {
  ClusterLoadAssignmentSchema,
  type ClusterLoadAssignment,
} from "../gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import {
  LocalityLbEndpointsSchema,
  type LbEndpoint,
  type LocalityLbEndpoints,
} from "../gen/envoy/config/endpoint/v3/endpoint_components_pb.ts";
import type { Instance, InstanceHealth } from "../model/registry.ts";
import { SocketAddress_Protocol } from "../gen/envoy/config/core/v3/address_pb.ts";
import { LocalitySchema, type Locality } from "../gen/envoy/config/core/v3/base_pb.ts";

const HEALTH: Record<InstanceHealth, HealthStatus> = {
  healthy: HealthStatus.HEALTHY,
  unhealthy: HealthStatus.UNHEALTHY,
  draining: HealthStatus.DRAINING,
  unknown: HealthStatus.UNKNOWN,
};

/**
 * Envoy's overprovisioning factor for color clusters. Envoy moves traffic to a
 * lower priority in proportion to how unhealthy a higher one is (with the
 * default 140, a priority with half its hosts healthy keeps only 70%). A
 * request of a color must stay on that color while any colored instance is
 * healthy, so the factor is large enough that one healthy host of any group
 * keeps 100%, and only a group with no healthy host fails over to the baseline.
 * It also keeps Envoy out of panic mode while the baseline is healthy. gRPC
 * clients ignore the factor: they fail over to the next priority only when
 * every endpoint of the higher one is unusable.
 */
export const COLOR_OVERPROVISIONING_FACTOR = 1_000_000;

/**
 * Endpoints grouped by locality (region, zone). Every locality carries a weight
 * (the sum of its endpoints' weights): gRPC clients ignore localities without one.
 */
function localities(instances: readonly Instance[], priority: number, endpoints: EndpointMemo): LocalityLbEndpoints[] {
  const first = instances[0];
  if (!first) return [];
  // Most services run in one locality: then there is nothing to group or sort.
  if (instances.every((instance) => instance.region === first.region && instance.zone === first.zone)) return [localityGroup(instances, priority, endpoints)];
  const byLocality = new Map<string, Instance[]>();
  for (const instance of instances) {
    const key = localityKey(instance.region, instance.zone);
    const group = byLocality.get(key) ?? [];
    group.push(instance);
    byLocality.set(key, group);
  }
  return [...byLocality.keys()].sort().map((key) => localityGroup(byLocality.get(key) as Instance[], priority, endpoints));
}

/** One locality's endpoints; `group` is not empty and shares one region and zone. */
function localityGroup(group: readonly Instance[], priority: number, endpoints: EndpointMemo): LocalityLbEndpoints {
  const first = group[0] as Instance;
  let weight = 0;
  for (const instance of group) weight += instance.weight;
  return create(LocalityLbEndpointsSchema, {
    locality: localityOf(first.region, first.zone),
    loadBalancingWeight: weight,
    priority,
    lbEndpoints: group.map((instance) => lbEndpoint(instance, endpoints)),
  });
}

/** Sorts like (region, zone): the order groups are written in. */
function localityKey(region: string, zone: string): string {
  return `${region}\u0000${zone}`;
}

const localityMessages = new Map<string, Locality>();

/**
 * One Locality message per region and zone, shared by every group in it (so it
 * is encoded once; translated messages are never mutated). Bounded by the
 * localities the mesh has ever had.
 */
function localityOf(region: string, zone: string): Locality {
  const key = localityKey(region, zone);
  let locality = localityMessages.get(key);
  if (!locality) localityMessages.set(key, (locality = create(LocalitySchema, { region, zone })));
  return locality;
}

/**
 * The endpoint messages built for one service's assignments, by instance: an
 * instance sits in the whole-service and subset assignments alike, and gets
 * one message, validated once. A plain map for the one call, not a weak map
 * across calls: the assignments themselves are reused while the service's
 * instances are unchanged (translate.ts), and weak entries for every
 * instance of the mesh cost more in garbage collection than they save.
 */
type EndpointMemo = Map<Instance, LbEndpoint>;

function lbEndpoint(instance: Instance, endpoints: EndpointMemo): LbEndpoint {
  let endpoint = endpoints.get(instance);
  if (!endpoint) {
    // Written out rather than create()d: this runs for every instance of the
    // mesh, and the types make the literals complete (a new field fails tsc).
    endpoint = {
      $typeName: "envoy.config.endpoint.v3.LbEndpoint",
      hostIdentifier: {
        case: "endpoint",
        value: {
          $typeName: "envoy.config.endpoint.v3.Endpoint",
          address: {
            $typeName: "envoy.config.core.v3.Address",
            address: {
              case: "socketAddress",
              value: {
                $typeName: "envoy.config.core.v3.SocketAddress",
                protocol: SocketAddress_Protocol.TCP,
                address: instance.address,
                portSpecifier: { case: "portValue", value: instance.meshPort ?? instance.port },
                resolverName: "",
                ipv4Compat: false,
              },
            },
          },
          hostname: "",
          additionalAddresses: [],
        },
      },
      healthStatus: HEALTH[instance.health],
      loadBalancingWeight: instance.weight,
    } satisfies LbEndpoint;
    endpoints.set(instance, endpoint);
  }
  return endpoint;
}

function loadAssignment(clusterName: string, instances: readonly Instance[], endpoints: EndpointMemo): ClusterLoadAssignment {
  return create(ClusterLoadAssignmentSchema, { clusterName, endpoints: localities(instances, 0, endpoints) });
}

/**
 * A color cluster's endpoints: the instances of the color at priority 0 and the
 * baseline instances at priority 1, so Envoy and gRPC alike send a colored
 * request to the colored instances while any is healthy, and to the baseline
 * otherwise (none left, or all unhealthy).
 */
function colorLoadAssignment(
  clusterName: string,
  colored: readonly Instance[],
  baseline: readonly Instance[],
  endpoints: EndpointMemo,
): ClusterLoadAssignment {
  const groups = [colored, baseline].filter((group) => group.length > 0);
  return create(ClusterLoadAssignmentSchema, {
    clusterName,
    endpoints: groups.flatMap((group, priority) => localities(group, priority, endpoints)),
    policy: { overprovisioningFactor: COLOR_OVERPROVISIONING_FACTOR },
  });
}

/** Which of a service's instances a subset (or the whole service, null) selects. */
export type InstanceFilter = (instance: Instance) => boolean;

/**
 * Every endpoint resource of a service, keyed like its clusters (see
 * serviceClusterSet). With color routing in force (`colorOf` given), colored
 * instances are kept out of the whole-service and subset clusters, so they
 * never take baseline traffic, and each color cluster falls back from its
 * colored instances to the baseline members of its subset.
 */
export function serviceLoadAssignments(
  service: { readonly instances: readonly Instance[] },
  subsets: readonly { readonly name: string; readonly selects: InstanceFilter }[],
  names: {
    readonly whole: string;
    readonly subset: (subset: string) => string;
    readonly color: (subset: string | null, color: string) => string;
  },
  colorOf: ((instance: Instance) => string) | null,
  colors: readonly string[],
): Map<string, ClusterLoadAssignment> {
  const out = new Map<string, ClusterLoadAssignment>();
  const endpoints: EndpointMemo = new Map();
  const baseline = colorOf ? service.instances.filter((instance) => colorOf(instance) === "") : service.instances;
  out.set(names.whole, loadAssignment(names.whole, baseline, endpoints));
  for (const subset of subsets) {
    const name = names.subset(subset.name);
    out.set(name, loadAssignment(name, baseline.filter(subset.selects), endpoints));
  }
  if (!colorOf) return out;
  for (const color of colors) {
    const colored = service.instances.filter((instance) => colorOf(instance) === color);
    const whole = names.color(null, color);
    out.set(whole, colorLoadAssignment(whole, colored, baseline, endpoints));
    for (const subset of subsets) {
      const name = names.color(subset.name, color);
      out.set(name, colorLoadAssignment(name, colored, baseline.filter(subset.selects), endpoints));
    }
  }
  return out;
}
