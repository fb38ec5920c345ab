/**
 * Reads the route-policy tables of migration 0004, inside the loader's
 * REPEATABLE READ transaction (see load.ts), typed the way node-postgres
 * returns them: bigint ids as text, numeric percentages as float8.
 */
import type pg from "pg";

interface ScopeRow {
  readonly id: string;
  readonly destination: string;
  readonly source: string | null;
  readonly route_id: string | null;
}

export interface TimeoutPolicyRow extends ScopeRow {
  readonly timeout_ms: number | null;
  readonly propagate: boolean;
}

export interface RetryPolicyRow extends ScopeRow {
  readonly retry_on: readonly string[];
  readonly num_retries: number;
  readonly per_try_timeout_ms: number | null;
  readonly retriable_status_codes: readonly number[] | null;
  readonly backoff_base_ms: number | null;
  readonly backoff_max_ms: number | null;
  readonly hedge_on_per_try_timeout: boolean;
}

export interface FaultPolicyRow extends ScopeRow {
  readonly delay_ms: number | null;
  readonly delay_percent: number | null;
  readonly abort_http_status: number | null;
  readonly abort_grpc_status: number | null;
  readonly abort_percent: number | null;
  readonly headers: unknown;
}

export interface DropPolicyRow extends ScopeRow {
  readonly percent: number;
  readonly http_status: number;
  readonly grpc_status: number;
}

export interface RateLimitPolicyRow extends ScopeRow {
  readonly max_tokens: number;
  readonly tokens_per_fill: number;
  readonly fill_interval_ms: number;
  readonly status_code: number;
}

export interface RewriteRow {
  readonly route_id: string;
  readonly prefix: string | null;
  readonly host: string | null;
}

export interface HeaderEditRow {
  readonly route_id: string;
  readonly direction: string;
  readonly action: string;
  readonly name: string;
  readonly value: string | null;
}

export interface RedirectRow {
  readonly route_id: string;
  readonly scheme: string | null;
  readonly host: string | null;
  readonly port: number | null;
  readonly path: string | null;
  readonly prefix: string | null;
  readonly response_code: number;
  readonly strip_query: boolean;
}

export interface DirectResponseRow {
  readonly route_id: string;
  readonly status: number;
  readonly body: string | null;
}

export interface MirrorRow {
  readonly route_id: string;
  readonly service: string;
  readonly subset: string | null;
  readonly percent: number;
}

export interface RoutePolicyRows {
  readonly timeouts: readonly TimeoutPolicyRow[];
  readonly retries: readonly RetryPolicyRow[];
  readonly faults: readonly FaultPolicyRow[];
  readonly drops: readonly DropPolicyRow[];
  readonly rateLimits: readonly RateLimitPolicyRow[];
  readonly rewrites: readonly RewriteRow[];
  readonly headerEdits: readonly HeaderEditRow[];
  readonly redirects: readonly RedirectRow[];
  readonly directResponses: readonly DirectResponseRow[];
  readonly mirrors: readonly MirrorRow[];
}

const SCOPE = "id::text AS id, destination, source, route_id::text AS route_id";

// Policies are read when enabled, whatever their route's state: a policy for a
// disabled route is reported, not silently dropped.
const TIMEOUTS = `SELECT ${SCOPE}, timeout_ms, propagate FROM mesh.timeout_policies WHERE enabled ORDER BY id`;
const RETRIES = `SELECT ${SCOPE}, retry_on, num_retries, per_try_timeout_ms, retriable_status_codes,
       backoff_base_ms, backoff_max_ms, hedge_on_per_try_timeout
  FROM mesh.retry_policies WHERE enabled ORDER BY id`;
const FAULTS = `SELECT ${SCOPE}, delay_ms, delay_percent::float8 AS delay_percent, abort_http_status,
       abort_grpc_status, abort_percent::float8 AS abort_percent, headers
  FROM mesh.fault_policies WHERE enabled ORDER BY id`;
const DROPS = `SELECT ${SCOPE}, percent::float8 AS percent, http_status, grpc_status
  FROM mesh.drop_policies WHERE enabled ORDER BY id`;
const RATE_LIMITS = `SELECT ${SCOPE}, max_tokens, tokens_per_fill, fill_interval_ms, status_code
  FROM mesh.rate_limit_policies WHERE enabled ORDER BY id`;

// Route extensions only matter on enabled routes.
const onEnabledRoutes = (table: string, columns: string, order: string) =>
  `SELECT x.route_id::text AS route_id, ${columns}
  FROM mesh.${table} x JOIN mesh.http_routes r ON r.id = x.route_id
 WHERE x.enabled AND r.enabled ORDER BY x.route_id${order}`;

const REWRITES = onEnabledRoutes("http_route_rewrites", "x.prefix, x.host", "");
const HEADER_EDITS = onEnabledRoutes("http_route_header_edits", "x.direction, x.action, x.name, x.value", ", x.id");
const REDIRECTS = onEnabledRoutes(
  "http_route_redirects",
  "x.scheme, x.host, x.port, x.path, x.prefix, x.response_code, x.strip_query",
  "",
);
const DIRECT_RESPONSES = onEnabledRoutes("http_route_direct_responses", "x.status, x.body", "");
const MIRRORS = onEnabledRoutes("http_route_mirrors", "x.service, x.subset, x.percent::float8 AS percent", ", x.id");

export async function loadRoutePolicyRows(client: pg.ClientBase): Promise<RoutePolicyRows> {
  const rows = async <T extends pg.QueryResultRow>(text: string): Promise<T[]> => (await client.query<T>(text)).rows;
  return {
    timeouts: await rows<TimeoutPolicyRow>(TIMEOUTS),
    retries: await rows<RetryPolicyRow>(RETRIES),
    faults: await rows<FaultPolicyRow>(FAULTS),
    drops: await rows<DropPolicyRow>(DROPS),
    rateLimits: await rows<RateLimitPolicyRow>(RATE_LIMITS),
    rewrites: await rows<RewriteRow>(REWRITES),
    headerEdits: await rows<HeaderEditRow>(HEADER_EDITS),
    redirects: await rows<RedirectRow>(REDIRECTS),
    directResponses: await rows<DirectResponseRow>(DIRECT_RESPONSES),
    mirrors: await rows<MirrorRow>(MIRRORS),
  };
}
