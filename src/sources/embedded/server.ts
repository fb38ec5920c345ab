/**
 * The embedded default database: PGlite (PostgreSQL compiled to WebAssembly,
 * running in this process, persisted under dataDir) behind pglite-socket's
 * PostgreSQL wire-protocol server on 127.0.0.1, so PostgresStore talks to it
 * over `pg` exactly as it talks to a real server, and operators can connect
 * with psql.
 *
 * What pglite-socket 0.2 can and cannot do (read from its source and tested):
 *  - several concurrent connections, up to maxConnections, multiplexed onto
 *    PGlite's single backend: one query at a time, and while a connection is
 *    inside a transaction the others wait for it to finish;
 *  - every connection shares that one session (same backend pid, same session
 *    settings and LISTENs), so NOTIFY is not forwarded to other connections:
 *    a notification goes back to the connection that committed. PostgresStore
 *    therefore detects PGlite and polls mesh.revision instead of listening;
 *  - no TLS, no authentication (it listens on loopback only by default), no
 *    cancel requests, no pg_terminate_backend.
 * The first start initialises the cluster (initdb in WebAssembly, ~5 s); later
 * starts open the existing files in well under a second.
 */
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import type { PostgresStoreOptions } from "../postgres/options.ts";
import { acquireLock } from "./lock.ts";

export interface EmbeddedPostgresOptions {
  /** Directory holding the database files (created if missing). */
  readonly dataDir: string;
  /** TCP port; 0 or absent picks a free one. */
  readonly port?: number;
  /** Default 127.0.0.1. There is no authentication: keep it on loopback. */
  readonly host?: string;
  /** Concurrent client connections allowed (the store uses one). Default 16. */
  readonly maxConnections?: number;
}

export interface EmbeddedPostgres {
  /** postgres://postgres@host:port/postgres */
  readonly url: string;
  /** The settings PostgresStore picks for PGlite anyway, for explicit wiring. */
  readonly storeOptions: Pick<PostgresStoreOptions, "backend" | "listen" | "poolSize" | "pollIntervalMs">;
  /** Stops the server and closes the database cleanly; idempotent. */
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = resolve(options.dataDir);
  await mkdir(dataDir, { recursive: true });
  const lock = await acquireLock(join(dataDir, "signalbox.lock"));
  let db: PGlite | undefined;
  let server: PGLiteSocketServer | undefined;
  try {
    db = await PGlite.create({ dataDir: join(dataDir, "pgdata") });
    const host = options.host ?? "127.0.0.1";
    server = new PGLiteSocketServer({ db, host, port: options.port ?? 0, maxConnections: options.maxConnections ?? 16 });
    await server.start();
    const port = portOf(server.getServerConn());
    let stopping: Promise<void> | null = null;
    const [openDb, openServer] = [db, server];
    return {
      url: `postgres://postgres@${host.includes(":") ? `[${host}]` : host}:${port}/postgres`,
      storeOptions: { backend: "pglite", listen: false, poolSize: 1, pollIntervalMs: 200 },
      stop: () =>
        (stopping ??= (async () => {
          await openServer.stop();
          // Let detaching connections roll back before the database closes.
          await new Promise((done) => setImmediate(done));
          await openDb.close();
          await lock.release();
        })()),
    };
  } catch (err) {
    await server?.stop().catch(() => {});
    await db?.close().catch(() => {});
    await lock.release();
    throw new Error(`cannot start the embedded database in ${dataDir}: ${(err as Error).message}`, { cause: err });
  }
}

function portOf(conn: string): number {
  const port = Number(conn.slice(conn.lastIndexOf(":") + 1));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`unexpected server address ${conn}`);
  return port;
}
