import { toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Proxy } from "../../src/model/proxy.ts";
import { SCHEMAS } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { envoyRegistry } from "../../src/validate/pgv.ts";
import { startMesh, type E2eMesh } from "../e2e/harness.ts";

/**
 * The corpus of bad cluster-side rules (migration 0003), each with the exact
 * error its author sees: the database's refusal of the statement (a CHECK,
 * unique or foreign key constraint), or, for rows that are valid SQL but wrong
 * for the mesh, the message Signalbox writes back to mesh.rule_status and the
 * `<table>_status` views. Every refused or rejected rule leaves the good rules
 * in force. Runs a real Signalbox on a real PostgreSQL.
 */

let mesh: E2eMesh;

beforeAll(async () => {
  mesh = await startMesh();
  await mesh.sql.query(`
    INSERT INTO mesh.services (name, protocol, port) VALUES
      ('frontend', 'http', 80), ('reviews', 'http', 9080), ('ratings', 'grpc', 50051),
      ('sticky', 'grpc', 50051), ('db', 'tcp', 5432), ('cache', 'tcp', 6379);
    INSERT INTO mesh.instances (id, service, address, port, labels) VALUES
      ('frontend-1', 'frontend', '10.0.0.1', 8080, '{}'),
      ('reviews-1', 'reviews', '10.0.1.1', 9080, '{}'),
      ('ratings-1', 'ratings', '10.0.2.1', 50051, '{}'),
      ('sticky-1', 'sticky', '10.0.3.1', 50051, '{}'),
      ('db-1', 'db', '10.0.4.1', 5432, '{"role": "primary"}'),
      ('cache-1', 'cache', '10.0.5.1', 6379, '{}');
    INSERT INTO mesh.subsets (service, name, selector) VALUES ('db', 'primary', '{"role": "primary"}');
    INSERT INTO mesh.http_routes (id, destination, path_match, path) VALUES (900, 'ratings', 'prefix', '/top');
    INSERT INTO mesh.http_routes (id, destination, enabled) VALUES (901, 'sticky', false);
  `);
});

afterAll(async () => {
  await mesh?.close();
});

