import type { Message } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import type { Proxy } from "../model/proxy.ts";
import type { Service } from "../model/registry.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import { sameFieldsExcept } from "../model/share.ts";
import { instanceOnlyChanges } from "../translate/incremental-snapshot.ts";
import { releaseMemo } from "../translate/memo.ts";
import { ComposedMap, RESOURCE_KINDS, type ResourceKind, type ResourceMap, type ResourceSet } from "../translate/resource-types.ts";
import { serviceEndpoints } from "../translate/translate.ts";
import { encodeResource, encodeSotwBody, setVersion, type EncodedResource } from "./encoding.ts";
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
 *  - a view (or one kind of it) whose content did not change keeps its identity,
 *    and listeners are told which views changed, so unaffected streams are not
 *    even visited;
 *  - every resource is encoded (and validated) once per version, and a
 *    state-of-the-world response body once per view and subscription.
 */

export type Translator = (snapshot: MeshSnapshot, proxy: Proxy) => ResourceSet;

/** A service's endpoint resources in a snapshot (see serviceEndpoints in translate.ts). */
export type EndpointTranslator = (snapshot: MeshSnapshot, service: Service) => ReadonlyMap<string, Message>;

/** Field-level validation of one resource; returns human-readable violations. */
export type ResourceGate = (kind: ResourceKind, name: string, message: Message) => string[];

export type EncodedSet = Readonly<Record<ResourceKind, ReadonlyMap<string, EncodedResource>>>;

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

/** The wildcard subscription's key in a view's target memo. */
export const WILDCARD_KEY = "*";

/** The key identifying a set of subscribed names (order and duplicates do not matter). */
export function namesKey(names: readonly string[]): string {
  return [...new Set(names)].sort().join("\u0000");
}

/** The encoded resources one proxy view should have; immutable, replaced when content changes. */
export class ProxyView {
  constructor(
    readonly key: string,
    /** Generation of the snapshot this view was last changed in. */
    readonly generation: number,
    readonly resources: EncodedSet,
    /** Endpoint resources of the view withheld because they failed validation. */
    readonly withheld: ReadonlySet<string>,
    /** Memoized targets per kind; a kind whose map is unchanged carries its memo over. */
    private readonly targets: Record<ResourceKind, Map<string, Target>> = emptyTargets(),
  ) {}

  /** Every resource of `kind` (a wildcard subscription). */
  all(kind: ResourceKind): Target {
    const memo = this.targets[kind];
    let target = memo.get(WILDCARD_KEY);
    if (!target) {
      const resources = this.resources[kind];
      target = new Target(resources, setVersion(resources.values()));
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
      const resources = new Map<string, EncodedResource>();
      for (const name of names) {
        const resource = available.get(name);
        if (resource) resources.set(name, resource);
      }
      target = new Target(resources, setVersion(resources.values()));
      memo.set(key, target);
    }
    return target;
  }

  /** A view with some kinds replaced; kinds not replaced keep their maps and memos. */
  with(generation: number, replaced: Partial<EncodedSet>, withheld: ReadonlySet<string> = this.withheld): ProxyView {
    const resources = { ...this.resources } as Record<ResourceKind, ReadonlyMap<string, EncodedResource>>;
    const targets = { ...this.targets };
    for (const kind of RESOURCE_KINDS) {
      const map = replaced[kind];
      if (map && map !== this.resources[kind]) {
        resources[kind] = map;
        targets[kind] = new Map();
      }
    }
    return new ProxyView(this.key, generation, resources, withheld, targets);
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
  readonly resourcesEncoded: number;
}

export class ResourceCache {
  private snapshot: MeshSnapshot | null = null;
  private generation = 0;
  /** Views by key; only views retained by a stream survive a snapshot change. */
  private views = new Map<string, ProxyView>();
  /** A proxy per retained view key (to translate the view) and how many streams retain it. */
  private readonly retained = new Map<string, { proxy: Proxy; count: number }>();
  /** Per view key, the services whose routes its last translation read (ResourceSet.routeReads). */
  private readonly routeReads = new Map<string, ReadonlySet<string>>();
  /** Endpoint resource name -> keys of the views holding it (the fast path visits only those). */
  private endpointIndex = new Map<string, Set<string>>();
  /** Encoded resources by kind/name/version, so equal content is encoded and validated once. */
  private interned = new Map<string, Interned>();
  /** Encoded resources by message object: a message shared by many views is encoded once. */
  private byMessage = new WeakMap<Message, Interned>();
  /** The same for the shared parts of composed maps (a service's clusters, its endpoints). */
  private readonly internedParts = new WeakMap<ResourceMap, readonly (readonly [string, Interned])[]>();
  private internedAtRebuild = 0;
  private replacedSinceCompaction = 0;
  private readonly invalid = new Map<string, InvalidResource>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly counters = { snapshots: 0, fullRebuilds: 0, endpointPatches: 0, viewsTranslated: 0, viewsKeptOnRouteChange: 0, resourcesEncoded: 0 };

