import type { Logger } from "pino";
import type { DiscoveryRequest } from "../gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { Proxy } from "../model/proxy.ts";
import { kindOfTypeUrl, RESOURCE_KINDS, TYPE_URLS, type ResourceKind } from "../translate/resource-types.ts";
import { classifyRequest } from "./ack.ts";
import type { ResourceCache } from "./cache.ts";
import { encodeDiscoveryResponse, setVersion, type EncodedResource } from "./encoding.ts";
import type { XdsMetrics } from "./metrics.ts";
import type { ProxyStatus, TypeStatus } from "./proxy-status.ts";

/**
 * One state-of-the-world stream (ADS, or a single-type service). It keeps, per
 * resource type, what the client asked for and what it was last sent, decides
 * when to push, and keeps Envoy's ordering rules:
 *  - push in make-before-break order: clusters, endpoints, listeners, routes;
 *  - clusters that disappear stay in CDS until the proxy has ACKed the listeners
 *    and routes that stopped using them;
 *  - after a cluster (listener) changes, Envoy re-requests its endpoints (routes)
 *    and waits for them: answer that request even if nothing else changed;
 *  - on NACK keep the last accepted version and never resend the rejected content.
 */

/** The writable side of a stream, so tests can drive a stream without gRPC. */
export interface ResponseSink {
  /** Returns false when the transport buffer is full; `onDrain` then fires once. */
  write(bytes: Uint8Array): boolean;
  onDrain(callback: () => void): void;
}

interface TypeState {
  readonly kind: ResourceKind;
  subscribed: readonly string[] | null;
  /** Has the client ever named resources for this type (ends legacy wildcard)? */
  named: boolean;
  wildcard: boolean;
  lastNonce: string | null;
  sent: ReadonlyMap<string, EncodedResource>;
  rejectedVersion: string | null;
  /** Answer the next request even if its content is unchanged (parent was re-sent). */
  resendOnRequest: boolean;
  readonly status: TypeStatus;
}

export class SotwStream {
  private readonly types = new Map<ResourceKind, TypeState>();
  private nonceCounter = 0;
  private paused = false;
  private dirty = false;
  /** Clusters kept in CDS only until new listeners and routes are ACKed. */
  private retainedClusters = new Map<string, EncodedResource>();

  constructor(
    readonly status: ProxyStatus,
    private readonly cache: ResourceCache,
    private readonly sink: ResponseSink,
    private readonly metrics: XdsMetrics,
    private readonly logger: Logger,
    /** Single-type services accept only their own type. */
    private readonly allowedKinds: readonly ResourceKind[] = RESOURCE_KINDS,
  ) {}

  get proxy(): Proxy {
    return this.status.proxy;
  }

  /** Handle one request; throws a user-facing error for a request this stream cannot serve. */
  handleRequest(request: DiscoveryRequest): void {
    const kind = kindOfTypeUrl(request.typeUrl);
    if (!kind || !this.allowedKinds.includes(kind)) {
      throw new UnsupportedTypeError(request.typeUrl);
    }
    const state = this.typeState(kind);
    const errorMessage = request.errorDetail ? request.errorDetail.message || `code ${request.errorDetail.code}` : null;
    const verdict = classifyRequest(
      { versionInfo: request.versionInfo, responseNonce: request.responseNonce, resourceNames: request.resourceNames, errorMessage },
      { lastNonce: state.lastNonce, subscribed: state.subscribed },
    );
    if (verdict.kind === "stale") {
      this.metrics.staleRequests.inc({ type: kind });
      return;
    }
    this.updateSubscription(state, request.resourceNames);

    if (verdict.kind === "initial") {
      // A reconnecting client reports the version it already has: if that is what
      // we would send, it has everything and is not pushed again.
      const target = this.target(state);
      const version = setVersion(target.values());
      if (request.versionInfo !== "" && request.versionInfo === version) {
        state.sent = target;
        state.status.sentVersion = version;
        state.status.ackedVersion = version;
        state.status.state = "acked";
        state.status.resourceCount = target.size;
        return;
      }
      this.push(state, true);
      return;
    }
    if (verdict.kind === "nack") {
      const version = state.status.sentVersion ?? "";
      state.rejectedVersion = version;
      state.status.state = "nacked";
      state.status.lastError = { version, message: errorMessage ?? "", at: new Date().toISOString() };
      this.metrics.nacks.inc({ type: kind });
      this.logger.warn({ proxy: this.proxy.id, type: kind, version, error: errorMessage }, "proxy rejected config (NACK)");
    } else {
      state.status.ackedVersion = request.versionInfo;
      state.status.state = "acked";
      state.rejectedVersion = null;
      this.onAck(kind);
    }
    if (verdict.subscriptionChanged || state.resendOnRequest) this.push(state, state.resendOnRequest);
  }

  /** The cache has a new generation (or the stream drained): bring every type up to date. */
  refresh(): void {
    if (this.paused) {
      this.dirty = true;
      return;
    }
    for (const kind of RESOURCE_KINDS) {
      const state = this.types.get(kind);
      if (state) this.push(state, false);
    }
  }

