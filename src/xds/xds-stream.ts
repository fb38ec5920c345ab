import type { Logger } from "pino";
import type { Proxy } from "../model/proxy.ts";
import { kindOfTypeUrl, RESOURCE_KINDS, TYPE_URLS, type ResourceKind } from "../translate/resource-types.ts";
import type { ResourceCache } from "./cache.ts";
import type { XdsMetrics } from "./metrics.ts";
import type { ProxyStatus } from "./proxy-status.ts";
import { nonceString } from "./request-decode.ts";

/**
 * What every xDS stream shares, whatever its protocol (SotW or delta): it
 * retains its proxy's view in the cache while open, accepts only its service's
 * resource types, numbers its nonces, and pauses while the transport is full.
 */

/** The writable side of a stream, so tests can drive a stream without gRPC. */
export interface ResponseSink {
  /**
   * Sends the response `body` (a discovery response without its nonce, shared
   * by every stream that gets the same content) completed by `nonce` as its
   * field 5 (see `withNonce` in encoding.ts): the sink writes the two into the
   * transport without building a per-stream copy. Returns false when the
   * transport buffer is full; `onDrain` then fires once.
   */
  write(body: Uint8Array, nonce: string): boolean;
  onDrain(callback: () => void): void;
}

/**
 * A stream's state per resource kind. A plain object with every kind's slot
 * present from the start, not a Map: it is read on every push and every ACK
 * of every stream, and a fixed-shape object is one load away.
 */
export type PerKind<T> = Record<ResourceKind, T | undefined>;

export function perKind<T>(): PerKind<T> {
  return { cluster: undefined, endpoint: undefined, listener: undefined, route: undefined };
}

/**
 * The kind whose resources name each kind's: endpoints belong to clusters,
 * routes to listeners. Envoy warms a new or changed cluster (listener) until
 * its endpoints (routes) arrive.
 */
const PARENT_OF: Partial<Record<ResourceKind, ResourceKind>> = { endpoint: "cluster", route: "listener" };
/** PARENT_OF the other way round. */
export const CHILD_OF: Partial<Record<ResourceKind, ResourceKind>> = Object.fromEntries(
  Object.entries(PARENT_OF).map(([child, parent]) => [parent, child]),
);

export class UnsupportedTypeError extends Error {
  constructor(readonly typeUrl: string) {
    super(`unsupported resource type ${JSON.stringify(typeUrl)}; this server serves ${RESOURCE_KINDS.map((k) => TYPE_URLS[k]).join(", ")}`);
  }
}

export abstract class XdsStream {
  private nonceCounter = 0;
  protected paused = false;
  protected dirty = false;
  protected closed = false;
  /** The view key this stream retains in the cache. */
  readonly viewKey: string;

  constructor(
    readonly status: ProxyStatus,
    protected readonly cache: ResourceCache,
    protected readonly sink: ResponseSink,
    protected readonly metrics: XdsMetrics,
    protected readonly logger: Logger,
    /** Single-type services accept only their own type. */
    private readonly allowedKinds: readonly ResourceKind[] = RESOURCE_KINDS,
  ) {
    this.viewKey = cache.retain(status.proxy);
  }

  get proxy(): Proxy {
    return this.status.proxy;
  }

  /** The stream ended: stop retaining its view. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cache.release(this.viewKey);
  }

  /** The cache has new content (or the stream drained): bring every type up to date. */
  abstract refresh(): void;

  /** Whether this stream serves `kind` (ADS serves every kind; a single-type service its own). */
  protected serves(kind: ResourceKind): boolean {
    return this.allowedKinds.includes(kind);
  }

  /** This stream serves `kind` but not its parent (a single-type EDS or RDS stream): it cannot see the parent change. */
  protected servesWithoutParent(kind: ResourceKind): boolean {
    const parent = PARENT_OF[kind];
    return parent !== undefined && this.serves(kind) && !this.serves(parent);
  }

  /** The resource kind a request is for; throws a user-facing error for one this stream does not serve. */
  protected kindOf(typeUrl: string): ResourceKind {
    const kind = kindOfTypeUrl(typeUrl);
    if (!kind || !this.serves(kind)) throw new UnsupportedTypeError(typeUrl);
    return kind;
  }

  /** Decimal counters from 1; small ones are shared strings (see nonceString), so numbering allocates nothing. */
  protected nextNonce(): string {
    return nonceString(++this.nonceCounter);
  }

  /** The transport buffer is full: write nothing more until it drains, then send the newest state. */
  protected pause(): void {
    this.paused = true;
    this.sink.onDrain(() => {
      this.paused = false;
      if (this.dirty) {
        this.dirty = false;
        this.refresh();
      }
    });
  }
}
