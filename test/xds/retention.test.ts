import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { RegistryState } from "../../src/model/registry.ts";
import { SnapshotBuilder } from "../../src/translate/incremental-snapshot.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { scenarios } from "../translate/scenarios.ts";

/**
 * A control plane runs for months under endpoint churn: what it keeps per
 * change must be bounded. Each instance-only change makes a new registry (and
 * snapshot); once newer ones exist, the old ones must be collectable.
 * (A memo keyed by the new registry that held the old one used to chain every
 * registry ever seen to the newest.)
 */
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function moved(registry: RegistryState, step: number): RegistryState {
  const services = new Map(registry.services);
  const [name, service] = [...services][0]!;
  const [first, ...rest] = service.instances;
  services.set(name, { ...service, instances: [{ ...first!, address: `10.250.0.${step}` }, ...rest] });
  return { services };
}

describe("memory under endpoint churn", () => {
  it("old registries and snapshots are released once newer ones replace them", async () => {
    const scenario = scenarios[0]!;
    const builder = new SnapshotBuilder();
    const cache = new ResourceCache(translate, () => [], pino({ level: "silent" }));
    for (const proxy of Object.values(scenario.proxies)) cache.retain(proxy);
    let registry = scenario.registry;
    cache.setSnapshot(builder.build(registry, scenario.rules));
    const early: WeakRef<object>[] = [];
    for (let step = 1; step <= 30; step++) {
      registry = moved(registry, step);
      const snapshot = builder.build(registry, scenario.rules);
      cache.setSnapshot(snapshot);
      for (const proxy of Object.values(scenario.proxies)) cache.viewFor(proxy);
      if (step <= 10) early.push(new WeakRef(registry.services), new WeakRef(snapshot));
    }
    expect(cache.stats().endpointPatches).toBeGreaterThan(20);
    // WeakRef targets stay alive until the current job ends.
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
    expect(early.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
  });
});
