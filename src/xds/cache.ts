import type { Message } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import type { Proxy } from "../model/proxy.ts";
import type { Service } from "../model/registry.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import { sameFieldsExcept } from "../model/share.ts";
import { instanceOnlyChanges } from "../translate/incremental-snapshot.ts";
import { forgetServicesOutside, releaseMemo } from "../translate/memo.ts";
import { ComposedMap, RESOURCE_KINDS, type ResourceKind, type ResourceMap, type ResourceSet } from "../translate/resource-types.ts";
import { serviceEndpoints, translateRoutes } from "../translate/translate.ts";
import { EncodedPart, mapVersion, partChanges, PartsMap } from "./encoded-parts.ts";
import { encodeResource, encodeSotwBody, setVersion, type EncodedResource } from "./encoding.ts";
import { InternTable } from "./intern-table.ts";
import { viewKey } from "./node.ts";

/**
 * The cache owns versions: it turns the current snapshot into encoded resources
 * per proxy view and hands the same bytes to every stream that needs them. It
 * never sees a stream; streams retain the views they use and listen for changes.
 *
 * Cost is proportional to what changed:
 *  - views are kept across snapshots and rebuilt only for views in use;
 *  - a snapshot that differs from the previous one only in instances of some
 *    services (the endpoint fast path) re-translates just those services'
 *    endpoints, once, and patches them into the views that contain them; every
 *    other view, and every other resource, stays the same object;
 *  - a snapshot that differs only in routes re-translates only the views that
 *    read the changed routes, and of those whose scope is unchanged only the
 *    route configurations (the route-only path);
 *  - a view (or one kind of it) whose content did not change keeps its identity,
 *    and listeners are told which views changed, so unaffected streams are not
 *    even visited;
 *  - every resource is encoded (and validated) once per version, and a
 *    state-of-the-world response body once per view and subscription.
 */

export type Translator = (snapshot: MeshSnapshot, proxy: Proxy) => ResourceSet;

/** A service's endpoint resources in a snapshot (see serviceEndpoints in translate.ts). */
export type EndpointTranslator = (snapshot: MeshSnapshot, service: Service) => ReadonlyMap<string, Message>;

/**
 * A view's route configurations alone when its upstreams are still `scope`,
 * else null (see translateRoutes in translate.ts).
 */
export type RouteTranslator = (snapshot: MeshSnapshot, proxy: Proxy, scope: readonly string[]) => ResourceMap | null;

/** Field-level validation of one resource; returns human-readable violations. */
export type ResourceGate = (kind: ResourceKind, name: string, message: Message) => string[];

/** A view's resources per kind, each as the shared encoded parts it was translated from (encoded-parts.ts). */
export type EncodedSet = Readonly<Record<ResourceKind, PartsMap>>;

export interface InvalidResource {
  readonly kind: ResourceKind;
  readonly name: string;
  readonly violations: readonly string[];
}

/** Keys of the views whose content changed; null means "any may have changed". */
export type ChangeListener = (generation: number, changedViews: ReadonlySet<string> | null) => void;

/** What a subscription to some resources of one kind should hold right now. */
export class Target {
  private body: Uint8Array | null = null;

  constructor(
    readonly resources: ReadonlyMap<string, EncodedResource>,
    readonly version: string,
  ) {}

  /** The DiscoveryResponse without its nonce, encoded on first use. */
  sotwBody(typeUrl: string): Uint8Array {
    this.body ??= encodeSotwBody(typeUrl, this.version, this.resources.values());
    return this.body;
  }
}

/**
 * The last target built per kind, with its subscription key and the map it
 * was built from. Streams are refreshed view after view, and views often hold
 * the same content: in a mesh that declares no dependencies every view holds
 * every service's parts, and every caller no rule names the same route
 * configurations. Such views then share one target, so its response body is
 * encoded once per change rather than once per view, and held once.
 */
