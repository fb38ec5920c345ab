/**
 * The embedded default (PGlite behind pglite-socket): the shared conformance
 * suite, persistence across restarts, and the behaviour of pglite-socket that
 * PostgresStore works around (pinned here so an upgrade that changes it shows).
 */
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegistryState } from "../../src/model/registry.ts";
import type { RuleSet } from "../../src/model/rules.ts";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../src/sources/embedded/index.ts";
import { PostgresStore } from "../../src/sources/postgres/index.ts";
import { Recorder, sleep } from "./helpers.ts";
import { postgresSourceConformance } from "./postgres-conformance.ts";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "signalbox-embedded-"));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/**
 * initdb in WebAssembly costs seconds, so it runs once per file: the first
 * call initialises a template (timing it) and later calls copy its files.
 */
let template: Promise<{ dir: string; firstStartMs: number }> | null = null;
function initialisedTemplate(): Promise<{ dir: string; firstStartMs: number }> {
  template ??= (async () => {
    const dir = await tempDir();
    const t0 = performance.now();
    const server = await startEmbeddedPostgres({ dataDir: dir });
    const firstStartMs = performance.now() - t0;
    await server.stop();
    return { dir, firstStartMs };
  })();
  return template;
}
async function initialisedDataDir(): Promise<string> {
  const { dir } = await initialisedTemplate();
  const copy = await tempDir();
  await cp(dir, copy, { recursive: true });
  return copy;
}

describe("PostgresStore on the embedded database", () => {
  postgresSourceConformance({
    label: "embedded",
    open: async () => {
      const server = await startEmbeddedPostgres({ dataDir: await initialisedDataDir() });
      return { url: server.url, stop: server.stop };
    },
  });
});

describe("embedded database", () => {
  it("persists across restarts and starts quickly", async () => {
    const { firstStartMs } = await initialisedTemplate();
    const dataDir = await initialisedDataDir();
    let server = await startEmbeddedPostgres({ dataDir });

    let store = new PostgresStore({ connectionString: server.url });
    await store.registry.start(() => {});
    expect(store.backend).toBe("pglite");
    const writer = new pg.Client({ connectionString: server.url });
    await writer.connect();
    await writer.query("INSERT INTO mesh.services (name, protocol) VALUES ('kept', 'grpc')");
    await writer.query("INSERT INTO mesh.instances (id, service, address, port) VALUES ('kept-1', 'kept', '10.9.0.1', 7000)");
    await writer.query("INSERT INTO mesh.http_routes (destination, timeout_ms) VALUES ('kept', 1500)");
    await writer.end();
    await store.registry.stop();
    await server.stop();
    await server.stop(); // idempotent

    const t0 = performance.now();
    server = await startEmbeddedPostgres({ dataDir });
    const restartMs = performance.now() - t0;
    console.log(`embedded: first start ${firstStartMs.toFixed(0)} ms, restart ${restartMs.toFixed(0)} ms`);
    // The first start runs initdb in WebAssembly (~5 s on an idle 2-core machine,
    // more under parallel test load); a restart only opens the files (< 1 s).
    expect(firstStartMs).toBeLessThan(20_000);
    expect(restartMs).toBeLessThan(5_000);

    store = new PostgresStore({ connectionString: server.url });
    const registry = new Recorder<RegistryState>();
    const rules = new Recorder<RuleSet>();
    await store.registry.start(registry.onChange);
    await store.rules.start(rules.onChange);
    const kept = registry.latest.services.get("kept");
    expect(kept).toMatchObject({ protocol: "grpc", instances: [{ id: "kept-1", address: "10.9.0.1", port: 7000 }] });
    expect(rules.latest.httpRoutes.map((r) => r.timeoutMs)).toEqual([1500]);
    await store.registry.stop();
    await store.rules.stop();
    await server.stop();
  });

  it("refuses a data directory that is already open", async () => {
    const dataDir = await initialisedDataDir();
    const server = await startEmbeddedPostgres({ dataDir });
    try {
      await expect(startEmbeddedPostgres({ dataDir })).rejects.toThrow(/already open in this process/);
    } finally {
      await server.stop();
    }
    const again = await startEmbeddedPostgres({ dataDir });
    await again.stop();
  });

  describe("pglite-socket behaviour", () => {
    let server: EmbeddedPostgres;
    const clients: pg.Client[] = [];
    const connect = async () => {
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      clients.push(client);
      return client;
    };
    beforeAll(async () => {
      server = await startEmbeddedPostgres({ dataDir: await initialisedDataDir() });
    });
    afterAll(async () => {
      for (const c of clients) await c.end().catch(() => {});
      await server.stop();
    });

    it("serves several connections, all on one backend session", async () => {
      const [a, b, c] = [await connect(), await connect(), await connect()];
      const pids = await Promise.all([a, b, c].map(async (x) => (await x.query("SELECT pg_backend_pid() AS p")).rows[0].p));
      expect(new Set(pids).size).toBe(1);
      // Interleaved parameterised queries still get their own answers.
      const answers = await Promise.all(
        Array.from({ length: 60 }, (_, i) => [a, b, c][i % 3]!.query("SELECT $1::int * 2 AS v", [i]).then((r) => r.rows[0].v)),
      );
      expect(answers).toEqual(Array.from({ length: 60 }, (_, i) => i * 2));
    });

    it("does not forward NOTIFY to another connection (so the store polls)", async () => {
      const [listener, writer] = [await connect(), await connect()];
      const heard: string[] = [];
      listener.on("notification", (n) => heard.push(`listener:${n.payload}`));
      writer.on("notification", (n) => heard.push(`writer:${n.payload}`));
      await listener.query("LISTEN probe");
      await writer.query("NOTIFY probe, 'x'");
      await sleep(200);
      await listener.query("SELECT 1");
      await sleep(100);
      await listener.query("UNLISTEN probe");
      expect(heard).not.toContain("listener:x");
    });
  });
});
