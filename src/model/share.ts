/**
 * Structural sharing for immutable model values (plain objects, arrays, Maps,
 * primitives). `shareStructure(previous, next)` returns a value equal to `next`
 * in which every part equal to the corresponding part of `previous` IS that
 * part: unchanged services, instances and rules keep their identity across
 * reloads. Downstream code can then tell what changed with `===` instead of
 * comparing (or hashing) the whole mesh again.
 *
 * Returns `previous` itself when the two are equal, so it doubles as a deep
 * equality test. Costs one walk of `next`, like a deep comparison; allocates
 * only along paths that changed.
 */
export function shareStructure<T>(previous: T | undefined, next: T): T {
  if (previous === undefined) return next;
  return share(previous, next) as T;
}

/**
 * Whether two structurally shared values have the same own fields, each the
 * same value (===), except those named in `ignored`: how downstream code asks
 * "did only these fields change?".
 */
export function sameFieldsExcept(a: object, b: object, ignored: readonly string[]): boolean {
  const aRecord = a as Record<string, unknown>;
  const bRecord = b as Record<string, unknown>;
  const keys = Object.keys(bRecord);
  if (Object.keys(aRecord).length !== keys.length) return false;
  for (const key of keys) {
    if (aRecord[key] !== bRecord[key] && !ignored.includes(key)) return false;
  }
  return true;
}

/** Whether two arrays hold the same elements (===) in the same order. */
export function sameElements<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function share(a: unknown, b: unknown): unknown {
  if (Object.is(a, b)) return a;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return b;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) ? shareArray(a, b) : b;
  }
  if (a instanceof Map || b instanceof Map) {
    return a instanceof Map && b instanceof Map ? shareMap(a, b) : b;
  }
  if (a instanceof Set || b instanceof Set) {
    return a instanceof Set && b instanceof Set && a.size === b.size && [...b].every((item) => a.has(item)) ? a : b;
  }
  // Only plain data is compared; anything else (class instances, dates, bytes) counts as changed.
  if (!isPlain(a) || !isPlain(b)) return b;
  return shareObject(a as Record<string, unknown>, b as Record<string, unknown>);
}

function isPlain(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function shareArray(a: readonly unknown[], b: readonly unknown[]): readonly unknown[] {
  let out: unknown[] | null = a.length === b.length ? null : [];
  // Whether every element is `b`'s own: then `b` is the answer, no copy needed.
  let allOfB = true;
  for (let i = 0; i < b.length; i++) {
    const before = i < a.length ? a[i] : undefined;
    const value = i < a.length ? share(before, b[i]) : b[i];
    allOfB &&= value === b[i];
    if (out !== null) out.push(value);
    else if (value !== before) {
      out = a.slice(0, i);
      out.push(value);
    }
  }
  return out === null ? a : allOfB ? b : out;
}

function shareMap(a: ReadonlyMap<unknown, unknown>, b: ReadonlyMap<unknown, unknown>): ReadonlyMap<unknown, unknown> {
  // Whether every value is `b`'s own: then `b` is the answer, and no map is built
  // (a source that already shares unchanged parts costs one walk, no copy, and
  // no allocation: shared values are kept only once one differs from b's).
  const walk: MapWalk = { a, b, changed: a.size !== b.size, values: null, index: 0 };
  // forEach, not for-of: no entry array per entry. A module-level callback with
  // its state as `this`, not a closure: a closure made per call loses its
  // optimized code once the calls' closures are garbage (memo.ts, perSnapshotTable).
  b.forEach(shareEntry, walk);
  if (!walk.changed) return a;
  if (walk.values === null) return b;
  const out = new Map<unknown, unknown>();
  let index = 0;
  for (const key of b.keys()) out.set(key, walk.values[index++]);
  return out;
}

interface MapWalk {
  readonly a: ReadonlyMap<unknown, unknown>;
  readonly b: ReadonlyMap<unknown, unknown>;
  changed: boolean;
  /** The shared values so far, once one is not b's own (null while all are). */
  values: unknown[] | null;
  index: number;
}

function shareEntry(this: MapWalk, value: unknown, key: unknown): void {
  const had = this.a.has(key);
  const before = had ? this.a.get(key) : undefined;
  const shared = had ? share(before, value) : value;
  if (!had || shared !== before) this.changed = true;
  if (shared !== value && this.values === null) {
    // The first value that is not b's own: keep b's up to here, then the shared ones.
    const values: unknown[] = [];
    let i = 0;
    for (const earlier of this.b.values()) {
      if (i++ === this.index) break;
      values.push(earlier);
    }
    this.values = values;
  }
  if (this.values !== null) this.values.push(shared);
  this.index++;
}

function shareObject(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const keys = Object.keys(b);
  let out: Record<string, unknown> | null = Object.keys(a).length === keys.length ? null : {};
  let allOfB = true;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const had = Object.hasOwn(a, key);
    const value = had ? share(a[key], b[key]) : b[key];
    allOfB &&= value === b[key];
    if (out !== null) out[key] = value;
    else if (!had || value !== a[key]) {
      out = {};
      for (let j = 0; j < i; j++) out[keys[j] as string] = a[keys[j] as string];
      out[key] = value;
    }
  }
  return out === null ? a : allOfB ? b : out;
}