  constructor(
    private readonly translator: Translator,
    private readonly gate: ResourceGate,
    private readonly logger: Logger,
    /** Enables the endpoint fast path; must agree with `translator`. Null disables it. */
    private readonly endpointsOf: EndpointTranslator | null = serviceEndpoints,
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
    return { ...this.counters };
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
    return [...this.invalid.values()];
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
    if (view) this.unindex(view);
    this.views.delete(key);
    this.routeReads.delete(key);
  }

  /** The encoded resources for a proxy, shared by every proxy with the same view key. */
  viewFor(proxy: Proxy, key: string = viewKey(proxy)): ProxyView | null {
    if (!this.snapshot) return null;
    let view = this.views.get(key);
    if (!view) {
      view = this.translateView(this.snapshot, key, proxy);
      this.views.set(key, view);
      this.index(view);
    }
    return view;
  }

  private index(view: ProxyView): void {
    const add = (name: string): void => {
      let keys = this.endpointIndex.get(name);
      if (!keys) this.endpointIndex.set(name, (keys = new Set()));
      keys.add(view.key);
    };
    for (const name of view.resources.endpoint.keys()) add(name);
    for (const name of view.withheld) add(name);
  }

  private unindex(view: ProxyView): void {
    const remove = (name: string): void => {
      const keys = this.endpointIndex.get(name);
      keys?.delete(view.key);
      if (keys?.size === 0) this.endpointIndex.delete(name);
    };
    for (const name of view.resources.endpoint.keys()) remove(name);
    for (const name of view.withheld) remove(name);
  }

  // --- full rebuild ------------------------------------------------------------

  /**
   * Re-translates every retained view; a view (or kind) whose content is
   * unchanged keeps its identity. When only the routes of `routesChanged`
   * changed (see routeOnlyChanges), a view that read none of their routes
   * is kept as it is, untranslated.
   */
  private rebuildAll(snapshot: MeshSnapshot, routesChanged: ReadonlySet<string> | null = null): ReadonlySet<string> {
    this.counters.fullRebuilds++;
    const old = this.views;
    const hadViews = old.size > 0;
    const internedBefore = this.interned.size;
    this.views = new Map();
    const changed = new Set<string>();
    for (const [key, { proxy }] of this.retained) {
      const before = old.get(key);
      const reads = this.routeReads.get(key);
      if (before && routesChanged && reads && !intersects(reads, routesChanged)) {
        this.counters.viewsKeptOnRouteChange++;
        old.delete(key);
        this.views.set(key, before);
        continue;
      }
      const fresh = this.translateView(snapshot, key, proxy);
      const view = before ? reuseUnchanged(before, fresh) : fresh;
      old.delete(key);
      if (view !== before) changed.add(key);
      this.views.set(key, view);
      if (before?.resources.endpoint !== view.resources.endpoint || before?.withheld !== view.withheld) {
        if (before) this.unindex(before);
        this.index(view);
      }
    }
    // Views no stream retains any more.
    for (const view of old.values()) this.unindex(view);
    // New versions replace old ones (a first build only adds).
    if (hadViews) this.replacedSinceCompaction += this.interned.size - internedBefore;
    else this.internedAtRebuild = Math.max(this.internedAtRebuild, this.interned.size);
    this.compactIfGrown();
    return changed;
  }

  private translateView(snapshot: MeshSnapshot, key: string, proxy: Proxy): ProxyView {
    this.counters.viewsTranslated++;
    const set = this.translator(snapshot, proxy);
    const out = {} as Record<ResourceKind, Map<string, EncodedResource>>;
    let withheld: Set<string> | null = null;
    for (const kind of RESOURCE_KINDS) {
      const encoded = new Map<string, EncodedResource>();
      const map = set[kind];
      // A composed map's parts are shared by many views: each is interned once.
      const parts = map instanceof ComposedMap ? map.parts.map((part) => this.internPart(kind, part)) : [this.internEntries(kind, map)];
      for (const entries of parts) {
        for (const [name, entry] of entries) {
          // A later part wins a name, as Map.set would (parts of one view do not share names in practice).
          if (entry.violations.length === 0) {
            encoded.set(name, entry.encoded);
            if (kind === "endpoint") withheld?.delete(name);
          } else {
            encoded.delete(name);
            if (kind === "endpoint") (withheld ??= new Set()).add(name);
          }
        }
      }
      out[kind] = encoded;
    }
    if (set.routeReads) this.routeReads.set(key, set.routeReads);
    else this.routeReads.delete(key);
    return new ProxyView(key, this.generation, out, withheld ?? EMPTY_SET);
  }

