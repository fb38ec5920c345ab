/**
 * Reads the rule tables: every group of them the first time, and after that
 * only the groups with a table that changed since the caller's last read
 * (mesh.table_revisions, migration 0006); the other groups' rows are the
 * caller's, unchanged. Runs inside the caller's REPEATABLE READ transaction
 * (load.ts), so the revisions and the rows come from one snapshot.
 *
 * A rule change then costs a read of the tables it touched (a new route: the
 * routes and what joins them), not of every rule row in the mesh. Within the
 * routes group, the route change log (migration 0007) narrows the read further
 * to the routes that changed: their rows are read and patched into the last
 * read's (a RoutePatch), so a new route in a mesh of thousands reads one route.
 */
import type pg from "pg";
import { logReachesBack } from "./change-logs.ts";
import { loadClusterPolicyRows } from "./load-cluster-policies.ts";
import { loadRoutePolicyRows } from "./load-route-policies.ts";
import { compareIds, replaceRuns } from "../../model/order.ts";
import type { HttpRouteDestinationRow, HttpRouteRow, RoutePatch, RuleRows, ServiceDependencyRow, SubsetRow } from "./rows.ts";

/**
 * Rule rows in groups that are read together, each with every table its
 * queries read (a join included): a write to any of them re-reads the group.
 * A query that starts reading another table must list it here.
 */
export const RULE_GROUPS = {
  subsets: ["subsets"],
  routes: ["http_routes", "http_route_destinations"],
  dependencies: ["service_dependencies"],
  routePolicies: [
    "http_routes",
    "timeout_policies",
    "retry_policies",
    "fault_policies",
    "drop_policies",
    "rate_limit_policies",
    "http_route_rewrites",
    "http_route_header_edits",
    "http_route_redirects",
    "http_route_direct_responses",
    "http_route_mirrors",
  ],
  clusterPolicies: [
    "load_balancing",
    "hash_policies",
    "color_routing",
    "connection_policies",
    "circuit_breakers",
    "outlier_detection",
    "health_checks",
    "tcp_routes",
    "tcp_route_destinations",
  ],
} as const satisfies Record<string, readonly string[]>;

export type RuleGroup = keyof typeof RULE_GROUPS;
const ALL_GROUPS = Object.keys(RULE_GROUPS) as RuleGroup[];

/** Table name -> the revision of its last change, as text. */
export type TableRevisions = ReadonlyMap<string, string>;

export interface RuleRowsRead {
  readonly rows: Required<RuleRows>;
  /** mesh.revision in the snapshot the rows describe: where the next read's route log starts. */
  readonly revision: string;
  /** mesh.table_revisions in the snapshot the rows describe; null when the schema has none (every read is whole). */
  readonly tableRevisions: TableRevisions | null;
  /** The groups this read fetched; the others' rows are the previous read's. */
  readonly groupsRead: readonly RuleGroup[];
  /**
   * When the routes group was read through the route log: the routes re-read.
   * `rows` then holds the previous read's route rows with these patched in.
   * null when the routes group was read whole or not at all.
   */
  readonly routePatch: RoutePatch | null;
}

/** How a read may use the schema's change tracking. */
export interface RuleSchema {
  /** mesh.table_revisions (migration 0006). */
  readonly tableRevisions: boolean;
  /** mesh.route_changes (migration 0007). */
  readonly routeLog: boolean;
}

/**
 * A patch reads at most this share of the routes known (but always at least
 * PATCH_MIN_ROUTES); with more changed routes one whole read is about as cheap.
 */
const PATCH_MAX_SHARE = 0.25;
const PATCH_MIN_ROUTES = 16;

const SUBSETS = "SELECT service, name, selector FROM mesh.subsets WHERE enabled";
const httpRoutes = (where: string) => `SELECT id::text AS id, destination, source, priority, path_match, path, method,
       headers, query_params, timeout_ms, retry_on, retry_attempts, per_try_timeout_ms
  FROM mesh.http_routes WHERE enabled${where} ORDER BY id`;
// Destination order is the authors' insertion order (by id) within a route.
const httpRouteDestinations = (where: string) => `SELECT d.route_id::text AS route_id, d.service, d.subset, d.weight
  FROM mesh.http_route_destinations d JOIN mesh.http_routes r ON r.id = d.route_id
 WHERE r.enabled${where} ORDER BY d.route_id, d.id`;
const HTTP_ROUTES = httpRoutes("");
const HTTP_ROUTE_DESTINATIONS = httpRouteDestinations("");
const CHANGED_HTTP_ROUTES = httpRoutes(" AND id = ANY($1::bigint[])");
const CHANGED_HTTP_ROUTE_DESTINATIONS = httpRouteDestinations(" AND r.id = ANY($1::bigint[])");
// The floor and the changed routes in one round trip. NULL (a TRUNCATE) sorts last.
const ROUTE_CHANGES = `SELECT (SELECT revision::text FROM mesh.route_changes_floor) AS floor,
       ARRAY(SELECT DISTINCT route_id::text FROM mesh.route_changes WHERE revision > $1::bigint) AS ids`;
const SERVICE_DEPENDENCIES = "SELECT service, depends_on FROM mesh.service_dependencies WHERE enabled ORDER BY service, depends_on";
const TABLE_REVISIONS = "SELECT table_name, revision::text AS revision FROM mesh.table_revisions";

