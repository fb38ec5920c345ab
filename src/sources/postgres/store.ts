/**
 * PostgresStore: the mesh tables as a RegistrySource (`store.registry`) and a
 * RuleSource (`store.rules`) sharing one pool, one listener and one reload loop.
 * Either can be used alone (with Consul as the registry only `rules` starts).
 *
 * Change detection, in layers so that no change is ever lost:
 *  - LISTEN mesh_changes on a dedicated connection triggers a reload;
 *  - every (re)connect of that connection triggers a reload (resync);
 *  - mesh.revision is polled and a reload runs whenever it moved.
 * Notifications are debounced (settle 20 ms, at most 200 ms), reloads never
 * overlap, and requests during a reload fold into one more (CoalescingRunner).
 * Each reload reads the stale facets in one snapshot, parses them, and calls
 * onChange only for a facet whose parsed state differs from what it last
 * delivered. On failure the last delivered state stands and status() reports
 * degraded.
 *
 * The rules are read whole once; after that a reload reads only the groups of
 * rule tables whose revision (migration 0006) moved since the last read, and
 * parses them with the other groups' last rows (load-rules.ts); within the
 * routes, only the routes the route change log (migration 0007) names. A
 * reload that finds no rule table changed delivers nothing. The registry is read whole
 * once (and again after a reconnect or a failed reload); after that a reload
 * reads only the services the change log (migration 0005) names since the
 * revision of the last registry load, and patches them into the delivered
 * state (patch-registry.ts). The log falls back to a full read by itself when
 * it cannot answer (load-registry.ts). The store also prunes both logs now
 * and then.
 */
import { performance } from "node:perf_hooks";
import pg from "pg";
import type { RegistryState } from "../../model/registry.ts";
import type { RuleRejection, RuleSet } from "../../model/rules.ts";
import type { RegistrySource, RuleSource, SourceStatus } from "../source.ts";
import { Backoff } from "./backoff.ts";
import { CoalescingRunner } from "./coalesce.ts";
import { Debouncer } from "../../control/debouncer.ts";
import { shareStructure } from "../../model/share.ts";
import { Health } from "./health.ts";
import { ChangeListener } from "./listener.ts";
import { loadRows, readRevision } from "./load.ts";
import type { RegistryRequest } from "./load-registry.ts";
import { hasChangeLog, pruneChangeLog, type ChangeLog } from "./change-logs.ts";
import { hasTableRevisions, RULE_GROUPS, type RuleGroup, type RuleRowsRead, type RuleSchema } from "./load-rules.ts";
import { migrate } from "./migrate.ts";
import {
  clientConfig,
  describeTarget,
  detectBackend,
  errorMessage,
  resolveSettings,
  type PostgresBackend,
  type PostgresStoreOptions,
  type ResolvedSettings,
  type StoreLogger,
} from "./options.ts";
import { parseRegistry } from "./parse-registry.ts";
import { patchRegistry } from "./patch-registry.ts";
import { IncrementalRuleParser } from "./incremental-rules.ts";
import { desiredRuleStatus, ruleStatusWrite, writeRuleStatus, type RuleStatusRow, type WrittenRuleStatus } from "./rule-status.ts";

/** The channel the change trigger notifies (see the 0001 migration). */
export const CHANGE_CHANNEL = "mesh_changes";

/** Tables of the registry facet; a notification from any other table concerns the rules. */
const REGISTRY_TABLES = new Set(["services", "instances"]);

/**
 * An incremental registry load reads at most this share of the services known
 * (but always at least DELTA_MIN_SERVICES); with more changed services one
 * full read is about as cheap, so the loader reads everything instead.
 */
const DELTA_MAX_SHARE = 0.25;
const DELTA_MIN_SERVICES = 16;

