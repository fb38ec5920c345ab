/**
 * The shared suite for PostgresStore, run against every server it supports (a
 * real PostgreSQL and the embedded PGlite): the RegistrySource conformance
 * suite, the rule source behaviour, status write-back and the schema itself.
 */
import { performance } from "node:perf_hooks";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RegistryState } from "../../src/model/registry.ts";
import type { HttpRoute, RuleSet } from "../../src/model/rules.ts";
import { migrate, PostgresStore, type PostgresStoreOptions } from "../../src/sources/postgres/index.ts";
import { migrations } from "../../src/sources/postgres/migrations/index.ts";
import { latencies, Recorder, sleep, summarizeLatencies } from "./helpers.ts";
import { registrySourceConformance, type RegistryDriver } from "./registry-conformance.ts";

export interface DatabaseUnderTest {
  /** A database nobody else uses during the suite. */
  readonly url: string;
  stop(): Promise<void>;
}

export interface PostgresBackendUnderTest {
  readonly label: string;
  open(): Promise<DatabaseUnderTest>;
  readonly storeOptions?: Partial<PostgresStoreOptions>;
}

const MAX_LATENCY_MS = 1000;

/** A store's registry or rule facet, typed by its state. */
interface FacetSource<T> {
  start(onChange: (state: T) => void): Promise<void>;
  stop(): Promise<void>;
}

