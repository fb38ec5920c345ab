import type { Logger } from "pino";
import { RESOURCE_KINDS, TYPE_URLS, type ResourceKind } from "../translate/resource-types.ts";
import type { ProxyView, ResourceCache } from "./cache.ts";
import { classifyDeltaRequest } from "./delta-ack.ts";
import { sameElements } from "../model/share.ts";
import { diffMaps, mapVersion, sameResources, type MapDiff } from "./encoded-parts.ts";
import { encodeDeltaBody, type EncodedResource } from "./encoding.ts";
import type { EndpointPeer, EndpointPeers } from "./endpoint-peers.ts";
import type { XdsMetrics } from "./metrics.ts";
import type { ProxyStatus, TypeStatus } from "./proxy-status.ts";
import type { DeltaRequest } from "./request-decode.ts";
import { nameSets, NO_NAMES, type NameSet } from "./subscriptions.ts";
import { perKind, XdsStream, type ResponseSink } from "./xds-stream.ts";

/**
 * One incremental (delta) xDS stream: ADS or a single-type service. Per type it
 * tracks what the client subscribed to and which version of each resource it
 * has, and sends only what differs:
 *
 *  - subscriptions: explicit names, and wildcard ("*", or legacy: a first CDS or
 *    LDS request that names nothing). A name in resource_names_subscribe is
 *    always answered, even if the client seems to have it (the spec: it may have
 *    forgotten it); a subscribed name that does not exist is answered in
 *    removed_resources. Unsubscribed names are forgotten without a response,
 *    except under a wildcard, where the client is told whether the wildcard
 *    still covers the name.
 *  - reconnect: initial_resource_versions seed what the client has, so resources
 *    it already holds at the current version are not sent again, and ones that
 *    are gone are reported removed.
 *  - per-resource versions are the content hashes the cache computed, and the
 *    `Resource` bytes are encoded once per version and shared by every stream.
 *  - the same rules as state of the world: push in make-before-break order
 *    (clusters, endpoints, listeners, routes); remove clusters only once the
 *    listeners and routes are ACKed (not while rejected); when a cluster is
 *    updated, resend its endpoints (Envoy re-creates the cluster and waits
 *    for them, even on a reconnect before it asks for any); on NACK
 *    record the error, keep the proxy on what it accepted and never resend the
 *    rejected versions (they count as what the client has, so only new
 *    content is sent).
 */

/** How one view map moves to the next: the same for every stream that held the first, so computed once. */
interface MapMove {
  readonly to: ReadonlyMap<string, EncodedResource>;
  readonly diff: MapDiff;
  /** The set version of `to`: what a client holding all of it has. */
  readonly systemVersion: string;
  /** The response sending all of `diff`, without its nonce; written when first needed. */
  body: Uint8Array | null;
  /** What that response carries, as its streams record it (Outstanding); made when first needed. */
  carried: SentNames | null;
}

/** The last move computed from each map: streams of one view all move from the same map to the same map. */
const moves = new WeakMap<ReadonlyMap<string, EncodedResource>, MapMove>();
/** The last move looked up: a push visits a view's streams one after another, so this usually answers. */
let lastFrom: ReadonlyMap<string, EncodedResource> | null = null;
let lastMove: MapMove | null = null;

function moveBetween(from: ReadonlyMap<string, EncodedResource>, to: ReadonlyMap<string, EncodedResource>): MapMove {
  if (from === lastFrom && lastMove?.to === to) return lastMove;
  let move = moves.get(from);
  if (move?.to !== to) {
    move = { to, diff: diffMaps(from, to), systemVersion: mapVersion(to), body: null, carried: null };
    moves.set(from, move);
  }
  lastFrom = from;
  lastMove = move;
  return move;
}

/** The response sending all of `move`'s difference. */
function moveBody(move: MapMove, typeUrl: string): Uint8Array {
  move.body ??= responseBody(typeUrl, move.systemVersion, move.diff.changed, move.diff.removed);
  return move.body;
}

/** What moveBody's response carries, once for every stream of the view that sends it. */
function moveCarried(move: MapMove): SentNames {
  move.carried ??= { sent: move.diff.changed, removed: move.diff.removed };
  return move.carried;
}

/** A response sending `sent` and removing `removed`; the last one's body when it sends the same and removes nothing (sharedBody). */
function responseBody(typeUrl: string, version: string, sent: readonly EncodedResource[], removed: readonly string[]): Uint8Array {
  return removed.length === 0 ? sharedBody(typeUrl, version, sent) : encodeDeltaBody(typeUrl, version, sent, removed);
}