const lastTargets = new Map<ResourceKind, { readonly key: string; readonly from: PartsMap; readonly target: Target }>();

/** Up to this many resources, two maps are compared resource by resource; larger ones only by their parts. */
const COMPARE_RESOURCES = 8;

function sharedTarget(kind: ResourceKind, key: string, from: PartsMap): Target | undefined {
  const last = lastTargets.get(kind);
  if (last === undefined || last.key !== key) return undefined;
  const same = last.from === from || (from.size <= COMPARE_RESOURCES ? last.from.sameContent(from) : last.from.sameParts(from));
  return same ? last.target : undefined;
}

function rememberTarget(kind: ResourceKind, key: string, from: PartsMap, target: Target): Target {
  lastTargets.set(kind, { key, from, target });
  return target;
}

/** The wildcard subscription's key in a view's target memo. */
export const WILDCARD_KEY = "*";

/**
 * The key identifying a set of subscribed names (order and duplicates do not
 * matter). JSON, not a join: a name may hold any character, and two different
 * sets must never share a view's memoized target.
 */
export function namesKey(names: readonly string[]): string {
  return JSON.stringify([...new Set(names)].sort());
}

/** The encoded resources one proxy view should have; immutable, replaced when content changes. */
export class ProxyView {
  constructor(
    readonly key: string,
    /** Generation of the snapshot this view was last changed in. */
    readonly generation: number,
    readonly resources: EncodedSet,
    /** Memoized targets per kind; a kind whose map is unchanged carries its memo over. */
    private readonly targets: Record<ResourceKind, Map<string, Target>> = emptyTargets(),
  ) {}

  /** Endpoint resources of the view withheld because they failed validation. */
  get withheld(): ReadonlySet<string> {
    return this.resources.endpoint.withheld;
  }

  /** Every resource of `kind` (a wildcard subscription). */
  all(kind: ResourceKind): Target {
    const memo = this.targets[kind];
    let target = memo.get(WILDCARD_KEY);
    if (!target) {
      const resources = this.resources[kind];
      target = sharedTarget(kind, WILDCARD_KEY, resources);
      target ??= rememberTarget(kind, WILDCARD_KEY, resources, new Target(resources, mapVersion(resources)));
      memo.set(WILDCARD_KEY, target);
    }
    return target;
  }

  /** The named resources of `kind` that exist; `key` is namesKey(names). */
  named(kind: ResourceKind, names: readonly string[], key: string): Target {
    const memo = this.targets[kind];
    let target = memo.get(key);
    if (!target) {
      const available = this.resources[kind];
      target = sharedTarget(kind, key, available);
      if (!target) {
        const resources = new Map<string, EncodedResource>();
        for (const name of names) {
          const resource = available.get(name);
          if (resource) resources.set(name, resource);
        }
        target = rememberTarget(kind, key, available, new Target(resources, setVersion(resources.values())));
      }
      memo.set(key, target);
    }
    return target;
  }

  /** A view with some kinds replaced; kinds not replaced keep their maps and memos. */
  with(generation: number, replaced: Partial<EncodedSet>): ProxyView {
    const resources = { ...this.resources } as Record<ResourceKind, PartsMap>;
    const targets = { ...this.targets };
    for (const kind of RESOURCE_KINDS) {
      const map = replaced[kind];
      if (map && map !== this.resources[kind]) {
        resources[kind] = map;
        targets[kind] = new Map();
      }
    }
    return new ProxyView(this.key, generation, resources, targets);
  }
}

function emptyTargets(): Record<ResourceKind, Map<string, Target>> {
  return { cluster: new Map(), endpoint: new Map(), listener: new Map(), route: new Map() };
}

interface Interned {
  readonly encoded: EncodedResource;
  readonly violations: readonly string[];
}

