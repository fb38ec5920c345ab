/**
 * Per-test-file databases on the server from global-setup.ts, so test files can
 * run in parallel without seeing each other's rows, notifications or revisions.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";

export interface TestDatabase {
  /** Connection URL of the fresh database. */
  readonly url: string;
  /** Its name (a plain identifier, safe to splice into SQL). */
  readonly name: string;
  /** Drops the database, terminating any connection still open to it. */
  drop(): Promise<void>;
}

/** The maintenance-database URL provided by global setup. */
export function serverUrl(): string {
  return inject("databaseUrl");
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const base = serverUrl();
  const name = `signalbox_test_${process.pid}_${randomBytes(4).toString("hex")}`;
  await withClient(base, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () => withClient(base, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => {}),
  };
}

/** Runs `fn` with a short-lived client; always closes it. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
