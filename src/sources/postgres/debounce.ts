/**
 * Trailing debounce with a ceiling: fires once things have been quiet for
 * `settleMs`, but never later than `maxDelayMs` after the first poke, so a
 * steady stream of changes still gets reloads at a bounded interval.
 */
import { performance } from "node:perf_hooks";

export class Debouncer {
  #timer: ReturnType<typeof setTimeout> | null = null;
  #first = 0;
  #last = 0;

  constructor(
    private readonly fire: () => void,
    private readonly settleMs: number,
    private readonly maxDelayMs: number,
  ) {}

  poke(): void {
    this.#last = performance.now();
    if (this.#timer) return;
    this.#first = this.#last;
    this.#arm(this.settleMs);
  }

  cancel(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(() => {
      const now = performance.now();
      const quiet = now - this.#last;
      const waited = now - this.#first;
      if (quiet < this.settleMs && waited < this.maxDelayMs) {
        this.#arm(Math.min(this.settleMs - quiet, this.maxDelayMs - waited));
        return;
      }
      this.#timer = null;
      this.fire();
    }, Math.max(0, delayMs));
  }
}
