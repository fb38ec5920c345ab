/**
 * Registry rows -> RegistryState. Pure. The schema's CHECK constraints and the
 * instances -> services foreign key already guarantee the shapes; a row that
 * still does not fit (a hand-altered schema) is left out and described in
 * `problems` for the caller to log, since the registry has no status table.
 */
import type { Instance, InstanceHealth, RegistryState, Service, ServiceProtocol } from "../../model/registry.ts";
import { byName, byTextId } from "../../model/order.ts";
import { readStringMap } from "./json-shape.ts";
import type { InstanceRow, RegistryRows, ServiceRow } from "./rows.ts";

const PROTOCOLS: readonly ServiceProtocol[] = ["http", "http2", "grpc", "tcp"];
const HEALTH: readonly InstanceHealth[] = ["healthy", "unhealthy", "draining", "unknown"];

export interface ParsedRegistry {
  readonly state: RegistryState;
  readonly problems: readonly string[];
}

export function parseRegistry(rows: RegistryRows): ParsedRegistry {
  const problems: string[] = [];
  const instancesByService = new Map<string, Instance[]>();
  for (const row of rows.instances) {
    const instance = parseInstance(row, problems);
    if (!instance) continue;
    const list = instancesByService.get(instance.service);
    if (list) list.push(instance);
    else instancesByService.set(instance.service, [instance]);
  }

  const services = new Map<string, Service>();
  for (const row of [...rows.services].sort(byName)) {
    const protocol = parseProtocol(row, problems);
    if (!protocol) continue;
    const instances = (instancesByService.get(row.name) ?? []).sort(byTextId);
    instancesByService.delete(row.name);
    services.set(row.name, { name: row.name, protocol, port: row.port, instances });
  }
  // Instances of a service that does not exist are not part of the mesh.
  for (const [service, instances] of instancesByService) {
    problems.push(`instances ${instances.map((i) => i.id).join(", ")}: service "${service}" is not in mesh.services`);
  }
  return { state: { services }, problems };
}

function parseProtocol(row: ServiceRow, problems: string[]): ServiceProtocol | null {
  const protocol = PROTOCOLS.find((p) => p === row.protocol);
  if (!protocol) problems.push(`service ${row.name}: protocol: unknown value ${JSON.stringify(row.protocol)}`);
  return protocol ?? null;
}

function parseInstance(row: InstanceRow, problems: string[]): Instance | null {
  const issues: string[] = [];
  const labels = readStringMap(row.labels, "labels", issues);
  const health = HEALTH.find((h) => h === row.health);
  if (!health) issues.push(`health: unknown value ${JSON.stringify(row.health)}`);
  if (issues.length > 0 || !health) {
    problems.push(`instance ${row.id}: ${issues.join("; ")}`);
    return null;
  }
  return {
    id: row.id,
    service: row.service,
    address: row.address,
    port: row.port,
    meshPort: row.mesh_port,
    labels,
    region: row.region,
    zone: row.zone,
    weight: row.weight,
    health,
  };
}
