/**
 * Why the store is degraded, per failing part. The store is healthy when no
 * part has an open error; `lastError` keeps the most recent message, also after
 * recovery, for the operator looking at status afterwards.
 */
import { errorMessage, type StoreLogger } from "./options.ts";

export type HealthPart = "connect" | "listener" | "reload" | "poll";

export class Health {
  readonly #open = new Map<HealthPart, string>();
  #lastError: string | null = null;

  constructor(private readonly log: StoreLogger) {}

  get degraded(): boolean {
    return this.#open.size > 0;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  failing(part: HealthPart): boolean {
    return this.#open.has(part);
  }

  fail(part: HealthPart, err: unknown): void {
    const message = `${part}: ${errorMessage(err)}`;
    const previous = this.#open.get(part);
    this.#open.set(part, message);
    this.#lastError = message;
    // Logged once per distinct failure, not on every retry.
    if (previous !== message) this.log.warn({ part, err: errorMessage(err) }, "PostgreSQL source degraded");
  }

  ok(part: HealthPart): void {
    if (this.#open.delete(part) && this.#open.size === 0) this.log.info({ part }, "PostgreSQL source recovered");
  }

  reset(): void {
    this.#open.clear();
  }
}
