/**
 * Combining the database registry with the Consul catalog. Pure: same inputs,
 * same output, no I/O.
 *
 * Precedence (docs/consul.md, "Consul and the database registry"):
 * 1. A service Consul knows (it has at least one registered instance there) takes
 *    its instances from Consul only. Database instances of that service are
 *    ignored: mixing the two would keep sending traffic to hosts that Consul's
 *    health checks no longer vouch for, and a stale database row would never
 *    go away by itself.
 * 2. For such a service, a database `services` row, when present, sets `protocol`
 *    and `port`: it is the operator's explicit declaration, written next to the
 *    traffic rules that depend on it, whereas Consul meta is set by whoever
 *    registers an instance (and defaults to http/80 when missing).
 * 3. A service Consul does not know keeps its database definition and instances.
 * 4. A service only in Consul is used as Consul reports it.
 *
 * Consul "knows" a service as long as any instance is registered, whatever its
 * health: all instances failing their checks does not fall back to the database.
 * When the last instance deregisters, Consul forgets the service and a database
 * definition of it (if any) applies again.
 */
import { compareText } from "../model/order.ts";
import type { RegistryState, Service } from "../model/registry.ts";

export function mergeRegistries(database: RegistryState, consul: RegistryState): RegistryState {
  const names = new Set<string>([...database.services.keys(), ...consul.services.keys()]);
  const merged = new Map<string, Service>();
  for (const name of [...names].sort(compareText)) {
    const fromDb = database.services.get(name);
    const fromConsul = consul.services.get(name);
    if (fromConsul === undefined) {
      merged.set(name, fromDb!);
    } else if (fromDb === undefined) {
      merged.set(name, fromConsul);
    } else if (fromDb.protocol === fromConsul.protocol && fromDb.port === fromConsul.port) {
      merged.set(name, fromConsul);
    } else {
      merged.set(name, {
        name,
        protocol: fromDb.protocol,
        port: fromDb.port,
        instances: fromConsul.instances,
      });
    }
  }
  return { services: merged };
}