  private typeState(kind: ResourceKind): TypeState {
    let state = this.types.get(kind);
    if (!state) {
      const status: TypeStatus = { sentVersion: null, ackedVersion: null, state: "idle", resourceCount: 0, lastError: null };
      state = {
        kind,
        subscribed: null,
        named: false,
        wildcard: false,
        lastNonce: null,
        sent: new Map(),
        rejectedVersion: null,
        resendOnRequest: false,
        status,
      };
      this.types.set(kind, state);
      this.status.types[kind] = status;
    }
    return state;
  }

  /**
   * Wildcard: "*" in the names, or (legacy) an empty list from a client that has
   * never named resources of a type that supports wildcard (listeners, clusters).
   */
  private updateSubscription(state: TypeState, names: readonly string[]): void {
    const explicit = names.filter((name) => name !== "*");
    if (explicit.length > 0) state.named = true;
    const wildcardCapable = state.kind === "cluster" || state.kind === "listener";
    state.wildcard = names.includes("*") || (wildcardCapable && names.length === 0 && !state.named);
    state.subscribed = [...names];
  }

  private target(state: TypeState): Map<string, EncodedResource> {
    const view = this.cache.viewFor(this.proxy);
    const available = view?.resources[state.kind] ?? new Map<string, EncodedResource>();
    const target = new Map<string, EncodedResource>();
    if (state.wildcard) {
      for (const [name, resource] of available) target.set(name, resource);
    } else {
      for (const name of state.subscribed ?? []) {
        const resource = available.get(name);
        if (resource) target.set(name, resource);
      }
    }
    if (state.kind === "cluster") {
      for (const [name, resource] of this.retainedClusters) {
        if (!target.has(name) && (state.wildcard || state.subscribed?.includes(name))) target.set(name, resource);
      }
    }
    return target;
  }

  private push(state: TypeState, force: boolean): void {
    if (state.subscribed === null || !this.cache.hasSnapshot) return;
    if (this.paused) {
      this.dirty = true;
      return;
    }
    if (state.kind === "cluster") this.planClusterRemoval(state);
    const target = this.target(state);
    const version = setVersion(target.values());
    if (!force && version === state.status.sentVersion) return;
    if (version === state.rejectedVersion) return;

    const nonce = String(++this.nonceCounter);
    const bytes = encodeDiscoveryResponse(TYPE_URLS[state.kind], version, nonce, target.values());
    const previous = state.sent;
    state.lastNonce = nonce;
    state.sent = target;
    state.resendOnRequest = false;
    state.status.sentVersion = version;
    state.status.state = "pending";
    state.status.resourceCount = target.size;
    this.metrics.responses.inc({ type: state.kind });
    this.metrics.responseBytes.inc({ type: state.kind }, bytes.length);
    if (!this.sink.write(bytes)) {
      this.paused = true;
      this.sink.onDrain(() => {
        this.paused = false;
        if (this.dirty) {
          this.dirty = false;
          this.refresh();
        }
      });
    }
    const child = state.kind === "cluster" ? "endpoint" : state.kind === "listener" ? "route" : null;
    if (child && changedAny(previous, target)) {
      const childState = this.types.get(child);
      if (childState) childState.resendOnRequest = true;
    }
  }

  /**
   * Clusters leaving the view are kept while the listeners and routes that might
   * still point at them are unacknowledged; dropped once they are.
   */
  private planClusterRemoval(state: TypeState): void {
    const view = this.cache.viewFor(this.proxy);
    const current = view?.resources.cluster ?? new Map<string, EncodedResource>();
    for (const [name, resource] of state.sent) {
      if (!current.has(name) && !this.retainedClusters.has(name)) this.retainedClusters.set(name, resource);
    }
    for (const name of [...this.retainedClusters.keys()]) {
      if (current.has(name)) this.retainedClusters.delete(name);
    }
    if (this.retainedClusters.size > 0 && this.dependentsSettled()) this.retainedClusters.clear();
  }

  /** Listeners and routes have been answered at the current generation (or are not used). */
  private dependentsSettled(): boolean {
    for (const kind of ["listener", "route"] as const) {
      const state = this.types.get(kind);
      if (!state || state.subscribed === null) continue;
      const upToDate = setVersion(this.target(state).values()) === state.status.sentVersion;
      if (!upToDate || state.status.state === "pending") return false;
    }
    return true;
  }

  private onAck(kind: ResourceKind): void {
    if ((kind === "listener" || kind === "route") && this.retainedClusters.size > 0) {
      const clusters = this.types.get("cluster");
      if (clusters) this.push(clusters, false);
    }
  }
}

function changedAny(previous: ReadonlyMap<string, EncodedResource>, next: ReadonlyMap<string, EncodedResource>): boolean {
  for (const [name, resource] of next) {
    if (previous.get(name)?.version !== resource.version) return true;
  }
  return false;
}

export class UnsupportedTypeError extends Error {
  constructor(readonly typeUrl: string) {
    super(`unsupported resource type ${JSON.stringify(typeUrl)}; this server serves ${RESOURCE_KINDS.map((k) => TYPE_URLS[k]).join(", ")}`);
  }
}
