/**
 * One blocking-query loop, following Consul's documented rules
 * (https://developer.hashicorp.com/consul/api-docs/features/blocking):
 *
 * - send the last X-Consul-Index as `index` with a `wait`; a return is no proof
 *   of a change (timeout, idempotent write), so the caller diffs every answer;
 * - if the index goes backwards (snapshot restore, a new cluster, a server that
 *   lags with `?stale`), reset it to 0: the next request is a plain read that
 *   restarts the loop;
 * - otherwise never block on an index below 1 (an index of 0 would not block and
 *   would turn the loop into a busy loop);
 * - rate limit each loop with a token bucket: no delay while quiet, a fixed polling
 *   rate while the result churns;
 * - on errors, back off exponentially with jitter, keep the last good result, and
 *   recover by itself: the retry is a plain read, so the watch catches up (and
 *   stops failing) at once when Consul is back, even if nothing changed.
 *
 * A watch that runs through the slot pool can also be asked to `refresh()`: its
 * next request becomes a plain read with priority over blocking queries. The
 * source does this when a change hint (the critical-checks watch, the catalog
 * watch) says the service changed while it was waiting for its turn. A blocking
 * query already in flight needs no refresh: Consul answers it as soon as the
 * service's index moves.
 */
import type { Logger } from "pino";
import { ConsulRequestError, type QueryParams, type QueryResult } from "./client.ts";
import { ShapeError } from "./consul-types.ts";
import { backoffDelay, sleep, type SlotKind, type SlotPool, TokenBucket } from "./pacing.ts";

/** Why a plain read is asked for out of turn: a named change, or a sweep. */
export type RefreshKind = "read" | "sweep";

export interface WatchTiming {
  readonly minLoopIntervalMs: number;
  readonly loopBurst: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly requestTimeoutMs: number;
  readonly blockingTimeoutMarginMs: number;
}

export interface WatchHandlers<T> {
  /** Issues the request. */
  fetch(params: QueryParams): Promise<QueryResult>;
  /** Validates the body; throws ShapeError (or anything) for garbage. */
  parse(body: unknown): T;
  /** A good answer (possibly identical to the last one: diff it). */
  onData(value: T, index: number): void;
  /** A failed attempt; the last good value stays in force. */
  onError(error: ConsulRequestError, consecutiveFailures: number): void;
  /** The index went backwards and was reset. */
  onIndexReset?(previous: number, returned: number): void;
  /** Current blocking wait in milliseconds (it shrinks when watches take turns). */
  waitMs(): number;
}

export interface WatchState {
  readonly index: number;
  readonly failures: number;
  readonly lastError: string | null;
  /** At least one good answer received. */
  readonly synced: boolean;
}

export class BlockingWatch<T> {
  private readonly controller = new AbortController();
  private readonly bucket: TokenBucket;
  private index = 0;
  private failures = 0;
  private lastError: string | null = null;
  private synced = false;
  private loop: Promise<void> | null = null;
  /** A refresh asked for and not yet sent. */
  private pendingRefresh: RefreshKind | null = null;
  /** What is on the wire now, if anything. */
  private inFlight: "plain" | "blocking" | null = null;
  /** Set while waiting for a slot: gives up the wait so it is retried with a higher priority. */
  private requeue: (() => void) | null = null;

  constructor(
    readonly label: string,
    private readonly handlers: WatchHandlers<T>,
    private readonly timing: WatchTiming,
    private readonly pool: SlotPool | null,
    private readonly logger: Logger | undefined,
  ) {
    this.bucket = new TokenBucket(timing.loopBurst, timing.minLoopIntervalMs);
  }

  state(): WatchState {
    return { index: this.index, failures: this.failures, lastError: this.lastError, synced: this.synced };
  }

  start(): void {
    if (this.loop === null) this.loop = this.run();
  }

  /**
   * Asks for a plain read out of turn (only for watches that use the slot pool):
   * the next request does not block and waits for a slot ahead of blocking
   * queries (`read` ahead of `sweep`). A request already waiting for a slot moves
   * up; a plain read already in flight is followed by another one, since it may
   * have been answered before the change; a blocking query in flight is left
   * alone, since Consul answers it when the service changes. The loop's rate
   * limit and backoff still apply. Returns false when nothing needed to be done.
   */
  refresh(kind: RefreshKind): boolean {
    if (this.pool === null || this.signal.aborted) return false;
    if (this.inFlight === "blocking") return false;
    if (this.pendingRefresh === "read" || this.pendingRefresh === kind) return false;
    this.pendingRefresh = kind;
    this.requeue?.();
    return true;
  }