  private internPart(kind: ResourceKind, part: ResourceMap): readonly (readonly [string, Interned])[] {
    let entries = this.internedParts.get(part);
    if (!entries) {
      entries = this.internEntries(kind, part);
      this.internedParts.set(part, entries);
    }
    return entries;
  }

  private internEntries(kind: ResourceKind, map: ResourceMap): (readonly [string, Interned])[] {
    const entries: (readonly [string, Interned])[] = [];
    for (const [name, message] of map) entries.push([name, this.intern(kind, name, message)]);
    return entries;
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
    // name -> new encoded resource, or null when the new version is withheld.
    const replacements = new Map<string, EncodedResource | null>();
    for (const service of changedServices) {
      for (const [name, message] of this.endpointsOf(next, service)) {
        const entry = this.intern("endpoint", name, message);
        replacements.set(name, entry.violations.length === 0 ? entry.encoded : null);
      }
    }
    const affected = new Set<string>();
    for (const name of replacements.keys()) for (const key of this.endpointIndex.get(name) ?? []) affected.add(key);
    this.replacedSinceCompaction += replacements.size;
    const changed = new Set<string>();
    for (const key of affected) {
      const view = this.views.get(key);
      if (!view) continue;
      const current = view.resources.endpoint;
      let patched: Map<string, EncodedResource | null> | null = null;
      let withheld: Set<string> | null = null;
      for (const [name, replacement] of replacements) {
        const before = current.get(name);
        if (before === undefined && !view.withheld.has(name)) continue; // not in this view
        if (replacement === before) continue;
        (patched ??= new Map()).set(name, replacement);
        if (view.withheld.has(name) !== (replacement === null)) {
          withheld ??= new Set(view.withheld);
          if (replacement === null) withheld.add(name);
          else withheld.delete(name);
        }
      }
      if (!patched) continue;
      this.views.set(key, view.with(this.generation, { endpoint: PatchedMap.of(current, patched) }, withheld ?? view.withheld));
      changed.add(key);
    }
    // Keep the intern table bounded under endpoint churn: re-derive it from the views now and then.
    this.compactIfGrown();
    return changed;
  }

  /**
   * The intern table keeps every version seen; once about as many versions have
   * been replaced as the table held after the last compaction, re-derive it from
   * the live views (views being added do not count: their entries stay live).
   */
  private compactIfGrown(): void {
    if (this.replacedSinceCompaction > Math.max(this.internedAtRebuild, 1000)) this.compactInterned();
  }

  private compactInterned(): void {
    const live = new Set<EncodedResource>();
    for (const view of this.views.values()) {
      for (const kind of RESOURCE_KINDS) for (const resource of view.resources[kind].values()) live.add(resource);
    }
    const kept = new Map<string, Interned>();
    for (const [key, entry] of this.interned) if (live.has(entry.encoded)) kept.set(key, entry);
    this.interned = kept;
    this.internedAtRebuild = kept.size;
    this.replacedSinceCompaction = 0;
  }


  // --- encoding ----------------------------------------------------------------

  /** Encode (and validate) each distinct resource version once. */
  private intern(kind: ResourceKind, name: string, message: Message): Interned {
    // The same message object (shared by views, or reused across snapshots) is encoded once.
    const shared = this.byMessage.get(message);
    if (shared && shared.encoded.kind === kind && shared.encoded.name === name) return shared;
    const fresh = encodeResource(kind, name, message);
    this.counters.resourcesEncoded++;
    const key = internKey(kind, name, fresh.version);
    const known = this.interned.get(key);
    if (known) {
      this.byMessage.set(message, known);
      return known;
    }
    const violations = this.gate(kind, name, message);
    const invalidKey = `${kind}\u0000${name}`;
    if (violations.length > 0) {
      this.invalid.set(invalidKey, { kind, name, violations });
      this.logger.error({ kind, name, violations }, "resource fails Envoy field validation; withheld from proxies");
    } else {
      this.invalid.delete(invalidKey);
    }
    const entry = { encoded: fresh, violations };
    this.interned.set(key, entry);
    this.byMessage.set(message, entry);
    return entry;
  }
}

const EMPTY_SET: ReadonlySet<string> = new Set();

/**
 * A map patched by the endpoint fast path without copying it: `base` with some
 * entries replaced, removed (null) or added; iterates in base order, added
 * names last (order carries no meaning: versions sort names). A view that
 * holds every service's endpoints (a proxy that declared no dependencies) thus
 * costs one small map per endpoint change rather than a copy of thousands of
 * entries. Each change's patch is kept as a layer (no copy per change); every
 * few changes the layers are merged into one, and once the patches outgrow an
 * eighth of the base they are folded into a fresh base, so a lookup reads at
 * most a handful of small maps and the copying stays amortized.
 */
export class PatchedMap<V> implements ReadonlyMap<string, V> {
  private constructor(
    private readonly base: ReadonlyMap<string, V>,
    /** Patches, oldest first: the newest entry for a name wins; null removes it. */
    private readonly layers: readonly ReadonlyMap<string, V | null>[],
    readonly size: number,
  ) {}

