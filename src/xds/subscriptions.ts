import type { ResourceKind } from "../translate/resource-types.ts";
import { namesKey } from "./cache.ts";

/**
 * Subscriptions shared between streams. Thousands of proxies of one service
 * subscribe to the same names; each stream used to keep its own copy of them
 * (at 10,000 proxies about 2 KB of live heap each, which every full collection
 * marks). Streams now hold interned, immutable subscriptions and replace theirs
 * when the client changes it.
 */

/**
 * Values interned by an id and held weakly: one lives as long as a stream
 * holds it, so a stream that ends (or is dropped without being closed) never
 * has to give it back.
 */
class WeakInternTable<V extends object> {
  private readonly entries = new Map<string, WeakRef<V>>();
  private readonly reclaim = new FinalizationRegistry<string>((id) => {
    // The id may have been interned again since: drop only a dead entry.
    if (this.entries.get(id)?.deref() === undefined) this.entries.delete(id);
  });

  /** The live value for `id`, or a new one from `make`. */
  intern(id: string, make: () => V): V {
    let value = this.entries.get(id)?.deref();
    if (!value) {
      value = make();
      this.entries.set(id, new WeakRef(value));
      this.reclaim.register(value, id);
    }
    return value;
  }

  /** How many distinct values are alive (for tests and stats). */
  get size(): number {
    let alive = 0;
    for (const ref of this.entries.values()) if (ref.deref() !== undefined) alive++;
    return alive;
  }

  /** How many entries the table keeps, dead ones not yet reclaimed included (for tests). */
  get kept(): number {
    return this.entries.size;
  }
}

/** Equal wire bytes: the same list of names in the same order. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** A state-of-the-world subscription: the resource names one request of a type listed, in its order. */
export interface Subscription {
  /** The names as requested, "*" included. */
  readonly names: readonly string[];
  /** namesKey of the names other than "*": what ProxyView.named memoizes by. */
  readonly key: string;
  /**
   * The names' wire bytes (SotwRequest.resourceNamesBytes), once a request
   * decoded from the wire listed them: equal bytes mean this same list.
   */
  readonly bytes: Uint8Array | null;
}

/** A subscription as the table holds it: `bytes` is filled in once known. */
type Entry = { -readonly [K in keyof Subscription]: Subscription[K] };

/** Interns state-of-the-world subscriptions by their names in order. */
export class SubscriptionTable {
  private readonly table = new WeakInternTable<Entry>();
  /**
   * Per kind, the last subscription interned with its wire bytes. A mesh's
   * proxies send the same lists (in a mesh that declares no dependencies,
   * every cluster of the mesh, by name) as streams connect one after another:
   * a list with the same bytes is then found without decoding it (fromWire).
   */
  private readonly lastWire = new Map<ResourceKind, Subscription>();

  /** The shared subscription to `names` (in this order); `bytes` are their wire bytes when known. */
  intern(names: readonly string[], bytes: Uint8Array | undefined, kind?: ResourceKind): Subscription {
    // JSON, not a join: resource names may hold any character.
    const entry = this.table.intern(JSON.stringify(names), () => ({
      names: Object.freeze([...names]),
      key: namesKey(names.filter((name) => name !== "*")),
      bytes: null,
    }));
    // The same names in the same order have the same wire bytes; keep one copy.
    if (entry.bytes === null && bytes !== undefined) entry.bytes = new Uint8Array(bytes);
    if (kind !== undefined && entry.bytes !== null) this.lastWire.set(kind, entry);
    return entry;
  }

  /** The subscription last interned for `kind` from these same wire bytes, if it was the last. */
  fromWire(kind: ResourceKind, bytes: Uint8Array): Subscription | undefined {
    const last = this.lastWire.get(kind);
    return last?.bytes != null && sameBytes(last.bytes, bytes) ? last : undefined;
  }

  get size(): number {
    return this.table.size;
  }

  get kept(): number {
    return this.table.kept;
  }
}

/**
 * The names a delta stream subscribed to by name (the wildcard apart): a set,
 * so order and repeats do not matter.
 */
export interface NameSet {
  readonly names: ReadonlySet<string>;
  /** The names, sorted. */
  readonly list: readonly string[];
  /** namesKey of the names: what ProxyView.named memoizes by. */
  readonly key: string;
}

/** A delta request's subscribe list as a subscription: its names but "*", and whether it held "*". */
export interface WireSubscription {
  readonly set: NameSet;
  readonly wildcard: boolean;
}

/** Interns delta subscriptions by their set of names. */
export class NameSetTable {
  private readonly table = new WeakInternTable<NameSet>();
  /**
   * Per kind, the last subscribe list read from the wire (a copy of its
   * bytes) and what it was read as. A mesh's proxies of one kind send the same
   * first request (in a mesh that declares no dependencies, every cluster of
   * the mesh, by name), and streams connect one after another; one slot per
   * type is enough for them to share one decoding.
   */
  private readonly lastWire = new Map<ResourceKind, { readonly bytes: Uint8Array; readonly read: WireSubscription }>();
  /** The last extension built by withAdded. */
  private lastAdded: { readonly from: NameSet; readonly key: string; readonly to: NameSet } | null = null;

  /** What the subscribe list whose wire bytes are `bytes` stands for; `names()` decodes it when these bytes are new. */
  fromWire(kind: ResourceKind, bytes: Uint8Array, names: () => readonly string[]): WireSubscription {
    const last = this.lastWire.get(kind);
    if (last !== undefined && sameBytes(last.bytes, bytes)) return last.read;
    const list = names();
    const wildcard = list.includes("*");
    const read = { set: this.intern(wildcard ? list.filter((name) => name !== "*") : list), wildcard };
    // A copy: the request's buffer is the whole received message.
    this.lastWire.set(kind, { bytes: new Uint8Array(bytes), read });
    return read;
  }

  /** The shared set of `names`. */
  intern(names: Iterable<string>): NameSet {
    const list = [...new Set(names)].sort();
    const key = namesKey(list);
    return this.table.intern(key, () => ({ names: new Set(list), list: Object.freeze(list), key }));
  }

  /**
   * `from` with `names` added. Streams of a view (in a mesh that declares no
   * dependencies, every stream) extend the same subscription by the same names
   * when a service joins: the last extension is remembered, so it is built
   * once, not sorted and keyed per stream.
   */
  withAdded(from: NameSet, names: readonly string[]): NameSet {
    const added = [...new Set(names)].filter((name) => !from.names.has(name)).sort();
    if (added.length === 0) return from;
    const key = JSON.stringify(added);
    const last = this.lastAdded;
    if (last !== null && last.from === from && last.key === key) return last.to;
    const to = this.intern([...from.list, ...added]);
    this.lastAdded = { from, key, to };
    return to;
  }

  get size(): number {
    return this.table.size;
  }

  get kept(): number {
    return this.table.kept;
  }
}

/** The process's state-of-the-world subscriptions: every stream of every server shares them. */
export const subscriptions = new SubscriptionTable();

/** The process's delta subscriptions, likewise. */
export const nameSets = new NameSetTable();

/** No names: what a delta type starts with (held here, so never reclaimed). */
export const NO_NAMES: NameSet = nameSets.intern([]);
