/**
 * From Consul's health answers to the mesh model. Pure functions: the same entries
 * always give the same Service, byte for byte, so the source can diff by value.
 *
 * The choices (also in docs/consul.md):
 * - health: a maintenance check (`_service_maintenance:<id>` or `_node_maintenance`)
 *   -> draining; else any critical check -> unhealthy; else any warning check ->
 *   healthy with `Weights.Warning`; else healthy with `Weights.Passing`. Node checks
 *   count (Consul returns them with each instance), and so do the checks of the
 *   instance's sidecar, since mesh traffic goes through it.
 * - labels: every tag as `tag: ""`, every `Service.Meta` pair as `key: value`
 *   (meta wins when a tag has the same name).
 * - weights: `Weights.Passing` / `Weights.Warning`; when a service has weights
 *   above Envoy's 128 they are scaled down proportionally (minimum 1). A weight of 0
 *   (Consul allows `Warning: 0`) takes the instance out: it becomes unhealthy.
 * - locality: region from `Service.Locality.Region`, node meta `signalbox-region`,
 *   or the node's datacenter; zone from `Service.Locality.Zone` or node meta
 *   `signalbox-zone`.
 * - sidecar: `Service.Meta["signalbox-mesh-port"]`, else the port of a
 *   `connect-proxy` service on the same node whose `Proxy.DestinationServiceID` is
 *   the instance's ID; none -> traffic goes straight to the instance.
 * - service protocol and Host port: `Service.Meta["protocol"]` (http, http2, grpc,
 *   tcp; default http) and `Service.Meta["signalbox-port"]` (default 80), read from
 *   the instance with the lowest id that declares a valid value.
 */
import type { Instance, InstanceHealth, Service, ServiceProtocol } from "../../model/registry.ts";
import type { ConsulServiceEntry } from "./consul-types.ts";
import { compareText } from "../../model/order.ts";

export const metaKeys = {
  meshPort: "signalbox-mesh-port",
  port: "signalbox-port",
  protocol: "protocol",
  region: "signalbox-region",
  zone: "signalbox-zone",
} as const;

/** Envoy's ceiling for a locality-less endpoint weight as the model states it. */
export const maxWeight = 128;

const protocols: ReadonlySet<string> = new Set(["http", "http2", "grpc", "tcp"]);

export interface MappingContext {
  /** The datacenter being read, used for region when a node carries none. */
  readonly datacenter?: string;
}

/** Kinds of Consul services that are not destinations of their own. */
export function isProxyOrGateway(entry: ConsulServiceEntry): boolean {
  return entry.Service.Kind !== "";
}

/** The key that ties a connect-proxy to the instance it fronts. */
export function sidecarKey(node: string, serviceId: string): string {
  return `${node}\u0000${serviceId}`;
}

export function instanceId(entry: ConsulServiceEntry): string {
  // Consul service IDs are unique per node only, so the node name qualifies them.
  return `${entry.Node.Node}/${entry.Service.ID}`;
}

type Verdict = "passing" | "warning" | "critical" | "maintenance";

/** Folds an instance's checks (and its sidecar's) into one verdict. */
export function checkVerdict(checks: readonly { readonly CheckID: string; readonly Status: string }[]): Verdict {
  let verdict: Verdict = "passing";
  for (const c of checks) {
    const maintenance = c.CheckID === "_node_maintenance" || c.CheckID.startsWith("_service_maintenance:");
    if (maintenance && c.Status === "critical") return "maintenance";
    if (c.Status === "critical") verdict = "critical";
    else if (c.Status === "warning" && verdict === "passing") verdict = "warning";
  }
  return verdict;
}

function parsePort(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,5}$/.test(value.trim())) return null;
  const n = Number(value.trim());
  return n >= 1 && n <= 65535 ? n : null;
}

