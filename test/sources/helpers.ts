/** Small test utilities shared by the source tests. */
import { performance } from "node:perf_hooks";
import type { HttpRouteRow } from "../../src/sources/postgres/rows.ts";

/**
 * Records every state a source delivers and lets a test wait for one that
 * satisfies a predicate, with the time it arrived.
 */
export class Recorder<T> {
  readonly states: T[] = [];
  readonly times: number[] = [];
  #waiters: { predicate: (s: T) => boolean; resolve: (r: { state: T; at: number }) => void }[] = [];

  readonly onChange = (state: T): void => {
    const at = performance.now();
    this.states.push(state);
    this.times.push(at);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.predicate(state)) return true;
      w.resolve({ state, at });
      return false;
    });
  };

  get latest(): T {
    const last = this.states.at(-1);
    if (last === undefined) throw new Error("nothing delivered yet");
    return last;
  }

  get count(): number {
    return this.states.length;
  }

  /** The latest state if it satisfies `predicate`, else the next one that does. */
  until(predicate: (s: T) => boolean, timeoutMs = 5000): Promise<{ state: T; at: number }> {
    const last = this.states.at(-1);
    if (last !== undefined && predicate(last)) return Promise.resolve({ state: last, at: this.times.at(-1)! });
    return this.next(predicate, timeoutMs);
  }

  /** The next delivered state (from now on) that satisfies `predicate`. */
  next(predicate: (s: T) => boolean, timeoutMs = 5000): Promise<{ state: T; at: number }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no matching state delivered within ${timeoutMs} ms (got ${this.count} states)`));
      }, timeoutMs);
      const done = (r: { state: T; at: number }) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.#waiters.push({ predicate, resolve: done });
    });
  }
}

/** Polls `check` until it returns true. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Notification latencies measured across the run, printed by the suites. */
export const latencies: { label: string; ms: number }[] = [];

export function summarizeLatencies(prefix: string): string {
  const mine = latencies.filter((l) => l.label.startsWith(prefix)).map((l) => l.ms);
  if (mine.length === 0) return `${prefix}: no samples`;
  mine.sort((a, b) => a - b);
  const p = (q: number) => mine[Math.min(mine.length - 1, Math.floor(q * mine.length))]!.toFixed(1);
  return `${prefix}: change -> onChange latency over ${mine.length} samples: min ${mine[0]!.toFixed(1)} ms, median ${p(0.5)} ms, max ${mine.at(-1)!.toFixed(1)} ms`;
}

/** A mesh.http_routes row as the source reads it: route 1 to "web", nothing else set. */
export const httpRouteRow = (over: Partial<HttpRouteRow> = {}): HttpRouteRow => ({
  id: "1",
  destination: "web",
  source: null,
  priority: 0,
  path_match: null,
  path: null,
  method: null,
  headers: [],
  query_params: [],
  timeout_ms: null,
  retry_on: null,
  retry_attempts: null,
  per_try_timeout_ms: null,
  ...over,
});