export interface PostgresStoreMetrics {
  /** Reloads started (each reads the stale facets once). */
  readonly reloads: number;
  /** Registry loads that read every registry row (first load, resync, fallbacks). */
  readonly fullRegistryLoads: number;
  /** Registry loads that read only the services named by the change log. */
  readonly incrementalRegistryLoads: number;
  /** Rule loads, and how often each group of rule tables was read by them (load-rules.ts). */
  readonly ruleLoads: number;
  readonly ruleGroupReads: Readonly<Record<RuleGroup, number>>;
  /** Reads of the routes group that read only the routes the route log named (migration 0007). */
  readonly routePatches: number;
  readonly reloadFailures: number;
  readonly notifications: number;
  readonly polls: number;
  /** onChange calls, both facets. */
  readonly deliveries: number;
  readonly statusWrites: number;
}

type Facet = "registry" | "rules";

interface Subscription<T> {
  readonly onChange: (state: T) => void;
  last: T | undefined;
  ready: boolean;
}

interface Connection {
  readonly pool: pg.Pool;
  readonly listener: ChangeListener | null;
  readonly notifications: Debouncer;
  readonly settings: ResolvedSettings;
  /** The schema has the registry change log (migration 0005). */
  readonly changeLog: boolean;
  /** The rule tables' change tracking the schema has (migrations 0006, 0007). */
  readonly ruleSchema: RuleSchema;
}

/** How often (at most) a store prunes the registry change log. */
const PRUNE_INTERVAL_MS = 60_000;

const silent: StoreLogger = { info() {}, warn() {}, error() {} };

export class PostgresStore {
  readonly registry: RegistrySource;
  readonly rules: RuleSource;

