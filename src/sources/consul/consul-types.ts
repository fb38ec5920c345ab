/**
 * The parts of Consul's HTTP API answers the source reads, and strict parsers for
 * them. Anything that does not have this shape is "garbage": the source keeps its
 * last good state instead of guessing.
 */

export type CheckStatus = "passing" | "warning" | "critical";

export interface ConsulCheck {
  readonly CheckID: string;
  readonly Status: CheckStatus;
  /** "" for node-level checks (serfHealth, _node_maintenance). */
  readonly ServiceID: string;
}

export interface ConsulNode {
  readonly Node: string;
  readonly Address: string;
  readonly Datacenter: string;
  readonly Meta: Readonly<Record<string, string>>;
}

export interface ConsulProxy {
  readonly DestinationServiceName: string;
  readonly DestinationServiceID: string;
  readonly LocalServicePort: number;
}

export interface ConsulLocality {
  readonly Region: string;
  readonly Zone: string;
}

export interface ConsulService {
  readonly ID: string;
  readonly Service: string;
  /** "" for a typical service; "connect-proxy", "mesh-gateway", ... otherwise. */
  readonly Kind: string;
  readonly Tags: readonly string[];
  readonly Address: string;
  readonly Port: number;
  readonly Meta: Readonly<Record<string, string>>;
  readonly Weights: { readonly Passing: number; readonly Warning: number };
  readonly Proxy: ConsulProxy | null;
  /** Consul 1.17+ service locality, when registered. */
  readonly Locality: ConsulLocality | null;
}

/** One entry of GET /v1/health/service/:name. */
export interface ConsulServiceEntry {
  readonly Node: ConsulNode;
  readonly Service: ConsulService;
  readonly Checks: readonly ConsulCheck[];
}

export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ShapeError";
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(o: Json, key: string, where: string, optional = false): string {
  const v = o[key];
  if (typeof v === "string") return v;
  if (optional && (v === undefined || v === null)) return "";
  throw new ShapeError(`${where}.${key}: expected a string`);
}

function stringMap(v: unknown, where: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new ShapeError(`${where}: expected an object`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string") throw new ShapeError(`${where}.${k}: expected a string`);
    out[k] = val;
  }
  return out;
}

function stringList(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((t) => typeof t === "string")) {
    throw new ShapeError(`${where}: expected a list of strings`);
  }
  return v as string[];
}

function port(v: unknown, where: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 65535) {
    throw new ShapeError(`${where}: expected a port number`);
  }
  return v;
}

/** GET /v1/catalog/services: `{ "name": ["tag", ...], ... }`. */
export function parseCatalogServices(body: unknown): Map<string, readonly string[]> {
  if (!isObject(body)) throw new ShapeError("catalog services: expected an object of service names");
  const out = new Map<string, readonly string[]>();
  for (const [name, tags] of Object.entries(body)) {
    out.set(name, stringList(tags, `catalog services.${name}`));
  }
  return out;
}

const statuses: ReadonlySet<string> = new Set(["passing", "warning", "critical"]);

function parseCheck(v: unknown, where: string): ConsulCheck {
  if (!isObject(v)) throw new ShapeError(`${where}: expected an object`);
  const status = str(v, "Status", where);
  if (!statuses.has(status)) throw new ShapeError(`${where}.Status: unknown status "${status}"`);
  return { CheckID: str(v, "CheckID", where), Status: status as CheckStatus, ServiceID: str(v, "ServiceID", where, true) };
}

function parseWeights(v: unknown, where: string): { Passing: number; Warning: number } {
  // Consul fills in {Passing: 1, Warning: 1} when a registration gives none.
  if (v === undefined || v === null) return { Passing: 1, Warning: 1 };
  if (!isObject(v)) throw new ShapeError(`${where}: expected an object`);
  const w = (key: string, dflt: number): number => {
    const x = v[key];
    if (x === undefined || x === null) return dflt;
    if (typeof x !== "number" || !Number.isFinite(x) || x < 0) throw new ShapeError(`${where}.${key}: expected a number`);
    return x;
  };
  return { Passing: w("Passing", 1), Warning: w("Warning", 1) };
}

