/**
 * The benchmark mesh: rows for the mesh tables, generated deterministically, and
 * the same rows as model values (parsed by the PostgreSQL source's own parsers,
 * so the floor server and the translation benchmark see exactly what Signalbox
 * reads from the database).
 *
 * Shape: `services` services of `instances` instances each; service 0 ("the
 * shared service", think auth) is called by every other service; each service
 * also calls `dependencies - 1` other services picked pseudo-randomly. Every
 * service has subsets v1/v2 (one instance in five is v2) and `routesPerService`
 * rules (a 90/10 v1/v2 split with retries). Every instance of services 1.. runs
 * a sidecar: those are the simulated proxies. Service 0 has no sidecars, so an
 * endpoint change of service 0 reaches every proxy.
 */
import type pg from "pg";
import type { RegistryState } from "../src/model/registry.ts";
import type { RuleSet } from "../src/model/rules.ts";
import { parseRegistry } from "../src/sources/postgres/parse-registry.ts";
import { parseRules } from "../src/sources/postgres/parse-rules.ts";
import { patchRegistry } from "../src/sources/postgres/patch-registry.ts";
import type {
  HttpRouteDestinationRow,
  HttpRouteRow,
  InstanceRow,
  ServiceDependencyRow,
  ServiceRow,
  SubsetRow,
} from "../src/sources/postgres/rows.ts";

export interface MeshSpec {
  readonly services: number;
  readonly instances: number;
  /** Services each service calls (the shared one included); 0 = none declared (every proxy gets every service). */
  readonly dependencies: number;
  readonly routesPerService: number;
}

/**
 * The fleet benchmark's mesh for `proxies` sidecars: 10 per service (one view
 * each), plus the shared service every other one calls, which has none.
 */
export function fleetMeshSpec(proxies: number): MeshSpec {
  return { services: Math.ceil(proxies / 10) + 1, instances: 10, dependencies: 5, routesPerService: 1 };
}

export const INBOUND_PORT = 15006;
export const APP_PORT = 8080;

export function serviceName(index: number): string {
  return `svc-${String(index).padStart(5, "0")}`;
}

export function instanceId(service: number, instance: number): string {
  return `${serviceName(service)}-${instance}`;
}

function address(service: number, instance: number): string {
  return `10.${(service >> 8) & 255}.${service & 255}.${instance + 1}`;
}

export interface MeshRows {
  readonly services: ServiceRow[];
  readonly instances: InstanceRow[];
  readonly subsets: SubsetRow[];
  readonly httpRoutes: HttpRouteRow[];
  readonly httpRouteDestinations: HttpRouteDestinationRow[];
  readonly serviceDependencies: ServiceDependencyRow[];
}

/** A small deterministic PRNG (LCG) so every process generates the same mesh. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function routeRow(id: number, destination: string, headers: unknown = []): HttpRouteRow {
  return {
    id: String(id),
    destination,
    source: null,
    priority: 10,
    path_match: null,
    path: null,
    method: null,
    headers,
    query_params: [],
    timeout_ms: 3000,
    retry_on: ["5xx", "connect-failure"],
    retry_attempts: 2,
    per_try_timeout_ms: null,
  };
}

export function meshRows(spec: MeshSpec): MeshRows {
  const rows: MeshRows = { services: [], instances: [], subsets: [], httpRoutes: [], httpRouteDestinations: [], serviceDependencies: [] };
  const next = random(42);
  let routeId = 0;
  for (let s = 0; s < spec.services; s++) {
    const name = serviceName(s);
    rows.services.push({ name, protocol: "http", port: 80 });
    for (let i = 0; i < spec.instances; i++) {
      rows.instances.push({
        id: instanceId(s, i),
        service: name,
        address: address(s, i),
        port: APP_PORT,
        mesh_port: INBOUND_PORT,
        labels: { version: i % 5 === 0 ? "v2" : "v1" },
        region: "",
        zone: "",
        weight: 1,
        health: "healthy",
      });
    }
    rows.subsets.push({ service: name, name: "v1", selector: { version: "v1" } }, { service: name, name: "v2", selector: { version: "v2" } });
    for (let r = 0; r < spec.routesPerService; r++) {
      routeId++;
      rows.httpRoutes.push(routeRow(routeId, name, r === 0 ? [] : [{ name: "x-route", match: "exact", value: String(r) }]));
      rows.httpRouteDestinations.push(
        { route_id: String(routeId), service: name, subset: "v1", weight: 90 },
        { route_id: String(routeId), service: name, subset: "v2", weight: 10 },
      );
    }
    if (spec.dependencies > 0 && s > 0) {
      const deps = new Set<number>([0]);
      while (deps.size < Math.min(spec.dependencies, spec.services - 1)) {
        const pick = 1 + Math.floor(next() * (spec.services - 1));
        if (pick !== s) deps.add(pick);
      }
      for (const d of [...deps].sort((a, b) => a - b)) rows.serviceDependencies.push({ service: name, depends_on: serviceName(d) });
    }
  }
  return rows;
}

export interface MeshModel {
  readonly registry: RegistryState;
  readonly rules: RuleSet;
}

export function meshModel(rows: MeshRows): MeshModel {
  const parsed = parseRegistry({ services: rows.services, instances: rows.instances });
  if (parsed.problems.length > 0) throw new Error(`bench mesh has registry problems: ${parsed.problems.join("; ")}`);
  return {
    registry: parsed.state,
    rules: parseRules({
      subsets: rows.subsets,
      httpRoutes: rows.httpRoutes,
      httpRouteDestinations: rows.httpRouteDestinations,
      serviceDependencies: rows.serviceDependencies,
    }),
  };
}

/** The services that call `service` (declare it as a dependency); every other service when none are declared. */
export function dependentsOf(rows: MeshRows, service: string): Set<string> {
  if (rows.serviceDependencies.length === 0) return new Set(rows.services.map((s) => s.name));
  return new Set(rows.serviceDependencies.filter((d) => d.depends_on === service).map((d) => d.service));
}

