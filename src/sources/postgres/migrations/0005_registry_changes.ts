/**
 * A change log for the registry tables, so the control plane can re-read only
 * the services whose rows changed instead of every row (see registry-delta.ts).
 *
 * mesh.services and mesh.instances get their own change triggers, replacing
 * the generic mesh.note_change() ones of 0001: one statement-level trigger per
 * event, with transition tables, that bumps mesh.revision exactly as before and
 * records the names of the services the statement touched, under the revision
 * it just bumped to. NOTIFY payloads and revision semantics are unchanged, so a
 * replica running older code keeps working against this schema.
 *
 * Why `revision > last` finds exactly the changes a reader has not seen: the
 * bump is an UPDATE of the one mesh.revision row, whose lock the writer holds
 * until it commits. The next writer waits for that lock and then bumps from the
 * committed value, so revisions are handed out in commit order, and a snapshot
 * sees every writer up to some revision and none after it. A change row
 * carries the revision of its own transaction (taken from the same UPDATE ...
 * RETURNING), commits or rolls back together with the rows it describes, and
 * so is visible in exactly the snapshots that see those rows.
 *
 * mesh.registry_changes_floor says how far back the log is complete: every
 * registry change with a revision above the floor has a row in the log. Pruning
 * (by any replica) deletes old rows and raises the floor in one transaction; a
 * reader whose last revision is below the floor reloads everything instead.
 */
import type { Migration } from "./index.ts";

const sql = String.raw`
CREATE TABLE mesh.registry_changes (
  revision   bigint NOT NULL,
  -- The service whose row, or one of whose instances, changed. NULL means
  -- "every service" (TRUNCATE): the reader then reloads the whole registry.
  service    text,
  changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX registry_changes_revision_idx ON mesh.registry_changes (revision);

CREATE TABLE mesh.registry_changes_floor (
  singleton  boolean PRIMARY KEY DEFAULT true CONSTRAINT registry_changes_floor_single_row CHECK (singleton),
  revision   bigint NOT NULL
);

-- Same bump and notification as mesh.note_change(), plus the log rows. The
-- transition tables are named old_rows / new_rows; TG_ARGV[0] is the column
-- holding the service name ('name' in mesh.services, 'service' in mesh.instances).
CREATE FUNCTION mesh.note_registry_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
DECLARE
  v bigint;
BEGIN
  UPDATE mesh.revision SET value = value + 1, updated_at = now() RETURNING value INTO v;
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO mesh.registry_changes (revision, service) VALUES (v, NULL);
  ELSIF TG_OP = 'INSERT' THEN
    EXECUTE format('INSERT INTO mesh.registry_changes (revision, service) SELECT DISTINCT $1, %I FROM new_rows', TG_ARGV[0]) USING v;
  ELSIF TG_OP = 'DELETE' THEN
    EXECUTE format('INSERT INTO mesh.registry_changes (revision, service) SELECT DISTINCT $1, %I FROM old_rows', TG_ARGV[0]) USING v;
  ELSE
    -- An UPDATE may move an instance to another service (or rename a service):
    -- both the old and the new service changed.
    EXECUTE format('INSERT INTO mesh.registry_changes (revision, service)
                    SELECT $1, %1$I FROM old_rows UNION SELECT $1, %1$I FROM new_rows', TG_ARGV[0]) USING v;
  END IF;
  PERFORM pg_notify('mesh_changes', TG_TABLE_NAME);
  RETURN NULL;
END $$;

-- Taking these locks waits for writers still using the old triggers, so the
-- floor read below (a later statement, hence a later snapshot) is at least the
-- revision of every registry write the log does not hold.
DROP TRIGGER services_note_change ON mesh.services;
DROP TRIGGER instances_note_change ON mesh.instances;

DO $$
DECLARE
  t text;
  col text;
BEGIN
  FOREACH t IN ARRAY ARRAY['services', 'instances'] LOOP
    col := CASE t WHEN 'services' THEN 'name' ELSE 'service' END;
    -- Transition tables allow one event per trigger, hence three (plus TRUNCATE).
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON mesh.%I REFERENCING NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_registry_change(%L)', t || '_note_insert', t, col);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON mesh.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_registry_change(%L)', t || '_note_update', t, col);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON mesh.%I REFERENCING OLD TABLE AS old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_registry_change(%L)', t || '_note_delete', t, col);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON mesh.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_registry_change(%L)', t || '_note_truncate', t, col);
  END LOOP;
END $$;

INSERT INTO mesh.registry_changes_floor (revision) SELECT value FROM mesh.revision;
`;

export const migration0005: Migration = { version: 5, name: "registry_changes", sql };
