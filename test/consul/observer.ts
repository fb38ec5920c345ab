/** Runs a ConsulRegistrySource in a test and records what it delivers. */
import type { RegistryState, Service } from "../../src/model/registry.ts";
import { ConsulRegistrySource, type ConsulSourceOptions } from "../../src/sources/consul/index.ts";

export class Observer {
  readonly states: RegistryState[] = [];
  readonly source: ConsulRegistrySource;
  private readonly listeners = new Set<() => void>();

  constructor(options: ConsulSourceOptions) {
    this.source = new ConsulRegistrySource(options);
  }

  async start(): Promise<void> {
    await this.source.start((state) => {
      this.states.push(state);
      for (const l of [...this.listeners]) l();
    });
  }

  stop(): Promise<void> {
    return this.source.stop();
  }

  get latest(): RegistryState | undefined {
    return this.states.at(-1);
  }

  service(name: string): Service | undefined {
    return this.latest?.services.get(name);
  }

  /** Resolves with the elapsed ms once `predicate` holds for the latest state. */
  async until(predicate: (state: RegistryState) => boolean, timeoutMs: number, what = "condition"): Promise<number> {
    const started = performance.now();
    if (this.latest && predicate(this.latest)) return 0;
    return new Promise<number>((resolve, reject) => {
      const check = () => {
        if (this.latest && predicate(this.latest)) {
          cleanup();
          resolve(Math.round(performance.now() - started));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; status ${JSON.stringify(this.source.status())}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
    });
  }
}

/** Polls `predicate` until it holds; resolves with the elapsed ms. */
export async function eventually(predicate: () => boolean, timeoutMs: number, what = "condition"): Promise<number> {
  const started = performance.now();
  while (!predicate()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Math.round(performance.now() - started);
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A name prefix unique to one test, so tests can share a real Consul. */
export function uniquePrefix(): string {
  return `sbx${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