/**
 * The last delta body written per type, with what it was written from. Views
 * refreshed one after another often send the same change (a route
 * configuration that many callers share, every caller that declared no
 * dependencies), and streams of one view connecting one after another the
 * same first response, at the same set version. They then share one body
 * instead of each writing a copy.
 */
const lastBodies = new Map<string, { readonly version: string; readonly sent: readonly EncodedResource[]; readonly body: Uint8Array }>();

/** A response sending `sent` and removing nothing. */
function sharedBody(typeUrl: string, version: string, sent: readonly EncodedResource[]): Uint8Array {
  const last = lastBodies.get(typeUrl);
  if (last !== undefined && last.version === version && sameElements(last.sent, sent)) return last.body;
  const body = encodeDeltaBody(typeUrl, version, sent, []);
  lastBodies.set(typeUrl, { version, sent, body });
  return body;
}

/** Newest responses whose ACK/NACK we still match; older nonces count as stale. */
const MAX_OUTSTANDING = 32;

/**
 * Outstanding nonce -> the system version it carried, newest last, at most
 * MAX_OUTSTANDING. A client nearly always answers a response before the next
 * one is sent, so the newest entry lives in two fields and a Map is made only
 * when several responses are unanswered at once.
 */
class Outstanding {
  private newest: string | null = null;
  private newestVersion = "";
  private newestNames: SentNames | null = null;
  private older: Map<string, { readonly version: string; readonly names: SentNames | null }> | null = null;

  get size(): number {
    return (this.newest === null ? 0 : 1) + (this.older === null ? 0 : this.older.size);
  }

  has(nonce: string): boolean {
    return nonce === this.newest || (this.older !== null && this.older.has(nonce));
  }

  get(nonce: string): string | undefined {
    if (nonce === this.newest) return this.newestVersion;
    return this.older?.get(nonce)?.version;
  }

  /** What the response carried, when add() was given it (listeners and routes). */
  namesOf(nonce: string): SentNames | null {
    if (nonce === this.newest) return this.newestNames;
    return this.older?.get(nonce)?.names ?? null;
  }

  delete(nonce: string): void {
    if (nonce === this.newest) {
      this.newest = null;
      this.newestNames = null;
    } else this.older?.delete(nonce);
  }

  add(nonce: string, version: string, names: SentNames | null): void {
    if (this.newest !== null) {
      const older = (this.older ??= new Map());
      older.set(this.newest, { version: this.newestVersion, names: this.newestNames });
      if (older.size >= MAX_OUTSTANDING) older.delete(older.keys().next().value as string);
    }
    this.newest = nonce;
    this.newestVersion = version;
    this.newestNames = names;
  }
}

/** The resources a response sent and the names it removed: the arrays it was written from, not copies. */
interface SentNames {
  readonly sent: readonly EncodedResource[];
  readonly removed: readonly string[];
}

/** What the client holds, brought up to date if the synced fast path left it behind. */
function knownOf(state: DeltaTypeState): Map<string, string> {
  const lag = state.knownLag;
  if (lag !== null) {
    const missing = state.missing;
    state.knownLag = null;
    state.missing = null;
    const known = new Map<string, string>();
    for (const [name, resource] of lag) if (missing === null || !missing.has(name)) known.set(name, resource.version);
    state.known = known;
    return known;
  }
  return (state.known ??= new Map());
}

/**
 * The client holds exactly `map`, but for the `missing` names (ones its
 * subscription does not cover: they joined the view before it subscribed to
 * them): remember the map, shared by every stream of the view, instead of a
 * copy of its names and versions per stream.
 */
function holdsMap(state: DeltaTypeState, map: ReadonlyMap<string, EncodedResource>, missing: ReadonlySet<string> | null = null): void {
  state.synced = map;
  state.knownLag = map;
  state.missing = missing !== null && missing.size > 0 ? missing : null;
  state.known = null;
}

/** Nothing is owed an answer any more (a push answered it all). */
function clearAnswers(state: DeltaTypeState): void {
  state.mustAnswer = null;
  state.answerSubscription = false;
}

