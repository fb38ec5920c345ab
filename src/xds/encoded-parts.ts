import { sameElements } from "../model/share.ts";
import { addLanes, addVersionLanes, emptyLanes, lanesVersion, setVersion, subtractLanes, type EncodedResource, type VersionLanes } from "./encoding.ts";

/**
 * A view's resources are kept as the encoded parts they were translated from
 * (each upstream service's clusters, its endpoints, the view's own listeners),
 * not copied into one map per view: thousands of views hold the same parts, so
 * a view costs an array of part references, and the endpoint fast path swaps
 * one part for its successor instead of patching names.
 */

/**
 * The encoded resources of one translated part, shared by every view that holds it.
 * A part belongs to the cache that encoded it, whose bookkeeping lives in two
 * fields here rather than in maps keyed by part: a full build holds and
 * indexes parts a hundred thousand times, and a field costs less than a
 * lookup.
 */
export class EncodedPart {
  /** How many view maps hold this part (the cache's InternTable counts them). */
  holders = 0;
  /** For an endpoint part, the keys of the views that hold it (the cache's endpoint index); null when none. */
  viewKeys: Set<string> | null = null;
  private lanes: VersionLanes | null = null;

  constructor(
    /** Resources that passed validation, by name. */
    readonly resources: ReadonlyMap<string, EncodedResource>,
    /** Names whose resource failed validation and is withheld from proxies. */
    readonly withheld: ReadonlySet<string>,
  ) {}

  /** Every name of the part, withheld ones included. */
  *names(): IterableIterator<string> {
    yield* this.resources.keys();
    yield* this.withheld;
  }

  get nameCount(): number {
    return this.resources.size + this.withheld.size;
  }

  /** Its resources' versions summed (see setVersion), once per part: parts are immutable. */
  get versionLanes(): VersionLanes {
    return (this.lanes ??= addVersionLanes(emptyLanes(), this.resources.values()));
  }

  /** Same names, each with the same resource (or withheld in both). */
  sameContent(other: EncodedPart): boolean {
    if (other === this) return true;
    if (other.resources.size !== this.resources.size || other.withheld.size !== this.withheld.size) return false;
    for (const [name, resource] of this.resources) if (other.resources.get(name) !== resource) return false;
    return sameNames(this.withheld, other.withheld);
  }
}

function sameNames(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const name of a) if (!b.has(name)) return false;
  return true;
}

/** Up to this many parts, a lookup scans them; beyond it, a name index is built on first lookup. */
const SCAN_PARTS = 16;

/**
 * Up to this many parts, replacing parts copies the part list. A larger view (a
 * proxy that declared no dependencies holds a part per service of the mesh)
 * keeps its list and records replacements beside it, folded into a new list
 * once they outnumber the square root of its length: one endpoint change then
 * costs a small map, not a copy of thousands of entries.
 */
const COPY_PARTS = 64;

/**
 * What maps with the same base list share: the list, and a name index built
 * on first lookup. Replacing a part never changes its names (the successor of
 * a part holds the same names, see the cache's endpoint fast path), so the
 * index, from name to base part, stays true for every map over the base.
 */
class PartsBase {
  private byName: Map<string, EncodedPart> | null = null;
  private positions: Map<EncodedPart, number> | null = null;
  private lanes: VersionLanes | null = null;

  /** Resources in the base parts. */
  readonly size: number;

  constructor(readonly parts: readonly EncodedPart[]) {
    let size = 0;
    for (const part of parts) size += part.resources.size;
    this.size = size;
  }

  /** Where `part` sits in the list. */
  positionOf(part: EncodedPart): number {
    if (this.positions === null) {
      this.positions = new Map();
      for (let i = 0; i < this.parts.length; i++) this.positions.set(this.parts[i] as EncodedPart, i);
    }
    return this.positions.get(part) ?? -1;
  }

  /** The parts' version sums added up, once per list. */
  get versionLanes(): VersionLanes {
    if (this.lanes === null) {
      const lanes = emptyLanes();
      for (const part of this.parts) addLanes(lanes, part.versionLanes);
      this.lanes = lanes;
    }
    return this.lanes;
  }

  partNamed(name: string): EncodedPart | undefined {
    if (this.byName === null) {
      this.byName = new Map();
      for (const part of this.parts) for (const each of part.names()) this.byName.set(each, part);
    }
    return this.byName.get(name);
  }
}

const NO_SUCCESSORS: ReadonlyMap<EncodedPart, EncodedPart> = new Map();

