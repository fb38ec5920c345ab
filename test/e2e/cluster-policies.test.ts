import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  clientAvailability,
  clientKindsByAvailability,
  closeAllClientSessions,
  errorCount,
  pollCalls,
  startBackends,
  startClientSession,
  stopBackends,
  type Backend,
  type CallResult,
  type ClientKind,
  type ClientSession,
} from "../support/clients/index.ts";
import { startMesh, type E2eMesh } from "./harness.ts";

/**
 * Cluster-side rules end to end, on real RPCs: rows in PostgreSQL -> Signalbox
 * -> a real proxyless client (grpc-js-xds 1.14, gRPC C-core 1.51) -> real
 * backends. Covers what the clients implement: color routing with fallback
 * (including all colored instances unhealthy), ring-hash stickiness, outlier
 * ejection of a failing instance and the max_requests circuit breaker.
 * Features no client implements (active health checks, the other circuit
 * breaker limits, TCP proxying, WebSocket, slow start) are covered by the
 * golden files, Envoy's field validation and test/docker/cluster-policies.test.ts.
 */
const { available: kinds, missing } = clientKindsByAvailability();

let mesh: E2eMesh;
let backends: Map<string, Backend>;
const measured: Record<string, unknown> = {};

/** One gRPC service per feature, so each test owns its backends. */
const SERVICES: Record<string, string[]> = {
  echo: ["base-1", "base-2", "alice-1"],
  sticky: ["sticky-1", "sticky-2", "sticky-3", "sticky-4"],
  flaky: ["flaky-1", "flaky-2", "flaky-3"],
  limited: ["limited-1"],
};

function backend(name: string): Backend {
  const found = backends.get(name);
  if (!found) throw new Error(`no backend ${name}`);
  return found;
}

const total = (r: CallResult): number => Object.values(r.byBackend).reduce((a, b) => a + b, 0);

beforeAll(async () => {
  const all = await startBackends(Object.values(SERVICES).flat());
  backends = new Map(all.map((b) => [b.name, b]));
  mesh = await startMesh();
  await mesh.sql.query(`INSERT INTO mesh.services(name, protocol, port) VALUES
    ('caller', 'grpc', 50051), ('echo', 'grpc', 50051), ('sticky', 'grpc', 50051), ('flaky', 'grpc', 50051), ('limited', 'grpc', 50051)`);
  for (const [service, names] of Object.entries(SERVICES)) {
    for (const name of names) {
      const b = backend(name);
      const labels = name.startsWith("alice") ? { color: "alice", version: "v1" } : { version: name.endsWith("-2") ? "v2" : "v1" };
      await mesh.sql.query(`INSERT INTO mesh.instances(id, service, address, port, labels) VALUES ($1, $2, $3, $4, $5)`, [
        name,
        service,
        b.host,
        b.port,
        JSON.stringify(labels),
      ]);
    }
  }
  await mesh.sql.query(`INSERT INTO mesh.subsets(service, name, selector) VALUES ('echo', 'v2', '{"version":"v2"}')`);
});

afterAll(async () => {
  console.log(`[cluster-policies e2e] ${JSON.stringify(measured, null, 2)}`);
  await closeAllClientSessions();
  await mesh?.close();
  await stopBackends([...(backends?.values() ?? [])]);
});

/**
 * A client on `xds:///<target>`. With `lazy`, it does not wait for READY: a
 * ring_hash channel stays IDLE until its first RPC picks an instance.
 */
async function session(kind: ClientKind, target: string, nodeId: string, lazy = false): Promise<ClientSession> {
  return startClientSession(kind, {
    bootstrap: mesh.bootstrap("caller", nodeId),
    target: `xds:///${target}`,
    ...(lazy ? { readyTimeoutMs: 0 } : { requireReady: true }),
  });
}

