/**
 * Applies pending schema migrations. Everything runs in one transaction under a
 * transaction-scoped advisory lock, so replicas starting together apply each
 * migration exactly once and a failed migration leaves nothing behind.
 */
import type pg from "pg";
import { migrations as allMigrations, type Migration } from "./migrations/index.ts";

/** Arbitrary constant shared by every Signalbox replica ("sgnlbox" in ASCII). */
const MIGRATION_LOCK_KEY = "32496199423043704";

export interface MigrationResult {
  /** Versions applied by this call, in order. */
  readonly applied: readonly number[];
  /** Highest version recorded in the database afterwards. */
  readonly current: number;
}

export async function migrate(
  client: pg.ClientBase,
  migrations: readonly Migration[] = allMigrations,
): Promise<MigrationResult> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
    await client.query("CREATE SCHEMA IF NOT EXISTS mesh");
    await client.query(`CREATE TABLE IF NOT EXISTS mesh.schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL DEFAULT '',
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = await client.query<{ version: number }>("SELECT version FROM mesh.schema_migrations");
    const have = new Set(done.rows.map((r) => r.version));
    const applied: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (have.has(m.version)) continue;
      try {
        await client.query(m.sql);
      } catch (err) {
        throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
      }
      await client.query("INSERT INTO mesh.schema_migrations (version, name) VALUES ($1, $2)", [m.version, m.name]);
      applied.push(m.version);
      have.add(m.version);
    }
    await client.query("COMMIT");
    // A newer replica may have migrated further; older code keeps working as long
    // as migrations stay additive, so this is reported, not refused.
    return { applied, current: Math.max(0, ...have) };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  }
}