function parseProxy(v: unknown): ConsulProxy | null {
  if (v === undefined || v === null || !isObject(v)) return null;
  const name = v.DestinationServiceName;
  if (typeof name !== "string" || name === "") return null;
  const lsp = v.LocalServicePort;
  return {
    DestinationServiceName: name,
    DestinationServiceID: typeof v.DestinationServiceID === "string" ? v.DestinationServiceID : "",
    LocalServicePort: typeof lsp === "number" && Number.isInteger(lsp) ? lsp : 0,
  };
}

function parseLocality(v: unknown): ConsulLocality | null {
  if (!isObject(v)) return null;
  const region = typeof v.Region === "string" ? v.Region : "";
  const zone = typeof v.Zone === "string" ? v.Zone : "";
  return region === "" && zone === "" ? null : { Region: region, Zone: zone };
}

/** GET /v1/health/service/:name. */
export function parseHealthService(body: unknown, expectedName: string): ConsulServiceEntry[] {
  if (!Array.isArray(body)) throw new ShapeError(`health service ${expectedName}: expected a list`);
  return body.map((entry, i) => {
    const where = `health service ${expectedName}[${i}]`;
    if (!isObject(entry)) throw new ShapeError(`${where}: expected an object`);
    const node = entry.Node;
    const svc = entry.Service;
    const checks = entry.Checks;
    if (!isObject(node)) throw new ShapeError(`${where}.Node: expected an object`);
    if (!isObject(svc)) throw new ShapeError(`${where}.Service: expected an object`);
    if (checks !== undefined && checks !== null && !Array.isArray(checks)) {
      throw new ShapeError(`${where}.Checks: expected a list`);
    }
    const name = str(svc, "Service", `${where}.Service`);
    if (name !== expectedName) throw new ShapeError(`${where}.Service.Service: "${name}" is not "${expectedName}"`);
    const id = str(svc, "ID", `${where}.Service`);
    if (id === "") throw new ShapeError(`${where}.Service.ID: empty`);
    const nodeName = str(node, "Node", `${where}.Node`);
    if (nodeName === "") throw new ShapeError(`${where}.Node.Node: empty`);
    return {
      Node: {
        Node: nodeName,
        Address: str(node, "Address", `${where}.Node`, true),
        Datacenter: str(node, "Datacenter", `${where}.Node`, true),
        Meta: stringMap(node.Meta, `${where}.Node.Meta`),
      },
      Service: {
        ID: id,
        Service: name,
        Kind: str(svc, "Kind", `${where}.Service`, true),
        Tags: stringList(svc.Tags, `${where}.Service.Tags`),
        Address: str(svc, "Address", `${where}.Service`, true),
        Port: port(svc.Port, `${where}.Service.Port`),
        Meta: stringMap(svc.Meta, `${where}.Service.Meta`),
        Weights: parseWeights(svc.Weights, `${where}.Service.Weights`),
        Proxy: parseProxy(svc.Proxy),
        Locality: parseLocality(svc.Locality),
      },
      Checks: ((checks ?? []) as unknown[]).map((c, j) => parseCheck(c, `${where}.Checks[${j}]`)),
    };
  });
}

/** One entry of GET /v1/health/state/:state (the fields the source reads). */
export interface ConsulStateCheck {
  readonly Node: string;
  readonly CheckID: string;
  readonly Status: CheckStatus;
  /** "" for node-level checks. */
  readonly ServiceID: string;
  readonly ServiceName: string;
}

/** GET /v1/health/state/:state: a list of checks. */
export function parseHealthState(body: unknown): ConsulStateCheck[] {
  if (!Array.isArray(body)) throw new ShapeError("health state: expected a list of checks");
  return body.map((c, i) => {
    const where = `health state[${i}]`;
    const check = parseCheck(c, where);
    const o = c as Json;
    const node = str(o, "Node", where);
    if (node === "") throw new ShapeError(`${where}.Node: empty`);
    return { ...check, Node: node, ServiceName: str(o, "ServiceName", where, true) };
  });
}
