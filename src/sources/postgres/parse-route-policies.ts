/**
 * Route-policy rows -> RoutePolicies. Pure. Like parse-rules.ts: a row whose
 * columns do not fit the model becomes a RuleRejection naming the column and is
 * left out. The CHECK constraints of migration 0004 already guarantee most of
 * what is tested here; it is repeated so a hand-altered schema cannot produce a
 * half-built rule. A bad route-extension row rejects its route (kind
 * `http_route`), which then never reaches a proxy (see route-policy-check.ts).
 */
import type {
  DirectResponse,
  DropPolicy,
  FaultPolicy,
  HeaderEdit,
  HeaderEditAction,
  Mirror,
  PolicyScope,
  RateLimitPolicy,
  Redirect,
  RedirectCode,
  RetryPolicyRule,
  RouteExtensions,
  RoutePolicies,
  RoutePolicyKind,
  TimeoutPolicy,
} from "../../model/route-policies.ts";
import type { RuleRejection } from "../../model/rules.ts";
import { compareIds } from "../../model/order.ts";
import { readHeaderMatches } from "./json-shape.ts";
import type {
  DropPolicyRow,
  FaultPolicyRow,
  RateLimitPolicyRow,
  RedirectRow,
  RetryPolicyRow,
  RoutePolicyRows,
  TimeoutPolicyRow,
} from "./load-route-policies.ts";
import type { HttpRouteDestinationRow } from "./rows.ts";

export interface ParsedRoutePolicies {
  readonly policies: RoutePolicies;
  readonly rejected: readonly RuleRejection[];
}

const HEADER_EDIT_ACTIONS: readonly HeaderEditAction[] = ["set", "append", "add_if_absent", "remove"];
const REDIRECT_CODES: readonly RedirectCode[] = [301, 302, 303, 307, 308];

export function parseRoutePolicies(
  rows: RoutePolicyRows,
  destinationRows: readonly HttpRouteDestinationRow[],
): ParsedRoutePolicies {
  const rejected: RuleRejection[] = [];
  const each = <Row extends { id: string }, T>(
    kind: RoutePolicyKind,
    list: readonly Row[],
    parse: (row: Row, issues: string[]) => T,
  ): T[] => {
    const out: T[] = [];
    for (const row of list) {
      const issues: string[] = [];
      const value = parse(row, issues);
      if (issues.length > 0) rejected.push({ kind, id: row.id, message: issues.join("; ") });
      else out.push(value);
    }
    return out;
  };
  const policies: RoutePolicies = {
    timeouts: each("timeout_policy", rows.timeouts, parseTimeout),
    retries: each("retry_policy", rows.retries, parseRetry),
    faults: each("fault_policy", rows.faults, parseFault),
    drops: each("drop_policy", rows.drops, parseDrop),
    rateLimits: each("rate_limit_policy", rows.rateLimits, parseRateLimit),
    routeExtensions: parseRouteExtensions(rows, destinationRows, rejected),
  };
  return { policies, rejected };
}

function scopeOf(row: { id: string; destination: string; source: string | null; route_id: string | null }, issues: string[]): PolicyScope {
  if (row.source !== null && row.route_id !== null) issues.push("source, route_id: set at most one of them");
  return { id: row.id, destination: row.destination, source: row.source, routeId: row.route_id };
}

function percentOf(value: number | null, column: string, issues: string[]): number {
  if (value === null || !Number.isFinite(value) || value < 0 || value > 100) {
    issues.push(`${column}: must be a number from 0 to 100, got ${String(value)}`);
    return 0;
  }
  return value;
}

export function parseTimeout(row: TimeoutPolicyRow, issues: string[]): TimeoutPolicy {
  if (row.timeout_ms === null && !row.propagate) issues.push("timeout_ms: required unless propagate is true");
  return { ...scopeOf(row, issues), timeoutMs: row.timeout_ms, propagate: row.propagate };
}

export function parseRetry(row: RetryPolicyRow, issues: string[]): RetryPolicyRule {
  if (row.backoff_max_ms !== null && row.backoff_base_ms === null) issues.push("backoff_max_ms: needs backoff_base_ms");
  if (row.hedge_on_per_try_timeout && row.per_try_timeout_ms === null) {
    issues.push("hedge_on_per_try_timeout: needs per_try_timeout_ms");
  }
  return {
    ...scopeOf(row, issues),
    retry: {
      retryOn: [...row.retry_on],
      attempts: row.num_retries,
      perTryTimeoutMs: row.per_try_timeout_ms,
      retriableStatusCodes: [...(row.retriable_status_codes ?? [])],
      backoff: row.backoff_base_ms === null ? null : { baseMs: row.backoff_base_ms, maxMs: row.backoff_max_ms },
      hedgeOnPerTryTimeout: row.hedge_on_per_try_timeout,
    },
  };
}

