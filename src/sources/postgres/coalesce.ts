/**
 * Runs an async task so that calls never overlap and bursts fold together: a
 * call while the task runs schedules exactly one more run after it, shared by
 * every caller that arrived meanwhile. Each returned promise settles with the
 * first run that *started* after the call, so a caller always observes work
 * that began after its request.
 */
export class CoalescingRunner {
  #running = false;
  #queued: Deferred | null = null;
  #idle: Promise<void> = Promise.resolve();

  constructor(private readonly task: () => Promise<void>) {}

  run(): Promise<void> {
    if (this.#running) {
      this.#queued ??= deferred();
      return this.#queued.promise;
    }
    const first = deferred();
    this.#running = true;
    this.#idle = this.#loop(first);
    return first.promise;
  }

  /** Resolves once no run is in progress or queued. Never rejects. */
  whenIdle(): Promise<void> {
    return this.#idle;
  }

  async #loop(first: Deferred): Promise<void> {
    let next: Deferred | null = first;
    while (next) {
      try {
        await this.task();
        next.resolve();
      } catch (err) {
        next.reject(err);
      }
      next = this.#queued;
      this.#queued = null;
    }
    this.#running = false;
  }
}

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers that fire and forget must not cause unhandled rejections.
  promise.catch(() => {});
  return { promise, resolve, reject };
}