export interface CacheStats {
  readonly snapshots: number;
  readonly fullRebuilds: number;
  readonly endpointPatches: number;
  readonly viewsTranslated: number;
  /** Views a route-only change left untranslated: they read none of the changed routes. */
  readonly viewsKeptOnRouteChange: number;
  /** Views a route-only change re-translated only the routes of: their scope was unchanged. */
  readonly viewsRoutesOnly: number;
  readonly resourcesEncoded: number;
  /** Distinct resource versions held (the views' resources, each counted once). */
  readonly internedResources: number;
}

export class ResourceCache {
  private snapshot: MeshSnapshot | null = null;
  private generation = 0;
  /** Views by key; only views retained by a stream survive a snapshot change. */
  private views = new Map<string, ProxyView>();
  /** A proxy per retained view key (to translate the view) and how many streams retain it. */
  private readonly retained = new Map<string, { proxy: Proxy; count: number }>();
  /** Per view key, what its last translation depended on through the routes (ResourceSet.routeReads and scope). */
  private readonly routeDeps = new Map<string, RouteDeps>();
  /**
   * Endpoint resource name (withheld ones too) -> the indexed parts holding it.
   * Each indexed part lists the views holding it (EncodedPart.viewKeys): the
   * fast path visits only those.
   */
  private readonly endpointPartsByName = new Map<string, Set<EncodedPart>>();
  /** Encoded resources by kind/name/version, so equal content is encoded and validated once; holds what views hold. */
  private readonly interned = new InternTable();
  /** Encoded resources by message object: a message shared by many views is encoded once. */
  private byMessage = new WeakMap<Message, Interned>();
  /** The same for the shared parts of composed maps (a service's clusters, its endpoints). */
  private readonly internedParts = new WeakMap<ResourceMap, EncodedPart>();
  /** The version of each resource name that failed validation last, with its violations (the admin API lists them). */
  private readonly rejected = new Map<string, Interned>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly counters = { snapshots: 0, fullRebuilds: 0, endpointPatches: 0, viewsTranslated: 0, viewsKeptOnRouteChange: 0, viewsRoutesOnly: 0, resourcesEncoded: 0 };

  constructor(
    private readonly translator: Translator,
    private readonly gate: ResourceGate,
    private readonly logger: Logger,
    /** Enables the endpoint fast path; must agree with `translator`. Null disables it. */
    private readonly endpointsOf: EndpointTranslator | null = serviceEndpoints,
    /** Enables the route-only path; must agree with `translator`. Null disables it. */
    private readonly routesOf: RouteTranslator | null = translateRoutes,
  ) {}

  get currentGeneration(): number {
    return this.generation;
  }

  get hasSnapshot(): boolean {
    return this.snapshot !== null;
  }

  currentSnapshot(): MeshSnapshot | null {
    return this.snapshot;
  }

  stats(): CacheStats {
    return { ...this.counters, internedResources: this.interned.size };
  }

  /**
   * Where the endpoint index disagrees with the views (for tests): a view's
   * part that does not list the view, a part listing a view that does not
   * hold it, a name not leading to the indexed part that holds it. Empty when
   * the index is exact.
   */
  indexProblems(): string[] {
    const problems: string[] = [];
    const indexed = new Set<EncodedPart>();
    for (const parts of this.endpointPartsByName.values()) for (const part of parts) indexed.add(part);
    for (const view of this.views.values()) {
      for (const part of view.resources.endpoint.parts) {
        if (!part.viewKeys?.has(view.key)) problems.push(`view ${view.key} holds a part that does not list it`);
        if (!indexed.has(part)) problems.push(`view ${view.key} holds a part no name leads to`);
      }
    }
    for (const part of indexed) {
      for (const key of part.viewKeys ?? []) {
        if (!this.views.get(key)?.resources.endpoint.parts.includes(part)) problems.push(`a part lists view ${key}, which does not hold it`);
      }
      for (const name of part.names()) if (!this.endpointPartsByName.get(name)?.has(part)) problems.push(`${name} does not lead to its part`);
    }
    return problems;
  }

