import { RESOURCE_KINDS, TYPE_URLS, type ResourceKind } from "../translate/resource-types.ts";
import { classifyRequest } from "./ack.ts";
import { Target, type ProxyView } from "./cache.ts";
import { diffMaps, sameResources } from "./encoded-parts.ts";
import { setVersion, type EncodedResource } from "./encoding.ts";
import type { TypeStatus } from "./proxy-status.ts";
import type { SotwRequest } from "./request-decode.ts";
import { sameBytes, subscriptions, type Subscription } from "./subscriptions.ts";
import { CHILD_OF, perKind, XdsStream } from "./xds-stream.ts";

export { UnsupportedTypeError, type ResponseSink } from "./xds-stream.ts";

/**
 * One state-of-the-world stream (ADS, or a single-type service). It keeps, per
 * resource type, what the client asked for and what it was last sent, decides
 * when to push, and keeps Envoy's ordering rules:
 *  - push in make-before-break order: clusters, endpoints, listeners, routes;
 *  - clusters that disappear stay in CDS until the proxy has ACKed the listeners
 *    and routes that stopped using them (not while it rejects them);
 *  - after a cluster (listener) changes from what the proxy last ACKed, Envoy
 *    re-requests its endpoints (routes) and waits for them: answer that request
 *    even if nothing else changed. A single-type EDS (RDS) stream cannot see
 *    the clusters (listeners) change: it answers a request that repeats one
 *    already answered;
 *  - on NACK keep the last accepted version and never resend the rejected
 *    content; a request still carrying the kept version does not end that.
 *
 * Per push the stream does O(1) work per type that did not change: what a
 * subscription should hold (and its encoded response body) is memoized in the
 * view and shared by every stream with the same view and subscription; the
 * stream's nonce is appended by the sink as the body is written. An ACK of an
 * unchanged subscription is recognised by its resource names' wire bytes and
 * its version is compared undecoded (see request-decode.ts).
 */

interface TypeState {
  readonly kind: ResourceKind;
  /** What the client last listed, shared with every stream that listed the same (subscriptions.ts). */
  subscription: Subscription | null;
  /** Has the client ever named resources for this type (ends legacy wildcard)? */
  named: boolean;
  wildcard: boolean;
  lastNonce: string | null;
  sent: ReadonlyMap<string, EncodedResource>;
  /** What the client last ACKed (runs now): after a NACK, not what was sent. */
  accepted: ReadonlyMap<string, EncodedResource>;
  rejectedVersion: string | null;
  /** Answer the next request even if its content is unchanged (parent was re-sent). */
  resendOnRequest: boolean;
  /** A request was owed an answer while the transport was full: answer it once it drains. */
  answerDeferred: boolean;
  readonly status: TypeStatus;
}

/** What a type's client has ACKed before its first ACK; never written to. */
const NOTHING_ACCEPTED: ReadonlyMap<string, EncodedResource> = new Map();

export class SotwStream extends XdsStream {
  private readonly types = perKind<TypeState>();
  /** Clusters kept in CDS only until new listeners and routes are ACKed. */
  private retainedClusters = new Map<string, EncodedResource>();
  /** Endpoints (routes) not yet requested when clusters (listeners) changed: their first request is answered. */
  private owedFirst: Set<ResourceKind> | null = null;

