/**
 * Coalesces bursts: runs `action` once things have been quiet for `quietMs`, but
 * never later than `maxDelayMs` after the first trigger of a burst, so a steady
 * trickle of changes cannot postpone it forever. At most one action runs at a
 * time; triggers during a run schedule one more run after it. The pipeline
 * debounces source deliveries into rebuilds with it, and the PostgreSQL source
 * change notifications into reloads.
 */
export class Debouncer {
  private quietTimer: NodeJS.Timeout | null = null;
  private maxTimer: NodeJS.Timeout | null = null;
  private running = false;
  private rerun = false;
  private stopped = false;

  constructor(
    private readonly quietMs: number,
    private readonly maxDelayMs: number,
    private readonly action: () => Promise<void> | void,
    private readonly onError: (error: unknown) => void,
  ) {}

  trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    if (this.quietTimer) clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => void this.fire(), this.quietMs);
    this.maxTimer ??= setTimeout(() => void this.fire(), this.maxDelayMs);
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
  }

  private clearTimers(): void {
    if (this.quietTimer) clearTimeout(this.quietTimer);
    if (this.maxTimer) clearTimeout(this.maxTimer);
    this.quietTimer = null;
    this.maxTimer = null;
  }

  private async fire(): Promise<void> {
    this.clearTimers();
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      await this.action();
    } catch (error) {
      this.onError(error);
    } finally {
      this.running = false;
      if (this.rerun) {
        this.rerun = false;
        this.trigger();
      }
    }
  }
}