/**
 * The last few lists of parts given a base (a view has one per kind). Views
 * are translated one after another, and in a mesh that declares no
 * dependencies they hold the same parts: such views then share one base, and
 * so one name index and one version sum, instead of an index of every name of
 * the mesh per view. Lists short enough to be scanned are not compared.
 */
const lastBases: PartsBase[] = [];
const LAST_BASES = 4;

function baseOf(parts: readonly EncodedPart[]): PartsBase {
  if (parts.length <= SCAN_PARTS) return new PartsBase(parts);
  for (const base of lastBases) if (base.parts.length === parts.length && sameElements(base.parts, parts)) return base;
  const base = new PartsBase(parts);
  lastBases.unshift(base);
  if (lastBases.length > LAST_BASES) lastBases.pop();
  return base;
}

/**
 * A view's resources of one kind as a read-only map over its parts. Parts of
 * one view hold disjoint names (translate.ts composes one part per upstream
 * service, and resource names carry the service), so the map's entries are
 * the parts' entries in part order.
 */
export class PartsMap implements ReadonlyMap<string, EncodedResource> {
  readonly size: number;
  private readonly base: PartsBase;
  private current: readonly EncodedPart[] | null;
  private withheldNames: ReadonlySet<string> | null = null;
  private lanes: VersionLanes | null = null;

  /** `parts`, or (with `successors`) the parts of `base` each replaced by its successor, if any. */
  constructor(parts: readonly EncodedPart[] | PartsBase, private readonly successors: ReadonlyMap<EncodedPart, EncodedPart> = NO_SUCCESSORS) {
    this.base = parts instanceof PartsBase ? parts : baseOf(parts);
    this.current = successors.size === 0 ? this.base.parts : null;
    let size = this.base.size;
    // forEach rather than for-of: no entry array per recorded replacement (this runs per endpoint change).
    successors.forEach((successor, replaced) => (size += successor.resources.size - replaced.resources.size));
    this.size = size;
  }

  /** The parts, in order. */
  get parts(): readonly EncodedPart[] {
    this.current ??= this.base.parts.map((part) => this.successors.get(part) ?? part);
    return this.current;
  }

