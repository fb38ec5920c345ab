/**
 * Exponential reconnect delay with jitter, so replicas that lost the same
 * database do not reconnect in lock step.
 */
export interface BackoffOptions {
  /** First delay, ms. */
  readonly minMs: number;
  /** Ceiling, ms. */
  readonly maxMs: number;
}

export class Backoff {
  #attempt = 0;

  constructor(private readonly options: BackoffOptions) {}

  /** The delay before the next attempt; grows until reset(). */
  next(): number {
    const ceiling = Math.min(this.options.maxMs, this.options.minMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