/**
 * `previous`: the caller's last read, whose unchanged groups are reused (null:
 * read everything). `revision`: mesh.revision in the caller's snapshot.
 */
export async function loadRuleRows(client: pg.ClientBase, previous: RuleRowsRead | null, schema: RuleSchema, revision: string): Promise<RuleRowsRead> {
  const tableRevisions = schema.tableRevisions ? await readTableRevisions(client) : null;
  const groupsRead = previous ? staleGroups(previous.tableRevisions, tableRevisions) : [...ALL_GROUPS];
  const fresh: Partial<Required<RuleRows>> = {};
  let routePatch: RoutePatch | null = null;
  for (const group of groupsRead) {
    if (group === "routes" && previous && schema.routeLog) {
      routePatch = await readRoutePatch(client, previous);
      if (routePatch) {
        Object.assign(fresh, patchedRouteRows(routePatch));
        continue;
      }
    }
    Object.assign(fresh, await READERS[group](client));
  }
  // Without a previous read every group was read, so every field is fresh.
  const rows = { ...previous?.rows, ...fresh } as Required<RuleRows>;
  return { rows, revision, tableRevisions, groupsRead, routePatch };
}

/**
 * The routes changed since `previous` and their rows, from the route log; null
 * when the log cannot answer (pruned past the previous read, a TRUNCATE) or
 * names so many routes that a whole read is about as cheap.
 */
async function readRoutePatch(client: pg.ClientBase, previous: RuleRowsRead): Promise<RoutePatch | null> {
  const log = (await client.query<{ floor: string | null; ids: (string | null)[] }>(ROUTE_CHANGES, [previous.revision])).rows[0];
  if (!log || !logReachesBack(log.floor, previous.revision) || log.ids.includes(null)) return null;
  const known = previous.rows.httpRoutes.length;
  if (log.ids.length > Math.max(PATCH_MIN_ROUTES, Math.floor(known * PATCH_MAX_SHARE))) return null;
  const ids = (log.ids as string[]).sort(compareIds);
  const base = previous.rows;
  if (ids.length === 0) return { ids, httpRoutes: [], httpRouteDestinations: [], base };
  return {
    ids,
    base,
    httpRoutes: (await client.query<HttpRouteRow>(CHANGED_HTTP_ROUTES, [ids])).rows,
    httpRouteDestinations: (await client.query<HttpRouteDestinationRow>(CHANGED_HTTP_ROUTE_DESTINATIONS, [ids])).rows,
  };
}

/**
 * The base's route rows with the patched routes' rows replaced by the patch's,
 * in the order a whole read returns them (by route id; a route's destinations
 * in their own order, which the patch keeps).
 */
export function patchedRouteRows(patch: RoutePatch): Pick<RuleRows, "httpRoutes" | "httpRouteDestinations"> {
  const { base, ids } = patch;
  if (ids.length === 0) return { httpRoutes: base.httpRoutes, httpRouteDestinations: base.httpRouteDestinations };
  return {
    httpRoutes: replaceRuns(base.httpRoutes, routeIdOf, ids, patch.httpRoutes),
    httpRouteDestinations: replaceRuns(base.httpRouteDestinations, destinationRouteOf, ids, patch.httpRouteDestinations),
  };
}

const routeIdOf = (row: HttpRouteRow): string => row.id;
const destinationRouteOf = (row: HttpRouteDestinationRow): string => row.route_id;

const rowsOf = async <T extends pg.QueryResultRow>(client: pg.ClientBase, sql: string): Promise<T[]> => (await client.query<T>(sql)).rows;

/** Each group's rows, as the fields of RuleRows it fills. */
const READERS: Record<RuleGroup, (client: pg.ClientBase) => Promise<Partial<Required<RuleRows>>>> = {
  subsets: async (client) => ({ subsets: await rowsOf<SubsetRow>(client, SUBSETS) }),
  routes: async (client) => ({
    httpRoutes: await rowsOf<HttpRouteRow>(client, HTTP_ROUTES),
    httpRouteDestinations: await rowsOf<HttpRouteDestinationRow>(client, HTTP_ROUTE_DESTINATIONS),
  }),
  dependencies: async (client) => ({ serviceDependencies: await rowsOf<ServiceDependencyRow>(client, SERVICE_DEPENDENCIES) }),
  routePolicies: async (client) => ({ routePolicies: await loadRoutePolicyRows(client) }),
  clusterPolicies: async (client) => ({ clusterPolicies: await loadClusterPolicyRows(client) }),
};

/**
 * The groups with a table whose revision differs between two reads; every
 * group when either read has no revisions. A table absent from both (not
 * written since it was created) has not changed.
 */
function staleGroups(before: TableRevisions | null, now: TableRevisions | null): RuleGroup[] {
  if (before === null || now === null) return [...ALL_GROUPS];
  return ALL_GROUPS.filter((group) => RULE_GROUPS[group].some((table) => before.get(table) !== now.get(table)));
}

async function readTableRevisions(client: pg.ClientBase): Promise<TableRevisions> {
  const rows = (await client.query<{ table_name: string; revision: string }>(TABLE_REVISIONS)).rows;
  return new Map(rows.map((row) => [row.table_name, row.revision]));
}

export async function hasTableRevisions(client: pg.ClientBase): Promise<boolean> {
  const result = await client.query<{ present: boolean }>("SELECT to_regclass('mesh.table_revisions') IS NOT NULL AS present");
  return result.rows[0]?.present ?? false;
}