/** Statements the database refuses, with the error message PostgreSQL returns. */
const REFUSED: { name: string; sql: string; error: string }[] = [
  {
    name: "unknown load balancing algorithm",
    sql: `INSERT INTO mesh.load_balancing (destination, algorithm) VALUES ('reviews', 'least_conn')`,
    error: `new row for relation "load_balancing" violates check constraint "load_balancing_algorithm_known"`,
  },
  {
    name: "destination that is not a DNS label",
    sql: `INSERT INTO mesh.load_balancing (destination, algorithm) VALUES ('Reviews', 'random')`,
    error: `new row for relation "load_balancing" violates check constraint "load_balancing_destination_is_dns_label"`,
  },
  {
    name: "choice_count without least_request",
    sql: `INSERT INTO mesh.load_balancing (destination, algorithm, choice_count) VALUES ('reviews', 'round_robin', 3)`,
    error: `new row for relation "load_balancing" violates check constraint "load_balancing_choice_count_needs_least_request"`,
  },
  {
    name: "ring bigger at the minimum than at the maximum",
    sql: `INSERT INTO mesh.load_balancing (destination, algorithm, ring_min_size, ring_max_size) VALUES ('sticky', 'ring_hash', 4096, 1024)`,
    error: `new row for relation "load_balancing" violates check constraint "load_balancing_ring_size_order"`,
  },
  {
    name: "maglev table size that is not prime",
    sql: `INSERT INTO mesh.load_balancing (destination, algorithm, maglev_table_size) VALUES ('sticky', 'maglev', 65536)`,
    error: `new row for relation "load_balancing" violates check constraint "load_balancing_maglev_table_size_prime"`,
  },
  {
    name: "slow start with ring_hash (Envoy has it for round robin and least request only)",
    sql: `INSERT INTO mesh.load_balancing (destination, algorithm, slow_start_window_ms) VALUES ('sticky', 'ring_hash', 30000)`,
    error: `new row for relation "load_balancing" violates check constraint "load_balancing_slow_start_algorithm"`,
  },
  {
    name: "slow start aggression without a window",
    sql: `INSERT INTO mesh.load_balancing (destination, slow_start_aggression) VALUES ('reviews', 2.0)`,
    error: `new row for relation "load_balancing" violates check constraint "load_balancing_slow_start_needs_window"`,
  },
  {
    name: "a second enabled load balancing row for one destination",
    sql: `INSERT INTO mesh.load_balancing (destination, algorithm) VALUES ('frontend', 'random'), ('frontend', 'least_request')`,
    error: `duplicate key value violates unique constraint "load_balancing_one_per_destination"`,
  },
  {
    name: "hash on an upper-case header name",
    sql: `INSERT INTO mesh.hash_policies (destination, hash_on, name) VALUES ('sticky', 'header', 'X-User')`,
    error: `new row for relation "hash_policies" violates check constraint "hash_policies_header_name_lower_case_token"`,
  },
  {
    name: "hash on source_ip with a name",
    sql: `INSERT INTO mesh.hash_policies (destination, hash_on, name) VALUES ('sticky', 'source_ip', 'x-user')`,
    error: `new row for relation "hash_policies" violates check constraint "hash_policies_name_needed"`,
  },
  {
    name: "hash policy for a route and a source at once",
    sql: `INSERT INTO mesh.hash_policies (destination, source, route_id, hash_on, name) VALUES ('ratings', 'frontend', 900, 'header', 'x-user')`,
    error: `new row for relation "hash_policies" violates check constraint "hash_policies_route_or_source"`,
  },
  {
    name: "hash policy for a route that does not exist",
    sql: `INSERT INTO mesh.hash_policies (destination, route_id, hash_on, name) VALUES ('ratings', 424242, 'header', 'x-user')`,
    error: `insert or update on table "hash_policies" violates foreign key constraint "hash_policies_route_id_fkey"`,
  },
  {
    name: "cookie options on a header hash",
    sql: `INSERT INTO mesh.hash_policies (destination, hash_on, name, cookie_ttl_ms) VALUES ('sticky', 'header', 'x-user', 1000)`,
    error: `new row for relation "hash_policies" violates check constraint "hash_policies_cookie_options_need_cookie"`,
  },
  {
    name: "color header with upper case",
    sql: `INSERT INTO mesh.color_routing (destination, header) VALUES ('reviews', 'X-Env')`,
    error: `new row for relation "color_routing" violates check constraint "color_routing_header_lower_case_token"`,
  },
  {
    name: "color header that is the Host header",
    sql: `INSERT INTO mesh.color_routing (destination, header) VALUES ('reviews', 'host')`,
    error: `new row for relation "color_routing" violates check constraint "color_routing_header_not_host"`,
  },
  {
    name: "connection policy that sets nothing",
    sql: `INSERT INTO mesh.connection_policies (destination) VALUES ('reviews')`,
    error: `new row for relation "connection_policies" violates check constraint "connection_policies_sets_something"`,
  },
  {
    name: "connect timeout of 0",
    sql: `INSERT INTO mesh.connection_policies (destination, connect_timeout_ms) VALUES ('reviews', 0)`,
    error: `new row for relation "connection_policies" violates check constraint "connection_policies_connect_timeout_positive"`,
  },
  {
    name: "retry budget and max_retries together (Envoy ignores max_retries then)",
    sql: `INSERT INTO mesh.circuit_breakers (destination, max_retries, retry_budget_percent) VALUES ('reviews', 3, 20)`,
    error: `new row for relation "circuit_breakers" violates check constraint "circuit_breakers_budget_or_max_retries"`,
  },
  {
    name: "retry budget of 0%",
    sql: `INSERT INTO mesh.circuit_breakers (destination, retry_budget_percent) VALUES ('reviews', 0)`,
    error: `new row for relation "circuit_breakers" violates check constraint "circuit_breakers_retry_budget_percent_range"`,
  },
  {
    name: "retry budget minimum concurrency without a budget",
    sql: `INSERT INTO mesh.circuit_breakers (destination, max_requests, retry_budget_min_concurrency) VALUES ('reviews', 100, 3)`,
    error: `new row for relation "circuit_breakers" violates check constraint "circuit_breakers_min_concurrency_needs_budget"`,
  },
  {
    name: "outlier detection without any detector",
    sql: `INSERT INTO mesh.outlier_detection (destination, interval_ms) VALUES ('reviews', 1000)`,
    error: `new row for relation "outlier_detection" violates check constraint "outlier_detection_some_detector"`,
  },
  {
    name: "maximum ejection time below the base ejection time",
    sql: `INSERT INTO mesh.outlier_detection (destination, consecutive_5xx, base_ejection_time_ms, max_ejection_time_ms) VALUES ('reviews', 5, 30000, 10000)`,
    error: `new row for relation "outlier_detection" violates check constraint "outlier_detection_max_ejection_time_order"`,
  },
  {
    name: "ejecting more than 100% of the instances",
    sql: `INSERT INTO mesh.outlier_detection (destination, consecutive_5xx, max_ejection_percent) VALUES ('reviews', 5, 150)`,
    error: `new row for relation "outlier_detection" violates check constraint "outlier_detection_max_ejection_percent_range"`,
  },
  {
    name: "failure percentage options without a threshold",
    sql: `INSERT INTO mesh.outlier_detection (destination, consecutive_5xx, failure_percentage_request_volume) VALUES ('reviews', 5, 50)`,
    error: `new row for relation "outlier_detection" violates check constraint "outlier_detection_failure_percentage_options_need_threshold"`,
  },
  {
    name: "HTTP health check without a path",
    sql: `INSERT INTO mesh.health_checks (destination, protocol) VALUES ('reviews', 'http')`,
    error: `new row for relation "health_checks" violates check constraint "health_checks_http_needs_path"`,
  },
  {
    name: "health check timeout longer than its interval",
    sql: `INSERT INTO mesh.health_checks (destination, protocol, path, interval_ms, timeout_ms) VALUES ('reviews', 'http', '/healthz', 1000, 5000)`,
    error: `new row for relation "health_checks" violates check constraint "health_checks_timeout_within_interval"`,
  },
  {
    name: "TCP health check payload that is not hex",
    sql: `INSERT INTO mesh.health_checks (destination, protocol, send_hex) VALUES ('db', 'tcp', 'PING')`,
    error: `new row for relation "health_checks" violates check constraint "health_checks_send_hex"`,
  },
  {
    name: "expected status outside 100..599",
    sql: `INSERT INTO mesh.health_checks (destination, protocol, path, expected_statuses) VALUES ('reviews', 'http', '/healthz', '{200,700}')`,
    error: `new row for relation "health_checks" violates check constraint "health_checks_expected_statuses_range"`,
  },
  {
    name: "TCP route on a port that does not exist",
    sql: `INSERT INTO mesh.tcp_routes (destination, local_port) VALUES ('db', 70000)`,
    error: `new row for relation "tcp_routes" violates check constraint "tcp_routes_local_port_range"`,
  },
  {
    name: "TCP route destination subset that is not defined",
    sql: `WITH r AS (INSERT INTO mesh.tcp_routes (destination, local_port) VALUES ('db', 6000) RETURNING id)
          INSERT INTO mesh.tcp_route_destinations (route_id, service, subset, weight) SELECT id, 'db', 'replica', 1 FROM r`,
    error: `insert or update on table "tcp_route_destinations" violates foreign key constraint "tcp_route_destinations_subset_fk"`,
  },
];

