/**
 * What the two change logs share: the registry's (migration 0005) and the
 * routes' (0007). Both are a table of (revision, key, changed_at) with a
 * one-row floor below which the log is no longer complete; a reader reads
 * everything instead when its last revision is below it, and every replica
 * prunes.
 */
import type pg from "pg";

export type ChangeLog = "registry_changes" | "route_changes";

/**
 * Whether a log whose floor is `floor` holds every change after `since`. No
 * floor row means the log was tampered with: it cannot be trusted to be complete.
 */
export function logReachesBack(floor: string | null | undefined, since: string): boolean {
  return !!floor && BigInt(since) >= BigInt(floor);
}

/** Whether the schema has the log and its floor (false with migrate: false on an older schema). */
export async function hasChangeLog(client: pg.ClientBase, log: ChangeLog): Promise<boolean> {
  const result = await client.query<{ present: boolean }>(
    `SELECT to_regclass('mesh.${log}') IS NOT NULL AND to_regclass('mesh.${log}_floor') IS NOT NULL AS present`,
  );
  return result.rows[0]?.present ?? false;
}

// Deletes the rows and raises the floor to the newest revision deleted, in one
// statement (one transaction), so a reader sees either both or neither. A
// data-modifying WITH runs whether or not the outer query reads it. Concurrent
// prunes by several replicas serialize on the floor row, and greatest() keeps
// the floor from moving back. A row of a transaction that was still running is
// not visible here, and its revision is above every one deleted anyway.
const prune = (log: ChangeLog) => `WITH gone AS (
       DELETE FROM mesh.${log}
        WHERE changed_at < now() - make_interval(secs => $1::double precision / 1000)
       RETURNING revision),
     top AS (SELECT max(revision) AS revision, count(*)::int AS deleted FROM gone),
     raised AS (
       UPDATE mesh.${log}_floor f SET revision = greatest(f.revision, top.revision)
         FROM top WHERE top.revision IS NOT NULL
       RETURNING 1)
SELECT deleted FROM top`;

const PRUNE: Record<ChangeLog, string> = { registry_changes: prune("registry_changes"), route_changes: prune("route_changes") };

/**
 * Drops a change log's rows older than `retentionMs`. Safe while other
 * replicas read the log: one that still needed a pruned row sees its revision
 * below the floor and reads those tables whole. Returns the number of rows deleted.
 */
export async function pruneChangeLog(pool: pg.Pool, log: ChangeLog, retentionMs: number): Promise<number> {
  const result = await pool.query<{ deleted: number }>(PRUNE[log], [retentionMs]);
  return result.rows[0]?.deleted ?? 0;
}
