/**
 * Options of the Consul registry source, their defaults, and how the command line
 * and the environment (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, ...) select them.
 */
import type { Logger } from "pino";

export interface ConsulSourceOptions {
  /**
   * The Consul HTTP API address: `http://host:port`, `https://host:port`, or a bare
   * `host:port` (taken as http, like Consul's own CLI does).
   */
  readonly address: string;
  /** ACL token, sent as the `X-Consul-Token` header. */
  readonly token?: string;
  /** Datacenter to read (`?dc=`); the agent's own datacenter when unset. */
  readonly datacenter?: string;
  /**
   * Maximum time one blocking query waits on the server, as a Consul duration
   * ("30s", "5m"). Consul adds up to wait/16 of jitter. Default "30s".
   */
  readonly wait?: string;
  /**
   * Rate limit of each watch loop: a token bucket that refills one token per
   * `minLoopIntervalMs` and holds `loopBurst` tokens. A quiet loop never waits;
   * a churning one degrades to one query per interval. Default 1000 ms, burst 2.
   */
  readonly minLoopIntervalMs?: number;
  readonly loopBurst?: number;
  /**
   * How many per-service health queries may be in flight at once. With the catalog
   * watch and the critical-checks watch this bounds the HTTP connections the
   * source opens to Consul at `maxConcurrentWatches + 2`, well below Consul's
   * default `limits.http_max_conns_per_client` of 200. Default 64.
   */
  readonly maxConcurrentWatches?: number;
  /**
   * Change hints (default on): one more blocking query, on
   * GET /v1/health/state/critical, names the services whose critical checks
   * (failing checks, maintenance) changed, and the catalog watch names services
   * whose tags changed; those are read at once, ahead of the rotation. When the
   * catalog index moves without saying where, every service is read once (a
   * priority sweep, at most once per `sweepIntervalMs`). Off: only the rotation
   * of per-service queries, and one connection fewer.
   */
  readonly changeHints?: boolean;
  /**
   * Shortest time between two priority sweeps, in ms; 0 turns sweeps off
   * (registrations, deregistrations and port changes of existing services then
   * wait for their turn). Default 1000.
   */
  readonly sweepIntervalMs?: number;
  /**
   * Only catalog names for which this returns true are watched and emitted (on
   * top of `excludeServices`). Default: every name. For embedding; not a flag.
   */
  readonly serviceFilter?: (name: string) => boolean;
  /**
   * When there are more services than watch slots, services take turns: each
   * query then blocks for a shorter wait so that every service is asked again
   * roughly once per `wait`. This floor keeps the turn from shrinking into a
   * busy poll. Default 250 ms.
   */
  readonly minRotationWaitMs?: number;
  /** Exponential backoff with jitter after a failed query. Defaults 500 ms .. 30 s. */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Timeout of a non-blocking request (index 0). Default 10 s. */
  readonly requestTimeoutMs?: number;
  /** Added to wait + wait/16 to time out a blocking request. Default 5 s. */
  readonly blockingTimeoutMarginMs?: number;
  /**
   * How long `start()` waits for the first complete state before it returns
   * anyway (the source keeps trying and reports itself not ready). Default 10 s.
   */
  readonly initialSyncTimeoutMs?: number;
  /**
   * Changes that arrive within this window are delivered as one `onChange`.
   * Default 20 ms.
   */
  readonly coalesceMs?: number;
  /** Ask any server, not only the leader (`?stale`); spreads load in big clusters. */
  readonly stale?: boolean;
  /** Catalog service names never watched nor emitted. Default ["consul"]. */
  readonly excludeServices?: readonly string[];
  readonly logger?: Logger;
}

export type ResolvedConsulOptions = Required<Omit<ConsulSourceOptions, "token" | "datacenter" | "logger">> & {
  readonly token: string | undefined;
  readonly datacenter: string | undefined;
  readonly logger: Logger | undefined;
  readonly waitMs: number;
  readonly baseUrl: URL;
};

export const consulDefaults = {
  wait: "30s",
  minLoopIntervalMs: 1000,
  loopBurst: 2,
  maxConcurrentWatches: 64,
  minRotationWaitMs: 250,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  requestTimeoutMs: 10_000,
  blockingTimeoutMarginMs: 5_000,
  initialSyncTimeoutMs: 10_000,
  coalesceMs: 20,
  stale: false,
  excludeServices: ["consul"] as readonly string[],
  changeHints: true,
  sweepIntervalMs: 1000,
} as const;

/** Consul's blocking-query ceiling: wait is limited to 10 minutes. */
const maxWaitMs = 10 * 60_000;

/** Parses a Consul/Go duration such as "30s", "1m30s", "500ms", "2h". */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    // A bare number: Consul treats it as seconds in its HTTP API.
    return Number(trimmed) * 1000;
  }
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = trimmed;
  if (rest === "") throw new Error(`invalid duration "${text}"`);
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!m) throw new Error(`invalid duration "${text}"`);
    total += Number(m[1]) * (unit[m[2]!] ?? 0);
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}