/** What a client that holds nothing of a type gets for its first request (DeltaStream.pushFirst). */
interface FirstResponse extends SentNames {
  /** Subscribed names that do not exist. */
  readonly removed: readonly string[];
  /** The response without its nonce; null when there is nothing to say. */
  readonly body: Uint8Array | null;
  readonly systemVersion: string;
  /** The client then holds exactly the view's map. */
  readonly exact: boolean;
}

/**
 * The last first response computed per kind, with what it was computed from:
 * streams connect one after another, and those of one view (or of views over
 * the same parts) ask for the same.
 */
const lastFirst = new Map<ResourceKind, { readonly wildcard: boolean; readonly subscription: NameSet; readonly from: ReadonlyMap<string, EncodedResource>; readonly response: FirstResponse }>();

/**
 * The response to a client that holds nothing and is owed an answer for each
 * name it subscribed to: with a wildcard every resource of `available`, then
 * each subscribed name, sent if it exists and reported removed if not; what
 * the general comparison in DeltaStream.push finds in that state.
 */
function firstResponse(state: DeltaTypeState, available: ReadonlyMap<string, EncodedResource>, systemVersion: () => string): FirstResponse {
  const { kind, wildcard, subscription } = state;
  const last = lastFirst.get(kind);
  if (last !== undefined && last.wildcard === wildcard && last.subscription === subscription && sameResources(last.from, available)) return last.response;
  const sent: EncodedResource[] = [];
  const removed: string[] = [];
  if (wildcard) for (const resource of available.values()) sent.push(resource);
  for (const name of subscription.list) {
    const resource = available.get(name);
    if (resource === undefined) removed.push(name);
    else if (!wildcard) sent.push(resource);
  }
  const version = systemVersion();
  const typeUrl = TYPE_URLS[kind];
  const body = sent.length === 0 && removed.length === 0 ? null : responseBody(typeUrl, version, sent, removed);
  const response = { sent, removed, body, systemVersion: version, exact: sent.length === available.size };
  lastFirst.set(kind, { wildcard, subscription, from: available, response });
  return response;
}

/** A listener or route response was ACKed (what it carried is accepted) or NACKed (rejected). */
function settleNames(state: DeltaTypeState, names: SentNames, rejected: boolean): void {
  if (!rejected && state.rejectedNames === null) return;
  const rejectedNames = (state.rejectedNames ??= new Set());
  const settle = (name: string): void => void (rejected ? rejectedNames.add(name) : rejectedNames.delete(name));
  for (const resource of names.sent) settle(resource.name);
  for (const name of names.removed) settle(name);
  if (rejectedNames.size === 0) state.rejectedNames = null;
}

/** Answer `name` on the next push, even if unchanged. */
function mustAnswerName(state: DeltaTypeState, name: string): void {
  (state.mustAnswer ??= new Set()).add(name);
}

/** No longer answer `name`; an emptied set is dropped. */
function forgetMustAnswer(state: DeltaTypeState, name: string): void {
  if (state.mustAnswer?.delete(name) && state.mustAnswer.size === 0) state.mustAnswer = null;
}

/** Whether some name must be answered on the next push (one comparison in the usual case: no set). */
function hasNamesToAnswer(state: DeltaTypeState): boolean {
  return (state.mustAnswer !== null && state.mustAnswer.size > 0) || (state.answerSubscription && state.subscription.names.size > 0);
}

/** The client holds nothing of the type, by what it told us on reconnect or what we sent it. */
function holdsNothing(state: DeltaTypeState): boolean {
  return (state.known === null || state.known.size === 0) && (state.knownLag === null || state.knownLag.size === (state.missing?.size ?? 0));
}

/** Whether `name` is owed an answer on the next push. */
function mustAnswer(state: DeltaTypeState, name: string): boolean {
  return (state.mustAnswer !== null && state.mustAnswer.has(name)) || (state.answerSubscription && state.subscription.names.has(name));
}

