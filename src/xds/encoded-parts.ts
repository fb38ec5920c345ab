import type { EncodedResource } from "./encoding.ts";

/**
 * A view's resources are kept as the encoded parts they were translated from
 * (each upstream service's clusters, its endpoints, the view's own listeners),
 * not copied into one map per view: thousands of views hold the same parts, so
 * a view costs an array of part references, and the endpoint fast path swaps
 * one part for its successor instead of patching names.
 */

/** The encoded resources of one translated part, shared by every view that holds it. */
export class EncodedPart {
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

  /** Same names, each with the same resource (or withheld in both). */
  sameContent(other: EncodedPart): boolean {
    if (other === this) return true;
    if (other.resources.size !== this.resources.size || other.withheld.size !== this.withheld.size) return false;
    for (const [name, resource] of this.resources) if (other.resources.get(name) !== resource) return false;
    for (const name of this.withheld) if (!other.withheld.has(name)) return false;
    return true;
  }
}

/** Up to this many parts, a lookup scans them; beyond it, a name index is built on first lookup. */
const SCAN_PARTS = 16;

/**
 * A view's resources of one kind as a read-only map over its parts. Parts of
 * one view hold disjoint names (translate.ts composes one part per upstream
 * service, and resource names carry the service), so the map's entries are
 * the parts' entries in part order.
 */
export class PartsMap implements ReadonlyMap<string, EncodedResource> {
  readonly size: number;
  private index: Map<string, EncodedResource> | null = null;
  private withheldNames: ReadonlySet<string> | null = null;

  constructor(readonly parts: readonly EncodedPart[]) {
    let size = 0;
    for (const part of parts) size += part.resources.size;
    this.size = size;
  }

  get(name: string): EncodedResource | undefined {
    if (this.parts.length <= SCAN_PARTS) {
      for (const part of this.parts) {
        const resource = part.resources.get(name);
        if (resource !== undefined) return resource;
      }
      return undefined;
    }
    this.index ??= new Map(this.entries());
    return this.index.get(name);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Names withheld by any part. */
  get withheld(): ReadonlySet<string> {
    if (this.withheldNames === null) {
      const withheld = this.parts.filter((part) => part.withheld.size > 0);
      this.withheldNames = withheld.length === 0 ? NO_NAMES : new Set(withheld.flatMap((part) => [...part.withheld]));
    }
    return this.withheldNames;
  }

  /** The same parts, each of `successors`' keys replaced by its value; this map itself when none is held. */
  replacing(successors: ReadonlyMap<EncodedPart, EncodedPart>): PartsMap {
    let replaced = false;
    const parts = this.parts.map((part) => {
      const next = successors.get(part);
      if (next === undefined) return part;
      replaced = true;
      return next;
    });
    return replaced ? new PartsMap(parts) : this;
  }

  /** Whether `other` holds exactly the same part objects, in the same order. */
  sameParts(other: PartsMap): boolean {
    if (other.parts.length !== this.parts.length) return false;
    for (let i = 0; i < this.parts.length; i++) if (other.parts[i] !== this.parts[i]) return false;
    return true;
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
