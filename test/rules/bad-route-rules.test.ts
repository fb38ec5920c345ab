import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type E2eMesh } from "../e2e/harness.ts";

/**
 * The corpus of bad route-side rules (docs/rules-route.md): each one is either
 * refused by the database (the exact error the author's SQL client shows) or
 * accepted by SQL but rejected by Signalbox (the exact message the author reads
 * back from the table's `_status` view). Rejected rules never reach a proxy and
 * leave every other rule in force: checked at the end on the live snapshot.
 */
let mesh: E2eMesh;

const REGISTRY = `
INSERT INTO mesh.services (name, protocol, port) VALUES
  ('web', 'http', 8080), ('api', 'grpc', 9090), ('legacy', 'http', 80), ('db', 'tcp', 5432), ('shadow', 'http', 8080);
INSERT INTO mesh.instances (id, service, address, port, mesh_port, labels) VALUES
  ('web-1', 'web', '10.0.0.1', 8080, 15006, '{"version": "v1"}'),
  ('api-1', 'api', '10.0.0.2', 9090, 15006, '{}'),
  ('legacy-1', 'legacy', '10.0.0.3', 80, NULL, '{}'),
  ('db-1', 'db', '10.0.0.4', 5432, NULL, '{}'),
  ('shadow-1', 'shadow', '10.0.0.5', 8080, NULL, '{}');
INSERT INTO mesh.subsets (service, name, selector) VALUES
  ('web', 'v1', '{"version": "v1"}'), ('web', 'ghost', '{"version": "v9"}');
`;

beforeAll(async () => {
  mesh = await startMesh();
  await mesh.sql.query(REGISTRY);
});

afterAll(async () => {
  await mesh?.close();
});

async function insertRoute(sql: string, params: unknown[] = []): Promise<string> {
  const { rows } = await mesh.sql.query<{ id: string }>(sql, params);
  const id = rows[0]?.id;
  if (id === undefined) throw new Error(`no id from ${sql}`);
  return String(id);
}

/** A plain route to `destination` (no conditions), for extensions and route-specific policies. */
const route = (destination: string, extra = ""): Promise<string> =>
  insertRoute(`INSERT INTO mesh.http_routes (destination${extra ? ", path_match, path" : ""}) VALUES ($1${extra ? `, ${extra}` : ""}) RETURNING id`, [destination]);

