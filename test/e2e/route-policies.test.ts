import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import {
  CLIENT_KINDS,
  closeAllClientSessions,
  binomialRange,
  errorCount,
  pollCalls,
  startBackends,
  startClientSession,
  stopBackends,
  type Backend,
  type CallResult,
  type ClientSession,
} from "../support/clients/index.ts";
import { startMesh, type E2eMesh } from "./harness.ts";

/**
 * Route-side policies on real RPCs: rows in PostgreSQL -> Signalbox -> a real
 * proxyless client (grpc-js-xds and gRPC C-core) -> a real backend. Covers what
 * both clients implement: fault injection (abort and delay percentages,
 * header-marked faults), the kill switch, retries, timeouts, and the precedence
 * destination < source < route. Rate limits, mirrors, rewrites, redirects and
 * header edits are Envoy-only: golden files plus test/docker/route-policies.test.ts.
 *
 * The caller is the service "caller"; "echo" has one instance, so retries and
 * failure patterns are deterministic. Measurements are printed for the record.
 */
let mesh: E2eMesh;
let backend: Backend;
const measured: Record<string, Record<string, unknown>> = {};

const POLICY_TABLES = ["timeout_policies", "retry_policies", "fault_policies", "drop_policies", "rate_limit_policies"];

beforeAll(async () => {
  [backend] = (await startBackends(["echo-1"])) as [Backend];
  mesh = await startMesh();
  await mesh.sql.query(`INSERT INTO mesh.services(name, protocol, port) VALUES ('echo', 'grpc', 50051), ('caller', 'grpc', 50051)`);
  await mesh.sql.query(`INSERT INTO mesh.instances(id, service, address, port) VALUES ('echo-1', 'echo', $1, $2)`, [backend.host, backend.port]);
});

afterAll(async () => {
  console.log(`[route-policy measurements] ${JSON.stringify(measured, null, 2)}`);
  await closeAllClientSessions();
  await mesh?.close();
  await stopBackends(backend ? [backend] : []);
});