interface DeltaTypeState {
  readonly kind: ResourceKind;
  started: boolean;
  wildcard: boolean;
  /** The names subscribed to by name, shared with every stream subscribed to the same (subscriptions.ts). */
  subscription: NameSet;
  /**
   * Name -> version the client holds (what we last sent it, or told us on
   * reconnect); null for none. Read it through `knownOf`: while `knownLag` is
   * set, that map is what the client holds and this field is null.
   */
  known: Map<string, string> | null;
  /**
   * Set while the client holds exactly this map (holdsMap): `known` is then
   * null, and knownOf builds it from the map only when something reads it. A
   * push to a synced stream touches no per-name state at all, and the stream
   * keeps none.
   */
  knownLag: ReadonlyMap<string, EncodedResource> | null;
  /** Names of `knownLag` the client does not hold (holdsMap); null for none. */
  missing: ReadonlySet<string> | null;
  /** Names to answer on the next push even if unchanged (new subscriptions, re-sent parents); null when none. */
  mustAnswer: Set<string> | null;
  /**
   * Every name of `subscription` is owed an answer too: a first request's
   * names, which the shared subscription already lists (subscribeFirst), so
   * no per-stream set of them is made.
   */
  answerSubscription: boolean;
  /** The view's map of this kind at the last push: an identical map means nothing to do. */
  lastMap: ReadonlyMap<string, EncodedResource> | null;
  /**
   * Set when the client holds exactly this map (every resource in it, at its
   * version, nothing else): the next change is then the difference between two
   * view maps, the same for every such stream of the view, computed once.
   */
  synced: ReadonlyMap<string, EncodedResource> | null;
  lastNonce: string | null;
  /** Outstanding nonce -> the system version it carried. */
  readonly outstanding: Outstanding;
  /**
   * Listeners and routes rejected at the version last sent, and not since
   * replaced by one the client ACKed: it runs older ones, which may use
   * clusters the view no longer has (make before break keeps those).
   */
  rejectedNames: Set<string> | null;
  readonly status: TypeStatus;
}

export class DeltaStream extends XdsStream implements EndpointPeer {
  private readonly types = perKind<DeltaTypeState>();
  /** Endpoints of clusters updated before the client's first endpoint request: answered in it. */
  private endpointsOwed: Set<string> | null = null;
  /** A CDS-only stream's updated clusters in the push under way, for the proxy's EDS streams (endpoint-peers.ts). */
  private peersOwed: string[] | null = null;

  constructor(
    status: ProxyStatus,
    cache: ResourceCache,
    sink: ResponseSink,
    metrics: XdsMetrics,
    logger: Logger,
    kinds?: readonly ResourceKind[],
    /** The server's single-type EDS streams by proxy: a CDS-only stream tells them of updated clusters. */
    private readonly peers: EndpointPeers | null = null,
  ) {
    super(status, cache, sink, metrics, logger, kinds);
    if (peers && this.servesWithoutParent("endpoint")) peers.add(this.proxy.id, this);
  }

  override close(): void {
    this.peers?.remove(this.proxy.id, this);
    super.close();
  }

  /** Clusters updated on the proxy's CDS stream (endpoint-peers.ts): their endpoints are owed, as over ADS. */
  resendEndpointsOf(clusters: readonly string[]): void {
    if (this.closed) return;
    for (const name of clusters) this.resendEndpoints(name);
    const endpoints = this.types.endpoint;
    if (endpoints?.started && hasNamesToAnswer(endpoints)) this.push(endpoints, false);
  }

  handleRequest(request: DeltaRequest): void {
    const kind = this.kindOf(request.typeUrl);
    const state = this.typeState(kind);
    const errorMessage = request.errorDetail ? request.errorDetail.message || `code ${request.errorDetail.code}` : null;
    const wildcardCapable = kind === "cluster" || kind === "listener";
    // The names' wire bytes when the request came off the wire: a first request
    // is then read without decoding its names (subscribeFirst).
    const wire = request.resourceNamesSubscribeBytes;
    const subscribes = (wire ?? request.resourceNamesSubscribe).length > 0;
    const unsubscribe = request.resourceNamesUnsubscribe;
    const verdict = classifyDeltaRequest({ responseNonce: request.responseNonce, errorMessage, subscribes, unsubscribes: unsubscribe.length > 0 }, state, wildcardCapable);

    if (verdict.kind === "initial") {
      state.started = true;
      if (verdict.legacyWildcard) state.wildcard = true;
      const known = knownOf(state);
      for (const [name, version] of Object.entries(request.initialResourceVersions)) known.set(name, version);
    }
    if (verdict.kind === "stale") this.metrics.staleRequests.inc({ type: kind });
    if (verdict.kind === "ack" || verdict.kind === "nack") {
      const version = state.outstanding.get(request.responseNonce) ?? "";
      const names = state.outstanding.namesOf(request.responseNonce);
      state.outstanding.delete(request.responseNonce);
      if (names !== null) settleNames(state, names, verdict.kind === "nack");
      if (verdict.kind === "nack") {
        state.status.state = "nacked";
        state.status.lastError = { version, message: errorMessage ?? "", at: new Date().toISOString() };
        this.metrics.nacks.inc({ type: kind });
        this.logger.warn({ proxy: this.proxy.id, type: kind, version, error: errorMessage }, "proxy rejected config (delta NACK)");
      } else if (verdict.latest) {
        state.status.ackedVersion = version;
        state.status.state = "acked";
      }
      if (verdict.latest) this.onAnswered(kind);
    }
    const first = verdict.kind === "initial" && wire !== undefined && subscribes && unsubscribe.length === 0 && holdsNothing(state);
    const changed = first
      ? this.subscribeFirst(state, wire, request)
      : (subscribes || unsubscribe.length > 0) && this.updateSubscription(state, request.resourceNamesSubscribe, unsubscribe, verdict.kind === "initial");
    if (kind === "endpoint" && this.endpointsOwed !== null) {
      for (const name of this.endpointsOwed) if (this.covers(state, name)) mustAnswerName(state, name);
      this.endpointsOwed = null;
    }
    if (verdict.kind === "initial" || changed) this.push(state, true);
  }