/** What the author reads back: waits until Signalbox has looked at the row. */
async function statusOf(view: string, where: string, params: unknown[]): Promise<{ state: string; message: string | null }> {
  const deadline = performance.now() + 5000;
  for (;;) {
    const { rows } = await mesh.sql.query<{ state: string; message: string | null }>(
      `SELECT state, message FROM mesh.${view} WHERE ${where}`,
      params,
    );
    const row = rows[0];
    if (row && row.state !== "pending") return row;
    if (performance.now() > deadline) throw new Error(`${view} row still ${row?.state ?? "missing"} after 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function refusal(sql: string, params: unknown[] = []): Promise<string> {
  return mesh.sql.query(sql, params).then(
    () => "(accepted)",
    (err: Error) => err.message,
  );
}

const corpus = { refused: 0, rejected: 0 };

describe("bad route rules the database refuses (the error the author sees)", () => {
  const cases: [string, string, string][] = [
    [
      "abort percentage over 100",
      `INSERT INTO mesh.fault_policies (destination, abort_http_status, abort_percent) VALUES ('web', 503, 150)`,
      'new row for relation "fault_policies" violates check constraint "fault_policies_abort_percent_range"',
    ],
    [
      "abort percentage without a status",
      `INSERT INTO mesh.fault_policies (destination, abort_percent) VALUES ('web', 10)`,
      'new row for relation "fault_policies" violates check constraint "fault_policies_abort_pair"',
    ],
    [
      "delay without a percentage",
      `INSERT INTO mesh.fault_policies (destination, delay_ms) VALUES ('web', 100)`,
      'new row for relation "fault_policies" violates check constraint "fault_policies_delay_pair"',
    ],
    [
      "gRPC status 0 (OK) as an abort",
      `INSERT INTO mesh.fault_policies (destination, abort_grpc_status, abort_percent) VALUES ('api', 0, 10)`,
      'new row for relation "fault_policies" violates check constraint "fault_policies_abort_grpc_status_range"',
    ],
    [
      "kill switch with HTTP status 600",
      `INSERT INTO mesh.drop_policies (destination, http_status) VALUES ('web', 600)`,
      'new row for relation "drop_policies" violates check constraint "drop_policies_http_status_range"',
    ],
    [
      "misspelled retry condition",
      `INSERT INTO mesh.retry_policies (destination, retry_on, num_retries) VALUES ('web', '{5xx,conect-failure}', 2)`,
      'new row for relation "retry_policies" violates check constraint "retry_policies_retry_on_known"',
    ],
    [
      "retries with no condition",
      `INSERT INTO mesh.retry_policies (destination, num_retries) VALUES ('web', 2)`,
      'new row for relation "retry_policies" violates check constraint "retry_policies_retry_on_something"',
    ],
    [
      "11 retries",
      `INSERT INTO mesh.retry_policies (destination, retry_on, num_retries) VALUES ('web', '{5xx}', 11)`,
      'new row for relation "retry_policies" violates check constraint "retry_policies_num_retries_range"',
    ],
    [
      "backoff maximum below its base",
      `INSERT INTO mesh.retry_policies (destination, retry_on, backoff_base_ms, backoff_max_ms) VALUES ('web', '{5xx}', 100, 50)`,
      'new row for relation "retry_policies" violates check constraint "retry_policies_backoff_order"',
    ],
    [
      "hedging without a per-try timeout",
      `INSERT INTO mesh.retry_policies (destination, retry_on, hedge_on_per_try_timeout) VALUES ('web', '{5xx}', true)`,
      'new row for relation "retry_policies" violates check constraint "retry_policies_hedge_needs_per_try_timeout"',
    ],
    [
      "retriable status code 700",
      `INSERT INTO mesh.retry_policies (destination, retriable_status_codes) VALUES ('web', '{503,700}')`,
      'new row for relation "retry_policies" violates check constraint "retry_policies_status_codes_range"',
    ],
    [
      "negative timeout",
      `INSERT INTO mesh.timeout_policies (destination, timeout_ms) VALUES ('web', -1)`,
      'new row for relation "timeout_policies" violates check constraint "timeout_policies_timeout_not_negative"',
    ],
    [
      "timeout policy that sets nothing",
      `INSERT INTO mesh.timeout_policies (destination) VALUES ('web')`,
      'new row for relation "timeout_policies" violates check constraint "timeout_policies_sets_something"',
    ],
    [
      "rate limit refilled every 10 ms",
      `INSERT INTO mesh.rate_limit_policies (destination, max_tokens, fill_interval_ms) VALUES ('web', 10, 10)`,
      'new row for relation "rate_limit_policies" violates check constraint "rate_limit_policies_fill_interval_min"',
    ],
    [
      "rate limit with an empty bucket",
      `INSERT INTO mesh.rate_limit_policies (destination, max_tokens, fill_interval_ms) VALUES ('web', 0, 1000)`,
      'new row for relation "rate_limit_policies" violates check constraint "rate_limit_policies_max_tokens_positive"',
    ],
    [
      "source that is not a DNS label",
      `INSERT INTO mesh.drop_policies (destination, source) VALUES ('web', 'Web_1')`,
      'new row for relation "drop_policies" violates check constraint "drop_policies_source_is_dns_label"',
    ],
    [
      "header edit of Host",
      `INSERT INTO mesh.http_route_header_edits (route_id, direction, name, value)
       SELECT id, 'request', 'host', 'evil' FROM mesh.http_routes LIMIT 1`,
      'new row for relation "http_route_header_edits" violates check constraint "http_route_header_edits_name_not_host"',
    ],
    [
      "header edit with an upper-case name",
      `INSERT INTO mesh.http_route_header_edits (route_id, direction, name, value)
       SELECT id, 'request', 'X-Team', 'a' FROM mesh.http_routes LIMIT 1`,
      'new row for relation "http_route_header_edits" violates check constraint "http_route_header_edits_name_lower_case_token"',
    ],
    [
      "header set without a value",
      `INSERT INTO mesh.http_route_header_edits (route_id, direction, action, name)
       SELECT id, 'response', 'set', 'x-served-by' FROM mesh.http_routes LIMIT 1`,
      'new row for relation "http_route_header_edits" violates check constraint "http_route_header_edits_value_pair"',
    ],
    [
      "redirect with code 305",
      `INSERT INTO mesh.http_route_redirects (route_id, scheme, response_code) SELECT id, 'https', 305 FROM mesh.http_routes LIMIT 1`,
      'new row for relation "http_route_redirects" violates check constraint "http_route_redirects_response_code_known"',
    ],
    [
      "redirect with both a path and a prefix",
      `INSERT INTO mesh.http_route_redirects (route_id, path, prefix) SELECT id, '/a', '/b' FROM mesh.http_routes LIMIT 1`,
      'new row for relation "http_route_redirects" violates check constraint "http_route_redirects_path_or_prefix"',
    ],
    [
      "redirect that changes nothing",
      `INSERT INTO mesh.http_route_redirects (route_id) SELECT id FROM mesh.http_routes LIMIT 1`,
      'new row for relation "http_route_redirects" violates check constraint "http_route_redirects_redirect_somewhere"',
    ],
    [
      "direct response body over 4 KiB",
      `INSERT INTO mesh.http_route_direct_responses (route_id, status, body) SELECT id, 200, repeat('x', 5000) FROM mesh.http_routes LIMIT 1`,
      'new row for relation "http_route_direct_responses" violates check constraint "http_route_direct_responses_body_size"',
    ],
    [
      "relative prefix rewrite",
      `INSERT INTO mesh.http_route_rewrites (route_id, prefix) SELECT id, 'v2/' FROM mesh.http_routes LIMIT 1`,
      'new row for relation "http_route_rewrites" violates check constraint "http_route_rewrites_prefix_absolute"',
    ],
    [
      "mirror to a subset that does not exist",
      `INSERT INTO mesh.http_route_mirrors (route_id, service, subset) SELECT id, 'web', 'v7' FROM mesh.http_routes LIMIT 1`,
      'insert or update on table "http_route_mirrors" violates foreign key constraint "http_route_mirrors_subset_fk"',
    ],
    [
      "mirror of 0% of requests",
      `INSERT INTO mesh.http_route_mirrors (route_id, service, percent) SELECT id, 'shadow', 0 FROM mesh.http_routes LIMIT 1`,
      'new row for relation "http_route_mirrors" violates check constraint "http_route_mirrors_percent_range"',
    ],
    [
      "policy narrowed to both a source and a route",
      `INSERT INTO mesh.timeout_policies (destination, source, route_id, timeout_ms)
       SELECT destination, 'api', id, 100 FROM mesh.http_routes WHERE destination = 'web' LIMIT 1`,
      'new row for relation "timeout_policies" violates check constraint "timeout_policies_route_or_source"',
    ],
    [
      "route-specific policy naming another destination than its route's",
      `INSERT INTO mesh.fault_policies (destination, route_id, abort_http_status, abort_percent)
       SELECT 'legacy', id, 503, 10 FROM mesh.http_routes WHERE destination = 'web' LIMIT 1`,
      'insert or update on table "fault_policies" violates foreign key constraint "fault_policies_route_fk"',
    ],
    [
      "a second destination-wide kill switch for the same service",
      `INSERT INTO mesh.drop_policies (destination, percent) VALUES ('legacy', 5), ('legacy', 10)`,
      'duplicate key value violates unique constraint "drop_policies_one_per_scope"',
    ],
  ];

  beforeAll(async () => {
    await route("web");
  });

  it.each(cases)("%s", async (_name, sql, message) => {
    expect(await refusal(sql)).toBe(message);
    corpus.refused += 1;
  });
});

interface MeshCase {
  readonly name: string;
  /** Writes the bad rule; returns the view to read and the row's key. */
  readonly write: () => Promise<{ view: string; where: string; params: unknown[]; id: string }>;
  /** The expected message, given the row's id. */
  readonly message: (id: string) => string | Promise<string>;
}

/** The route a policy row belongs to, for messages that name it. */
async function routeOf(table: string, id: string): Promise<string> {
  const { rows } = await mesh.sql.query<{ route_id: string }>(`SELECT route_id::text FROM mesh.${table} WHERE id = $1`, [id]);
  return String(rows[0]?.route_id);
}

const policy = (table: string, columns: string, values: string, params: unknown[] = []) => async () => {
  const id = await insertRoute(`INSERT INTO mesh.${table} (${columns}) VALUES (${values}) RETURNING id`, params);
  return { view: `${table}_status`, where: "id = $1", params: [id], id };
};

const routeWith = (destination: string, extension: (routeId: string) => Promise<unknown>, pathMatch = "") => async () => {
  const id = await route(destination, pathMatch);
  await extension(id);
  return { view: "http_routes_status", where: "id = $1", params: [id], id };
};

const exec = (sql: string) => (routeId: string) => mesh.sql.query(sql.replaceAll("$ROUTE", routeId));

describe("bad route rules Signalbox rejects (the message in the _status view)", () => {
  const cases: MeshCase[] = [
    {
      name: "fault policy for a service nobody registered",
      write: policy("fault_policies", "destination, abort_http_status, abort_percent", "'nope', 503, 10"),
      message: (id) => `fault policy ${id}: destination service "nope" is not in the registry`,
    },
    {
      name: "kill switch for callers nobody registered",
      write: policy("drop_policies", "destination, source", "'web', 'ghost-caller'"),
      message: (id) => `drop policy ${id}: source service "ghost-caller" is not in the registry`,
    },
    {
      name: "retry policy on a TCP service",
      write: policy("retry_policies", "destination, retry_on", "'db', '{connect-failure}'"),
      message: (id) => `retry policy ${id}: "db" speaks tcp; HTTP policies do not apply to it`,
    },
    {
      name: "gRPC-only abort for an HTTP service",
      write: policy("fault_policies", "destination, abort_grpc_status, abort_percent", "'web', 14, 10"),
      message: (id) => `fault policy ${id}: abort_grpc_status only applies to gRPC services, and "web" speaks http: set abort_http_status`,
    },
    {
      name: "HTTP-only retry conditions for a gRPC service",
      write: policy("retry_policies", "destination, retry_on, num_retries", "'api', '{5xx,gateway-error}', 2"),
      message: (id) =>
        `retry policy ${id}: retry_on {5xx,gateway-error} has no gRPC status, but "api" speaks grpc: its failures are gRPC statuses, which gRPC clients and Envoy retry only when listed (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)`,
    },
    {
      name: "gRPC retry conditions for an HTTP service",
      write: policy("retry_policies", "destination, source, retry_on", "'web', 'api', '{unavailable,5xx}'"),
      message: (id) =>
        `retry policy ${id}: retry_on unavailable is a gRPC status, but "web" speaks http: use HTTP conditions (5xx, gateway-error, reset, connect-failure, ...) or retriable_status_codes`,
    },
    {
      name: "retriable HTTP status codes for a gRPC service",
      write: policy("retry_policies", "destination, source, retry_on, retriable_status_codes", "'api', 'web', '{unavailable}', '{503}'"),
      message: (id) =>
        `retry policy ${id}: retriable_status_codes are HTTP statuses, but "api" speaks grpc and fails with gRPC statuses: use retry_on (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)`,
    },
    {
      name: "rate limit answering 420 (not an HTTP status Envoy knows)",
      write: policy("rate_limit_policies", "destination, source, max_tokens, fill_interval_ms, status_code", "'web', 'api', 10, 1000, 420"),
      message: (id) => `rate limit policy ${id}: status_code 420 is not an HTTP status Envoy can send (envoy.type.v3.StatusCode); use 429 or 503`,
    },
    {
      name: "destination-wide rate limit for a service without sidecars",
      write: policy("rate_limit_policies", "destination, max_tokens, fill_interval_ms", "'legacy', 100, 1000"),
      message: (id) =>
        `rate limit policy ${id}: no instance of "legacy" runs a sidecar (mesh_port is null), so nothing would enforce a destination-wide rate limit: give its instances a mesh_port, or narrow the limit to a source or a route (enforced by the callers' sidecars)`,
    },
    {
      name: "fault for header-marked requests with a lookahead regex (not RE2)",
      write: policy(
        "fault_policies",
        "destination, source, delay_ms, delay_percent, headers",
        `'web', 'api', 100, 50, '[{"name": "x-user", "match": "regex", "value": "^(?!bot).*"}]'`,
      ),
      message: (id) => `fault policy ${id}: header "x-user" regex is invalid: uses lookaround or backreferences, which RE2 does not support`,
    },
    {
      name: "fault for header-marked requests with a misspelled match kind",
      write: policy(
        "fault_policies",
        "destination, source, delay_ms, delay_percent, headers",
        `'web', 'legacy', 100, 50, '[{"name": "x-test", "match": "glob", "value": "a*"}]'`,
      ),
      message: () => `headers[0].match: must be one of exact, prefix, suffix, regex, present, got "glob"`,
    },
    {
      name: "route-specific retry policy on a route that sets its own retries",
      write: async () => {
        const routeId = await insertRoute(
          `INSERT INTO mesh.http_routes (destination, retry_on, retry_attempts) VALUES ('web', '{5xx}', 2) RETURNING id`,
        );
        return policy("retry_policies", "destination, route_id, retry_on", "'web', $1, '{reset}'", [routeId])();
      },
      message: async (id) =>
        `retry policy ${id}: route ${await routeOf("retry_policies", id)} sets retry_on/retry_attempts itself; keep the retry policy in one place (clear them on the route or delete this row)`,
    },
    {
      name: "route-specific policy of a disabled route",
      write: async () => {
        const routeId = await insertRoute(`INSERT INTO mesh.http_routes (destination, enabled) VALUES ('web', false) RETURNING id`);
        return policy("drop_policies", "destination, route_id", "'web', $1", [routeId])();
      },
      message: async (id) => `drop policy ${id}: its route ${await routeOf("drop_policies", id)} is disabled`,
    },
    {
      name: "redirect on a gRPC service",
      write: routeWith("api", exec(`INSERT INTO mesh.http_route_redirects (route_id, scheme) VALUES ($ROUTE, 'https')`)),
      message: (id) =>
        `http route ${id}: a redirect cannot answer gRPC calls, and "api" speaks grpc; refuse calls with a drop policy (mesh.drop_policies) instead`,
    },
    {
      name: "direct response on a route that also has destinations",
      write: routeWith(
        "web",
        exec(`INSERT INTO mesh.http_route_destinations (route_id, service, subset, weight) VALUES ($ROUTE, 'web', 'v1', 1);
              INSERT INTO mesh.http_route_direct_responses (route_id, status) VALUES ($ROUTE, 503)`),
      ),
      message: (id) =>
        `http route ${id}: has a direct response and rows in mesh.http_route_destinations; a direct response sends nothing upstream, so delete one or the other`,
    },
    {
      name: "redirect and direct response on one route",
      write: routeWith(
        "web",
        exec(`INSERT INTO mesh.http_route_redirects (route_id, scheme) VALUES ($ROUTE, 'https');
              INSERT INTO mesh.http_route_direct_responses (route_id, status) VALUES ($ROUTE, 200)`),
      ),
      message: (id) => `http route ${id}: has both a redirect and a direct response; keep one of them`,
    },
    {
      name: "redirect with a mirror",
      write: routeWith(
        "web",
        exec(`INSERT INTO mesh.http_route_redirects (route_id, host) VALUES ($ROUTE, 'example.com');
              INSERT INTO mesh.http_route_mirrors (route_id, service) VALUES ($ROUTE, 'shadow')`),
      ),
      message: (id) => `http route ${id}: has a redirect and mirrors; only routes that forward requests can mirror them`,
    },
    {
      name: "prefix rewrite on a regex route",
      write: routeWith("web", exec(`INSERT INTO mesh.http_route_rewrites (route_id, prefix) VALUES ($ROUTE, '/v2/')`), "'regex', '^/v1/.*'"),
      message: (id) => `http route ${id}: a prefix rewrite needs a prefix or exact path match, but the route matches a regex`,
    },
    {
      name: "mirror to a TCP service",
      write: routeWith("web", exec(`INSERT INTO mesh.http_route_mirrors (route_id, service) VALUES ($ROUTE, 'db')`)),
      message: (id) => `http route ${id}: mirror service "db" speaks tcp and cannot receive HTTP requests`,
    },
    {
      name: "mirror to a subset that selects no instance",
      write: routeWith("web", exec(`INSERT INTO mesh.http_route_mirrors (route_id, service, subset) VALUES ($ROUTE, 'web', 'ghost')`)),
      message: (id) =>
        `http route ${id}: mirror subset "web/ghost" is refused: subset "web/ghost" selects no instance of "web" (selector {"version":"v9"})`,
    },
    {
      name: "timeout for a route that only redirects",
      write: async () => {
        const routeId = await route("web");
        await mesh.sql.query(`INSERT INTO mesh.http_route_redirects (route_id, scheme) VALUES ($1, 'https')`, [routeId]);
        return policy("timeout_policies", "destination, route_id, timeout_ms", "'web', $1, 500", [routeId])();
      },
      message: async (id) => `timeout policy ${id}: its route ${await routeOf("timeout_policies", id)} answers with a redirect and forwards nothing`,
    },
  ];

  it.each(cases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const written = await c.write();
    const status = await statusOf(written.view, written.where, written.params);
    const expected = await c.message(written.id);
    expect(status).toEqual({ state: "rejected", message: expected });
    corpus.rejected += 1;
  });

  it("rejected rules never reach a proxy, and every other rule stays in force", async () => {
    const good = await insertRoute(
      `INSERT INTO mesh.fault_policies (destination, source, abort_http_status, abort_percent) VALUES ('web', 'shadow', 503, 5) RETURNING id`,
    );
    expect(await statusOf("fault_policies_status", "id = $1", [good])).toEqual({ state: "accepted", message: "" });
    const snapshot = mesh.signalbox.pipeline.currentSnapshot();
    const web = snapshot?.routePolicies?.byDestination.get("web");
    expect(web?.faults.bySource.get("shadow")?.id).toBe(good);
    // None of the rejected fault/drop/retry rows made it into the snapshot.
    expect(web?.faults.bySource.has("api")).toBe(false);
    expect(web?.faults.bySource.has("legacy")).toBe(false);
    expect(web?.drops.bySource.has("ghost-caller")).toBe(false);
    expect(snapshot?.routePolicies?.byDestination.has("nope")).toBe(false);
    expect(snapshot?.routePolicies?.byDestination.get("api")?.retries.destination ?? null).toBeNull();
    // Refused routes are not in the snapshot either.
    const { rows } = await mesh.sql.query<{ id: string }>(`SELECT id::text FROM mesh.http_routes_status WHERE state = 'rejected'`);
    const live = new Set([...(snapshot?.routesByDestination.values() ?? [])].flat().map((r) => r.id));
    expect(rows.length).toBeGreaterThanOrEqual(7);
    for (const row of rows) expect(live.has(row.id)).toBe(false);
  });

  it("the corpus has at least 30 bad rules, each with its exact message", () => {
    console.log(`[bad route rules] refused by the database: ${corpus.refused}, rejected by Signalbox: ${corpus.rejected}`);
    expect(corpus.refused + corpus.rejected).toBeGreaterThanOrEqual(30);
  });
});
