/**
 * The revision at which each rule table last changed, so a reload re-reads
 * only the rule tables that moved since it last read them (load-rules.ts)
 * instead of every rule row.
 *
 * mesh.note_change(), the trigger of every rule table (0001–0004), now also
 * records the revision it bumps to under the table's name, in the same
 * statement-level trigger and so the same transaction: a snapshot that sees a
 * table's rows sees the revision that goes with them. Revisions are handed out
 * in commit order (see 0005), so "this table's revision equals the one I read
 * it at" means "no commit has touched it since". NOTIFY payloads and the
 * global revision are unchanged; replicas running older code ignore the table.
 *
 * The registry tables keep their own change log (0005) and are not recorded
 * here.
 */
import type { Migration } from "./index.ts";

const sql = String.raw`
CREATE TABLE mesh.table_revisions (
  table_name text PRIMARY KEY,
  revision   bigint NOT NULL
);

CREATE OR REPLACE FUNCTION mesh.note_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
DECLARE
  v bigint;
BEGIN
  UPDATE mesh.revision SET value = value + 1, updated_at = now() RETURNING value INTO v;
  INSERT INTO mesh.table_revisions (table_name, revision) VALUES (TG_TABLE_NAME, v)
    ON CONFLICT (table_name) DO UPDATE SET revision = EXCLUDED.revision;
  -- Delivered at commit; identical notifications in one transaction fold into one.
  PERFORM pg_notify('mesh_changes', TG_TABLE_NAME);
  RETURN NULL;
END $$;

-- Every table watched through mesh.note_change() starts at the current
-- revision. Locking them first lets writers still running the old function
-- finish (new ones wait for this migration and then run the new one), so
-- every write without a recorded revision is below the one recorded here.
DO $$
DECLARE
  watched text[];
  t text;
BEGIN
  SELECT array_agg(DISTINCT c.relname ORDER BY c.relname) INTO watched
    FROM pg_trigger tr
    JOIN pg_class c ON c.oid = tr.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_proc p ON p.oid = tr.tgfoid
   WHERE n.nspname = 'mesh' AND p.proname = 'note_change' AND NOT tr.tgisinternal;
  FOREACH t IN ARRAY watched LOOP
    EXECUTE format('LOCK TABLE mesh.%I IN SHARE ROW EXCLUSIVE MODE', t);
  END LOOP;
  INSERT INTO mesh.table_revisions (table_name, revision)
  SELECT unnest(watched), (SELECT value FROM mesh.revision)
  ON CONFLICT (table_name) DO UPDATE SET revision = EXCLUDED.revision;
END $$;
`;

export const migration0006: Migration = { version: 6, name: "table_revisions", sql };