  /**
   * A first request's names, for a client that holds nothing of the type:
   * what updateSubscription does, without a step per name. The subscription is
   * the one an earlier stream's request with the same bytes was read as (one
   * decoding for a mesh's proxies, not one each), and every name of it is owed
   * an answer (answerSubscription).
   */
  private subscribeFirst(state: DeltaTypeState, wire: Uint8Array, request: DeltaRequest): boolean {
    const read = nameSets.fromWire(state.kind, wire, () => request.resourceNamesSubscribe);
    state.synced = null;
    state.subscription = read.set;
    state.answerSubscription = read.set.names.size > 0;
    const answer = state.answerSubscription || (read.wildcard && !state.wildcard);
    if (read.wildcard) state.wildcard = true;
    return answer;
  }

  /** The cache has a new generation (or the stream drained): bring every type up to date. */
  override refresh(): void {
    if (this.closed) return;
    if (this.paused) {
      this.dirty = true;
      return;
    }
    const view = this.cache.viewFor(this.proxy, this.viewKey);
    if (!view) return;
    for (const kind of RESOURCE_KINDS) {
      const state = this.types[kind];
      if (state?.started) this.push(state, false, view);
    }
    // Clusters held back for listeners and routes that have since moved to this
    // view with nothing to send (no ACK will come to release them): release now.
    const clusters = this.types.cluster;
    if (clusters?.started && clusters.lastMap === null && this.dependentsSettled(view)) this.push(clusters, false, view);
  }

  private typeState(kind: ResourceKind): DeltaTypeState {
    let state = this.types[kind];
    if (!state) {
      const status: TypeStatus = { sentVersion: null, ackedVersion: null, state: "idle", resourceCount: 0, lastError: null };
      state = {
        kind,
        started: false,
        wildcard: false,
        subscription: NO_NAMES,
        known: null,
        knownLag: null,
        missing: null,
        mustAnswer: null,
        answerSubscription: false,
        lastMap: null,
        synced: null,
        lastNonce: null,
        outstanding: new Outstanding(),
        rejectedNames: null,
        status,
      };
      this.types[kind] = state;
      this.status.types[kind] = status;
    }
    return state;
  }

  /** Applies subscribe/unsubscribe; true when the client needs an answer. */
  private updateSubscription(state: DeltaTypeState, subscribe: readonly string[], unsubscribe: readonly string[], initial: boolean): boolean {
    let answer = false;
    // What the client holds no longer follows from one map alone once it told
    // us what it holds (a first request) or dropped names. Names added to a
    // subscription are owed an answer on top of what it holds (pushSynced).
    if (initial || unsubscribe.length > 0) state.synced = null;
    // The subscription is shared: a changed one is another interned set.
    const added: string[] = [];
    for (const name of subscribe) {
      if (name === "*") {
        if (!state.wildcard) answer = true;
        state.wildcard = true;
        continue;
      }
      if (!state.subscription.names.has(name)) added.push(name);
      // Answer even a resource the client seems to have, unless it just told us
      // (on reconnect) that it holds it.
      if (!(initial && knownOf(state).has(name))) {
        mustAnswerName(state, name);
        answer = true;
      }
    }
    if (added.length > 0) state.subscription = nameSets.withAdded(state.subscription, added);
    if (unsubscribe.length === 0) return answer;
    const known = knownOf(state);
    const names = new Set(state.subscription.names);
    for (const name of unsubscribe) {
      if (name === "*") {
        state.wildcard = false;
        // Whatever only the wildcard covered is forgotten by the client.
        for (const name of [...known.keys()]) if (!names.has(name)) known.delete(name);
        continue;
      }
      names.delete(name);
      if (state.wildcard) {
        // The client cannot tell whether the wildcard still covers the name: tell it.
        known.set(name, "");
        mustAnswerName(state, name);
        answer = true;
      } else {
        known.delete(name);
        forgetMustAnswer(state, name);
        // A rejected route the client no longer watches it no longer runs.
        state.rejectedNames?.delete(name);
      }
    }
    if (names.size !== state.subscription.names.size) state.subscription = nameSets.intern(names);
    return answer;
  }