  /** Stops the loop and aborts its request in flight. */
  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
  }

  private get signal(): AbortSignal {
    return this.controller.signal;
  }

  private async run(): Promise<void> {
    // Set while the current attempt is the one immediate retry after a reset.
    let quickRetry = false;
    // The first read is not part of the loop's churn, so it takes no token: the
    // burst is left for quick successive changes.
    let first = true;
    while (!this.signal.aborted) {
      if (!quickRetry && !first) await this.bucket.take(this.signal);
      first = false;
      if (this.signal.aborted) break;

      const requested = this.index;
      let result: QueryResult;
      let value: T;
      try {
        result = await this.request(requested);
        if (result.index === null) {
          throw new ConsulRequestError("garbage", `${this.label}: answer without X-Consul-Index`);
        }
        try {
          value = this.handlers.parse(result.body);
        } catch (err) {
          const msg = err instanceof ShapeError ? err.message : String(err);
          throw new ConsulRequestError("garbage", `${this.label}: unexpected answer: ${msg}`);
        }
      } catch (err) {
        if (this.signal.aborted) break;
        const e =
          err instanceof ConsulRequestError ? err : new ConsulRequestError("unreachable", `${this.label}: ${String(err)}`);
        if (e.kind === "aborted") break;
        // A keep-alive socket the server closed while idle fails the first write
        // with a reset; one immediate retry tells that apart from a real outage.
        if (this.failures === 0 && !quickRetry && isStaleSocket(e)) {
          quickRetry = true;
          this.logger?.debug({ watch: this.label, err: e.message }, "consul: retrying on a fresh connection");
          continue;
        }
        quickRetry = false;
        this.failures += 1;
        this.lastError = e.message;
        this.handlers.onError(e, this.failures);
        const delay = backoffDelay(this.failures - 1, this.timing.backoffInitialMs, this.timing.backoffMaxMs);
        await sleep(delay, this.signal);
        continue;
      }

      quickRetry = false;
      const returned = result.index;
      if (returned < requested) {
        // Consul: "reset the index if it goes backwards".
        this.index = 0;
        this.handlers.onIndexReset?.(requested, returned);
      } else {
        // Consul: "sanity check index is greater than zero".
        this.index = Math.max(returned, 1);
      }
      this.failures = 0;
      this.lastError = null;
      this.synced = true;
      this.handlers.onData(value, returned);
    }
  }

  private async request(index: number): Promise<QueryResult> {
    // After a failure, catch up with a plain read: a blocking query with the old
    // index would not answer (nor clear the failure) until the data changes or
    // the wait runs out.
    const plainNeeded = index === 0 || this.failures > 0;
    if (this.pool === null) return this.send(plainNeeded ? 0 : index);
    const slot = await this.acquireSlot(this.pool, plainNeeded);
    if (slot === null) throw new ConsulRequestError("aborted", `${this.label}: aborted`);
    // A refresh asked for before this point is served by this request.
    const plain = slot.kind !== "blocking";
    if (plain) this.pendingRefresh = null;
    this.inFlight = plain ? "plain" : "blocking";
    try {
      return await this.send(plain ? 0 : index);
    } finally {
      this.inFlight = null;
      slot.release();
    }
  }

  /** Waits for a slot of the right kind; a refresh while waiting moves the wait up. Null when stopped. */
  private async acquireSlot(pool: SlotPool, plainNeeded: boolean): Promise<{ kind: SlotKind; release: () => void } | null> {
    while (!this.signal.aborted) {
      const kind: SlotKind = plainNeeded ? "read" : this.pendingRefresh ?? "blocking";
      if (kind === "read") {
        const release = await pool.acquire(this.signal, kind);
        return release === null ? null : { kind, release };
      }
      const wait = new AbortController();
      const onAbort = () => wait.abort();
      this.signal.addEventListener("abort", onAbort, { once: true });
      this.requeue = () => wait.abort();
      try {
        const release = await pool.acquire(wait.signal, kind);
        if (release !== null) return { kind, release };
      } finally {
        this.requeue = null;
        this.signal.removeEventListener("abort", onAbort);
      }
    }
    return null;
  }

  private send(index: number): Promise<QueryResult> {
    const waitMs = this.handlers.waitMs();
    return this.handlers.fetch({
      index,
      wait: `${waitMs}ms`,
      // Consul may hold a blocking request for wait + wait/16 of jitter.
      timeoutMs:
        index > 0
          ? waitMs + Math.ceil(waitMs / 16) + this.timing.blockingTimeoutMarginMs
          : this.timing.requestTimeoutMs,
      signal: this.signal,
    });
  }
}

function isStaleSocket(e: ConsulRequestError): boolean {
  return e.kind === "unreachable" && /ECONNRESET|EPIPE|socket hang up/i.test(e.message);
}
