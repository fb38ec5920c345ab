/**
 * PostgresStore against a real PostgreSQL (global setup's server): the shared
 * conformance suite, plus what only a real server can show: losing and
 * regaining connections.
 */
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RegistryState } from "../../src/model/registry.ts";
import type { RuleSet } from "../../src/model/rules.ts";
import { PostgresStore } from "../../src/sources/postgres/index.ts";
import { createTestDatabase, serverUrl, withClient, type TestDatabase } from "../support/postgres.ts";
import { Recorder, sleep, waitUntil } from "./helpers.ts";
import { postgresSourceConformance } from "./postgres-conformance.ts";

describe("PostgresStore on PostgreSQL", () => {
  postgresSourceConformance({
    label: "postgres",
    open: async () => {
      const db = await createTestDatabase();
      return { url: db.url, stop: db.drop };
    },
  });
});

describe("PostgresStore on PostgreSQL: failures", () => {
  let db: TestDatabase;
  let admin: pg.Client;
  const stores: PostgresStore[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });
  // ALTER DATABASE ... ALLOW_CONNECTIONS must run from another database.
  const allowConnections = (allow: boolean) =>
    withClient(serverUrl(), (c) => c.query(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS ${allow}`));

  afterEach(async () => {
    await allowConnections(true);
    for (const store of stores.splice(0)) {
      await store.registry.stop();
      await store.rules.stop();
    }
  });
  afterAll(async () => {
    await admin?.end();
    await db?.drop();
  });

  it("detects PostgreSQL and listens", async () => {
    const store = new PostgresStore({ connectionString: db.url });
    stores.push(store);
    await store.rules.start(() => {});
    expect(store.backend).toBe("postgres");
    const listening = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query = 'LISTEN mesh_changes'",
      [db.name],
    );
    expect(listening.rows[0].n).toBe(1);
  });

  it("rejects start() with a clear error when the server is unreachable", async () => {
    const store = new PostgresStore({ connectionString: "postgres://postgres@127.0.0.1:1/nowhere", connectTimeoutMs: 2000 });
    await expect(store.registry.start(() => {})).rejects.toThrow(/cannot connect to PostgreSQL at 127\.0\.0\.1:1\/nowhere: .*ECONNREFUSED/);
    expect(store.registry.status()).toMatchObject({ ready: false });
  });

  it("reads the whole registry after the listener reconnects, so a change it missed is not lost", async () => {
    const app = `signalbox-resync-${process.pid}`;
    await admin.query("INSERT INTO mesh.services (name) VALUES ('resync') ON CONFLICT DO NOTHING");
    // No poll during the test: only the reconnect can find the missed change.
    const store = new PostgresStore({ connectionString: db.url, applicationName: app, pollIntervalMs: 60_000, reconnectMinMs: 50, reconnectMaxMs: 100 });
    stores.push(store);
    const registry = new Recorder<RegistryState>();
    await store.registry.start(registry.onChange);
    await admin.query("INSERT INTO mesh.instances (id, service, address, port) VALUES ('resync-1', 'resync', '10.0.0.1', 80)");
    await registry.until((s) => s.services.get("resync")?.instances.length === 1);
    const before = store.metrics();
    expect(before.incrementalRegistryLoads).toBe(1);

    // Only the listener goes (pooled connections stay), and cannot come back yet.
    await allowConnections(false);
    const killed = await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND query = 'LISTEN mesh_changes'",
      [app],
    );
    expect(killed.rowCount).toBe(1);
    await waitUntil(() => store.registry.status().degraded, 3000, "degraded status");
    await admin.query("UPDATE mesh.instances SET weight = 5 WHERE id = 'resync-1'");
    await sleep(300);
    expect(registry.latest.services.get("resync")?.instances[0]?.weight).toBe(1);

    await allowConnections(true);
    await registry.until((s) => s.services.get("resync")?.instances[0]?.weight === 5, 5000);
    const after = store.metrics();
    expect(after.fullRegistryLoads).toBe(before.fullRegistryLoads + 1);
    expect(after.incrementalRegistryLoads).toBe(before.incrementalRegistryLoads);
  });

  it("keeps the last state while disconnected, then resyncs what changed meanwhile", async () => {
    const app = `signalbox-test-${process.pid}`;
    await admin.query("INSERT INTO mesh.services (name) VALUES ('before') ON CONFLICT DO NOTHING");
    const store = new PostgresStore({
      connectionString: db.url,
      applicationName: app,
      pollIntervalMs: 200,
      reconnectMinMs: 50,
      reconnectMaxMs: 300,
    });
    stores.push(store);
    const registry = new Recorder<RegistryState>();
    const rules = new Recorder<RuleSet>();
    await store.registry.start(registry.onChange);
    await store.rules.start(rules.onChange);
    expect(registry.latest.services.has("before")).toBe(true);

    // Cut the store off: no new connections to this database, existing ones killed.
    await allowConnections(false);
    const killed = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [app]);
    expect(killed.rowCount).toBeGreaterThanOrEqual(2); // the listener and at least one pooled connection
    await waitUntil(() => store.registry.status().degraded, 3000, "degraded status");
    expect(store.rules.status().degraded).toBe(true);
    expect(store.registry.status().lastError).toMatch(/terminat|not currently accepting connections/);

    // Changes made while the store cannot see them.
    await admin.query("INSERT INTO mesh.services (name) VALUES ('during')");
    await admin.query("INSERT INTO mesh.http_routes (destination) VALUES ('during')");
    await sleep(1000);
    expect(registry.states.every((s) => s.services.has("before"))).toBe(true); // never an empty state
    expect(registry.latest.services.has("during")).toBe(false);
    expect(store.registry.status()).toMatchObject({ ready: true, degraded: true });

    await allowConnections(true);
    await registry.until((s) => s.services.has("during"), 10_000);
    await rules.until((r) => r.httpRoutes.some((x) => x.destination === "during"), 10_000);
    await waitUntil(() => !store.registry.status().degraded && !store.rules.status().degraded, 5000, "recovery");

    // And it listens again: a new change arrives promptly.
    const t0 = Date.now();
    await admin.query("INSERT INTO mesh.services (name) VALUES ('after')");
    await registry.until((s) => s.services.has("after"), 2000);
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