  private push(state: DeltaTypeState, force: boolean, current?: ProxyView): void {
    if (this.closed || !state.started) return;
    const view = current ?? this.cache.viewFor(this.proxy, this.viewKey);
    if (!view) return;
    if (this.paused) {
      this.dirty = true;
      return;
    }
    const available = view.resources[state.kind];
    const answerOwed = hasNamesToAnswer(state);
    if (!force && available === state.lastMap && !answerOwed) return;
    if (state.synced !== null && !state.answerSubscription && this.pushSynced(state, view, available)) return;
    if (this.pushFirst(state, view, available)) return;

    const known = knownOf(state);
    const send: EncodedResource[] = [];
    const sentNames = new Set<string>();
    let removed: string[] = [];
    const consider = (name: string, resource: EncodedResource | undefined): void => {
      if (sentNames.has(name)) return;
      const must = mustAnswer(state, name);
      if (resource) {
        if (must || known.get(name) !== resource.version) {
          send.push(resource);
          sentNames.add(name);
        }
      } else if (must || known.has(name)) {
        removed.push(name);
        sentNames.add(name);
      }
    };
    if (state.wildcard) for (const [name, resource] of available) consider(name, resource);
    for (const name of state.subscription.list) consider(name, available.get(name));
    if (state.mustAnswer !== null) for (const name of state.mustAnswer) consider(name, this.covers(state, name) ? available.get(name) : undefined);
    // Resources the client holds that are no longer in its view.
    for (const name of known.keys()) {
      if (!sentNames.has(name) && !(this.covers(state, name) && available.has(name))) {
        removed.push(name);
        sentNames.add(name);
      }
    }
    // Make before break: clusters leave only after listeners and routes settled.
    let held = false;
    if (state.kind === "cluster" && removed.length > 0 && !this.dependentsSettled(view)) {
      // Clusters the client holds wait; answers about names it does not hold go now.
      const kept = removed.filter((name) => !known.get(name));
      held = kept.length !== removed.length;
      removed = kept;
    }
    state.lastMap = held ? null : available;
    clearAnswers(state);
    if (send.length === 0 && removed.length === 0) {
      // Counted here too: a reconnect that already holds it all gets no response.
      state.status.resourceCount = known.size;
      this.syncIfHolding(state, available, held);
      return;
    }

    // What the client holds after this response.
    const updatedClusters: string[] = [];
    for (const resource of send) {
      if (state.kind === "cluster" && known.has(resource.name) && known.get(resource.name) !== "") updatedClusters.push(resource.name);
      known.set(resource.name, resource.version);
    }
    for (const name of removed) known.delete(name);
    state.status.resourceCount = known.size;
    this.syncIfHolding(state, available, held);

    const systemVersion = this.systemVersion(state, view);
    const body = responseBody(TYPE_URLS[state.kind], systemVersion, send, removed);
    this.send(state, body, systemVersion, { sent: send, removed });

    for (const name of updatedClusters) this.resendEndpoints(name);
    this.tellPeers();
  }

