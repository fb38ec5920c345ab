import type { RegistryState, Service } from "../model/registry.ts";
import type { RuleSet } from "../model/rules.ts";
import { shareStructure } from "../model/share.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import { buildSnapshot } from "./build-snapshot.ts";

/**
 * Builds snapshots so that what did not change keeps its identity, which is
 * what lets the cache take its endpoint fast path and reuse translation across
 * snapshots.
 *
 *  - The registry is structurally shared with the previous one: an unchanged
 *    service is the same object as before, whatever the source delivered.
 *  - The snapshot is built in full (buildSnapshot: every mesh-level check, some
 *    of which read instances, such as "a subset must select an instance"), then
 *    each rule-derived field is structurally shared with the previous
 *    snapshot's. When every one of them is unchanged, the result is the previous
 *    snapshot with the new registry: the cache sees that only instances changed
 *    and patches endpoints instead of re-translating.
 *  - Nothing changed at all: the previous snapshot itself.
 *
 * Building in full keeps this correct whatever a new kind of rule derives from
 * the registry; it costs one buildSnapshot per change (see docs/benchmarks.md).
 */
export class SnapshotBuilder {
  private last: { readonly registry: RegistryState; readonly rules: RuleSet; readonly snapshot: MeshSnapshot } | null = null;

  build(registry: RegistryState, rules: RuleSet): MeshSnapshot {
    const last = this.last;
    const shared = last ? shareStructure(last.registry, registry) : registry;
    if (last && shared === last.registry && rules === last.rules) return last.snapshot;
    const fresh = buildSnapshot(shared, rules);
    const snapshot = last ? shareSnapshot(last.snapshot, fresh) : fresh;
    this.last = { registry: shared, rules, snapshot };
    return snapshot;
  }
}

/**
 * `fresh` with every field equal to `previous`'s replaced by it; when all but
 * the registry are equal, `previous` with the new registry (so every
 * rule-derived field is the same object as before).
 */
function shareSnapshot(previous: MeshSnapshot, fresh: MeshSnapshot): MeshSnapshot {
  const before = previous as unknown as Record<string, unknown>;
  const after = fresh as unknown as Record<string, unknown>;
  const keys = Object.keys(after);
  let same = Object.keys(before).length === keys.length;
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    if (key === "registry") {
      out[key] = after[key];
      continue;
    }
    const value = shareStructure(before[key], after[key]);
    if (value !== before[key] || !Object.hasOwn(before, key)) same = false;
    out[key] = value;
  }
  if (same) return previous.registry === fresh.registry ? previous : { ...previous, registry: fresh.registry };
  return out as unknown as MeshSnapshot;
}

/**
 * The services whose instances (and nothing else) differ between two
 * registries, by identity; null when services were added or removed or
 * something other than instances changed. Expects structurally shared inputs.
 */
export function instanceOnlyChanges(before: RegistryState, after: RegistryState): Service[] | null {
  if (before === after) return [];
  if (before.services.size !== after.services.size) return null;
  const changed: Service[] = [];
  for (const [name, service] of after.services) {
    const old = before.services.get(name);
    if (!old) return null;
    if (old === service) continue;
    if (!sameShape(old, service)) return null;
    changed.push(service);
  }
  return changed;
}

/** Every field but `instances` is identical (after structural sharing). */
function sameShape(a: Service, b: Service): boolean {
  const aRecord = a as unknown as Record<string, unknown>;
  const bRecord = b as unknown as Record<string, unknown>;
  const keys = Object.keys(bRecord);
  if (Object.keys(aRecord).length !== keys.length) return false;
  for (const key of keys) {
    if (key !== "instances" && aRecord[key] !== bRecord[key]) return false;
  }
  return true;
}
