/**
 * Reads the registry tables: all rows, or only the rows of the services that
 * changed since a revision the caller already has (the change log of migration
 * 0005). Runs inside the caller's REPEATABLE READ transaction (load.ts), so the
 * list of changed services, their rows and the revision come from one snapshot.
 *
 * A delta is refused, and everything read instead in the same snapshot, when
 * the log no longer reaches back to `since` (pruned, possibly by another
 * replica), when a table was truncated (the log cannot say which services), or
 * when so many services changed that reading them one by one is no cheaper.
 */
import type pg from "pg";
import { logReachesBack } from "./change-logs.ts";
import type { InstanceRow, RegistryRows, ServiceRow } from "./rows.ts";

export type RegistryRequest =
  | { readonly kind: "full" }
  | {
      readonly kind: "delta";
      /** The revision the caller's registry state was read at. */
      readonly since: string;
      /** More changed services than this: read everything instead. */
      readonly maxServices: number;
    };

/** Why a delta was refused. */
export type FullLoadReason = "log-pruned" | "truncated" | "many-changes";

export type RegistryLoad =
  | { readonly kind: "full"; readonly rows: RegistryRows; readonly reason: FullLoadReason | null }
  | {
      readonly kind: "delta";
      /** Services whose rows changed (sorted); `rows` holds all current rows of those, and only those. */
      readonly services: readonly string[];
      readonly rows: RegistryRows;
    };

const SERVICES = "SELECT name, protocol, port FROM mesh.services";
const INSTANCES = `SELECT id, service, address, port, mesh_port, labels, region, zone, weight, health
  FROM mesh.instances`;
// The floor and the changed services in one round trip. NULL (a TRUNCATE) sorts last.
const CHANGES = `SELECT (SELECT revision::text FROM mesh.registry_changes_floor) AS floor,
       ARRAY(SELECT DISTINCT service FROM mesh.registry_changes WHERE revision > $1::bigint ORDER BY service) AS services`;

export async function loadRegistryRows(client: pg.ClientBase, request: RegistryRequest, revision: string): Promise<RegistryLoad> {
  if (request.kind === "full") return { kind: "full", rows: await loadAll(client), reason: null };
  if (request.since === revision) return { kind: "delta", services: [], rows: { services: [], instances: [] } };
  const log = (await client.query<{ floor: string | null; services: (string | null)[] }>(CHANGES, [request.since])).rows[0];
  const full = async (reason: FullLoadReason): Promise<RegistryLoad> => ({ kind: "full", rows: await loadAll(client), reason });
  if (!log || !logReachesBack(log.floor, request.since)) return full("log-pruned");
  if (log.services.includes(null)) return full("truncated");
  if (log.services.length > request.maxServices) return full("many-changes");
  const names = log.services as string[];
  if (names.length === 0) return { kind: "delta", services: [], rows: { services: [], instances: [] } };
  return {
    kind: "delta",
    services: names,
    rows: {
      services: (await client.query<ServiceRow>(`${SERVICES} WHERE name = ANY($1::text[])`, [names])).rows,
      instances: (await client.query<InstanceRow>(`${INSTANCES} WHERE service = ANY($1::text[])`, [names])).rows,
    },
  };
}

async function loadAll(client: pg.ClientBase): Promise<RegistryRows> {
  return {
    services: (await client.query<ServiceRow>(SERVICES)).rows,
    instances: (await client.query<InstanceRow>(INSTANCES)).rows,
  };
}