/** Waits until Signalbox has looked at every policy row and accepted it. */
async function expectAccepted(): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const { rows } = await mesh.sql.query<{ t: string; id: string; state: string; message: string | null }>(
      POLICY_TABLES.map((t) => `SELECT '${t}' AS t, id::text AS id, state, message FROM mesh.${t}_status WHERE enabled`).join(" UNION ALL "),
    );
    if (rows.every((r) => r.state === "accepted")) return;
    if (rows.some((r) => r.state === "rejected") || performance.now() > deadline) {
      const revision = (await mesh.sql.query<{ v: string }>("SELECT value::text AS v FROM mesh.revision")).rows[0]?.v;
      const sources = mesh.signalbox.pipeline.sourceStatuses();
      throw new Error(`policies not accepted: ${JSON.stringify(rows)}; database revision ${revision}, sources ${JSON.stringify(sources)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** pollCalls with more patience: these tests also run next to the whole suite on a loaded machine. */
const poll: typeof pollCalls = (session, n, predicate, options = {}) => pollCalls(session, n, predicate, { withinMs: 10_000, ...options });

const fraction = (r: CallResult, code: string, of: number): number => (r.errors[code] ?? 0) / of;

/** Latencies (ms) of successful and failed RPCs alike, as the worker records them. */
const latencies = (r: CallResult): number[] => r.latenciesMs ?? [];

describe.each(CLIENT_KINDS)("%s client", (kind) => {
  let session: ClientSession;
  const results: Record<string, unknown> = {};
  measured[kind] = results;

  beforeAll(async () => {
    for (const table of POLICY_TABLES) await mesh.sql.query(`DELETE FROM mesh.${table}`);
    await mesh.sql.query(`DELETE FROM mesh.http_routes`);
    session = await startClientSession(kind, {
      bootstrap: mesh.bootstrap("caller", `caller-${kind}`),
      target: "xds:///echo",
      requireReady: true,
    });
  });

  afterAll(async () => {
    await session?.close();
  });

  afterEach(async () => {
    backend.setFailing(null);
    backend.setDelay(0);
    for (const table of POLICY_TABLES) await mesh.sql.query(`DELETE FROM mesh.${table}`);
    await mesh.sql.query(`DELETE FROM mesh.http_routes`);
    // Back to a clean slate before the next test: every RPC succeeds, quickly.
    await poll(session, 20, (r) => errorCount(r) === 0 && Math.max(...latencies(r)) < 300);
  });

  it("aborts 30% of RPCs with the configured gRPC status (600 RPCs, within five standard deviations)", async () => {
    await mesh.sql.query(
      `INSERT INTO mesh.fault_policies (destination, abort_grpc_status, abort_percent) VALUES ('echo', 10, 30)`,
    );
    await expectAccepted();
    await poll(session, 40, (r) => (r.errors.ABORTED ?? 0) > 0, { concurrency: 10 });
    const result = await session.call(600, {}, { concurrency: 10 });
    const aborted = fraction(result, "ABORTED", 600);
    results.fault_abort_30_share = Number(aborted.toFixed(3));
    expect(Object.keys(result.errors)).toEqual(["ABORTED"]);
    expect(aborted).toBeGreaterThan(binomialRange(0.3, 600).low);
    expect(aborted).toBeLessThan(binomialRange(0.3, 600).high);
  });

  it("delays 50% of RPCs by 500 ms (200 RPCs, within five standard deviations), and they still succeed", async () => {
    await mesh.sql.query(`INSERT INTO mesh.fault_policies (destination, delay_ms, delay_percent) VALUES ('echo', 500, 50)`);
    await expectAccepted();
    await poll(session, 20, (r) => latencies(r).some((ms) => ms >= 490), { concurrency: 10 });
    const result = await session.call(200, {}, { concurrency: 20 });
    const delayed = latencies(result).filter((ms) => ms >= 490);
    results.fault_delay_50_share = Number((delayed.length / 200).toFixed(3));
    results.fault_delay_min_delayed_ms = Math.min(...delayed);
    results.fault_delay_median_undelayed_ms = latencies(result).filter((ms) => ms < 490).sort((a, b) => a - b)[50];
    expect(errorCount(result)).toBe(0);
    expect(delayed.length / 200).toBeGreaterThan(binomialRange(0.5, 200).low);
    expect(delayed.length / 200).toBeLessThan(binomialRange(0.5, 200).high);
  });

  it("injects a header-marked fault only into marked RPCs", async () => {
    await mesh.sql.query(
      `INSERT INTO mesh.fault_policies (destination, abort_grpc_status, abort_percent, headers)
       VALUES ('echo', 7, 100, '[{"name": "x-fault", "match": "exact", "value": "abort"}]')`,
    );
    await expectAccepted();
    await poll(session, 10, (r) => (r.errors.PERMISSION_DENIED ?? 0) === 10, { metadata: { "x-fault": "abort" } });
    const marked = await session.call(50, { "x-fault": "abort" });
    const unmarked = await session.call(50, { "x-fault": "no" });
    const bare = await session.call(50);
    results.marked_fault = { marked: marked.errors, unmarked: unmarked.errors, bare: bare.errors };
    expect(marked.errors).toEqual({ PERMISSION_DENIED: 50 });
    expect(errorCount(unmarked)).toBe(0);
    expect(errorCount(bare)).toBe(0);
  });

  it("precedence: a source-specific row overrides the destination-wide one, a route-specific row both", async () => {
    // Destination-wide: abort everything.
    await mesh.sql.query(`INSERT INTO mesh.fault_policies (destination, abort_grpc_status, abort_percent) VALUES ('echo', 10, 100)`);
    await expectAccepted();
    await poll(session, 10, (r) => (r.errors.ABORTED ?? 0) === 10);
    // Source-specific for "caller": no fault at all (a row with neither delay nor abort).
    await mesh.sql.query(`INSERT INTO mesh.fault_policies (destination, source) VALUES ('echo', 'caller')`);
    await expectAccepted();
    await poll(session, 10, (r) => errorCount(r) === 0);
    expect(errorCount(await session.call(50))).toBe(0);
    // Route-specific: requests matched by route "x-route: r" get UNAUTHENTICATED again.
    const { rows } = await mesh.sql.query<{ id: string }>(
      `INSERT INTO mesh.http_routes (destination, headers) VALUES ('echo', '[{"name": "x-route", "match": "exact", "value": "r"}]') RETURNING id`,
    );
    await mesh.sql.query(
      `INSERT INTO mesh.fault_policies (destination, route_id, abort_grpc_status, abort_percent) VALUES ('echo', $1, 16, 100)`,
      [rows[0]?.id],
    );
    await expectAccepted();
    await poll(session, 10, (r) => (r.errors.UNAUTHENTICATED ?? 0) === 10, { metadata: { "x-route": "r" } });
    expect((await session.call(30, { "x-route": "r" })).errors).toEqual({ UNAUTHENTICATED: 30 });
    expect(errorCount(await session.call(30, { "x-route": "other" }))).toBe(0);
    // Removing the source-specific row brings the destination-wide abort back for other requests.
    await mesh.sql.query(`DELETE FROM mesh.fault_policies WHERE source = 'caller'`);
    await poll(session, 10, (r) => (r.errors.ABORTED ?? 0) === 10);
  });

  it("kill switch: drops 100%, then 40% (600 RPCs, within five standard deviations), then nothing once disabled", async () => {
    await mesh.sql.query(`INSERT INTO mesh.drop_policies (destination) VALUES ('echo')`);
    await expectAccepted();
    await poll(session, 10, (r) => (r.errors.UNAVAILABLE ?? 0) === 10);
    const all = await session.call(50, {}, { concurrency: 10 });
    expect(all.errors).toEqual({ UNAVAILABLE: 50 });
    await mesh.sql.query(`UPDATE mesh.drop_policies SET percent = 40`);
    await poll(session, 40, (r) => errorCount(r) > 0 && errorCount(r) < 40, { concurrency: 10 });
    const some = await session.call(600, {}, { concurrency: 10 });
    const dropped = fraction(some, "UNAVAILABLE", 600);
    results.drop_40_share = Number(dropped.toFixed(3));
    expect(Object.keys(some.errors)).toEqual(["UNAVAILABLE"]);
    expect(dropped).toBeGreaterThan(binomialRange(0.4, 600).low);
    expect(dropped).toBeLessThan(binomialRange(0.4, 600).high);
    const started = performance.now();
    await mesh.sql.query(`UPDATE mesh.drop_policies SET enabled = false`);
    await poll(session, 20, (r) => errorCount(r) === 0, { intervalMs: 10 });
    results.kill_switch_off_to_clean_traffic_ms = Math.round(performance.now() - started);
  });

  it("retries a backend that fails 50% with UNAVAILABLE: ~50% errors without a policy, none with retry_on unavailable x3", async () => {
    backend.setFailing(grpc.status.UNAVAILABLE, 0.5);
    const without = await session.call(200);
    const withoutShare = fraction(without, "UNAVAILABLE", 200);
    results.retry_none_error_share = Number(withoutShare.toFixed(3));
    expect(withoutShare).toBeGreaterThan(0.4);
    expect(withoutShare).toBeLessThan(0.6);

    await mesh.sql.query(
      `INSERT INTO mesh.retry_policies (destination, retry_on, num_retries, backoff_base_ms, backoff_max_ms)
       VALUES ('echo', '{unavailable}', 3, 5, 20)`,
    );
    await expectAccepted();
    await poll(session, 20, (r) => errorCount(r) === 0);
    const before = backend.requests;
    const withRetry = await session.call(200);
    results.retry_3_errors = errorCount(withRetry);
    results.retry_3_backend_attempts_per_rpc = Number(((backend.requests - before) / 200).toFixed(2));
    expect(errorCount(withRetry)).toBe(0);
    // Every failed attempt was retried: about 2 attempts per 1 success... per 2 RPCs, 3 attempts.
    expect((backend.requests - before) / 200).toBeGreaterThan(1.3);
  });

  it("a route-specific retry policy with 0 retries switches retries off for its route only", async () => {
    backend.setFailing(grpc.status.UNAVAILABLE, 0.5);
    await mesh.sql.query(
      `INSERT INTO mesh.retry_policies (destination, retry_on, num_retries, backoff_base_ms) VALUES ('echo', '{unavailable}', 3, 5)`,
    );
    const { rows } = await mesh.sql.query<{ id: string }>(
      `INSERT INTO mesh.http_routes (destination, headers) VALUES ('echo', '[{"name": "x-no-retry", "match": "present"}]') RETURNING id`,
    );
    await mesh.sql.query(`INSERT INTO mesh.retry_policies (destination, route_id, num_retries) VALUES ('echo', $1, 0)`, [rows[0]?.id]);
    await expectAccepted();
    await poll(session, 20, (r) => errorCount(r) === 0);
    await poll(session, 20, (r) => errorCount(r) > 0, { metadata: { "x-no-retry": "1" } });
    const noRetry = await session.call(100, { "x-no-retry": "1" });
    const retried = await session.call(100);
    results.route_no_retry_error_share = fraction(noRetry, "UNAVAILABLE", 100);
    expect(fraction(noRetry, "UNAVAILABLE", 100)).toBeGreaterThan(0.35);
    expect(errorCount(retried)).toBe(0);
  });

  it("times out slow RPCs with DEADLINE_EXCEEDED (timeout 200 ms, backend 1 s); a source row of 0 lifts it", async () => {
    backend.setDelay(1000);
    await mesh.sql.query(`INSERT INTO mesh.timeout_policies (destination, timeout_ms) VALUES ('echo', 200)`);
    await expectAccepted();
    await poll(session, 5, (r) => (r.errors.DEADLINE_EXCEEDED ?? 0) === 5, { concurrency: 5 });
    const result = await session.call(20, {}, { concurrency: 10, timeoutMs: 3000 });
    results.timeout_200_latency_ms = { min: Math.min(...latencies(result)), max: Math.max(...latencies(result)) };
    expect(result.errors).toEqual({ DEADLINE_EXCEEDED: 20 });
    expect(Math.max(...latencies(result))).toBeLessThan(700);
    // C-core 1.51 fires xDS timeouts early (route-policies-quirks.test.ts, case 5).
    if (kind === "grpc-js-xds") expect(Math.min(...latencies(result))).toBeGreaterThanOrEqual(190);
    // Source-specific: caller gets no timeout (0), so the 1 s RPCs complete.
    await mesh.sql.query(`INSERT INTO mesh.timeout_policies (destination, source, timeout_ms) VALUES ('echo', 'caller', 0)`);
    await expectAccepted();
    await poll(session, 5, (r) => errorCount(r) === 0, { concurrency: 5, timeoutMs: 3000 });
  });

  it("propagates the caller's deadline (propagate, cap 500 ms): the shorter of the two wins", async () => {
    backend.setDelay(2000);
    await mesh.sql.query(`INSERT INTO mesh.timeout_policies (destination, timeout_ms, propagate) VALUES ('echo', 500, true)`);
    await expectAccepted();
    await poll(session, 5, (r) => (r.errors.DEADLINE_EXCEEDED ?? 0) === 5 && Math.max(...latencies(r)) < 1000, { concurrency: 5, timeoutMs: 1500 });
    // The application's own deadline (1.5 s) is longer than the cap: the cap applies.
    const capped = await session.call(10, {}, { concurrency: 10, timeoutMs: 1500 });
    expect(capped.errors).toEqual({ DEADLINE_EXCEEDED: 10 });
    expect(Math.max(...latencies(capped))).toBeLessThan(1000);
    // A shorter application deadline (100 ms) wins over the cap.
    const own = await session.call(10, {}, { concurrency: 10, timeoutMs: 100 });
    expect(own.errors).toEqual({ DEADLINE_EXCEEDED: 10 });
    expect(Math.max(...latencies(own))).toBeLessThan(400);
    results.propagate_latencies_ms = {
      cap500_app1500: [Math.min(...latencies(capped)), Math.max(...latencies(capped))],
      cap500_app100: [Math.min(...latencies(own)), Math.max(...latencies(own))],
    };
    // C-core 1.51 fires xDS timeouts early (route-policies-quirks.test.ts, case 5); grpc-js-xds is exact.
    if (kind === "grpc-js-xds") {
      expect(Math.min(...latencies(capped))).toBeGreaterThanOrEqual(480);
      expect(Math.min(...latencies(own))).toBeGreaterThanOrEqual(90);
    }
  });
});