  /**
   * The push to a client that holds nothing of the type and is owed an answer
   * for every name it subscribed to (a first request): what it gets follows
   * from its subscription and the view's map alone, so streams with the same
   * subscription to maps over the same parts (a service's proxies; in a mesh
   * that declares no dependencies, every proxy) share one computed response
   * (firstResponse), and the stream keeps no per-name state. False when the
   * stream is not in that state: the general comparison applies.
   */
  private pushFirst(state: DeltaTypeState, view: ProxyView, available: ReadonlyMap<string, EncodedResource>): boolean {
    if (state.mustAnswer !== null || !holdsNothing(state)) return false;
    if (!state.answerSubscription && state.subscription !== NO_NAMES) return false;
    const response = firstResponse(state, available, () => this.systemVersion(state, view));
    state.lastMap = available;
    clearAnswers(state);
    if (response.exact) holdsMap(state, available);
    else {
      const known = knownOf(state);
      for (const resource of response.sent) known.set(resource.name, resource.version);
      state.synced = null;
    }
    state.status.resourceCount = response.sent.length;
    if (response.body !== null) this.send(state, response.body, response.systemVersion, response);
    return true;
  }

  /**
   * Sends `body` (a response without its nonce, carrying `carried`) as the
   * type's newest response. `carried` is shared by the streams that send the
   * same response (a view's move, a first response), not made per stream.
   */
  private send(state: DeltaTypeState, body: Uint8Array, systemVersion: string, carried: SentNames): void {
    const nonce = this.nextNonce();
    state.lastNonce = nonce;
    // Listeners and routes: what the response carried, so a NACK says which were rejected.
    state.outstanding.add(nonce, systemVersion, state.kind === "listener" || state.kind === "route" ? carried : null);
    state.status.sentVersion = systemVersion;
    state.status.state = "pending";
    this.metrics.recordResponse(state.kind, body.length + 2 + nonce.length);
    if (!this.sink.write(body, nonce)) this.pause();
  }

  /** After a full comparison: the stream is synced to `map` if the client holds it (but for names it has not subscribed to). */
  private syncIfHolding(state: DeltaTypeState, map: ReadonlyMap<string, EncodedResource>, held: boolean): void {
    const missing = held ? null : this.missingFrom(state, map);
    if (missing !== null) holdsMap(state, map, missing);
    else state.synced = null;
  }

  /**
   * The names of `map` the client lacks, when it holds the rest exactly (names
   * and versions, all covered by its subscription) and its subscription covers
   * none of the names it lacks; null when it holds anything else.
   */
  private missingFrom(state: DeltaTypeState, map: ReadonlyMap<string, EncodedResource>): Set<string> | null {
    const known = knownOf(state);
    const missing = new Set<string>();
    let held = 0;
    for (const [name, resource] of map) {
      const version = known.get(name);
      if (version === undefined) {
        if (this.covers(state, name)) return null;
        missing.add(name);
      } else {
        if (version !== resource.version || !this.covers(state, name)) return null;
        held++;
      }
    }
    return held === known.size ? missing : null;
  }

  /**
   * The push to a stream whose client holds exactly an earlier view map
   * (`synced`), but for names it has not subscribed to (`missing`): the
   * response is the difference between that map and the current one,
   * computed once for every such stream of the view and sent whole when the
   * subscription covers it all (a wildcard, or every name that changed), plus
   * the names the client is owed an answer for. Names the subscription does
   * not cover (a service joined and the client has not subscribed to its
   * names yet) are not sent and stay missing. The client then holds the
   * current map but for the missing names: no per-name state. Returns false
   * to fall back to the full comparison (clusters to remove before listeners
   * and routes settled).
   */
  private pushSynced(state: DeltaTypeState, view: ProxyView, available: ReadonlyMap<string, EncodedResource>): boolean {
    const from = state.synced as ReadonlyMap<string, EncodedResource>;
    if (state.knownLag !== from) return false;
    const move = moveBetween(from, available);
    const held = state.missing;
    const owed = state.mustAnswer;
    let sent = move.diff.changed;
    let removed = move.diff.removed;
    let missing: Set<string> | null = null;
    if (held !== null || !sent.every((resource) => this.covers(state, resource.name))) {
      // Uncovered names are not sent, and names the client lacks are not removed.
      const covered: EncodedResource[] = [];
      for (const resource of sent) {
        if (this.covers(state, resource.name)) covered.push(resource);
        else (missing ??= new Set()).add(resource.name);
      }
      if (held !== null) {
        removed = removed.filter((name) => !held.has(name));
        const changedNames = new Set(move.diff.changed.map((resource) => resource.name));
        // What it lacked and did not change: sent if now covered (a wildcard subscribed since), else still lacked.
        for (const name of held) {
          const resource = changedNames.has(name) ? undefined : available.get(name);
          if (resource === undefined) continue;
          if (this.covers(state, name)) covered.push(resource);
          else (missing ??= new Set()).add(name);
        }
      }
      sent = covered;
    }
    if (owed !== null && owed.size > 0) {
      const answered = new Set([...sent.map((resource) => resource.name), ...removed]);
      const moreSent = [...sent];
      const moreRemoved = [...removed];
      for (const name of owed) {
        if (answered.has(name)) continue;
        // A name owed though not covered (the client is to be told so) is left to the full comparison.
        if (!this.covers(state, name)) return false;
        const resource = available.get(name);
        if (resource !== undefined) {
          moreSent.push(resource);
          missing?.delete(name);
        } else moreRemoved.push(name);
      }
      sent = moreSent;
      removed = moreRemoved;
    }
    if (state.kind === "cluster" && removed.length > 0 && !this.dependentsSettled(view)) return false;
    const whole = sent === move.diff.changed && removed === move.diff.removed;
    state.lastMap = available;
    clearAnswers(state);
    holdsMap(state, available, missing);
    state.status.resourceCount = available.size - (state.missing?.size ?? 0);
    if (sent.length === 0 && removed.length === 0) return true;
    const typeUrl = TYPE_URLS[state.kind];
    const systemVersion = state.missing === null ? move.systemVersion : this.systemVersion(state, view);
    if (whole) this.send(state, moveBody(move, typeUrl), systemVersion, moveCarried(move));
    else this.send(state, responseBody(typeUrl, systemVersion, sent, removed), systemVersion, { sent, removed });
    if (state.kind === "cluster") {
      for (const resource of sent) if (from.has(resource.name) && !held?.has(resource.name)) this.resendEndpoints(resource.name);
      this.tellPeers();
    }
    return true;
  }