  /** Number of views held (one per distinct proxy view in use). */
  get viewCount(): number {
    return this.views.size;
  }

  setSnapshot(snapshot: MeshSnapshot): void {
    const previous = this.snapshot;
    if (snapshot === previous) return;
    this.snapshot = snapshot;
    this.generation += 1;
    this.counters.snapshots++;
    const changed = this.endpointFastPath(previous, snapshot) ?? this.rebuildAll(snapshot, routeOnlyChanges(previous, snapshot));
    // Versions this snapshot encoded that no view holds (a service no view calls).
    this.interned.sweep();
    // The previous snapshot's translation pieces are not needed any more.
    if (previous) releaseMemo(previous);
    for (const listener of this.listeners) listener(this.generation, changed);
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resources that failed Envoy's field validation and were withheld, for the admin API. */
  invalidResources(): InvalidResource[] {
    return [...this.rejected.values()].map(({ encoded, violations }) => ({ kind: encoded.kind, name: encoded.name, violations }));
  }

  /** A stream serving `proxy` keeps its view up to date across snapshots until released. Returns the view key. */
  retain(proxy: Proxy): string {
    const key = viewKey(proxy);
    const entry = this.retained.get(key);
    if (entry) entry.count++;
    else this.retained.set(key, { proxy, count: 1 });
    return key;
  }

  release(key: string): void {
    const entry = this.retained.get(key);
    if (!entry) return;
    if (--entry.count > 0) return;
    this.retained.delete(key);
    const view = this.views.get(key);
    if (view) {
      this.unindex(view);
      this.holdResources(view, null);
    }
    this.views.delete(key);
    this.routeDeps.delete(key);
  }

  /** The encoded resources for a proxy, shared by every proxy with the same view key. */
  viewFor(proxy: Proxy, key: string = viewKey(proxy)): ProxyView | null {
    if (!this.snapshot) return null;
    let view = this.views.get(key);
    if (!view) {
      view = this.translateView(this.snapshot, key, proxy);
      this.views.set(key, view);
      this.index(view);
      this.holdResources(null, view);
    }
    return view;
  }

  /**
   * The intern table's counts follow the views: `after` replaces `before`
   * (either may be null: a view added or dropped). Kinds whose map is the same
   * object hold the same parts and are skipped; new parts are held before old
   * ones are released, so a part in both never drops to zero.
   */
  private holdResources(before: ProxyView | null, after: ProxyView | null): void {
    for (const kind of RESOURCE_KINDS) {
      const from = before?.resources[kind];
      const to = after?.resources[kind];
      if (from === to) continue;
      if (to) this.interned.holdParts(to.parts);
      if (from) this.interned.releaseParts(from.parts);
    }
  }

  private index(view: ProxyView): void {
    for (const part of view.resources.endpoint.parts) this.indexPart(part, view.key);
  }

  private unindex(view: ProxyView): void {
    for (const part of view.resources.endpoint.parts) this.unindexPart(part, view.key);
  }

  /** `after` replaces `before` (the same key): only the parts one holds and the other does not move in the index. */
  private reindex(before: ProxyView, after: ProxyView): void {
    const { added, dropped } = partChanges(before.resources.endpoint, after.resources.endpoint);
    for (const part of added) this.indexPart(part, after.key);
    for (const part of dropped) this.unindexPart(part, before.key);
  }

  private indexPart(part: EncodedPart, key: string): void {
    let keys = part.viewKeys;
    if (!keys) {
      part.viewKeys = keys = new Set();
      for (const name of part.names()) {
        let parts = this.endpointPartsByName.get(name);
        if (!parts) this.endpointPartsByName.set(name, (parts = new Set()));
        parts.add(part);
      }
    }
    keys.add(key);
  }

  private unindexPart(part: EncodedPart, key: string): void {
    const keys = part.viewKeys;
    if (!keys?.delete(key) || keys.size > 0) return;
    part.viewKeys = null;
    for (const name of part.names()) {
      const parts = this.endpointPartsByName.get(name);
      parts?.delete(part);
      if (parts?.size === 0) this.endpointPartsByName.delete(name);
    }
  }

  // --- full rebuild ------------------------------------------------------------

  /**
   * Re-translates every retained view; a view (or kind) whose content is
   * unchanged keeps its identity. When only the routes of `routesChanged`
   * changed (see routeOnlyChanges), a view that read none of their routes
   * is kept as it is, untranslated, and one whose scope is unchanged has
   * only its routes re-translated.
   */
  private rebuildAll(snapshot: MeshSnapshot, routesChanged: ReadonlySet<string> | null = null): ReadonlySet<string> {
    this.counters.fullRebuilds++;
    const old = this.views;
    this.views = new Map();
    const changed = new Set<string>();
    for (const [key, { proxy }] of this.retained) {
      const before = old.get(key);
      const deps = this.routeDeps.get(key);
      if (before && routesChanged && deps?.reads && !intersects(deps.reads, routesChanged)) {
        this.counters.viewsKeptOnRouteChange++;
        old.delete(key);
        this.views.set(key, before);
        continue;
      }
      let view = before && routesChanged && deps?.scope ? this.retranslateRoutes(snapshot, before, proxy, deps.scope) : null;
      if (!view) {
        const fresh = this.translateView(snapshot, key, proxy);
        view = before ? reuseUnchanged(before, fresh) : fresh;
      }
      old.delete(key);
      if (view !== before) {
        changed.add(key);
        this.holdResources(before ?? null, view);
      }
      this.views.set(key, view);
      if (before?.resources.endpoint !== view.resources.endpoint) {
        if (before) this.reindex(before, view);
        else this.index(view);
      }
    }
    // Views no stream retains any more.
    for (const view of old.values()) {
      this.unindex(view);
      this.holdResources(view, null);
    }
    // Pieces kept for reuse by services that left the mesh.
    forgetServicesOutside(snapshot.registry.services);
    return changed;
  }

  private translateView(snapshot: MeshSnapshot, key: string, proxy: Proxy): ProxyView {
    this.counters.viewsTranslated++;
    const set = this.translator(snapshot, proxy);
    const out = {} as Record<ResourceKind, PartsMap>;
    for (const kind of RESOURCE_KINDS) out[kind] = this.partsOf(kind, set[kind]);
    if (set.routeReads || set.scope) this.routeDeps.set(key, { reads: set.routeReads ?? null, scope: set.scope ?? null });
    else this.routeDeps.delete(key);
    return new ProxyView(key, this.generation, out);
  }

  private partsOf(kind: ResourceKind, map: ResourceMap): PartsMap {
    // A composed map's parts are shared by many views: each is encoded once and held, not copied.
    return new PartsMap(map instanceof ComposedMap ? map.parts.map((part) => this.internPart(kind, part)) : [this.encodePart(kind, map)]);
  }

  /**
   * The route-only path: `before` with only its routes re-translated, when
   * the view's scope is unchanged (every other kind then is too; see
   * translateRoutes). Null when the scope changed or there is no route
   * translator: translate the whole view. What the view depends on through
   * the routes stays as recorded, since it follows from the scope.
   */
  private retranslateRoutes(snapshot: MeshSnapshot, before: ProxyView, proxy: Proxy, scope: readonly string[]): ProxyView | null {
    const routes = this.routesOf?.(snapshot, proxy, scope);
    if (!routes) return null;
    this.counters.viewsRoutesOnly++;
    const map = this.partsOf("route", routes);
    return before.resources.route.sameContent(map) ? before : before.with(this.generation, { route: map });
  }

  private internPart(kind: ResourceKind, part: ResourceMap): EncodedPart {
    let encoded = this.internedParts.get(part);
    if (!encoded) {
      encoded = this.encodePart(kind, part, false);
      this.internedParts.set(part, encoded);
    }
    return encoded;
  }

  /**
   * `byMessage`: look each message up, and remember it, by object. A view's own
   * maps are new per translation but hold messages reused across views and
   * snapshots (listeners, route configurations). A shared part's messages are
   * built with the part and the part is looked up as a whole (internPart), so
   * remembering them would only grow the weak map.
   */
  private encodePart(kind: ResourceKind, map: ResourceMap, byMessage = true): EncodedPart {
    const resources = new Map<string, EncodedResource>();
    let withheld: Set<string> | null = null;
    for (const [name, message] of map) {
      const entry = this.intern(kind, name, message, byMessage);
      if (entry.violations.length === 0) resources.set(name, entry.encoded);
      else (withheld ??= new Set()).add(name);
    }
    return new EncodedPart(resources, withheld ?? EMPTY_SET);
  }

  // --- endpoint fast path ----------------------------------------------------

  /**
   * When the new snapshot is the previous one with only some services'
   * instances changed (every other field identical, see SnapshotBuilder),
   * re-translate those services' endpoints once and patch them into the views
   * that hold them. Returns the changed views, or null to rebuild everything.
   */
  private endpointFastPath(previous: MeshSnapshot | null, next: MeshSnapshot): ReadonlySet<string> | null {
    if (!previous || !this.endpointsOf || !sameFieldsExcept(previous, next, REGISTRY_ONLY)) return null;
    const changedServices = instanceOnlyChanges(previous.registry, next.registry);
    if (changedServices === null) return null;
    this.counters.endpointPatches++;
    // Each changed service's endpoints, encoded once, as the part a fresh translation would hold.
    const newPartByName = new Map<string, EncodedPart>();
    for (const service of changedServices) {
      const part = this.internPart("endpoint", this.endpointsOf(next, service));
      for (const name of part.names()) newPartByName.set(name, part);
    }
    // The held parts with any of those names, and what replaces each.
    const successors = new Map<EncodedPart, EncodedPart>();
    for (const name of newPartByName.keys()) {
      for (const held of this.endpointPartsByName.get(name) ?? []) {
        if (successors.has(held)) continue;
        const successor = successorOf(held, newPartByName);
        if (!successor.sameContent(held)) successors.set(held, successor);
      }
    }
    // Views holding a replaced part: swap it, and move the view in the index.
    const swapsByView = new Map<string, Map<EncodedPart, EncodedPart>>();
    for (const [held, successor] of successors) {
      for (const key of held.viewKeys ?? []) {
        let swaps = swapsByView.get(key);
        if (!swaps) swapsByView.set(key, (swaps = new Map()));
        swaps.set(held, successor);
      }
    }
    const changed = new Set<string>();
    for (const [key, swaps] of swapsByView) {
      const view = this.views.get(key);
      if (!view) continue;
      for (const [held, successor] of swaps) {
        this.unindexPart(held, key);
        this.indexPart(successor, key);
        this.interned.holdPart(successor);
        this.interned.releasePart(held);
      }
      this.views.set(key, view.with(this.generation, { endpoint: view.resources.endpoint.replacing(swaps) }));
      changed.add(key);
    }
    return changed;
  }

  // --- encoding ----------------------------------------------------------------

  /**
   * Encode (and validate) each distinct resource version once. With
   * `byMessage`, the same message object (shared by views, or reused across
   * snapshots) is encoded once.
   */
  private intern(kind: ResourceKind, name: string, message: Message, byMessage: boolean): Interned {
    if (byMessage) {
      const shared = this.byMessage.get(message);
      if (shared && shared.encoded.kind === kind && shared.encoded.name === name) return shared;
    }
    const entry = this.internEncoded(encodeResource(kind, name, message), message);
    if (byMessage) this.byMessage.set(message, entry);
    return entry;
  }

  private internEncoded(fresh: EncodedResource, message: Message): Interned {
    const { kind, name } = fresh;
    this.counters.resourcesEncoded++;
    const known = this.interned.get(kind, name, fresh.version);
    if (known) return { encoded: known, violations: NO_VIOLATIONS };
    const rejected = this.rejected.get(invalidKey(kind, name));
    if (rejected?.encoded.version === fresh.version) return rejected;
    const violations = this.gate(kind, name, message);
    if (violations.length > 0) {
      this.rejected.set(invalidKey(kind, name), { encoded: fresh, violations });
      this.logger.error({ kind, name, violations }, "resource fails Envoy field validation; withheld from proxies");
    } else {
      if (this.rejected.size > 0) this.rejected.delete(invalidKey(kind, name));
      this.interned.add(fresh);
    }
    return { encoded: fresh, violations };
  }
}

/** What a view's translation depended on through the routes (ResourceSet.routeReads and scope); null: unknown. */
interface RouteDeps {
  readonly reads: ReadonlySet<string> | null;
  readonly scope: readonly string[] | null;
}

const EMPTY_SET: ReadonlySet<string> = new Set();
const NO_VIOLATIONS: readonly string[] = [];

function invalidKey(kind: ResourceKind, name: string): string {
  return `${kind}\u0000${name}`;
}

/**
 * The destinations whose routes differ, when routes are all that differ
 * between two snapshots (rejections aside, which no resource reads); else null.
 * Snapshots share unchanged per-destination route lists (SnapshotBuilder).
 */
function routeOnlyChanges(previous: MeshSnapshot | null, next: MeshSnapshot): ReadonlySet<string> | null {
  if (!previous || !sameFieldsExcept(previous, next, ROUTES_ONLY)) return null;
  const changed = new Set<string>();
  for (const [destination, routes] of next.routesByDestination) {
    if (previous.routesByDestination.get(destination) !== routes) changed.add(destination);
  }
  for (const destination of previous.routesByDestination.keys()) {
    if (!next.routesByDestination.has(destination)) changed.add(destination);
  }
  return changed;
}

function intersects(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  for (const name of small) if (large.has(name)) return true;
  return false;
}

/** Fields that may differ between snapshots when only instances changed, or only routes. */
const REGISTRY_ONLY = ["registry"];
const ROUTES_ONLY = ["routesByDestination", "rejected"];

/** `fresh`, with every kind whose content equals `before`'s replaced by `before`'s map; `before` itself if all are equal. */
function reuseUnchanged(before: ProxyView, fresh: ProxyView): ProxyView {
  const replaced: Partial<Record<ResourceKind, PartsMap>> = {};
  let anyChanged = false;
  for (const kind of RESOURCE_KINDS) {
    if (before.resources[kind].sameContent(fresh.resources[kind])) continue;
    replaced[kind] = fresh.resources[kind];
    anyChanged = true;
  }
  return anyChanged ? before.with(fresh.generation, replaced) : before;
}

/**
 * What replaces `held` after an endpoint change: the changed service's new part
 * when `held` is its previous one (same names, all from that part), else a copy
 * of `held` with the changed names taken from their new parts.
 */
function successorOf(held: EncodedPart, newPartByName: ReadonlyMap<string, EncodedPart>): EncodedPart {
  let candidate: EncodedPart | undefined;
  let whole = true;
  for (const name of held.names()) {
    const part = newPartByName.get(name);
    candidate ??= part;
    if (part === undefined || part !== candidate) whole = false;
  }
  if (whole && candidate !== undefined && candidate.nameCount === held.nameCount) return candidate;
  const resources = new Map<string, EncodedResource>();
  const withheld = new Set<string>();
  for (const name of held.names()) {
    const source = newPartByName.get(name) ?? held;
    const resource = source.resources.get(name);
    if (resource !== undefined) resources.set(name, resource);
    else withheld.add(name);
  }
  return new EncodedPart(resources, withheld.size === 0 ? EMPTY_SET : withheld);
}