  /** `current` with `changes` applied (a value replaces or adds, null removes); `changes` must not change afterwards. */
  static of<V>(current: ReadonlyMap<string, V>, changes: ReadonlyMap<string, V | null>): ReadonlyMap<string, V> {
    let size = current.size;
    for (const [name, value] of changes) {
      const had = current.has(name);
      if (had && value === null) size--;
      else if (!had && value !== null) size++;
    }
    const base = current instanceof PatchedMap ? (current.base as ReadonlyMap<string, V>) : current;
    let layers = current instanceof PatchedMap ? [...(current.layers as readonly ReadonlyMap<string, V | null>[]), changes] : [changes];
    if (layers.length > MAX_PATCH_LAYERS) layers = [mergeLayers(base, layers)];
    let patched = 0;
    for (const layer of layers) patched += layer.size;
    if (patched <= Math.max(128, base.size >> 3)) return new PatchedMap(base, layers, size);
    // Fold: a native copy of the base, then the patches.
    const folded = new Map(base);
    for (const layer of layers) {
      for (const [name, value] of layer) {
        if (value === null) folded.delete(name);
        else folded.set(name, value);
      }
    }
    return folded;
  }

  /** The newest patch for `name`: a value, null (removed), or undefined (unpatched). */
  private patch(name: string): V | null | undefined {
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const value = (this.layers[i] as ReadonlyMap<string, V | null>).get(name);
      if (value !== undefined) return value;
    }
    return undefined;
  }

  get(name: string): V | undefined {
    const patch = this.patch(name);
    if (patch !== undefined) return patch ?? undefined;
    return this.base.get(name);
  }

  has(name: string): boolean {
    const patch = this.patch(name);
    return patch !== undefined ? patch !== null : this.base.has(name);
  }

  *entries(): MapIterator<[string, V]> {
    for (const [name, value] of this.base) {
      const patch = this.patch(name);
      if (patch === undefined) yield [name, value];
      else if (patch !== null) yield [name, patch];
    }
    // Names the patches added, once each, with their newest value.
    const seen = new Set<string>();
    for (let i = this.layers.length - 1; i >= 0; i--) {
      for (const [name, value] of this.layers[i] as ReadonlyMap<string, V | null>) {
        if (seen.has(name) || this.base.has(name)) continue;
        seen.add(name);
        if (value !== null) yield [name, value];
      }
    }
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  *keys(): MapIterator<string> {
    for (const [name] of this.entries()) yield name;
  }

  *values(): MapIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  forEach(callback: (value: V, key: string, map: ReadonlyMap<string, V>) => void, thisArg?: unknown): void {
    for (const [name, value] of this.entries()) callback.call(thisArg, value, name, this);
  }
}

/** Layers a PatchedMap keeps before merging them into one. */
const MAX_PATCH_LAYERS = 4;

/** Layers merged into one patch; a patch that restores the base's own entry (or removes a name the base lacks) is dropped. */
function mergeLayers<V>(base: ReadonlyMap<string, V>, layers: readonly ReadonlyMap<string, V | null>[]): Map<string, V | null> {
  const merged = new Map<string, V | null>();
  for (const layer of layers) {
    for (const [name, value] of layer) {
      if (value === null ? !base.has(name) : base.get(name) === value) merged.delete(name);
      else merged.set(name, value);
    }
  }
  return merged;
}

function internKey(kind: ResourceKind, name: string, version: string): string {
  return `${kind}\u0000${name}\u0000${version}`;
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
  const replaced: Partial<Record<ResourceKind, ReadonlyMap<string, EncodedResource>>> = {};
  let anyChanged = false;
  for (const kind of RESOURCE_KINDS) {
    if (sameResources(before.resources[kind], fresh.resources[kind])) continue;
    replaced[kind] = fresh.resources[kind];
    anyChanged = true;
  }
  if (!anyChanged && sameSet(before.withheld, fresh.withheld)) return before;
  return before.with(fresh.generation, replaced, fresh.withheld);
}

function sameResources(a: ReadonlyMap<string, EncodedResource>, b: ReadonlyMap<string, EncodedResource>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const [name, resource] of b) {
    const other = a.get(name);
    if (other !== resource && other?.version !== resource.version) return false;
  }
  return true;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const name of a) if (!b.has(name)) return false;
  return true;
}
