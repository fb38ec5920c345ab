/// <reference types="vite/client" />
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Instance, RegistryState, Service } from "../../src/model/registry.ts";
import type { MeshSnapshot } from "../../src/model/snapshot.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { selects } from "../../src/translate/rule-check.ts";
import { SnapshotBuilder } from "../../src/translate/incremental-snapshot.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { fingerprint, reference } from "./fingerprint.ts";
import { scenarios, type Scenario } from "../translate/scenarios.ts";
import { seededRandom } from "../support/seeded-random.ts";

/**
 * SnapshotBuilder re-runs only the instance-reading checks of the services whose
 * instances changed, and keeps every other verdict of the previous snapshot.
 * That must give exactly buildSnapshot's result. For every translation scenario
 * a seeded random walk of single-instance changes (labels rewritten or removed,
 * sidecars added or dropped, instances moved, failed, removed or added), plus
 * targeted steps that empty each subset and strip each colored service of its
 * colors one instance at a time, is checked step by step: the snapshot against
 * a full buildSnapshot, and now and then every proxy's resources against a
 * fresh translation.
 */
const logger = pino({ level: "silent" });


function withInstances(registry: RegistryState, name: string, instances: readonly Instance[]): RegistryState {
  const services = new Map(registry.services);
  const service = services.get(name) as Service;
  services.set(name, { ...service, instances });
  return { services };
}

/** Label keys and values worth trying: the scenario's own, subset selectors', color labels', and strangers. */
function labelPool(scenario: Scenario): Map<string, string[]> {
  const pool = new Map<string, Set<string>>();
  const add = (key: string, value: string): void => {
    let values = pool.get(key);
    if (!values) pool.set(key, (values = new Set(["", "zz-other"])));
    values.add(value);
  };
  for (const service of scenario.registry.services.values()) {
    for (const instance of service.instances) for (const [key, value] of Object.entries(instance.labels)) add(key, value);
  }
  for (const subset of scenario.rules.subsets) for (const [key, value] of Object.entries(subset.selector)) add(key, value);
  for (const routing of scenario.rules.clusterPolicies?.colorRouting ?? []) {
    add(routing.label, "blue");
    add(routing.label, "green");
  }
  add("color", "blue");
  return new Map([...pool].map(([key, values]) => [key, [...values]]));
}

function pick<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)] as T;
}

/** One random change to one instance (or the instance list) of one service. */
function randomChange(random: () => number, registry: RegistryState, pool: Map<string, string[]>, sequence: number): { label: string; registry: RegistryState } {
  const services = [...registry.services.values()];
  const service = pick(random, services);
  const instances = service.instances;
  const at = Math.floor(random() * instances.length);
  const instance = instances[at];
  const replace = (next: Instance): Instance[] => instances.map((old, i) => (i === at ? next : old));
  const kind = instance ? Math.floor(random() * 7) : 6;
  if (!instance || kind === 6) {
    const template = pick(random, services.flatMap((s) => s.instances));
    if (!template) return { label: "nothing", registry };
    const added: Instance = { ...(instance ?? template), id: `added-${sequence}`, service: service.name, address: `10.77.${sequence >> 8}.${sequence & 255}`, labels: { ...template.labels } };
    return { label: `${service.name}: instance added`, registry: withInstances(registry, service.name, [...instances, added]) };
  }
  switch (kind) {
    case 0:
      return { label: `${service.name}: ${instance.id} moves`, registry: withInstances(registry, service.name, replace({ ...instance, address: `10.88.${sequence >> 8}.${sequence & 255}` })) };
    case 1:
      return { label: `${service.name}: ${instance.id} leaves`, registry: withInstances(registry, service.name, instances.filter((_, i) => i !== at)) };
    case 2: {
      const meshPort = instance.meshPort === null ? 15006 : null;
      return { label: `${service.name}: ${instance.id} mesh port ${meshPort}`, registry: withInstances(registry, service.name, replace({ ...instance, meshPort })) };
    }
    case 3: {
      const health = pick(random, ["healthy", "unhealthy", "draining", "unknown"] as const);
      return { label: `${service.name}: ${instance.id} ${health}`, registry: withInstances(registry, service.name, replace({ ...instance, health })) };
    }
    case 4: {
      const key = pick(random, [...pool.keys()]);
      const labels = { ...instance.labels };
      delete labels[key];
      return { label: `${service.name}: ${instance.id} loses label ${key}`, registry: withInstances(registry, service.name, replace({ ...instance, labels })) };
    }
    default: {
      const key = pick(random, [...pool.keys()]);
      const value = pick(random, pool.get(key) ?? [""]);
      return {
        label: `${service.name}: ${instance.id} label ${key}=${value}`,
        registry: withInstances(registry, service.name, replace({ ...instance, labels: { ...instance.labels, [key]: value } })),
      };
    }
  }
}

