import type { Proxy } from "../model/proxy.ts";
import type { ResourceKind } from "../translate/resource-types.ts";

/** What the admin API shows about one connected proxy; owned and updated by its stream. */
export interface TypeStatus {
  /** Version of the last response sent, and whether the proxy has answered it. */
  sentVersion: string | null;
  ackedVersion: string | null;
  state: "pending" | "acked" | "nacked" | "idle";
  resourceCount: number;
  lastError: { version: string; message: string; at: string } | null;
}

export interface ProxyStatus {
  readonly streamId: number;
  readonly proxy: Proxy;
  readonly protocol: "sotw" | "delta";
  readonly connectedAt: string;
  readonly types: Partial<Record<ResourceKind, TypeStatus>>;
}

/** The set of connected proxies; streams add themselves and remove on close. */
export class ProxyDirectory {
  private readonly statuses = new Map<number, ProxyStatus>();

  add(status: ProxyStatus): void {
    this.statuses.set(status.streamId, status);
  }

  remove(streamId: number): void {
    this.statuses.delete(streamId);
  }

  list(): ProxyStatus[] {
    return [...this.statuses.values()];
  }

  get size(): number {
    return this.statuses.size;
  }
}