export function postgresSourceConformance(backend: PostgresBackendUnderTest): void {
  let db: DatabaseUnderTest;
  let admin: pg.Client;
  const stores: PostgresStore[] = [];

  const newStore = (extra: Partial<PostgresStoreOptions> = {}): PostgresStore => {
    const store = new PostgresStore({ connectionString: db.url, ...backend.storeOptions, ...extra });
    stores.push(store);
    return store;
  };
  const sql = (text: string, values?: unknown[]) => admin.query(text, values);
  /** Runs the statements in one transaction, so the store sees them as one change. */
  const inOneTransaction = async (...statements: string[]): Promise<void> => {
    await sql("BEGIN");
    for (const statement of statements) await sql(statement);
    await sql("COMMIT");
  };
  const dbRevision = async () => (await sql("SELECT value::text AS v FROM mesh.revision")).rows[0].v as string;
  /** What a full read of one facet delivers now: a fresh store's first state. */
  async function firstState<T>(facet: (store: PostgresStore) => FacetSource<T>): Promise<T> {
    const recorder = new Recorder<T>();
    const source = facet(newStore());
    await source.start(recorder.onChange);
    await source.stop();
    return recorder.latest;
  }
  /** Waits until `source` has read the database's current revision. */
  async function caughtUp(source: { status(): { revision: string } }): Promise<void> {
    const revision = await dbRevision();
    const deadline = performance.now() + 5000;
    while (source.status().revision !== revision) {
      if (performance.now() > deadline) throw new Error(`store stuck at revision ${source.status().revision}, database at ${revision}`);
      await sleep(10);
    }
  }

  beforeAll(async () => {
    db = await backend.open();
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await migrate(admin);
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) {
      await store.registry.stop();
      await store.rules.stop();
    }
  });
  afterAll(async () => {
    await admin?.end();
    await db?.stop();
    console.log(summarizeLatencies(backend.label));
  });

  /** A store started by `start` prunes every row of `log` (all older than its retention) and raises the log's floor to the newest. */
  async function expectPruned(log: "registry_changes" | "route_changes", start: (store: PostgresStore) => Promise<void>): Promise<void> {
    const floor = async () => (await sql(`SELECT revision::text AS r FROM mesh.${log}_floor`)).rows[0].r as string;
    await sleep(20);
    const newest = (await sql(`SELECT max(revision)::text AS r FROM mesh.${log}`)).rows[0].r as string;
    // Retention 5 ms: everything committed 20 ms ago goes.
    await start(newStore({ changeLogRetentionMs: 5 }));
    await waitFor(async () => (await floor()) === newest, "the store's prune");
    expect((await sql(`SELECT count(*)::int AS n FROM mesh.${log} WHERE revision <= $1`, [newest])).rows[0].n).toBe(0);
  }

  async function reset(): Promise<void> {
    await sql(`TRUNCATE mesh.services, mesh.instances, mesh.subsets, mesh.http_routes,
                        mesh.http_route_destinations, mesh.rule_status RESTART IDENTITY CASCADE`);
  }

  describe("registry source", () => {
    const driver: RegistryDriver = {
      source: () => newStore().registry,
      reset,
      putService: async (s) => {
        await sql(
          `INSERT INTO mesh.services (name, protocol, port) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET protocol = excluded.protocol, port = excluded.port`,
          [s.name, s.protocol ?? "http", s.port ?? 80],
        );
      },
      putInstance: async (i) => {
        await sql(
          `INSERT INTO mesh.instances (id, service, address, port, mesh_port, labels, region, zone, weight, health)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (id) DO UPDATE SET service = excluded.service, address = excluded.address,
             port = excluded.port, mesh_port = excluded.mesh_port, labels = excluded.labels,
             region = excluded.region, zone = excluded.zone, weight = excluded.weight, health = excluded.health`,
          [i.id, i.service, i.address, i.port, i.meshPort ?? null, JSON.stringify(i.labels ?? {}),
           i.region ?? "", i.zone ?? "", i.weight ?? 1, i.health ?? "healthy"],
        );
      },
      removeInstance: async (id) => {
        await sql("DELETE FROM mesh.instances WHERE id = $1", [id]);
      },
      removeService: async (name) => {
        await sql("DELETE FROM mesh.services WHERE name = $1", [name]);
      },
      touchWithoutChange: async () => {
        // Bumps the revision and notifies, but the parsed state is identical.
        await sql("UPDATE mesh.services SET port = port");
        await sql("UPDATE mesh.instances SET labels = labels");
      },
    };
    registrySourceConformance(() => driver, { label: backend.label, maxLatencyMs: MAX_LATENCY_MS });
  });

  describe("rule source", () => {
    beforeEach(reset);

    async function startRules(store = newStore()): Promise<Recorder<RuleSet>> {
      const recorder = new Recorder<RuleSet>();
      await store.rules.start(recorder.onChange);
      return recorder;
    }

    async function insertRoute(columns: Record<string, unknown>): Promise<string> {
      const names = Object.keys(columns);
      const values = Object.values(columns).map((v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? JSON.stringify(v) : v));
      const placeholders = names.map((_, i) => `$${i + 1}`).join(", ");
      const result = await sql(`INSERT INTO mesh.http_routes (${names.join(", ")}) VALUES (${placeholders}) RETURNING id::text`, values);
      return result.rows[0].id as string;
    }

    it("maps subsets and routes into the model", async () => {
      await sql(`INSERT INTO mesh.subsets (service, name, selector) VALUES
                   ('reviews', 'v1', '{"version": "v1"}'), ('reviews', 'v2', '{"version": "v2", "track": "beta"}')`);
      await sql(`INSERT INTO mesh.subsets (service, name, selector, enabled) VALUES ('reviews', 'v3', '{}', false)`);
      const full = await insertRoute({
        destination: "reviews",
        source: "productpage",
        priority: 5,
        path_match: "prefix",
        path: "/api",
        method: "GET",
        headers: JSON.stringify([
          { name: "x-user", match: "exact", value: "jason" },
          { name: "x-debug", match: "present", invert: true },
        ]),
        query_params: JSON.stringify([{ name: "beta", match: "exact", value: "1" }]),
        timeout_ms: 2500,
        retry_on: ["5xx", "connect-failure"],
        retry_attempts: 3,
        per_try_timeout_ms: 800,
      });
      await sql(`INSERT INTO mesh.http_route_destinations (route_id, service, subset, weight) VALUES
                   ($1, 'reviews', 'v1', 80), ($1, 'reviews', 'v2', 20)`, [full]);
      const bare = await insertRoute({ destination: "ratings", timeout_ms: 1000 });
      await insertRoute({ destination: "ratings", enabled: false });

      const recorder = await startRules();
      const rules = recorder.latest;
      expect(rules.rejected).toEqual([]);
      expect(rules.subsets).toEqual([
        { service: "reviews", name: "v1", selector: { version: "v1" } },
        { service: "reviews", name: "v2", selector: { track: "beta", version: "v2" } },
      ]);
      const expected: HttpRoute[] = [
        {
          id: full,
          destination: "reviews",
          source: "productpage",
          priority: 5,
          path: { kind: "prefix", value: "/api" },
          method: "GET",
          headers: [
            { name: "x-user", kind: "exact", value: "jason", invert: false },
            { name: "x-debug", kind: "present", invert: true },
          ],
          queryParams: [{ name: "beta", kind: "exact", value: "1" }],
          destinations: [
            { service: "reviews", subset: "v1", weight: 80 },
            { service: "reviews", subset: "v2", weight: 20 },
          ],
          timeoutMs: 2500,
          retry: { retryOn: ["5xx", "connect-failure"], attempts: 3, perTryTimeoutMs: 800 },
        },
        {
          id: bare,
          destination: "ratings",
          source: null,
          priority: 0,
          path: null,
          method: null,
          headers: [],
          queryParams: [],
          // No destination rows: the whole destination service.
          destinations: [{ service: "ratings", subset: null, weight: 100 }],
          timeoutMs: 1000,
          retry: null,
        },
      ];
      expect(rules.httpRoutes).toEqual(expected);
      expect(newestStore().rules.status()).toMatchObject({ ready: true, degraded: false });
    });

    it(`reports rule changes within ${MAX_LATENCY_MS} ms`, async () => {
      const recorder = await startRules();
      const measure = async (label: string, write: () => Promise<unknown>, done: (r: RuleSet) => boolean) => {
        const waiting = recorder.next(done, MAX_LATENCY_MS * 3);
        const t0 = performance.now();
        await write();
        const { at } = await waiting;
        latencies.push({ label: `${backend.label} rules ${label}`, ms: at - t0 });
        expect(at - t0, `${label} latency`).toBeLessThan(MAX_LATENCY_MS);
      };
      let id = "";
      await measure("insert subset", () => sql(`INSERT INTO mesh.subsets VALUES ('web', 'v1', '{"v": "1"}')`), (r) => r.subsets.length === 1);
      await measure(
        "insert route",
        async () => (id = await insertRoute({ destination: "web", path_match: "exact", path: "/" })),
        (r) => r.httpRoutes.length === 1,
      );
      await measure(
        "insert destination",
        () => sql("INSERT INTO mesh.http_route_destinations (route_id, service, subset, weight) VALUES ($1, 'web', 'v1', 1)", [id]),
        (r) => r.httpRoutes[0]?.destinations[0]?.subset === "v1",
      );
      await measure("disable route", () => sql("UPDATE mesh.http_routes SET enabled = false"), (r) => r.httpRoutes.length === 0);
      await measure("truncate", () => sql("TRUNCATE mesh.subsets CASCADE"), (r) => r.subsets.length === 0);
    });

    it("folds a burst of 100 committed updates into few reloads", async () => {
      const id = await insertRoute({ destination: "burst" });
      const store = newStore();
      const recorder = await startRules(store);
      const before = store.metrics();
      for (let i = 1; i <= 100; i++) {
        await sql("UPDATE mesh.http_routes SET priority = $1 WHERE id = $2", [i, id]);
      }
      await recorder.until((r) => r.httpRoutes[0]?.priority === 100);
      await sleep(300); // let any trailing reload finish
      const reloads = store.metrics().reloads - before.reloads;
      const deliveries = store.metrics().deliveries - before.deliveries;
      console.log(`${backend.label}: 100 updates -> ${reloads} reloads, ${deliveries} onChange calls`);
      expect(reloads).toBeLessThanOrEqual(15);
      expect(deliveries).toBeLessThanOrEqual(reloads);
      expect(recorder.latest.httpRoutes[0]?.priority).toBe(100);
    });

    it("rejects a row with malformed JSON columns and keeps the others", async () => {
      const good = await insertRoute({ destination: "shop", path_match: "prefix", path: "/" });
      const bad = await insertRoute({
        destination: "shop",
        headers: JSON.stringify([{ name: "x-user", match: "glob", value: "a*" }, { nmae: "typo", match: "present" }]),
      });
      const badQuery = await insertRoute({ destination: "shop", query_params: JSON.stringify([{ name: "q", match: "regex" }]) });
      const recorder = await startRules();
      const rules = recorder.latest;
      expect(rules.httpRoutes.map((r) => r.id)).toEqual([good]);
      expect(rules.rejected.map((r) => [r.kind, r.id])).toEqual([
        ["http_route", bad],
        ["http_route", badQuery],
      ]);
      const message = rules.rejected[0]!.message;
      expect(message).toContain('headers[0].match: must be one of exact, prefix, suffix, regex, present, got "glob"');
      expect(message).toContain('headers[1]: unknown key "nmae"');
      expect(rules.rejected[1]!.message).toContain('query_params[0].value: required with match "regex"');

      // Fixing the row brings it back.
      await sql(`UPDATE mesh.http_routes SET headers = '[{"name": "x-user", "match": "prefix", "value": "a"}]' WHERE id = $1`, [bad]);
      const fixed = await recorder.until((r) => r.httpRoutes.length === 2);
      expect(fixed.state.rejected.map((r) => r.id)).toEqual([badQuery]);
    });

    it("writes rule status that authors can read through the views", async () => {
      await sql(`INSERT INTO mesh.subsets VALUES ('cart', 'v1', '{"version": "v1"}')`);
      const ok = await insertRoute({ destination: "cart" });
      const split = await insertRoute({ destination: "cart", priority: 1 });
      const malformed = await insertRoute({ destination: "cart", headers: JSON.stringify([{ name: "x", match: "nope", value: "1" }]) });
      const disabled = await insertRoute({ destination: "cart", enabled: false });
      const store = newStore();
      const recorder = await startRules(store);
      const meshRejection = { kind: "http_route" as const, id: split, message: "weights of destinations add up to 0" };
      await store.rules.publishRuleStatus(recorder.latest, [meshRejection]);

      const view = await sql("SELECT id::text, state, message FROM mesh.http_routes_status ORDER BY id");
      expect(view.rows).toEqual([
        { id: ok, state: "accepted", message: "" },
        { id: split, state: "rejected", message: "weights of destinations add up to 0" },
        { id: malformed, state: "rejected", message: expect.stringContaining("headers[0].match") },
        { id: disabled, state: "disabled", message: null },
      ]);
      const subsetView = await sql("SELECT service, name, state FROM mesh.subsets_status");
      expect(subsetView.rows).toEqual([{ service: "cart", name: "v1", state: "accepted" }]);

      // Publishing the same status again writes nothing.
      const rowVersions = "SELECT kind, rule_id, xmin::text AS xmin, checked_at FROM mesh.rule_status ORDER BY 1, 2";
      const before = (await sql(rowVersions)).rows;
      await store.rules.publishRuleStatus(recorder.latest, [meshRejection]);
      expect((await sql(rowVersions)).rows).toEqual(before);

      // A route that is deleted loses its status row; a new one is pending until checked.
      await sql("DELETE FROM mesh.http_routes WHERE id = $1", [ok]);
      const fresh = await insertRoute({ destination: "cart", priority: 9 });
      const next = await recorder.until((r) => r.httpRoutes.some((x) => x.id === fresh));
      expect((await sql("SELECT state FROM mesh.http_routes_status WHERE id = $1", [fresh])).rows).toEqual([{ state: "pending" }]);
      await store.rules.publishRuleStatus(next.state, []);
      const after = await sql("SELECT rule_id, state FROM mesh.rule_status WHERE kind = 'http_route' ORDER BY rule_id::bigint");
      expect(after.rows).toEqual([
        { rule_id: split, state: "accepted" },
        { rule_id: malformed, state: "rejected" },
        { rule_id: fresh, state: "accepted" },
      ]);
      // Status writes do not count as changes (no reload loop).
      await sleep(300);
      const reloads = store.metrics().reloads;
      await sleep(400);
      expect(store.metrics().reloads).toBe(reloads);
    });

    it("runs the registry and rule facets on one store independently", async () => {
      await sql("INSERT INTO mesh.services (name) VALUES ('solo')");
      const store = newStore();
      const rules = await startRules(store);
      expect(store.registry.status().ready).toBe(false);
      const registry = new Recorder<RegistryState>();
      await store.registry.start(registry.onChange);
      expect(registry.latest.services.has("solo")).toBe(true);
      await store.registry.stop();
      await insertRoute({ destination: "solo" });
      await rules.until((r) => r.httpRoutes.length === 1);
      expect(store.rules.status()).toMatchObject({ ready: true, degraded: false });
    });
  });

  describe("incremental registry reloads", () => {
    beforeEach(reset);

    const fullReload = () => firstState<RegistryState>((store) => store.registry);

    async function seed(services: Record<string, number>): Promise<void> {
      for (const [name, instances] of Object.entries(services)) {
        await sql("INSERT INTO mesh.services (name, port) VALUES ($1, 8080)", [name]);
        for (let i = 1; i <= instances; i++) {
          await sql(
            `INSERT INTO mesh.instances (id, service, address, port, labels, zone) VALUES ($1, $2, $3, 8080, $4, $5)`,
            [`${name}-${i}`, name, `10.0.${name.length}.${i}`, JSON.stringify({ version: `v${i % 2}` }), `z${i % 3}`],
          );
        }
      }
    }

    /** A store watching the registry, and a way to wait until it has caught up with the database. */
    async function watch(extra: Partial<PostgresStoreOptions> = {}) {
      const store = newStore(extra);
      const recorder = new Recorder<RegistryState>();
      await store.registry.start(recorder.onChange);
      return { store, recorder, caughtUp: () => caughtUp(store.registry) };
    }

    it("delivers exactly what a full reload would, reading only the changed services", async () => {
      await seed({ alpha: 3, bravo: 3, charlie: 2, delta: 2, echo: 2, foxtrot: 1 });
      const { store, recorder, caughtUp } = await watch();
      expect(store.metrics()).toMatchObject({ fullRegistryLoads: 1, incrementalRegistryLoads: 0 });

      const steps: { what: string; touched: string[]; write: () => Promise<unknown> }[] = [
        {
          what: "instance insert",
          touched: ["alpha"],
          write: () => sql("INSERT INTO mesh.instances (id, service, address, port) VALUES ('alpha-0', 'alpha', '10.9.9.9', 9000)"),
        },
        { what: "instance update", touched: ["bravo"], write: () => sql("UPDATE mesh.instances SET weight = 7, health = 'draining' WHERE id = 'bravo-2'") },
        { what: "instance delete", touched: ["charlie"], write: () => sql("DELETE FROM mesh.instances WHERE id = 'charlie-1'") },
        {
          what: "service insert (sorting between others) with instances",
          touched: ["bravo-two"],
          write: () =>
            inOneTransaction(
              "INSERT INTO mesh.services (name, protocol, port) VALUES ('bravo-two', 'grpc', 9090)",
              "INSERT INTO mesh.instances (id, service, address, port) VALUES ('b2-1', 'bravo-two', '10.2.2.1', 9090), ('b2-2', 'bravo-two', '10.2.2.2', 9090)",
            ),
        },
        { what: "service delete (cascading to its instances)", touched: ["delta"], write: () => sql("DELETE FROM mesh.services WHERE name = 'delta'") },
        { what: "instance moved to another service", touched: ["echo", "foxtrot"], write: () => sql("UPDATE mesh.instances SET service = 'foxtrot' WHERE id = 'echo-1'") },
        { what: "service renamed (instances follow)", touched: ["foxtrot", "zulu"], write: () => sql("UPDATE mesh.services SET name = 'zulu' WHERE name = 'foxtrot'") },
        { what: "service updated", touched: ["charlie"], write: () => sql("UPDATE mesh.services SET protocol = 'http2', port = 81 WHERE name = 'charlie'") },
        {
          what: "several services in one transaction",
          touched: ["alpha", "bravo", "echo", "aardvark"],
          write: () =>
            inOneTransaction(
              "UPDATE mesh.instances SET zone = 'moved' WHERE id = 'alpha-1'",
              "INSERT INTO mesh.instances (id, service, address, port) VALUES ('bravo-9', 'bravo', '10.1.1.9', 8080)",
              "DELETE FROM mesh.instances WHERE service = 'echo'",
              "INSERT INTO mesh.services (name) VALUES ('aardvark')",
            ),
        },
      ];

      for (const step of steps) {
        const before = recorder.latest;
        const loads = store.metrics();
        await step.write();
        await caughtUp();
        const after = recorder.latest;
        expect(after, step.what).not.toBe(before);
        expect(store.metrics().incrementalRegistryLoads, step.what).toBeGreaterThan(loads.incrementalRegistryLoads);
        expect(store.metrics().fullRegistryLoads, step.what).toBe(loads.fullRegistryLoads);

        const full = await fullReload();
        expect(after, step.what).toEqual(full);
        expect([...after.services.keys()], step.what).toEqual([...full.services.keys()]);
        for (const [name, service] of before.services) {
          if (!step.touched.includes(name)) expect(after.services.get(name), `${step.what}: ${name} kept`).toBe(service);
        }
      }

      // Inside a changed service, unchanged instances keep their identity too.
      const before = recorder.latest;
      await sql("UPDATE mesh.instances SET weight = 3 WHERE id = 'bravo-1'");
      await caughtUp();
      const bravoBefore = before.services.get("bravo")!;
      const bravoAfter = recorder.latest.services.get("bravo")!;
      expect(bravoAfter).not.toBe(bravoBefore);
      expect(bravoAfter.instances.find((i) => i.id === "bravo-1")?.weight).toBe(3);
      for (const instance of bravoAfter.instances) {
        if (instance.id !== "bravo-1") expect(instance).toBe(bravoBefore.instances.find((i) => i.id === instance.id));
      }

      // A write that changes nothing visible reads one service and delivers nothing.
      const count = recorder.count;
      const incremental = store.metrics().incrementalRegistryLoads;
      await sql("UPDATE mesh.instances SET labels = labels WHERE id = 'alpha-2'");
      await caughtUp();
      expect(store.metrics().incrementalRegistryLoads).toBeGreaterThan(incremental);
      expect(recorder.count).toBe(count);
    });

    it("reads everything after a TRUNCATE, or when many services changed", async () => {
      await seed({ one: 1, two: 1 });
      const { store, recorder, caughtUp } = await watch();
      await sql("INSERT INTO mesh.services (name) SELECT 'bulk-' || g FROM generate_series(1, 20) g");
      await caughtUp();
      expect(store.metrics()).toMatchObject({ fullRegistryLoads: 2, incrementalRegistryLoads: 0 });
      expect(recorder.latest).toEqual(await fullReload());
      expect(recorder.latest.services.size).toBe(22);

      await sql("TRUNCATE mesh.instances");
      await caughtUp();
      expect(store.metrics()).toMatchObject({ fullRegistryLoads: 3, incrementalRegistryLoads: 0 });
      expect(recorder.latest.services.get("one")?.instances).toEqual([]);
      expect(recorder.latest).toEqual(await fullReload());
    });

    it("reads everything when the log was pruned past the store's revision, losing no change", async () => {
      await seed({ kilo: 2, lima: 1 });
      const { store, recorder, caughtUp } = await watch();
      // As another replica pruning in the same transaction would: the change's
      // own log row is gone and the floor is above the store's revision.
      await inOneTransaction(
        "UPDATE mesh.instances SET weight = 9 WHERE id = 'kilo-1'",
        "DELETE FROM mesh.registry_changes",
        "UPDATE mesh.registry_changes_floor SET revision = (SELECT value FROM mesh.revision)",
      );
      await caughtUp();
      expect(recorder.latest.services.get("kilo")?.instances[0]?.weight).toBe(9);
      expect(store.metrics()).toMatchObject({ fullRegistryLoads: 2, incrementalRegistryLoads: 0 });

      // From the new floor on, deltas work again.
      await sql("UPDATE mesh.instances SET weight = 8 WHERE id = 'kilo-2'");
      await caughtUp();
      expect(recorder.latest.services.get("kilo")?.instances[1]?.weight).toBe(8);
      expect(store.metrics()).toMatchObject({ fullRegistryLoads: 2, incrementalRegistryLoads: 1 });
      expect(recorder.latest).toEqual(await fullReload());
    });

    it("prunes old log rows and raises the floor", async () => {
      await seed({ mike: 1 });
      await expectPruned("registry_changes", (store) => store.registry.start(() => {}));
    });
  });

  describe("incremental rule reloads", () => {
    const RULE_TABLES = `mesh.subsets, mesh.http_routes, mesh.http_route_destinations, mesh.service_dependencies,
      mesh.timeout_policies, mesh.http_route_rewrites, mesh.circuit_breakers, mesh.rule_status`;
    beforeEach(async () => {
      await sql(`TRUNCATE ${RULE_TABLES} RESTART IDENTITY CASCADE`);
    });
    afterAll(async () => {
      await sql(`TRUNCATE ${RULE_TABLES} RESTART IDENTITY CASCADE`);
    });

    const wholeRead = () => firstState<RuleSet>((store) => store.rules);

    it("reads only the groups of rule tables a write touched, and delivers what a whole read would", async () => {
      await sql(`INSERT INTO mesh.subsets (service, name, selector) VALUES ('api', 'v1', '{"version": "v1"}')`);
      await sql("INSERT INTO mesh.http_routes (id, destination, path_match, path) VALUES (1, 'api', 'prefix', '/api/')");
      await sql("SELECT setval('mesh.http_routes_id_seq', 10)");
      await sql("INSERT INTO mesh.http_route_rewrites (route_id, prefix) VALUES (1, '/v2/')");
      const store = newStore();
      const recorder = new Recorder<RuleSet>();
      await store.rules.start(recorder.onChange);
      expect(store.metrics().ruleGroupReads).toEqual({ subsets: 1, routes: 1, dependencies: 1, routePolicies: 1, clusterPolicies: 1 });

      const steps: { what: string; groups: string[]; write: () => Promise<unknown> }[] = [
        { what: "a subset", groups: ["subsets"], write: () => sql(`INSERT INTO mesh.subsets (service, name, selector) VALUES ('api', 'v2', '{"version": "v2"}')`) },
        // Route policies are read joined with their routes: a route write re-reads them too.
        { what: "a route", groups: ["routes", "routePolicies"], write: () => sql("INSERT INTO mesh.http_routes (destination, priority) VALUES ('web', 5)") },
        { what: "a split", groups: ["routes"], write: () => sql("INSERT INTO mesh.http_route_destinations (route_id, service, subset, weight) VALUES (1, 'api', 'v1', 100)") },
        { what: "a dependency", groups: ["dependencies"], write: () => sql("INSERT INTO mesh.service_dependencies (service, depends_on) VALUES ('web', 'api')") },
        { what: "a timeout policy", groups: ["routePolicies"], write: () => sql("INSERT INTO mesh.timeout_policies (destination, timeout_ms) VALUES ('api', 2500)") },
        { what: "a circuit breaker", groups: ["clusterPolicies"], write: () => sql("INSERT INTO mesh.circuit_breakers (destination, max_requests) VALUES ('api', 10)") },
        // The rewrite of a disabled route is dropped: only a re-read of the route policies sees that.
        { what: "a route disabled", groups: ["routes", "routePolicies"], write: () => sql("UPDATE mesh.http_routes SET enabled = false WHERE id = 1") },
        {
          what: "two groups in one transaction",
          groups: ["subsets", "dependencies"],
          write: () =>
            inOneTransaction(
              "DELETE FROM mesh.subsets WHERE name = 'v2'",
              "DELETE FROM mesh.service_dependencies",
            ),
        },
      ];
      for (const step of steps) {
        const before = store.metrics().ruleGroupReads;
        const state = recorder.latest;
        await step.write();
        await caughtUp(store.rules);
        const after = store.metrics().ruleGroupReads;
        const read = Object.keys(after).filter((group) => after[group as keyof typeof after] > before[group as keyof typeof before]);
        expect(read.sort(), step.what).toEqual([...step.groups].sort());
        expect(recorder.latest, step.what).not.toBe(state);
        expect(recorder.latest, step.what).toEqual(await wholeRead());
      }
      expect(recorder.latest.httpRoutes.map((route) => route.id)).toEqual(["11"]);
    });

    describe("through the route log", () => {
      /** Routes 1–6 for api and web, splits on 1, 2 and 4, and subsets they name. */
      async function seedRoutes(): Promise<void> {
        await sql(`INSERT INTO mesh.subsets (service, name, selector) VALUES ('api', 'v1', '{"version": "v1"}'), ('api', 'v2', '{"version": "v2"}')`);
        await sql(`INSERT INTO mesh.http_routes (destination, priority, path_match, path)
                   SELECT CASE WHEN g % 2 = 0 THEN 'web' ELSE 'api' END, g, 'prefix', '/r' || g FROM generate_series(1, 6) g`);
        await sql(`INSERT INTO mesh.http_route_destinations (route_id, service, subset, weight) VALUES
                   (1, 'api', 'v1', 90), (1, 'api', 'v2', 10), (2, 'api', NULL, 100), (4, 'api', 'v2', 30), (4, 'api', 'v1', 70)`);
      }

      async function watchRules() {
        const store = newStore();
        const recorder = new Recorder<RuleSet>();
        await store.rules.start(recorder.onChange);
        return { store, recorder };
      }

      it("reads only the routes a write touched and delivers what a whole read would, keeping the others' objects", async () => {
        await seedRoutes();
        const { store, recorder } = await watchRules();
        const steps: { what: string; touched: string[]; write: () => Promise<unknown> }[] = [
          {
            what: "a route with its split, in one transaction",
            touched: ["7"],
            write: () =>
              inOneTransaction(
                "INSERT INTO mesh.http_routes (destination, priority, headers) VALUES ('api', 0, '[{\"name\": \"x-canary\", \"match\": \"exact\", \"value\": \"1\"}]')",
                "INSERT INTO mesh.http_route_destinations (route_id, service, subset, weight) VALUES (7, 'api', 'v2', 100)",
              ),
          },
          { what: "a route's priority", touched: ["2"], write: () => sql("UPDATE mesh.http_routes SET priority = 50 WHERE id = 2") },
          { what: "a route deleted, its split with it", touched: ["4"], write: () => sql("DELETE FROM mesh.http_routes WHERE id = 4") },
          { what: "a destination added", touched: ["3"], write: () => sql("INSERT INTO mesh.http_route_destinations (route_id, service, weight) VALUES (3, 'web', 5)") },
          { what: "a weight", touched: ["1"], write: () => sql("UPDATE mesh.http_route_destinations SET weight = 80 WHERE route_id = 1 AND subset = 'v1'") },
          {
            what: "a destination moved to another route",
            touched: ["1", "5"],
            write: () => sql("UPDATE mesh.http_route_destinations SET route_id = 5 WHERE route_id = 1 AND subset = 'v2'"),
          },
          { what: "a route disabled", touched: ["6"], write: () => sql("UPDATE mesh.http_routes SET enabled = false WHERE id = 6") },
          { what: "a route enabled again", touched: ["6"], write: () => sql("UPDATE mesh.http_routes SET enabled = true WHERE id = 6") },
          {
            what: "a route made malformed (rejected)",
            touched: ["3"],
            write: () => sql(`UPDATE mesh.http_routes SET headers = '[{"name": "x", "match": "glob", "value": "a"}]' WHERE id = 3`),
          },
          { what: "the malformed route fixed", touched: ["3"], write: () => sql("UPDATE mesh.http_routes SET headers = '[]' WHERE id = 3") },
          // Renaming a subset cascades to the destinations that name it: their routes change.
          { what: "a subset renamed", touched: ["5", "7"], write: () => sql("UPDATE mesh.subsets SET name = 'v2b' WHERE name = 'v2'") },
        ];
        for (const step of steps) {
          const before = recorder.latest;
          const patches = store.metrics().routePatches;
          await step.write();
          await caughtUp(store.rules);
          expect(store.metrics().routePatches, step.what).toBe(patches + 1);
          const after = recorder.latest;
          expect(after, step.what).not.toBe(before);
          expect(after, step.what).toEqual(await wholeRead());
          for (const route of before.httpRoutes) {
            if (step.touched.includes(route.id)) continue;
            expect(after.httpRoutes.find((r) => r.id === route.id), `${step.what}: route ${route.id} kept`).toBe(route);
          }
        }
        expect(recorder.latest.rejected).toEqual([]);

        // A statement that matches no row moves the table's revision but names no
        // route: nothing is read beyond the log, and nothing is delivered.
        const count = recorder.count;
        const patches = store.metrics().routePatches;
        await sql("UPDATE mesh.http_routes SET priority = 0 WHERE id = 999");
        await caughtUp(store.rules);
        expect(store.metrics().routePatches).toBe(patches + 1);
        expect(recorder.count).toBe(count);
      });

      it("reads every route after a TRUNCATE, when many routes changed, or when the log was pruned past the last read", async () => {
        await seedRoutes();
        const { store, recorder } = await watchRules();
        const wholeReads = () => store.metrics().ruleGroupReads.routes - store.metrics().routePatches;
        expect(wholeReads()).toBe(1);

        await sql("INSERT INTO mesh.http_routes (destination, priority) SELECT 'api', 100 + g FROM generate_series(1, 20) g");
        await caughtUp(store.rules);
        expect(wholeReads()).toBe(2);
        expect(recorder.latest.httpRoutes).toHaveLength(26);
        expect(recorder.latest).toEqual(await wholeRead());

        // As another replica pruning in the same transaction would.
        await inOneTransaction(
          "UPDATE mesh.http_routes SET priority = 7 WHERE id = 1",
          "DELETE FROM mesh.route_changes",
          "UPDATE mesh.route_changes_floor SET revision = (SELECT value FROM mesh.revision)",
        );
        await caughtUp(store.rules);
        expect(wholeReads()).toBe(3);
        expect(recorder.latest.httpRoutes.find((route) => route.id === "1")?.priority).toBe(7);

        // From the new floor on, patches work again.
        await sql("UPDATE mesh.http_routes SET priority = 8 WHERE id = 1");
        await caughtUp(store.rules);
        expect(wholeReads()).toBe(3);
        expect(recorder.latest.httpRoutes.find((route) => route.id === "1")?.priority).toBe(8);

        await sql("TRUNCATE mesh.http_routes CASCADE");
        await caughtUp(store.rules);
        expect(wholeReads()).toBe(4);
        expect(recorder.latest.httpRoutes).toEqual([]);
        expect(recorder.latest).toEqual(await wholeRead());
      });

      it("prunes old log rows and raises the floor", async () => {
        await seedRoutes();
        await expectPruned("route_changes", (store) => store.rules.start(() => {}));
      });
    });

    it("reads no rule table and delivers nothing when only the registry moved", async () => {
      await sql("INSERT INTO mesh.http_routes (destination) VALUES ('api')");
      // The poll notices the registry write's revision and reloads everything.
      const store = newStore({ pollIntervalMs: 50 });
      const recorder = new Recorder<RuleSet>();
      await store.rules.start(recorder.onChange);
      const reads = store.metrics().ruleGroupReads;
      const loads = store.metrics().ruleLoads;
      await sql("INSERT INTO mesh.services (name) VALUES ('rule-reload-probe')");
      await caughtUp(store.rules);
      expect(store.metrics().ruleLoads).toBeGreaterThan(loads);
      expect(store.metrics().ruleGroupReads).toEqual(reads);
      expect(recorder.count).toBe(1);
      await sql("DELETE FROM mesh.services WHERE name = 'rule-reload-probe'");
    });
  });

  describe("schema", () => {
    it("applies migrations once, also when replicas race", async () => {
      const again = await migrate(admin);
      expect(again.applied).toEqual([]);
      const racers = await Promise.all(
        [1, 2, 3].map(async () => {
          const client = new pg.Client({ connectionString: db.url });
          await client.connect();
          try {
            return await migrate(client);
          } finally {
            await client.end();
          }
        }),
      );
      expect(racers.flatMap((r) => r.applied)).toEqual([]);
      const recorded = await sql("SELECT version, name FROM mesh.schema_migrations ORDER BY version");
      expect(recorded.rows).toEqual(migrations.map((m) => ({ version: m.version, name: m.name })));
      const latest = Math.max(...migrations.map((m) => m.version));
      expect(racers.every((r) => r.current === latest)).toBe(true);
    });

    it("bumps the revision on every write and not on status writes", async () => {
      const revision = async () => (await sql("SELECT value::text AS v FROM mesh.revision")).rows[0].v as string;
      const r0 = await revision();
      await sql("INSERT INTO mesh.services (name) VALUES ('rev')");
      const r1 = await revision();
      expect(BigInt(r1)).toBeGreaterThan(BigInt(r0));
      await sql("INSERT INTO mesh.rule_status (kind, rule_id, state) VALUES ('subset', 'x/y', 'accepted')");
      expect(await revision()).toBe(r1);
      await sql("UPDATE mesh.services SET port = 81 WHERE name = 'rev'");
      const updated = await sql("SELECT updated_at > created_at AS touched FROM mesh.services WHERE name = 'rev'");
      expect(updated.rows[0].touched).toBe(true);
    });

    describe("constraints refuse typos", () => {
      beforeAll(async () => {
        await reset();
        await sql("INSERT INTO mesh.services (name) VALUES ('web')");
        await sql(`INSERT INTO mesh.subsets VALUES ('web', 'v1', '{"version": "v1"}')`);
        await sql("INSERT INTO mesh.http_routes (destination) VALUES ('web')"); // id 1 after RESTART IDENTITY
        await sql("INSERT INTO mesh.http_route_destinations (route_id, service, subset, weight) VALUES (1, 'web', 'v1', 100)");
      });

      const cases: [string, string, string][] = [
        ["upper-case service name", "INSERT INTO mesh.services (name) VALUES ('Web_Frontend')", "services_name_is_dns_label"],
        ["unknown protocol", "INSERT INTO mesh.services (name, protocol) VALUES ('a', 'htpp')", "services_protocol_known"],
        ["port out of range", "INSERT INTO mesh.services (name, port) VALUES ('a', 70000)", "services_port_range"],
        ["instance of unknown service", "INSERT INTO mesh.instances (id, service, address, port) VALUES ('i', 'nope', '10.0.0.1', 80)", "instances_service_fkey"],
        ["numeric label value", `INSERT INTO mesh.instances (id, service, address, port, labels) VALUES ('i', 'web', '10.0.0.1', 80, '{"v": 1}')`, "instances_labels_string_map"],
        ["empty address", "INSERT INTO mesh.instances (id, service, address, port) VALUES ('i', 'web', '', 80)", "instances_address_no_spaces"],
        ["weight above 128", "INSERT INTO mesh.instances (id, service, address, port, weight) VALUES ('i', 'web', 'h', 80, 500)", "instances_weight_range"],
        ["unknown health", "INSERT INTO mesh.instances (id, service, address, port, health) VALUES ('i', 'web', 'h', 80, 'up')", "instances_health_known"],
        ["selector that is not a string map", `INSERT INTO mesh.subsets VALUES ('web', 'v2', '["v2"]')`, "subsets_selector_string_map"],
        ["relative prefix path", "INSERT INTO mesh.http_routes (destination, path_match, path) VALUES ('web', 'prefix', 'api')", "http_routes_path_absolute"],
        ["path without path_match", "INSERT INTO mesh.http_routes (destination, path) VALUES ('web', '/api')", "http_routes_path_pair"],
        ["unknown path_match", "INSERT INTO mesh.http_routes (destination, path_match, path) VALUES ('web', 'glob', '/')", "http_routes_path_match_known"],
        ["lower-case method", "INSERT INTO mesh.http_routes (destination, method) VALUES ('web', 'get')", "http_routes_method_upper_case"],
        ["headers as an object", `INSERT INTO mesh.http_routes (destination, headers) VALUES ('web', '{"x": "y"}')`, "http_routes_headers_object_array"],
        ["misspelt retry condition", "INSERT INTO mesh.http_routes (destination, retry_on, retry_attempts) VALUES ('web', '{5xx,conect-failure}', 2)", "http_routes_retry_on_known"],
        ["retry_on without attempts", "INSERT INTO mesh.http_routes (destination, retry_on) VALUES ('web', '{5xx}')", "http_routes_retry_pair"],
        ["too many attempts", "INSERT INTO mesh.http_routes (destination, retry_on, retry_attempts) VALUES ('web', '{5xx}', 11)", "http_routes_retry_attempts_range"],
        ["zero timeout", "INSERT INTO mesh.http_routes (destination, timeout_ms) VALUES ('web', 0)", "http_routes_timeout_positive"],
        ["negative weight", "INSERT INTO mesh.http_route_destinations (route_id, service, weight) VALUES (1, 'web', -1)", "http_route_destinations_weight_not_negative"],
        ["unknown subset", "INSERT INTO mesh.http_route_destinations (route_id, service, subset, weight) VALUES (1, 'web', 'v9', 1)", "http_route_destinations_subset_fk"],
        ["destination of unknown route", "INSERT INTO mesh.http_route_destinations (route_id, service, weight) VALUES (999, 'web', 1)", "http_route_destinations_route_id_fkey"],
        ["duplicate destination", "INSERT INTO mesh.http_route_destinations (route_id, service, subset, weight) VALUES (1, 'web', 'v1', 5)", "http_route_destinations_unique"],
        ["deleting a subset in use", "DELETE FROM mesh.subsets WHERE name = 'v1'", "http_route_destinations_subset_fk"],
        ["unknown rule status", "INSERT INTO mesh.rule_status (kind, rule_id, state) VALUES ('http_route', '1', 'ok')", "rule_status_state_known"],
      ];
      it.each(cases)("refuses %s", async (_what, statement, constraint) => {
        const error = await sql(statement).then(
          () => null,
          (err: unknown) => err as { constraint?: string; message: string },
        );
        expect(error, `${statement} should fail`).not.toBeNull();
        expect(error!.constraint ?? error!.message).toBe(constraint);
      });

      it("accepts a null subset (the whole service) and renames cascade", async () => {
        await sql("INSERT INTO mesh.http_route_destinations (route_id, service, subset, weight) VALUES (1, 'web', null, 0)");
        await sql("UPDATE mesh.subsets SET name = 'v1-renamed' WHERE name = 'v1'");
        const rows = await sql("SELECT subset FROM mesh.http_route_destinations ORDER BY id");
        expect(rows.rows).toEqual([{ subset: "v1-renamed" }, { subset: null }]);
      });
    });
  });

  async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
    const deadline = performance.now() + 5000;
    while (!(await check())) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  }

  function newestStore(): PostgresStore {
    const store = stores.at(-1);
    if (!store) throw new Error("no store");
    return store;
  }
}
