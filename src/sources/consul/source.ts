/**
 * The Consul registry source: discovers services from the Consul catalog.
 *
 * Shape of the watching:
 * - one blocking query on GET /v1/catalog/services gives the set of service names;
 *   a watch starts for each new name and stops for each name that disappears;
 * - each service has a blocking query on GET /v1/health/service/:name, which gives
 *   instances, node, and checks in one answer;
 * - service watches run through a pool of `maxConcurrentWatches` slots, and
 *   every request goes through one HTTP agent whose `maxSockets` is the pool size
 *   plus two (the catalog watch, the critical-checks watch). The source therefore
 *   never opens more than `maxConcurrentWatches + 2` connections to Consul,
 *   however many services there are; Consul refuses clients above
 *   `limits.http_max_conns_per_client` (200). An eighth of the slots is kept for
 *   plain reads (a service's first read, a restart after an index reset or a
 *   failure, a read a change hint asks for), and plain reads go first;
 * - while the services fit in the blocking slots, every service holds its own
 *   blocking query and changes arrive as soon as Consul commits them. With more
 *   services than slots, services take turns: each query blocks for
 *   wait * slots / services (never below `minRotationWaitMs`), so every service is
 *   asked again about once per `wait`. This rotation is the complete,
 *   authoritative path: everything emitted comes from these health answers;
 * - change hints make the urgent changes fast at any catalog size (see hints.ts
 *   and docs/consul.md, "How changes propagate"); they only decide what is read
 *   next, as a plain read ahead of the rotation, through the same slots:
 *   - a blocking query on GET /v1/health/state/critical names the services whose
 *     critical checks (failures, maintenance, node failures) changed;
 *   - the catalog watch names services whose tags changed (services that appear
 *     are read at once anyway, those that disappear are removed);
 *   - when the catalog index moves, one read of GET /v1/health/state/any locates
 *     the services whose checks appeared, disappeared or changed state, and a
 *     priority sweep (at most once per `sweepIntervalMs`) reads every service not
 *     holding a blocking query, for what checks do not show.
 *
 * Failure: a watch that fails keeps its last good answer, backs off, and retries
 * on its own; the source reports itself degraded (with the error) until every
 * watch has succeeded again (a failing hint only slows changes down: it is
 * logged and counted, not reported as degraded). It never removes or empties a service because a
 * request failed: only a good answer can do that.
 */
import type { Logger } from "pino";
import type { RegistryState } from "../../model/registry.ts";
import type { RegistrySource, SourceStatus } from "../source.ts";
import { CatalogState } from "./catalog-state.ts";
import { ConsulClient, type ConsulErrorKind, ConsulRequestError } from "./client.ts";
import { type ConsulSourceOptions, type ResolvedConsulOptions, resolveConsulOptions } from "./config.ts";
import {
  type ConsulServiceEntry,
  type ConsulStateCheck,
  parseCatalogServices,
  parseHealthService,
  parseHealthState,
} from "./consul-types.ts";
import { CheckIndex } from "./hints.ts";
import { SlotPool } from "./pacing.ts";
import { BlockingWatch, type WatchTiming } from "./watch.ts";

/** Counters and gauges for metrics and tests. */
export interface ConsulSourceStats {
  /** Services watched (catalog names minus excluded ones). */
  readonly watchedServices: number;
  /** Services emitted. */
  readonly services: number;
  /** Health queries in flight now, and the most ever at once. */
  readonly inFlight: number;
  readonly maxInFlight: number;
  /** Watches waiting for a slot. */
  readonly queued: number;
  /** The bound on connections to Consul (pool + catalog watch). */
  readonly maxConnections: number;
  /** Watches whose last attempt failed (catalog and change-hint watch included). */
  readonly degradedWatches: number;
  readonly catalogIndex: number;
  readonly indexResets: number;
  readonly onChangeCalls: number;
  readonly requests: Readonly<Record<"ok" | ConsulErrorKind, number>>;
  /** Current blocking wait of service watches, in ms. */
  readonly serviceWaitMs: number;
  /** Plain reads asked for out of turn because a hint named the service. */
  readonly hintedReads: number;
  /** Priority sweeps run, and the plain reads they asked for. */
  readonly sweeps: number;
  readonly sweepReads: number;
  /** Reads of GET /v1/health/state/any that located catalog changes. */
  readonly locatorReads: number;
  /** Critical checks in the datacenter, as last answered (-1 before the first answer or with hints off). */
  readonly criticalChecks: number;
}