export function parseFault(row: FaultPolicyRow, issues: string[]): FaultPolicy {
  const scope = scopeOf(row, issues);
  let delay: FaultPolicy["delay"] = null;
  if (row.delay_ms !== null || row.delay_percent !== null) {
    if (row.delay_ms === null || row.delay_percent === null) issues.push("delay_ms, delay_percent: set both or neither");
    else delay = { ms: row.delay_ms, percent: percentOf(row.delay_percent, "delay_percent", issues) };
  }
  let abort: FaultPolicy["abort"] = null;
  if (row.abort_percent !== null) {
    if (row.abort_http_status === null && row.abort_grpc_status === null) {
      issues.push("abort_percent: needs abort_http_status or abort_grpc_status");
    }
    abort = {
      httpStatus: row.abort_http_status,
      grpcStatus: row.abort_grpc_status,
      percent: percentOf(row.abort_percent, "abort_percent", issues),
    };
  } else if (row.abort_http_status !== null || row.abort_grpc_status !== null) {
    issues.push("abort_percent: required with abort_http_status or abort_grpc_status");
  }
  return { ...scope, delay, abort, headers: readHeaderMatches(row.headers, "headers", issues) };
}

export function parseDrop(row: DropPolicyRow, issues: string[]): DropPolicy {
  return {
    ...scopeOf(row, issues),
    percent: percentOf(row.percent, "percent", issues),
    httpStatus: row.http_status,
    grpcStatus: row.grpc_status,
  };
}

export function parseRateLimit(row: RateLimitPolicyRow, issues: string[]): RateLimitPolicy {
  if (row.fill_interval_ms < 50) issues.push(`fill_interval_ms: must be at least 50, got ${row.fill_interval_ms}`);
  return {
    ...scopeOf(row, issues),
    maxTokens: row.max_tokens,
    tokensPerFill: row.tokens_per_fill,
    fillIntervalMs: row.fill_interval_ms,
    statusCode: row.status_code,
  };
}

interface MutableExtensions {
  routeId: string;
  prefixRewrite: string | null;
  hostRewrite: string | null;
  headerEdits: HeaderEdit[];
  redirect: Redirect | null;
  directResponse: DirectResponse | null;
  mirrors: Mirror[];
  hasDestinationRows: boolean;
}

function parseRouteExtensions(
  rows: RoutePolicyRows,
  destinationRows: readonly HttpRouteDestinationRow[],
  rejected: RuleRejection[],
): RouteExtensions[] {
  // Built on the first extension row: a route change re-parses these tables,
  // which usually hold few rows, and must not walk every destination row for none.
  let withDestinations: Set<string> | null = null;
  const byRoute = new Map<string, MutableExtensions>();
  const of = (routeId: string): MutableExtensions => {
    let entry = byRoute.get(routeId);
    if (!entry) {
      withDestinations ??= new Set(destinationRows.map((row) => row.route_id));
      entry = {
        routeId,
        prefixRewrite: null,
        hostRewrite: null,
        headerEdits: [],
        redirect: null,
        directResponse: null,
        mirrors: [],
        hasDestinationRows: withDestinations.has(routeId),
      };
      byRoute.set(routeId, entry);
    }
    return entry;
  };
  const refuse = (routeId: string, table: string, message: string) =>
    rejected.push({ kind: "http_route", id: routeId, message: `mesh.${table}: ${message}` });

  for (const row of rows.rewrites) {
    const entry = of(row.route_id);
    entry.prefixRewrite = row.prefix;
    entry.hostRewrite = row.host;
  }
  for (const row of rows.headerEdits) {
    const action = HEADER_EDIT_ACTIONS.find((a) => a === row.action);
    if (row.direction !== "request" && row.direction !== "response") {
      refuse(row.route_id, "http_route_header_edits", `direction: must be request or response, got ${JSON.stringify(row.direction)}`);
    } else if (!action) {
      refuse(row.route_id, "http_route_header_edits", `action: must be one of ${HEADER_EDIT_ACTIONS.join(", ")}, got ${JSON.stringify(row.action)}`);
    } else if ((action === "remove") !== (row.value === null)) {
      refuse(row.route_id, "http_route_header_edits", `value: ${action === "remove" ? "not allowed" : "required"} with action ${action}`);
    } else {
      of(row.route_id).headerEdits.push({ direction: row.direction, action, name: row.name, value: row.value });
    }
  }
  for (const row of rows.redirects) {
    const redirect = parseRedirect(row);
    if (typeof redirect === "string") refuse(row.route_id, "http_route_redirects", redirect);
    else of(row.route_id).redirect = redirect;
  }
  for (const row of rows.directResponses) {
    of(row.route_id).directResponse = { status: row.status, body: row.body };
  }
  for (const row of rows.mirrors) {
    if (!(row.percent > 0 && row.percent <= 100)) {
      refuse(row.route_id, "http_route_mirrors", `percent: must be more than 0 and at most 100, got ${row.percent}`);
    } else {
      of(row.route_id).mirrors.push({ service: row.service, subset: row.subset, percent: row.percent });
    }
  }
  return [...byRoute.values()].sort(byRouteId);
}

function byRouteId(a: RouteExtensions, b: RouteExtensions): number {
  return compareIds(a.routeId, b.routeId);
}

function parseRedirect(row: RedirectRow): Redirect | string {
  const code = REDIRECT_CODES.find((c) => c === row.response_code);
  if (code === undefined) return `response_code: must be one of ${REDIRECT_CODES.join(", ")}, got ${row.response_code}`;
  if (row.scheme !== null && row.scheme !== "http" && row.scheme !== "https") {
    return `scheme: must be http or https, got ${JSON.stringify(row.scheme)}`;
  }
  if (row.path !== null && row.prefix !== null) return "path, prefix: set at most one of them";
  return {
    scheme: row.scheme,
    host: row.host,
    port: row.port,
    path: row.path,
    prefix: row.prefix,
    responseCode: code,
    stripQuery: row.strip_query,
  };
}