/** The status Signalbox wrote back for a row, once it has looked at it. */
async function statusOf(view: string, id: string): Promise<{ state: string; message: string | null }> {
  const deadline = performance.now() + 5000;
  for (;;) {
    const { rows } = await mesh.sql.query<{ state: string; message: string | null }>(`SELECT state, message FROM mesh.${view} WHERE id = $1`, [id]);
    const row = rows[0];
    if (row && row.state !== "pending") return row;
    if (performance.now() > deadline) throw new Error(`mesh.${view} ${id} still pending`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("cluster policies with real proxyless clients", () => {
  for (const kind of missing) it.skip(`SKIPPED for ${kind}: ${clientAvailability(kind).reason}`, () => {});

  describe("color routing: x-env: <color> reaches the instances of that color, else the baseline", () => {
    let ruleId: string;
    beforeAll(async () => {
      const { rows } = await mesh.sql.query<{ id: string }>(`INSERT INTO mesh.color_routing DEFAULT VALUES RETURNING id::text AS id`);
      ruleId = rows[0]!.id;
    });

    it("is accepted", async () => {
      expect(await statusOf("color_routing_status", ruleId)).toEqual({ state: "accepted", message: "" });
    });

    describe.each(kinds)("%s", (kind) => {
      let s: ClientSession;
      const results: Record<string, unknown> = {};
      beforeAll(async () => {
        measured[`color ${kind}`] = results;
        await mesh.sql.query(`UPDATE mesh.instances SET health = 'healthy' WHERE service = 'echo'`);
        s = await session(kind, "echo", `color-${kind}`);
      });
      afterAll(async () => {
        await mesh.sql.query(`DELETE FROM mesh.http_routes WHERE destination = 'echo'`);
        await s?.close();
      });

      it("sends uncolored requests to baseline instances only", async () => {
        const r = await pollCalls(s, 60, (x) => (x.byBackend["base-1"] ?? 0) > 0 && (x.byBackend["base-2"] ?? 0) > 0);
        expect(r.byBackend["alice-1"] ?? 0).toBe(0);
        expect(errorCount(r)).toBe(0);
      });

      it("sends x-env: alice to alice's instance", async () => {
        const r = await pollCalls(s, 40, (x) => x.byBackend["alice-1"] === 40, { metadata: { "x-env": "alice" }, withinMs: 3000 });
        expect(r.byBackend).toEqual({ "alice-1": 40 });
      });

      it("sends a color nobody runs to the baseline (no route is generated for it)", async () => {
        const r = await s.call(40, { "x-env": "bob" });
        expect(r.byBackend["alice-1"] ?? 0).toBe(0);
        expect(total(r)).toBe(40);
      });

      it("composes with rule routes: a header route to subset v2 still sends alice's requests to alice", async () => {
        const { rows } = await mesh.sql.query<{ id: string }>(
          `INSERT INTO mesh.http_routes(destination, priority, headers) VALUES ('echo', 10, '[{"name":"x-canary","match":"present"}]') RETURNING id`,
        );
        await mesh.sql.query(`INSERT INTO mesh.http_route_destinations(route_id, service, subset, weight) VALUES ($1, 'echo', 'v2', 1)`, [rows[0]!.id]);
        await pollCalls(s, 20, (x) => x.byBackend["base-2"] === 20, { metadata: { "x-canary": "1" }, withinMs: 3000 });
        const colored = await s.call(40, { "x-canary": "1", "x-env": "alice" });
        expect(colored.byBackend).toEqual({ "alice-1": 40 });
      });

      it("falls back to the baseline when every alice instance is unhealthy, and back when it recovers", async () => {
        const started = performance.now();
        await mesh.sql.query(`UPDATE mesh.instances SET health = 'unhealthy' WHERE id = 'alice-1'`);
        const fallback = await pollCalls(s, 40, (x) => (x.byBackend["alice-1"] ?? 0) === 0 && total(x) === 40, {
          metadata: { "x-env": "alice" },
          withinMs: 3000,
          intervalMs: 10,
        });
        results.unhealthy_to_fallback_ms = Math.round(performance.now() - started);
        expect(errorCount(fallback)).toBe(0);
        // With x-canary the composed route falls back to its own subset (v2), not the whole baseline.
        const subsetFallback = await s.call(20, { "x-canary": "1", "x-env": "alice" });
        expect(subsetFallback.byBackend).toEqual({ "base-2": 20 });

        await mesh.sql.query(`UPDATE mesh.instances SET health = 'healthy' WHERE id = 'alice-1'`);
        await pollCalls(s, 20, (x) => x.byBackend["alice-1"] === 20, { metadata: { "x-env": "alice" }, withinMs: 3000 });
      });

      it("routes to the baseline once the colored instance is gone, and to it again when it returns", async () => {
        const alice = backend("alice-1");
        await mesh.sql.query(`DELETE FROM mesh.instances WHERE id = 'alice-1'`);
        const gone = await pollCalls(s, 40, (x) => (x.byBackend["alice-1"] ?? 0) === 0 && total(x) === 40, {
          metadata: { "x-env": "alice" },
          withinMs: 3000,
        });
        expect(errorCount(gone)).toBe(0);
        await mesh.sql.query(`INSERT INTO mesh.instances(id, service, address, port, labels) VALUES ('alice-1', 'echo', $1, $2, '{"color":"alice","version":"v1"}')`, [
          alice.host,
          alice.port,
        ]);
        await pollCalls(s, 20, (x) => x.byBackend["alice-1"] === 20, { metadata: { "x-env": "alice" }, withinMs: 3000 });
        const plain = await s.call(40);
        expect(plain.byBackend["alice-1"] ?? 0).toBe(0);
      });
    });
  });

  describe("ring hash: the same x-user always reaches the same instance", () => {
    beforeAll(async () => {
      await mesh.sql.query(`INSERT INTO mesh.load_balancing(destination, algorithm) VALUES ('sticky', 'ring_hash')`);
      await mesh.sql.query(`INSERT INTO mesh.hash_policies(destination, hash_on, name) VALUES ('sticky', 'header', 'x-user')`);
    });

    describe.each(kinds)("%s", (kind) => {
      let s: ClientSession;
      beforeAll(async () => {
        s = await session(kind, "sticky", `sticky-${kind}`, true);
        await pollCalls(s, 4, (x) => total(x) === 4, { waitForReady: true, metadata: { "x-user": "warm-up" } });
      });
      afterAll(async () => s?.close());

      if (kind === "c-core") {
        it("C-core 1.51 gets round robin instead (RING_HASH crashes it, grpc/grpc#31766): no crash, spread evenly", async () => {
          const r = await s.call(40, { "x-user": "user-1" });
          expect(errorCount(r)).toBe(0);
          expect(Object.keys(r.byBackend).length).toBe(4);
          measured[`ring hash ${kind}`] = r.byBackend;
        });
        return;
      }

      it("keeps each user on one instance and spreads users over instances", async () => {
        const assigned = new Map<string, string>();
        for (let user = 0; user < 24; user++) {
          const r = await s.call(10, { "x-user": `user-${user}` });
          expect(errorCount(r)).toBe(0);
          expect(Object.keys(r.byBackend), `user-${user} hit ${JSON.stringify(r.byBackend)}`).toHaveLength(1);
          assigned.set(`user-${user}`, Object.keys(r.byBackend)[0]!);
        }
        const used = new Set(assigned.values());
        measured[`ring hash ${kind}`] = Object.fromEntries([...used].map((b) => [b, [...assigned.values()].filter((x) => x === b).length]));
        expect(used.size).toBeGreaterThanOrEqual(3);
        // Stable over time: the same users land on the same instances again.
        for (const [user, where] of [...assigned].slice(0, 6)) {
          expect((await s.call(5, { "x-user": user })).byBackend).toEqual({ [where]: 5 });
        }
      });
    });
  });

  describe("outlier detection ejects a failing instance", () => {
    let ruleId: string;
    beforeAll(async () => {
      const { rows } = await mesh.sql.query<{ id: string }>(
        `INSERT INTO mesh.outlier_detection(destination, failure_percentage_threshold, failure_percentage_minimum_hosts,
            failure_percentage_request_volume, interval_ms, base_ejection_time_ms, max_ejection_percent)
         VALUES ('flaky', 50, 3, 10, 500, 30000, 50) RETURNING id::text AS id`,
      );
      ruleId = rows[0]!.id;
      expect(await statusOf("outlier_detection_status", ruleId)).toEqual({ state: "accepted", message: "" });
    });

    describe.each(kinds)("%s", (kind) => {
      let s: ClientSession;
      beforeAll(async () => {
        for (const name of SERVICES.flaky!) backend(name).setFailing(null);
        s = await session(kind, "flaky", `flaky-${kind}`);
        await pollCalls(s, 30, (x) => Object.keys(x.byBackend).length === 3 && errorCount(x) === 0);
      });
      afterAll(async () => {
        backend("flaky-1").setFailing(null);
        await s?.close();
      });

      it("stops sending to flaky-1 once it fails every request", async () => {
        const failing = backend("flaky-1");
        failing.setFailing(grpc.status.UNAVAILABLE);
        const started = performance.now();
        const ejected = await pollCalls(s, 30, (x) => errorCount(x) === 0 && (x.byBackend["flaky-1"] ?? 0) === 0 && total(x) === 30, {
          withinMs: 8000,
          intervalMs: 20,
        });
        measured[`outlier ejection ${kind}`] = { ms: Math.round(performance.now() - started), attempts: ejected.attempts };
        failing.reset();
        const after = await s.call(60);
        expect(errorCount(after)).toBe(0);
        expect(failing.requests).toBe(0);
        expect(total(after)).toBe(60);
      });
    });
  });

  describe("circuit breaker max_requests caps concurrent requests", () => {
    beforeAll(async () => {
      await mesh.sql.query(`INSERT INTO mesh.circuit_breakers(destination, max_requests) VALUES ('limited', 1)`);
    });

    describe.each(kinds)("%s", (kind) => {
      let s: ClientSession;
      beforeAll(async () => {
        s = await session(kind, "limited", `limited-${kind}`);
      });
      afterAll(async () => {
        backend("limited-1").setDelay(0);
        await s?.close();
      });

      it("fails requests beyond 1 in flight with UNAVAILABLE", async () => {
        backend("limited-1").setDelay(300);
        const r = await s.call(16, {}, { concurrency: 4, timeoutMs: 3000 });
        measured[`circuit breaker ${kind}`] = { ok: r.byBackend, errors: r.errors, message: r.errorMessages?.UNAVAILABLE };
        // C-core drops exactly the 3 extra calls of each batch of 4; grpc-js-xds counts a
        // call only once it has started, so picks made in the same tick can overshoot.
        expect(r.errors.UNAVAILABLE ?? 0).toBeGreaterThanOrEqual(kind === "c-core" ? 12 : 4);
        expect(r.byBackend["limited-1"] ?? 0).toBeGreaterThanOrEqual(4);
        expect(r.errorMessages?.UNAVAILABLE).toMatch(/drop/i);
      });
    });
  });
});
