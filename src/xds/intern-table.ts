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
  /**
   * By version: the current object of each kind and name with that version
   * (one, in practice: a version hashes the resource's bytes, which hold its
   * name). Keyed by the resources' own version strings rather than a key
   * built per lookup: V8 hashes a string once, and lookups come in the tens
   * of thousands per full build. Not by name: thousands of views each have
   * their own content under one route configuration name.
   */
  private readonly byVersion = new Map<string, EncodedResource[]>();
  /** Per resource in a held part, how many held parts contain it. */
  private readonly resourceUses = new Map<EncodedResource, number>();
  /** Resources added since the last sweep: dropped then unless something holds them. */
  private added: EncodedResource[] = [];

  /** Resources held (for stats; counts the entries, so not for hot paths). */
  get size(): number {
    let size = 0;
    for (const same of this.byVersion.values()) size += same.length;
    return size;
  }

  get(kind: ResourceKind, name: string, version: string): EncodedResource | undefined {
    const same = this.byVersion.get(version);
    if (!same) return undefined;
    for (const resource of same) if (resource.kind === kind && resource.name === name) return resource;
    return undefined;
  }

  add(resource: EncodedResource): void {
    this.put(resource);
    this.added.push(resource);
  }

  /** Another view map holds `part` (counted in the part: it belongs to the one cache that owns this table). */
  holdPart(part: EncodedPart): void {
    if (part.holders++ === 0) for (const resource of part.resources.values()) this.use(resource);
  }

  /** A view map that held `part` no longer does. */
  releasePart(part: EncodedPart): void {
    if (part.holders === 0) return;
    if (--part.holders === 0) for (const resource of part.resources.values()) this.unuse(resource);
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
    if (countUp(this.resourceUses, resource) && !this.get(resource.kind, resource.name, resource.version)) this.put(resource);
  }

  private unuse(resource: EncodedResource): void {
    if (countDown(this.resourceUses, resource)) this.dropIfCurrent(resource);
  }

  /** Makes `resource` the current object of its kind, name and version. */
  private put(resource: EncodedResource): void {
    const same = this.byVersion.get(resource.version);
    if (!same) {
      this.byVersion.set(resource.version, [resource]);
      return;
    }
    const at = same.findIndex((each) => each.kind === resource.kind && each.name === resource.name);
    if (at >= 0) same[at] = resource;
    else same.push(resource);
  }

  /** Removes `resource`'s entry, unless another object of the same kind, name and version is current now. */
  private dropIfCurrent(resource: EncodedResource): void {
    const same = this.byVersion.get(resource.version);
    const at = same ? same.indexOf(resource) : -1;
    if (!same || at < 0) return;
    if (same.length === 1) this.byVersion.delete(resource.version);
    else same.splice(at, 1);
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
