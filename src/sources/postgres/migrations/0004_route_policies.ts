/**
 * Route-side traffic policies (docs/rules-route.md):
 *
 * - route extensions, owned by one mesh.http_routes row: rewrites, header
 *   edits, redirects, direct responses, request mirrors;
 * - scoped policies, each for a destination service and optionally one source
 *   service or one route: timeouts, retries, fault injection, traffic drops
 *   (the kill switch) and local rate limits.
 *
 * Every table gets the updated_at and change-notification triggers of 0001,
 * and a `<table>_status` view with the verdict Signalbox wrote back.
 * Independent of migrations 0002 and 0003: it only adds to what 0001 made, and
 * extends mesh.rule_status's kind list with whatever kinds it finds there.
 */
import type { Migration } from "./index.ts";

const BACKTICK = "`";

/** The scope columns and constraints every policy table shares. */
function scope(table: string): { columns: string; constraints: string } {
  return {
    columns: `
  id          bigserial PRIMARY KEY,
  destination text NOT NULL
              CONSTRAINT ${table}_destination_is_dns_label CHECK (mesh.is_dns_label(destination)),
  source      text
              CONSTRAINT ${table}_source_is_dns_label CHECK (mesh.is_dns_label(source)),
  route_id    bigint,
  enabled     boolean NOT NULL DEFAULT true,`,
    constraints: `
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  -- A route-specific row must name the route's own destination; it follows the
  -- route when its destination changes and goes when the route is deleted.
  CONSTRAINT ${table}_route_fk FOREIGN KEY (route_id, destination)
    REFERENCES mesh.http_routes (id, destination) MATCH SIMPLE ON DELETE CASCADE ON UPDATE CASCADE,
  -- A route already says which callers it applies to.
  CONSTRAINT ${table}_route_or_source CHECK (route_id IS NULL OR source IS NULL)`,
  };
}

/** One enabled row per scope, so "the most specific row wins" never has a tie. */
function onePerScope(table: string): string {
  return `CREATE UNIQUE INDEX ${table}_one_per_scope
  ON mesh.${table} (destination, coalesce(source, ''), coalesce(route_id, 0)) WHERE enabled;
CREATE INDEX ${table}_route_idx ON mesh.${table} (route_id);`;
}

/** The status view of a policy table: its rows, then state/message/checked_at. */
function statusView(table: string, kind: string, columns: string): string {
  return `CREATE VIEW mesh.${table}_status AS
SELECT p.id, p.destination, p.source, p.route_id, p.enabled,
       CASE WHEN NOT p.enabled THEN 'disabled' ELSE coalesce(s.state, 'pending') END AS state,
       s.message, s.checked_at,
       ${columns},
       p.created_at, p.updated_at
  FROM mesh.${table} p
  LEFT JOIN mesh.rule_status s ON s.kind = '${kind}' AND s.rule_id = p.id::text;`;
}

/** The status view of a route-extension table: its rows with the verdict on their route. */
function routeStatusView(table: string, columns: string): string {
  return `CREATE VIEW mesh.${table}_status AS
SELECT ${columns}, x.enabled,
       CASE WHEN NOT (x.enabled AND r.enabled) THEN 'disabled' ELSE coalesce(s.state, 'pending') END AS state,
       s.message, s.checked_at, x.created_at, x.updated_at
  FROM mesh.${table} x
  JOIN mesh.http_routes r ON r.id = x.route_id
  LEFT JOIN mesh.rule_status s ON s.kind = 'http_route' AND s.rule_id = x.route_id::text;`;
}

const timeouts = scope("timeout_policies");
const retries = scope("retry_policies");
const faults = scope("fault_policies");
const drops = scope("drop_policies");
const rateLimits = scope("rate_limit_policies");

const ROUTE_TABLES = [
  "http_route_rewrites",
  "http_route_header_edits",
  "http_route_redirects",
  "http_route_direct_responses",
  "http_route_mirrors",
];
const POLICY_TABLES = ["timeout_policies", "retry_policies", "fault_policies", "drop_policies", "rate_limit_policies"];
const POLICY_KINDS = ["timeout_policy", "retry_policy", "fault_policy", "drop_policy", "rate_limit_policy"];

