/**
 * Cluster-side traffic policies (docs/rules-cluster.md):
 *
 * - destination-wide cluster settings, one enabled row per destination, or one
 *   with destination NULL as the mesh-wide default: load balancing, connection
 *   policies (timeouts, protocol options, WebSocket), circuit breakers, outlier
 *   detection, color routing;
 * - active health checks (several per destination);
 * - hash policies for ring_hash / maglev, scoped like route policies
 *   (destination-wide < source-specific < route-specific);
 * - TCP routes: plain TCP services on a local port of the caller's sidecar,
 *   with weighted destinations.
 *
 * Every table gets the updated_at and change-notification triggers of 0001,
 * and a `<table>_status` view with the verdict Signalbox wrote back. It only
 * adds to what 0001 made (independent of 0002 and 0004) and extends
 * mesh.rule_status's kind list with whatever kinds it finds there.
 */
import type { Migration } from "./index.ts";

const BACKTICK = "`";
/** A lower-case HTTP field name (RFC 9110 token); HTTP/2 requires lower case. */
const LOWER_TOKEN = `'^[a-z0-9!#$%&''*+.^_${BACKTICK}|~-]+$'`;
/** A cookie or query parameter name: a token of any case. */
const TOKEN = `'^[A-Za-z0-9!#$%&''*+.^_${BACKTICK}|~-]+$'`;

/** The columns every destination-wide table starts with. */
function destinationWide(table: string): string {
  return `
  id          bigserial PRIMARY KEY,
  -- NULL: the mesh-wide default for every service without a row of its own.
  destination text
              CONSTRAINT ${table}_destination_is_dns_label CHECK (mesh.is_dns_label(destination)),
  enabled     boolean NOT NULL DEFAULT true,`;
}

const TIMESTAMPS = `
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()`;

/** One enabled row per destination (and one mesh-wide default): a cluster is shared by all callers. */
function onePerDestination(table: string): string {
  return `CREATE UNIQUE INDEX ${table}_one_per_destination ON mesh.${table} (coalesce(destination, '')) WHERE enabled;`;
}

/** The status view of a table: its rows, then state/message/checked_at. */
function statusView(table: string, kind: string, columns: string): string {
  return `CREATE VIEW mesh.${table}_status AS
SELECT p.id, p.destination, p.enabled,
       CASE WHEN NOT p.enabled THEN 'disabled' ELSE coalesce(s.state, 'pending') END AS state,
       s.message, s.checked_at,
       ${columns},
       p.created_at, p.updated_at
  FROM mesh.${table} p
  LEFT JOIN mesh.rule_status s ON s.kind = '${kind}' AND s.rule_id = p.id::text;`;
}

const TABLES = [
  "load_balancing",
  "hash_policies",
  "color_routing",
  "connection_policies",
  "circuit_breakers",
  "outlier_detection",
  "health_checks",
  "tcp_routes",
  "tcp_route_destinations",
];
const KINDS = [
  "load_balancing",
  "hash_policy",
  "color_routing",
  "connection_policy",
  "circuit_breaker",
  "outlier_detection",
  "health_check",
  "tcp_route",
];