  /** Handle one request; throws a user-facing error for a request this stream cannot serve. */
  handleRequest(request: SotwRequest): void {
    const kind = this.kindOf(request.typeUrl);
    const state = this.typeState(kind);
    const errorMessage = request.errorDetail ? request.errorDetail.message || `code ${request.errorDetail.code}` : null;
    // The same names arrive as the same bytes: then the list is not decoded at all.
    const wire = request.resourceNamesBytes;
    const listed = state.subscription;
    const sameWire = wire !== undefined && listed?.bytes != null && sameBytes(wire, listed.bytes);
    // Nor is a list another stream just sent as the same bytes (proxies of a mesh list the same names).
    const shared = !sameWire && wire !== undefined ? subscriptions.fromWire(kind, wire) : undefined;
    const names = sameWire ? listed.names : shared !== undefined ? shared.names : request.resourceNames;
    const verdict = classifyRequest({ responseNonce: request.responseNonce, resourceNames: names, errorMessage }, state);
    // The request repeats the previous one, answering nothing new: the client
    // answered this response already, or it had no response yet to answer.
    const repeated =
      listed !== null && errorMessage === null && (verdict.kind === "ack" ? state.status.state !== "pending" : verdict.kind === "initial" && state.lastNonce === null);
    // A single-type EDS (RDS) stream cannot see the clusters (listeners) change
    // on the proxy's other stream. Envoy re-creates them and asks again with the
    // request it already sent: the same nonce, answered already (or none, when
    // this stream has not answered yet, as after a reconnect whose first request
    // claimed the current version). Such a request is answered, as an ADS
    // stream answers the re-request after clusters it sent changed.
    const warming = repeated && this.servesWithoutParent(kind);
    if (verdict.kind === "stale") {
      this.metrics.staleRequests.inc({ type: kind });
      return;
    }
    // A new list (changed, or the same names in another order) is interned with its bytes.
    if (!sameWire) this.updateSubscription(state, shared ?? subscriptions.intern(names, wire, kind), verdict.subscriptionChanged);

    if (verdict.kind === "initial") {
      // A reconnecting client reports the version it already has: if that is what
      // we would send, it has everything and is not pushed again. Not so once this
      // stream has sent the type: the client asks again before reading that answer
      // (new names), and what it reports predates it.
      const view = this.view();
      const target = view ? this.target(state, view) : null;
      const reconnectClaim = state.lastNonce === null && !state.resendOnRequest && !warming;
      if (target && target.version !== "" && reconnectClaim && hasVersion(request, target.version)) {
        state.sent = target.resources;
        state.accepted = target.resources;
        state.status.sentVersion = target.version;
        state.status.ackedVersion = target.version;
        state.status.state = "acked";
        state.status.resourceCount = target.resources.size;
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
      const sent = state.status.sentVersion;
      const acksSent = sent !== null && hasVersion(request, sent);
      // After a NACK, Envoy's next request (new names, or a parent changed) still
      // carries the version it kept: the rejection stands until one carries ours.
      if (acksSent || state.rejectedVersion === null) {
        state.status.ackedVersion = acksSent ? sent : request.versionInfo;
        state.accepted = state.sent;
        state.status.state = "acked";
        state.rejectedVersion = null;
        this.onAck(kind);
      }
    }
    const force = state.resendOnRequest || warming;
    if (verdict.subscriptionChanged || force) this.push(state, force);
  }

  /** The cache has a new generation (or the stream drained): bring every type up to date. */
  override refresh(): void {
    if (this.closed) return;
    if (this.paused) {
      this.dirty = true;
      return;
    }
    const view = this.view();
    if (!view) return;
    for (const kind of RESOURCE_KINDS) {
      const state = this.types[kind];
      if (state) this.push(state, false, view);
    }
  }

  private view(): ProxyView | null {
    return this.cache.viewFor(this.proxy, this.viewKey);
  }

  private typeState(kind: ResourceKind): TypeState {
    let state = this.types[kind];
    if (!state) {
      const status: TypeStatus = { sentVersion: null, ackedVersion: null, state: "idle", resourceCount: 0, lastError: null };
      state = {
        kind,
        subscription: null,
        named: false,
        wildcard: false,
        lastNonce: null,
        sent: new Map(),
        accepted: NOTHING_ACCEPTED,
        rejectedVersion: null,
        resendOnRequest: this.owedFirst?.delete(kind) ?? false,
        answerDeferred: false,
        status,
      };
      this.types[kind] = state;
      this.status.types[kind] = status;
    }
    return state;
  }

  /**
   * Wildcard: "*" in the names, or (legacy) an empty list from a client that has
   * never named resources of a type that supports wildcard (listeners, clusters).
   */
  private updateSubscription(state: TypeState, subscription: Subscription, changed: boolean): void {
    state.subscription = subscription;
    if (!changed) return;
    const { names } = subscription;
    if (names.some((name) => name !== "*")) state.named = true;
    const wildcardCapable = state.kind === "cluster" || state.kind === "listener";
    state.wildcard = names.includes("*") || (wildcardCapable && names.length === 0 && !state.named);
  }

  /** What the type's subscription should hold now: memoized in the view, plus any retained clusters. */
  private target(state: TypeState, view: ProxyView): Target {
    const base = state.wildcard ? view.all(state.kind) : view.named(state.kind, state.subscription?.names ?? [], state.subscription?.key ?? "");
    if (state.kind !== "cluster" || this.retainedClusters.size === 0) return base;
    let extended: Map<string, EncodedResource> | null = null;
    for (const [name, resource] of this.retainedClusters) {
      if (base.resources.has(name) || !(state.wildcard || state.subscription?.names.includes(name))) continue;
      extended ??= new Map(base.resources);
      extended.set(name, resource);
    }
    return extended ? new Target(extended, setVersion(extended.values())) : base;
  }

  private push(state: TypeState, force: boolean, current?: ProxyView): void {
    if (state.subscription === null || this.closed) return;
    const view = current ?? this.view();
    if (!view) return;
    if (this.paused) {
      this.dirty = true;
      state.answerDeferred ||= force;
      return;
    }
    force ||= state.answerDeferred;
    if (state.kind === "cluster") this.planClusterRemoval(state, view);
    const target = this.target(state, view);
    const version = target.version;
    if (!force && version === state.status.sentVersion) return;
    if (version === state.rejectedVersion) return;

    const nonce = this.nextNonce();
    const body = target.sotwBody(TYPE_URLS[state.kind]);
    state.lastNonce = nonce;
    state.sent = target.resources;
    state.resendOnRequest = false;
    state.answerDeferred = false;
    state.status.sentVersion = version;
    state.status.state = "pending";
    state.status.resourceCount = target.resources.size;
    this.metrics.recordResponse(state.kind, body.length + 2 + nonce.length);
    if (!this.sink.write(body, nonce)) this.pause();
    // Clusters (listeners) new or changed to the client, which may have rejected what was last sent.
    const child = CHILD_OF[state.kind];
    if (child && state.accepted !== target.resources && changedAny(state.accepted, target.resources)) {
      const childState = this.types[child];
      if (childState) childState.resendOnRequest = true;
      else (this.owedFirst ??= new Set()).add(child);
    }
  }

  /**
   * Clusters leaving the view are kept while the listeners and routes that might
   * still point at them are unacknowledged; dropped once they are.
   */
  private planClusterRemoval(state: TypeState, view: ProxyView): void {
    const current = view.resources.cluster;
    // What was sent may be another view's map over the same parts (a shared target, cache.ts).
    const sent = state.sent;
    if (sent.size > 0 && !sameResources(sent, current)) {
      for (const name of diffMaps(sent, current).removed) {
        if (!this.retainedClusters.has(name)) this.retainedClusters.set(name, sent.get(name) as EncodedResource);
      }
    }
    if (this.retainedClusters.size === 0) return;
    for (const name of [...this.retainedClusters.keys()]) {
      if (current.has(name)) this.retainedClusters.delete(name);
    }
    if (this.retainedClusters.size > 0 && this.dependentsSettled(view)) this.retainedClusters.clear();
  }

  /**
   * Listeners and routes have been ACKed at the current generation (or are not
   * used). A rejected one is not settled: the proxy still runs the listeners and
   * routes it had, which may point at the clusters kept for them.
   */
  private dependentsSettled(view: ProxyView): boolean {
    for (const kind of ["listener", "route"] as const) {
      const state = this.types[kind];
      if (!state || state.subscription === null) continue;
      const upToDate = this.target(state, view).version === state.status.sentVersion;
      if (!upToDate || state.status.state === "pending" || state.status.state === "nacked") return false;
    }
    return true;
  }

  private onAck(kind: ResourceKind): void {
    if ((kind === "listener" || kind === "route") && this.retainedClusters.size > 0) {
      const clusters = this.types.cluster;
      if (clusters) this.push(clusters, false);
    }
  }
}

/** request.versionInfo === version, without decoding the version when the request can compare it undecoded. */
function hasVersion(request: SotwRequest, version: string): boolean {
  return request.hasVersion ? request.hasVersion(version) : request.versionInfo === version;
}

/** Whether `next` holds a resource `previous` lacks or holds at another version. */
function changedAny(previous: ReadonlyMap<string, EncodedResource>, next: ReadonlyMap<string, EncodedResource>): boolean {
  // A first response (nothing sent before) changes everything it holds, without comparing.
  if (previous.size === 0) return next.size > 0;
  return diffMaps(previous, next).changed.length > 0;
}
