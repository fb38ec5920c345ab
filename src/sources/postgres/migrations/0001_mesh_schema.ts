/**
 * The first version of the `mesh` schema: registry tables, rule tables, the
 * revision counter with its change triggers, and rule status for authors.
 *
 * Kept as a TypeScript string (not a .sql file) so it ships inside the compiled
 * package without a copy step. Never edit a released migration; add a new one.
 */
import type { Migration } from "./index.ts";

const sql = String.raw`
-- ---------------------------------------------------------------------------
-- Helpers used by CHECK constraints. IMMUTABLE so they may appear in CHECKs.
-- ---------------------------------------------------------------------------

-- A DNS label (RFC 1123), lower case: what Kubernetes, Consul and DNS agree on.
CREATE FUNCTION mesh.is_dns_label(v text) RETURNS boolean
  LANGUAGE sql IMMUTABLE STRICT
  AS $$ SELECT v ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' $$;

-- A JSON object whose values are all strings, e.g. {"version": "v1"}.
CREATE FUNCTION mesh.is_string_map(v jsonb) RETURNS boolean
  LANGUAGE sql IMMUTABLE STRICT
  AS $$ SELECT jsonb_typeof(v) = 'object'
           AND NOT jsonb_path_exists(v, '$.* ? (@.type() != "string")') $$;

-- A JSON array whose elements are all objects. Their fields are checked by the
-- control plane, which reports a wrong shape through mesh.rule_status.
CREATE FUNCTION mesh.is_object_array(v jsonb) RETURNS boolean
  LANGUAGE sql IMMUTABLE STRICT
  AS $$ SELECT jsonb_typeof(v) = 'array'
           AND NOT jsonb_path_exists(v, '$[*] ? (@.type() != "object")') $$;

CREATE FUNCTION mesh.touch_updated_at() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END $$;

-- ---------------------------------------------------------------------------
-- Registry: where services are (used when Consul is not).
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.services (
  name       text PRIMARY KEY
             CONSTRAINT services_name_is_dns_label CHECK (mesh.is_dns_label(name)),
  protocol   text NOT NULL DEFAULT 'http'
             CONSTRAINT services_protocol_known CHECK (protocol IN ('http', 'http2', 'grpc', 'tcp')),
  port       integer NOT NULL DEFAULT 80
             CONSTRAINT services_port_range CHECK (port BETWEEN 1 AND 65535),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mesh.instances (
  id         text PRIMARY KEY
             CONSTRAINT instances_id_no_spaces CHECK (id ~ '^\S+$'),
  service    text NOT NULL
             REFERENCES mesh.services (name) ON DELETE CASCADE ON UPDATE CASCADE,
  address    text NOT NULL
             CONSTRAINT instances_address_no_spaces CHECK (address ~ '^\S+$'),
  port       integer NOT NULL
             CONSTRAINT instances_port_range CHECK (port BETWEEN 1 AND 65535),
  mesh_port  integer
             CONSTRAINT instances_mesh_port_range CHECK (mesh_port BETWEEN 1 AND 65535),
  labels     jsonb NOT NULL DEFAULT '{}'
             CONSTRAINT instances_labels_string_map CHECK (mesh.is_string_map(labels)),
  region     text NOT NULL DEFAULT '',
  zone       text NOT NULL DEFAULT '',
  weight     integer NOT NULL DEFAULT 1
             CONSTRAINT instances_weight_range CHECK (weight BETWEEN 1 AND 128),
  health     text NOT NULL DEFAULT 'healthy'
             CONSTRAINT instances_health_known CHECK (health IN ('healthy', 'unhealthy', 'draining', 'unknown')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instances_service_idx ON mesh.instances (service);

-- ---------------------------------------------------------------------------
-- Rules: how traffic behaves. Service names here are plain names, not foreign
-- keys to mesh.services: with Consul as the registry those tables stay empty.
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.subsets (
  service    text NOT NULL
             CONSTRAINT subsets_service_is_dns_label CHECK (mesh.is_dns_label(service)),
  name       text NOT NULL
             CONSTRAINT subsets_name_is_dns_label CHECK (mesh.is_dns_label(name)),
  selector   jsonb NOT NULL
             CONSTRAINT subsets_selector_string_map CHECK (mesh.is_string_map(selector)),
  enabled    boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (service, name)
);

CREATE TABLE mesh.http_routes (
  id                 bigserial PRIMARY KEY,
  destination        text NOT NULL
                     CONSTRAINT http_routes_destination_is_dns_label CHECK (mesh.is_dns_label(destination)),
  source             text
                     CONSTRAINT http_routes_source_is_dns_label CHECK (mesh.is_dns_label(source)),
  priority           integer NOT NULL DEFAULT 0,
  enabled            boolean NOT NULL DEFAULT true,
  path_match         text
                     CONSTRAINT http_routes_path_match_known CHECK (path_match IN ('prefix', 'exact', 'regex')),
  path               text,
  method             text
                     CONSTRAINT http_routes_method_upper_case CHECK (method ~ '^[A-Z][A-Z-]*$'),
  headers            jsonb NOT NULL DEFAULT '[]'
                     CONSTRAINT http_routes_headers_object_array CHECK (mesh.is_object_array(headers)),
  query_params       jsonb NOT NULL DEFAULT '[]'
                     CONSTRAINT http_routes_query_params_object_array CHECK (mesh.is_object_array(query_params)),
  timeout_ms         integer
                     CONSTRAINT http_routes_timeout_positive CHECK (timeout_ms > 0),
  retry_on           text[]
                     CONSTRAINT http_routes_retry_on_known CHECK (
                       cardinality(retry_on) > 0 AND retry_on <@ ARRAY[
                         -- Envoy x-envoy-retry-on
                         '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure',
                         'envoy-ratelimited', 'retriable-4xx', 'refused-stream',
                         'http3-post-connect-failure',
                         -- Envoy x-envoy-retry-grpc-on / gRPC status codes
                         'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'
                       ]::text[]),
  retry_attempts     integer
                     CONSTRAINT http_routes_retry_attempts_range CHECK (retry_attempts BETWEEN 0 AND 10),
  per_try_timeout_ms integer
                     CONSTRAINT http_routes_per_try_timeout_positive CHECK (per_try_timeout_ms > 0),
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT http_routes_path_pair CHECK ((path_match IS NULL) = (path IS NULL)),
  CONSTRAINT http_routes_path_absolute CHECK ((path_match = 'regex' AND path <> '') OR path LIKE '/%'),
  CONSTRAINT http_routes_retry_pair CHECK ((retry_on IS NULL) = (retry_attempts IS NULL)),
  CONSTRAINT http_routes_per_try_timeout_needs_retry CHECK (per_try_timeout_ms IS NULL OR retry_attempts IS NOT NULL)
);
CREATE INDEX http_routes_destination_idx ON mesh.http_routes (destination);

CREATE TABLE mesh.http_route_destinations (
  id         bigserial PRIMARY KEY,
  route_id   bigint NOT NULL REFERENCES mesh.http_routes (id) ON DELETE CASCADE,
  service    text NOT NULL
             CONSTRAINT http_route_destinations_service_is_dns_label CHECK (mesh.is_dns_label(service)),
  subset     text,
  weight     integer NOT NULL
             CONSTRAINT http_route_destinations_weight_not_negative CHECK (weight >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- MATCH SIMPLE: a null subset (the whole service) is not checked. A subset in
  -- use cannot be deleted (RESTRICT: remove or re-point the destinations first,
  -- rather than silently moving traffic); renaming a subset follows (CASCADE).
  CONSTRAINT http_route_destinations_subset_fk FOREIGN KEY (service, subset)
    REFERENCES mesh.subsets (service, name) MATCH SIMPLE ON DELETE RESTRICT ON UPDATE CASCADE
);
-- One row per (route, service, subset); a null subset counts as one value.
CREATE UNIQUE INDEX http_route_destinations_unique
  ON mesh.http_route_destinations (route_id, service, coalesce(subset, ''));
CREATE INDEX http_route_destinations_subset_idx ON mesh.http_route_destinations (service, subset);

-- ---------------------------------------------------------------------------
-- Revision and change notification.
-- ---------------------------------------------------------------------------

-- One row. Bumped in the writing transaction, so a reader that sees the data
-- also sees the revision that goes with it; the control plane polls it to catch
-- any NOTIFY it missed. Writers to mesh tables serialize on this row until they
-- commit: keep write transactions short.
CREATE TABLE mesh.revision (
  singleton  boolean PRIMARY KEY DEFAULT true CONSTRAINT revision_single_row CHECK (singleton),
  value      bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO mesh.revision (value) VALUES (1);

CREATE FUNCTION mesh.note_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  UPDATE mesh.revision SET value = value + 1, updated_at = now();
  -- Delivered at commit; identical notifications in one transaction fold into one.
  PERFORM pg_notify('mesh_changes', TG_TABLE_NAME);
  RETURN NULL;
END $$;

-- ---------------------------------------------------------------------------
-- Rule status: written by the control plane, read by rule authors. Not watched
-- (no change trigger), so writing it never causes a reload.
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.rule_status (
  kind       text NOT NULL
             CONSTRAINT rule_status_kind_known CHECK (kind IN ('http_route', 'subset')),
  rule_id    text NOT NULL,
  state      text NOT NULL
             CONSTRAINT rule_status_state_known CHECK (state IN ('accepted', 'rejected')),
  message    text NOT NULL DEFAULT '',
  checked_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, rule_id)
);

-- state: 'disabled' for rows with enabled = false, 'pending' until the control
-- plane has looked at the row, else the recorded 'accepted' or 'rejected'.
CREATE VIEW mesh.http_routes_status AS
SELECT r.id, r.destination, r.source, r.priority, r.enabled,
       CASE WHEN NOT r.enabled THEN 'disabled' ELSE coalesce(s.state, 'pending') END AS state,
       s.message, s.checked_at,
       r.path_match, r.path, r.method, r.headers, r.query_params,
       r.timeout_ms, r.retry_on, r.retry_attempts, r.per_try_timeout_ms,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('service', d.service, 'subset', d.subset, 'weight', d.weight)
                                  ORDER BY d.id), '[]'::jsonb)
          FROM mesh.http_route_destinations d WHERE d.route_id = r.id) AS destinations,
       r.created_at, r.updated_at
  FROM mesh.http_routes r
  LEFT JOIN mesh.rule_status s ON s.kind = 'http_route' AND s.rule_id = r.id::text;

CREATE VIEW mesh.subsets_status AS
SELECT t.service, t.name, t.selector, t.enabled,
       CASE WHEN NOT t.enabled THEN 'disabled' ELSE coalesce(s.state, 'pending') END AS state,
       s.message, s.checked_at, t.created_at, t.updated_at
  FROM mesh.subsets t
  LEFT JOIN mesh.rule_status s ON s.kind = 'subset' AND s.rule_id = t.service || '/' || t.name;

-- ---------------------------------------------------------------------------
-- Triggers: updated_at on every table, change notification on watched ones.
-- ---------------------------------------------------------------------------

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['services', 'instances', 'subsets', 'http_routes', 'http_route_destinations', 'rule_status'] LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON mesh.%I FOR EACH ROW EXECUTE FUNCTION mesh.touch_updated_at()',
                   t || '_touch_updated_at', t);
  END LOOP;
  FOREACH t IN ARRAY ARRAY['services', 'instances', 'subsets', 'http_routes', 'http_route_destinations'] LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mesh.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_change()',
                   t || '_note_change', t);
  END LOOP;
END $$;
`;

export const migration0001: Migration = { version: 1, name: "mesh_schema", sql };