const sql = String.raw`
-- ---------------------------------------------------------------------------
-- Helpers.
-- ---------------------------------------------------------------------------

-- Maglev's lookup table size must be prime.
CREATE FUNCTION mesh.is_prime(n bigint) RETURNS boolean
  LANGUAGE sql IMMUTABLE STRICT
  AS $$ SELECT n >= 2 AND NOT EXISTS (
           SELECT 1 FROM generate_series(2::bigint, floor(sqrt(n))::bigint) AS d WHERE n % d = 0) $$;

-- ---------------------------------------------------------------------------
-- Load balancing: the algorithm of a service's clusters.
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.load_balancing (${destinationWide("load_balancing")}
  algorithm   text NOT NULL DEFAULT 'round_robin'
              CONSTRAINT load_balancing_algorithm_known
              CHECK (algorithm IN ('round_robin', 'least_request', 'random', 'ring_hash', 'maglev')),
  choice_count integer
              CONSTRAINT load_balancing_choice_count_range CHECK (choice_count BETWEEN 2 AND 100),
  ring_min_size integer
              CONSTRAINT load_balancing_ring_min_size_range CHECK (ring_min_size BETWEEN 1 AND 8388608),
  ring_max_size integer
              CONSTRAINT load_balancing_ring_max_size_range CHECK (ring_max_size BETWEEN 1 AND 8388608),
  maglev_table_size integer
              CONSTRAINT load_balancing_maglev_table_size_prime
              CHECK (maglev_table_size < 5000011 AND mesh.is_prime(maglev_table_size)),
  locality_weighted boolean NOT NULL DEFAULT false,
  panic_threshold_percent numeric(5, 2)
              CONSTRAINT load_balancing_panic_threshold_range CHECK (panic_threshold_percent BETWEEN 0 AND 100),
  slow_start_window_ms integer
              CONSTRAINT load_balancing_slow_start_window_positive CHECK (slow_start_window_ms > 0),
  slow_start_aggression double precision
              CONSTRAINT load_balancing_slow_start_aggression_positive CHECK (slow_start_aggression > 0),
  slow_start_min_weight_percent numeric(5, 2)
              CONSTRAINT load_balancing_slow_start_min_weight_range CHECK (slow_start_min_weight_percent BETWEEN 0 AND 100),${TIMESTAMPS},
  CONSTRAINT load_balancing_choice_count_needs_least_request CHECK (choice_count IS NULL OR algorithm = 'least_request'),
  CONSTRAINT load_balancing_ring_size_needs_ring_hash
    CHECK ((ring_min_size IS NULL AND ring_max_size IS NULL) OR algorithm = 'ring_hash'),
  CONSTRAINT load_balancing_ring_size_order CHECK (ring_min_size <= ring_max_size),
  CONSTRAINT load_balancing_maglev_table_needs_maglev CHECK (maglev_table_size IS NULL OR algorithm = 'maglev'),
  -- Envoy has slow start for round robin and least request only.
  CONSTRAINT load_balancing_slow_start_algorithm
    CHECK (slow_start_window_ms IS NULL OR algorithm IN ('round_robin', 'least_request')),
  CONSTRAINT load_balancing_slow_start_needs_window
    CHECK ((slow_start_aggression IS NULL AND slow_start_min_weight_percent IS NULL) OR slow_start_window_ms IS NOT NULL)
);
${onePerDestination("load_balancing")}

-- ---------------------------------------------------------------------------
-- Hash policies: what ring_hash / maglev hash a request on. Route-level in
-- Envoy, so scoped like route policies: destination-wide < source < route.
-- Every row is one entry; the entries of the most specific level that has any
-- apply, in position order.
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.hash_policies (
  id            bigserial PRIMARY KEY,
  destination   text NOT NULL
                CONSTRAINT hash_policies_destination_is_dns_label CHECK (mesh.is_dns_label(destination)),
  source        text
                CONSTRAINT hash_policies_source_is_dns_label CHECK (mesh.is_dns_label(source)),
  route_id      bigint REFERENCES mesh.http_routes (id) ON DELETE CASCADE,
  enabled       boolean NOT NULL DEFAULT true,
  position      integer NOT NULL DEFAULT 0,
  hash_on       text NOT NULL
                CONSTRAINT hash_policies_hash_on_known CHECK (hash_on IN ('header', 'cookie', 'source_ip', 'query_param')),
  name          text,
  cookie_ttl_ms integer
                CONSTRAINT hash_policies_cookie_ttl_not_negative CHECK (cookie_ttl_ms >= 0),
  cookie_path   text
                CONSTRAINT hash_policies_cookie_path_absolute CHECK (cookie_path LIKE '/%' AND cookie_path !~ '[\s;]'),
  terminal      boolean NOT NULL DEFAULT false,${TIMESTAMPS},
  -- A route already says which callers it applies to.
  CONSTRAINT hash_policies_route_or_source CHECK (route_id IS NULL OR source IS NULL),
  CONSTRAINT hash_policies_name_needed CHECK ((hash_on = 'source_ip') = (name IS NULL)),
  CONSTRAINT hash_policies_header_name_lower_case_token CHECK (hash_on <> 'header' OR name ~ ${LOWER_TOKEN}),
  CONSTRAINT hash_policies_name_token CHECK (hash_on NOT IN ('cookie', 'query_param') OR name ~ ${TOKEN}),
  CONSTRAINT hash_policies_cookie_options_need_cookie
    CHECK ((cookie_ttl_ms IS NULL AND cookie_path IS NULL) OR hash_on = 'cookie')
);
CREATE UNIQUE INDEX hash_policies_one_per_key
  ON mesh.hash_policies (destination, coalesce(source, ''), coalesce(route_id, 0), hash_on, coalesce(name, '')) WHERE enabled;
CREATE INDEX hash_policies_route_idx ON mesh.hash_policies (route_id);

-- ---------------------------------------------------------------------------
-- Color routing: requests carrying header = X go to instances labelled X.
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.color_routing (${destinationWide("color_routing")}
  header      text NOT NULL DEFAULT 'x-env'
              CONSTRAINT color_routing_header_lower_case_token CHECK (header ~ ${LOWER_TOKEN}),
  label       text NOT NULL DEFAULT 'color'
              CONSTRAINT color_routing_label_not_blank CHECK (label ~ '^\S+$'),${TIMESTAMPS},
  CONSTRAINT color_routing_header_not_host CHECK (header NOT IN ('host', 'te', 'content-type', 'content-length'))
);
${onePerDestination("color_routing")}

-- ---------------------------------------------------------------------------
-- Connection policies: timeouts and protocol options of the upstream connections.
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.connection_policies (${destinationWide("connection_policies")}
  connect_timeout_ms integer
              CONSTRAINT connection_policies_connect_timeout_positive CHECK (connect_timeout_ms > 0),
  idle_timeout_ms integer
              CONSTRAINT connection_policies_idle_timeout_not_negative CHECK (idle_timeout_ms >= 0),
  max_requests_per_connection integer
              CONSTRAINT connection_policies_max_requests_per_connection_positive CHECK (max_requests_per_connection > 0),
  http2_max_concurrent_streams integer
              CONSTRAINT connection_policies_http2_max_concurrent_streams_positive CHECK (http2_max_concurrent_streams > 0),
  websocket   boolean NOT NULL DEFAULT false,${TIMESTAMPS},
  CONSTRAINT connection_policies_sets_something CHECK (
    num_nonnulls(connect_timeout_ms, idle_timeout_ms, max_requests_per_connection, http2_max_concurrent_streams) > 0 OR websocket)
);
${onePerDestination("connection_policies")}

-- ---------------------------------------------------------------------------
-- Circuit breakers (Envoy's DEFAULT priority thresholds) and the retry budget.
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.circuit_breakers (${destinationWide("circuit_breakers")}
  max_connections      integer
                       CONSTRAINT circuit_breakers_max_connections_positive CHECK (max_connections > 0),
  max_pending_requests integer
                       CONSTRAINT circuit_breakers_max_pending_requests_positive CHECK (max_pending_requests > 0),
  max_requests         integer
                       CONSTRAINT circuit_breakers_max_requests_positive CHECK (max_requests > 0),
  max_retries          integer
                       CONSTRAINT circuit_breakers_max_retries_not_negative CHECK (max_retries >= 0),
  retry_budget_percent numeric(5, 2)
                       CONSTRAINT circuit_breakers_retry_budget_percent_range
                       CHECK (retry_budget_percent > 0 AND retry_budget_percent <= 100),
  retry_budget_min_concurrency integer
                       CONSTRAINT circuit_breakers_retry_budget_min_concurrency_not_negative
                       CHECK (retry_budget_min_concurrency >= 0),${TIMESTAMPS},
  CONSTRAINT circuit_breakers_sets_something CHECK (
    num_nonnulls(max_connections, max_pending_requests, max_requests, max_retries, retry_budget_percent) > 0),
  CONSTRAINT circuit_breakers_min_concurrency_needs_budget
    CHECK (retry_budget_min_concurrency IS NULL OR retry_budget_percent IS NOT NULL),
  -- Envoy ignores max_retries when a retry budget is set: say which one you mean.
  CONSTRAINT circuit_breakers_budget_or_max_retries CHECK (retry_budget_percent IS NULL OR max_retries IS NULL)
);
${onePerDestination("circuit_breakers")}

-- ---------------------------------------------------------------------------
-- Outlier detection: passive ejection of failing instances.
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.outlier_detection (${destinationWide("outlier_detection")}
  consecutive_5xx                   integer
                                    CONSTRAINT outlier_detection_consecutive_5xx_positive CHECK (consecutive_5xx > 0),
  consecutive_gateway_errors        integer
                                    CONSTRAINT outlier_detection_consecutive_gateway_errors_positive
                                    CHECK (consecutive_gateway_errors > 0),
  success_rate_stdev_factor         numeric(6, 3)
                                    CONSTRAINT outlier_detection_success_rate_stdev_factor_positive
                                    CHECK (success_rate_stdev_factor > 0),
  success_rate_minimum_hosts        integer
                                    CONSTRAINT outlier_detection_success_rate_minimum_hosts_positive
                                    CHECK (success_rate_minimum_hosts > 0),
  success_rate_request_volume       integer
                                    CONSTRAINT outlier_detection_success_rate_request_volume_positive
                                    CHECK (success_rate_request_volume > 0),
  failure_percentage_threshold      integer
                                    CONSTRAINT outlier_detection_failure_percentage_threshold_range
                                    CHECK (failure_percentage_threshold BETWEEN 0 AND 100),
  failure_percentage_minimum_hosts  integer
                                    CONSTRAINT outlier_detection_failure_percentage_minimum_hosts_positive
                                    CHECK (failure_percentage_minimum_hosts > 0),
  failure_percentage_request_volume integer
                                    CONSTRAINT outlier_detection_failure_percentage_request_volume_positive
                                    CHECK (failure_percentage_request_volume > 0),
  interval_ms                       integer NOT NULL DEFAULT 10000
                                    CONSTRAINT outlier_detection_interval_positive CHECK (interval_ms > 0),
  base_ejection_time_ms             integer NOT NULL DEFAULT 30000
                                    CONSTRAINT outlier_detection_base_ejection_time_positive CHECK (base_ejection_time_ms > 0),
  max_ejection_time_ms              integer
                                    CONSTRAINT outlier_detection_max_ejection_time_positive CHECK (max_ejection_time_ms > 0),
  max_ejection_percent              integer NOT NULL DEFAULT 10
                                    CONSTRAINT outlier_detection_max_ejection_percent_range
                                    CHECK (max_ejection_percent BETWEEN 0 AND 100),${TIMESTAMPS},
  CONSTRAINT outlier_detection_some_detector CHECK (
    num_nonnulls(consecutive_5xx, consecutive_gateway_errors, success_rate_stdev_factor, failure_percentage_threshold) > 0),
  CONSTRAINT outlier_detection_success_rate_options_need_factor CHECK (
    (success_rate_minimum_hosts IS NULL AND success_rate_request_volume IS NULL) OR success_rate_stdev_factor IS NOT NULL),
  CONSTRAINT outlier_detection_failure_percentage_options_need_threshold CHECK (
    (failure_percentage_minimum_hosts IS NULL AND failure_percentage_request_volume IS NULL)
    OR failure_percentage_threshold IS NOT NULL),
  CONSTRAINT outlier_detection_max_ejection_time_order CHECK (max_ejection_time_ms >= base_ejection_time_ms)
);
${onePerDestination("outlier_detection")}

-- ---------------------------------------------------------------------------
-- Active health checks (several per destination are allowed).
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.health_checks (
  id                  bigserial PRIMARY KEY,
  destination         text NOT NULL
                      CONSTRAINT health_checks_destination_is_dns_label CHECK (mesh.is_dns_label(destination)),
  enabled             boolean NOT NULL DEFAULT true,
  protocol            text NOT NULL
                      CONSTRAINT health_checks_protocol_known CHECK (protocol IN ('http', 'tcp', 'grpc')),
  interval_ms         integer NOT NULL DEFAULT 10000
                      CONSTRAINT health_checks_interval_positive CHECK (interval_ms > 0),
  timeout_ms          integer NOT NULL DEFAULT 1000
                      CONSTRAINT health_checks_timeout_positive CHECK (timeout_ms > 0),
  unhealthy_threshold integer NOT NULL DEFAULT 3
                      CONSTRAINT health_checks_unhealthy_threshold_positive CHECK (unhealthy_threshold > 0),
  healthy_threshold   integer NOT NULL DEFAULT 2
                      CONSTRAINT health_checks_healthy_threshold_positive CHECK (healthy_threshold > 0),
  path                text
                      CONSTRAINT health_checks_path_absolute CHECK (path LIKE '/%' AND path !~ '\s'),
  host                text
                      CONSTRAINT health_checks_host_valid
                      CHECK (host ~ '^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$'),
  expected_statuses   integer[]
                      CONSTRAINT health_checks_expected_statuses_range CHECK (
                        cardinality(expected_statuses) > 0
                        AND 100 <= ALL (expected_statuses) AND 599 >= ALL (expected_statuses)),
  send_hex            text
                      CONSTRAINT health_checks_send_hex CHECK (send_hex ~ '^([0-9A-Fa-f]{2})+$'),
  receive_hex         text
                      CONSTRAINT health_checks_receive_hex CHECK (receive_hex ~ '^([0-9A-Fa-f]{2})+$'),
  grpc_service_name   text,${TIMESTAMPS},
  CONSTRAINT health_checks_timeout_within_interval CHECK (timeout_ms <= interval_ms),
  CONSTRAINT health_checks_http_needs_path CHECK ((protocol = 'http') = (path IS NOT NULL)),
  CONSTRAINT health_checks_http_options_need_http
    CHECK (protocol = 'http' OR (host IS NULL AND expected_statuses IS NULL)),
  CONSTRAINT health_checks_payload_needs_tcp CHECK (protocol = 'tcp' OR (send_hex IS NULL AND receive_hex IS NULL)),
  CONSTRAINT health_checks_service_name_needs_grpc CHECK (protocol = 'grpc' OR grpc_service_name IS NULL)
);
CREATE INDEX health_checks_destination_idx ON mesh.health_checks (destination);

-- ---------------------------------------------------------------------------
-- TCP routes: a plain TCP service on a loopback port of the caller's sidecar.
-- ---------------------------------------------------------------------------

CREATE TABLE mesh.tcp_routes (
  id          bigserial PRIMARY KEY,
  destination text NOT NULL
              CONSTRAINT tcp_routes_destination_is_dns_label CHECK (mesh.is_dns_label(destination)),
  source      text
              CONSTRAINT tcp_routes_source_is_dns_label CHECK (mesh.is_dns_label(source)),
  local_port  integer NOT NULL
              CONSTRAINT tcp_routes_local_port_range CHECK (local_port BETWEEN 1 AND 65535),
  enabled     boolean NOT NULL DEFAULT true,${TIMESTAMPS}
);
-- One route per destination and caller scope: the source-specific one wins.
CREATE UNIQUE INDEX tcp_routes_one_per_scope ON mesh.tcp_routes (destination, coalesce(source, '')) WHERE enabled;

CREATE TABLE mesh.tcp_route_destinations (
  id         bigserial PRIMARY KEY,
  route_id   bigint NOT NULL REFERENCES mesh.tcp_routes (id) ON DELETE CASCADE,
  service    text NOT NULL
             CONSTRAINT tcp_route_destinations_service_is_dns_label CHECK (mesh.is_dns_label(service)),
  subset     text,
  weight     integer NOT NULL
             CONSTRAINT tcp_route_destinations_weight_not_negative CHECK (weight >= 0),${TIMESTAMPS},
  CONSTRAINT tcp_route_destinations_subset_fk FOREIGN KEY (service, subset)
    REFERENCES mesh.subsets (service, name) MATCH SIMPLE ON DELETE RESTRICT ON UPDATE CASCADE
);
CREATE UNIQUE INDEX tcp_route_destinations_unique
  ON mesh.tcp_route_destinations (route_id, service, coalesce(subset, ''));

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
    FROM unnest(kinds || ARRAY['http_route', 'subset', ${KINDS.map((k) => `'${k}'`).join(", ")}]) AS k;
  ALTER TABLE mesh.rule_status DROP CONSTRAINT IF EXISTS rule_status_kind_known;
  EXECUTE format('ALTER TABLE mesh.rule_status ADD CONSTRAINT rule_status_kind_known CHECK (kind IN (%s))',
                 (SELECT string_agg(quote_literal(k), ', ' ORDER BY k) FROM unnest(kinds) AS k));
END $$;

${statusView(
  "load_balancing",
  "load_balancing",
  "p.algorithm, p.choice_count, p.ring_min_size, p.ring_max_size, p.maglev_table_size, p.locality_weighted, " +
    "p.panic_threshold_percent, p.slow_start_window_ms, p.slow_start_aggression, p.slow_start_min_weight_percent",
)}

CREATE VIEW mesh.hash_policies_status AS
SELECT p.id, p.destination, p.source, p.route_id, p.enabled,
       CASE WHEN NOT p.enabled THEN 'disabled' ELSE coalesce(s.state, 'pending') END AS state,
       s.message, s.checked_at,
       p.position, p.hash_on, p.name, p.cookie_ttl_ms, p.cookie_path, p.terminal,
       p.created_at, p.updated_at
  FROM mesh.hash_policies p
  LEFT JOIN mesh.rule_status s ON s.kind = 'hash_policy' AND s.rule_id = p.id::text;

${statusView("color_routing", "color_routing", "p.header, p.label")}

${statusView(
  "connection_policies",
  "connection_policy",
  "p.connect_timeout_ms, p.idle_timeout_ms, p.max_requests_per_connection, p.http2_max_concurrent_streams, p.websocket",
)}

${statusView(
  "circuit_breakers",
  "circuit_breaker",
  "p.max_connections, p.max_pending_requests, p.max_requests, p.max_retries, p.retry_budget_percent, p.retry_budget_min_concurrency",
)}

${statusView(
  "outlier_detection",
  "outlier_detection",
  "p.consecutive_5xx, p.consecutive_gateway_errors, p.success_rate_stdev_factor, p.success_rate_minimum_hosts, " +
    "p.success_rate_request_volume, p.failure_percentage_threshold, p.failure_percentage_minimum_hosts, " +
    "p.failure_percentage_request_volume, p.interval_ms, p.base_ejection_time_ms, p.max_ejection_time_ms, p.max_ejection_percent",
)}

${statusView(
  "health_checks",
  "health_check",
  "p.protocol, p.interval_ms, p.timeout_ms, p.unhealthy_threshold, p.healthy_threshold, p.path, p.host, " +
    "p.expected_statuses, p.send_hex, p.receive_hex, p.grpc_service_name",
)}

CREATE VIEW mesh.tcp_routes_status AS
SELECT r.id, r.destination, r.source, r.local_port, r.enabled,
       CASE WHEN NOT r.enabled THEN 'disabled' ELSE coalesce(s.state, 'pending') END AS state,
       s.message, s.checked_at,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('service', d.service, 'subset', d.subset, 'weight', d.weight)
                                  ORDER BY d.id), '[]'::jsonb)
          FROM mesh.tcp_route_destinations d WHERE d.route_id = r.id) AS destinations,
       r.created_at, r.updated_at
  FROM mesh.tcp_routes r
  LEFT JOIN mesh.rule_status s ON s.kind = 'tcp_route' AND s.rule_id = r.id::text;

-- ---------------------------------------------------------------------------
-- Triggers, as in 0001: updated_at, and revision bump + NOTIFY on every write.
-- ---------------------------------------------------------------------------

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY[${TABLES.map((t) => `'${t}'`).join(", ")}] LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON mesh.%I FOR EACH ROW EXECUTE FUNCTION mesh.touch_updated_at()',
                   t || '_touch_updated_at', t);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mesh.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_change()',
                   t || '_note_change', t);
  END LOOP;
END $$;
`;

export const migration0003: Migration = { version: 3, name: "cluster_policies", sql };
