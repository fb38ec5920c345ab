import type { ResourceKind } from "../translate/resource-types.ts";
import type { EncodedPart } from "./encoded-parts.ts";
import type { EncodedResource } from "./encoding.ts";

/**
 * The cache's table of encoded resources by kind, name and version, so equal
 * content is encoded and validated once. It holds exactly the resources that
 * some live view holds, counted as the views hold them: a view holds its
 * parts, a part its resources, and a resource leaves the table when the last
 * part holding it is released. Under endpoint churn the table then stays the
 * size of what is served, with no pass over every view to find what is dead
 * (that pass used to stall one change in ~10,000 by 100 ms and more).
 *
 * A resource added and never held (a service no view calls) is dropped by
 * `sweep`, which the cache runs once per snapshot.
 */
export class InternTable {
  private readonly byKey = new Map<string, EncodedResource>();
  /** Per held part, how many view maps hold it. */
  private readonly partHolders = new Map<EncodedPart, number>();
  /** Per resource in a held part, how many held parts contain it. */
  private readonly resourceUses = new Map<EncodedResource, number>();
  /** Resources added since the last sweep: dropped then unless something holds them. */
  private added: EncodedResource[] = [];

  get size(): number {
    return this.byKey.size;
  }

  get(kind: ResourceKind, name: string, version: string): EncodedResource | undefined {
    return this.byKey.get(internKey(kind, name, version));
  }

  add(resource: EncodedResource): void {
    this.byKey.set(keyOf(resource), resource);
    this.added.push(resource);
  }

  /** Another view map holds `part`. */
  holdPart(part: EncodedPart): void {
    if (countUp(this.partHolders, part)) for (const resource of part.resources.values()) this.use(resource);
  }

  /** A view map that held `part` no longer does. */
  releasePart(part: EncodedPart): void {
    if (countDown(this.partHolders, part)) for (const resource of part.resources.values()) this.unuse(resource);
  }

  holdParts(parts: Iterable<EncodedPart>): void {
    for (const part of parts) this.holdPart(part);
  }

  releaseParts(parts: Iterable<EncodedPart>): void {
    for (const part of parts) this.releasePart(part);
  }

  /** Drops what was added since the last sweep and is held by no part. */
  sweep(): void {
    for (const resource of this.added) {
      if (!this.resourceUses.has(resource)) this.dropIfCurrent(resource);
    }
    this.added = [];
  }

  private use(resource: EncodedResource): void {
    // A part encoded earlier (memoized by the cache) may come back after its
    // resources left the table: they are current again.
    if (countUp(this.resourceUses, resource)) {
      const key = keyOf(resource);
      if (!this.byKey.has(key)) this.byKey.set(key, resource);
    }
  }

  private unuse(resource: EncodedResource): void {
    if (countDown(this.resourceUses, resource)) this.dropIfCurrent(resource);
  }

  /** Removes `resource`'s entry, unless its key now names another object of the same version. */
  private dropIfCurrent(resource: EncodedResource): void {
    const key = keyOf(resource);
    if (this.byKey.get(key) === resource) this.byKey.delete(key);
  }
}

/** Increments `key`'s count; true when it had none before. */
function countUp<K>(counts: Map<K, number>, key: K): boolean {
  const count = counts.get(key) ?? 0;
  counts.set(key, count + 1);
  return count === 0;
}

/** Decrements `key`'s count, removing it at zero; true when it reached zero (false if it had none). */
function countDown<K>(counts: Map<K, number>, key: K): boolean {
  const count = counts.get(key);
  if (count === undefined) return false;
  if (count > 1) {
    counts.set(key, count - 1);
    return false;
  }
  counts.delete(key);
  return true;
}

function keyOf(resource: EncodedResource): string {
  return internKey(resource.kind, resource.name, resource.version);
}

function internKey(kind: ResourceKind, name: string, version: string): string {
  return `${kind}\u0000${name}\u0000${version}`;
}
