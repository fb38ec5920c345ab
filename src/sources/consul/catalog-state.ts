/**
 * The last good answer of every watched Consul service, and the mesh Services
 * built from them. Updating one service rebuilds only the services it touches
 * (itself, and the services its connect-proxies front), and reports whether any
 * built Service changed by value.
 */
import type { RegistryState, Service } from "../../model/registry.ts";
import type { ConsulServiceEntry } from "./consul-types.ts";
import { checkKey, signature } from "./hints.ts";
import { isProxyOrGateway, mapService, type MappingContext } from "./mapping.ts";
import { compareText } from "../../model/order.ts";

export class CatalogState {
  /** Last good entries per Consul service name (proxies included). */
  private readonly entries = new Map<string, readonly ConsulServiceEntry[]>();
  /** destination service -> name of the Consul service holding the proxies -> proxies. */
  private readonly proxiesByDestination = new Map<string, Map<string, readonly ConsulServiceEntry[]>>();
  private readonly built = new Map<string, { service: Service; key: string }>();
  /** Per service: the nodes its instances run on, and its critical checks (see `criticalSignature`). */
  private readonly health = new Map<string, { nodes: readonly string[]; critical: string; checks: string }>();

  constructor(private readonly ctx: MappingContext) {}

  /** True once `name` has had a good answer. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** How many services are emitted. */
  get size(): number {
    return this.built.size;
  }

  names(): IterableIterator<string> {
    return this.entries.keys();
  }

  /** Records a good answer for `name`; true when an emitted Service changed. */
  set(name: string, next: readonly ConsulServiceEntry[]): boolean {
    const previous = this.entries.get(name) ?? [];
    this.entries.set(name, next);
    this.health.set(name, healthOf(next));
    return this.update(name, previous, next);
  }

  /** Forgets `name` (gone from the catalog); true when an emitted Service changed. */
  delete(name: string): boolean {
    const previous = this.entries.get(name);
    if (previous === undefined) return false;
    this.entries.delete(name);
    this.health.delete(name);
    return this.update(name, previous, []);
  }

  /** The nodes that run instances of `name`, as last read. */
  nodesOf(name: string): readonly string[] {
    return this.health.get(name)?.nodes ?? [];
  }

  /**
   * The critical checks of `name`'s last good answer (service checks of its
   * instances and checks of the nodes they run on), as a signature comparable
   * with `CriticalChecks.signature`.
   */
  criticalSignature(name: string): string {
    return this.health.get(name)?.critical ?? "";
  }

  /** Like `criticalSignature`, for every check of the answer, with its status. */
  checksSignature(name: string): string {
    return this.health.get(name)?.checks ?? "";
  }

  /** The current services, keyed and ordered by name. */
  registry(): RegistryState {
    const names = [...this.built.keys()].sort(compareText);
    return { services: new Map(names.map((n) => [n, this.built.get(n)!.service])) };
  }

  private update(name: string, previous: readonly ConsulServiceEntry[], next: readonly ConsulServiceEntry[]): boolean {
    const dirty = new Set<string>([name]);
    for (const dest of proxyDestinations(previous)) {
      dirty.add(dest);
      this.proxiesByDestination.get(dest)?.delete(name);
      if (this.proxiesByDestination.get(dest)?.size === 0) this.proxiesByDestination.delete(dest);
    }
    for (const dest of proxyDestinations(next)) {
      dirty.add(dest);
      const proxies = next.filter((e) => e.Service.Proxy?.DestinationServiceName === dest && isProxyOrGateway(e));
      let byHolder = this.proxiesByDestination.get(dest);
      if (!byHolder) this.proxiesByDestination.set(dest, (byHolder = new Map()));
      byHolder.set(name, proxies);
    }
    let changed = false;
    for (const dest of dirty) changed = this.rebuild(dest) || changed;
    return changed;
  }

  private rebuild(name: string): boolean {
    const entries = this.entries.get(name);
    const sidecars = [...(this.proxiesByDestination.get(name)?.values() ?? [])].flat();
    const service = entries === undefined ? null : mapService(name, entries, sidecars, this.ctx);
    const old = this.built.get(name);
    if (service === null) {
      if (old === undefined) return false;
      this.built.delete(name);
      return true;
    }
    // Built objects have a fixed key order, so their JSON is a faithful value key.
    const key = JSON.stringify(service);
    if (old?.key === key) return false;
    this.built.set(name, { service, key });
    return true;
  }
}

function healthOf(entries: readonly ConsulServiceEntry[]): { nodes: readonly string[]; critical: string; checks: string } {
  const nodes = new Set<string>();
  const critical = new Set<string>();
  const checks = new Set<string>();
  for (const e of entries) {
    nodes.add(e.Node.Node);
    for (const c of e.Checks) {
      if (c.Status === "critical") critical.add(checkKey(e.Node.Node, c.CheckID));
      checks.add(checkKey(e.Node.Node, c.CheckID, c.Status));
    }
  }
  return { nodes: [...nodes], critical: signature(critical), checks: signature(checks) };
}

function proxyDestinations(entries: readonly ConsulServiceEntry[]): Set<string> {
  const out = new Set<string>();
  for (const e of entries) {
    if (e.Service.Kind === "connect-proxy" && e.Service.Proxy !== null) out.add(e.Service.Proxy.DestinationServiceName);
  }
  return out;
}
