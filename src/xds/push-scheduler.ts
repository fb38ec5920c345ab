/**
 * Brings streams up to date after a cache change, a bounded slice at a time
 * (at most `batchSize` streams and about `sliceMs` of work per event-loop turn),
 * so a push to thousands of streams never starves the event loop: ACKs and new
 * connections are served between slices. A stream queued twice is refreshed
 * once: it always computes from the newest generation. Streams whose transport
 * is full do not block the round: they skip writing and catch up on drain.
 */
export interface Refreshable {
  refresh(): void;
}

export class PushScheduler {
  private readonly queue = new Set<Refreshable>();
  private running = false;
  /** When the current round started. */
  private started = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly batchSize: number,
    private readonly onRoundDone: (seconds: number) => void = () => {},
    private readonly sliceMs: number = 20,
  ) {}

  schedule(streams: Iterable<Refreshable>): void {
    for (const stream of streams) this.queue.add(stream);
    if (!this.running && this.queue.size > 0) this.run();
  }

  forget(stream: Refreshable): void {
    this.queue.delete(stream);
  }

  /** Streams waiting for their refresh. */
  get pending(): number {
    return this.queue.size;
  }

  /** Resolves when no push is queued; for tests and benchmarks. */
  idle(): Promise<void> {
    if (!this.running && this.queue.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private run(): void {
    this.running = true;
    this.started = performance.now();
    setImmediate(this.step);
  }

  /**
   * One slice of a round. Made once per scheduler, not once per round: a
   * function made per round left V8 optimizing its loop on stack (OSR) in
   * every round and throwing the code away when the loop ended
   * (docs/benchmarks.md, "Session 26").
   */
  private readonly step = (): void => {
    const sliceStart = performance.now();
    let done = 0;
    for (const stream of this.queue) {
      this.queue.delete(stream);
      stream.refresh();
      if (++done >= this.batchSize) break;
      if ((done & 31) === 0 && performance.now() - sliceStart >= this.sliceMs) break;
    }
    if (this.queue.size > 0) {
      setImmediate(this.step);
      return;
    }
    this.running = false;
    this.onRoundDone((performance.now() - this.started) / 1000);
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  };
}
