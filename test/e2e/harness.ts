import { pino } from "pino";
import pg from "pg";
import { startSignalbox, type RunningSignalbox } from "../../src/app.ts";
import { grpcBootstrap } from "../../src/cli/bootstrap.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import { PostgresStore } from "../../src/sources/postgres/index.ts";
import type { RegistrySource } from "../../src/sources/source.ts";
import type { ResourceKind } from "../../src/translate/resource-types.ts";
import { resourceGate } from "../../src/xds/validation-gate.ts";
import { createTestDatabase, type TestDatabase } from "../support/postgres.ts";

/** A real Signalbox on a fresh real-PostgreSQL database, on free ports. */
export interface E2eMesh {
  readonly signalbox: RunningSignalbox;
  readonly db: TestDatabase;
  readonly sql: pg.Pool;
  bootstrap(service: string, nodeId: string): object;
  /** Milliseconds until the proxy `nodeId` has ACKed a `kind` version other than `before`. */
  waitForAck(nodeId: string, kind: ResourceKind, before: string | null, withinMs?: number): Promise<number>;
  ackedVersion(nodeId: string, kind: ResourceKind): string | null;
  close(): Promise<void>;
}

export async function startMesh(extraRegistries: RegistrySource[] = [], merge?: (states: readonly RegistryState[]) => RegistryState): Promise<E2eMesh> {
  const db = await createTestDatabase();
  const logger = pino({ level: process.env.SIGNALBOX_TEST_LOG ?? "silent" });
  const store = new PostgresStore({ connectionString: db.url, logger });
  const signalbox = await startSignalbox({
    sources: {
      registries: [store.registry, ...extraRegistries],
      mergeRegistries: merge ?? ((states) => states[0] ?? { services: new Map() }),
      rules: store.rules,
    },
    gate: resourceGate(),
    logger,
    xdsHost: "127.0.0.1",
    xdsPort: 0,
    adminHost: "127.0.0.1",
    adminPort: 0,
  });
  const sql = new pg.Pool({ connectionString: db.url, max: 2 });
  const ackedVersion = (nodeId: string, kind: ResourceKind): string | null =>
    signalbox.xds.directory.list().find((status) => status.proxy.id === nodeId)?.types[kind]?.ackedVersion ?? null;
  return {
    signalbox,
    db,
    sql,
    bootstrap: (service, nodeId) => grpcBootstrap({ service, nodeId, xdsAddress: `127.0.0.1:${signalbox.xdsPort}` }),
    ackedVersion,
    async waitForAck(nodeId, kind, before, withinMs = 5_000) {
      const start = performance.now();
      while (performance.now() - start < withinMs) {
        const now = ackedVersion(nodeId, kind);
        if (now !== null && now !== before) return performance.now() - start;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      throw new Error(`${nodeId} did not ACK a new ${kind} version within ${withinMs} ms`);
    },
    async close() {
      await sql.end();
      await signalbox.stop();
      await db.drop();
    },
  };
}