  get(name: string): EncodedResource | undefined {
    const parts = this.base.parts;
    if (parts.length <= SCAN_PARTS) {
      for (const part of this.parts) {
        const resource = part.resources.get(name);
        if (resource !== undefined) return resource;
      }
      return undefined;
    }
    const part = this.base.partNamed(name);
    if (part === undefined) return undefined;
    return (this.successors.get(part) ?? part).resources.get(name);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /**
   * Its resources' version sums (see setVersion): the base list's, with each
   * recorded replacement's difference applied, so a large view's version costs
   * its replacements, not its parts.
   */
  get versionLanes(): VersionLanes {
    if (this.lanes === null) {
      const lanes = addLanes(emptyLanes(), this.base.versionLanes);
      this.successors.forEach((successor, replaced) => addLanes(subtractLanes(lanes, replaced.versionLanes), successor.versionLanes));
      this.lanes = lanes;
    }
    return this.lanes;
  }

  /**
   * The resources whose version differs in `from`, in this map's order, when
   * the parts pair up with the same names (a part and its successor do); null
   * when they do not. Over the same base list only the parts either map
   * replaced can differ, so a large view's change costs its replacements.
   */
  changedSince(from: PartsMap): EncodedResource[] | null {
    if (from.base !== this.base) return changedByPart(from.parts, this.parts);
    const touched = new Set(from.successors.keys());
    for (const part of this.successors.keys()) touched.add(part);
    // [base part, before, after] for each part that differs; usually one (an endpoint change).
    const pairs: [EncodedPart, EncodedPart, EncodedPart][] = [];
    for (const part of touched) {
      const before = from.successors.get(part) ?? part;
      const after = this.successors.get(part) ?? part;
      if (before !== after) pairs.push([part, before, after]);
    }
    if (pairs.length > 1) pairs.sort((a, b) => this.base.positionOf(a[0]) - this.base.positionOf(b[0]));
    const changed: EncodedResource[] = [];
    for (const [, before, after] of pairs) if (!addChanged(before.resources, after.resources, changed)) return null;
    return changed;
  }

  /** Names withheld by any part. */
  get withheld(): ReadonlySet<string> {
    if (this.withheldNames === null) {
      const withheld = this.parts.filter((part) => part.withheld.size > 0);
      this.withheldNames = withheld.length === 0 ? NO_NAMES : new Set(withheld.flatMap((part) => [...part.withheld]));
    }
    return this.withheldNames;
  }

  /**
   * The same parts, each of `successors`' keys replaced by its value. Every key
   * must be a part of this map, and a successor must hold the same names as
   * the part it replaces (the endpoint fast path's successors do).
   */
  replacing(successors: ReadonlyMap<EncodedPart, EncodedPart>): PartsMap {
    if (this.base.parts.length <= COPY_PARTS) {
      let replaced = false;
      const parts = this.parts.map((part) => {
        const next = successors.get(part);
        if (next === undefined) return part;
        replaced = true;
        return next;
      });
      return replaced ? new PartsMap(parts) : this;
    }
    // Keyed by base part: a replaced part's successor is found by what it replaced.
    const merged = new Map(this.successors);
    const currentValues = new Set<EncodedPart>();
    let replaced = false;
    this.successors.forEach((current, basePart) => {
      const next = successors.get(current);
      if (next !== undefined) {
        merged.set(basePart, next);
        currentValues.add(current);
        replaced = true;
      }
    });
    successors.forEach((next, part) => {
      // Not a recorded successor, so (being held) a part of the base list.
      if (!this.successors.has(part) && !currentValues.has(part)) {
        merged.set(part, next);
        replaced = true;
      }
    });
    if (!replaced) return this;
    // Each replacement copies the recorded ones, and a fold copies the list: folding
    // at √n recorded keeps both near √n per change.
    if (merged.size > Math.sqrt(this.base.parts.length)) return new PartsMap(this.base.parts.map((part) => merged.get(part) ?? part));
    return new PartsMap(this.base, merged);
  }

  /**
   * The same content: every name at the same version, and the same names
   * withheld (so a view whose content is unchanged keeps its identity).
   */
  sameContent(other: PartsMap): boolean {
    if (other === this || this.sameParts(other)) return true;
    if (other.size !== this.size) return false;
    for (const [name, resource] of other) {
      const mine = this.get(name);
      if (mine !== resource && mine?.version !== resource.version) return false;
    }
    return sameNames(this.withheld, other.withheld);
  }

  /** Whether `other` holds exactly the same part objects, in the same order. */
  sameParts(other: PartsMap): boolean {
    return sameElements(this.parts, other.parts);
  }

  *entries(): MapIterator<[string, EncodedResource]> {
    for (const part of this.parts) yield* part.resources.entries();
  }

  [Symbol.iterator](): MapIterator<[string, EncodedResource]> {
    return this.entries();
  }

  *keys(): MapIterator<string> {
    for (const part of this.parts) yield* part.resources.keys();
  }

  *values(): MapIterator<EncodedResource> {
    for (const part of this.parts) yield* part.resources.values();
  }

  forEach(callback: (value: EncodedResource, key: string, map: ReadonlyMap<string, EncodedResource>) => void, thisArg?: unknown): void {
    for (const [name, resource] of this.entries()) callback.call(thisArg, resource, name, this);
  }
}

const NO_NAMES: ReadonlySet<string> = new Set();

/**
 * setVersion of a map's resources. A map over parts sums its parts' sums, so
 * a view holding every service of a large mesh (a proxy that declared no
 * dependencies) costs a sum per part on each change, not a parse per resource.
 */
export function mapVersion(map: ReadonlyMap<string, EncodedResource>): string {
  return map instanceof PartsMap ? lanesVersion(map.versionLanes) : setVersion(map.values());
}

/**
 * The resources of `to` whose version differs in `from`, in `to`'s order, when
 * both maps hold the same names; null when they do not. Two views' maps over
 * parts are compared part by part: a part both hold is skipped whole (an
 * endpoint change replaces one part per view and keeps the rest), and a part
 * and its successor hold the same names. Any other pair of maps, or parts that
 * do not line up, are compared name by name.
 */
export function changedResources(from: ReadonlyMap<string, EncodedResource>, to: ReadonlyMap<string, EncodedResource>): EncodedResource[] | null {
  if (from.size !== to.size) return null;
  if (from instanceof PartsMap && to instanceof PartsMap) {
    const byPart = to.changedSince(from);
    if (byPart !== null) return byPart;
  }
  return changedByName(from, to);
}

/** What differs from one map to another. */
export interface MapDiff {
  /** Resources of `to` that `from` lacks or holds at another version, in `to`'s order. */
  readonly changed: readonly EncodedResource[];
  /** Names `from` holds and `to` does not. */
  readonly removed: readonly string[];
}

const NO_REMOVALS: readonly string[] = [];

/**
 * The difference from `from` to `to`, names added and removed included. Maps
 * with the same names (an endpoint or route change) take changedResources;
 * maps over parts otherwise compare only the parts one holds and the other
 * does not (a service joining a mesh that declares no dependencies adds one
 * part to every view and keeps the rest).
 */
export function diffMaps(from: ReadonlyMap<string, EncodedResource>, to: ReadonlyMap<string, EncodedResource>): MapDiff {
  const sameNames = changedResources(from, to);
  if (sameNames !== null) return { changed: sameNames, removed: NO_REMOVALS };
  const changed: EncodedResource[] = [];
  const removed: string[] = [];
  if (from instanceof PartsMap && to instanceof PartsMap) {
    // Parts of one map hold disjoint names, so a part both maps hold has the same names and versions in both.
    const { added, dropped } = partChanges(from, to);
    for (const part of added) addDiffering(from, part.resources, changed);
    for (const part of dropped) addMissing(part.resources, to, removed);
  } else {
    addDiffering(from, to, changed);
    addMissing(from, to, removed);
  }
  return { changed, removed };
}

/** The parts one map holds and the other does not. */
export interface PartChanges {
  /** Parts of `to` that `from` lacks, in `to`'s order. */
  readonly added: readonly EncodedPart[];
  /** Parts of `from` that `to` lacks, in `from`'s order. */
  readonly dropped: readonly EncodedPart[];
}

/** The part changes computed last (newest first), with the maps they were computed from. */
const lastPartChanges: { readonly from: PartsMap; readonly to: PartsMap; readonly changes: PartChanges }[] = [];
/** One per kind a stream pushes in a row. */
const LAST_PART_CHANGES = 4;

/**
 * The parts `to` holds and `from` does not, and the reverse. Streams are
 * pushed, and views rebuilt, one after another, and those over the same parts
 * (a service's proxies; in a mesh that declares no dependencies, every view)
 * make the same change: the last few are remembered by their parts, so such a
 * view costs a comparison of its part lists, not a set of them.
 */
export function partChanges(from: PartsMap, to: PartsMap): PartChanges {
  for (const last of lastPartChanges) if (last.from.sameParts(from) && last.to.sameParts(to)) return last.changes;
  const fromParts = new Set(from.parts);
  const toParts = new Set(to.parts);
  const changes = { added: to.parts.filter((part) => !fromParts.has(part)), dropped: from.parts.filter((part) => !toParts.has(part)) };
  lastPartChanges.unshift({ from, to, changes });
  if (lastPartChanges.length > LAST_PART_CHANGES) lastPartChanges.pop();
  return changes;
}

/** The same resources in the same order: the same map, or maps over the same parts. */
export function sameResources(a: ReadonlyMap<string, EncodedResource>, b: ReadonlyMap<string, EncodedResource>): boolean {
  return a === b || (a instanceof PartsMap && b instanceof PartsMap && a.sameParts(b));
}

/** Adds the resources of `after` that `before` lacks or holds at another version. */
function addDiffering(before: ReadonlyMap<string, EncodedResource>, after: ReadonlyMap<string, EncodedResource>, changed: EncodedResource[]): void {
  for (const [name, resource] of after) if (before.get(name)?.version !== resource.version) changed.push(resource);
}

/** Adds the names of `before` that `after` lacks. */
function addMissing(before: ReadonlyMap<string, EncodedResource>, after: ReadonlyMap<string, EncodedResource>, removed: string[]): void {
  for (const name of before.keys()) if (!after.has(name)) removed.push(name);
}

/** Null when the parts do not pair up with the same names (the caller then compares by name). */
function changedByPart(from: readonly EncodedPart[], to: readonly EncodedPart[]): EncodedResource[] | null {
  if (from.length !== to.length) return null;
  const changed: EncodedResource[] = [];
  for (let i = 0; i < to.length; i++) if (!addChanged((from[i] as EncodedPart).resources, (to[i] as EncodedPart).resources, changed)) return null;
  return changed;
}

function changedByName(from: ReadonlyMap<string, EncodedResource>, to: ReadonlyMap<string, EncodedResource>): EncodedResource[] | null {
  const changed: EncodedResource[] = [];
  return addChanged(from, to, changed) ? changed : null;
}

/** Adds the resources of `after` whose version differs in `before`; false when the two hold different names. */
function addChanged(before: ReadonlyMap<string, EncodedResource>, after: ReadonlyMap<string, EncodedResource>, changed: EncodedResource[]): boolean {
  if (before === after) return true;
  if (before.size !== after.size) return false;
  for (const [name, resource] of after) {
    const old = before.get(name);
    if (old === undefined) return false;
    if (old.version !== resource.version) changed.push(resource);
  }
  return true;
}