/** Steps that flip verdicts: each subset loses its instances one by one; each colored service its colored instances. */
function flippingWalks(scenario: Scenario): { label: string; registry: RegistryState }[][] {
  const walks: { label: string; registry: RegistryState }[][] = [];
  const strip = (service: string, doomed: (instance: Instance) => boolean, why: string): void => {
    const steps: { label: string; registry: RegistryState }[] = [];
    let registry = scenario.registry;
    for (;;) {
      const current = registry.services.get(service);
      const victim = current?.instances.find(doomed);
      if (!current || !victim) break;
      registry = withInstances(registry, service, current.instances.filter((instance) => instance !== victim));
      steps.push({ label: `${why}: ${victim.id} leaves`, registry });
    }
    if (steps.length > 0) walks.push(steps);
  };
  for (const subset of scenario.rules.subsets) {
    strip(subset.service, (instance) => selects(subset, instance.labels), `subset ${subset.service}/${subset.name} empties`);
  }
  const colorLabels = new Set((scenario.rules.clusterPolicies?.colorRouting ?? []).map((routing) => routing.label));
  for (const service of scenario.registry.services.values()) {
    for (const label of colorLabels) strip(service.name, (instance) => (instance.labels[label] ?? "") !== "", `${service.name} loses its ${label} colors`);
  }
  // Sidecars: the last instance with a mesh port drops it.
  for (const service of scenario.registry.services.values()) {
    const steps: { label: string; registry: RegistryState }[] = [];
    let registry = scenario.registry;
    for (let i = 0; i < service.instances.length; i++) {
      const current = registry.services.get(service.name) as Service;
      registry = withInstances(registry, service.name, current.instances.map((instance, j) => (j === i ? { ...instance, meshPort: null } : instance)));
      steps.push({ label: `${service.name}: sidecar ${i} gone`, registry });
    }
    if (steps.length > 0) walks.push(steps);
  }
  return walks;
}

/** The snapshot's content (verdicts and everything derived from rules), comparable with toEqual. */
function content(snapshot: MeshSnapshot): unknown {
  return { ...snapshot, rejected: [...snapshot.rejected] };
}


describe("instance-only changes: incremental verdicts equal a full buildSnapshot", () => {
  it("finds the translation scenarios", () => {
    expect(scenarios.length).toBeGreaterThan(0);
  });

  describe.each(scenarios)("scenario $name", (scenario) => {
    it("after every step of random single-instance walks and verdict-flipping walks", () => {
      const pool = labelPool(scenario);
      const random = seededRandom(0x5eed ^ scenario.name.length * 7919);
      const builder = new SnapshotBuilder();
      const cache = new ResourceCache(translate, () => [], logger);
      const proxies = Object.values(scenario.proxies);
      for (const proxy of proxies) cache.retain(proxy);
      let flips = 0;
      let previous: MeshSnapshot | null = null;
      let count = 0;
      const check = (label: string, registry: RegistryState): void => {
        const snapshot = builder.build(registry, scenario.rules);
        cache.setSnapshot(snapshot);
        const full = buildSnapshot(registry, scenario.rules);
        expect({ step: label, snapshot: content(snapshot) }).toEqual({ step: label, snapshot: content(full) });
        if (previous && JSON.stringify(previous.rejected) !== JSON.stringify(snapshot.rejected)) flips++;
        previous = snapshot;
        if (count++ % 5 === 0) {
          for (const proxy of proxies) {
            expect({ step: label, proxy: proxy.id, resources: fingerprint(cache, proxy) }).toEqual({
              step: label,
              proxy: proxy.id,
              resources: reference(registry, scenario.rules, proxy),
            });
          }
        }
      };
      check("base", scenario.registry);
      // A random walk away from the base, and back to it now and then.
      let registry = scenario.registry;
      for (let i = 0; i < 120; i++) {
        if (i % 30 === 29) registry = scenario.registry;
        const step = randomChange(random, registry, pool, i);
        registry = step.registry;
        check(`random ${i}: ${step.label}`, registry);
      }
      for (const walk of flippingWalks(scenario)) {
        check("base", scenario.registry);
        for (const step of walk) check(step.label, step.registry);
        // And back up the same way, so verdicts flip back too.
        for (const step of [...walk].reverse()) check(`back: ${step.label}`, step.registry);
      }
      if (scenario.rules.subsets.length > 0) expect(flips).toBeGreaterThan(0);
      expect(cache.stats().endpointPatches).toBeGreaterThan(0);
    });
  });
});