const sql = String.raw`
-- ---------------------------------------------------------------------------
-- Helpers.
-- ---------------------------------------------------------------------------

-- A lower-case HTTP field name (RFC 9110 token). HTTP/2 requires lower case.
CREATE FUNCTION mesh.is_header_name(v text) RETURNS boolean
  LANGUAGE sql IMMUTABLE STRICT
  AS $$ SELECT v ~ '^[a-z0-9!#$%&''*+.^_${BACKTICK}|~-]+$' $$;

-- A host name or IPv4 address, as Envoy writes it into :authority / Location.
CREATE FUNCTION mesh.is_host_name(v text) RETURNS boolean
  LANGUAGE sql IMMUTABLE STRICT
  AS $$ SELECT v ~ '^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$' $$;

-- Route-specific policies reference (route_id, destination).
ALTER TABLE mesh.http_routes ADD CONSTRAINT http_routes_id_destination_key UNIQUE (id, destination);

-- ---------------------------------------------------------------------------
-- Route extensions: owned by one route; their verdict is the route's.
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.http_route_rewrites (
  route_id   bigint PRIMARY KEY REFERENCES mesh.http_routes (id) ON DELETE CASCADE,
  prefix     text
             CONSTRAINT http_route_rewrites_prefix_absolute CHECK (prefix LIKE '/%' AND prefix !~ '\s'),
  host       text
             CONSTRAINT http_route_rewrites_host_valid CHECK (host ~ '^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$'),
  enabled    boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT http_route_rewrites_rewrite_something CHECK (prefix IS NOT NULL OR host IS NOT NULL)
);

CREATE TABLE mesh.http_route_header_edits (
  id         bigserial PRIMARY KEY,
  route_id   bigint NOT NULL REFERENCES mesh.http_routes (id) ON DELETE CASCADE,
  direction  text NOT NULL
             CONSTRAINT http_route_header_edits_direction_known CHECK (direction IN ('request', 'response')),
  action     text NOT NULL DEFAULT 'set'
             CONSTRAINT http_route_header_edits_action_known CHECK (action IN ('set', 'append', 'add_if_absent', 'remove')),
  name       text NOT NULL
             CONSTRAINT http_route_header_edits_name_lower_case_token CHECK (mesh.is_header_name(name)),
  value      text
             CONSTRAINT http_route_header_edits_value_single_line CHECK (value !~ '[\r\n]'),
  enabled    boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- Envoy refuses to touch the Host header (pseudo-headers are not tokens).
  CONSTRAINT http_route_header_edits_name_not_host CHECK (name <> 'host'),
  CONSTRAINT http_route_header_edits_value_pair CHECK ((action = 'remove') = (value IS NULL))
);
CREATE UNIQUE INDEX http_route_header_edits_one_per_header
  ON mesh.http_route_header_edits (route_id, direction, name);

CREATE TABLE mesh.http_route_redirects (
  route_id      bigint PRIMARY KEY REFERENCES mesh.http_routes (id) ON DELETE CASCADE,
  scheme        text
                CONSTRAINT http_route_redirects_scheme_known CHECK (scheme IN ('http', 'https')),
  host          text
                CONSTRAINT http_route_redirects_host_valid CHECK (mesh.is_host_name(host)),
  port          integer
                CONSTRAINT http_route_redirects_port_range CHECK (port BETWEEN 1 AND 65535),
  path          text
                CONSTRAINT http_route_redirects_path_absolute CHECK (path LIKE '/%' AND path !~ '\s'),
  prefix        text
                CONSTRAINT http_route_redirects_prefix_absolute CHECK (prefix LIKE '/%' AND prefix !~ '\s'),
  response_code integer NOT NULL DEFAULT 301
                CONSTRAINT http_route_redirects_response_code_known CHECK (response_code IN (301, 302, 303, 307, 308)),
  strip_query   boolean NOT NULL DEFAULT false,
  enabled       boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT http_route_redirects_path_or_prefix CHECK (path IS NULL OR prefix IS NULL),
  CONSTRAINT http_route_redirects_redirect_somewhere CHECK (num_nonnulls(scheme, host, port, path, prefix) > 0 OR strip_query)
);

CREATE TABLE mesh.http_route_direct_responses (
  route_id   bigint PRIMARY KEY REFERENCES mesh.http_routes (id) ON DELETE CASCADE,
  status     integer NOT NULL
             CONSTRAINT http_route_direct_responses_status_range CHECK (status BETWEEN 200 AND 599),
  body       text
             -- Envoy's default max_direct_response_body_size_bytes.
             CONSTRAINT http_route_direct_responses_body_size CHECK (octet_length(body) <= 4096),
  enabled    boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mesh.http_route_mirrors (
  id         bigserial PRIMARY KEY,
  route_id   bigint NOT NULL REFERENCES mesh.http_routes (id) ON DELETE CASCADE,
  service    text NOT NULL
             CONSTRAINT http_route_mirrors_service_is_dns_label CHECK (mesh.is_dns_label(service)),
  subset     text,
  percent    numeric(7, 4) NOT NULL DEFAULT 100
             CONSTRAINT http_route_mirrors_percent_range CHECK (percent > 0 AND percent <= 100),
  enabled    boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT http_route_mirrors_subset_fk FOREIGN KEY (service, subset)
    REFERENCES mesh.subsets (service, name) MATCH SIMPLE ON DELETE RESTRICT ON UPDATE CASCADE
);
CREATE UNIQUE INDEX http_route_mirrors_unique ON mesh.http_route_mirrors (route_id, service, coalesce(subset, ''));

-- ---------------------------------------------------------------------------
-- Scoped policies: destination-wide < source-specific < route-specific.
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.timeout_policies (${timeouts.columns}
  timeout_ms  integer
              CONSTRAINT timeout_policies_timeout_not_negative CHECK (timeout_ms >= 0),
  propagate   boolean NOT NULL DEFAULT false,${timeouts.constraints},
  CONSTRAINT timeout_policies_sets_something CHECK (timeout_ms IS NOT NULL OR propagate)
);
${onePerScope("timeout_policies")}

CREATE TABLE mesh.retry_policies (${retries.columns}
  retry_on    text[] NOT NULL DEFAULT '{}'
              CONSTRAINT retry_policies_retry_on_known CHECK (retry_on <@ ARRAY[
                '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure',
                'envoy-ratelimited', 'retriable-4xx', 'refused-stream', 'http3-post-connect-failure',
                'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'
              ]::text[]),
  num_retries integer NOT NULL DEFAULT 1
              CONSTRAINT retry_policies_num_retries_range CHECK (num_retries BETWEEN 0 AND 10),
  per_try_timeout_ms integer
              CONSTRAINT retry_policies_per_try_timeout_positive CHECK (per_try_timeout_ms > 0),
  retriable_status_codes integer[]
              CONSTRAINT retry_policies_status_codes_range CHECK (
                cardinality(retriable_status_codes) > 0
                AND 100 <= ALL (retriable_status_codes) AND 599 >= ALL (retriable_status_codes)),
  backoff_base_ms integer
              CONSTRAINT retry_policies_backoff_base_positive CHECK (backoff_base_ms > 0),
  backoff_max_ms integer
              CONSTRAINT retry_policies_backoff_max_positive CHECK (backoff_max_ms > 0),
  hedge_on_per_try_timeout boolean NOT NULL DEFAULT false,${retries.constraints},
  CONSTRAINT retry_policies_retry_on_something CHECK (
    cardinality(retry_on) > 0 OR retriable_status_codes IS NOT NULL OR num_retries = 0),
  CONSTRAINT retry_policies_backoff_max_needs_base CHECK (backoff_max_ms IS NULL OR backoff_base_ms IS NOT NULL),
  CONSTRAINT retry_policies_backoff_order CHECK (backoff_max_ms >= backoff_base_ms),
  CONSTRAINT retry_policies_hedge_needs_per_try_timeout CHECK (NOT hedge_on_per_try_timeout OR per_try_timeout_ms IS NOT NULL)
);
${onePerScope("retry_policies")}

CREATE TABLE mesh.fault_policies (${faults.columns}
  delay_ms      integer
                CONSTRAINT fault_policies_delay_positive CHECK (delay_ms > 0),
  delay_percent numeric(7, 4)
                CONSTRAINT fault_policies_delay_percent_range CHECK (delay_percent BETWEEN 0 AND 100),
  abort_http_status integer
                CONSTRAINT fault_policies_abort_http_status_range CHECK (abort_http_status BETWEEN 200 AND 599),
  abort_grpc_status integer
                CONSTRAINT fault_policies_abort_grpc_status_range CHECK (abort_grpc_status BETWEEN 1 AND 16),
  abort_percent numeric(7, 4)
                CONSTRAINT fault_policies_abort_percent_range CHECK (abort_percent BETWEEN 0 AND 100),
  headers       jsonb NOT NULL DEFAULT '[]'
                CONSTRAINT fault_policies_headers_object_array CHECK (mesh.is_object_array(headers)),${faults.constraints},
  CONSTRAINT fault_policies_delay_pair CHECK ((delay_ms IS NULL) = (delay_percent IS NULL)),
  CONSTRAINT fault_policies_abort_pair CHECK (
    (abort_percent IS NULL) = (abort_http_status IS NULL AND abort_grpc_status IS NULL))
);
${onePerScope("fault_policies")}

CREATE TABLE mesh.drop_policies (${drops.columns}
  percent     numeric(7, 4) NOT NULL DEFAULT 100
              CONSTRAINT drop_policies_percent_range CHECK (percent BETWEEN 0 AND 100),
  http_status integer NOT NULL DEFAULT 503
              CONSTRAINT drop_policies_http_status_range CHECK (http_status BETWEEN 200 AND 599),
  grpc_status integer NOT NULL DEFAULT 14
              CONSTRAINT drop_policies_grpc_status_range CHECK (grpc_status BETWEEN 1 AND 16),${drops.constraints}
);
${onePerScope("drop_policies")}

CREATE TABLE mesh.rate_limit_policies (${rateLimits.columns}
  max_tokens       integer NOT NULL
                   CONSTRAINT rate_limit_policies_max_tokens_positive CHECK (max_tokens > 0),
  tokens_per_fill  integer NOT NULL DEFAULT 1
                   CONSTRAINT rate_limit_policies_tokens_per_fill_positive CHECK (tokens_per_fill > 0),
  -- Envoy refuses a fill interval under 50 ms.
  fill_interval_ms integer NOT NULL
                   CONSTRAINT rate_limit_policies_fill_interval_min CHECK (fill_interval_ms >= 50),
  status_code      integer NOT NULL DEFAULT 429
                   CONSTRAINT rate_limit_policies_status_code_range CHECK (status_code BETWEEN 400 AND 599),${rateLimits.constraints}
);
${onePerScope("rate_limit_policies")}

-- ---------------------------------------------------------------------------
-- Rule status: the new kinds, and a view per table.
-- ---------------------------------------------------------------------------

-- Keep every kind the constraint allows now (0001's and any added since) and add ours.
DO $$
DECLARE
  definition text;
  kinds text[];
BEGIN
  SELECT pg_get_constraintdef(c.oid) INTO definition
    FROM pg_constraint c
   WHERE c.conrelid = 'mesh.rule_status'::regclass AND c.conname = 'rule_status_kind_known';
  SELECT coalesce(array_agg(DISTINCT m[1]), '{}') INTO kinds
    FROM regexp_matches(coalesce(definition, ''), '''([a-z_]+)''', 'g') AS m;
  SELECT array_agg(DISTINCT k ORDER BY k) INTO kinds
    FROM unnest(kinds || ARRAY['http_route', 'subset', ${POLICY_KINDS.map((k) => `'${k}'`).join(", ")}]) AS k;
  ALTER TABLE mesh.rule_status DROP CONSTRAINT IF EXISTS rule_status_kind_known;
  -- Written as ARRAY['a', 'b'] so a later migration can read the list back the same way.
  EXECUTE format('ALTER TABLE mesh.rule_status ADD CONSTRAINT rule_status_kind_known CHECK (kind IN (%s))',
                 (SELECT string_agg(quote_literal(k), ', ' ORDER BY k) FROM unnest(kinds) AS k));
END $$;

${statusView("timeout_policies", "timeout_policy", "p.timeout_ms, p.propagate")}

${statusView(
  "retry_policies",
  "retry_policy",
  "p.retry_on, p.num_retries, p.per_try_timeout_ms, p.retriable_status_codes, p.backoff_base_ms, p.backoff_max_ms, p.hedge_on_per_try_timeout",
)}

${statusView(
  "fault_policies",
  "fault_policy",
  "p.delay_ms, p.delay_percent, p.abort_http_status, p.abort_grpc_status, p.abort_percent, p.headers",
)}

${statusView("drop_policies", "drop_policy", "p.percent, p.http_status, p.grpc_status")}

${statusView("rate_limit_policies", "rate_limit_policy", "p.max_tokens, p.tokens_per_fill, p.fill_interval_ms, p.status_code")}

${routeStatusView("http_route_rewrites", "x.route_id, x.prefix, x.host")}

${routeStatusView("http_route_header_edits", "x.id, x.route_id, x.direction, x.action, x.name, x.value")}

${routeStatusView(
  "http_route_redirects",
  "x.route_id, x.scheme, x.host, x.port, x.path, x.prefix, x.response_code, x.strip_query",
)}

${routeStatusView("http_route_direct_responses", "x.route_id, x.status, x.body")}

${routeStatusView("http_route_mirrors", "x.id, x.route_id, x.service, x.subset, x.percent")}

-- ---------------------------------------------------------------------------
-- Triggers, as in 0001: updated_at, and revision bump + NOTIFY on every write.
-- ---------------------------------------------------------------------------

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY[${[...ROUTE_TABLES, ...POLICY_TABLES].map((t) => `'${t}'`).join(", ")}] LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON mesh.%I FOR EACH ROW EXECUTE FUNCTION mesh.touch_updated_at()',
                   t || '_touch_updated_at', t);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mesh.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_change()',
                   t || '_note_change', t);
  END LOOP;
END $$;
`;

export const migration0004: Migration = { version: 4, name: "route_policies", sql };