/** A hint that a read did not settle is not repeated for the same answer within this time. */
const rehintAfterMs = 5000;

/** How long a sweep waits for the locator's answer, so that its reads queue first. */
const locatorHeadStartMs = 500;

interface HintMemo {
  readonly sig: string;
  readonly at: number;
}

export class ConsulRegistrySource implements RegistrySource {
  readonly name = "consul";
  private readonly opts: ResolvedConsulOptions;
  private readonly logger: Logger | undefined;
  private client: ConsulClient | null = null;
  private readonly pool: SlotPool;
  private readonly timing: WatchTiming;
  private readonly state: CatalogState;

  private catalogWatch: BlockingWatch<Map<string, readonly string[]>> | null = null;
  private criticalWatch: BlockingWatch<ConsulStateCheck[]> | null = null;
  private readonly critical = new CheckIndex(false);
  private readonly allChecks = new CheckIndex(true);
  /** Per hint kind and service: the signature it was last refreshed for, and when. */
  private readonly hinted = { critical: new Map<string, HintMemo>(), checks: new Map<string, HintMemo>() };
  /** Aborts the locator read on stop. */
  private readonly locatorAbort = new AbortController();
  private locating: Promise<void> | null = null;
  private locateAgain = false;
  private locatorReads = 0;
  /** The previous catalog answer and its index (for tag hints and sweeps). */
  private lastCatalog: Map<string, readonly string[]> | null = null;
  private lastCatalogIndex = 0;
  private sweepTimer: NodeJS.Timeout | null = null;
  private lastSweepAt = Number.NEGATIVE_INFINITY;
  private hintedReads = 0;
  private sweeps = 0;
  private sweepReads = 0;
  private readonly serviceWatches = new Map<string, BlockingWatch<ConsulServiceEntry[]>>();
  private catalogSynced = false;
  /** Watched services not yet answered once (only tracked until ready). */
  private readonly unsynced = new Set<string>();
  private catalogIndex = 0;

  private onChange: ((state: RegistryState) => void) | null = null;
  private readonly stopping = new Set<Promise<void>>();
  private started = false;
  private running = false;
  private ready = false;
  private delivered = false;
  private dirty = false;
  private emitTimer: NodeJS.Timeout | null = null;
  private initialSyncDone: (() => void) | null = null;
  private wasDegraded = false;
  private aclWarned = false;
  /** Watches whose last attempt failed ("" is the catalog watch), with their error. */
  private readonly failing = new Map<string, string>();
  /**
   * The last error of the critical-checks watch while it fails. A hint is not
   * the state: while only hints fail, the source is not degraded (the rotation
   * still delivers everything), but changes are slower, which is logged.
   */
  private hintError: string | null = null;
  private lastErrorFrom = "";

  private indexResets = 0;
  private onChangeCalls = 0;
  private readonly requests: Record<"ok" | ConsulErrorKind, number> = {
    ok: 0,
    unreachable: 0,
    timeout: 0,
    http: 0,
    garbage: 0,
    aborted: 0,
  };

  constructor(options: ConsulSourceOptions) {
    this.opts = resolveConsulOptions(options);
    this.logger = this.opts.logger?.child({ source: "consul" });
    this.pool = new SlotPool(this.opts.maxConcurrentWatches);
    this.timing = {
      minLoopIntervalMs: this.opts.minLoopIntervalMs,
      loopBurst: this.opts.loopBurst,
      backoffInitialMs: this.opts.backoffInitialMs,
      backoffMaxMs: this.opts.backoffMaxMs,
      requestTimeoutMs: this.opts.requestTimeoutMs,
      blockingTimeoutMarginMs: this.opts.blockingTimeoutMarginMs,
    };
    this.state = new CatalogState(this.opts.datacenter === undefined ? {} : { datacenter: this.opts.datacenter });
  }

