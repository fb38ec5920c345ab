import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { RegistryState } from "../../src/model/registry.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import { SnapshotBuilder } from "../../src/translate/incremental-snapshot.ts";
import { RESOURCE_KINDS } from "../../src/translate/resource-types.ts";
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

/** Distinct resource versions in the views of `proxies`, as kind/name/version. */
function servedVersions(cache: ResourceCache, proxies: readonly Proxy[]): Set<string> {
  const versions = new Set<string>();
  for (const proxy of proxies) {
    const view = cache.viewFor(proxy)!;
    for (const kind of RESOURCE_KINDS) for (const resource of view.resources[kind].values()) versions.add(`${kind}/${resource.name}/${resource.version}`);
  }
  return versions;
}

describe("the intern table under churn", () => {
  it("holds exactly the versions the views serve: after endpoint changes, a rule change and a released view", () => {
    const scenario = scenarios[0]!;
    const proxies = Object.values(scenario.proxies);
    const builder = new SnapshotBuilder();
    const cache = new ResourceCache(translate, () => [], pino({ level: "silent" }));
    const keys = proxies.map((proxy) => cache.retain(proxy));
    let registry = scenario.registry;
    cache.setSnapshot(builder.build(registry, scenario.rules));
    const exact = (served: readonly Proxy[]) => expect(cache.stats().internedResources).toBe(servedVersions(cache, served).size);
    exact(proxies);
    // Each change replaces endpoint versions; the replaced ones must leave the table.
    for (let step = 1; step <= 40; step++) {
      registry = moved(registry, step);
      cache.setSnapshot(builder.build(registry, scenario.rules));
      exact(proxies);
    }
    expect(cache.stats().endpointPatches).toBe(40);
    // A rule change rebuilds every view: replaced cluster and route versions leave too.
    const fewerRoutes = { ...scenario.rules, httpRoutes: scenario.rules.httpRoutes.slice(1) };
    cache.setSnapshot(builder.build(registry, fewerRoutes));
    expect(cache.stats().fullRebuilds).toBe(2);
    exact(proxies);
    // A view no stream retains any more gives up what only it held.
    const before = cache.stats().internedResources;
    cache.release(keys[0]!);
    exact(proxies.slice(1));
    expect(cache.stats().internedResources).toBeLessThan(before);
  });

  it("drops the versions of a service no retained view calls", () => {
    const scenario = scenarios.find((each) => each.name === "scoped")!;
    // web is the first service (the one `moved` changes) and neither of these views calls it.
    const proxies = [scenario.proxies["web-sidecar"]!, scenario.proxies["api-sidecar"]!];
    expect([...scenario.registry.services.keys()][0]).toBe("web");
    const builder = new SnapshotBuilder();
    const cache = new ResourceCache(translate, () => [], pino({ level: "silent" }));
    for (const proxy of proxies) cache.retain(proxy);
    let registry = scenario.registry;
    cache.setSnapshot(builder.build(registry, scenario.rules));
    for (let step = 1; step <= 5; step++) {
      registry = moved(registry, step);
      cache.setSnapshot(builder.build(registry, scenario.rules));
      expect(cache.stats().internedResources).toBe(servedVersions(cache, proxies).size);
    }
    expect(cache.stats().endpointPatches).toBe(5);
  });
});
