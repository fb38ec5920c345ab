/**
 * Keeps docs/rules.md honest: runs its ```sql examples in order on a fresh
 * database, checks Signalbox reads them without rejections, and checks that
 * every ```sql refused statement fails with the constraint its comment names.
 */
import { readFile } from "node:fs/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegistryState } from "../../src/model/registry.ts";
import type { RuleSet } from "../../src/model/rules.ts";
import { PostgresStore } from "../../src/sources/postgres/index.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";
import { expectRefusedAsDocumented, refusedStatements } from "../support/refused-sql.ts";
import { Recorder } from "./helpers.ts";

const doc = await readFile(new URL("../../docs/rules.md", import.meta.url), "utf8");
const blocks = [...doc.matchAll(/```(sql(?: refused)?)\n([\s\S]*?)```/g)].map((m) => ({ refused: m[1] !== "sql", sql: m[2]! }));

describe("docs/rules.md examples", () => {
  let db: TestDatabase;
  let client: pg.Client;
  let store: PostgresStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    store = new PostgresStore({ connectionString: db.url });
    await store.rules.start(() => {}); // creates the schema
    await store.rules.stop();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  it("has runnable and refused examples", () => {
    expect(blocks.filter((b) => !b.refused).length).toBeGreaterThanOrEqual(6);
    expect(blocks.some((b) => b.refused)).toBe(true);
  });

  it("runs the examples and Signalbox accepts what they write", async () => {
    for (const block of blocks.filter((b) => !b.refused)) {
      await client.query(block.sql);
    }
    store = new PostgresStore({ connectionString: db.url });
    const registry = new Recorder<RegistryState>();
    const rules = new Recorder<RuleSet>();
    await store.registry.start(registry.onChange);
    await store.rules.start(rules.onChange);
    try {
      expect([...registry.latest.services.keys()]).toEqual(["productpage", "reviews"]);
      expect(registry.latest.services.get("reviews")!.instances.map((i) => i.labels.version)).toEqual(["v1", "v1", "v2"]);
      const set = rules.latest;
      expect(set.rejected).toEqual([]);
      expect(set.subsets.map((s) => s.name)).toEqual(["v1", "v2"]);
      const byPriority = new Map(set.httpRoutes.map((r) => [r.priority, r]));
      expect(byPriority.get(100)!.destinations.map((d) => [d.subset, d.weight])).toEqual([["v1", 50], ["v2", 50]]);
      expect(byPriority.get(10)!.headers).toEqual([{ name: "x-user", kind: "exact", value: "jason", invert: false }]);
      expect(byPriority.get(50)).toMatchObject({
        timeoutMs: 2000,
        retry: { retryOn: ["5xx", "connect-failure"], attempts: 3, perTryTimeoutMs: 500 },
        destinations: [{ service: "reviews", subset: null, weight: 100 }],
      });
      expect(set.httpRoutes.find((r) => r.source === "productpage")).toMatchObject({
        path: { kind: "prefix", value: "/reviews/" },
        method: "GET",
      });
    } finally {
      await store.registry.stop();
      await store.rules.stop();
    }
  });

  it("refuses the statements the docs say are refused, naming the constraint", async () => {
    const statements = refusedStatements(blocks.filter((b) => b.refused).map((b) => b.sql));
    expect(statements.length).toBeGreaterThanOrEqual(4);
    await expectRefusedAsDocumented(statements, (sql) => client.query(sql));
  });
});