  readonly #options: PostgresStoreOptions;
  readonly #log: StoreLogger;
  #conn: Connection | null = null;
  #opening: Promise<Connection> | null = null;
  /** Bumped on close, so callbacks of an old connection are ignored. */
  #generation = 0;
  #registrySub: Subscription<RegistryState> | null = null;
  #rulesSub: Subscription<RuleSet> | null = null;
  #revision = "";
  /** The revision the delivered registry state was read at; what a delta starts from. */
  #registryRevision: string | null = null;
  /** The next registry load reads everything (start, resync after reconnect, after a failure). */
  #registryFull = true;
  /** The last rule read: its rows and table revisions, which the next read reuses for unchanged groups. */
  #ruleRead: RuleRowsRead | null = null;
  /** Re-parses only the groups a read fetched again. */
  readonly #ruleParser = new IncrementalRuleParser();
  #lastPruneAt = -Infinity;
  #pruning: Promise<void> | null = null;
  /** Facets whose tables changed since they were last read. */
  #stale = { registry: true, rules: true };
  readonly #health: Health;
  #pollTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #reloads = new CoalescingRunner(() => this.#reload());
  readonly #statusWrites = new CoalescingRunner(() => this.#writeStatus());
  #desiredStatus: RuleStatusRow[] | null = null;
  /** What the last successful status write left in the table; null: write it in full next time. */
  #writtenStatus: WrittenRuleStatus | null = null;
  #statusDirty = false;
  readonly #metrics = {
    reloads: 0,
    fullRegistryLoads: 0,
    incrementalRegistryLoads: 0,
    ruleLoads: 0,
    ruleGroupReads: Object.fromEntries(Object.keys(RULE_GROUPS).map((group) => [group, 0])) as Record<RuleGroup, number>,
    routePatches: 0,
    reloadFailures: 0,
    notifications: 0,
    polls: 0,
    deliveries: 0,
    statusWrites: 0,
  };

  constructor(options: PostgresStoreOptions) {
    this.#options = options;
    this.#log = options.logger ?? silent;
    this.#health = new Health(this.#log);
    const name = options.name ?? "postgres";
    this.registry = {
      name: `${name}-registry`,
      start: (onChange) => this.#subscribe("registry", onChange as (state: unknown) => void),
      stop: () => this.#unsubscribe("registry"),
      status: () => this.#status(`${name}-registry`, this.#registrySub),
    };
    this.rules = {
      name: `${name}-rules`,
      start: (onChange) => this.#subscribe("rules", onChange as (state: unknown) => void),
      stop: () => this.#unsubscribe("rules"),
      status: () => this.#status(`${name}-rules`, this.#rulesSub),
      publishRuleStatus: (rules, rejected) => this.#publishRuleStatus(rules, rejected),
    };
  }

  /** Which server is behind the URL, once started. */
  get backend(): PostgresBackend | null {
    return this.#conn?.settings.backend ?? null;
  }

  metrics(): PostgresStoreMetrics {
    return { ...this.#metrics, ruleGroupReads: { ...this.#metrics.ruleGroupReads } };
  }

  // --- subscriptions ---------------------------------------------------------

  /**
   * Resolves once `onChange` has received the facet's first full state. Rejects
   * (and leaves nothing running) if the database cannot be reached, migrated or
   * read at start: with no last good state there is nothing to serve.
   */
  async #subscribe(facet: Facet, onChange: (state: unknown) => void): Promise<void> {
    if (this.#sub(facet)) throw new Error(`${facet} source of ${this.#options.name ?? "postgres"} already started`);
    const sub: Subscription<unknown> = { onChange, last: undefined, ready: false };
    if (facet === "registry") this.#registrySub = sub as Subscription<RegistryState>;
    else this.#rulesSub = sub as Subscription<RuleSet>;
    try {
      await this.#open();
      this.#stale[facet] = true;
      if (facet === "registry") this.#registryFull = true;
      await this.#reloads.run();
    } catch (err) {
      await this.#unsubscribe(facet);
      throw err;
    }
  }

  async #unsubscribe(facet: Facet): Promise<void> {
    if (facet === "registry") this.#registrySub = null;
    else this.#rulesSub = null;
    if (!this.#registrySub && !this.#rulesSub) await this.#close();
  }

  #sub(facet: Facet): { readonly ready: boolean } | null {
    return facet === "registry" ? this.#registrySub : this.#rulesSub;
  }

  #status(name: string, sub: { readonly ready: boolean } | null): SourceStatus {
    return {
      name,
      ready: sub?.ready ?? false,
      degraded: sub !== null && this.#health.degraded,
      lastError: this.#health.lastError,
      revision: this.#revision,
    };
  }

  // --- connection lifecycle --------------------------------------------------

  #open(): Promise<Connection> {
    if (this.#conn) return Promise.resolve(this.#conn);
    this.#opening ??= this.#connect().finally(() => {
      this.#opening = null;
    });
    return this.#opening;
  }

  async #connect(): Promise<Connection> {
    const generation = this.#generation;
    const config = clientConfig(this.#options);
    const target = describeTarget(this.#options.connectionString);
    let backend: PostgresBackend;
    let changeLog: boolean;
    let ruleSchema: RuleSchema;
    // A short-lived client identifies the server and migrates, before the pool
    // is sized for it.
    const boot = new pg.Client(config);
    boot.on("error", () => {});
    try {
      try {
        await boot.connect();
      } catch (err) {
        throw new Error(`cannot connect to PostgreSQL at ${target}: ${errorMessage(err)}`, { cause: err });
      }
      const version = (await boot.query<{ v: string }>("SELECT version() AS v")).rows[0]?.v ?? "";
      const wanted = this.#options.backend ?? "auto";
      backend = wanted === "auto" ? detectBackend(version) : wanted;
      if (this.#options.migrate ?? true) {
        const result = await migrate(boot);
        if (result.applied.length > 0) this.#log.info({ applied: result.applied, target }, "applied mesh schema migrations");
      }
      changeLog = await hasChangeLog(boot, "registry_changes");
      if (!changeLog) this.#log.warn({ target }, "mesh.registry_changes is missing (schema older than migration 5): every registry reload reads all rows");
      ruleSchema = { tableRevisions: await hasTableRevisions(boot), routeLog: await hasChangeLog(boot, "route_changes") };
      if (!ruleSchema.tableRevisions) this.#log.warn({ target }, "mesh.table_revisions is missing (schema older than migration 6): every rule reload reads all rule rows");
      if (!ruleSchema.routeLog) this.#log.warn({ target }, "mesh.route_changes is missing (schema older than migration 7): a route change reads every route row");
    } catch (err) {
      this.#health.fail("connect", err);
      throw err;
    } finally {
      await boot.end().catch(() => {});
    }

    const settings = resolveSettings(this.#options, backend);
    const pool = new pg.Pool({ ...config, max: settings.poolSize });
    // Idle clients that die (server restart, pg_terminate_backend) are dropped by
    // the pool; without a handler the 'error' event would crash the process.
    pool.on("error", (err) => this.#log.warn({ err: errorMessage(err) }, "idle PostgreSQL connection lost"));
    const notifications = new Debouncer(settings.settleMs, settings.maxSettleMs, () => this.#requestReload(false), (err) =>
      this.#log.error({ err: errorMessage(err) }, "scheduling a reload after notifications failed"),
    );
    let listener: ChangeListener | null = null;
    if (settings.listen) {
      let connectedOnce = false;
      listener = new ChangeListener({
        client: config,
        channel: CHANGE_CHANNEL,
        backoff: new Backoff({ minMs: settings.reconnectMinMs, maxMs: settings.reconnectMaxMs }),
        onNotification: (payload) => {
          if (generation !== this.#generation) return;
          this.#metrics.notifications++;
          this.#markStale(payload);
          notifications.trigger();
        },
        onConnected: () => {
          if (generation !== this.#generation) return;
          this.#health.ok("listener");
          // Notifications sent while we were away are lost: read everything again.
          if (connectedOnce) {
            this.#registryFull = true;
            this.#requestReload();
          }
          connectedOnce = true;
        },
        onDisconnected: (err) => {
          if (generation === this.#generation) this.#health.fail("listener", err);
        },
      });
      try {
        await listener.start();
      } catch (err) {
        await pool.end().catch(() => {});
        const wrapped = new Error(`cannot LISTEN on ${target}: ${errorMessage(err)}`, { cause: err });
        this.#health.fail("connect", wrapped);
        throw wrapped;
      }
    }
    this.#health.ok("connect");
    const conn: Connection = { pool, listener, notifications, settings, changeLog, ruleSchema };
    this.#conn = conn;
    this.#schedulePoll(conn);
    this.#log.info({ target, backend, listen: settings.listen, pollIntervalMs: settings.pollIntervalMs }, "watching mesh tables");
    return conn;
  }

  async #close(): Promise<void> {
    const opening = this.#opening;
    if (opening) await opening.catch(() => {});
    const conn = this.#conn;
    this.#conn = null;
    this.#generation++;
    if (this.#pollTimer) clearTimeout(this.#pollTimer);
    this.#pollTimer = null;
    if (!conn) return;
    conn.notifications.stop();
    await conn.listener?.stop();
    await this.#reloads.whenIdle();
    await this.#statusWrites.whenIdle();
    await this.#pruning;
    await conn.pool.end().catch(() => {});
    this.#health.reset();
    this.#registryRevision = null;
    this.#registryFull = true;
    this.#ruleRead = null;
  }

  // --- change detection ------------------------------------------------------

  /**
   * Fire and forget: failures are recorded by #reload itself. `all` (poll,
   * reconnect) reads every facet; a notification reads only what it named.
   */
  #requestReload(all = true): void {
    if (all) this.#stale = { registry: true, rules: true };
    void this.#reloads.run().catch(() => {});
  }

  /**
   * A notification names the table that changed (the trigger's payload): a
   * registry table makes the registry stale, any other table the rules, so an
   * endpoint change does not re-read every rule (and the other way round).
   */
  #markStale(table: string): void {
    if (table === "") this.#stale = { registry: true, rules: true };
    else if (REGISTRY_TABLES.has(table)) this.#stale.registry = true;
    else this.#stale.rules = true;
  }

  #schedulePoll(conn: Connection): void {
    this.#pollTimer = setTimeout(() => void this.#poll(conn), conn.settings.pollIntervalMs);
    this.#pollTimer.unref();
  }

  async #poll(conn: Connection): Promise<void> {
    const generation = this.#generation;
    try {
      const revision = await readRevision(conn.pool);
      if (generation !== this.#generation) return;
      this.#metrics.polls++;
      this.#health.ok("poll");
      // A failed reload is retried here too, at the poll interval.
      if (revision !== this.#revision || this.#health.failing("reload")) this.#requestReload();
    } catch (err) {
      if (generation === this.#generation) this.#health.fail("poll", err);
    } finally {
      if (generation === this.#generation) this.#schedulePoll(conn);
    }
  }

  async #reload(): Promise<void> {
    const conn = this.#conn;
    const generation = this.#generation;
    const registry = this.#registrySub;
    const rules = this.#rulesSub;
    if (!conn || (!registry && !rules)) return;
    this.#metrics.reloads++;
    const stale = this.#stale;
    this.#stale = { registry: false, rules: false };
    const want = { registry: registry !== null && stale.registry, rules: rules !== null && stale.rules };
    const registryRequest = want.registry && registry ? this.#registryRequest(conn, registry) : null;
    // Only a subscription that has its state can be handed just the changed groups.
    const rulesRequest = want.rules ? { previous: rules?.ready ? this.#ruleRead : null, schema: conn.ruleSchema } : null;
    let loaded;
    try {
      loaded = await loadRows(conn.pool, { registry: registryRequest, rules: rulesRequest });
    } catch (err) {
      this.#metrics.reloadFailures++;
      this.#stale = { registry: true, rules: true };
      this.#registryFull = true;
      if (generation === this.#generation) this.#health.fail("reload", err);
      throw err;
    }
    if (generation !== this.#generation) return;
    this.#health.ok("reload");
    this.#health.ok("poll"); // the pool evidently works again
    // The revision describes every table: record it only when every subscribed
    // facet was read, so the poll still catches a change whose notification was lost.
    if (want.registry === (registry !== null) && want.rules === (rules !== null)) this.#revision = loaded.revision;
    if (loaded.registry && registry && this.#registrySub === registry) {
      const load = loaded.registry;
      const parsed = parseRegistry(load.rows);
      if (parsed.problems.length > 0) {
        this.#log.warn({ problems: parsed.problems }, "registry rows left out of the mesh");
      }
      if (load.kind === "full") {
        this.#metrics.fullRegistryLoads++;
        if (load.reason) this.#log.info({ reason: load.reason }, "registry change log not usable; read every registry row");
        this.#deliver(registry, parsed.state);
      } else {
        this.#metrics.incrementalRegistryLoads++;
        // Only a ready subscription gets a delta request (#registryRequest).
        const patched = load.services.length > 0 ? patchRegistry(registry.last!, load.services, parsed.state) : registry.last!;
        this.#deliver(registry, patched, true);
      }
      this.#registryRevision = loaded.revision;
    }
    if (loaded.rules) {
      const read = loaded.rules;
      this.#ruleRead = read;
      this.#metrics.ruleLoads++;
      for (const group of read.groupsRead) this.#metrics.ruleGroupReads[group]++;
      if (read.routePatch) this.#metrics.routePatches++;
      // No group read: no rule table changed since the delivered state was read.
      // The parser shares structure with its last result, which is what the
      // subscription last received (or equal to it, and then that object).
      if (read.groupsRead.length > 0) this.#deliver(this.#rulesSub === rules ? rules : null, this.#ruleParser.parse(read.rows, read.routePatch), true);
    }
    // A status write that failed while the database was away is retried now.
    if (this.#statusDirty) void this.#statusWrites.run().catch(() => {});
    this.#maybePrune(conn);
  }

  /** Full or incremental, for a reload that reads the registry. */
  #registryRequest(conn: Connection, sub: Subscription<RegistryState>): RegistryRequest {
    const full = this.#registryFull;
    this.#registryFull = false;
    const since = this.#registryRevision;
    if (full || !conn.changeLog || !sub.ready || !sub.last || since === null) return { kind: "full" };
    const maxServices = Math.max(DELTA_MIN_SERVICES, Math.floor(sub.last.services.size * DELTA_MAX_SHARE));
    return { kind: "delta", since, maxServices };
  }

  /**
   * Deletes old change-log rows, at most once per interval, in the background.
   * Every replica does this; see pruneChangeLog for why that is safe.
   */
  #maybePrune(conn: Connection): void {
    const logs: ChangeLog[] = [];
    if (conn.changeLog) logs.push("registry_changes");
    if (conn.ruleSchema.routeLog) logs.push("route_changes");
    if (logs.length === 0 || this.#pruning) return;
    const retentionMs = conn.settings.changeLogRetentionMs;
    const now = performance.now();
    if (now - this.#lastPruneAt < Math.min(retentionMs, PRUNE_INTERVAL_MS)) return;
    this.#lastPruneAt = now;
    const generation = this.#generation;
    const pruneOne = async (log: ChangeLog): Promise<void> => {
      try {
        const deleted = await pruneChangeLog(conn.pool, log, retentionMs);
        if (deleted > 0 && generation === this.#generation) this.#log.info({ deleted }, `pruned mesh.${log}`);
      } catch (err) {
        if (generation === this.#generation) this.#log.warn({ err: errorMessage(err) }, `pruning mesh.${log} failed; will retry`);
      }
    };
    this.#pruning = (async () => {
      for (const log of logs) await pruneOne(log);
    })().finally(() => {
      this.#pruning = null;
    });
  }

  /** `alreadyShared`: `state` shares structure with sub.last already (a patched registry, parsed rules). */
  #deliver<T>(sub: Subscription<T> | null, state: T, alreadyShared = false): void {
    if (!sub) return;
    // Unchanged parts keep their identity from one delivery to the next, so
    // downstream can see what changed with === (and equal states are not delivered).
    const shared = sub.ready && !alreadyShared ? shareStructure(sub.last, state) : state;
    if (sub.ready && shared === sub.last) return;
    sub.last = shared;
    sub.ready = true;
    this.#metrics.deliveries++;
    try {
      sub.onChange(shared);
    } catch (err) {
      this.#log.error({ err: errorMessage(err) }, "onChange callback threw");
    }
  }

  // --- rule status -----------------------------------------------------------

  /**
   * Records the latest desired status and writes it. Writes never overlap; a
   * burst of calls writes the newest. A write that fails rejects the call and
   * is retried after the next successful reload.
   */
  async #publishRuleStatus(rules: RuleSet, rejected: readonly RuleRejection[]): Promise<void> {
    if (!this.#conn) throw new Error("the PostgreSQL rule source is not started");
    this.#desiredStatus = desiredRuleStatus(rules, rejected);
    this.#statusDirty = true;
    await this.#statusWrites.run();
  }

  async #writeStatus(): Promise<void> {
    const conn = this.#conn;
    const rows = this.#desiredStatus;
    if (!conn || !rows || !this.#statusDirty) return;
    this.#statusDirty = false;
    try {
      const write = ruleStatusWrite(this.#writtenStatus, rows);
      const result = await writeRuleStatus(conn.pool, write);
      this.#writtenStatus = write.next;
      this.#metrics.statusWrites++;
      if (result.written + result.deleted > 0) this.#log.info({ ...result }, "rule status updated");
    } catch (err) {
      this.#statusDirty = true;
      // Whether the transaction committed is unknown: the retry writes in full.
      this.#writtenStatus = null;
      this.#log.warn({ err: errorMessage(err) }, "writing mesh.rule_status failed; will retry");
      throw err;
    }
  }
}