  /**
   * Envoy re-creates an updated cluster and waits for its endpoints, without
   * asking for them again: resend them, on the next push or, when no endpoint
   * request came yet on this stream (a reconnect), in answer to the first.
   */
  private resendEndpoints(cluster: string): void {
    // A CDS-only stream: the proxy's EDS streams do, once this push is written (tellPeers).
    if (!this.serves("endpoint")) {
      if (this.peers) (this.peersOwed ??= []).push(cluster);
      return;
    }
    const endpoints = this.types.endpoint;
    if (!endpoints?.started) (this.endpointsOwed ??= new Set()).add(cluster);
    else if (this.covers(endpoints, cluster)) mustAnswerName(endpoints, cluster);
  }

  /** A CDS-only stream wrote updated clusters: the proxy's EDS streams resend their endpoints. */
  private tellPeers(): void {
    const owed = this.peersOwed;
    if (owed === null) return;
    this.peersOwed = null;
    this.peers?.clustersUpdated(this.proxy.id, owed);
  }

  /** Whether the type's subscription covers `name`. */
  private covers(state: DeltaTypeState, name: string): boolean {
    return state.wildcard || state.subscription.names.has(name);
  }

  /** A version for the whole subscription (for status and debugging; clients use per-resource versions). */
  private systemVersion(state: DeltaTypeState, view: ProxyView): string {
    if (state.wildcard) return view.all(state.kind).version;
    return view.named(state.kind, state.subscription.list, state.subscription.key).version;
  }

  /**
   * Listeners and routes hold the current view (or are not used) and nothing is
   * awaiting an answer. A rejected response is not settled: the proxy runs the
   * listeners and routes it had, which may point at clusters kept for them.
   */
  private dependentsSettled(view: ProxyView): boolean {
    for (const kind of ["listener", "route"] as const) {
      const state = this.types[kind];
      if (!state?.started) continue;
      if (state.outstanding.size > 0 || (state.rejectedNames !== null && state.rejectedNames.size > 0)) return false;
      if (state.lastMap !== view.resources[kind] || hasNamesToAnswer(state)) return false;
    }
    return true;
  }

  /**
   * A listener or route response was answered: clusters held back for it may go
   * now. A cluster push that held removals back leaves `lastMap` null; one that
   * completed left the client holding the map, and a later change of the map
   * reaches the stream as a refresh, so there is nothing to redo then.
   */
  private onAnswered(kind: ResourceKind): void {
    if (kind !== "listener" && kind !== "route") return;
    const clusters = this.types.cluster;
    if (clusters?.started && (clusters.lastMap === null || hasNamesToAnswer(clusters))) this.push(clusters, false);
  }
}
