/**
 * PostgresStore options and their defaults, which depend on the server behind
 * the URL: a real PostgreSQL, or PGlite behind pglite-socket (the embedded
 * default). PGlite runs every connection through one single-user backend, so
 * LISTEN/NOTIFY does not work across connections (a notification goes back to
 * the connection that committed, not to the listener) and concurrent
 * extended-protocol queries from several connections of ours could interleave.
 * There the store uses one connection, no LISTEN, and a fast revision poll.
 */
import type pg from "pg";

/** Structural subset of a pino logger. */
export interface StoreLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type PostgresBackend = "postgres" | "pglite";

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database */
  readonly connectionString: string;
  /** Prefix of the source names ("postgres" -> "postgres-registry", "postgres-rules"). */
  readonly name?: string;
  /** "auto" (default) asks the server: version() names PGlite. */
  readonly backend?: PostgresBackend | "auto";
  /** LISTEN for change notifications. Default: true on PostgreSQL, false on PGlite. */
  readonly listen?: boolean;
  /** Pool size for loads and status writes (the listener is extra). Default 4; 1 on PGlite. */
  readonly poolSize?: number;
  /** How often mesh.revision is compared with the loaded one. Default 5000 ms; 200 ms on PGlite. */
  readonly pollIntervalMs?: number;
  /**
   * A reload starts once notifications have been quiet this long (default 20 ms),
   * but at most maxSettleMs (default 200 ms) after the first, so a burst of
   * commits costs a few reloads, not one each.
   */
  readonly settleMs?: number;
  readonly maxSettleMs?: number;
  /** Reconnect backoff of the listener connection. Default 100 ms doubling to 5000 ms. */
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  /**
   * Rows of the change logs (mesh.registry_changes, mesh.route_changes) older
   * than this are deleted by the store, about once a minute. A replica that
   * falls further behind than that reads the whole registry (or every route)
   * once. Default 600000 ms (10 min).
   */
  readonly changeLogRetentionMs?: number;
  /** Apply pending migrations on start. Default true. */
  readonly migrate?: boolean;
  /** Shown in pg_stat_activity. Default "signalbox". */
  readonly applicationName?: string;
  /** Default 10000 ms. */
  readonly connectTimeoutMs?: number;
  /** Client-side limit per query; a timed-out connection is discarded. Default 15000 ms. */
  readonly queryTimeoutMs?: number;
  readonly logger?: StoreLogger;
}

export interface ResolvedSettings {
  readonly backend: PostgresBackend;
  readonly listen: boolean;
  readonly poolSize: number;
  readonly pollIntervalMs: number;
  readonly settleMs: number;
  readonly maxSettleMs: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly changeLogRetentionMs: number;
}

export function resolveSettings(options: PostgresStoreOptions, backend: PostgresBackend): ResolvedSettings {
  const pglite = backend === "pglite";
  return {
    backend,
    listen: options.listen ?? !pglite,
    poolSize: options.poolSize ?? (pglite ? 1 : 4),
    pollIntervalMs: options.pollIntervalMs ?? (pglite ? 200 : 5000),
    settleMs: options.settleMs ?? 20,
    maxSettleMs: options.maxSettleMs ?? 200,
    reconnectMinMs: options.reconnectMinMs ?? 100,
    reconnectMaxMs: options.reconnectMaxMs ?? 5000,
    changeLogRetentionMs: options.changeLogRetentionMs ?? 600_000,
  };
}

export function detectBackend(version: string): PostgresBackend {
  return /\bPGlite\b/i.test(version) ? "pglite" : "postgres";
}

export function clientConfig(options: PostgresStoreOptions): pg.ClientConfig {
  return {
    connectionString: options.connectionString,
    application_name: options.applicationName ?? "signalbox",
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    query_timeout: options.queryTimeoutMs ?? 15_000,
    keepAlive: true,
  };
}

/** The URL without its password, for messages. */
export function describeTarget(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    url.password = "";
    return `${url.host}${url.pathname}`;
  } catch {
    return "(unparseable connection string)";
  }
}

/** A readable message for any thrown value, including Node's AggregateError. */
export function errorMessage(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    return err.errors.map(errorMessage).join("; ");
  }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return err.message || (typeof code === "string" ? code : err.name);
  }
  return String(err);
}