/** Writes the rows into an empty (migrated) mesh schema. */
export async function seed(pool: pg.Pool, rows: MeshRows): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query(
      "INSERT INTO mesh.services (name, protocol, port) SELECT * FROM unnest($1::text[], $2::text[], $3::int[])",
      [rows.services.map((s) => s.name), rows.services.map((s) => s.protocol), rows.services.map((s) => s.port)],
    );
    await client.query(
      `INSERT INTO mesh.instances (id, service, address, port, mesh_port, labels)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::jsonb[])`,
      [
        rows.instances.map((i) => i.id),
        rows.instances.map((i) => i.service),
        rows.instances.map((i) => i.address),
        rows.instances.map((i) => i.port),
        rows.instances.map((i) => i.mesh_port),
        rows.instances.map((i) => JSON.stringify(i.labels)),
      ],
    );
    await client.query("INSERT INTO mesh.subsets (service, name, selector) SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])", [
      rows.subsets.map((s) => s.service),
      rows.subsets.map((s) => s.name),
      rows.subsets.map((s) => JSON.stringify(s.selector)),
    ]);
    await client.query(
      `INSERT INTO mesh.http_routes (id, destination, priority, headers, timeout_ms, retry_on, retry_attempts)
       SELECT id, destination, 10, headers, 3000, ARRAY['5xx', 'connect-failure'], 2
         FROM unnest($1::bigint[], $2::text[], $3::jsonb[]) AS r(id, destination, headers)`,
      [rows.httpRoutes.map((r) => r.id), rows.httpRoutes.map((r) => r.destination), rows.httpRoutes.map((r) => JSON.stringify(r.headers))],
    );
    await client.query("SELECT setval('mesh.http_routes_id_seq', $1::bigint)", [Math.max(1, rows.httpRoutes.length)]);
    await client.query(
      "INSERT INTO mesh.http_route_destinations (route_id, service, subset, weight) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[])",
      [
        rows.httpRouteDestinations.map((d) => d.route_id),
        rows.httpRouteDestinations.map((d) => d.service),
        rows.httpRouteDestinations.map((d) => d.subset),
        rows.httpRouteDestinations.map((d) => d.weight),
      ],
    );
    await client.query("INSERT INTO mesh.service_dependencies (service, depends_on) SELECT * FROM unnest($1::text[], $2::text[])", [
      rows.serviceDependencies.map((d) => d.service),
      rows.serviceDependencies.map((d) => d.depends_on),
    ]);
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

// --- changes -------------------------------------------------------------------

/**
 * A change the benchmark commits (Signalbox) or replays (floor), with the byte
 * string a proxy finds in the response that carries it.
 *  - endpoint: instance 0 of a service moves to a new address (EDS);
 *  - rule: a new header-matched route for a service (RDS).
 */
export interface Change {
  readonly kind: "endpoint" | "rule";
  readonly service: string;
  readonly marker: string;
}