/** Rows the database takes but Signalbox rejects, with the message written back (`%` = the row's id). */
const REJECTED: { name: string; view: string; sql: string; message: string }[] = [
  {
    name: "load balancing for a service nobody knows",
    view: "load_balancing_status",
    sql: `INSERT INTO mesh.load_balancing (destination, algorithm) VALUES ('nosuch', 'random') RETURNING id`,
    message: `load balancing %: destination service "nosuch" is not in the registry`,
  },
  {
    name: "hash policy for a round-robin service",
    view: "hash_policies_status",
    sql: `INSERT INTO mesh.hash_policies (destination, hash_on, name) VALUES ('reviews', 'header', 'x-user') RETURNING id`,
    message: `hash policy %: hash policies only matter to ring_hash and maglev, but "reviews" is balanced with round_robin (set mesh.load_balancing.algorithm)`,
  },
  {
    name: "hash policy whose route governs another service",
    view: "hash_policies_status",
    sql: `INSERT INTO mesh.hash_policies (destination, route_id, hash_on, name) VALUES ('sticky', 900, 'header', 'x-user') RETURNING id`,
    message: `hash policy %: its route 900 governs "ratings", not "sticky"`,
  },
  {
    name: "hash policy of a disabled route",
    view: "hash_policies_status",
    sql: `INSERT INTO mesh.hash_policies (destination, route_id, hash_on, name) VALUES ('sticky', 901, 'header', 'x-user') RETURNING id`,
    message: `hash policy %: its route 901 is disabled`,
  },
  {
    name: "hash policy for a caller nobody knows",
    view: "hash_policies_status",
    sql: `INSERT INTO mesh.hash_policies (destination, source, hash_on, name) VALUES ('sticky', 'ghost', 'header', 'x-user') RETURNING id`,
    message: `hash policy %: source service "ghost" is not in the registry`,
  },
  {
    name: "a TCP service hashed on a header",
    view: "hash_policies_status",
    sql: `INSERT INTO mesh.hash_policies (destination, hash_on, name) VALUES ('db', 'header', 'x-user') RETURNING id`,
    message: `hash policy %: "db" speaks tcp: a TCP connection can only be hashed on source_ip`,
  },
  {
    name: "color routing for a TCP service",
    view: "color_routing_status",
    sql: `INSERT INTO mesh.color_routing (destination) VALUES ('db') RETURNING id`,
    message: `color routing %: color routing matches a request header, but "db" speaks tcp`,
  },
  {
    name: "WebSocket on a gRPC service",
    view: "connection_policies_status",
    sql: `INSERT INTO mesh.connection_policies (destination, websocket) VALUES ('ratings', true) RETURNING id`,
    message: `connection policy %: websocket needs an HTTP/1.1 service, but "ratings" speaks grpc`,
  },
  {
    name: "HTTP/2 stream limit on an HTTP/1.1 service",
    view: "connection_policies_status",
    sql: `INSERT INTO mesh.connection_policies (destination, http2_max_concurrent_streams) VALUES ('reviews', 100) RETURNING id`,
    message: `connection policy %: http2_max_concurrent_streams applies to http2 and grpc services, but "reviews" speaks http`,
  },
  {
    name: "requests per connection on a TCP service",
    view: "connection_policies_status",
    sql: `INSERT INTO mesh.connection_policies (destination, max_requests_per_connection) VALUES ('cache', 100) RETURNING id`,
    message: `connection policy %: max_requests_per_connection counts HTTP requests, but "cache" speaks tcp`,
  },
  {
    name: "circuit breaker for a service nobody knows",
    view: "circuit_breakers_status",
    sql: `INSERT INTO mesh.circuit_breakers (destination, max_requests) VALUES ('nosuch', 10) RETURNING id`,
    message: `circuit breaker %: destination service "nosuch" is not in the registry`,
  },
  {
    name: "outlier detection that may eject nobody",
    view: "outlier_detection_status",
    sql: `INSERT INTO mesh.outlier_detection (destination, consecutive_5xx, max_ejection_percent) VALUES ('reviews', 5, 0) RETURNING id`,
    message: `outlier detection %: max_ejection_percent 0 lets no instance be ejected, so the detectors would do nothing; disable the row instead`,
  },
  {
    name: "HTTP health check of a TCP service",
    view: "health_checks_status",
    sql: `INSERT INTO mesh.health_checks (destination, protocol, path) VALUES ('db', 'http', '/healthz') RETURNING id`,
    message: `health check %: "db" speaks tcp; use a tcp health check`,
  },
  {
    name: "gRPC health check of an HTTP service",
    view: "health_checks_status",
    sql: `INSERT INTO mesh.health_checks (destination, protocol) VALUES ('reviews', 'grpc') RETURNING id`,
    message: `health check %: a grpc health check calls grpc.health.v1.Health/Check, but "reviews" speaks http`,
  },
  {
    name: "TCP route to an HTTP service",
    view: "tcp_routes_status",
    sql: `INSERT INTO mesh.tcp_routes (destination, local_port) VALUES ('reviews', 9080) RETURNING id`,
    message: `tcp route %: "reviews" speaks http; TCP routes are for tcp services (route HTTP with mesh.http_routes)`,
  },
  {
    name: "TCP route on the sidecar's outbound HTTP port",
    view: "tcp_routes_status",
    sql: `INSERT INTO mesh.tcp_routes (destination, local_port) VALUES ('cache', 15001) RETURNING id`,
    message: `tcp route %: local_port 15001 is the sidecar's outbound HTTP port`,
  },
  {
    name: "TCP route whose weights sum to 0",
    view: "tcp_routes_status",
    sql: `WITH r AS (INSERT INTO mesh.tcp_routes (destination, source, local_port) VALUES ('db', 'reviews', 5432) RETURNING id)
          INSERT INTO mesh.tcp_route_destinations (route_id, service, subset, weight) SELECT id, 'db', 'primary', 0 FROM r RETURNING route_id AS id`,
    message: `tcp route %: destination weights sum to 0; at least one weight must be positive`,
  },
  {
    name: "TCP route splitting to an HTTP service",
    view: "tcp_routes_status",
    sql: `WITH r AS (INSERT INTO mesh.tcp_routes (destination, source, local_port) VALUES ('db', 'ratings', 5432) RETURNING id)
          INSERT INTO mesh.tcp_route_destinations (route_id, service, weight) SELECT id, 'reviews', 1 FROM r RETURNING route_id AS id`,
    message: `tcp route %: destination "reviews" speaks http, not tcp`,
  },
  {
    name: "TCP route for a caller nobody knows",
    view: "tcp_routes_status",
    sql: `INSERT INTO mesh.tcp_routes (destination, source, local_port) VALUES ('cache', 'ghost', 6379) RETURNING id`,
    message: `tcp route %: source service "ghost" is not in the registry`,
  },
  {
    name: "TCP route on a local port another destination already uses",
    view: "tcp_routes_status",
    sql: `INSERT INTO mesh.tcp_routes (destination, source, local_port) VALUES ('cache', 'frontend', 5432) RETURNING id`,
    message: `tcp route %: local_port 5432 is already taken by tcp route $GOOD_DB (destination "db") for callers from "frontend"`,
  },
];

