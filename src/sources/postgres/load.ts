/**
 * Reads the mesh tables. All rows of one load come from a single REPEATABLE READ
 * snapshot together with the revision, so the revision always describes exactly
 * the rows returned (the poller relies on that to never miss a change).
 */
import type pg from "pg";
import { loadRegistryRows, type RegistryLoad, type RegistryRequest } from "./load-registry.ts";
import { loadRuleRows, type RuleRowsRead, type RuleSchema } from "./load-rules.ts";

export interface LoadRequest {
  /** null: leave the registry tables alone. */
  readonly registry: RegistryRequest | null;
  /** null: leave the rule tables alone. */
  readonly rules: RuleRequest | null;
}

export interface RuleRequest {
  /** The last read, whose unchanged groups are reused; null: read every group. */
  readonly previous: RuleRowsRead | null;
  /** The change tracking the schema has (migrations 0006 and 0007). */
  readonly schema: RuleSchema;
}

export interface LoadedRows {
  /** mesh.revision.value, as a decimal string. */
  readonly revision: string;
  readonly registry: RegistryLoad | null;
  readonly rules: RuleRowsRead | null;
}

const REVISION = "SELECT value::text AS revision FROM mesh.revision";

export async function loadRows(pool: pg.Pool, want: LoadRequest): Promise<LoadedRows> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const revision = (await client.query<{ revision: string }>(REVISION)).rows[0]?.revision;
    if (revision === undefined) throw new Error("mesh.revision has no row; was it deleted by hand?");
    const registry = want.registry ? await loadRegistryRows(client, want.registry, revision) : null;
    const rules = want.rules ? await loadRuleRows(client, want.rules.previous, want.rules.schema, revision) : null;
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
