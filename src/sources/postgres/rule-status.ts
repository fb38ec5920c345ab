/**
 * Writes mesh.rule_status, where rule authors read whether their rows were
 * accepted. `desiredRuleStatus` is pure; `writeRuleStatus` applies it in one
 * transaction, touching only rows whose state or message changed and deleting
 * rows of rules that no longer exist (or were disabled).
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

const UPSERT = `
INSERT INTO mesh.rule_status AS s (kind, rule_id, state, message, checked_at)
SELECT kind, rule_id, state, message, now()
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS d(kind, rule_id, state, message)
ON CONFLICT (kind, rule_id) DO UPDATE
   SET state = excluded.state, message = excluded.message, checked_at = excluded.checked_at
 WHERE s.state IS DISTINCT FROM excluded.state OR s.message IS DISTINCT FROM excluded.message`;

const DELETE_GONE = `
DELETE FROM mesh.rule_status s
 WHERE NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS d(kind, rule_id)
                    WHERE d.kind = s.kind AND d.rule_id = s.rule_id)`;

export async function writeRuleStatus(pool: pg.Pool, rows: readonly RuleStatusRow[]): Promise<RuleStatusWriteResult> {
  const kinds = rows.map((r) => r.kind);
  const ids = rows.map((r) => r.ruleId);
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const upserted = await client.query(UPSERT, [kinds, ids, rows.map((r) => r.state), rows.map((r) => r.message)]);
    const deleted = await client.query(DELETE_GONE, [kinds, ids]);
    await client.query("COMMIT");
    return { written: upserted.rowCount ?? 0, deleted: deleted.rowCount ?? 0 };
  } catch (err) {
    broken = err as Error;
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release(broken);
  }
}