  /** The most connections this source opens to Consul: the slots, the catalog watch, the critical-checks watch. */
  get maxConnections(): number {
    return this.opts.maxConcurrentWatches + (this.opts.changeHints ? 2 : 1);
  }

  /**
   * Starts watching. Resolves once the first complete state has been delivered, or
   * after `initialSyncTimeoutMs` if Consul is slow or down (watching goes on and
   * `status()` tells readiness). Never rejects because Consul is unreachable.
   */
  async start(onChange: (state: RegistryState) => void): Promise<void> {
    if (this.started) throw new Error("a ConsulRegistrySource can be started once");
    this.started = true;
    this.running = true;
    this.onChange = onChange;
    this.client = new ConsulClient({
      baseUrl: this.opts.baseUrl,
      token: this.opts.token,
      datacenter: this.opts.datacenter,
      stale: this.opts.stale,
      maxSockets: this.maxConnections,
      onAclFiltered: (what) => {
        if (this.aclWarned) return;
        this.aclWarned = true;
        this.logger?.warn(
          { query: what },
          "consul: ACLs hid results from this token; services it may not read are invisible to the mesh",
        );
      },
    });
    const synced = new Promise<void>((resolve) => (this.initialSyncDone = resolve));
    this.logger?.info(
      {
        address: this.opts.baseUrl.origin,
        datacenter: this.opts.datacenter ?? "(agent's)",
        maxConnections: this.maxConnections,
      },
      "consul: watching the catalog",
    );
    this.catalogWatch = this.makeCatalogWatch();
    this.catalogWatch.start();
    if (this.opts.changeHints) {
      this.criticalWatch = this.makeCriticalWatch();
      this.criticalWatch.start();
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.opts.initialSyncTimeoutMs);
    });
    await Promise.race([synced, timeout]);
    clearTimeout(timer);
    if (!this.ready && this.running) {
      this.logger?.warn(
        { timeoutMs: this.opts.initialSyncTimeoutMs, lastError: this.status().lastError },
        "consul: no complete catalog yet; serving what is known and retrying",
      );
      // Hand over what is known (possibly nothing) so other sources proceed.
      if (this.catalogSynced) this.flush(true);
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.emitTimer) clearTimeout(this.emitTimer);
    this.emitTimer = null;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    this.locatorAbort.abort();
    this.initialSyncDone?.();
    const watches = [this.catalogWatch, this.criticalWatch, ...this.serviceWatches.values()].filter((w) => w !== null);
    await Promise.all([...watches.map((w) => w.stop()), ...this.stopping]);
    this.serviceWatches.clear();
    this.catalogWatch = null;
    this.criticalWatch = null;
    this.client?.destroy();
    this.client = null;
  }

  status(): SourceStatus {
    const degraded = this.failing.size > 0;
    return {
      name: this.name,
      ready: this.ready,
      degraded,
      lastError: !degraded
        ? null
        : this.failing.get(this.lastErrorFrom) ?? this.failing.values().next().value ?? null,
      revision: String(this.catalogIndex),
    };
  }

  stats(): ConsulSourceStats {
    return {
      watchedServices: this.serviceWatches.size,
      services: this.state.size,
      inFlight: this.pool.active,
      maxInFlight: this.pool.maxActive,
      queued: this.pool.queued,
      maxConnections: this.maxConnections,
      degradedWatches: this.failing.size + (this.hintError === null ? 0 : 1),
      catalogIndex: this.catalogIndex,
      indexResets: this.indexResets,
      onChangeCalls: this.onChangeCalls,
      requests: { ...this.requests },
      serviceWaitMs: this.serviceWaitMs(),
      hintedReads: this.hintedReads,
      sweeps: this.sweeps,
      sweepReads: this.sweepReads,
      locatorReads: this.locatorReads,
      criticalChecks: this.critical.ready ? this.critical.size : -1,
    };
  }

  /** The wait of service queries: full while all fit in the blocking slots, shorter when they take turns. */
  private serviceWaitMs(): number {
    const n = this.serviceWatches.size;
    const slots = this.pool.blockingSlots;
    if (n <= slots) return this.opts.waitMs;
    return Math.max(this.opts.minRotationWaitMs, Math.floor((this.opts.waitMs * slots) / n));
  }

  private makeCatalogWatch(): BlockingWatch<Map<string, readonly string[]>> {
    return new BlockingWatch(
      "GET /v1/catalog/services",
      {
        fetch: (params) => this.client!.catalogServices(params),
        parse: parseCatalogServices,
        waitMs: () => this.opts.waitMs,
        onData: (services, index) => {
          this.requests.ok += 1;
          this.catalogIndex = index;
          this.failing.delete("");
          this.onCatalog(services, index);
          this.noteHealth();
        },
        onError: (err, failures) => this.onWatchError("", err, failures),
        onIndexReset: (previous, returned) => this.onIndexReset("catalog", previous, returned),
      },
      this.timing,
      null,
      this.logger,
    );
  }

  /** GET /v1/health/state/critical: the change hint for failing checks and maintenance. */
  private makeCriticalWatch(): BlockingWatch<ConsulStateCheck[]> {
    return new BlockingWatch(
      "GET /v1/health/state/critical",
      {
        fetch: (params) => this.client!.healthState("critical", params),
        parse: parseHealthState,
        waitMs: () => this.opts.waitMs,
        onData: (checks) => {
          this.requests.ok += 1;
          if (this.hintError !== null) {
            this.hintError = null;
            this.logger?.info("consul: change hints back");
          }
          this.onCritical(checks);
        },
        onError: (err, failures) => {
          if (!this.running) return;
          this.requests[err.kind] += 1;
          if (failures === 1) {
            this.logger?.warn(
              { kind: err.kind, err: err.message },
              "consul: change hints unavailable; changes arrive through the rotation until they are back",
            );
          }
          this.hintError = err.message;
        },
        onIndexReset: (previous, returned) => this.onIndexReset("critical checks", previous, returned),
      },
      this.timing,
      null,
      this.logger,
    );
  }

  /** The critical-checks watch answered: refresh the services whose critical checks changed. */
  private onCritical(checks: readonly ConsulStateCheck[]): void {
    if (!this.running) return;
    this.critical.update(checks);
    this.hintFromChecks(this.critical, "critical");
  }

  /**
   * Refreshes every service whose last health answer disagrees with what `index`
   * (a datacenter-wide check list) says about it. Comparing with what was read,
   * rather than only with the previous list, also catches what happened while
   * the list was starting, failing or resetting. A disagreement a read did not
   * settle (a lagging server with `stale`, a race with a newer change) is not
   * hinted again for the same list within `rehintAfterMs`; the rotation and the
   * sweeps still cover it.
   */
  private hintFromChecks(index: CheckIndex, kind: "critical" | "checks"): void {
    const memo = this.hinted[kind];
    const now = performance.now();
    for (const name of this.state.names()) {
      const watch = this.serviceWatches.get(name);
      if (watch === undefined) continue;
      const expected = index.signature(name, this.state.nodesOf(name));
      const cached = kind === "critical" ? this.state.criticalSignature(name) : this.state.checksSignature(name);
      if (expected === cached) {
        memo.delete(name);
        continue;
      }
      const last = memo.get(name);
      if (last !== undefined && last.sig === expected && now - last.at < rehintAfterMs) continue;
      memo.set(name, { sig: expected, at: now });
      if (watch.refresh("read")) this.hintedReads += 1;
    }
  }

  /**
   * The catalog index moved: something in the services table changed, and the
   * catalog answer may not say what (an instance registered, deregistered or
   * changed in a service that still exists). Two steps:
   * - locate (`locate`): one plain read of GET /v1/health/state/any, through a
   *   slot, on every move (the catalog loop's rate limit bounds how often); the
   *   services whose checks appeared, disappeared or changed state are read at
   *   once. This covers registrations and deregistrations of instances that
   *   have checks, whatever the catalog size;
   * - sweep (here), at most once per `sweepIntervalMs`: every watched service
   *   not holding a blocking query gets one plain read, after those and ahead
   *   of the rotation: the complete path for what checks do not show
   *   (instances without checks, port, address, meta).
   */
  private scheduleSweep(): void {
    if (!this.running || !this.opts.changeHints || this.opts.sweepIntervalMs === 0) return;
    if (this.sweepTimer !== null) return;
    const delay = Math.max(0, this.lastSweepAt + this.opts.sweepIntervalMs - performance.now());
    this.sweepTimer = setTimeout(() => void this.sweep(), delay);
  }

  private async sweep(): Promise<void> {
    if (!this.running) return;
    // Let the locator's reads queue first (briefly: it is only a hint).
    if (this.locating !== null) {
      let timer: NodeJS.Timeout | undefined;
      const cap = new Promise<void>((resolve) => (timer = setTimeout(resolve, locatorHeadStartMs)));
      await Promise.race([this.locating, cap]);
      clearTimeout(timer);
    }
    this.sweepTimer = null;
    if (!this.running) return;
    this.lastSweepAt = performance.now();
    this.sweeps += 1;
    let asked = 0;
    for (const watch of this.serviceWatches.values()) if (watch.refresh("sweep")) asked += 1;
    this.sweepReads += asked;
    this.logger?.debug({ reads: asked }, "consul: catalog index moved; sweeping");
  }

  /**
   * Reads GET /v1/health/state/any and refreshes the services it shows changed.
   * One read at a time; a move seen while a read is in flight gets one more read
   * after it (the one in flight may predate the move).
   */
  private locate(): void {
    if (!this.running || !this.opts.changeHints) return;
    if (this.locating !== null) {
      this.locateAgain = true;
      return;
    }
    this.locating = (async () => {
      do {
        this.locateAgain = false;
        await this.locateOnce();
      } while (this.locateAgain && this.running);
    })().finally(() => {
      this.locating = null;
    });
  }

  private async locateOnce(): Promise<void> {
    if (this.client === null) return;
    const signal = this.locatorAbort.signal;
    const release = await this.pool.acquire(signal, "read");
    try {
      if (release === null || !this.running || this.client === null) return;
      this.locatorReads += 1;
      const result = await this.client.healthState("any", {
        index: 0,
        wait: "",
        timeoutMs: this.opts.requestTimeoutMs,
        signal,
      });
      const checks = parseHealthState(result.body);
      if (!this.running) return;
      this.requests.ok += 1;
      this.allChecks.update(checks);
      this.hintFromChecks(this.allChecks, "checks");
    } catch (err) {
      // A hint only: the sweep reads every service anyway.
      if (!this.running) return;
      const e = err instanceof ConsulRequestError ? err : new ConsulRequestError("garbage", String(err));
      if (e.kind !== "aborted") this.requests[e.kind] += 1;
      this.logger?.debug({ err: e.message }, "consul: could not locate catalog changes; sweeping only");
    } finally {
      release?.();
    }
  }

  private onCatalog(catalog: Map<string, readonly string[]>, index: number): void {
    if (!this.running) return;
    const wanted = new Set(
      [...catalog.keys()].filter((n) => !this.opts.excludeServices.includes(n) && this.opts.serviceFilter(n)),
    );
    const previous = this.lastCatalog;
    const indexMoved = previous !== null && index !== this.lastCatalogIndex;
    this.lastCatalog = catalog;
    this.lastCatalogIndex = index;
    for (const [name, watch] of this.serviceWatches) {
      if (wanted.has(name)) continue;
      // Gone from the catalog: a real removal, not a failure.
      this.serviceWatches.delete(name);
      this.failing.delete(name);
      this.unsynced.delete(name);
      this.hinted.critical.delete(name);
      this.hinted.checks.delete(name);
      const stopping = watch.stop().finally(() => this.stopping.delete(stopping));
      this.stopping.add(stopping);
      if (this.state.delete(name)) this.markDirty();
    }
    // Services known from before a catalog reset but not watched any more.
    for (const name of [...this.state.names()]) {
      if (!wanted.has(name) && this.state.delete(name)) this.markDirty();
    }
    for (const name of wanted) {
      const existing = this.serviceWatches.get(name);
      if (existing !== undefined) {
        // The tags of a service changed: read it now. (New services are read at
        // once anyway: a watch's first read is a plain read with priority.)
        if (this.opts.changeHints && previous !== null && !sameTags(previous.get(name), catalog.get(name))) {
          if (existing.refresh("read")) this.hintedReads += 1;
        }
        continue;
      }
      const watch = this.createServiceWatch(name);
      this.serviceWatches.set(name, watch);
      if (!this.ready) this.unsynced.add(name);
      watch.start();
    }
    // Something in the services table changed (Consul's index of /v1/catalog/services
    // is that table's), but the answer may not say what: an instance registered,
    // deregistered or changed its port in a service that still exists.
    if (indexMoved && this.opts.changeHints) {
      this.locate();
      this.scheduleSweep();
    }
    this.catalogSynced = true;
    this.checkInitialSync();
  }

  private createServiceWatch(name: string): BlockingWatch<ConsulServiceEntry[]> {
    let self: BlockingWatch<ConsulServiceEntry[]> | null = null;
    const watch: BlockingWatch<ConsulServiceEntry[]> = new BlockingWatch(
      `GET /v1/health/service/${name}`,
      {
        fetch: (params) => this.client!.healthService(name, params),
        parse: (body) => parseHealthService(body, name),
        waitMs: () => this.serviceWaitMs(),
        onData: (entries) => {
          this.requests.ok += 1;
          // Ignore an answer that arrives after the watch was stopped.
          if (!this.running || this.serviceWatches.get(name) !== self) return;
          this.failing.delete(name);
          if (this.state.set(name, entries)) this.markDirty();
          if (this.unsynced.delete(name)) this.checkInitialSync();
          this.noteHealth();
        },
        onError: (err, failures) => {
          if (this.serviceWatches.get(name) === self) this.onWatchError(name, err, failures);
        },
        onIndexReset: (previous, returned) => this.onIndexReset(name, previous, returned),
      },
      this.timing,
      this.pool,
      this.logger,
    );
    self = watch;
    return watch;
  }

  private checkInitialSync(): void {
    if (this.ready || !this.catalogSynced || this.unsynced.size > 0) return;
    this.ready = true;
    this.flush(true);
    this.initialSyncDone?.();
    this.logger?.info(
      { services: this.state.size, watched: this.serviceWatches.size },
      "consul: initial catalog synced",
    );
  }

  private onWatchError(what: string, err: ConsulRequestError, failures: number): void {
    if (!this.running) return;
    this.requests[err.kind] += 1;
    this.failing.set(what, err.message);
    this.lastErrorFrom = what;
    if (failures === 1) {
      const watch = what === "" ? "catalog" : what;
      this.logger?.debug(
        { watch, kind: err.kind, err: err.message },
        "consul: query failed; keeping last state",
      );
    }
    this.noteHealth();
  }

  private onIndexReset(what: string, previous: number, returned: number): void {
    this.indexResets += 1;
    // Every watch sees a restore at once; tell the operator once (via the catalog).
    const level = what === "catalog" ? "info" : "debug";
    this.logger?.[level]({ watch: what, previous, returned }, "consul: index went backwards; restarting the watch");
  }

  /** Logs transitions between healthy and degraded once, not per watch. */
  private noteHealth(): void {
    const s = this.status();
    if (s.degraded && !this.wasDegraded) {
      this.logger?.warn({ err: s.lastError }, "consul: degraded; serving the last known endpoints");
    } else if (!s.degraded && this.wasDegraded) {
      this.logger?.info("consul: recovered");
    }
    this.wasDegraded = s.degraded;
  }

  private markDirty(): void {
    this.dirty = true;
    if (!this.ready && !this.delivered) return; // the initial sync delivers everything at once
    if (this.emitTimer !== null) return;
    this.emitTimer = setTimeout(() => {
      this.emitTimer = null;
      this.flush(false);
    }, this.opts.coalesceMs);
  }

  private flush(force: boolean): void {
    if (!this.running || this.onChange === null) return;
    if (!this.dirty && !(force && !this.delivered)) return;
    this.dirty = false;
    this.delivered = true;
    this.onChangeCalls += 1;
    this.onChange(this.state.registry());
  }
}

function sameTags(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  const sa = [...a].sort();
  const sb = [...b].sort();
  return sa.every((t, i) => t === sb[i]);
}
