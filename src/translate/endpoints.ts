import { create } from "@bufbuild/protobuf";
import { HealthStatus } from "../gen/envoy/config/core/v3/health_check_pb.ts";
import {
  ClusterLoadAssignmentSchema,
  type ClusterLoadAssignment,
} from "../gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import {
  LocalityLbEndpointsSchema,
  type LocalityLbEndpoints,
} from "../gen/envoy/config/endpoint/v3/endpoint_components_pb.ts";
import type { Instance, InstanceHealth } from "../model/registry.ts";
import { socketAddress } from "./common.ts";

const HEALTH: Record<InstanceHealth, HealthStatus> = {
  healthy: HealthStatus.HEALTHY,
  unhealthy: HealthStatus.UNHEALTHY,
  draining: HealthStatus.DRAINING,
  unknown: HealthStatus.UNKNOWN,
};

/**
 * Endpoints grouped by locality (region, zone). Every locality carries a weight
 * (the sum of its endpoints' weights): gRPC clients ignore localities without one.
 */
export function loadAssignment(clusterName: string, instances: readonly Instance[]): ClusterLoadAssignment {
  const byLocality = new Map<string, Instance[]>();
  for (const instance of instances) {
    const key = `${instance.region}\u0000${instance.zone}`;
    const group = byLocality.get(key) ?? [];
    group.push(instance);
    byLocality.set(key, group);
  }
  const endpoints: LocalityLbEndpoints[] = [];
  for (const key of [...byLocality.keys()].sort()) {
    const group = byLocality.get(key) ?? [];
    const first = group[0];
    if (!first) continue;
    endpoints.push(
      create(LocalityLbEndpointsSchema, {
        locality: { region: first.region, zone: first.zone },
        loadBalancingWeight: group.reduce((sum, instance) => sum + instance.weight, 0),
        lbEndpoints: group.map((instance) => ({
          hostIdentifier: {
            case: "endpoint" as const,
            value: { address: socketAddress(instance.address, instance.meshPort ?? instance.port) },
          },
          healthStatus: HEALTH[instance.health],
          loadBalancingWeight: instance.weight,
        })),
      }),
    );
  }
  return create(ClusterLoadAssignmentSchema, { clusterName, endpoints });
}
