/**
 * A change log for the route tables, so a reload re-reads only the routes whose
 * rows changed (load-rules.ts) instead of every route and destination row: a
 * new route in a mesh of thousands costs a read and a parse of that route.
 *
 * mesh.http_routes and mesh.http_route_destinations get their own change
 * triggers, replacing the generic mesh.note_change() ones: one statement-level
 * trigger per event, with transition tables, that does what note_change() does
 * (bump mesh.revision, record the table's revision in mesh.table_revisions,
 * notify) and also records the ids of the routes the statement touched under
 * the revision it bumped to. A destination row counts for its route. NOTIFY
 * payloads, the revision and the table revisions are unchanged, so a replica
 * running older code keeps working against this schema.
 *
 * The log works like the registry's (0005, which explains why `revision >
 * last` finds exactly the changes a reader has not seen), with its own floor:
 * every route change above mesh.route_changes_floor has a row in the log; a
 * reader whose last read is below it, or that finds a TRUNCATE (a NULL route),
 * reads the route tables whole.
 */
import type { Migration } from "./index.ts";

const sql = String.raw`
CREATE TABLE mesh.route_changes (
  revision   bigint NOT NULL,
  -- The route whose row, or one of whose destination rows, changed. NULL means
  -- "every route" (TRUNCATE): the reader then reads the route tables whole.
  route_id   bigint,
  changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX route_changes_revision_idx ON mesh.route_changes (revision);

CREATE TABLE mesh.route_changes_floor (
  singleton  boolean PRIMARY KEY DEFAULT true CONSTRAINT route_changes_floor_single_row CHECK (singleton),
  revision   bigint NOT NULL
);

-- mesh.note_change() (0006) plus the log rows. The transition tables are named
-- old_rows / new_rows; TG_ARGV[0] is the column holding the route id ('id' in
-- mesh.http_routes, 'route_id' in mesh.http_route_destinations).
CREATE FUNCTION mesh.note_route_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
DECLARE
  v bigint;
BEGIN
  UPDATE mesh.revision SET value = value + 1, updated_at = now() RETURNING value INTO v;
  INSERT INTO mesh.table_revisions (table_name, revision) VALUES (TG_TABLE_NAME, v)
    ON CONFLICT (table_name) DO UPDATE SET revision = EXCLUDED.revision;
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO mesh.route_changes (revision, route_id) VALUES (v, NULL);
  ELSIF TG_OP = 'INSERT' THEN
    EXECUTE format('INSERT INTO mesh.route_changes (revision, route_id) SELECT DISTINCT $1, %I FROM new_rows', TG_ARGV[0]) USING v;
  ELSIF TG_OP = 'DELETE' THEN
    EXECUTE format('INSERT INTO mesh.route_changes (revision, route_id) SELECT DISTINCT $1, %I FROM old_rows', TG_ARGV[0]) USING v;
  ELSE
    -- An UPDATE may move a destination to another route (or change a route's
    -- id): both the old and the new route changed.
    EXECUTE format('INSERT INTO mesh.route_changes (revision, route_id)
                    SELECT $1, %1$I FROM old_rows UNION SELECT $1, %1$I FROM new_rows', TG_ARGV[0]) USING v;
  END IF;
  PERFORM pg_notify('mesh_changes', TG_TABLE_NAME);
  RETURN NULL;
END $$;

-- Dropping the old triggers waits for writers still using them, so the floor
-- read below (a later statement, hence a later snapshot) is at least the
-- revision of every route write the log does not hold.
DROP TRIGGER http_routes_note_change ON mesh.http_routes;
DROP TRIGGER http_route_destinations_note_change ON mesh.http_route_destinations;

DO $$
DECLARE
  t text;
  col text;
BEGIN
  FOREACH t IN ARRAY ARRAY['http_routes', 'http_route_destinations'] LOOP
    col := CASE t WHEN 'http_routes' THEN 'id' ELSE 'route_id' END;
    -- Transition tables allow one event per trigger, hence three (plus TRUNCATE).
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON mesh.%I REFERENCING NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_route_change(%L)', t || '_note_insert', t, col);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON mesh.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_route_change(%L)', t || '_note_update', t, col);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON mesh.%I REFERENCING OLD TABLE AS old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_route_change(%L)', t || '_note_delete', t, col);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON mesh.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_route_change(%L)', t || '_note_truncate', t, col);
  END LOOP;
END $$;

INSERT INTO mesh.route_changes_floor (revision) SELECT value FROM mesh.revision;
`;

export const migration0007: Migration = { version: 7, name: "route_changes", sql };
