/**
 * Writes mesh.rule_status, where rule authors read whether their rows were
 * accepted. `desiredRuleStatus` and `ruleStatusWrite` are pure;
 * `writeRuleStatus` applies a write in one transaction, touching only rows
 * whose state or message changed and deleting rows of rules that no longer
 * exist (or were disabled).
 */
import type pg from "pg";
import type { RuleKind, RuleRejection, RuleSet } from "../../model/rules.ts";
import { subsetKey } from "../../model/snapshot.ts";
import { routePolicyIds } from "../../model/route-policies.ts";
import { clusterPolicyIds } from "../../model/cluster-policies.ts";

export interface RuleStatusRow {
  readonly kind: RuleKind;
  readonly ruleId: string;
  readonly state: "accepted" | "rejected";
  readonly message: string;
}

/**
 * Every rule in `rules` is accepted unless rejected; every rejection (from
 * parsing, `rules.rejected`, or from mesh checks, `rejected`) is recorded even
 * if the rule never made it into `rules`. Messages for one rule are joined.
 */
export function desiredRuleStatus(rules: RuleSet, rejected: readonly RuleRejection[]): RuleStatusRow[] {
  const messages = new Map<string, { kind: RuleKind; id: string; messages: string[] }>();
  for (const r of [...rules.rejected, ...rejected]) {
    const key = `${r.kind}\u0000${r.id}`;
    const entry = messages.get(key) ?? { kind: r.kind, id: r.id, messages: [] };
    if (!entry.messages.includes(r.message)) entry.messages.push(r.message);
    messages.set(key, entry);
  }
  const rows: RuleStatusRow[] = [];
  const accept = (kind: RuleKind, ruleId: string) => {
    if (!messages.has(`${kind}\u0000${ruleId}`)) rows.push({ kind, ruleId, state: "accepted", message: "" });
  };
  for (const s of rules.subsets) accept("subset", subsetKey(s.service, s.name));
  for (const r of rules.httpRoutes) accept("http_route", r.id);
  for (const [kind, id] of routePolicyIds(rules.routePolicies)) accept(kind, id);
  for (const [kind, id] of clusterPolicyIds(rules.clusterPolicies)) accept(kind, id);
  for (const m of messages.values()) {
    rows.push({ kind: m.kind, ruleId: m.id, state: "rejected", message: m.messages.join("; ") });
  }
  return rows;
}

export interface RuleStatusWriteResult {
  /** Rows inserted or changed. */
  readonly written: number;
  readonly deleted: number;
}

/**
 * What one write sends: the rows to upsert, and which rows to delete. A full
 * write (the first of a process, or after a failed one) sends every desired
 * row and deletes every other row of the table, whoever wrote it; after that
 * a write sends only what changed since the last successful one, so a rule
 * change in a mesh of thousands of rules writes a row or two, not all.
 */
export interface RuleStatusWrite {
  readonly upsert: readonly RuleStatusRow[];
  /** The rows to delete, or "all-but-upserted" (a full write). */
  readonly remove: readonly RuleStatusRow[] | "all-but-upserted";
  /** What the table holds once this write has succeeded: `written` for the next one. */
  readonly next: WrittenRuleStatus;
}

/** What the table holds after a successful write, by kind and rule id. */
export type WrittenRuleStatus = ReadonlyMap<string, RuleStatusRow>;

/** The write that takes the table from `written` (null: unknown, write in full) to `desired`. Pure. */
export function ruleStatusWrite(written: WrittenRuleStatus | null, desired: readonly RuleStatusRow[]): RuleStatusWrite {
  const next = new Map<string, RuleStatusRow>();
  const upsert: RuleStatusRow[] = [];
  for (const row of desired) {
    const key = `${row.kind}\u0000${row.ruleId}`;
    next.set(key, row);
    const before = written?.get(key);
    if (!before || before.state !== row.state || before.message !== row.message) upsert.push(row);
  }
  if (!written) return { upsert, remove: "all-but-upserted", next };
  const remove: RuleStatusRow[] = [];
  for (const [key, row] of written) if (!next.has(key)) remove.push(row);
  return { upsert, remove, next };
}

const UPSERT = `
INSERT INTO mesh.rule_status AS s (kind, rule_id, state, message, checked_at)
SELECT kind, rule_id, state, message, now()
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS d(kind, rule_id, state, message)
ON CONFLICT (kind, rule_id) DO UPDATE
   SET state = excluded.state, message = excluded.message, checked_at = excluded.checked_at
 WHERE s.state IS DISTINCT FROM excluded.state OR s.message IS DISTINCT FROM excluded.message`;

const DELETE_ALL_BUT = `
DELETE FROM mesh.rule_status s
 WHERE NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS d(kind, rule_id)
                    WHERE d.kind = s.kind AND d.rule_id = s.rule_id)`;

const DELETE_LISTED = `
DELETE FROM mesh.rule_status s
 USING unnest($1::text[], $2::text[]) AS d(kind, rule_id)
 WHERE s.kind = d.kind AND s.rule_id = d.rule_id`;

/** Applies `write` in one transaction; a write with nothing to do does not touch the database. */
export async function writeRuleStatus(pool: pg.Pool, write: RuleStatusWrite): Promise<RuleStatusWriteResult> {
  const { upsert, remove } = write;
  if (upsert.length === 0 && remove !== "all-but-upserted" && remove.length === 0) return { written: 0, deleted: 0 };
  const kinds = (rows: readonly RuleStatusRow[]) => rows.map((r) => r.kind);
  const ids = (rows: readonly RuleStatusRow[]) => rows.map((r) => r.ruleId);
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const upserted = upsert.length > 0 ? await client.query(UPSERT, [kinds(upsert), ids(upsert), upsert.map((r) => r.state), upsert.map((r) => r.message)]) : null;
    let deleted = null;
    if (remove === "all-but-upserted") deleted = await client.query(DELETE_ALL_BUT, [kinds(upsert), ids(upsert)]);
    else if (remove.length > 0) deleted = await client.query(DELETE_LISTED, [kinds(remove), ids(remove)]);
    await client.query("COMMIT");
    return { written: upserted?.rowCount ?? 0, deleted: deleted?.rowCount ?? 0 };
  } catch (err) {
    broken = err as Error;
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release(broken);
  }
}