describe("bad cluster-side rules", () => {
  it("has a corpus of at least 16 bad rules", () => {
    expect(REFUSED.length + REJECTED.length).toBeGreaterThanOrEqual(16);
  });

  it.each(REFUSED)("the database refuses: $name", async ({ sql, error }) => {
    await expect(mesh.sql.query(sql)).rejects.toThrow(error);
  });

  describe("Signalbox rejects what is valid SQL but wrong for the mesh, and keeps the rest in force", () => {
    const ids = new Map<string, string>();
    let goodDb = "";
    let goodLb = "";

    beforeAll(async () => {
      // Good rules, written first and in force throughout.
      goodLb = (await mesh.sql.query<{ id: string }>(
        `INSERT INTO mesh.load_balancing (destination, algorithm) VALUES ('sticky', 'ring_hash') RETURNING id::text AS id`,
      )).rows[0]!.id;
      await mesh.sql.query(`INSERT INTO mesh.hash_policies (destination, hash_on, name) VALUES ('sticky', 'header', 'x-user')`);
      await mesh.sql.query(`INSERT INTO mesh.load_balancing (destination, algorithm) VALUES ('db', 'ring_hash')`);
      goodDb = (await mesh.sql.query<{ id: string }>(
        `INSERT INTO mesh.tcp_routes (destination, local_port) VALUES ('db', 5432) RETURNING id::text AS id`,
      )).rows[0]!.id;
      for (const bad of REJECTED) {
        const { rows } = await mesh.sql.query<{ id: string }>(bad.sql);
        ids.set(bad.name, String(rows[0]!.id));
      }
    });

    it.each(REJECTED)("$name", async ({ name, view, message }) => {
      const id = ids.get(name)!;
      const expected = message.replace("%", id).replace("$GOOD_DB", goodDb);
      const deadline = performance.now() + 5000;
      let row: { state: string; message: string | null } | undefined;
      while (performance.now() < deadline) {
        row = (await mesh.sql.query<{ state: string; message: string | null }>(`SELECT state, message FROM mesh.${view} WHERE id = $1`, [id])).rows[0];
        if (row?.state === "rejected" && row.message === expected) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(row).toEqual({ state: "rejected", message: expected });
    });

    it("the good rules are accepted and reach the proxies", async () => {
      const status = async (view: string, id: string) =>
        (await mesh.sql.query<{ state: string }>(`SELECT state FROM mesh.${view} WHERE id = $1`, [id])).rows[0]?.state;
      expect(await status("load_balancing_status", goodLb)).toBe("accepted");
      expect(await status("tcp_routes_status", goodDb)).toBe("accepted");
      const snapshot = mesh.signalbox.pipeline.currentSnapshot()!;
      const sidecar: Proxy = { id: "f-1", service: "frontend", kind: "envoy", inboundPort: null, appPort: null, outboundPort: 15001, userAgent: "envoy" };
      const resources = translate(snapshot, sidecar);
      const registry = envoyRegistry();
      const cluster = toJson(SCHEMAS.cluster, resources.cluster.get("outbound|sticky")!, { registry }) as { lbPolicy?: string };
      expect(cluster.lbPolicy).toBe("RING_HASH");
      expect(resources.listener.has("outbound|tcp|5432")).toBe(true);
      // Nothing of the rejected rows reached the proxy.
      expect(resources.listener.has("outbound|tcp|15001")).toBe(false);
      expect(resources.listener.has("outbound|tcp|9080")).toBe(false);
      expect(toJson(SCHEMAS.cluster, resources.cluster.get("outbound|reviews")!, { registry })).not.toHaveProperty("outlierDetection");
    });
  });
});
