/**
 * Vitest global setup: makes one real PostgreSQL server available to every test
 * file as `inject("databaseUrl")`.
 *
 * With DATABASE_URL set, that server is used as is (its user needs CREATEDB, since
 * each test file creates its own database; see test/support/postgres.ts).
 * Otherwise a throwaway PostgreSQL cluster is created with initdb in a temp
 * directory, started with pg_ctl on 127.0.0.1 and a free port (trust auth,
 * fsync off), and removed again in teardown. Postgres refuses to run as root, so
 * when we are root the cluster belongs to the `postgres` user and every binary
 * runs through `runuser -u postgres --`.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** A superuser (or CREATEDB) connection URL to the maintenance database. */
    databaseUrl: string;
  }
}

const run = promisify(execFile);
const PG_VERSION = "15";
const BIN_DIR = process.env.PG_BIN_DIR ?? `/usr/lib/postgresql/${PG_VERSION}/bin`;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DATABASE_URL;
  if (external) {
    project.provide("databaseUrl", external);
    return async () => {};
  }
  const cluster = await startThrowawayCluster();
  project.provide("databaseUrl", cluster.url);
  return cluster.stop;
}

interface Cluster {
  url: string;
  stop(): Promise<void>;
}

async function startThrowawayCluster(): Promise<Cluster> {
  for (const tool of ["initdb", "pg_ctl"]) {
    if (!existsSync(join(BIN_DIR, tool))) {
      throw new Error(
        `PostgreSQL ${PG_VERSION} binaries not found (${join(BIN_DIR, tool)} is missing). ` +
          "The source tests need a real PostgreSQL: install it with `apt-get install -y postgresql`, " +
          "or set DATABASE_URL to an existing server (its user needs CREATEDB).",
      );
    }
  }
  const asRoot = process.getuid?.() === 0;
  const dir = await mkdtemp(join(tmpdir(), "signalbox-pg-"));
  if (asRoot) {
    const { uid, gid } = await postgresUser();
    await chown(dir, uid, gid);
  }
  await chmod(dir, 0o700);
  const dataDir = join(dir, "data");
  const logFile = join(dir, "postgres.log");

  // Run a Postgres binary, as the postgres user when we are root.
  const pg = (tool: string, args: string[]) =>
    asRoot
      ? run("runuser", ["-u", "postgres", "--", join(BIN_DIR, tool), ...args])
      : run(join(BIN_DIR, tool), args);

  try {
    await pg("initdb", ["-D", dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${errorText(err)}`, { cause: err });
  }

  // A free port can be taken by someone else before Postgres binds it; retry.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const options = [
      "-c listen_addresses=127.0.0.1",
      `-c port=${port}`,
      `-c unix_socket_directories=${dir}`,
      "-c fsync=off",
      "-c synchronous_commit=off",
      "-c full_page_writes=off",
      "-c max_connections=300",
    ].join(" ");
    try {
      await pg("pg_ctl", ["-D", dataDir, "-l", logFile, "-o", options, "-w", "-t", "30", "start"]);
      const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
      return {
        url,
        stop: async () => {
          await pg("pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]).catch(() => {});
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      lastError = err;
    }
  }
  const log = await readFile(logFile, "utf8").catch(() => "");
  await rm(dir, { recursive: true, force: true });
  throw new Error(`pg_ctl start failed: ${errorText(lastError)}\n${log}`);
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  try {
    const uid = Number((await run("id", ["-u", "postgres"])).stdout.trim());
    const gid = Number((await run("id", ["-g", "postgres"])).stdout.trim());
    return { uid, gid };
  } catch {
    throw new Error(
      "Running as root, but there is no `postgres` user to run PostgreSQL as. " +
        "Install PostgreSQL with `apt-get install -y postgresql` (it creates the user).",
    );
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function errorText(err: unknown): string {
  if (err && typeof err === "object" && "stderr" in err && typeof err.stderr === "string" && err.stderr) {
    return err.stderr.trim();
  }
  return err instanceof Error ? err.message : String(err);
}
