/**
 * Pacing of the watch loops: a token bucket (Consul's advice for blocking-query
 * loops), exponential backoff with jitter, a FIFO slot pool that bounds how many
 * requests are in flight, and an abortable sleep.
 */

/** Resolves after `ms`, or at once (without rejecting) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * A token bucket with `burst` tokens refilled at one per `intervalMs`. Consul's
 * blocking-query guidance: rate limit the loop so a quiet watch proceeds without
 * waiting while one that churns degrades into polling at a fixed rate; a burst
 * lets a couple of quick successive changes through first.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly burst: number,
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Milliseconds to wait before a token is available; takes it. */
  reserve(): number {
    if (this.intervalMs <= 0) return 0;
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (t - this.last) / this.intervalMs);
    this.last = t;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil(-this.tokens * this.intervalMs);
  }

  async take(signal?: AbortSignal): Promise<void> {
    await sleep(this.reserve(), signal);
  }
}

/**
 * Exponential backoff with "equal jitter": half the exponential step is fixed,
 * half random, so retries of many watches spread out but never hammer.
 */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const step = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + random() * (step / 2));
}

interface Waiter {
  readonly grant: () => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/** Gives the slot back; call exactly once. */
export type Release = () => void;

/**
 * A pool of `size` slots. A watch holds a slot for exactly one request, so at most
 * `size` requests are in flight; waiting watches are served in FIFO order.
 *
 * Two kinds of request share it. Blocking queries hold a slot for up to their
 * wait; plain reads (a watch's first read, or its restart after an index reset)
 * hold one for a round trip, and readiness waits on them. So plain reads go
 * first, and `reserved` slots are kept for them alone: blocking queries never
 * take more than `size - reserved`, and a new service is read promptly even when
 * every blocking slot is busy.
 */
export class SlotPool {
  private inUse = 0;
  private blockingInUse = 0;
  private peak = 0;
  private readonly waiters: Waiter[] = [];
  private readonly urgent: Waiter[] = [];
  readonly reserved: number;

  constructor(readonly size: number) {
    this.reserved = size > 1 ? Math.max(1, Math.floor(size / 8)) : 0;
  }

  /** Slots blocking queries may use at once. */
  get blockingSlots(): number {
    return this.size - this.reserved;
  }

  get active(): number {
    return this.inUse;
  }

  get queued(): number {
    return this.waiters.length + this.urgent.length;
  }

  /** The most slots ever held at once. */
  get maxActive(): number {
    return this.peak;
  }

  /**
   * Resolves with a release function once a slot is held, or null when the signal
   * aborted first. `urgent` marks a plain (non-blocking) read.
   */
  acquire(signal?: AbortSignal, urgent = false): Promise<Release | null> {
    if (signal?.aborted) return Promise.resolve(null);
    if (this.canTake(urgent)) return Promise.resolve(this.take(urgent));
    const queue = urgent ? this.urgent : this.waiters;
    return new Promise((resolve) => {
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener("abort", waiter.onAbort);
          resolve(this.take(urgent));
        },
        signal,
        onAbort: () => {
          const i = queue.indexOf(waiter);
          if (i >= 0) queue.splice(i, 1);
          resolve(null);
        },
      };
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
      queue.push(waiter);
    });
  }

  private canTake(urgent: boolean): boolean {
    if (this.inUse >= this.size) return false;
    return urgent || this.blockingInUse < this.blockingSlots;
  }

  private take(urgent: boolean): Release {
    this.inUse += 1;
    if (!urgent) this.blockingInUse += 1;
    if (this.inUse > this.peak) this.peak = this.inUse;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inUse -= 1;
      if (!urgent) this.blockingInUse -= 1;
      this.dispatch();
    };
  }

  private dispatch(): void {
    while (this.urgent.length > 0 && this.canTake(true)) this.urgent.shift()!.grant();
    while (this.waiters.length > 0 && this.canTake(false)) this.waiters.shift()!.grant();
  }
}