/** Normalises an address into the base URL of the HTTP API (`.../v1`). */
export function consulBaseUrl(address: string): URL {
  let text = address.trim();
  if (text === "") throw new Error("empty Consul address");
  if (text.startsWith("unix://")) {
    throw new Error("unix socket Consul addresses are not supported; use http://host:port");
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) text = `http://${text}`;
  const url = new URL(text);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`unsupported Consul address scheme ${url.protocol}`);
  }
  if (url.port === "" && !/:\d+$/.test(url.host)) {
    // Consul's default HTTP port; an explicit https address keeps 443.
    if (url.protocol === "http:") url.port = "8500";
  }
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1`;
  url.search = "";
  url.hash = "";
  return url;
}

function positiveInt(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) {
    throw new Error(`Consul option ${name} must be a number >= ${min}, got ${value}`);
  }
  return Math.floor(value);
}

export function resolveConsulOptions(options: ConsulSourceOptions): ResolvedConsulOptions {
  const wait = options.wait ?? consulDefaults.wait;
  const waitMs = parseDuration(wait);
  if (waitMs < 1000 || waitMs > maxWaitMs) {
    throw new Error(`Consul wait must be between 1s and 10m, got "${wait}"`);
  }
  return {
    address: options.address,
    baseUrl: consulBaseUrl(options.address),
    token: options.token === "" ? undefined : options.token,
    datacenter: options.datacenter === "" ? undefined : options.datacenter,
    wait,
    waitMs,
    minLoopIntervalMs: positiveInt("minLoopIntervalMs", options.minLoopIntervalMs ?? consulDefaults.minLoopIntervalMs, 0),
    loopBurst: positiveInt("loopBurst", options.loopBurst ?? consulDefaults.loopBurst, 1),
    maxConcurrentWatches: positiveInt(
      "maxConcurrentWatches",
      options.maxConcurrentWatches ?? consulDefaults.maxConcurrentWatches,
      1,
    ),
    minRotationWaitMs: positiveInt("minRotationWaitMs", options.minRotationWaitMs ?? consulDefaults.minRotationWaitMs, 10),
    backoffInitialMs: positiveInt("backoffInitialMs", options.backoffInitialMs ?? consulDefaults.backoffInitialMs, 1),
    backoffMaxMs: positiveInt("backoffMaxMs", options.backoffMaxMs ?? consulDefaults.backoffMaxMs, 1),
    requestTimeoutMs: positiveInt("requestTimeoutMs", options.requestTimeoutMs ?? consulDefaults.requestTimeoutMs, 1),
    blockingTimeoutMarginMs: positiveInt(
      "blockingTimeoutMarginMs",
      options.blockingTimeoutMarginMs ?? consulDefaults.blockingTimeoutMarginMs,
      0,
    ),
    initialSyncTimeoutMs: positiveInt(
      "initialSyncTimeoutMs",
      options.initialSyncTimeoutMs ?? consulDefaults.initialSyncTimeoutMs,
      0,
    ),
    coalesceMs: positiveInt("coalesceMs", options.coalesceMs ?? consulDefaults.coalesceMs, 0),
    stale: options.stale ?? consulDefaults.stale,
    excludeServices: options.excludeServices ?? consulDefaults.excludeServices,
    changeHints: options.changeHints ?? consulDefaults.changeHints,
    sweepIntervalMs: sweepInterval(options.sweepIntervalMs ?? consulDefaults.sweepIntervalMs),
    serviceFilter: options.serviceFilter ?? (() => true),
    logger: options.logger,
  };
}

function sweepInterval(value: number): number {
  if (value === 0) return 0;
  return positiveInt("sweepIntervalMs", value, 100);
}

/** What the command line offers for Consul; every field optional. */
export interface ConsulFlags {
  /** `--consul-addr` */
  readonly consulAddr?: string;
  /** `--consul-token` (prefer the environment variable: flags show up in `ps`). */
  readonly consulToken?: string;
  /** `--consul-datacenter` (environment: `CONSUL_DATACENTER`) */
  readonly consulDatacenter?: string;
  /** `--consul-wait` */
  readonly consulWait?: string;
  /** `--consul-max-watches` */
  readonly consulMaxWatches?: number;
}

/**
 * Decides whether Consul mode is on and with what settings: flags win over the
 * environment; `CONSUL_HTTP_ADDR` alone enables it, like every Consul tool.
 * Returns null when no address is given (the database registry is used alone).
 */
export function consulOptionsFromConfig(
  flags: ConsulFlags,
  env: Readonly<Record<string, string | undefined>>,
): Omit<ConsulSourceOptions, "logger"> | null {
  const address = nonEmpty(flags.consulAddr) ?? nonEmpty(env.CONSUL_HTTP_ADDR);
  if (address === undefined) return null;
  let resolved = address;
  // CONSUL_HTTP_SSL=true turns a bare host:port into https, as in Consul's CLI.
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(address) && /^(1|true)$/i.test(env.CONSUL_HTTP_SSL ?? "")) {
    resolved = `https://${address}`;
  }
  const token = nonEmpty(flags.consulToken) ?? nonEmpty(env.CONSUL_HTTP_TOKEN);
  const datacenter = nonEmpty(flags.consulDatacenter) ?? nonEmpty(env.CONSUL_DATACENTER);
  const out: { -readonly [K in keyof ConsulSourceOptions]?: ConsulSourceOptions[K] } = { address: resolved };
  if (token !== undefined) out.token = token;
  if (datacenter !== undefined) out.datacenter = datacenter;
  if (nonEmpty(flags.consulWait) !== undefined) out.wait = flags.consulWait;
  if (flags.consulMaxWatches !== undefined) out.maxConcurrentWatches = flags.consulMaxWatches;
  return out as Omit<ConsulSourceOptions, "logger">;
}

function nonEmpty(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const t = value.trim();
  return t === "" ? undefined : t;
}