function labelsOf(entry: ConsulServiceEntry): Record<string, string> {
  const raw = new Map<string, string>();
  for (const tag of entry.Service.Tags) raw.set(tag, "");
  for (const [k, v] of Object.entries(entry.Service.Meta)) raw.set(k, v);
  const out: Record<string, string> = {};
  for (const key of [...raw.keys()].sort(compareText)) out[key] = raw.get(key)!;
  return out;
}

function byInstanceId(a: ConsulServiceEntry, b: ConsulServiceEntry): number {
  return compareText(instanceId(a), instanceId(b));
}

/**
 * Maps one service's entries, plus the connect-proxy entries that point at it,
 * into a Service. Returns null when no entry is a plain (non-proxy) instance: then
 * Consul has nothing to route to under this name.
 */
export function mapService(
  name: string,
  entries: readonly ConsulServiceEntry[],
  sidecars: readonly ConsulServiceEntry[],
  ctx: MappingContext = {},
): Service | null {
  const plain = entries.filter((e) => !isProxyOrGateway(e));
  if (plain.length === 0) return null;

  const sidecarByInstance = new Map<string, ConsulServiceEntry>();
  for (const p of [...sidecars].sort(byInstanceId)) {
    if (p.Service.Kind !== "connect-proxy" || p.Service.Proxy === null) continue;
    if (p.Service.Proxy.DestinationServiceName !== name) continue;
    const key = sidecarKey(p.Node.Node, p.Service.Proxy.DestinationServiceID);
    if (!sidecarByInstance.has(key)) sidecarByInstance.set(key, p);
  }

  const sorted = [...plain].sort(byInstanceId);
  const draft = sorted.map((e) => {
    const sidecar = sidecarByInstance.get(sidecarKey(e.Node.Node, e.Service.ID));
    const sidecarChecks = sidecar ? sidecar.Checks.filter((c) => c.ServiceID === sidecar.Service.ID) : [];
    const verdict = checkVerdict([...e.Checks, ...sidecarChecks]);
    let health: InstanceHealth;
    let weight: number;
    switch (verdict) {
      case "maintenance":
        health = "draining";
        weight = e.Service.Weights.Passing;
        break;
      case "critical":
        health = "unhealthy";
        weight = e.Service.Weights.Passing;
        break;
      case "warning":
        health = "healthy";
        weight = e.Service.Weights.Warning;
        break;
      default:
        health = "healthy";
        weight = e.Service.Weights.Passing;
    }
    weight = Math.floor(weight);
    if (weight <= 0) {
      // Consul's "weight 0": no traffic in this state. Envoy forbids weight 0.
      if (health === "healthy") health = "unhealthy";
      weight = 1;
    }
    const meshPort = parsePort(e.Service.Meta[metaKeys.meshPort]) ?? (sidecar ? sidecar.Service.Port || null : null);
    return {
      id: instanceId(e),
      service: name,
      address: e.Service.Address !== "" ? e.Service.Address : e.Node.Address,
      port: e.Service.Port,
      meshPort,
      labels: labelsOf(e),
      region:
        e.Service.Locality?.Region ||
        e.Node.Meta[metaKeys.region] ||
        e.Node.Datacenter ||
        ctx.datacenter ||
        "",
      zone: e.Service.Locality?.Zone || e.Node.Meta[metaKeys.zone] || "",
      weight,
      health,
    };
  });

  const top = Math.max(...draft.map((d) => d.weight));
  const instances: Instance[] = draft.map((d) => ({
    ...d,
    weight: top > maxWeight ? Math.max(1, Math.round((d.weight * maxWeight) / top)) : d.weight,
  }));

  let protocol: ServiceProtocol = "http";
  const declaredProtocol = sorted
    .map((e) => e.Service.Meta[metaKeys.protocol]?.trim().toLowerCase())
    .find((p) => p !== undefined && protocols.has(p));
  if (declaredProtocol !== undefined) protocol = declaredProtocol as ServiceProtocol;
  const port = sorted.map((e) => parsePort(e.Service.Meta[metaKeys.port])).find((p) => p !== null) ?? 80;

  return { name, protocol, port, instances };
}