export function endpointChange(service: string, sequence: number): Change {
  return { kind: "endpoint", service, marker: `10.250.${(sequence >> 8) & 255}.${sequence & 255}` };
}

export function ruleChange(service: string, sequence: number): Change {
  return { kind: "rule", service, marker: `bench-marker-${sequence}` };
}

/** The rows after `change` (pure; what the SQL of `applyChangeSql` does). */
export function applyChange(rows: MeshRows, change: Change): MeshRows {
  if (change.kind === "endpoint") {
    const id = `${change.service}-0`;
    return { ...rows, instances: rows.instances.map((i) => (i.id === id ? { ...i, address: change.marker } : i)) };
  }
  const id = rows.httpRoutes.length + 1;
  return { ...rows, httpRoutes: [...rows.httpRoutes, routeRow(id, change.service, [{ name: "x-bench", match: "exact", value: change.marker }])] };
}

export async function applyChangeSql(pool: pg.Pool, change: Change): Promise<void> {
  if (change.kind === "endpoint") {
    await pool.query("UPDATE mesh.instances SET address = $1 WHERE id = $2", [change.marker, `${change.service}-0`]);
    return;
  }
  await pool.query(
    `INSERT INTO mesh.http_routes (destination, priority, headers, timeout_ms, retry_on, retry_attempts)
     VALUES ($1, 10, $2::jsonb, 3000, ARRAY['5xx', 'connect-failure'], 2)`,
    [change.service, JSON.stringify([{ name: "x-bench", match: "exact", value: change.marker }])],
  );
}

/** A service few others call, for the scoped endpoint change (its dependents are counted). */
export function leastCalledService(rows: MeshRows): string {
  const callers = new Map<string, number>(rows.services.map((s) => [s.name, 0]));
  for (const d of rows.serviceDependencies) callers.set(d.depends_on, (callers.get(d.depends_on) ?? 0) + 1);
  let best = rows.services[1]?.name ?? rows.services[0]!.name;
  for (const [name, count] of callers) {
    if (name === serviceName(0)) continue;
    if (count > 0 && count < (callers.get(best) ?? Infinity)) best = name;
  }
  return best;
}

/**
 * The registry with service number `index` (as `meshRows` makes it; no rules
 * name it) added, parsed and patched in by the PostgreSQL source's own
 * functions as moveInstance does: a service joining the mesh, nothing else.
 */
export function addService(registry: RegistryState, spec: MeshSpec, index: number): RegistryState {
  const rows = meshRows({ ...spec, services: index + 1 });
  const name = serviceName(index);
  const parsed = parseRegistry({ services: rows.services.filter((row) => row.name === name), instances: rows.instances.filter((row) => row.service === name) });
  if (parsed.problems.length > 0) throw new Error(`joining service ${name} does not parse: ${parsed.problems.join("; ")}`);
  return patchRegistry(registry, [name], parsed.state);
}

/**
 * The registry with instance 0 of `service` moved to an address derived from
 * `sequence`: one endpoint change as the PostgreSQL source delivers it. The
 * service's rows are parsed and patched into the registry by the source's own
 * functions (parseRegistry, patchRegistry), so the new objects have the shapes
 * the server's have. A copy made here by spreading gave the changed service
 * hidden classes of their own, and the route-only path was deoptimized and
 * compiled again in nearly every rule change that followed, which the server
 * does not do (docs/benchmarks.md, "Main-thread CPU, and the rule path's warm-up").
 */
export function moveInstance(registry: RegistryState, service: string, sequence: number): RegistryState {
  const old = registry.services.get(service);
  if (!old || old.instances.length === 0) throw new Error(`no instance of ${service}`);
  const moved = `10.251.${(sequence >> 8) & 255}.${sequence & 255}`;
  const instances: InstanceRow[] = old.instances.map((instance, index) => ({
    id: instance.id,
    service: instance.service,
    address: index === 0 ? moved : instance.address,
    port: instance.port,
    mesh_port: instance.meshPort,
    labels: instance.labels,
    region: instance.region,
    zone: instance.zone,
    weight: instance.weight,
    health: instance.health,
  }));
  const parsed = parseRegistry({ services: [{ name: old.name, protocol: old.protocol, port: old.port }], instances });
  if (parsed.problems.length > 0) throw new Error(`moved instance of ${service} does not parse: ${parsed.problems.join("; ")}`);
  return patchRegistry(registry, [service], parsed.state);
}
