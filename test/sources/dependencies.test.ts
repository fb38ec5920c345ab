import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RuleSet } from "../../src/model/rules.ts";
import { PostgresStore } from "../../src/sources/postgres/index.ts";
import { parseDependencies } from "../../src/sources/postgres/parse-dependencies.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";
import { Recorder } from "./helpers.ts";

/** mesh.service_dependencies (migration 0002): schema, loading, change notification. */
describe("service dependencies", () => {
  let db: TestDatabase;
  let sql: pg.Pool;
  let store: PostgresStore;
  const rules = new Recorder<RuleSet>();

  beforeAll(async () => {
    db = await createTestDatabase();
    store = new PostgresStore({ connectionString: db.url });
    await store.rules.start(rules.onChange);
    sql = new pg.Pool({ connectionString: db.url, max: 2 });
  });

  afterAll(async () => {
    await store?.rules.stop();
    await sql?.end();
    await db?.drop();
  });

  it("parses rows into sorted, deduplicated dependencies", () => {
    expect(
      parseDependencies([
        { service: "web", depends_on: "db" },
        { service: "api", depends_on: "db" },
        { service: "web", depends_on: "api" },
        { service: "web", depends_on: "db" },
      ]),
    ).toEqual([
      { service: "api", dependsOn: "db" },
      { service: "web", dependsOn: "api" },
      { service: "web", dependsOn: "db" },
    ]);
  });

  it("delivers enabled rows as rules and follows changes (trigger + NOTIFY)", async () => {
    expect(rules.latest.dependencies).toEqual([]);
    await sql.query(`INSERT INTO mesh.service_dependencies (service, depends_on) VALUES ('web', 'api'), ('web', 'db')`);
    await rules.until((r) => r.dependencies?.length === 2);
    await sql.query(`UPDATE mesh.service_dependencies SET enabled = false WHERE depends_on = 'db'`);
    const { state } = await rules.until((r) => r.dependencies?.length === 1);
    expect(state.dependencies).toEqual([{ service: "web", dependsOn: "api" }]);
    const touched = await sql.query(`SELECT updated_at > created_at AS touched FROM mesh.service_dependencies WHERE depends_on = 'db'`);
    expect(touched.rows[0].touched).toBe(true);
  });

  it("refuses names that are not DNS labels and duplicate rows", async () => {
    await expect(sql.query(`INSERT INTO mesh.service_dependencies (service, depends_on) VALUES ('Web', 'api')`)).rejects.toThrow(
      /service_dependencies_service_is_dns_label/,
    );
    await expect(sql.query(`INSERT INTO mesh.service_dependencies (service, depends_on) VALUES ('web', 'api')`)).rejects.toThrow(/duplicate key/);
  });
});
