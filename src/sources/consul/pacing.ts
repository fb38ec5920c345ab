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
  readonly onAbort: () => void;
  /** Set when the wait was given up (aborted); the queue skips it. */
  cancelled: boolean;
}

/**
 * A FIFO queue of waiters with O(1) push, shift and removal (removal marks the
 * waiter; shift skips marked ones). A sweep may move thousands of waiting
 * watches to another queue at once.
 */
class WaiterQueue {
  private items: Waiter[] = [];
  private head = 0;
  private live = 0;

  get length(): number {
    return this.live;
  }

  push(waiter: Waiter): void {
    this.items.push(waiter);
    this.live += 1;
  }

  remove(waiter: Waiter): void {
    if (waiter.cancelled) return;
    waiter.cancelled = true;
    this.live -= 1;
  }

  shift(): Waiter | undefined {
    while (this.head < this.items.length) {
      const waiter = this.items[this.head]!;
      this.head += 1;
      if (waiter.cancelled) continue;
      this.live -= 1;
      this.compact();
      return waiter;
    }
    this.compact();
    return undefined;
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** Gives the slot back; call exactly once. */
export type Release = () => void;

/**
 * What a request holds a slot for, in the order slots are granted:
 * - `read`: a plain (non-blocking) read readiness or a change hint waits on: a
 *   watch's first read, its restart after an index reset, or a refresh because a
 *   change hint named the service. One round trip.
 * - `sweep`: a plain read of a priority sweep (something changed somewhere in the
 *   catalog, Consul does not say where). One round trip.
 * - `blocking`: a blocking query, held for up to its wait.
 */
export type SlotKind = "read" | "sweep" | "blocking";

/**
 * A pool of `size` slots. A watch holds a slot for exactly one request, so at most
 * `size` requests are in flight; waiting watches are served in FIFO order within
 * their kind, and kinds in the order read, sweep, blocking.
 *
 * Blocking queries hold a slot for up to their wait; plain reads hold one for a
 * round trip, and readiness and change hints wait on them. So plain reads go
 * first, and `reserved` slots are kept for them alone: blocking queries never
 * take more than `size - reserved`, and a new service (or one a hint names) is
 * read promptly even when every blocking slot is busy.
 */
export class SlotPool {
  private inUse = 0;
  private blockingInUse = 0;
  private peak = 0;
  private readonly queues: Record<SlotKind, WaiterQueue> = {
    read: new WaiterQueue(),
    sweep: new WaiterQueue(),
    blocking: new WaiterQueue(),
  };
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
    return this.queues.read.length + this.queues.sweep.length + this.queues.blocking.length;
  }

  /** The most slots ever held at once. */
  get maxActive(): number {
    return this.peak;
  }

  /**
   * Resolves with a release function once a slot is held, or null when the signal
   * aborted first. `kind` says what the slot is for (`true` means a plain read,
   * `false` a blocking query).
   */
  acquire(signal?: AbortSignal, kind: SlotKind | boolean = "blocking"): Promise<Release | null> {
    const k: SlotKind = kind === true ? "read" : kind === false ? "blocking" : kind;
    if (signal?.aborted) return Promise.resolve(null);
    if (this.canTake(k)) return Promise.resolve(this.take(k));
    const queue = this.queues[k];
    return new Promise((resolve) => {
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener("abort", waiter.onAbort);
          resolve(this.take(k));
        },
        onAbort: () => {
          queue.remove(waiter);
          resolve(null);
        },
        cancelled: false,
      };
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
      queue.push(waiter);
    });
  }

  private canTake(kind: SlotKind): boolean {
    if (this.inUse >= this.size) return false;
    // A waiting plain read goes before anything else of a lower kind.
    if (kind !== "read" && this.queues.read.length > 0) return false;
    if (kind === "blocking") return this.queues.sweep.length === 0 && this.blockingInUse < this.blockingSlots;
    return true;
  }

  private take(kind: SlotKind): Release {
    const blocking = kind === "blocking";
    this.inUse += 1;
    if (blocking) this.blockingInUse += 1;
    if (this.inUse > this.peak) this.peak = this.inUse;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inUse -= 1;
      if (blocking) this.blockingInUse -= 1;
      this.dispatch();
    };
  }

  private dispatch(): void {
    for (const kind of ["read", "sweep", "blocking"] as const) {
      const queue = this.queues[kind];
      while (queue.length > 0 && this.canTake(kind)) queue.shift()?.grant();
    }
  }
}
