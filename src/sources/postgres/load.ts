/**
 * Reads the mesh tables. All rows of one load come from a single REPEATABLE READ
 * snapshot together with the revision, so the revision always describes exactly
 * the rows returned (the poller relies on that to never miss a change).
 */
import type pg from "pg";
import { loadRoutePolicyRows } from "./load-route-policies.ts";
import { loadClusterPolicyRows } from "./load-cluster-policies.ts";
import { loadRegistryRows, type RegistryLoad, type RegistryRequest } from "./load-registry.ts";
import type { HttpRouteDestinationRow, HttpRouteRow, RuleRows, ServiceDependencyRow, SubsetRow } from "./rows.ts";

export interface LoadRequest {
  /** null: leave the registry tables alone. */
  readonly registry: RegistryRequest | null;
  readonly rules: boolean;
}

export interface LoadedRows {
  /** mesh.revision.value, as a decimal string. */
  readonly revision: string;
  readonly registry: RegistryLoad | null;
  readonly rules: RuleRows | null;
}

const REVISION = "SELECT value::text AS revision FROM mesh.revision";
const SUBSETS = "SELECT service, name, selector FROM mesh.subsets WHERE enabled";
const HTTP_ROUTES = `SELECT id::text AS id, destination, source, priority, path_match, path, method,
       headers, query_params, timeout_ms, retry_on, retry_attempts, per_try_timeout_ms
  FROM mesh.http_routes WHERE enabled ORDER BY id`;
// Destination order is the authors' insertion order (by id) within a route.
const HTTP_ROUTE_DESTINATIONS = `SELECT d.route_id::text AS route_id, d.service, d.subset, d.weight
  FROM mesh.http_route_destinations d JOIN mesh.http_routes r ON r.id = d.route_id
 WHERE r.enabled ORDER BY d.route_id, d.id`;
const SERVICE_DEPENDENCIES = "SELECT service, depends_on FROM mesh.service_dependencies WHERE enabled ORDER BY service, depends_on";

export async function loadRows(pool: pg.Pool, want: LoadRequest): Promise<LoadedRows> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const revision = (await client.query<{ revision: string }>(REVISION)).rows[0]?.revision;
    if (revision === undefined) throw new Error("mesh.revision has no row; was it deleted by hand?");
    const registry = want.registry ? await loadRegistryRows(client, want.registry, revision) : null;
    const rules = want.rules
      ? {
          subsets: (await client.query<SubsetRow>(SUBSETS)).rows,
          httpRoutes: (await client.query<HttpRouteRow>(HTTP_ROUTES)).rows,
          httpRouteDestinations: (await client.query<HttpRouteDestinationRow>(HTTP_ROUTE_DESTINATIONS)).rows,
          serviceDependencies: (await client.query<ServiceDependencyRow>(SERVICE_DEPENDENCIES)).rows,
          routePolicies: await loadRoutePolicyRows(client),
          clusterPolicies: await loadClusterPolicyRows(client),
        }
      : null;
    await client.query("COMMIT");
    return { revision, registry, rules };
  } catch (err) {
    broken = err as Error;
    throw err;
  } finally {
    // A client that failed mid-transaction is discarded rather than reused.
    client.release(broken);
  }
}

export async function readRevision(pool: pg.Pool): Promise<string> {
  const result = await pool.query<{ revision: string }>(REVISION);
  const revision = result.rows[0]?.revision;
  if (revision === undefined) throw new Error("mesh.revision has no row; was it deleted by hand?");
  return revision;
}
