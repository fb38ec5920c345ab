import { namesKey } from "./cache.ts";

/**
 * A state-of-the-world subscription: the resource names one request of a type
 * listed, shared by every stream that lists the same names in the same order.
 *
 * Thousands of proxies of one service subscribe to the same names. Each stream
 * used to keep its own copy of the list, its wire bytes and its key: at 10,000
 * proxies about 2 KB of live heap each, which every full collection marks.
 */
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

/**
 * Interns subscriptions by their names in order. Entries are held weakly: one
 * lives as long as a stream holds it, so a stream that ends (or is dropped
 * without being closed) never has to give its subscription back.
 */
export class SubscriptionTable {
  private readonly entries = new Map<string, WeakRef<Entry>>();
  private readonly reclaim = new FinalizationRegistry<string>((id) => {
    // The id may have been interned again since: drop only a dead entry.
    if (this.entries.get(id)?.deref() === undefined) this.entries.delete(id);
  });

  /** The shared subscription to `names` (in this order); `bytes` are their wire bytes when known. */
  intern(names: readonly string[], bytes: Uint8Array | undefined): Subscription {
    // JSON, not a join: resource names may hold any character.
    const id = JSON.stringify(names);
    let entry = this.entries.get(id)?.deref();
    if (!entry) {
      entry = { names: Object.freeze([...names]), key: namesKey(names.filter((name) => name !== "*")), bytes: null };
      this.entries.set(id, new WeakRef(entry));
      this.reclaim.register(entry, id);
    }
    // The same names in the same order have the same wire bytes; keep one copy.
    if (entry.bytes === null && bytes !== undefined) entry.bytes = new Uint8Array(bytes);
    return entry;
  }

  /** How many distinct subscriptions are alive (for tests and stats). */
  get size(): number {
    let alive = 0;
    for (const ref of this.entries.values()) if (ref.deref() !== undefined) alive++;
    return alive;
  }
}

/** The process's subscriptions: every stream of every server shares them. */
export const subscriptions = new SubscriptionTable();
